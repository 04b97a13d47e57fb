/* cli.h: what the commands of `strata` share (private to client/): exit codes,
 * the program's name and its usage errors, user text checked for the wire,
 * the socket to use and the connection to it, one-reply calls, and the
 * output helpers. Each command lives in a file of its own and is listed by
 * main() (strata.c) through its struct cli_command. */
#ifndef STRATA_CLIENT_CLI_H
#define STRATA_CLIENT_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/conn.h"

/* Exit codes: documented in --help and the man page; scripts rely on them. */
enum {
	EXIT_OK = 0,
	EXIT_LOCAL = 1,     /* reading input, writing output, out of memory */
	EXIT_USAGE = 2,     /* bad command line or input that is not UTF-8 */
	EXIT_CONNECT = 3,   /* cannot connect, or the connection was lost */
	EXIT_PROTOCOL = 4,  /* the server's bytes broke the protocol, or a BAD_VERSION/MALFORMED/FRAME_TOO_LARGE reply */
	EXIT_SERVER = 5,    /* an Error reply, or a generation ended by an error or a shutdown */
	EXIT_INTERRUPTED = 130, /* Ctrl-C: 128 + SIGINT, as shells report it */
};

/* The options of generate and chat, for their --help and strata --help. */
#define HELP_SAMPLING_OPTS \
	"  -n, --max-tokens N       generate at most N tokens\n" \
	"      --temperature T      sampling temperature; 0 is greedy\n" \
	"      --top-k K            keep the K most likely tokens; 0 keeps all\n" \
	"      --top-p P            nucleus sampling threshold in (0, 1]\n" \
	"      --min-p P            drop tokens below P times the most likely one\n" \
	"      --repeat-penalty R   penalize recently seen tokens; 1 is off\n" \
	"      --repeat-last-n N    how many recent tokens the penalty looks at\n" \
	"      --seed S             sampler seed (the one used is in --verbose/--json)\n" \
	"      --stop STR           stop when the text contains STR (repeatable); C escapes\n" \
	"                           such as \\n, \\t, \\\\ and \\uXXXX are understood\n" \
	"      --draft SRC          draft tokens: lookup, model (the server's draft\n" \
	"                           model) or none (default: the server's)\n" \
	"      --draft-max K        verify at most K drafts per pass (1..64)\n" \
	"      --draft-min K        and at least K while drafts are rejected\n"
#define HELP_GENERATE_OPTS \
	HELP_SAMPLING_OPTS \
	"      --bos, --no-bos      add / do not add the BOS token (default: the model's)\n" \
	"      --special            text spelling a special token becomes that token\n" \
	"      --ignore-eos         go on after an end-of-generation token (up to -n)\n" \
	"      --json               one JSON object per line for each piece, then a\n" \
	"                           final {\"type\":\"done\",...} with the timings\n" \
	"                           (64-bit integers such as the seed as strings)\n" \
	"  -v, --verbose            a summary line on stderr: tokens, speed, finish reason\n" \
	"Ctrl-C cancels the generation, waits for the server to confirm and exits\n" \
	"130; a second Ctrl-C exits at once.\n"
/* chat's and score's own options, for their --help and strata --help. */
#define HELP_CHAT_OPTS \
	"      --system TEXT        a system message to begin the conversation\n" \
	"      --template NAME      the chat template family (chatml, llama2, llama3,\n" \
	"                           mistral, gemma, phi3, zephyr, deepseek, ...) when\n" \
	"                           stratad does not know the model's\n"
#define HELP_SCORE_OPTS \
	"      --tokens             each token's log-probability and bytes too\n" \
	"      --top N              with each token, its N most likely alternatives\n" \
	"                           (0 to 20; implies --tokens)\n" \
	"      --bos, --no-bos      add / do not add the BOS token (default: the model's)\n" \
	"      --special            text spelling a special token becomes that token\n" \
	"      --json               the ScoreReply as one JSON object (64-bit integers\n" \
	"                           as strings)\n"

#define HELP_EXIT \
	"Exit status: 0 success; 1 local failure (input, output, memory); 2 usage\n" \
	"error or input that is not UTF-8; 3 cannot connect or connection lost;\n" \
	"4 protocol error; 5 server error (an error reply, or generation ended by\n" \
	"an error or a shutdown); 130 interrupted.\n"

/* A command: its name, what runs it (argv[0] is the command's name; getopt
 * is reset for it) and its options, which main() also consults to say where
 * an option given before the command belongs. */
struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const struct option *opts;
	const char *short_opts;
};

extern const struct cli_command cli_generate, cli_chat, cli_score, cli_tokenize, cli_detokenize, cli_status;

/* ---- names and usage errors (cli.c) ---- */

/* "strata": every message starts with it. */
extern const char cli_prog[];
/* The command being run, for "Try 'strata CMD --help'" (NULL: none yet). */
extern const char *cli_command_name;

/* Print "strata: <message>" and the hint to --help on stderr; EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* getopt_long (with opterr = 0 and a ':' first in the option string) returned
 * '?' or ':' for argv[optind - 1]: the option as the user spelled it, without
 * a "=value", into buf. */
const char *cli_bad_option(char **argv, char *buf, size_t n);

/* The message for an option error of a command's getopt_long loop; EXIT_USAGE. */
int cli_option_error(int opt, char **argv);

/* ---- text from the user (cli.c) ---- */

/* 0 when s[0..n) can travel in a proto3 string (UTF-8, no NUL), else the
 * usage error naming `what`. */
int cli_check_text(const char *what, const char *s, size_t n);

/* All of stdin, NUL-terminated, at most FRAME_RESPONSE_CAP bytes: 0 with
 * *out (free it) and *out_len, or an exit code (message printed). */
int cli_read_stdin(char **out, size_t *out_len);

/* TEXT from argv[optind] ("-" or absent: stdin), checked: 0 with *text, and
 * *owned what to free (NULL when *text is argv's), or an exit code. */
int cli_get_text(int argc, char **argv, const char *what, char **text, char **owned);

/* ---- the connection (cli.c) ---- */

/* The sockets to try, from --socket (opt, may be NULL) and the environment. */
void cli_choose_sockets(const char *opt);

/* Connect to the first socket that answers: 0, or EXIT_CONNECT (message
 * printed). Close with conn_close. */
int cli_connect(struct conn *c);

/* Exit code and message for a failed conn_next/conn_send. */
int cli_conn_failure(int rc);

/* An ErrorCode's name ("PROMPT_TOO_LONG"); static. */
const char *cli_error_name(int code);

/* Print an Error reply; its exit code (EXIT_PROTOCOL or EXIT_SERVER). */
int cli_server_error(const Strata__V1__Error *e);

/* Print a reply that does not belong where it came; EXIT_PROTOCOL. */
int cli_unexpected(const Strata__V1__Response *r);

/* Send req; if the server hung up first, read the Error it may have left.
 * 0 or an exit code (message printed). */
int cli_send(struct conn *c, Strata__V1__Request *req);

/* On a connection of its own: send req, wait for its one reply. 0 with *out
 * (free with strata__v1__response__free_unpacked) whose body is `want`, or an
 * exit code (message printed). */
int cli_call(Strata__V1__Request *req, Strata__V1__Response__BodyCase want, Strata__V1__Response **out);

/* ---- a Generate: its options, its stream, Ctrl-C (generate.c) ---- */

/* getopt_long codes of the options generate and chat share (past every
 * character); a command's own options are numbered from GEN_O_END. */
enum {
	GEN_O_TEMP = 256, GEN_O_TOPK, GEN_O_TOPP, GEN_O_MINP, GEN_O_PEN, GEN_O_WIN, GEN_O_SEED, GEN_O_STOP,
	GEN_O_IGNORE_EOS, GEN_O_JSON, GEN_O_DRAFT, GEN_O_DRAFT_MAX, GEN_O_DRAFT_MIN, GEN_O_END
};
/* Their entries in a getopt_long table, and their short options. */
#define GEN_OPTIONS \
	{ "max-tokens", required_argument, NULL, 'n' }, \
	{ "temperature", required_argument, NULL, GEN_O_TEMP }, \
	{ "top-k", required_argument, NULL, GEN_O_TOPK }, \
	{ "top-p", required_argument, NULL, GEN_O_TOPP }, \
	{ "min-p", required_argument, NULL, GEN_O_MINP }, \
	{ "repeat-penalty", required_argument, NULL, GEN_O_PEN }, \
	{ "repeat-last-n", required_argument, NULL, GEN_O_WIN }, \
	{ "seed", required_argument, NULL, GEN_O_SEED }, \
	{ "stop", required_argument, NULL, GEN_O_STOP }, \
	{ "ignore-eos", no_argument, NULL, GEN_O_IGNORE_EOS }, \
	{ "json", no_argument, NULL, GEN_O_JSON }, \
	{ "draft", required_argument, NULL, GEN_O_DRAFT }, \
	{ "draft-max", required_argument, NULL, GEN_O_DRAFT_MAX }, \
	{ "draft-min", required_argument, NULL, GEN_O_DRAFT_MIN }, \
	{ "verbose", no_argument, NULL, 'v' }
#define GEN_SHORT "n:v"

/* How a Generate's replies are printed. */
struct gen_print {
	bool json;    /* JSON lines instead of text */
	bool verbose; /* a summary line on stderr after the Done */
	bool newline; /* end the text with a newline even when stdout is no terminal */
};

/* A Generate being built from the command line. */
struct gen_args {
	Strata__V1__Generate gen; /* the request's body; gen.stop points at stops */
	char **stops;             /* owned: the --stop strings, unescaped */
	struct gen_print print;
};

/* Set *a up for a command line of argc words: 0, or EXIT_LOCAL (message
 * printed). Free with gen_args_free, even after a failure. */
int gen_args_init(struct gen_args *a, int argc);
void gen_args_free(struct gen_args *a);

/* getopt_long returned `opt` (optarg set) for the option whose long name is
 * `name` (NULL when given by its short name). Returns 0 when it was a
 * Generate option and is now in *a, GEN_NOT_MINE when it is not one, or an
 * exit code (message printed). */
#define GEN_NOT_MINE (-1)
int gen_args_take(struct gen_args *a, int opt, const char *name);

/* Ctrl-C: after gen_sigint_catch() (0 or EXIT_LOCAL), SIGINT no longer
 * kills: it makes gen_sigint_fd() readable, and while a reply streams
 * (gen_run) a second one exits 130 at once. gen_sigint_clear() reads the
 * wake-ups and forgets the Ctrl-Cs seen so far. */
int gen_sigint_catch(void);
int gen_sigint_fd(void);
void gen_sigint_clear(void);

/* How a streamed Generate ended, for a caller that goes on after it. */
struct gen_end {
	int finish; /* the Done's FinishReason; 0 when no Done came */
	int error;  /* the ErrorCode of an Error reply that refused it; 0 when none */
	char *text; /* the text of its Pieces, NUL-terminated (NULL when none); owned */
	size_t len, cap;
};
void gen_end_free(struct gen_end *end);

/* Send the Generate req (req->id set by the caller) on c and print its
 * replies as `o` says until it ends. A Ctrl-C sends a Cancel with
 * cancel_id (unused on c) and waits for the Done; the stream ends when both
 * requests have their terminal reply, so c can carry the next request.
 * Returns 0 when the text ended normally (length, end of text, stop string),
 * EXIT_INTERRUPTED when cancelled by Ctrl-C, else an exit code (message
 * printed). With end: how it ended and the text (gen_end_free it, whatever
 * the result). Catch SIGINT first (gen_sigint_catch). */
int gen_run(struct conn *c, Strata__V1__Request *req, uint64_t cancel_id, const struct gen_print *o,
	    struct gen_end *end);

/* ---- output (cli.c) ---- */

/* Text mode ends with a newline on a terminal so the prompt does not land
 * after the text; pipes get the text exactly. `last` is the last byte written
 * (0: none). */
void cli_end_line_on_tty(char last);

/* fflush(stdout): 0, or EXIT_LOCAL with the message printed. */
int cli_flush_stdout(void);


/* s (may be NULL) in lower case into buf[0..n). */
void cli_lower(const char *s, char *buf, size_t n);

#endif

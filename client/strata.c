/* strata.c: the `strata` command's entry: global options, the socket, and
 * dispatch to a command (each in a file of its own: generate.c, chat.c,
 * score.c, inspect.c).
 * A thin client: no engine code; everything it knows about the model comes
 * from the daemon's replies. */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "client/cli.h"
#include "proto/frame.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] COMMAND [OPTIONS] [ARGS]\n"
		"Talk to stratad, the strata daemon.\n"
		"\n"
		"Commands (each takes --help for its own usage):\n"
		"  generate [OPTIONS] [PROMPT]  stream a continuation of PROMPT to stdout\n"
		"                               (PROMPT from stdin when absent or \"-\")\n"
		"  chat [OPTIONS]               a conversation on a terminal; one reply to\n"
		"                               stdin's message otherwise\n"
		"  score [OPTIONS] CONTEXT CONTINUATION...\n"
		"                               the log-probability of each continuation\n"
		"  tokenize [--bos] [--special] [TEXT]\n"
		"                               print the token ids of TEXT, space-separated\n"
		"  detokenize [--special] ID... print the text of token ids\n"
		"  status [--json]              describe the daemon, its model and its load\n"
		"\n"
		"Generate options (unset sampling options take the server's defaults):\n"
		HELP_GENERATE_OPTS
		"\n"
		"Chat options (and those of generate, but --bos, --no-bos and --special):\n"
		HELP_CHAT_OPTS
		"\n"
		"Score options:\n"
		HELP_SCORE_OPTS
		"\n"
		"Tokenize/detokenize options:\n"
		"      --bos                tokenize: add the BOS token first\n"
		"      --special            tokenize: parse special tokens in TEXT;\n"
		"                           detokenize: write control tokens as their text\n"
		"\n"
		"Global options (before the command):\n"
		"  -s, --socket PATH        stratad's socket (default: $STRATA_SOCKET, else\n"
		"                           $XDG_RUNTIME_DIR/strata.sock, then\n"
		"                           /run/strata/strata.sock)\n"
		"  -h, --help               this text\n"
		"  -V, --version            the client's version and protocol version\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

static const struct cli_command *const commands[] = {
	&cli_generate, &cli_chat, &cli_score, &cli_tokenize, &cli_detokenize, &cli_status,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Whether cmd takes the option spelled `name` ("--json", "-n"). */
static bool command_has(const struct cli_command *cmd, const char *name)
{
	if (name[0] == '-' && name[1] == '-') {
		for (const struct option *o = cmd->opts; o->name; o++)
			if (strcmp(o->name, name + 2) == 0)
				return true;
		return false;
	}
	return name[0] == '-' && name[1] && name[1] != ':' && strchr(cmd->short_opts, name[1]) != NULL;
}

/* An option main() does not know, given before the command: if a command
 * takes it, say so and show where it goes. */
static int misplaced_option(int argc, char **argv, const char *name)
{
	const struct cli_command *named = NULL, *takes[N_COMMANDS];
	size_t n = 0;

	for (int i = optind; i < argc && !named; i++)
		for (size_t k = 0; k < N_COMMANDS; k++)
			if (strcmp(argv[i], commands[k]->name) == 0)
				named = commands[k];
	if (named && command_has(named, name))
		return cli_usage_error("%s is an option of '%s': %s %s %s", name, named->name, cli_prog,
				       named->name, name);
	for (size_t k = 0; k < N_COMMANDS; k++)
		if (command_has(commands[k], name))
			takes[n++] = commands[k];
	if (n == 0)
		return cli_usage_error("unknown option '%s'", name);
	char list[128] = "";
	for (size_t k = 0; k < n; k++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'",
			 k == 0 ? "" : k + 1 == n ? " and " : ", ", takes[k]->name);
	return cli_usage_error("%s is an option of %s, not of strata itself: give it after the command, "
			       "e.g. %s %s %s", name, list, cli_prog, takes[0]->name, name);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	char name[64];
	int opt;

	/* Errors are ours to word, always as "strata: ..." (getopt would name
	 * argv[0], which for a command's options is the command). */
	opterr = 0;
	/* "+": stop at the command; its options are parsed by the command. */
	while ((opt = getopt_long(argc, argv, "+:s:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("strata %s (protocol %d)\n", PACKAGE_VERSION, STRATA_PROTOCOL_VERSION);
			return EXIT_OK;
		case ':':
			return cli_usage_error("option '%s' needs a value", cli_bad_option(argv, name, sizeof name));
		default:
			return misplaced_option(argc, argv, cli_bad_option(argv, name, sizeof name));
		}
	}
	if (optind >= argc)
		return cli_usage_error("no command given");
	if (sock && !*sock)
		return cli_usage_error("--socket wants a path");
	cli_choose_sockets(sock);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[optind], commands[i]->name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			cli_command_name = commands[i]->name;
			optind = 0; /* glibc: restart getopt for the command's own options */
			return commands[i]->run(sub_argc, sub_argv);
		}
	}
	return cli_usage_error("unknown command '%s'", argv[optind]);
}
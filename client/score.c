/* score.c: `strata score`: how likely the model finds each continuation of a
 * context (a Score request): one line per continuation, the best of them,
 * and on request each token's log-probability. The numbers are stratad's;
 * this file only asks and prints. */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/json.h"
#include "common/parse.h"
#include "common/utf8.h"

static void usage_score(FILE *f)
{
	fprintf(f,
		"Usage: %s [--socket PATH] score [OPTIONS] CONTEXT CONTINUATION...\n"
		"Score each CONTINUATION of CONTEXT (\"-\": read from stdin, as is): one line\n"
		"each with the sum of its tokens' log-probabilities, whether every token was\n"
		"the model's most likely, its number of tokens and the continuation; then the\n"
		"best continuation by that sum and by its mean per token. The context is\n"
		"evaluated once for all of them.\n"
		"\n"
		"Options:\n"
		HELP_SCORE_OPTS
		"  -h, --help               this text\n"
		"\n"
		HELP_EXIT,
		cli_prog);
}

enum { O_TOKENS = 256, O_TOP, O_BOS, O_NOBOS, O_SPECIAL, O_JSON };
#define SCORE_SHORT ":h"
static const struct option score_opts[] = {
	{ "tokens", no_argument, NULL, O_TOKENS },
	{ "top", required_argument, NULL, O_TOP },
	{ "bos", no_argument, NULL, O_BOS },
	{ "no-bos", no_argument, NULL, O_NOBOS },
	{ "special", no_argument, NULL, O_SPECIAL },
	{ "json", no_argument, NULL, O_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* s[0..n) in double quotes, readable on one line whatever it holds: \" \\
 * \n \t \r, other control bytes and bytes that are not UTF-8 (a token may
 * hold part of a character) as \xHH; whole characters as they are. */
static void put_quoted(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n;) {
		unsigned char ch = (unsigned char)s[i];
		uint32_t cp;
		size_t k;

		if (ch == '"' || ch == '\\') {
			printf("\\%c", ch);
			i++;
		} else if (ch == '\n' || ch == '\t' || ch == '\r') {
			printf("\\%c", ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r');
			i++;
		} else if (ch < 0x20 || ch == 0x7f || utf8_decode(s + i, n - i, &cp, &k) != UTF8_OK) {
			printf("\\x%02x", ch);
			i++;
		} else {
			fwrite(s + i, 1, k, stdout);
			i += k;
		}
	}
	putchar('"');
}

/* The tokens of one continuation, under its line, their log-probabilities
 * in a column w wide. */
static void print_tokens(const Strata__V1__ContinuationScore *cs, int w)
{
	for (size_t i = 0; i < cs->n_tokens; i++) {
		const Strata__V1__TokenLogprob *t = cs->tokens[i];

		printf("    %*.6f  [%" PRIu32 "] ", w, FRAME_HAS(t, logprob) ? t->logprob : NAN, t->id);
		put_quoted((const char *)t->bytes.data, t->bytes.len);
		for (size_t j = 0; j < t->n_top; j++) {
			printf(j ? ", " : "  top: ");
			put_quoted((const char *)t->top[j]->bytes.data, t->top[j]->bytes.len);
			printf(" %.6f", t->top[j]->logprob);
		}
		putchar('\n');
	}
}

/* A continuation's log-probability per token (stratad refuses a continuation
 * without tokens, so token_count is at least 1). */
static double mean(const Strata__V1__ContinuationScore *cs)
{
	return cs->logprob / (cs->token_count ? cs->token_count : 1);
}

static void print_scores(const Strata__V1__ScoreReply *r, char **conts, bool tokens)
{
	size_t best = 0, best_mean = 0;
	int w = 1;

	for (size_t i = 0; i < r->n_scores; i++) {
		int n = snprintf(NULL, 0, "%.6f", r->scores[i]->logprob);
		w = n > w ? n : w; /* the sums right-aligned in a column as wide as the widest */
		if (r->scores[i]->logprob > r->scores[best]->logprob)
			best = i; /* ties: the first */
		if (mean(r->scores[i]) > mean(r->scores[best_mean]))
			best_mean = i;
	}
	for (size_t i = 0; i < r->n_scores; i++) {
		const Strata__V1__ContinuationScore *cs = r->scores[i];

		printf("%*.6f  %-10s  %3" PRIu32 " token%s  ", w, cs->logprob, cs->greedy ? "greedy" : "not greedy",
		       cs->token_count, cs->token_count == 1 ? " " : "s");
		put_quoted(conts[i], strlen(conts[i]));
		putchar('\n');
		if (tokens)
			print_tokens(cs, w);
	}
	if (r->n_scores == 0)
		return;
	printf("best: ");
	put_quoted(conts[best], strlen(conts[best]));
	printf(" (logprob %.6f)\nbest per token: ", r->scores[best]->logprob);
	put_quoted(conts[best_mean], strlen(conts[best_mean]));
	printf(" (mean %.6f over %" PRIu32 " token%s)\n", mean(r->scores[best_mean]),
	       r->scores[best_mean]->token_count, r->scores[best_mean]->token_count == 1 ? "" : "s");
}

static int cmd_score(int argc, char **argv)
{
	Strata__V1__Request req = STRATA__V1__REQUEST__INIT;
	Strata__V1__Score sc = STRATA__V1__SCORE__INIT;
	Strata__V1__Response *resp;
	char *owned = NULL;
	bool json = false;
	uint32_t u32;
	int opt, code;

	while ((opt = getopt_long(argc, argv, SCORE_SHORT, score_opts, NULL)) != -1) {
		switch (opt) {
		case O_TOKENS:
			sc.token_logprobs = true;
			break;
		case O_TOP:
			if (parse_u32(optarg, &u32) < 0)
				return cli_usage_error("--top wants a whole number in range, not '%s'", optarg);
			sc.top_logprobs = u32; /* stratad checks the range (0..20) */
			sc.token_logprobs = true;
			break;
		case O_BOS:
		case O_NOBOS:
			sc.add_bos_opt_case = STRATA__V1__SCORE__ADD_BOS_OPT_ADD_BOS;
			sc.add_bos = opt == O_BOS;
			break;
		case O_SPECIAL:
			sc.parse_special = true;
			break;
		case O_JSON:
			json = true;
			break;
		case 'h':
			usage_score(stdout);
			return EXIT_OK;
		default:
			return cli_option_error(opt, argv);
		}
	}
	if (argc - optind < 2)
		return cli_usage_error("score wants a context and at least one continuation");
	for (int i = optind + 1; i < argc; i++) {
		if (!argv[i][0])
			return cli_usage_error("continuation %d is empty", i - optind);
		code = cli_check_text("a continuation", argv[i], strlen(argv[i]));
		if (code)
			return code;
	}
	if (strcmp(argv[optind], "-") == 0) {
		size_t len;
		code = cli_read_stdin(&owned, &len);
		if (code == 0)
			code = cli_check_text("the context", owned, len);
		if (code) {
			free(owned);
			return code;
		}
		sc.context = owned;
	} else {
		sc.context = argv[optind];
		code = cli_check_text("the context", sc.context, strlen(sc.context));
		if (code)
			return code;
	}
	sc.continuations = argv + optind + 1;
	sc.n_continuations = (size_t)(argc - optind - 1);
	req.body_case = STRATA__V1__REQUEST__BODY_SCORE;
	req.score = &sc;
	code = cli_call(&req, STRATA__V1__RESPONSE__BODY_SCORE, &resp);
	free(owned);
	if (code)
		return code;
	if (resp->score->n_scores != sc.n_continuations) {
		fprintf(stderr, "%s: protocol error: %zu scores for %zu continuations\n", cli_prog,
			resp->score->n_scores, sc.n_continuations);
		code = EXIT_PROTOCOL;
	} else if (json) {
		json_put_message(stdout, &resp->score->base);
		putchar('\n');
	} else {
		print_scores(resp->score, sc.continuations, sc.token_logprobs);
	}
	strata__v1__response__free_unpacked(resp, NULL);
	return code ? code : cli_flush_stdout();
}

const struct cli_command cli_score = { "score", cmd_score, score_opts, SCORE_SHORT };

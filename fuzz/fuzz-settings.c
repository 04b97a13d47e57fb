/* fuzz-settings.c: fuzz target for stratad's settings file parser
 * (daemon_config_parse in daemon/settings.c, and through it every value
 * parser of the engine's option table, engine/options.c). The file is an
 * administrator's, but a wrong --config can point anywhere, and the parser
 * reads every byte of it.
 *
 * Input: the file's bytes. Checks, aborting on failure: the parse returns 0,
 * or -EINVAL/-EFBIG with a message that begins with the file's name (where
 * the person looks); a file that parses gives the same settings when its
 * lines are parsed one at a time (the line splitting, BOM and trimming do not
 * depend on what surrounds a line). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/settings.h"
#include "fuzz/fuzz.h"

#define NAME "fuzz.conf"

/* Large (the paths are 4 KiB each): static, not on the stack. */
static struct daemon_config whole, by_line;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct st_err err = { { 0 } };
	daemon_config_default(&whole);
	int rc = daemon_config_parse(&whole, NAME, text, size, &err);
	if (rc < 0) {
		CHECK(rc == -EINVAL || rc == -EFBIG);
		CHECK(strncmp(err.msg, NAME ":", strlen(NAME ":")) == 0);
		return 0;
	}
	CHECK(rc == 0);

	/* the same lines one by one (a BOM belongs to the first line only) */
	daemon_config_default(&by_line);
	size_t pos = 0;
	while (pos < size) {
		const char *nl = memchr(text + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) + 1 : size - pos;
		CHECK(daemon_config_parse(&by_line, NAME, text + pos, n, &err) == 0);
		pos += n;
	}
	CHECK(memcmp(&whole, &by_line, sizeof whole) == 0);
	return 0;
}

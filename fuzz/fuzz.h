/* fuzz.h: the libFuzzer entry point every fuzz target defines. replay.c calls
 * it over a corpus when the targets are not linked with libFuzzer. */
#ifndef STRATA_FUZZ_FUZZ_H
#define STRATA_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A target's check: on failure it names the file, line and condition, then
 * aborts, so libFuzzer keeps the input (and replay.c's run fails). Not
 * assert(), which NDEBUG would turn off. */
#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* Run one input (`size` bytes at `data`, not modified). Returns 0; a bug
 * aborts (or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif

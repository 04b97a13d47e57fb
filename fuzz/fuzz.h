/* fuzz.h: the libFuzzer entry point every fuzz target defines. replay.c calls
 * it over a corpus when the targets are not linked with libFuzzer. */
#ifndef STRATA_FUZZ_FUZZ_H
#define STRATA_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Run one input (`size` bytes at `data`, not modified). Returns 0; a bug
 * aborts (or trips a sanitizer). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif

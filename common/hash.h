/* hash.h: FNV-1a, 64 bits: a fast, simple hash of bytes for hash tables and for noticing
 * that bytes changed. Not cryptographic: anyone can make two inputs collide. */
#ifndef STRATA_COMMON_HASH_H
#define STRATA_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV1A64_INIT 0xcbf29ce484222325ull

/* Continue hash h over n bytes at p; start from HASH_FNV1A64_INIT. Feeding the bytes in
 * pieces gives the same result as all at once. */
uint64_t hash_fnv1a64(uint64_t h, const void *p, size_t n);

#endif

/* anon.h: private to weights/: anonymous memory for the resident set and the streaming
 * slots. Populating on purpose matters here: faulting fresh memory in page by page costs
 * more than reading it from the disk (../shared/MACHINE-NOTES.md). */
#ifndef STRATA_WEIGHTS_ANON_H
#define STRATA_WEIGHTS_ANON_H

#include <stdbool.h>
#include <stdint.h>

/* An anonymous private mapping of len bytes, not yet populated, huge pages advised (from
 * 2 MiB) when `huge`; NULL when out of memory. Free with munmap. */
char *w_map_anon(uint64_t len, bool huge);

/* Populate [p, p + len) (page-aligned, inside a w_map_anon mapping, holding nothing yet)
 * for writing, now: MADV_POPULATE_WRITE, or before Linux 5.14 a fresh MAP_POPULATE mapping
 * of the range. 0, or -ENOMEM (-errno) when the memory cannot be had. */
int w_populate(void *p, uint64_t len);

/* w_populate, the range split among up to 4 threads (one per CPU, this one
 * included): under a hypervisor a thread populates fresh memory at 0.6-1.4
 * GB/s, slower than the disk, and two threads at 1.8-6.7 GB/s (a 3.5 GiB range
 * on a 2-vCPU VM, ../shared/MACHINE-NOTES.md). For start-up, where nothing
 * else computes yet. */
int w_populate_parallel(void *p, uint64_t len);

#endif

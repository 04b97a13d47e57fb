/* clock.h: the one clock strata measures durations with: CLOCK_MONOTONIC in
 * nanoseconds (never jumps with the wall clock, never goes back). Not for
 * timestamps people read: the journal adds those. */
#ifndef STRATA_COMMON_CLOCK_H
#define STRATA_COMMON_CLOCK_H

#include <stdint.h>

/* Nanoseconds since an arbitrary fixed point (boot); only differences mean anything. */
uint64_t clock_now_ns(void);

#endif

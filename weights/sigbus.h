/* sigbus.h: surviving SIGBUS on file mappings, for the whole process. A page of a mapping
 * that cannot be read (the file truncated under it, a page evicted that fails to read
 * back) raises SIGBUS in whatever thread touches it. For a registered mapping the handler
 * covers the mapping from the faulting page to its end with zero pages, so the code that
 * touched it runs on (on zeros), and records the fault for the owner to report and repair.
 * Faults anywhere else go to the handler that was there before (default: die). Knows
 * addresses and lengths only; not files, not weights. */
#ifndef STRATA_WEIGHTS_SIGBUS_H
#define STRATA_WEIGHTS_SIGBUS_H

#include <stdint.h>

#include "common/err.h"

/* Mappings protected at once; further registrations fail. */
#define SIGBUS_MAX 8

/* Protect [base, base + len) (page-aligned). Installs the handler on first use. Returns an
 * id >= 0, or -ENOSPC (every entry taken) / -errno of sigaction, with the reason in why. */
int sigbus_register(const void *base, uint64_t len, struct st_err *why);

/* Stop protecting; the entry is free again. A negative id is a no-op. */
void sigbus_unregister(int id);

/* Faults survived on mapping `id` since the last sigbus_clear (0: none), and the byte
 * (from base) of the first of them. Async-signal-safe reads; any thread may ask. */
uint64_t sigbus_faults(int id, uint64_t *first_off);

/* Forget the faults recorded (after the owner mapped the file again over the zeros). */
void sigbus_clear(int id);

#endif

/* resident_load.h: private to weights/: reading the resident units at open, for both io
 * modes (resident_load.c). */
#ifndef STRATA_WEIGHTS_RESIDENT_LOAD_H
#define STRATA_WEIGHTS_RESIDENT_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "weights/source.h"

/* Read every resident unit's bytes into res_buf[unit] (NULL for streamed units), in file
 * order: through an io_uring reader of its own when io_uring works here (O_DIRECT when
 * f->dfd >= 0), else with pread. With `populate`, each piece of memory is populated up
 * front (MADV_POPULATE_WRITE) just before it is read into: faulting fresh memory in page by
 * page costs more than the disk. progress (may be NULL) is called with bytes done and the
 * total, at the start, at most every 1% or 250 ms, and at the end. Adds the bytes read and
 * the wall time to *bytes and *ns. 0, or -errno with a message naming the unit and byte. */
int w_resident_read(const struct w_file *f, char *const *res_buf, bool populate,
		    void (*progress)(void *user, uint64_t done, uint64_t total), void *user,
		    uint64_t *bytes, uint64_t *ns, struct st_err *err);

#endif

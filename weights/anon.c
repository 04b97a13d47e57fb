/* anon.c: anonymous memory for the resident set and the streaming slots: mapped without
 * touching it, huge pages advised, populated on purpose (see anon.h). */
#include "config.h"

#include "weights/anon.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

char *w_map_anon(uint64_t len, bool huge)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (huge && len >= (2u << 20))
		madvise(p, len, MADV_HUGEPAGE);
	return p;
}

int w_populate(void *p, uint64_t len)
{
	for (int tries = 0; len > 0 && tries < 100; tries++) {
		if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
			return 0;
		if (errno == EINVAL) {
			/* before Linux 5.14: map the range afresh, populated (it holds nothing) */
			void *q = mmap(p, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0);
			return q == MAP_FAILED ? -errno : 0;
		}
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

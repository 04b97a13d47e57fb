/* sigbus.c: see sigbus.h. One process-wide table of protected mappings, read by the signal
 * handler with atomics only (no locks in the handler); a mutex orders registrations. */
#include "config.h"

#include "weights/sigbus.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct {
	_Atomic uintptr_t base;	    /* the mapping, 0 = entry free */
	_Atomic uintptr_t len;	    /* bytes */
	_Atomic uint64_t faults;    /* SIGBUS survived since the last sigbus_clear */
	_Atomic uint64_t first_off; /* byte of the mapping at the first of them (UINT64_MAX: none) */
} bus_maps[SIGBUS_MAX];
static pthread_mutex_t bus_mu = PTHREAD_MUTEX_INITIALIZER;
static bool bus_installed;
static struct sigaction bus_old;
static uintptr_t bus_page;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; si->si_code > 0 && i < SIGBUS_MAX; i++) {
		uintptr_t base = atomic_load(&bus_maps[i].base);
		uintptr_t len = atomic_load(&bus_maps[i].len);
		if (base == 0 || a < base || a - base >= len)
			continue;
		uintptr_t page = a & ~(bus_page - 1);
		/* one mapping over the whole rest: one call however many pages are gone */
		if (mmap((void *)page, base + len - page, PROT_READ,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		uint64_t none = UINT64_MAX;
		atomic_compare_exchange_strong(&bus_maps[i].first_off, &none, page - base);
		atomic_fetch_add(&bus_maps[i].faults, 1);
		return; /* the touching instruction runs again, on zeros */
	}
	if (bus_old.sa_flags & SA_SIGINFO) {
		bus_old.sa_sigaction(sig, si, uctx);
	} else if (bus_old.sa_handler != SIG_DFL && bus_old.sa_handler != SIG_IGN) {
		bus_old.sa_handler(sig);
	} else {
		/* not ours: the default action (a fault recurs on return; a kill is re-raised) */
		sigaction(SIGBUS, &bus_old, NULL);
		if (si->si_code <= 0)
			raise(sig);
	}
}

int sigbus_register(const void *base, uint64_t len, struct st_err *why)
{
	int id = -ENOSPC, e = 0;
	pthread_mutex_lock(&bus_mu);
	if (!bus_installed) {
		struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
		sigemptyset(&sa.sa_mask);
		long page = sysconf(_SC_PAGESIZE);
		bus_page = page > 0 ? (uintptr_t)page : 4096;
		bus_installed = sigaction(SIGBUS, &sa, &bus_old) == 0;
		if (!bus_installed)
			e = errno;
	}
	for (int i = 0; bus_installed && i < SIGBUS_MAX; i++) {
		if (atomic_load(&bus_maps[i].base) != 0)
			continue;
		atomic_store(&bus_maps[i].faults, 0);
		atomic_store(&bus_maps[i].first_off, UINT64_MAX);
		atomic_store(&bus_maps[i].len, (uintptr_t)len);
		atomic_store(&bus_maps[i].base, (uintptr_t)base);
		id = i;
		break;
	}
	pthread_mutex_unlock(&bus_mu);
	if (id >= 0)
		return id;
	if (e != 0)
		return st_errf(why, -e, "cannot install a SIGBUS handler: %s", strerror(e));
	return st_errf(why, -ENOSPC, "too many mappings");
}

void sigbus_unregister(int id)
{
	if (id < 0 || id >= SIGBUS_MAX)
		return;
	pthread_mutex_lock(&bus_mu);
	atomic_store(&bus_maps[id].base, 0);
	pthread_mutex_unlock(&bus_mu);
}

uint64_t sigbus_faults(int id, uint64_t *first_off)
{
	if (id < 0 || id >= SIGBUS_MAX)
		return 0;
	uint64_t n = atomic_load(&bus_maps[id].faults);
	if (first_off)
		*first_off = atomic_load(&bus_maps[id].first_off);
	return n;
}

void sigbus_clear(int id)
{
	if (id < 0 || id >= SIGBUS_MAX)
		return;
	atomic_store(&bus_maps[id].first_off, UINT64_MAX);
	atomic_store(&bus_maps[id].faults, 0);
}

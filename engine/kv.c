/* kv.c: see kv.h. */
#include "engine/kv.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/types.h"

size_t kv_bytes_needed(uint32_t type, uint32_t n_layer, uint32_t n_ctx, uint32_t n_slots,
		       uint32_t kv_dim)
{
	size_t elem = type == ST_F16 ? 2 : 4;
	return 2 * (size_t)n_slots * n_layer * n_ctx * kv_dim * elem;
}

int kv_create(uint32_t type, uint32_t n_layer, uint32_t n_ctx, uint32_t n_slots, uint32_t kv_dim,
	      struct kv_cache **out, struct st_err *err)
{
	struct kv_cache *kv;

	*out = NULL;
	if (type != ST_F32 && type != ST_F16)
		return st_errf(err, -EINVAL, "KV cache type %s is not supported (f32 or f16)",
			       st_type_name(type));
	if (n_layer == 0 || n_ctx == 0 || n_slots == 0 || kv_dim == 0)
		return st_errf(err, -EINVAL, "KV cache dimensions must be positive");
	kv = calloc(1, sizeof *kv);
	if (!kv || !(kv->link = calloc(n_slots, sizeof *kv->link))) {
		free(kv);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	kv->type = type;
	kv->n_layer = n_layer;
	kv->n_ctx = n_ctx;
	kv->n_slots = n_slots;
	kv->kv_dim = kv_dim;
	kv->row_bytes = (size_t)kv_dim * (type == ST_F16 ? 2 : 4);
	kv->bytes = kv_bytes_needed(type, n_layer, n_ctx, n_slots, kv_dim);
	/* One reservation for K and V; pages are backed only when written. */
	void *p = mmap(NULL, kv->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		size_t mib = kv->bytes >> 20;
		free(kv->link);
		free(kv);
		return st_errf(err, -e, "cannot reserve %zu MiB for the KV cache", mib);
	}
	kv->k = p;
	kv->v = kv->k + kv->bytes / 2;
	*out = kv;
	return 0;
}

void kv_free(struct kv_cache *kv)
{
	if (!kv)
		return;
	munmap(kv->k, kv->bytes);
	free(kv->link);
	free(kv);
}

void kv_slot_discard(struct kv_cache *kv, uint32_t slot)
{
	size_t slot_bytes = (size_t)kv->n_layer * kv->n_ctx * kv->row_bytes;
	long page = sysconf(_SC_PAGESIZE);
	kv->link[slot] = (struct kv_link){ 0, 0 };
	/* Only whole pages inside the slot can go; a few edge pages stay. */
	for (int half = 0; half < 2; half++) {
		uint8_t *base = (half ? kv->v : kv->k) + (size_t)slot * slot_bytes;
		uintptr_t begin = ((uintptr_t)base + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
		uintptr_t end = ((uintptr_t)base + slot_bytes) & ~((uintptr_t)page - 1);
		if (end > begin)
			madvise((void *)begin, end - begin, MADV_DONTNEED);
	}
}

int kv_slot_link(struct kv_cache *kv, uint32_t dst, uint32_t src, uint32_t n)
{
	if (dst >= kv->n_slots || src >= kv->n_slots || dst == src || n > kv->n_ctx ||
	    kv->link[src].n > 0)
		return -EINVAL;
	kv->link[dst] = (struct kv_link){ src, n };
	return 0;
}

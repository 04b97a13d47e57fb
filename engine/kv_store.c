/* kv_store.c: see kv_store.h. The header of a stored block, little-endian as
 * the machine writes it (a store is not meant to move between machines; one
 * that does fails the magic or a checksum and is left alone):
 *
 *   off  size  field
 *     0     8  magic "STRATAKV"
 *     8     4  version (1)
 *    12     4  header bytes (4096)
 *    16    32  model: size u64, mtime_ns i64, meta_hash u64, reserved u64
 *    48    24  geometry: type u32, n_layer u32, kv_dim u32, block_pos u32, block_bytes u64
 *    72    24  block: hash u64, parent u64, depth u32, reserved u32
 *    96     8  data checksum (of block_bytes bytes)
 *   104  1024  model path, NUL-padded
 *  1128     *  tokens: block_pos int32
 *  4088     8  header checksum (FNV-1a of bytes 0..4088)
 */
#define _GNU_SOURCE
#include "engine/kv_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"

#define KV_MAGIC "STRATAKV"
#define KV_VERSION 1u
#define OFF_PATH 104u
#define OFF_TOKENS 1128u
#define OFF_HSUM (KV_STORE_HEADER - 8u)
/* Most positions per block a header has room for. */
#define KV_MAX_BLOCK_POS ((OFF_HSUM - OFF_TOKENS) / 4u)
/* statfs f_type of tmpfs (linux/magic.h) */
#define KV_TMPFS_MAGIC 0x01021994

struct kv_store {
	char *dir;		  /* NULL: nothing persists */
	int dir_fd;		  /* -1 without a directory */
	struct kv_model_key key;
	struct kv_geometry geo;
	uint64_t frame_bytes;	  /* block data as stored: block_bytes rounded up to 4096 */
	bool direct;		  /* O_DIRECT works here */
	int swap_fd;
	uint32_t *swap_free;	  /* a stack of free slots below swap_top */
	uint32_t n_swap_free, cap_swap_free, swap_top, swap_used;
};

int kv_model_key_of(int fd, const char *path, const void *meta, uint64_t meta_bytes,
		    struct kv_model_key *out, struct st_err *err)
{
	struct stat st;
	memset(out, 0, sizeof *out);
	if (fstat(fd, &st) != 0)
		return st_errf(err, -errno, "%s: %s", path, strerror(errno));
	out->size = (uint64_t)st.st_size;
	out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	out->meta_hash = hash_fnv1a64(HASH_FNV1A64_INIT, meta, meta_bytes);
	snprintf(out->path, sizeof out->path, "%s", path);
	return 0;
}

/* ---- checksums ---- */

/* FNV-1a over 8-byte words in four lanes (about 8 GB/s where the byte-wise
 * one does 1): a block of a 40-billion-parameter model is 3 MiB. n is a
 * multiple of 8 (a block's rows always are: 32 rows of whole bytes). */
static uint64_t data_sum(const void *p, uint64_t n)
{
	const uint64_t prime = 0x100000001b3ull;
	uint64_t h[4] = { HASH_FNV1A64_INIT, HASH_FNV1A64_INIT ^ 1, HASH_FNV1A64_INIT ^ 2,
			  HASH_FNV1A64_INIT ^ 3 };
	const unsigned char *b = p;
	uint64_t i = 0, w;
	for (; i + 32 <= n; i += 32)
		for (int l = 0; l < 4; l++) {
			memcpy(&w, b + i + 8 * l, 8);
			h[l] = (h[l] ^ w) * prime;
		}
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		h[0] = (h[0] ^ w) * prime;
	}
	return hash_fnv1a64(HASH_FNV1A64_INIT, h, sizeof h);
}

/* ---- headers ---- */

static void put64(unsigned char *h, size_t off, uint64_t v)
{
	memcpy(h + off, &v, 8);
}

static void put32(unsigned char *h, size_t off, uint32_t v)
{
	memcpy(h + off, &v, 4);
}

static uint64_t get64(const unsigned char *h, size_t off)
{
	uint64_t v;
	memcpy(&v, h + off, 8);
	return v;
}

static uint32_t get32(const unsigned char *h, size_t off)
{
	uint32_t v;
	memcpy(&v, h + off, 4);
	return v;
}

static void header_encode(const struct kv_store *s, const struct kv_store_block *b,
			  uint64_t data_checksum, unsigned char *h)
{
	memset(h, 0, KV_STORE_HEADER);
	memcpy(h, KV_MAGIC, 8);
	put32(h, 8, KV_VERSION);
	put32(h, 12, KV_STORE_HEADER);
	put64(h, 16, s->key.size);
	put64(h, 24, (uint64_t)s->key.mtime_ns);
	put64(h, 32, s->key.meta_hash);
	put32(h, 48, s->geo.type);
	put32(h, 52, s->geo.n_layer);
	put32(h, 56, s->geo.kv_dim);
	put32(h, 60, s->geo.block_pos);
	put64(h, 64, s->geo.block_bytes);
	put64(h, 72, b->hash);
	put64(h, 80, b->parent);
	put32(h, 88, b->depth);
	put64(h, 96, data_checksum);
	memcpy(h + OFF_PATH, s->key.path, strnlen(s->key.path, sizeof s->key.path - 1));
	memcpy(h + OFF_TOKENS, b->tokens, (size_t)s->geo.block_pos * 4);
	put64(h, OFF_HSUM, hash_fnv1a64(HASH_FNV1A64_INIT, h, OFF_HSUM));
}

enum verdict { V_OURS, V_STALE, V_OTHER, V_BAD };

/* What a header says about its block, for this store. */
static enum verdict header_judge(const struct kv_store *s, const unsigned char *h)
{
	if (memcmp(h, KV_MAGIC, 8) != 0 || get32(h, 8) != KV_VERSION ||
	    get32(h, 12) != KV_STORE_HEADER ||
	    get64(h, OFF_HSUM) != hash_fnv1a64(HASH_FNV1A64_INIT, h, OFF_HSUM))
		return V_BAD;
	bool same_model = get64(h, 16) == s->key.size &&
			  (int64_t)get64(h, 24) == s->key.mtime_ns && get64(h, 32) == s->key.meta_hash;
	if (!same_model) {
		char path[sizeof s->key.path];
		memcpy(path, h + OFF_PATH, sizeof path - 1);
		path[sizeof path - 1] = '\0';
		return strcmp(path, s->key.path) == 0 ? V_STALE : V_OTHER;
	}
	if (get32(h, 48) != s->geo.type || get32(h, 52) != s->geo.n_layer ||
	    get32(h, 56) != s->geo.kv_dim || get32(h, 60) != s->geo.block_pos ||
	    get64(h, 64) != s->geo.block_bytes)
		return V_OTHER; /* the same model with another --kv-type: another run's */
	return V_OURS;
}

static void block_name(uint64_t hash, char *buf, size_t cap)
{
	snprintf(buf, cap, "%016" PRIx64 ".kvb", hash);
}

/* ---- opening: the directory, the swap file, the scan ---- */

/* A file for O_DIRECT if the filesystem allows it, else buffered. */
static int open_swap(struct kv_store *s, const char *where, struct st_err *err)
{
	int flags = O_RDWR | O_CLOEXEC;
	for (int direct = 1; direct >= 0; direct--) {
		int fd = open(where, O_TMPFILE | flags | (direct ? O_DIRECT : 0), 0600);
		if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == ENOENT)) {
			/* no O_TMPFILE here: a named file, unlinked at once */
			char tmpl[4200];
			snprintf(tmpl, sizeof tmpl, "%s/strata-kv-swap-XXXXXX", where);
			fd = mkostemp(tmpl, O_CLOEXEC | (direct ? O_DIRECT : 0));
			if (fd >= 0)
				unlink(tmpl);
		}
		if (fd >= 0) {
			s->swap_fd = fd;
			s->direct = direct;
			struct statfs fs;
			/* tmpfs is memory: a KV cache paged there frees none */
			if (fstatfs(fd, &fs) == 0 && fs.f_type == KV_TMPFS_MAGIC)
				log_warn("KV cache: %s is a tmpfs (memory): blocks paged there still take "
					 "memory; set --kv-cache-dir to a directory on a disk", where);
			return 0;
		}
		if (errno != EINVAL) /* EINVAL: no O_DIRECT on this filesystem */
			return st_errf(err, -errno, "%s: cannot create the KV cache's swap file: %s",
				       where, strerror(errno));
	}
	return st_errf(err, -EINVAL, "%s: cannot create the KV cache's swap file", where);
}

static int scan(struct kv_store *s, void (*found)(void *, const struct kv_store_block *),
		void *user, struct st_err *err)
{
	DIR *d = fdopendir(dup(s->dir_fd));
	if (!d)
		return st_errf(err, -errno, "%s: %s", s->dir, strerror(errno));
	unsigned char *h = NULL;
	if (posix_memalign((void **)&h, 4096, KV_STORE_HEADER) != 0) {
		closedir(d);
		return st_errf(err, -ENOMEM, "out of memory");
	}
	uint64_t n_ours = 0, n_stale = 0, n_other = 0, n_bad = 0, n_tmp = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0 &&
		    strncmp(de->d_name, "strata-kv-swap-", 15) != 0) {
			unlinkat(s->dir_fd, de->d_name, 0); /* an interrupted write */
			n_tmp++;
			continue;
		}
		if (len != 20 || strcmp(de->d_name + 16, ".kvb") != 0)
			continue;
		int fd = openat(s->dir_fd, de->d_name, O_RDONLY | O_CLOEXEC);
		struct stat st;
		enum verdict v = V_BAD;
		if (fd >= 0 && fstat(fd, &st) == 0 &&
		    pread(fd, h, KV_STORE_HEADER, 0) == (ssize_t)KV_STORE_HEADER) {
			v = header_judge(s, h);
			if (v == V_OURS && (uint64_t)st.st_size != KV_STORE_HEADER + s->frame_bytes)
				v = V_BAD;
			char want[32];
			block_name(get64(h, 72), want, sizeof want);
			if (v == V_OURS && strcmp(want, de->d_name) != 0)
				v = V_BAD;
		}
		if (fd >= 0)
			close(fd);
		switch (v) {
		case V_OURS: {
			struct kv_store_block b = { get64(h, 72), get64(h, 80), get32(h, 88),
						    (const int32_t *)(h + OFF_TOKENS) };
			found(user, &b);
			n_ours++;
			break;
		}
		case V_STALE:
			unlinkat(s->dir_fd, de->d_name, 0);
			n_stale++;
			break;
		case V_BAD:
			unlinkat(s->dir_fd, de->d_name, 0);
			n_bad++;
			break;
		case V_OTHER:
			n_other++;
			break;
		}
	}
	closedir(d);
	free(h);
	log_info("KV cache %s: %" PRIu64 " blocks of this model found (%.1f MiB)", s->dir, n_ours,
		 (double)(n_ours * s->frame_bytes) / (1 << 20));
	if (n_stale)
		log_notice("KV cache %s: %" PRIu64 " blocks were made from an earlier version of %s "
			   "(its size, modification time or metadata differ): ignored and removed",
			   s->dir, n_stale, s->key.path);
	if (n_other)
		log_info("KV cache %s: %" PRIu64 " blocks of other models or another --kv-type left "
			 "alone", s->dir, n_other);
	if (n_bad || n_tmp)
		log_notice("KV cache %s: %" PRIu64 " damaged blocks and %" PRIu64 " unfinished writes "
			   "removed", s->dir, n_bad, n_tmp);
	return 0;
}

int kv_store_open(const char *dir, const struct kv_model_key *key, const struct kv_geometry *g,
		  void (*found)(void *user, const struct kv_store_block *b), void *user,
		  struct kv_store **out, struct st_err *err)
{
	struct kv_store *s = calloc(1, sizeof *s);
	int rc;
	*out = NULL;
	if (!s)
		return st_errf(err, -ENOMEM, "out of memory");
	s->dir_fd = -1;
	s->swap_fd = -1;
	s->key = *key;
	s->geo = *g;
	s->frame_bytes = (g->block_bytes + KV_STORE_HEADER - 1) / KV_STORE_HEADER * KV_STORE_HEADER;
	if (g->block_pos == 0 || g->block_pos > KV_MAX_BLOCK_POS || g->block_bytes % 8 != 0) {
		rc = st_errf(err, -EINVAL, "KV cache: blocks of %u positions (%" PRIu64 " bytes) "
			     "cannot be stored", g->block_pos, g->block_bytes);
		goto fail;
	}
	const char *where = dir;
	if (dir) {
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			rc = st_errf(err, -errno, "--kv-cache-dir %s: cannot create it: %s", dir,
				     strerror(errno));
			goto fail;
		}
		s->dir = strdup(dir);
		s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (!s->dir || s->dir_fd < 0) {
			rc = st_errf(err, s->dir ? -errno : -ENOMEM, "--kv-cache-dir %s: %s", dir,
				     s->dir ? strerror(errno) : "out of memory");
			goto fail;
		}
	} else {
		where = getenv("TMPDIR");
		if (!where || !*where)
			where = "/var/tmp";
	}
	rc = open_swap(s, where, err);
	if (rc < 0)
		goto fail;
	if (s->dir && (rc = scan(s, found, user, err)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	kv_store_close(s);
	return rc;
}

void kv_store_set_key(struct kv_store *s, const struct kv_model_key *key)
{
	s->key = *key;
}

void kv_store_close(struct kv_store *s)
{
	if (!s)
		return;
	if (s->swap_fd >= 0)
		close(s->swap_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	free(s->swap_free);
	free(s->dir);
	free(s);
}

bool kv_store_persistent(const struct kv_store *s)
{
	return s->dir != NULL;
}

uint64_t kv_store_frame_bytes(const struct kv_store *s)
{
	return s->frame_bytes;
}

bool kv_store_direct(const struct kv_store *s)
{
	return s->direct;
}

/* ---- the swap file ---- */

int64_t kv_store_swap_alloc(struct kv_store *s)
{
	if (s->n_swap_free > 0) {
		s->swap_used++;
		return s->swap_free[--s->n_swap_free];
	}
	if (s->swap_top == UINT32_MAX)
		return -ENOSPC;
	s->swap_used++;
	return s->swap_top++;
}

void kv_store_swap_free(struct kv_store *s, uint32_t slot)
{
	if (s->n_swap_free == s->cap_swap_free) {
		uint32_t cap = s->cap_swap_free ? s->cap_swap_free * 2 : 64;
		uint32_t *p = realloc(s->swap_free, cap * sizeof *p);
		if (!p) {
			s->swap_used--;
			return; /* the slot is lost until the process ends: a few MiB of disk */
		}
		s->swap_free = p;
		s->cap_swap_free = cap;
	}
	s->swap_free[s->n_swap_free++] = slot;
	s->swap_used--;
	/* give the disk back: a free slot holds nothing worth keeping */
	fallocate(s->swap_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)kv_store_swap_off(s, slot), (off_t)s->frame_bytes);
}

int kv_store_swap_fd(const struct kv_store *s)
{
	return s->swap_fd;
}

uint64_t kv_store_swap_off(const struct kv_store *s, uint32_t slot)
{
	return (uint64_t)slot * s->frame_bytes;
}

uint32_t kv_store_swap_used(const struct kv_store *s)
{
	return s->swap_used;
}

/* ---- the store ---- */

int kv_store_put_begin(struct kv_store *s, const struct kv_store_block *b, const void *data,
		       void *header, int *fd, struct st_err *err)
{
	char name[64];
	*fd = -1;
	if (!s->dir)
		return st_errf(err, -EINVAL, "the KV cache has no directory");
	snprintf(name, sizeof name, "%016" PRIx64 ".%d.tmp", b->hash, (int)getpid());
	*fd = openat(s->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC |
				      (s->direct ? O_DIRECT : 0), 0600);
	if (*fd < 0)
		return st_errf(err, -errno, "%s/%s: %s", s->dir, name, strerror(errno));
	header_encode(s, b, data_sum(data, s->geo.block_bytes), header);
	return 0;
}

int kv_store_put_end(struct kv_store *s, const struct kv_store_block *b, int fd, bool ok,
		     struct st_err *err)
{
	char tmp[64], name[32];
	int rc = 0;
	snprintf(tmp, sizeof tmp, "%016" PRIx64 ".%d.tmp", b->hash, (int)getpid());
	block_name(b->hash, name, sizeof name);
	if (fd >= 0)
		close(fd);
	if (ok && renameat(s->dir_fd, tmp, s->dir_fd, name) != 0)
		rc = st_errf(err, -errno, "%s/%s: %s", s->dir, name, strerror(errno));
	if (!ok || rc < 0)
		unlinkat(s->dir_fd, tmp, 0);
	return rc;
}

int kv_store_get_begin(struct kv_store *s, uint64_t hash, int *fd, uint64_t *sum,
		       struct st_err *err)
{
	char name[32];
	unsigned char *h = NULL;
	int rc = 0;
	block_name(hash, name, sizeof name);
	*fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | (s->direct ? O_DIRECT : 0));
	if (*fd < 0)
		return st_errf(err, -errno, "%s/%s: %s", s->dir, name, strerror(errno));
	if (posix_memalign((void **)&h, 4096, KV_STORE_HEADER) != 0) {
		rc = st_errf(err, -ENOMEM, "out of memory");
	} else if (pread(*fd, h, KV_STORE_HEADER, 0) != (ssize_t)KV_STORE_HEADER ||
		   header_judge(s, h) == V_BAD || get64(h, 72) != hash) {
		/* a block the cache holds: its model key may be an earlier one (kv_rekey) */
		rc = st_errf(err, -EBADMSG, "%s/%s: the header changed since the cache was opened",
			     s->dir, name);
	} else {
		*sum = get64(h, 96);
	}
	free(h);
	if (rc < 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

int kv_store_check(const struct kv_store *s, uint64_t hash, const void *data, uint64_t sum,
		   struct st_err *err)
{
	if (data_sum(data, s->geo.block_bytes) == sum)
		return 0;
	return st_errf(err, -EBADMSG, "%s/%016" PRIx64 ".kvb: the block's bytes do not match "
		       "its checksum", s->dir, hash);
}

void kv_store_remove(struct kv_store *s, uint64_t hash)
{
	char name[32];
	if (!s->dir)
		return;
	block_name(hash, name, sizeof name);
	unlinkat(s->dir_fd, name, 0);
}

/* store/pool.c: opening and closing a pool, its segments and statistics.
 *
 * Open: superblock (store/super.c), newest valid checkpoint (store/ckpt.c),
 * replay of the log after it (store/log.c), then the free-segment list is
 * whatever nothing references. A file or device whose first 8 KiB are all
 * zeros is an empty pool to format; anything else that is not a sluice pool
 * is refused and left untouched.
 */
#include <errno.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

uint32_t store_crc(const void *buf, size_t len)
{
	uint32_t crc = 0xffffffffu;

	while (len > 0) {       /* crc32_iscsi takes an int length */
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)buf, n, crc);
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return crc;
}

void *store_alloc_aligned(size_t bytes)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, bytes ? bytes : 4096))
		return NULL;
	memset(p, 0, bytes);
	return p;
}

void store_pool_logf(struct store_pool *p, enum store_log_level lvl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!p->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->log(p->log_arg, lvl, msg);
}

/* D5: sticky. An fsync that failed is never retried and trusted. */
void store_pool_fail(struct store_pool *p, int err, const char *what)
{
	if (p->failed)
		return;
	p->failed = true;
	store_pool_logf(p, STORE_LOG_ERR, "pool FAILED: %s: %s; nothing more is "
	                "acknowledged, restart to recover from the log", what,
	                store_strerror(err));
}

uint64_t store_seg_sector(const struct store_pool *p, uint32_t seg)
{
	return (FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes) / STORE_SECTOR;
}

bool store_seg_of_sector(const struct store_pool *p, uint64_t pba, uint32_t *seg)
{
	uint64_t off = pba * STORE_SECTOR;

	if (off < FMT_DATA_OFF)
		return false;
	off = (off - FMT_DATA_OFF) / p->seg_bytes;
	if (off >= p->nsegs)
		return false;
	*seg = (uint32_t)off;
	return true;
}

int store_seg_alloc(struct store_pool *p, enum seg_state state, uint32_t *out)
{
	uint32_t start = p->cur_seg < p->nsegs ? p->cur_seg : 0;

	if (p->free_segs == 0)
		return -ENOSPC;
	/* Scan forward from the log head, so the log moves on sequentially. */
	for (uint32_t i = 0; i < p->nsegs; i++) {
		uint32_t s = (start + i) % p->nsegs;

		if (p->segs[s].state == SEG_FREE) {
			p->segs[s].state = (uint8_t)state;
			p->segs[s].live = 0;
			p->segs[s].last_seq = 0;
			p->segs[s].dead_at_capture = 0;
			p->segs[s].cold = 0;
			p->segs[s].pinned = 0;
			p->segs[s].nrecs = 0;
			p->free_segs--;
			*out = s;
			return 0;
		}
	}
	return -ENOSPC;
}

void store_segs_free(struct store_pool *p)
{
	for (uint32_t i = 0; p->segs && i < p->nsegs; i++)
		free(p->segs[i].recs);
	free(p->segs);
	p->segs = NULL;
}

void store_seg_release(struct store_pool *p, uint32_t seg)
{
	if (p->segs[seg].state == SEG_FREE)
		return;
	p->segs[seg].state = SEG_FREE;
	p->segs[seg].live = 0;
	p->segs[seg].dead_at_capture = 0;
	p->segs[seg].nrecs = 0;
	p->free_segs++;
}

/* Notes that record seq has data in segment g (the cleaner's index). */
static void seg_note_record(struct seg_info *g, uint64_t seq)
{
	if (g->nrecs && g->recs[g->nrecs - 1] == seq)
		return;
	if (g->nrecs == g->recs_cap) {
		uint32_t cap = g->recs_cap ? g->recs_cap * 2 : 16;
		uint64_t *v = realloc(g->recs, cap * sizeof(*v));

		if (!v)
			return;         /* the cleaner skips this segment's record */
		g->recs = v;
		g->recs_cap = cap;
	}
	g->recs[g->nrecs++] = seq;
}

/* addr_live_fn: [pba, pba+len) became referenced (sign > 0) or not. */
void store_seg_live_cb(void *arg, uint64_t la, uint64_t pba, uint64_t len, int sign)
{
	struct store_pool *p = arg;
	struct seg_info *g;
	uint32_t s;

	if (!store_seg_of_sector(p, pba, &s))
		return;
	g = &p->segs[s];
	if (sign > 0) {
		g->live += len;
		seg_note_record(g, la >> ADDR_OFF_BITS);
	} else {
		g->live -= len <= g->live ? len : g->live;
	}
}

/* addr_pba_ok_fn: a range of data that lies inside one segment. */
bool store_pba_ok(void *arg, uint64_t pba, uint64_t len)
{
	const struct store_pool *p = arg;
	uint32_t s, e;

	return len > 0 && store_seg_of_sector(p, pba, &s) &&
	       store_seg_of_sector(p, pba + len - 1, &e) && s == e;
}

/* Segments a checkpoint of the current maps needs, plus one of slack. */
uint32_t store_ckpt_reserve(const struct store_pool *p)
{
	uint64_t bytes = sizeof(struct fmt_ckpt_hdr) + p->meta_bytes +
	                 (uint64_t)(p->nvols + p->nsnaps) * sizeof(struct fmt_ckpt_vol) +
	                 p->map_nodes * MAP_NODE_BYTES + store_addr_save_bytes(&p->addr);

	return (uint32_t)(bytes / p->seg_bytes) + 2;
}

static bool block_is_zero(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static int pool_open_backend(struct store_pool *p, const struct store_pool_opts *o)
{
	if (o->backend) {
		p->be = o->backend;
		return 0;
	}
	if (!o->path)
		return -EINVAL;
	/* with our own read cache, reads skip the page cache: no block twice in RAM */
	return store_backend_file_open(o->path, o->create_bytes, o->engine, o->read_only,
	                               store_cache_on(&p->cache), o->log, o->log_arg, &p->be);
}

/* Creates a pool on an all-zero backend; refuses anything else that is not
 * a pool. Order: first checkpoint, then superblock (see store_super_write). */
static int pool_create(struct store_pool *p, const struct store_pool_opts *o)
{
	uint8_t *head;
	int rc;

	if (p->be->size < FMT_DATA_OFF) {
		store_pool_logf(p, STORE_LOG_ERR, "%llu bytes is too small to be a pool",
		                (unsigned long long)p->be->size);
		return STORE_ENOTPOOL;
	}
	head = store_alloc_aligned(8192);
	if (!head)
		return -ENOMEM;
	rc = p->be->ops->read_sync(p->be, head, 8192, 0);
	if (rc == 0 && !block_is_zero(head, 8192))
		rc = STORE_ENOTPOOL;
	free(head);
	if (rc)
		return rc;
	if (o->read_only || o->create_bytes == 0)
		return STORE_ENOTPOOL;
	rc = store_super_init(p, o->create_bytes, o->segment_bytes);
	if (rc)
		return rc;
	p->segs = calloc(p->nsegs, sizeof(*p->segs));
	if (!p->segs)
		return -ENOMEM;
	rc = store_ckpt_format(p);
	if (rc == 0)
		rc = store_super_write(p);
	if (rc == 0)
		store_pool_logf(p, STORE_LOG_INFO, "created a pool of %u segments of %u KiB",
		                p->nsegs, p->seg_bytes >> 10);
	return rc;
}

static int pool_load(struct store_pool *p, const struct store_pool_opts *o)
{
	struct fmt_root *root;
	int rc = store_super_read(p);

	if (rc == STORE_ENOTPOOL)
		return pool_create(p, o);
	if (rc)
		return rc;
	p->segs = calloc(p->nsegs, sizeof(*p->segs));
	root = store_alloc_aligned(4096);
	if (!p->segs || !root) {
		free(root);
		return -ENOMEM;
	}
	rc = store_ckpt_load(p, root);
	if (rc == 0)
		rc = store_log_replay(p, root);
	free(root);
	return rc;
}

int store_pool_open(struct ev_loop *loop, const struct store_pool_opts *o,
                    struct store_pool **out)
{
	struct store_pool *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->log = o->log;
	p->log_arg = o->log_arg;
	p->read_only = o->read_only;
	p->ckpt_secs = o->checkpoint_secs ? o->checkpoint_secs : 30;
	p->ckpt_log_bytes = o->checkpoint_log_bytes ? o->checkpoint_log_bytes : (1ull << 30);
	TAILQ_INIT(&p->vols);
	if (store_addr_init(&p->addr, store_seg_live_cb, p)) {
		free(p);
		return -ENOMEM;
	}
	STAILQ_INIT(&p->queue);
	STAILQ_INIT(&p->deferred);
	STAILQ_INIT(&p->ckpt_waiters);
	p->next_vol_id = 1;
	/* a cache is worth having, not worth refusing to serve for */
	if (store_cache_init(&p->cache, o->read_cache_bytes))
		store_pool_logf(p, STORE_LOG_WARN, "no memory for a read cache of %llu "
		                "bytes: reads go through the page cache",
		                (unsigned long long)o->read_cache_bytes);
	rc = pool_open_backend(p, o);
	if (rc)
		goto fail_free;
	rc = pool_load(p, o);
	if (rc)
		goto fail;
	/* a small pool cannot hold a long log tail: the cleaner may not take
	 * segments the next replay needs */
	if (!o->checkpoint_log_bytes && p->ckpt_log_bytes > (uint64_t)p->nsegs * p->seg_bytes / 8)
		p->ckpt_log_bytes = (uint64_t)p->nsegs * p->seg_bytes / 8;
	rc = p->be->ops->start(p->be, loop);
	if (rc)
		goto fail;
	rc = store_clean_init(p);
	if (rc == 0)
		rc = store_log_start(p);
	if (rc == 0)
		rc = store_dedup_open(p, o->dedup);
	if (rc)
		goto fail;
	*out = p;
	return 0;
fail:
	while (!TAILQ_EMPTY(&p->vols))
		store_vol_free(TAILQ_FIRST(&p->vols));
	p->be->ops->destroy(p->be);
	store_meta_free_all(p);
	store_clean_fini(p);
	store_dedup_close(p);
fail_free:
	store_cache_fini(&p->cache);
	store_addr_fini(&p->addr);
	free(p->by_id);
	store_segs_free(p);
	free(p);
	return rc;
}

static void pool_free(struct store_pool *p)
{
	store_done_fn *done = p->close_done;
	void *arg = p->close_arg;

	store_log_stop(p);
	while (!TAILQ_EMPTY(&p->vols))
		store_vol_free(TAILQ_FIRST(&p->vols));
	p->be->ops->destroy(p->be);
	store_ckpt_abandon(p);
	store_meta_free_all(p);
	store_clean_fini(p);
	store_dedup_close(p);
	store_addr_fini(&p->addr);
	store_cache_fini(&p->cache);
	free(p->by_id);
	store_segs_free(p);
	free(p);
	if (done)
		done(arg, 0);
}

static void pool_close_quiet(void *arg)
{
	pool_free(arg);
}

/* The cleaner may still have a read or a write in flight: it goes first. */
static void pool_close_later(int revents, void *arg)
{
	struct store_pool *p = arg;

	(void)revents;
	store_clean_quiesce(p, pool_close_quiet, p);
}

/* The checkpoint completes from inside an engine's callback; the engine is
 * freed on the next loop iteration, after that callback has returned. */
static void pool_close_cb(void *arg, int err)
{
	struct store_pool *p = arg;

	if (err && !p->failed)
		store_pool_logf(p, STORE_LOG_WARN, "final checkpoint failed: %s",
		                store_strerror(err));
	p->final_ckpt_done = true;
	ev_once(p->loop, -1, 0, 0, pool_close_later, p);
}

void store_pool_close(struct store_pool *p, store_done_fn *done, void *arg)
{
	p->closing = true;
	p->close_done = done;
	p->close_arg = arg;
	if (p->failed || p->read_only) {
		ev_once(p->loop, -1, 0, 0, pool_close_later, p);
		return;
	}
	/* The checkpoint waits behind every queued request: that is the drain. */
	store_pool_checkpoint(p, pool_close_cb, p);
}

void store_pool_checkpoint(struct store_pool *p, store_done_fn *done, void *arg)
{
	struct store_req *r = calloc(1, sizeof(*r));

	if (!r) {               /* nothing to defer with: the one inline call */
		done(arg, -ENOMEM);
		return;
	}
	r->type = REQ_FLUSH;
	r->done = done;
	r->arg = arg;
	if (p->read_only || p->failed) {
		store_req_defer(p, r, p->failed ? STORE_EFAILED : STORE_EREADONLY);
		return;
	}
	store_ckpt_request(p, r);
}

void store_pool_get_stats(const struct store_pool *p, struct store_pool_stats *out)
{
	uint64_t live = 0, logical = 0;
	const struct store_vol *v;

	*out = p->st;
	memcpy(out->uuid, p->uuid, sizeof(out->uuid));
	out->engine = p->be->engine ? p->be->engine : p->be->ops->name;
	out->segment_bytes = p->seg_bytes;
	out->segments = p->nsegs;
	out->free_segments = p->free_segs;
	out->capacity_bytes = (uint64_t)p->nsegs * p->seg_bytes;
	out->free_bytes = (uint64_t)p->free_segs * p->seg_bytes;
	for (uint32_t i = 0; i < p->nsegs; i++)
		live += p->segs[i].live;
	out->used_bytes = live * STORE_SECTOR;
	out->map_bytes = p->map_nodes * MAP_NODE_BYTES + store_addr_save_bytes(&p->addr);
	out->map_extents = 0;
	TAILQ_FOREACH(v, &p->vols, link) {
		if (v->snapshot)
			continue;
		logical += v->sectors * STORE_SECTOR;
		out->map_extents += v->map.extents;
	}
	out->logical_bytes = logical;
	out->volumes = p->nvols;
	out->snapshots = p->nsnaps;
	out->cleaning = store_clean_active(p);
	out->failed = p->failed;
	out->read_cache_capacity = p->cache.capacity;
	out->read_cache_bytes = store_cache_bytes(&p->cache);
	out->read_cache_hits = p->cache.hits;
	out->read_cache_misses = p->cache.misses;
}

const char *store_strerror(int err)
{
	switch (err) {
	case 0:               return "success";
	case STORE_ECORRUPT:  return "pool metadata is corrupt (checksum or structure)";
	case STORE_EVERSION:  return "pool format version not supported by this build";
	case STORE_EFAILED:   return "pool failed after a device write or flush error";
	case STORE_ENOTPOOL:  return "not a sluice pool (and not empty, so left untouched)";
	case STORE_EREADONLY: return "pool is open read-only";
	case -EBUSY:          return "busy (in use)";
	case -ENOSPC:         return "out of space in the pool";
	case -ERANGE:         return "range beyond the end of the volume";
	case -EROFS:          return "a snapshot is read-only";
	case -ENOTEMPTY:      return "the volume has snapshots; delete them first";
	default:              return err < 0 && err > -4096 ? strerror(-err) : "unknown error";
	}
}

const char *store_engine_name(enum store_engine e)
{
	switch (e) {
	case STORE_ENGINE_URING:   return "io_uring";
	case STORE_ENGINE_THREADS: return "threads";
	default:                   return "auto";
	}
}

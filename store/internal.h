/* store/internal.h: the pool's in-memory state, shared by the files of
 * store/ (private: nothing outside store/ includes it).
 *
 * Durability invariants (tests cite them by number):
 *  D1  A write-through request completes only after the record holding its
 *      data and mapping has been written and the device flushed.
 *  D2  At most two batches are in flight, and the second only when both
 *      flush: each is durable by its own flush. Batches complete, apply and
 *      acknowledge strictly in seq order, so nothing is acknowledged while
 *      an earlier record may still be lost. A batch without a flush
 *      (write-back) is always alone in flight, so the next flush covers it.
 *  D3  Maps change only when a record's write has completed, in seq order, so
 *      a read never sees data that is not on the device.
 *  D4  A checkpoint captures the maps with no batch in flight, at log position
 *      P; its root is written only after its payload is durable, and the
 *      segments it frees are those that were dead (no live data, every record
 *      before P) when it was captured.
 *  D5  A failed device write or flush makes the pool FAILED: nothing after it
 *      is acknowledged; reopening replays the log.
 */
#ifndef SLUICE_STORE_INTERNAL_H
#define SLUICE_STORE_INTERNAL_H

#include <ev.h>
#include <stdarg.h>
#include <sys/queue.h>

#include "store/addr.h"
#include "store/backend.h"
#include "store/cache.h"
#include "store/format.h"
#include "store/map.h"
#include "store/store.h"

#define STORE_BATCH_MAX_BYTES   (8u << 20)  /* one record's data at most */
#define STORE_BATCH_MAX_ENTRIES 4096u
#define STORE_VOL_ID_MAX        (1u << 24)  /* volumes ever created in a pool */

enum seg_state { SEG_FREE, SEG_LOG, SEG_CKPT };

struct seg_info {
	uint64_t live;          /* sectors some map references (store/addr.c) */
	uint64_t last_seq;      /* newest record written into it */
	uint32_t readers;       /* reads in flight from it */
	uint8_t  state;
	uint8_t  dead_at_capture; /* a running checkpoint frees it when done */
	uint8_t  cold;          /* holds the cleaner's copies, not the log's chain */
	uint8_t  pinned;        /* the cleaner is filling it */
	uint64_t *recs;         /* seqs of records with live data here (may repeat
	                         * or be stale: the cleaner checks) */
	uint32_t nrecs, recs_cap;
};

enum vol_state { VOL_CREATING, VOL_ACTIVE, VOL_DELETING };

/* A volume, or a snapshot (read-only, named "vol@snap"): both are a map. */
struct store_vol {
	TAILQ_ENTRY(store_vol) link;    /* pool->vols, in name order */
	struct store_pool *pool;
	char              name[STORE_FULL_NAME_MAX + 1];
	uint32_t          id;
	uint64_t          sectors;
	bool              write_back;
	bool              snapshot;
	uint32_t          parent;       /* snapshot: its volume; clone: its snapshot */
	uint32_t          snaps;        /* a volume's snapshots, any state */
	uint64_t          created;      /* unix seconds */
	enum vol_state    state;
	uint32_t          handles;      /* store_vol_open() minus close() */
	uint32_t          inflight;     /* requests not yet completed */
	struct store_map  map;
};

enum req_type { REQ_WRITE, REQ_UNMAP, REQ_FLUSH, REQ_META, REQ_READ, REQ_COPY };

struct store_req {
	STAILQ_ENTRY(store_req) link;
	enum req_type      type;
	struct store_vol  *vol;
	uint64_t           lba, sectors;
	const struct iovec *iov;
	int                iovcnt;
	unsigned           flags;       /* STORE_WRITE_FUA */
	uint64_t           sealed;      /* sectors already placed in records */
	uint32_t           pieces;      /* records holding part of it, in flight */
	uint8_t            meta;        /* REQ_META: enum fmt_ent_type */
	uint8_t            meta_flags;
	char              *blob;        /* META_PUT/DEL: key, then value */
	uint32_t           key_len, value_len;
	struct dedup_req  *dd;          /* REQ_WRITE with inline dedup (store/dedup.c) */
	void              *data;        /* record data, whole sectors (names, copy source) */
	uint32_t           data_len;
	int                err;
	store_done_fn     *done;
	void              *arg;
};
STAILQ_HEAD(req_list, store_req);

struct batch_ent {
	struct store_req    *req;
	struct fmt_rec_entry e;
	uint64_t             pba;       /* sector address of a WRITE's data */
};

struct batch {
	void             *buf;          /* 4 KiB-aligned record image */
	size_t            buf_cap;
	struct batch_ent *ents;
	uint32_t          n;
	uint32_t          hdr_bytes, data_bytes;
	uint64_t          seq;
	uint32_t          seg;
	bool              flush;
	bool              has_record;
	bool              completed;    /* its I/O is done; waits for the one before */
	uint64_t          covers;       /* newest record durable once its flush is done */
	struct req_list   flushes;      /* REQ_FLUSH riding on this batch */
	struct store_bio  bio;
	struct iovec      iov;
};

struct ckpt;
struct store_cleaner;
struct store_dedup;

struct store_pool {
	struct ev_loop       *loop;
	struct store_backend *be;
	store_log_fn         *log;
	void                 *log_arg;
	bool                  read_only;
	bool                  failed;
	bool                  closing;

	/* superblock */
	uint8_t               uuid[16];
	uint32_t              seg_bytes;
	uint32_t              nsegs;
	uint64_t              pool_bytes;
	struct seg_info      *segs;
	uint32_t              free_segs;

	/* volumes and snapshots; their maps; where their data is */
	TAILQ_HEAD(, store_vol) vols;
	uint32_t              nvols, nsnaps;
	uint64_t              map_nodes;
	uint32_t              save_gen; /* of the last checkpoint's map save */
	struct store_addr     addr;
	uint32_t              next_vol_id;
	struct store_vol    **by_id;    /* index by volume id (ids are never reused) */
	uint32_t              by_id_cap;

	/* clients' metadata records, sorted by key */
	struct store_meta_ent *meta;
	uint32_t              nmeta, meta_cap;
	uint64_t              meta_bytes; /* their size in a checkpoint */

	/* log writer */
	uint64_t              last_seq; /* of the newest record written */
	uint64_t              flushed_seq; /* of the newest record a flush covered */
	bool                  ckpt_fell_back; /* opened from the older root */
	uint64_t              next_seq;
	uint32_t              cur_seg, cur_off, next_seg;
	struct req_list       queue;    /* waiting to be sealed into a record */
	struct batch          batch[2];
	uint32_t              inflight; /* batches submitted, not yet finished */
	uint32_t              head;     /* index of the oldest of them */
	bool                  dirty;    /* written records not yet flushed */
	ev_prepare            prepare;  /* group commit: seal before the loop sleeps */

	/* completions deferred so that no callback runs inside its submit */
	struct req_list       deferred;
	ev_idle               deferred_w;

	/* checkpoints */
	uint64_t              ckpt_gen;
	uint64_t              ckpt_seq; /* the durable checkpoint's log position */
	uint32_t              ckpt_segs[FMT_ROOT_SEGS_MAX];
	uint32_t              ckpt_nsegs;
	uint64_t              log_bytes_since_ckpt;
	uint32_t              ckpt_secs;
	uint64_t              ckpt_log_bytes;
	bool                  ckpt_wanted;
	struct ckpt          *ckpt;     /* in flight */
	struct store_map_freeze map_freeze; /* its view of the maps (store/ckpt.c) */
	struct req_list       ckpt_waiters;
	ev_timer              ckpt_timer;
	bool                  final_ckpt_done; /* closing: no checkpoint after it */
	store_done_fn        *close_done;
	void                 *close_arg;

	struct store_cleaner *cleaner;
	struct store_dedup   *dedup;    /* NULL: inline dedup off (store/dedup.c) */
	struct store_cache    cache;    /* reads, by log address (store/cache.h) */

	struct store_pool_stats st;
};

/* pool.c */
void store_pool_logf(struct store_pool *p, enum store_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void store_pool_fail(struct store_pool *p, int err, const char *what);
int  store_seg_alloc(struct store_pool *p, enum seg_state state, uint32_t *out);
void store_seg_release(struct store_pool *p, uint32_t seg);
void store_segs_free(struct store_pool *p);
uint64_t store_seg_sector(const struct store_pool *p, uint32_t seg);
bool store_seg_of_sector(const struct store_pool *p, uint64_t pba, uint32_t *seg);
void store_seg_live_cb(void *arg, uint64_t la, uint64_t pba, uint64_t len, int sign);
bool store_pba_ok(void *arg, uint64_t pba, uint64_t len);
uint32_t store_ckpt_reserve(const struct store_pool *p);
void *store_alloc_aligned(size_t bytes);
uint32_t store_crc(const void *buf, size_t len);

/* vol.c */
struct store_vol *store_vol_find(struct store_pool *p, const char *name);
struct store_vol *store_vol_by_id(struct store_pool *p, uint32_t id);
struct store_vol *store_vol_new(struct store_pool *p, const char *name, uint32_t id,
                                uint64_t sectors, bool write_back);
void store_vol_set_snapshot(struct store_vol *v, struct store_vol *of);
void store_vol_free(struct store_vol *v);
void store_req_complete(struct store_pool *p, struct store_req *r, int err);
void store_req_defer(struct store_pool *p, struct store_req *r, int err);
/* data: the record's data, data_sectors long; seq: the record's. */
int  store_vol_apply(struct store_pool *p, const struct fmt_rec_entry *e,
                     const char *data, uint64_t data_sectors, uint64_t seq,
                     uint64_t pba, bool replay);

size_t store_iov_bytes(const struct iovec *iov, int iovcnt);
void store_iov_to_buf(const struct iovec *iov, int iovcnt, size_t off, void *dst, size_t len);
void store_iov_from_buf(const struct iovec *iov, int iovcnt, size_t off, const void *src, size_t len);
void store_iov_zero(const struct iovec *iov, int iovcnt);

/* meta.c */
struct store_meta_ent {
	char     *key;              /* NUL-terminated; the value follows it */
	uint32_t  key_len, value_len;
};
bool store_meta_key_ok(const char *key, size_t len);
/* Applies a durable META_PUT (value != NULL) or META_DEL. */
int  store_meta_apply(struct store_pool *p, const char *key, size_t key_len,
                      const void *value, size_t value_len, bool put);
void store_meta_free_all(struct store_pool *p);
size_t store_meta_ckpt_bytes(const struct store_meta_ent *m);

/* log.c */
int  store_log_start(struct store_pool *p);
void store_log_stop(struct store_pool *p);
void store_log_enqueue(struct store_pool *p, struct store_req *r);
void store_log_kick(struct store_pool *p);
int  store_log_replay(struct store_pool *p, const struct fmt_root *root);
#define STORE_ANY_SEQ UINT64_MAX
int  store_rec_check_hdr(const struct store_pool *p, const struct fmt_rec_hdr *h,
                         uint32_t off, uint64_t prev_seq);
bool store_req_needs_flush(const struct store_req *r);

/* ckpt.c */
int  store_ckpt_load(struct store_pool *p, struct fmt_root *root);
void store_ckpt_start(struct store_pool *p);
int  store_ckpt_format(struct store_pool *p);
void store_ckpt_request(struct store_pool *p, struct store_req *waiter);
void store_ckpt_abandon(struct store_pool *p);
/* How much of the loop one slice of a checkpoint takes: time, and nodes
 * between looks at the clock (tests shrink them). */
extern uint64_t store_ckpt_slice_ns;
extern unsigned store_ckpt_slice_nodes;

/* clean.c */
int  store_clean_init(struct store_pool *p);
void store_clean_fini(struct store_pool *p);
/* Starts a cleaning step when free segments run low (called as the log
 * kicks). */
void store_clean_kick(struct store_pool *p);
bool store_clean_busy(const struct store_pool *p);
bool store_clean_active(const struct store_pool *p);
/* Reclaimable space exists: writes should wait for the cleaner, not fail. */
bool store_clean_can_reclaim(const struct store_pool *p);
/* Segments over the checkpoint's reserve under which writes wait for the
 * cleaner: its copies may take them all, and its MOVE record the reserve's
 * slack, so a step can always finish and give a segment back. */
#define STORE_CLEAN_RESERVE 3u
/* Applies a durable MOVE entry: data the cleaner copied is now there. */
int  store_clean_apply(struct store_pool *p, const struct fmt_rec_entry *e,
                       const char *data, uint64_t data_sectors);
/* Calls done once the cleaner has nothing in flight (pool close). */
void store_clean_quiesce(struct store_pool *p, void (*done)(void *), void *arg);

/* dedup.c: inline dedup of 4 KiB blocks, when the pool has it on */
int  store_dedup_open(struct store_pool *p, int want);
void store_dedup_close(struct store_pool *p);
/* Takes write r when it can dedup (4 KiB aligned, pool has it on): hashes
 * its blocks and queues it; blocks whose hash is known wait for a compare. */
bool store_dedup_write(struct store_pool *p, struct store_req *r);
/* r still compares: it waits at the queue's head, keeping the log's order. */
bool store_dedup_waiting(const struct store_req *r);
/* The 4 KiB blocks from sector off of r that reference data (a REF entry):
 * *la gets the first one's log address; 0 when off starts data to write. */
uint64_t store_dedup_refs(const struct store_req *r, uint64_t off, uint64_t *la);
/* Sectors from off of r that are data to write, up to the next reference. */
uint64_t store_dedup_data(const struct store_req *r, uint64_t off);
/* Entry e of r (WRITE or REF) was applied from record seq. */
void store_dedup_applied(struct store_pool *p, struct store_req *r,
                         const struct fmt_rec_entry *e, uint64_t seq);
void store_dedup_req_free(struct store_req *r);
/* Every sector of [la, la + sectors) is referenced by some map (a run
 * whose references fall to none leaves the address table at once). */
bool store_dedup_held(const struct store_pool *p, uint64_t la, uint64_t sectors);
/* The block hash; tests may swap it (a constant one forces collisions). */
extern uint64_t (*store_dedup_hash)(const void *block);
/* A REF entry's log address (format.h). */
static inline uint64_t fmt_ref_la(const struct fmt_rec_entry *e)
{
	return (uint64_t)e->reserved << 32 | e->data_off;
}

/* log.c: one more piece of r is done (an entry, or a block written again). */
void store_log_piece_done(struct store_pool *p, struct store_req *r, int err);

/* super.c */
int  store_super_read(struct store_pool *p);
int  store_super_init(struct store_pool *p, uint64_t bytes, uint32_t seg_bytes);
int  store_super_write(struct store_pool *p);

#endif

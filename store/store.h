/* store/store.h: the whole public interface of sluice's log-structured store.
 *
 * Every write of every volume is appended to one log on one backing file or
 * block device; concurrent writes are merged into one device write and one
 * flush (group commit). Volumes are thin: a range never written, or unmapped,
 * reads as zeros without touching the disk.
 *
 * Threading: the store is single-threaded. Call it only on the thread that
 * runs the loop given to store_pool_open(). Completion callbacks run on that
 * thread, exactly once, and never from inside the call that started the
 * operation (even when it fails at once).
 *
 * Errors are 0, a negative errno, or a negative STORE_E* code below -1000;
 * store_strerror() names them all. Volume addresses and lengths are in
 * 512-byte sectors; 4 KiB is the store's natural unit, but any sector-aligned
 * write is exact.
 *
 * The store knows nothing of iSCSI or HTTP; iscsi/ and mgmt/ are its clients.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ev_loop;
struct store_pool;      /* opaque: a pool on one backing file or device */
struct store_vol;       /* opaque: an open handle on a volume */
struct store_backend;   /* private (store/backend.h); tests supply their own */

enum {
	STORE_ECORRUPT  = -1001, /* on-disk bytes fail their magic or CRC */
	STORE_EVERSION  = -1002, /* pool format this binary does not know */
	STORE_EFAILED   = -1003, /* a device write or flush failed; reopen */
	STORE_ENOTPOOL  = -1004, /* the file or device holds no sluice pool */
	STORE_EREADONLY = -1005, /* pool opened read-only (fsck) */
};

#define STORE_SECTOR            512u
#define STORE_BLOCK             4096u
#define STORE_VOL_MAX_SECTORS   ((64ull << 40) / STORE_SECTOR)  /* 64 TiB */
#define STORE_NAME_MAX          128     /* bytes of a volume name, no NUL */
#define STORE_FULL_NAME_MAX     (2 * STORE_NAME_MAX + 1)  /* "vol@snap" */

/* store_vol_write() flags */
#define STORE_WRITE_FUA         0x1u    /* durable before done(), even write-back */

typedef void store_done_fn(void *arg, int err);

enum store_log_level { STORE_LOG_ERR, STORE_LOG_WARN, STORE_LOG_INFO, STORE_LOG_DEBUG };
typedef void store_log_fn(void *arg, enum store_log_level level, const char *msg);

enum store_engine {
	STORE_ENGINE_AUTO,      /* io_uring where the kernel allows it, else threads */
	STORE_ENGINE_URING,     /* io_uring; open fails if unavailable */
	STORE_ENGINE_THREADS,   /* worker threads doing preadv/pwritev/fdatasync */
};

struct store_pool_opts {
	const char     *path;            /* backing file (created sparse) or block device */
	uint64_t        create_bytes;    /* create a pool of this size if none is there; 0: must exist */
	uint32_t        segment_bytes;   /* at creation; 0: 16 MiB */
	enum store_engine engine;
	int             dedup;           /* inline dedup of 4 KiB blocks: 1 on, -1 off (either
	                                  * is kept in the pool), 0 as the pool has it (new: off) */
	bool            read_only;       /* recover in memory, never write (fsck) */
	uint32_t        checkpoint_secs; /* 0: 30 */
	uint64_t        checkpoint_log_bytes; /* log written that forces a checkpoint; 0: 1 GiB */
	store_log_fn   *log;             /* may be NULL */
	void           *log_arg;
	struct store_backend *backend;   /* tests: use this instead of path; the pool takes ownership */
	uint64_t        read_cache_bytes; /* bound of the read cache, its index included;
	                                  * 0: none, reads go through the kernel's page cache */
};

struct store_vol_info {
	char     name[STORE_FULL_NAME_MAX + 1]; /* a snapshot's is "vol@snap" */
	uint32_t id;                     /* unique in the pool, never reused */
	uint64_t sectors;                /* logical size */
	bool     write_back;             /* WCE=1: flush and FUA make writes durable */
	bool     snapshot;               /* read-only point-in-time image */
	char     origin[STORE_FULL_NAME_MAX + 1]; /* a clone's snapshot, a snapshot's
	                                  * volume; "" when none (or deleted) */
	uint64_t created;                /* unix seconds */
	uint64_t mapped_sectors;         /* sectors that hold data */
	uint64_t extents;                /* map entries */
	uint32_t snapshots;              /* a volume's snapshots */
};

struct store_pool_stats {
	const char *engine;              /* "io_uring" or "threads" (static string) */
	uint8_t  uuid[16];               /* the pool's identity, fixed at creation */
	uint64_t capacity_bytes;         /* bytes of segments */
	uint64_t used_bytes;             /* live data in the log */
	uint64_t free_bytes;             /* free segments */
	uint64_t logical_bytes;          /* sum of volume sizes */
	uint64_t segment_bytes, segments, free_segments;
	uint64_t volumes;
	uint64_t snapshots;
	uint64_t acked_writes;           /* write requests completed */
	uint64_t batches;                /* log records written */
	uint64_t flushes;                /* device flushes issued */
	uint64_t device_write_bytes;     /* bytes written to the device, all causes */
	uint64_t log_write_bytes;        /* of those, log records */
	uint64_t host_write_bytes;       /* bytes the clients asked to write */
	uint64_t checkpoints;
	uint64_t cleaner_write_bytes;    /* of device_write_bytes, the cleaner's copies */
	uint64_t cleaned_segments;       /* segments the cleaner freed */
	bool     cleaning;               /* free segments are short: the cleaner runs */
	bool     dedup;                  /* inline dedup is on */
	uint64_t dedup_blocks;           /* 4 KiB blocks written as a reference to equal data */
	uint64_t dedup_mismatches;       /* equal hash, other bytes: written as data */
	uint64_t dedup_rewrites;         /* blocks whose data died before their reference
	                                  * took effect: written again as data */
	uint64_t map_bytes;              /* RAM held by volume maps */
	uint64_t map_extents;
	uint64_t replayed_records;       /* at the last open */
	uint64_t replayed_bytes;
	uint64_t replayed_data_bytes;    /* of those, data read back to prove a torn tail */
	bool     failed;                 /* sticky: a device write or flush failed */
	uint64_t read_cache_capacity;    /* bytes it may take (0: off) */
	uint64_t read_cache_bytes;       /* of data held now */
	uint64_t read_cache_hits;        /* 4 KiB blocks read from it */
	uint64_t read_cache_misses;      /* 4 KiB blocks it did not hold */
};

/* Opens the pool at o->path (or o->backend), creating it when missing and
 * o->create_bytes > 0, and replays the log written since the last checkpoint.
 * Blocking: call before serving. *out is set only on 0. */
int  store_pool_open(struct ev_loop *loop, const struct store_pool_opts *o,
                     struct store_pool **out);
/* Lets queued I/O finish, writes a checkpoint (not when failed or read-only),
 * frees p and then calls done. Every volume handle must be closed first. */
void store_pool_close(struct store_pool *p, store_done_fn *done, void *arg);
/* Writes a checkpoint now; done when it is durable. */
void store_pool_checkpoint(struct store_pool *p, store_done_fn *done, void *arg);
void store_pool_get_stats(const struct store_pool *p, struct store_pool_stats *out);
/* Offline consistency check of an open (typically read-only) pool: maps,
 * segment accounting and the CRC of every log record still referenced.
 * Reports each problem through report(); returns the number found, or < 0. */
int  store_pool_check(struct store_pool *p, store_log_fn *report, void *arg);

/* Metadata changes are durable when done() reports 0. Names are 1 to
 * STORE_NAME_MAX bytes of [A-Za-z0-9._:-], not starting with '.' or '-'. */
void store_vol_create(struct store_pool *p, const char *name, uint64_t sectors,
                      bool write_back, store_done_fn *done, void *arg);
/* -EBUSY while a handle is open. Its space is freed. */
void store_vol_delete(struct store_pool *p, const char *name,
                      store_done_fn *done, void *arg);
/* Grow only: -EINVAL when sectors is smaller than the current size. */
void store_vol_resize(struct store_pool *p, const char *name, uint64_t sectors,
                      store_done_fn *done, void *arg);
void store_vol_set_write_back(struct store_pool *p, const char *name, bool on,
                              store_done_fn *done, void *arg);
/* Fills out[0..max) in name order; returns how many volumes exist (may be > max). */
size_t store_vol_list(struct store_pool *p, struct store_vol_info *out, size_t max);
int  store_vol_stat(struct store_pool *p, const char *name, struct store_vol_info *out);
/* Of name's mapped sectors, those nothing else holds: what deleting it
 * would free. Walks its whole map (O(extents)): for the API, never per
 * I/O. -ENOENT when there is no such volume or snapshot. */
int  store_vol_unique(struct store_pool *p, const char *name, uint64_t *sectors);

/* Snapshots and clones share data by reference: creating one is O(1) and
 * takes no space until the volumes diverge; a block stays until nothing
 * references it. A snapshot is read-only, named "vol@snap", and opens like a
 * volume (store_vol_open) for reading; it belongs to its volume, which cannot
 * be deleted while it has snapshots (-ENOTEMPTY). Clones are volumes of their
 * own and outlive their snapshot and its volume. */

#define STORE_SNAPS_MAX         1024    /* snapshots of one volume */

/* Point in time across every write completed before the call. */
void store_snap_create(struct store_pool *p, const char *vol, const char *snap,
                       store_done_fn *done, void *arg);
/* A consistency group: snapshots named snap of every volume in vols[0..n),
 * at one point in time, all or none. */
void store_snap_create_group(struct store_pool *p, const char *const *vols, size_t n,
                             const char *snap, store_done_fn *done, void *arg);
/* -EBUSY while a handle on the snapshot is open. Its unshared space is freed. */
void store_snap_delete(struct store_pool *p, const char *vol, const char *snap,
                       store_done_fn *done, void *arg);
/* The volume's contents become the snapshot's, at once (its size stays). */
void store_snap_rollback(struct store_pool *p, const char *vol, const char *snap,
                         store_done_fn *done, void *arg);
/* A volume's snapshots, oldest first; returns how many there are. */
size_t store_snap_list(struct store_pool *p, const char *vol, struct store_vol_info *out,
                       size_t max);
/* A new volume named name with the contents of snapshot "vol@snap". */
void store_vol_clone(struct store_pool *p, const char *snapshot, const char *name,
                     bool write_back, store_done_fn *done, void *arg);

/* Small named records kept in the pool for the store's clients (targets,
 * ACLs, CHAP secrets, persistent reservations): logged and checkpointed with
 * the data, so they are durable when done(0) runs and a restart or a crash
 * shows exactly what was acknowledged, in order with the writes around them.
 * Keys are 1 to STORE_META_KEY_MAX bytes of printable ASCII (no spaces);
 * values are opaque, up to STORE_META_VALUE_MAX bytes. */
#define STORE_META_KEY_MAX      255
#define STORE_META_VALUE_MAX    (64u << 10)
typedef int store_meta_fn(void *arg, const char *key, const void *value, size_t len);

/* key and value are copied before the call returns. */
void store_meta_put(struct store_pool *p, const char *key, const void *value,
                    size_t len, store_done_fn *done, void *arg);
/* -ENOENT when the key is not there. */
void store_meta_delete(struct store_pool *p, const char *key,
                       store_done_fn *done, void *arg);
/* The last durable value: *value is borrowed until the key next changes.
 * -ENOENT when there is none. */
int  store_meta_get(struct store_pool *p, const char *key, const void **value,
                    size_t *len);
/* Calls fn for each key starting with prefix, in key order, until fn returns
 * non-zero (which is returned). fn must not change metadata. */
int  store_meta_foreach(struct store_pool *p, const char *prefix,
                        store_meta_fn *fn, void *arg);

/* Handles are cheap. I/O in flight keeps the volume alive past close. A
 * snapshot's handle reads; writes to it fail with -EROFS. */
int  store_vol_open(struct store_pool *p, const char *name, struct store_vol **out);
void store_vol_close(struct store_vol *v);
void store_vol_get_info(const struct store_vol *v, struct store_vol_info *out);

/* How [lba, ...) starts: *mapped says whether lba holds data, *run how
 * many sectors from lba share that state (up to the volume's end). For
 * GET LBA STATUS; reads memory only. -ERANGE past the end. */
int  store_vol_map_status(struct store_vol *v, uint64_t lba, bool *mapped, uint64_t *run);

/* iov is borrowed until done() runs; its total length must be a multiple of
 * 512. A range past the volume's end fails with -ERANGE. Unwritten ranges
 * read as zeros. */
void store_vol_read(struct store_vol *v, uint64_t lba, const struct iovec *iov,
                    int iovcnt, store_done_fn *done, void *arg);
/* Write-through volumes call done(0) only when data and map are durable;
 * write-back volumes when the data is on the device, durable at the next
 * flush (or at once with STORE_WRITE_FUA). -ENOSPC when the pool is full. */
void store_vol_write(struct store_vol *v, uint64_t lba, const struct iovec *iov,
                     int iovcnt, unsigned flags, store_done_fn *done, void *arg);
/* Discard: the range reads as zeros afterwards and its space is freed. This
 * is also the store's write-zeroes (WRITE SAME with zeros, UNMAP). Durable
 * like a write of the volume's mode. */
void store_vol_unmap(struct store_vol *v, uint64_t lba, uint64_t sectors,
                     store_done_fn *done, void *arg);
/* Copy by reference: [dst_lba, +sectors) of dst gets the data of
 * [src_lba, +sectors) of src (a volume or snapshot of the same pool) as it is
 * when the copy takes its place in the log, sharing it: no data moves. Holes
 * copy as holes. Durable like a write of dst's mode. */
void store_vol_copy(struct store_vol *dst, uint64_t dst_lba, struct store_vol *src,
                    uint64_t src_lba, uint64_t sectors, store_done_fn *done, void *arg);
/* Every write completed before this call is durable when done(0) runs. */
void store_vol_flush(struct store_vol *v, store_done_fn *done, void *arg);

const char *store_strerror(int err);
const char *store_engine_name(enum store_engine e);

#endif

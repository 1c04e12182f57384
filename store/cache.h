/* store/cache.h: the read cache (private to store/).
 *
 * Keyed by log address, not by volume or device address: the key of a
 * 4 KiB block is la >> 3, the block's 8 sectors of one record's data
 * (store/addr.h). A block shared by a volume, its snapshots and 500 clones
 * has one log address, so it is one entry; and the cleaner moving it
 * changes only the address table, never the key.
 *
 * Why no entry can go stale: a log address names the data of one record
 * forever. Seqs are never reused while the pool is open (a failed write
 * makes the pool FAILED, D5), so the bytes behind a key never change.
 * Overwrite, unmap, rollback and delete change maps, which then name other
 * keys; the old entry is simply never asked for again, and CLOCK reclaims
 * it at the hand's next pass (its reference bit is never set again). The
 * cache lives and dies with the open pool: a reopen, after a crash or not,
 * starts empty, so a seq reused by replay past a torn tail never meets an
 * entry of the run before.
 *
 * Each entry says which of its 8 sectors are valid (mask): a miss confirms
 * through the address table only the sectors it was asked for, and a part
 * of a block the cleaner moved elsewhere, or that died, is not trusted.
 *
 * Bound: slots of 4 KiB, their descriptors, the FIFO and the index all fit
 * in the configured bytes. Replacement, O(1) amortised per access, in 2Q's
 * shape: a block comes in (a miss, a write) on probation, in a FIFO; read
 * again, it joins the blocks CLOCK manages. Victims are the oldest on
 * probation while those hold more than a quarter of the cache, else
 * CLOCK's. A stream of writes or of one-time reads (an image import, a
 * backup) so cycles through the probation quarter and leaves the blocks
 * read twice alone, as the page cache's inactive list does. Index: open
 * addressing with linear probing, at most half full, backward-shift
 * deletion.
 *
 * Slots being filled by a device read are pinned: never evicted, never
 * served, never refilled until the read is done.
 */
#ifndef SLUICE_STORE_CACHE_H
#define SLUICE_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_SECTORS   8u              /* sectors in one entry (4 KiB) */
#define CACHE_NONE      UINT32_MAX

struct cache_slot;

struct store_cache {
	uint64_t           capacity;    /* the bound, bytes; 0: off */
	uint32_t           nslots;      /* 0: off */
	uint32_t           hand;        /* CLOCK */
	uint32_t           fresh;       /* slots never handed out yet: [fresh, nslots) */
	uint32_t           free_head;   /* slots given back (failed fills) */
	uint32_t           held;        /* slots holding valid sectors */
	uint32_t           probation;   /* slots not read since they came in */
	uint32_t          *fifo;        /* those, oldest first (a ring of nslots) */
	uint32_t           fifo_head, fifo_len;
	char              *data;        /* nslots * 4 KiB, 2 MiB aligned (O_DIRECT, huge pages) */
	size_t             data_len;    /* its mapping */
	struct cache_slot *slot;
	uint32_t          *index;       /* slot + 1; 0: empty */
	uint64_t           index_mask;
	uint64_t           hits, misses; /* 4 KiB blocks asked for */
};

/* A cache of at most bytes (0: none). 0, or -ENOMEM (also past 4 TiB);
 * on failure c is a cache that is off. */
int  store_cache_init(struct store_cache *c, uint64_t bytes);
void store_cache_fini(struct store_cache *c);

static inline bool store_cache_on(const struct store_cache *c)
{
	return c->nslots > 0;
}

static inline uint64_t store_cache_key(uint64_t la)
{
	return la / CACHE_SECTORS;
}

/* Sectors [s0, s0 + n) of a block as a mask. */
static inline uint8_t store_cache_mask(uint32_t s0, uint32_t n)
{
	return (uint8_t)(((1u << n) - 1) << s0);
}

/* The block's 4 KiB when its sectors in need are valid (counted as a hit),
 * else NULL (counted as a miss). */
const char *store_cache_lookup(struct store_cache *c, uint64_t key, uint8_t need);
/* A pinned slot for key, to be filled by a device read: its valid
 * sectors are forgotten. -EBUSY when another fill holds key, -ENOSPC
 * when every slot is pinned. */
int  store_cache_claim(struct store_cache *c, uint64_t key, uint32_t *slot);
char *store_cache_slot_data(const struct store_cache *c, uint32_t slot);
/* The fill of a claimed slot is over: on success the sectors in mask are
 * valid; a failed fill gives the slot back. */
void store_cache_fill_done(struct store_cache *c, uint32_t slot, uint8_t mask, bool ok);
/* A durable write: [la, la + sectors) of a record whose data is rec
 * (rec_sectors long, from its start). Caches the whole 4 KiB blocks that
 * range touches: every sector of a record's data is that record's. */
void store_cache_put_record(struct store_cache *c, uint64_t la, uint64_t sectors,
                            const char *rec, uint64_t rec_sectors);
/* Bytes of data held. */
uint64_t store_cache_bytes(const struct store_cache *c);

#endif

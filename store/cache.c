/* store/cache.c: the read cache (store/cache.h says what and why). */
#include "store/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "store/addr.h"
#include "store/store.h"

struct cache_slot {
	uint64_t key;
	uint32_t next_free;             /* on the free list */
	uint16_t pins;                  /* fills in flight */
	uint8_t  mask;                  /* valid sectors; 0: holds nothing */
	uint8_t  ref;                   /* CLOCK: used since the hand passed */
	bool     indexed;
	bool     probation;             /* not read since it came in */
	bool     in_fifo;
};

static uint64_t key_hash(uint64_t key)
{
	return (key * 0x9e3779b97f4a7c15ull) >> 17;
}

/* Per slot: its 4 KiB, its descriptor, its place in the probation FIFO
 * and, at worst, four index entries (the index is the power of two at or
 * above twice the slots). */
#define SLOT_COST       (STORE_BLOCK + sizeof(struct cache_slot) + 5 * sizeof(uint32_t))
#define HUGE_PAGE       (2u << 20)

/* The blocks' memory: mapped, not allocated, on a 2 MiB boundary and
 * marked for transparent huge pages, so filling the cache as data is
 * written takes one page fault per 512 blocks instead of one a block
 * (large writes ran at half speed while a fresh cache filled). Pages come
 * from the kernel as they are first touched. */
static char *data_map(size_t len, size_t *mapped)
{
	size_t want = (len + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	size_t span = want + HUGE_PAGE;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t at, head;

	if (p == MAP_FAILED)
		return NULL;
	at = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	head = at - (uintptr_t)p;
	if (head)
		munmap(p, head);
	if (span - head > want)
		munmap((char *)at + want, span - head - want);
	madvise((void *)at, want, MADV_HUGEPAGE);       /* a hint: fine if refused */
	*mapped = want;
	return (char *)at;
}

int store_cache_init(struct store_cache *c, uint64_t bytes)
{
	uint64_t n = bytes / SLOT_COST, isz = 2;

	memset(c, 0, sizeof(*c));
	c->free_head = CACHE_NONE;
	if (n == 0)
		return 0;
	if (n > UINT32_MAX / 4)
		return -ENOMEM;         /* past 4 TiB: more than slot numbers reach */
	while (isz < 2 * n)
		isz *= 2;
	c->data = data_map(n * STORE_BLOCK, &c->data_len);
	c->slot = calloc(n, sizeof(*c->slot));
	c->index = calloc(isz, sizeof(*c->index));
	c->fifo = calloc(n, sizeof(*c->fifo));
	if (!c->data || !c->slot || !c->index || !c->fifo) {
		store_cache_fini(c);
		return -ENOMEM;
	}
	c->capacity = bytes;
	c->nslots = (uint32_t)n;
	c->index_mask = isz - 1;
	return 0;
}

void store_cache_fini(struct store_cache *c)
{
	if (c->data)
		munmap(c->data, c->data_len);
	free(c->slot);
	free(c->index);
	free(c->fifo);
	memset(c, 0, sizeof(*c));
	c->free_head = CACHE_NONE;
}

/* Where key is in the index, or the empty position where it would go. */
static uint64_t index_pos(const struct store_cache *c, uint64_t key)
{
	uint64_t i = key_hash(key) & c->index_mask;

	while (c->index[i] && c->slot[c->index[i] - 1].key != key)
		i = (i + 1) & c->index_mask;
	return i;
}

static uint32_t index_find(const struct store_cache *c, uint64_t key)
{
	uint32_t e = c->index[index_pos(c, key)];

	return e ? e - 1 : CACHE_NONE;
}

static void index_insert(struct store_cache *c, uint32_t s)
{
	c->index[index_pos(c, c->slot[s].key)] = s + 1;
	c->slot[s].indexed = true;
}

/* Backward-shift deletion: no tombstones, probes stay short. */
static void index_remove(struct store_cache *c, uint32_t s)
{
	uint64_t i = index_pos(c, c->slot[s].key), j = i;

	c->slot[s].indexed = false;
	for (;;) {
		uint64_t home;

		c->index[i] = 0;
		for (;;) {
			j = (j + 1) & c->index_mask;
			if (!c->index[j])
				return;
			home = key_hash(c->slot[c->index[j] - 1].key) & c->index_mask;
			/* j's entry may move to i unless its home lies in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		c->index[i] = c->index[j];
		i = j;
	}
}

static void slot_forget(struct store_cache *c, uint32_t s)
{
	struct cache_slot *sl = &c->slot[s];

	if (sl->indexed)
		index_remove(c, s);
	if (sl->mask)
		c->held--;
	if (sl->probation)
		c->probation--;
	sl->mask = 0;
	sl->ref = 0;
	sl->probation = false;
}

/* ---- probation: a FIFO of blocks not read since they came in ----------- */

static void fifo_push(struct store_cache *c, uint32_t s)
{
	c->fifo[(c->fifo_head + c->fifo_len++) % c->nslots] = s;
	c->slot[s].in_fifo = true;
}

static uint32_t fifo_pop(struct store_cache *c)
{
	uint32_t s = c->fifo[c->fifo_head];

	c->fifo_head = (c->fifo_head + 1) % c->nslots;
	c->fifo_len--;
	c->slot[s].in_fifo = false;
	return s;
}

/* The oldest block still on probation, forgotten; CACHE_NONE if none can
 * go (each slot is in the FIFO at most once: it holds nslots). */
static uint32_t fifo_evict(struct store_cache *c)
{
	for (uint32_t tries = c->fifo_len; tries > 0; tries--) {
		uint32_t s = fifo_pop(c);

		if (!c->slot[s].probation)
			continue;       /* read again since: CLOCK keeps it now */
		if (c->slot[s].pins) {
			fifo_push(c, s);
			continue;
		}
		slot_forget(c, s);
		return s;
	}
	return CACHE_NONE;
}

/* CLOCK over the blocks read since they came in: two turns at most, the
 * first clears every reference bit. */
static uint32_t clock_evict(struct store_cache *c)
{
	for (uint64_t step = 0; step < 2ull * c->nslots; step++) {
		uint32_t s = c->hand;
		struct cache_slot *sl = &c->slot[s];

		c->hand = c->hand + 1 == c->nslots ? 0 : c->hand + 1;
		if (sl->pins || sl->probation)
			continue;
		if (sl->ref) {
			sl->ref = 0;
			continue;
		}
		slot_forget(c, s);
		return s;
	}
	return CACHE_NONE;
}

/* A slot to reuse: a fresh one, a given-back one, else a victim: the
 * oldest block on probation while they hold more than a quarter of the
 * cache, else CLOCK's among the others (2Q's shape). CACHE_NONE when every
 * slot is pinned. */
static uint32_t slot_take(struct store_cache *c)
{
	uint32_t s;

	if (c->fresh < c->nslots)
		return c->fresh++;
	if (c->free_head != CACHE_NONE) {
		s = c->free_head;
		c->free_head = c->slot[s].next_free;
		return s;
	}
	if (c->probation > c->nslots / 4 && (s = fifo_evict(c)) != CACHE_NONE)
		return s;
	s = clock_evict(c);
	return s != CACHE_NONE ? s : fifo_evict(c);
}

static void slot_give_back(struct store_cache *c, uint32_t s)
{
	slot_forget(c, s);
	c->slot[s].next_free = c->free_head;
	c->free_head = s;
}

const char *store_cache_lookup(struct store_cache *c, uint64_t key, uint8_t need)
{
	uint32_t s = index_find(c, key);

	if (s == CACHE_NONE || c->slot[s].pins || (c->slot[s].mask & need) != need) {
		c->misses++;
		return NULL;
	}
	c->hits++;
	c->slot[s].ref = 1;
	if (c->slot[s].probation) {     /* read again: off probation */
		c->slot[s].probation = false;
		c->probation--;
	}
	return store_cache_slot_data(c, s);
}

char *store_cache_slot_data(const struct store_cache *c, uint32_t slot)
{
	return c->data + (size_t)slot * STORE_BLOCK;
}

/* key's slot, made when missing (unpinned, nothing valid); CACHE_NONE
 * when no slot can be had. */
static uint32_t slot_for(struct store_cache *c, uint64_t key)
{
	uint32_t s = index_find(c, key);

	if (s != CACHE_NONE)
		return s;
	s = slot_take(c);
	if (s == CACHE_NONE)
		return s;
	c->slot[s].key = key;
	c->slot[s].ref = 0;
	c->slot[s].probation = true;
	c->probation++;
	if (!c->slot[s].in_fifo)
		fifo_push(c, s);
	index_insert(c, s);
	return s;
}

int store_cache_claim(struct store_cache *c, uint64_t key, uint32_t *slot)
{
	uint32_t s = slot_for(c, key);

	if (s == CACHE_NONE)
		return -ENOSPC;
	if (c->slot[s].pins)
		return -EBUSY;
	/* what the old fill confirmed may lie elsewhere now: start over */
	if (c->slot[s].mask)
		c->held--;
	c->slot[s].mask = 0;
	c->slot[s].pins = 1;
	*slot = s;
	return 0;
}

void store_cache_fill_done(struct store_cache *c, uint32_t slot, uint8_t mask, bool ok)
{
	struct cache_slot *sl = &c->slot[slot];

	sl->pins = 0;
	if (!ok || !mask) {
		slot_give_back(c, slot);
		return;
	}
	sl->mask = mask;
	c->held++;
}

void store_cache_put_record(struct store_cache *c, uint64_t la, uint64_t sectors,
                            const char *rec, uint64_t rec_sectors)
{
	uint64_t first = store_cache_key(la), last = store_cache_key(la + sectors - 1);
	uint64_t rec_first = store_cache_key(la >> ADDR_OFF_BITS << ADDR_OFF_BITS); /* its block 0 */

	if (!store_cache_on(c) || sectors == 0)
		return;
	for (uint64_t k = first; k <= last; k++) {
		uint64_t at = (k - rec_first) * CACHE_SECTORS;
		uint32_t s;

		if (at + CACHE_SECTORS > rec_sectors)
			break;          /* records are whole 4 KiB: cannot happen */
		s = slot_for(c, k);
		if (s == CACHE_NONE || c->slot[s].pins)
			continue;       /* a fill has it; it reads the same bytes */
		memcpy(store_cache_slot_data(c, s), rec + at * STORE_SECTOR, STORE_BLOCK);
		if (!c->slot[s].mask)
			c->held++;
		c->slot[s].mask = 0xff;
	}
}

uint64_t store_cache_bytes(const struct store_cache *c)
{
	return (uint64_t)c->held * STORE_BLOCK;
}

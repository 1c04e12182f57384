/* store/dedup.c: inline deduplication of 4 KiB blocks (off by default).
 *
 * A pool with dedup on stores a 4 KiB block once when the same bytes are
 * written again, to any volume: the second write becomes a reference to the
 * first one's data, as copy by reference (store_vol_copy) shares data, but
 * decided per block by content. Writes that are not 4 KiB aligned in the
 * volume, or not whole blocks, go the usual way.
 *
 * The index: an in-memory table hash -> log address (addr.h) of the newest
 * block written with that hash, 8-way set associative, bounded (16 bytes a
 * slot; about one slot per block of the pool, at most 4M slots = 64 MiB).
 * It is a hint, never trusted: an entry whose data died or moved is found
 * out on use, since a log address names the same bytes forever (the cleaner
 * moves data without renaming it) and the address table says whether
 * anything still holds it. So the index hears of nothing: frees and moves
 * need no hooks. It is not saved: a reopened pool starts with it empty, and
 * only data written after the open dedups (correctness never depends on it).
 *
 * A write, block by block: hash (CRC-64 from ISA-L, which the store already
 * uses: any hash does, since a hit is only a candidate) and look up. On a
 * hit whose data is still held, take the candidate from the read cache or
 * read it from the device (async; the segment's reader count keeps it in
 * place while the cleaner works; candidates that follow each other in one
 * record are read at once) and compare all 4096 bytes; only equal bytes
 * make the block a reference. The request waits at the queue's head while
 * it compares, so the log's order is the order of submission, as without
 * dedup.
 *
 * Durability: a block that references is a REF entry (format.h) in the same
 * record stream as data, so it is acknowledged exactly when a WRITE in its
 * place would be (D1, D2, write-back and FUA alike). The data it names was
 * durable before it was in the index (maps change after the write, D3).
 * Between the compare and the REF's record taking effect, other records may
 * drop every reference to that data; then the REF must not revive it (its
 * segment may already be free). So a REF applies only if its data is still
 * fully held at that point of the log, else it is void, and replay decides
 * exactly the same way (the address table at a point of the log is a
 * function of the log). A void REF at run time writes its block again as
 * data, and the request is acknowledged only when that is done: a crash in
 * between leaves the old contents, never a reference to freed data.
 *
 * Space: a reference adds no live sectors, so used bytes stay flat; the
 * shared data counts as shared for each volume's unique bytes, like a copy.
 */
#include <errno.h>
#include <isa-l/crc64.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define DEDUP_KEY       "store.dedup"   /* metadata: "1" on, "0" off */
#define BLK_SECTORS     (STORE_BLOCK / STORE_SECTOR)
#define NONE            UINT64_MAX
#define WAYS            8u              /* a set is two cache lines */
#define SLOTS_MIN       1024u
#define SLOTS_MAX       (1u << 22)
#define READ_RUN_MAX    256u            /* blocks one compare reads: 1 MiB */

struct dedup_slot {
	uint64_t hash;
	uint64_t la;            /* NONE: empty */
};

struct store_dedup {
	struct dedup_slot *slot;
	uint64_t           mask;        /* of the set index (slots / WAYS - 1) */
	uint8_t           *scratch;     /* one block, for hashing */
};

/* Per write request. */
struct dedup_req {
	uint32_t  nblk;
	uint32_t  waiting;      /* compares in flight */
	uint64_t *hash;         /* per block */
	uint64_t *la;           /* per block: data to reference, or NONE */
};

/* The compare of a run of blocks against candidates that lie one after
 * the other in one record (a clone of an image meets its blocks in
 * order): one device read for the run. */
struct dedup_cmp {
	struct store_req *req;
	uint32_t          blk, n;       /* the run: blocks [blk, blk + n) of req */
	uint32_t          reads;        /* device reads in flight */
	int               err;
	uint8_t          *mine;         /* the blocks as written */
	uint8_t          *theirs;       /* the candidates */
};

struct dedup_read {
	struct store_bio  bio;
	struct iovec      iov;
	struct dedup_cmp *cmp;
	uint32_t          seg;
	uint32_t          skip, bytes, dst;
};

static uint64_t dedup_crc64(const void *block)
{
	return crc64_ecma_refl(0, block, STORE_BLOCK);
}

uint64_t (*store_dedup_hash)(const void *block) = dedup_crc64;

/* ---- the index ---------------------------------------------------------- */

static struct dedup_slot *idx_set(struct store_dedup *d, uint64_t hash)
{
	/* mix every bit into the set number (murmur3's finalizer): a CRC is
	 * linear, and data made by a linear generator shares low bits */
	uint64_t h = hash;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return &d->slot[(h & d->mask) * WAYS];
}

static uint64_t idx_find(struct store_dedup *d, uint64_t hash)
{
	struct dedup_slot *s = idx_set(d, hash);

	for (uint32_t i = 0; i < WAYS; i++)
		if (s[i].la != NONE && s[i].hash == hash)
			return s[i].la;
	return NONE;
}

/* Newest first: a set drops its oldest entry, and a hash has one entry. */
static void idx_put(struct store_dedup *d, uint64_t hash, uint64_t la)
{
	struct dedup_slot *s = idx_set(d, hash);
	uint32_t i;

	for (i = 0; i < WAYS - 1; i++)
		if (s[i].la == NONE || s[i].hash == hash)
			break;
	memmove(&s[1], &s[0], i * sizeof(*s));
	s[0] = (struct dedup_slot){ .hash = hash, .la = la };
}

/* ---- open and close ------------------------------------------------------ */

static void dedup_persisted(void *arg, int err)
{
	struct store_pool *p = arg;

	if (err)
		store_pool_logf(p, STORE_LOG_WARN, "dedup: cannot record the setting: %s",
		                store_strerror(err));
}

int store_dedup_open(struct store_pool *p, int want)
{
	struct store_dedup *d;
	const void *v;
	size_t len;
	uint64_t blocks = (uint64_t)p->nsegs * p->seg_bytes / STORE_BLOCK, slots = SLOTS_MIN;
	bool had = store_meta_get(p, DEDUP_KEY, &v, &len) == 0 && len == 1 &&
	           *(const char *)v == '1';
	bool on = want > 0 || (want == 0 && had);

	if (want != 0 && on != had && !p->read_only)
		store_meta_put(p, DEDUP_KEY, on ? "1" : "0", 1, dedup_persisted, p);
	p->st.dedup = on;
	if (!on || p->read_only)
		return 0;
	while (slots < blocks && slots < SLOTS_MAX)
		slots *= 2;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->slot = malloc(slots * sizeof(*d->slot));
	d->scratch = store_alloc_aligned(STORE_BLOCK);
	if (!d->slot || !d->scratch) {
		free(d->slot);
		free(d->scratch);
		free(d);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < slots; i++)
		d->slot[i].la = NONE;
	d->mask = slots / WAYS - 1;
	p->dedup = d;
	store_pool_logf(p, STORE_LOG_INFO, "dedup: on, index of %llu blocks (%llu KiB)",
	                (unsigned long long)slots,
	                (unsigned long long)(slots * sizeof(*d->slot) >> 10));
	return 0;
}

void store_dedup_close(struct store_pool *p)
{
	if (!p->dedup)
		return;
	free(p->dedup->slot);
	free(p->dedup->scratch);
	free(p->dedup);
	p->dedup = NULL;
}

/* ---- comparing a candidate ------------------------------------------------ */

static int held_visit(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	(void)arg; (void)la; (void)len; (void)pba;
	return 0;
}

bool store_dedup_held(const struct store_pool *p, uint64_t la, uint64_t sectors)
{
	return store_addr_visit(&p->addr, la, sectors, held_visit, NULL) == 0;
}

static bool la_held(const struct store_pool *p, uint64_t la)
{
	return store_dedup_held(p, la, BLK_SECTORS);
}

static void cmp_finish(struct store_pool *p, struct dedup_cmp *c)
{
	struct store_req *r = c->req;
	struct dedup_req *dr = r->dd;

	for (uint32_t k = 0; k < c->n; k++) {
		size_t o = (size_t)k * STORE_BLOCK;

		if (!c->err && memcmp(c->mine + o, c->theirs + o, STORE_BLOCK) == 0)
			continue;
		if (!c->err)
			p->st.dedup_mismatches++;
		dr->la[c->blk + k] = NONE;
	}
	free(c->mine);
	free(c->theirs);
	free(c);
	/* the submitter holds one count until r is queued: never inline */
	if (--dr->waiting > 0)
		return;
	/* the queue may have failed r while it compared (log_fail_queue) */
	if (--r->pieces == 0 && r->sealed == r->sectors) {
		store_req_complete(p, r, r->err);
		return;
	}
	store_log_kick(p);
}

static void cmp_read_done(struct store_bio *b)
{
	struct dedup_read *rd = b->owner;
	struct dedup_cmp *c = rd->cmp;
	struct store_pool *p = c->req->vol->pool;

	p->segs[rd->seg].readers--;
	if (b->result)
		c->err = b->result;
	else
		memcpy(c->theirs + rd->dst, (char *)rd->iov.iov_base + rd->skip, rd->bytes);
	free(rd->iov.iov_base);
	free(rd);
	if (--c->reads == 0)
		cmp_finish(p, c);
}

struct cmp_visit {
	struct store_pool *p;
	struct dedup_cmp  *c;
	uint64_t           la;          /* of the block */
};

/* One piece of the candidate, where the address table says it is now. */
static int cmp_read_piece(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct cmp_visit *cv = arg;
	struct store_pool *p = cv->p;
	uint64_t start = pba * STORE_SECTOR & ~(uint64_t)(STORE_BLOCK - 1);
	uint64_t end = ((pba + len) * STORE_SECTOR + STORE_BLOCK - 1) & ~(uint64_t)(STORE_BLOCK - 1);
	struct dedup_read *rd = calloc(1, sizeof(*rd));

	if (!rd || !store_seg_of_sector(p, pba, &rd->seg) ||
	    !(rd->iov.iov_base = store_alloc_aligned(end - start))) {
		free(rd);
		return -ENOMEM;
	}
	rd->iov.iov_len = end - start;
	rd->cmp = cv->c;
	rd->skip = (uint32_t)(pba * STORE_SECTOR - start);
	rd->bytes = (uint32_t)(len * STORE_SECTOR);
	rd->dst = (uint32_t)((la - cv->la) * STORE_SECTOR);
	rd->bio.op = STORE_BIO_READ;
	rd->bio.offset = start;
	rd->bio.iov = &rd->iov;
	rd->bio.iovcnt = 1;
	rd->bio.done = cmp_read_done;
	rd->bio.owner = rd;
	p->segs[rd->seg].readers++;     /* the cleaner leaves it in place meanwhile */
	cv->c->reads++;
	p->be->ops->submit(p->be, &rd->bio);
	return 0;
}

/* The candidates from the read cache, when it holds them all: no device
 * read. The cache is keyed by 4 KiB of log address space, so only
 * candidates that start one can be found there. */
static bool cmp_cached(struct store_pool *p, uint64_t la, uint32_t n, uint8_t *dst)
{
	if (!store_cache_on(&p->cache) || la % BLK_SECTORS)
		return false;
	for (uint32_t k = 0; k < n; k++) {
		const char *b = store_cache_lookup(&p->cache,
		                                   store_cache_key(la + (uint64_t)k * BLK_SECTORS),
		                                   0xff);

		if (!b)
			return false;
		memcpy(dst + (size_t)k * STORE_BLOCK, b, STORE_BLOCK);
	}
	return true;
}

/* Starts comparing blocks [blk, blk + n) of r with the data from la on;
 * blocks without a compare under way are written. */
static void cmp_start(struct store_pool *p, struct store_req *r, uint32_t blk, uint32_t n,
                      uint64_t la)
{
	struct dedup_cmp *c = calloc(1, sizeof(*c));
	struct cmp_visit cv = { .p = p, .c = c, .la = la };
	size_t bytes = (size_t)n * STORE_BLOCK;

	if (!c || !(c->mine = malloc(bytes)) || !(c->theirs = malloc(bytes))) {
		if (c)
			free(c->mine);
		free(c);
		return;
	}
	store_iov_to_buf(r->iov, r->iovcnt, (size_t)blk * STORE_BLOCK, c->mine, bytes);
	c->req = r;
	c->blk = blk;
	c->n = n;
	for (uint32_t k = 0; k < n; k++)
		r->dd->la[blk + k] = la + (uint64_t)k * BLK_SECTORS;
	r->dd->waiting++;
	if (cmp_cached(p, la, n, c->theirs)) {
		cmp_finish(p, c);
		return;
	}
	c->reads = 1;                   /* held while the pieces are submitted */
	if (store_addr_visit(&p->addr, la, (uint64_t)n * BLK_SECTORS, cmp_read_piece, &cv))
		c->err = -EIO;          /* a piece could not go: no reference */
	if (--c->reads == 0) {          /* none went out */
		c->err = -EIO;
		cmp_finish(p, c);
	}
}

/* Blocks from i on whose candidates follow cand[i] in its record: one read. */
static uint32_t cand_run(const uint64_t *cand, uint32_t i, uint32_t nblk)
{
	uint32_t n = 1;

	while (i + n < nblk && n < READ_RUN_MAX &&
	       cand[i + n] == cand[i] + (uint64_t)n * BLK_SECTORS &&
	       (cand[i + n] + BLK_SECTORS - 1) >> ADDR_OFF_BITS == cand[i] >> ADDR_OFF_BITS)
		n++;
	return n;
}

/* ---- the write path ---------------------------------------------------------- */

bool store_dedup_write(struct store_pool *p, struct store_req *r)
{
	struct store_dedup *d = p->dedup;
	struct dedup_req *dr;

	if (!d || r->lba % BLK_SECTORS || r->sectors % BLK_SECTORS || r->sectors == 0)
		return false;
	dr = calloc(1, sizeof(*dr));
	if (!dr)
		return false;
	dr->nblk = (uint32_t)(r->sectors / BLK_SECTORS);
	dr->hash = malloc(dr->nblk * sizeof(*dr->hash));
	dr->la = malloc(dr->nblk * sizeof(*dr->la));
	if (!dr->hash || !dr->la) {
		free(dr->hash);
		free(dr->la);
		free(dr);
		return false;
	}
	r->dd = dr;
	dr->waiting = 1;                /* ours until r is queued */
	r->pieces = 1;                  /* the compares hold r; completions are never inline */
	/* candidates first (in la[]), then one compare per run of them */
	for (uint32_t i = 0; i < dr->nblk; i++) {
		store_iov_to_buf(r->iov, r->iovcnt, (size_t)i * STORE_BLOCK, d->scratch,
		                 STORE_BLOCK);
		dr->hash[i] = store_dedup_hash(d->scratch);
		dr->la[i] = idx_find(d, dr->hash[i]);
		if (dr->la[i] != NONE && !la_held(p, dr->la[i]))
			dr->la[i] = NONE;
	}
	for (uint32_t i = 0, n; i < dr->nblk; i += n) {
		uint64_t la = dr->la[i];

		n = la == NONE ? 1 : cand_run(dr->la, i, dr->nblk);
		for (uint32_t k = 0; k < n; k++)
			dr->la[i + k] = NONE;   /* until its compare says equal */
		if (la != NONE)
			cmp_start(p, r, i, n, la);
	}
	if (--dr->waiting == 0)
		r->pieces = 0;          /* nothing to wait for: the log seals it as it comes */
	store_log_enqueue(p, r);
	return true;
}

bool store_dedup_waiting(const struct store_req *r)
{
	return r->dd && r->dd->waiting > 0;
}

uint64_t store_dedup_refs(const struct store_req *r, uint64_t off, uint64_t *la)
{
	struct dedup_req *dr = r->dd;
	struct store_pool *p = r->vol->pool;
	uint32_t b = (uint32_t)(off / BLK_SECTORS), n = 0;

	if (!dr)
		return 0;
	/* data that died since the compare: write it instead (fewer void REFs) */
	if (dr->la[b] != NONE && !la_held(p, dr->la[b]))
		dr->la[b] = NONE;
	if (dr->la[b] == NONE)
		return 0;
	*la = dr->la[b];
	/* neighbours in one run of one record make one entry */
	while (b + n < dr->nblk && dr->la[b + n] == *la + (uint64_t)n * BLK_SECTORS &&
	       ((*la + (uint64_t)(n + 1) * BLK_SECTORS - 1) >> ADDR_OFF_BITS) == *la >> ADDR_OFF_BITS &&
	       (n == 0 || la_held(p, dr->la[b + n])))
		n++;
	return (uint64_t)n * BLK_SECTORS;
}

uint64_t store_dedup_data(const struct store_req *r, uint64_t off)
{
	struct dedup_req *dr = r->dd;
	uint32_t b = (uint32_t)(off / BLK_SECTORS), e = b;

	if (!dr)
		return r->sectors - off;
	while (e < dr->nblk && dr->la[e] == NONE)
		e++;
	return (uint64_t)(e - b) * BLK_SECTORS;
}

/* ---- after a record took effect ------------------------------------------------ */

struct rewrite {
	struct store_req *parent;
	uint64_t          sectors;
};

static void rewrite_done(void *arg, int err)
{
	struct rewrite *rw = arg;
	struct store_pool *p = rw->parent->vol->pool;

	if (!err) {             /* counted once, with the request it is part of */
		p->st.acked_writes--;
		p->st.host_write_bytes -= rw->sectors * STORE_SECTOR;
	}
	store_log_piece_done(p, rw->parent, err);
	free(rw);
}

/* [off, off + sectors) of r's iov as an array of its own. */
static struct iovec *iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len,
                               int *cnt)
{
	struct iovec *out = calloc((size_t)iovcnt, sizeof(*out));
	int n = 0;

	for (int i = 0; out && i < iovcnt && len > 0; i++) {
		size_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		out[n++] = (struct iovec){ .iov_base = (char *)iov[i].iov_base + off,
		                           .iov_len = take };
		len -= take;
		off = 0;
	}
	*cnt = n;
	return out;
}

/* A void REF: its blocks go to the log again as data, at the queue's head,
 * and r waits for them. */
static void rewrite(struct store_pool *p, struct store_req *r, const struct fmt_rec_entry *e)
{
	struct store_req *w = calloc(1, sizeof(*w));
	struct rewrite *rw = calloc(1, sizeof(*rw));
	uint64_t off = e->lba - r->lba;
	int cnt = 0;

	if (w)
		w->data = iov_slice(r->iov, r->iovcnt, off * STORE_SECTOR,
		                    e->sectors * STORE_SECTOR, &cnt);
	if (!w || !rw || !w->data) {
		if (w)
			free(w->data);
		free(w);
		free(rw);
		/* the REF changed nothing: failing the write loses nothing acknowledged */
		store_pool_fail(p, -ENOMEM, "dedup rewrite");
		r->err = STORE_EFAILED;
		return;
	}
	for (uint64_t b = off / BLK_SECTORS; b < (off + e->sectors) / BLK_SECTORS; b++)
		r->dd->la[b] = NONE;
	rw->parent = r;
	rw->sectors = e->sectors;
	w->type = REQ_WRITE;
	w->vol = r->vol;
	w->vol->inflight++;
	w->lba = e->lba;
	w->sectors = e->sectors;
	w->iov = w->data;
	w->iovcnt = cnt;
	w->flags = r->flags;
	w->done = rewrite_done;
	w->arg = rw;
	r->pieces++;
	STAILQ_INSERT_HEAD(&p->queue, w, link);
}

void store_dedup_applied(struct store_pool *p, struct store_req *r,
                         const struct fmt_rec_entry *e, uint64_t seq)
{
	struct dedup_req *dr = r->dd;
	uint32_t b = (uint32_t)((e->lba - r->lba) / BLK_SECTORS);

	if (e->type == FMT_ENT_REF) {
		/* applied iff all of it is held now: a void REF changed nothing, and
		 * one part of it that died is enough to void all of it */
		if (store_dedup_held(p, fmt_ref_la(e), e->sectors)) {
			p->st.dedup_blocks += e->sectors / BLK_SECTORS;
		} else {
			p->st.dedup_rewrites += e->sectors / BLK_SECTORS;
			rewrite(p, r, e);
		}
		return;
	}
	if (!p->dedup)
		return;
	for (uint64_t k = 0; k < e->sectors / BLK_SECTORS; k++)
		idx_put(p->dedup, dr->hash[b + k], addr_la(seq, e->data_off + k * BLK_SECTORS));
}

void store_dedup_req_free(struct store_req *r)
{
	if (!r->dd)
		return;
	free(r->dd->hash);
	free(r->dd->la);
	free(r->dd);
	r->dd = NULL;
}

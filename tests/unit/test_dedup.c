/* tests/unit/test_dedup.c: inline dedup of 4 KiB blocks (store/dedup.c).
 *
 * What a user relies on: with dedup on, the same 4 KiB written to many
 * volumes is stored once (pool used bytes), every volume reads back exactly
 * what it wrote, whatever the hash says (a forced collision never returns
 * another block's bytes), comparing with the device or with the read
 * cache's copy, through deletes, overwrites, a random run against a model
 * with snapshots, clones and copies, the cleaner moving the shared data,
 * restarts (the index starts empty, the setting stays) and power cuts at
 * any point (the crash backend: every acknowledged write is there, nothing
 * else shows but a write issued after it). Unaligned writes bypass dedup.
 * Off is the default.
 *
 * Random data and the cleaner's workload print their seed (SLUICE_SEED
 * replays; SLUICE_DEDUP_TRACE prints the model's operations, and
 * SLUICE_DEDUP_GROUPS sets its length). SLUICE_DEDUP_FIGURES=1 also prints
 * the figures: pool used bytes
 * for 100 volumes written with the same 64 MiB image, dedup on and off, and
 * 4 KiB random-write IOPS on unique data, dedup on and off.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/internal.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define BLK             4096u
#define BS              (BLK / 512)     /* sectors in a block */

struct fx {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	uint64_t           pool_bytes;
	uint32_t           seg_bytes;
	int                dedup;
	uint64_t           cache;           /* read cache bytes: compares find data there */
};

static uint64_t cache_bytes;            /* what fx_init gives the next pool */

static int fx_open(struct fx *f)
{
	struct store_pool_opts o = {
		.path = f->path, .create_bytes = f->pool_bytes, .segment_bytes = f->seg_bytes,
		.log = tl_log, .dedup = f->dedup, .read_cache_bytes = f->cache,
	};

	return store_pool_open(f->loop, &o, &f->pool);
}

static void fx_init(struct fx *f, uint64_t pool_bytes, uint32_t seg_bytes, int dedup)
{
	static int n;

	memset(f, 0, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->pool_bytes = pool_bytes;
	f->seg_bytes = seg_bytes;
	f->dedup = dedup;
	f->cache = cache_bytes;
	snprintf(f->path, sizeof(f->path), "%s/dedup-%d", tl_scratch_dir(), n++);
	assert_int_equal(fx_open(f), 0);
}

static void fx_reopen(struct fx *f, int dedup)
{
	assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	f->dedup = dedup;
	assert_int_equal(fx_open(f), 0);
}

static void fx_fini(struct fx *f)
{
	if (f->pool) {
		assert_int_equal(store_pool_check(f->pool, tl_log, NULL), 0);
		assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	}
	unlink(f->path);
	ev_loop_destroy(f->loop);
}

static struct store_pool_stats stats(struct store_pool *p)
{
	struct store_pool_stats st;

	store_pool_get_stats(p, &st);
	return st;
}

/* Block contents named by (tag, i): distinct names give distinct bytes. */
static void block_fill(uint8_t *buf, uint64_t tag, uint64_t i)
{
	uint64_t x = tag * 0x9e3779b97f4a7c15ull ^ i * 0xc2b2ae3d27d4eb4full ^ 1;

	for (size_t o = 0; o < BLK; o += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + o, &x, 8);
	}
}

static uint8_t *image(uint64_t tag, uint32_t blocks)
{
	uint8_t *b = malloc((size_t)blocks * BLK);

	assert_non_null(b);
	for (uint32_t i = 0; i < blocks; i++)
		block_fill(b + (size_t)i * BLK, tag, i);
	return b;
}

static struct store_vol *vol_new(struct fx *f, const char *name, uint64_t bytes, bool wb)
{
	struct store_vol *v;

	assert_int_equal(tl_vol_create(f->loop, f->pool, name, bytes / 512, wb), 0);
	assert_int_equal(store_vol_open(f->pool, name, &v), 0);
	return v;
}

static void expect_read(struct fx *f, struct store_vol *v, uint64_t lba, const uint8_t *want,
                        size_t bytes)
{
	uint8_t *got = malloc(bytes);

	assert_non_null(got);
	assert_int_equal(tl_read(f->loop, v, lba, got, bytes), 0);
	assert_memory_equal(got, want, bytes);
	free(got);
}

/* The writer a completion belongs to: arg points at its slot_of[slot],
 * which holds slot, and slot_of sits at off in the writer. */
static void *slot_owner(void *arg, size_t off)
{
	int *slot = arg;

	return (char *)(slot - *slot) - off;
}

static uint64_t vol_unique(struct fx *f, const char *name)
{
	uint64_t s = 0;

	assert_int_equal(store_vol_unique(f->pool, name, &s), 0);
	return s;
}

/* ---- stored once ---------------------------------------------------------- */

#define NV      12
#define IMG     256u                    /* blocks: 1 MiB */

static void many_volumes(int dedup, uint64_t *used)
{
	struct fx f;
	struct store_vol *v[NV];
	uint8_t *img = image(7, IMG);
	char name[16];

	/* with dedup, compares meet the first copy in the read cache */
	cache_bytes = dedup > 0 ? 8u << 20 : 0;
	fx_init(&f, 128ull << 20, 1u << 20, dedup);
	cache_bytes = 0;
	for (int i = 0; i < NV; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		v[i] = vol_new(&f, name, 4ull << 20, i % 2);
		/* at a different place in each: dedup is by content, not address;
		 * in writes of 64 KiB, which the read cache takes as they complete */
		for (uint32_t b = 0; b < IMG; b += 16)
			assert_int_equal(tl_write(f.loop, v[i], (uint64_t)i * BS + b * BS,
			                          img + (size_t)b * BLK, 16 * BLK, 0), 0);
	}
	/* every compare found the first copy in the cache: no device read */
	if (dedup > 0)
		assert_int_equal(stats(f.pool).read_cache_hits, (uint64_t)(NV - 1) * IMG);
	for (int i = 0; i < NV; i++)
		expect_read(&f, v[i], (uint64_t)i * BS, img, IMG * BLK);
	*used = stats(f.pool).used_bytes;
	if (dedup > 0) {
		assert_true(stats(f.pool).dedup);
		assert_int_equal(stats(f.pool).dedup_blocks, (uint64_t)(NV - 1) * IMG);
		/* shared with the others: nothing of it is any one volume's own */
		assert_int_equal(vol_unique(&f, "v3"), 0);
		struct store_vol_info vi;
		store_vol_get_info(v[3], &vi);
		assert_int_equal(vi.mapped_sectors, IMG * BS);
	} else {
		assert_false(stats(f.pool).dedup);
		assert_int_equal(stats(f.pool).dedup_blocks, 0);
		assert_int_equal(vol_unique(&f, "v3"), IMG * BS);
	}
	for (int i = 0; i < NV; i++)
		store_vol_close(v[i]);
	fx_fini(&f);
	free(img);
}

static void test_stored_once(void **state)
{
	uint64_t on, off;

	(void)state;
	many_volumes(1, &on);
	many_volumes(0, &off);
	printf("dedup: %d volumes x 1 MiB, same bytes: used %" PRIu64 " KiB with dedup, "
	       "%" PRIu64 " KiB without\n", NV, on >> 10, off >> 10);
	assert_int_equal(on, (uint64_t)IMG * BLK);
	assert_int_equal(off, (uint64_t)NV * IMG * BLK);
}

/* Writes not aligned to 4 KiB in the volume, or shorter, are written whole. */
static void test_unaligned_bypass(void **state)
{
	struct fx f;
	struct store_vol *a, *b;
	uint8_t *img = image(3, 4);

	(void)state;
	fx_init(&f, 64ull << 20, 1u << 20, 1);
	a = vol_new(&f, "a", 1u << 20, false);
	b = vol_new(&f, "b", 1u << 20, false);
	assert_int_equal(tl_write(f.loop, a, 0, img, 4 * BLK, 0), 0);
	assert_int_equal(tl_write(f.loop, b, 1, img, 4 * BLK, 0), 0);      /* 512 off */
	assert_int_equal(tl_write(f.loop, b, 64, img, 2048, 0), 0);        /* half */
	expect_read(&f, b, 1, img, 4 * BLK);
	expect_read(&f, b, 64, img, 2048);
	assert_int_equal(stats(f.pool).dedup_blocks, 0);
	assert_int_equal(stats(f.pool).used_bytes, 8 * BLK + 2048);
	/* aligned again: it dedups */
	assert_int_equal(tl_write(f.loop, b, 128, img, 4 * BLK, 0), 0);
	assert_int_equal(stats(f.pool).dedup_blocks, 4);
	assert_int_equal(stats(f.pool).used_bytes, 8 * BLK + 2048);
	store_vol_close(a);
	store_vol_close(b);
	fx_fini(&f);
	free(img);
}

/* ---- collisions ---------------------------------------------------------------- */

static uint64_t same_hash(const void *block)
{
	(void)block;
	return 42;
}

/* Every block has the same hash: each one meets another's bytes, and must
 * never take them. */
static void test_forced_collision(void **state)
{
	struct fx f;
	struct store_vol *a, *b;
	uint64_t (*saved)(const void *) = store_dedup_hash;
	uint8_t *img = image(11, 64), *other = image(12, 64);

	(void)state;
	store_dedup_hash = same_hash;
	fx_init(&f, 64ull << 20, 1u << 20, 1);
	a = vol_new(&f, "a", 1u << 20, false);
	b = vol_new(&f, "b", 1u << 20, true);
	assert_int_equal(tl_write(f.loop, a, 0, img, 64 * BLK, 0), 0);
	/* one block at a time, so that each meets the last one written */
	for (uint32_t i = 0; i < 64; i++)
		assert_int_equal(tl_write(f.loop, b, (uint64_t)i * BS, other + (size_t)i * BLK,
		                          BLK, 0), 0);
	assert_int_equal(tl_flush(f.loop, b), 0);
	expect_read(&f, a, 0, img, 64 * BLK);
	expect_read(&f, b, 0, other, 64 * BLK);
	assert_true(stats(f.pool).dedup_mismatches >= 64);
	assert_int_equal(stats(f.pool).used_bytes, 128 * BLK);
	/* the block the index holds now, written again: that one does dedup */
	assert_int_equal(tl_write(f.loop, a, 64 * BS, other + 63 * BLK, BLK, 0), 0);
	assert_int_equal(stats(f.pool).dedup_blocks, 1);
	expect_read(&f, a, 64 * BS, other + 63 * BLK, BLK);
	expect_read(&f, b, 0, other, 64 * BLK);
	store_vol_close(a);
	store_vol_close(b);
	fx_fini(&f);
	store_dedup_hash = saved;
	free(img);
	free(other);
}

/* ---- deletes, overwrites ----------------------------------------------------------- */

static void test_delete_and_overwrite(void **state)
{
	struct fx f;
	struct store_vol *a, *b, *c;
	uint8_t *img = image(21, 32), *neu = image(22, 32);

	(void)state;
	fx_init(&f, 64ull << 20, 1u << 20, 1);
	a = vol_new(&f, "a", 1u << 20, false);
	b = vol_new(&f, "b", 1u << 20, false);
	c = vol_new(&f, "c", 1u << 20, false);
	assert_int_equal(tl_write(f.loop, a, 0, img, 32 * BLK, 0), 0);
	assert_int_equal(tl_write(f.loop, b, 0, img, 32 * BLK, 0), 0);
	assert_int_equal(tl_write(f.loop, c, 0, img, 32 * BLK, 0), 0);
	assert_int_equal(stats(f.pool).used_bytes, 32 * BLK);

	/* overwrite half of a: b and c keep theirs, the new half is new space */
	assert_int_equal(tl_write(f.loop, a, 0, neu, 16 * BLK, 0), 0);
	expect_read(&f, a, 0, neu, 16 * BLK);
	expect_read(&f, a, 16 * BS, img + 16 * BLK, 16 * BLK);
	expect_read(&f, b, 0, img, 32 * BLK);
	assert_int_equal(stats(f.pool).used_bytes, 48 * BLK);
	/* b takes a's new half: by reference again */
	assert_int_equal(tl_write(f.loop, b, 0, neu, 16 * BLK, 0), 0);
	assert_int_equal(stats(f.pool).used_bytes, 48 * BLK);
	expect_read(&f, b, 0, neu, 16 * BLK);

	/* delete the first writer: the others keep the data */
	store_vol_close(a);
	assert_int_equal(tl_vol_delete(f.loop, f.pool, "a"), 0);
	expect_read(&f, b, 0, neu, 16 * BLK);
	expect_read(&f, b, 16 * BS, img + 16 * BLK, 16 * BLK);
	expect_read(&f, c, 0, img, 32 * BLK);
	assert_int_equal(stats(f.pool).used_bytes, 48 * BLK);
	/* c alone holds img's first half now; unmap it and it is gone */
	assert_int_equal(vol_unique(&f, "c"), 16 * BS);
	assert_int_equal(tl_unmap(f.loop, c, 0, 16 * BS), 0);
	assert_int_equal(stats(f.pool).used_bytes, 32 * BLK);
	/* writing img's first half again finds nothing held: written anew */
	assert_int_equal(tl_write(f.loop, c, 0, img, 16 * BLK, 0), 0);
	expect_read(&f, c, 0, img, 32 * BLK);
	assert_int_equal(stats(f.pool).used_bytes, 48 * BLK);
	store_vol_close(b);
	store_vol_close(c);
	assert_int_equal(tl_vol_delete(f.loop, f.pool, "b"), 0);
	assert_int_equal(tl_vol_delete(f.loop, f.pool, "c"), 0);
	assert_int_equal(stats(f.pool).used_bytes, 0);
	fx_fini(&f);
	free(img);
	free(neu);
}

/* ---- a reference whose data dies before it takes effect ---------------------------- */

/* The candidate's only holder is overwritten in the record before the
 * reference's: the reference is void and the block is written again; the
 * write is acknowledged once that is done, and reads its own bytes. With
 * nblk 2 the two blocks' candidates follow each other and make one
 * reference, of which only the second block's data dies: all of it is
 * void then, and both blocks are written again. */
static void void_reference(int nblk)
{
	struct fx f;
	struct store_vol *a, *b;
	uint8_t *r = image(31, 2), *s = image(32, 1);
	size_t len = (size_t)nblk * BLK, last = len - BLK;
	int tries, hit = 0;

	fx_init(&f, 64ull << 20, 1u << 20, 1);
	a = vol_new(&f, "a", 1u << 20, false);
	b = vol_new(&f, "b", 1u << 20, false);
	for (tries = 0; tries < 64 && !hit; tries++) {
		struct tl_op o1 = { 0 }, o2 = { 0 };
		struct iovec i1 = { s, BLK }, i2 = { r, len };
		uint64_t at = (uint64_t)tries * 2 * BS, before = stats(f.pool).dedup_rewrites;

		assert_int_equal(tl_write(f.loop, a, 0, r, len, 0), 0);
		/* a's last block dies with this overwrite */
		store_vol_write(a, last / 512, &i1, 1, 0, tl_done, &o1);
		store_vol_write(b, at, &i2, 1, 0, tl_done, &o2);
		assert_int_equal(tl_wait(f.loop, &o1), 0);
		assert_int_equal(tl_wait(f.loop, &o2), 0);
		expect_read(&f, a, last / 512, s, BLK);
		expect_read(&f, b, at, r, len);
		hit = stats(f.pool).dedup_rewrites > before;
		/* b's copy is the next round's candidate: free it */
		assert_int_equal(tl_unmap(f.loop, b, at, len / 512), 0);
		assert_int_equal(tl_unmap(f.loop, a, 0, len / 512), 0);
	}
	printf("dedup: void reference of %d block(s) met after %d tries (%" PRIu64
	       " rewrites, %" PRIu64 " references)\n", nblk, tries,
	       stats(f.pool).dedup_rewrites, stats(f.pool).dedup_blocks);
	assert_true(hit);
	store_vol_close(a);
	store_vol_close(b);
	fx_fini(&f);
	free(r);
	free(s);
}

static void test_void_reference(void **state)
{
	(void)state;
	void_reference(1);
	void_reference(2);
}

/* ---- the cleaner moving shared data while writes dedup against it ------------ */

#define CL_POOL         (64ull << 20)
#define CL_BLOCKS       2048u           /* per volume: 8 MiB each, two volumes */
#define CL_VALUES       600u            /* shared block contents in play */
#define CL_FRESH_MAX    (1u << 18)      /* ids of contents written once */
#define CL_QD           16

struct cl_run {
	struct fx        *f;
	struct store_vol *v[2];
	int32_t          *val[2];       /* per block: value id, -1 never written */
	uint64_t          left, rng;
	uint32_t          fresh;          /* contents written once so far */
	int               inflight, err;
	uint8_t           buf[CL_QD][BLK];
	struct iovec      iov[CL_QD];
	int               vol[CL_QD];
	uint32_t          blk[CL_QD];
	int               slot_of[CL_QD];
};

static void cl_issue(struct cl_run *w, int s);

static void cl_done(void *arg, int err)
{
	int *slot = arg;
	struct cl_run *w = slot_owner(arg, offsetof(struct cl_run, slot_of));

	w->inflight--;
	w->blk[*slot] = UINT32_MAX;
	if (err && !w->err)
		w->err = err;
	if (!w->err)
		cl_issue(w, *slot);
}

static void cl_issue(struct cl_run *w, int s)
{
	int vol;
	uint32_t b, val;

	if (w->left == 0)
		return;
	w->left--;
	vol = (int)tl_rand_below(&w->rng, 2);
	b = (uint32_t)tl_rand_below(&w->rng, CL_BLOCKS);
	for (int k = 0; k < CL_QD; k++)         /* one write per block at a time */
		if (k != s && w->blk[k] == b && w->vol[k] == vol)
			b = (b + 1) % CL_BLOCKS;
	w->vol[s] = vol;
	w->blk[s] = b;
	w->inflight++;
	if (tl_rand_below(&w->rng, 100) < 3) {
		w->val[vol][b] = -1;
		store_vol_unmap(w->v[vol], (uint64_t)b * BS, BS, cl_done, &w->slot_of[s]);
		return;
	}
	/* half shared contents, half new ones that fill the log */
	if (tl_rand_below(&w->rng, 2) && w->fresh < CL_FRESH_MAX)
		val = CL_VALUES + w->fresh++;
	else
		val = (uint32_t)tl_rand_below(&w->rng, CL_VALUES);
	w->val[vol][b] = (int32_t)val;
	block_fill(w->buf[s], 1000 + val, 0);
	w->iov[s] = (struct iovec){ .iov_base = w->buf[s], .iov_len = BLK };
	store_vol_write(w->v[vol], (uint64_t)b * BS, &w->iov[s], 1, 0, cl_done, &w->slot_of[s]);
}

static void cl_expect(struct fx *f, int32_t *const val[2])
{
	static const char *names[2] = { "a", "b" };
	uint8_t *got = malloc(CL_BLOCKS * BLK), want[BLK];
	bool *live = calloc(CL_VALUES + CL_FRESH_MAX, sizeof(*live));
	uint64_t distinct = 0, mapped = 0, used = stats(f->pool).used_bytes;

	for (int i = 0; i < 2; i++) {
		struct store_vol *v;

		assert_int_equal(store_vol_open(f->pool, names[i], &v), 0);
		assert_int_equal(tl_read(f->loop, v, 0, got, CL_BLOCKS * BLK), 0);
		for (uint32_t b = 0; b < CL_BLOCKS; b++) {
			if (val[i][b] < 0) {
				memset(want, 0, BLK);
			} else {
				block_fill(want, 1000 + (uint64_t)val[i][b], 0);
				mapped++;
				distinct += !live[val[i][b]];
				live[val[i][b]] = true;
			}
			if (memcmp(want, got + (size_t)b * BLK, BLK))
				fail_msg("%s: block %u does not read value %d", names[i], b,
				         val[i][b]);
		}
		store_vol_close(v);
	}
	/* each content at least once, and never more than once per mapping */
	assert_true(used >= distinct * BLK);
	assert_true(used <= mapped * BLK);
	free(live);
	free(got);
}

static void test_cleaner_moves_shared(void **state)
{
	struct fx f;
	struct cl_run *w = calloc(1, sizeof(*w));
	struct store_pool_stats st;

	(void)state;
	fx_init(&f, CL_POOL, 1u << 20, 1);
	w->f = &f;
	w->rng = tl_seed("dedup/cleaner");
	w->v[0] = vol_new(&f, "a", (uint64_t)CL_BLOCKS * BLK, false);
	w->v[1] = vol_new(&f, "b", (uint64_t)CL_BLOCKS * BLK, true);
	for (int i = 0; i < 2; i++) {
		w->val[i] = malloc(CL_BLOCKS * sizeof(*w->val[i]));
		for (uint32_t b = 0; b < CL_BLOCKS; b++)
			w->val[i][b] = -1;
	}
	for (int round = 0; round < 3; round++) {
		w->left = CL_POOL * 2 / BLK;    /* twice the pool each round */
		for (int s = 0; s < CL_QD; s++) {
			w->slot_of[s] = s;
			w->blk[s] = UINT32_MAX;
		}
		for (int s = 0; s < CL_QD; s++)
			cl_issue(w, s);
		tl_wait_count(f.loop, &w->inflight);
		assert_int_equal(w->err, 0);
		cl_expect(&f, w->val);
		if (round == 1) {
			store_vol_close(w->v[0]);
			store_vol_close(w->v[1]);
			fx_reopen(&f, 0);       /* the setting stays; the index starts empty */
			assert_true(stats(f.pool).dedup);
			cl_expect(&f, w->val);
			assert_int_equal(store_vol_open(f.pool, "a", &w->v[0]), 0);
			assert_int_equal(store_vol_open(f.pool, "b", &w->v[1]), 0);
		}
	}
	st = stats(f.pool);
	printf("dedup: cleaner: %" PRIu64 " segments cleaned, %" PRIu64 " blocks by "
	       "reference, %" PRIu64 " written again, used %" PRIu64 " KiB\n",
	       st.cleaned_segments, st.dedup_blocks, st.dedup_rewrites, st.used_bytes >> 10);
	assert_true(st.cleaned_segments > 0);
	assert_true(st.dedup_blocks > 0);
	store_vol_close(w->v[0]);
	store_vol_close(w->v[1]);
	assert_int_equal(store_pool_check(f.pool, tl_log, NULL), 0);
	fx_reopen(&f, 0);
	cl_expect(&f, w->val);
	fx_fini(&f);
	free(w->val[0]);
	free(w->val[1]);
	free(w);
}

/* ---- a random run against a model ---------------------------------------------------- */

#define RM_VOLS         3               /* v0, v1 (write-back), v2; then clones */
#define RM_OBJS         8               /* volumes, clones and snapshots */
#define RM_BLOCKS       128
#define RM_VALUES       48              /* few contents: most writes dedup */
#define RM_GROUP        8               /* operations in flight together */

struct rm_obj {
	char              name[32];
	bool              exists, snapshot;
	struct store_vol *v;
	int32_t           val[RM_BLOCKS];   /* per block: value id, 0 zeros */
};

struct rm_op {
	struct tl_op t;
	struct iovec iov;
	uint8_t     *buf;
};

struct rm {
	struct fx     f;
	struct rm_obj o[RM_OBJS];
	int           nobj;
	uint64_t      rng;
	struct rm_op  op[RM_GROUP];
	bool          busy[RM_OBJS][RM_BLOCKS];     /* touched in this group */
	uint64_t      refs, rewrites;               /* of the opens before this one */
	uint64_t      replayed;                     /* records replayed after cuts */
	int           group;
	bool          trace;                        /* $SLUICE_DEDUP_TRACE */
};

static void rm_fill(uint8_t *buf, int32_t val)
{
	if (val == 0)
		memset(buf, 0, BLK);
	else
		block_fill(buf, 7000 + (uint64_t)val, 0);
}

static void rm_verify(struct rm *m, int i)
{
	struct rm_obj *o = &m->o[i];
	uint8_t *got = malloc(RM_BLOCKS * BLK), want[BLK];

	assert_int_equal(tl_read(m->f.loop, o->v, 0, got, RM_BLOCKS * BLK), 0);
	for (uint32_t b = 0; b < RM_BLOCKS; b++) {
		int32_t had = -1;

		rm_fill(want, o->val[b]);
		if (memcmp(want, got + (size_t)b * BLK, BLK) == 0)
			continue;
		for (int32_t v = 0; v <= RM_VALUES && had < 0; v++) {
			rm_fill(want, v);
			if (memcmp(want, got + (size_t)b * BLK, BLK) == 0)
				had = v;
		}
		fail_msg("%s: block %u reads value %d (-1: none), not %d, after group %d",
		         o->name, b, had, o->val[b], m->group);
	}
	free(got);
}

/* Used bytes: each live content at least once, at most once a mapping. */
static void rm_space(struct rm *m)
{
	bool live[RM_VALUES + 1] = { false };
	uint64_t mapped = 0, distinct = 0, used = stats(m->f.pool).used_bytes;

	for (int i = 0; i < m->nobj; i++)
		for (uint32_t b = 0; m->o[i].exists && b < RM_BLOCKS; b++) {
			int32_t v = m->o[i].val[b];

			if (v == 0)
				continue;
			mapped++;
			distinct += !live[v];
			live[v] = true;
		}
	assert_true(used >= distinct * BLK);
	assert_true(used <= mapped * BLK);
}

/* A block range of a volume nothing else in this group touches. */
static bool rm_pick(struct rm *m, int *obj, uint32_t *b, uint32_t *n)
{
	for (int tries = 0; tries < 16; tries++) {
		int i = (int)tl_rand_below(&m->rng, (uint64_t)m->nobj);
		uint32_t first = (uint32_t)tl_rand_below(&m->rng, RM_BLOCKS);
		uint32_t len = 1 + (uint32_t)tl_rand_below(&m->rng, 8), k;

		if (!m->o[i].exists || m->o[i].snapshot)
			continue;
		if (first + len > RM_BLOCKS)
			len = RM_BLOCKS - first;
		for (k = 0; k < len && !m->busy[i][first + k]; k++)
			;
		if (k < len)
			continue;
		for (k = 0; k < len; k++)
			m->busy[i][first + k] = true;
		*obj = i;
		*b = first;
		*n = len;
		return true;
	}
	return false;
}

static struct rm_obj *rm_new(struct rm *m, const char *name, bool snapshot)
{
	struct rm_obj *o = &m->o[m->nobj++];

	snprintf(o->name, sizeof(o->name), "%s", name);
	o->exists = true;
	o->snapshot = snapshot;
	assert_int_equal(store_vol_open(m->f.pool, name, &o->v), 0);
	return o;
}

/* One group: writes (most of a few contents, so they dedup), unmaps and
 * copies by reference in flight together, on ranges that do not overlap. */
static void rm_group(struct rm *m)
{
	int nops = (int)tl_rand_below(&m->rng, RM_GROUP) + 1, i, si;
	uint32_t b, n;

	memset(m->busy, 0, sizeof(m->busy));
	for (int k = 0; k < nops; k++) {
		struct rm_op *op = &m->op[k];
		uint64_t kind = tl_rand_below(&m->rng, 10);

		memset(&op->t, 0, sizeof(op->t));
		if (!rm_pick(m, &i, &b, &n)) {
			op->t.done = true;
			continue;
		}
		if (kind < 7) {
			op->buf = malloc((size_t)n * BLK);
			for (uint32_t j = 0; j < n; j++) {
				m->o[i].val[b + j] = 1 + (int32_t)tl_rand_below(&m->rng, RM_VALUES);
				rm_fill(op->buf + (size_t)j * BLK, m->o[i].val[b + j]);
			}
			op->iov = (struct iovec){ op->buf, (size_t)n * BLK };
			if (m->trace) {
				printf("%d: write %s %u+%u val", m->group, m->o[i].name, b, n);
				for (uint32_t j = 0; j < n; j++)
					printf(" %d", m->o[i].val[b + j]);
				printf("\n");
			}
			store_vol_write(m->o[i].v, (uint64_t)b * BS, &op->iov, 1, 0, tl_done, &op->t);
		} else if (kind < 8) {
			for (uint32_t j = 0; j < n; j++)
				m->o[i].val[b + j] = 0;
			if (m->trace)
				printf("%d: unmap %s %u+%u\n", m->group, m->o[i].name, b, n);
			store_vol_unmap(m->o[i].v, (uint64_t)b * BS, (uint64_t)n * BS, tl_done, &op->t);
		} else {
			/* from another object's same range, if this group leaves it be */
			si = (int)tl_rand_below(&m->rng, (uint64_t)m->nobj);
			if (si == i || !m->o[si].exists) {
				op->t.done = true;
				continue;
			}
			for (uint32_t j = 0; j < n; j++) {
				if (m->busy[si][b + j] && !m->o[si].snapshot)
					n = j;
			}
			if (n == 0) {
				op->t.done = true;
				continue;
			}
			for (uint32_t j = 0; j < n; j++) {
				m->busy[si][b + j] = true;
				m->o[i].val[b + j] = m->o[si].val[b + j];
			}
			if (m->trace)
				printf("%d: copy %s %u+%u from %s\n", m->group, m->o[i].name, b, n,
				       m->o[si].name);
			store_vol_copy(m->o[i].v, (uint64_t)b * BS, m->o[si].v, (uint64_t)b * BS,
			               (uint64_t)n * BS, tl_done, &op->t);
		}
	}
	for (int k = 0; k < nops; k++) {
		assert_int_equal(tl_wait(m->f.loop, &m->op[k].t), 0);
		free(m->op[k].buf);
		m->op[k].buf = NULL;
	}
}

static void file_copy(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	static char buf[1 << 20];
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* A clean restart, or with cut a power cut with every record written: the
 * file as it stands (no final checkpoint) is reopened, so the references
 * since the last checkpoint are replayed, void ones included. */
static void rm_reopen(struct rm *m, bool cut)
{
	char img[320];

	m->refs += stats(m->f.pool).dedup_blocks;
	m->rewrites += stats(m->f.pool).dedup_rewrites;
	if (m->trace)
		printf("%d: %s\n", m->group, cut ? "power cut" : "restart");
	for (int i = 0; i < m->nobj; i++)
		if (m->o[i].exists)
			store_vol_close(m->o[i].v);
	snprintf(img, sizeof(img), "%s.cut", m->f.path);
	if (cut)
		file_copy(m->f.path, img);
	assert_int_equal(tl_pool_close(m->f.loop, m->f.pool), 0);
	if (cut)
		assert_int_equal(rename(img, m->f.path), 0);
	assert_int_equal(fx_open(&m->f), 0);
	if (cut) {
		m->replayed += stats(m->f.pool).replayed_records;
		assert_int_equal(store_pool_check(m->f.pool, tl_log, NULL), 0);
	}
	for (int i = 0; i < m->nobj; i++)
		if (m->o[i].exists)
			assert_int_equal(store_vol_open(m->f.pool, m->o[i].name, &m->o[i].v), 0);
}

/* Random writes, unmaps and copies over volumes, a snapshot and a clone,
 * with dedup on and few distinct contents: every object reads its model
 * after every group, across restarts and power cuts (the index empty after
 * each), and the space stays within what the model allows. */
static void test_random_model(void **state)
{
	struct rm *m = calloc(1, sizeof(*m));
	int groups = 400;
	const char *env = getenv("SLUICE_DEDUP_GROUPS");

	(void)state;
	if (env)
		groups = atoi(env);
	m->rng = tl_seed("dedup/model");
	/* by the seed: compares with the device, or with a read cache smaller
	 * than the data (hits and misses) */
	cache_bytes = m->rng % 3 ? 1u << 20 : 0;
	fx_init(&m->f, 64ull << 20, 1u << 20, 1);
	cache_bytes = 0;
	for (int i = 0; i < RM_VOLS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "v%d", i);
		assert_int_equal(tl_vol_create(m->f.loop, m->f.pool, name, RM_BLOCKS * BS, i == 1), 0);
		rm_new(m, name, false);
	}
	m->trace = getenv("SLUICE_DEDUP_TRACE") != NULL;
	for (int g = 0; g < groups; g++) {
		m->group = g;
		rm_group(m);
		rm_verify(m, (int)tl_rand_below(&m->rng, (uint64_t)m->nobj));
		if (g == groups / 4) {          /* a snapshot of v0, then a clone of it */
			assert_int_equal(tl_snap_create(m->f.loop, m->f.pool, "v0", "s"), 0);
			memcpy(rm_new(m, "v0@s", true)->val, m->o[0].val, sizeof(m->o[0].val));
			assert_int_equal(tl_vol_clone(m->f.loop, m->f.pool, "v0@s", "c", false), 0);
			memcpy(rm_new(m, "c", false)->val, m->o[0].val, sizeof(m->o[0].val));
		}
		if (g % 100 == 99) {
			for (int i = 0; i < m->nobj; i++)
				rm_verify(m, i);
			rm_space(m);
			rm_reopen(m, g % 200 == 199);
		}
	}
	for (int i = 0; i < m->nobj; i++)
		rm_verify(m, i);
	rm_space(m);
	m->refs += stats(m->f.pool).dedup_blocks;
	m->rewrites += stats(m->f.pool).dedup_rewrites;
	printf("dedup: model: %d groups, read cache %" PRIu64 " KiB, %" PRIu64 " blocks by "
	       "reference, %" PRIu64 " written again, %" PRIu64 " records replayed after power "
	       "cuts, used %" PRIu64 " KiB\n", groups, m->f.cache >> 10, m->refs, m->rewrites,
	       m->replayed, stats(m->f.pool).used_bytes >> 10);
	assert_true(m->refs > 0);
	assert_true(m->replayed > 0);
	for (int i = 0; i < m->nobj; i++)
		store_vol_close(m->o[i].v);
	fx_fini(&m->f);
	free(m);
}

/* ---- the setting, restarts ------------------------------------------------------- */

static void test_setting_and_restart(void **state)
{
	struct fx f;
	struct store_vol *a, *b, *c;
	uint8_t *img = image(41, 16);

	(void)state;
	fx_init(&f, 64ull << 20, 1u << 20, 0);
	assert_false(stats(f.pool).dedup);      /* off by default */
	fx_reopen(&f, 1);
	assert_true(stats(f.pool).dedup);
	fx_reopen(&f, 0);                       /* kept in the pool */
	assert_true(stats(f.pool).dedup);
	a = vol_new(&f, "a", 1u << 20, false);
	b = vol_new(&f, "b", 1u << 20, false);
	c = vol_new(&f, "c", 1u << 20, false);
	assert_int_equal(tl_write(f.loop, a, 0, img, 16 * BLK, 0), 0);
	store_vol_close(a);
	fx_reopen(&f, 0);
	/* the index starts empty: b stores its copy, c then shares b's */
	assert_int_equal(store_vol_open(f.pool, "b", &b), 0);
	assert_int_equal(store_vol_open(f.pool, "c", &c), 0);
	assert_int_equal(tl_write(f.loop, b, 0, img, 16 * BLK, 0), 0);
	assert_int_equal(stats(f.pool).used_bytes, 32 * BLK);
	assert_int_equal(tl_write(f.loop, c, 0, img, 16 * BLK, 0), 0);
	assert_int_equal(stats(f.pool).used_bytes, 32 * BLK);
	assert_int_equal(stats(f.pool).dedup_blocks, 16);
	store_vol_close(b);
	store_vol_close(c);
	/* a pool that had references, opened with dedup off, reads them */
	fx_reopen(&f, -1);
	assert_false(stats(f.pool).dedup);
	assert_int_equal(store_vol_open(f.pool, "c", &c), 0);
	expect_read(&f, c, 0, img, 16 * BLK);
	assert_int_equal(tl_write(f.loop, c, 16 * BS, img, 16 * BLK, 0), 0);
	assert_int_equal(stats(f.pool).used_bytes, 48 * BLK);
	store_vol_close(c);
	fx_reopen(&f, 0);
	assert_false(stats(f.pool).dedup);
	fx_fini(&f);
	free(img);
}

/* ---- power cuts ------------------------------------------------------------------ */

#define CR_POOL         (16u << 20)
#define CR_SEG          (256u << 10)
#define CR_VOLS         3               /* wt, wb (write-back), x */
#define CR_BLOCKS       8
#define CR_OPS          64
#define CR_IMAGES       3               /* media states per cut */

struct cr_op {
	struct tl_op t;
	int          vol;                   /* -1: not a write */
	uint32_t     first, n;
	uint32_t     val[CR_BLOCKS];        /* 0: zeros (unmap) */
	bool         durable;
	bool         flush;                 /* a flush of vol */
	struct iovec iov;
	uint8_t     *buf;
};

struct cr_run {
	struct ev_loop    *loop;
	struct store_pool *pool;
	struct store_vol  *v[CR_VOLS];
	struct cr_op       op[CR_OPS];
	int                nops;
};

static const char *cr_names[CR_VOLS] = { "wt", "wb", "x" };

static int cr_open(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **out)
{
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .create_bytes = CR_POOL,
		.segment_bytes = CR_SEG, .log = tl_log, .dedup = 1,
	};

	return store_pool_open(loop, &o, out);
}

/* Issues a write of values val[0..n) to blocks first.. of vol (0: unmap). */
static struct cr_op *cr_write(struct cr_run *r, int vol, uint32_t first, uint32_t n,
                              const uint32_t *val)
{
	struct cr_op *o = &r->op[r->nops++];

	assert_true(r->nops <= CR_OPS);
	o->vol = vol;
	o->first = first;
	o->n = n;
	memcpy(o->val, val, n * sizeof(*val));
	if (val[0] == 0) {
		store_vol_unmap(r->v[vol], (uint64_t)first * BS, (uint64_t)n * BS, tl_done, &o->t);
		return o;
	}
	o->buf = malloc((size_t)n * BLK);
	for (uint32_t i = 0; i < n; i++)
		block_fill(o->buf + (size_t)i * BLK, 5000 + val[i], 0);
	o->iov = (struct iovec){ o->buf, (size_t)n * BLK };
	store_vol_write(r->v[vol], (uint64_t)first * BS, &o->iov, 1, 0, tl_done, &o->t);
	return o;
}

static void cr_flush(struct cr_run *r, int vol)
{
	struct cr_op *o = &r->op[r->nops++];

	o->vol = vol;
	o->flush = true;
	store_vol_flush(r->v[vol], tl_done, &o->t);
}

/* Waits for every op issued; marks what is durable. */
static void cr_settle(struct cr_run *r)
{
	for (int i = 0; i < r->nops; i++) {
		struct cr_op *o = &r->op[i];

		tl_wait(r->loop, &o->t);
		if (o->t.err)
			continue;
		if (o->flush) {
			for (int k = 0; k < i; k++)
				if (r->op[k].vol == o->vol && r->op[k].t.done && !r->op[k].t.err)
					r->op[k].durable = true;
		} else if (o->vol != 1) {
			o->durable = true;
		}
	}
}

static void cr_workload(struct cr_run *r)
{
	static const uint32_t v1_8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint32_t v9_16[8] = { 9, 10, 11, 12, 13, 14, 15, 16 };
	static const uint32_t zeros[8];
	uint32_t u;

	cr_write(r, 2, 0, 8, v1_8);             /* references to wt's */
	cr_settle(r);
	cr_write(r, 1, 0, 8, v1_8);
	cr_settle(r);
	cr_write(r, 0, 0, 4, v9_16);            /* wt's own, new */
	cr_flush(r, 1);
	cr_settle(r);
	cr_write(r, 0, 4, 4, v9_16 + 4);        /* together: a write and a */
	cr_write(r, 2, 4, 4, v1_8 + 4);         /* reference to what it replaces */
	cr_settle(r);
	u = 20;
	cr_write(r, 0, 0, 1, &u);               /* unique, then overwritten while */
	cr_settle(r);                           /* another volume takes it */
	u = 21;
	cr_write(r, 0, 0, 1, &u);
	u = 20;
	cr_write(r, 2, 0, 1, &u);
	cr_settle(r);
	cr_write(r, 2, 0, 8, zeros);
	cr_write(r, 1, 0, 8, v9_16);            /* references to wt's new data */
	cr_settle(r);
	store_pool_checkpoint(r->pool, tl_done, &r->op[r->nops].t);
	r->op[r->nops++].vol = -1;
	cr_write(r, 2, 0, 8, v9_16);
	cr_flush(r, 1);
	cr_settle(r);
}

static void cr_setup(struct cr_run *r, struct crash_backend *cb)
{
	static const uint32_t v1_8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	memset(r, 0, sizeof(*r));
	r->loop = ev_loop_new(EVFLAG_AUTO);
	assert_int_equal(cr_open(r->loop, cb, &r->pool), 0);
	for (int i = 0; i < CR_VOLS; i++) {
		assert_int_equal(tl_vol_create(r->loop, r->pool, cr_names[i], CR_BLOCKS * BS,
		                               i == 1), 0);
		assert_int_equal(store_vol_open(r->pool, cr_names[i], &r->v[i]), 0);
	}
	cr_write(r, 0, 0, 8, v1_8);
	cr_settle(r);
	assert_int_equal(tl_checkpoint(r->loop, r->pool), 0);
	assert_true(r->op[0].durable);
}

static void cr_teardown(struct cr_run *r)
{
	for (int i = 0; i < CR_VOLS; i++)
		store_vol_close(r->v[i]);
	tl_pool_close(r->loop, r->pool);
	ev_loop_destroy(r->loop);
	for (int i = 0; i < r->nops; i++)
		free(r->op[i].buf);
}

/* After a cut each block holds its last durable value, or a value some
 * write after that one gave it: never another block's bytes. */
static void cr_check(const struct cr_run *r, struct crash_backend *cb, uint64_t *rng,
                     uint64_t cut)
{
	struct crash_backend *cb2 = crash_backend_after_cut(cb, rng);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_pool *p;
	uint8_t got[BLK], want[BLK];
	int rc = cr_open(loop, cb2, &p);

	if (rc)
		fail_msg("cut %" PRIu64 ": pool does not reopen: %s", cut, store_strerror(rc));
	for (int vol = 0; vol < CR_VOLS; vol++) {
		struct store_vol *v;

		assert_int_equal(store_vol_open(p, cr_names[vol], &v), 0);
		for (uint32_t b = 0; b < CR_BLOCKS; b++) {
			int last = -1;
			bool ok = false;

			for (int i = 0; i < r->nops; i++) {
				const struct cr_op *o = &r->op[i];

				if (!o->flush && o->vol == vol && b >= o->first &&
				    b < o->first + o->n && o->durable)
					last = i;
			}
			assert_int_equal(tl_read(loop, v, (uint64_t)b * BS, got, BLK), 0);
			for (int i = last < 0 ? -1 : last; i < r->nops && !ok; i++) {
				const struct cr_op *o = i < 0 ? NULL : &r->op[i];
				uint32_t val;

				if (o && (o->flush || o->vol != vol || b < o->first ||
				          b >= o->first + o->n))
					continue;
				val = o ? o->val[b - o->first] : 0;
				if (val == 0)
					memset(want, 0, BLK);
				else
					block_fill(want, 5000 + val, 0);
				ok = memcmp(got, want, BLK) == 0;
			}
			if (!ok)
				fail_msg("cut %" PRIu64 ": %s block %u holds neither its last durable "
				         "contents (op %d) nor a later write's", cut, cr_names[vol],
				         b, last);
		}
		store_vol_close(v);
	}
	assert_int_equal(store_pool_check(p, tl_log, NULL), 0);
	assert_int_equal(tl_pool_close(loop, p), 0);
	ev_loop_destroy(loop);
	crash_backend_free(cb2);
}

static void test_power_cuts(void **state)
{
	uint64_t seed = tl_seed("dedup/crash"), cut;
	struct cr_run *r = calloc(1, sizeof(*r));
	uint64_t refs = 0, rewrites = 0;

	(void)state;
	tl_log_quiet = true;    /* every cut fails the pool on purpose */
	for (cut = 1;; cut++) {
		struct crash_backend *cb = crash_backend_create(CR_POOL, NULL);
		struct store_pool_stats st;
		bool fired;

		cr_setup(r, cb);
		crash_backend_arm(cb, cut);
		cr_workload(r);
		fired = crash_backend_fired(cb);
		store_pool_get_stats(r->pool, &st);
		if (!fired) {
			refs = st.dedup_blocks;
			rewrites = st.dedup_rewrites;
		}
		for (uint64_t img = 0; img < CR_IMAGES; img++) {
			uint64_t rng = seed ^ (cut * 0x9e3779b97f4a7c15ull) ^ img;

			cr_check(r, cb, &rng, cut);
		}
		cr_teardown(r);
		crash_backend_free(cb);
		if (!fired)
			break;
		assert_true(cut < 10000);
	}
	tl_log_quiet = false;
	printf("dedup: crash: %" PRIu64 " cut points, %d media states each, checked; "
	       "the whole run made %" PRIu64 " references, %" PRIu64 " written again; "
	       "seed %" PRIu64 "\n", cut - 1, CR_IMAGES, refs, rewrites, seed);
	assert_true(cut > 10);
	assert_true(refs >= 20);
	free(r);
}

/* ---- figures (SLUICE_DEDUP_FIGURES=1) ---------------------------------------------- */

#define FIG_QD  32

struct fig {
	struct ev_loop   *loop;
	struct store_vol *v;
	const uint8_t    *src;              /* image, or NULL: unique random blocks */
	uint64_t          next, end, rng, blocks;
	uint32_t          chunk;            /* bytes a write */
	int               inflight, err;
	uint8_t          *buf[FIG_QD];
	struct iovec      iov[FIG_QD];
	int               slot_of[FIG_QD];
};

static void fig_issue(struct fig *g, int s);

static void fig_done(void *arg, int err)
{
	int *slot = arg;
	struct fig *g = slot_owner(arg, offsetof(struct fig, slot_of));

	g->inflight--;
	if (err && !g->err)
		g->err = err;
	if (!g->err)
		fig_issue(g, *slot);
}

static void fig_issue(struct fig *g, int s)
{
	uint64_t lba;

	if (g->next == g->end)
		return;
	if (g->src) {           /* the image in order, chunk by chunk */
		lba = g->next * g->chunk / 512;
		g->iov[s] = (struct iovec){ (void *)(g->src + g->next * g->chunk), g->chunk };
	} else {                /* a fresh block at a random place */
		lba = tl_rand_below(&g->rng, g->blocks) * BS;
		block_fill(g->buf[s], g->rng, g->next);
		g->iov[s] = (struct iovec){ g->buf[s], BLK };
	}
	g->next++;
	g->inflight++;
	store_vol_write(g->v, lba, &g->iov[s], 1, 0, fig_done, &g->slot_of[s]);
}

static double fig_run(struct fig *g)
{
	struct timespec t0, t1;

	for (int s = 0; s < FIG_QD; s++) {
		g->slot_of[s] = s;
		if (!g->src)
			g->buf[s] = malloc(BLK);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int s = 0; s < FIG_QD; s++)
		fig_issue(g, s);
	tl_wait_count(g->loop, &g->inflight);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(g->err, 0);
	for (int s = 0; s < FIG_QD; s++)
		free(g->buf[s]);
	return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* Pool used bytes after writing the same image into nvols volumes. */
static uint64_t fig_image(int dedup, int nvols, uint64_t img_bytes, double *secs)
{
	struct fx f;
	uint8_t *img = image(99, (uint32_t)(img_bytes / BLK));
	uint64_t used;

	cache_bytes = 128u << 20;       /* as sluiced has one by default */
	fx_init(&f, (uint64_t)(dedup > 0 ? 2 : nvols + 2) * img_bytes + (256ull << 20),
	        16u << 20, dedup);
	cache_bytes = 0;
	*secs = 0;
	for (int i = 0; i < nvols; i++) {
		char name[16];
		struct fig g = { .loop = f.loop, .src = img, .chunk = 1u << 20,
		                 .end = img_bytes >> 20 };

		snprintf(name, sizeof(name), "vm%d", i);
		g.v = vol_new(&f, name, img_bytes, false);
		*secs += fig_run(&g);
		store_vol_close(g.v);
	}
	used = stats(f.pool).used_bytes;
	if (dedup > 0)
		printf("dedup: %" PRIu64 " blocks by reference, %" PRIu64 " mismatches, "
		       "%" PRIu64 " written again, %" PRIu64 " segments cleaned\n",
		       stats(f.pool).dedup_blocks, stats(f.pool).dedup_mismatches,
		       stats(f.pool).dedup_rewrites, stats(f.pool).cleaned_segments);
	assert_int_equal(tl_pool_close(f.loop, f.pool), 0);
	f.pool = NULL;
	fx_fini(&f);
	free(img);
	return used;
}

static double fig_iops(int dedup, uint64_t writes)
{
	struct fx f;
	struct fig g = { .end = writes, .blocks = (1ull << 30) / BLK };
	double s;

	fx_init(&f, 4ull << 30, 16u << 20, dedup);
	g.loop = f.loop;
	g.rng = 12345;
	g.v = vol_new(&f, "v", 1ull << 30, false);
	s = fig_run(&g);
	store_vol_close(g.v);
	assert_int_equal(tl_pool_close(f.loop, f.pool), 0);
	f.pool = NULL;
	fx_fini(&f);
	return (double)writes / s;
}

static void test_figures(void **state)
{
	const char *e = getenv("SLUICE_DEDUP_FIGURES");
	int nvols = 100;
	uint64_t img = 64ull << 20, on, off;
	double son, soff, ion, ioff;

	(void)state;
	if (!e || strcmp(e, "1")) {
		/* make check: a small run of the same, checked */
		nvols = 8;
		img = 4ull << 20;
	}
	on = fig_image(1, nvols, img, &son);
	off = fig_image(-1, nvols, img, &soff);
	printf("dedup: %d volumes written with the same %" PRIu64 " MiB image (read cache "
	       "128 MiB): pool used %" PRIu64 " KiB with dedup (%.1f s), %" PRIu64 " KiB "
	       "without (%.1f s)\n",
	       nvols, img >> 20, on >> 10, son, off >> 10, soff);
	assert_int_equal(on, img);
	assert_int_equal(off, img * (uint64_t)nvols);
	if (!e || strcmp(e, "1"))
		return;
	ioff = fig_iops(-1, 200000);
	ion = fig_iops(1, 200000);
	printf("dedup: 4 KiB random writes of unique data, QD %d, write-through: "
	       "%.0f IOPS without dedup, %.0f with (%.1f%%)\n", FIG_QD, ioff, ion,
	       100.0 * (ion - ioff) / ioff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stored_once),
		cmocka_unit_test(test_unaligned_bypass),
		cmocka_unit_test(test_forced_collision),
		cmocka_unit_test(test_delete_and_overwrite),
		cmocka_unit_test(test_void_reference),
		cmocka_unit_test(test_cleaner_moves_shared),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_setting_and_restart),
		cmocka_unit_test(test_power_cuts),
		cmocka_unit_test(test_figures),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

/* tests/unit/test_cache.c: the store's read cache (store/cache.h) on a real
 * pool file.
 *
 * What a user relies on: a read never returns anything but the newest
 * data of the range, whatever the cache held before an overwrite, an
 * unmap, a rollback, a delete or the cleaner moving the block; the cache
 * stays within its bound; a block shared by many clones is cached once.
 * The randomized test runs with a cache of a few blocks (eviction all the
 * time), sector-granular writes (so the cleaner packs data off 4 KiB
 * device blocks) and a small pool (so the cleaner runs), checking every
 * read against a reference. Seeds are printed; replay with SLUICE_SEED.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"
#include "tests/lib/testlib.h"

#define BLK             4096u
#define SPB             (BLK / 512)     /* sectors per block */
#define TINY_CACHE      (16u * 4200)    /* about 16 blocks with their index */

struct fx {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	uint64_t           pool_bytes;
	uint64_t           cache_bytes;
	uint64_t           rng;
};

static int pool_open(struct fx *f)
{
	struct store_pool_opts o = {
		.path = f->path, .create_bytes = f->pool_bytes, .segment_bytes = 1u << 20,
		.log = tl_log, .read_cache_bytes = f->cache_bytes,
	};

	return store_pool_open(f->loop, &o, &f->pool);
}

static void fx_init(struct fx *f, const char *name, uint64_t pool_bytes, uint64_t cache)
{
	static int n;

	memset(f, 0, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->pool_bytes = pool_bytes;
	f->cache_bytes = cache;
	snprintf(f->path, sizeof(f->path), "%s/cache-%d", tl_scratch_dir(), n++);
	assert_int_equal(pool_open(f), 0);
	f->rng = tl_seed(name);
}

static void fx_fini(struct fx *f)
{
	if (f->pool)
		assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	unlink(f->path);
	ev_loop_destroy(f->loop);
}

static void reopen(struct fx *f)
{
	assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	assert_int_equal(pool_open(f), 0);
}

static struct store_pool_stats stats(struct fx *f)
{
	struct store_pool_stats st;

	store_pool_get_stats(f->pool, &st);
	return st;
}

static struct store_vol *vol_open(struct fx *f, const char *name)
{
	struct store_vol *v;

	assert_int_equal(store_vol_open(f->pool, name, &v), 0);
	return v;
}

/* A sector's contents: who wrote it and when, spread over its 512 bytes. */
static void sector_fill(uint8_t *buf, uint64_t tag)
{
	for (size_t i = 0; i < 512; i += 8) {
		memcpy(buf + i, &tag, 8);
		tag = tag * 6364136223846793005ull + 1442695040888963407ull;
	}
}

static void fill(uint8_t *buf, uint64_t sectors, uint64_t tag)
{
	for (uint64_t s = 0; s < sectors; s++)
		sector_fill(buf + s * 512, tag + s);
}

static void expect_read(struct fx *f, struct store_vol *v, uint64_t lba, uint64_t sectors,
                        uint64_t tag)
{
	uint8_t *got = malloc(sectors * 512), *want = malloc(sectors * 512);

	assert_int_equal(tl_read(f->loop, v, lba, got, sectors * 512), 0);
	if (tag)
		fill(want, sectors, tag);
	else
		memset(want, 0, sectors * 512);
	assert_memory_equal(got, want, sectors * 512);
	free(got);
	free(want);
}

static void write_tag(struct fx *f, struct store_vol *v, uint64_t lba, uint64_t sectors,
                      uint64_t tag)
{
	uint8_t *buf = malloc(sectors * 512);

	fill(buf, sectors, tag);
	assert_int_equal(tl_write(f->loop, v, lba, buf, sectors * 512, 0), 0);
	free(buf);
}

/* A write is cached as it completes; a reopen starts empty; a miss is
 * cached and the next read of it hits. */
static void test_hit_miss(void **state)
{
	struct fx f;
	struct store_vol *v;
	struct store_pool_stats st;

	(void)state;
	fx_init(&f, "hit_miss", 64ull << 20, 4u << 20);
	st = stats(&f);
	assert_int_equal(st.read_cache_capacity, 4u << 20);
	assert_int_equal(st.read_cache_bytes, 0);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", 8192, false), 0);
	v = vol_open(&f, "v");
	write_tag(&f, v, 0, 4 * SPB, 100);
	assert_int_equal(stats(&f).read_cache_bytes, 4 * BLK);
	expect_read(&f, v, 0, 4 * SPB, 100);
	st = stats(&f);
	assert_int_equal(st.read_cache_hits, 4);
	assert_int_equal(st.read_cache_misses, 0);
	/* a hole costs the cache nothing */
	expect_read(&f, v, 64, SPB, 0);
	assert_int_equal(stats(&f).read_cache_misses, 0);
	store_vol_close(v);

	reopen(&f);
	st = stats(&f);
	assert_int_equal(st.read_cache_bytes, 0);
	assert_int_equal(st.read_cache_hits + st.read_cache_misses, 0);
	v = vol_open(&f, "v");
	expect_read(&f, v, 0, 4 * SPB, 100);
	st = stats(&f);
	assert_int_equal(st.read_cache_misses, 4);
	assert_int_equal(st.read_cache_bytes, 4 * BLK);
	expect_read(&f, v, SPB, 2 * SPB, 100 + SPB);    /* part of what was read */
	expect_read(&f, v, 3, 10, 103);                 /* sectors across blocks */
	st = stats(&f);
	assert_int_equal(st.read_cache_misses, 4);
	assert_int_equal(st.read_cache_hits, 2 + 2);
	store_vol_close(v);
	fx_fini(&f);
}

/* Reading much more than the cache holds keeps it under its bound, and
 * everything still reads right. */
static void test_eviction_bound(void **state)
{
	struct fx f;
	struct store_vol *v;
	struct store_pool_stats st;
	const uint64_t blocks = 512;

	(void)state;
	fx_init(&f, "eviction_bound", 64ull << 20, TINY_CACHE);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", blocks * SPB, true), 0);
	v = vol_open(&f, "v");
	for (uint64_t b = 0; b < blocks; b += 16)
		write_tag(&f, v, b * SPB, 16 * SPB, 1000 + b * SPB);
	assert_true(stats(&f).read_cache_bytes <= TINY_CACHE);
	for (int pass = 0; pass < 3; pass++) {
		for (uint64_t i = 0; i < blocks; i++) {
			uint64_t b = tl_rand_below(&f.rng, blocks);

			expect_read(&f, v, b * SPB, SPB, 1000 + b * SPB);
			st = stats(&f);
			assert_true(st.read_cache_bytes <= st.read_cache_capacity);
		}
	}
	st = stats(&f);
	assert_true(st.read_cache_bytes >= 8 * BLK);
	assert_true(st.read_cache_misses > blocks);     /* it cannot hold them all */
	/* a 128 KiB read when the cache holds 16 blocks: the rest goes past it */
	expect_read(&f, v, 64 * SPB, 32 * SPB, 1000 + 64 * SPB);
	store_vol_close(v);
	fx_fini(&f);
}

/* Blocks read again after they came in stay while writes of ten times the
 * cache stream through it (an image import beside running desktops). */
static void test_scan_resistance(void **state)
{
	struct fx f;
	struct store_vol *v;
	uint64_t h0;

	(void)state;
	fx_init(&f, "scan_resistance", 64ull << 20, 64 * 4200);    /* ~64 blocks */
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", 2048 * SPB, true), 0);
	v = vol_open(&f, "v");
	write_tag(&f, v, 0, 16 * SPB, 5000);
	expect_read(&f, v, 0, 16 * SPB, 5000);          /* hits: read again */
	assert_int_equal(stats(&f).read_cache_hits, 16);
	for (uint64_t b = 100; b < 100 + 640; b++)
		write_tag(&f, v, b * SPB, SPB, 9000 + b * SPB);
	h0 = stats(&f).read_cache_hits;
	expect_read(&f, v, 0, 16 * SPB, 5000);
	assert_int_equal(stats(&f).read_cache_hits - h0, 16);
	assert_true(stats(&f).read_cache_bytes <= stats(&f).read_cache_capacity);
	store_vol_close(v);
	fx_fini(&f);
}

/* A cache that cannot be had (here: past what it can index) does not keep
 * the pool from opening: it serves without one. */
static void test_no_memory(void **state)
{
	struct fx f;
	struct store_vol *v;

	(void)state;
	fx_init(&f, "no_memory", 64ull << 20, 1ull << 62);
	assert_int_equal(stats(&f).read_cache_capacity, 0);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", 4096, false), 0);
	v = vol_open(&f, "v");
	write_tag(&f, v, 0, 4 * SPB, 11);
	expect_read(&f, v, 0, 4 * SPB, 11);
	assert_int_equal(stats(&f).read_cache_hits + stats(&f).read_cache_misses, 0);
	store_vol_close(v);
	fx_fini(&f);
}

/* Overwrite, unmap, snapshot, rollback, delete and a name used again: a
 * cached block is never read for data that is no longer there. */
static void test_invalidation(void **state)
{
	struct fx f;
	struct store_vol *v, *s;

	(void)state;
	fx_init(&f, "invalidation", 64ull << 20, 4u << 20);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", 4096, false), 0);
	v = vol_open(&f, "v");
	write_tag(&f, v, 0, 2 * SPB, 1);
	expect_read(&f, v, 0, 2 * SPB, 1);
	write_tag(&f, v, 0, SPB, 2);                    /* a whole block */
	expect_read(&f, v, 0, SPB, 2);
	write_tag(&f, v, SPB + 3, 2, 3);                /* two sectors inside one */
	expect_read(&f, v, SPB, 3, 1 + SPB);
	expect_read(&f, v, SPB + 3, 2, 3);
	expect_read(&f, v, SPB + 5, 3, 1 + SPB + 5);
	assert_int_equal(tl_unmap(f.loop, v, 0, SPB), 0);
	expect_read(&f, v, 0, SPB, 0);

	write_tag(&f, v, 0, SPB, 4);
	assert_int_equal(tl_snap_create(f.loop, f.pool, "v", "s"), 0);
	write_tag(&f, v, 0, SPB, 5);
	assert_int_equal(store_vol_open(f.pool, "v@s", &s), 0);
	expect_read(&f, s, 0, SPB, 4);
	expect_read(&f, v, 0, SPB, 5);
	store_vol_close(s);
	store_vol_close(v);
	assert_int_equal(tl_snap_rollback(f.loop, f.pool, "v", "s"), 0);
	v = vol_open(&f, "v");
	expect_read(&f, v, 0, SPB, 4);
	store_vol_close(v);

	/* the same name again: a new volume reads zeros, then its own data */
	assert_int_equal(tl_snap_delete(f.loop, f.pool, "v", "s"), 0);
	assert_int_equal(tl_vol_delete(f.loop, f.pool, "v"), 0);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", 4096, false), 0);
	v = vol_open(&f, "v");
	expect_read(&f, v, 0, 2 * SPB, 0);
	write_tag(&f, v, 0, SPB, 6);
	expect_read(&f, v, 0, SPB, 6);
	store_vol_close(v);
	fx_fini(&f);
}

/* One image, 500 clones of its snapshot, the same block read through
 * each: one miss, 499 hits, one block held. */
#define CLONES 500

static void test_clones_share(void **state)
{
	struct fx f;
	struct store_vol *v;
	struct store_pool_stats st;
	struct tl_op op[CLONES];
	char name[32];

	(void)state;
	fx_init(&f, "clones_share", 64ull << 20, 4u << 20);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "img", 8192, false), 0);
	v = vol_open(&f, "img");
	write_tag(&f, v, 0, 16 * SPB, 77);
	store_vol_close(v);
	assert_int_equal(tl_snap_create(f.loop, f.pool, "img", "gold"), 0);
	for (int i = 0; i < CLONES; i++) {
		snprintf(name, sizeof(name), "desk%03d", i);
		op[i] = (struct tl_op){ 0 };
		store_vol_clone(f.pool, "img@gold", name, false, tl_done, &op[i]);
	}
	for (int i = 0; i < CLONES; i++)
		assert_int_equal(tl_wait(f.loop, &op[i]), 0);
	reopen(&f);                     /* an empty cache */
	for (int i = 0; i < CLONES; i++) {
		snprintf(name, sizeof(name), "desk%03d", i);
		v = vol_open(&f, name);
		expect_read(&f, v, 5 * SPB, SPB, 77 + 5 * SPB);
		store_vol_close(v);
	}
	st = stats(&f);
	print_message("500 clones, one block each: %" PRIu64 " miss, %" PRIu64 " hits, "
	              "%" PRIu64 " bytes cached\n", st.read_cache_misses, st.read_cache_hits,
	              st.read_cache_bytes);
	assert_int_equal(st.read_cache_misses, 1);
	assert_int_equal(st.read_cache_hits, CLONES - 1);
	assert_int_equal(st.read_cache_bytes, BLK);
	fx_fini(&f);
}

/* ---- the model: random I/O against a reference ------------------------- */

#define M_SECTORS       (6u << 11)      /* 6 MiB volumes in a 32 MiB pool */
#define M_VOLS          3

struct model {
	struct fx         f;
	struct store_vol *v[M_VOLS];    /* "a", its clone "c" and the snapshot "a@s" */
	uint64_t         *ref[M_VOLS];  /* tag per sector; 0: zeros */
	uint64_t          next_tag;
	uint8_t          *buf;
	int               last_vol;     /* the last write, read back often */
	uint64_t          last_lba, last_n;
	uint64_t          hits, misses, cleaned; /* over every open */
};

static void model_check(struct model *m, int i, uint64_t lba, uint64_t n)
{
	uint8_t *want = malloc(n * 512);

	assert_int_equal(tl_read(m->f.loop, m->v[i], lba, m->buf, n * 512), 0);
	for (uint64_t s = 0; s < n; s++) {
		if (m->ref[i][lba + s])
			sector_fill(want + s * 512, m->ref[i][lba + s]);
		else
			memset(want + s * 512, 0, 512);
	}
	if (memcmp(want, m->buf, n * 512)) {
		for (uint64_t s = 0; s < n; s++)
			if (memcmp(want + s * 512, m->buf + s * 512, 512))
				fail_msg("volume %d sector %" PRIu64 " reads wrong (want tag %"
				         PRIu64 ")", i, lba + s, m->ref[i][lba + s]);
	}
	free(want);
}

static void model_write(struct model *m, int i, uint64_t lba, uint64_t n)
{
	for (uint64_t s = 0; s < n; s++) {
		m->ref[i][lba + s] = m->next_tag + s;
		sector_fill(m->buf + s * 512, m->next_tag + s);
	}
	m->next_tag += n;
	assert_int_equal(tl_write(m->f.loop, m->v[i], lba, m->buf, n * 512, 0), 0);
	m->last_vol = i;
	m->last_lba = lba;
	m->last_n = n;
}

static void model_step(struct model *m)
{
	uint64_t r = tl_rand_below(&m->f.rng, 100);
	int i = (int)tl_rand_below(&m->f.rng, 2);       /* writes: "a" or "c" */
	/* mostly whole blocks, as initiators write; a fifth sector-granular */
	bool sectors = tl_rand_below(&m->f.rng, 5) == 0;
	uint64_t n = sectors ? 1 + tl_rand_below(&m->f.rng, 40)
	                     : SPB * (1 + tl_rand_below(&m->f.rng, 32));
	uint64_t lba = tl_rand_below(&m->f.rng, M_SECTORS - n);

	if (!sectors)
		lba -= lba % SPB;
	if (r < 45) {
		model_write(m, i, lba, n);
	} else if (r < 50) {
		assert_int_equal(tl_unmap(m->f.loop, m->v[i], lba, n), 0);
		memset(&m->ref[i][lba], 0, n * sizeof(uint64_t));
	} else if (r < 65 && m->last_n) {
		model_check(m, m->last_vol, m->last_lba, m->last_n);
	} else {
		model_check(m, (int)tl_rand_below(&m->f.rng, M_VOLS), lba, n);
	}
}

static void model_check_all(struct model *m)
{
	for (int i = 0; i < M_VOLS; i++)
		for (uint64_t lba = 0; lba < M_SECTORS; lba += 256)
			model_check(m, i, lba, 256);
}

static void model_count(struct model *m)
{
	struct store_pool_stats st = stats(&m->f);

	m->hits += st.read_cache_hits;
	m->misses += st.read_cache_misses;
	m->cleaned += st.cleaned_segments;
	assert_true(st.read_cache_bytes <= st.read_cache_capacity);
}

static void model_open_all(struct model *m)
{
	m->v[0] = vol_open(&m->f, "a");
	m->v[1] = vol_open(&m->f, "c");
	m->v[2] = vol_open(&m->f, "a@s");
}

static void model_close_all(struct model *m)
{
	for (int i = 0; i < M_VOLS; i++)
		store_vol_close(m->v[i]);
}

/* Writes of several times the pool with a 16-block cache: the cleaner
 * moves data all the time, and every read matches the reference. */
static void test_model_tiny_cache(void **state)
{
	struct model m = { .next_tag = 1 };
	struct store_vol *a;

	(void)state;
	fx_init(&m.f, "model_tiny_cache", 32ull << 20, TINY_CACHE);
	m.buf = malloc(64 * BLK);
	for (int i = 0; i < M_VOLS; i++)
		m.ref[i] = calloc(M_SECTORS, sizeof(uint64_t));
	assert_int_equal(tl_vol_create(m.f.loop, m.f.pool, "a", M_SECTORS, true), 0);
	a = vol_open(&m.f, "a");
	m.v[0] = a;
	for (uint64_t lba = 0; lba < M_SECTORS / 2; lba += 64 * SPB)
		model_write(&m, 0, lba, 64 * SPB);
	store_vol_close(a);
	assert_int_equal(tl_snap_create(m.f.loop, m.f.pool, "a", "s"), 0);
	assert_int_equal(tl_vol_clone(m.f.loop, m.f.pool, "a@s", "c", true), 0);
	memcpy(m.ref[1], m.ref[0], M_SECTORS * sizeof(uint64_t));
	memcpy(m.ref[2], m.ref[0], M_SECTORS * sizeof(uint64_t));
	model_open_all(&m);
	for (int step = 0; step < 12000; step++) {
		model_step(&m);
		if (step % 4000 == 3999) {
			model_check_all(&m);
			model_close_all(&m);
			model_count(&m);
			reopen(&m.f);
			model_open_all(&m);
		}
	}
	model_check_all(&m);
	model_close_all(&m);
	model_count(&m);
	print_message("model: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
	              " segments cleaned\n", m.hits, m.misses, m.cleaned);
	assert_true(m.hits > 0 && m.cleaned > 0);
	assert_int_equal(store_pool_check(m.f.pool, tl_log, NULL), 0);
	for (int i = 0; i < M_VOLS; i++)
		free(m.ref[i]);
	free(m.buf);
	fx_fini(&m.f);
}

/* The cleaner moves blocks the cache holds: they still read right, and so
 * does everything it did not hold. */
static void test_cleaner_move(void **state)
{
	struct fx f;
	struct store_vol *v;
	const uint64_t blocks = 3072;   /* 12 MiB in a 32 MiB pool */
	uint64_t *tag = calloc(blocks, sizeof(*tag)), t = 1, before;

	(void)state;
	fx_init(&f, "cleaner_move", 32ull << 20, 1u << 20);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", blocks * SPB, true), 0);
	v = vol_open(&f, "v");
	for (uint64_t b = 0; b < blocks; b += 32, t += 32 * SPB) {
		write_tag(&f, v, b * SPB, 32 * SPB, t);
		for (uint64_t k = 0; k < 32; k++)
			tag[b + k] = t + k * SPB;
	}
	/* read some into the cache, then overwrite others until the cleaner
	 * has moved plenty */
	for (uint64_t b = 0; b < 128; b++)
		expect_read(&f, v, b * 7 % blocks * SPB, SPB, tag[b * 7 % blocks]);
	before = stats(&f).cleaned_segments;
	for (int i = 0; i < 20000; i++) {
		uint64_t b = tl_rand_below(&f.rng, blocks);

		if (b % 7 == 0 && b < 128 * 7)
			continue;       /* the cached ones stay put: the cleaner moves them */
		write_tag(&f, v, b * SPB, SPB, t);
		tag[b] = t;
		t += SPB;
	}
	assert_true(stats(&f).cleaned_segments > before);
	for (uint64_t b = 0; b < blocks; b++)
		expect_read(&f, v, b * SPB, SPB, tag[b]);
	store_vol_close(v);
	assert_int_equal(store_pool_check(f.pool, tl_log, NULL), 0);
	free(tag);
	fx_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss),
		cmocka_unit_test(test_eviction_bound),
		cmocka_unit_test(test_scan_resistance),
		cmocka_unit_test(test_no_memory),
		cmocka_unit_test(test_invalidation),
		cmocka_unit_test(test_clones_share),
		cmocka_unit_test(test_cleaner_move),
		cmocka_unit_test(test_model_tiny_cache),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

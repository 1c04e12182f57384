/* tests/unit/test_clean.c: the segment cleaner on a real pool file.
 *
 * A small pool, a volume filling most of it, and random 4 KiB overwrites
 * of many times the pool's size: without the cleaner the log would run out
 * of segments after one pass. Every block's newest contents are kept in a
 * reference (a version per block, the data derived from it), and the
 * volume must read exactly that, before and after a restart, with
 * sluice-fsck's check finding nothing. Snapshots and clones taken along
 * the way must keep reading their point in time while the cleaner moves
 * the data they share. Seeds are printed; replay with SLUICE_SEED.
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

#define POOL_BYTES      (64ull << 20)
#define SEG_BYTES       (1u << 20)
#define BLK             4096u
#define VOL_BLOCKS      ((uint32_t)(POOL_BYTES * 6 / 10 / BLK))   /* 60% full */
#define QD              32

struct fx {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	uint64_t           rng;
};

static int pool_open(struct fx *f)
{
	struct store_pool_opts o = {
		.path = f->path, .create_bytes = POOL_BYTES, .segment_bytes = SEG_BYTES,
		.log = tl_log, .read_cache_bytes = 1u << 20,  /* reads meet moved data */
	};

	return store_pool_open(f->loop, &o, &f->pool);
}

static void fx_init(struct fx *f, const char *name)
{
	static int n;

	memset(f, 0, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(f->path, sizeof(f->path), "%s/clean-%d", tl_scratch_dir(), n++);
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

/* Block b at version ver: its first 8 bytes say which, the rest follows. */
static void block_fill(uint8_t *buf, uint32_t b, uint32_t ver)
{
	uint64_t x = (uint64_t)b << 32 | ver;

	for (size_t i = 0; i < BLK; i += 8) {
		memcpy(buf + i, &x, 8);
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	}
}

struct writer {
	struct fx        *f;
	struct store_vol *v;
	uint32_t         *ver;          /* the reference: newest version per block */
	uint64_t          left;         /* writes still to issue */
	int               inflight, err;
	uint8_t           buf[QD][BLK];
	struct iovec      iov[QD];
	uint32_t          blk[QD];
	int               slot_of[QD];
	double            skew;         /* fraction of writes going to 10% of blocks */
};

static void writer_issue(struct writer *w, int s);

static void writer_done(void *arg, int err)
{
	int *slot = arg;
	struct writer *w = (struct writer *)((char *)(slot - *slot) - offsetof(struct writer, slot_of));

	w->inflight--;
	if (err && !w->err)
		w->err = err;
	if (!w->err)
		writer_issue(w, *slot);
}

static void writer_issue(struct writer *w, int s)
{
	uint32_t b;

	if (w->left == 0)
		return;
	w->left--;
	/* skewed: a tenth of the blocks takes w->skew of the writes */
	if ((double)tl_rand_below(&w->f->rng, 1000) < w->skew * 1000)
		b = (uint32_t)tl_rand_below(&w->f->rng, VOL_BLOCKS / 10);
	else
		b = (uint32_t)tl_rand_below(&w->f->rng, VOL_BLOCKS);
	/* one write per block at a time: the newest is the one issued last */
	for (int k = 0; k < QD; k++)
		if (k != s && w->iov[k].iov_len && w->blk[k] == b)
			b = (b + 1) % VOL_BLOCKS;
	w->blk[s] = b;
	w->ver[b]++;
	block_fill(w->buf[s], b, w->ver[b]);
	w->iov[s] = (struct iovec){ .iov_base = w->buf[s], .iov_len = BLK };
	w->inflight++;
	store_vol_write(w->v, (uint64_t)b * (BLK / 512), &w->iov[s], 1, 0, writer_done,
	                &w->slot_of[s]);
}

/* Writes n random blocks with QD in flight; 0 or the first error. */
static int write_random(struct fx *f, const char *vol, uint32_t *ver, uint64_t n, double skew)
{
	struct writer *w = calloc(1, sizeof(*w));
	int err;

	w->f = f;
	w->ver = ver;
	w->left = n;
	w->skew = skew;
	assert_int_equal(store_vol_open(f->pool, vol, &w->v), 0);
	for (int s = 0; s < QD; s++) {
		w->slot_of[s] = s;
		w->blk[s] = UINT32_MAX;
	}
	for (int s = 0; s < QD; s++)
		writer_issue(w, s);
	tl_wait_count(f->loop, &w->inflight);
	store_vol_close(w->v);
	err = w->err;
	free(w);
	return err;
}

static void expect_volume(struct fx *f, const char *vol, const uint32_t *ver)
{
	uint8_t *got = malloc(64 * BLK), want[BLK];
	struct store_vol *v;

	assert_int_equal(store_vol_open(f->pool, vol, &v), 0);
	for (uint32_t b = 0; b < VOL_BLOCKS; b += 64) {
		uint32_t n = VOL_BLOCKS - b < 64 ? VOL_BLOCKS - b : 64;

		assert_int_equal(tl_read(f->loop, v, (uint64_t)b * (BLK / 512), got, n * BLK), 0);
		for (uint32_t i = 0; i < n; i++) {
			if (ver[b + i] == 0)
				memset(want, 0, BLK);
			else
				block_fill(want, b + i, ver[b + i]);
			if (memcmp(want, got + (size_t)i * BLK, BLK))
				fail_msg("%s: block %u does not read version %u", vol, b + i,
				         ver[b + i]);
		}
	}
	store_vol_close(v);
	free(got);
}

static void check_clean(struct fx *f)
{
	assert_int_equal(store_pool_check(f->pool, tl_log, NULL), 0);
}

static uint64_t cleaned(struct fx *f)
{
	struct store_pool_stats st;

	store_pool_get_stats(f->pool, &st);
	return st.cleaned_segments;
}

/* Overwrites of ten times the pool: the cleaner keeps space coming, and
 * every block reads its newest version, across restarts too. */
static void test_clean_overwrites(void **state)
{
	struct fx f;
	uint32_t *ver = calloc(VOL_BLOCKS, sizeof(*ver));
	struct store_pool_stats st;

	(void)state;
	fx_init(&f, "clean/overwrites");
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", (uint64_t)VOL_BLOCKS * 8, false), 0);
	for (int round = 0; round < 5; round++) {
		assert_int_equal(write_random(&f, "v", ver, POOL_BYTES * 2 / BLK, 0), 0);
		expect_volume(&f, "v", ver);
		if (round % 2)
			reopen(&f);
	}
	store_pool_get_stats(f.pool, &st);
	print_message("clean: %" PRIu64 " segments cleaned, %" PRIu64 " MiB copied, "
	              "write amplification %.2f\n", st.cleaned_segments,
	              st.cleaner_write_bytes >> 20,
	              (double)st.device_write_bytes / (double)st.host_write_bytes);
	assert_true(cleaned(&f) > 0 || st.cleaned_segments > 0);
	check_clean(&f);
	reopen(&f);
	expect_volume(&f, "v", ver);
	check_clean(&f);
	fx_fini(&f);
	free(ver);
}

/* A write-back volume whose writer never flushes: the cleaner's MOVE
 * records flush for it, and the space still comes back. */
static void test_clean_write_back(void **state)
{
	struct fx f;
	uint32_t *ver = calloc(VOL_BLOCKS, sizeof(*ver));

	(void)state;
	fx_init(&f, "clean/write-back");
	assert_int_equal(tl_vol_create(f.loop, f.pool, "wb", (uint64_t)VOL_BLOCKS * 8, true), 0);
	assert_int_equal(write_random(&f, "wb", ver, POOL_BYTES * 3 / BLK, 0), 0);
	assert_true(cleaned(&f) > 0);
	expect_volume(&f, "wb", ver);
	reopen(&f);             /* a clean close flushes: everything is there */
	expect_volume(&f, "wb", ver);
	check_clean(&f);
	fx_fini(&f);
	free(ver);
}

/* Snapshots and a clone keep their point in time while the cleaner moves
 * the data they share with the volume. */
static void test_clean_shared(void **state)
{
	struct fx f;
	uint32_t *ver = calloc(VOL_BLOCKS, sizeof(*ver));
	uint32_t *at_s1 = calloc(VOL_BLOCKS, sizeof(*ver));
	uint32_t *clone = calloc(VOL_BLOCKS, sizeof(*ver));

	(void)state;
	fx_init(&f, "clean/shared");
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", (uint64_t)VOL_BLOCKS * 8, false), 0);
	/* half the volume, so that snapshot and volume fit together */
	assert_int_equal(write_random(&f, "v", ver, VOL_BLOCKS / 4, 0), 0);
	assert_int_equal(tl_snap_create(f.loop, f.pool, "v", "s1"), 0);
	memcpy(at_s1, ver, VOL_BLOCKS * sizeof(*ver));
	assert_int_equal(tl_vol_clone(f.loop, f.pool, "v@s1", "c", false), 0);
	memcpy(clone, ver, VOL_BLOCKS * sizeof(*ver));
	/* overwrite a tenth of the blocks over and over: the rest stays
	 * shared by volume, snapshot and clone while its segments are cleaned */
	for (int round = 0; round < 4; round++) {
		assert_int_equal(write_random(&f, "v", ver, POOL_BYTES / BLK, 1.0), 0);
		assert_int_equal(write_random(&f, "c", clone, POOL_BYTES / BLK / 4, 1.0), 0);
		expect_volume(&f, "v@s1", at_s1);
	}
	print_message("clean/shared: %" PRIu64 " segments cleaned\n", cleaned(&f));
	assert_true(cleaned(&f) > 0);
	expect_volume(&f, "v", ver);
	expect_volume(&f, "c", clone);
	check_clean(&f);
	reopen(&f);
	expect_volume(&f, "v@s1", at_s1);
	expect_volume(&f, "v", ver);
	expect_volume(&f, "c", clone);
	check_clean(&f);
	/* everything gone: the space comes back */
	assert_int_equal(tl_snap_delete(f.loop, f.pool, "v", "s1"), 0);
	assert_int_equal(tl_vol_delete(f.loop, f.pool, "v"), 0);
	assert_int_equal(tl_vol_delete(f.loop, f.pool, "c"), 0);
	assert_int_equal(tl_checkpoint(f.loop, f.pool), 0);
	{
		struct store_pool_stats st;

		store_pool_get_stats(f.pool, &st);
		assert_int_equal(st.used_bytes, 0);
		/* all but the log's head, its next segment and the checkpoint's */
		assert_true(st.free_segments + 4 >= st.segments);
	}
	fx_fini(&f);
	free(ver);
	free(at_s1);
	free(clone);
}

/* A pool that is really full fails writes with out of space, loses
 * nothing, and takes writes again once space is freed. */
static void test_clean_full_pool(void **state)
{
	struct fx f;
	uint32_t *ver = calloc(VOL_BLOCKS * 2, sizeof(*ver));
	struct store_vol *v;
	int rc;

	(void)state;
	fx_init(&f, "clean/full");
	assert_int_equal(tl_vol_create(f.loop, f.pool, "v", (uint64_t)VOL_BLOCKS * 8, false), 0);
	assert_int_equal(tl_vol_create(f.loop, f.pool, "w", (uint64_t)VOL_BLOCKS * 8, false), 0);
	assert_int_equal(write_random(&f, "v", ver, VOL_BLOCKS * 3, 0), 0);
	rc = write_random(&f, "w", ver + VOL_BLOCKS, VOL_BLOCKS * 3, 0);
	assert_int_equal(rc, -ENOSPC);
	expect_volume(&f, "v", ver);
	assert_int_equal(store_vol_open(f.pool, "w", &v), 0);
	assert_int_equal(tl_unmap(f.loop, v, 0, (uint64_t)VOL_BLOCKS * 8), 0);
	store_vol_close(v);
	memset(ver + VOL_BLOCKS, 0, VOL_BLOCKS * sizeof(*ver));
	assert_int_equal(write_random(&f, "v", ver, VOL_BLOCKS, 0), 0);
	expect_volume(&f, "v", ver);
	check_clean(&f);
	fx_fini(&f);
	free(ver);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_overwrites),
		cmocka_unit_test(test_clean_shared),
		cmocka_unit_test(test_clean_write_back),
		cmocka_unit_test(test_clean_full_pool),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

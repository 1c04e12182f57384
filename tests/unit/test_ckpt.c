/* tests/unit/test_ckpt.c: a checkpoint saved a slice at a time while the
 * pool goes on (store/ckpt.c, map.h: struct store_map_freeze).
 *
 * A volume of many extents and a snapshot of it. A checkpoint is asked for
 * with its slices made tiny, so that the maps are saved over many loop
 * iterations; meanwhile 4 KiB writes and unmaps go on, a second snapshot
 * is taken and the first deleted (its frozen root still being saved). More
 * writes follow the checkpoint. The durable bytes are copied twice: while
 * the checkpoint is half saved, and after it and the writes behind it. Each
 * copy is opened as after a power cut (recovery loads the newest whole
 * checkpoint and replays the log after it) and must hold exactly what was
 * acknowledged: every block of the volume its last contents, the second
 * snapshot the volume as it was when taken, the first snapshot gone once
 * its delete was acknowledged; store_pool_check passes. The test also
 * checks that writes were acknowledged while the checkpoint was being
 * saved, or it would prove nothing. Prints its seed; SLUICE_SEED replays.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/internal.h"     /* store_ckpt_slice_ns, _nodes */
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define POOL_BYTES   (96ull << 20)
#define SEG_BYTES    (1u << 20)
#define BLOCKS       8192u              /* 4 KiB blocks of the volume: 32 MiB */
#define BLK_SECTORS  (4096 / STORE_SECTOR)
#define ROUND        48                 /* writes in flight at once */

/* A block's contents: its number and version in every word (version 0:
 * never written or unmapped, zeros). */
static void block_fill(uint64_t *w, uint32_t blk, uint32_t ver)
{
	for (unsigned i = 0; i < 4096 / 8; i++)
		w[i] = ver ? ((uint64_t)blk << 32 | ver) ^ (uint64_t)i << 20 : 0;
}

struct slot {
	struct ck   *ck;
	uint32_t     blk, ver;
	uint64_t     buf[4096 / 8];
	struct iovec iov;
};

struct ck {
	struct ev_loop    *loop;
	struct crash_backend *cb;
	struct store_pool *pool;
	struct store_vol  *vol;
	uint64_t           rng;
	uint32_t           ver[BLOCKS];         /* acknowledged contents */
	uint32_t           maybe[BLOCKS];       /* a failed write's, or the same */
	bool               cut;                 /* writes may fail: the power is cut */
	uint32_t           next_ver;
	struct slot        slot[ROUND];
	int                pending;
	bool               ckpt_busy;
	int                ckpt_err;
	uint64_t           acked_during;       /* while the checkpoint was saved */
};

static void io_done(void *arg, int err)
{
	struct slot *s = arg;

	if (err) {              /* after a power cut: there whole, or not */
		assert_true(s->ck->cut);
		s->ck->maybe[s->blk] = s->ver;
		s->ck->pending--;
		return;
	}
	s->ck->ver[s->blk] = s->ck->maybe[s->blk] = s->ver;
	s->ck->acked_during += s->ck->ckpt_busy;
	s->ck->pending--;
}

/* ROUND writes (a tenth of them unmaps) of distinct random blocks among
 * the first blocks, all acknowledged before it returns; or, with next, the
 * fill's next blocks: the even ones, then the odd ones, so that no two
 * extents join. */
static void round_blocks(struct ck *c, uint32_t *next, uint32_t blocks)
{
	for (unsigned i = 0; i < ROUND; i++) {
		struct slot *s = &c->slot[i];
		bool unmap = !next && tl_rand_below(&c->rng, 10) == 0;

		s->ck = c;
		if (next) {
			uint32_t k = (*next)++ % blocks;

			s->blk = 2 * k < blocks ? 2 * k : 2 * k - blocks + 1;
		} else {
			s->blk = (uint32_t)tl_rand_below(&c->rng, blocks / ROUND) * ROUND + i;
		}
		s->ver = unmap ? 0 : ++c->next_ver;
		c->pending++;
		if (unmap) {
			store_vol_unmap(c->vol, (uint64_t)s->blk * BLK_SECTORS, BLK_SECTORS, io_done, s);
			continue;
		}
		block_fill(s->buf, s->blk, s->ver);
		s->iov = (struct iovec){ .iov_base = s->buf, .iov_len = 4096 };
		store_vol_write(c->vol, (uint64_t)s->blk * BLK_SECTORS, &s->iov, 1, 0, io_done, s);
	}
	tl_wait_count(c->loop, &c->pending);
}

static void round_run(struct ck *c, uint32_t *next)
{
	round_blocks(c, next, BLOCKS);
}

/* Warnings and errors of the pool: a checkpoint that does not load (and
 * so an open from the one before it) is a warning. */
static unsigned warnings;

static void ck_log(void *arg, enum store_log_level level, const char *msg)
{
	if (level <= STORE_LOG_WARN) {
		warnings++;
		if (!tl_log_quiet)
			fprintf(stderr, "test_ckpt: store: %s\n", msg);
	}
	tl_log(arg, level, msg);
}

static int pool_open(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **out)
{
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .create_bytes = POOL_BYTES,
		.segment_bytes = SEG_BYTES, .checkpoint_secs = 1u << 30,
		.checkpoint_log_bytes = 1ull << 40, .log = ck_log,
	};

	return store_pool_open(loop, &o, out);
}

/* Every block of name (of blocks) reads as want or (not NULL) alt says. */
static void expect_some(struct ev_loop *loop, struct store_pool *p, const char *name,
                        const uint32_t *want, const uint32_t *alt, uint32_t blocks)
{
	uint64_t *got = malloc(64 * 4096), exp[4096 / 8];
	struct store_vol *v;

	assert_non_null(got);
	assert_int_equal(store_vol_open(p, name, &v), 0);
	for (uint32_t b = 0; b < blocks; b += 64) {
		assert_int_equal(tl_read(loop, v, (uint64_t)b * BLK_SECTORS, got, 64 * 4096), 0);
		for (uint32_t i = 0; i < 64; i++) {
			block_fill(exp, b + i, want[b + i]);
			if (memcmp(exp, got + i * 512, 4096) == 0)
				continue;
			block_fill(exp, b + i, alt ? alt[b + i] : want[b + i]);
			if (memcmp(exp, got + i * 512, 4096))
				fail_msg("%s block %u: not version %u (or %u)", name, b + i,
				         want[b + i], alt ? alt[b + i] : want[b + i]);
		}
	}
	store_vol_close(v);
	free(got);
}

static void expect_blocks(struct ev_loop *loop, struct store_pool *p, const char *name,
                          const uint32_t *want)
{
	expect_some(loop, p, name, want, NULL, BLOCKS);
}

/* Opens a copy of what is durable now, as after a power cut, and checks
 * it: vol as vol_ver, vol@s2 as s2_ver (NULL: not there), vol@s1 there
 * or not. */
static void check_image(struct ck *c, const uint32_t *vol_ver, const uint32_t *s2_ver,
                        bool s1, const char *when)
{
	struct crash_backend *cb = crash_backend_create(POOL_BYTES, crash_backend_durable(c->cb));
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_vol_info vi;
	struct store_pool_stats st;
	struct store_pool *p;

	assert_non_null(cb);
	warnings = 0;
	assert_int_equal(pool_open(loop, cb, &p), 0);
	assert_int_equal(warnings, 0);  /* from the newest checkpoint */
	store_pool_get_stats(p, &st);
	printf("test_ckpt: %s: %" PRIu64 " log records replayed\n", when, st.replayed_records);
	assert_true(st.replayed_records > 0);
	expect_blocks(loop, p, "vol", vol_ver);
	if (s2_ver)
		expect_blocks(loop, p, "vol@s2", s2_ver);
	else
		assert_int_equal(store_vol_stat(p, "vol@s2", &vi), -ENOENT);
	assert_int_equal(store_vol_stat(p, "vol@s1", &vi), s1 ? 0 : -ENOENT);
	assert_int_equal(store_pool_check(p, tl_log, NULL), 0);
	assert_int_equal(tl_pool_close(loop, p), 0);
	assert_int_equal(warnings, 0);
	ev_loop_destroy(loop);
	crash_backend_free(cb);
}

static void ckpt_done(void *arg, int err)
{
	struct ck *c = arg;

	c->ckpt_err = err;
	c->ckpt_busy = false;
}

static void test_ckpt_sliced_while_writing(void **state)
{
	struct ck *c = calloc(1, sizeof(*c));
	uint32_t *s2 = calloc(BLOCKS, sizeof(*s2));
	uint64_t slice_ns = store_ckpt_slice_ns;
	unsigned slice_nodes = store_ckpt_slice_nodes, rounds = 0;
	bool s2_taken = false, s1_gone = false;
	uint32_t next = 0;

	(void)state;
	assert_non_null(c);
	assert_non_null(s2);
	c->rng = tl_seed("test_ckpt_sliced_while_writing");
	c->loop = ev_loop_new(EVFLAG_AUTO);
	c->cb = crash_backend_create(POOL_BYTES, NULL);
	assert_int_equal(pool_open(c->loop, c->cb, &c->pool), 0);
	assert_int_equal(tl_vol_create(c->loop, c->pool, "vol", BLOCKS * BLK_SECTORS, false), 0);
	assert_int_equal(store_vol_open(c->pool, "vol", &c->vol), 0);
	while (next < BLOCKS)
		round_run(c, &next);
	for (uint32_t i = 0; i < 40; i++)
		round_run(c, NULL);
	assert_int_equal(tl_snap_create(c->loop, c->pool, "vol", "s1"), 0);
	for (uint32_t i = 0; i < 20; i++)
		round_run(c, NULL);

	/* a node or so per slice: the checkpoint spans many loop iterations */
	store_ckpt_slice_ns = 1;
	store_ckpt_slice_nodes = 1;
	c->ckpt_busy = true;
	store_pool_checkpoint(c->pool, ckpt_done, c);
	while (c->ckpt_busy) {
		round_run(c, NULL);
		rounds++;
		if (rounds == 2 && c->ckpt_busy) {
			assert_int_equal(tl_snap_create(c->loop, c->pool, "vol", "s2"), 0);
			memcpy(s2, c->ver, sizeof(c->ver));
			s2_taken = true;
		} else if (rounds == 4 && c->ckpt_busy) {
			assert_int_equal(tl_snap_delete(c->loop, c->pool, "vol", "s1"), 0);
			s1_gone = true;
		} else if (rounds == 5 && c->ckpt_busy) {
			/* what is durable now: the checkpoint before and the log */
			check_image(c, c->ver, s2_taken ? s2 : NULL, !s1_gone, "mid-checkpoint");
		}
	}
	store_ckpt_slice_ns = slice_ns;
	store_ckpt_slice_nodes = slice_nodes;
	assert_int_equal(c->ckpt_err, 0);
	printf("test_ckpt: checkpoint saved over %u rounds of writes, %" PRIu64
	       " acknowledged meanwhile\n", rounds, c->acked_during);
	assert_true(s2_taken && s1_gone && rounds > 5);
	assert_true(c->acked_during > 5 * ROUND);
	for (uint32_t i = 0; i < 10; i++)
		round_run(c, NULL);
	check_image(c, c->ver, s2, false, "after the checkpoint");

	/* and a clean restart: the final checkpoint, sliced too */
	store_vol_close(c->vol);
	assert_int_equal(tl_pool_close(c->loop, c->pool), 0);
	warnings = 0;
	assert_int_equal(pool_open(c->loop, c->cb, &c->pool), 0);
	assert_int_equal(warnings, 0);
	expect_blocks(c->loop, c->pool, "vol", c->ver);
	expect_blocks(c->loop, c->pool, "vol@s2", s2);
	assert_int_equal(store_pool_check(c->pool, tl_log, NULL), 0);
	assert_int_equal(tl_pool_close(c->loop, c->pool), 0);
	ev_loop_destroy(c->loop);
	crash_backend_free(c->cb);
	free(s2);
	free(c);
}

/* Power cuts at every bio from the start of a checkpoint spread over
 * rounds of writes and a snapshot taken meanwhile, until the workload ends
 * before the cut: each image (unflushed writes kept, lost or torn) reopens
 * with every acknowledged block, a block whose write failed old or new and
 * whole, an acknowledged snapshot as it was taken, and store_pool_check
 * passes. */
#define CUT_BLOCKS 4096u

static void test_ckpt_power_cuts(void **state)
{
	uint64_t seed = tl_seed("test_ckpt_power_cuts"), slice_ns = store_ckpt_slice_ns;
	unsigned slice_nodes = store_ckpt_slice_nodes, cuts = 0, snaps = 0, in_ckpt = 0;
	struct ck *c = calloc(1, sizeof(*c));
	uint32_t *base_ver = calloc(CUT_BLOCKS, sizeof(*base_ver));
	uint32_t *s2 = calloc(CUT_BLOCKS, sizeof(*s2)), next = 0;
	uint8_t *base = malloc(POOL_BYTES);

	(void)state;
	assert_non_null(c);
	assert_non_null(base_ver);
	assert_non_null(s2);
	assert_non_null(base);
	c->rng = seed;
	c->loop = ev_loop_new(EVFLAG_AUTO);
	c->cb = crash_backend_create(POOL_BYTES, NULL);
	assert_int_equal(pool_open(c->loop, c->cb, &c->pool), 0);
	assert_int_equal(tl_vol_create(c->loop, c->pool, "vol", CUT_BLOCKS * BLK_SECTORS, false), 0);
	assert_int_equal(store_vol_open(c->pool, "vol", &c->vol), 0);
	while (next < CUT_BLOCKS)
		round_blocks(c, &next, CUT_BLOCKS);
	for (int i = 0; i < 8; i++)
		round_blocks(c, NULL, CUT_BLOCKS);
	store_vol_close(c->vol);
	assert_int_equal(tl_pool_close(c->loop, c->pool), 0);
	memcpy(base, crash_backend_durable(c->cb), POOL_BYTES);
	memcpy(base_ver, c->ver, CUT_BLOCKS * sizeof(*base_ver));
	crash_backend_free(c->cb);

	tl_log_quiet = true;
	for (uint64_t cut = 1;; cut++) {
		uint64_t rng = seed ^ cut;
		struct crash_backend *img;
		struct store_pool *p;
		bool snapped = false, fired;

		memcpy(c->ver, base_ver, CUT_BLOCKS * sizeof(*base_ver));
		memcpy(c->maybe, base_ver, CUT_BLOCKS * sizeof(*base_ver));
		c->rng = seed;
		c->cut = true;
		c->cb = crash_backend_create(POOL_BYTES, base);
		assert_int_equal(pool_open(c->loop, c->cb, &c->pool), 0);
		assert_int_equal(store_vol_open(c->pool, "vol", &c->vol), 0);
		store_ckpt_slice_ns = 1;
		store_ckpt_slice_nodes = 1;
		crash_backend_arm(c->cb, cut);
		c->ckpt_busy = true;
		store_pool_checkpoint(c->pool, ckpt_done, c);
		for (int r = 0; r < 16; r++) {
			round_blocks(c, NULL, CUT_BLOCKS);
			if (r == 1 && tl_snap_create(c->loop, c->pool, "vol", "s2") == 0) {
				memcpy(s2, c->ver, CUT_BLOCKS * sizeof(*s2));
				snapped = true;
			}
		}
		while (c->ckpt_busy)
			ev_run(c->loop, EVRUN_ONCE);
		store_ckpt_slice_ns = slice_ns;
		store_ckpt_slice_nodes = slice_nodes;
		fired = crash_backend_fired(c->cb);
		store_vol_close(c->vol);
		tl_pool_close(c->loop, c->pool);        /* fails after the cut */
		if (!fired) {
			assert_int_equal(c->ckpt_err, 0);
			crash_backend_free(c->cb);
			break;
		}
		img = crash_backend_after_cut(c->cb, &rng);
		crash_backend_free(c->cb);
		assert_non_null(img);
		if (pool_open(c->loop, img, &p) != 0)
			fail_msg("cut at bio %" PRIu64 ": the pool does not open", cut);
		expect_some(c->loop, p, "vol", c->ver, c->maybe, CUT_BLOCKS);
		if (snapped)
			expect_some(c->loop, p, "vol@s2", s2, NULL, CUT_BLOCKS);
		assert_int_equal(store_pool_check(p, tl_log, NULL), 0);
		assert_int_equal(tl_pool_close(c->loop, p), 0);
		crash_backend_free(img);
		cuts++;
		snaps += snapped;
		in_ckpt += c->ckpt_err != 0;    /* cut before the checkpoint was done */
	}
	tl_log_quiet = false;
	printf("test_ckpt: %u power cuts, %u before the checkpoint was done, %u after the "
	       "snapshot\n", cuts, in_ckpt, snaps);
	assert_true(cuts > 20 && in_ckpt > 5 && snaps > 0);
	ev_loop_destroy(c->loop);
	free(base);
	free(base_ver);
	free(s2);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ckpt_sliced_while_writing),
		cmocka_unit_test(test_ckpt_power_cuts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

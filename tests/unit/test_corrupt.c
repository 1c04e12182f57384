/* tests/unit/test_corrupt.c: damaged pools give a clear error or a correct
 * recovery, never a crash or wrong data returned in silence.
 *
 * The scenario, the damage and the judge are in tests/lib/pool_damage.h,
 * which says what is allowed. Here: superblock copies, checkpoint roots,
 * payloads and log records damaged on purpose, one case at a time, and then
 * hundreds of seeded random mutations (bits flipped, garbage, zeros, a block
 * written to the wrong place, the device truncated) of superblocks, roots,
 * payloads, log records, live data and random places of both images.
 *
 * Seeds are printed; replay with SLUICE_SEED=<seed>. SLUICE_CORRUPT_N sets
 * the number of random mutations per image; SLUICE_TEST_VERBOSE prints each.
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

#include "store/format.h"
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/pool_damage.h"
#include "tests/lib/pool_image.h"
#include "tests/lib/testlib.h"

/* Both images are built once for the whole group: the tests only read them. */
static struct scenario tail_scn, clean_scn;

static int group_setup(void **state)
{
	(void)state;
	scenarios_build(&tail_scn, &clean_scn);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	scenario_free(&tail_scn);
	scenario_free(&clean_scn);
	return 0;
}

/* ---- superblock ------------------------------------------------------------------ */

/* Every field of copy A damaged in turn: copy B must carry the pool. */
static void test_corrupt_super_a_uses_copy_b(void **state)
{
#define SPOT(f) { #f, offsetof(struct fmt_super, f) }
	static const struct { const char *what; uint64_t off; } spots[] = {
		SPOT(magic), { "magic, last byte", 7 }, SPOT(version), SPOT(crc), SPOT(uuid),
		SPOT(pool_bytes), SPOT(segment_bytes), SPOT(segments), SPOT(created),
		{ "padding", 3000 },
	};
#undef SPOT
	unsigned failed = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		struct damage d;
		struct verdict v = { 0 };
		int rc;

		damage_init(&d, &tail_scn, spots[i].what);
		damage_flip(d.img, spots[i].off, 1);
		d.must_open = true;
		damage_classify(&d, &tail_scn);
		judge_damage(&tail_scn, &d, &v, &rc);
		if (v.fail) {
			printf("superblock copy A, bit flipped in %s: %s: %s\n", spots[i].what,
			       judge_fail_name[v.fail], v.why);
			failed++;
		}
		damage_free(&d);
	}
	if (failed)
		fail_msg("%u of %zu single-bit flips in superblock copy A were not mended "
		         "from copy B", failed, sizeof(spots) / sizeof(spots[0]));
}

/* Zeros or garbage over all of copy A: copy B carries the pool. */
static void test_corrupt_super_a_wiped(void **state)
{
	struct damage d;

	(void)state;
	damage_init(&d, &tail_scn, "superblock copy A zeroed");
	memset(d.img, 0, 4096);
	d.must_open = true;
	assert_int_equal(expect_sound(&tail_scn, &d), 0);
	damage_free(&d);
	damage_init(&d, &tail_scn, "superblock copy A garbage after the magic");
	for (int i = 8; i < 4096; i++)
		d.img[i] = (uint8_t)model_mix((uint64_t)i);
	d.must_open = true;
	assert_int_equal(expect_sound(&tail_scn, &d), 0);
	damage_free(&d);
}

/* Both copies damaged: a clear error, and the device left as it was. */
static void test_corrupt_super_both_refused(void **state)
{
	struct damage d;

	(void)state;
	damage_init(&d, &tail_scn, "both superblock copies, a bit in segment_bytes");
	damage_flip(d.img, FMT_SB_OFF(0) + offsetof(struct fmt_super, segment_bytes), 3);
	damage_flip(d.img, FMT_SB_OFF(1) + offsetof(struct fmt_super, segment_bytes), 3);
	assert_int_equal(expect_sound(&tail_scn, &d), STORE_ECORRUPT);
	damage_free(&d);
	damage_init(&d, &tail_scn, "both superblock copies zeroed");
	memset(d.img, 0, 8192);
	assert_true(expect_sound(&tail_scn, &d) < 0);
	damage_free(&d);
}

/* A pool of a newer format version: STORE_EVERSION, untouched. */
static void test_corrupt_super_newer_version(void **state)
{
	struct damage d;

	(void)state;
	damage_init(&d, &tail_scn, "superblock version 2, CRCs valid");
	for (int copy = 0; copy < 2; copy++) {
		((struct fmt_super *)(d.img + FMT_SB_OFF(copy)))->version = FMT_VERSION + 1;
		img_seal_super(d.img, d.size, copy);
	}
	assert_int_equal(expect_sound(&tail_scn, &d), STORE_EVERSION);
	damage_free(&d);
}

/* A device shorter than the superblock says: refused at every length. */
static void test_corrupt_truncated_refused(void **state)
{
	const uint64_t sizes[] = {
		4096, 8192, 12288, FMT_DATA_OFF - 4096, FMT_DATA_OFF, FMT_DATA_OFF + SEG_BYTES,
		POOL_BYTES / 2, POOL_BYTES - SEG_BYTES, POOL_BYTES - 4096, POOL_BYTES - 1,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct damage d;
		int rc;

		damage_init(&d, &tail_scn, "truncated");
		snprintf(d.desc, sizeof(d.desc), "device truncated to %" PRIu64 " bytes", sizes[i]);
		d.size = sizes[i];
		rc = expect_sound(&tail_scn, &d);
		damage_free(&d);
		if (rc == 0)
			fail_msg("device truncated to %" PRIu64 " bytes: opened", sizes[i]);
	}
}

/* ---- checkpoint roots and payloads ---------------------------------------------------- */

/* The newest root damaged right after it was written: the older root and
 * its log tail are complete, and recovery from them is exact. */
static void test_corrupt_newest_root_falls_back(void **state)
{
	const struct scenario *s = &tail_scn;
	struct damage d;

	(void)state;
	damage_init(&d, s, "newest root, a bit in its generation");
	damage_flip(d.img, FMT_ROOT_OFF(s->im.newest) + offsetof(struct fmt_root, generation), 0);
	assert_int_equal(expect_sound(s, &d), 0);
	damage_free(&d);
	damage_init(&d, s, "newest payload, a bit in the middle");
	damage_flip(d.img, img_seg_off(&s->im, s->im.root[s->im.newest].seg[0]) +
	            s->im.root[s->im.newest].payload_bytes / 2, 4);
	assert_int_equal(expect_sound(s, &d), 0);
	damage_free(&d);
}

static void test_corrupt_both_roots_refused(void **state)
{
	struct damage d;

	(void)state;
	damage_init(&d, &tail_scn, "both roots, a bit in log_seq");
	for (int slot = 0; slot < 2; slot++)
		damage_flip(d.img, FMT_ROOT_OFF(slot) + offsetof(struct fmt_root, log_seq), 2);
	assert_int_equal(expect_sound(&tail_scn, &d), STORE_ECORRUPT);
	damage_free(&d);
}

/* Both root blocks zeroed (a discard, a wiped range): the superblock says
 * this is a pool with data, so it is damage, not a pool never checkpointed,
 * and must not open as an empty pool. */
static void test_corrupt_roots_zeroed_refused(void **state)
{
	const struct scenario *s[] = { &tail_scn, &clean_scn };

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct damage d;

		damage_init(&d, s[i], i ? "both roots zeroed (clean image)" :
		                          "both roots zeroed (tail image)");
		memset(d.img + FMT_ROOT_OFF(0), 0, 8192);
		expect_sound(s[i], &d);
		damage_free(&d);
	}
}

/* ---- log records ------------------------------------------------------------------ */

/* A damaged record in the middle of the log tail, with valid records after
 * it: it and they were flushed, so it was acknowledged, and a torn write is
 * never followed by a valid flushed record (D2). Stopping replay there is
 * silent loss of everything after it; the pool must refuse instead. */
static void test_corrupt_log_record_mid_tail(void **state)
{
	const struct scenario *s = &tail_scn;
	const struct img_rec *r = img_rec_find(&s->im, s->ckpt_seq + 1);
	struct damage d;

	(void)state;
	assert_non_null(r);
	assert_true(r != s->last);
	damage_init(&d, s, "first record of the log tail, a bit of its data");
	damage_flip(d.img, r->off + r->hdr_bytes + 100, 5);
	expect_sound(s, &d);
	damage_free(&d);
	damage_init(&d, s, "first record of the log tail, a bit of its entry");
	damage_flip(d.img, img_rec_entries_off(r) + offsetof(struct fmt_rec_entry, lba), 0);
	expect_sound(s, &d);
	damage_free(&d);
}

/* Damage in the last record looks like a torn write: its write may be
 * lost, everything else must be exact. */
static void test_corrupt_log_last_record(void **state)
{
	const struct scenario *s = &tail_scn;
	struct damage d;

	(void)state;
	damage_init(&d, s, "last record, a bit of its data");
	damage_flip(d.img, s->last->off + s->last->hdr_bytes + 7, 6);
	assert_int_equal(expect_sound(s, &d), 0);
	damage_free(&d);
}

/* Live data of a record older than the checkpoint: open does not re-read
 * it, reads may return it damaged, and store_pool_check must say so. */
static void test_corrupt_old_data_found_by_check(void **state)
{
	const struct scenario *s = &clean_scn;
	const struct loc *l = &s->loc[ALPHA][1];        /* written first of all */
	struct damage d;

	(void)state;
	assert_true(l->off && l->seq <= s->ckpt_seq);
	damage_init(&d, s, "live pre-checkpoint data of alpha sector 1");
	damage_flip(d.img, l->off + 3, 0);
	assert_int_equal(expect_sound(s, &d), 0);
	assert_int_equal(d.old_hit, 1);
	damage_free(&d);
}

/* ---- random damage ------------------------------------------------------------------ */

enum target { T_SB_A, T_SB_BOTH, T_ROOT_NEW, T_ROOT_OLD, T_ROOT_BOTH, T_PAYLOAD_NEW,
              T_PAYLOAD_OLD, T_TAIL_REC, T_TAIL_HDR, T_OLD_DATA, T_ANY, T_TRUNCATE,
              T_COUNT };
static const char *const target_name[T_COUNT] = {
	"superblock A", "both superblocks", "newest root", "older root", "both roots",
	"newest payload", "older payload", "a tail record", "a tail record header",
	"live old data", "anywhere", "truncation",
};

struct region {
	uint64_t off, len;
};

static struct region payload_region(const struct scenario *s, int slot)
{
	const struct fmt_root *r = &s->im.root[slot];
	uint64_t len = r->payload_bytes < SEG_BYTES ? r->payload_bytes : SEG_BYTES;

	return (struct region){ img_seg_off(&s->im, r->seg[0]), len };
}

/* A random tail record (seq > ckpt_seq), or false when there is none. */
static bool tail_record(const struct scenario *s, uint64_t *rng, const struct img_rec **out)
{
	size_t first = s->im.nrecs;

	for (size_t i = 0; i < s->im.nrecs; i++)
		if (s->im.recs[i].seq > s->ckpt_seq && first == s->im.nrecs)
			first = i;
	if (first == s->im.nrecs)
		return false;
	*out = &s->im.recs[first + tl_rand_below(rng, s->im.nrecs - first)];
	return true;
}

static bool old_data_region(const struct scenario *s, uint64_t *rng, struct region *out)
{
	for (int tries = 0; tries < 1000; tries++) {
		int v = (int)tl_rand_below(rng, NVOL);
		uint64_t k = tl_rand_below(rng, VOL_MAX);
		const struct loc *l = &s->loc[v][k];

		if (s->final.v[v].exists && l->off && l->seq <= s->ckpt_seq) {
			*out = (struct region){ l->off, 512 };
			return true;
		}
	}
	return false;
}

/* The regions a target names (up to two), or 0 when it has none here. */
static int target_regions(const struct scenario *s, enum target t, uint64_t *rng,
                          struct region out[2])
{
	const struct img_rec *r;

	switch (t) {
	case T_SB_A:        out[0] = (struct region){ 0, 4096 }; return 1;
	case T_SB_BOTH:     out[0] = (struct region){ 0, 4096 };
	                    out[1] = (struct region){ 4096, 4096 }; return 2;
	case T_ROOT_NEW:    out[0] = (struct region){ FMT_ROOT_OFF(s->im.newest), 4096 }; return 1;
	case T_ROOT_OLD:    out[0] = (struct region){ FMT_ROOT_OFF(s->im.older), 4096 }; return 1;
	case T_ROOT_BOTH:   out[0] = (struct region){ FMT_ROOT_OFF(0), 4096 };
	                    out[1] = (struct region){ FMT_ROOT_OFF(1), 4096 }; return 2;
	case T_PAYLOAD_NEW: out[0] = payload_region(s, s->im.newest); return 1;
	case T_PAYLOAD_OLD: out[0] = payload_region(s, s->im.older); return 1;
	case T_TAIL_REC:
		if (!tail_record(s, rng, &r))
			return 0;
		out[0] = (struct region){ r->off, r->hdr_bytes + r->data_bytes };
		return 1;
	case T_TAIL_HDR:
		if (!tail_record(s, rng, &r))
			return 0;
		out[0] = (struct region){ r->off, r->hdr_bytes };
		return 1;
	case T_OLD_DATA:    return old_data_region(s, rng, out) ? 1 : 0;
	default:            out[0] = (struct region){ 0, s->size }; return 1;
	}
}

enum kind { K_FLIP, K_GARBAGE, K_ZERO, K_MISDIRECT, K_COUNT };
static const char *const kind_name[K_COUNT] = { "bit flips", "garbage", "zeros", "misdirected block" };

/* Applies one kind of damage inside region; describes it into buf. */
static void damage_region(struct damage *d, enum kind k, struct region g, uint64_t *rng,
                          char *buf, size_t cap)
{
	uint64_t len = 1 + tl_rand_below(rng, g.len < 4096 ? g.len : 4096);
	uint64_t off = g.off + tl_rand_below(rng, g.len - len + 1);

	switch (k) {
	case K_FLIP:
		len = 1 + tl_rand_below(rng, 3);
		for (uint64_t i = 0; i < len; i++)
			damage_flip(d->img, g.off + tl_rand_below(rng, g.len), (unsigned)tl_rand(rng));
		snprintf(buf, cap, "%" PRIu64 " bits near %" PRIu64, len, g.off);
		return;
	case K_GARBAGE:
		for (uint64_t i = 0; i < len; i++)
			d->img[off + i] = (uint8_t)tl_rand(rng);
		break;
	case K_ZERO:
		memset(d->img + off, 0, len);
		break;
	default: {
		uint64_t blocks = d->size / 4096, to = off & ~4095ull;
		uint64_t from = tl_rand_below(rng, blocks) * 4096;

		if (to + 4096 > d->size)
			to = d->size - 4096;
		memmove(d->img + to, d->img + from, 4096);
		snprintf(buf, cap, "block %" PRIu64 " copied over %" PRIu64, from, to);
		return;
	}
	}
	snprintf(buf, cap, "%" PRIu64 " bytes at %" PRIu64, len, off);
}

/* A random mutation of scenario s: target, kind, place, all from rng. */
static bool damage_random(struct damage *d, const struct scenario *s, uint64_t *rng,
                          unsigned n)
{
	enum target t = (enum target)tl_rand_below(rng, T_COUNT);
	enum kind k = (enum kind)tl_rand_below(rng, K_COUNT);
	struct region g[2];
	char where[2][80] = { "", "" };
	int nr = target_regions(s, t, rng, g);

	if (nr == 0)
		return false;
	damage_init(d, s, "");
	if (t == T_TRUNCATE) {
		d->size = tl_rand_below(rng, 2) ? (1 + tl_rand_below(rng, s->size / 4096 - 1)) * 4096
		                                : 4096 + tl_rand_below(rng, s->size - 4096);
		snprintf(d->desc, sizeof(d->desc), "#%u: truncated to %" PRIu64 " bytes", n, d->size);
		return true;
	}
	for (int i = 0; i < nr; i++)
		damage_region(d, k, g[i], rng, where[i], sizeof(where[i]));
	d->must_open = t == T_SB_A;
	snprintf(d->desc, sizeof(d->desc), "#%u: %s: %s, %s%s%s", n, target_name[t],
	         kind_name[k], where[0], nr > 1 ? "; " : "", where[1]);
	return true;
}

struct tally {
	unsigned tried, refused, opened, last_lost, old_found, read_err;
	unsigned fails[F_COUNT];
	char first[F_COUNT][320];
};

static void tally_add(struct tally *t, const struct damage *d, const struct verdict *v, int rc)
{
	t->tried++;
	if (damage_verbose())
		printf("  %s -> %s%s%s\n", d->desc, rc ? store_strerror(rc) : "opened",
		       v->fail ? ": FAIL: " : "", v->fail ? v->why : "");
	if (v->fail) {
		if (t->fails[v->fail]++ == 0)
			snprintf(t->first[v->fail], sizeof(t->first[0]), "%s: %s", d->desc, v->why);
		return;
	}
	if (rc) {
		t->refused++;
		return;
	}
	t->opened++;
	t->last_lost += v->last_lost;
	t->old_found += v->old_wrong;
	t->read_err += v->read_err;
}

static unsigned mutations_per_image(void)
{
	const char *env = getenv("SLUICE_CORRUPT_N");

	return env && *env ? (unsigned)strtoul(env, NULL, 0) : 200;
}

static void random_damage_run(const struct scenario *s, const char *name, uint64_t *rng,
                              struct tally *t)
{
	unsigned n = mutations_per_image();

	for (unsigned i = 0; i < n; i++) {
		struct damage d;
		struct verdict v = { 0 };
		int rc;

		if (!damage_random(&d, s, rng, i)) {
			i--;            /* that target does not exist here: draw again */
			continue;
		}
		damage_classify(&d, s);
		judge_damage(s, &d, &v, &rc);
		snprintf(d.desc + strlen(d.desc), sizeof(d.desc) - strlen(d.desc), " (%s)", name);
		tally_add(t, &d, &v, rc);
		damage_free(&d);
	}
}

/* The test: many seeded mutations of both images. */
static void test_corrupt_random_mutations(void **state)
{
	uint64_t seed = tl_seed("test_corrupt_random_mutations"), rng = seed;
	struct tally t = { 0 };
	unsigned failed = 0;

	(void)state;
	random_damage_run(&tail_scn, "tail image", &rng, &t);
	random_damage_run(&clean_scn, "clean image", &rng, &t);
	printf("corrupt: seed %" PRIu64 ": %u mutations tried: %u refused with an error, "
	       "%u opened (%u lost only the last record, %u with damaged old data found by "
	       "check, %u with read errors)\n", seed, t.tried, t.refused, t.opened,
	       t.last_lost, t.old_found, t.read_err);
	for (int f = 1; f < F_COUNT; f++) {
		if (!t.fails[f])
			continue;
		failed += t.fails[f];
		printf("corrupt: FAILED %u times: %s; first: %s\n", t.fails[f], judge_fail_name[f],
		       t.first[f]);
	}
	if (failed)
		fail_msg("%u of %u mutations handled wrongly (seed %" PRIu64 ")", failed, t.tried, seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corrupt_super_a_uses_copy_b),
		cmocka_unit_test(test_corrupt_super_a_wiped),
		cmocka_unit_test(test_corrupt_super_both_refused),
		cmocka_unit_test(test_corrupt_super_newer_version),
		cmocka_unit_test(test_corrupt_truncated_refused),
		cmocka_unit_test(test_corrupt_newest_root_falls_back),
		cmocka_unit_test(test_corrupt_both_roots_refused),
		cmocka_unit_test(test_corrupt_roots_zeroed_refused),
		cmocka_unit_test(test_corrupt_log_record_mid_tail),
		cmocka_unit_test(test_corrupt_log_last_record),
		cmocka_unit_test(test_corrupt_old_data_found_by_check),
		cmocka_unit_test(test_corrupt_random_mutations),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

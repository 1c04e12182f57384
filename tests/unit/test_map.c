/* tests/unit/test_map.c: the extent map (store/map.c) on its own.
 *
 * The random tests keep a reference: for each map, one log address per
 * sector (or a hole); and for every log address ever handed out, how many
 * leaves hold it (the running sum of what the ref callback reports) and how
 * many sectors of all the maps point at it. Log addresses are handed out
 * once, as the log does. The count must never go negative (a drop without
 * a take), and after every operation it must be non-zero for exactly the
 * addresses some map references: a count left over is space never freed,
 * a count of zero under a live mapping is data the cleaner may throw away.
 * The address table (store/addr.c) and the segments' space accounting are
 * built on that. Maps that share nodes (snapshots, clones) share one such
 * count, as they share a pool's address table.
 *
 * Seeds are printed; replay with SLUICE_SEED=<seed>.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/map.h"
#include "store/store.h"
#include "tests/lib/testlib.h"

#define HOLE UINT64_MAX

/* The log addresses of a test and what is known of them, shared by its
 * maps as a pool's maps share its address table. */
struct world {
	int32_t  *cnt;          /* per la: leaves holding it, summed from ref() */
	int32_t  *want;         /* per la: sectors of the reference maps on it */
	int32_t  *own;          /* per la: scratch for ref_unique(), all 0 */
	uint64_t  la_next, la_cap;
	int64_t   bad;          /* las where (cnt > 0) != (want > 0) */
	int64_t   unequal;      /* las where cnt != want (0 for a map alone) */
	int64_t   held;         /* sum of cnt */
	uint64_t  calls;        /* of ref() */
	uint64_t  nodes;        /* the maps' node counter */
	uint64_t  rng;
};

/* One map and its reference. */
struct ref {
	struct store_map m;
	struct world *w;
	uint64_t  sectors;
	uint64_t *la;           /* per sector, HOLE when unmapped */
};

/* ---- the reference ------------------------------------------------------ */

static bool la_wrong(const struct world *w, uint64_t la)
{
	return (w->cnt[la] > 0) != (w->want[la] > 0);
}

/* Every change to either count goes through here, so that w->bad says at
 * any time, in O(1), whether the map and the reference agree. */
static void la_change(struct world *w, uint64_t la, int dcnt, int dwant)
{
	bool was = la_wrong(w, la), was_unequal = w->cnt[la] != w->want[la];

	w->cnt[la] += dcnt;
	w->want[la] += dwant;
	if (w->cnt[la] < 0)
		fail_msg("la %" PRIu64 ": dropped more often than taken (%d)", la, w->cnt[la]);
	assert_true(w->want[la] >= 0);
	w->bad += (int)la_wrong(w, la) - (int)was;
	w->unequal += (int)(w->cnt[la] != w->want[la]) - (int)was_unequal;
}

static void world_ref(void *arg, uint64_t la, uint64_t len, int delta)
{
	struct world *w = arg;

	assert_true(delta == 1 || delta == -1);
	assert_true(len > 0);
	if (la >= w->la_next || len > w->la_next - la)
		fail_msg("ref(%" PRIu64 ", %" PRIu64 ", %d): never handed out", la, len, delta);
	for (uint64_t i = 0; i < len; i++)
		la_change(w, la + i, delta, 0);
	w->held += delta * (int64_t)len;
	w->calls++;
}

static void world_init(struct world *w, const char *test)
{
	memset(w, 0, sizeof(*w));
	w->rng = test ? tl_seed(test) : 1;
}

/* Hands out len fresh log addresses after a gap, as the log would after
 * other data. */
static uint64_t world_alloc(struct world *w, uint64_t len, uint64_t gap)
{
	uint64_t la = w->la_next + gap;

	if (la + len > w->la_cap) {
		uint64_t cap = (la + len) * 2;

		w->cnt = realloc(w->cnt, cap * sizeof(*w->cnt));
		w->want = realloc(w->want, cap * sizeof(*w->want));
		w->own = realloc(w->own, cap * sizeof(*w->own));
		assert_non_null(w->cnt);
		assert_non_null(w->want);
		assert_non_null(w->own);
		memset(w->cnt + w->la_cap, 0, (cap - w->la_cap) * sizeof(*w->cnt));
		memset(w->want + w->la_cap, 0, (cap - w->la_cap) * sizeof(*w->want));
		memset(w->own + w->la_cap, 0, (cap - w->la_cap) * sizeof(*w->own));
		w->la_cap = cap;
	}
	w->la_next = la + len;
	return la;
}

/* No operation is under way: the counts must agree with the reference. */
static void world_settled(const struct world *w, const char *after)
{
	if (w->bad != 0)
		fail_msg("after %s: %" PRId64 " log addresses held wrongly", after, w->bad);
}

/* The whole count, not just its running summary; and all of it back at
 * zero once every map is gone. */
static void world_check(const struct world *w)
{
	int64_t bad = 0, unequal = 0, held = 0;

	for (uint64_t la = 0; la < w->la_next; la++) {
		assert_true(w->cnt[la] >= 0);
		bad += la_wrong(w, la);
		unequal += w->cnt[la] != w->want[la];
		held += w->cnt[la];
	}
	assert_int_equal(bad, w->bad);
	assert_int_equal(bad, 0);
	assert_int_equal(unequal, w->unequal);
	assert_int_equal(held, w->held);
}

static void world_fini(struct world *w)
{
	world_check(w);
	assert_int_equal(w->held, 0);
	assert_int_equal(w->nodes, 0);
	for (uint64_t la = 0; la < w->la_next; la++)
		assert_int_equal(w->want[la], 0);
	free(w->cnt);
	free(w->want);
	free(w->own);
}

static void ref_init(struct ref *r, struct world *w, uint64_t sectors)
{
	memset(r, 0, sizeof(*r));
	store_map_init(&r->m, world_ref, w, &w->nodes);
	r->w = w;
	r->sectors = sectors;
	r->la = malloc(sectors * sizeof(*r->la));
	assert_non_null(r->la);
	for (uint64_t i = 0; i < sectors; i++)
		r->la[i] = HOLE;
}

/* A snapshot or clone: dst shares src's nodes and so its data. */
static void ref_share(struct ref *dst, const struct ref *src)
{
	ref_init(dst, src->w, src->sectors);
	store_map_share(&dst->m, &src->m);
	memcpy(dst->la, src->la, src->sectors * sizeof(*src->la));
	for (uint64_t i = 0; i < src->sectors; i++)
		if (src->la[i] != HOLE)
			la_change(src->w, src->la[i], 0, +1);
}

static void ref_drop(struct ref *r)
{
	store_map_fini(&r->m);
	assert_null(r->m.root);
	assert_int_equal(r->m.mapped, 0);
	for (uint64_t i = 0; i < r->sectors; i++)
		if (r->la[i] != HOLE)
			la_change(r->w, r->la[i], 0, -1);
	free(r->la);
	r->la = NULL;
}

/* Maps [lba, lba+len) to la.. in both. */
static void ref_put(struct ref *r, uint64_t lba, uint64_t len, uint64_t la)
{
	assert_int_equal(store_map_set(&r->m, lba, len, la), 0);
	for (uint64_t i = 0; i < len; i++) {
		if (r->la[lba + i] != HOLE)
			la_change(r->w, r->la[lba + i], 0, -1);
		r->la[lba + i] = la + i;
		la_change(r->w, la + i, 0, +1);
	}
}

static void ref_set(struct ref *r, uint64_t lba, uint64_t len, uint64_t gap)
{
	ref_put(r, lba, len, world_alloc(r->w, len, gap));
}

static void ref_unmap(struct ref *r, uint64_t lba, uint64_t len)
{
	assert_int_equal(store_map_unmap(&r->m, lba, len), 0);
	for (uint64_t i = lba; i < lba + len && i < r->sectors; i++) {
		if (r->la[i] != HOLE)
			la_change(r->w, r->la[i], 0, -1);
		r->la[i] = HOLE;
	}
}

struct visit_check {
	const struct ref *r;
	uint64_t a, b;          /* the range visited */
	uint64_t next;          /* pieces come in lba order, apart */
	uint64_t pieces, sectors;
};

static int ref_visit_cb(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	struct visit_check *c = arg;

	assert_true(len > 0);
	assert_true(lba >= c->next && lba >= c->a && lba + len <= c->b);
	for (uint64_t i = 0; i < len; i++) {
		if (c->r->la[lba + i] != la + i)
			fail_msg("sector %" PRIu64 ": map says la %" PRIu64 ", reference %" PRIu64,
			         lba + i, la + i, c->r->la[lba + i]);
		assert_true(c->r->w->cnt[la + i] > 0);
	}
	c->next = lba + len;
	c->pieces++;
	c->sectors += len;
	return 0;
}

/* The map's pieces of [a, b) are exactly the reference's mapped sectors. */
static void ref_check_range(const struct ref *r, uint64_t a, uint64_t b)
{
	struct visit_check c = { .r = r, .a = a, .b = b, .next = a };
	uint64_t want = 0;

	assert_int_equal(store_map_visit(&r->m, a, b - a, ref_visit_cb, &c), 0);
	for (uint64_t i = a; i < b; i++)
		want += r->la[i] != HOLE;
	assert_int_equal(c.sectors, want);
}

/* One map: content, counters and structure. */
static void ref_check_all(const struct ref *r)
{
	struct visit_check c = { .r = r, .a = 0, .b = r->sectors };
	uint64_t want = 0;

	assert_int_equal(store_map_verify(&r->m), 0);
	assert_int_equal(store_map_visit(&r->m, 0, r->sectors, ref_visit_cb, &c), 0);
	for (uint64_t i = 0; i < r->sectors; i++)
		want += r->la[i] != HOLE;
	assert_int_equal(c.sectors, want);
	/* visiting everything yields each extent once, unclipped */
	assert_int_equal(c.pieces, r->m.extents);
	assert_int_equal(c.sectors, r->m.mapped);
}

/* A map alone in its world: each of its sectors is in exactly one leaf,
 * and the leaves hold nothing else (the running counts say so in O(1)). */
static void ref_check_alone(const struct ref *r)
{
	ref_check_all(r);
	assert_int_equal(r->w->bad, 0);
	assert_int_equal(r->w->unequal, 0);
	assert_int_equal(r->w->held, r->m.mapped);
}

/* ---- random operations against the reference ---------------------------- */

struct rand_plan {
	uint64_t sectors, ops;
	unsigned check_every, verify_every;
};

/* Mostly short writes, some long; a third continue the previous one, so
 * extents also merge, and some leave a gap in log addresses so that they
 * cannot. */
static void rand_step(struct ref *r, uint64_t *prev_end)
{
	uint64_t *rng = &r->w->rng;
	unsigned kind = (unsigned)tl_rand_below(rng, 100);
	uint64_t len = tl_rand_below(rng, 20) ? 1 + tl_rand_below(rng, 64)
	                                      : 1 + tl_rand_below(rng, 4096);
	uint64_t lba = tl_rand_below(rng, 3) == 0 ? *prev_end : tl_rand_below(rng, r->sectors);

	if (lba >= r->sectors)
		lba = 0;
	if (len > r->sectors - lba)
		len = r->sectors - lba;
	if (kind < 70) {
		ref_set(r, lba, len, tl_rand_below(rng, 4) ? 0 : 1 + tl_rand_below(rng, 8));
		*prev_end = lba + len;
		world_settled(r->w, "set");
	} else if (kind < 90) {
		ref_unmap(r, lba, len);
		world_settled(r->w, "unmap");
	} else {
		uint64_t a = tl_rand_below(rng, r->sectors);
		uint64_t b = a + 1 + tl_rand_below(rng, r->sectors - a);

		ref_check_range(r, a, b);
	}
}

static void rand_run(const struct rand_plan *plan, const char *test)
{
	struct world w;
	struct ref r;
	uint64_t prev_end = 0;

	world_init(&w, test);
	ref_init(&r, &w, plan->sectors);
	for (uint64_t i = 1; i <= plan->ops; i++) {
		rand_step(&r, &prev_end);
		if (w.unequal)
			fail_msg("after op %" PRIu64 ": %" PRId64 " log addresses not held once",
			         i, w.unequal);
		if (i % plan->verify_every == 0 && store_map_verify(&r.m))
			fail_msg("store_map_verify failed after op %" PRIu64, i);
		if (i % plan->check_every == 0)
			ref_check_alone(&r);
	}
	ref_check_alone(&r);
	world_check(&w);
	printf("%s: %" PRIu64 " ops, %" PRIu64 " extents, %" PRIu64 " sectors mapped, "
	       "%" PRIu64 " nodes\n", test, plan->ops, r.m.extents, r.m.mapped, w.nodes);
	ref_drop(&r);
	world_fini(&w);
}

static void test_map_random_ops_match_reference(void **state)
{
	const struct rand_plan plan = {
		.sectors = 1 << 16, .ops = 20000, .check_every = 500, .verify_every = 50,
	};

	(void)state;
	rand_run(&plan, "test_map_random_ops_match_reference");
}

/* Smaller, so that every single step can be checked in full. */
static void test_map_verify_every_step(void **state)
{
	const struct rand_plan plan = {
		.sectors = 4096, .ops = 3000, .check_every = 1, .verify_every = 1,
	};

	(void)state;
	rand_run(&plan, "test_map_verify_every_step");
}

/* ---- splitting and merging ------------------------------------------------- */

struct ref_log {
	uint64_t la[8], len[8];
	int      delta[8];
	unsigned n;
};

static void log_ref(void *arg, uint64_t la, uint64_t len, int delta)
{
	struct ref_log *l = arg;

	assert_true(l->n < 8);
	l->la[l->n] = la;
	l->len[l->n] = len;
	l->delta[l->n++] = delta;
}

/* The log holds this change (in whatever order the map made them). */
static void expect_ref(const struct ref_log *l, uint64_t la, uint64_t len, int delta)
{
	for (unsigned i = 0; i < l->n; i++)
		if (l->la[i] == la && l->len[i] == len && l->delta[i] == delta)
			return;
	fail_msg("no ref(%" PRIu64 ", %" PRIu64 ", %+d) among %u", la, len, delta, l->n);
}

struct ext_list {
	uint64_t lba[8], len[8], la[8];
	unsigned n;
};

static int list_ext(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	struct ext_list *l = arg;

	assert_true(l->n < 8);
	l->lba[l->n] = lba;
	l->len[l->n] = len;
	l->la[l->n++] = la;
	return 0;
}

static void expect_ext(const struct ext_list *l, unsigned i, uint64_t lba, uint64_t len,
                       uint64_t la)
{
	assert_true(i < l->n);
	assert_int_equal(l->lba[i], lba);
	assert_int_equal(l->len[i], len);
	assert_int_equal(l->la[i], la);
}

/* Overwriting the middle of an extent leaves head, new piece and tail; the
 * tail still points at its old data, and only the overwritten part loses
 * its reference (cutting an extent in two is no change in who holds what). */
static void test_map_overwrite_splits_middle(void **state)
{
	struct store_map m;
	struct ref_log rl = { .n = 0 };
	struct ext_list el = { .n = 0 };
	uint64_t nodes = 0;

	(void)state;
	store_map_init(&m, log_ref, &rl, &nodes);
	assert_int_equal(store_map_set(&m, 0, 1000, 5000), 0);
	assert_int_equal(rl.n, 1);
	expect_ref(&rl, 5000, 1000, +1);
	rl.n = 0;
	assert_int_equal(store_map_set(&m, 400, 8, 9000), 0);
	assert_int_equal(rl.n, 2);
	expect_ref(&rl, 5400, 8, -1);
	expect_ref(&rl, 9000, 8, +1);
	assert_int_equal(m.extents, 3);
	assert_int_equal(m.mapped, 1000);
	assert_int_equal(store_map_visit(&m, 0, 2000, list_ext, &el), 0);
	assert_int_equal(el.n, 3);
	expect_ext(&el, 0, 0, 400, 5000);
	expect_ext(&el, 1, 400, 8, 9000);
	expect_ext(&el, 2, 408, 592, 5408);
	assert_int_equal(store_map_verify(&m), 0);
	/* and an unmap in the middle of the tail splits it in two */
	rl.n = 0;
	assert_int_equal(store_map_unmap(&m, 500, 10), 0);
	assert_int_equal(rl.n, 1);
	expect_ref(&rl, 5500, 10, -1);
	el.n = 0;
	assert_int_equal(store_map_visit(&m, 0, 2000, list_ext, &el), 0);
	assert_int_equal(el.n, 4);
	expect_ext(&el, 2, 408, 92, 5408);
	expect_ext(&el, 3, 510, 490, 5510);
	assert_int_equal(m.mapped, 990);
	assert_int_equal(store_map_verify(&m), 0);
	/* a write inside an extent of the data it holds (a range copied onto
	 * itself) leaves it one extent, its count as it was */
	rl.n = 0;
	assert_int_equal(store_map_set(&m, 420, 8, 5420), 0);
	assert_int_equal(rl.n, 2);
	expect_ref(&rl, 5420, 8, -1);
	expect_ref(&rl, 5420, 8, +1);
	el.n = 0;
	assert_int_equal(store_map_visit(&m, 0, 2000, list_ext, &el), 0);
	assert_int_equal(el.n, 4);
	expect_ext(&el, 2, 408, 92, 5408);
	assert_int_equal(m.mapped, 990);
	assert_int_equal(store_map_verify(&m), 0);
	/* the last reference to the leaf drops each extent */
	rl.n = 0;
	store_map_fini(&m);
	assert_int_equal(rl.n, 4);
	expect_ref(&rl, 5000, 400, -1);
	expect_ref(&rl, 9000, 8, -1);
	expect_ref(&rl, 5408, 92, -1);
	expect_ref(&rl, 5510, 490, -1);
	assert_int_equal(nodes, 0);
}

/* The map holds together; dropping it frees every node. */
static void map_verify_fini(struct store_map *m, const uint64_t *nodes)
{
	assert_int_equal(store_map_verify(m), 0);
	store_map_fini(m);
	assert_int_equal(*nodes, 0);
}

/* Replay's hints: peek says what is mapped at a sector (false at a hole),
 * in any leaf of a tree of three levels; neither it nor prefetch changes
 * anything. */
static void test_map_peek_and_prefetch(void **state)
{
	struct store_map m;
	uint64_t nodes = 0, la = 0, extents;

	(void)state;
	store_map_init(&m, NULL, NULL, &nodes);
	assert_false(store_map_peek(&m, 0, &la));
	store_map_prefetch(&m, 0);                      /* empty: nothing to touch */
	/* every other 8-sector block: 70000 extents, three levels */
	for (uint64_t i = 0; i < 70000; i++)
		assert_int_equal(store_map_set(&m, 16 * i, 8, 1000000 + 100 * i), 0);
	extents = m.extents;
	assert_int_equal(extents, 70000);
	for (uint64_t i = 0; i < 70000; i += 997) {
		store_map_prefetch(&m, 16 * i + 3);
		la = 0;
		assert_true(store_map_peek(&m, 16 * i + 3, &la));
		assert_int_equal(la, 1000000 + 100 * i + 3);
		assert_true(store_map_peek(&m, 16 * i, &la));
		assert_int_equal(la, 1000000 + 100 * i);
		assert_false(store_map_peek(&m, 16 * i + 8, &la));
		assert_false(store_map_peek(&m, 16 * i + 15, &la));
	}
	assert_false(store_map_peek(&m, 16 * 70000, &la));
	assert_int_equal(m.extents, extents);
	map_verify_fini(&m, &nodes);
}

/* Extents join when both lba and la continue; a gap in either keeps them
 * apart; a piece filling the hole between two joins all three. */
static void test_map_merges_contiguous(void **state)
{
	struct store_map m;
	struct ext_list el = { .n = 0 };

	(void)state;
	store_map_init(&m, NULL, NULL, NULL);
	assert_int_equal(store_map_set(&m, 0, 8, 100), 0);
	assert_int_equal(store_map_set(&m, 16, 8, 116), 0);
	assert_int_equal(m.extents, 2);
	assert_int_equal(store_map_set(&m, 8, 8, 108), 0);
	assert_int_equal(m.extents, 1);
	assert_int_equal(store_map_set(&m, 24, 8, 200), 0);        /* la apart */
	assert_int_equal(m.extents, 2);
	assert_int_equal(store_map_set(&m, 40, 8, 208), 0);        /* lba apart */
	assert_int_equal(m.extents, 3);
	assert_int_equal(store_map_set(&m, 32, 8, 200), 0);        /* joins the right */
	assert_int_equal(store_map_visit(&m, 0, 100, list_ext, &el), 0);
	assert_int_equal(el.n, 3);
	expect_ext(&el, 0, 0, 24, 100);
	expect_ext(&el, 1, 24, 8, 200);
	expect_ext(&el, 2, 32, 16, 200);
	assert_int_equal(store_map_verify(&m), 0);
	store_map_fini(&m);
}

/* A sequential fill, as a log writes it, collapses into a single extent;
 * the 1M sectors in 4 KiB writes must cost next to nothing. */
static void test_map_sequential_fill_merges(void **state)
{
	struct store_map m;
	uint64_t nodes = 0;

	(void)state;
	store_map_init(&m, NULL, NULL, &nodes);
	for (uint64_t lba = 0; lba < (1u << 20); lba += 8)
		assert_int_equal(store_map_set(&m, lba, 8, 4096 + lba), 0);
	printf("sequential fill of 1M sectors: %" PRIu64 " extents, %" PRIu64 " bytes\n",
	       m.extents, nodes * MAP_NODE_BYTES);
	assert_true(m.extents <= 2);
	assert_int_equal(m.mapped, 1u << 20);
	assert_true(nodes * MAP_NODE_BYTES <= 4096);
	assert_int_equal(store_map_verify(&m), 0);
	store_map_fini(&m);
	assert_int_equal(nodes, 0);
}

/* One extent holds at most MAP_LEN_MAX sectors: a longer set is cut into
 * pieces, and merging stops at the limit. */
static void test_map_extent_length_limit(void **state)
{
	struct store_map m;
	struct ext_list el = { .n = 0 };
	uint64_t big = 3ull * MAP_LEN_MAX + 5;

	(void)state;
	store_map_init(&m, NULL, NULL, NULL);
	assert_int_equal(store_map_set(&m, 10, big, 1000), 0);
	assert_int_equal(m.extents, 4);
	assert_int_equal(m.mapped, big);
	assert_int_equal(store_map_visit(&m, 0, big + 100, list_ext, &el), 0);
	for (unsigned i = 0; i < el.n; i++)
		expect_ext(&el, i, 10 + i * (uint64_t)MAP_LEN_MAX, i < 3 ? MAP_LEN_MAX : 5,
		           1000 + i * (uint64_t)MAP_LEN_MAX);
	store_map_fini(&m);
	/* 9 contiguous writes of 2M sectors: 18M sectors, more than one extent holds */
	store_map_init(&m, NULL, NULL, NULL);
	for (uint64_t i = 0; i < 9; i++)
		assert_int_equal(store_map_set(&m, i << 21, 1u << 21, 50 + (i << 21)), 0);
	assert_int_equal(m.extents, 2);
	assert_int_equal(m.mapped, 9ull << 21);
	assert_int_equal(store_map_verify(&m), 0);
	store_map_fini(&m);
}

/* ---- big trees ------------------------------------------------------------- */

static uint64_t *shuffled(uint64_t n, uint64_t *rng)
{
	uint64_t *a = malloc(n * sizeof(*a));

	assert_non_null(a);
	for (uint64_t i = 0; i < n; i++)
		a[i] = i;
	for (uint64_t i = n - 1; i > 0; i--) {
		uint64_t j = tl_rand_below(rng, i + 1), t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
	return a;
}

/* Enough random extents that neither leaves nor the inner nodes above them
 * fit one node: a leaf holds 255 extents and an inner node 255 children,
 * so more than 255 * 255 extents need a third level. Then the tree is torn
 * down again by huge unmaps. */
static void test_map_three_levels(void **state)
{
	struct world w;
	struct ref r;
	const uint64_t blocks = 1 << 17;
	uint64_t *order;

	(void)state;
	world_init(&w, "test_map_three_levels");
	ref_init(&r, &w, blocks * 8);
	order = shuffled(blocks, &w.rng);
	for (uint64_t i = 0; i < blocks; i++) {
		ref_set(&r, order[i] * 8, 8, 1);        /* a gap in la: no merging */
		if (i % 8192 == 0)
			assert_int_equal(store_map_verify(&r.m), 0);
	}
	world_settled(&w, "the fill");
	assert_int_equal(r.m.extents, blocks);
	assert_true(r.m.extents > 255 * 255);
	ref_check_alone(&r);
	/* unmap a huge range in the middle, reaching past the end */
	ref_unmap(&r, 12345, 1ull << 39);
	ref_check_alone(&r);
	ref_unmap(&r, 7, 5000);
	ref_check_alone(&r);
	ref_unmap(&r, 0, 1ull << 40);
	assert_int_equal(r.m.extents, 0);
	assert_int_equal(r.m.mapped, 0);
	assert_null(r.m.root);
	assert_int_equal(w.nodes, 0);
	ref_check_alone(&r);
	free(order);
	ref_drop(&r);
	world_fini(&w);
}

static int64_t sum_held;

static void count_ref(void *arg, uint64_t la, uint64_t len, int delta)
{
	(void)arg;
	(void)la;
	sum_held += delta * (int64_t)len;
}

static int count_sectors(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	(void)lba;
	(void)la;
	*(uint64_t *)arg += len;
	return 0;
}

/* Unmapping ranges far larger than anything mapped, across a 64 TiB
 * volume, removes exactly what lies inside and drops it exactly once. */
static void test_map_unmap_huge_ranges(void **state)
{
	struct store_map m;
	uint64_t rng = tl_seed("test_map_unmap_huge_ranges"), written = 0, nodes = 0;
	uint64_t inside = 0, left = 0, before;
	const uint64_t cut_a = 1ull << 30, cut_b = STORE_VOL_MAX_SECTORS - (1ull << 30);

	(void)state;
	store_map_init(&m, count_ref, NULL, &nodes);
	sum_held = 0;
	for (uint64_t i = 0; i < 20000; i++) {
		uint64_t len = 1 + tl_rand_below(&rng, 256);
		uint64_t lba = tl_rand_below(&rng, STORE_VOL_MAX_SECTORS - len);

		assert_int_equal(store_map_set(&m, lba, len, 1 + i * 512), 0);
		written += len;
	}
	assert_int_equal(sum_held, m.mapped);
	assert_true(m.mapped <= written);
	assert_int_equal(store_map_verify(&m), 0);
	assert_int_equal(store_map_visit(&m, cut_a, cut_b - cut_a, count_sectors, &inside), 0);
	assert_true(inside > 0);
	before = m.mapped;
	assert_int_equal(store_map_unmap(&m, cut_a, cut_b - cut_a), 0);
	assert_int_equal(store_map_verify(&m), 0);
	assert_int_equal(m.mapped, before - inside);
	assert_int_equal(sum_held, m.mapped);
	assert_int_equal(store_map_visit(&m, cut_a, cut_b - cut_a, count_sectors, &left), 0);
	assert_int_equal(left, 0);
	/* everything, with a length far past the last lba the map can hold */
	assert_int_equal(store_map_unmap(&m, 0, 1ull << 50), 0);
	assert_int_equal(m.mapped, 0);
	assert_int_equal(m.extents, 0);
	assert_int_equal(sum_held, 0);
	assert_int_equal(nodes, 0);
	assert_int_equal(store_map_verify(&m), 0);
	/* and on an empty map */
	assert_int_equal(store_map_unmap(&m, 0, 1ull << 40), 0);
	store_map_fini(&m);
}

/* ---- memory ------------------------------------------------------------------ */

/* One random 4 KiB fill of a 512 MiB volume (every block once, in random
 * order, log addresses in write order as the log hands them out): bytes of
 * map per extent. */
static double random_fill_bytes_per_extent(uint64_t seed)
{
	struct store_map m;
	const uint64_t blocks = 1 << 17;
	uint64_t rng = seed, *order = shuffled(blocks, &rng), nodes = 0;
	double per;

	store_map_init(&m, NULL, NULL, &nodes);
	for (uint64_t i = 0; i < blocks; i++)
		assert_int_equal(store_map_set(&m, order[i] * 8, 8, 2048 + i * 8), 0);
	assert_true(m.extents >= 100000);
	assert_int_equal(store_map_verify(&m), 0);
	per = (double)(nodes * MAP_NODE_BYTES) / (double)m.extents;
	printf("random 4 KiB fill, seed %2" PRIu64 ": %" PRIu64 " extents, %.2f bytes per extent\n",
	       seed, m.extents, per);
	store_map_fini(&m);
	assert_int_equal(nodes, 0);
	free(order);
	return per;
}

/* The target: a volume filled by random 4 KiB writes costs at most
 * 24 bytes of map per extent once it holds 100k extents or more. Memory is
 * judged on the same 16 fills every run (seeds 1 to 16), not on a new seed
 * each time: the figure varies by a few percent from fill to fill, and the
 * target is a bound, not an average. */
static void test_map_memory_random_fill(void **state)
{
	double worst = 0, sum = 0;
	uint64_t worst_seed = 0;

	(void)state;
	for (uint64_t seed = 1; seed <= 16; seed++) {
		double per = random_fill_bytes_per_extent(seed);

		sum += per;
		if (per > worst) {
			worst = per;
			worst_seed = seed;
		}
	}
	printf("random 4 KiB fills: mean %.2f, worst %.2f bytes per extent (seed %" PRIu64 ")\n",
	       sum / 16, worst, worst_seed);
	if (worst > 24.0)
		fail_msg("seed %" PRIu64 ": %.2f bytes per extent, above the 24 the issue allows",
		         worst_seed, worst);
}

/* Sequential writes that cannot merge (a gap in la each time) fill leaves
 * almost completely: the right-edge split keeps 90% in the left node. */
static void test_map_memory_sequential_unmergeable(void **state)
{
	struct store_map m;
	uint64_t n = 100000, bytes, nodes = 0;

	(void)state;
	store_map_init(&m, NULL, NULL, &nodes);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(store_map_set(&m, i * 8, 8, 4096 + i * 16), 0);
	bytes = nodes * MAP_NODE_BYTES;
	printf("sequential unmergeable fill: %.2f bytes per extent\n", (double)bytes / (double)n);
	assert_int_equal(m.extents, n);
	assert_true(bytes <= n * 20);
	assert_int_equal(store_map_verify(&m), 0);
	store_map_fini(&m);
	assert_int_equal(nodes, 0);
}

static int stop_at_second(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	int *calls = arg;

	(void)lba;
	(void)len;
	(void)la;
	return ++*calls == 2 ? -77 : 0;
}

/* A visitor's non-zero return stops the walk and comes back to the caller. */
static void test_map_visit_stops_early(void **state)
{
	struct store_map m;
	int calls = 0;

	(void)state;
	store_map_init(&m, NULL, NULL, NULL);
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(store_map_set(&m, i * 16, 8, 1000 + i * 100), 0);
	assert_int_equal(store_map_visit(&m, 0, 1000, stop_at_second, &calls), -77);
	assert_int_equal(calls, 2);
	calls = 0;
	assert_int_equal(store_map_visit(&m, 0, 0, stop_at_second, &calls), 0);
	assert_int_equal(calls, 0);
	store_map_fini(&m);
}

/* ---- sharing: snapshots and clones ------------------------------------------- */

/* store_map_only_fn over a world: the sectors of [la, la+len) one leaf holds. */
static uint64_t world_only(void *arg, uint64_t la, uint64_t len)
{
	const struct world *w = arg;
	uint64_t n = 0;

	assert_true(la + len <= w->la_next);
	for (uint64_t i = 0; i < len; i++)
		n += w->cnt[la + i] == 1;
	return n;
}

/* What deleting r would free, from the reference: its sectors whose log
 * address no sector of any other map points at. *dups gets how many of its
 * sectors point at an address another of its own sectors points at too (a
 * copy within one volume), *single how many point at an address no other
 * sector at all points at. */
static uint64_t ref_unique(const struct ref *r, uint64_t *dups, uint64_t *single)
{
	int32_t *own = r->w->own;
	uint64_t u = 0;

	*dups = *single = 0;
	for (uint64_t i = 0; i < r->sectors; i++)
		if (r->la[i] != HOLE)
			own[r->la[i]]++;
	for (uint64_t i = 0; i < r->sectors; i++) {
		uint64_t la = r->la[i];

		if (la == HOLE)
			continue;
		u += r->w->want[la] == own[la];
		*dups += own[la] > 1;
		*single += r->w->want[la] == 1;
	}
	for (uint64_t i = 0; i < r->sectors; i++)
		if (r->la[i] != HOLE)
			own[r->la[i]] = 0;
	return u;
}

/* store_map_unique against the reference. A map that points twice at one
 * address holds it in two leaf entries, and only() (one leaf holds it) does
 * not count it: so the reference's answer is compared as is only for maps
 * without such duplicates; for the others, against the sectors whose
 * address exactly one sector of all the maps points at, which is what
 * map.h promises to count. */
static void ref_check_unique(const struct ref *r)
{
	uint64_t dups, single, want, got = store_map_unique(&r->m, world_only, r->w);

	want = ref_unique(r, &dups, &single);
	if (!dups && got != want)
		fail_msg("store_map_unique says %" PRIu64 " sectors, the reference %" PRIu64,
		         got, want);
	if (got != single)
		fail_msg("store_map_unique says %" PRIu64 " sectors, %" PRIu64 " are held once",
		         got, single);
}

/* Two maps sharing a tree: the share costs nothing until one changes, and
 * then only the path to the change is copied, each copied leaf taking one
 * more reference to every extent it holds. */
static void test_map_share_copies_path(void **state)
{
	struct world w;
	struct ref a, b;
	uint64_t nodes, calls;

	(void)state;
	world_init(&w, NULL);
	ref_init(&a, &w, 1 << 16);
	for (uint64_t i = 0; i < 2000; i++)
		ref_set(&a, i * 16, 8, 1);      /* 2000 extents: two levels */
	ref_check_alone(&a);
	assert_non_null(a.m.root);
	nodes = w.nodes;
	calls = w.calls;
	assert_true(nodes > 2);
	assert_int_equal(store_map_unique(&a.m, world_only, &w), 16000);

	ref_share(&b, &a);
	assert_int_equal(w.nodes, nodes);
	assert_int_equal(w.calls, calls);
	assert_ptr_equal(b.m.root, a.m.root);
	assert_int_equal(b.m.extents, a.m.extents);
	assert_int_equal(b.m.mapped, a.m.mapped);
	world_settled(&w, "share");
	ref_check_all(&b);
	assert_int_equal(store_map_unique(&a.m, world_only, &w), 0);
	assert_int_equal(store_map_unique(&b.m, world_only, &w), 0);

	/* one sector of b, in a hole: its root and one leaf are copied */
	ref_set(&b, 8008, 1, 0);
	assert_int_equal(w.nodes, nodes + 2);
	world_settled(&w, "the first write to the share");
	/* the copy took its leaf's extents once more (8 sectors each) */
	assert_true(w.held > 16001 && (w.held - 16001) % 8 == 0 &&
	            w.held - 16001 <= 8 * (MAP_NODE_BYTES / 16));
	assert_true(b.m.root != a.m.root);
	ref_check_all(&a);
	ref_check_all(&b);
	assert_int_equal(store_map_unique(&b.m, world_only, &w), 1);
	assert_int_equal(store_map_unique(&a.m, world_only, &w), 0);

	/* overwriting shared data in b (in the leaf it copied) makes it a's alone */
	ref_set(&b, 8000, 8, 0);
	assert_int_equal(w.nodes, nodes + 2);
	assert_int_equal(store_map_unique(&b.m, world_only, &w), 9);
	assert_int_equal(store_map_unique(&a.m, world_only, &w), 8);
	ref_check_unique(&a);
	ref_check_unique(&b);

	/* a's own writes copy its path too, where it is still shared */
	ref_set(&a, 100, 4, 0);
	world_settled(&w, "a write to the source");
	ref_check_all(&a);
	ref_check_all(&b);
	ref_check_unique(&a);
	ref_check_unique(&b);
	world_check(&w);

	/* dropping the source leaves b whole; then b drops the rest */
	ref_drop(&a);
	world_settled(&w, "dropping the source");
	ref_check_all(&b);
	ref_check_unique(&b);
	assert_int_equal(store_map_unique(&b.m, world_only, &w), b.m.mapped);
	ref_drop(&b);
	world_fini(&w);
}

/* Sharing an empty map, and sharing into a map that is then written. */
static void test_map_share_empty(void **state)
{
	struct world w;
	struct ref a, b;

	(void)state;
	world_init(&w, NULL);
	ref_init(&a, &w, 1024);
	ref_share(&b, &a);
	assert_null(b.m.root);
	ref_set(&b, 10, 10, 0);
	ref_check_all(&a);
	ref_check_all(&b);
	assert_int_equal(store_map_unique(&a.m, world_only, &w), 0);
	assert_int_equal(store_map_unique(&b.m, world_only, &w), 10);
	world_settled(&w, "a write to a share of nothing");
	ref_drop(&b);
	ref_drop(&a);
	world_fini(&w);
}

/* The entries of the first leaf a save writes (the leftmost). Each call is
 * a checkpoint of its own: one generation saves a node only once. */
static uint32_t first_leaf_entries(const struct store_map *m)
{
	static uint32_t gen = 1000;
	struct store_map_saver s = { .gen = ++gen };
	uint32_t root, hdr[2] = { 0, 0 };
	size_t at = 0;

	assert_int_equal(store_map_save(&s, m, &root), 0);
	for (; at < s.len; at += 8 + (hdr[1] ? 16u * hdr[0] : (4u * hdr[0] + 7) & ~7u)) {
		memcpy(hdr, s.buf + at, 8);
		if (hdr[1])
			break;
	}
	free(s.buf);
	return hdr[0];
}

/* Before splitting a full leaf, a write moves some of its extents into a
 * sibling with room. Here the full leaf is shared with b and its sibling
 * is a's own: whatever a's write copies or moves, b keeps every extent. */
static void test_map_share_full_leaf(void **state)
{
	struct world w;
	struct ref a, b;

	(void)state;
	world_init(&w, NULL);
	ref_init(&a, &w, 1 << 12);
	/* sequential: right-edge splits leave 229 extents in each leaf */
	for (uint64_t i = 0; i < 600; i++)
		ref_set(&a, 2 * i, 1, 1);
	assert_int_equal(first_leaf_entries(&a.m), (MAP_NODE_BYTES - 16) / 16 * 9 / 10);
	/* fill the first leaf up in its holes */
	for (uint64_t i = 0; i < 26; i++)
		ref_set(&a, 2 * i + 1, 1, 1);
	assert_int_equal(first_leaf_entries(&a.m), (MAP_NODE_BYTES - 16) / 16);
	ref_share(&b, &a);
	/* a owns its root and second leaf (with room), then writes to the full
	 * first leaf it still shares with b */
	ref_set(&a, 2 * 300 + 1, 1, 1);
	ref_set(&a, 2 * 30 + 1, 1, 1);
	world_settled(&w, "a write to a full shared leaf");
	ref_check_all(&b);
	ref_check_all(&a);
	ref_check_unique(&a);
	ref_check_unique(&b);
	ref_drop(&a);
	ref_check_all(&b);
	ref_drop(&b);
	world_fini(&w);
}

#define SHARE_MAPS 8

struct share_plan {
	uint64_t sectors, fill, ops;
	uint64_t fill_len;      /* sectors per write of the fill, at most */
	unsigned shares;        /* of the filled map, taken before the ops */
	unsigned check_every;
	bool     copies;        /* copy ranges between (and within) maps */
};

struct share_state {
	struct world w;
	struct ref   r[SHARE_MAPS];
	bool         used[SHARE_MAPS], writable[SHARE_MAPS];
	uint64_t     unique_checks;
};

static unsigned pick_map(struct share_state *s, bool writable)
{
	unsigned n = 0, k, i;

	for (i = 0; i < SHARE_MAPS; i++)
		n += s->used[i] && (!writable || s->writable[i]);
	if (n == 0)
		return SHARE_MAPS;
	k = (unsigned)tl_rand_below(&s->w.rng, n);
	for (i = 0; i < SHARE_MAPS; i++)
		if (s->used[i] && (!writable || s->writable[i]) && k-- == 0)
			break;
	return i;
}

struct piece_list {
	const struct ref *src;
	struct store_map_ext *ext;
	size_t n, cap;
};

static int collect_piece(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	struct piece_list *p = arg;

	for (uint64_t i = 0; i < len; i++)
		assert_int_equal(p->src->la[lba + i], la + i);
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->ext = realloc(p->ext, p->cap * sizeof(*p->ext));
		assert_non_null(p->ext);
	}
	p->ext[p->n++] = (struct store_map_ext){ .lba = lba, .len = len, .la = la };
	return 0;
}

/* A copy by reference, as a volume's copy request does it: collect the
 * source's pieces first (the source may be the destination), unmap the
 * destination range, map each piece there. */
static void ref_copy(struct ref *dst, const struct ref *src, uint64_t from, uint64_t to,
                     uint64_t len)
{
	struct piece_list p = { .src = src };

	assert_int_equal(store_map_visit(&src->m, from, len, collect_piece, &p), 0);
	ref_unmap(dst, to, len);
	for (size_t i = 0; i < p.n; i++)
		ref_put(dst, to + (p.ext[i].lba - from), p.ext[i].len, p.ext[i].la);
	free(p.ext);
}

static void share_check_all(struct share_state *s)
{
	for (unsigned i = 0; i < SHARE_MAPS; i++) {
		if (!s->used[i])
			continue;
		ref_check_all(&s->r[i]);
		ref_check_unique(&s->r[i]);
		s->unique_checks++;
	}
	world_check(&s->w);
}

static void share_step(struct share_state *s, const struct share_plan *plan)
{
	uint64_t *rng = &s->w.rng;
	unsigned kind = (unsigned)tl_rand_below(rng, 100), i, j;
	uint64_t len = tl_rand_below(rng, 16) ? 1 + tl_rand_below(rng, 48)
	                                      : 1 + tl_rand_below(rng, 2048);
	uint64_t lba = tl_rand_below(rng, plan->sectors);

	if (len > plan->sectors - lba)
		len = plan->sectors - lba;
	if (kind < 50) {
		if ((i = pick_map(s, true)) == SHARE_MAPS)
			return;
		ref_set(&s->r[i], lba, len, tl_rand_below(rng, 3) ? 1 : 0);
		world_settled(&s->w, "set");
	} else if (kind < 68) {
		if ((i = pick_map(s, true)) == SHARE_MAPS)
			return;
		ref_unmap(&s->r[i], lba, len);
		world_settled(&s->w, "unmap");
	} else if (kind < 78) {
		uint64_t from = tl_rand_below(rng, plan->sectors - len + 1);

		if (!plan->copies || (i = pick_map(s, true)) == SHARE_MAPS)
			return;
		ref_copy(&s->r[i], &s->r[pick_map(s, false)], from, lba, len);
		world_settled(&s->w, "copy");
	} else if (kind < 84) {
		/* a new snapshot or clone of any map, in a free slot */
		for (j = 0; j < SHARE_MAPS && s->used[j]; j++)
			;
		if (j == SHARE_MAPS)
			return;
		i = pick_map(s, false);
		ref_share(&s->r[j], &s->r[i]);
		s->used[j] = true;
		s->writable[j] = tl_rand_below(rng, 2);
		world_settled(&s->w, "share");
	} else if (kind < 88) {
		/* delete a map, keeping one that can be written */
		unsigned writers = 0;

		i = pick_map(s, false);
		for (j = 0; j < SHARE_MAPS; j++)
			writers += s->used[j] && s->writable[j];
		if (s->writable[i] && writers == 1)
			return;
		ref_drop(&s->r[i]);
		s->used[i] = false;
		world_settled(&s->w, "fini");
	} else {
		uint64_t a = tl_rand_below(rng, plan->sectors);
		uint64_t b = a + 1 + tl_rand_below(rng, plan->sectors - a);

		ref_check_range(&s->r[pick_map(s, false)], a, b);
	}
}

/* A world with map 0 filled by short writes, mostly apart in la: a tree of
 * many leaves. */
static struct share_state *share_start(const struct share_plan *plan, const char *test)
{
	struct share_state *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	world_init(&s->w, test);
	ref_init(&s->r[0], &s->w, plan->sectors);
	s->used[0] = s->writable[0] = true;
	for (uint64_t i = 0; i < plan->fill; i++) {
		uint64_t len = 1 + tl_rand_below(&s->w.rng, plan->fill_len);

		ref_set(&s->r[0], tl_rand_below(&s->w.rng, plan->sectors - len), len,
		        tl_rand_below(&s->w.rng, 4) ? 1 : 0);
	}
	world_settled(&s->w, "the fill");
	ref_check_alone(&s->r[0]);
	return s;
}

static void share_run(const struct share_plan *plan, const char *test)
{
	struct share_state *s = share_start(plan, test);
	uint64_t nodes, calls, *order, dups = 0, maps = 0;

	if (plan->fill_len == 1)
		assert_true(s->r[0].m.extents > 255 * 255);     /* three levels */

	/* snapshots (read-only) and clones (written) of it, in O(1) each */
	nodes = s->w.nodes;
	calls = s->w.calls;
	for (unsigned k = 1; k <= plan->shares && k < SHARE_MAPS; k++) {
		ref_share(&s->r[k], &s->r[0]);
		s->used[k] = true;
		s->writable[k] = k % 2 == 0;
	}
	assert_int_equal(s->w.nodes, nodes);
	assert_int_equal(s->w.calls, calls);
	world_settled(&s->w, "the shares");
	share_check_all(s);

	for (uint64_t i = 1; i <= plan->ops; i++) {
		share_step(s, plan);
		if (i % plan->check_every == 0)
			share_check_all(s);
	}
	share_check_all(s);
	for (unsigned i = 0; i < SHARE_MAPS; i++) {
		uint64_t d, single;

		if (!s->used[i])
			continue;
		ref_unique(&s->r[i], &d, &single);
		dups += d != 0;
		maps++;
	}
	printf("%s: %" PRIu64 " ops, %" PRIu64 " maps, %" PRIu64 " nodes, %" PRIu64
	       " log addresses held, %" PRIu64 " unique checks, %" PRIu64
	       " maps with an address twice\n", test, plan->ops, maps, s->w.nodes,
	       (uint64_t)s->w.held, s->unique_checks, dups);

	/* deleting the maps in any order leaves the others whole, and frees
	 * everything once the last is gone */
	order = shuffled(SHARE_MAPS, &s->w.rng);
	for (unsigned k = 0; k < SHARE_MAPS; k++) {
		unsigned i = (unsigned)order[k];

		if (!s->used[i])
			continue;
		ref_drop(&s->r[i]);
		s->used[i] = false;
		world_settled(&s->w, "fini");
		share_check_all(s);
	}
	free(order);
	assert_int_equal(s->w.nodes, 0);
	world_fini(&s->w);
	free(s);
}

/* ---- a checkpoint's frozen view ---------------------------------------------- */

/* A view frozen while the maps go on changing under it (writes, unmaps,
 * copies, snapshots and clones taken, maps dropped: the frozen roots of
 * some among them), saved a few nodes at a time between the changes, is
 * byte for byte the save of the maps as they were when it began; the maps
 * and their counts stay right all along, and once the view ends and its
 * retired nodes are freed, nothing is left over. */
static void test_map_freeze_saves_the_start(void **state)
{
	const struct share_plan plan = {
		.sectors = 1 << 16, .fill = 20000, .fill_len = 4, .copies = true,
	};
	struct share_state *s = share_start(&plan, "test_map_freeze_saves_the_start");
	struct store_map_saver a = { .gen = 7 }, b = { .gen = 8 };
	struct store_map_freeze fz = { 0 };
	struct store_map_node *roots[SHARE_MAPS];
	uint32_t ida[SHARE_MAPS], idb[SHARE_MAPS];
	bool was[SHARE_MAPS];
	uint64_t changes = 0;
	size_t retired;

	(void)state;
	for (unsigned k = 1; k <= 3; k++) {
		ref_share(&s->r[k], &s->r[0]);
		s->used[k] = true;
		s->writable[k] = k % 2 == 0;
	}
	for (int i = 0; i < 500; i++)
		share_step(s, &plan);
	/* the maps as they are, and the start of a view of them */
	for (unsigned i = 0; i < SHARE_MAPS; i++) {
		was[i] = s->used[i];
		roots[i] = was[i] ? s->r[i].m.root : NULL;
		if (was[i])
			assert_int_equal(store_map_save(&a, &s->r[i].m, &ida[i]), 0);
	}
	store_map_freeze_begin(&fz, b.gen, &s->w.nodes);
	for (unsigned i = 0; i < SHARE_MAPS; i++)
		if (s->used[i])
			store_map_freeze_join(&s->r[i].m, &fz);
	for (unsigned i = 0; i < SHARE_MAPS;) {
		unsigned budget = 1;
		int rc = 1;

		if (was[i])
			rc = store_map_save_some(&b, roots[i], &idb[i], &budget);
		assert_true(rc >= 0);
		i += rc == 1;
		for (uint64_t k = 2 + tl_rand_below(&s->w.rng, 10); k > 0; k--, changes++)
			share_step(s, &plan);
	}
	printf("test_map_freeze_saves_the_start: %" PRIu32 " nodes saved, %" PRIu64
	       " changes meanwhile, %zu nodes retired\n", b.next_id, changes, fz.nretired);
	assert_true(fz.nretired >= 10);  /* or the changes touched no frozen node */
	assert_int_equal(b.next_id, a.next_id);
	assert_int_equal(b.len, a.len);
	assert_memory_equal(b.buf, a.buf, a.len);
	for (unsigned i = 0; i < SHARE_MAPS; i++)
		if (was[i])
			assert_int_equal(idb[i], ida[i]);
	share_check_all(s);
	store_map_freeze_end(&fz);
	retired = fz.nretired;
	assert_int_equal(store_map_freeze_reap(&fz, 5), retired - 5);
	assert_int_equal(store_map_freeze_reap(&fz, SIZE_MAX), 0);
	assert_int_equal(fz.leaked, 0);
	for (int i = 0; i < 200; i++)   /* no view: changes in place again */
		share_step(s, &plan);
	assert_int_equal(fz.nretired, 0);
	share_check_all(s);
	for (unsigned i = 0; i < SHARE_MAPS; i++)
		if (s->used[i])
			ref_drop(&s->r[i]);
	world_fini(&s->w);
	free(a.buf);
	free(b.buf);
	free(s);
}

static void test_map_share_random(void **state)
{
	const struct share_plan plan = {
		.sectors = 1 << 15, .fill = 3000, .fill_len = 8, .ops = 8000, .shares = 5,
		.check_every = 400, .copies = true,
	};

	(void)state;
	share_run(&plan, "test_map_share_random");
}

/* Without copies no map points twice at an address, and store_map_unique
 * must be exactly what deleting the map would free. */
static void test_map_share_random_no_copies(void **state)
{
	const struct share_plan plan = {
		.sectors = 1 << 14, .fill = 2000, .fill_len = 8, .ops = 6000, .shares = 7,
		.check_every = 300, .copies = false,
	};

	(void)state;
	share_run(&plan, "test_map_share_random_no_copies");
}

/* Small, every step checked in full. */
static void test_map_share_every_step(void **state)
{
	const struct share_plan plan = {
		.sectors = 2048, .fill = 400, .fill_len = 8, .ops = 1500, .shares = 4,
		.check_every = 1, .copies = true,
	};

	(void)state;
	share_run(&plan, "test_map_share_every_step");
}

/* Shares of a three-level tree: copies of inner nodes above inner nodes. */
static void test_map_share_three_levels(void **state)
{
	const struct share_plan plan = {
		.sectors = 1 << 18, .fill = 90000, .fill_len = 1, .ops = 3000, .shares = 4,
		.check_every = 1500, .copies = true,
	};

	(void)state;
	share_run(&plan, "test_map_share_three_levels");
}

/* ---- checkpoints: save and load ------------------------------------------- */

#define FOREST 6

/* Maps sharing nodes every way a pool's can: a volume, a snapshot of it,
 * a clone written after, a snapshot of the clone, an empty map, and a
 * snapshot of the snapshot (the very same root). */
static void forest_build(struct world *w, struct ref *r, uint64_t sectors, uint64_t fill)
{
	ref_init(&r[0], w, sectors);
	for (uint64_t i = 0; i < fill; i++) {
		uint64_t len = 1 + tl_rand_below(&w->rng, 8);

		ref_set(&r[0], tl_rand_below(&w->rng, sectors - len), len, 1);
	}
	ref_share(&r[1], &r[0]);
	ref_share(&r[2], &r[0]);
	for (uint64_t i = 0; i < fill / 20; i++) {
		ref_set(&r[0], tl_rand_below(&w->rng, sectors - 4), 4, 1);
		ref_set(&r[2], tl_rand_below(&w->rng, sectors - 4), 4, 1);
	}
	ref_unmap(&r[2], sectors / 3, sectors / 10);
	ref_share(&r[3], &r[2]);
	ref_set(&r[2], 7, 3, 1);
	ref_init(&r[4], w, sectors);
	ref_share(&r[5], &r[1]);
	world_settled(w, "building the forest");
}

static void forest_save(struct ref *r, struct store_map_saver *s, uint32_t *root)
{
	for (unsigned i = 0; i < FOREST; i++)
		assert_int_equal(store_map_save(s, &r[i].m, &root[i]), 0);
}

/* Offsets of the saved nodes (the format map.c describes); checks that
 * children come before their parents. */
static unsigned saved_nodes(const char *buf, size_t len, size_t *off, unsigned max)
{
	size_t at = 0;
	unsigned n = 0;

	while (at < len) {
		uint32_t hdr[2];

		assert_true(len - at >= 8);
		memcpy(hdr, buf + at, 8);
		assert_true(n < max);
		off[n++] = at;
		for (uint32_t i = 0; !hdr[1] && i < hdr[0]; i++) {
			uint32_t id;

			memcpy(&id, buf + at + 8 + 4 * i, 4);
			assert_true(id >= 1 && id < n);
		}
		at += 8 + (hdr[1] ? 16u * hdr[0] : (4u * hdr[0] + 7) & ~7u);
	}
	assert_int_equal(at, len);
	return n;
}

/* Loads the forest s holds into l, counted in the fresh world w2, as a
 * checkpoint is read (the counters come from the checkpoint, here from r),
 * and checks it against r and w: same contents, the same sharing (so the
 * same nodes and the same unique space), the same reference counts. */
static void forest_load(struct world *w2, struct ref *l, const struct ref *r,
                        const struct world *w, const struct store_map_saver *s,
                        const uint32_t *root)
{
	struct store_map_loader ld = { 0 };
	size_t used;

	assert_int_equal(store_map_load_nodes(&ld, s->buf, s->len, s->next_id, &used), 0);
	assert_int_equal(used, s->len);
	assert_int_equal(ld.n, s->next_id);
	world_init(w2, NULL);
	w2->rng = w->rng + 1;
	world_alloc(w2, w->la_next, 0);
	for (unsigned i = 0; i < FOREST; i++) {
		ref_init(&l[i], w2, r[i].sectors);
		assert_int_equal(store_map_load_root(&ld, &l[i].m, root[i]), 0);
		l[i].m.extents = r[i].m.extents;
		l[i].m.mapped = r[i].m.mapped;
		memcpy(l[i].la, r[i].la, r[i].sectors * sizeof(*r[i].la));
		for (uint64_t k = 0; k < r[i].sectors; k++)
			if (r[i].la[k] != HOLE)
				la_change(w2, r[i].la[k], 0, +1);
	}
	/* only the loader's finish takes references and counts nodes */
	assert_int_equal(w2->nodes, 0);
	assert_int_equal(w2->calls, 0);
	assert_int_equal(store_map_loader_finish(&ld, world_ref, w2, &w2->nodes), 0);
	assert_null(ld.node);
	world_settled(w2, "loading");
	assert_int_equal(w2->nodes, w->nodes);
	assert_int_equal(w2->held, w->held);
	for (uint64_t la = 0; la < w->la_next; la++)
		if (w2->cnt[la] != w->cnt[la])
			fail_msg("la %" PRIu64 ": %d leaves before saving, %d after loading",
			         la, w->cnt[la], w2->cnt[la]);
	for (unsigned i = 0; i < FOREST; i++) {
		ref_check_all(&l[i]);
		ref_check_unique(&l[i]);
		assert_int_equal(store_map_unique(&l[i].m, world_only, w2),
		                 store_map_unique(&r[i].m, world_only, (void *)w));
		for (unsigned j = 0; j < FOREST; j++)
			assert_int_equal(l[i].m.root == l[j].m.root, r[i].m.root == r[j].m.root);
	}
}

/* Saving a forest of shared maps writes each node once, children first;
 * loading it back gives it whole, and the loaded maps go on working. */
static void test_map_save_load_round_trip(void **state)
{
	struct world w, w2;
	struct ref r[FOREST], l[FOREST];
	struct store_map_saver s = { .gen = 1 }, s2 = { .gen = 2 };
	uint32_t root[FOREST], root2[FOREST], again;
	size_t len, *off;

	(void)state;
	world_init(&w, "test_map_save_load_round_trip");
	forest_build(&w, r, 1 << 15, 4000);
	forest_save(r, &s, root);
	assert_int_equal(root[4], 0);
	assert_int_equal(root[5], root[1]);
	assert_true(root[0] != root[1] && root[2] != root[3]);
	/* every node once, however many maps reach it */
	assert_int_equal(s.next_id, w.nodes);
	off = malloc(s.next_id * sizeof(*off));
	assert_non_null(off);
	assert_int_equal(saved_nodes(s.buf, s.len, off, s.next_id), s.next_id);
	free(off);
	/* a map saved again in the same checkpoint adds nothing */
	len = s.len;
	assert_int_equal(store_map_save(&s, &r[3].m, &again), 0);
	assert_int_equal(again, root[3]);
	assert_int_equal(s.len, len);

	forest_load(&w2, l, r, &w, &s, root);
	/* the loaded forest saves to the very same bytes */
	forest_save(l, &s2, root2);
	assert_memory_equal(root2, root, sizeof(root));
	assert_int_equal(s2.len, s.len);
	assert_memory_equal(s2.buf, s.buf, s.len);

	/* writes to loaded maps that share nodes copy their paths */
	for (unsigned k = 0; k < 300; k++) {
		struct ref *t = &l[tl_rand_below(&w2.rng, 3) * 2 % FOREST];

		ref_set(t, tl_rand_below(&w2.rng, t->sectors - 8), 8, 1);
		world_settled(&w2, "a write after loading");
	}
	ref_drop(&l[4]);
	ref_share(&l[4], &l[3]);
	ref_unmap(&l[4], 100, 5000);
	for (unsigned i = 0; i < FOREST; i++) {
		ref_check_all(&l[i]);
		ref_check_unique(&l[i]);
	}
	world_check(&w2);

	for (unsigned i = 0; i < FOREST; i++) {
		ref_drop(&r[(i * 5) % FOREST]);
		world_settled(&w, "fini");
		ref_drop(&l[(i * 5 + 3) % FOREST]);
		world_settled(&w2, "fini after loading");
	}
	world_fini(&w);
	world_fini(&w2);
	free(s.buf);
	free(s2.buf);
}

/* Each checkpoint has a generation of its own: a later one writes every
 * node again, those changed in place since the last included. */
static void test_map_save_generations(void **state)
{
	struct world w, w2;
	struct ref r[FOREST], l[FOREST];
	struct store_map_saver s1 = { .gen = 1 }, s2 = { .gen = 2 };
	uint32_t root1[FOREST], root2[FOREST];

	(void)state;
	world_init(&w, "test_map_save_generations");
	forest_build(&w, r, 1 << 13, 1500);
	forest_save(r, &s1, root1);
	/* changes in place to nodes the first checkpoint wrote */
	for (unsigned k = 0; k < 100; k++) {
		ref_set(&r[2], tl_rand_below(&w.rng, r[2].sectors - 2), 2, 1);
		ref_unmap(&r[0], tl_rand_below(&w.rng, r[0].sectors - 2), 2);
	}
	forest_save(r, &s2, root2);
	assert_int_equal(s2.next_id, w.nodes);
	forest_load(&w2, l, r, &w, &s2, root2);
	for (unsigned i = 0; i < FOREST; i++) {
		ref_drop(&l[i]);
		ref_drop(&r[i]);
	}
	world_fini(&w2);
	world_fini(&w);
	free(s1.buf);
	free(s2.buf);
}

/* ---- checkpoints: damage --------------------------------------------------- */

static int count_ext(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	uint64_t *ext = arg;

	(void)lba;
	(void)la;
	ext[0]++;
	ext[1] += len;
	return 0;
}

struct tally {
	int64_t  held;
	uint64_t calls;
};

static void tally_ref(void *arg, uint64_t la, uint64_t len, int delta)
{
	struct tally *t = arg;

	(void)la;
	t->held += delta * (int64_t)len;
	t->calls++;
}

/* Loads a saved forest as ckpt.c does, and undoes a failed load as it does
 * (forget every map, abort the loader). Either way nothing may be left: no
 * node counted, no reference taken, nothing allocated (the suite also runs
 * under ASan). Returns the first error; *broken counts maps that loaded but
 * fail store_map_verify. */
static int try_load(const char *buf, size_t len, uint32_t count, const uint32_t *root,
                    unsigned nroots, unsigned *broken)
{
	struct store_map m[FOREST];
	struct store_map_loader ld = { 0 };
	struct tally t = { 0, 0 };
	uint64_t nodes = 0;
	size_t used = 0;
	int rc;

	assert_true(nroots <= FOREST);
	for (unsigned i = 0; i < nroots; i++)
		store_map_init(&m[i], tally_ref, &t, &nodes);
	rc = store_map_load_nodes(&ld, buf, len, count, &used);
	for (unsigned i = 0; rc == 0 && i < nroots; i++)
		rc = store_map_load_root(&ld, &m[i], root[i]);
	if (rc == 0)
		rc = store_map_loader_finish(&ld, tally_ref, &t, &nodes);
	if (rc) {
		assert_int_equal(rc, -EUCLEAN);
		assert_int_equal(t.calls, 0);
		assert_int_equal(nodes, 0);
		for (unsigned i = 0; i < nroots; i++)
			store_map_forget(&m[i]);
		store_map_loader_abort(&ld);
		assert_null(ld.node);
		assert_int_equal(ld.n, 0);
		return rc;
	}
	assert_true(used <= len);
	assert_int_equal(nodes, count);
	for (unsigned i = 0; i < nroots; i++) {
		uint64_t ext[2] = { 0, 0 };

		/* the counters a sound writer would have saved with the tree */
		assert_int_equal(store_map_visit(&m[i], 0, 2ull << MAP_LBA_BITS, count_ext, ext), 0);
		m[i].extents = ext[0];
		m[i].mapped = ext[1];
		*broken += store_map_verify(&m[i]) != 0;
	}
	for (unsigned i = 0; i < nroots; i++)
		store_map_fini(&m[i]);
	assert_int_equal(nodes, 0);
	assert_int_equal(t.held, 0);
	return 0;
}

/* A saved forest and a scratch copy of it to damage. */
struct damage {
	struct world w;
	struct ref   r[FOREST];
	struct store_map_saver s;
	uint32_t     root[FOREST];
	size_t      *off;           /* of each saved node */
	unsigned     n;             /* nodes */
	unsigned     leaf, inner;   /* ids (from 1) of nodes with two entries or more */
	char        *buf;
};

static uint32_t saved_u32(const char *buf, size_t at)
{
	uint32_t v;

	memcpy(&v, buf + at, 4);
	return v;
}

static void put_u32(char *buf, size_t at, uint32_t v)
{
	memcpy(buf + at, &v, 4);
}

static void damage_setup(struct damage *d, const char *test)
{
	memset(d, 0, sizeof(*d));
	world_init(&d->w, test);
	forest_build(&d->w, d->r, 1 << 13, 1500);
	d->s.gen = 1;
	forest_save(d->r, &d->s, d->root);
	d->off = malloc(d->s.next_id * sizeof(*d->off));
	d->buf = malloc(d->s.len);
	assert_non_null(d->off);
	assert_non_null(d->buf);
	d->n = saved_nodes(d->s.buf, d->s.len, d->off, d->s.next_id);
	for (unsigned i = 0; i < d->n; i++) {
		bool leaf = saved_u32(d->s.buf, d->off[i] + 4);

		if (saved_u32(d->s.buf, d->off[i]) < 2)
			continue;
		if (leaf && !d->leaf)
			d->leaf = i + 1;
		if (!leaf && !d->inner)
			d->inner = i + 1;
	}
	assert_true(d->leaf && d->inner);
	memcpy(d->buf, d->s.buf, d->s.len);
}

static void damage_teardown(struct damage *d)
{
	for (unsigned i = 0; i < FOREST; i++)
		ref_drop(&d->r[i]);
	world_fini(&d->w);
	free(d->s.buf);
	free(d->off);
	free(d->buf);
}

/* Loads the scratch copy whole; puts it back as saved afterwards. */
static int damage_load(struct damage *d, unsigned *broken)
{
	int rc = try_load(d->buf, d->s.len, d->s.next_id, d->root, FOREST, broken);

	memcpy(d->buf, d->s.buf, d->s.len);
	return rc;
}

/* Where in the scratch copy node id's header or entries are. */
static size_t node_at(const struct damage *d, unsigned id)
{
	return d->off[id - 1];
}

/* Where a child id other than an inner node's first is saved, of a child
 * that another parent or a root names too. */
static size_t shared_child(const struct damage *d)
{
	uint32_t *refs = calloc(d->n + 1, sizeof(*refs));
	size_t found = 0;

	assert_non_null(refs);
	for (unsigned i = 0; i < FOREST; i++)
		if (i == 0 || d->root[i] != d->root[i - 1])
			refs[d->root[i]]++;
	for (unsigned id = 1; id <= d->n; id++) {
		size_t at = node_at(d, id);

		for (uint32_t k = 0; !saved_u32(d->s.buf, at + 4) && k < saved_u32(d->s.buf, at); k++)
			refs[saved_u32(d->s.buf, at + 8 + 4 * k)]++;
	}
	for (unsigned id = 1; id <= d->n && !found; id++) {
		size_t at = node_at(d, id);

		for (uint32_t k = 1; !saved_u32(d->s.buf, at + 4) && k < saved_u32(d->s.buf, at); k++)
			if (refs[saved_u32(d->s.buf, at + 8 + 4 * k)] >= 2) {
				found = at + 8 + 4 * k;
				break;
			}
	}
	free(refs);
	assert_true(found > 0);
	return found;
}

static void test_map_load_intact(void **state)
{
	struct damage d;
	unsigned broken = 0;

	(void)state;
	damage_setup(&d, "test_map_load_intact");
	assert_int_equal(damage_load(&d, &broken), 0);
	assert_int_equal(broken, 0);
	damage_teardown(&d);
}

/* A checkpoint cut short anywhere, or claiming more nodes than it holds. */
static void test_map_load_truncated(void **state)
{
	struct damage d;
	unsigned broken = 0, tried = 0;
	uint32_t none[FOREST] = { 0 };

	(void)state;
	damage_setup(&d, "test_map_load_truncated");
	for (size_t cut = 0; cut < d.s.len; cut += cut < 64 ? 1 : 8 + cut % 5) {
		if (try_load(d.s.buf, cut, d.s.next_id, d.root, FOREST, &broken) != -EUCLEAN)
			fail_msg("%zu of %zu bytes loaded", cut, d.s.len);
		tried++;
	}
	/* every node boundary but the last, from both sides */
	for (unsigned i = 1; i < d.n; i++) {
		assert_int_equal(try_load(d.s.buf, d.off[i], d.s.next_id, d.root, FOREST, &broken),
		                 -EUCLEAN);
		assert_int_equal(try_load(d.s.buf, d.off[i] - 1, d.s.next_id, d.root, FOREST,
		                          &broken), -EUCLEAN);
	}
	assert_int_equal(try_load(d.s.buf, d.s.len, d.s.next_id + 1, d.root, FOREST, &broken),
	                 -EUCLEAN);
	/* fewer nodes than the roots name */
	assert_int_equal(try_load(d.s.buf, d.off[d.n - 1], d.s.next_id - 1, d.root, FOREST,
	                          &broken), -EUCLEAN);
	/* nothing at all, and nothing asked for */
	assert_int_equal(try_load(d.s.buf, 0, 0, d.root, FOREST, &broken), -EUCLEAN);
	assert_int_equal(try_load(d.s.buf, 0, 0, none, FOREST, &broken), 0);
	assert_int_equal(broken, 0);
	printf("test_map_load_truncated: %u cuts of %zu bytes\n", tried, d.s.len);
	damage_teardown(&d);
}

/* Each field the loader can check, broken on its own. */
static void test_map_load_bad_fields(void **state)
{
	struct damage d;
	unsigned broken = 0;
	size_t leaf, inner, dup;
	uint64_t w0, w1;

	(void)state;
	damage_setup(&d, "test_map_load_bad_fields");
	leaf = node_at(&d, d.leaf);
	inner = node_at(&d, d.inner);

	put_u32(d.buf, leaf + 4, 2);                    /* neither leaf nor inner */
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, leaf, 0);                        /* empty leaf */
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, inner, 0);                       /* empty inner node */
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, leaf, (MAP_NODE_BYTES - 16) / 16 + 1);  /* more than fit */
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, inner, (MAP_NODE_BYTES - 16) / 16 + 1);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, leaf, UINT32_MAX);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);

	/* inner: a child id of 0, of itself (not loaded yet), past the end */
	put_u32(d.buf, inner + 8, 0);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, inner + 12, d.inner);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	put_u32(d.buf, inner + 8, d.n + 1);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	/* children out of order */
	put_u32(d.buf, inner + 8, saved_u32(d.s.buf, inner + 12));
	put_u32(d.buf, inner + 12, saved_u32(d.s.buf, inner + 8));
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	/* one child twice, in place of one another parent keeps (so that no
	 * node is left without a parent) */
	dup = shared_child(&d);
	put_u32(d.buf, dup, saved_u32(d.s.buf, dup - 4));
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);

	/* leaf: an extent of no length; two overlapping; two out of order */
	memcpy(&w0, d.s.buf + leaf + 8, 8);
	memcpy(&w1, d.s.buf + leaf + 24, 8);
	w0 &= (1ull << MAP_LBA_BITS) - 1;
	memcpy(d.buf + leaf + 8, &w0, 8);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	memcpy(&w0, d.s.buf + leaf + 8, 8);
	w1 = (w1 & ~((1ull << MAP_LBA_BITS) - 1)) | (w0 & ((1ull << MAP_LBA_BITS) - 1));
	memcpy(d.buf + leaf + 24, &w1, 8);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	memcpy(d.buf + leaf + 8, d.s.buf + leaf + 24, 16);
	memcpy(d.buf + leaf + 24, d.s.buf + leaf + 8, 16);
	assert_int_equal(damage_load(&d, &broken), -EUCLEAN);
	assert_int_equal(broken, 0);
	damage_teardown(&d);
}

/* A root past the nodes loaded; a node neither a root nor anyone's child
 * (a writer never saves one): the loader's finish refuses, having counted
 * nothing, and the maps are forgotten before the abort. */
static void test_map_load_bad_roots(void **state)
{
	struct damage d;
	unsigned broken = 0, lone = FOREST;
	uint32_t root[FOREST];

	(void)state;
	damage_setup(&d, "test_map_load_bad_roots");
	memcpy(root, d.root, sizeof(root));
	root[3] = d.n + 1;
	assert_int_equal(try_load(d.s.buf, d.s.len, d.n, root, FOREST, &broken), -EUCLEAN);
	/* leave out a map whose root no other map reaches */
	for (unsigned i = 0; i < FOREST && lone == FOREST; i++) {
		lone = i;
		for (unsigned j = 0; j < FOREST; j++)
			if (j != i && d.r[j].m.root == d.r[i].m.root)
				lone = FOREST;
		if (!d.r[i].m.root)
			lone = FOREST;
	}
	assert_true(lone < FOREST);
	memcpy(root, d.root, sizeof(root));
	root[lone] = root[FOREST - 1];
	assert_int_equal(try_load(d.s.buf, d.s.len, d.n, root, FOREST - 1, &broken), -EUCLEAN);
	/* and a map loaded twice is two references, not an error */
	memcpy(root, d.root, sizeof(root));
	root[4] = root[0];
	assert_int_equal(try_load(d.s.buf, d.s.len, d.n, root, FOREST, &broken), 0);
	assert_int_equal(broken, 0);
	damage_teardown(&d);
}

/* Random damage: any load either fails with -EUCLEAN, leaving nothing
 * behind, or gives trees that can be used and freed (ASan watches). */
static void test_map_load_random_damage(void **state)
{
	struct damage d;
	unsigned broken = 0, failed = 0, loaded = 0;

	(void)state;
	damage_setup(&d, "test_map_load_random_damage");
	for (unsigned k = 0; k < 400; k++) {
		unsigned flips = 1 + (unsigned)tl_rand_below(&d.w.rng, 4);

		for (unsigned f = 0; f < flips; f++) {
			size_t at = tl_rand_below(&d.w.rng, d.s.len);

			/* headers and child ids more often than extents */
			if (tl_rand_below(&d.w.rng, 2)) {
				unsigned id = 1 + (unsigned)tl_rand_below(&d.w.rng, d.n);

				at = node_at(&d, id) + tl_rand_below(&d.w.rng, 16);
			}
			d.buf[at] ^= (char)(1u << tl_rand_below(&d.w.rng, 8));
		}
		if (damage_load(&d, &broken))
			failed++;
		else
			loaded++;
	}
	printf("test_map_load_random_damage: %u refused, %u loaded, %u of whose maps fail "
	       "store_map_verify\n", failed, loaded, broken);
	assert_true(failed > 0);
	damage_teardown(&d);
}

/* Nodes that each hold together but not with each other: a leaf whose
 * last extent reaches into its right sibling's range. A sound writer never
 * saves that, and a map loaded from it maps sectors twice. */
static void test_map_load_rejects_overlapping_siblings(void **state)
{
	struct damage d;
	unsigned broken = 0, left = 0;
	size_t leaf;
	uint32_t n;
	uint64_t w0, lba, len, next_lba = 0;

	(void)state;
	damage_setup(&d, "test_map_load_rejects_overlapping_siblings");
	/* an inner node whose first two children are leaves */
	for (unsigned id = 1; id <= d.n && !left; id++) {
		size_t at = node_at(&d, id);
		uint32_t c0 = saved_u32(d.s.buf, at + 8), c1 = saved_u32(d.s.buf, at + 12);

		if (saved_u32(d.s.buf, at + 4) || saved_u32(d.s.buf, at) < 2)
			continue;
		if (saved_u32(d.s.buf, node_at(&d, c0) + 4) && saved_u32(d.s.buf, node_at(&d, c1) + 4)) {
			left = c0;
			memcpy(&w0, d.s.buf + node_at(&d, c1) + 8, 8);
			next_lba = w0 & ((1ull << MAP_LBA_BITS) - 1);
		}
	}
	assert_true(left > 0);
	leaf = node_at(&d, left);
	n = saved_u32(d.s.buf, leaf);
	memcpy(&w0, d.s.buf + leaf + 8 + 16 * (n - 1), 8);
	lba = w0 & ((1ull << MAP_LBA_BITS) - 1);
	len = next_lba + 1 - lba;               /* one sector into the sibling */
	assert_true(len <= MAP_LEN_MAX);
	w0 = lba | len << MAP_LBA_BITS;
	memcpy(d.buf + leaf + 8 + 16 * (n - 1), &w0, 8);
	if (damage_load(&d, &broken) != -EUCLEAN)
		fail_msg("the loader took a tree that store_map_verify rejects in %u maps", broken);
	damage_teardown(&d);
}

/* Saved nodes built by hand (the format map.c describes). */
static size_t put_leaf(char *buf, size_t at, uint64_t lba, uint64_t len, uint64_t la)
{
	uint32_t hdr[2] = { 1, 1 };
	uint64_t w[2] = { lba | len << MAP_LBA_BITS, la };

	memcpy(buf + at, hdr, 8);
	memcpy(buf + at + 8, w, 16);
	return at + 24;
}

static size_t put_inner(char *buf, size_t at, uint32_t c0, uint32_t c1)
{
	uint32_t hdr[2] = { c1 ? 2 : 1, 0 }, id[2] = { c0, c1 };

	memcpy(buf + at, hdr, 8);
	memcpy(buf + at + 8, id, 8);
	return at + 16;
}

/* The smallest trees that hold together node by node but not as a tree:
 * children of different heights, and children overlapping. */
static void test_map_load_rejects_bad_shapes(void **state)
{
	char buf[256];
	size_t n;
	unsigned broken = 0;
	uint32_t root = 4;

	(void)state;
	/* sound: two leaves under one node, and that node under another */
	n = put_leaf(buf, 0, 0, 10, 1000);
	n = put_leaf(buf, n, 100, 10, 2000);
	n = put_inner(buf, n, 1, 2);
	n = put_inner(buf, n, 3, 0);
	assert_int_equal(try_load(buf, n, 4, &root, 1, &broken), 0);
	assert_int_equal(broken, 0);
	/* a leaf and an inner node side by side */
	n = put_leaf(buf, 0, 0, 10, 1000);
	n = put_leaf(buf, n, 100, 10, 2000);
	n = put_inner(buf, n, 2, 0);
	n = put_inner(buf, n, 1, 3);
	assert_int_equal(try_load(buf, n, 4, &root, 1, &broken), -EUCLEAN);
	/* the first leaf reaching past where the second starts */
	root = 3;
	n = put_leaf(buf, 0, 0, 101, 1000);
	n = put_leaf(buf, n, 100, 10, 2000);
	n = put_inner(buf, n, 1, 2);
	assert_int_equal(try_load(buf, n, 3, &root, 1, &broken), -EUCLEAN);
	/* touching is fine */
	n = put_leaf(buf, 0, 0, 100, 1000);
	n = put_leaf(buf, n, 100, 10, 2000);
	n = put_inner(buf, n, 1, 2);
	assert_int_equal(try_load(buf, n, 3, &root, 1, &broken), 0);
	assert_int_equal(broken, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_random_ops_match_reference),
		cmocka_unit_test(test_map_verify_every_step),
		cmocka_unit_test(test_map_overwrite_splits_middle),
		cmocka_unit_test(test_map_peek_and_prefetch),
		cmocka_unit_test(test_map_merges_contiguous),
		cmocka_unit_test(test_map_sequential_fill_merges),
		cmocka_unit_test(test_map_extent_length_limit),
		cmocka_unit_test(test_map_three_levels),
		cmocka_unit_test(test_map_unmap_huge_ranges),
		cmocka_unit_test(test_map_memory_random_fill),
		cmocka_unit_test(test_map_memory_sequential_unmergeable),
		cmocka_unit_test(test_map_visit_stops_early),
		cmocka_unit_test(test_map_share_copies_path),
		cmocka_unit_test(test_map_share_empty),
		cmocka_unit_test(test_map_share_full_leaf),
		cmocka_unit_test(test_map_share_random),
		cmocka_unit_test(test_map_share_random_no_copies),
		cmocka_unit_test(test_map_share_every_step),
		cmocka_unit_test(test_map_share_three_levels),
		cmocka_unit_test(test_map_freeze_saves_the_start),
		cmocka_unit_test(test_map_save_load_round_trip),
		cmocka_unit_test(test_map_save_generations),
		cmocka_unit_test(test_map_load_intact),
		cmocka_unit_test(test_map_load_truncated),
		cmocka_unit_test(test_map_load_bad_fields),
		cmocka_unit_test(test_map_load_bad_roots),
		cmocka_unit_test(test_map_load_random_damage),
		cmocka_unit_test(test_map_load_rejects_overlapping_siblings),
		cmocka_unit_test(test_map_load_rejects_bad_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

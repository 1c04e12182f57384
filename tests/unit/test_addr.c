/* tests/unit/test_addr.c: the address table (store/addr.c) on its own.
 *
 * The table is what the maps' reference counts land in (store_addr_ref is
 * their ref callback) and what the segments' space accounting hears from
 * (the live callback). The random test keeps a reference per sector of a
 * few records: in the table or not, its device address, how many leaves
 * hold it; and per device sector whether the live callback last called it
 * live. Every change must match it sector for sector, neighbouring runs
 * must merge as addr.h says, a save and load must give the same table, and
 * the cleaner's moves must take the live accounting along.
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

#include "store/addr.h"
#include "tests/lib/testlib.h"

#define OFFS    (1u << ADDR_OFF_BITS)   /* sectors a record's data may span */

/* The live callback's sum, and its calls. */
struct live_log {
	int64_t  sum;
	uint64_t calls;
	uint64_t la, pba, len;  /* of the last call */
	int      sign;
};

static void log_live(void *arg, uint64_t la, uint64_t pba, uint64_t len, int sign)
{
	struct live_log *l = arg;

	assert_true(sign == 1 || sign == -1);
	assert_true(len > 0);
	l->sum += sign * (int64_t)len;
	l->calls++;
	l->la = la;
	l->pba = pba;
	l->len = len;
	l->sign = sign;
}

static void expect_live(const struct live_log *l, uint64_t calls, uint64_t la, uint64_t pba,
                        uint64_t len, int sign)
{
	assert_int_equal(l->calls, calls);
	assert_int_equal(l->la, la);
	assert_int_equal(l->pba, pba);
	assert_int_equal(l->len, len);
	assert_int_equal(l->sign, sign);
}

struct piece_list {
	uint64_t la[8], len[8], pba[8];
	unsigned n;
};

static int list_piece(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct piece_list *p = arg;

	assert_true(p->n < 8);
	p->la[p->n] = la;
	p->len[p->n] = len;
	p->pba[p->n++] = pba;
	return 0;
}

static void expect_piece(const struct piece_list *p, unsigned i, uint64_t la, uint64_t len,
                         uint64_t pba)
{
	assert_true(i < p->n);
	assert_int_equal(p->la[i], la);
	assert_int_equal(p->len[i], len);
	assert_int_equal(p->pba[i], pba);
}

static int visit_list(const struct store_addr *t, uint64_t la, uint64_t len,
                      struct piece_list *p)
{
	p->n = 0;
	return store_addr_visit(t, la, len, list_piece, p);
}

static int record_list(const struct store_addr *t, uint64_t seq, uint64_t lo, uint64_t hi,
                       struct piece_list *p)
{
	p->n = 0;
	return store_addr_visit_record(t, seq, lo, hi, list_piece, p);
}

static bool accept_pba(void *arg, uint64_t pba, uint64_t len)
{
	(void)arg;
	(void)pba;
	(void)len;
	return true;
}

/* Saves t and loads it into a fresh table: 0 or the load's error. */
static int save_load(const struct store_addr *t, struct store_addr *out)
{
	size_t n = store_addr_save_bytes(t), used = 0;
	char *buf = malloc(n + 1);
	int rc;

	assert_non_null(buf);
	assert_int_equal(store_addr_save(t, buf), n);
	assert_int_equal(store_addr_init(out, NULL, NULL), 0);
	rc = store_addr_load(out, buf, n, t->nrecs, accept_pba, NULL, &used);
	if (rc == 0)
		assert_int_equal(used, n);
	free(buf);
	return rc;
}

/* ---- adding and finding -------------------------------------------------- */

static void test_addr_add_visit(void **state)
{
	struct store_addr t;
	struct piece_list p;
	uint64_t la = addr_la(5, 0);

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	assert_int_equal(store_addr_add(&t, la, 100, 1000), 0);
	assert_int_equal(t.nrecs, 1);
	assert_int_equal(t.nruns, 1);
	assert_int_equal(t.live, 0);            /* nothing references it yet */
	assert_int_equal(visit_list(&t, la + 10, 20, &p), 0);
	assert_int_equal(p.n, 1);
	expect_piece(&p, 0, la + 10, 20, 1010);
	/* past its end, before it, another record */
	assert_int_equal(visit_list(&t, la + 90, 20, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, addr_la(6, 0), 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, addr_la(4, 0), 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, la, 0, &p), 0);
	assert_int_equal(p.n, 0);

	/* a log address is written once */
	assert_int_equal(store_addr_add(&t, la + 50, 100, 7000), -EEXIST);
	assert_int_equal(store_addr_add(&t, la + 99, 1, 7000), -EEXIST);
	assert_int_equal(store_addr_add(&t, la, 1, 7000), -EEXIST);
	/* more of the record, not contiguous on the device; and one before */
	assert_int_equal(store_addr_add(&t, la + 100, 50, 2000), 0);
	assert_int_equal(store_addr_add(&t, la + 200, 10, 3000), 0);
	assert_int_equal(t.nrecs, 1);
	assert_int_equal(t.nruns, 3);
	assert_int_equal(visit_list(&t, la + 90, 20, &p), 0);
	assert_int_equal(p.n, 2);
	expect_piece(&p, 0, la + 90, 10, 1090);
	expect_piece(&p, 1, la + 100, 10, 2000);
	/* a hole in the middle */
	assert_int_equal(visit_list(&t, la + 140, 70, &p), -EUCLEAN);
	assert_int_equal(p.n, 1);
	expect_piece(&p, 0, la + 140, 10, 2040);

	/* nothing, or past the record's span */
	assert_int_equal(store_addr_add(&t, addr_la(9, 0), 0, 1), -EINVAL);
	assert_int_equal(store_addr_add(&t, addr_la(9, OFFS - 6), 7, 1), -EINVAL);
	assert_int_equal(store_addr_add(&t, addr_la(9, OFFS - 6), 6, 1), 0);
	assert_int_equal(visit_list(&t, addr_la(9, OFFS - 6), 6, &p), 0);
	expect_piece(&p, 0, addr_la(9, OFFS - 6), 6, 1);
	/* the largest seq a log address holds */
	la = addr_la((1ull << (64 - ADDR_OFF_BITS)) - 1, 3);
	assert_int_equal(store_addr_add(&t, la, 4, 77), 0);
	assert_int_equal(visit_list(&t, la + 1, 3, &p), 0);
	expect_piece(&p, 0, la + 1, 3, 78);
	store_addr_fini(&t);
}

/* ---- references ---------------------------------------------------------- */

/* References to part of a run split it, and the pieces merge back when
 * their counts are equal again; the live callback hears each range that
 * starts or stops being referenced, with its device address. */
static void test_addr_ref_splits_and_merges(void **state)
{
	struct store_addr t;
	struct live_log ll = { 0 };
	struct piece_list p;
	uint64_t la = addr_la(7, 0);

	(void)state;
	assert_int_equal(store_addr_init(&t, log_live, &ll), 0);
	assert_int_equal(store_addr_add(&t, la, 100, 500), 0);

	store_addr_ref(&t, la + 10, 10, +1);            /* [0,10)0 [10,20)1 [20,100)0 */
	assert_int_equal(t.err, 0);
	assert_int_equal(t.nruns, 3);
	expect_live(&ll, 1, la + 10, 510, 10, +1);
	assert_int_equal(t.live, 10);
	assert_int_equal(store_addr_only(&t, la, 100), 10);
	assert_int_equal(store_addr_only(&t, la + 15, 100), 5);
	assert_int_equal(store_addr_only(&t, la + 20, 80), 0);

	store_addr_ref(&t, la + 15, 15, +1);            /* .. [10,15)1 [15,20)2 [20,30)1 .. */
	assert_int_equal(t.nruns, 5);
	expect_live(&ll, 2, la + 20, 520, 10, +1);
	assert_int_equal(t.live, 20);
	assert_int_equal(store_addr_only(&t, la, 100), 15);
	/* visiting goes by run */
	assert_int_equal(visit_list(&t, la + 5, 30, &p), 0);
	assert_int_equal(p.n, 5);
	expect_piece(&p, 0, la + 5, 5, 505);
	expect_piece(&p, 2, la + 15, 5, 515);
	expect_piece(&p, 4, la + 30, 5, 530);

	store_addr_ref(&t, la + 15, 5, -1);             /* [10,30)1 merges back */
	assert_int_equal(t.nruns, 3);
	assert_int_equal(ll.calls, 2);                  /* still referenced */
	assert_int_equal(store_addr_only(&t, la, 100), 20);

	store_addr_ref(&t, la + 10, 20, -1);            /* unreferenced: leaves the table */
	expect_live(&ll, 3, la + 10, 510, 20, -1);
	assert_int_equal(t.live, 0);
	assert_int_equal(ll.sum, 0);
	assert_int_equal(t.nruns, 2);
	assert_int_equal(visit_list(&t, la + 10, 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, la, 10, &p), 0);
	assert_int_equal(visit_list(&t, la + 30, 70, &p), 0);
	assert_int_equal(t.err, 0);

	/* the rest, referenced and dropped whole: the record goes */
	store_addr_ref(&t, la, 10, +1);
	store_addr_ref(&t, la + 30, 70, +1);
	assert_int_equal(t.live, 80);
	store_addr_ref(&t, la + 30, 70, -1);
	store_addr_ref(&t, la, 10, -1);
	assert_int_equal(t.nrecs, 0);
	assert_int_equal(t.nruns, 0);
	assert_int_equal(t.live, 0);
	assert_int_equal(ll.sum, 0);
	assert_int_equal(t.err, 0);

	/* a whole run: a reference in its middle splits it, dropping it merges */
	assert_int_equal(store_addr_add(&t, la, 100, 500), 0);
	store_addr_ref(&t, la, 100, +1);
	store_addr_ref(&t, la + 40, 20, +1);
	assert_int_equal(t.nruns, 3);
	store_addr_ref(&t, la + 40, 20, -1);
	assert_int_equal(t.nruns, 1);
	assert_int_equal(store_addr_save_bytes(&t), 32);
	store_addr_ref(&t, la, 100, -1);
	assert_int_equal(t.nrecs, 0);
	assert_int_equal(t.err, 0);
	store_addr_fini(&t);
}

/* The common death in replay: sectors in the middle of a run one leaf
 * holds. The run becomes two with the live callback told of the middle
 * alone; runs around it stay; the table saves and loads the same; a hint
 * changes nothing. */
static void test_addr_ref_punch(void **state)
{
	struct store_addr t, u;
	struct live_log ll = { 0 };
	struct piece_list p;
	uint64_t la = addr_la(9, 0);

	(void)state;
	assert_int_equal(store_addr_init(&t, log_live, &ll), 0);
	store_addr_prefetch(&t, la, false);             /* not there: nothing */
	store_addr_prefetch(&t, la, true);
	assert_int_equal(store_addr_add(&t, la, 100, 500), 0);
	assert_int_equal(store_addr_add(&t, la + 100, 50, 900), 0);
	store_addr_ref(&t, la, 100, +1);
	store_addr_ref(&t, la + 100, 50, +1);
	assert_int_equal(t.nruns, 2);
	store_addr_prefetch(&t, la + 30, false);
	store_addr_prefetch(&t, la + 30, true);
	assert_int_equal(t.nruns, 2);

	store_addr_ref(&t, la + 30, 8, -1);             /* [0,30)1 [38,100)1 [100,150)1 */
	assert_int_equal(t.err, 0);
	assert_int_equal(t.nruns, 3);
	expect_live(&ll, 3, la + 30, 530, 8, -1);
	assert_int_equal(t.live, 142);
	assert_int_equal(visit_list(&t, la + 30, 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, la + 20, 10, &p), 0);
	expect_piece(&p, 0, la + 20, 10, 520);
	assert_int_equal(visit_list(&t, la + 38, 70, &p), 0);
	assert_int_equal(p.n, 2);
	expect_piece(&p, 0, la + 38, 62, 538);
	expect_piece(&p, 1, la + 100, 8, 900);
	assert_int_equal(store_addr_only(&t, la, 150), 142);
	assert_int_equal(save_load(&t, &u), 0);
	assert_int_equal(u.nruns, 3);
	store_addr_fini(&u);

	/* held twice: no death, so no hole */
	store_addr_ref(&t, la + 50, 10, +1);
	store_addr_ref(&t, la + 40, 30, -1);
	assert_int_equal(t.err, 0);
	assert_int_equal(t.live, 122);
	assert_int_equal(visit_list(&t, la + 50, 10, &p), 0);
	assert_int_equal(visit_list(&t, la + 49, 1, &p), -EUCLEAN);
	assert_int_equal(ll.sum, 122);
	store_addr_fini(&t);
}

/* Runs merge only where the device addresses continue too, and never past
 * what a run's length holds. */
static void test_addr_merge_needs_contiguous_pba(void **state)
{
	struct store_addr t;
	struct piece_list p;
	uint64_t la = addr_la(11, 0);

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	/* written in two pieces at contiguous device addresses: one run */
	assert_int_equal(store_addr_add(&t, la, 50, 1000), 0);
	assert_int_equal(store_addr_add(&t, la + 50, 50, 1050), 0);
	store_addr_ref(&t, la, 100, +1);
	assert_int_equal(t.nruns, 1);
	/* apart on the device: two */
	assert_int_equal(store_addr_add(&t, la + 100, 50, 9000), 0);
	store_addr_ref(&t, la + 100, 50, +1);
	assert_int_equal(t.nruns, 2);
	assert_int_equal(visit_list(&t, la + 90, 20, &p), 0);
	assert_int_equal(p.n, 2);
	expect_piece(&p, 0, la + 90, 10, 1090);
	expect_piece(&p, 1, la + 100, 10, 9000);
	/* contiguous but referenced a different number of times: two */
	assert_int_equal(store_addr_add(&t, la + 150, 10, 9050), 0);
	store_addr_ref(&t, la + 150, 10, +1);
	store_addr_ref(&t, la + 150, 10, +1);
	assert_int_equal(t.nruns, 3);
	store_addr_ref(&t, la + 150, 10, -1);
	assert_int_equal(t.nruns, 2);
	assert_int_equal(t.err, 0);
	store_addr_fini(&t);

	/* a record spanning all it may: two runs whose sum a length cannot hold */
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	la = addr_la(12, 0);
	assert_int_equal(store_addr_add(&t, la, 40000, 0), 0);
	assert_int_equal(store_addr_add(&t, la + 40000, OFFS - 40000, 40000), 0);
	store_addr_ref(&t, la, OFFS, +1);
	assert_int_equal(t.err, 0);
	assert_int_equal(t.live, OFFS);
	assert_int_equal(store_addr_only(&t, la, OFFS), OFFS);
	assert_int_equal(visit_list(&t, la, OFFS, &p), 0);
	assert_int_equal(p.n, 2);
	expect_piece(&p, 1, la + 40000, OFFS - 40000, 40000);
	store_addr_ref(&t, la + 1, OFFS - 1, -1);
	assert_int_equal(t.live, 1);
	assert_int_equal(t.err, 0);
	store_addr_fini(&t);
}

/* A reference the table cannot take is corruption: err is set, and stays. */
static void test_addr_ref_errors(void **state)
{
	struct store_addr t;
	uint64_t la = addr_la(3, 0);

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	store_addr_ref(&t, addr_la(99, 0), 1, +1);      /* no such record */
	assert_int_equal(t.err, -EUCLEAN);
	t.err = 0;
	assert_int_equal(store_addr_add(&t, la, 10, 100), 0);
	assert_int_equal(store_addr_add(&t, la + 20, 10, 120), 0);
	store_addr_ref(&t, la + 5, 10, +1);             /* into the hole */
	assert_int_equal(t.err, -EUCLEAN);
	t.err = 0;
	store_addr_ref(&t, la + 10, 10, +1);            /* all hole */
	assert_int_equal(t.err, -EUCLEAN);
	t.err = 0;
	store_addr_ref(&t, la + 20, 10, -1);            /* dropped, never taken */
	assert_int_equal(t.err, -EUCLEAN);
	t.err = 0;
	store_addr_ref(&t, addr_la(3, OFFS - 2), 4, +1); /* past the record's span */
	assert_int_equal(t.err, -EUCLEAN);
	t.err = 0;
	store_addr_ref(&t, la + 20, 10, +1);
	store_addr_ref(&t, la + 20, 10, -1);
	assert_int_equal(t.err, 0);
	store_addr_ref(&t, la + 20, 10, -1);            /* gone with the last reference */
	assert_int_equal(t.err, -EUCLEAN);
	/* sticky */
	store_addr_ref(&t, la, 10, +1);
	assert_int_equal(t.err, -EUCLEAN);
	store_addr_fini(&t);
}

/* ---- the cleaner --------------------------------------------------------- */

static int stop_at_first(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	(void)la;
	(void)len;
	(void)pba;
	++*(int *)arg;
	return -5;
}

/* ---- a checkpoint's save, a slice at a time -------------------------------- */

struct saved_rec {
	uint64_t    seq;
	const char *at;
	size_t      len;
};

static int saved_cmp(const void *a, const void *b)
{
	const struct saved_rec *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The records of a saved table, by seq. */
static struct saved_rec *saved_parse(const char *buf, size_t len, uint64_t *n)
{
	struct saved_rec *v = NULL;
	size_t off = 0;

	*n = 0;
	while (off < len) {
		uint32_t hdr[2];

		v = realloc(v, (*n + 1) * sizeof(*v));
		assert_non_null(v);
		memcpy(&v[*n].seq, buf + off, 8);
		memcpy(hdr, buf + off + 8, 8);
		v[*n].at = buf + off;
		v[*n].len = 16 + 16 * (size_t)hdr[0];
		off += v[(*n)++].len;
	}
	assert_int_equal(off, len);
	qsort(v, *n, sizeof(*v), saved_cmp);
	return v;
}

/* A save begun at one moment and made a few buckets at a time while runs
 * die, split, merge and move and new records come (more than the table's
 * buckets: it must not grow meanwhile), holds exactly the table of that
 * moment; the table grows once the save ends. */
static void test_addr_save_while_changing(void **state)
{
	uint64_t rng = tl_seed("test_addr_save_while_changing"), na, nb, mask, seq = 2000;
	struct saved_rec *ra, *rb;
	struct store_addr t;
	size_t len;
	char *a, *b;
	unsigned changes = 0;

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	for (uint64_t s = 1; s <= 1000; s++) {
		for (uint64_t off = 0; off < 64; off += 16) {
			assert_int_equal(store_addr_add(&t, addr_la(s, off), 16, s * 100 + off), 0);
			store_addr_ref(&t, addr_la(s, off), 16, +1);
		}
	}
	len = store_addr_save_bytes(&t);
	a = malloc(len);
	b = malloc(len);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(store_addr_save(&t, a), len);
	mask = t.mask;
	store_addr_save_begin(&t, 5, b);
	while (!store_addr_save_some(&t, 1 + tl_rand_below(&rng, 3))) {
		for (int k = (int)tl_rand_below(&rng, 6); k > 0; k--, changes++) {
			uint64_t la = addr_la(1 + tl_rand_below(&rng, 1000), tl_rand_below(&rng, 60));

			switch (tl_rand_below(&rng, 4)) {
			case 0:         /* a death, or a death of what is dead: err */
				store_addr_ref(&t, la, 1 + tl_rand_below(&rng, 4), -1);
				t.err = 0;
				break;
			case 1:         /* a split and a merge */
				store_addr_ref(&t, la, 2, +1);
				store_addr_ref(&t, la, 2, -1);
				t.err = 0;
				break;
			case 2:
				store_addr_move(&t, la & ~15ull, 16, 0, 1u << 30);
				break;
			default:        /* data written since */
				assert_int_equal(store_addr_add(&t, addr_la(seq, 0), 8, seq), 0);
				store_addr_ref(&t, addr_la(seq++, 0), 8, +1);
				break;
			}
		}
	}
	assert_true(t.mask == mask);
	assert_true(t.nrecs > t.mask + 1);
	assert_int_equal(t.sv.len, len);
	assert_int_equal(t.sv.recs, 1000);
	store_addr_save_end(&t);
	assert_true(t.mask > mask);
	ra = saved_parse(a, len, &na);
	rb = saved_parse(b, len, &nb);
	assert_int_equal(na, nb);
	for (uint64_t i = 0; i < na; i++) {
		assert_int_equal(ra[i].seq, rb[i].seq);
		assert_int_equal(ra[i].len, rb[i].len);
		assert_memory_equal(ra[i].at, rb[i].at, ra[i].len);
	}
	printf("test_addr_save_while_changing: %u changes during the save\n", changes);
	assert_true(changes > 500);
	free(ra);
	free(rb);
	free(a);
	free(b);
	store_addr_fini(&t);
}

/* Replay's second thread: the same adds and reference changes, deferred
 * to it with reads in between (each waits for it to catch up), leave the
 * table exactly as applying them here does, and a change that finds
 * corruption there is in err once it stops. */
static void test_addr_deferred_same(void **state)
{
	uint64_t rng = tl_seed("test_addr_deferred_same"), seed = rng;
	struct store_addr t[2];
	struct live_log ll[2] = { { 0 }, { 0 } };
	struct piece_list p;
	char *a, *b;
	size_t n;

	(void)state;
	for (int k = 0; k < 2; k++) {
		assert_int_equal(store_addr_init(&t[k], log_live, &ll[k]), 0);
		if (k == 1)
			assert_int_equal(store_addr_defer_start(&t[k]), 0);
		rng = seed;
		for (uint64_t seq = 1; seq <= 3000; seq++) {
			uint64_t old = 1 + tl_rand_below(&rng, seq);

			assert_int_equal(store_addr_add(&t[k], addr_la(seq, 0), 64, seq * 64), 0);
			store_addr_ref(&t[k], addr_la(seq, 0), 64, +1);
			if (old < seq)  /* an overwrite of older data, maybe dead already */
				store_addr_ref(&t[k], addr_la(old, tl_rand_below(&rng, 60)), 4, -1);
			t[k].err = 0;
			if (seq % 500 == 0)     /* a read: waits for the thread */
				visit_list(&t[k], addr_la(seq, 8), 8, &p);
		}
		store_addr_defer_stop(&t[k]);
		t[k].err = 0;
	}
	assert_int_equal(t[0].nrecs, t[1].nrecs);
	assert_int_equal(t[0].nruns, t[1].nruns);
	assert_int_equal(t[0].live, t[1].live);
	assert_int_equal(ll[0].sum, ll[1].sum);
	assert_int_equal(ll[0].calls, ll[1].calls);
	n = store_addr_save_bytes(&t[0]);
	a = malloc(n);
	b = malloc(n);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(store_addr_save(&t[0], a), n);
	assert_int_equal(store_addr_save(&t[1], b), n);
	assert_memory_equal(a, b, n);
	/* corruption found on the thread: a reference to what is not there */
	assert_int_equal(store_addr_defer_start(&t[1]), 0);
	store_addr_ref(&t[1], addr_la(99999, 0), 1, +1);
	assert_int_equal(t[1].err, 0);          /* not yet: it is the thread's */
	store_addr_defer_stop(&t[1]);
	assert_int_equal(t[1].err, -EUCLEAN);
	free(a);
	free(b);
	store_addr_fini(&t[0]);
	store_addr_fini(&t[1]);
}

/* Moving data changes where a log address is, only where it still is
 * where the cleaner copied it from, and the live callback follows it. */
static void test_addr_move(void **state)
{
	struct store_addr t;
	struct live_log ll = { 0 };
	struct piece_list p;
	uint64_t la = addr_la(8, 0);
	int calls = 0;

	(void)state;
	assert_int_equal(store_addr_init(&t, log_live, &ll), 0);
	assert_int_equal(store_addr_add(&t, la, 100, 1000), 0);
	store_addr_ref(&t, la, 100, +1);
	expect_live(&ll, 1, la, 1000, 100, +1);

	store_addr_move(&t, la, 100, 1000, 5000);
	expect_live(&ll, 3, la, 5000, 100, +1);
	assert_int_equal(ll.sum, 100);
	assert_int_equal(t.live, 100);
	assert_int_equal(visit_list(&t, la, 100, &p), 0);
	assert_int_equal(p.n, 1);
	expect_piece(&p, 0, la, 100, 5000);
	/* from where it no longer is: nothing moves, and the run stays whole */
	store_addr_move(&t, la, 50, 1000, 7000);
	assert_int_equal(ll.calls, 3);
	assert_int_equal(t.nruns, 1);
	assert_int_equal(visit_list(&t, la, 100, &p), 0);
	expect_piece(&p, 0, la, 100, 5000);

	/* part of a run: it splits */
	store_addr_move(&t, la + 20, 10, 5020, 9000);
	expect_live(&ll, 5, la + 20, 9000, 10, +1);
	assert_int_equal(t.nruns, 3);
	/* a part that died meanwhile stays dead; the parts around it move */
	store_addr_ref(&t, la + 40, 10, -1);
	expect_live(&ll, 6, la + 40, 5040, 10, -1);
	store_addr_move(&t, la + 30, 70, 5030, 12000);
	assert_int_equal(ll.sum, 90);
	assert_int_equal(visit_list(&t, la + 40, 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, la + 30, 10, &p), 0);
	expect_piece(&p, 0, la + 30, 10, 12000);
	assert_int_equal(visit_list(&t, la + 50, 50, &p), 0);
	expect_piece(&p, 0, la + 50, 50, 12020);
	/* moved next to its neighbour on the device: the runs merge */
	store_addr_move(&t, la + 20, 10, 9000, 11990);
	assert_int_equal(t.nruns, 3);
	assert_int_equal(visit_list(&t, la, 40, &p), 0);
	assert_int_equal(p.n, 2);
	expect_piece(&p, 1, la + 20, 20, 11990);
	/* a record that is gone */
	store_addr_move(&t, addr_la(77, 0), 10, 0, 100);
	assert_int_equal(t.err, 0);
	assert_int_equal(t.live, 90);
	assert_int_equal(ll.sum, 90);

	/* a victim's runs: only those wholly in it */
	assert_int_equal(record_list(&t, 8, 0, UINT64_MAX, &p), 0);
	assert_int_equal(p.n, 3);
	expect_piece(&p, 0, la, 20, 5000);
	expect_piece(&p, 1, la + 20, 20, 11990);
	expect_piece(&p, 2, la + 50, 50, 12020);
	assert_int_equal(record_list(&t, 8, 11990, 12070, &p), 0);
	assert_int_equal(p.n, 2);
	assert_int_equal(record_list(&t, 8, 11990, 12069, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(record_list(&t, 8, 11991, 12070, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(record_list(&t, 9, 0, UINT64_MAX, &p), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(store_addr_visit_record(&t, 8, 0, UINT64_MAX, stop_at_first, &calls), -5);
	assert_int_equal(calls, 1);
	assert_int_equal(t.err, 0);
	store_addr_fini(&t);
}

/* ---- pruning ------------------------------------------------------------- */

/* Prune drops what no map references (a load's data that no map took) and
 * keeps the rest as it was; records left with nothing go. */
static void test_addr_prune(void **state)
{
	struct store_addr t;
	struct live_log ll = { 0 };
	struct piece_list p;

	(void)state;
	assert_int_equal(store_addr_init(&t, log_live, &ll), 0);
	for (uint64_t s = 1; s <= 4; s++)
		assert_int_equal(store_addr_add(&t, addr_la(s, 0), 100, s * 1000), 0);
	store_addr_ref(&t, addr_la(2, 10), 10, +1);
	store_addr_ref(&t, addr_la(4, 0), 100, +1);
	store_addr_ref(&t, addr_la(4, 50), 10, +1);
	assert_int_equal(ll.calls, 2);
	assert_int_equal(store_addr_prune(&t), 100 + 90 + 100);
	assert_int_equal(ll.calls, 2);                  /* it was never live */
	assert_int_equal(t.nrecs, 2);
	assert_int_equal(t.nruns, 1 + 3);
	assert_int_equal(t.live, 110);
	assert_int_equal(visit_list(&t, addr_la(1, 0), 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, addr_la(2, 0), 1, &p), -EUCLEAN);
	assert_int_equal(visit_list(&t, addr_la(2, 10), 10, &p), 0);
	expect_piece(&p, 0, addr_la(2, 10), 10, 2010);
	assert_int_equal(visit_list(&t, addr_la(4, 0), 100, &p), 0);
	assert_int_equal(p.n, 3);
	assert_int_equal(store_addr_only(&t, addr_la(4, 0), 100), 90);
	assert_int_equal(store_addr_prune(&t), 0);
	store_addr_ref(&t, addr_la(2, 10), 10, -1);
	assert_int_equal(t.nrecs, 1);
	assert_int_equal(t.err, 0);
	store_addr_fini(&t);
}

/* ---- many records -------------------------------------------------------- */

/* Enough records that the hash table grows several times, seqs spread
 * over all 48 bits: every one stays findable, then all go. */
static void test_addr_many_records(void **state)
{
	struct store_addr t;
	const uint64_t n = 20000;
	uint64_t rng = tl_seed("test_addr_many_records"), *seq = malloc(n * sizeof(*seq)), recs;
	struct piece_list p;

	(void)state;
	assert_non_null(seq);
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	for (uint64_t i = 0; i < n; i++) {
		int rc;

		/* half dense (as the log hands them out), half anywhere */
		seq[i] = i % 2 ? i : tl_rand(&rng) >> ADDR_OFF_BITS;
		rc = store_addr_add(&t, addr_la(seq[i], 7), 3, i * 8);
		if (rc == -EEXIST) {            /* a random seq twice */
			seq[i] = 0;
			continue;
		}
		assert_int_equal(rc, 0);
		store_addr_ref(&t, addr_la(seq[i], 8), 1, +1);
	}
	assert_int_equal(t.err, 0);
	for (uint64_t i = 0; i < n; i++) {
		if (!seq[i])
			continue;
		assert_int_equal(visit_list(&t, addr_la(seq[i], 7), 3, &p), 0);
		assert_int_equal(p.n, 3);
		expect_piece(&p, 1, addr_la(seq[i], 8), 1, i * 8 + 1);
		assert_int_equal(store_addr_only(&t, addr_la(seq[i], 7), 3), 1);
	}
	recs = t.nrecs;
	assert_int_equal(store_addr_prune(&t), 2 * recs);
	assert_int_equal(t.nrecs, recs);
	for (uint64_t i = 0; i < n; i++)
		if (seq[i])
			store_addr_ref(&t, addr_la(seq[i], 8), 1, -1);
	assert_int_equal(t.err, 0);
	assert_int_equal(t.nrecs, 0);
	assert_int_equal(t.nruns, 0);
	assert_int_equal(t.live, 0);
	store_addr_fini(&t);
	free(seq);
}

/* ---- checkpoints --------------------------------------------------------- */

struct pba_check {
	uint64_t calls, limit;  /* accept the first limit calls */
};

static bool check_pba(void *arg, uint64_t pba, uint64_t len)
{
	struct pba_check *c = arg;

	assert_true(len > 0);
	(void)pba;
	return c->calls++ < c->limit;
}

/* A table saved and loaded: the same records and runs at the same device
 * addresses, none referenced (the maps' load takes the references). */
static void test_addr_save_load(void **state)
{
	struct store_addr t, u;
	struct piece_list p;
	struct pba_check pc = { 0, UINT64_MAX };
	size_t n, used;
	char *buf;

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	for (uint64_t s = 1; s <= 40; s++) {
		assert_int_equal(store_addr_add(&t, addr_la(s * 977, 0), 64, s * 100), 0);
		assert_int_equal(store_addr_add(&t, addr_la(s * 977, 64), 16, s * 100 + 90000), 0);
		store_addr_ref(&t, addr_la(s * 977, 0), 80, +1);
		store_addr_ref(&t, addr_la(s * 977, 10), 4, +1);
	}
	assert_int_equal(t.err, 0);
	n = store_addr_save_bytes(&t);
	assert_int_equal(n, 16 * t.nrecs + 16 * t.nruns);
	buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(store_addr_save(&t, buf), n);

	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, buf, n, t.nrecs, check_pba, &pc, &used), 0);
	assert_int_equal(used, n);
	assert_int_equal(pc.calls, t.nruns);
	assert_int_equal(u.nrecs, t.nrecs);
	assert_int_equal(u.nruns, t.nruns);
	assert_int_equal(u.live, 0);
	for (uint64_t s = 1; s <= 40; s++) {
		struct piece_list q;

		assert_int_equal(visit_list(&t, addr_la(s * 977, 0), 80, &p), 0);
		assert_int_equal(visit_list(&u, addr_la(s * 977, 0), 80, &q), 0);
		assert_int_equal(p.n, 4);
		assert_int_equal(q.n, 4);
		for (unsigned i = 0; i < q.n; i++)
			expect_piece(&q, i, p.la[i], p.len[i], p.pba[i]);
		assert_int_equal(store_addr_only(&u, addr_la(s * 977, 0), 80), 0);
	}
	/* references after loading work as before; what none took is pruned */
	store_addr_ref(&u, addr_la(977, 0), 64, +1);
	assert_int_equal(u.err, 0);
	assert_int_equal(store_addr_prune(&u), 80 * 40 - 64);
	assert_int_equal(u.nrecs, 1);
	store_addr_fini(&u);

	/* the same records twice */
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, buf, n, t.nrecs, accept_pba, NULL, &used), 0);
	assert_int_equal(store_addr_load(&u, buf, n, t.nrecs, accept_pba, NULL, &used), -EUCLEAN);
	store_addr_fini(&u);
	/* device addresses the pool refuses */
	pc = (struct pba_check){ 0, 17 };
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, buf, n, t.nrecs, check_pba, &pc, &used), -EUCLEAN);
	store_addr_fini(&u);
	/* an empty table */
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, buf, 0, 0, accept_pba, NULL, &used), 0);
	assert_int_equal(used, 0);
	assert_int_equal(u.nrecs, 0);
	store_addr_fini(&u);
	free(buf);
	store_addr_fini(&t);
}

/* The saved form, by hand: a record header, then its runs. */
static size_t put_rec(char *buf, size_t off, uint64_t seq, uint32_t runs)
{
	uint32_t hdr[2] = { runs, 0 };

	memcpy(buf + off, &seq, 8);
	memcpy(buf + off + 8, hdr, 8);
	return off + 16;
}

static size_t put_run(char *buf, size_t off, uint16_t o, uint16_t len, uint64_t pba)
{
	uint16_t w[4] = { o, len, 0, 0 };

	memcpy(buf + off, w, 8);
	memcpy(buf + off + 8, &pba, 8);
	return off + 16;
}

/* Cut short anywhere, claiming more records than it holds, or with a field
 * out of range: -EUCLEAN, and the half-loaded table still frees cleanly. */
static void test_addr_load_damage(void **state)
{
	struct store_addr t, u;
	size_t n, used;
	char *buf, *bad;
	uint64_t seq;
	uint32_t hdr[2];
	uint16_t w[4];

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	for (uint64_t s = 1; s <= 5; s++) {
		assert_int_equal(store_addr_add(&t, addr_la(s, 0), 30, s * 100), 0);
		assert_int_equal(store_addr_add(&t, addr_la(s, 40), 30, s * 100 + 40), 0);
	}
	n = store_addr_save_bytes(&t);
	buf = malloc(n);
	bad = malloc(n);
	assert_non_null(buf);
	assert_non_null(bad);
	assert_int_equal(store_addr_save(&t, buf), n);
	for (size_t cut = 0; cut < n; cut++) {
		assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
		if (store_addr_load(&u, buf, cut, t.nrecs, accept_pba, NULL, &used) != -EUCLEAN)
			fail_msg("%zu of %zu bytes loaded", cut, n);
		store_addr_fini(&u);
	}
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, buf, n, t.nrecs + 1, accept_pba, NULL, &used),
	                 -EUCLEAN);
	store_addr_fini(&u);

	/* the first record: u64 seq, u32 n, u32 0, runs of u16 off, u16 len, u32 0, u64 pba */
	for (unsigned k = 0; k < 7; k++) {
		memcpy(bad, buf, n);
		memcpy(&seq, bad, 8);
		memcpy(hdr, bad + 8, 8);
		memcpy(w, bad + 16 + 16, 8);            /* the second run */
		switch (k) {
		case 0: hdr[0] = 0; break;                      /* no runs */
		case 1: hdr[0] = (uint32_t)(n / 16); break;     /* more than there are */
		case 2: seq = 1ull << (64 - ADDR_OFF_BITS); break;
		case 3: w[1] = 0; break;                        /* a run of nothing */
		case 4: w[0] = 10; break;                       /* overlapping the first */
		case 5: w[0] = 0; break;                        /* out of order */
		case 6: w[0] = OFFS - 10; w[1] = 11; break;     /* past the span */
		}
		memcpy(bad, &seq, 8);
		memcpy(bad + 8, hdr, 8);
		memcpy(bad + 16 + 16, w, 8);
		assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
		if (store_addr_load(&u, bad, n, t.nrecs, accept_pba, NULL, &used) != -EUCLEAN)
			fail_msg("damage %u loaded", k);
		store_addr_fini(&u);
	}
	free(buf);
	free(bad);
	store_addr_fini(&t);

	/* built by hand: runs out of order though apart, and one seq twice
	 * though its runs are apart (each would add without a conflict) */
	bad = calloc(1, 256);
	assert_non_null(bad);
	n = put_rec(bad, 0, 5, 2);
	n = put_run(bad, n, 40, 10, 140);
	n = put_run(bad, n, 0, 10, 100);
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, bad, n, 1, accept_pba, NULL, &used), -EUCLEAN);
	store_addr_fini(&u);
	n = put_rec(bad, 0, 5, 1);
	n = put_run(bad, n, 0, 10, 100);
	n = put_rec(bad, n, 5, 1);
	n = put_run(bad, n, 40, 10, 140);
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, bad, 32, 1, accept_pba, NULL, &used), 0);
	store_addr_fini(&u);
	assert_int_equal(store_addr_init(&u, NULL, NULL), 0);
	assert_int_equal(store_addr_load(&u, bad, n, 2, accept_pba, NULL, &used), -EUCLEAN);
	store_addr_fini(&u);
	free(bad);
}

/* ---- refusals and edges -------------------------------------------------- */

/* An add the table refuses must leave nothing behind, or the next
 * checkpoint saves an empty record, which the load refuses. */
static void test_addr_refused_add_leaves_nothing(void **state)
{
	struct store_addr t, u;
	uint64_t recs;
	int rc;

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	assert_int_equal(store_addr_add(&t, addr_la(1, 0), 8, 100), 0);
	assert_int_equal(store_addr_add(&t, addr_la(2, 0), 0, 200), -EINVAL);
	assert_int_equal(store_addr_add(&t, addr_la(3, OFFS - 1), 2, 300), -EINVAL);
	rc = save_load(&t, &u);
	recs = t.nrecs;
	store_addr_fini(&u);
	store_addr_fini(&t);
	/* judged after freeing, so that a failure leaks nothing */
	assert_int_equal(rc, 0);
	assert_int_equal(recs, 1);
}

/* Data no map references is not live, wherever it is: moving it must not
 * tell the segments that it died at from and lives at to. */
static void test_addr_move_unreferenced(void **state)
{
	struct store_addr t;
	struct live_log ll = { 0 };
	struct piece_list p;
	uint64_t live;
	int rc;

	(void)state;
	assert_int_equal(store_addr_init(&t, log_live, &ll), 0);
	assert_int_equal(store_addr_add(&t, addr_la(6, 0), 10, 100), 0);
	store_addr_move(&t, addr_la(6, 0), 10, 100, 200);
	rc = visit_list(&t, addr_la(6, 0), 10, &p);
	live = t.live;
	store_addr_fini(&t);
	assert_int_equal(rc, 0);
	expect_piece(&p, 0, addr_la(6, 0), 10, 200);
	assert_int_equal(live, 0);
	if (ll.calls)
		fail_msg("%" PRIu64 " live calls for data never live, the last %+d for "
		         "[%" PRIu64 ", +%" PRIu64 ")", ll.calls, ll.sign, ll.pba, ll.len);
}

/* An add of a record's whole span, 2^ADDR_OFF_BITS sectors, is either
 * refused or all there: a run's u16 length cannot hold 65536. */
static void test_addr_add_whole_span(void **state)
{
	struct store_addr t;
	struct piece_list p;
	int rc;

	(void)state;
	assert_int_equal(store_addr_init(&t, NULL, NULL), 0);
	rc = store_addr_add(&t, addr_la(4, 0), OFFS, 1000);
	if (rc == 0) {
		int visit = visit_list(&t, addr_la(4, 0), OFFS, &p);
		uint64_t live;
		int err;

		store_addr_ref(&t, addr_la(4, 0), OFFS, +1);
		err = t.err;
		live = t.live;
		store_addr_fini(&t);
		assert_int_equal(visit, 0);
		assert_int_equal(err, 0);
		assert_int_equal(live, OFFS);
	} else {
		store_addr_fini(&t);
		assert_int_equal(rc, -EINVAL);
	}
}

/* ---- random operations against a reference ------------------------------- */

#define RECS    8
#define PBA_REC (4u * OFFS)     /* device space per record: two bases, apart */
#define PBA_MOVE ((uint64_t)RECS * PBA_REC)    /* then where the cleaner moves data */
#define PBA_ALL (PBA_MOVE + (4u << 20))

struct sect {
	uint64_t pba;
	uint32_t refs;
	bool     there;             /* in the table */
	bool     written;           /* ever added: a log address is written once */
};

struct recent_add {
	unsigned r;
	uint64_t off, len;
};

struct model {
	struct store_addr t;
	uint64_t    seq[RECS];
	struct sect *s[RECS];       /* OFFS each */
	uint8_t    *pba_live;       /* PBA_ALL: what the live callback said */
	uint64_t    move_next;      /* the next device sector a move may take */
	bool        moving;         /* in store_addr_move from move_from to move_to */
	uint64_t    move_la, move_from, move_to;
	int64_t     live_sum;
	struct recent_add recent[64];   /* adds, to aim changes at */
	unsigned    nrecent;
	uint64_t    rng, loads, prunes, most_runs, most_live;
};

static unsigned model_rec(const struct model *m, uint64_t seq)
{
	for (unsigned r = 0; r < RECS; r++)
		if (m->seq[r] == seq)
			return r;
	fail_msg("seq %" PRIu64 " is none of the test's", seq);
	return RECS;
}

/* Each call names the data by log address and device address: they must
 * agree with the reference (during a move, with where it goes too). */
static void model_live(void *arg, uint64_t la, uint64_t pba, uint64_t len, int sign)
{
	struct model *m = arg;
	unsigned r = model_rec(m, la >> ADDR_OFF_BITS);
	uint64_t off = la & (OFFS - 1);

	assert_true(pba + len <= PBA_ALL && off + len <= OFFS);
	for (uint64_t i = 0; i < len; i++) {
		uint64_t want = m->s[r][off + i].pba;

		if (m->moving && pba + i == m->move_to + (la + i - m->move_la))
			want = pba + i;
		if (want != pba + i)
			fail_msg("live(la %" PRIu64 ", pba %" PRIu64 "): that data is at %" PRIu64,
			         la + i, pba + i, m->s[r][off + i].pba);
	}
	for (uint64_t i = 0; i < len; i++) {
		if (m->pba_live[pba + i] == (sign > 0))
			fail_msg("pba %" PRIu64 " called %s twice", pba + i, sign > 0 ? "live" : "dead");
		m->pba_live[pba + i] = sign > 0;
	}
	m->live_sum += sign * (int64_t)len;
}

/* Where to change or look: mostly into a recent add (*r becomes its
 * record), else anywhere in record *r. */
static uint64_t model_off(struct model *m, unsigned *r)
{
	unsigned k;

	if (m->nrecent == 0 || tl_rand_below(&m->rng, 4) == 0)
		return tl_rand_below(&m->rng, OFFS);
	k = (unsigned)tl_rand_below(&m->rng, m->nrecent);
	*r = m->recent[k].r;
	return m->recent[k].off + tl_rand_below(&m->rng, m->recent[k].len);
}

static uint64_t model_len(struct model *m)
{
	return tl_rand_below(&m->rng, 10) ? 1 + tl_rand_below(&m->rng, 64)
	                                  : 1 + tl_rand_below(&m->rng, 2000);
}

/* The stretch from off on (at most len) whose sectors all pass ok. */
static uint64_t model_stretch(const struct model *m, unsigned r, uint64_t off, uint64_t len,
                              bool (*ok)(const struct sect *))
{
	uint64_t n = 0;

	while (n < len && off + n < OFFS && ok(&m->s[r][off + n]))
		n++;
	return n;
}

static bool sect_free(const struct sect *s)
{
	return !s->written;
}

static bool sect_there(const struct sect *s)
{
	return s->there;
}

static bool sect_held(const struct sect *s)
{
	return s->there && s->refs > 0;
}

static void model_add(struct model *m, unsigned r)
{
	uint64_t off = tl_rand_below(&m->rng, OFFS);
	uint64_t len = model_stretch(m, r, off, model_len(m), sect_free);
	/* two device bases: pieces next to each other on the same base can merge */
	uint64_t pba = r * (uint64_t)PBA_REC + (tl_rand_below(&m->rng, 4) ? 0 : 2 * OFFS) + off;

	if (len == 0)
		return;
	assert_int_equal(store_addr_add(&m->t, addr_la(m->seq[r], off), len, pba), 0);
	for (uint64_t i = 0; i < len; i++)
		m->s[r][off + i] = (struct sect){ .pba = pba + i, .there = true, .written = true };
	m->recent[m->nrecent < 64 ? m->nrecent++ : tl_rand_below(&m->rng, 64)] =
		(struct recent_add){ .r = r, .off = off, .len = len };
}

static void model_ref(struct model *m, unsigned r, int delta)
{
	uint64_t off = model_off(m, &r), len;

	len = model_stretch(m, r, off, model_len(m), delta > 0 ? sect_there : sect_held);
	if (len == 0)
		return;
	store_addr_ref(&m->t, addr_la(m->seq[r], off), len, delta);
	assert_int_equal(m->t.err, 0);
	for (uint64_t i = 0; i < len; i++) {
		struct sect *s = &m->s[r][off + i];

		s->refs += (uint32_t)delta;
		if (s->refs == 0)
			s->there = false;       /* unreferenced: out of the table */
	}
}

static void model_only(struct model *m, unsigned r)
{
	uint64_t off = model_off(m, &r), len = model_len(m), want = 0;

	if (len > OFFS - off)
		len = OFFS - off;
	for (uint64_t i = 0; i < len; i++)
		want += m->s[r][off + i].there && m->s[r][off + i].refs == 1;
	assert_int_equal(store_addr_only(&m->t, addr_la(m->seq[r], off), len), want);
}

struct model_visit {
	const struct model *m;
	unsigned r;
	uint64_t next;          /* offset the next piece must start at */
};

static int model_visit_cb(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct model_visit *v = arg;
	uint64_t off = la & (OFFS - 1);

	assert_int_equal(la >> ADDR_OFF_BITS, v->m->seq[v->r]);
	assert_int_equal(off, v->next);
	assert_true(len > 0 && off + len <= OFFS);
	for (uint64_t i = 0; i < len; i++) {
		assert_true(v->m->s[v->r][off + i].there);
		assert_int_equal(v->m->s[v->r][off + i].pba, pba + i);
	}
	v->next = off + len;
	return 0;
}

/* Visiting a range gives the reference's device addresses up to its first
 * sector not in the table, and then -EUCLEAN. */
static void model_visit(struct model *m, unsigned r)
{
	uint64_t off = model_off(m, &r), len = model_len(m), there;
	struct model_visit v;

	if (len > OFFS - off)
		len = OFFS - off;
	v = (struct model_visit){ .m = m, .r = r, .next = off };
	there = model_stretch(m, r, off, len, sect_there);
	assert_int_equal(store_addr_visit(&m->t, addr_la(m->seq[r], off), len, model_visit_cb, &v),
	                 there == len ? 0 : -EUCLEAN);
	if (there == len)
		assert_int_equal(v.next, off + len);
	else
		assert_true(v.next <= off + there);
}

static bool sect_movable(const struct sect *s)
{
	return !s->there || s->refs > 0;
}

/* The cleaner moved [off, off+len) from where one of its sectors is to a
 * fresh place: the parts whose data is at from.. follow; the rest (moved
 * before, never there, gone) stay. Only referenced data is ever moved. */
static void model_move(struct model *m, unsigned r)
{
	uint64_t off = model_off(m, &r), len, k, held = 0, from, to, la;

	len = model_stretch(m, r, off, model_len(m), sect_movable);
	for (uint64_t i = 0; i < len; i++)
		held += sect_held(&m->s[r][off + i]);
	if (held == 0 || m->move_next + len + 1 > PBA_ALL)
		return;
	for (k = tl_rand_below(&m->rng, len); !sect_held(&m->s[r][off + k]); k = (k + 1) % len)
		;
	from = m->s[r][off + k].pba - k;
	to = m->move_next;
	m->move_next += len + tl_rand_below(&m->rng, 2);  /* apart, or not */
	la = addr_la(m->seq[r], off);
	m->moving = true;
	m->move_la = la;
	m->move_to = to;
	store_addr_move(&m->t, la, len, from, to);
	m->moving = false;
	assert_int_equal(m->t.err, 0);
	for (uint64_t i = 0; i < len; i++)
		if (m->s[r][off + i].there && m->s[r][off + i].pba == from + i)
			m->s[r][off + i].pba = to + i;
}

static void model_prune(struct model *m)
{
	uint64_t want = 0;

	for (unsigned r = 0; r < RECS; r++)
		for (uint64_t o = 0; o < OFFS; o++)
			if (m->s[r][o].there && m->s[r][o].refs == 0) {
				m->s[r][o].there = false;
				want++;
			}
	assert_int_equal(store_addr_prune(&m->t), want);
	m->prunes++;
}

/* A checkpoint and a restart: save, load into a new table (no refs), then
 * the references again, as loading the maps takes them. */
static void model_reload(struct model *m)
{
	struct store_addr u;
	size_t n = store_addr_save_bytes(&m->t), used;
	uint64_t recs = m->t.nrecs;
	char *buf = malloc(n + 1);

	assert_non_null(buf);
	assert_int_equal(store_addr_save(&m->t, buf), n);
	store_addr_fini(&m->t);
	memset(m->pba_live, 0, PBA_ALL);
	m->live_sum = 0;
	assert_int_equal(store_addr_init(&u, model_live, m), 0);
	assert_int_equal(store_addr_load(&u, buf, n, recs, accept_pba, NULL, &used), 0);
	assert_int_equal(used, n);
	assert_int_equal(u.live, 0);
	m->t = u;
	for (unsigned r = 0; r < RECS; r++) {
		for (uint64_t o = 0; o < OFFS;) {
			uint32_t refs = m->s[r][o].refs;
			uint64_t len = 1;

			if (!m->s[r][o].there || refs == 0) {
				o++;
				continue;
			}
			while (o + len < OFFS && m->s[r][o + len].there && m->s[r][o + len].refs == refs)
				len++;
			for (uint32_t k = 0; k < refs; k++)
				store_addr_ref(&m->t, addr_la(m->seq[r], o), len, +1);
			o += len;
		}
	}
	assert_int_equal(m->t.err, 0);
	free(buf);
	m->loads++;
}

struct run_walk {
	const struct model *m;
	unsigned r;
	uint64_t next, runs;
	uint64_t lo, hi, in_runs, in_sectors;   /* runs wholly on [lo, hi) of the device */
	uint64_t prev_end, prev_pba, prev_len;  /* the run before, if it ended at next */
	uint32_t prev_refs;
};

/* Each piece of a whole-stretch visit is one run: one count throughout,
 * and not one that should have merged with the run before it. */
static int run_walk_cb(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct run_walk *w = arg;
	uint64_t off = la & (OFFS - 1);
	uint32_t refs = w->m->s[w->r][off].refs;

	assert_int_equal(off, w->next);
	for (uint64_t i = 0; i < len; i++) {
		assert_int_equal(w->m->s[w->r][off + i].pba, pba + i);
		if (w->m->s[w->r][off + i].refs != refs)
			fail_msg("seq %" PRIu64 " off %" PRIu64 ": one run, two counts",
			         w->m->seq[w->r], off + i);
	}
	if (w->runs && w->prev_end == off && refs > 0 && w->prev_refs == refs &&
	    w->prev_pba + w->prev_len == pba && w->prev_len + len <= UINT16_MAX)
		fail_msg("seq %" PRIu64 " off %" PRIu64 ": runs with %u references each, "
		         "contiguous on the device, not merged", w->m->seq[w->r], off, refs);
	if (pba >= w->lo && pba + len <= w->hi) {
		w->in_runs++;
		w->in_sectors += len;
	}
	w->prev_end = off + len;
	w->prev_pba = pba;
	w->prev_len = len;
	w->prev_refs = refs;
	w->next = off + len;
	w->runs++;
	return 0;
}

struct rec_walk {
	const struct model *m;
	unsigned r;
	uint64_t lo, hi, next, runs, sectors;
};

/* store_addr_visit_record: whole runs on [lo, hi) of the device, in order. */
static int rec_walk_cb(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct rec_walk *w = arg;
	uint64_t off = la & (OFFS - 1);

	assert_int_equal(la >> ADDR_OFF_BITS, w->m->seq[w->r]);
	assert_true(off >= w->next && len > 0 && off + len <= OFFS);
	assert_true(pba >= w->lo && pba + len <= w->hi);
	for (uint64_t i = 0; i < len; i++) {
		assert_true(w->m->s[w->r][off + i].there);
		assert_int_equal(w->m->s[w->r][off + i].pba, pba + i);
	}
	w->next = off + len;
	w->runs++;
	w->sectors += len;
	return 0;
}

/* Everything: the records, every run, the live sectors, the counters. */
static void model_check(struct model *m)
{
	uint64_t recs = 0, runs = 0, live = 0, pba_live = 0;

	assert_int_equal(m->t.err, 0);
	for (unsigned r = 0; r < RECS; r++) {
		bool any = false;
		struct run_walk w = { .m = m, .r = r };
		struct rec_walk v = { .m = m, .r = r };
		uint64_t a = tl_rand_below(&m->rng, PBA_ALL), b = tl_rand_below(&m->rng, PBA_ALL);

		/* a cleaner's victim: any stretch of the device */
		w.lo = v.lo = a < b ? a : b;
		w.hi = v.hi = a < b ? b : a;

		for (uint64_t o = 0; o < OFFS;) {
			uint64_t len = model_stretch(m, r, o, OFFS, sect_there), only = 0;

			if (len == 0) {
				o++;
				continue;
			}
			any = true;
			w.next = o;
			assert_int_equal(store_addr_visit(&m->t, addr_la(m->seq[r], o), len,
			                                  run_walk_cb, &w), 0);
			assert_int_equal(w.next, o + len);
			for (uint64_t i = 0; i < len; i++) {
				only += m->s[r][o + i].refs == 1;
				live += m->s[r][o + i].refs > 0;
				if ((m->s[r][o + i].refs > 0) != m->pba_live[m->s[r][o + i].pba])
					fail_msg("pba %" PRIu64 ": live %d, %u references",
					         m->s[r][o + i].pba, m->pba_live[m->s[r][o + i].pba],
					         m->s[r][o + i].refs);
			}
			assert_int_equal(store_addr_only(&m->t, addr_la(m->seq[r], o), len), only);
			o += len;
		}
		recs += any;
		runs += w.runs;
		assert_int_equal(store_addr_visit_record(&m->t, m->seq[r], v.lo, v.hi, rec_walk_cb,
		                                         &v), 0);
		assert_int_equal(v.runs, w.in_runs);
		assert_int_equal(v.sectors, w.in_sectors);
		v = (struct rec_walk){ .m = m, .r = r, .lo = 0, .hi = UINT64_MAX };
		assert_int_equal(store_addr_visit_record(&m->t, m->seq[r], v.lo, v.hi, rec_walk_cb,
		                                         &v), 0);
		assert_int_equal(v.runs, w.runs);
	}
	for (uint64_t p = 0; p < PBA_ALL; p++)
		pba_live += m->pba_live[p];
	assert_int_equal(m->t.nrecs, recs);
	assert_int_equal(m->t.nruns, runs);
	assert_int_equal(m->t.live, live);
	assert_int_equal(m->live_sum, (int64_t)live);
	assert_int_equal(pba_live, live);
	assert_int_equal(store_addr_save_bytes(&m->t), 16 * (recs + runs));
	if (runs > m->most_runs)
		m->most_runs = runs;
	if (live > m->most_live)
		m->most_live = live;
}

static void test_addr_random_ops_match_reference(void **state)
{
	struct model *m = calloc(1, sizeof(*m));
	const uint64_t ops = 40000;

	(void)state;
	assert_non_null(m);
	m->rng = tl_seed("test_addr_random_ops_match_reference");
	m->pba_live = calloc(PBA_ALL, 1);
	m->move_next = PBA_MOVE;
	assert_non_null(m->pba_live);
	for (unsigned r = 0; r < RECS; r++) {
		m->s[r] = calloc(OFFS, sizeof(*m->s[r]));
		assert_non_null(m->s[r]);
		/* both ends of the seq space, the rest anywhere in it */
		m->seq[r] = r == 0 ? 0 : r == 1 ? (1ull << (64 - ADDR_OFF_BITS)) - 1
		          : tl_rand(&m->rng) >> ADDR_OFF_BITS;
		for (unsigned k = 0; k < r; k++)
			if (m->seq[k] == m->seq[r])
				m->seq[r] ^= 1;
	}
	assert_int_equal(store_addr_init(&m->t, model_live, m), 0);
	for (uint64_t i = 1; i <= ops; i++) {
		unsigned kind = (unsigned)tl_rand_below(&m->rng, 1000);
		unsigned r = (unsigned)tl_rand_below(&m->rng, RECS);

		if (kind < 220)
			model_add(m, r);
		else if (kind < 600)
			model_ref(m, r, +1);
		else if (kind < 860)
			model_ref(m, r, -1);
		else if (kind < 920)
			model_only(m, r);
		else if (kind < 950)
			model_visit(m, r);
		else if (kind < 980)
			model_move(m, r);
		else if (kind < 990)
			model_prune(m);
		else
			model_reload(m);
		assert_int_equal(m->t.err, 0);
		assert_int_equal(m->t.live, (uint64_t)m->live_sum);
		if (i % 500 == 0)
			model_check(m);
	}
	model_check(m);
	printf("test_addr_random_ops_match_reference: %" PRIu64 " ops, %" PRIu64 " reloads, "
	       "%" PRIu64 " prunes, at most %" PRIu64 " runs and %" PRIu64 " live sectors\n",
	       ops, m->loads, m->prunes, m->most_runs, m->most_live);
	/* dropping every reference empties the table, and every sector died */
	for (unsigned r = 0; r < RECS; r++)
		for (uint64_t o = 0; o < OFFS; o++)
			while (m->s[r][o].there && m->s[r][o].refs > 0) {
				store_addr_ref(&m->t, addr_la(m->seq[r], o), 1, -1);
				if (--m->s[r][o].refs == 0)
					m->s[r][o].there = false;
			}
	model_prune(m);
	model_check(m);
	assert_int_equal(m->t.nrecs, 0);
	assert_int_equal(m->live_sum, 0);
	store_addr_fini(&m->t);
	for (unsigned r = 0; r < RECS; r++)
		free(m->s[r]);
	free(m->pba_live);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_add_visit),
		cmocka_unit_test(test_addr_ref_splits_and_merges),
		cmocka_unit_test(test_addr_ref_punch),
		cmocka_unit_test(test_addr_save_while_changing),
		cmocka_unit_test(test_addr_deferred_same),
		cmocka_unit_test(test_addr_merge_needs_contiguous_pba),
		cmocka_unit_test(test_addr_ref_errors),
		cmocka_unit_test(test_addr_move),
		cmocka_unit_test(test_addr_prune),
		cmocka_unit_test(test_addr_many_records),
		cmocka_unit_test(test_addr_save_load),
		cmocka_unit_test(test_addr_load_damage),
		cmocka_unit_test(test_addr_random_ops_match_reference),
		cmocka_unit_test(test_addr_refused_add_leaves_nothing),
		cmocka_unit_test(test_addr_add_whole_span),
		cmocka_unit_test(test_addr_move_unreferenced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

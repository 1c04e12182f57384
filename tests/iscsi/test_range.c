/* tests/iscsi/test_range.c: the block ranges that make COMPARE AND WRITE
 * atomic (iscsi/sbc.c scsi_range_lock/unlock) and the ROD tokens they
 * revoke (iscsi/copy.c tpc_lu_written), on a bare LU: no store, no
 * network. What iscsi-vaai.sh shows end to end through races, this shows
 * case by case: writes share, an exclusive holder waits for the writes
 * over its blocks and later writes wait behind it, in arrival order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "iscsi/scsi.h"

#define W       SCSI_RANGE_WRITE
#define X       (SCSI_RANGE_WRITE | SCSI_RANGE_EXCL)

static struct scsi_range *granted[16];
static int ngranted;
static struct scsi_range *unlock_when_granted;

static void on_grant(struct scsi_range *r)
{
	assert_true(r->held);
	granted[ngranted++] = r;
	if (r == unlock_when_granted)   /* a command that ends at once */
		scsi_range_unlock(r);
}

static int setup(void **state)
{
	struct scsi_lu *lu = calloc(1, sizeof(*lu));

	ngranted = 0;
	unlock_when_granted = NULL;
	*state = lu;
	return lu ? 0 : -1;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static void writes_share(void **state)
{
	struct scsi_lu *lu = *state;
	struct scsi_range a = { 0 }, b = { 0 };

	assert_int_equal(scsi_range_lock(lu, &a, 0, 8, W, on_grant), 0);
	assert_int_equal(scsi_range_lock(lu, &b, 4, 8, W, on_grant), 0);
	scsi_range_unlock(&a);
	scsi_range_unlock(&b);
	assert_int_equal(ngranted, 0);
	assert_true(TAILQ_EMPTY(&lu->ranges));
}

/* CAW waits for the write over its block; a write beside it goes; a
 * write over it that comes later waits behind the CAW, not beside it. */
static void exclusive_waits_and_orders(void **state)
{
	struct scsi_lu *lu = *state;
	struct scsi_range w1 = { 0 }, caw = { 0 }, beside = { 0 }, w2 = { 0 };

	assert_int_equal(scsi_range_lock(lu, &w1, 100, 1, W, on_grant), 0);
	assert_int_equal(scsi_range_lock(lu, &caw, 100, 1, X, on_grant), 1);
	assert_int_equal(scsi_range_lock(lu, &beside, 101, 1, W, on_grant), 0);
	assert_int_equal(scsi_range_lock(lu, &w2, 99, 2, W, on_grant), 1);
	scsi_range_unlock(&beside);
	assert_int_equal(ngranted, 0);
	scsi_range_unlock(&w1);
	assert_int_equal(ngranted, 1);
	assert_ptr_equal(granted[0], &caw);
	assert_false(w2.held);
	scsi_range_unlock(&caw);
	assert_int_equal(ngranted, 2);
	assert_ptr_equal(granted[1], &w2);
	scsi_range_unlock(&w2);
	assert_int_equal(lu->range_excl, 0u);
}

/* Two CAWs on one block run one after the other, in arrival order; CAWs
 * on different blocks do not wait for each other. */
static void exclusives(void **state)
{
	struct scsi_lu *lu = *state;
	struct scsi_range a = { 0 }, b = { 0 }, c = { 0 }, other = { 0 };

	assert_int_equal(scsi_range_lock(lu, &a, 7, 1, X, on_grant), 0);
	assert_int_equal(scsi_range_lock(lu, &b, 7, 1, X, on_grant), 1);
	assert_int_equal(scsi_range_lock(lu, &c, 7, 1, X, on_grant), 1);
	assert_int_equal(scsi_range_lock(lu, &other, 8, 1, X, on_grant), 0);
	scsi_range_unlock(&a);
	assert_int_equal(ngranted, 1);
	assert_ptr_equal(granted[0], &b);
	unlock_when_granted = &c;       /* c ends inside its grant */
	scsi_range_unlock(&b);
	assert_int_equal(ngranted, 2);
	assert_ptr_equal(granted[1], &c);
	assert_false(c.held);
	scsi_range_unlock(&other);
	assert_true(TAILQ_EMPTY(&lu->ranges));
	assert_true(TAILQ_EMPTY(&lu->range_wait));
}

/* Empty ranges hold nothing; the whole LU (n = UINT64_MAX) holds all. */
static void edges(void **state)
{
	struct scsi_lu *lu = *state;
	struct scsi_range caw = { 0 }, empty = { 0 }, all = { 0 }, never = { 0 };

	assert_int_equal(scsi_range_lock(lu, &caw, 5, 1, X, on_grant), 0);
	assert_int_equal(scsi_range_lock(lu, &empty, 5, 0, W, on_grant), 0);
	assert_int_equal(scsi_range_lock(lu, &all, 0, UINT64_MAX, W, on_grant), 1);
	assert_int_equal(all.end, UINT64_MAX);
	scsi_range_unlock(&never);      /* never locked: nothing */
	scsi_range_unlock(&empty);
	scsi_range_unlock(&caw);
	assert_int_equal(ngranted, 1);
	assert_ptr_equal(granted[0], &all);
	scsi_range_unlock(&all);
}

/* A writer over a token's range revokes it; a writer beside it, or a
 * holder that does not write (POPULATE TOKEN), does not. A write drops
 * the tokens that have expired. */
static void tokens_revoked_by_writes(void **state)
{
	struct scsi_lu *lu = *state;
	struct scsi_token *k = &lu->tokens[3], *old = &lu->tokens[9];
	struct scsi_range r = { 0 };
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	old->id = 7;                    /* last used at boot, 1 s timeout */
	old->timeout = 1;
	k->id = 42;
	k->timeout = 3600;
	k->used_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	k->nranges = 2;
	k->ranges[0].lba = 1000;
	k->ranges[0].n = 10;
	k->ranges[1].lba = 5000;
	k->ranges[1].n = 1;
	lu->ntokens = 2;
	scsi_range_lock(lu, &r, 1010, 3990, W, on_grant);       /* between them */
	scsi_range_unlock(&r);
	assert_int_equal(old->id, 0);
	assert_int_equal(lu->ntokens, 1u);
	scsi_range_lock(lu, &r, 1000, 10, SCSI_RANGE_EXCL, on_grant);
	scsi_range_unlock(&r);
	assert_false(k->revoked);
	scsi_range_lock(lu, &r, 5000, 1, W, on_grant);
	scsi_range_unlock(&r);
	assert_true(k->revoked);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(writes_share, setup, teardown),
		cmocka_unit_test_setup_teardown(exclusive_waits_and_orders, setup, teardown),
		cmocka_unit_test_setup_teardown(exclusives, setup, teardown),
		cmocka_unit_test_setup_teardown(edges, setup, teardown),
		cmocka_unit_test_setup_teardown(tokens_revoked_by_writes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_snap.c: snapshots, clones, rollback and copy by reference,
 * one promise at a time, on a real pool file: what each one reads, that
 * creating them takes no space, that the space comes back when the last
 * reference goes, and that all of it survives a restart (through the
 * checkpoint, and through the log alone). */
#include <errno.h>
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

#define MIB_SECTORS     2048u

struct fixture {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
};

static int pool_open(struct fixture *f, uint32_t ckpt_secs)
{
	struct store_pool_opts o = {
		.path = f->path, .create_bytes = 256ull << 20, .segment_bytes = 1u << 20,
		.log = tl_log, .checkpoint_secs = ckpt_secs, .read_cache_bytes = 4u << 20,
	};

	return store_pool_open(f->loop, &o, &f->pool);
}

static int setup(void **state)
{
	static int n;
	struct fixture *f = calloc(1, sizeof(*f));

	f->loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(f->path, sizeof(f->path), "%s/snap-%d", tl_scratch_dir(), n++);
	assert_int_equal(pool_open(f, 0), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->pool)
		assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	unlink(f->path);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Clean restart: the final checkpoint holds everything. */
static void reopen(struct fixture *f)
{
	assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	f->pool = NULL;
	assert_int_equal(pool_open(f, 0), 0);
}

static uint64_t used(struct fixture *f)
{
	struct store_pool_stats st;

	store_pool_get_stats(f->pool, &st);
	return st.used_bytes;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void write_pattern(struct fixture *f, const char *name, uint64_t lba, size_t bytes,
                          unsigned seed)
{
	uint8_t *b = malloc(bytes);
	struct store_vol *v;

	fill(b, bytes, seed);
	assert_int_equal(store_vol_open(f->pool, name, &v), 0);
	assert_int_equal(tl_write(f->loop, v, lba, b, bytes, 0), 0);
	store_vol_close(v);
	free(b);
}

/* Reads [lba, +bytes) of name and compares it with the pattern of seed, or
 * with zeros when seed is 0. */
static void expect_pattern(struct fixture *f, const char *name, uint64_t lba, size_t bytes,
                           unsigned seed)
{
	uint8_t *want = calloc(1, bytes), *got = malloc(bytes);
	struct store_vol *v;

	if (seed)
		fill(want, bytes, seed);
	assert_int_equal(store_vol_open(f->pool, name, &v), 0);
	assert_int_equal(tl_read(f->loop, v, lba, got, bytes), 0);
	store_vol_close(v);
	if (memcmp(want, got, bytes))
		fail_msg("%s at sector %llu: not the data expected (seed %u)", name,
		         (unsigned long long)lba, seed);
	free(want);
	free(got);
}

static struct store_vol_info stat_of(struct fixture *f, const char *name)
{
	struct store_vol_info vi;

	assert_int_equal(store_vol_stat(f->pool, name, &vi), 0);
	return vi;
}

static uint64_t unique_of(struct fixture *f, const char *name)
{
	uint64_t n;

	assert_int_equal(store_vol_unique(f->pool, name, &n), 0);
	return n;
}

/* A snapshot reads what the volume held when it was taken, whatever is
 * written after; it is read-only; it takes no space until the volume
 * diverges; it survives restarts. */
static void test_snapshot_point_in_time(void **state)
{
	struct fixture *f = *state;
	struct store_vol *s;
	uint8_t b[4096] = { 0 };
	uint64_t before;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "db1", 4 * MIB_SECTORS, false), 0);
	write_pattern(f, "db1", 0, 1 << 20, 1);
	before = used(f);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "db1", "s1"), 0);
	assert_int_equal(used(f), before);
	write_pattern(f, "db1", 8, 4096, 2);
	expect_pattern(f, "db1@s1", 0, 1 << 20, 1);
	expect_pattern(f, "db1", 8, 4096, 2);
	/* only the overwritten 4 KiB is new space, and the snapshot now holds
	 * those 8 sectors alone */
	assert_int_equal(used(f), before + 4096);
	assert_int_equal(unique_of(f, "db1@s1"), 8);
	assert_true(stat_of(f, "db1@s1").snapshot);
	assert_string_equal(stat_of(f, "db1@s1").origin, "db1");
	assert_int_equal(unique_of(f, "db1"), 8);
	assert_int_equal(store_vol_open(f->pool, "db1@s1", &s), 0);
	assert_int_equal(tl_write(f->loop, s, 0, b, sizeof(b), 0), -EROFS);
	assert_int_equal(tl_unmap(f->loop, s, 0, 8), -EROFS);
	store_vol_close(s);
	reopen(f);
	expect_pattern(f, "db1@s1", 0, 1 << 20, 1);
	expect_pattern(f, "db1", 8, 4096, 2);
}

/* Many snapshots, listed oldest first; deleting them in any order frees
 * exactly what only each held. */
static void test_many_snapshots_delete_any_order(void **state)
{
	struct fixture *f = *state;
	struct store_vol_info list[300];
	char name[32];
	uint64_t base;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "v", MIB_SECTORS, false), 0);
	write_pattern(f, "v", 0, 1 << 20, 7);
	base = used(f);
	for (int i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "s%03d", i);
		assert_int_equal(tl_snap_create(f->loop, f->pool, "v", name), 0);
		write_pattern(f, "v", (uint64_t)(i % 256) * 8, 4096, 100 + (unsigned)i);
	}
	assert_int_equal(store_snap_list(f->pool, "v", list, 300), 256);
	assert_string_equal(list[0].name, "v@s000");
	assert_string_equal(list[255].name, "v@s255");
	assert_int_equal(store_snap_list(f->pool, "v", list, 10), 256);
	assert_string_equal(list[9].name, "v@s009");
	/* every overwrite is kept by a snapshot: 256 x 4 KiB more */
	assert_int_equal(used(f), base + 256 * 4096);
	expect_pattern(f, "v@s000", 0, 1 << 20, 7);
	expect_pattern(f, "v@s100", 99 * 8, 4096, 199);
	reopen(f);
	expect_pattern(f, "v@s100", 99 * 8, 4096, 199);
	/* odd ones, then even ones, from the middle out */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 255; i >= 0; i--)
			if (i % 2 == pass) {
				snprintf(name, sizeof(name), "s%03d", i);
				assert_int_equal(tl_snap_delete(f->loop, f->pool, "v", name), 0);
			}
	assert_int_equal(store_snap_list(f->pool, "v", list, 300), 0);
	assert_int_equal(used(f), base);
	assert_int_equal(unique_of(f, "v"), MIB_SECTORS);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "v"), 0);
	assert_int_equal(used(f), 0);
}

/* A clone reads its snapshot, writes apart from it, and outlives the
 * snapshot and the volume it came from. */
static void test_clone_independent_outlives_origin(void **state)
{
	struct fixture *f = *state;
	uint64_t base;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "gold", 2 * MIB_SECTORS, false), 0);
	write_pattern(f, "gold", 0, 2 << 20, 3);
	base = used(f);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "gold", "base"), 0);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "gold@base", "vm1", false), 0);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "gold@base", "vm2", true), 0);
	assert_int_equal(used(f), base);
	assert_string_equal(stat_of(f, "vm1").origin, "gold@base");
	assert_int_equal(stat_of(f, "vm1").sectors, 2 * MIB_SECTORS);
	assert_true(stat_of(f, "vm2").write_back);
	write_pattern(f, "vm1", 64, 8192, 4);
	write_pattern(f, "gold", 64, 8192, 5);
	expect_pattern(f, "vm1", 64, 8192, 4);
	expect_pattern(f, "vm2", 0, 2 << 20, 3);
	expect_pattern(f, "gold@base", 0, 2 << 20, 3);
	expect_pattern(f, "gold", 64, 8192, 5);
	assert_int_equal(used(f), base + 2 * 8192);
	/* the volume goes only without snapshots; the clone stays */
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "gold"), -ENOTEMPTY);
	assert_int_equal(tl_snap_delete(f->loop, f->pool, "gold", "base"), 0);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "gold"), 0);
	assert_string_equal(stat_of(f, "vm1").origin, "");
	expect_pattern(f, "vm2", 0, 2 << 20, 3);
	reopen(f);
	expect_pattern(f, "vm1", 0, 8 * 4096, 3);
	expect_pattern(f, "vm1", 64, 8192, 4);
	expect_pattern(f, "vm2", 0, 2 << 20, 3);
	/* clones of clones */
	assert_int_equal(tl_snap_create(f->loop, f->pool, "vm1", "a"), 0);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "vm1@a", "vm1b", false), 0);
	expect_pattern(f, "vm1b", 64, 8192, 4);
	assert_int_equal(tl_snap_delete(f->loop, f->pool, "vm1", "a"), 0);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "vm1"), 0);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "vm2"), 0);
	expect_pattern(f, "vm1b", 64, 8192, 4);
	expect_pattern(f, "vm1b", 0, 8 * 4096, 3);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "vm1b"), 0);
	assert_int_equal(used(f), 0);
}

/* Rollback: the volume reads the snapshot again at once; the snapshot stays. */
static void test_rollback(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "r", MIB_SECTORS, false), 0);
	write_pattern(f, "r", 0, 1 << 20, 9);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "r", "good"), 0);
	write_pattern(f, "r", 0, 1 << 19, 10);
	assert_int_equal(tl_vol_resize(f->loop, f->pool, "r", 2 * MIB_SECTORS), 0);
	write_pattern(f, "r", MIB_SECTORS, 4096, 11);
	assert_int_equal(tl_snap_rollback(f->loop, f->pool, "r", "good"), 0);
	expect_pattern(f, "r", 0, 1 << 20, 9);
	expect_pattern(f, "r", MIB_SECTORS, 4096, 0);   /* past the snapshot: zeros */
	assert_int_equal(stat_of(f, "r").sectors, 2 * MIB_SECTORS);
	write_pattern(f, "r", 0, 4096, 12);
	assert_int_equal(tl_snap_rollback(f->loop, f->pool, "r", "good"), 0);
	expect_pattern(f, "r", 0, 1 << 20, 9);
	reopen(f);
	expect_pattern(f, "r", 0, 1 << 20, 9);
	expect_pattern(f, "r@good", 0, 1 << 20, 9);
	assert_int_equal(tl_snap_rollback(f->loop, f->pool, "r", "nope"), -ENOENT);
}

/* A consistency group: every volume's snapshot is of the same moment, and
 * a group that cannot be made entirely is not made at all. */
static void test_group_snapshot(void **state)
{
	struct fixture *f = *state;
	const char *vols[] = { "d0", "d1", "d2" }, *bad[] = { "d0", "nope" };
	struct store_vol_info list[4];

	for (int i = 0; i < 3; i++) {
		assert_int_equal(tl_vol_create(f->loop, f->pool, vols[i], MIB_SECTORS, true), 0);
		write_pattern(f, vols[i], 0, 65536, 20 + (unsigned)i);
	}
	assert_int_equal(tl_snap_group(f->loop, f->pool, vols, 3, "cg"), 0);
	for (int i = 0; i < 3; i++)
		write_pattern(f, vols[i], 0, 65536, 30 + (unsigned)i);
	assert_int_equal(tl_snap_group(f->loop, f->pool, bad, 2, "cg2"), -ENOENT);
	assert_int_equal(store_snap_list(f->pool, "d0", list, 4), 1);
	assert_int_equal(tl_snap_group(f->loop, f->pool, vols, 3, "cg"), -EEXIST);
	assert_int_equal(store_snap_list(f->pool, "d0", list, 4), 1);
	reopen(f);
	expect_pattern(f, "d0@cg", 0, 65536, 20);
	expect_pattern(f, "d1@cg", 0, 65536, 21);
	expect_pattern(f, "d2@cg", 0, 65536, 22);
	expect_pattern(f, "d2", 0, 65536, 32);
}

/* Copy by reference: the destination reads the source's data, no space is
 * taken, holes copy as holes, and overlapping copies in one volume work. */
static void test_copy_by_reference(void **state)
{
	struct fixture *f = *state;
	struct store_vol *a, *b;
	uint64_t base;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "a", 2 * MIB_SECTORS, false), 0);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "b", 2 * MIB_SECTORS, false), 0);
	write_pattern(f, "a", 0, 1 << 20, 40);
	write_pattern(f, "b", 0, 2 << 20, 41);
	base = used(f);
	assert_int_equal(store_vol_open(f->pool, "a", &a), 0);
	assert_int_equal(store_vol_open(f->pool, "b", &b), 0);
	/* a's first MiB and a hole after it, over b's data */
	assert_int_equal(tl_copy(f->loop, b, 512, a, 0, 2 * MIB_SECTORS - 512), 0);
	/* b's own data there is gone; a's is shared, not copied */
	assert_int_equal(used(f), base - (uint64_t)(2 * MIB_SECTORS - 512) * 512);
	store_vol_close(a);
	store_vol_close(b);
	expect_pattern(f, "b", 0, 512 * 512, 41);
	expect_pattern(f, "b", 512, 1 << 20, 40);
	expect_pattern(f, "b", 512 + MIB_SECTORS, (MIB_SECTORS - 512) * 512, 0);
	/* overlapping, inside one volume: reads the range as it was before */
	assert_int_equal(store_vol_open(f->pool, "a", &a), 0);
	assert_int_equal(tl_copy(f->loop, a, 8, a, 0, MIB_SECTORS), 0);
	assert_int_equal(tl_copy(f->loop, a, 0, a, 0, 0), 0);
	assert_int_equal(tl_copy(f->loop, a, 1, a, 0, 2 * MIB_SECTORS), -ERANGE);
	store_vol_close(a);
	expect_pattern(f, "a", 8, 1 << 20, 40);
	reopen(f);
	expect_pattern(f, "a", 8, 1 << 20, 40);
	expect_pattern(f, "b", 512, 1 << 20, 40);
	/* from a snapshot, too */
	assert_int_equal(tl_snap_create(f->loop, f->pool, "a", "s"), 0);
	write_pattern(f, "a", 8, 1 << 20, 42);
	assert_int_equal(store_vol_open(f->pool, "a@s", &a), 0);
	assert_int_equal(store_vol_open(f->pool, "b", &b), 0);
	assert_int_equal(tl_copy(f->loop, b, 0, a, 8, MIB_SECTORS), 0);
	store_vol_close(a);
	store_vol_close(b);
	expect_pattern(f, "b", 0, 1 << 20, 40);
}

/* Bad input gets a clear error and changes nothing. */
static void test_bad_input(void **state)
{
	struct fixture *f = *state;
	struct store_vol_info list[2];
	char longname[200];

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(tl_vol_create(f->loop, f->pool, "v", MIB_SECTORS, false), 0);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "v", "s"), 0);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "v", "s"), -EEXIST);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "nope", "s"), -ENOENT);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "v", "a@b"), -EINVAL);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "v", "../x"), -EINVAL);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "v", longname), -EINVAL);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "v@s", "t"), -EINVAL);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "v@nope", "c", false), -ENOENT);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "v", "c", false), -EINVAL);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "v@s", "v", false), -EEXIST);
	assert_int_equal(tl_vol_clone(f->loop, f->pool, "v@s", "c/d", false), -EINVAL);
	assert_int_equal(tl_vol_resize(f->loop, f->pool, "v@s", 2 * MIB_SECTORS), -EROFS);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "v@s"), -ENOENT);
	assert_int_equal(tl_snap_delete(f->loop, f->pool, "v", "nope"), -ENOENT);
	assert_int_equal(store_snap_list(f->pool, "v", list, 2), 1);
	assert_int_equal(store_snap_list(f->pool, "nope", list, 2), 0);
	assert_int_equal(store_vol_list(f->pool, list, 2), 1);
}

/* Nothing shared is ever lost: delete in every order leaves an empty pool. */
static void test_everything_back(void **state)
{
	struct fixture *f = *state;
	char name[32], snap[40];

	assert_int_equal(tl_vol_create(f->loop, f->pool, "img", 4 * MIB_SECTORS, false), 0);
	write_pattern(f, "img", 0, 4 << 20, 50);
	assert_int_equal(tl_snap_create(f->loop, f->pool, "img", "g"), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(tl_vol_clone(f->loop, f->pool, "img@g", name, false), 0);
		write_pattern(f, name, (uint64_t)i * 80, 4096 * 3, 60 + (unsigned)i);
		snprintf(snap, sizeof(snap), "%s", "k");
		assert_int_equal(tl_snap_create(f->loop, f->pool, name, snap), 0);
	}
	assert_int_equal(tl_checkpoint(f->loop, f->pool), 0);
	assert_int_equal(used(f), (4u << 20) + 20 * 3 * 4096);
	assert_int_equal(tl_snap_delete(f->loop, f->pool, "img", "g"), 0);
	assert_int_equal(tl_snap_delete(f->loop, f->pool, "img", "g"), -ENOENT);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "img"), 0);
	assert_int_equal(used(f), (4u << 20) + 20 * 3 * 4096);
	reopen(f);
	for (int i = 19; i >= 0; i--) {
		snprintf(name, sizeof(name), "c%d", i);
		expect_pattern(f, name, (uint64_t)i * 80, 4096 * 3, 60 + (unsigned)i);
		assert_int_equal(tl_vol_delete(f->loop, f->pool, name), -ENOTEMPTY);
		assert_int_equal(tl_snap_delete(f->loop, f->pool, name, "k"), 0);
		assert_int_equal(tl_vol_delete(f->loop, f->pool, name), 0);
	}
	assert_int_equal(used(f), 0);
	reopen(f);
	assert_int_equal(used(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_point_in_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_snapshots_delete_any_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_independent_outlives_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_by_reference, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_everything_back, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

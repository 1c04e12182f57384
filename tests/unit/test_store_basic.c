/* tests/unit/test_store_basic.c: the store's promises one at a time, on a
 * real pool file through both I/O engines. */
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

struct fixture {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	enum store_engine  engine;
};

static int pool_open(struct fixture *f)
{
	struct store_pool_opts o = {
		.path = f->path, .create_bytes = 256ull << 20, .segment_bytes = 1u << 20,
		.engine = f->engine, .log = tl_log,
	};

	return store_pool_open(f->loop, &o, &f->pool);
}

static int setup(void **state, enum store_engine engine)
{
	static int n;
	struct fixture *f = calloc(1, sizeof(*f));

	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->engine = engine;
	snprintf(f->path, sizeof(f->path), "%s/pool-%d", tl_scratch_dir(), n++);
	assert_int_equal(pool_open(f), 0);
	*state = f;
	return 0;
}

static int setup_uring(void **state) { return setup(state, STORE_ENGINE_URING); }
static int setup_threads(void **state) { return setup(state, STORE_ENGINE_THREADS); }

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

static void reopen(struct fixture *f)
{
	assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	f->pool = NULL;
	assert_int_equal(pool_open(f), 0);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void test_write_read_reopen(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t *w = malloc(1 << 20), *r = malloc(1 << 20);

	assert_int_equal(tl_vol_create(f->loop, f->pool, "db1", 1 << 20, false), 0);
	assert_int_equal(store_vol_open(f->pool, "db1", &v), 0);
	fill(w, 1 << 20, 1);
	assert_int_equal(tl_write(f->loop, v, 100, w, 1 << 20, 0), 0);
	assert_int_equal(tl_read(f->loop, v, 100, r, 1 << 20), 0);
	assert_memory_equal(w, r, 1 << 20);
	store_vol_close(v);
	reopen(f);
	assert_int_equal(store_vol_open(f->pool, "db1", &v), 0);
	memset(r, 0xee, 1 << 20);
	assert_int_equal(tl_read(f->loop, v, 100, r, 1 << 20), 0);
	assert_memory_equal(w, r, 1 << 20);
	store_vol_close(v);
	free(w);
	free(r);
}

/* A 512-byte write inside a 4 KiB block changes exactly that sector. */
static void test_unaligned_write(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t w[8192], r[8192], one[512];

	assert_int_equal(tl_vol_create(f->loop, f->pool, "u", 64, false), 0);
	assert_int_equal(store_vol_open(f->pool, "u", &v), 0);
	fill(w, sizeof(w), 2);
	assert_int_equal(tl_write(f->loop, v, 0, w, sizeof(w), 0), 0);
	memset(one, 0x5a, sizeof(one));
	assert_int_equal(tl_write(f->loop, v, 3, one, sizeof(one), 0), 0);
	memcpy(w + 3 * 512, one, 512);
	assert_int_equal(tl_read(f->loop, v, 0, r, sizeof(r)), 0);
	assert_memory_equal(w, r, sizeof(w));
	store_vol_close(v);
}

static void test_unwritten_reads_zero(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t r[4096], z[4096] = { 0 };
	struct store_pool_stats st;

	/* 64 TiB, the largest volume, costs nothing until written */
	assert_int_equal(tl_vol_create(f->loop, f->pool, "big", STORE_VOL_MAX_SECTORS, false), 0);
	assert_int_equal(store_vol_open(f->pool, "big", &v), 0);
	memset(r, 1, sizeof(r));
	assert_int_equal(tl_read(f->loop, v, STORE_VOL_MAX_SECTORS - 8, r, sizeof(r)), 0);
	assert_memory_equal(r, z, sizeof(r));
	assert_int_equal(tl_read(f->loop, v, STORE_VOL_MAX_SECTORS - 7, r, sizeof(r)), -ERANGE);
	store_pool_get_stats(f->pool, &st);
	assert_int_equal(st.used_bytes, 0);
	store_vol_close(v);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "toobig", STORE_VOL_MAX_SECTORS + 1, false),
	                 -EINVAL);
}

/* A read into page-aligned buffers goes straight to them (no bounce
 * buffer): data, holes between and around it read exactly, whatever the
 * buffers held, and so do sector-packed data and unaligned buffers. */
static void test_read_in_place(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t *w = aligned_alloc(4096, 64 * 1024), *r = aligned_alloc(4096, 64 * 1024);
	uint8_t *want = calloc(1, 64 * 1024);
	struct iovec iov[3];

	assert_non_null(w);
	assert_non_null(r);
	assert_non_null(want);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "p", 128, false), 0);
	assert_int_equal(store_vol_open(f->pool, "p", &v), 0);
	fill(w, 64 * 1024, 7);
	/* 8 KiB at 8 KiB, 4 KiB at 40 KiB; 512 bytes at sector 97 (packs by the sector) */
	assert_int_equal(tl_write(f->loop, v, 16, w, 8192, 0), 0);
	memcpy(want + 8192, w, 8192);
	assert_int_equal(tl_write(f->loop, v, 80, w + 8192, 4096, 0), 0);
	memcpy(want + 40960, w + 8192, 4096);
	assert_int_equal(tl_write(f->loop, v, 97, w + 12288, 512, 0), 0);
	memcpy(want + 97 * 512, w + 12288, 512);
	memset(r, 0xa5, 64 * 1024);
	assert_int_equal(tl_read(f->loop, v, 0, r, 64 * 1024), 0);
	assert_memory_equal(r, want, 64 * 1024);
	/* the same through three page-aligned pieces of a vector */
	memset(r, 0x5a, 64 * 1024);
	iov[0] = (struct iovec){ r, 12288 };
	iov[1] = (struct iovec){ r + 16384, 32768 };
	iov[2] = (struct iovec){ r + 12288, 4096 };
	assert_int_equal(tl_readv(f->loop, v, 0, iov, 3), 0);
	assert_memory_equal(r, want, 12288);
	assert_memory_equal(r + 16384, want + 12288, 32768);
	assert_memory_equal(r + 12288, want + 45056, 4096);
	/* an unaligned buffer takes the bounce path */
	memset(r, 0x11, 64 * 1024);
	assert_int_equal(tl_read(f->loop, v, 0, r + 512, 32768), 0);
	assert_memory_equal(r + 512, want, 32768);
	store_vol_close(v);
	free(w);
	free(r);
	free(want);
}

static void test_unmap_frees_and_zeroes(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t *w = malloc(256 << 10), *r = malloc(256 << 10);
	struct store_pool_stats before, after;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "t", 4096, false), 0);
	assert_int_equal(store_vol_open(f->pool, "t", &v), 0);
	fill(w, 256 << 10, 3);
	assert_int_equal(tl_write(f->loop, v, 0, w, 256 << 10, 0), 0);
	store_pool_get_stats(f->pool, &before);
	assert_int_equal(before.used_bytes, 256 << 10);
	assert_int_equal(tl_unmap(f->loop, v, 8, 100), 0);
	memset(w + 8 * 512, 0, 100 * 512);
	store_pool_get_stats(f->pool, &after);
	assert_int_equal(after.used_bytes, (256 << 10) - 100 * 512);
	assert_int_equal(tl_read(f->loop, v, 0, r, 256 << 10), 0);
	assert_memory_equal(w, r, 256 << 10);
	store_vol_close(v);
	reopen(f);
	assert_int_equal(store_vol_open(f->pool, "t", &v), 0);
	assert_int_equal(tl_read(f->loop, v, 0, r, 256 << 10), 0);
	assert_memory_equal(w, r, 256 << 10);
	store_vol_close(v);
	free(w);
	free(r);
}

static void test_volume_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct store_vol_info info[4];
	struct store_vol *v;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "b", 100, false), 0);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "a", 200, true), 0);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "a", 200, true), -EEXIST);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "../x", 200, true), -EINVAL);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "", 200, true), -EINVAL);
	assert_int_equal(store_vol_list(f->pool, info, 4), 2);
	assert_string_equal(info[0].name, "a");
	assert_true(info[0].write_back);
	assert_int_equal(tl_vol_resize(f->loop, f->pool, "b", 50), -EINVAL);
	assert_int_equal(tl_vol_resize(f->loop, f->pool, "b", 1000), 0);
	assert_int_equal(tl_vol_set_wb(f->loop, f->pool, "a", false), 0);
	assert_int_equal(store_vol_open(f->pool, "b", &v), 0);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "b"), -EBUSY);
	store_vol_close(v);
	reopen(f);
	assert_int_equal(store_vol_list(f->pool, info, 4), 2);
	assert_false(info[0].write_back);
	assert_int_equal(info[1].sectors, 1000);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "b"), 0);
	assert_int_equal(tl_vol_delete(f->loop, f->pool, "b"), -ENOENT);
	reopen(f);
	assert_int_equal(store_vol_list(f->pool, info, 4), 1);
	assert_int_equal(store_vol_open(f->pool, "b", &v), -ENOENT);
}

/* Concurrent writes are merged: many writes, few records and flushes. */
static void test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	struct store_pool_stats before, after;
	enum { N = 256 };
	static uint8_t bufs[N][4096];
	struct iovec iov[N];
	struct tl_op ops[N];
	int pending = N;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "g", 1 << 20, false), 0);
	assert_int_equal(store_vol_open(f->pool, "g", &v), 0);
	store_pool_get_stats(f->pool, &before);
	for (int i = 0; i < N; i++) {
		fill(bufs[i], 4096, i);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 4096;
		ops[i].done = false;
		store_vol_write(v, (uint64_t)i * 97 * 8 % (1 << 20), &iov[i], 1, 0, tl_done, &ops[i]);
	}
	while (pending > 0) {
		ev_run(f->loop, EVRUN_ONCE);
		pending = 0;
		for (int i = 0; i < N; i++)
			pending += !ops[i].done;
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(ops[i].err, 0);
	store_pool_get_stats(f->pool, &after);
	/* 256 writes in flight together: one record and one flush each for
	 * the halves the log splits a deep queue into, a few more at most */
	printf("group commit: %d writes, %llu records, %llu flushes\n", N,
	       (unsigned long long)(after.batches - before.batches),
	       (unsigned long long)(after.flushes - before.flushes));
	assert_true(after.flushes - before.flushes <= 4);
	assert_true(after.batches - before.batches <= 4);
	assert_int_equal(after.acked_writes - before.acked_writes, N);
	store_vol_close(v);
}

/* Write-back: a write completes before a flush; the flush makes it durable,
 * and FUA makes one write durable on its own. */
static void test_write_back_flush(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	struct store_pool_stats a, b;
	uint8_t w[4096], r[4096];

	assert_int_equal(tl_vol_create(f->loop, f->pool, "wb", 1000, true), 0);
	assert_int_equal(store_vol_open(f->pool, "wb", &v), 0);
	fill(w, sizeof(w), 9);
	store_pool_get_stats(f->pool, &a);
	assert_int_equal(tl_write(f->loop, v, 0, w, sizeof(w), 0), 0);
	store_pool_get_stats(f->pool, &b);
	assert_int_equal(b.flushes, a.flushes);         /* not flushed yet */
	assert_int_equal(tl_flush(f->loop, v), 0);
	store_pool_get_stats(f->pool, &a);
	assert_int_equal(a.flushes, b.flushes + 1);
	assert_int_equal(tl_flush(f->loop, v), 0);      /* nothing new: no flush */
	store_pool_get_stats(f->pool, &b);
	assert_int_equal(b.flushes, a.flushes);
	assert_int_equal(tl_write(f->loop, v, 8, w, sizeof(w), STORE_WRITE_FUA), 0);
	store_pool_get_stats(f->pool, &a);
	assert_int_equal(a.flushes, b.flushes + 1);
	assert_int_equal(tl_read(f->loop, v, 8, r, sizeof(r)), 0);
	assert_memory_equal(w, r, sizeof(w));
	store_vol_close(v);
}

/* The log wraps through segments; a checkpoint frees the dead ones. */
static void test_space_reuse(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	struct store_pool_stats st;
	uint8_t *w = malloc(1 << 20), *r = malloc(1 << 20);

	assert_int_equal(tl_vol_create(f->loop, f->pool, "s", 2048, false), 0);
	assert_int_equal(store_vol_open(f->pool, "s", &v), 0);
	/* 1 GiB of overwrites through a 256 MiB pool */
	for (int i = 0; i < 1024; i++) {
		fill(w, 1 << 20, i);
		assert_int_equal(tl_write(f->loop, v, 0, w, 1 << 20, 0), 0);
	}
	assert_int_equal(tl_read(f->loop, v, 0, r, 1 << 20), 0);
	assert_memory_equal(w, r, 1 << 20);
	store_pool_get_stats(f->pool, &st);
	assert_int_equal(st.used_bytes, 1 << 20);
	assert_true(st.checkpoints > 0);
	store_vol_close(v);
	reopen(f);
	assert_int_equal(store_vol_open(f->pool, "s", &v), 0);
	assert_int_equal(tl_read(f->loop, v, 0, r, 1 << 20), 0);
	assert_memory_equal(w, r, 1 << 20);
	store_vol_close(v);
	free(w);
	free(r);
}

/* A full pool fails writes with -ENOSPC, corrupts nothing, and recovers
 * when space is freed. */
static void test_out_of_space(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t *w = malloc(1 << 20), *r = malloc(1 << 20);
	uint64_t lba = 0;
	int rc = 0;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "full", 1ull << 30, false), 0);
	assert_int_equal(store_vol_open(f->pool, "full", &v), 0);
	fill(w, 1 << 20, 5);
	while (rc == 0 && lba < (1ull << 30)) {
		rc = tl_write(f->loop, v, lba, w, 1 << 20, 0);
		lba += 2048;
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(tl_read(f->loop, v, 0, r, 1 << 20), 0);
	assert_memory_equal(w, r, 1 << 20);
	assert_int_equal(tl_unmap(f->loop, v, 0, lba), 0);
	assert_int_equal(tl_checkpoint(f->loop, f->pool), 0);
	assert_int_equal(tl_write(f->loop, v, 0, w, 1 << 20, 0), 0);
	store_vol_close(v);
	reopen(f);
	assert_int_equal(store_vol_open(f->pool, "full", &v), 0);
	assert_int_equal(tl_read(f->loop, v, 0, r, 1 << 20), 0);
	assert_memory_equal(w, r, 1 << 20);
	store_vol_close(v);
	free(w);
	free(r);
}

/* Mapping status walks runs: data, hole, data, and the hole to the end. */
static void test_map_status_runs(void **state)
{
	struct fixture *f = *state;
	struct store_vol *v;
	uint8_t w[8192];
	uint64_t run;
	bool mapped;

	assert_int_equal(tl_vol_create(f->loop, f->pool, "st", 1000, false), 0);
	assert_int_equal(store_vol_open(f->pool, "st", &v), 0);
	fill(w, sizeof(w), 4);
	assert_int_equal(tl_write(f->loop, v, 8, w, 4096, 0), 0);        /* 8..16 */
	assert_int_equal(tl_write(f->loop, v, 16, w, 8192, 0), 0);       /* 16..32, joins */
	assert_int_equal(tl_write(f->loop, v, 100, w, 512, 0), 0);       /* 100 */
	assert_int_equal(store_vol_map_status(v, 0, &mapped, &run), 0);
	assert_false(mapped);
	assert_int_equal(run, 8);
	assert_int_equal(store_vol_map_status(v, 10, &mapped, &run), 0);
	assert_true(mapped);
	assert_int_equal(run, 22);
	assert_int_equal(store_vol_map_status(v, 32, &mapped, &run), 0);
	assert_false(mapped);
	assert_int_equal(run, 68);
	assert_int_equal(store_vol_map_status(v, 101, &mapped, &run), 0);
	assert_false(mapped);
	assert_int_equal(run, 899);
	assert_int_equal(store_vol_map_status(v, 1000, &mapped, &run), -ERANGE);
	assert_int_equal(tl_unmap(f->loop, v, 12, 4), 0);
	assert_int_equal(store_vol_map_status(v, 8, &mapped, &run), 0);
	assert_true(mapped);
	assert_int_equal(run, 4);
	store_vol_close(v);
}

struct meta_seen {
	int  n;
	char keys[8][32];
};

static int meta_collect(void *arg, const char *key, const void *value, size_t len)
{
	struct meta_seen *s = arg;

	(void)value;
	(void)len;
	snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%s", key);
	return 0;
}

/* Clients' records are durable, ordered, listed by prefix, and survive a
 * restart exactly as acknowledged. */
static void test_meta_records(void **state)
{
	struct fixture *f = *state;
	struct meta_seen seen = { 0 };
	struct tl_op op = { 0 };
	static char big[STORE_META_VALUE_MAX + 1];
	const void *v;
	size_t len;

	store_meta_put(f->pool, "target/iqn.b", "{\"b\":1}", 7, tl_done, &op);
	assert_false(op.done);
	assert_int_equal(store_meta_get(f->pool, "target/iqn.b", &v, &len), -ENOENT);
	assert_int_equal(tl_wait(f->loop, &op), 0);
	op.done = false;
	store_meta_put(f->pool, "target/iqn.a", "A", 1, tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), 0);
	op.done = false;
	store_meta_put(f->pool, "other/x", "", 0, tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), 0);
	op.done = false;
	store_meta_put(f->pool, "bad key", "x", 1, tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), -EINVAL);
	op.done = false;
	store_meta_put(f->pool, "big", big, sizeof(big), tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), -EINVAL);
	op.done = false;
	store_meta_delete(f->pool, "nope", tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), -ENOENT);
	assert_int_equal(store_meta_foreach(f->pool, "target/", meta_collect, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.keys[0], "target/iqn.a");
	reopen(f);
	assert_int_equal(store_meta_get(f->pool, "target/iqn.b", &v, &len), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(v, "{\"b\":1}", 7);
	op.done = false;
	store_meta_delete(f->pool, "target/iqn.b", tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), 0);
	assert_int_equal(tl_checkpoint(f->loop, f->pool), 0);
	op.done = false;
	store_meta_put(f->pool, "target/iqn.c", "C", 1, tl_done, &op);
	assert_int_equal(tl_wait(f->loop, &op), 0);
	reopen(f);      /* from the checkpoint, then the log after it */
	seen.n = 0;
	assert_int_equal(store_meta_foreach(f->pool, "", meta_collect, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_string_equal(seen.keys[0], "other/x");
	assert_string_equal(seen.keys[1], "target/iqn.a");
	assert_string_equal(seen.keys[2], "target/iqn.c");
}

static void test_refuses_foreign_file(void **state)
{
	struct fixture *f = *state;
	struct store_pool *p;
	char path[320];
	struct store_pool_opts o = { .path = path, .create_bytes = 64 << 20, .log = tl_log };
	FILE *fp;

	(void)f;
	snprintf(path, sizeof(path), "%s/foreign", tl_scratch_dir());
	fp = fopen(path, "w");
	fputs("this is somebody's file, not a pool\n", fp);
	fclose(fp);
	assert_int_equal(store_pool_open(f->loop, &o, &p), STORE_ENOTPOOL);
	fp = fopen(path, "r");
	assert_non_null(fp);
	fclose(fp);
	unlink(path);
	/* and a second opener of a pool in use is refused */
	o.path = f->path;
	assert_int_equal(store_pool_open(f->loop, &o, &p), -EBUSY);
}

#define BOTH(t) \
	cmocka_unit_test_setup_teardown(t, setup_uring, teardown), \
	cmocka_unit_test_setup_teardown(t, setup_threads, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_write_read_reopen),
		BOTH(test_unaligned_write),
		BOTH(test_unwritten_reads_zero),
		BOTH(test_read_in_place),
		BOTH(test_unmap_frees_and_zeroes),
		BOTH(test_volume_lifecycle),
		BOTH(test_group_commit),
		BOTH(test_write_back_flush),
		BOTH(test_space_reuse),
		BOTH(test_out_of_space),
		BOTH(test_meta_records),
		BOTH(test_map_status_runs),
		BOTH(test_refuses_foreign_file),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

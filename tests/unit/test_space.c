/* tests/unit/test_space.c: what snapshots and clones cost in pool space.
 *
 * A 1 GiB volume, written whole with large sequential writes, then 1000
 * clones of one snapshot of it:
 *   (a) the clones take no data space (used_bytes does not move) and the
 *       pool file's allocated blocks grow by less than 1% of the volume
 *       (each clone is one small durable record);
 *   (b) writing 1% of each clone (4 KiB writes spread evenly over the
 *       whole volume, 10 GiB in all) grows used_bytes by exactly what was
 *       written and no more, also across a restart, and the allocated
 *       blocks by that plus a few per cent (record headers, checkpoints);
 *   (c) deleting every clone, then the snapshot and the volume, brings
 *       used_bytes back to 0, and after a checkpoint every segment is free
 *       again but the checkpoint's and the log head's.
 * The pool is a sparse file under the scratch directory; it takes about
 * 12 GiB of disk while the test runs (about 20 s). Prints how long the
 * 1000 clones took to create, one after another. SLUICE_SPACE_VOL_MIB and
 * SLUICE_SPACE_CLONES scale it down for a quick look (the 1% bound of (a)
 * is for the numbers: below them the clones' records weigh more).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"
#include "tests/lib/testlib.h"

#define BIG_WRITE       (8u << 20)      /* sequential fill of the volume */
#define SMALL_WRITE     4096u           /* the clones' spread writes */
#define WINDOW          256             /* writes in flight */

struct space {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	uint64_t           vol_bytes;
	unsigned           clones;
};

/* A window of writes in flight on one volume. */
struct inflight {
	struct space *s;
	int           pending;
	int           errors;
	int           first_err;
};

struct wr {
	struct inflight *in;
	struct iovec     iov;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t used_bytes(struct space *s)
{
	struct store_pool_stats st;

	store_pool_get_stats(s->pool, &st);
	return st.used_bytes;
}

static uint64_t alloc_bytes(struct space *s)
{
	struct stat st;

	assert_int_equal(stat(s->path, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static void wr_done(void *arg, int err)
{
	struct wr *w = arg;
	struct inflight *in = w->in;

	if (err && !in->errors++)
		in->first_err = err;
	in->pending--;
	free(w);
}

static void submit_write(struct inflight *in, struct store_vol *v, uint64_t lba,
                         void *buf, size_t bytes)
{
	struct wr *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->in = in;
	w->iov.iov_base = buf;
	w->iov.iov_len = bytes;
	in->pending++;
	store_vol_write(v, lba, &w->iov, 1, 0, wr_done, w);
	while (in->pending >= WINDOW)
		ev_run(in->s->loop, EVRUN_ONCE);
}

static void drain(struct inflight *in)
{
	tl_wait_count(in->s->loop, &in->pending);
	if (in->errors)
		fail_msg("%d writes failed, the first with %s", in->errors,
		         store_strerror(in->first_err));
}

/* The scratch file system may be small (a tmpfs /tmp on a CI runner): the
 * clones are fewer when their 1% each would not fit in most of what is
 * free, and the test says so. The bounds hold for any number of clones. */
static void fit_disk(struct space *s)
{
	struct statvfs sv;
	uint64_t per = s->vol_bytes / 100 * 11 / 10, fixed = s->vol_bytes + (256ull << 20);
	uint64_t avail;
	unsigned fit;

	if (statvfs(tl_scratch_dir(), &sv) != 0)
		return;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize / 10 * 8;
	if (avail >= fixed + per * s->clones)
		return;
	fit = avail > fixed ? (unsigned)((avail - fixed) / per) : 0;
	if (fit < 50)
		fit = 50;
	print_message("space: only %" PRIu64 " MiB free under %s: %u clones instead of %u\n",
	              (uint64_t)sv.f_bavail * sv.f_frsize >> 20, tl_scratch_dir(), fit, s->clones);
	s->clones = fit;
}

static void test_thousand_clones(void **state)
{
	const char *env_mib = getenv("SLUICE_SPACE_VOL_MIB");
	const char *env_clones = getenv("SLUICE_SPACE_CLONES");
	struct space s = { 0 };
	struct store_pool_stats st;
	struct store_vol *v;
	struct inflight in = { .s = &s };
	uint8_t *buf;
	uint64_t used0, alloc0, used1, alloc1, used2, alloc2, writes_per_clone, written;
	double t0, t_fill, t_clones, t_write, t_delete;
	struct store_pool_opts o = { .log = tl_log };
	char name[32];

	(void)state;
	s.vol_bytes = (env_mib ? strtoull(env_mib, NULL, 0) : 1024) << 20;
	s.clones = env_clones ? (unsigned)atoi(env_clones) : 1000;
	writes_per_clone = s.vol_bytes / 100 / SMALL_WRITE;    /* 1% of it */
	fit_disk(&s);
	s.loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(s.path, sizeof(s.path), "%s/space", tl_scratch_dir());

	o.path = s.path;
	/* the volume, 1% of it per clone, and room for the log's headers and
	 * the checkpoints (the maps of 1000 clones with 2621 extents each) */
	o.create_bytes = s.vol_bytes + s.clones * writes_per_clone * SMALL_WRITE +
	                 s.vol_bytes / 4 + (512ull << 20);
	assert_int_equal(store_pool_open(s.loop, &o, &s.pool), 0);

	/* the volume, written whole */
	t0 = now();
	buf = malloc(BIG_WRITE);
	for (size_t i = 0; i < BIG_WRITE; i += 8)
		*(uint64_t *)(buf + i) = i * 0x9e3779b97f4a7c15ull + 1;
	assert_int_equal(tl_vol_create(s.loop, s.pool, "base", s.vol_bytes / 512, true), 0);
	assert_int_equal(store_vol_open(s.pool, "base", &v), 0);
	for (uint64_t off = 0; off < s.vol_bytes; off += BIG_WRITE)
		submit_write(&in, v, off / 512, buf, BIG_WRITE);
	drain(&in);
	assert_int_equal(tl_flush(s.loop, v), 0);
	store_vol_close(v);
	assert_int_equal(tl_checkpoint(s.loop, s.pool), 0);
	t_fill = now() - t0;
	used0 = used_bytes(&s);
	alloc0 = alloc_bytes(&s);
	assert_int_equal(used0, s.vol_bytes);

	/* (a) the clones, one after another as an operator would make them */
	assert_int_equal(tl_snap_create(s.loop, s.pool, "base", "gold"), 0);
	t0 = now();
	for (unsigned c = 0; c < s.clones; c++) {
		snprintf(name, sizeof(name), "c%04u", c);
		assert_int_equal(tl_vol_clone(s.loop, s.pool, "base@gold", name, true), 0);
	}
	t_clones = now() - t0;
	assert_int_equal(tl_checkpoint(s.loop, s.pool), 0);
	used1 = used_bytes(&s);
	alloc1 = alloc_bytes(&s);
	printf("space: %u clones of a %" PRIu64 " MiB volume created in %.3f s (%.1f us each)\n",
	       s.clones, s.vol_bytes >> 20, t_clones, t_clones * 1e6 / s.clones);
	printf("space: used %" PRIu64 " -> %" PRIu64 " bytes, pool file allocated %" PRIu64
	       " -> %" PRIu64 " bytes\n", used0, used1, alloc0, alloc1);
	assert_true(used1 < used0 + used0 / 100);
	assert_int_equal(used1, used0);
	assert_true(alloc1 < alloc0 + s.vol_bytes / 100);

	/* (b) 1% of each clone: 4 KiB writes spread evenly over the volume */
	t0 = now();
	for (unsigned c = 0; c < s.clones; c++) {
		uint64_t blocks = s.vol_bytes / SMALL_WRITE, stride = blocks / writes_per_clone;

		snprintf(name, sizeof(name), "c%04u", c);
		assert_int_equal(store_vol_open(s.pool, name, &v), 0);
		for (uint64_t i = 0; i < writes_per_clone; i++) {
			uint64_t blk = i * stride + c % stride;

			submit_write(&in, v, blk * (SMALL_WRITE / 512),
			             buf + (blk * SMALL_WRITE) % BIG_WRITE, SMALL_WRITE);
		}
		store_vol_close(v);
	}
	drain(&in);
	assert_int_equal(tl_checkpoint(s.loop, s.pool), 0);
	t_write = now() - t0;
	written = (uint64_t)s.clones * writes_per_clone * SMALL_WRITE;
	used2 = used_bytes(&s);
	alloc2 = alloc_bytes(&s);
	printf("space: wrote %" PRIu64 " bytes to the clones: used +%" PRIu64
	       ", pool file allocated +%" PRIu64 " bytes\n", written, used2 - used1, alloc2 - alloc1);
	assert_int_equal(used2 - used1, written);
	/* the log's record headers (32 bytes per 4 KiB write) and the
	 * checkpoints come on top of the data: a few per cent */
	assert_true(alloc2 - alloc1 >= written);
	assert_true(alloc2 - alloc1 < written + written / 10);
	/* and a restart agrees */
	assert_int_equal(tl_pool_close(s.loop, s.pool), 0);
	assert_int_equal(store_pool_open(s.loop, &o, &s.pool), 0);
	assert_int_equal(used_bytes(&s), used2);

	/* (c) everything goes, and so does its space */
	t0 = now();
	for (unsigned c = 0; c < s.clones; c++) {
		snprintf(name, sizeof(name), "c%04u", c);
		assert_int_equal(tl_vol_delete(s.loop, s.pool, name), 0);
	}
	assert_int_equal(used_bytes(&s), used0);
	assert_int_equal(tl_snap_delete(s.loop, s.pool, "base", "gold"), 0);
	assert_int_equal(tl_vol_delete(s.loop, s.pool, "base"), 0);
	assert_int_equal(used_bytes(&s), 0);
	assert_int_equal(tl_checkpoint(s.loop, s.pool), 0);
	t_delete = now() - t0;
	store_pool_get_stats(s.pool, &st);
	printf("space: after deleting everything and a checkpoint: %" PRIu64 " of %" PRIu64
	       " segments free\n", st.free_segments, st.segments);
	printf("space: times: fill %.2f s, clones %.2f s, clone writes %.2f s, delete %.2f s\n",
	       t_fill, t_clones, t_write, t_delete);
	assert_int_equal(st.used_bytes, 0);
	/* what stays taken: the checkpoint just written (one segment, the pool
	 * being empty) and the log's current and next segments */
	assert_true(st.segments - st.free_segments <= 3);
	assert_int_equal(tl_pool_close(s.loop, s.pool), 0);
	assert_int_equal(store_pool_open(s.loop, &o, &s.pool), 0);
	assert_int_equal(used_bytes(&s), 0);
	assert_int_equal(tl_pool_close(s.loop, s.pool), 0);
	free(buf);
	unlink(s.path);
	ev_loop_destroy(s.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thousand_clones),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

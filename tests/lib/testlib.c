/* tests/lib/testlib.c: see testlib.h. */
#define _GNU_SOURCE
#include "tests/lib/testlib.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

void tl_done(void *arg, int err)
{
	struct tl_op *op = arg;

	if (op->done) {
		fprintf(stderr, "testlib: a callback ran twice\n");
		abort();
	}
	op->done = true;
	op->err = err;
}

static double tl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int tl_wait(struct ev_loop *loop, struct tl_op *op)
{
	double end = tl_now() + (getenv("TL_WAIT") ? atof(getenv("TL_WAIT")) : 120);

	while (!op->done) {
		ev_run(loop, EVRUN_ONCE);
		if (tl_now() > end) {
			fprintf(stderr, "testlib: operation did not complete in 120 s\n");
			abort();
		}
	}
	return op->err;
}

void tl_wait_count(struct ev_loop *loop, const int *pending)
{
	double end = tl_now() + (getenv("TL_WAIT") ? atof(getenv("TL_WAIT")) : 120);

	while (*pending > 0) {
		ev_run(loop, EVRUN_ONCE);
		if (tl_now() > end) {
			fprintf(stderr, "testlib: %d operations still pending after 120 s\n", *pending);
			abort();
		}
	}
}

#define TL_SYNC(loop, call) do { \
		struct tl_op op_ = { 0 }; \
		call; \
		if (op_.done) { \
			fprintf(stderr, "testlib: callback ran inside its submit\n"); \
			abort(); \
		} \
		return tl_wait(loop, &op_); \
	} while (0)

int tl_vol_create(struct ev_loop *l, struct store_pool *p, const char *name,
                  uint64_t sectors, bool write_back)
{
	TL_SYNC(l, store_vol_create(p, name, sectors, write_back, tl_done, &op_));
}

int tl_vol_delete(struct ev_loop *l, struct store_pool *p, const char *name)
{
	TL_SYNC(l, store_vol_delete(p, name, tl_done, &op_));
}

int tl_snap_create(struct ev_loop *l, struct store_pool *p, const char *vol, const char *snap)
{
	TL_SYNC(l, store_snap_create(p, vol, snap, tl_done, &op_));
}

int tl_snap_group(struct ev_loop *l, struct store_pool *p, const char *const *vols, size_t n,
                  const char *snap)
{
	TL_SYNC(l, store_snap_create_group(p, vols, n, snap, tl_done, &op_));
}

int tl_snap_delete(struct ev_loop *l, struct store_pool *p, const char *vol, const char *snap)
{
	TL_SYNC(l, store_snap_delete(p, vol, snap, tl_done, &op_));
}

int tl_snap_rollback(struct ev_loop *l, struct store_pool *p, const char *vol, const char *snap)
{
	TL_SYNC(l, store_snap_rollback(p, vol, snap, tl_done, &op_));
}

int tl_vol_clone(struct ev_loop *l, struct store_pool *p, const char *snapshot,
                 const char *name, bool write_back)
{
	TL_SYNC(l, store_vol_clone(p, snapshot, name, write_back, tl_done, &op_));
}

int tl_copy(struct ev_loop *l, struct store_vol *dst, uint64_t dst_lba, struct store_vol *src,
            uint64_t src_lba, uint64_t sectors)
{
	TL_SYNC(l, store_vol_copy(dst, dst_lba, src, src_lba, sectors, tl_done, &op_));
}

int tl_vol_resize(struct ev_loop *l, struct store_pool *p, const char *name, uint64_t sectors)
{
	TL_SYNC(l, store_vol_resize(p, name, sectors, tl_done, &op_));
}

int tl_vol_set_wb(struct ev_loop *l, struct store_pool *p, const char *name, bool on)
{
	TL_SYNC(l, store_vol_set_write_back(p, name, on, tl_done, &op_));
}

int tl_write(struct ev_loop *l, struct store_vol *v, uint64_t lba, const void *buf,
             size_t bytes, unsigned flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = bytes };

	TL_SYNC(l, store_vol_write(v, lba, &iov, 1, flags, tl_done, &op_));
}

int tl_read(struct ev_loop *l, struct store_vol *v, uint64_t lba, void *buf, size_t bytes)
{
	struct iovec iov = { .iov_base = buf, .iov_len = bytes };

	TL_SYNC(l, store_vol_read(v, lba, &iov, 1, tl_done, &op_));
}

int tl_readv(struct ev_loop *l, struct store_vol *v, uint64_t lba, const struct iovec *iov,
             int iovcnt)
{
	TL_SYNC(l, store_vol_read(v, lba, iov, iovcnt, tl_done, &op_));
}

int tl_unmap(struct ev_loop *l, struct store_vol *v, uint64_t lba, uint64_t sectors)
{
	TL_SYNC(l, store_vol_unmap(v, lba, sectors, tl_done, &op_));
}

int tl_flush(struct ev_loop *l, struct store_vol *v)
{
	TL_SYNC(l, store_vol_flush(v, tl_done, &op_));
}

int tl_checkpoint(struct ev_loop *l, struct store_pool *p)
{
	TL_SYNC(l, store_pool_checkpoint(p, tl_done, &op_));
}

int tl_pool_close(struct ev_loop *l, struct store_pool *p)
{
	TL_SYNC(l, store_pool_close(p, tl_done, &op_));
}

uint64_t tl_seed(const char *test)
{
	const char *env = getenv("SLUICE_SEED");
	uint64_t seed;

	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	}
	if (seed == 0)
		seed = 1;
	printf("%s: seed %" PRIu64 " (replay with SLUICE_SEED=%" PRIu64 ")\n", test, seed, seed);
	fflush(stdout);
	return seed;
}

uint64_t tl_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

uint64_t tl_rand_below(uint64_t *s, uint64_t n)
{
	return n ? tl_rand(s) % n : 0;
}

static char tl_dir[256];

const char *tl_scratch_dir(void)
{
	if (!tl_dir[0]) {
		const char *base = getenv("TMPDIR");

		snprintf(tl_dir, sizeof(tl_dir), "%s/sluice-test-XXXXXX", base ? base : "/tmp");
		if (!mkdtemp(tl_dir)) {
			perror("mkdtemp");
			abort();
		}
	}
	return tl_dir;
}

void tl_scratch_cleanup(void)
{
	char cmd[300];

	if (!tl_dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tl_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "testlib: could not remove %s\n", tl_dir);
	tl_dir[0] = 0;
}

bool tl_log_quiet;

void tl_log(void *arg, enum store_log_level level, const char *msg)
{
	static const char *names[] = { "error", "warn", "info", "debug" };

	(void)arg;
	if (getenv("SLUICE_TEST_VERBOSE") || (level == STORE_LOG_ERR && !tl_log_quiet))
		fprintf(stderr, "store %s: %s\n", names[level], msg);
}

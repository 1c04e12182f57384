/* tests/unit/test_store_model.c: the randomized model-based test.
 *
 * Thousands of random operations (write, read, unmap, grow, delete, create,
 * flush, checkpoint, write-cache toggle, close and reopen) on several volumes
 * of a real pool file, through each I/O engine, checked after every step
 * against a plain in-memory copy of every volume. Several operations are in
 * flight at once, as under an initiator's queue. Prints its seed; replay a
 * failure with SLUICE_SEED=<seed>. SLUICE_MODEL_OPS sets the length.
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

#define SLOTS        4
#define MAX_SECTORS  8192               /* 4 MiB per volume at most */
#define GROUP_MAX    8                  /* operations in flight together */

struct model_vol {
	bool      exists;
	char      name[16];
	uint64_t  sectors;
	bool      write_back;
	uint8_t  *data;                     /* MAX_SECTORS * 512 */
	struct store_vol *h;
};

struct model {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	enum store_engine  engine;
	uint64_t           rng;
	struct model_vol   vol[SLOTS];
	unsigned           step;
	unsigned           gen;             /* names volumes uniquely */
};

/* One operation of a group: its range, buffers and completion. */
struct model_io {
	int        slot;
	bool       is_write;
	uint64_t   lba, n;
	uint8_t   *buf;
	struct iovec iov[3];
	struct tl_op op;
};

static int model_open(struct model *m)
{
	struct store_pool_opts o = {
		.path = m->path, .create_bytes = 512ull << 20, .segment_bytes = 1u << 20,
		.engine = m->engine, .checkpoint_log_bytes = 24ull << 20, .log = tl_log,
	};
	int rc = store_pool_open(m->loop, &o, &m->pool);

	for (int s = 0; rc == 0 && s < SLOTS; s++)
		if (m->vol[s].exists)
			assert_int_equal(store_vol_open(m->pool, m->vol[s].name, &m->vol[s].h), 0);
	return rc;
}

static void model_close(struct model *m)
{
	for (int s = 0; s < SLOTS; s++)
		if (m->vol[s].exists)
			store_vol_close(m->vol[s].h);
	assert_int_equal(tl_pool_close(m->loop, m->pool), 0);
	m->pool = NULL;
}

static void model_fill(struct model *m, uint8_t *buf, size_t len)
{
	uint64_t x = tl_rand(&m->rng);

	for (size_t i = 0; i < len; i += 8) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
	}
	if (tl_rand_below(&m->rng, 4) == 0)     /* zero blocks are data too */
		memset(buf, 0, len / 2);
}

static void model_check_range(struct model *m, int s, uint64_t lba, uint64_t n)
{
	struct model_vol *v = &m->vol[s];
	uint8_t *buf = malloc(n * 512);

	assert_int_equal(tl_read(m->loop, v->h, lba, buf, n * 512), 0);
	if (memcmp(buf, v->data + lba * 512, n * 512) != 0) {
		fprintf(stderr, "step %u: volume %s sectors %" PRIu64 "+%" PRIu64
		        " differ from the model\n", m->step, v->name, lba, n);
		fail();
	}
	free(buf);
}

static void model_check_all(struct model *m)
{
	for (int s = 0; s < SLOTS; s++)
		if (m->vol[s].exists)
			model_check_range(m, s, 0, m->vol[s].sectors);
}

static int model_pick_vol(struct model *m)
{
	int start = (int)tl_rand_below(&m->rng, SLOTS);

	for (int i = 0; i < SLOTS; i++)
		if (m->vol[(start + i) % SLOTS].exists)
			return (start + i) % SLOTS;
	return -1;
}

/* A random range of volume s: small, 4 KiB-aligned or not, sometimes large. */
static void model_range(struct model *m, int s, uint64_t *lba, uint64_t *n)
{
	uint64_t size = m->vol[s].sectors;
	uint64_t max = tl_rand_below(&m->rng, 8) == 0 ? 2048 : 64;

	*n = 1 + tl_rand_below(&m->rng, max < size ? max : size);
	*lba = tl_rand_below(&m->rng, size - *n + 1);
	if (tl_rand_below(&m->rng, 2)) {        /* the common, aligned case */
		*lba &= ~7ull;
		*n = (*n + 7) & ~7ull;
		if (*lba + *n > size)
			*n = size - *lba;
	}
}

static bool overlaps(const struct model_io *a, const struct model_io *b)
{
	return a->slot == b->slot && a->lba < b->lba + b->n && b->lba < a->lba + a->n;
}

/* Submits a group of non-overlapping reads and writes together, then checks
 * each against the model. */
static void model_io_group(struct model *m)
{
	struct model_io io[GROUP_MAX];
	int k = 1 + (int)tl_rand_below(&m->rng, GROUP_MAX), n = 0;

	for (int i = 0; i < k; i++) {
		struct model_io *o = &io[n];
		bool clash = false;

		memset(o, 0, sizeof(*o));
		o->slot = model_pick_vol(m);
		if (o->slot < 0)
			return;
		model_range(m, o->slot, &o->lba, &o->n);
		o->is_write = tl_rand_below(&m->rng, 3) != 0;
		for (int j = 0; j < n; j++)
			clash |= overlaps(o, &io[j]);
		if (clash)
			continue;
		o->buf = malloc(o->n * 512);
		if (o->is_write)
			model_fill(m, o->buf, o->n * 512);
		/* split the buffer over up to three iovecs at sector boundaries */
		uint64_t cut1 = tl_rand_below(&m->rng, o->n + 1), cut2 = cut1 + tl_rand_below(&m->rng, o->n - cut1 + 1);
		o->iov[0] = (struct iovec){ o->buf, cut1 * 512 };
		o->iov[1] = (struct iovec){ o->buf + cut1 * 512, (cut2 - cut1) * 512 };
		o->iov[2] = (struct iovec){ o->buf + cut2 * 512, (o->n - cut2) * 512 };
		if (o->is_write)
			store_vol_write(m->vol[o->slot].h, o->lba, o->iov, 3,
			                tl_rand_below(&m->rng, 4) ? 0 : STORE_WRITE_FUA,
			                tl_done, &o->op);
		else
			store_vol_read(m->vol[o->slot].h, o->lba, o->iov, 3, tl_done, &o->op);
		assert_false(o->op.done);
		n++;
	}
	for (int i = 0; i < n; i++) {
		struct model_io *o = &io[i];
		uint8_t *want = m->vol[o->slot].data + o->lba * 512;

		assert_int_equal(tl_wait(m->loop, &o->op), 0);
		if (o->is_write)
			memcpy(want, o->buf, o->n * 512);
		else if (memcmp(o->buf, want, o->n * 512) != 0) {
			fprintf(stderr, "step %u: read of %s %" PRIu64 "+%" PRIu64 " is wrong\n",
			        m->step, m->vol[o->slot].name, o->lba, o->n);
			fail();
		}
	}
	for (int i = 0; i < n; i++) {
		if (io[i].is_write)
			model_check_range(m, io[i].slot, io[i].lba, io[i].n);
		free(io[i].buf);
	}
}

static void model_unmap(struct model *m)
{
	int s = model_pick_vol(m);
	uint64_t lba, n;

	if (s < 0)
		return;
	model_range(m, s, &lba, &n);
	assert_int_equal(tl_unmap(m->loop, m->vol[s].h, lba, n), 0);
	memset(m->vol[s].data + lba * 512, 0, n * 512);
	model_check_range(m, s, lba > 8 ? lba - 8 : 0, n + 16 < m->vol[s].sectors - (lba > 8 ? lba - 8 : 0) ? n + 16 : m->vol[s].sectors - (lba > 8 ? lba - 8 : 0));
}

static void model_create(struct model *m, int s)
{
	struct model_vol *v = &m->vol[s];

	snprintf(v->name, sizeof(v->name), "v%u", m->gen++);
	v->sectors = 8 + tl_rand_below(&m->rng, MAX_SECTORS / 2);
	v->write_back = tl_rand_below(&m->rng, 2);
	assert_int_equal(tl_vol_create(m->loop, m->pool, v->name, v->sectors, v->write_back), 0);
	assert_int_equal(tl_vol_create(m->loop, m->pool, v->name, 8, false), -EEXIST);
	assert_int_equal(store_vol_open(m->pool, v->name, &v->h), 0);
	memset(v->data, 0, MAX_SECTORS * 512);
	v->exists = true;
	model_check_range(m, s, 0, v->sectors);
}

static void model_delete(struct model *m, int s)
{
	struct model_vol *v = &m->vol[s];
	struct store_vol *h;

	assert_int_equal(tl_vol_delete(m->loop, m->pool, v->name), -EBUSY);
	store_vol_close(v->h);
	assert_int_equal(tl_vol_delete(m->loop, m->pool, v->name), 0);
	assert_int_equal(store_vol_open(m->pool, v->name, &h), -ENOENT);
	v->exists = false;
}

static void model_grow(struct model *m, int s)
{
	struct model_vol *v = &m->vol[s];
	uint64_t to = v->sectors + tl_rand_below(&m->rng, MAX_SECTORS - v->sectors + 1);

	assert_int_equal(tl_vol_resize(m->loop, m->pool, v->name, v->sectors - 1), -EINVAL);
	assert_int_equal(tl_vol_resize(m->loop, m->pool, v->name, to), 0);
	v->sectors = to;
	model_check_range(m, s, 0, v->sectors);
}

static void model_meta(struct model *m)
{
	int s = (int)tl_rand_below(&m->rng, SLOTS);
	struct model_vol *v = &m->vol[s];

	if (!v->exists) {
		model_create(m, s);
		return;
	}
	switch (tl_rand_below(&m->rng, 3)) {
	case 0:
		model_delete(m, s);
		break;
	case 1:
		model_grow(m, s);
		break;
	default:
		v->write_back = !v->write_back;
		assert_int_equal(tl_vol_set_wb(m->loop, m->pool, v->name, v->write_back), 0);
	}
}

static void model_step(struct model *m)
{
	unsigned r = (unsigned)tl_rand_below(&m->rng, 100);
	int s;

	if (r < 70)
		model_io_group(m);
	else if (r < 80)
		model_unmap(m);
	else if (r < 88)
		model_meta(m);
	else if (r < 92 && (s = model_pick_vol(m)) >= 0)
		assert_int_equal(tl_flush(m->loop, m->vol[s].h), 0);
	else if (r < 94)
		assert_int_equal(tl_checkpoint(m->loop, m->pool), 0);
	else if (r < 96) {
		model_close(m);
		assert_int_equal(model_open(m), 0);
		model_check_all(m);
	}
}

static void model_run(enum store_engine engine, const char *name)
{
	struct model m = { .engine = engine };
	const char *env = getenv("SLUICE_MODEL_OPS");
	unsigned ops = env ? (unsigned)atoi(env) : 3000;
	struct store_vol_info info[SLOTS + 1];
	size_t nv = 0;

	m.rng = tl_seed(name);
	m.loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(m.path, sizeof(m.path), "%s/model-%s", tl_scratch_dir(), store_engine_name(engine));
	for (int s = 0; s < SLOTS; s++)
		m.vol[s].data = calloc(MAX_SECTORS, 512);
	assert_int_equal(model_open(&m), 0);
	for (m.step = 0; m.step < ops; m.step++)
		model_step(&m);
	model_close(&m);
	assert_int_equal(model_open(&m), 0);
	model_check_all(&m);
	for (int s = 0; s < SLOTS; s++)
		nv += m.vol[s].exists;
	assert_int_equal(store_vol_list(m.pool, info, SLOTS + 1), nv);
	assert_int_equal(store_pool_check(m.pool, tl_log, NULL), 0);
	model_close(&m);
	printf("%s: %u operations checked\n", name, ops);
	for (int s = 0; s < SLOTS; s++)
		free(m.vol[s].data);
	unlink(m.path);
	ev_loop_destroy(m.loop);
}

static void test_model_uring(void **state)
{
	(void)state;
	model_run(STORE_ENGINE_URING, "model/io_uring");
}

static void test_model_threads(void **state)
{
	(void)state;
	model_run(STORE_ENGINE_THREADS, "model/threads");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_uring),
		cmocka_unit_test(test_model_threads),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	tl_scratch_cleanup();
	return rc;
}

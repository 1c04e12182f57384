/* tests/unit/test_crash.c: power cuts at every point of a workload.
 *
 * A deterministic workload (writes of every size and alignment, unmaps,
 * flushes, a write-back volume, a volume created and one grown mid-way,
 * checkpoints) runs on the crash backend with the power cut at bio 1, then
 * bio 2, and so on until the workload completes before the cut (SQLite's
 * crash loop). After each cut the media keeps what was flushed, and each
 * unflushed write whole, lost or torn sector by sector; the pool is reopened
 * from that image and checked:
 *   - every acknowledged durable write reads back exactly (D1);
 *   - every other sector holds its last durable contents or the contents of
 *     a write issued after that, whole (never a mix within a sector, never
 *     garbage, never older data);
 *   - an acknowledged volume create or grow survived;
 *   - the recovered pool passes store_pool_check, takes new writes, and
 *     keeps them across a clean restart.
 * Prints its seed and the number of cut points; SLUICE_SEED replays.
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

#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define POOL_BYTES   (16u << 20)
#define SEG_BYTES    (256u << 10)
#define NVOLS        4                  /* the 4th is created mid-way */
#define VOL_SECTORS  1024
#define MAX_OPS      2048
#define SECTOR_MAGIC 0x48535243u        /* "CRSH" */
#define IMAGES_PER_CUT 3

enum op_state { OP_ISSUED, OP_DONE, OP_DURABLE, OP_FAILED };

struct op {
	int          vol;
	bool         unmap;
	bool         fua;
	uint64_t     lba, n;
	enum op_state state;
	uint64_t     done_at;               /* completion order */
	uint8_t     *buf;
	struct iovec iov;
	struct tl_op t;
	struct run  *run;
};

struct flush_op {
	int          vol;
	uint64_t     issued_at;             /* completions seen when issued */
	struct tl_op t;
	bool         checked;
};

struct run {
	struct ev_loop    *loop;
	struct store_pool *pool;
	struct store_vol  *h[NVOLS];
	bool               write_back[NVOLS];
	uint64_t           sectors[NVOLS];  /* size acknowledged */
	uint64_t           grow_to[NVOLS];  /* size asked for, maybe not acked */
	bool               created_acked[NVOLS];
	bool               create_issued[NVOLS];
	bool               meta_acked, meta_issued;
	struct op          ops[MAX_OPS];
	int                nops;
	struct flush_op    flushes[256];
	int                nflushes;
	uint64_t           completions;
	uint64_t           rng;
};

static const char *vol_name(int v)
{
	static const char *names[NVOLS] = { "wt0", "wb1", "wt2", "late3" };

	return names[v];
}

/* Sector contents identify the op and the sector within it. */
static void sector_fill(uint8_t *s, uint32_t op, uint32_t idx)
{
	uint32_t hdr[3] = { SECTOR_MAGIC, op + 1, idx };

	memcpy(s, hdr, sizeof(hdr));
	for (int i = 12; i < 512; i++)
		s[i] = (uint8_t)(op * 31 + idx * 7 + i);
}

/* 0: zeros; else op index + 1; -1: not something any op wrote. */
static long sector_decode(const uint8_t *s, const struct run *r, int vol, uint64_t lba)
{
	uint32_t hdr[3];
	uint8_t want[512];

	memcpy(hdr, s, sizeof(hdr));
	if (hdr[0] != SECTOR_MAGIC) {
		for (int i = 0; i < 512; i++)
			if (s[i])
				return -1;
		return 0;
	}
	if (hdr[1] == 0 || hdr[1] > (uint32_t)r->nops)
		return -1;
	const struct op *o = &r->ops[hdr[1] - 1];
	if (o->unmap || o->vol != vol || lba < o->lba || lba - o->lba != hdr[2] ||
	    hdr[2] >= o->n)
		return -1;
	sector_fill(want, hdr[1] - 1, hdr[2]);
	return memcmp(want, s, 512) == 0 ? (long)hdr[1] : -1;
}

static void op_done(void *arg, int err)
{
	struct op *o = arg;
	struct run *r = o->run;

	tl_done(&o->t, err);
	if (err) {
		o->state = OP_FAILED;
		return;
	}
	o->done_at = ++r->completions;
	o->state = (!r->write_back[o->vol] || o->fua) ? OP_DURABLE : OP_DONE;
}

static bool busy(const struct run *r, int vol, uint64_t lba, uint64_t n)
{
	for (int i = 0; i < r->nops; i++) {
		const struct op *o = &r->ops[i];

		if (o->vol == vol && !o->t.done && o->lba < lba + n && lba < o->lba + o->n)
			return true;
	}
	return false;
}

static void issue_io(struct run *r)
{
	int vol = (int)tl_rand_below(&r->rng, NVOLS);
	uint64_t n = 1 + tl_rand_below(&r->rng, tl_rand_below(&r->rng, 6) ? 16 : 300);
	uint64_t lba;
	struct op *o;

	if (!r->h[vol] || r->nops == MAX_OPS || n > r->sectors[vol])
		return;
	lba = tl_rand_below(&r->rng, r->sectors[vol] - n + 1);
	if (busy(r, vol, lba, n))
		return;
	o = &r->ops[r->nops];
	memset(o, 0, sizeof(*o));
	o->run = r;
	o->vol = vol;
	o->lba = lba;
	o->n = n;
	o->unmap = tl_rand_below(&r->rng, 8) == 0;
	o->fua = !o->unmap && tl_rand_below(&r->rng, 5) == 0;
	if (o->unmap) {
		store_vol_unmap(r->h[vol], lba, n, op_done, o);
	} else {
		o->buf = malloc(n * 512);
		for (uint64_t i = 0; i < n; i++)
			sector_fill(o->buf + i * 512, (uint32_t)r->nops, (uint32_t)i);
		o->iov.iov_base = o->buf;
		o->iov.iov_len = n * 512;
		store_vol_write(r->h[vol], lba, &o->iov, 1, o->fua ? STORE_WRITE_FUA : 0,
		                op_done, o);
	}
	r->nops++;
}

static void issue_flush(struct run *r)
{
	struct flush_op *f = &r->flushes[r->nflushes];

	if (!r->h[1] || r->nflushes == 256)
		return;
	memset(f, 0, sizeof(*f));
	f->vol = 1;
	f->issued_at = r->completions;
	store_vol_flush(r->h[1], tl_done, &f->t);
	r->nflushes++;
}

/* A flush that succeeded makes the volume's earlier completions durable. */
static void settle_flushes(struct run *r)
{
	for (int i = 0; i < r->nflushes; i++) {
		struct flush_op *f = &r->flushes[i];

		if (!f->t.done || f->checked)
			continue;
		f->checked = true;
		if (f->t.err)
			continue;
		for (int j = 0; j < r->nops; j++)
			if (r->ops[j].vol == f->vol && r->ops[j].state == OP_DONE &&
			    r->ops[j].done_at <= f->issued_at)
				r->ops[j].state = OP_DURABLE;
	}
}

static void create_late(struct run *r)
{
	struct tl_op t = { 0 };

	r->create_issued[3] = true;
	store_vol_create(r->pool, vol_name(3), VOL_SECTORS, false, tl_done, &t);
	if (tl_wait(r->loop, &t) == 0) {
		r->created_acked[3] = true;
		r->sectors[3] = r->grow_to[3] = VOL_SECTORS;
		assert_int_equal(store_vol_open(r->pool, vol_name(3), &r->h[3]), 0);
	}
}

static void put_meta(struct run *r)
{
	struct tl_op t = { 0 };

	r->meta_issued = true;
	store_meta_put(r->pool, "target/iqn.2026-11.test:crash", "{}", 2, tl_done, &t);
	r->meta_acked = tl_wait(r->loop, &t) == 0;
}

static void grow_first(struct run *r)
{
	struct tl_op t = { 0 };

	r->grow_to[0] = VOL_SECTORS * 2;
	store_vol_resize(r->pool, vol_name(0), r->grow_to[0], tl_done, &t);
	if (tl_wait(r->loop, &t) == 0)
		r->sectors[0] = r->grow_to[0];
}

static void workload(struct run *r, uint64_t seed)
{
	r->rng = seed;
	for (int step = 0; step < 200; step++) {
		int k = 1 + (int)tl_rand_below(&r->rng, 6);
		struct tl_op ck = { 0 };
		bool want_ck = tl_rand_below(&r->rng, 25) == 0;

		for (int i = 0; i < k; i++)
			issue_io(r);
		if (tl_rand_below(&r->rng, 4) == 0)
			issue_flush(r);
		if (want_ck)
			store_pool_checkpoint(r->pool, tl_done, &ck);
		/* let some complete, sometimes all, so queues stay deep */
		for (int spins = (int)tl_rand_below(&r->rng, 4); spins > 0; spins--)
			ev_run(r->loop, EVRUN_NOWAIT);
		if (want_ck)
			tl_wait(r->loop, &ck);
		if (step == 40)
			create_late(r);
		if (step == 110)
			grow_first(r);
		if (step == 150)
			put_meta(r);
		settle_flushes(r);
	}
	for (int i = 0; i < r->nops; i++)
		tl_wait(r->loop, &r->ops[i].t);
	for (int i = 0; i < r->nflushes; i++)
		tl_wait(r->loop, &r->flushes[i].t);
	settle_flushes(r);
}

static int open_pool(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **out)
{
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .create_bytes = POOL_BYTES,
		.segment_bytes = SEG_BYTES, .checkpoint_log_bytes = 1u << 20, .log = tl_log,
	};

	return store_pool_open(loop, &o, out);
}

static void run_setup(struct run *r, struct crash_backend *cb)
{
	r->loop = ev_loop_new(EVFLAG_AUTO);
	assert_int_equal(open_pool(r->loop, cb, &r->pool), 0);
	for (int v = 0; v < 3; v++) {
		r->write_back[v] = v == 1;
		assert_int_equal(tl_vol_create(r->loop, r->pool, vol_name(v), VOL_SECTORS,
		                               r->write_back[v]), 0);
		assert_int_equal(store_vol_open(r->pool, vol_name(v), &r->h[v]), 0);
		r->sectors[v] = r->grow_to[v] = VOL_SECTORS;
	}
}

static void run_teardown(struct run *r)
{
	for (int v = 0; v < NVOLS; v++)
		if (r->h[v])
			store_vol_close(r->h[v]);
	tl_pool_close(r->loop, r->pool);
	for (int i = 0; i < r->nops; i++)
		free(r->ops[i].buf);
	ev_loop_destroy(r->loop);
}

/* Is value (0 or op index + 1) allowed for this sector after the crash? */
static bool sector_allowed(const struct run *r, int vol, uint64_t lba, long value)
{
	int last_durable = -1;

	for (int i = 0; i < r->nops; i++) {
		const struct op *o = &r->ops[i];

		if (o->vol == vol && lba >= o->lba && lba < o->lba + o->n &&
		    o->state == OP_DURABLE)
			last_durable = i;
	}
	if (last_durable < 0 && value == 0)
		return true;
	if (last_durable >= 0 &&
	    value == (r->ops[last_durable].unmap ? 0 : last_durable + 1))
		return true;
	for (int i = last_durable + 1; i < r->nops; i++) {
		const struct op *o = &r->ops[i];

		if (o->vol == vol && lba >= o->lba && lba < o->lba + o->n &&
		    value == (o->unmap ? 0 : i + 1))
			return true;
	}
	return false;
}

static void check_volume(const struct run *r, struct ev_loop *loop, struct store_pool *p,
                         int vol, uint64_t cut)
{
	struct store_vol_info info;
	struct store_vol *h;
	uint8_t *buf;
	uint64_t n;

	if (store_vol_stat(p, vol_name(vol), &info) != 0) {
		if (vol < 3 || r->created_acked[vol])
			fail_msg("cut %" PRIu64 ": acknowledged volume %s is gone", cut, vol_name(vol));
		return;
	}
	if (vol == 3 && !r->create_issued[3])
		fail_msg("cut %" PRIu64 ": volume %s exists but was never created", cut, vol_name(vol));
	if (info.sectors != r->sectors[vol] && info.sectors != r->grow_to[vol])
		fail_msg("cut %" PRIu64 ": %s has %" PRIu64 " sectors", cut, vol_name(vol), info.sectors);
	if (info.sectors < r->sectors[vol])
		fail_msg("cut %" PRIu64 ": %s lost its acknowledged growth", cut, vol_name(vol));
	n = info.sectors;
	buf = malloc(n * 512);
	assert_int_equal(store_vol_open(p, vol_name(vol), &h), 0);
	assert_int_equal(tl_read(loop, h, 0, buf, n * 512), 0);
	for (uint64_t s = 0; s < n; s++) {
		long val = sector_decode(buf + s * 512, r, vol, s);

		if (val < 0 || !sector_allowed(r, vol, s, val))
			fail_msg("cut %" PRIu64 ": %s sector %" PRIu64 " holds %ld, not allowed",
			         cut, vol_name(vol), s, val);
	}
	store_vol_close(h);
	free(buf);
}

static void check_meta(const struct run *r, struct store_pool *p, uint64_t cut)
{
	const void *v;
	size_t len;
	int rc = store_meta_get(p, "target/iqn.2026-11.test:crash", &v, &len);

	if (rc == 0 && !r->meta_issued)
		fail_msg("cut %" PRIu64 ": a metadata record nobody wrote", cut);
	if (rc != 0 && r->meta_acked)
		fail_msg("cut %" PRIu64 ": acknowledged metadata record lost", cut);
	if (rc == 0 && (len != 2 || memcmp(v, "{}", 2) != 0))
		fail_msg("cut %" PRIu64 ": metadata record damaged", cut);
}

/* The recovered pool is consistent, takes writes and keeps them. */
static void check_usable(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **pp)
{
	struct store_vol *h;
	uint8_t w[4096], rb[4096];

	assert_int_equal(store_pool_check(*pp, tl_log, NULL), 0);
	memset(w, 0xa5, sizeof(w));
	assert_int_equal(store_vol_open(*pp, vol_name(2), &h), 0);
	assert_int_equal(tl_write(loop, h, 8, w, sizeof(w), 0), 0);
	store_vol_close(h);
	assert_int_equal(tl_pool_close(loop, *pp), 0);
	assert_int_equal(open_pool(loop, cb, pp), 0);
	assert_int_equal(store_vol_open(*pp, vol_name(2), &h), 0);
	assert_int_equal(tl_read(loop, h, 8, rb, sizeof(rb)), 0);
	assert_memory_equal(w, rb, sizeof(w));
	store_vol_close(h);
}

static void check_after_cut(const struct run *r, struct crash_backend *cb, uint64_t seed,
                            uint64_t cut)
{
	uint64_t trng = seed ^ (cut * 0x9e3779b97f4a7c15ull);
	uint8_t *img = crash_backend_image(cb, &trng);
	struct crash_backend *cb2 = crash_backend_create(POOL_BYTES, img);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_pool *p;
	int rc = open_pool(loop, cb2, &p);

	if (rc)
		fail_msg("cut %" PRIu64 ": pool does not reopen: %s", cut, store_strerror(rc));
	for (int v = 0; v < NVOLS; v++)
		check_volume(r, loop, p, v, cut);
	check_meta(r, p, cut);
	check_usable(loop, cb2, &p);
	assert_int_equal(tl_pool_close(loop, p), 0);
	ev_loop_destroy(loop);
	crash_backend_free(cb2);
	free(img);
}

static void test_crash_every_cut_point(void **state)
{
	uint64_t seed = tl_seed("crash");
	uint64_t cut;

	(void)state;
	tl_log_quiet = true;    /* every cut fails the pool on purpose */
	for (cut = 1;; cut++) {
		struct crash_backend *cb = crash_backend_create(POOL_BYTES, NULL);
		struct run *r = calloc(1, sizeof(*r));
		bool fired;

		run_setup(r, cb);
		crash_backend_arm(cb, cut);
		workload(r, seed);
		fired = crash_backend_fired(cb);
		run_teardown(r);
		/* several media states per cut: which unflushed writes survive */
		for (uint64_t img = 0; fired && img < IMAGES_PER_CUT; img++)
			check_after_cut(r, cb, seed + img, cut);
		free(r);
		crash_backend_free(cb);
		if (!fired)
			break;
	}
	printf("crash: %" PRIu64 " cut points, %d media states each, checked; seed %" PRIu64 "\n",
	       cut - 1, IMAGES_PER_CUT, seed);
	assert_true(cut > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_every_cut_point),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

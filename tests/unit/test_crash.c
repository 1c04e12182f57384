/* tests/unit/test_crash.c: power cuts at every point of a workload.
 *
 * A deterministic workload (writes of every size and alignment, unmaps,
 * copies by reference, flushes, a write-back volume, a volume created and
 * one grown mid-way, checkpoints; snapshots, consistency-group snapshots,
 * clones, rollbacks, deletes of snapshots and of a volume after its
 * snapshots) runs on the crash backend with the power cut at bio 1, then
 * bio 2, and so on until the workload completes before the cut (SQLite's
 * crash loop). After each cut the media keeps what was flushed, and each
 * unflushed write whole, lost or torn sector by sector; the pool is reopened
 * from that image and checked:
 *   - every acknowledged durable write reads back exactly (D1);
 *   - every other sector holds its last durable contents or the contents of
 *     a write, copy or rollback issued after that, whole (never a mix within
 *     a sector, never garbage, never older data);
 *   - an acknowledged volume create or grow survived;
 *   - an acknowledged snapshot, group snapshot or clone exists and reads
 *     exactly its point in time (every write completed before it, none
 *     after); an acknowledged delete is gone; one that was not acknowledged
 *     is there whole or not at all, a group all or none; a rollback or a
 *     copy not acknowledged took effect on its whole range or not at all;
 *     a snapshot's volume is there as long as the snapshot is, and the
 *     writes the snapshot holds are not lost from the volume either;
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
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define POOL_BYTES   (16u << 20)
#define SEG_BYTES    (256u << 10)
#define NVOLS        4                  /* wt0, wb1, wt2; late3 is created mid-way */
#define MAX_OBJS     40                 /* volumes, snapshots and clones */
#define VOL_SECTORS  1024
#define MAX_SECTORS  (2 * VOL_SECTORS)  /* wt0 grows */
#define MAX_OPS      2048
#define SECTOR_MAGIC 0x48535243u        /* "CRSH" */
#define IMAGES_PER_CUT 3
#define TOKEN_IDX    512u               /* a sector's token: (op + 1) * TOKEN_IDX + index */
#define MAX_IO       300                /* sectors of one write, unmap or copy */

/* What an op does to its range: a write's own data, zeros, or given tokens
 * (a copy's source as it was, a clone's start, a rollback's snapshot). */
enum op_kind { K_WRITE, K_UNMAP, K_COPY, K_SET };
enum op_state { OP_ISSUED, OP_DONE, OP_DURABLE, OP_FAILED };

struct op {
	int          obj;
	enum op_kind kind;
	bool         fua;
	bool         creates;               /* a clone's start: there when the clone is */
	uint64_t     lba, n;
	int          src;                   /* K_COPY: source object and lba */
	uint64_t     src_lba;
	uint32_t    *vals;                  /* K_COPY, K_SET: a token per sector */
	enum op_state state;
	uint64_t     done_at;               /* completion order */
	uint8_t     *buf;
	struct iovec iov;
	struct tl_op t;
	struct run  *run;
};

struct flush_op {
	int          obj;
	uint64_t     issued_at;             /* completions seen when issued */
	struct tl_op t;
	bool         checked;
};

/* A volume, snapshot or clone. A snapshot's cur is its exact contents. */
struct obj {
	char         name[48];
	char         snap[16];              /* a snapshot's name after '@' */
	bool         snapshot;
	bool         base;                  /* wt0, wb1, wt2: always there */
	int          of;                    /* a snapshot's volume, a clone's snapshot; -1 */
	int          group;                 /* the group snapshot it came from; 0 */
	bool         write_back;
	uint64_t     sectors;               /* size acknowledged */
	uint64_t     grow_to;               /* size asked for, maybe not acked */
	bool         create_issued, create_acked;
	bool         delete_issued, delete_acked;
	struct store_vol *h;                /* while usable */
	uint32_t     cur[MAX_SECTORS];      /* contents as acknowledged, as tokens */
};

struct run {
	struct ev_loop    *loop;
	struct store_pool *pool;
	struct crash_backend *cb;
	struct obj         obj[MAX_OBJS];
	int                nobjs;
	bool               meta_acked, meta_issued;
	bool               failed;          /* an error came back: the cut fired */
	struct op          ops[MAX_OPS];
	int                nops;
	struct flush_op    flushes[256];
	int                nflushes;
	uint64_t           completions;
	uint64_t           rng;
	unsigned           gen, groups;
	unsigned           n_snap, n_group, n_clone, n_rollback, n_copy, n_del;
	/* for the checks: per object and sector, the ops on it in order */
	int               *cov_off[MAX_OBJS];   /* MAX_SECTORS + 1 */
	int               *cov_ops[MAX_OBJS];
};

/* Sector contents identify the op and the sector within it. */
static void sector_fill(uint8_t *s, uint32_t op, uint32_t idx)
{
	uint32_t hdr[3] = { SECTOR_MAGIC, op + 1, idx };

	memcpy(s, hdr, sizeof(hdr));
	for (int i = 12; i < 512; i++)
		s[i] = (uint8_t)(op * 31 + idx * 7 + i);
}

static uint32_t token(uint32_t op, uint32_t idx)
{
	return (op + 1) * TOKEN_IDX + idx;
}

/* 0: zeros; else the token of the write and sector that wrote it (copies
 * move it about); -1: not something any write wrote. */
static long sector_decode(const uint8_t *s, const struct run *r)
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
	if (o->kind != K_WRITE || hdr[2] >= o->n)
		return -1;
	sector_fill(want, hdr[1] - 1, hdr[2]);
	return memcmp(want, s, 512) == 0 ? (long)token(hdr[1] - 1, hdr[2]) : -1;
}

/* The token op o leaves at lba (inside its range). */
static uint32_t op_value(const struct run *r, const struct op *o, uint64_t lba)
{
	switch (o->kind) {
	case K_WRITE:
		return token((uint32_t)(o - r->ops), (uint32_t)(lba - o->lba));
	case K_UNMAP:
		return 0;
	default:
		return o->vals[lba - o->lba];
	}
}

static void op_apply(struct run *r, const struct op *o)
{
	struct obj *d = &r->obj[o->obj];

	for (uint64_t i = 0; i < o->n; i++)
		d->cur[o->lba + i] = op_value(r, o, o->lba + i);
}

static void op_done(void *arg, int err)
{
	struct op *o = arg;
	struct run *r = o->run;

	tl_done(&o->t, err);
	if (err) {
		if (!crash_backend_fired(r->cb))
			fail_msg("an operation failed before the power cut: %s", store_strerror(err));
		r->failed = true;
		o->state = OP_FAILED;
		return;
	}
	o->done_at = ++r->completions;
	o->state = (!r->obj[o->obj].write_back || o->fua || o->kind == K_SET) ? OP_DURABLE : OP_DONE;
	op_apply(r, o);
}

static bool op_covers(const struct op *o, int obj, uint64_t lba, uint64_t n)
{
	return o->obj == obj && o->lba < lba + n && lba < o->lba + o->n;
}

static bool op_reads(const struct op *o, int obj, uint64_t lba, uint64_t n)
{
	return o->kind == K_COPY && o->src == obj && o->src_lba < lba + n && lba < o->src_lba + o->n;
}

/* Is [lba, +n) of obj being changed (or, when writing, read by a copy)? */
static bool busy(const struct run *r, int obj, uint64_t lba, uint64_t n, bool writing)
{
	for (int i = 0; i < r->nops; i++) {
		const struct op *o = &r->ops[i];

		if (!o->t.done && (op_covers(o, obj, lba, n) || (writing && op_reads(o, obj, lba, n))))
			return true;
	}
	return false;
}

/* Waits for every op in flight on obj, as destination or source. */
static void drain(struct run *r, int obj)
{
	for (int i = 0; i < r->nops; i++)
		if (r->ops[i].obj == obj || (r->ops[i].kind == K_COPY && r->ops[i].src == obj))
			tl_wait(r->loop, &r->ops[i].t);
}

static bool usable(const struct run *r, int obj)
{
	return obj >= 0 && obj < r->nobjs && r->obj[obj].h != NULL;
}

/* A random usable volume (not a snapshot), or a snapshot; -1 when none. */
static int pick(struct run *r, bool snapshot)
{
	int start = (int)tl_rand_below(&r->rng, (uint64_t)r->nobjs);

	for (int i = 0; i < r->nobjs; i++) {
		int o = (start + i) % r->nobjs;

		if (usable(r, o) && r->obj[o].snapshot == snapshot)
			return o;
	}
	return -1;
}

static struct op *op_new(struct run *r, int obj, enum op_kind kind, uint64_t lba, uint64_t n)
{
	struct op *o;

	if (r->nops == MAX_OPS)
		return NULL;
	o = &r->ops[r->nops++];
	memset(o, 0, sizeof(*o));
	o->run = r;
	o->obj = obj;
	o->kind = kind;
	o->lba = lba;
	o->n = n;
	o->src = -1;
	if (kind == K_COPY || kind == K_SET)
		o->vals = calloc(n + 1, sizeof(*o->vals));
	return o;
}

/* A copy by reference: into a volume, from a volume or a snapshot, at
 * times from just around the destination in the same volume. */
static void issue_copy(struct run *r, uint64_t n)
{
	int dst = pick(r, false), src;
	uint64_t lba, src_lba, max;
	struct op *o;

	if (dst < 0)
		return;
	src = tl_rand_below(&r->rng, 3) == 0 ? dst : pick(r, tl_rand_below(&r->rng, 2));
	if (src < 0)
		src = dst;
	max = r->obj[dst].sectors < r->obj[src].sectors ? r->obj[dst].sectors : r->obj[src].sectors;
	if (n > max)
		return;
	lba = tl_rand_below(&r->rng, r->obj[dst].sectors - n + 1);
	if (src == dst && tl_rand_below(&r->rng, 2)) {
		uint64_t d = tl_rand_below(&r->rng, n + 1);

		src_lba = tl_rand_below(&r->rng, 2) && lba >= d ? lba - d : lba + d;
		if (src_lba + n > r->obj[src].sectors)
			src_lba = r->obj[src].sectors - n;
	} else {
		src_lba = tl_rand_below(&r->rng, r->obj[src].sectors - n + 1);
	}
	if (busy(r, dst, lba, n, true) || busy(r, src, src_lba, n, false))
		return;
	o = op_new(r, dst, K_COPY, lba, n);
	if (!o)
		return;
	o->src = src;
	o->src_lba = src_lba;
	/* nothing changes the source range while the copy is in flight */
	memcpy(o->vals, r->obj[src].cur + src_lba, n * sizeof(*o->vals));
	r->n_copy++;
	store_vol_copy(r->obj[dst].h, lba, r->obj[src].h, src_lba, n, op_done, o);
}

static void issue_io(struct run *r)
{
	int vol = (int)tl_rand_below(&r->rng, NVOLS);
	uint64_t n = 1 + tl_rand_below(&r->rng, tl_rand_below(&r->rng, 6) ? 16 : MAX_IO);
	unsigned kind = (unsigned)tl_rand_below(&r->rng, 16);
	uint64_t lba;
	struct op *o;

	if (kind < 2) {
		issue_copy(r, n);
		return;
	}
	/* the first volumes most of the time, any volume or clone at times */
	if (tl_rand_below(&r->rng, 3) == 0)
		vol = pick(r, false);
	if (!usable(r, vol) || r->obj[vol].snapshot || n > r->obj[vol].sectors)
		return;
	lba = tl_rand_below(&r->rng, r->obj[vol].sectors - n + 1);
	if (busy(r, vol, lba, n, true))
		return;
	o = op_new(r, vol, kind < 4 ? K_UNMAP : K_WRITE, lba, n);
	if (!o)
		return;
	o->fua = o->kind == K_WRITE && tl_rand_below(&r->rng, 5) == 0;
	if (o->kind == K_UNMAP) {
		store_vol_unmap(r->obj[vol].h, lba, n, op_done, o);
	} else {
		o->buf = malloc(n * 512);
		for (uint64_t i = 0; i < n; i++)
			sector_fill(o->buf + i * 512, (uint32_t)r->nops - 1, (uint32_t)i);
		o->iov.iov_base = o->buf;
		o->iov.iov_len = n * 512;
		store_vol_write(r->obj[vol].h, lba, &o->iov, 1, o->fua ? STORE_WRITE_FUA : 0,
		                op_done, o);
	}
}

static void issue_flush(struct run *r)
{
	struct flush_op *f = &r->flushes[r->nflushes];
	int obj = 1;

	if (tl_rand_below(&r->rng, 3) == 0) {   /* at times a write-back clone */
		int c = pick(r, false);

		if (c >= 0 && r->obj[c].write_back)
			obj = c;
	}
	if (!usable(r, obj) || r->nflushes == 256)
		return;
	memset(f, 0, sizeof(*f));
	f->obj = obj;
	f->issued_at = r->completions;
	store_vol_flush(r->obj[obj].h, tl_done, &f->t);
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
			if (r->ops[j].obj == f->obj && r->ops[j].state == OP_DONE &&
			    r->ops[j].done_at <= f->issued_at)
				r->ops[j].state = OP_DURABLE;
	}
}

/* A synchronous metadata change: 0, or the error (and the run has failed). */
static int meta_wait(struct run *r, struct tl_op *t)
{
	int rc = tl_wait(r->loop, t);

	if (rc) {
		if (!crash_backend_fired(r->cb))
			fail_msg("a metadata change failed before the power cut: %s",
			         store_strerror(rc));
		r->failed = true;
	}
	return rc;
}

static int obj_new(struct run *r, const char *name, bool snapshot, int of, bool write_back,
                   uint64_t sectors)
{
	struct obj *o;

	if (r->nobjs == MAX_OBJS)
		return -1;
	o = &r->obj[r->nobjs];
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->snapshot = snapshot;
	o->of = of;
	o->write_back = write_back;
	o->sectors = o->grow_to = sectors;
	o->create_issued = true;
	return r->nobjs++;
}

static void obj_opened(struct run *r, int obj)
{
	r->obj[obj].create_acked = true;
	assert_int_equal(store_vol_open(r->pool, r->obj[obj].name, &r->obj[obj].h), 0);
}

static void create_late(struct run *r)
{
	struct tl_op t = { 0 };
	int v = 3;

	r->obj[v].create_issued = true;
	store_vol_create(r->pool, r->obj[v].name, VOL_SECTORS, false, tl_done, &t);
	if (meta_wait(r, &t) == 0)
		obj_opened(r, v);
}

static void put_meta(struct run *r)
{
	struct tl_op t = { 0 };

	r->meta_issued = true;
	store_meta_put(r->pool, "target/iqn.2026-11.test:crash", "{}", 2, tl_done, &t);
	r->meta_acked = meta_wait(r, &t) == 0;
}

static void grow_first(struct run *r)
{
	struct tl_op t = { 0 };

	r->obj[0].grow_to = VOL_SECTORS * 2;
	store_vol_resize(r->pool, r->obj[0].name, r->obj[0].grow_to, tl_done, &t);
	if (meta_wait(r, &t) == 0)
		r->obj[0].sectors = r->obj[0].grow_to;
}

/* Snapshots named snap of vols[0..n), one or a group: each takes its
 * volume's acknowledged contents (nothing is in flight on them). Once the
 * snapshot is durable, so is everything it holds: the volumes' earlier
 * writes are durable too. */
static void make_snapshots(struct run *r, const int *vols, int n, const char *snap)
{
	const char *names[4];
	int made[4];
	struct tl_op t = { 0 };
	char full[64];

	if (r->nobjs + n > MAX_OBJS)
		return;
	for (int i = 0; i < n; i++)
		drain(r, vols[i]);
	if (r->failed)
		return;
	for (int i = 0; i < n; i++) {
		const struct obj *v = &r->obj[vols[i]];

		names[i] = v->name;
		snprintf(full, sizeof(full), "%s@%s", v->name, snap);
		made[i] = obj_new(r, full, true, vols[i], false, v->sectors);
		snprintf(r->obj[made[i]].snap, sizeof(r->obj[made[i]].snap), "%s", snap);
		memcpy(r->obj[made[i]].cur, v->cur, sizeof(v->cur));
		r->obj[made[i]].group = n > 1 ? (int)r->groups + 1 : 0;
	}
	if (n > 1) {
		r->groups++;
		r->n_group++;
		store_snap_create_group(r->pool, names, (size_t)n, snap, tl_done, &t);
	} else {
		r->n_snap++;
		store_snap_create(r->pool, names[0], snap, tl_done, &t);
	}
	if (meta_wait(r, &t))
		return;
	for (int i = 0; i < n; i++) {
		obj_opened(r, made[i]);
		for (int j = 0; j < r->nops; j++)
			if (r->ops[j].obj == vols[i] && r->ops[j].state == OP_DONE)
				r->ops[j].state = OP_DURABLE;
	}
}

/* A usable snapshot of volume v, or -1. */
static int snapshot_of(const struct run *r, int v)
{
	for (int s = 0; s < r->nobjs; s++)
		if (r->obj[s].snapshot && r->obj[s].of == v && usable(r, s))
			return s;
	return -1;
}

static void do_snapshot(struct run *r, bool group)
{
	int vols[3], n = 0, want = group ? 2 + (int)tl_rand_below(&r->rng, 2) : 1;
	char snap[16];

	for (int tries = 0; tries < 8 && n < want; tries++) {
		int v = pick(r, false);
		bool dup = false;

		for (int i = 0; i < n; i++)
			dup |= vols[i] == v;
		if (v >= 0 && !dup)
			vols[n++] = v;
	}
	if (n < want)
		return;
	snprintf(snap, sizeof(snap), "%s%u", group ? "g" : "s", r->gen++);
	make_snapshots(r, vols, n, snap);
}

static void do_clone(struct run *r, int s)
{
	char name[16];
	struct op *o;
	int c;

	if (s < 0 || r->nops == MAX_OPS)
		return;
	snprintf(name, sizeof(name), "c%u", r->gen++);
	c = obj_new(r, name, false, s, tl_rand_below(&r->rng, 2), r->obj[s].sectors);
	if (c < 0)
		return;
	/* its start: there whenever the clone is */
	o = op_new(r, c, K_SET, 0, r->obj[s].sectors);
	o->creates = true;
	memcpy(o->vals, r->obj[s].cur, o->n * sizeof(*o->vals));
	r->n_clone++;
	store_vol_clone(r->pool, r->obj[s].name, name, r->obj[c].write_back, op_done, o);
	if (meta_wait(r, &o->t) == 0)
		obj_opened(r, c);
}

static void do_rollback_to(struct run *r, int s)
{
	struct op *o;
	int v;

	if (s < 0)
		return;
	v = r->obj[s].of;
	if (!usable(r, v))
		return;
	drain(r, v);
	if (r->failed)
		return;
	o = op_new(r, v, K_SET, 0, r->obj[v].sectors);
	if (!o)
		return;
	/* its size stays; past the snapshot's end it reads zeros */
	memcpy(o->vals, r->obj[s].cur, r->obj[s].sectors * sizeof(*o->vals));
	r->n_rollback++;
	store_snap_rollback(r->pool, r->obj[v].name, r->obj[s].snap, op_done, o);
	meta_wait(r, &o->t);
}

static void do_rollback(struct run *r)
{
	do_rollback_to(r, pick(r, true));
}

static int delete_obj(struct run *r, int obj)
{
	struct obj *o = &r->obj[obj];
	struct tl_op t = { 0 };

	drain(r, obj);
	store_vol_close(o->h);
	o->h = NULL;
	o->delete_issued = true;
	r->n_del++;
	if (o->snapshot)
		store_snap_delete(r->pool, r->obj[o->of].name, o->snap, tl_done, &t);
	else
		store_vol_delete(r->pool, o->name, tl_done, &t);
	if (meta_wait(r, &t))
		return -1;
	o->delete_acked = true;
	return 0;
}

/* A volume with snapshots goes after them; its clones stay. */
static void delete_volume(struct run *r, int v)
{
	if (!usable(r, v) || r->obj[v].snapshot || r->obj[v].base)
		return;
	for (int s = 0; s < r->nobjs; s++)
		if (r->obj[s].snapshot && r->obj[s].of == v && usable(r, s) && delete_obj(r, s))
			return;
	delete_obj(r, v);
}

static void do_meta(struct run *r)
{
	unsigned k = (unsigned)tl_rand_below(&r->rng, 12);
	int live = 0;

	for (int o = 0; o < r->nobjs; o++)
		live += usable(r, o);
	if (live > 14)
		k = 6 + k % 6;          /* too many: delete something */
	if (k < 3)
		do_snapshot(r, false);
	else if (k < 4)
		do_snapshot(r, true);
	else if (k < 6)
		do_clone(r, pick(r, true));
	else if (k < 8)
		do_rollback(r);
	else if (k < 10) {
		int s = pick(r, true);

		if (s >= 0)
			delete_obj(r, s);
	} else {
		delete_volume(r, pick(r, false));
	}
}

static void workload(struct run *r, uint64_t seed)
{
	r->rng = seed;
	for (int step = 0; step < 200; step++) {
		int k = 1 + (int)tl_rand_below(&r->rng, 6);
		struct tl_op ck = { 0 };
		bool want_ck = tl_rand_below(&r->rng, 25) == 0;
		bool want_meta = tl_rand_below(&r->rng, 5) == 0;

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
		if (!r->failed) {
			/* each kind at least once, whatever the seed */
			if (step == 20)
				make_snapshots(r, (int[]){ 0, 1, 2 }, 3, "cg");
			if (step == 30)
				do_rollback_to(r, snapshot_of(r, 1));
			if (step == 40)
				create_late(r);
			if (step == 60 && usable(r, 3))
				make_snapshots(r, (int[]){ 3 }, 1, "early");
			if (step == 65)
				do_clone(r, snapshot_of(r, 3));
			if (step == 110)
				grow_first(r);
			if (step == 150)
				put_meta(r);
			if (step == 170)
				delete_volume(r, 3);    /* after its snapshots; its clones stay */
			if (want_meta && step > 10 && !r->failed)
				do_meta(r);
		}
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
		.read_cache_bytes = 1u << 20,
	};

	return store_pool_open(loop, &o, out);
}

static void run_setup(struct run *r, struct crash_backend *cb)
{
	static const char *names[3] = { "wt0", "wb1", "wt2" };

	r->loop = ev_loop_new(EVFLAG_AUTO);
	r->cb = cb;
	assert_int_equal(open_pool(r->loop, cb, &r->pool), 0);
	for (int v = 0; v < 3; v++) {
		int o = obj_new(r, names[v], false, -1, v == 1, VOL_SECTORS);

		r->obj[o].base = true;
		assert_int_equal(tl_vol_create(r->loop, r->pool, names[v], VOL_SECTORS,
		                               r->obj[o].write_back), 0);
		obj_opened(r, o);
	}
	/* late3's place: created at step 40 */
	obj_new(r, "late3", false, -1, false, VOL_SECTORS);
	r->obj[3].create_issued = false;
}

static void run_teardown(struct run *r)
{
	for (int o = 0; o < r->nobjs; o++)
		if (r->obj[o].h)
			store_vol_close(r->obj[o].h);
	tl_pool_close(r->loop, r->pool);
	for (int i = 0; i < r->nops; i++)
		free(r->ops[i].buf);
	ev_loop_destroy(r->loop);
}

/* What the checks used: the ops' tokens and the index of them. */
static void run_free(struct run *r)
{
	if (!r)
		return;
	for (int i = 0; i < r->nops; i++)
		free(r->ops[i].vals);
	free(r);
}

static bool op_durable(const struct op *o)
{
	return o->state == OP_DURABLE || o->creates;
}

/* For each object and sector, the ops that cover it, in issue order. */
static void index_build(struct run *r)
{
	int *at = malloc(MAX_SECTORS * sizeof(*at));

	for (int obj = 0; obj < r->nobjs; obj++) {
		int *off = calloc(MAX_SECTORS + 1, sizeof(*off)), *ops;

		for (int i = 0; i < r->nops; i++)
			for (uint64_t s = r->ops[i].lba; r->ops[i].obj == obj &&
			     s < r->ops[i].lba + r->ops[i].n; s++)
				off[s + 1]++;
		for (int s = 0; s < MAX_SECTORS; s++)
			off[s + 1] += off[s];
		ops = malloc(((size_t)off[MAX_SECTORS] + 1) * sizeof(*ops));
		memcpy(at, off, MAX_SECTORS * sizeof(*at));
		for (int i = 0; i < r->nops; i++)
			for (uint64_t s = r->ops[i].lba; r->ops[i].obj == obj &&
			     s < r->ops[i].lba + r->ops[i].n; s++)
				ops[at[s]++] = i;
		r->cov_off[obj] = off;
		r->cov_ops[obj] = ops;
	}
	free(at);
}

static void index_free(struct run *r)
{
	for (int obj = 0; obj < r->nobjs; obj++) {
		free(r->cov_off[obj]);
		free(r->cov_ops[obj]);
	}
}

/* Is value (0 or a token) allowed for this sector after the crash? Leaves
 * out op skip (-1: none). */
static bool sector_allowed(const struct run *r, int obj, uint64_t lba, long value, int skip)
{
	const int *ops = r->cov_ops[obj] + r->cov_off[obj][lba];
	int n = r->cov_off[obj][lba + 1] - r->cov_off[obj][lba], last_durable = -1;

	for (int k = 0; k < n; k++)
		if (ops[k] != skip && op_durable(&r->ops[ops[k]]))
			last_durable = k;
	if (last_durable < 0 && value == 0)
		return true;
	if (last_durable >= 0 && value == op_value(r, &r->ops[ops[last_durable]], lba))
		return true;
	for (int k = last_durable + 1; k < n; k++)
		if (ops[k] != skip && value == op_value(r, &r->ops[ops[k]], lba))
			return true;
	return false;
}

/* What a failure report needs: the history of one sector. */
static void explain(const struct run *r, int obj, uint64_t lba)
{
	static const char *kinds[] = { "write", "unmap", "copy", "set" };
	static const char *states[] = { "issued", "done", "durable", "failed" };
	const int *ops = r->cov_ops[obj] + r->cov_off[obj][lba];
	int n = r->cov_off[obj][lba + 1] - r->cov_off[obj][lba];

	fprintf(stderr, "%s sector %" PRIu64 ": %d ops\n", r->obj[obj].name, lba, n);
	for (int k = 0; k < n; k++) {
		const struct op *o = &r->ops[ops[k]];

		fprintf(stderr, "  op %d: %s %" PRIu64 "+%" PRIu64 "%s, %s (completion %" PRIu64
		        "), leaves %u\n", ops[k], kinds[o->kind], o->lba, o->n,
		        o->fua ? " fua" : "", states[o->state], o->done_at, op_value(r, o, lba));
	}
}

/* An op that was not made durable (a copy or a rollback: one log entry
 * each) took effect on its whole range, or on none of it. */
static void check_atomic(const struct run *r, int obj, const long *val, uint64_t cut)
{
	for (int i = 0; i < r->nops; i++) {
		const struct op *o = &r->ops[i];
		bool all_after = true, all_before = true;

		if (o->obj != obj || o->creates || op_durable(o) ||
		    (o->kind != K_COPY && o->kind != K_SET))
			continue;
		for (uint64_t s = o->lba; s < o->lba + o->n; s++) {
			const int *ops = r->cov_ops[obj] + r->cov_off[obj][s];
			int n = r->cov_off[obj][s + 1] - r->cov_off[obj][s];
			bool later = false;

			for (int k = 0; k < n && !later; k++)
				later = ops[k] > i && val[s] == op_value(r, &r->ops[ops[k]], s);
			all_after &= later || val[s] == op_value(r, o, s);
			all_before &= sector_allowed(r, obj, s, val[s], i);
		}
		if (!all_after && !all_before)
			fail_msg("cut %" PRIu64 ": %s of %s %" PRIu64 "+%" PRIu64 " took effect in part",
			         cut, o->kind == K_COPY ? "a copy" : "a rollback", r->obj[obj].name,
			         o->lba, o->n);
	}
}

static void check_obj(const struct run *r, struct ev_loop *loop, struct store_pool *p,
                      int obj, bool *exists, uint64_t cut)
{
	const struct obj *o = &r->obj[obj];
	struct store_vol_info info;
	struct store_vol *h;
	uint8_t *buf;
	long *val;
	uint64_t n;

	exists[obj] = store_vol_stat(p, o->name, &info) == 0;
	if (!exists[obj]) {
		if (o->base || (o->create_acked && !o->delete_issued))
			fail_msg("cut %" PRIu64 ": acknowledged %s %s is gone", cut,
			         o->snapshot ? "snapshot" : "volume", o->name);
		return;
	}
	if (!o->create_issued || o->delete_acked)
		fail_msg("cut %" PRIu64 ": %s exists but was %s", cut, o->name,
		         o->delete_acked ? "deleted" : "never created");
	if (info.snapshot != o->snapshot)
		fail_msg("cut %" PRIu64 ": %s is%s a snapshot", cut, o->name, info.snapshot ? "" : " not");
	if (o->snapshot && (!exists[o->of] || strcmp(info.origin, r->obj[o->of].name) != 0))
		fail_msg("cut %" PRIu64 ": snapshot %s without its volume", cut, o->name);
	if (!o->snapshot && o->of >= 0 &&
	    strcmp(info.origin, exists[o->of] ? r->obj[o->of].name : "") != 0)
		fail_msg("cut %" PRIu64 ": clone %s names %s as its origin", cut, o->name, info.origin);
	if (info.sectors != o->sectors && info.sectors != o->grow_to)
		fail_msg("cut %" PRIu64 ": %s has %" PRIu64 " sectors", cut, o->name, info.sectors);
	if (info.sectors < o->sectors)
		fail_msg("cut %" PRIu64 ": %s lost its acknowledged growth", cut, o->name);
	n = info.sectors;
	buf = malloc(n * 512);
	val = calloc(n, sizeof(*val));
	assert_int_equal(store_vol_open(p, o->name, &h), 0);
	assert_int_equal(tl_read(loop, h, 0, buf, n * 512), 0);
	for (uint64_t s = 0; s < n; s++) {
		val[s] = sector_decode(buf + s * 512, r);
		/* a snapshot holds exactly its point in time */
		if (val[s] < 0 || (o->snapshot ? val[s] != o->cur[s]
		                                 : !sector_allowed(r, obj, s, val[s], -1))) {
			explain(r, o->snapshot ? o->of : obj, s);
			fail_msg("cut %" PRIu64 ": %s sector %" PRIu64 " holds %ld, not allowed",
			         cut, o->name, s, val[s]);
		}
	}
	if (!o->snapshot)
		check_atomic(r, obj, val, cut);
	store_vol_close(h);
	free(val);
	free(buf);
}

/* Objects in creation order: a snapshot after its volume, a clone after
 * its snapshot, so exists[] is known for what each one names. */
static void check_objects(const struct run *r, struct ev_loop *loop, struct store_pool *p,
                          uint64_t cut)
{
	bool exists[MAX_OBJS] = { false };

	for (int o = 0; o < r->nobjs; o++)
		check_obj(r, loop, p, o, exists, cut);
	/* a group snapshot is all there or not at all (unless a member went) */
	for (unsigned g = 1; g <= r->groups; g++) {
		int there = 0, members = 0;
		bool deleted = false;

		for (int o = 0; o < r->nobjs; o++)
			if (r->obj[o].group == (int)g) {
				members++;
				there += exists[o];
				deleted |= r->obj[o].delete_issued;
			}
		if (!deleted && there != 0 && there != members)
			fail_msg("cut %" PRIu64 ": %d of the %d snapshots of a group survived",
			         cut, there, members);
	}
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
	assert_int_equal(store_vol_open(*pp, "wt2", &h), 0);
	assert_int_equal(tl_write(loop, h, 8, w, sizeof(w), 0), 0);
	store_vol_close(h);
	assert_int_equal(tl_pool_close(loop, *pp), 0);
	assert_int_equal(open_pool(loop, cb, pp), 0);
	assert_int_equal(store_vol_open(*pp, "wt2", &h), 0);
	assert_int_equal(tl_read(loop, h, 8, rb, sizeof(rb)), 0);
	assert_memory_equal(w, rb, sizeof(w));
	store_vol_close(h);
}

static void check_after_cut(const struct run *r, struct crash_backend *cb, uint64_t seed,
                            uint64_t cut)
{
	uint64_t trng = seed ^ (cut * 0x9e3779b97f4a7c15ull);
	struct crash_backend *cb2 = crash_backend_after_cut(cb, &trng);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_pool *p;
	int rc = open_pool(loop, cb2, &p);

	if (rc)
		fail_msg("cut %" PRIu64 ": pool does not reopen: %s", cut, store_strerror(rc));
	check_objects(r, loop, p, cut);
	check_meta(r, p, cut);
	check_usable(loop, cb2, &p);
	assert_int_equal(tl_pool_close(loop, p), 0);
	ev_loop_destroy(loop);
	crash_backend_free(cb2);
}

static void test_crash_every_cut_point(void **state)
{
	uint64_t seed = tl_seed("crash");
	uint64_t cut;
	struct run *r = NULL;

	(void)state;
	tl_log_quiet = true;    /* every cut fails the pool on purpose */
	for (cut = 1;; cut++) {
		struct crash_backend *cb = crash_backend_create(POOL_BYTES, NULL);
		bool fired;

		run_free(r);
		r = calloc(1, sizeof(*r));
		run_setup(r, cb);
		crash_backend_arm(cb, cut);
		workload(r, seed);
		fired = crash_backend_fired(cb);
		run_teardown(r);
		/* several media states per cut: which unflushed writes survive */
		index_build(r);
		for (uint64_t img = 0; fired && img < IMAGES_PER_CUT; img++)
			check_after_cut(r, cb, seed + img, cut);
		index_free(r);
		crash_backend_free(cb);
		if (!fired)
			break;
	}
	printf("crash: %" PRIu64 " cut points, %d media states each, checked; seed %" PRIu64 "\n",
	       cut - 1, IMAGES_PER_CUT, seed);
	printf("crash: the workload: %d operations, %u snapshots, %u group snapshots, %u clones, "
	       "%u rollbacks, %u copies, %u deletes\n", r->nops, r->n_snap, r->n_group,
	       r->n_clone, r->n_rollback, r->n_copy, r->n_del);
	run_free(r);
	assert_true(cut > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_every_cut_point),
	};

#ifdef __GLIBC__
	/* Every cut opens pools (8 MiB log buffers) and backends (16 MiB
	 * images) by the hundred: keep that memory in the heap for the next
	 * one, not mapped and faulted in afresh each time (a third of the
	 * run time otherwise). */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif

	return cmocka_run_group_tests(tests, NULL, NULL);
}

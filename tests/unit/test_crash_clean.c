/* tests/unit/test_crash_clean.c: power cuts while the segment cleaner runs.
 *
 * A 16 MiB pool of 256 KiB segments on the crash backend holds a volume v
 * (write-through), its snapshot v@s and a clone c of that (write-back): one
 * copy of v's data, shared three ways until it diverges. Random 4 KiB
 * overwrites of four times the pool go to v's first half and to a corner of
 * c in v's second half, in rounds of three kinds: both, three to one; a
 * hot spot of v, so that the log's newest segments die young; c alone,
 * with no FUA and rare flushes, so that most records in the log are not
 * flushed. A snapshot c@t comes after round 4 and goes after round 10. Live
 * data peaks at about 60% of the pool: the cleaner runs all the time,
 * moving data that one, two or three of them share.
 *
 * Unlike test_crash, the workload runs once. The backend's trace hook shows
 * each bio as it is submitted and just before it takes effect; at chosen
 * moments the test builds what a power cut then would leave (everything
 * flushed; each completed unflushed write and each write still in flight
 * whole, lost or torn sector by sector), opens a pool on that image with a
 * loop of its own and checks it, while the run waits:
 *   - the pool opens, and store_pool_check finds no problem;
 *   - every block of v and c reads its last durable version (write-through:
 *     acknowledged; write-back: acknowledged before a flush, a FUA or a
 *     snapshot that completed) or a version of that block written after
 *     it, acknowledged or still in flight; never another block's, never an
 *     older one, never garbage;
 *   - v@s, and c@t when it is there, read exactly their point in time; c@t
 *     is there if its creation was acknowledged and its deletion not yet
 *     issued, and is not if it was never issued or its deletion was
 *     acknowledged;
 *   - used_bytes is exactly the distinct data the volumes read: nothing the
 *     cleaner copied counts twice, nothing it moved drops out;
 *   - the recovered pool takes new writes and keeps them across a clean
 *     restart; at times enough of them that its cleaner must run, and then
 *     power goes again and they must all be there.
 *
 * Cut points are picked at random among the moments just before a bio takes
 * effect, densely inside cleaning steps (victim read and copies in flight;
 * copies written with the MOVE not yet durable; just after the MOVE) and
 * while checkpoints are written, sparsely elsewhere. The trace also tells
 * when a write goes over log records that a replay from the durable
 * checkpoint would walk, or over a victim whose MOVE has not run: a correct
 * store never does that, and while the damage lasts every moment is a cut
 * point. The test prints its seed and how many cut points fell where;
 * SLUICE_SEED replays a run exactly.
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

#include "store/format.h"
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define POOL_BYTES   (16ull << 20)
#define SEG_BYTES    (256u << 10)
#define BLK          4096u
#define BLK_SECT     (BLK / STORE_SECTOR)
#define V_BLOCKS     1280u              /* 5 MiB of the 15 MiB of segments */
#define V_HOT        (V_BLOCKS / 2)     /* v's overwrites; the rest stays shared */
#define C_LO         (V_BLOCKS * 3 / 4) /* c's overwrites: [C_LO, C_LO + C_HOT) */
#define C_HOT        192u
#define V_SPOT       48u                /* a hot spot of v: its segments die young */
#define QD           32
#define ROUNDS       16
#define ROUND_WRITES ((uint32_t)(POOL_BYTES * 4 / BLK / ROUNDS))
#define FILL_BLOCKS  64                 /* blocks per write of the first fill */
#define MAX_G        (V_BLOCKS + ROUNDS * ROUND_WRITES + 64)
#define NEW_G        0x80000000u        /* versions written after a cut */
#define FLUSH_EVERY  48                 /* c's completions between flushes */
#define FLUSH_RARELY 512                /* the same when c alone is written */
#define NFLUSH       4
#define MAX_INFL     64
#define NSEGS        ((uint32_t)((POOL_BYTES - FMT_DATA_OFF) / SEG_BYTES))
#define HEAVY_EVERY  10                 /* media states between heavy uses... */
#define HEAVY_WRITES 384                /* ...of 1.5 MiB: the cleaner must run */
#define REOPEN_EVERY 3                  /* media states between clean restarts */
#define CKPT_LOG_BYTES (4u << 20)       /* a long log tail: the durable checkpoint
                                         * needs segments for longer */

_Static_assert(C_LO + C_HOT <= V_BLOCKS && V_HOT <= C_LO, "c's corner is v's cold half");
_Static_assert(QD < V_SPOT && QD < C_HOT, "a free block for every write");
_Static_assert(V_BLOCKS % 7 != 0, "new writes after a cut go to distinct blocks");

enum { O_V, O_S, O_C, O_T, NOBJ };

/* What a round writes: v's hot half and c's corner, three to one; or v's
 * hot spot and c's corner, so the log's newest segments die young; or c
 * alone, write-back, so most records in the log are not flushed. */
enum mode { M_MIXED, M_SPOT, M_CLONE };
static const enum mode round_mode[] = {
	M_MIXED, M_MIXED, M_MIXED, M_SPOT, M_MIXED, M_CLONE, M_MIXED, M_SPOT,
	M_CLONE, M_MIXED, M_MIXED, M_SPOT, M_CLONE, M_MIXED, M_SPOT, M_MIXED,
};

/* What a bio is, told from its offset and bytes. */
enum bio_class { C_READ, C_FLUSH, C_LOG, C_MOVE, C_COLD, C_PAYLOAD, C_ROOT };

/* Where a cut point falls. */
enum cut_cat {
	CAT_COPYING, CAT_COPIED, CAT_AFTER_MOVE, CAT_HAZARD, CAT_OTHER, NCAT
};
static const char *const cat_name[NCAT] = {
	"victim read or copies in flight", "copies written, MOVE not yet durable",
	"just after the MOVE", "needed data written over (a store bug)", "elsewhere",
};
/* Chance (per mille) that a point of each category becomes a cut point;
 * a point while a checkpoint is being written gets at least CKPT_PER_MILLE. */
static const unsigned cat_per_mille[NCAT] = { 100, 300, 300, 1000, 100 };
#define CKPT_PER_MILLE 250

enum clean_state { CS_IDLE, CS_COPYING, CS_COPIED };
enum ckpt_state { CK_IDLE, CK_WRITING, CK_DONE };

struct obj {
	const char *name;
	bool        snapshot, write_back;
	bool        create_issued, create_acked, delete_issued, delete_acked;
	uint32_t    dur[V_BLOCKS];      /* durable version; a snapshot's exact contents */
	uint32_t    ack[V_BLOCKS];      /* newest acknowledged */
	uint32_t    iss[V_BLOCKS];      /* newest issued */
	uint8_t     busy[V_BLOCKS];     /* a write in flight */
	struct store_vol *h;
};

struct run;

struct slot {
	struct run  *r;
	int          obj;
	uint32_t     b, g;
	bool         fua;
	struct iovec iov;
	uint8_t      buf[BLK];
};

struct flush {
	struct run *r;
	bool        busy;
	uint32_t    snap[V_BLOCKS];     /* c's acknowledged versions when it was issued */
};

struct infl {
	const struct store_bio *b;
	enum bio_class cls;
};

struct run {
	uint64_t           seed, rng, cut_rng;
	struct ev_loop    *loop;
	struct store_pool *pool;
	struct crash_backend *cb;
	struct obj         obj[NOBJ];
	uint32_t           next_g;
	uint8_t           *wobj;        /* per version: the object written */
	/* the writer */
	struct slot        slot[QD];
	struct flush       flush[NFLUSH];
	uint64_t           left;
	enum mode          mode;
	int                inflight;
	uint32_t           c_acked;
	/* what the backend is doing */
	struct infl        infl[MAX_INFL];
	int                ninfl;
	enum clean_state   clean;
	int                cold_pending;
	bool               after_move;  /* a MOVE ran; no bio since */
	/* Hazards: a write over log records that a replay from the durable
	 * checkpoint would walk, or over a victim whose MOVE has not run. A
	 * correct store never makes one; while one lasts, every point is cut. */
	uint64_t           runs;        /* bios run so far */
	uint64_t           ckpt_began;  /* when the running checkpoint was captured */
	uint64_t           durable_capture; /* ... and the durable one */
	uint64_t           log_run[NSEGS];  /* when a log record last went there */
	uint32_t           log_end[NSEGS];  /* where the last one ends (bytes) */
	uint32_t           victim;      /* the cleaner's, until its MOVE runs */
	bool               victim_read; /* its read ran ... */
	uint32_t           step_colds;  /* ... and the copies that followed */
	uint64_t           hazard_at, hazards;
	bool               hazard;
	enum ckpt_state    ckpt;
	bool               cutting;
	/* cut points */
	uint32_t           ncuts, cuts[NCAT], inside_cuts, ckpt_cuts, images;
	uint64_t           points[NCAT], ckpt_points;
	uint64_t           moves_seen, peak_used;
	uint32_t          *seen;        /* distinct versions read: stamp per version */
	uint32_t           stamp;
	uint32_t           got[V_BLOCKS]; /* v as read after the cut */
	uint32_t           heavy, reopened;
};

/* ---- block contents ----------------------------------------------------- */

/* Block b at version g: every 8 bytes say which, so a block that is
 * another's, older, torn or garbage never passes for the right one. */
static void block_fill(uint8_t *buf, uint32_t b, uint32_t g)
{
	uint64_t key = (uint64_t)b << 32 | g;

	for (size_t i = 0; i < BLK / 8; i++) {
		uint64_t x = key ^ (i * 0x9e3779b97f4a7c15ull);

		memcpy(buf + 8 * i, &x, 8);
	}
}

/* The version block b holds: 0 for zeros, -1 for anything not written
 * there whole. */
static long block_decode(const uint8_t *buf, uint32_t b)
{
	uint64_t key, x;

	memcpy(&key, buf, 8);
	if (key == 0) {
		for (size_t i = 0; i < BLK; i++)
			if (buf[i])
				return -1;
		return 0;
	}
	if ((uint32_t)(key >> 32) != b)
		return -1;
	for (size_t i = 1; i < BLK / 8; i++) {
		memcpy(&x, buf + 8 * i, 8);
		if (x != (key ^ (i * 0x9e3779b97f4a7c15ull)))
			return -1;
	}
	return (long)(uint32_t)key;
}

/* ---- the workload ------------------------------------------------------- */

static void slot_issue(struct slot *s);

static void flush_done(void *arg, int err)
{
	struct flush *f = arg;
	struct run *r = f->r;
	struct obj *c = &r->obj[O_C];

	if (err)
		fail_msg("a flush failed: %s", store_strerror(err));
	for (uint32_t b = 0; b < V_BLOCKS; b++)
		if (f->snap[b] > c->dur[b])
			c->dur[b] = f->snap[b];
	f->busy = false;
	r->inflight--;
}

static void flush_issue(struct run *r)
{
	for (int i = 0; i < NFLUSH; i++) {
		struct flush *f = &r->flush[i];

		if (f->busy)
			continue;
		f->busy = true;
		memcpy(f->snap, r->obj[O_C].ack, sizeof(f->snap));
		r->inflight++;
		store_vol_flush(r->obj[O_C].h, flush_done, f);
		return;
	}
}

static void slot_done(void *arg, int err)
{
	struct slot *s = arg;
	struct run *r = s->r;
	struct obj *o = &r->obj[s->obj];

	if (err) {
		struct store_pool_stats st;

		store_pool_get_stats(r->pool, &st);
		fail_msg("a write to %s failed with no power cut: %s (used %" PRIu64 " KiB, %"
		         PRIu64 " of %" PRIu64 " segments free, %" PRIu64 " cleaned); seed %" PRIu64,
		         o->name, store_strerror(err), st.used_bytes >> 10, st.free_segments,
		         st.segments, st.cleaned_segments, r->seed);
	}
	r->inflight--;
	o->busy[s->b] = 0;
	o->ack[s->b] = s->g;
	if (!o->write_back || s->fua)
		o->dur[s->b] = s->g;
	if (s->obj == O_C && ++r->c_acked % (r->mode == M_CLONE ? FLUSH_RARELY : FLUSH_EVERY) == 0)
		flush_issue(r);
	slot_issue(s);
}

/* The next write, as the round's mode says; one write per block at a
 * time. */
static void slot_issue(struct slot *s)
{
	struct run *r = s->r;
	struct obj *o;
	uint32_t lo, n, b;

	if (r->left == 0)
		return;
	r->left--;
	s->obj = r->mode == M_CLONE || tl_rand_below(&r->rng, 4) == 0 ? O_C : O_V;
	o = &r->obj[s->obj];
	lo = s->obj == O_V ? 0 : C_LO;
	n = s->obj == O_C ? C_HOT : r->mode == M_SPOT ? V_SPOT : V_HOT;
	b = lo + (uint32_t)tl_rand_below(&r->rng, n);
	while (o->busy[b])
		b = lo + (b - lo + 1) % n;
	s->b = b;
	s->g = r->next_g++;
	assert_true(s->g < MAX_G);
	s->fua = s->obj == O_C && r->mode != M_CLONE && tl_rand_below(&r->rng, 8) == 0;
	r->wobj[s->g] = (uint8_t)s->obj;
	o->busy[b] = 1;
	o->iss[b] = s->g;
	block_fill(s->buf, b, s->g);
	s->iov = (struct iovec){ .iov_base = s->buf, .iov_len = BLK };
	r->inflight++;
	store_vol_write(o->h, (uint64_t)b * BLK_SECT, &s->iov, 1, s->fua ? STORE_WRITE_FUA : 0,
	                slot_done, s);
}

/* n random writes, QD at a time, and c flushed now and then. */
static void write_round(struct run *r, enum mode mode, uint64_t n)
{
	r->mode = mode;
	r->left = n;
	for (int i = 0; i < QD; i++) {
		r->slot[i].r = r;
		slot_issue(&r->slot[i]);
	}
	tl_wait_count(r->loop, &r->inflight);
}

/* The whole of v, FILL_BLOCKS a write: every block a version of its own. */
static void fill_v(struct run *r)
{
	struct obj *v = &r->obj[O_V];
	uint8_t *buf = malloc((size_t)FILL_BLOCKS * BLK);

	for (uint32_t b = 0; b < V_BLOCKS; b += FILL_BLOCKS) {
		for (uint32_t i = 0; i < FILL_BLOCKS; i++) {
			uint32_t g = r->next_g++;

			r->wobj[g] = O_V;
			v->dur[b + i] = v->ack[b + i] = v->iss[b + i] = g;
			block_fill(buf + (size_t)i * BLK, b + i, g);
		}
		assert_int_equal(tl_write(r->loop, v->h, (uint64_t)b * BLK_SECT, buf,
		                          (size_t)FILL_BLOCKS * BLK, 0), 0);
	}
	free(buf);
}

static void obj_init(struct run *r, int o, const char *name, bool snapshot, bool wb)
{
	r->obj[o].name = name;
	r->obj[o].snapshot = snapshot;
	r->obj[o].write_back = wb;
}

/* A copy of another's contents: a snapshot's or a clone's start. */
static void obj_copy(struct run *r, int to, const uint32_t *from)
{
	memcpy(r->obj[to].dur, from, sizeof(r->obj[to].dur));
	memcpy(r->obj[to].ack, from, sizeof(r->obj[to].ack));
	memcpy(r->obj[to].iss, from, sizeof(r->obj[to].iss));
}

static int open_pool(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **out)
{
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .create_bytes = POOL_BYTES,
		.segment_bytes = SEG_BYTES, .checkpoint_secs = 3600, .checkpoint_log_bytes = CKPT_LOG_BYTES,
		.log = tl_log, .read_cache_bytes = 1u << 20,
	};

	return store_pool_open(loop, &o, out);
}

/* ---- what the backend is doing --------------------------------------------- */

static enum bio_class bio_classify(const struct store_bio *b)
{
	const struct fmt_rec_hdr *h;
	const struct fmt_rec_entry *e;
	enum bio_class cls = C_LOG;
	size_t n;

	if (b->op == STORE_BIO_READ)
		return C_READ;
	if (b->op == STORE_BIO_FLUSH || b->iovcnt == 0)
		return C_FLUSH;
	if (b->offset < FMT_DATA_OFF)
		return C_ROOT;
	h = b->iov[0].iov_base;
	if (b->iov[0].iov_len < 4096 || h->magic != FMT_REC_MAGIC)
		return C_PAYLOAD;
	e = (const void *)(h + 1);
	n = (4096 - sizeof(*h)) / sizeof(*e);
	if (h->n_entries < n)
		n = h->n_entries;
	for (size_t i = 0; i < n; i++) {
		if (e[i].type == FMT_ENT_COLD)
			return C_COLD;
		if (e[i].type == FMT_ENT_MOVE)
			cls = C_MOVE;
	}
	return cls;
}

static enum cut_cat cut_category(const struct run *r)
{
	if (r->hazard)
		return CAT_HAZARD;
	if (r->after_move)
		return CAT_AFTER_MOVE;
	switch (r->clean) {
	case CS_COPYING:
		return CAT_COPYING;
	case CS_COPIED:
		return CAT_COPIED;
	default:
		return CAT_OTHER;
	}
}

static void check_cut(struct run *r, enum cut_cat cat);

static void on_trace(void *arg, enum crash_trace_event ev, const struct store_bio *b)
{
	struct run *r = arg;
	enum bio_class cls = C_READ;
	enum ckpt_state was_ckpt = r->ckpt;

	/* a step whose copies did not follow its read at once gave up */
	if (r->victim_read && r->step_colds == 0) {
		r->victim = NSEGS;
		r->victim_read = false;
		r->clean = CS_IDLE;
	}
	if (ev == CRASH_TRACE_SUBMIT) {
		uint32_t seg = b->offset >= FMT_DATA_OFF ?
		               (uint32_t)((b->offset - FMT_DATA_OFF) / SEG_BYTES) : NSEGS;

		assert_true(seg <= NSEGS);
		cls = bio_classify(b);
		if (cls == C_READ) {
			/* only the cleaner reads while the workload runs: its victim */
			r->clean = CS_COPYING;
			r->victim = seg;
			r->victim_read = false;
			r->step_colds = 0;
			return;
		}
		if (cls != C_FLUSH && seg < NSEGS &&
		    (seg == r->victim ||
		     (r->log_run[seg] > r->durable_capture &&
		      b->offset - FMT_DATA_OFF - (uint64_t)seg * SEG_BYTES < r->log_end[seg]))) {
			r->hazard = true;
			r->hazard_at = r->runs;
			r->hazards++;
		}
		if (cls != C_FLUSH) {
			assert_true(r->ninfl < MAX_INFL);
			r->infl[r->ninfl++] = (struct infl){ .b = b, .cls = cls };
		}
		if (cls == C_COLD) {
			r->step_colds++;
			r->cold_pending++;
			r->clean = CS_COPYING;
		}
		if ((cls == C_PAYLOAD || cls == C_ROOT) && r->ckpt != CK_WRITING) {
			r->ckpt = CK_WRITING;
			r->ckpt_began = r->runs;
		}
		return;
	}
	r->runs++;
	if (b->op == STORE_BIO_READ) {
		r->victim_read = true;
		return;
	}
	/* the media as they are just before b takes effect */
	if (r->cutting) {
		enum cut_cat cat = cut_category(r);
		unsigned per_mille = cat_per_mille[cat];
		struct store_pool_stats st;

		store_pool_get_stats(r->pool, &st);
		if (st.used_bytes > r->peak_used)
			r->peak_used = st.used_bytes;
		if (r->ckpt != CK_IDLE && per_mille < CKPT_PER_MILLE)
			per_mille = CKPT_PER_MILLE;
		r->points[cat]++;
		r->ckpt_points += r->ckpt != CK_IDLE;
		if (tl_rand_below(&r->cut_rng, 1000) < per_mille) {
			r->inside_cuts += r->clean != CS_IDLE || r->after_move;
			r->ckpt_cuts += r->ckpt != CK_IDLE;
			check_cut(r, cat);
		}
	}
	for (int i = 0; i < r->ninfl; i++)
		if (r->infl[i].b == b) {
			cls = r->infl[i].cls;
			memmove(&r->infl[i], &r->infl[i + 1], (size_t)(r->ninfl - i - 1) * sizeof(r->infl[0]));
			r->ninfl--;
			break;
		}
	r->after_move = false;
	if (was_ckpt == CK_DONE)
		r->ckpt = CK_IDLE;
	if (cls == C_COLD && --r->cold_pending == 0)
		r->clean = CS_COPIED;
	if (cls == C_MOVE) {
		r->clean = CS_IDLE;
		r->after_move = true;
		r->moves_seen++;
		r->victim = NSEGS;
	}
	if (cls == C_LOG || cls == C_MOVE) {
		uint64_t at = b->offset - FMT_DATA_OFF;
		uint32_t seg = (uint32_t)(at / SEG_BYTES);

		r->log_run[seg] = r->runs;
		r->log_end[seg] = (uint32_t)(at % SEG_BYTES + b->iov[0].iov_len);
	}
	if (cls == C_ROOT) {
		r->ckpt = CK_DONE;
		r->durable_capture = r->ckpt_began;
		if (r->hazard && r->ckpt_began > r->hazard_at)
			r->hazard = false;
	}
}

/* ---- after a cut ------------------------------------------------------------- */

static void report(void *arg, enum store_log_level level, const char *msg)
{
	const struct run *r = arg;

	(void)level;
	fprintf(stderr, "cut %u: store_pool_check: %s\n", r->ncuts, msg);
}

/* Each write in flight onto the media of cb, in submission order: whole,
 * lost or torn. */
static void apply_inflight(const struct run *r, struct crash_backend *cb, uint64_t *rng)
{
	for (int i = 0; i < r->ninfl; i++) {
		const struct store_bio *b = r->infl[i].b;
		uint64_t off = b->offset;
		unsigned how = (unsigned)tl_rand_below(rng, 3);

		for (int k = 0; k < b->iovcnt; k++) {
			const uint8_t *src = b->iov[k].iov_base;
			size_t len = b->iov[k].iov_len;

			if (how == 0)
				crash_backend_poke(cb, off, src, len);
			for (size_t s = 0; how == 2 && s < len; s += STORE_SECTOR)
				if (tl_rand_below(rng, 2))
					crash_backend_poke(cb, off + s, src + s,
					                   len - s < STORE_SECTOR ? len - s : STORE_SECTOR);
			off += len;
		}
	}
}

static bool obj_must_exist(const struct obj *o)
{
	return o->create_acked && !o->delete_issued;
}

static bool obj_must_not_exist(const struct obj *o)
{
	return !o->create_issued || o->delete_acked;
}

static bool version_allowed(const struct run *r, int obj, uint32_t b, long g)
{
	const struct obj *o = &r->obj[obj];

	if (g < 0)
		return false;
	if (o->snapshot)
		return (uint32_t)g == o->dur[b];
	if ((uint32_t)g == o->dur[b])
		return true;
	/* a later write of this block: acknowledged, or issued and in flight */
	return (uint32_t)g > o->dur[b] && (uint32_t)g <= o->iss[b] && g < MAX_G &&
	       r->wobj[g] == obj;
}

/* Reads all of obj and checks each block; counts the distinct versions. */
static uint64_t check_obj(struct run *r, struct ev_loop *loop, struct store_pool *p, int obj,
                          enum cut_cat cat)
{
	const struct obj *o = &r->obj[obj];
	struct store_vol_info info;
	struct store_vol *h;
	uint8_t *buf;
	uint64_t distinct = 0;
	bool exists = store_vol_stat(p, o->name, &info) == 0;

	if (!exists && obj_must_exist(o))
		fail_msg("cut %u (%s): %s is gone; seed %" PRIu64, r->ncuts, cat_name[cat], o->name,
		         r->seed);
	if (exists && obj_must_not_exist(o))
		fail_msg("cut %u (%s): %s exists but was %s; seed %" PRIu64, r->ncuts, cat_name[cat],
		         o->name, o->delete_acked ? "deleted" : "never created", r->seed);
	if (!exists)
		return 0;
	if (info.snapshot != o->snapshot || info.sectors != (uint64_t)V_BLOCKS * BLK_SECT)
		fail_msg("cut %u: %s came back as a %s of %" PRIu64 " sectors", r->ncuts, o->name,
		         info.snapshot ? "snapshot" : "volume", info.sectors);
	buf = malloc(64 * BLK);
	assert_int_equal(store_vol_open(p, o->name, &h), 0);
	for (uint32_t b0 = 0; b0 < V_BLOCKS; b0 += 64) {
		assert_int_equal(tl_read(loop, h, (uint64_t)b0 * BLK_SECT, buf, 64 * BLK), 0);
		for (uint32_t i = 0; i < 64; i++) {
			uint32_t b = b0 + i;
			long g = block_decode(buf + (size_t)i * BLK, b);

			if (!version_allowed(r, obj, b, g))
				fail_msg("cut %u (%s): %s block %u reads version %ld; durable %u, "
				         "acknowledged %u, newest issued %u (by %s); seed %" PRIu64,
				         r->ncuts, cat_name[cat], o->name, b, g, o->dur[b], o->ack[b],
				         o->iss[b], g > 0 && g < MAX_G ? r->obj[r->wobj[g]].name : "-",
				         r->seed);
			if (obj == O_V)
				r->got[b] = (uint32_t)g;
			if (g > 0 && r->seen[g] != r->stamp) {
				r->seen[g] = r->stamp;
				distinct++;
			}
		}
	}
	store_vol_close(h);
	free(buf);
	return distinct;
}

/* v reads exactly want[]. */
static void expect_v(struct run *r, struct ev_loop *loop, struct store_pool *p,
                     const uint32_t *want)
{
	uint8_t *buf = malloc(64 * BLK);
	struct store_vol *h;

	assert_int_equal(store_vol_open(p, "v", &h), 0);
	for (uint32_t b0 = 0; b0 < V_BLOCKS; b0 += 64) {
		assert_int_equal(tl_read(loop, h, (uint64_t)b0 * BLK_SECT, buf, 64 * BLK), 0);
		for (uint32_t i = 0; i < 64; i++) {
			long g = block_decode(buf + (size_t)i * BLK, b0 + i);

			if (g != (long)want[b0 + i])
				fail_msg("cut %u: after new writes and a restart or power cut, v block %u reads "
				         "version %ld, not %u; seed %" PRIu64, r->ncuts, b0 + i, g,
				         want[b0 + i], r->seed);
		}
	}
	store_vol_close(h);
	free(buf);
}

struct new_write {
	int         *pending;
	int          err;
	struct iovec iov;
	uint8_t      buf[BLK];
};

static void new_write_done(void *arg, int err)
{
	struct new_write *w = arg;

	w->err = err;
	(*w->pending)--;
}

/* The recovered pool takes n new writes to v, all at once. */
static void write_new(struct run *r, struct ev_loop *loop, struct store_pool *p, uint32_t n)
{
	struct new_write *w = calloc(n, sizeof(*w));
	uint32_t start = (uint32_t)tl_rand_below(&r->cut_rng, V_BLOCKS);
	struct store_vol *h;
	int pending = (int)n;

	assert_int_equal(store_vol_open(p, "v", &h), 0);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t b = (start + k * 7) % V_BLOCKS;        /* distinct: 7 is prime to V_BLOCKS */

		r->got[b] = NEW_G + r->ncuts * 1024 + k;
		block_fill(w[k].buf, b, r->got[b]);
		w[k].pending = &pending;
		w[k].iov = (struct iovec){ .iov_base = w[k].buf, .iov_len = BLK };
		store_vol_write(h, (uint64_t)b * BLK_SECT, &w[k].iov, 1, 0, new_write_done, &w[k]);
	}
	tl_wait_count(loop, &pending);
	for (uint32_t k = 0; k < n; k++)
		if (w[k].err)
			fail_msg("cut %u: the recovered pool fails a new write: %s; seed %" PRIu64,
			         r->ncuts, store_strerror(w[k].err), r->seed);
	store_vol_close(h);
	free(w);
}

static void check_image(struct run *r, enum cut_cat cat, uint64_t img_no)
{
	uint64_t rng = r->seed ^ ((uint64_t)r->ncuts * 0x9e3779b97f4a7c15ull) ^ (img_no << 56);
	struct crash_backend *cb2 = crash_backend_after_cut(r->cb, &rng);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct store_pool *p;
	struct store_pool_stats st;
	uint64_t distinct = 0;
	bool heavy = r->images % HEAVY_EVERY == 0;
	int rc;

	assert_non_null(cb2);
	apply_inflight(r, cb2, &rng);
	r->images++;
	rc = open_pool(loop, cb2, &p);
	if (rc)
		fail_msg("cut %u (%s): the pool does not open: %s; seed %" PRIu64, r->ncuts,
		         cat_name[cat], store_strerror(rc), r->seed);
	r->stamp++;
	for (int o = 0; o < NOBJ; o++)
		distinct += check_obj(r, loop, p, o, cat);
	rc = store_pool_check(p, report, r);
	if (rc)
		fail_msg("cut %u (%s): store_pool_check finds %d problems; seed %" PRIu64, r->ncuts,
		         cat_name[cat], rc, r->seed);
	store_pool_get_stats(p, &st);
	if (st.used_bytes != distinct * BLK)
		fail_msg("cut %u (%s): used_bytes %" PRIu64 ", but the volumes hold %" PRIu64
		         " distinct blocks (%" PRIu64 " bytes); seed %" PRIu64, r->ncuts,
		         cat_name[cat], st.used_bytes, distinct, distinct * BLK, r->seed);
	/* the recovered pool takes writes, at times enough for the cleaner to
	 * run, and keeps them */
	write_new(r, loop, p, heavy ? HEAVY_WRITES : 8);
	if (heavy) {
		/* and power goes again, with the cleaner busy on the recovered
		 * pool: the acknowledged new writes are all there */
		struct crash_backend *cb3 = crash_backend_after_cut(cb2, &rng);
		struct ev_loop *loop3 = ev_loop_new(EVFLAG_AUTO);
		struct store_pool *p3;

		r->heavy++;
		rc = open_pool(loop3, cb3, &p3);
		if (rc)
			fail_msg("cut %u: after new writes and a second power cut the pool does not "
			         "open: %s; seed %" PRIu64, r->ncuts, store_strerror(rc), r->seed);
		expect_v(r, loop3, p3, r->got);
		rc = store_pool_check(p3, report, r);
		if (rc)
			fail_msg("cut %u: store_pool_check finds %d problems after new writes and a "
			         "second power cut; seed %" PRIu64, r->ncuts, rc, r->seed);
		assert_int_equal(tl_pool_close(loop3, p3), 0);
		ev_loop_destroy(loop3);
		crash_backend_free(cb3);
	} else if (r->images % REOPEN_EVERY == 0) {
		r->reopened++;
		assert_int_equal(tl_pool_close(loop, p), 0);
		rc = open_pool(loop, cb2, &p);
		if (rc)
			fail_msg("cut %u: the recovered pool does not reopen after new writes: %s; "
			         "seed %" PRIu64, r->ncuts, store_strerror(rc), r->seed);
		expect_v(r, loop, p, r->got);
		rc = store_pool_check(p, report, r);
		if (rc)
			fail_msg("cut %u: store_pool_check finds %d problems after new writes and a "
			         "restart; seed %" PRIu64, r->ncuts, rc, r->seed);
	}
	assert_int_equal(tl_pool_close(loop, p), 0);
	ev_loop_destroy(loop);
	crash_backend_free(cb2);
}

/* Power cut now: the run waits while its image is checked. */
static void check_cut(struct run *r, enum cut_cat cat)
{
	/* the riskiest moment gets two media states: which of the MOVE and
	 * the copies (and whatever else is in flight) made it */
	uint64_t images = cat == CAT_COPIED ? 2 : 1;

	r->ncuts++;
	r->cuts[cat]++;
	for (uint64_t i = 0; i < images; i++)
		check_image(r, cat, i);
}

/* ---- the test ------------------------------------------------------------------ */

static void meta(struct run *r, int rc, const char *what)
{
	if (rc)
		fail_msg("%s failed: %s; seed %" PRIu64, what, store_strerror(rc), r->seed);
}

static void test_crash_clean(void **state)
{
	struct run *r = calloc(1, sizeof(*r));
	struct store_pool_stats st;

	(void)state;
	r->seed = tl_seed("crash_clean");
	r->victim = NSEGS;
	r->rng = r->seed;
	r->cut_rng = r->seed * 0x2545f4914f6cdd1dull + 1;
	r->wobj = calloc(MAX_G, 1);
	r->seen = calloc(MAX_G, sizeof(*r->seen));
	r->next_g = 1;
	for (int i = 0; i < NFLUSH; i++)
		r->flush[i].r = r;
	obj_init(r, O_V, "v", false, false);
	obj_init(r, O_S, "v@s", true, false);
	obj_init(r, O_C, "c", false, true);
	obj_init(r, O_T, "c@t", true, false);

	/* v full, its snapshot, a write-back clone of that: all one copy */
	r->loop = ev_loop_new(EVFLAG_AUTO);
	r->cb = crash_backend_create(POOL_BYTES, NULL);
	assert_int_equal(open_pool(r->loop, r->cb, &r->pool), 0);
	r->obj[O_V].create_issued = r->obj[O_V].create_acked = true;
	meta(r, tl_vol_create(r->loop, r->pool, "v", (uint64_t)V_BLOCKS * BLK_SECT, false),
	     "creating v");
	assert_int_equal(store_vol_open(r->pool, "v", &r->obj[O_V].h), 0);
	fill_v(r);
	r->obj[O_S].create_issued = r->obj[O_S].create_acked = true;
	meta(r, tl_snap_create(r->loop, r->pool, "v", "s"), "snapshot v@s");
	obj_copy(r, O_S, r->obj[O_V].ack);
	r->obj[O_C].create_issued = r->obj[O_C].create_acked = true;
	meta(r, tl_vol_clone(r->loop, r->pool, "v@s", "c", true), "clone c");
	obj_copy(r, O_C, r->obj[O_V].ack);
	assert_int_equal(store_vol_open(r->pool, "c", &r->obj[O_C].h), 0);
	meta(r, tl_checkpoint(r->loop, r->pool), "checkpoint");

	/* from here on, power may go at any moment */
	crash_backend_trace(r->cb, on_trace, r);
	r->cutting = true;
	for (int round = 0; round < ROUNDS; round++) {
		write_round(r, round_mode[round % (sizeof(round_mode) / sizeof(round_mode[0]))],
		            ROUND_WRITES);
		if (round == 4) {       /* c@t: holds c's blocks that c then overwrites */
			struct obj *t = &r->obj[O_T], *c = &r->obj[O_C];

			obj_copy(r, O_T, c->ack);
			t->create_issued = true;
			meta(r, tl_snap_create(r->loop, r->pool, "c", "t"), "snapshot c@t");
			t->create_acked = true;
			/* durable with the snapshot: the writes before it are too */
			memcpy(c->dur, c->ack, sizeof(c->dur));
		}
		if (round == 10) {      /* and its space comes back */
			r->obj[O_T].delete_issued = true;
			meta(r, tl_snap_delete(r->loop, r->pool, "c", "t"), "deleting c@t");
			r->obj[O_T].delete_acked = true;
		}
	}
	/* and once more with everything settled */
	check_cut(r, cut_category(r));
	r->cutting = false;
	crash_backend_trace(r->cb, NULL, NULL);

	store_pool_get_stats(r->pool, &st);
	printf("crash_clean: %u cut points (%u media states), %u inside a cleaning step, %u "
	       "while a checkpoint was written; seed %" PRIu64 "\n", r->ncuts, r->images,
	       r->inside_cuts, r->ckpt_cuts, r->seed);
	for (int c = 0; c < NCAT; c++)
		printf("crash_clean:   %-38s %5u cut points of %6" PRIu64 "\n", cat_name[c],
		       r->cuts[c], r->points[c]);
	printf("crash_clean:   %-38s %5u cut points of %6" PRIu64 "\n",
	       "(while a checkpoint was written)", r->ckpt_cuts, r->ckpt_points);
	printf("crash_clean: the run: live data at most %" PRIu64 " KiB of %" PRIu64 " KiB of "
	       "segments (%.0f%%); %" PRIu64 " MiB written by the hosts, %" PRIu64
	       " segments cleaned (%" PRIu64 " MiB copied, %" PRIu64 " MOVE records), %" PRIu64
	       " checkpoints, %" PRIu64 " writes over needed data; after cuts, %u heavy uses "
	       "(then a second power cut) and %u clean restarts\n",
	       r->peak_used >> 10, st.capacity_bytes >> 10,
	       100.0 * (double)r->peak_used / (double)st.capacity_bytes,
	       st.host_write_bytes >> 20, st.cleaned_segments, st.cleaner_write_bytes >> 20,
	       r->moves_seen, st.checkpoints, r->hazards, r->heavy, r->reopened);
	assert_true(st.cleaned_segments >= 100);
	assert_true(r->cuts[CAT_COPYING] >= 20 && r->cuts[CAT_COPIED] >= 20 &&
	            r->cuts[CAT_AFTER_MOVE] >= 20 && r->ckpt_cuts >= 10);

	store_vol_close(r->obj[O_V].h);
	store_vol_close(r->obj[O_C].h);
	assert_int_equal(tl_pool_close(r->loop, r->pool), 0);
	ev_loop_destroy(r->loop);
	crash_backend_free(r->cb);
	free(r->wobj);
	free(r->seen);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_clean),
	};

#ifdef __GLIBC__
	/* pool images and log buffers by the hundred: keep them in the heap */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_store_model.c: the randomized model-based test.
 *
 * Thousands of random operations on volumes, snapshots and clones of a real
 * pool file, through each I/O engine, checked after every step against a
 * plain in-memory copy of every one of them:
 *   - write, read, unmap, grow, write-cache toggle, create and delete of
 *     volumes; flush, checkpoint; clean close and reopen;
 *   - snapshot, consistency-group snapshot, clone, rollback, delete of a
 *     snapshot, delete of a volume after its snapshots (its clones stay);
 *   - copy by reference between volumes, from a snapshot, and overlapping
 *     inside one volume;
 *   - "power cut": the pool file as it is with everything written but no
 *     final checkpoint, reopened, so recovery replays all of the above from
 *     the log.
 * Several reads, writes and copies (and at times a snapshot) are in flight
 * at once, as under an initiator's queue. Reads cover volumes, snapshots and
 * clones; writes to snapshots must fail with -EROFS.
 *
 * Space: every sector written gets a fresh id in the model; snapshots,
 * clones, rollbacks and copies share ids. After every step the pool's
 * used_bytes must be 512 times the number of distinct ids still referenced
 * anywhere, and each one's mapped_sectors and store_vol_unique must match
 * too. store_vol_unique is taken as the store counts it today: sectors whose
 * id is referenced once in all (so data a copy put twice into one volume
 * is not unique, though deleting the volume would free it).
 *
 * Prints its seed; replay a failure with SLUICE_SEED=<seed>.
 * SLUICE_MODEL_OPS sets the length; SLUICE_MODEL_TRACE prints every
 * operation as it is issued.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

#define VOLS         5                  /* slots for volumes and clones */
#define SNAPS        6                  /* slots for snapshots */
#define OBJS         (VOLS + SNAPS)
#define MAX_SECTORS  8192               /* 4 MiB per volume at most */
#define GROUP_MAX    8                  /* operations in flight together */
#define POOL_BYTES   (512ull << 20)

struct model_obj {
	bool      exists;
	bool      snapshot;
	char      name[48];                 /* "v3", "c7", or "v3@s9" */
	char      snap[16];                 /* a snapshot's part after '@' */
	int       of;                       /* a snapshot's volume (slot) */
	char      origin[48];               /* what store_vol_info.origin says */
	unsigned  born;                     /* creation order (snapshot lists) */
	uint64_t  sectors;
	bool      write_back;
	uint8_t  *data;                     /* MAX_SECTORS * 512 */
	uint32_t *ids;                      /* per sector: 0 (hole) or a write's id */
	struct store_vol *h;
};

struct model {
	struct ev_loop    *loop;
	struct store_pool *pool;
	char               path[300];
	enum store_engine  engine;
	uint64_t           rng;
	struct model_obj   obj[OBJS];       /* [0, VOLS): volumes; then snapshots */
	unsigned           step;
	unsigned           gen;             /* names things uniquely */
	unsigned           born;
	uint32_t          *refs;            /* per id: sectors referencing it, anywhere */
	uint32_t           next_id, refs_cap;
	uint64_t           distinct;        /* ids with refs > 0 */
	unsigned           n_snap, n_group, n_clone, n_rollback, n_copy, n_snap_del,
	                   n_vol_del, n_reopen, n_crash;
	uint64_t           replayed;        /* records replayed after the cuts */
	bool               trace;           /* $SLUICE_MODEL_TRACE: print each operation */
};

#define TRACE(m, ...) do { \
		if ((m)->trace) { \
			fprintf(stderr, "step %u: ", (m)->step); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* One operation of a group: its ranges, buffers and completion. */
enum io_kind { IO_READ, IO_WRITE, IO_COPY, IO_SNAP };

struct model_io {
	enum io_kind kind;
	int        slot;                    /* read, write, copy: dst; snap: the volume */
	uint64_t   lba, n;
	int        src;                     /* copy: source slot and lba */
	uint64_t   src_lba;
	int        snap_slot;               /* snap: the new snapshot's slot */
	uint8_t   *buf;
	struct iovec iov[3];
	struct tl_op op;
};

/* ---- the model's space accounting ---------------------------------------- */

static void id_ref(struct model *m, uint32_t id, int delta)
{
	if (!id)
		return;
	if (delta > 0) {
		if (m->refs[id]++ == 0)
			m->distinct++;
	} else {
		assert_true(m->refs[id] > 0);
		if (--m->refs[id] == 0)
			m->distinct--;
	}
}

static uint32_t new_id(struct model *m)
{
	if (m->next_id >= m->refs_cap) {
		uint32_t cap = m->refs_cap ? m->refs_cap * 2 : 1u << 20;

		m->refs = realloc(m->refs, cap * sizeof(*m->refs));
		assert_non_null(m->refs);
		memset(m->refs + m->refs_cap, 0, (cap - m->refs_cap) * sizeof(*m->refs));
		m->refs_cap = cap;
	}
	return m->next_id++;
}

/* Sectors [lba, lba+n) of o take ids (NULL: holes) and data (NULL: zeros).
 * Neither may alias o's own arrays. */
static void obj_put(struct model *m, struct model_obj *o, uint64_t lba, uint64_t n,
                    const uint32_t *ids, const uint8_t *data)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t id = ids ? ids[i] : 0;

		id_ref(m, id, +1);
		id_ref(m, o->ids[lba + i], -1);
		o->ids[lba + i] = id;
	}
	if (data)
		memcpy(o->data + lba * 512, data, n * 512);
	else
		memset(o->data + lba * 512, 0, n * 512);
}

/* o takes src[src_lba, +n) at lba, through a copy (src may be o). */
static void obj_copy(struct model *m, struct model_obj *o, uint64_t lba,
                     const struct model_obj *src, uint64_t src_lba, uint64_t n)
{
	uint32_t *ids = malloc(n * sizeof(*ids) + 1);
	uint8_t *data = malloc(n * 512 + 1);

	memcpy(ids, src->ids + src_lba, n * sizeof(*ids));
	memcpy(data, src->data + src_lba * 512, n * 512);
	obj_put(m, o, lba, n, ids, data);
	free(ids);
	free(data);
}

/* A new write's data: a fresh id for every sector. */
static void obj_write(struct model *m, struct model_obj *o, uint64_t lba, uint64_t n,
                      const uint8_t *data)
{
	uint32_t *ids = malloc(n * sizeof(*ids) + 1);

	for (uint64_t i = 0; i < n; i++)
		ids[i] = new_id(m);
	obj_put(m, o, lba, n, ids, data);
	free(ids);
}

static void obj_forget(struct model *m, struct model_obj *o)
{
	obj_put(m, o, 0, MAX_SECTORS, NULL, NULL);
	o->exists = false;
	o->h = NULL;
}

/* ---- the pool --------------------------------------------------------------- */

static int model_open(struct model *m)
{
	struct store_pool_opts o = {
		.path = m->path, .create_bytes = POOL_BYTES, .segment_bytes = 1u << 20,
		.engine = m->engine, .checkpoint_log_bytes = 24ull << 20, .log = tl_log,
		.read_cache_bytes = 256u << 10,  /* ~60 blocks: the read cache evicts all along */
	};
	int rc = store_pool_open(m->loop, &o, &m->pool);

	for (int s = 0; rc == 0 && s < OBJS; s++)
		if (m->obj[s].exists)
			assert_int_equal(store_vol_open(m->pool, m->obj[s].name, &m->obj[s].h), 0);
	return rc;
}

static void model_close(struct model *m)
{
	for (int s = 0; s < OBJS; s++)
		if (m->obj[s].exists)
			store_vol_close(m->obj[s].h);
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

/* ---- checks ------------------------------------------------------------------ */

static void model_check_range(struct model *m, int s, uint64_t lba, uint64_t n)
{
	struct model_obj *o = &m->obj[s];
	uint8_t *buf = malloc(n * 512 + 1);

	assert_int_equal(tl_read(m->loop, o->h, lba, buf, n * 512), 0);
	for (uint64_t i = 0; i < n; i++)
		if (memcmp(buf + i * 512, o->data + (lba + i) * 512, 512) != 0) {
			fprintf(stderr, "step %u: %s sector %" PRIu64 " (of %" PRIu64 "+%" PRIu64
			        ") differs from the model\n", m->step, o->name, lba + i, lba, n);
			fail();
		}
	free(buf);
}

static void model_check_obj(struct model *m, int s)
{
	model_check_range(m, s, 0, m->obj[s].sectors);
}

static void model_check_all(struct model *m)
{
	for (int s = 0; s < OBJS; s++)
		if (m->obj[s].exists)
			model_check_obj(m, s);
}

/* The accounting: the pool's, and each volume's, snapshot's and clone's. */
static void model_check_stats(struct model *m)
{
	struct store_pool_stats st;
	uint64_t vols = 0, snaps = 0;

	store_pool_get_stats(m->pool, &st);
	if (st.used_bytes != m->distinct * 512) {
		fprintf(stderr, "step %u: used_bytes %" PRIu64 ", the model says %" PRIu64 "\n",
		        m->step, st.used_bytes, m->distinct * 512);
		fail();
	}
	for (int s = 0; s < OBJS; s++) {
		struct model_obj *o = &m->obj[s];
		struct store_vol_info vi;
		uint64_t vi_unique = 0;
		uint64_t mapped = 0, unique = 0;

		if (!o->exists)
			continue;
		snaps += o->snapshot;
		vols += !o->snapshot;
		for (uint64_t x = 0; x < o->sectors; x++) {
			mapped += o->ids[x] != 0;
			unique += o->ids[x] != 0 && m->refs[o->ids[x]] == 1;
		}
		store_vol_get_info(o->h, &vi);
		assert_int_equal(store_vol_unique(m->pool, o->name, &vi_unique), 0);
		assert_string_equal(vi.name, o->name);
		assert_string_equal(vi.origin, o->origin);
		assert_int_equal(vi.sectors, o->sectors);
		assert_int_equal(vi.snapshot, o->snapshot);
		if (!o->snapshot)
			assert_int_equal(vi.write_back, o->write_back);
		if (vi.mapped_sectors != mapped || vi_unique != unique) {
			fprintf(stderr, "step %u: %s maps %" PRIu64 " sectors, %" PRIu64
			        " of them unique; the model says %" PRIu64 ", %" PRIu64 "\n",
			        m->step, o->name, vi.mapped_sectors, vi_unique,
			        mapped, unique);
			fail();
		}
	}
	assert_int_equal(st.volumes, vols);
	assert_int_equal(st.snapshots, snaps);
}

/* A volume's snapshots, oldest first, as the store lists them. */
static void model_check_snap_list(struct model *m, int v)
{
	struct store_vol_info list[SNAPS + 1];
	int order[SNAPS], n = 0;

	for (int s = VOLS; s < OBJS; s++)
		if (m->obj[s].exists && m->obj[s].of == v) {
			int at = n++;

			while (at > 0 && m->obj[order[at - 1]].born > m->obj[s].born) {
				order[at] = order[at - 1];
				at--;
			}
			order[at] = s;
		}
	assert_int_equal(store_snap_list(m->pool, m->obj[v].name, list, SNAPS + 1), n);
	for (int i = 0; i < n; i++)
		assert_string_equal(list[i].name, m->obj[order[i]].name);
}

/* ---- picking ------------------------------------------------------------------ */

/* A random existing volume (or clone), snapshot, or either; -1 when none. */
enum pick { PICK_VOL, PICK_SNAP, PICK_ANY };

static int model_pick(struct model *m, enum pick what)
{
	int lo = what == PICK_SNAP ? VOLS : 0, hi = what == PICK_VOL ? VOLS : OBJS;
	int start = lo + (int)tl_rand_below(&m->rng, (uint64_t)(hi - lo));

	for (int i = 0; i < hi - lo; i++) {
		int s = lo + (start - lo + i) % (hi - lo);

		if (m->obj[s].exists)
			return s;
	}
	return -1;
}

static int model_free_slot(struct model *m, bool snapshot)
{
	int lo = snapshot ? VOLS : 0, hi = snapshot ? OBJS : VOLS;
	int start = lo + (int)tl_rand_below(&m->rng, (uint64_t)(hi - lo));

	for (int i = 0; i < hi - lo; i++) {
		int s = lo + (start - lo + i) % (hi - lo);

		if (!m->obj[s].exists)
			return s;
	}
	return -1;
}

static int model_snap_count(const struct model *m, int v)
{
	int n = 0;

	for (int s = VOLS; s < OBJS; s++)
		n += m->obj[s].exists && m->obj[s].of == v;
	return n;
}

/* A random snapshot of volume v; -1 when it has none. */
static int model_pick_snap_of(struct model *m, int v)
{
	int n = model_snap_count(m, v), k;

	if (n == 0)
		return -1;
	k = (int)tl_rand_below(&m->rng, (uint64_t)n);
	for (int s = VOLS; s < OBJS; s++)
		if (m->obj[s].exists && m->obj[s].of == v && k-- == 0)
			return s;
	return -1;
}

/* A random length up to size: small, 4 KiB-aligned or not, sometimes large. */
static uint64_t model_len(struct model *m, uint64_t size)
{
	uint64_t max = tl_rand_below(&m->rng, 8) == 0 ? 2048 : 64;

	return 1 + tl_rand_below(&m->rng, max < size ? max : size);
}

static void model_align(struct model *m, uint64_t *lba, uint64_t *n, uint64_t size)
{
	if (tl_rand_below(&m->rng, 2)) {        /* the common, aligned case */
		*lba &= ~7ull;
		*n = (*n + 7) & ~7ull;
		if (*lba + *n > size)
			*n = size - *lba;
	}
}

static void model_range(struct model *m, int s, uint64_t *lba, uint64_t *n)
{
	uint64_t size = m->obj[s].sectors;

	*n = model_len(m, size);
	*lba = tl_rand_below(&m->rng, size - *n + 1);
	model_align(m, lba, n, size);
}

/* ---- groups of I/O in flight together -------------------------------------- */

static bool ranges_meet(int s1, uint64_t l1, uint64_t n1, int s2, uint64_t l2, uint64_t n2)
{
	return s1 == s2 && l1 < l2 + n2 && l2 < l1 + n1;
}

/* The ranges an operation reads or changes: its own, and a copy's source. */
static bool overlaps(const struct model_io *a, const struct model_io *b)
{
	bool hit = ranges_meet(a->slot, a->lba, a->n, b->slot, b->lba, b->n);

	if (a->kind == IO_COPY)
		hit |= ranges_meet(a->src, a->src_lba, a->n, b->slot, b->lba, b->n);
	if (b->kind == IO_COPY)
		hit |= ranges_meet(a->slot, a->lba, a->n, b->src, b->src_lba, b->n);
	if (a->kind == IO_COPY && b->kind == IO_COPY)
		hit |= ranges_meet(a->src, a->src_lba, a->n, b->src, b->src_lba, b->n);
	return hit;
}

/* A copy by reference: into a volume, from anything, at times from just
 * around the destination in the same volume (overlapping). */
static bool model_pick_copy(struct model *m, struct model_io *o)
{
	struct model_obj *dst, *src;
	uint64_t max;

	o->slot = model_pick(m, PICK_VOL);
	if (o->slot < 0)
		return false;
	o->src = tl_rand_below(&m->rng, 3) == 0 ? o->slot : model_pick(m, PICK_ANY);
	dst = &m->obj[o->slot];
	src = &m->obj[o->src];
	max = dst->sectors < src->sectors ? dst->sectors : src->sectors;
	o->n = model_len(m, max);
	o->lba = tl_rand_below(&m->rng, dst->sectors - o->n + 1);
	if (o->src == o->slot && tl_rand_below(&m->rng, 2)) {
		/* overlapping: the source a little before or after */
		uint64_t d = tl_rand_below(&m->rng, o->n + 1);

		o->src_lba = tl_rand_below(&m->rng, 2) && o->lba >= d ? o->lba - d : o->lba + d;
		if (o->src_lba + o->n > src->sectors)
			o->src_lba = src->sectors - o->n;
	} else {
		o->src_lba = tl_rand_below(&m->rng, src->sectors - o->n + 1);
	}
	if (tl_rand_below(&m->rng, 2)) {
		o->lba &= ~7ull;
		o->src_lba &= ~7ull;
	}
	return true;
}

/* dst = a, or "a@b" (names of the model's objects, which may be dst's
 * neighbours: built apart first). */
static void set_name(char dst[48], const char *a, const char *b)
{
	char tmp[48];

	snprintf(tmp, sizeof(tmp), "%s%s%s", a, b ? "@" : "", b ? b : "");
	memcpy(dst, tmp, sizeof(tmp));
}

/* A new snapshot of volume v in slot ss, as the model sees it. */
static void model_snap_made(struct model *m, int v, int ss, const char *snap)
{
	struct model_obj *so = &m->obj[ss], *vo = &m->obj[v];

	so->exists = true;
	so->snapshot = true;
	so->of = v;
	so->born = m->born++;
	so->sectors = vo->sectors;
	so->write_back = false;
	snprintf(so->snap, sizeof(so->snap), "%s", snap);
	set_name(so->name, vo->name, snap);
	set_name(so->origin, vo->name, NULL);
	obj_put(m, so, 0, vo->sectors, vo->ids, vo->data);
	assert_int_equal(store_vol_open(m->pool, so->name, &so->h), 0);
}

/* Submits a group of non-overlapping reads, writes and copies (and at times
 * a snapshot of a volume nothing else in the group touches) together, then
 * checks each against the model. */
static void model_io_group(struct model *m)
{
	struct model_io io[GROUP_MAX];
	int k = 1 + (int)tl_rand_below(&m->rng, GROUP_MAX), n = 0;
	bool snapped = false;
	char snap[16];

	for (int i = 0; i < k; i++) {
		struct model_io *o = &io[n];
		unsigned r = (unsigned)tl_rand_below(&m->rng, 100);
		bool clash = false;

		memset(o, 0, sizeof(*o));
		o->src = -1;
		if (r < 10) {
			o->kind = IO_COPY;
			if (!model_pick_copy(m, o))
				continue;
		} else if (r < 13 && !snapped) {
			o->kind = IO_SNAP;
			o->slot = model_pick(m, PICK_VOL);
			o->snap_slot = model_free_slot(m, true);
			if (o->slot < 0 || o->snap_slot < 0)
				continue;
			o->n = m->obj[o->slot].sectors;
		} else if (r < 70) {
			o->kind = IO_WRITE;
			o->slot = model_pick(m, PICK_VOL);
			if (o->slot < 0)
				continue;
			model_range(m, o->slot, &o->lba, &o->n);
		} else {
			o->kind = IO_READ;
			o->slot = model_pick(m, PICK_ANY);
			if (o->slot < 0)
				continue;
			model_range(m, o->slot, &o->lba, &o->n);
		}
		for (int j = 0; j < n; j++)
			clash |= overlaps(o, &io[j]);
		if (clash)
			continue;
		if (o->kind == IO_COPY) {
			TRACE(m, "  copy %s %" PRIu64 "+%" PRIu64 " <- %s %" PRIu64, m->obj[o->slot].name,
			      o->lba, o->n, m->obj[o->src].name, o->src_lba);
			store_vol_copy(m->obj[o->slot].h, o->lba, m->obj[o->src].h, o->src_lba,
			               o->n, tl_done, &o->op);
		} else if (o->kind == IO_SNAP) {
			snapped = true;
			snprintf(snap, sizeof(snap), "s%u", m->gen++);
			TRACE(m, "  snapshot %s@%s", m->obj[o->slot].name, snap);
			store_snap_create(m->pool, m->obj[o->slot].name, snap, tl_done, &o->op);
		} else {
			o->buf = malloc(o->n * 512);
			if (o->kind == IO_WRITE)
				model_fill(m, o->buf, o->n * 512);
			/* the buffer over up to three iovecs, cut at sector boundaries */
			uint64_t cut1 = tl_rand_below(&m->rng, o->n + 1);
			uint64_t cut2 = cut1 + tl_rand_below(&m->rng, o->n - cut1 + 1);
			o->iov[0] = (struct iovec){ o->buf, cut1 * 512 };
			o->iov[1] = (struct iovec){ o->buf + cut1 * 512, (cut2 - cut1) * 512 };
			o->iov[2] = (struct iovec){ o->buf + cut2 * 512, (o->n - cut2) * 512 };
			TRACE(m, "  %s %s %" PRIu64 "+%" PRIu64, o->kind == IO_WRITE ? "write" : "read",
			      m->obj[o->slot].name, o->lba, o->n);
			if (o->kind == IO_WRITE)
				store_vol_write(m->obj[o->slot].h, o->lba, o->iov, 3,
				                tl_rand_below(&m->rng, 4) ? 0 : STORE_WRITE_FUA,
				                tl_done, &o->op);
			else
				store_vol_read(m->obj[o->slot].h, o->lba, o->iov, 3, tl_done, &o->op);
		}
		assert_false(o->op.done);
		n++;
	}
	for (int i = 0; i < n; i++) {
		struct model_io *o = &io[i];
		struct model_obj *d = &m->obj[o->slot];

		assert_int_equal(tl_wait(m->loop, &o->op), 0);
		switch (o->kind) {
		case IO_WRITE:
			obj_write(m, d, o->lba, o->n, o->buf);
			break;
		case IO_COPY:
			obj_copy(m, d, o->lba, &m->obj[o->src], o->src_lba, o->n);
			m->n_copy++;
			break;
		case IO_SNAP:
			model_snap_made(m, o->slot, o->snap_slot, snap);
			m->n_snap++;
			break;
		case IO_READ:
			if (memcmp(o->buf, d->data + o->lba * 512, o->n * 512) != 0) {
				fprintf(stderr, "step %u: read of %s %" PRIu64 "+%" PRIu64 " is wrong\n",
				        m->step, d->name, o->lba, o->n);
				fail();
			}
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		if (io[i].kind == IO_WRITE || io[i].kind == IO_COPY)
			model_check_range(m, io[i].slot, io[i].lba, io[i].n);
		if (io[i].kind == IO_SNAP) {
			model_check_obj(m, io[i].snap_slot);
			model_check_snap_list(m, io[i].slot);
		}
		free(io[i].buf);
	}
}

static void model_unmap(struct model *m)
{
	int s = model_pick(m, PICK_VOL);
	uint64_t lba, n, from, len;

	if (s < 0)
		return;
	model_range(m, s, &lba, &n);
	TRACE(m, "unmap %s %" PRIu64 "+%" PRIu64, m->obj[s].name, lba, n);
	assert_int_equal(tl_unmap(m->loop, m->obj[s].h, lba, n), 0);
	obj_put(m, &m->obj[s], lba, n, NULL, NULL);
	from = lba > 8 ? lba - 8 : 0;
	len = lba + n + 8 < m->obj[s].sectors ? lba + n + 8 - from : m->obj[s].sectors - from;
	model_check_range(m, s, from, len);
}

/* ---- volumes ------------------------------------------------------------------ */

static void model_create(struct model *m, int s)
{
	struct model_obj *v = &m->obj[s];

	snprintf(v->name, sizeof(v->name), "v%u", m->gen++);
	v->sectors = 8 + tl_rand_below(&m->rng, MAX_SECTORS / 2);
	v->write_back = tl_rand_below(&m->rng, 2);
	v->snapshot = false;
	v->origin[0] = 0;
	TRACE(m, "create %s %" PRIu64 " wb %d", v->name, v->sectors, v->write_back);
	assert_int_equal(tl_vol_create(m->loop, m->pool, v->name, v->sectors, v->write_back), 0);
	assert_int_equal(tl_vol_create(m->loop, m->pool, v->name, 8, false), -EEXIST);
	assert_int_equal(store_vol_open(m->pool, v->name, &v->h), 0);
	v->exists = true;
	model_check_obj(m, s);
}

static void model_snap_delete(struct model *m, int ss)
{
	struct model_obj *so = &m->obj[ss];
	const char *vol = m->obj[so->of].name;
	struct store_vol *h;

	TRACE(m, "delete snapshot %s", so->name);
	assert_int_equal(tl_snap_delete(m->loop, m->pool, vol, so->snap), -EBUSY);
	store_vol_close(so->h);
	assert_int_equal(tl_snap_delete(m->loop, m->pool, vol, so->snap), 0);
	assert_int_equal(store_vol_open(m->pool, so->name, &h), -ENOENT);
	assert_int_equal(tl_snap_delete(m->loop, m->pool, vol, so->snap), -ENOENT);
	/* its clones stay, and no longer name it */
	for (int c = 0; c < VOLS; c++)
		if (m->obj[c].exists && strcmp(m->obj[c].origin, so->name) == 0)
			m->obj[c].origin[0] = 0;
	obj_forget(m, so);
	m->n_snap_del++;
	model_check_snap_list(m, so->of);
}

/* A volume with snapshots cannot go; after them it can, and its clones stay. */
static void model_delete(struct model *m, int s)
{
	struct model_obj *v = &m->obj[s];
	struct store_vol *h;

	TRACE(m, "delete %s", v->name);
	if (model_snap_count(m, s) > 0) {
		assert_int_equal(tl_vol_delete(m->loop, m->pool, v->name), -ENOTEMPTY);
		for (int ss = VOLS; ss < OBJS; ss++)
			if (m->obj[ss].exists && m->obj[ss].of == s)
				model_snap_delete(m, ss);
	}
	assert_int_equal(tl_vol_delete(m->loop, m->pool, v->name), -EBUSY);
	store_vol_close(v->h);
	assert_int_equal(tl_vol_delete(m->loop, m->pool, v->name), 0);
	assert_int_equal(store_vol_open(m->pool, v->name, &h), -ENOENT);
	for (int ss = VOLS; ss < OBJS; ss++)
		if (m->obj[ss].exists && strcmp(m->obj[ss].origin, v->name) == 0)
			fail_msg("step %u: %s outlived its volume", m->step, m->obj[ss].name);
	obj_forget(m, v);
	m->n_vol_del++;
}

static void model_grow(struct model *m, int s)
{
	struct model_obj *v = &m->obj[s];
	uint64_t to = v->sectors + tl_rand_below(&m->rng, MAX_SECTORS - v->sectors + 1);

	TRACE(m, "grow %s to %" PRIu64, v->name, to);
	assert_int_equal(tl_vol_resize(m->loop, m->pool, v->name, v->sectors - 1), -EINVAL);
	assert_int_equal(tl_vol_resize(m->loop, m->pool, v->name, to), 0);
	v->sectors = to;
	model_check_obj(m, s);
}

/* ---- snapshots, clones, rollback ----------------------------------------------- */

static void model_snapshot(struct model *m)
{
	int v = model_pick(m, PICK_VOL), ss = model_free_slot(m, true);
	char snap[16];

	if (v < 0 || ss < 0)
		return;
	snprintf(snap, sizeof(snap), "s%u", m->gen++);
	TRACE(m, "snapshot %s@%s", m->obj[v].name, snap);
	assert_int_equal(tl_snap_create(m->loop, m->pool, m->obj[v].name, snap), 0);
	assert_int_equal(tl_snap_create(m->loop, m->pool, m->obj[v].name, snap), -EEXIST);
	model_snap_made(m, v, ss, snap);
	model_check_obj(m, ss);
	model_check_snap_list(m, v);
	m->n_snap++;
}

/* Two or three volumes at one point in time, all or none. */
static void model_group(struct model *m)
{
	const char *names[4];
	int vols[3], slots[3], n = 0, want = 2 + (int)tl_rand_below(&m->rng, 2), room = 0;
	char snap[16];

	for (int ss = VOLS; ss < OBJS; ss++)
		room += !m->obj[ss].exists;
	for (; room < want; room++)     /* make room */
		model_snap_delete(m, model_pick(m, PICK_SNAP));
	for (int s = 0; s < VOLS && n < want; s++) {
		int v = (s + (int)tl_rand_below(&m->rng, VOLS)) % VOLS;
		bool dup = false;

		for (int i = 0; i < n; i++)
			dup |= vols[i] == v;
		if (!m->obj[v].exists || dup)
			continue;
		vols[n] = v;
		names[n] = m->obj[v].name;
		slots[n] = -1;
		for (int ss = VOLS; ss < OBJS && slots[n] < 0; ss++) {
			bool taken = m->obj[ss].exists;

			for (int i = 0; i < n; i++)
				taken |= slots[i] == ss;
			if (!taken)
				slots[n] = ss;
		}
		if (slots[n] < 0)
			break;
		n++;
	}
	if (n < 2)
		return;
	snprintf(snap, sizeof(snap), "g%u", m->gen++);
	TRACE(m, "group snapshot %s of %s %s %s", snap, names[0], names[1], n > 2 ? names[2] : "");
	if (tl_rand_below(&m->rng, 4) == 0) {
		/* one member missing: nothing is made */
		struct store_vol_info vi;
		char full[64];

		names[n] = "nope";
		assert_int_equal(tl_snap_group(m->loop, m->pool, names, (size_t)n + 1, snap), -ENOENT);
		for (int i = 0; i < n; i++) {
			snprintf(full, sizeof(full), "%s@%s", names[i], snap);
			assert_int_equal(store_vol_stat(m->pool, full, &vi), -ENOENT);
			model_check_snap_list(m, vols[i]);
		}
	}
	assert_int_equal(tl_snap_group(m->loop, m->pool, names, (size_t)n, snap), 0);
	for (int i = 0; i < n; i++)
		model_snap_made(m, vols[i], slots[i], snap);
	for (int i = 0; i < n; i++) {
		model_check_obj(m, slots[i]);
		model_check_snap_list(m, vols[i]);
	}
	m->n_group++;
}

static void model_clone(struct model *m)
{
	int ss = model_pick(m, PICK_SNAP), c = model_free_slot(m, false);
	struct model_obj *so, *co;

	if (ss < 0 || c < 0)
		return;
	so = &m->obj[ss];
	co = &m->obj[c];
	snprintf(co->name, sizeof(co->name), "c%u", m->gen++);
	co->write_back = tl_rand_below(&m->rng, 2);
	if (tl_rand_below(&m->rng, 8) == 0) {
		assert_int_equal(tl_vol_clone(m->loop, m->pool, m->obj[so->of].name, co->name,
		                              false), -EINVAL);
		assert_int_equal(tl_vol_clone(m->loop, m->pool, so->name, m->obj[so->of].name,
		                              false), -EEXIST);
	}
	TRACE(m, "clone %s from %s wb %d", co->name, so->name, co->write_back);
	assert_int_equal(tl_vol_clone(m->loop, m->pool, so->name, co->name, co->write_back), 0);
	co->exists = true;
	co->snapshot = false;
	co->sectors = so->sectors;
	set_name(co->origin, so->name, NULL);
	obj_put(m, co, 0, so->sectors, so->ids, so->data);
	assert_int_equal(store_vol_open(m->pool, co->name, &co->h), 0);
	model_check_obj(m, c);
	m->n_clone++;
}

static void model_rollback(struct model *m)
{
	int v = model_pick(m, PICK_VOL), ss = v < 0 ? -1 : model_pick_snap_of(m, v);
	struct model_obj *vo, *so;

	if (ss < 0)
		return;
	vo = &m->obj[v];
	so = &m->obj[ss];
	if (tl_rand_below(&m->rng, 8) == 0)
		assert_int_equal(tl_snap_rollback(m->loop, m->pool, vo->name, "nope"), -ENOENT);
	TRACE(m, "rollback %s to %s", vo->name, so->name);
	assert_int_equal(tl_snap_rollback(m->loop, m->pool, vo->name, so->snap), 0);
	/* its size stays; past the snapshot's end it reads zeros */
	obj_put(m, vo, 0, so->sectors, so->ids, so->data);
	obj_put(m, vo, so->sectors, vo->sectors - so->sectors, NULL, NULL);
	model_check_obj(m, v);
	m->n_rollback++;
}

/* Snapshots refuse every change. */
static void model_readonly(struct model *m)
{
	int ss = model_pick(m, PICK_SNAP), v = model_pick(m, PICK_VOL);
	struct model_obj *so;
	uint8_t b[4096] = { 0 };

	if (ss < 0)
		return;
	so = &m->obj[ss];
	assert_int_equal(tl_write(m->loop, so->h, 0, b, 512, 0), -EROFS);
	assert_int_equal(tl_unmap(m->loop, so->h, 0, 1), -EROFS);
	assert_int_equal(tl_vol_resize(m->loop, m->pool, so->name, so->sectors + 8), -EROFS);
	assert_int_equal(tl_vol_delete(m->loop, m->pool, so->name), -ENOENT);
	if (v >= 0)
		assert_int_equal(tl_copy(m->loop, so->h, 0, m->obj[v].h, 0, 1), -EROFS);
	model_check_range(m, ss, 0, so->sectors < 8 ? so->sectors : 8);
}

static void model_meta(struct model *m)
{
	unsigned r = (unsigned)tl_rand_below(&m->rng, 100);
	int s = model_pick(m, PICK_VOL), free_vol = model_free_slot(m, false);

	if (free_vol >= 0 && (s < 0 || r < 12)) {
		model_create(m, free_vol);
	} else if (r < 22) {
		if (s >= 0)
			model_delete(m, s);
	} else if (r < 32) {
		if (s >= 0)
			model_grow(m, s);
	} else if (r < 37) {
		if (s >= 0) {
			m->obj[s].write_back = !m->obj[s].write_back;
			TRACE(m, "%s write-back %d", m->obj[s].name, m->obj[s].write_back);
			assert_int_equal(tl_vol_set_wb(m->loop, m->pool, m->obj[s].name,
			                               m->obj[s].write_back), 0);
		}
	} else if (r < 52) {
		if (model_free_slot(m, true) < 0)
			model_snap_delete(m, model_pick(m, PICK_SNAP));
		else
			model_snapshot(m);
	} else if (r < 60) {
		model_group(m);
	} else if (r < 72) {
		model_clone(m);
	} else if (r < 84) {
		if ((s = model_pick(m, PICK_SNAP)) >= 0)
			model_snap_delete(m, s);
	} else if (r < 96) {
		model_rollback(m);
	} else {
		model_readonly(m);
	}
}

/* ---- restarts ------------------------------------------------------------------- */

/* Copies the pool file as it is, holes and all. */
static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	off_t size, at = 0;

	assert_true(in >= 0 && out >= 0);
	size = lseek(in, 0, SEEK_END);
	assert_int_equal(ftruncate(out, size), 0);
	while (at < size) {
		off_t data = lseek(in, at, SEEK_DATA), hole;

		if (data < 0)
			break;
		hole = lseek(in, data, SEEK_HOLE);
		assert_true(hole > data);
		for (loff_t src = data, dst = data; src < hole;) {
			ssize_t n = copy_file_range(in, &src, out, &dst, (size_t)(hole - src), 0);

			assert_true(n > 0);
		}
		at = hole;
	}
	close(in);
	close(out);
}

/* A power cut with every record written: the file as it stands now (no
 * final checkpoint) becomes the pool, so the reopen replays the log since
 * the last checkpoint, snapshots, clones, rollbacks and copies included.
 * No I/O of the test is in flight; a checkpoint of the store's own may be,
 * and then the image holds half of it, which recovery must also survive. */
static void model_crash(struct model *m)
{
	char img[320];
	struct store_pool_stats st;

	TRACE(m, "power cut");
	snprintf(img, sizeof(img), "%s.cut", m->path);
	copy_file(m->path, img);
	model_close(m);
	assert_int_equal(rename(img, m->path), 0);
	assert_int_equal(model_open(m), 0);
	store_pool_get_stats(m->pool, &st);
	m->replayed += st.replayed_records;
	model_check_stats(m);
	model_check_all(m);
	assert_int_equal(store_pool_check(m->pool, tl_log, NULL), 0);
	m->n_crash++;
}

static void model_step(struct model *m)
{
	unsigned r = (unsigned)tl_rand_below(&m->rng, 1000);
	int s;

	if (r < 620) {
		TRACE(m, "group");
		model_io_group(m);
	} else if (r < 720) {
		model_unmap(m);
	} else if (r < 900) {
		model_meta(m);
	} else if (r < 940) {
		if ((s = model_pick(m, PICK_VOL)) >= 0)
			assert_int_equal(tl_flush(m->loop, m->obj[s].h), 0);
	} else if (r < 960) {
		TRACE(m, "checkpoint");
		assert_int_equal(tl_checkpoint(m->loop, m->pool), 0);
	} else if (r < 980) {
		TRACE(m, "reopen");
		model_close(m);
		assert_int_equal(model_open(m), 0);
		model_check_all(m);
		m->n_reopen++;
	} else if (r < 982) {
		model_crash(m);
	}
	model_check_stats(m);
	if (m->step % 200 == 199)
		model_check_all(m);
}

static void model_run(enum store_engine engine, const char *name)
{
	struct model m = { .engine = engine, .next_id = 1 };    /* id 0: a hole */
	const char *env = getenv("SLUICE_MODEL_OPS");
	unsigned ops = env ? (unsigned)atoi(env) : 3000;
	struct store_vol_info info[OBJS + 1];
	size_t nv = 0;

	m.rng = tl_seed(name);
	m.trace = getenv("SLUICE_MODEL_TRACE") != NULL;
	m.loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(m.path, sizeof(m.path), "%s/model-%s", tl_scratch_dir(), store_engine_name(engine));
	for (int s = 0; s < OBJS; s++) {
		m.obj[s].data = calloc(MAX_SECTORS, 512);
		m.obj[s].ids = calloc(MAX_SECTORS, sizeof(uint32_t));
	}
	assert_int_equal(model_open(&m), 0);
	for (m.step = 0; m.step < ops; m.step++)
		model_step(&m);
	model_crash(&m);
	model_close(&m);
	assert_int_equal(model_open(&m), 0);
	model_check_all(&m);
	model_check_stats(&m);
	for (int s = 0; s < VOLS; s++)
		nv += m.obj[s].exists;
	assert_int_equal(store_vol_list(m.pool, info, OBJS + 1), nv);
	assert_int_equal(store_pool_check(m.pool, tl_log, NULL), 0);
	/* and everything goes: the pool is empty again */
	for (int s = 0; s < VOLS; s++)
		if (m.obj[s].exists)
			model_delete(&m, s);
	model_check_stats(&m);
	assert_int_equal(m.distinct, 0);
	model_close(&m);
	printf("%s: %u operations checked: %u snapshots, %u groups, %u clones, %u rollbacks, "
	       "%u copies, %u snapshot and %u volume deletes, %u reopens, %u power cuts "
	       "(%" PRIu64 " records replayed)\n", name, ops, m.n_snap, m.n_group, m.n_clone,
	       m.n_rollback, m.n_copy, m.n_snap_del, m.n_vol_del, m.n_reopen, m.n_crash,
	       m.replayed);
	for (int s = 0; s < OBJS; s++) {
		free(m.obj[s].data);
		free(m.obj[s].ids);
	}
	free(m.refs);
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

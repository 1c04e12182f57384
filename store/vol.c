/* store/vol.c: volumes: the table, metadata changes, and the I/O entry points.
 *
 * Volume life cycle:
 *
 *   store_vol_create ──▶ CREATING ──(record durable: store_vol_apply)──▶ ACTIVE
 *   ACTIVE ──store_vol_delete──▶ DELETING ──(record durable)──▶ freed
 *   a failed record puts CREATING back to nothing and DELETING back to ACTIVE.
 *
 * Writes, unmaps, flushes and metadata changes become requests queued on the
 * log (store/log.c); reads go straight to the map and the backend.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define READ_PIECE_MAX  (1u << 20)      /* bytes one backend read covers */

/* ---- iovec helpers ---------------------------------------------------- */

size_t store_iov_bytes(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

static void iov_copy(const struct iovec *iov, int iovcnt, size_t off, void *buf,
                     size_t len, bool to_iov)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - off;
		if (n > len)
			n = len;
		if (to_iov)
			memcpy((char *)iov[i].iov_base + off, buf, n);
		else
			memcpy(buf, (const char *)iov[i].iov_base + off, n);
		buf = (char *)buf + n;
		len -= n;
		off = 0;
	}
}

void store_iov_to_buf(const struct iovec *iov, int iovcnt, size_t off, void *dst, size_t len)
{
	iov_copy(iov, iovcnt, off, dst, len, false);
}

void store_iov_from_buf(const struct iovec *iov, int iovcnt, size_t off,
                        const void *src, size_t len)
{
	iov_copy(iov, iovcnt, off, (void *)src, len, true);
}

void store_iov_zero(const struct iovec *iov, int iovcnt)
{
	for (int i = 0; i < iovcnt; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

/* ---- the volume table ------------------------------------------------- */

static bool vol_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > STORE_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

struct store_vol *store_vol_find(struct store_pool *p, const char *name)
{
	struct store_vol *v;

	TAILQ_FOREACH(v, &p->vols, link)
		if (strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

struct store_vol *store_vol_by_id(struct store_pool *p, uint32_t id)
{
	return id < p->by_id_cap ? p->by_id[id] : NULL;
}

static int vol_index(struct store_pool *p, struct store_vol *v)
{
	if (v->id >= p->by_id_cap) {
		uint32_t cap = p->by_id_cap ? p->by_id_cap : 64;
		struct store_vol **n;

		while (cap <= v->id)
			cap *= 2;
		n = realloc(p->by_id, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memset(n + p->by_id_cap, 0, (cap - p->by_id_cap) * sizeof(*n));
		p->by_id = n;
		p->by_id_cap = cap;
	}
	p->by_id[v->id] = v;
	return 0;
}

struct store_vol *store_vol_new(struct store_pool *p, const char *name, uint32_t id,
                                uint64_t sectors, bool write_back)
{
	struct store_vol *v = calloc(1, sizeof(*v)), *at;

	if (!v)
		return NULL;
	v->pool = p;
	strncpy(v->name, name, STORE_NAME_MAX);
	v->id = id;
	v->sectors = sectors;
	v->write_back = write_back;
	v->state = VOL_ACTIVE;
	store_map_init(&v->map);
	if (vol_index(p, v)) {
		free(v);
		return NULL;
	}
	TAILQ_FOREACH(at, &p->vols, link)
		if (strcmp(at->name, name) > 0)
			break;
	if (at)
		TAILQ_INSERT_BEFORE(at, v, link);
	else
		TAILQ_INSERT_TAIL(&p->vols, v, link);
	p->nvols++;
	if (id >= p->next_vol_id)
		p->next_vol_id = id + 1;
	return v;
}

/* Unlinks v and drops its map; the data it alone held becomes dead space. */
void store_vol_free(struct store_vol *v)
{
	struct store_pool *p = v->pool;

	store_map_fini(&v->map, store_map_freed_cb, p);
	TAILQ_REMOVE(&p->vols, v, link);
	if (v->id < p->by_id_cap)
		p->by_id[v->id] = NULL;
	p->nvols--;
	free(v);
}

static void vol_info(const struct store_vol *v, struct store_vol_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->name, v->name, sizeof(out->name));
	out->id = v->id;
	out->sectors = v->sectors;
	out->write_back = v->write_back;
	out->mapped_sectors = v->map.mapped;
	out->extents = v->map.extents;
}

size_t store_vol_list(struct store_pool *p, struct store_vol_info *out, size_t max)
{
	struct store_vol *v;
	size_t n = 0;

	TAILQ_FOREACH(v, &p->vols, link) {
		if (v->state == VOL_CREATING)
			continue;
		if (n < max)
			vol_info(v, &out[n]);
		n++;
	}
	return n;
}

int store_vol_stat(struct store_pool *p, const char *name, struct store_vol_info *out)
{
	struct store_vol *v = name ? store_vol_find(p, name) : NULL;

	if (!v || v->state == VOL_CREATING)
		return -ENOENT;
	vol_info(v, out);
	return 0;
}

void store_vol_get_info(const struct store_vol *v, struct store_vol_info *out)
{
	vol_info(v, out);
}

int store_vol_open(struct store_pool *p, const char *name, struct store_vol **out)
{
	struct store_vol *v = name ? store_vol_find(p, name) : NULL;

	if (!v || v->state != VOL_ACTIVE)
		return -ENOENT;
	v->handles++;
	*out = v;
	return 0;
}

void store_vol_close(struct store_vol *v)
{
	if (v && v->handles > 0)
		v->handles--;
}

/* ---- requests and their completion ------------------------------------ */

static void vol_meta_undo(struct store_pool *p, struct store_req *r)
{
	struct store_vol *v = r->vol;

	if (r->meta == FMT_ENT_VOL_CREATE && v->state == VOL_CREATING) {
		r->vol = NULL;
		store_vol_free(v);
	} else if (r->meta == FMT_ENT_VOL_DELETE && v->state == VOL_DELETING) {
		v->state = VOL_ACTIVE;
	}
	(void)p;
}

void store_req_complete(struct store_pool *p, struct store_req *r, int err)
{
	if (r->type == REQ_META && err)
		vol_meta_undo(p, r);
	if (r->vol && r->type != REQ_META)
		r->vol->inflight--;
	if (r->type == REQ_WRITE && err == 0) {
		p->st.acked_writes++;
		p->st.host_write_bytes += r->sectors * STORE_SECTOR;
	}
	r->done(r->arg, err);
	free(r->blob);
	free(r);
}

static void vol_deferred_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct store_pool *p = w->data;
	struct req_list list = STAILQ_HEAD_INITIALIZER(list);

	(void)revents;
	ev_idle_stop(loop, w);
	STAILQ_CONCAT(&list, &p->deferred);
	while (!STAILQ_EMPTY(&list)) {
		struct store_req *r = STAILQ_FIRST(&list);

		STAILQ_REMOVE_HEAD(&list, link);
		store_req_complete(p, r, r->err);
	}
}

/* Completes r on a later loop iteration: never inside the caller's submit. */
void store_req_defer(struct store_pool *p, struct store_req *r, int err)
{
	r->err = err;
	STAILQ_INSERT_TAIL(&p->deferred, r, link);
	if (!ev_is_active(&p->deferred_w)) {
		ev_idle_init(&p->deferred_w, vol_deferred_cb);
		p->deferred_w.data = p;
		ev_set_priority(&p->deferred_w, EV_MAXPRI);
		ev_idle_start(p->loop, &p->deferred_w);
	}
}

static struct store_req *req_new(struct store_vol *v, enum req_type type,
                                 store_done_fn *done, void *arg)
{
	struct store_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->type = type;
	r->vol = v;
	r->done = done;
	r->arg = arg;
	if (v && type != REQ_META)
		v->inflight++;
	return r;
}

/* Common admission check: 0 to go on, else the error to complete with. */
static int req_admit(struct store_pool *p, bool writes)
{
	if (p->failed)
		return STORE_EFAILED;
	if (writes && p->read_only)
		return STORE_EREADONLY;
	if (p->closing)
		return -ESHUTDOWN;
	return 0;
}

static void req_submit(struct store_pool *p, struct store_req *r, int err)
{
	if (err || (r->type != REQ_META && r->type != REQ_FLUSH && r->sectors == 0))
		store_req_defer(p, r, err);
	else
		store_log_enqueue(p, r);
}

/* ---- metadata changes ------------------------------------------------- */

static void vol_meta_submit(struct store_pool *p, struct store_vol *v, uint8_t meta,
                            uint64_t sectors, uint8_t flags, int err,
                            store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_META, done, arg);

	if (!r) {
		done(arg, -ENOMEM);     /* no request to defer with */
		return;
	}
	r->meta = meta;
	r->sectors = sectors;
	r->meta_flags = flags;
	if (!err)
		err = req_admit(p, true);
	if (err && meta == FMT_ENT_VOL_CREATE)
		r->meta = 0;            /* nothing to undo */
	req_submit(p, r, err);
}

void store_vol_create(struct store_pool *p, const char *name, uint64_t sectors,
                      bool write_back, store_done_fn *done, void *arg)
{
	struct store_vol *v = NULL;
	int err = 0;

	if (!vol_name_ok(name) || sectors == 0 || sectors > STORE_VOL_MAX_SECTORS)
		err = -EINVAL;
	else if (store_vol_find(p, name))
		err = -EEXIST;
	else if (p->next_vol_id > STORE_VOL_ID_MAX)
		err = -ENOSPC;          /* ids are never reused */
	else if ((err = req_admit(p, true)) == 0) {
		v = store_vol_new(p, name, p->next_vol_id, sectors, write_back);
		if (!v)
			err = -ENOMEM;
		else
			v->state = VOL_CREATING;
	}
	vol_meta_submit(p, v, FMT_ENT_VOL_CREATE, sectors,
	                write_back ? FMT_ENT_F_WRITE_BACK : 0, err, done, arg);
}

/* The volume named, if it can take a metadata change now. */
static int vol_meta_target(struct store_pool *p, const char *name, struct store_vol **out)
{
	struct store_vol *v = name ? store_vol_find(p, name) : NULL;

	*out = NULL;
	if (!v || v->state == VOL_CREATING)
		return -ENOENT;
	if (v->state == VOL_DELETING)
		return -EBUSY;
	*out = v;
	return 0;
}

void store_vol_delete(struct store_pool *p, const char *name,
                      store_done_fn *done, void *arg)
{
	struct store_vol *v;
	int err = vol_meta_target(p, name, &v);

	if (!err && (v->handles || v->inflight))
		err = -EBUSY;
	if (!err && !(err = req_admit(p, true)))
		v->state = VOL_DELETING;
	vol_meta_submit(p, v, err ? 0 : FMT_ENT_VOL_DELETE, 0, 0, err, done, arg);
}

void store_vol_resize(struct store_pool *p, const char *name, uint64_t sectors,
                      store_done_fn *done, void *arg)
{
	struct store_vol *v;
	int err = vol_meta_target(p, name, &v);

	if (!err && (sectors < v->sectors || sectors > STORE_VOL_MAX_SECTORS))
		err = -EINVAL;
	vol_meta_submit(p, v, FMT_ENT_VOL_RESIZE, sectors, 0, err, done, arg);
}

void store_vol_set_write_back(struct store_pool *p, const char *name, bool on,
                              store_done_fn *done, void *arg)
{
	struct store_vol *v;
	int err = vol_meta_target(p, name, &v);

	vol_meta_submit(p, v, FMT_ENT_VOL_SET_WB, 0, on ? FMT_ENT_F_WRITE_BACK : 0,
	                err, done, arg);
}

/* Applies one durable record entry to the in-memory state (D3). v is the
 * volume when the caller knows it; replay looks it up by id. */
int store_vol_apply(struct store_pool *p, const struct fmt_rec_entry *e,
                    const char *name, uint64_t pba, bool replay)
{
	struct store_vol *v = store_vol_by_id(p, e->vol);
	int rc = 0;

	if (e->type == FMT_ENT_VOL_CREATE) {
		if (!replay) {
			if (v)
				v->state = VOL_ACTIVE;
			return 0;
		}
		if (v || store_vol_find(p, name))
			return STORE_ECORRUPT;
		v = store_vol_new(p, name, e->vol, e->sectors,
		                  e->flags & FMT_ENT_F_WRITE_BACK);
		return v ? 0 : -ENOMEM;
	}
	if (!v)
		return replay ? STORE_ECORRUPT : 0;
	switch (e->type) {
	case FMT_ENT_WRITE:
		if (e->sectors > v->sectors || e->lba > v->sectors - e->sectors)
			return STORE_ECORRUPT;
		rc = store_map_set(&v->map, e->lba, e->sectors, pba, store_map_freed_cb, p);
		if (rc == 0)
			store_map_added(p, pba, e->sectors);
		break;
	case FMT_ENT_UNMAP:
		if (e->sectors > v->sectors || e->lba > v->sectors - e->sectors)
			return STORE_ECORRUPT;
		rc = store_map_unmap(&v->map, e->lba, e->sectors, store_map_freed_cb, p);
		break;
	case FMT_ENT_VOL_DELETE:
		store_vol_free(v);
		break;
	case FMT_ENT_VOL_RESIZE:
		if (e->sectors < v->sectors || e->sectors > STORE_VOL_MAX_SECTORS)
			return STORE_ECORRUPT;
		v->sectors = e->sectors;
		break;
	case FMT_ENT_VOL_SET_WB:
		v->write_back = e->flags & FMT_ENT_F_WRITE_BACK;
		break;
	default:
		return STORE_ECORRUPT;
	}
	return rc;
}

/* ---- mapping status ----------------------------------------------------- */

struct map_status {
	uint64_t lba, end;              /* end: where the run seen so far ends */
	bool     mapped, seen;
};

static int vol_status_visit(void *arg, uint64_t lba, uint64_t len, uint64_t pba)
{
	struct map_status *s = arg;

	(void)pba;
	if (!s->seen) {
		s->seen = true;
		s->mapped = lba == s->lba;
		s->end = lba;           /* a hole ends where the first extent starts */
		if (!s->mapped)
			return 1;
	}
	if (lba != s->end)
		return 1;               /* a hole follows the mapped run */
	s->end = lba + len;
	return 0;
}

int store_vol_map_status(struct store_vol *v, uint64_t lba, bool *mapped, uint64_t *run)
{
	struct map_status s = { .lba = lba };

	if (lba >= v->sectors)
		return -ERANGE;
	store_map_visit(&v->map, lba, v->sectors - lba, vol_status_visit, &s);
	*mapped = s.seen && s.mapped;
	*run = (s.seen ? s.end : v->sectors) - lba;
	return 0;
}

/* ---- I/O -------------------------------------------------------------- */

static int vol_io_check(struct store_vol *v, uint64_t lba, size_t bytes,
                        uint64_t *sectors, bool writes)
{
	int err = req_admit(v->pool, writes);

	if (err)
		return err;
	if (v->state != VOL_ACTIVE)
		return -ENOENT;
	if (bytes % STORE_SECTOR)
		return -EINVAL;
	*sectors = bytes / STORE_SECTOR;
	if (lba > v->sectors || *sectors > v->sectors - lba)
		return -ERANGE;
	return 0;
}

void store_vol_write(struct store_vol *v, uint64_t lba, const struct iovec *iov,
                     int iovcnt, unsigned flags, store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_WRITE, done, arg);
	int err;

	if (!r) {
		done(arg, -ENOMEM);
		return;
	}
	err = vol_io_check(v, lba, store_iov_bytes(iov, iovcnt), &r->sectors, true);
	r->lba = lba;
	r->iov = iov;
	r->iovcnt = iovcnt;
	r->flags = flags;
	req_submit(v->pool, r, err);
}

void store_vol_unmap(struct store_vol *v, uint64_t lba, uint64_t sectors,
                     store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_UNMAP, done, arg);
	int err;

	if (!r) {
		done(arg, -ENOMEM);
		return;
	}
	err = vol_io_check(v, lba, 0, &r->sectors, true);
	if (!err && (lba > v->sectors || sectors > v->sectors - lba))
		err = -ERANGE;
	r->lba = lba;
	r->sectors = sectors;
	req_submit(v->pool, r, err);
}

void store_vol_flush(struct store_vol *v, store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_FLUSH, done, arg);

	if (!r) {
		done(arg, -ENOMEM);
		return;
	}
	req_submit(v->pool, r, req_admit(v->pool, false));
}

/* One backend read covering part of a request, through a bounce buffer
 * (the device wants 4 KiB alignment; the log packs data by the sector). */
struct read_piece {
	struct store_bio  bio;
	struct iovec      biov;
	struct store_req *req;
	uint64_t          dst_off;      /* bytes into the request's iov */
	uint32_t          skip;         /* bytes of the bounce before the data */
	uint32_t          bytes;
	uint32_t          seg;
};

static void vol_read_piece_done(struct store_bio *b)
{
	struct read_piece *pc = b->owner;
	struct store_req *r = pc->req;
	struct store_pool *p = r->vol->pool;

	p->segs[pc->seg].readers--;
	if (b->result && !r->err)
		r->err = b->result;
	if (!b->result)
		store_iov_from_buf(r->iov, r->iovcnt, pc->dst_off,
		                   (char *)pc->biov.iov_base + pc->skip, pc->bytes);
	free(pc->biov.iov_base);
	free(pc);
	if (--r->pieces == 0)
		store_req_complete(p, r, r->err);
}

static int vol_read_visit(void *arg, uint64_t lba, uint64_t len, uint64_t pba)
{
	struct store_req *r = arg;
	struct store_pool *p = r->vol->pool;

	while (len > 0) {
		uint64_t n = len < READ_PIECE_MAX / STORE_SECTOR ? len : READ_PIECE_MAX / STORE_SECTOR;
		uint64_t start = pba * STORE_SECTOR & ~(uint64_t)(STORE_BLOCK - 1);
		uint64_t end = ((pba + n) * STORE_SECTOR + STORE_BLOCK - 1) & ~(uint64_t)(STORE_BLOCK - 1);
		struct read_piece *pc = calloc(1, sizeof(*pc));

		if (!pc || !store_seg_of_sector(p, pba, &pc->seg) ||
		    !(pc->biov.iov_base = store_alloc_aligned(end - start))) {
			free(pc);
			return -ENOMEM;
		}
		pc->biov.iov_len = end - start;
		pc->req = r;
		pc->dst_off = (lba - r->lba) * STORE_SECTOR;
		pc->skip = (uint32_t)(pba * STORE_SECTOR - start);
		pc->bytes = (uint32_t)(n * STORE_SECTOR);
		pc->bio.op = STORE_BIO_READ;
		pc->bio.offset = start;
		pc->bio.iov = &pc->biov;
		pc->bio.iovcnt = 1;
		pc->bio.done = vol_read_piece_done;
		pc->bio.owner = pc;
		p->segs[pc->seg].readers++;     /* the segment stays put until we are done */
		r->pieces++;
		p->be->ops->submit(p->be, &pc->bio);
		lba += n;
		pba += n;
		len -= n;
	}
	return 0;
}

void store_vol_read(struct store_vol *v, uint64_t lba, const struct iovec *iov,
                    int iovcnt, store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_READ, done, arg);
	int err;

	if (!r) {
		done(arg, -ENOMEM);
		return;
	}
	err = vol_io_check(v, lba, store_iov_bytes(iov, iovcnt), &r->sectors, false);
	r->lba = lba;
	r->iov = iov;
	r->iovcnt = iovcnt;
	if (err || r->sectors == 0) {
		store_req_defer(v->pool, r, err);
		return;
	}
	store_iov_zero(iov, iovcnt);    /* holes read as zeros, no disk I/O */
	r->pieces = 1;                  /* held while pieces are submitted */
	err = store_map_visit(&v->map, lba, r->sectors, vol_read_visit, r);
	if (err)
		r->err = err;
	if (--r->pieces == 0)
		store_req_defer(v->pool, r, r->err);
}

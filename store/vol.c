/* store/vol.c: volumes and snapshots: the table, metadata changes, and the
 * I/O entry points.
 *
 * Life cycle (volumes, snapshots and clones alike):
 *
 *   create/snapshot/clone ──▶ CREATING ──(record durable: store_vol_apply)──▶ ACTIVE
 *   ACTIVE ──delete──▶ DELETING ──(record durable)──▶ freed
 *   a failed record puts CREATING back to nothing and DELETING back to ACTIVE.
 *
 * A snapshot or a clone takes its map when its record is applied, in log
 * order (D3): store_map_share() of the source's map as it is at that point,
 * O(1) whatever the size. Writes after it copy only the map nodes they
 * change; the data stays where it is, referenced from both (store/addr.h).
 *
 * Writes, unmaps, flushes and metadata changes become requests queued on the
 * log (store/log.c); reads go straight to the map and the backend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/internal.h"

#define READ_PIECE_MAX  (1u << 20)      /* bytes one backend read covers */
/* Writes up to 64 KiB go into the read cache as they complete: data read
 * soon after it was written is mostly small and random (a VM's metadata,
 * a database's pages). Larger ones are streams (copies, backups, image
 * imports), read later if at all; caching them cost a copy a block and,
 * measured on 128 KiB sequential writes, 40% of their throughput. They are
 * cached when read. */
#define CACHE_WRITE_MAX_SECTORS 128u

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

/* Zeros [off, off + len) of iov. */
static void iov_zero_range(const struct iovec *iov, int iovcnt, size_t off, size_t len)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		memset((char *)iov[i].iov_base + off, 0, n);
		len -= n;
		off = 0;
	}
}

/* [off, off + len) of iov as an array of its own, when every piece of it
 * is 4 KiB aligned in address and length (what O_DIRECT wants): the
 * device can read into it without a bounce buffer. NULL otherwise. */
static struct iovec *iov_aligned_slice(const struct iovec *iov, int iovcnt, size_t off,
                                       size_t len, int *cnt)
{
	struct iovec *out = NULL;
	int n = 0;

	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t take;
		char *base;
		struct iovec *grown;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		base = (char *)iov[i].iov_base + off;
		take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		if ((uintptr_t)base % STORE_BLOCK || take % STORE_BLOCK ||
		    !(grown = realloc(out, (size_t)(n + 1) * sizeof(*out)))) {
			free(out);
			return NULL;
		}
		out = grown;
		out[n++] = (struct iovec){ .iov_base = base, .iov_len = take };
		len -= take;
		off = 0;
	}
	if (len > 0) {
		free(out);
		return NULL;
	}
	*cnt = n;
	return out;
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
	strncpy(v->name, name, STORE_FULL_NAME_MAX);
	v->id = id;
	v->sectors = sectors;
	v->write_back = write_back;
	v->state = VOL_ACTIVE;
	store_map_init(&v->map, store_addr_ref, &p->addr, &p->map_nodes);
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

/* Makes new v a snapshot of volume of. */
void store_vol_set_snapshot(struct store_vol *v, struct store_vol *of)
{
	struct store_pool *p = v->pool;

	v->snapshot = true;
	v->parent = of->id;
	v->write_back = false;
	of->snaps++;
	p->nvols--;
	p->nsnaps++;
}

/* Unlinks v and drops its map; the data it alone held becomes dead space. */
void store_vol_free(struct store_vol *v)
{
	struct store_pool *p = v->pool;
	struct store_vol *of = v->snapshot ? store_vol_by_id(p, v->parent) : NULL;

	store_map_fini(&v->map);
	TAILQ_REMOVE(&p->vols, v, link);
	if (v->id < p->by_id_cap)
		p->by_id[v->id] = NULL;
	if (v->snapshot) {
		p->nsnaps--;
		if (of && of->snaps > 0)
			of->snaps--;
	} else {
		p->nvols--;
	}
	free(v);
}

static void vol_info(const struct store_vol *v, struct store_vol_info *out)
{
	const struct store_vol *o = v->parent ? store_vol_by_id(v->pool, v->parent) : NULL;

	memset(out, 0, sizeof(*out));
	memcpy(out->name, v->name, sizeof(out->name));
	out->id = v->id;
	out->sectors = v->sectors;
	out->write_back = v->write_back;
	out->snapshot = v->snapshot;
	if (o)
		memcpy(out->origin, o->name, sizeof(out->origin));
	out->created = v->created;
	out->mapped_sectors = v->map.mapped;
	out->extents = v->map.extents;
	out->snapshots = v->snaps;
}

size_t store_vol_list(struct store_pool *p, struct store_vol_info *out, size_t max)
{
	struct store_vol *v;
	size_t n = 0;

	TAILQ_FOREACH(v, &p->vols, link) {
		if (v->state == VOL_CREATING || v->snapshot)
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

int store_vol_unique(struct store_pool *p, const char *name, uint64_t *sectors)
{
	struct store_vol *v = name ? store_vol_find(p, name) : NULL;

	if (!v || v->state == VOL_CREATING)
		return -ENOENT;
	*sectors = store_map_unique(&v->map, store_addr_only, &p->addr);
	return 0;
}

void store_vol_get_info(const struct store_vol *v, struct store_vol_info *out)
{
	vol_info(v, out);
}

size_t store_snap_list(struct store_pool *p, const char *vol, struct store_vol_info *out,
                       size_t max)
{
	struct store_vol *of = vol ? store_vol_find(p, vol) : NULL, *v;
	size_t n = 0, kept = 0;

	if (!of || of->snapshot)
		return 0;
	TAILQ_FOREACH(v, &p->vols, link) {
		size_t at;

		if (!v->snapshot || v->parent != of->id || v->state == VOL_CREATING)
			continue;
		n++;
		/* the oldest max, oldest first: ids grow with time */
		at = kept;
		while (at > 0 && out[at - 1].id > v->id)
			at--;
		if (at >= max)
			continue;
		if (kept == max)
			kept--;
		memmove(&out[at + 1], &out[at], (kept - at) * sizeof(*out));
		vol_info(v, &out[at]);
		kept++;
	}
	return n;
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

	if (r->meta == FMT_ENT_SNAPSHOT) {
		const struct fmt_name_item *it = r->data;

		for (uint32_t i = 0; i < r->data_len / STORE_SECTOR; i++) {
			struct store_vol *sv = store_vol_by_id(p, it[i].id);

			if (sv && sv->state == VOL_CREATING)
				store_vol_free(sv);
		}
	} else if ((r->meta == FMT_ENT_VOL_CREATE || r->meta == FMT_ENT_CLONE) &&
	           v && v->state == VOL_CREATING) {
		r->vol = NULL;
		store_vol_free(v);
	} else if (r->meta == FMT_ENT_VOL_DELETE && v && v->state == VOL_DELETING) {
		v->state = VOL_ACTIVE;
	}
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
	store_dedup_req_free(r);
	free(r->blob);
	free(r->data);
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
	if (err || ((r->type == REQ_WRITE || r->type == REQ_UNMAP || r->type == REQ_COPY) &&
	            r->sectors == 0))
		store_req_defer(p, r, err);
	else
		store_log_enqueue(p, r);
}

/* ---- metadata changes ------------------------------------------------- */

static uint64_t now_secs(void)
{
	return (uint64_t)time(NULL);
}

/* data: whole sectors for the record, taken over (freed with the request). */
static void vol_meta_submit(struct store_pool *p, struct store_vol *v, uint8_t meta,
                            uint64_t sectors, uint8_t flags, void *data, uint32_t data_len,
                            int err, store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_META, done, arg);

	if (!r) {
		free(data);
		done(arg, -ENOMEM);     /* no request to defer with */
		return;
	}
	r->meta = meta;
	r->sectors = sectors;
	r->meta_flags = flags;
	r->data = data;
	r->data_len = data_len;
	if (!err)
		err = req_admit(p, true);
	if (err)
		vol_meta_undo(p, r);
	r->meta = err ? 0 : meta;       /* nothing left to undo */
	req_submit(p, r, err);
}

/* A volume, snapshot or clone named name, CREATING until its record is
 * durable, and the record data that names it (in *item). */
static int vol_reserve(struct store_pool *p, const char *name, uint64_t sectors,
                       bool write_back, struct store_vol *src,
                       struct fmt_name_item *item, struct store_vol **out)
{
	struct store_vol *v;

	if (store_vol_find(p, name))
		return -EEXIST;
	if (p->next_vol_id > STORE_VOL_ID_MAX)
		return -ENOSPC;         /* ids are never reused */
	v = store_vol_new(p, name, p->next_vol_id, sectors, write_back);
	if (!v)
		return -ENOMEM;
	v->state = VOL_CREATING;
	v->created = now_secs();
	memset(item, 0, sizeof(*item));
	item->src = src ? src->id : 0;
	item->id = v->id;
	item->name_len = (uint32_t)strlen(name);
	item->flags = write_back ? FMT_ENT_F_WRITE_BACK : 0;
	item->created = v->created;
	memcpy(item->name, name, item->name_len);
	*out = v;
	return 0;
}

void store_vol_create(struct store_pool *p, const char *name, uint64_t sectors,
                      bool write_back, store_done_fn *done, void *arg)
{
	struct fmt_name_item *item = calloc(1, sizeof(*item));
	struct store_vol *v = NULL;
	int err = 0;

	if (!item)
		err = -ENOMEM;
	else if (!vol_name_ok(name) || sectors == 0 || sectors > STORE_VOL_MAX_SECTORS)
		err = -EINVAL;
	else if (!(err = req_admit(p, true)))
		err = vol_reserve(p, name, sectors, write_back, NULL, item, &v);
	vol_meta_submit(p, v, FMT_ENT_VOL_CREATE, sectors,
	                write_back ? FMT_ENT_F_WRITE_BACK : 0, item, sizeof(*item),
	                err, done, arg);
}

/* The volume or snapshot named, if it can take a metadata change now. */
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

/* "vol@snap" into buf; -EINVAL when either part is not a valid name. */
static int snap_name(char *buf, const char *vol, const char *snap)
{
	if (!vol_name_ok(vol) || !vol_name_ok(snap))
		return -EINVAL;
	snprintf(buf, STORE_FULL_NAME_MAX + 1, "%s@%s", vol, snap);
	return 0;
}

static void vol_delete_any(struct store_pool *p, struct store_vol *v, int err,
                           store_done_fn *done, void *arg)
{
	if (!err && (v->handles || v->inflight))
		err = -EBUSY;
	if (!err && !(err = req_admit(p, true)))
		v->state = VOL_DELETING;
	vol_meta_submit(p, v, FMT_ENT_VOL_DELETE, 0, 0, NULL, 0, err, done, arg);
}

void store_vol_delete(struct store_pool *p, const char *name,
                      store_done_fn *done, void *arg)
{
	struct store_vol *v;
	int err = vol_meta_target(p, name, &v);

	if (!err && v->snapshot)
		err = -ENOENT;          /* store_snap_delete() takes those */
	else if (!err && v->snaps)
		err = -ENOTEMPTY;
	vol_delete_any(p, v, err, done, arg);
}

void store_snap_delete(struct store_pool *p, const char *vol, const char *snap,
                       store_done_fn *done, void *arg)
{
	char full[STORE_FULL_NAME_MAX + 1];
	struct store_vol *v = NULL;
	int err = snap_name(full, vol, snap);

	if (!err)
		err = vol_meta_target(p, full, &v);
	vol_delete_any(p, v, err, done, arg);
}

void store_vol_resize(struct store_pool *p, const char *name, uint64_t sectors,
                      store_done_fn *done, void *arg)
{
	struct store_vol *v;
	int err = vol_meta_target(p, name, &v);

	if (!err && v->snapshot)
		err = -EROFS;
	else if (!err && (sectors < v->sectors || sectors > STORE_VOL_MAX_SECTORS))
		err = -EINVAL;
	vol_meta_submit(p, v, FMT_ENT_VOL_RESIZE, sectors, 0, NULL, 0, err, done, arg);
}

void store_vol_set_write_back(struct store_pool *p, const char *name, bool on,
                              store_done_fn *done, void *arg)
{
	struct store_vol *v;
	int err = vol_meta_target(p, name, &v);

	if (!err && v->snapshot)
		err = -EROFS;
	vol_meta_submit(p, v, FMT_ENT_VOL_SET_WB, 0, on ? FMT_ENT_F_WRITE_BACK : 0,
	                NULL, 0, err, done, arg);
}

void store_snap_create_group(struct store_pool *p, const char *const *vols, size_t n,
                             const char *snap, store_done_fn *done, void *arg)
{
	struct fmt_name_item *items = n ? calloc(n, sizeof(*items)) : NULL;
	char full[STORE_FULL_NAME_MAX + 1];
	size_t made = 0;
	int err = items ? req_admit(p, true) : (n ? -ENOMEM : -EINVAL);

	if (!err && n > 64)
		err = -E2BIG;           /* one record holds the group */
	for (size_t i = 0; !err && i < n; i++) {
		struct store_vol *v, *sv;

		err = snap_name(full, vols[i], snap);
		if (!err)
			err = vol_meta_target(p, vols[i], &v);
		if (!err && v->snapshot)
			err = -EINVAL;
		if (!err && v->snaps >= STORE_SNAPS_MAX)
			err = -EMLINK;
		if (!err)
			err = vol_reserve(p, full, v->sectors, false, v, &items[i], &sv);
		if (!err) {
			store_vol_set_snapshot(sv, v);
			made++;
		}
	}
	if (err) {      /* undo what this call reserved */
		for (size_t i = 0; i < made; i++)
			store_vol_free(store_vol_by_id(p, items[i].id));
		made = 0;
	}
	vol_meta_submit(p, NULL, FMT_ENT_SNAPSHOT, made, 0, items,
	                (uint32_t)(made * sizeof(*items)), err, done, arg);
}

void store_snap_create(struct store_pool *p, const char *vol, const char *snap,
                       store_done_fn *done, void *arg)
{
	store_snap_create_group(p, &vol, 1, snap, done, arg);
}

void store_snap_rollback(struct store_pool *p, const char *vol, const char *snap,
                         store_done_fn *done, void *arg)
{
	char full[STORE_FULL_NAME_MAX + 1];
	struct store_vol *v = NULL, *sv = NULL;
	int err = snap_name(full, vol, snap);

	if (!err)
		err = vol_meta_target(p, full, &sv);
	if (!err)
		err = vol_meta_target(p, vol, &v);
	vol_meta_submit(p, v, FMT_ENT_ROLLBACK, err ? 0 : sv->id, 0, NULL, 0, err, done, arg);
}

void store_vol_clone(struct store_pool *p, const char *snapshot, const char *name,
                     bool write_back, store_done_fn *done, void *arg)
{
	struct fmt_name_item *item = calloc(1, sizeof(*item));
	struct store_vol *sv = NULL, *v = NULL;
	int err = item ? 0 : -ENOMEM;

	if (!err && !vol_name_ok(name))
		err = -EINVAL;
	if (!err)
		err = vol_meta_target(p, snapshot, &sv);
	if (!err && !sv->snapshot)
		err = -EINVAL;          /* clones come from snapshots */
	if (!err)
		err = req_admit(p, true);
	if (!err)
		err = vol_reserve(p, name, sv->sectors, write_back, sv, item, &v);
	if (v)
		v->parent = sv->id;
	vol_meta_submit(p, v, FMT_ENT_CLONE, sv && !err ? sv->id : 0,
	                write_back ? FMT_ENT_F_WRITE_BACK : 0, item, sizeof(*item),
	                err, done, arg);
}

/* ---- applying durable records ------------------------------------------- */

/* The name item at data_off, checked. */
static const struct fmt_name_item *apply_item(const struct fmt_rec_entry *e, const char *data,
                                              uint64_t data_sectors, uint64_t i)
{
	const struct fmt_name_item *it;

	if (e->data_off + i >= data_sectors)
		return NULL;
	it = (const void *)(data + (e->data_off + i) * STORE_SECTOR);
	if (it->name_len == 0 || it->name_len > STORE_FULL_NAME_MAX ||
	    memchr(it->name, 0, it->name_len) || it->id == 0 || it->id > STORE_VOL_ID_MAX)
		return NULL;
	return it;
}

/* A new volume, snapshot or clone whose record is durable: at run time it
 * is waiting in CREATING; replay makes it. */
static struct store_vol *apply_new(struct store_pool *p, const struct fmt_name_item *it,
                                   uint64_t sectors, bool write_back, bool replay, int *rc)
{
	char name[STORE_FULL_NAME_MAX + 1];
	struct store_vol *v = store_vol_by_id(p, it->id);

	*rc = 0;
	if (!replay) {
		if (!v || v->state != VOL_CREATING)
			*rc = STORE_ECORRUPT;
		else
			v->state = VOL_ACTIVE;
		return v;
	}
	memcpy(name, it->name, it->name_len);
	name[it->name_len] = 0;
	if (v || store_vol_find(p, name) || sectors == 0 || sectors > STORE_VOL_MAX_SECTORS) {
		*rc = STORE_ECORRUPT;
		return NULL;
	}
	v = store_vol_new(p, name, it->id, sectors, write_back);
	if (!v)
		*rc = -ENOMEM;
	else
		v->created = it->created;
	return v;
}

static int apply_snapshots(struct store_pool *p, const struct fmt_rec_entry *e,
                           const char *data, uint64_t data_sectors, bool replay)
{
	for (uint64_t i = 0; i < e->sectors; i++) {
		const struct fmt_name_item *it = apply_item(e, data, data_sectors, i);
		struct store_vol *of = it ? store_vol_by_id(p, it->src) : NULL, *sv;
		int rc;

		if (!of || of->snapshot)
			return STORE_ECORRUPT;
		sv = apply_new(p, it, of->sectors, false, replay, &rc);
		if (rc)
			return rc;
		if (replay)
			store_vol_set_snapshot(sv, of);
		sv->sectors = of->sectors;
		store_map_share(&sv->map, &of->map);
	}
	return 0;
}

/* Copy by reference: collects the source's extents first (the source may
 * be the destination), then maps each into dst. */
struct copy_ctx {
	struct store_map_ext *ext;
	size_t n, cap;
	int err;
};

static int copy_collect(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	struct copy_ctx *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct store_map_ext *v = realloc(c->ext, cap * sizeof(*v));

		if (!v)
			return c->err = -ENOMEM;
		c->ext = v;
		c->cap = cap;
	}
	c->ext[c->n++] = (struct store_map_ext){ .lba = lba, .len = len, .la = la };
	return 0;
}

static int apply_copy(struct store_pool *p, struct store_vol *v, const struct fmt_rec_entry *e,
                      const char *data, uint64_t data_sectors)
{
	const struct fmt_copy_src *src = (const void *)(data + (size_t)e->data_off * STORE_SECTOR);
	struct copy_ctx c = { 0 };
	struct store_vol *sv;
	int rc;

	if (e->data_off >= data_sectors)
		return STORE_ECORRUPT;
	sv = store_vol_by_id(p, src->vol);
	if (!sv || src->lba > sv->sectors || e->sectors > sv->sectors - src->lba)
		return STORE_ECORRUPT;
	store_map_visit(&sv->map, src->lba, e->sectors, copy_collect, &c);
	rc = c.err;
	/* Hold the pieces while the destination range first becomes holes and
	 * then takes them: when source and destination overlap, the holes
	 * would otherwise drop the data being copied. */
	for (size_t i = 0; !rc && i < c.n; i++)
		store_addr_ref(&p->addr, c.ext[i].la, c.ext[i].len, +1);
	if (!rc)
		rc = store_map_unmap(&v->map, e->lba, e->sectors);
	for (size_t i = 0; !rc && i < c.n; i++)
		rc = store_map_set(&v->map, e->lba + (c.ext[i].lba - src->lba), c.ext[i].len,
		                   c.ext[i].la);
	for (size_t i = 0; !c.err && i < c.n; i++)
		store_addr_ref(&p->addr, c.ext[i].la, c.ext[i].len, -1);
	free(c.ext);
	return rc;
}

/* Applies one durable record entry to the in-memory state (D3); replay
 * creates what run time reserved in advance. */
int store_vol_apply(struct store_pool *p, const struct fmt_rec_entry *e,
                    const char *data, uint64_t data_sectors, uint64_t seq,
                    uint64_t pba, bool replay)
{
	struct store_vol *v = store_vol_by_id(p, e->vol), *sv;
	const struct fmt_name_item *it;
	uint64_t la;
	int rc = 0;

	switch (e->type) {
	case FMT_ENT_VOL_CREATE:
	case FMT_ENT_CLONE:
		it = apply_item(e, data, data_sectors, 0);
		if (!it || it->id != e->vol)
			return STORE_ECORRUPT;
		sv = e->type == FMT_ENT_CLONE ? store_vol_by_id(p, (uint32_t)e->lba) : NULL;
		if (e->type == FMT_ENT_CLONE && (!sv || !sv->snapshot))
			return STORE_ECORRUPT;
		v = apply_new(p, it, sv ? sv->sectors : e->sectors,
		              e->flags & FMT_ENT_F_WRITE_BACK, replay, &rc);
		if (rc)
			return rc;
		if (sv) {
			v->parent = sv->id;
			v->sectors = sv->sectors;
			store_map_share(&v->map, &sv->map);
		}
		if (e->vol >= p->next_vol_id)
			p->next_vol_id = e->vol + 1;
		return 0;
	case FMT_ENT_MOVE:
		return store_clean_apply(p, e, data, data_sectors);
	case FMT_ENT_SNAPSHOT:
		rc = apply_snapshots(p, e, data, data_sectors, replay);
		for (uint64_t i = 0; rc == 0 && i < e->sectors; i++) {
			it = apply_item(e, data, data_sectors, i);
			if (it->id >= p->next_vol_id)
				p->next_vol_id = it->id + 1;
		}
		return rc;
	default:
		break;
	}
	if (!v)
		return replay ? STORE_ECORRUPT : 0;
	if (v->snapshot && e->type != FMT_ENT_VOL_DELETE)
		return STORE_ECORRUPT;
	if ((e->type == FMT_ENT_WRITE || e->type == FMT_ENT_UNMAP || e->type == FMT_ENT_COPY ||
	     e->type == FMT_ENT_REF) &&
	    (e->sectors > v->sectors || e->lba > v->sectors - e->sectors))
		return STORE_ECORRUPT;
	switch (e->type) {
	case FMT_ENT_WRITE:
		if (e->sectors == 0 || e->data_off > data_sectors ||
		    e->sectors > data_sectors - e->data_off)
			return STORE_ECORRUPT;
		la = addr_la(seq, e->data_off);
		rc = store_addr_add(&p->addr, la, e->sectors, pba);
		if (rc == 0)
			rc = store_map_set(&v->map, e->lba, e->sectors, la);
		if (rc == 0 && !replay && e->sectors <= CACHE_WRITE_MAX_SECTORS)
			store_cache_put_record(&p->cache, la, e->sectors, data, data_sectors);
		break;
	case FMT_ENT_UNMAP:
		rc = store_map_unmap(&v->map, e->lba, e->sectors);
		break;
	case FMT_ENT_COPY:
		rc = apply_copy(p, v, e, data, data_sectors);
		break;
	case FMT_ENT_REF:
		la = fmt_ref_la(e);
		if (e->sectors == 0 || (la & ((1u << ADDR_OFF_BITS) - 1)) + e->sectors >
		                       (1u << ADDR_OFF_BITS))
			return STORE_ECORRUPT;
		/* only data something still holds here (store/dedup.c): else void */
		if (!store_dedup_held(p, la, e->sectors))
			break;
		/* held across the change: the range may be its only holder */
		store_addr_ref(&p->addr, la, e->sectors, +1);
		rc = store_map_set(&v->map, e->lba, e->sectors, la);
		store_addr_ref(&p->addr, la, e->sectors, -1);
		break;
	case FMT_ENT_VOL_DELETE:
		if (v->snaps)
			return STORE_ECORRUPT;
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
	case FMT_ENT_ROLLBACK:
		sv = store_vol_by_id(p, (uint32_t)e->lba);
		if (!sv || !sv->snapshot || sv->parent != v->id)
			return STORE_ECORRUPT;
		store_map_fini(&v->map);
		store_map_share(&v->map, &sv->map);
		break;
	default:
		return STORE_ECORRUPT;
	}
	if (rc == 0 && p->addr.err)
		rc = p->addr.err == -ENOMEM ? -ENOMEM : STORE_ECORRUPT;
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
	if (writes && v->snapshot)
		return -EROFS;
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
	if (!err && v->pool->dedup && store_dedup_write(v->pool, r))
		return;
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

void store_vol_copy(struct store_vol *dst, uint64_t dst_lba, struct store_vol *src,
                    uint64_t src_lba, uint64_t sectors, store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(dst, REQ_COPY, done, arg);
	struct fmt_copy_src *cs = calloc(1, sizeof(*cs));
	int err;

	if (!r || !cs) {
		free(r);
		free(cs);
		done(arg, -ENOMEM);
		return;
	}
	err = vol_io_check(dst, dst_lba, 0, &r->sectors, true);
	if (!err && (src->pool != dst->pool || src->state != VOL_ACTIVE))
		err = -EINVAL;
	if (!err && (dst_lba > dst->sectors || sectors > dst->sectors - dst_lba ||
	             src_lba > src->sectors || sectors > src->sectors - src_lba))
		err = -ERANGE;
	cs->vol = src->id;
	cs->lba = src_lba;
	r->lba = dst_lba;
	r->sectors = sectors;
	r->data = cs;
	r->data_len = sizeof(*cs);
	r->meta = FMT_ENT_COPY;
	req_submit(dst->pool, r, err);
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

/* ---- reads -------------------------------------------------------------- */

/* A read walks the volume's map (sector to log address), then the address
 * table (log address to device). With a read cache (store/cache.h) each
 * 4 KiB block of log address space is looked up there first; the blocks it
 * misses are read from the device in runs, straight into pinned cache
 * slots when the block lies on a 4 KiB device block (as the log writes
 * it), else through a bounce buffer (the cleaner packs data by the
 * sector), and copied out from there. Without a cache, or for a block the
 * cache cannot take now, a piece is read straight into the request's
 * buffers when data and buffers are 4 KiB aligned, else through a bounce
 * buffer (the device wants 4 KiB alignment). */

#define FILL_BLOCKS     64u     /* blocks one cache fill reads: 256 KiB */

struct read_piece {
	struct store_bio  bio;
	struct iovec      biov;         /* the bounce buffer */
	struct iovec     *direct;       /* or the request's own, in place */
	struct store_req *req;
	uint64_t          dst_off;      /* bytes into the request's iov */
	uint32_t          skip;         /* bytes of the bounce before the data */
	uint32_t          bytes;
	uint32_t          seg;
};

/* One block of a cache fill: the sectors [s0, s0 + n) the request wants,
 * at device sector pba, the slot they go to (CACHE_NONE: only to the
 * request). */
struct fill_blk {
	uint32_t slot;
	uint8_t  s0, n;
	uint64_t pba;
	uint64_t dst_off;               /* bytes into the request's iov */
};

/* Device-contiguous blocks read with one backend read. */
struct read_fill {
	struct store_bio  bio;
	struct store_req *req;
	uint32_t          seg;
	uint32_t          n;
	bool              bounce;       /* blocks not on 4 KiB device blocks */
	uint64_t          next;         /* device sector the next block must start at */
	void             *buf;          /* the bounce buffer */
	struct iovec      iov[FILL_BLOCKS];
	struct fill_blk   blk[FILL_BLOCKS];
};

struct read_ctx {
	struct store_req *req;
	uint64_t          lba, la;      /* the map extent being read */
	uint64_t          next;         /* first sector not yet read or zeroed */
	struct read_fill *fill;         /* being gathered */
};

static void vol_read_piece_done(struct store_bio *b)
{
	struct read_piece *pc = b->owner;
	struct store_req *r = pc->req;
	struct store_pool *p = r->vol->pool;

	p->segs[pc->seg].readers--;
	if (b->result && !r->err)
		r->err = b->result;
	if (!b->result && !pc->direct)
		store_iov_from_buf(r->iov, r->iovcnt, pc->dst_off,
		                   (char *)pc->biov.iov_base + pc->skip, pc->bytes);
	free(pc->biov.iov_base);
	free(pc->direct);
	free(pc);
	if (--r->pieces == 0)
		store_req_complete(p, r, r->err);
}

/* [lba, +len) of the request from device sector pba, past the cache. */
static int vol_read_uncached(struct read_ctx *c, uint64_t lba, uint64_t len, uint64_t pba)
{
	struct store_req *r = c->req;
	struct store_pool *p = r->vol->pool;

	while (len > 0) {
		uint64_t n = len < READ_PIECE_MAX / STORE_SECTOR ? len : READ_PIECE_MAX / STORE_SECTOR;
		uint64_t start = pba * STORE_SECTOR & ~(uint64_t)(STORE_BLOCK - 1);
		uint64_t end = ((pba + n) * STORE_SECTOR + STORE_BLOCK - 1) & ~(uint64_t)(STORE_BLOCK - 1);
		struct read_piece *pc = calloc(1, sizeof(*pc));
		int cnt = 0;

		if (!pc || !store_seg_of_sector(p, pba, &pc->seg)) {
			free(pc);
			return -ENOMEM;
		}
		pc->req = r;
		pc->dst_off = (lba - r->lba) * STORE_SECTOR;
		pc->skip = (uint32_t)(pba * STORE_SECTOR - start);
		pc->bytes = (uint32_t)(n * STORE_SECTOR);
		if (pc->skip == 0 && pc->bytes == end - start)
			pc->direct = iov_aligned_slice(r->iov, r->iovcnt, pc->dst_off, pc->bytes,
			                               &cnt);
		if (!pc->direct) {
			if (!(pc->biov.iov_base = store_alloc_aligned(end - start))) {
				free(pc);
				return -ENOMEM;
			}
			pc->biov.iov_len = end - start;
			cnt = 1;
		}
		pc->bio.op = STORE_BIO_READ;
		pc->bio.offset = start;
		pc->bio.iov = pc->direct ? pc->direct : &pc->biov;
		pc->bio.iovcnt = cnt;
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

static void vol_read_fill_done(struct store_bio *b)
{
	struct read_fill *f = b->owner;
	struct store_req *r = f->req;
	struct store_pool *p = r->vol->pool;

	p->segs[f->seg].readers--;
	if (b->result && !r->err)
		r->err = b->result;
	for (uint32_t i = 0; i < f->n; i++) {
		const struct fill_blk *k = &f->blk[i];
		size_t bytes = (size_t)k->n * STORE_SECTOR;
		char *slot = k->slot == CACHE_NONE ? NULL :
		             store_cache_slot_data(&p->cache, k->slot) + k->s0 * STORE_SECTOR;
		const char *src = f->bounce ? (char *)f->buf + (k->pba * STORE_SECTOR - b->offset)
		                            : slot;

		if (!b->result) {
			if (f->bounce && slot)
				memcpy(slot, src, bytes);
			store_iov_from_buf(r->iov, r->iovcnt, k->dst_off, src, bytes);
		}
		if (slot)
			store_cache_fill_done(&p->cache, k->slot, store_cache_mask(k->s0, k->n),
			                      !b->result);
	}
	free(f->buf);
	free(f);
	if (--r->pieces == 0)
		store_req_complete(p, r, r->err);
}

/* Sends the fill gathered so far. */
static int vol_read_fill_submit(struct read_ctx *c)
{
	struct read_fill *f = c->fill;
	struct store_pool *p;
	uint64_t start, end;

	if (!f)
		return 0;
	c->fill = NULL;
	p = f->req->vol->pool;
	start = f->blk[0].pba - (f->bounce ? 0 : f->blk[0].s0);
	start = start * STORE_SECTOR & ~(uint64_t)(STORE_BLOCK - 1);
	end = (f->next * STORE_SECTOR + STORE_BLOCK - 1) & ~(uint64_t)(STORE_BLOCK - 1);
	if (f->bounce) {
		f->buf = store_alloc_aligned(end - start);
		f->iov[0] = (struct iovec){ .iov_base = f->buf, .iov_len = end - start };
	} else {
		for (uint32_t i = 0; i < f->n; i++)
			f->iov[i] = (struct iovec){
				.iov_base = store_cache_slot_data(&p->cache, f->blk[i].slot),
				.iov_len = STORE_BLOCK };
	}
	f->bio.op = STORE_BIO_READ;
	f->bio.offset = start;
	f->bio.iov = f->iov;
	f->bio.iovcnt = f->bounce ? 1 : (int)f->n;
	f->bio.done = vol_read_fill_done;
	f->bio.owner = f;
	f->req->pieces++;
	p->segs[f->seg].readers++;      /* the segment stays put until we are done */
	if (f->bounce && !f->buf) {
		f->bio.result = -ENOMEM;
		vol_read_fill_done(&f->bio);    /* a piece is held: no completion here */
		return -ENOMEM;
	}
	p->be->ops->submit(p->be, &f->bio);
	return 0;
}

/* A block the cache missed: sectors [s0, s0 + n) of block key, at device
 * sector pba, for volume sector lba. Joins the fill being gathered when it
 * follows it on the device. */
static int vol_read_miss(struct read_ctx *c, uint64_t key, uint32_t s0, uint32_t n,
                         uint64_t lba, uint64_t pba)
{
	struct store_req *r = c->req;
	struct store_pool *p = r->vol->pool;
	bool bounce = (pba - s0) % CACHE_SECTORS != 0;
	uint64_t at = bounce ? pba : pba - s0;
	struct read_fill *f = c->fill;
	uint32_t slot, seg;
	int rc;

	if (!store_seg_of_sector(p, pba, &seg))
		return -EIO;
	if (store_cache_claim(&p->cache, key, &slot))
		slot = CACHE_NONE;      /* filling elsewhere, or all pinned */
	if (!bounce && slot == CACHE_NONE)
		return vol_read_uncached(c, lba, n, pba);
	if (f && (f->bounce != bounce || f->seg != seg || f->n == FILL_BLOCKS || f->next != at)) {
		if ((rc = vol_read_fill_submit(c)))
			goto fail;
		f = NULL;
	}
	if (!f) {
		if (!(f = calloc(1, sizeof(*f)))) {
			rc = -ENOMEM;
			goto fail;
		}
		f->req = r;
		f->seg = seg;
		f->bounce = bounce;
		c->fill = f;
	}
	f->blk[f->n++] = (struct fill_blk){ .slot = slot, .s0 = (uint8_t)s0, .n = (uint8_t)n,
	                                    .pba = pba, .dst_off = (lba - r->lba) * STORE_SECTOR };
	f->next = bounce ? pba + n : at + CACHE_SECTORS;
	return 0;
fail:
	if (slot != CACHE_NONE)
		store_cache_fill_done(&p->cache, slot, 0, false);
	return rc;
}

/* [la, +len) of a map extent, at device sector pba: block by block
 * through the cache. */
static int vol_read_cached(struct read_ctx *c, uint64_t la, uint64_t len, uint64_t pba)
{
	struct store_req *r = c->req;
	struct store_cache *cache = &r->vol->pool->cache;
	uint64_t lba = c->lba + (la - c->la);

	while (len > 0) {
		uint32_t s0 = (uint32_t)(la % CACHE_SECTORS);
		uint32_t n = CACHE_SECTORS - s0 < len ? CACHE_SECTORS - s0 : (uint32_t)len;
		uint64_t key = store_cache_key(la);
		const char *hit = store_cache_lookup(cache, key, store_cache_mask(s0, n));
		int rc;

		if (hit)
			store_iov_from_buf(r->iov, r->iovcnt, (lba - r->lba) * STORE_SECTOR,
			                   hit + s0 * STORE_SECTOR, (size_t)n * STORE_SECTOR);
		else if ((rc = vol_read_miss(c, key, s0, n, lba, pba)))
			return rc;
		la += n;
		lba += n;
		pba += n;
		len -= n;
	}
	return 0;
}

/* One piece of a map extent, where the address table says it is. */
static int vol_read_piece(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct read_ctx *c = arg;

	if (store_cache_on(&c->req->vol->pool->cache))
		return vol_read_cached(c, la, len, pba);
	return vol_read_uncached(c, c->lba + (la - c->la), len, pba);
}

/* Holes read as zeros, with no disk I/O. */
static void vol_read_zero(struct read_ctx *c, uint64_t upto)
{
	struct store_req *r = c->req;

	if (upto > c->next)
		iov_zero_range(r->iov, r->iovcnt, (c->next - r->lba) * STORE_SECTOR,
		               (upto - c->next) * STORE_SECTOR);
}

static int vol_read_visit(void *arg, uint64_t lba, uint64_t len, uint64_t la)
{
	struct read_ctx *c = arg;
	int rc;

	vol_read_zero(c, lba);
	c->lba = lba;
	c->la = la;
	c->next = lba + len;
	rc = store_addr_visit(&c->req->vol->pool->addr, la, len, vol_read_piece, c);
	return rc == -EUCLEAN ? -EIO : rc;
}

void store_vol_read(struct store_vol *v, uint64_t lba, const struct iovec *iov,
                    int iovcnt, store_done_fn *done, void *arg)
{
	struct store_req *r = req_new(v, REQ_READ, done, arg);
	struct read_ctx c = { 0 };
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
	r->pieces = 1;                  /* held while pieces are submitted */
	c.req = r;
	c.next = lba;
	err = store_map_visit(&v->map, lba, r->sectors, vol_read_visit, &c);
	if (!err)
		err = vol_read_fill_submit(&c);
	else
		vol_read_fill_submit(&c);
	if (err)
		r->err = err;
	else
		vol_read_zero(&c, lba + r->sectors);
	if (--r->pieces == 0)
		store_req_defer(v->pool, r, r->err);
}

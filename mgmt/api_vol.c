/* mgmt/api_vol.c: /volumes: list, create (thin or a clone), show, grow,
 * write-cache mode, delete; /volumes/{name}/snapshots: list, create, show,
 * delete, rollback; and /snapshots, a consistency group across volumes.
 *
 * Every change is a store metadata operation: the request is suspended
 * and the store's callback replies, so a 2xx means the change is durable.
 * Checks that can fail are made before the store is asked, so a refused
 * request changes nothing (the store checks again, and a race that loses
 * there still changes nothing: its metadata changes are all or none).
 *
 * A snapshot is the store's "vol@snap"; the API names it by its volume and
 * its own name, and the JSON gives both and the "vol@snap" form that
 * clone_of takes. Times are ISO 8601 UTC strings, "2024-05-01T12:00:00Z".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mgmt/internal.h"

static const char *vol_cache_name(bool write_back)
{
	return write_back ? "write-back" : "write-through";
}

static int vol_cache_parse(const char *s, bool *write_back)
{
	if (strcmp(s, "write-through") == 0)
		*write_back = false;
	else if (strcmp(s, "write-back") == 0)
		*write_back = true;
	else
		return -EINVAL;
	return 0;
}

/* "2024-05-01T12:00:00Z"; null when the store does not know (0). */
static json_t *time_json(uint64_t secs)
{
	time_t t = (time_t)secs;
	struct tm tm;
	char buf[32];

	if (!secs || !gmtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

/* mapped: holds data; unique: held by nothing else, what deleting it
 * frees; shared: the rest, kept by a snapshot, a clone or the volume. */
static void space_json(json_t *o, struct store_pool *p, const struct store_vol_info *vi)
{
	uint64_t mapped = vi->mapped_sectors * STORE_SECTOR, unique = 0;

	if (store_vol_unique(p, vi->name, &unique) == 0)
		unique *= STORE_SECTOR;

	if (unique > mapped)
		unique = mapped;
	json_object_set_new(o, "mapped_bytes", json_integer((json_int_t)mapped));
	json_object_set_new(o, "unique_bytes", json_integer((json_int_t)unique));
	json_object_set_new(o, "shared_bytes", json_integer((json_int_t)(mapped - unique)));
	json_object_set_new(o, "extents", json_integer((json_int_t)vi->extents));
}

static json_t *vol_json(struct mgmt_srv *m, const struct store_vol_info *vi)
{
	struct mgmt_xfer_info xi;
	json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:o, s:o, s:I}",
		"name", vi->name, "id", (json_int_t)vi->id,
		"size", (json_int_t)(vi->sectors * STORE_SECTOR),
		"write_cache", vol_cache_name(vi->write_back),
		"created", time_json(vi->created),
		/* a clone's snapshot; null for the others, and once it is deleted */
		"origin", vi->origin[0] ? json_string(vi->origin) : json_null(),
		"snapshots", (json_int_t)vi->snapshots);

	if (!o)
		return NULL;
	space_json(o, m->pool, vi);
	if (mgmt_xfer_info_get(m, vi->name, &xi))
		json_object_set_new(o, "transfer", json_pack("{s:s, s:I, s:I, s:f}",
			"direction", xi.direction, "bytes_done", (json_int_t)xi.done,
			"bytes_total", (json_int_t)xi.total,
			"seconds", (double)(mgmt_now_ns() - xi.started_ns) / 1e9));
	return o;
}

/* A snapshot (store name "vol@snap"); clones: how many volumes were
 * cloned from it and are still there. */
static json_t *snap_json(struct store_pool *p, const struct store_vol_info *si, size_t clones)
{
	const char *at = strchr(si->name, '@');
	json_t *o;

	if (!at)                                /* not a snapshot: cannot be */
		return NULL;
	o = json_pack("{s:s, s:s#, s:s, s:I, s:I, s:o, s:s, s:I}",
		"name", at + 1, "volume", si->name, (int)(at - si->name),
		"snapshot", si->name, "id", (json_int_t)si->id,
		"size", (json_int_t)(si->sectors * STORE_SECTOR),
		"created", time_json(si->created),
		"origin", si->origin, "clones", (json_int_t)clones);
	if (o)
		space_json(o, p, si);
	return o;
}

/* Every volume, in name order; *n set. NULL when out of memory. */
static struct store_vol_info *vol_list_all(struct store_pool *p, size_t *n)
{
	size_t count = store_vol_list(p, NULL, 0);
	struct store_vol_info *vi = calloc(count ? count : 1, sizeof(*vi));

	if (vi) {
		*n = store_vol_list(p, vi, count);
		if (*n > count)
			*n = count;
	}
	return vi;
}

/* clones[i]: the volumes cloned from snapshot si[i]. -ENOMEM or 0. */
static int snap_clones(struct store_pool *p, const struct store_vol_info *si, size_t n,
                       size_t *clones)
{
	size_t nv = 0;
	struct store_vol_info *vi = vol_list_all(p, &nv);

	if (!vi)
		return -ENOMEM;
	memset(clones, 0, n * sizeof(*clones));
	for (size_t v = 0; v < nv; v++)
		for (size_t i = 0; vi[v].origin[0] && i < n; i++)
			if (strcmp(vi[v].origin, si[i].name) == 0)
				clones[i]++;
	free(vi);
	return 0;
}

/* One snapshot's JSON by its store name; NULL when it is gone or out of
 * memory. */
static json_t *snap_json_named(struct store_pool *p, const char *full)
{
	struct store_vol_info si;
	size_t clones = 0;

	if (store_vol_stat(p, full, &si) < 0 || !si.snapshot ||
	    snap_clones(p, &si, 1, &clones) < 0)
		return NULL;
	return snap_json(p, &si, clones);
}

/* The volume named by the path, into vi; or a reply (400 or 404). */
static int vol_lookup(struct mgmt_req *rq, struct store_vol_info *vi)
{
	const char *name = rq->arg[0], *why;
	char q[64];

	if (!mgmt_vol_name_ok(name, &why))
		return mgmt_fail(rq, -EINVAL, "volume name %s", why);
	if (store_vol_stat(rq->srv->pool, name, vi) < 0)
		return mgmt_fail(rq, -ENOENT, "no volume %s", mgmt_quote(name, q, sizeof(q)));
	return MGMT_PENDING;
}

static int vol_reply(struct mgmt_req *rq, unsigned status, const char *name)
{
	struct store_vol_info vi;

	if (store_vol_stat(rq->srv->pool, name, &vi) < 0)
		return mgmt_fail(rq, -ENOENT, "volume %s is gone", name);
	return mgmt_reply_json(rq, status, vol_json(rq->srv, &vi));
}

/* The store's name of snapshot snap of volume vol: "vol@snap". Both are
 * valid names (at most STORE_NAME_MAX bytes) by now. */
static void snap_full(char full[STORE_FULL_NAME_MAX + 1], const char *vol,
                      const char *snap)
{
	snprintf(full, STORE_FULL_NAME_MAX + 1, "%.*s@%.*s", STORE_NAME_MAX, vol,
	         STORE_NAME_MAX, snap);
}

/* The snapshot named by the path ({name}, {snap}): its volume into vi, its
 * store name into full; or a reply (400 or 404). */
static int snap_lookup(struct mgmt_req *rq, struct store_vol_info *vi,
                       char full[STORE_FULL_NAME_MAX + 1])
{
	const char *snap = rq->arg[1], *why;
	struct store_vol_info si;
	char q[64];

	if (vol_lookup(rq, vi) == MGMT_DONE)
		return MGMT_DONE;
	if (!mgmt_vol_name_ok(snap, &why))
		return mgmt_fail(rq, -EINVAL, "snapshot name %s", why);
	snap_full(full, vi->name, snap);
	if (store_vol_stat(rq->srv->pool, full, &si) < 0 || !si.snapshot)
		return mgmt_fail(rq, -ENOENT, "volume %s has no snapshot %s", vi->name,
		                 mgmt_quote(snap, q, sizeof(q)));
	return MGMT_PENDING;
}

/* A new snapshot name for volume vi: free, and room for one more; or a
 * reply (409). */
static int snap_room(struct mgmt_req *rq, const struct store_vol_info *vi,
                     const char *snap)
{
	char full[STORE_FULL_NAME_MAX + 1];
	struct store_vol_info si;

	snap_full(full, vi->name, snap);
	if (store_vol_stat(rq->srv->pool, full, &si) == 0)
		return mgmt_fail(rq, -EEXIST, "volume %s already has a snapshot %s",
		                 vi->name, snap);
	if (vi->snapshots >= STORE_SNAPS_MAX)
		return mgmt_fail(rq, -EMLINK, "volume %s has %u snapshots, the most it "
		                 "may have; delete one first", vi->name, STORE_SNAPS_MAX);
	return MGMT_PENDING;
}

/* ---- GET /volumes, GET /volumes/{name} ---------------------------------- */

static int api_vol_list(struct mgmt_req *rq)
{
	size_t n = 0;
	struct store_vol_info *vi = vol_list_all(rq->srv->pool, &n);
	json_t *list = json_array();

	if (!vi || !list) {
		free(vi);
		json_decref(list);
		return mgmt_fail(rq, -ENOMEM, "out of memory listing volumes");
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, vol_json(rq->srv, &vi[i]));
	free(vi);
	return mgmt_reply_json(rq, 200, json_pack("{s:o}", "volumes", list));
}

static int api_vol_get(struct mgmt_req *rq)
{
	struct store_vol_info vi;

	if (vol_lookup(rq, &vi) == MGMT_DONE)
		return MGMT_DONE;
	return mgmt_reply_json(rq, 200, vol_json(rq->srv, &vi));
}

/* ---- POST /volumes ------------------------------------------------------ */

static void vol_created(void *arg, int err)
{
	struct mgmt_req *rq = arg;
	const char *name = json_string_value(json_object_get(rq->json, "name"));
	const char *clone_of = json_string_value(json_object_get(rq->json, "clone_of"));
	char loc[sizeof(MGMT_PREFIX) + 16 + STORE_NAME_MAX];

	if (!mgmt_req_put(rq))
		return;
	if (err < 0 && clone_of) {
		mgmt_fail(rq, err, "cannot clone %s into volume %s: %s", clone_of, name,
		          store_strerror(err));
	} else if (err < 0) {
		mgmt_fail(rq, err, "cannot create volume %s: %s", name, store_strerror(err));
	} else {
		vol_reply(rq, 201, name);
		snprintf(loc, sizeof(loc), MGMT_PREFIX "/volumes/%s", name);
		mgmt_reply_header(rq, "Location", loc);
	}
	mgmt_req_finish(rq);
}

static const struct mgmt_field vol_create_fields[] = {
	{ "name",        JSON_STRING,  true,  false },
	{ "size",        JSON_INTEGER, false, false },
	{ "write_cache", JSON_STRING,  false, false },
	{ "clone_of",    JSON_STRING,  false, false },
};

/* POST /volumes with clone_of "vol@snap": the clone takes the snapshot's
 * size, so a size is refused rather than silently ignored. */
static int vol_clone(struct mgmt_req *rq, const char *name, const char *clone_of,
                     bool wb)
{
	char vol[STORE_NAME_MAX + 1], q[64];
	const char *at = strchr(clone_of, '@'), *why;
	struct store_vol_info vi, si;

	if (json_object_get(rq->json, "size"))
		return mgmt_fail(rq, -EINVAL, "\"size\" cannot be given with \"clone_of\": "
		                 "a clone has its snapshot's size (grow it afterwards)");
	if (!at)
		return mgmt_fail(rq, -EINVAL, "\"clone_of\" must be VOLUME@SNAPSHOT, not "
		                 "\"%s\"", mgmt_quote(clone_of, q, sizeof(q)));
	snprintf(vol, sizeof(vol), "%.*s", (int)(at - clone_of), clone_of);
	if ((size_t)(at - clone_of) > STORE_NAME_MAX || !mgmt_vol_name_ok(vol, &why))
		return mgmt_fail(rq, -EINVAL, "\"clone_of\": the volume name %s",
		                 (size_t)(at - clone_of) > STORE_NAME_MAX ?
		                 "must be 1 to 128 bytes long" : why);
	if (!mgmt_vol_name_ok(at + 1, &why))
		return mgmt_fail(rq, -EINVAL, "\"clone_of\": the snapshot name %s", why);
	if (store_vol_stat(rq->srv->pool, vol, &vi) < 0)
		return mgmt_fail(rq, -ENOENT, "\"clone_of\": no volume %s", vol);
	if (store_vol_stat(rq->srv->pool, clone_of, &si) < 0 || !si.snapshot)
		return mgmt_fail(rq, -ENOENT, "\"clone_of\": volume %s has no snapshot %s",
		                 vol, at + 1);
	if (store_vol_stat(rq->srv->pool, name, &vi) == 0)
		return mgmt_fail(rq, -EEXIST, "volume %s already exists", name);
	mgmt_req_get(rq);
	store_vol_clone(rq->srv->pool, clone_of, name, wb, vol_created, rq);
	return MGMT_PENDING;
}

static int api_vol_create(struct mgmt_req *rq)
{
	const char *name, *cache = "write-through", *clone_of = NULL, *why;
	json_int_t size = -1;
	struct store_vol_info vi;
	json_error_t jerr;
	bool wb;

	if (mgmt_fields_check(rq, rq->json, "body", vol_create_fields,
	                      MGMT_FIELDS_N(vol_create_fields)) == MGMT_DONE)
		return MGMT_DONE;
	if (json_unpack_ex(rq->json, &jerr, JSON_STRICT, "{s:s, s?I, s?s, s?s}",
	                   "name", &name, "size", &size, "write_cache", &cache,
	                   "clone_of", &clone_of) < 0)
		return mgmt_fail(rq, -EINVAL, "body: %s", jerr.text);
	if (!mgmt_vol_name_ok(name, &why))
		return mgmt_fail(rq, -EINVAL, "\"name\" %s", why);
	if (vol_cache_parse(cache, &wb) < 0)
		return mgmt_fail(rq, -EINVAL, "\"write_cache\" must be \"write-through\" "
		                 "or \"write-back\"");
	if (clone_of)
		return vol_clone(rq, name, clone_of, wb);
	if (size < 0 && !json_object_get(rq->json, "size"))
		return mgmt_fail(rq, -EINVAL, "body: missing field \"size\" (or "
		                 "\"clone_of\")");
	if (!mgmt_size_ok(size, &why))
		return mgmt_fail(rq, -EINVAL, "\"size\" %s", why);
	if (store_vol_stat(rq->srv->pool, name, &vi) == 0)
		return mgmt_fail(rq, -EEXIST, "volume %s already exists", name);
	mgmt_req_get(rq);
	store_vol_create(rq->srv->pool, name, (uint64_t)size / STORE_SECTOR, wb,
	                 vol_created, rq);
	return MGMT_PENDING;
}

/* ---- PATCH /volumes/{name}: grow, then the cache mode -------------------- */

static int vol_patch_step(struct mgmt_req *rq);

static void vol_patched(void *arg, int err)
{
	struct mgmt_req *rq = arg;

	if (!mgmt_req_put(rq))
		return;
	if (err < 0)
		mgmt_fail(rq, err, "cannot change volume %s: %s", rq->arg[0],
		          store_strerror(err));
	else if (vol_patch_step(rq) == MGMT_PENDING)
		return;
	mgmt_req_finish(rq);
}

/* Step 0: grow if asked; 1: set the cache mode if asked; 2: reply. Values
 * were checked before step 0. */
static int vol_patch_step(struct mgmt_req *rq)
{
	json_t *size = json_object_get(rq->json, "size");
	json_t *cache = json_object_get(rq->json, "write_cache");
	struct store_vol_info vi;
	bool wb = false;

	if (store_vol_stat(rq->srv->pool, rq->arg[0], &vi) < 0)
		return mgmt_fail(rq, -ENOENT, "volume %s is gone", rq->arg[0]);
	if (rq->step == 0) {
		rq->step = 1;
		if (size && (uint64_t)json_integer_value(size) != vi.sectors * STORE_SECTOR) {
			mgmt_req_get(rq);
			store_vol_resize(rq->srv->pool, rq->arg[0],
			                 (uint64_t)json_integer_value(size) / STORE_SECTOR,
			                 vol_patched, rq);
			return MGMT_PENDING;
		}
	}
	if (rq->step == 1) {
		rq->step = 2;
		if (cache && vol_cache_parse(json_string_value(cache), &wb) == 0 &&
		    wb != vi.write_back) {
			mgmt_req_get(rq);
			store_vol_set_write_back(rq->srv->pool, rq->arg[0], wb, vol_patched, rq);
			return MGMT_PENDING;
		}
	}
	return mgmt_reply_json(rq, 200, vol_json(rq->srv, &vi));
}

static const struct mgmt_field vol_patch_fields[] = {
	{ "size",        JSON_INTEGER, false, false },
	{ "write_cache", JSON_STRING,  false, false },
};

static int api_vol_patch(struct mgmt_req *rq)
{
	struct store_vol_info vi;
	json_t *size, *cache;
	const char *why;
	bool wb;

	if (vol_lookup(rq, &vi) == MGMT_DONE ||
	    mgmt_fields_check(rq, rq->json, "body", vol_patch_fields,
	                      MGMT_FIELDS_N(vol_patch_fields)) == MGMT_DONE)
		return MGMT_DONE;
	size = json_object_get(rq->json, "size");
	cache = json_object_get(rq->json, "write_cache");
	if (!size && !cache)
		return mgmt_fail(rq, -EINVAL, "nothing to change: give \"size\" or "
		                 "\"write_cache\"");
	if (size && !mgmt_size_ok(json_integer_value(size), &why))
		return mgmt_fail(rq, -EINVAL, "\"size\" %s", why);
	if (size && (uint64_t)json_integer_value(size) < vi.sectors * STORE_SECTOR)
		return mgmt_fail(rq, -EINVAL, "volumes only grow: %s is %llu bytes",
		                 vi.name, (unsigned long long)(vi.sectors * STORE_SECTOR));
	if (cache && vol_cache_parse(json_string_value(cache), &wb) < 0)
		return mgmt_fail(rq, -EINVAL, "\"write_cache\" must be \"write-through\" "
		                 "or \"write-back\"");
	rq->step = 0;
	return vol_patch_step(rq);
}

/* ---- DELETE /volumes/{name} -------------------------------------------- */

/* A volume's snapshots are its own: they go first, by name, so that a
 * delete never takes more than it says. */
static int vol_has_snaps(struct mgmt_req *rq, const char *name)
{
	size_t n = store_snap_list(rq->srv->pool, name, NULL, 0);

	return mgmt_fail(rq, -ENOTEMPTY, "volume %s has %zu snapshot%s; delete %s "
	                 "first (DELETE %s/volumes/%s/snapshots/NAME)", name, n,
	                 n == 1 ? "" : "s", n == 1 ? "it" : "them", MGMT_PREFIX, name);
}

static void vol_deleted(void *arg, int err)
{
	struct mgmt_req *rq = arg;

	rq->srv->meta_busy--;
	if (!mgmt_req_put(rq))
		return;
	if (err == -ENOTEMPTY) {                /* a snapshot came in between */
		vol_has_snaps(rq, rq->arg[0]);
	} else if (err < 0) {
		mgmt_fail(rq, err, "cannot delete volume %s: %s", rq->arg[0],
		          err == -EBUSY ? "it is in use" : store_strerror(err));
	} else {
		mgmt_stats_forget(rq->srv->stats, rq->arg[0]);
		mgmt_reply_empty(rq, 204);
	}
	mgmt_req_finish(rq);
}

static int api_vol_delete(struct mgmt_req *rq)
{
	struct store_vol_info vi;
	struct mgmt_xfer_info xi;
	char iqn[256];

	if (vol_lookup(rq, &vi) == MGMT_DONE)
		return MGMT_DONE;
	if (mgmt_xfer_info_get(rq->srv, vi.name, &xi))
		return mgmt_fail(rq, -EBUSY, "volume %s has an image %s running",
		                 vi.name, xi.direction);
	if (store_snap_list(rq->srv->pool, vi.name, NULL, 0) > 0)
		return vol_has_snaps(rq, vi.name);
	if (rq->srv->meta_busy) {               /* a target may be naming it */
		mgmt_fail(rq, -EAGAIN, "a target or volume change is in flight; retry");
		mgmt_reply_header(rq, "Retry-After", "1");
		return MGMT_DONE;
	}
	if (mgmt_target_uses_volume(rq->srv, vi.name, iqn, sizeof(iqn)) < 0)
		return mgmt_fail(rq, -EBUSY, "volume %s is a LUN of target %s; unmap it "
		                 "first", vi.name, iqn);
	rq->srv->meta_busy++;
	mgmt_req_get(rq);
	store_vol_delete(rq->srv->pool, vi.name, vol_deleted, rq);
	return MGMT_PENDING;
}

/* ---- GET /volumes/{name}/snapshots, GET .../{snap} ------------------------ */

static int api_snap_list(struct mgmt_req *rq)
{
	struct store_pool *p = rq->srv->pool;
	struct store_vol_info vi, *si;
	size_t n, *clones;
	json_t *list;

	if (vol_lookup(rq, &vi) == MGMT_DONE)
		return MGMT_DONE;
	n = store_snap_list(p, vi.name, NULL, 0);
	si = calloc(n ? n : 1, sizeof(*si));
	clones = calloc(n ? n : 1, sizeof(*clones));
	list = json_array();
	if (si && clones && list) {
		size_t got = store_snap_list(p, vi.name, si, n);

		n = got < n ? got : n;
		if (snap_clones(p, si, n, clones) == 0) {
			for (size_t i = 0; i < n; i++)
				json_array_append_new(list, snap_json(p, &si[i], clones[i]));
			free(si);
			free(clones);
			return mgmt_reply_json(rq, 200, json_pack("{s:o}", "snapshots", list));
		}
	}
	free(si);
	free(clones);
	json_decref(list);
	return mgmt_fail(rq, -ENOMEM, "out of memory listing snapshots");
}

static int api_snap_get(struct mgmt_req *rq)
{
	struct store_vol_info vi;
	char full[STORE_FULL_NAME_MAX + 1];

	if (snap_lookup(rq, &vi, full) == MGMT_DONE)
		return MGMT_DONE;
	return mgmt_reply_json(rq, 200, snap_json_named(rq->srv->pool, full));
}

/* ---- POST /volumes/{name}/snapshots --------------------------------------- */

static void snap_created(void *arg, int err)
{
	struct mgmt_req *rq = arg;
	const char *snap = json_string_value(json_object_get(rq->json, "name"));
	char full[STORE_FULL_NAME_MAX + 1];
	char loc[sizeof(MGMT_PREFIX) + 32 + STORE_FULL_NAME_MAX];

	if (!mgmt_req_put(rq))
		return;
	snap_full(full, rq->arg[0], snap);
	if (err < 0) {
		mgmt_fail(rq, err, "cannot snapshot volume %s as %s: %s", rq->arg[0], snap,
		          store_strerror(err));
	} else {
		mgmt_reply_json(rq, 201, snap_json_named(rq->srv->pool, full));
		snprintf(loc, sizeof(loc), MGMT_PREFIX "/volumes/%s/snapshots/%s",
		         rq->arg[0], snap);
		mgmt_reply_header(rq, "Location", loc);
	}
	mgmt_req_finish(rq);
}

static const struct mgmt_field snap_create_fields[] = {
	{ "name", JSON_STRING, true, false },
};

static int api_snap_create(struct mgmt_req *rq)
{
	struct store_vol_info vi;
	const char *snap, *why;

	if (vol_lookup(rq, &vi) == MGMT_DONE ||
	    mgmt_fields_check(rq, rq->json, "body", snap_create_fields,
	                      MGMT_FIELDS_N(snap_create_fields)) == MGMT_DONE)
		return MGMT_DONE;
	snap = json_string_value(json_object_get(rq->json, "name"));
	if (!mgmt_vol_name_ok(snap, &why))
		return mgmt_fail(rq, -EINVAL, "\"name\" %s", why);
	if (snap_room(rq, &vi, snap) == MGMT_DONE)
		return MGMT_DONE;
	mgmt_req_get(rq);
	store_snap_create(rq->srv->pool, vi.name, snap, snap_created, rq);
	return MGMT_PENDING;
}

/* ---- DELETE /volumes/{name}/snapshots/{snap} ------------------------------ */

static void snap_deleted(void *arg, int err)
{
	struct mgmt_req *rq = arg;

	if (!mgmt_req_put(rq))
		return;
	if (err < 0)
		mgmt_fail(rq, err, "cannot delete snapshot %s@%s: %s", rq->arg[0],
		          rq->arg[1], err == -EBUSY ? "it is in use" : store_strerror(err));
	else
		mgmt_reply_empty(rq, 204);
	mgmt_req_finish(rq);
}

/* Clones outlive it (they keep the blocks they share); its volume too. */
static int api_snap_delete(struct mgmt_req *rq)
{
	struct store_vol_info vi;
	char full[STORE_FULL_NAME_MAX + 1];

	if (snap_lookup(rq, &vi, full) == MGMT_DONE)
		return MGMT_DONE;
	mgmt_req_get(rq);
	store_snap_delete(rq->srv->pool, vi.name, rq->arg[1], snap_deleted, rq);
	return MGMT_PENDING;
}

/* ---- POST /volumes/{name}/snapshots/{snap}/rollback ----------------------- */

static void snap_rolled_back(void *arg, int err)
{
	struct mgmt_req *rq = arg;

	if (!mgmt_req_put(rq))
		return;
	if (err < 0)
		mgmt_fail(rq, err, "cannot roll volume %s back to %s: %s", rq->arg[0],
		          rq->arg[1], store_strerror(err));
	else
		vol_reply(rq, 200, rq->arg[0]);
	mgmt_req_finish(rq);
}

/* The volume's contents become the snapshot's at once; its size stays. An
 * image transfer running on it would mix the two, so it is refused then.
 * Hosts that have the volume mounted must be stopped first: their caches
 * still hold what it was (the store cannot tell us they are there). */
static int api_snap_rollback(struct mgmt_req *rq)
{
	struct store_vol_info vi;
	struct mgmt_xfer_info xi;
	char full[STORE_FULL_NAME_MAX + 1];

	if (snap_lookup(rq, &vi, full) == MGMT_DONE)
		return MGMT_DONE;
	if (mgmt_xfer_info_get(rq->srv, vi.name, &xi))
		return mgmt_fail(rq, -EBUSY, "volume %s has an image %s running",
		                 vi.name, xi.direction);
	mgmt_req_get(rq);
	store_snap_rollback(rq->srv->pool, vi.name, rq->arg[1], snap_rolled_back, rq);
	return MGMT_PENDING;
}

/* ---- POST /snapshots: a consistency group --------------------------------- */

#define SNAP_GROUP_MAX  64              /* store_snap_create_group(): one record */

static void group_created(void *arg, int err)
{
	struct mgmt_req *rq = arg;
	const char *snap = json_string_value(json_object_get(rq->json, "name"));
	json_t *vols = json_object_get(rq->json, "volumes"), *v, *list;
	char full[STORE_FULL_NAME_MAX + 1];
	size_t i;

	if (!mgmt_req_put(rq))
		return;
	if (err < 0) {
		mgmt_fail(rq, err, "cannot snapshot the group as %s: %s", snap,
		          store_strerror(err));
	} else {
		list = json_array();
		json_array_foreach(vols, i, v) {
			snap_full(full, json_string_value(v), snap);
			json_array_append_new(list, snap_json_named(rq->srv->pool, full));
		}
		mgmt_reply_json(rq, 201, json_pack("{s:s, s:o}", "name", snap,
		                                   "snapshots", list));
	}
	mgmt_req_finish(rq);
}

static const struct mgmt_field group_fields[] = {
	{ "name",    JSON_STRING, true, false },
	{ "volumes", JSON_ARRAY,  true, false },
};

/* Snapshots named "name" of every volume listed, at one point in time: all
 * are made or none. */
static int api_snap_group(struct mgmt_req *rq)
{
	const char *names[SNAP_GROUP_MAX], *snap, *why;
	json_t *vols, *v;
	struct store_vol_info vi;
	char q[64];
	size_t i, n;

	if (mgmt_fields_check(rq, rq->json, "body", group_fields,
	                      MGMT_FIELDS_N(group_fields)) == MGMT_DONE)
		return MGMT_DONE;
	snap = json_string_value(json_object_get(rq->json, "name"));
	vols = json_object_get(rq->json, "volumes");
	n = json_array_size(vols);
	if (!mgmt_vol_name_ok(snap, &why))
		return mgmt_fail(rq, -EINVAL, "\"name\" %s", why);
	if (n == 0)
		return mgmt_fail(rq, -EINVAL, "\"volumes\" must name at least one volume");
	if (n > SNAP_GROUP_MAX)
		return mgmt_fail(rq, -E2BIG, "\"volumes\" names %zu volumes; a group holds "
		                 "at most %d", n, SNAP_GROUP_MAX);
	json_array_foreach(vols, i, v) {
		if (!json_is_string(v))
			return mgmt_fail(rq, -EINVAL, "\"volumes\"[%zu] must be a string", i);
		names[i] = json_string_value(v);
		if (!mgmt_vol_name_ok(names[i], &why))
			return mgmt_fail(rq, -EINVAL, "\"volumes\"[%zu]: volume name %s", i, why);
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[j], names[i]) == 0)
				return mgmt_fail(rq, -EINVAL, "\"volumes\" names %s twice",
				                 names[i]);
	}
	for (i = 0; i < n; i++) {
		if (store_vol_stat(rq->srv->pool, names[i], &vi) < 0)
			return mgmt_fail(rq, -ENOENT, "no volume %s",
			                 mgmt_quote(names[i], q, sizeof(q)));
		if (snap_room(rq, &vi, snap) == MGMT_DONE)
			return MGMT_DONE;
	}
	mgmt_req_get(rq);
	store_snap_create_group(rq->srv->pool, names, n, snap, group_created, rq);
	return MGMT_PENDING;
}

const struct mgmt_route mgmt_routes_vol[] = {
	{ "GET",    "/api/v1/volumes",                  api_vol_list,    0 },
	{ "POST",   "/api/v1/volumes",                  api_vol_create,  MGMT_BODY_JSON },
	{ "GET",    "/api/v1/volumes/{name}",           api_vol_get,     0 },
	{ "PATCH",  "/api/v1/volumes/{name}",           api_vol_patch,   MGMT_BODY_JSON },
	{ "DELETE", "/api/v1/volumes/{name}",           api_vol_delete,  0 },
	{ "GET",    "/api/v1/volumes/{name}/snapshots", api_snap_list,   0 },
	{ "POST",   "/api/v1/volumes/{name}/snapshots", api_snap_create, MGMT_BODY_JSON },
	{ "GET",    "/api/v1/volumes/{name}/snapshots/{snap}", api_snap_get, 0 },
	{ "DELETE", "/api/v1/volumes/{name}/snapshots/{snap}", api_snap_delete, 0 },
	{ "POST",   "/api/v1/volumes/{name}/snapshots/{snap}/rollback", api_snap_rollback, 0 },
	{ "POST",   "/api/v1/snapshots",                api_snap_group,  MGMT_BODY_JSON },
	{ NULL, NULL, NULL, 0 },
};

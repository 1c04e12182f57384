/* mgmt/api_vol.c: /volumes: list, create, show, grow, write-cache mode,
 * delete; and the snapshot and clone routes, which answer 501 until the
 * store has snapshots.
 *
 * Every change is a store metadata operation: the request is suspended
 * and the store's callback replies, so a 2xx means the change is durable.
 * Checks that can fail are made before the store is asked, so a refused
 * request changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static json_t *vol_json(struct mgmt_srv *m, const struct store_vol_info *vi)
{
	struct mgmt_xfer_info xi;
	json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:I, s:I}",
		"name", vi->name, "id", (json_int_t)vi->id,
		"size", (json_int_t)(vi->sectors * STORE_SECTOR),
		"write_cache", vol_cache_name(vi->write_back),
		"mapped_bytes", (json_int_t)(vi->mapped_sectors * STORE_SECTOR),
		"extents", (json_int_t)vi->extents);

	if (o && mgmt_xfer_info_get(m, vi->name, &xi))
		json_object_set_new(o, "transfer", json_pack("{s:s, s:I, s:I, s:f}",
			"direction", xi.direction, "bytes_done", (json_int_t)xi.done,
			"bytes_total", (json_int_t)xi.total,
			"seconds", (double)(mgmt_now_ns() - xi.started_ns) / 1e9));
	return o;
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

/* ---- GET /volumes, GET /volumes/{name} ---------------------------------- */

static int api_vol_list(struct mgmt_req *rq)
{
	struct store_pool *p = rq->srv->pool;
	size_t n = store_vol_list(p, NULL, 0);
	struct store_vol_info *vi = calloc(n ? n : 1, sizeof(*vi));
	json_t *list = json_array();

	if (!vi || !list) {
		free(vi);
		json_decref(list);
		return mgmt_fail(rq, -ENOMEM, "out of memory listing volumes");
	}
	n = store_vol_list(p, vi, n);
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
	char loc[sizeof(MGMT_PREFIX) + 16 + STORE_NAME_MAX];

	if (!mgmt_req_put(rq))
		return;
	if (err < 0) {
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
	if (clone_of)
		return mgmt_fail(rq, -ENOSYS, "clones need snapshots, which the store "
		                 "does not have yet");
	if (size < 0)
		return mgmt_fail(rq, -EINVAL, "body: missing field \"size\"");
	if (!mgmt_size_ok(size, &why))
		return mgmt_fail(rq, -EINVAL, "\"size\" %s", why);
	if (vol_cache_parse(cache, &wb) < 0)
		return mgmt_fail(rq, -EINVAL, "\"write_cache\" must be \"write-through\" "
		                 "or \"write-back\"");
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

static void vol_deleted(void *arg, int err)
{
	struct mgmt_req *rq = arg;

	rq->srv->meta_busy--;
	if (!mgmt_req_put(rq))
		return;
	if (err < 0) {
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

/* ---- snapshots and clones: not in the store yet ------------------------- */

static int api_snap_absent(struct mgmt_req *rq)
{
	return mgmt_fail(rq, -ENOSYS, "snapshots and clones are not available in "
	                 "this version: the store does not keep them yet");
}

const struct mgmt_route mgmt_routes_vol[] = {
	{ "GET",    "/api/v1/volumes",                  api_vol_list,    0 },
	{ "POST",   "/api/v1/volumes",                  api_vol_create,  MGMT_BODY_JSON },
	{ "GET",    "/api/v1/volumes/{name}",           api_vol_get,     0 },
	{ "PATCH",  "/api/v1/volumes/{name}",           api_vol_patch,   MGMT_BODY_JSON },
	{ "DELETE", "/api/v1/volumes/{name}",           api_vol_delete,  0 },
	{ "GET",    "/api/v1/volumes/{name}/snapshots", api_snap_absent, 0 },
	{ "POST",   "/api/v1/volumes/{name}/snapshots", api_snap_absent, 0 },
	{ "GET",    "/api/v1/volumes/{name}/snapshots/{snap}", api_snap_absent, 0 },
	{ "DELETE", "/api/v1/volumes/{name}/snapshots/{snap}", api_snap_absent, 0 },
	{ "POST",   "/api/v1/volumes/{name}/snapshots/{snap}/rollback", api_snap_absent, 0 },
	{ NULL, NULL, NULL, 0 },
};

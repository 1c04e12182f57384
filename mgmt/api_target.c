/* mgmt/api_target.c: /targets: iSCSI targets, their LUN maps, initiator
 * allow-lists and CHAP accounts, kept as store metadata records
 * "target/<iqn>" (format in mgmt/mgmt.h) for the iSCSI target to read;
 * /discovery: the CHAP account of discovery sessions, record "discovery".
 *
 * A body is checked completely, then rebuilt in the one stored layout, so
 * what the iSCSI side reads is always what mgmt.h promises. Replies never
 * carry CHAP secrets: a GET shows the user names only.
 *
 * Target changes and volume deletions exclude each other while one is in
 * flight (srv->meta_busy), so a target can never be written naming a
 * volume that a concurrent DELETE is removing: the loser gets 503, retry.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/internal.h"

#define TARGET_NAME_MAX     223         /* RFC 7143 "iSCSI Names": bytes, at most */
#define TARGET_LUN_MAX      16383       /* SAM-5 flat space addressing */
#define TARGET_LUNS_MAX     1024
#define TARGET_ALLOW_MAX    256
#define CHAP_SECRET_MIN     12          /* RFC 7143 "CHAP Considerations": >= 96 bits */
#define CHAP_FIELD_MAX      255

/* ---- iSCSI names: RFC 7143 "iSCSI Names", RFC 3722 (lower case), RFC 3980 (naa.) */

static bool name_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

/* "iqn." yyyy-mm "." reversed domain [":" anything] */
static bool name_iqn(const char *s, const char **why)
{
	const char *p = s + 4, *colon;
	int month;

	for (const char *c = s; *c; c++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-.:", *c)) {
			*why = (*c >= 'A' && *c <= 'Z') ?
				"must be lower case (RFC 3722 folds iSCSI names)" :
				"may only hold a-z, 0-9, '-', '.' and ':'";
			return false;
		}
	}
	if (strlen(p) < 8 || !strchr("0123456789", p[0]) || !strchr("0123456789", p[1]) ||
	    !strchr("0123456789", p[2]) || !strchr("0123456789", p[3]) || p[4] != '-' ||
	    !strchr("0123456789", p[5]) || !strchr("0123456789", p[6]) || p[7] != '.') {
		*why = "must start iqn.yyyy-mm. (the naming authority's date)";
		return false;
	}
	month = (p[5] - '0') * 10 + (p[6] - '0');
	if (month < 1 || month > 12) {
		*why = "has a month that is not 01 to 12";
		return false;
	}
	p += 8;
	colon = strchr(p, ':');
	if (p[0] == '\0' || p[0] == '.' || p[0] == '-' || p[0] == ':' ||
	    (colon ? colon[-1] : p[strlen(p) - 1]) == '.') {
		*why = "needs a reversed domain name after the date (iqn.2024-01.com.example)";
		return false;
	}
	for (const char *c = p; *c && c != colon; c++) {
		if (c[0] == '.' && c[1] == '.') {
			*why = "has an empty label in its domain name";
			return false;
		}
	}
	return true;
}

bool mgmt_iscsi_name_ok(const char *name, const char **why)
{
	size_t n = strlen(name);

	if (n == 0 || n > TARGET_NAME_MAX) {
		*why = "must be 1 to 223 bytes long";
		return false;
	}
	if (strncmp(name, "iqn.", 4) == 0)
		return name_iqn(name, why);
	if (strncmp(name, "eui.", 4) == 0) {
		if (name_hex(name + 4, 16))
			return true;
		*why = "must be eui. and 16 hex digits";
		return false;
	}
	if (strncmp(name, "naa.", 4) == 0) {
		if (name_hex(name + 4, 16) || name_hex(name + 4, 32))
			return true;
		*why = "must be naa. and 16 or 32 hex digits";
		return false;
	}
	*why = "must start with iqn., eui. or naa.";
	return false;
}

/* ---- records --------------------------------------------------------------- */

static void target_key(const char *iqn, char *key, size_t len)
{
	snprintf(key, len, MGMT_TARGET_PREFIX "%s", iqn);
}

/* The record of key, parsed; NULL when there is none. */
static json_t *meta_load(struct mgmt_srv *m, const char *key)
{
	const void *val;
	size_t len;

	if (store_meta_get(m->pool, key, &val, &len) < 0)
		return NULL;
	return json_loadb(val, len, 0, NULL);
}

/* The stored target named iqn, parsed; NULL when there is none. */
static json_t *target_load(struct mgmt_srv *m, const char *iqn)
{
	char key[STORE_META_KEY_MAX + 1];

	target_key(iqn, key, sizeof(key));
	return meta_load(m, key);
}

/* What a reply shows: the record without CHAP secrets. */
static json_t *target_public(const json_t *t)
{
	json_t *o = json_deep_copy(t), *chap = json_object_get(o, "chap");

	if (chap) {
		json_object_del(chap, "secret");
		json_object_del(chap, "mutual_secret");
	}
	return o;
}

struct target_scan {
	json_t     *list;               /* collect: every target */
	const char *volume;             /* or find the first that maps this */
	char       *iqn;
	size_t      iqn_len;
};

static int target_scan_cb(void *arg, const char *key, const void *value, size_t len)
{
	struct target_scan *sc = arg;
	json_t *t = json_loadb(value, len, 0, NULL), *lun;
	size_t i;

	(void)key;
	if (!t)
		return 0;                       /* not ours to judge: skip it */
	if (sc->list) {
		json_array_append_new(sc->list, target_public(t));
		json_decref(t);
		return 0;
	}
	json_array_foreach(json_object_get(t, "luns"), i, lun) {
		const char *v = json_string_value(json_object_get(lun, "volume"));

		if (v && strcmp(v, sc->volume) == 0) {
			snprintf(sc->iqn, sc->iqn_len, "%s",
			         json_string_value(json_object_get(t, "iqn")));
			json_decref(t);
			return 1;
		}
	}
	json_decref(t);
	return 0;
}

int mgmt_target_uses_volume(struct mgmt_srv *m, const char *volume, char *iqn,
                            size_t len)
{
	struct target_scan sc = { .volume = volume, .iqn = iqn, .iqn_len = len };

	return store_meta_foreach(m->pool, MGMT_TARGET_PREFIX, target_scan_cb, &sc) ?
	       -EBUSY : 0;
}

/* ---- checks ----------------------------------------------------------------- */

static const struct mgmt_field lun_fields[] = {
	{ "lun",    JSON_INTEGER, true, false },
	{ "volume", JSON_STRING,  true, false },
};

/* luns: [{lun, volume}]: LUNs unique, volumes existing and not repeated. */
static int target_luns_check(struct mgmt_req *rq, const json_t *luns)
{
	struct store_vol_info vi;
	size_t i, j;
	json_t *a, *b;
	char what[32];

	if (json_array_size(luns) > TARGET_LUNS_MAX)
		return mgmt_fail(rq, -EINVAL, "\"luns\" may hold at most %d entries",
		                 TARGET_LUNS_MAX);
	json_array_foreach(luns, i, a) {
		const char *vol, *why;
		json_int_t lun;

		snprintf(what, sizeof(what), "luns[%zu]", i);
		if (mgmt_fields_check(rq, a, what, lun_fields, 2) == MGMT_DONE)
			return MGMT_DONE;
		lun = json_integer_value(json_object_get(a, "lun"));
		vol = json_string_value(json_object_get(a, "volume"));
		if (lun < 0 || lun > TARGET_LUN_MAX)
			return mgmt_fail(rq, -EINVAL, "%s: \"lun\" must be 0 to %d", what,
			                 TARGET_LUN_MAX);
		if (!mgmt_vol_name_ok(vol, &why))
			return mgmt_fail(rq, -EINVAL, "%s: \"volume\" %s", what, why);
		if (store_vol_stat(rq->srv->pool, vol, &vi) < 0)
			return mgmt_fail(rq, -ENOENT, "%s: no volume %s", what, vol);
		json_array_foreach(luns, j, b) {
			if (j >= i)
				break;
			if (json_integer_value(json_object_get(b, "lun")) == lun)
				return mgmt_fail(rq, -EINVAL, "%s: LUN %lld appears twice", what,
				                 (long long)lun);
			if (strcmp(json_string_value(json_object_get(b, "volume")), vol) == 0)
				return mgmt_fail(rq, -EINVAL, "%s: volume %s appears twice", what,
				                 vol);
		}
	}
	return MGMT_PENDING;
}

/* allow: ["*" or initiator names] */
static int target_allow_check(struct mgmt_req *rq, const json_t *allow)
{
	size_t i;
	json_t *v;
	char q[64];

	if (json_array_size(allow) > TARGET_ALLOW_MAX)
		return mgmt_fail(rq, -EINVAL, "\"allow\" may hold at most %d names",
		                 TARGET_ALLOW_MAX);
	json_array_foreach(allow, i, v) {
		const char *s = json_string_value(v), *why;

		if (!s)
			return mgmt_fail(rq, -EINVAL, "allow[%zu] must be a string", i);
		if (strcmp(s, "*") != 0 && !mgmt_iscsi_name_ok(s, &why))
			return mgmt_fail(rq, -EINVAL, "allow[%zu] \"%s\" is not \"*\" or an "
			                 "initiator name: it %s", i, mgmt_quote(s, q, sizeof(q)),
			                 why);
	}
	return MGMT_PENDING;
}

static const struct mgmt_field chap_fields[] = {
	{ "user",          JSON_STRING, true,  false },
	{ "secret",        JSON_STRING, true,  false },
	{ "mutual_user",   JSON_STRING, false, false },
	{ "mutual_secret", JSON_STRING, false, false },
};

static bool chap_text_ok(const char *s, size_t min)
{
	size_t n = strlen(s);

	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p > '~')
			return false;
	return n >= min && n <= CHAP_FIELD_MAX;
}

static int target_chap_check(struct mgmt_req *rq, const json_t *chap)
{
	const char *f[4];

	if (!chap || json_is_null(chap))       /* none, or PATCH removes it */
		return MGMT_PENDING;
	if (mgmt_fields_check(rq, chap, "chap", chap_fields, 4) == MGMT_DONE)
		return MGMT_DONE;
	for (int i = 0; i < 4; i++)
		f[i] = json_string_value(json_object_get(chap, chap_fields[i].name));
	if (!chap_text_ok(f[0], 1) || (f[2] && !chap_text_ok(f[2], 1)))
		return mgmt_fail(rq, -EINVAL, "chap: user names must be 1 to 255 bytes of "
		                 "printable ASCII without spaces");
	if (!chap_text_ok(f[1], CHAP_SECRET_MIN) || (f[3] && !chap_text_ok(f[3], CHAP_SECRET_MIN)))
		return mgmt_fail(rq, -EINVAL, "chap: secrets must be %d to 255 bytes of "
		                 "printable ASCII without spaces", CHAP_SECRET_MIN);
	if (!f[2] != !f[3])
		return mgmt_fail(rq, -EINVAL, "chap: mutual CHAP needs both \"mutual_user\" "
		                 "and \"mutual_secret\"");
	if (f[3] && strcmp(f[1], f[3]) == 0)
		return mgmt_fail(rq, -EINVAL, "chap: the mutual secret must differ from "
		                 "the initiator's secret");
	return MGMT_PENDING;
}

/* The stored layout, fields in order; chap only when set. */
static json_t *target_build(const char *iqn, json_t *luns, json_t *allow, json_t *chap)
{
	json_t *t = json_object(), *l = json_array(), *v;
	size_t i;

	json_object_set_new(t, "iqn", json_string(iqn));
	json_array_foreach(luns, i, v)
		json_array_append_new(l, json_pack("{s:I, s:O}", "lun",
			json_integer_value(json_object_get(v, "lun")),
			"volume", json_object_get(v, "volume")));
	json_object_set_new(t, "luns", l);
	json_object_set_new(t, "allow", allow ? json_deep_copy(allow) : json_array());
	if (chap && !json_is_null(chap))
		json_object_set_new(t, "chap", json_deep_copy(chap));
	return t;
}

/* ---- writes ------------------------------------------------------------------ */

static void target_written(void *arg, int err)
{
	struct mgmt_req *rq = arg;
	json_t *t = rq->ctx;

	rq->srv->meta_busy--;
	if (!mgmt_req_put(rq)) {
		json_decref(t);
		return;
	}
	rq->ctx = NULL;
	if (err < 0 && !json_object_get(t, "iqn"))
		mgmt_fail(rq, err, "cannot store the discovery settings: %s",
		          store_strerror(err));
	else if (err < 0)
		mgmt_fail(rq, err, "cannot store target %s: %s",
		          json_string_value(json_object_get(t, "iqn")), store_strerror(err));
	else if (strcmp(rq->route->method, "DELETE") == 0)
		mgmt_reply_empty(rq, 204);
	else
		mgmt_reply_json(rq, rq->step, target_public(t));
	json_decref(t);
	mgmt_req_finish(rq);
}

/* Stores t (taken) under key; replies status when durable. */
static int meta_put(struct mgmt_req *rq, const char *key, json_t *t, unsigned status)
{
	char *text = t ? json_dumps(t, JSON_COMPACT) : NULL;

	if (!text) {
		json_decref(t);
		return mgmt_fail(rq, -ENOMEM, "out of memory");
	}
	if (strlen(text) > STORE_META_VALUE_MAX) {
		free(text);
		json_decref(t);
		return mgmt_fail(rq, -EMSGSIZE, "the target is too large to store");
	}
	rq->ctx = t;
	rq->step = (int)status;
	rq->srv->meta_busy++;
	mgmt_req_get(rq);
	store_meta_put(rq->srv->pool, key, text, strlen(text), target_written, rq);
	free(text);                             /* the store copied it */
	return MGMT_PENDING;
}

/* Stores t (taken) under its iqn. */
static int target_put(struct mgmt_req *rq, json_t *t, unsigned status)
{
	char key[STORE_META_KEY_MAX + 1];

	target_key(t ? json_string_value(json_object_get(t, "iqn")) : "", key, sizeof(key));
	return meta_put(rq, key, t, status);
}

static int target_busy(struct mgmt_req *rq)
{
	mgmt_fail(rq, -EAGAIN, "another target or volume change is in flight; retry");
	mgmt_reply_header(rq, "Retry-After", "1");
	return MGMT_DONE;
}

/* ---- handlers ---------------------------------------------------------------- */

static int api_target_list(struct mgmt_req *rq)
{
	struct target_scan sc = { .list = json_array() };

	if (!sc.list)
		return mgmt_fail(rq, -ENOMEM, "out of memory");
	store_meta_foreach(rq->srv->pool, MGMT_TARGET_PREFIX, target_scan_cb, &sc);
	return mgmt_reply_json(rq, 200, json_pack("{s:o}", "targets", sc.list));
}

/* The target of the path, parsed; or a reply (400, 404). */
static int target_lookup(struct mgmt_req *rq, json_t **out)
{
	const char *why;
	char q[64];

	if (!mgmt_iscsi_name_ok(rq->arg[0], &why))
		return mgmt_fail(rq, -EINVAL, "target name %s", why);
	*out = target_load(rq->srv, rq->arg[0]);
	if (!*out)
		return mgmt_fail(rq, -ENOENT, "no target %s",
		                 mgmt_quote(rq->arg[0], q, sizeof(q)));
	return MGMT_PENDING;
}

static int api_target_get(struct mgmt_req *rq)
{
	json_t *t;

	if (target_lookup(rq, &t) == MGMT_DONE)
		return MGMT_DONE;
	mgmt_reply_json(rq, 200, target_public(t));
	json_decref(t);
	return MGMT_DONE;
}

static const struct mgmt_field target_create_fields[] = {
	{ "iqn",   JSON_STRING, true,  false },
	{ "luns",  JSON_ARRAY,  false, false },
	{ "allow", JSON_ARRAY,  false, false },
	{ "chap",  JSON_OBJECT, false, true },
};

static int api_target_create(struct mgmt_req *rq)
{
	json_t *b = rq->json, *luns, *allow, *chap, *old;
	const char *iqn, *why;

	if (mgmt_fields_check(rq, b, "body", target_create_fields, 4) == MGMT_DONE)
		return MGMT_DONE;
	iqn = json_string_value(json_object_get(b, "iqn"));
	luns = json_object_get(b, "luns");
	allow = json_object_get(b, "allow");
	chap = json_object_get(b, "chap");
	if (!mgmt_iscsi_name_ok(iqn, &why))
		return mgmt_fail(rq, -EINVAL, "\"iqn\" %s", why);
	if (target_luns_check(rq, luns) == MGMT_DONE ||
	    target_allow_check(rq, allow) == MGMT_DONE ||
	    target_chap_check(rq, chap) == MGMT_DONE)
		return MGMT_DONE;
	if (rq->srv->meta_busy)
		return target_busy(rq);
	if ((old = target_load(rq->srv, iqn))) {
		json_decref(old);
		return mgmt_fail(rq, -EEXIST, "target %s already exists", iqn);
	}
	return target_put(rq, target_build(iqn, luns, allow, chap), 201);
}

static const struct mgmt_field target_patch_fields[] = {
	{ "luns",  JSON_ARRAY,  false, false },
	{ "allow", JSON_ARRAY,  false, false },
	{ "chap",  JSON_OBJECT, false, true },
};

static int api_target_patch(struct mgmt_req *rq)
{
	json_t *b = rq->json, *old, *t, *luns, *allow, *chap;

	if (target_lookup(rq, &old) == MGMT_DONE)
		return MGMT_DONE;
	if (mgmt_fields_check(rq, b, "body", target_patch_fields, 3) == MGMT_DONE)
		goto done;
	luns = json_object_get(b, "luns");
	allow = json_object_get(b, "allow");
	chap = json_object_get(b, "chap");
	if (!luns && !allow && !chap) {
		mgmt_fail(rq, -EINVAL, "nothing to change: give \"luns\", \"allow\" or "
		          "\"chap\" (null removes CHAP)");
		goto done;
	}
	if (target_luns_check(rq, luns) == MGMT_DONE ||
	    target_allow_check(rq, allow) == MGMT_DONE ||
	    target_chap_check(rq, chap) == MGMT_DONE)
		goto done;
	if (rq->srv->meta_busy) {
		target_busy(rq);
		goto done;
	}
	t = target_build(rq->arg[0], luns ? luns : json_object_get(old, "luns"),
	                 allow ? allow : json_object_get(old, "allow"),
	                 chap ? chap : json_object_get(old, "chap"));
	json_decref(old);
	return target_put(rq, t, 200);
done:
	json_decref(old);
	return MGMT_DONE;
}

static int api_target_delete(struct mgmt_req *rq)
{
	char key[STORE_META_KEY_MAX + 1];
	json_t *old;

	if (target_lookup(rq, &old) == MGMT_DONE)
		return MGMT_DONE;
	if (rq->srv->meta_busy) {
		json_decref(old);
		return target_busy(rq);
	}
	target_key(rq->arg[0], key, sizeof(key));
	rq->ctx = old;
	rq->srv->meta_busy++;
	mgmt_req_get(rq);
	store_meta_delete(rq->srv->pool, key, target_written, rq);
	return MGMT_PENDING;
}

/* ---- discovery sessions -------------------------------------------------------- */

static int api_discovery_get(struct mgmt_req *rq)
{
	json_t *d = meta_load(rq->srv, MGMT_DISCOVERY_KEY), *pub;

	if (!d)
		return mgmt_reply_json(rq, 200, json_pack("{s:n}", "chap"));
	pub = target_public(d);
	json_decref(d);
	if (!json_object_get(pub, "chap"))
		json_object_set_new(pub, "chap", json_null());
	return mgmt_reply_json(rq, 200, pub);
}

static const struct mgmt_field discovery_fields[] = {
	{ "chap", JSON_OBJECT, true, true },
};

/* PUT: {"chap": {...}} makes discovery sessions authenticate with CHAP
 * (one-way or mutual, checked as a target's); {"chap": null} admits them
 * without. Applies to the next discovery login. */
static int api_discovery_put(struct mgmt_req *rq)
{
	json_t *chap;

	if (mgmt_fields_check(rq, rq->json, "body", discovery_fields, 1) == MGMT_DONE)
		return MGMT_DONE;
	chap = json_object_get(rq->json, "chap");
	if (target_chap_check(rq, chap) == MGMT_DONE)
		return MGMT_DONE;
	if (rq->srv->meta_busy)
		return target_busy(rq);
	return meta_put(rq, MGMT_DISCOVERY_KEY, json_pack("{s:O}", "chap", chap), 200);
}

const struct mgmt_route mgmt_routes_target[] = {
	{ "GET",    "/api/v1/discovery",      api_discovery_get, 0 },
	{ "PUT",    "/api/v1/discovery",      api_discovery_put, MGMT_BODY_JSON },
	{ "GET",    "/api/v1/targets",        api_target_list,   0 },
	{ "POST",   "/api/v1/targets",        api_target_create, MGMT_BODY_JSON },
	{ "GET",    "/api/v1/targets/{iqn}",  api_target_get,    0 },
	{ "PATCH",  "/api/v1/targets/{iqn}",  api_target_patch,  MGMT_BODY_JSON },
	{ "DELETE", "/api/v1/targets/{iqn}",  api_target_delete, 0 },
	{ NULL, NULL, NULL, 0 },
};

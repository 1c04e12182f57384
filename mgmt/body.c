/* mgmt/body.c: checks of what clients send: JSON bodies against a field
 * table, volume names, sizes, and quoting untrusted text into messages.
 *
 * Bodies are decoded declaratively (SPDK's decoder tables): a handler lists
 * the fields it takes, and any unknown key, missing key or wrong type is a
 * 400 whose message names the key, before the handler looks at a value.
 * The handler then unpacks with json_unpack_ex(..., JSON_STRICT, ...).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mgmt/internal.h"

static const char *body_type_name(int t)
{
	switch (t) {
	case JSON_OBJECT:  return "an object";
	case JSON_ARRAY:   return "an array";
	case JSON_STRING:  return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL:    return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:   return "a boolean";
	case JSON_NULL:    return "null";
	default:           return "?";
	}
}

static bool body_type_ok(const json_t *v, const struct mgmt_field *f)
{
	if (json_is_null(v))
		return f->nullable || f->type == JSON_NULL;
	if (f->type == JSON_TRUE || f->type == JSON_FALSE)
		return json_is_boolean(v);
	return (int)json_typeof(v) == f->type;
}

static const struct mgmt_field *body_field(const struct mgmt_field *f, size_t n,
                                           const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].name, key) == 0)
			return &f[i];
	return NULL;
}

static void body_known(const struct mgmt_field *f, size_t n, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "",
		         f[i].name);
}

int mgmt_fields_check(struct mgmt_req *rq, const json_t *obj, const char *what,
                      const struct mgmt_field *f, size_t n)
{
	const char *key;
	json_t *v;
	char q[64], known[256];

	if (!json_is_object(obj))
		return mgmt_fail(rq, -EINVAL, "%s must be a JSON object, not %s", what,
		                 body_type_name(json_typeof(obj)));
	json_object_foreach((json_t *)obj, key, v) {
		const struct mgmt_field *fd = body_field(f, n, key);

		if (!fd) {
			body_known(f, n, known, sizeof(known));
			return mgmt_fail(rq, -EINVAL, "%s: unknown field \"%s\" (known: %s)",
			                 what, mgmt_quote(key, q, sizeof(q)), known);
		}
		if (!body_type_ok(v, fd))
			return mgmt_fail(rq, -EINVAL, "%s: \"%s\" must be %s%s, not %s", what,
			                 fd->name, body_type_name(fd->type),
			                 fd->nullable ? " or null" : "",
			                 body_type_name(json_typeof(v)));
	}
	for (size_t i = 0; i < n; i++)
		if (f[i].required && !json_object_get(obj, f[i].name))
			return mgmt_fail(rq, -EINVAL, "%s: missing field \"%s\"", what,
			                 f[i].name);
	return MGMT_PENDING;
}

/* store.h: 1 to STORE_NAME_MAX bytes of [A-Za-z0-9._:-], not starting with
 * '.' or '-' (so never "." or ".."). */
bool mgmt_vol_name_ok(const char *name, const char **why)
{
	size_t n = strlen(name);

	if (n == 0 || n > STORE_NAME_MAX) {
		*why = "must be 1 to 128 bytes long";
		return false;
	}
	if (name[0] == '.' || name[0] == '-') {
		*why = "must not start with '.' or '-'";
		return false;
	}
	for (const char *p = name; *p; p++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		            "0123456789._:-", *p)) {
			*why = "may only hold letters, digits and . _ : -";
			return false;
		}
	}
	return true;
}

bool mgmt_size_ok(json_int_t size, const char **why)
{
	if (size <= 0 || (uint64_t)size > STORE_VOL_MAX_SECTORS * STORE_SECTOR) {
		*why = "must be between 512 bytes and 64 TiB";
		return false;
	}
	if (size % STORE_SECTOR) {
		*why = "must be a multiple of 512 bytes";
		return false;
	}
	return true;
}

/* At most len - 1 bytes: printable ASCII kept, others as '?', and a long
 * string cut with "..." (a 10 KiB name must not become a 10 KiB message). */
const char *mgmt_quote(const char *s, char *buf, size_t len)
{
	size_t i = 0, n = strlen(s);

	for (; i + 1 < len && s[i]; i++)
		buf[i] = s[i] >= ' ' && s[i] <= '~' && s[i] != '"' ? s[i] : '?';
	buf[i] = '\0';
	if (n > i && len > 4)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

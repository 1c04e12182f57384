/* store/meta.c: small named metadata records for the store's clients.
 *
 * Targets, ACLs, CHAP secrets and reservations belong to iscsi/ and mgmt/,
 * but they must survive crashes atomically with the data, so they travel in
 * the same log (FMT_ENT_META_PUT / FMT_ENT_META_DEL entries) and the same
 * checkpoints. In memory they are a sorted array: a few thousand records,
 * read far more often than written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

bool store_meta_key_ok(const char *key, size_t len)
{
	if (len == 0 || len > STORE_META_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (key[i] <= ' ' || key[i] > '~')
			return false;
	return true;
}

size_t store_meta_ckpt_bytes(const struct store_meta_ent *m)
{
	return sizeof(struct fmt_ckpt_meta) + ((m->key_len + m->value_len + 7u) & ~7u);
}

/* Index of key, or of where it would go (*found false). */
static uint32_t meta_find(const struct store_pool *p, const char *key, size_t len,
                          bool *found)
{
	uint32_t lo = 0, hi = p->nmeta;

	*found = false;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		const struct store_meta_ent *m = &p->meta[mid];
		int c = memcmp(m->key, key, m->key_len < len ? m->key_len : len);

		if (c == 0)
			c = m->key_len < len ? -1 : m->key_len > len;
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void meta_remove(struct store_pool *p, uint32_t i)
{
	p->meta_bytes -= store_meta_ckpt_bytes(&p->meta[i]);
	free(p->meta[i].key);
	memmove(&p->meta[i], &p->meta[i + 1], (p->nmeta - i - 1) * sizeof(p->meta[0]));
	p->nmeta--;
}

int store_meta_apply(struct store_pool *p, const char *key, size_t key_len,
                     const void *value, size_t value_len, bool put)
{
	bool found;
	uint32_t i = meta_find(p, key, key_len, &found);
	struct store_meta_ent m;

	if (found)
		meta_remove(p, i);
	if (!put)
		return 0;
	if (p->nmeta == p->meta_cap) {
		uint32_t cap = p->meta_cap ? p->meta_cap * 2 : 64;
		struct store_meta_ent *n = realloc(p->meta, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->meta = n;
		p->meta_cap = cap;
	}
	m.key = malloc(key_len + 1 + value_len);
	if (!m.key)
		return -ENOMEM;
	memcpy(m.key, key, key_len);
	m.key[key_len] = '\0';
	memcpy(m.key + key_len + 1, value, value_len);
	m.key_len = (uint32_t)key_len;
	m.value_len = (uint32_t)value_len;
	memmove(&p->meta[i + 1], &p->meta[i], (p->nmeta - i) * sizeof(m));
	p->meta[i] = m;
	p->nmeta++;
	p->meta_bytes += store_meta_ckpt_bytes(&m);
	return 0;
}

void store_meta_free_all(struct store_pool *p)
{
	for (uint32_t i = 0; i < p->nmeta; i++)
		free(p->meta[i].key);
	free(p->meta);
	p->meta = NULL;
	p->nmeta = p->meta_cap = 0;
	p->meta_bytes = 0;
}

static void meta_submit(struct store_pool *p, const char *key, const void *value,
                        size_t len, bool put, store_done_fn *done, void *arg)
{
	size_t klen = key ? strlen(key) : 0;
	struct store_req *r = calloc(1, sizeof(*r));
	bool found;
	int err = 0;

	if (!r) {
		done(arg, -ENOMEM);     /* no request to defer with */
		return;
	}
	r->type = REQ_META;
	r->meta = put ? FMT_ENT_META_PUT : FMT_ENT_META_DEL;
	r->done = done;
	r->arg = arg;
	if (!store_meta_key_ok(key, klen) || (put && len > STORE_META_VALUE_MAX) ||
	    (put && len && !value))
		err = -EINVAL;
	else if (p->failed)
		err = STORE_EFAILED;
	else if (p->read_only)
		err = STORE_EREADONLY;
	else if (p->closing)
		err = -ESHUTDOWN;
	else if (!put && (meta_find(p, key, klen, &found), !found))
		err = -ENOENT;
	else if (!(r->blob = malloc(klen + len + 1)))
		err = -ENOMEM;
	if (err) {
		store_req_defer(p, r, err);
		return;
	}
	memcpy(r->blob, key, klen);
	if (put)
		memcpy(r->blob + klen, value, len);
	r->key_len = (uint32_t)klen;
	r->value_len = put ? (uint32_t)len : 0;
	store_log_enqueue(p, r);
}

void store_meta_put(struct store_pool *p, const char *key, const void *value,
                    size_t len, store_done_fn *done, void *arg)
{
	meta_submit(p, key, value, len, true, done, arg);
}

void store_meta_delete(struct store_pool *p, const char *key,
                       store_done_fn *done, void *arg)
{
	meta_submit(p, key, NULL, 0, false, done, arg);
}

int store_meta_get(struct store_pool *p, const char *key, const void **value,
                   size_t *len)
{
	size_t klen = key ? strlen(key) : 0;
	bool found;
	uint32_t i = klen ? meta_find(p, key, klen, &found) : 0;

	if (!klen || !found)
		return -ENOENT;
	*value = p->meta[i].key + klen + 1;
	*len = p->meta[i].value_len;
	return 0;
}

int store_meta_foreach(struct store_pool *p, const char *prefix,
                       store_meta_fn *fn, void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	bool found;

	for (uint32_t i = plen ? meta_find(p, prefix, plen, &found) : 0; i < p->nmeta; i++) {
		const struct store_meta_ent *m = &p->meta[i];
		int rc;

		if (m->key_len < plen || memcmp(m->key, prefix, plen) != 0)
			break;
		rc = fn(arg, m->key, m->key + m->key_len + 1, m->value_len);
		if (rc)
			return rc;
	}
	return 0;
}

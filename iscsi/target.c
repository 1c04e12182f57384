/* iscsi/target.c: targets as the store's metadata holds them, read at each
 * login so a change made through mgmt/ applies to the next login at once.
 *
 * Key "target/<iqn>", value JSON (the contract with mgmt/):
 *   {"iqn": "<iqn>", "luns": [{"lun": 0, "volume": "db1"}, ...],
 *    "allow": ["*"] | ["<initiator iqn>", ...],
 *    "chap": null | {"user", "secret", "mutual_user", "mutual_secret"}}
 * Unknown members are ignored, so mgmt/ may add some (an alias, say). A
 * missing "allow" admits every initiator; an empty list admits none.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/internal.h"

#define TARGET_LUNS_MAX         256
/* A SendTargets answer goes out in MaxRecvDataSegmentLength pieces (C bit,
 * RFC 7143 11.11.2), so it may be far longer than login text: a desktop
 * pool with a target per clone has thousands (~120 bytes each). */
#define SEND_TARGETS_MAX        (16u << 20)

void iscsi_target_free(struct iscsi_target *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nallow; i++)
		free(t->allow[i]);
	free(t->allow);
	free(t->luns);
	free(t->chap_user);
	free(t->chap_secret);
	free(t->mutual_user);
	free(t->mutual_secret);
	free(t);
}

static int target_luns_parse(struct iscsi_target *t, json_t *luns)
{
	size_t i;
	json_t *e;

	if (!luns)
		return 0;
	if (!json_is_array(luns) || json_array_size(luns) > TARGET_LUNS_MAX)
		return -EINVAL;
	t->luns = calloc(json_array_size(luns) + 1, sizeof(*t->luns));
	if (!t->luns)
		return -ENOMEM;
	json_array_foreach(luns, i, e) {
		json_int_t lun;
		const char *vol;

		if (json_unpack(e, "{s:I, s:s}", "lun", &lun, "volume", &vol) < 0 ||
		    lun < 0 || lun > 16383 || strlen(vol) > STORE_NAME_MAX)
			return -EINVAL;
		t->luns[t->nluns].lun = (uint64_t)lun;
		strcpy(t->luns[t->nluns].vol, vol);
		t->nluns++;
	}
	return 0;
}

static int target_allow_parse(struct iscsi_target *t, json_t *allow)
{
	size_t i;
	json_t *e;

	if (!allow) {
		t->allow_all = true;
		return 0;
	}
	if (!json_is_array(allow))
		return -EINVAL;
	t->allow = calloc(json_array_size(allow) + 1, sizeof(*t->allow));
	if (!t->allow)
		return -ENOMEM;
	json_array_foreach(allow, i, e) {
		const char *name = json_string_value(e);

		if (!name)
			return -EINVAL;
		if (strcmp(name, "*") == 0)
			t->allow_all = true;
		else if (!(t->allow[t->nallow++] = strdup(name)))
			return -ENOMEM;
	}
	return 0;
}

static int target_chap_parse(struct iscsi_target *t, json_t *chap)
{
	const char *user = NULL, *secret = NULL, *muser = NULL, *msecret = NULL;

	if (!chap || json_is_null(chap))
		return 0;
	if (json_unpack(chap, "{s:s, s:s, s?s, s?s}", "user", &user, "secret", &secret,
	                "mutual_user", &muser, "mutual_secret", &msecret) < 0)
		return -EINVAL;
	t->chap = true;
	if (!(t->chap_user = strdup(user)) || !(t->chap_secret = strdup(secret)))
		return -ENOMEM;
	if (muser && msecret && *muser && *msecret &&
	    (!(t->mutual_user = strdup(muser)) || !(t->mutual_secret = strdup(msecret))))
		return -ENOMEM;
	return 0;
}

static int target_parse(const void *value, size_t len, struct iscsi_target **out)
{
	struct iscsi_target *t = calloc(1, sizeof(*t));
	json_t *root = json_loadb(value, len, 0, NULL), *luns = NULL, *allow = NULL, *chap = NULL;
	const char *iqn;
	int err = -EINVAL;

	if (!t)
		err = -ENOMEM;
	if (!t || !root)
		goto fail;
	if (json_unpack(root, "{s:s, s?o, s?o, s?o}", "iqn", &iqn, "luns", &luns,
	                "allow", &allow, "chap", &chap) < 0 || strlen(iqn) > ISCSI_NAME_MAX)
		goto fail;
	strcpy(t->iqn, iqn);
	if ((err = target_luns_parse(t, luns)) < 0 || (err = target_allow_parse(t, allow)) < 0 ||
	    (err = target_chap_parse(t, chap)) < 0)
		goto fail;
	json_decref(root);
	*out = t;
	return 0;
fail:
	json_decref(root);
	iscsi_target_free(t);
	return err;
}

int iscsi_target_load(struct iscsi_srv *s, const char *iqn, struct iscsi_target **out)
{
	char key[STORE_META_KEY_MAX + 1];
	const void *value;
	size_t len;
	int err;

	if ((size_t)snprintf(key, sizeof(key), ISCSI_META_PREFIX "%s", iqn) >= sizeof(key))
		return -ENOENT;
	for (const char *k = key; *k; k++)
		if (*k <= ' ' || *k > '~')
			return -ENOENT;
	err = store_meta_get(s->pool, key, &value, &len);
	if (err < 0)
		return err;
	err = target_parse(value, len, out);
	if (err < 0) {
		iscsi_log(s, STORE_LOG_ERR, "metadata %s: not a valid target", key);
		return err;
	}
	if (strcasecmp((*out)->iqn, iqn) != 0) {
		iscsi_log(s, STORE_LOG_ERR, "metadata %s: names target %s", key, (*out)->iqn);
		iscsi_target_free(*out);
		return -EINVAL;
	}
	return 0;
}

/* iSCSI names compare without regard to case (RFC 3722 stringprep folds). */
bool iscsi_target_allows(const struct iscsi_target *t, const char *initiator)
{
	if (t->allow_all)
		return true;
	for (size_t i = 0; i < t->nallow; i++)
		if (strcasecmp(t->allow[i], initiator) == 0)
			return true;
	return false;
}

/* TargetAddress of a portal as this connection reaches it (RFC 7143
 * 13.8): a wildcard portal is reported with the connection's own address. */
static int target_address_add(struct iscsi_conn *c, const struct iscsi_portal *pt,
                              struct iscsi_kv_buf *out)
{
	char host[64] = "";
	bool v6;

	if (!pt->wildcard) {
		v6 = strchr(pt->host, ':') != NULL;
		snprintf(host, sizeof(host), "%s", pt->host);
	} else if (c->local.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->local;

		v6 = !IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
		inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? (const void *)&a->sin6_addr :
		          (const void *)&a->sin6_addr.s6_addr[12], host, sizeof(host));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&c->local;

		v6 = false;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
	}
	return iscsi_kv_add(out, "TargetAddress", v6 ? "[%s]:%u,%u" : "%s:%u,%u", host,
	                    pt->port, pt->tpgt);
}

struct send_targets {
	struct iscsi_conn   *c;
	const char          *which;
	const char          *initiator;
	struct iscsi_kv_buf *out;
};

static int target_send_one(void *arg, const char *key, const void *value, size_t len)
{
	struct send_targets *st = arg;
	struct iscsi_target *t;
	int err = 0;

	if (target_parse(value, len, &t) < 0)
		return 0;                       /* a bad record hides only itself */
	if ((strcmp(st->which, "All") == 0 || strcasecmp(st->which, t->iqn) == 0) &&
	    iscsi_target_allows(t, st->initiator)) {
		err = iscsi_kv_add(st->out, "TargetName", "%s", t->iqn);
		for (size_t i = 0; !err && i < st->c->srv->nportals; i++)
			err = target_address_add(st->c, &st->c->srv->portals[i], st->out);
	}
	(void)key;
	iscsi_target_free(t);
	return err;
}

int iscsi_target_send_targets(struct iscsi_conn *c, const char *which, const char *initiator,
                              struct iscsi_kv_buf *out)
{
	struct send_targets st = { c, which, initiator, out };

	if (out->max < SEND_TARGETS_MAX)
		out->max = SEND_TARGETS_MAX;

	/* RFC 7143 12.3: in a normal session an empty value is this target */
	if (!*which && c->sess && c->sess->target)
		st.which = c->sess->target->iqn;
	return store_meta_foreach(c->srv->pool, ISCSI_META_PREFIX, target_send_one, &st);
}

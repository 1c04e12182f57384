/* iscsi/params.c: text keys (RFC 7143 6) and the table of operational keys
 * (RFC 7143 13) with their ranges, defaults and negotiation rules, used by
 * login.c for every key the initiator offers.
 *
 * Rules (RFC 7143 6.2): a numerical key with result function Minimum or
 * Maximum is answered with min/max(offered, ours); a Boolean with AND/OR
 * is answered with offered AND/OR ours; a list (digests) with the first
 * entry of the initiator's list we support; a declarative key is recorded
 * and, for MaxRecvDataSegmentLength, answered with our own declaration.
 * A value outside its range or of the wrong type is answered "Reject"; an
 * unknown key "NotUnderstood"; a key that does not apply to a discovery
 * session "Irrelevant". None of these fail the login.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/internal.h"

#define KEY_NAME_MAX            63      /* RFC 7143 6.1 */
#define KEY_VALUE_MAX           8192    /* CHAP_C/CHAP_R may be long */

/* Our side of each negotiation */
#define OUR_MAX_RECV_DSL        (256u << 10)
#define OUR_MAX_BURST           (1u << 20)
#define OUR_FIRST_BURST         (256u << 10)

struct iscsi_text {
	char   *buf;
	size_t  n;
	struct { const char *key, *value; } kv[];
};

void iscsi_params_default(struct iscsi_params *p)
{
	/* RFC 7143 13: the defaults when a key is not negotiated */
	*p = (struct iscsi_params){
		.max_recv_dsl   = 8192,
		.max_send_dsl   = 8192,
		.max_burst      = 262144,
		.first_burst    = 65536,
		.time2wait      = 2,
		.time2retain    = 20,
		.max_r2t        = 1,
		.max_conns      = 1,
		.erl            = 0,
		.initial_r2t    = true,
		.immediate_data = true,
		.pdu_in_order   = true,
		.seq_in_order   = true,
	};
}

/* Text: "key=value\0key=value\0..." (RFC 7143 6.1) */

int iscsi_text_parse(const char *buf, size_t len, struct iscsi_text **out)
{
	size_t items = 0, n = 0;
	struct iscsi_text *t;
	char *s, *end, *next;

	for (size_t i = 0; i < len; i++)
		items += buf[i] == '\0';
	t = calloc(1, sizeof(*t) + (items + 1) * sizeof(t->kv[0]));
	if (!t || !(t->buf = malloc(len + 1))) {
		free(t);
		return -ENOMEM;
	}
	if (len)                /* an empty text has no buffer */
		memcpy(t->buf, buf, len);
	t->buf[len] = '\0';
	for (s = t->buf, end = t->buf + len; s < end; s = next) {
		char *eq = strchr(s, '=');

		next = s + strlen(s) + 1;
		if (*s == '\0')
			continue;       /* padding */
		if (!eq || eq == s || eq - s > KEY_NAME_MAX || strlen(eq + 1) > KEY_VALUE_MAX)
			goto fail;
		*eq = '\0';
		for (size_t i = 0; i < n; i++)
			if (strcmp(t->kv[i].key, s) == 0)
				goto fail;      /* RFC 7143 6.1: offered once */
		t->kv[n].key = s;
		t->kv[n].value = eq + 1;
		n++;
	}
	t->n = n;
	*out = t;
	return 0;
fail:
	iscsi_text_free(t);
	return -EINVAL;
}

void iscsi_text_free(struct iscsi_text *t)
{
	if (t)
		free(t->buf);
	free(t);
}

const char *iscsi_text_get(const struct iscsi_text *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->kv[i].key, key) == 0)
			return t->kv[i].value;
	return NULL;
}

size_t iscsi_text_count(const struct iscsi_text *t)
{
	return t->n;
}

const char *iscsi_text_key(const struct iscsi_text *t, size_t i, const char **value)
{
	*value = t->kv[i].value;
	return t->kv[i].key;
}

int iscsi_kv_add(struct iscsi_kv_buf *b, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;

		if (b->buf) {
			n = snprintf(b->buf + b->len, room, "%s=", key);
			if (n >= 0 && (size_t)n < room) {
				va_start(ap, fmt);
				int m = vsnprintf(b->buf + b->len + n, room - (size_t)n, fmt, ap);
				va_end(ap);
				if (m >= 0 && (size_t)(n + m) < room) {
					b->len += (uint32_t)(n + m + 1);   /* keep the NUL */
					return 0;
				}
			}
		}
		if (b->cap >= (b->max ? b->max : ISCSI_TEXT_MAX))
			return -E2BIG;
		char *nb = realloc(b->buf, b->cap ? b->cap * 2 : 1024);
		if (!nb)
			return -ENOMEM;
		b->buf = nb;
		b->cap = b->cap ? b->cap * 2 : 1024;
	}
}

/* The operational key table */

enum iscsi_key_rule {
	KEY_MIN,                /* numerical, result min(offered, ours) */
	KEY_MAX,                /* numerical, result max(offered, ours) */
	KEY_DECLARE,            /* numerical, declarative: the sender's own limit */
	KEY_AND,                /* Boolean AND */
	KEY_OR,                 /* Boolean OR */
	KEY_DIGEST,             /* list of CRC32C, None */
	KEY_IRRELEVANT,         /* obsolete markers: always "Irrelevant" */
	KEY_FIXED,              /* answered with a fixed string */
};

#define KEY_SESSION_ONLY        0x1u    /* irrelevant in discovery (RFC 7143 13) */
#define KEY_LEADING             0x2u    /* session-wide: leading connection only */
#define KEY_NONE                ((size_t)-1)

struct iscsi_key {
	const char         *name;
	enum iscsi_key_rule rule;
	unsigned            flags;
	uint32_t            min, max, ours;
	size_t              off;            /* field in struct iscsi_params */
	const char         *fixed;
};

#define P(f) offsetof(struct iscsi_params, f)

static const struct iscsi_key iscsi_keys[] = {
	{ "HeaderDigest", KEY_DIGEST, 0, 0, 0, 0, P(header_digest), NULL },
	{ "DataDigest", KEY_DIGEST, 0, 0, 0, 0, P(data_digest), NULL },
	{ "MaxConnections", KEY_MIN, KEY_SESSION_ONLY | KEY_LEADING, 1, 65535, 1,
	  P(max_conns), NULL },
	{ "InitialR2T", KEY_OR, KEY_SESSION_ONLY | KEY_LEADING, 0, 1, 0, P(initial_r2t), NULL },
	{ "ImmediateData", KEY_AND, KEY_SESSION_ONLY | KEY_LEADING, 0, 1, 1,
	  P(immediate_data), NULL },
	{ "MaxRecvDataSegmentLength", KEY_DECLARE, 0, 512, ISCSI_DSL_MAX, OUR_MAX_RECV_DSL,
	  P(max_send_dsl), NULL },
	{ "MaxBurstLength", KEY_MIN, KEY_SESSION_ONLY | KEY_LEADING, 512, ISCSI_DSL_MAX,
	  OUR_MAX_BURST, P(max_burst), NULL },
	{ "FirstBurstLength", KEY_MIN, KEY_SESSION_ONLY | KEY_LEADING, 512, ISCSI_DSL_MAX,
	  OUR_FIRST_BURST, P(first_burst), NULL },
	{ "DefaultTime2Wait", KEY_MAX, KEY_LEADING, 0, 3600, 2, P(time2wait), NULL },
	{ "DefaultTime2Retain", KEY_MIN, KEY_LEADING, 0, 3600, 20, P(time2retain), NULL },
	{ "MaxOutstandingR2T", KEY_MIN, KEY_SESSION_ONLY | KEY_LEADING, 1, 65535,
	  ISCSI_R2T_MAX, P(max_r2t), NULL },
	{ "DataPDUInOrder", KEY_OR, KEY_SESSION_ONLY | KEY_LEADING, 0, 1, 1,
	  P(pdu_in_order), NULL },
	{ "DataSequenceInOrder", KEY_OR, KEY_SESSION_ONLY | KEY_LEADING, 0, 1, 1,
	  P(seq_in_order), NULL },
	{ "ErrorRecoveryLevel", KEY_MIN, KEY_LEADING, 0, 2, 0, P(erl), NULL },
	{ "IFMarker", KEY_FIXED, 0, 0, 0, 0, KEY_NONE, "No" },
	{ "OFMarker", KEY_FIXED, 0, 0, 0, 0, KEY_NONE, "No" },
	{ "IFMarkInt", KEY_IRRELEVANT, 0, 0, 0, 0, KEY_NONE, NULL },
	{ "OFMarkInt", KEY_IRRELEVANT, 0, 0, 0, 0, KEY_NONE, NULL },
	{ "RDMAExtensions", KEY_FIXED, 0, 0, 0, 0, KEY_NONE, "No" },       /* RFC 7145 */
	{ "TaskReporting", KEY_FIXED, 0, 0, 0, 0, KEY_NONE, "RFC3720" },   /* RFC 7144 */
};

/* Login keys handled by login.c, not negotiated here. */
static const char *const iscsi_login_keys[] = {
	"InitiatorName", "InitiatorAlias", "TargetName", "TargetAlias", "SessionType",
	"TargetAddress", "TargetPortalGroupTag", "AuthMethod", "CHAP_A", "CHAP_I",
	"CHAP_C", "CHAP_N", "CHAP_R", "SendTargets",
};

bool iscsi_key_is_security(const char *key)
{
	for (size_t i = 0; i < sizeof(iscsi_login_keys) / sizeof(iscsi_login_keys[0]); i++)
		if (strcmp(iscsi_login_keys[i], key) == 0)
			return true;
	return false;
}

/* RFC 7143 6.1: decimal or 0x hex numbers, no sign. */
static int iscsi_num_parse(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int iscsi_bool_parse(const char *s, bool *out)
{
	if (strcmp(s, "Yes") == 0)
		*out = true;
	else if (strcmp(s, "No") == 0)
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* "CRC32C,None": the first the initiator lists that we know. */
static int iscsi_digest_pick(const char *list, bool *crc)
{
	char tmp[256], *save = NULL;

	if (strlen(list) >= sizeof(tmp))
		return -EINVAL;
	strcpy(tmp, list);
	for (char *v = strtok_r(tmp, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
		if (strcmp(v, "CRC32C") == 0 || strcmp(v, "None") == 0) {
			*crc = v[0] == 'C';
			return 0;
		}
	}
	return -EINVAL;
}

static int iscsi_key_num(struct iscsi_params *p, const struct iscsi_key *k, const char *value,
                         struct iscsi_kv_buf *out)
{
	uint32_t *f = (uint32_t *)(void *)((char *)p + k->off);
	uint32_t v;

	if (iscsi_num_parse(value, k->min, k->max, &v) < 0)
		return iscsi_kv_add(out, k->name, "Reject");
	if (k->rule == KEY_DECLARE) {
		*f = v;         /* the initiator's limit; ours is declared by login.c */
		return 0;
	}
	*f = k->rule == KEY_MIN ? (v < k->ours ? v : k->ours) : (v > k->ours ? v : k->ours);
	return iscsi_kv_add(out, k->name, "%u", *f);
}

static int iscsi_key_bool(struct iscsi_params *p, const struct iscsi_key *k, const char *value,
                          struct iscsi_kv_buf *out)
{
	bool *f = (bool *)((char *)p + k->off);
	bool v;

	if (iscsi_bool_parse(value, &v) < 0)
		return iscsi_kv_add(out, k->name, "Reject");
	*f = k->rule == KEY_AND ? (v && k->ours) : (v || k->ours);
	return iscsi_kv_add(out, k->name, "%s", *f ? "Yes" : "No");
}

static int iscsi_key_answer(struct iscsi_params *p, const struct iscsi_key *k,
                            const char *value, struct iscsi_kv_buf *out)
{
	bool crc;

	switch (k->rule) {
	case KEY_MIN:
	case KEY_MAX:
	case KEY_DECLARE:
		return iscsi_key_num(p, k, value, out);
	case KEY_AND:
	case KEY_OR:
		return iscsi_key_bool(p, k, value, out);
	case KEY_DIGEST:
		if (iscsi_digest_pick(value, &crc) < 0)
			return iscsi_kv_add(out, k->name, "Reject");
		*(bool *)((char *)p + k->off) = crc;
		return iscsi_kv_add(out, k->name, "%s", crc ? "CRC32C" : "None");
	case KEY_IRRELEVANT:
		return iscsi_kv_add(out, k->name, "Irrelevant");
	case KEY_FIXED:
		return iscsi_kv_add(out, k->name, "%s", k->fixed);
	}
	return -EINVAL;
}

int iscsi_params_negotiate(struct iscsi_params *p, const char *key, const char *value,
                           bool discovery, bool leading, struct iscsi_kv_buf *out)
{
	for (size_t i = 0; i < sizeof(iscsi_keys) / sizeof(iscsi_keys[0]); i++) {
		const struct iscsi_key *k = &iscsi_keys[i];

		if (strcmp(k->name, key) != 0)
			continue;
		if (discovery && (k->flags & KEY_SESSION_ONLY))
			return iscsi_kv_add(out, key, "Irrelevant");
		if (!leading && (k->flags & KEY_LEADING))
			return iscsi_kv_add(out, key, "Reject");
		return iscsi_key_answer(p, k, value, out);
	}
	return iscsi_kv_add(out, key, "NotUnderstood");
}

/* After all keys: our own declaration and the cross-key rules. */
void iscsi_params_finish(struct iscsi_params *p)
{
	p->max_recv_dsl = OUR_MAX_RECV_DSL;
	if (p->first_burst > p->max_burst)      /* RFC 7143 13.14 */
		p->first_burst = p->max_burst;
}

/* iscsi/login.c: the login phase (RFC 7143 6.3, 11.12, 11.13) and CHAP
 * (RFC 7143 12.1.3, RFC 1994).
 *
 * Stages, as the initiator moves through them (CSG -> NSG with T=1):
 *
 *   SecurityNegotiation (0) --T--> LoginOperationalNegotiation (1) --T--> Full (3)
 *            \______________________________T____________________________/
 *
 *   first PDU: iscsi_login_first   names, session type, target, allow-list
 *   stage 0:   iscsi_login_security AuthMethod, then CHAP_A -> challenge,
 *                                  CHAP_N/CHAP_R -> verify (and answer a
 *                                  mutual challenge)
 *   stage 0/1: iscsi_params_negotiate for every operational key
 *   T to 3:    iscsi_login_finish  session created, TSIH assigned
 *
 * A failed login gets one Login Response with the status (RFC 7143
 * 11.13.5) and the connection closes once it is sent. Text spread over
 * several PDUs (C bit) is gathered up to ISCSI_TEXT_MAX first.
 */
#include <endian.h>
#include <errno.h>
#include <jansson.h>
#include <nettle/base64.h>
#include <nettle/md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "iscsi/internal.h"

#define CHAP_ALG_MD5            5
#define CHAP_CHALLENGE_LEN      16
#define CHAP_BIN_MAX            1024

enum chap_state {
	CHAP_OFF,               /* no AuthMethod=CHAP agreed */
	CHAP_WAIT_A,            /* AuthMethod=CHAP agreed: expect CHAP_A */
	CHAP_WAIT_R,            /* challenge sent: expect CHAP_N, CHAP_R */
};

struct iscsi_login {
	bool                 started;
	uint8_t              isid[6];
	uint16_t             tsih;
	uint16_t             cid;
	uint32_t             itt;
	uint32_t             cmdsn;
	char                 initiator[ISCSI_NAME_MAX + 1];
	bool                 discovery;
	struct iscsi_target *target;
	struct iscsi_target *disc;      /* discovery: its CHAP account, or NULL */
	bool                 auth_needed, auth_done;
	enum chap_state      chap;
	uint8_t              chap_id;
	uint8_t              chap_c[CHAP_CHALLENGE_LEN];
	struct iscsi_params  params;
	char                *text;          /* gathered over C bits */
	uint32_t             text_len;
	struct iscsi_kv_buf  rsp;
};

void iscsi_login_free(struct iscsi_login *l)
{
	if (!l)
		return;
	iscsi_target_free(l->target);
	iscsi_target_free(l->disc);
	free(l->text);
	free(l->rsp.buf);
	free(l);
}

/* CHAP: MD5(id || secret || challenge), RFC 1994 4.1 */
int iscsi_chap_md5(uint8_t id, const void *secret, size_t slen, const void *chal,
                   size_t clen, uint8_t out[16])
{
	struct md5_ctx ctx;

	md5_init(&ctx);
	md5_update(&ctx, 1, &id);
	md5_update(&ctx, slen, secret);
	md5_update(&ctx, clen, chal);
	md5_digest(&ctx, MD5_DIGEST_SIZE, out);
	return 0;
}

static int iscsi_hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int iscsi_base64_decode(const char *s, uint8_t *out, size_t max, size_t *len)
{
	struct base64_decode_ctx ctx;
	size_t n = max, slen = strlen(s);

	if (BASE64_DECODE_LENGTH(slen) > max)
		return -EINVAL;
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &n, out, slen, s) || !base64_decode_final(&ctx))
		return -EINVAL;
	*len = n;
	return 0;
}

/* RFC 7143 6.1: binary values are 0x<hex> or 0b<base64>. */
int iscsi_hex_decode(const char *s, uint8_t *out, size_t max, size_t *len)
{
	size_t n, i;

	if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
		return iscsi_base64_decode(s + 2, out, max, len);
	if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return -EINVAL;
	s += 2;
	n = strlen(s);
	if (n == 0 || (n + 1) / 2 > max)
		return -EINVAL;
	for (i = 0; i < (n + 1) / 2; i++) {
		/* an odd count has an implied leading zero */
		int hi = (n & 1) && i == 0 ? 0 : iscsi_hex_nibble(*s++);
		int lo = iscsi_hex_nibble(*s++);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = i;
	return 0;
}

static void iscsi_hex_encode(const uint8_t *b, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	*out++ = '0';
	*out++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*out++ = hex[b[i] >> 4];
		*out++ = hex[b[i] & 15];
	}
	*out = '\0';
}

static bool iscsi_mem_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* Responses */

static void iscsi_login_respond(struct iscsi_conn *c, const union iscsi_hdr *req,
                                unsigned status, bool transit, uint8_t nsg)
{
	struct iscsi_login *l = c->login;
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_LOGIN_RSP, status ? 0 : l->rsp.len);
	struct iscsi_bhs_login *h;

	if (!p) {
		iscsi_conn_close(c, "out of memory");
		return;
	}
	h = &p->hdr.login;
	h->flags = (uint8_t)(ISCSI_LOGIN_CSG(req->login.flags) << 2);
	if (transit)
		h->flags |= ISCSI_LOGIN_TRANSIT | nsg;
	h->vmax = 0;
	h->vmin = 0;                            /* Version-active */
	memcpy(h->isid, l->isid, 6);
	h->tsih = htobe16(l->tsih);
	h->itt = req->login.itt;
	h->status_class = (uint8_t)(status >> 8);
	h->status_detail = (uint8_t)status;
	if (!status && l->rsp.len)
		memcpy(p->data, l->rsp.buf, l->rsp.len);
	l->rsp.len = 0;
	p->statsn = true;
	p->close_after = status != 0;
	iscsi_conn_send(c, p);
}

static void iscsi_login_fail(struct iscsi_conn *c, const union iscsi_hdr *req,
                             unsigned status, const char *why)
{
	struct iscsi_login *l = c->login;

	iscsi_log(c->srv, STORE_LOG_WARN, "%s: login of %s to %s refused (0x%04x): %s", c->peer,
	          l->initiator[0] ? l->initiator : "?", l->target ? l->target->iqn :
	          l->discovery ? "discovery" : "?", status, why);
	iscsi_login_respond(c, req, status, false, 0);
	if (c->state == ISCSI_CONN_CLOSED)
		return;
	c->state = ISCSI_CONN_LOGOUT;           /* nothing more is read */
	ev_io_stop(c->loop, &c->rio);
}

/* The CHAP account of discovery sessions (record ISCSI_DISCOVERY_KEY),
 * as a target without LUNs; *out NULL when none is set. An unreadable
 * record is an error: discovery then fails closed. */
static int iscsi_login_disc_auth(struct iscsi_srv *s, struct iscsi_target **out)
{
	const char *user, *secret, *muser = NULL, *msecret = NULL;
	json_t *root = NULL, *chap = NULL;
	struct iscsi_target *t = NULL;
	const void *v;
	size_t len;
	int err = -EINVAL;

	*out = NULL;
	if (store_meta_get(s->pool, ISCSI_DISCOVERY_KEY, &v, &len) < 0)
		return 0;
	if (!(root = json_loadb(v, len, 0, NULL)) ||
	    json_unpack(root, "{s?o}", "chap", &chap) < 0)
		goto out;
	err = 0;
	if (!chap || json_is_null(chap))
		goto out;
	err = -EINVAL;
	if (json_unpack(chap, "{s:s, s:s, s?s, s?s}", "user", &user, "secret", &secret,
	                "mutual_user", &muser, "mutual_secret", &msecret) < 0)
		goto out;
	err = -ENOMEM;
	if (!(t = calloc(1, sizeof(*t))) || !(t->chap_user = strdup(user)) ||
	    !(t->chap_secret = strdup(secret)))
		goto out;
	t->chap = true;
	if (muser && msecret && *muser && *msecret &&
	    (!(t->mutual_user = strdup(muser)) || !(t->mutual_secret = strdup(msecret))))
		goto out;
	*out = t;
	t = NULL;
	err = 0;
out:
	iscsi_target_free(t);
	json_decref(root);
	if (err < 0)
		iscsi_log(s, STORE_LOG_ERR, "metadata %s: not valid discovery settings",
		          ISCSI_DISCOVERY_KEY);
	return err;
}

/* The first PDU names the initiator, the session type and the target. */
static unsigned iscsi_login_first(struct iscsi_conn *c, const union iscsi_hdr *h,
                                  const struct iscsi_text *kv, const char **why)
{
	struct iscsi_login *l = c->login;
	const char *init = iscsi_text_get(kv, "InitiatorName");
	const char *type = iscsi_text_get(kv, "SessionType");
	const char *tname = iscsi_text_get(kv, "TargetName");
	int err;

	memcpy(l->isid, h->login.isid, 6);
	l->tsih = be16toh(h->login.tsih);
	l->cid = be16toh(h->login.cid);
	l->cmdsn = be32toh(h->login.sn);
	c->statsn = be32toh(h->login.exp_sn);
	c->exp_statsn = l->cmdsn;               /* the window until the session exists */
	if (!init || !*init || strlen(init) > ISCSI_NAME_MAX)
		return *why = "no InitiatorName", ISCSI_LOGIN_MISSING_PARAM;
	strcpy(l->initiator, init);
	if (type && strcmp(type, "Discovery") == 0) {
		l->discovery = true;
		if (iscsi_login_disc_auth(c->srv, &l->disc) < 0)
			return *why = "discovery settings unreadable", ISCSI_LOGIN_TARGET_ERROR;
		l->auth_needed = l->disc != NULL;
		return 0;
	}
	if (type && strcmp(type, "Normal") != 0)
		return *why = "unknown SessionType", ISCSI_LOGIN_SESSION_TYPE;
	if (!tname || !*tname)
		return *why = "no TargetName", ISCSI_LOGIN_MISSING_PARAM;
	if (l->tsih != 0)       /* MaxConnections=1: no connection joins a session */
		return *why = "adding a connection to a session", ISCSI_LOGIN_TOO_MANY_CONNS;
	err = iscsi_target_load(c->srv, tname, &l->target);
	if (err == -ENOENT)
		return *why = "no such target", ISCSI_LOGIN_NOT_FOUND;
	if (err < 0)
		return *why = "target configuration unreadable", ISCSI_LOGIN_TARGET_ERROR;
	if (!iscsi_target_allows(l->target, l->initiator))
		return *why = "initiator not in the allow-list", ISCSI_LOGIN_FORBIDDEN;
	l->auth_needed = l->target->chap;
	return 0;
}

/* AuthMethod: a list; CHAP when the target has credentials, else None. */
static unsigned iscsi_login_auth_method(struct iscsi_login *l, const char *list,
                                        const char **why)
{
	const char *want = l->auth_needed ? "CHAP" : "None";
	char tmp[256], *save = NULL;

	if (strlen(list) < sizeof(tmp)) {
		strcpy(tmp, list);
		for (char *v = strtok_r(tmp, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
			if (strcmp(v, want) != 0)
				continue;
			if (iscsi_kv_add(&l->rsp, "AuthMethod", "%s", want) < 0)
				return ISCSI_LOGIN_NO_RESOURCES;
			l->chap = l->auth_needed ? CHAP_WAIT_A : CHAP_OFF;
			l->auth_done = !l->auth_needed;
			return 0;
		}
	}
	*why = l->auth_needed ? "CHAP required, not offered" : "only CHAP offered, none set";
	return ISCSI_LOGIN_AUTH_FAILED;
}

static unsigned iscsi_login_chap_a(struct iscsi_login *l, const char *list, const char **why)
{
	char tmp[256], hex[2 * CHAP_CHALLENGE_LEN + 3], *save = NULL;
	bool md5 = false;

	if (strlen(list) >= sizeof(tmp))
		return *why = "CHAP_A too long", ISCSI_LOGIN_AUTH_FAILED;
	strcpy(tmp, list);
	for (char *v = strtok_r(tmp, ",", &save); v; v = strtok_r(NULL, ",", &save))
		md5 |= strcmp(v, "5") == 0;
	if (!md5)
		return *why = "CHAP_A without MD5", ISCSI_LOGIN_AUTH_FAILED;
	if (getrandom(l->chap_c, sizeof(l->chap_c), 0) != sizeof(l->chap_c) ||
	    getrandom(&l->chap_id, 1, 0) != 1)
		return *why = "no randomness", ISCSI_LOGIN_TARGET_ERROR;
	iscsi_hex_encode(l->chap_c, sizeof(l->chap_c), hex);
	if (iscsi_kv_add(&l->rsp, "CHAP_A", "%d", CHAP_ALG_MD5) < 0 ||
	    iscsi_kv_add(&l->rsp, "CHAP_I", "%u", l->chap_id) < 0 ||
	    iscsi_kv_add(&l->rsp, "CHAP_C", "%s", hex) < 0)
		return ISCSI_LOGIN_NO_RESOURCES;
	l->chap = CHAP_WAIT_R;
	return 0;
}

/* The initiator challenges us back (mutual CHAP). */
static unsigned iscsi_login_chap_mutual(struct iscsi_login *l, const char *id_s,
                                        const char *chal_s, const char **why)
{
	const struct iscsi_target *t = l->target ? l->target : l->disc;
	uint8_t chal[CHAP_BIN_MAX], md[16];
	char hex[2 * 16 + 3], *end;
	size_t clen;
	unsigned long id = strtoul(id_s, &end, 0);

	if (!t->mutual_user || !t->mutual_secret)
		return *why = "mutual CHAP asked, none set", ISCSI_LOGIN_AUTH_FAILED;
	if (*end || id > 255 || iscsi_hex_decode(chal_s, chal, sizeof(chal), &clen) < 0 ||
	    clen == 0)
		return *why = "bad CHAP_I or CHAP_C", ISCSI_LOGIN_AUTH_FAILED;
	if (clen == sizeof(l->chap_c) && memcmp(chal, l->chap_c, clen) == 0)
		return *why = "CHAP challenge reflected", ISCSI_LOGIN_AUTH_FAILED;
	iscsi_chap_md5((uint8_t)id, t->mutual_secret, strlen(t->mutual_secret), chal, clen, md);
	iscsi_hex_encode(md, sizeof(md), hex);
	if (iscsi_kv_add(&l->rsp, "CHAP_N", "%s", t->mutual_user) < 0 ||
	    iscsi_kv_add(&l->rsp, "CHAP_R", "%s", hex) < 0)
		return ISCSI_LOGIN_NO_RESOURCES;
	return 0;
}

static unsigned iscsi_login_chap_r(struct iscsi_login *l, const struct iscsi_text *kv,
                                   const char **why)
{
	const struct iscsi_target *t = l->target ? l->target : l->disc;
	const char *name = iscsi_text_get(kv, "CHAP_N");
	const char *resp = iscsi_text_get(kv, "CHAP_R");
	const char *id = iscsi_text_get(kv, "CHAP_I");
	const char *chal = iscsi_text_get(kv, "CHAP_C");
	uint8_t r[CHAP_BIN_MAX], md[16];
	size_t rlen;

	if (!name || !resp)
		return *why = "CHAP_N or CHAP_R missing", ISCSI_LOGIN_AUTH_FAILED;
	if (iscsi_hex_decode(resp, r, sizeof(r), &rlen) < 0 || rlen != sizeof(md))
		return *why = "bad CHAP_R", ISCSI_LOGIN_AUTH_FAILED;
	iscsi_chap_md5(l->chap_id, t->chap_secret, strlen(t->chap_secret), l->chap_c,
	               sizeof(l->chap_c), md);
	if (strcmp(name, t->chap_user) != 0 || !iscsi_mem_equal(r, md, sizeof(md)))
		return *why = "CHAP response does not match", ISCSI_LOGIN_AUTH_FAILED;
	if ((id != NULL) != (chal != NULL))
		return *why = "CHAP_I without CHAP_C", ISCSI_LOGIN_AUTH_FAILED;
	if (id) {
		unsigned st = iscsi_login_chap_mutual(l, id, chal, why);

		if (st)
			return st;
	}
	l->chap = CHAP_OFF;
	l->auth_done = true;
	return 0;
}

/* Security keys of one PDU of stage 0. */
static unsigned iscsi_login_security(struct iscsi_login *l, const struct iscsi_text *kv,
                                     const char **why)
{
	const char *am = iscsi_text_get(kv, "AuthMethod");
	const char *alg = iscsi_text_get(kv, "CHAP_A");

	if (am && !l->auth_done && l->chap == CHAP_OFF) {
		unsigned st = iscsi_login_auth_method(l, am, why);

		if (st)
			return st;
	}
	if (l->chap == CHAP_WAIT_A && alg)
		return iscsi_login_chap_a(l, alg, why);
	if (l->chap == CHAP_WAIT_R && iscsi_text_get(kv, "CHAP_R"))
		return iscsi_login_chap_r(l, kv, why);
	return 0;
}

/* Operational keys (and declarations) of one PDU. */
static unsigned iscsi_login_operational(struct iscsi_conn *c, const struct iscsi_text *kv)
{
	struct iscsi_login *l = c->login;

	for (size_t i = 0; i < iscsi_text_count(kv); i++) {
		const char *v, *k = iscsi_text_key(kv, i, &v);

		if (iscsi_key_is_security(k))
			continue;
		if (iscsi_params_negotiate(&l->params, k, v, l->discovery, true, &l->rsp) < 0)
			return ISCSI_LOGIN_NO_RESOURCES;
		if (strcmp(k, "MaxRecvDataSegmentLength") == 0 &&
		    iscsi_kv_add(&l->rsp, k, "%u", 256u << 10) < 0)
			return ISCSI_LOGIN_NO_RESOURCES;
	}
	return 0;
}

/* Transit to the full feature phase: the session exists from here on. */
static unsigned iscsi_login_finish(struct iscsi_conn *c, const char **why)
{
	struct iscsi_login *l = c->login;
	struct iscsi_sess *s;
	int err;

	iscsi_params_finish(&l->params);
	err = iscsi_sess_create(c, l->initiator, l->isid, l->target, l->cmdsn, &s);
	if (err < 0)
		return *why = "cannot create the session", ISCSI_LOGIN_NO_RESOURCES;
	l->target = NULL;                       /* the session owns it now */
	l->tsih = s->tsih;
	return 0;
}

/* Gathers text across C-bit PDUs. 1: more to come; 0: complete. */
static int iscsi_login_gather(struct iscsi_login *l, const struct iscsi_pdu *p)
{
	char *n;

	if (l->text_len + p->dlen > ISCSI_TEXT_MAX)
		return -E2BIG;
	n = realloc(l->text, l->text_len + p->dlen + 1);
	if (!n)
		return -ENOMEM;
	l->text = n;
	if (p->dlen)            /* an empty segment has no data buffer */
		memcpy(l->text + l->text_len, p->data, p->dlen);
	l->text_len += p->dlen;
	return (p->hdr.login.flags & ISCSI_LOGIN_CONTINUE) ? 1 : 0;
}

static unsigned iscsi_login_check_hdr(struct iscsi_conn *c, const union iscsi_hdr *h,
                                      const char **why)
{
	struct iscsi_login *l = c->login;
	uint8_t csg = ISCSI_LOGIN_CSG(h->login.flags), nsg = ISCSI_LOGIN_NSG(h->login.flags);

	if (h->login.vmin > 0)          /* RFC 7143 11.12.4: version 0 only */
		return *why = "version", ISCSI_LOGIN_UNSUPPORTED_VERSION;
	if (csg == 2 || csg == ISCSI_STAGE_FULL ||
	    ((h->login.flags & ISCSI_LOGIN_TRANSIT) && (nsg == 2 || nsg <= csg)))
		return *why = "bad stage", ISCSI_LOGIN_INITIATOR_ERROR;
	if ((h->login.flags & ISCSI_LOGIN_TRANSIT) && (h->login.flags & ISCSI_LOGIN_CONTINUE))
		return *why = "T and C both set", ISCSI_LOGIN_INITIATOR_ERROR;
	if (l->started && memcmp(l->isid, h->login.isid, 6) != 0)
		return *why = "ISID changed", ISCSI_LOGIN_INITIATOR_ERROR;
	return 0;
}

/* One complete request (its text gathered): negotiate and answer. */
static void iscsi_login_step(struct iscsi_conn *c, const union iscsi_hdr *h,
                             const struct iscsi_text *kv)
{
	struct iscsi_login *l = c->login;
	uint8_t csg = ISCSI_LOGIN_CSG(h->login.flags), nsg = ISCSI_LOGIN_NSG(h->login.flags);
	bool transit = h->login.flags & ISCSI_LOGIN_TRANSIT;
	const char *why = "";
	unsigned st = 0;

	if (!l->started) {
		st = iscsi_login_first(c, h, kv, &why);
		l->started = true;
		if (!st && l->target && iscsi_kv_add(&l->rsp, "TargetPortalGroupTag", "%u",
		                                     c->tpgt) < 0)
			st = ISCSI_LOGIN_NO_RESOURCES;
	}
	if (!st && csg == ISCSI_STAGE_SECURITY)
		st = iscsi_login_security(l, kv, &why);
	if (!st && csg == ISCSI_STAGE_OPERATIONAL && !l->auth_done && l->auth_needed)
		st = (why = "authentication skipped", ISCSI_LOGIN_AUTH_FAILED);
	if (!st)
		st = iscsi_login_operational(c, kv);
	if (!st && transit && l->auth_needed && !l->auth_done && l->chap == CHAP_OFF)
		st = (why = "no authentication offered", ISCSI_LOGIN_AUTH_FAILED);
	/* while CHAP runs we answer without T: the initiator goes on in stage 0 */
	transit = transit && (!l->auth_needed || l->auth_done);
	if (!l->auth_needed)
		l->auth_done = true;
	if (!st && transit && nsg == ISCSI_STAGE_FULL)
		st = iscsi_login_finish(c, &why);
	if (st) {
		iscsi_login_fail(c, h, st, why);
		return;
	}
	iscsi_login_respond(c, h, 0, transit, nsg);
	if (c->state == ISCSI_CONN_CLOSED)
		return;
	if (transit && nsg == ISCSI_STAGE_FULL) {
		c->params = l->params;
		c->state = ISCSI_CONN_FULL;
		iscsi_login_free(l);
		c->login = NULL;
		c->timer.repeat = c->srv->nop_interval;
		ev_timer_again(c->loop, &c->timer);
	}
}

void iscsi_login_rx(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	const char *why = "";
	struct iscsi_text *kv = NULL;
	unsigned st;
	int rc;

	if ((p->hdr.bhs.op & ISCSI_OP_MASK) != ISCSI_OP_LOGIN_REQ) {
		iscsi_conn_close(c, "not a login request during login");    /* RFC 7143 6.3 */
		goto out;
	}
	if (!c->login) {
		if (!(c->login = calloc(1, sizeof(*c->login)))) {
			iscsi_conn_close(c, "out of memory");
			goto out;
		}
		/* negotiated here, in force from the full feature phase on */
		iscsi_params_default(&c->login->params);
	}
	st = iscsi_login_check_hdr(c, &p->hdr, &why);
	if (st) {
		iscsi_login_fail(c, &p->hdr, st, why);
		goto out;
	}
	rc = iscsi_login_gather(c->login, p);
	if (rc == 1) {          /* RFC 7143 6.3: empty answer, same stage, ask for more */
		iscsi_login_respond(c, &p->hdr, 0, false, 0);
		goto out;
	}
	if (rc < 0 || iscsi_text_parse(c->login->text, c->login->text_len, &kv) < 0) {
		iscsi_login_fail(c, &p->hdr, ISCSI_LOGIN_INITIATOR_ERROR, "malformed keys");
		goto out;
	}
	c->login->text_len = 0;
	iscsi_login_step(c, &p->hdr, kv);
out:
	iscsi_text_free(kv);
	iscsi_pdu_free(p);
}

/* iscsi/pr.c: reservations (SPC-4 5.13 persistent reservations, SPC-2
 * RESERVE/RELEASE with the SPC-3 5.6.3 exceptions), see pr.h.
 *
 * Per volume: the registrations (key, initiator port, relative target
 * port, ALL_TG_PT), the persistent reservation (type and, unless it is an
 * all-registrants type, the holder's registration), PRgeneration, APTPL,
 * and the SPC-2 reservation (the session's port holding it; it ends with
 * the session).
 *
 * Conflicts (pr_check, SPC-4 5.13.1 table 62 and SBC-3 4.17): commands the
 * table marks SCMD_PR_OK always run; the holder, and under a registrants
 * only or all registrants type every registrant, runs everything; other
 * nexuses may run what does not write (SCMD_WRITE) under the write
 * exclusive types and nothing under the exclusive access types.
 *
 * APTPL: the state is written as "pr/<volume id>" (format below) after
 * each change while APTPL is set, and deleted when it is cleared; the PR
 * OUT that made the change completes only once that is durable.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "iscsi/pr.h"

#define PR_META_PREFIX          "pr/"
#define PR_OUT_MAX              1024u   /* REGISTER AND MOVE with its TransportID */

/* PR OUT service actions (SPC-4 6.16.2) and types (6.16.3) */
enum {
	PR_REGISTER = 0, PR_RESERVE, PR_RELEASE, PR_CLEAR, PR_PREEMPT, PR_PREEMPT_ABORT,
	PR_REGISTER_IGNORE, PR_REGISTER_MOVE,
};
enum {
	PR_WE = 1, PR_EA = 3, PR_WE_RO = 5, PR_EA_RO = 6, PR_WE_AR = 7, PR_EA_AR = 8,
};
/* PR IN service actions (6.15.1) */
enum { PR_READ_KEYS = 0, PR_READ_RESERVATION, PR_REPORT_CAPS, PR_READ_FULL_STATUS };

struct pr_reg {
	TAILQ_ENTRY(pr_reg) link;
	uint64_t key;
	uint16_t rtpi;                  /* relative target port */
	bool     all_tg;                /* ALL_TG_PT: every target port */
	char     iport[SCSI_IPORT_MAX + 1];
};

struct pr_lu {
	LIST_ENTRY(pr_lu)       link;
	uint8_t                 uuid[16];
	uint32_t                vol_id;
	struct store_pool      *pool;
	TAILQ_HEAD(, pr_reg)    regs;
	unsigned                nregs;
	uint32_t                gen;            /* PRgeneration */
	uint8_t                 type;           /* 0: no persistent reservation */
	struct pr_reg          *holder;         /* NULL under the all-registrants types */
	bool                    aptpl;
	bool                    stored;         /* "pr/<id>" exists in the pool */
	const struct scsi_port *resv;           /* SPC-2 reservation holder */
};

/* Every volume's state this process has seen: it must outlive the sessions
 * and LU objects (registrations stay until power loss, SPC-4 5.13.2). */
static LIST_HEAD(, pr_lu) pr_lus = LIST_HEAD_INITIALIZER(pr_lus);

/* n bytes big endian (SPC-4 3.5.1), both ways */
static uint64_t pr_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

static void pr_put(uint8_t *p, uint64_t v, unsigned n)
{
	while (n--) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static bool pr_type_valid(uint8_t type)
{
	return type == PR_WE || type == PR_EA || (type >= PR_WE_RO && type <= PR_EA_AR);
}

static bool pr_type_all(uint8_t type)
{
	return type == PR_WE_AR || type == PR_EA_AR;
}

static bool pr_type_regs(uint8_t type)        /* registrants only or all registrants */
{
	return type >= PR_WE_RO;
}

void pr_port_name(struct scsi_port *port, const char *initiator, const uint8_t isid[6])
{
	size_t i;

	/* SPC-4 7.6.4.6: iSCSI names compare as lower case (RFC 3722) */
	snprintf(port->iport, sizeof(port->iport), "%s,i,0x%02x%02x%02x%02x%02x%02x",
	         initiator, isid[0], isid[1], isid[2], isid[3], isid[4], isid[5]);
	for (i = 0; port->iport[i]; i++)
		port->iport[i] = (char)tolower((unsigned char)port->iport[i]);
}

static bool pr_reg_match(const struct pr_reg *r, const char *iport, uint16_t rtpi)
{
	return (r->all_tg || r->rtpi == rtpi) && strcmp(r->iport, iport) == 0;
}

static struct pr_reg *pr_find(struct pr_lu *pr, const char *iport, uint16_t rtpi)
{
	struct pr_reg *r;

	TAILQ_FOREACH(r, &pr->regs, link)
		if (pr_reg_match(r, iport, rtpi))
			return r;
	return NULL;
}

static struct pr_reg *pr_find_port(struct pr_lu *pr, const struct scsi_port *p)
{
	return pr_find(pr, p->iport, p->tpgt);
}

/* Sets ua on every nexus of lu that r registers. */
static void pr_ua(struct scsi_lu *lu, const struct pr_reg *r, uint32_t ua)
{
	struct scsi_itl *itl;

	TAILQ_FOREACH(itl, &lu->itls, lu_link)
		if (itl->port && pr_reg_match(r, itl->port->iport, itl->port->tpgt))
			itl->ua |= ua;
}

/* Sets ua on every registrant but except. */
static void pr_ua_others(struct pr_lu *pr, struct scsi_lu *lu, const struct pr_reg *except,
                         uint32_t ua)
{
	struct pr_reg *r;

	TAILQ_FOREACH(r, &pr->regs, link)
		if (r != except)
			pr_ua(lu, r, ua);
}

static void pr_release_res(struct pr_lu *pr)
{
	pr->type = 0;
	pr->holder = NULL;
}

static void pr_unregister(struct pr_lu *pr, struct scsi_lu *lu, struct pr_reg *r)
{
	TAILQ_REMOVE(&pr->regs, r, link);
	pr->nregs--;
	if (pr->type && (pr->holder == r || (pr_type_all(pr->type) && pr->nregs == 0))) {
		/* 5.13.11.2.3: the holder leaving releases the reservation;
		 * registrants of a registrants-only type hear of it */
		if (pr->type == PR_WE_RO || pr->type == PR_EA_RO)
			pr_ua_others(pr, lu, NULL, SCSI_UA_RES_RELEASED);
		pr_release_res(pr);
	}
	free(r);
	if (pr->nregs == 0)
		pr->aptpl = false;      /* nothing left to persist */
}

static void pr_clear_all(struct pr_lu *pr)
{
	struct pr_reg *r;

	while ((r = TAILQ_FIRST(&pr->regs))) {
		TAILQ_REMOVE(&pr->regs, r, link);
		free(r);
	}
	pr->nregs = 0;
	pr_release_res(pr);
}

/* Persisted state, big endian:
 *   "SLPR" version(1) flags(1: APTPL) type(1) holder(2, 0xffff: none)
 *   generation(4) count(2)
 *   count x { key(8) rtpi(2) flags(1: ALL_TG_PT) namelen(1) name(namelen) }
 * 256 registrations of the longest name fit in STORE_META_VALUE_MAX. */
#define PR_HDR_LEN      15u
#define PR_REC_LEN      12u

static size_t pr_encode(const struct pr_lu *pr, uint8_t *d)
{
	const struct pr_reg *r;
	size_t n = PR_HDR_LEN;
	unsigned i = 0, holder = 0xffff;

	TAILQ_FOREACH(r, &pr->regs, link) {
		size_t len = strlen(r->iport);

		if (r == pr->holder)
			holder = i;
		pr_put(d + n, r->key, 8);
		pr_put(d + n + 8, r->rtpi, 2);
		d[n + 10] = r->all_tg;
		d[n + 11] = (uint8_t)len;
		memcpy(d + n + PR_REC_LEN, r->iport, len);
		n += PR_REC_LEN + len;
		i++;
	}
	memcpy(d, "SLPR", 4);
	d[4] = 1;
	d[5] = pr->aptpl;
	d[6] = pr->type;
	pr_put(d + 7, holder, 2);
	pr_put(d + 9, pr->gen, 4);
	pr_put(d + 13, i, 2);
	return n;
}

/* Bytes from the pool are checked, never trusted: on any error the state
 * stays empty (-EINVAL). */
static int pr_decode(struct pr_lu *pr, const uint8_t *d, size_t len)
{
	unsigned count, holder;
	size_t n = PR_HDR_LEN;

	if (len < PR_HDR_LEN || memcmp(d, "SLPR", 4) != 0 || d[4] != 1)
		return -EINVAL;
	count = (unsigned)d[13] << 8 | d[14];
	holder = (unsigned)d[7] << 8 | d[8];
	if (count > PR_REGS_MAX || (d[6] && !pr_type_valid(d[6])))
		return -EINVAL;
	for (unsigned i = 0; i < count; i++) {
		struct pr_reg *r;
		size_t nl;

		if (n + PR_REC_LEN > len || (nl = d[n + 11]) == 0 || n + PR_REC_LEN + nl > len ||
		    memchr(d + n + PR_REC_LEN, 0, nl))
			goto fail;
		r = calloc(1, sizeof(*r));
		if (!r)
			goto fail;
		r->key = pr_get(d + n, 8);
		r->rtpi = (uint16_t)(d[n + 8] << 8 | d[n + 9]);
		r->all_tg = d[n + 10] & 1;
		memcpy(r->iport, d + n + PR_REC_LEN, nl);
		TAILQ_INSERT_TAIL(&pr->regs, r, link);
		pr->nregs++;
		if (i == holder)
			pr->holder = r;
		n += PR_REC_LEN + nl;
	}
	pr->aptpl = d[5] & 1;
	pr->type = d[6];
	pr->gen = (uint32_t)pr_get(d + 9, 4);
	if (pr->type && (count == 0 || (!pr_type_all(pr->type) && !pr->holder)))
		goto fail;
	if (pr_type_all(pr->type))
		pr->holder = NULL;
	return 0;
fail:
	pr_clear_all(pr);
	return -EINVAL;
}

/* "pr/<id>" records whose volume or snapshot has been deleted since are
 * dropped when a pool is first used in this process (ids are never
 * reused, so nothing else will read them). */
struct pr_sweep {
	uint32_t *live;
	size_t    nlive;
	char    (*dead)[24];
	size_t    ndead;
};

static int pr_sweep_key(void *arg, const char *key, const void *value, size_t len)
{
	struct pr_sweep *sw = arg;
	char *end;
	unsigned long id = strtoul(key + strlen(PR_META_PREFIX), &end, 10);

	(void)value;
	(void)len;
	for (size_t i = 0; i < sw->nlive; i++)
		if (sw->live[i] == id)
			return 0;
	if (*end == 0 && strlen(key) < sizeof(sw->dead[0]) && sw->ndead < 64)
		snprintf(sw->dead[sw->ndead++], sizeof(sw->dead[0]), "%s", key);
	return 0;
}

static void pr_sweep_done(void *arg, int err)
{
	(void)arg;
	(void)err;              /* at worst it stays until the next start */
}

static void pr_sweep(struct store_pool *p)
{
	struct pr_sweep sw = { 0 };
	struct store_vol_info *v = NULL, *snaps = NULL;
	char dead[64][24];
	size_t n = store_vol_list(p, NULL, 0);

	sw.dead = dead;
	if (n > 0 && !(v = calloc(n, sizeof(*v))))
		return;
	n = store_vol_list(p, v, n);
	for (size_t i = 0; i < n; i++) {
		size_t ns = store_snap_list(p, v[i].name, NULL, 0);
		uint32_t *live = realloc(sw.live, (sw.nlive + 1 + ns) * sizeof(*live));
		struct store_vol_info *s2 = ns ? realloc(snaps, ns * sizeof(*snaps)) : snaps;

		if (!live || !s2) {
			free(live ? live : sw.live);
			free(s2 ? s2 : snaps);
			free(v);
			return;
		}
		sw.live = live;
		snaps = s2;
		sw.live[sw.nlive++] = v[i].id;
		ns = store_snap_list(p, v[i].name, snaps, ns);
		for (size_t j = 0; j < ns; j++)
			sw.live[sw.nlive++] = snaps[j].id;
	}
	store_meta_foreach(p, PR_META_PREFIX, pr_sweep_key, &sw);
	for (size_t i = 0; i < sw.ndead; i++)
		store_meta_delete(p, sw.dead[i], pr_sweep_done, NULL);
	free(sw.live);
	free(snaps);
	free(v);
}

int pr_lu_get(struct store_pool *p, const uint8_t uuid[16], uint32_t vol_id,
              struct pr_lu **out)
{
	bool seen = false;

	struct pr_lu *pr;
	char key[32];
	const void *v;
	size_t len;

	LIST_FOREACH(pr, &pr_lus, link) {
		if (memcmp(pr->uuid, uuid, 16) != 0)
			continue;
		seen = true;
		if (pr->vol_id == vol_id) {
			pr->pool = p;
			*out = pr;
			return 0;
		}
	}
	if (!seen)
		pr_sweep(p);
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	memcpy(pr->uuid, uuid, 16);
	pr->vol_id = vol_id;
	pr->pool = p;
	TAILQ_INIT(&pr->regs);
	snprintf(key, sizeof(key), PR_META_PREFIX "%u", vol_id);
	if (store_meta_get(p, key, &v, &len) == 0) {
		pr->stored = true;      /* even if unreadable: the next change rewrites it */
		pr_decode(pr, v, len);
	}
	LIST_INSERT_HEAD(&pr_lus, pr, link);
	*out = pr;
	return 0;
}

void pr_forget_all(void)
{
	struct pr_lu *pr;

	LIST_FOREACH(pr, &pr_lus, link) {
		pr_clear_all(pr);
		pr->aptpl = false;
		pr->resv = NULL;
	}
}

void pr_port_gone(struct pr_lu *pr, const struct scsi_port *port)
{
	if (pr->resv == port)
		pr->resv = NULL;
}

void pr_lu_reset(struct pr_lu *pr)
{
	pr->resv = NULL;
}

/* The conflict check (see the top of the file). */
bool pr_allows(struct scsi_lu *lu, const struct scsi_port *port, uint16_t flags)
{
	struct pr_lu *pr = lu->pr;
	struct pr_reg *r;

	if (pr->resv && pr->resv != port && !(flags & SCMD_RESV_OK))
		return false;
	if (!pr->type || (flags & SCMD_PR_OK))
		return true;
	r = pr_find_port(pr, port);
	if (r && (r == pr->holder || pr_type_regs(pr->type)))
		return true;
	return (pr->type == PR_WE || pr->type == PR_WE_RO || pr->type == PR_WE_AR) &&
	       !(flags & SCMD_WRITE);
}

int pr_check(struct scsi_task *t)
{
	if (pr_allows(t->itl->lu, t->port, t->desc->flags))
		return 0;
	return scsi_reservation_conflict(t), 1;
}

/* SPC-2 RESERVE(6/10), RELEASE(6/10), as SPC-3 5.6.3 keeps them: they
 * conflict whenever any persistent registration exists. */
int pr_reserve(struct scsi_task *t)
{
	struct pr_lu *pr = t->itl->lu->pr;

	if (pr->nregs > 0 || (pr->resv && pr->resv != t->port))
		return scsi_reservation_conflict(t);
	pr->resv = t->port;
	return scsi_good(t);
}

int pr_release(struct scsi_task *t)
{
	struct pr_lu *pr = t->itl->lu->pr;

	if (pr->nregs > 0)
		return scsi_reservation_conflict(t);
	if (pr->resv == t->port)        /* from anyone else: GOOD, nothing done */
		pr->resv = NULL;
	return scsi_good(t);
}

/* PERSISTENT RESERVE IN (SPC-4 6.15) */

static int pr_in_caps(struct scsi_task *t, uint32_t alloc)
{
	uint8_t d[8] = { 0 };

	pr_put(d, 8, 2);
	d[2] = 0x10 | 0x04 | 0x01;     /* CRH, ATP_C, PTPL_C */
	d[3] = 0x80 | (t->itl->lu->pr->aptpl ? 0x01 : 0);      /* TMV, PTPL_A */
	d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;       /* WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX */
	d[5] = 0x01;                                    /* EX_AC_AR */
	return scsi_data_in(t, d, 8, alloc);
}

static uint32_t pr_tid(const struct pr_reg *r, uint8_t *d)
{
	uint32_t len = (uint32_t)strlen(r->iport) + 1, pad = (len + 3) & ~3u;

	/* SPC-4 7.6.4.6: format 01b (initiator port), protocol iSCSI */
	d[0] = 0x40 | SCSI_PROTO_ISCSI;
	pr_put(d + 2, pad, 2);
	memcpy(d + 4, r->iport, len - 1);
	memset(d + 4 + len - 1, 0, pad - len + 1);
	return 4 + pad;
}

int pr_in(struct scsi_task *t)
{
	struct pr_lu *pr = t->itl->lu->pr;
	uint32_t alloc = (uint32_t)t->cdb[7] << 8 | t->cdb[8], n = 8;
	uint8_t sa = t->cdb[1] & 0x1f, *d;
	struct pr_reg *r;
	int rc;

	if (pr->resv)                   /* SPC-3 5.6.3: whoever holds it */
		return scsi_reservation_conflict(t);
	if (sa == PR_REPORT_CAPS)
		return pr_in_caps(t, alloc);
	if (sa > PR_READ_FULL_STATUS)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 1, 4);
	d = calloc(1, 8 + (size_t)PR_REGS_MAX * (24 + 4 + SCSI_IPORT_MAX + 4));
	if (!d)
		return scsi_sense_store(t, -ENOMEM, false);
	pr_put(d, pr->gen, 4);
	TAILQ_FOREACH(r, &pr->regs, link) {
		if (sa == PR_READ_KEYS) {
			pr_put(d + n, r->key, 8);
			n += 8;
		} else if (sa == PR_READ_FULL_STATUS) {
			uint8_t *e = d + n;
			bool holds = pr->type && (!pr->holder || pr->holder == r);
			uint32_t tl = pr_tid(r, e + 24);

			pr_put(e, r->key, 8);
			e[12] = (uint8_t)((r->all_tg ? 0x02 : 0) | (holds ? 0x01 : 0));
			e[13] = holds ? pr->type : 0;   /* scope LU_SCOPE (0) */
			pr_put(e + 18, r->rtpi, 2);
			pr_put(e + 20, tl, 4);
			n += 24 + tl;
		}
	}
	if (sa == PR_READ_RESERVATION) {
		if (pr->type) {
			/* 6.15.3.3: an all-registrants reservation has key 0 */
			pr_put(d + 8, pr->holder ? pr->holder->key : 0, 8);
			d[21] = pr->type;
			n = 24;
		}
	}
	pr_put(d + 4, n - 8, 4);
	rc = scsi_data_in(t, d, n, alloc);
	free(d);
	return rc;
}

/* PERSISTENT RESERVE OUT (SPC-4 6.16, 5.13.5 - 5.13.11) */

int pr_decode_out(struct scsi_task *t)
{
	t->xfer = (uint32_t)pr_get(t->cdb + 5, 4);
	if (t->xfer > PR_OUT_MAX) {
		t->xfer = 0;
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH), 1;
	}
	return 0;
}

/* A PREEMPT AND ABORT waiting for the preempted nexuses' tasks. */
struct pr_wait {
	struct scsi_task *t;
	struct pr_lu     *pr;
	int               pending;      /* nexuses with tasks still in I/O */
	bool              changed;
};

struct pr_out {
	struct scsi_task *t;
	struct pr_lu     *pr;
	struct scsi_lu   *lu;
	struct pr_reg    *me;           /* the sender's registration, or NULL */
	uint64_t          key, sakey;
	uint8_t           sa, scope, type, flags;
	const uint8_t    *d;            /* parameter list */
	uint32_t          len;
	bool              changed;      /* something to persist */
	struct pr_wait   *wait;         /* PREEMPT AND ABORT */
};

static void pr_abort_done(void *arg);

#define PR_SPEC_I_PT    0x08u
#define PR_ALL_TG_PT    0x04u
#define PR_APTPL        0x01u

static int pr_bad_param(struct scsi_task *t, uint16_t field, int bit)
{
	return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_PARAM, false,
	                        field, bit);
}

static int pr_bad_cdb(struct scsi_task *t, uint16_t field, int bit)
{
	return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB, true,
	                        field, bit);
}

static struct pr_reg *pr_reg_new(struct pr_lu *pr, const char *iport, uint16_t rtpi,
                                 bool all_tg, uint64_t key)
{
	struct pr_reg *r;

	if (pr->nregs >= PR_REGS_MAX || !(r = calloc(1, sizeof(*r))))
		return NULL;
	r->key = key;
	r->rtpi = rtpi;
	r->all_tg = all_tg;
	snprintf(r->iport, sizeof(r->iport), "%s", iport);
	TAILQ_INSERT_TAIL(&pr->regs, r, link);
	pr->nregs++;
	return r;
}

/* 5.13.7: REGISTER and REGISTER AND IGNORE EXISTING KEY */
static int pr_out_register(struct pr_out *o)
{
	struct scsi_task *t = o->t;
	struct pr_lu *pr = o->pr;

	if (o->sa == PR_REGISTER && o->key != (o->me ? o->me->key : 0))
		return scsi_reservation_conflict(t);
	if (!o->me && o->sakey == 0)
		return scsi_good(t);            /* nothing registered, nothing to do */
	if (!o->me) {
		o->me = pr_reg_new(pr, t->port->iport, t->port->tpgt,
		                   o->flags & PR_ALL_TG_PT, o->sakey);
		if (!o->me)     /* SPC-4 5.13.7: bounded, never leaking */
			return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, 0x5504);
	} else if (o->sakey == 0) {
		pr_unregister(pr, o->lu, o->me);
		o->me = NULL;
	} else {
		o->me->key = o->sakey;
	}
	pr->aptpl = pr->nregs > 0 && (o->flags & PR_APTPL);
	pr->gen++;
	o->changed = true;
	return scsi_good(t);
}

/* 5.13.8 RESERVE */
static int pr_out_reserve(struct pr_out *o)
{
	struct pr_lu *pr = o->pr;

	if (pr->type) {
		bool holds = pr->holder == o->me || (!pr->holder && pr_type_all(pr->type));

		if (!holds || pr->type != o->type)
			return scsi_reservation_conflict(o->t);
		return scsi_good(o->t);         /* the same again */
	}
	pr->type = o->type;
	pr->holder = pr_type_all(o->type) ? NULL : o->me;
	o->changed = true;
	return scsi_good(o->t);
}

/* 5.13.10 RELEASE */
static int pr_out_release(struct pr_out *o)
{
	struct pr_lu *pr = o->pr;
	uint8_t type = pr->type;

	if (!type || (pr->holder && pr->holder != o->me))
		return scsi_good(o->t);         /* not the holder: nothing happens */
	if (type != o->type)
		return scsi_sense(o->t, SCSI_SK_ILLEGAL_REQUEST, 0x2604);
	pr_release_res(pr);
	if (pr_type_regs(type))
		pr_ua_others(pr, o->lu, o->me, SCSI_UA_RES_RELEASED);
	o->changed = true;
	return scsi_good(o->t);
}

/* 5.13.9 CLEAR */
static int pr_out_clear(struct pr_out *o)
{
	struct pr_lu *pr = o->pr;

	pr_ua_others(pr, o->lu, o->me, SCSI_UA_RES_PREEMPTED);
	pr_clear_all(pr);
	o->me = NULL;
	pr->aptpl = false;
	pr->gen++;
	o->changed = true;
	return scsi_good(o->t);
}

/* Removes every registration with key sakey but the sender's (all of them
 * but the sender's with all set); the removed nexuses get REGISTRATIONS
 * PREEMPTED and, for PREEMPT AND ABORT, lose their tasks on this LU. */
static unsigned pr_preempt_regs(struct pr_out *o, bool all)
{
	struct pr_lu *pr = o->pr;
	struct pr_reg *r, *n;
	unsigned removed = 0;

	TAILQ_FOREACH_SAFE(r, &pr->regs, link, n) {
		struct scsi_itl *itl;

		if (r == o->me || (!all && r->key != o->sakey))
			continue;
		pr_ua(o->lu, r, SCSI_UA_REG_PREEMPTED);
		if (o->wait)            /* PREEMPT AND ABORT */
			TAILQ_FOREACH(itl, &o->lu->itls, lu_link)
				if (itl->port && itl->port->abort && itl->port != o->t->port &&
				    pr_reg_match(r, itl->port->iport, itl->port->tpgt) &&
				    itl->port->abort(itl->port, o->lu, pr_abort_done, o->wait))
					o->wait->pending++;
		if (pr->holder == r)
			pr->holder = NULL;
		TAILQ_REMOVE(&pr->regs, r, link);
		pr->nregs--;
		free(r);
		removed++;
	}
	return removed;
}

/* 5.13.11 PREEMPT, PREEMPT AND ABORT */
static int pr_out_preempt(struct pr_out *o)
{
	struct pr_lu *pr = o->pr;
	uint8_t old = pr->type;

	if (old && pr_type_all(old) && o->sakey == 0) {
		/* 5.13.11.2.2: everyone else goes, the sender reserves */
		pr_preempt_regs(o, true);
		pr->type = o->type;
		pr->holder = pr_type_all(o->type) ? NULL : o->me;
	} else if (old && !pr_type_all(old) && pr->holder->key == o->sakey) {
		/* 5.13.11.2.4: the holder's reservation moves to the sender */
		pr_preempt_regs(o, false);
		pr->type = o->type;
		pr->holder = pr_type_all(o->type) ? NULL : o->me;
		if (old != o->type)
			pr_ua_others(pr, o->lu, o->me, SCSI_UA_RES_RELEASED);
	} else {
		/* 5.13.11.2.3: registrations only */
		if (o->sakey == 0)
			return pr_bad_param(o->t, 8, 7);
		if (pr_preempt_regs(o, false) == 0)
			return scsi_reservation_conflict(o->t);
	}
	pr->gen++;
	o->changed = true;
	return scsi_good(o->t);
}

/* The TransportID of REGISTER AND MOVE (SPC-4 7.6.4.6): an iSCSI
 * initiator port, into iport (lower case). */
static int pr_parse_tid(const uint8_t *d, uint32_t len, char *iport)
{
	uint32_t n;
	size_t i;

	if (len < 4 || (d[0] & 0x0f) != SCSI_PROTO_ISCSI || (d[0] >> 6) != 1)
		return -EINVAL;
	n = (uint32_t)d[2] << 8 | d[3];
	if (n + 4 > len || n == 0 || n > SCSI_IPORT_MAX || !memchr(d + 4, 0, n))
		return -EINVAL;
	n = (uint32_t)strnlen((const char *)d + 4, n);
	memcpy(iport, d + 4, n);
	iport[n] = 0;
	for (i = 0; iport[i]; i++)
		iport[i] = (char)tolower((unsigned char)iport[i]);
	return strstr(iport, ",i,0x") ? 0 : -EINVAL;
}

/* 5.13.12 REGISTER AND MOVE: the holder hands the reservation to another
 * nexus, registering it with the service action key. */
static int pr_out_move(struct pr_out *o)
{
	struct pr_lu *pr = o->pr;
	const uint8_t *d = o->d;
	char iport[SCSI_IPORT_MAX + 1];
	uint16_t rtpi = (uint16_t)(d[18] << 8 | d[19]);
	uint32_t tlen = (uint32_t)pr_get(d + 20, 4);
	struct pr_reg *dst;

	if (!pr->type || pr_type_all(pr->type) || pr->holder != o->me)
		return scsi_reservation_conflict(o->t);
	if (o->sakey == 0)
		return pr_bad_param(o->t, 8, 7);
	if (tlen > o->len - 24 || pr_parse_tid(d + 24, tlen, iport) < 0)
		return pr_bad_param(o->t, 24, -1);
	if (rtpi == 0 || (o->t->port->nports && rtpi > o->t->port->nports))
		return pr_bad_param(o->t, 18, -1);
	if (pr_reg_match(o->me, iport, rtpi))
		return pr_bad_param(o->t, 24, -1);      /* to itself */
	dst = pr_find(pr, iport, rtpi);
	if (!dst && !(dst = pr_reg_new(pr, iport, rtpi, false, o->sakey)))
		return scsi_sense(o->t, SCSI_SK_ILLEGAL_REQUEST, 0x5504);
	dst->key = o->sakey;
	pr->holder = dst;
	if (d[17] & 0x02) {             /* UNREG */
		pr_unregister(pr, o->lu, o->me);
		o->me = NULL;
	}
	pr->aptpl = d[17] & PR_APTPL;
	pr->gen++;
	o->changed = true;
	return scsi_good(o->t);
}

static void pr_persist_done(void *arg, int err)
{
	struct scsi_task *t = arg;

	if (err < 0 && err != -ENOENT)
		scsi_sense_store(t, err, true);
	else
		scsi_good(t);
	scsi_task_async_done(t);
}

/* Writes (or deletes) "pr/<id>" after a change: the command completes
 * when that is durable. SCSI_DONE when there is nothing to write. */
static int pr_persist(struct scsi_task *t, struct pr_lu *pr, bool changed)
{
	char key[32];
	uint8_t *d;
	size_t n;

	if (!changed || t->status != SCSI_STATUS_GOOD || (!pr->aptpl && !pr->stored))
		return SCSI_DONE;
	snprintf(key, sizeof(key), PR_META_PREFIX "%u", pr->vol_id);
	if (!pr->aptpl) {
		pr->stored = false;
		store_meta_delete(pr->pool, key, pr_persist_done, t);
		return SCSI_ASYNC;
	}
	d = malloc(PR_HDR_LEN + (size_t)PR_REGS_MAX * (PR_REC_LEN + SCSI_IPORT_MAX));
	if (!d)
		return scsi_sense_store(t, -ENOMEM, true);
	n = pr_encode(pr, d);
	pr->stored = true;
	store_meta_put(pr->pool, key, d, n, pr_persist_done, t);
	free(d);
	return SCSI_ASYNC;
}

/* The last preempted nexus's tasks are gone: persist, then complete. */
static void pr_abort_done(void *arg)
{
	struct pr_wait *w = arg;
	struct scsi_task *t = w->t;

	if (--w->pending > 0)
		return;
	if (pr_persist(t, w->pr, w->changed) == SCSI_DONE)
		scsi_task_async_done(t);
	free(w);
}

static int pr_out_run(struct pr_out *o)
{
	struct scsi_task *t = o->t;

	if (o->sa > PR_REGISTER_MOVE)
		return pr_bad_cdb(t, 1, 4);
	if (o->sa == PR_REGISTER_MOVE ? o->len < 24 : o->len != 24)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	if (o->sa != PR_REGISTER_MOVE && (o->flags & PR_SPEC_I_PT))
		return pr_bad_param(t, 20, 3);          /* SIP_C is 0 */
	if (o->sa == PR_REGISTER || o->sa == PR_REGISTER_IGNORE)
		return pr_out_register(o);
	if (!o->me)
		return scsi_reservation_conflict(t);    /* 5.13.5: not registered */
	if (o->key != o->me->key)
		return scsi_reservation_conflict(t);
	if (o->sa != PR_CLEAR && o->sa != PR_REGISTER_MOVE &&
	    (o->scope != 0 || !pr_type_valid(o->type)))
		return pr_bad_cdb(t, 2, o->scope != 0 ? 7 : 3);
	switch (o->sa) {
	case PR_RESERVE:
		return pr_out_reserve(o);
	case PR_RELEASE:
		return pr_out_release(o);
	case PR_CLEAR:
		return pr_out_clear(o);
	case PR_PREEMPT:
	case PR_PREEMPT_ABORT:
		return pr_out_preempt(o);
	default:
		return pr_out_move(o);
	}
}

int pr_out(struct scsi_task *t)
{
	struct pr_out o = { .t = t, .lu = t->itl->lu, .pr = t->itl->lu->pr };
	uint8_t d[PR_OUT_MAX];

	if (o.pr->resv)                 /* SPC-3 5.6.3: whoever holds it */
		return scsi_reservation_conflict(t);
	o.len = t->data_out < t->xfer ? t->data_out : t->xfer;
	scsi_buf_copy_out(&t->buf, 0, d, o.len);
	memset(d + o.len, 0, sizeof(d) - o.len);
	o.d = d;
	o.sa = t->cdb[1] & 0x1f;
	o.scope = t->cdb[2] >> 4;
	o.type = t->cdb[2] & 0x0f;
	o.key = pr_get(d, 8);
	o.sakey = pr_get(d + 8, 8);
	o.flags = o.sa == PR_REGISTER_MOVE ? 0 : d[20];
	o.me = pr_find_port(o.pr, t->port);
	if (o.sa == PR_PREEMPT_ABORT && !(o.wait = calloc(1, sizeof(*o.wait))))
		return scsi_sense_store(t, -ENOMEM, true);
	pr_out_run(&o);
	if (o.wait && o.wait->pending > 0) {
		/* state changed already; the answer waits for the aborts */
		*o.wait = (struct pr_wait){ t, o.pr, o.wait->pending, o.changed };
		return SCSI_ASYNC;
	}
	free(o.wait);
	return pr_persist(t, o.pr, o.changed);
}

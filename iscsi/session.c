/* iscsi/session.c: the full feature phase of a session (RFC 7143 4.2,
 * 10, 11): the CmdSN window, SCSI commands with their data-out (immediate,
 * unsolicited, R2T) and data-in, NOP, Text (SendTargets), Logout, task
 * management and the Async Message that asks for a logout.
 *
 * Commands are taken in CmdSN order: a PDU ahead of ExpCmdSN waits in
 * sess->held, one outside the window is dropped unanswered (RFC 7143
 * 4.2.2.1). MaxCmdSN = ExpCmdSN - 1 + (ISCSI_QUEUE_DEPTH - commands in
 * flight), so the window closes as tasks pile up and never shrinks.
 *
 * Task states (transition: function):
 *
 *   new --> DATA_OUT --(all data in)--> EXEC --(scsi done)--> DONE
 *    |          |  ^                      ^
 *    |          v  | iscsi_conn_mem_kick  |
 *    |       MEM_WAIT ---------------------+  (budget for R2T or data-in)
 *    +--(CDB fails or no data-out)------> EXEC or DONE
 *
 *   DATA_OUT --(unsolicited data against InitialR2T or FirstBurstLength,
 *   RFC 7143 11.4.7.2)--> DONE with CHECK CONDITION: iscsi_rx_data_out.
 *
 *   new: iscsi_rx_scsi_cmd; DATA_OUT: iscsi_task_data_out; EXEC:
 *   iscsi_task_exec; DONE: iscsi_task_respond. Abort (TMF, connection
 *   loss) frees a task at once unless it is in EXEC: then it is freed when
 *   its store I/O completes, and a TMF answers only after that, so an
 *   aborted write never lands after the initiator was told it is gone.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>

#include "iscsi/internal.h"
#include "iscsi/pr.h"

typedef void iscsi_rx_fn(struct iscsi_conn *c, struct iscsi_pdu *p);

#define OPF_FULL        0x1u    /* legal in the full feature phase */
#define OPF_CMDSN       0x2u    /* ordered by CmdSN unless immediate */

struct iscsi_op_desc {
	const char  *name;
	iscsi_rx_fn *rx;
	unsigned     flags;
};

static iscsi_rx_fn iscsi_rx_nop_out, iscsi_rx_scsi_cmd, iscsi_rx_tmf, iscsi_rx_text,
	iscsi_rx_data_out, iscsi_rx_logout, iscsi_rx_snack;

static const struct iscsi_op_desc iscsi_ops[64] = {
	[ISCSI_OP_NOP_OUT]    = { "NOP-Out", iscsi_rx_nop_out, OPF_FULL | OPF_CMDSN },
	[ISCSI_OP_SCSI_CMD]   = { "SCSI Command", iscsi_rx_scsi_cmd, OPF_FULL | OPF_CMDSN },
	[ISCSI_OP_TMF_REQ]    = { "Task Management", iscsi_rx_tmf, OPF_FULL | OPF_CMDSN },
	[ISCSI_OP_LOGIN_REQ]  = { "Login", NULL, 0 },
	[ISCSI_OP_TEXT_REQ]   = { "Text", iscsi_rx_text, OPF_FULL | OPF_CMDSN },
	[ISCSI_OP_DATA_OUT]   = { "Data-Out", iscsi_rx_data_out, OPF_FULL },
	[ISCSI_OP_LOGOUT_REQ] = { "Logout", iscsi_rx_logout, OPF_FULL | OPF_CMDSN },
	[ISCSI_OP_SNACK]      = { "SNACK", iscsi_rx_snack, OPF_FULL },
};

static void iscsi_task_respond(struct iscsi_task *t);
static void iscsi_conn_ping_arm(struct iscsi_conn *c, ev_tstamp at);
static void iscsi_task_exec(struct iscsi_task *t);
static void iscsi_task_data_out(struct iscsi_task *t);
static void iscsi_logout_try(struct iscsi_sess *s);
static int iscsi_port_abort(const struct scsi_port *p, struct scsi_lu *lu,
                            void (*done)(void *arg), void *arg);

/* RFC 1982 serial number arithmetic, as RFC 7143 4.2.2.1 requires. */
static int32_t sn_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

/* LUN structure (SAM-5 4.7): peripheral (00b) and flat (01b) addressing. */
static uint64_t iscsi_lun_decode(const uint8_t l[8])
{
	switch (l[0] >> 6) {
	case 0:
		return l[0] == 0 ? l[1] : UINT64_MAX;
	case 1:
		return (uint64_t)(l[0] & 0x3f) << 8 | l[1];
	default:
		return UINT64_MAX;
	}
}

static struct scsi_itl *iscsi_sess_itl(struct iscsi_sess *s, uint64_t lun)
{
	for (size_t i = 0; i < s->port.nitls; i++)
		if (s->itls[i].lun == lun)
			return &s->itls[i];
	return NULL;
}

void iscsi_sess_update_window(struct iscsi_sess *s)
{
	uint32_t max = s->exp_cmdsn - 1 + ISCSI_QUEUE_DEPTH - s->in_flight;

	if (sn_diff(max, s->max_cmdsn) > 0)
		s->max_cmdsn = max;
}

/* RFC 7143 7.2: the CmdSN of a rejected non-immediate command is not
 * taken (a gap the initiator plugs by sending that CmdSN again), so
 * ExpCmdSN, advanced when the PDU was taken in order, steps back. */
static void iscsi_cmd_reject(struct iscsi_conn *c, struct iscsi_pdu *p, uint8_t reason,
                             bool ordered)
{
	struct iscsi_sess *s = c->sess;

	if (ordered && !(p->hdr.bhs.op & ISCSI_OP_IMMEDIATE) &&
	    be32toh(p->hdr.bhs.sn) == s->exp_cmdsn - 1)
		s->exp_cmdsn--;
	iscsi_conn_reject(c, &p->hdr, reason);
	iscsi_pdu_free(p);
}

/* Sessions */

static void iscsi_sess_reinstate(struct iscsi_srv *srv, const char *initiator,
                                 const uint8_t isid[6], const struct iscsi_target *tgt,
                                 uint16_t tpgt)
{
	struct iscsi_sess *s;

	/* RFC 7143 6.3.5: a new session with a known ISID replaces the old;
	 * the session is named by the target portal group too (4.4.1), so
	 * the same ISID through another portal group is another session */
	TAILQ_FOREACH(s, &srv->sessions, link) {
		if (memcmp(s->isid, isid, 6) != 0 || strcasecmp(s->initiator, initiator) != 0 ||
		    s->port.tpgt != tpgt ||
		    (s->target == NULL) != (tgt == NULL) ||
		    (tgt && strcasecmp(s->target->iqn, tgt->iqn) != 0))
			continue;
		iscsi_conn_close(s->conn, "session reinstated by a new login");
		return;
	}
}

static void iscsi_sess_map_luns(struct iscsi_sess *s)
{
	struct iscsi_srv *srv = s->srv;

	for (size_t i = 0; i < s->target->nluns; i++) {
		struct scsi_lu *lu;
		int err = scsi_lu_get(srv->pool, srv->uuid, &srv->io, &srv->lus, s->target->luns[i].vol, &lu);

		if (err < 0) {
			iscsi_log(srv, STORE_LOG_WARN, "target %s LUN %llu: volume %s: %s",
			          s->target->iqn, (unsigned long long)s->target->luns[i].lun,
			          s->target->luns[i].vol, store_strerror(err));
			continue;
		}
		lu->thin_pct = srv->thin_pct;
		scsi_itl_attach(&s->itls[s->port.nitls], lu, s->target->luns[i].lun);
		s->itls[s->port.nitls++].port = &s->port;
	}
}

int iscsi_sess_create(struct iscsi_conn *c, const char *initiator, const uint8_t isid[6],
                      struct iscsi_target *tgt, uint32_t cmdsn, struct iscsi_sess **out)
{
	struct iscsi_srv *srv = c->srv;
	struct iscsi_sess *s = calloc(1, sizeof(*s));

	if (!s || (tgt && !(s->itls = calloc(tgt->nluns + 1, sizeof(*s->itls))))) {
		free(s);
		return -ENOMEM;
	}
	iscsi_sess_reinstate(srv, initiator, isid, tgt, c->tpgt);
	s->srv = srv;
	s->conn = c;
	s->discovery = tgt == NULL;
	snprintf(s->initiator, sizeof(s->initiator), "%s", initiator);
	memcpy(s->isid, isid, 6);
	if (srv->next_tsih == 0)
		srv->next_tsih = 1;             /* TSIH 0 means "new session" */
	s->tsih = srv->next_tsih++;
	s->target = tgt;
	s->exp_cmdsn = cmdsn;
	s->max_cmdsn = cmdsn + ISCSI_QUEUE_DEPTH - 1;
	s->next_ttt = 1;
	s->login_time = (int64_t)time(NULL);
	TAILQ_INIT(&s->tasks);
	TAILQ_INIT(&s->held);
	s->port.tpgt = c->tpgt;
	s->port.nports = (uint16_t)srv->nportals;
	s->port.itls = s->itls;
	/* the I_T nexus reservations know it by (SPC-4 7.6.4.6) */
	pr_port_name(&s->port, initiator, isid);
	s->port.abort = iscsi_port_abort;
	if (tgt) {
		s->port.target = tgt->iqn;
		iscsi_sess_map_luns(s);
	}
	TAILQ_INSERT_TAIL(&srv->sessions, s, link);
	c->sess = s;
	iscsi_log(srv, STORE_LOG_INFO, "%s: %s logged in to %s, TSIH %u, %zu LUNs", c->peer,
	          initiator, tgt ? tgt->iqn : "discovery", s->tsih, s->port.nitls);
	*out = s;
	return 0;
}

void iscsi_sess_destroy(struct iscsi_sess *s)
{
	struct iscsi_pdu *p;

	while ((p = TAILQ_FIRST(&s->held))) {
		TAILQ_REMOVE(&s->held, p, link);
		iscsi_pdu_free(p);
	}
	iscsi_pdu_free(s->logout);
	for (size_t i = 0; i < s->port.nitls; i++) {
		struct scsi_lu *lu = s->itls[i].lu;

		scsi_itl_detach(&s->itls[i]);
		scsi_lu_put(lu);
	}
	free(s->itls);
	iscsi_target_free(s->target);
	free(s);
}

/* "addr:port" of a socket address, "[v6]:port" for IPv6. */
static void iscsi_addr_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	}
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

static void iscsi_sess_info(const struct iscsi_sess *s, struct iscsi_session_info *si)
{
	const struct iscsi_params *pa = &s->conn->params;
	const struct iscsi_task *t;

	si->target = s->target ? s->target->iqn : NULL;
	si->initiator = s->initiator;
	memcpy(si->isid, s->isid, 6);
	si->tsih = s->tsih;
	si->tpgt = s->port.tpgt;
	si->peer = s->conn->peer;
	si->header_digest = pa->header_digest;
	si->data_digest = pa->data_digest;
	si->immediate_data = pa->immediate_data;
	si->initial_r2t = pa->initial_r2t;
	si->max_recv_dsl = pa->max_recv_dsl;
	si->max_send_dsl = pa->max_send_dsl;
	si->max_burst = pa->max_burst;
	si->first_burst = pa->first_burst;
	si->login_time = s->login_time;
	si->in_flight = 0;
	TAILQ_FOREACH(t, &s->tasks, link)
		si->in_flight++;
	si->commands = s->commands;
	si->read_bytes = s->read_bytes;
	si->write_bytes = s->write_bytes;
}

int iscsi_srv_sessions(struct iscsi_srv *srv, iscsi_session_fn *fn, void *arg)
{
	const struct iscsi_sess *s;
	int n = 0;

	TAILQ_FOREACH(s, &srv->sessions, link) {
		struct iscsi_session_info si = { 0 };
		struct iscsi_session_lun *luns = NULL;
		char portal[INET6_ADDRSTRLEN + 16];

		if (s->conn->state != ISCSI_CONN_FULL)
			continue;               /* logging out */
		if (s->port.nitls && !(luns = calloc(s->port.nitls, sizeof(*luns))))
			return -ENOMEM;
		for (size_t i = 0; i < s->port.nitls; i++)
			luns[i] = (struct iscsi_session_lun){ s->itls[i].lun, s->itls[i].lu->name };
		iscsi_sess_info(s, &si);
		iscsi_addr_format(&s->conn->local, portal, sizeof(portal));
		si.portal = portal;
		si.luns = luns;
		si.nluns = s->port.nitls;
		fn(arg, &si);
		free(luns);
		n++;
	}
	return n;
}

/* Tasks */

static struct iscsi_task *iscsi_task_find(struct iscsi_sess *s, uint32_t itt)
{
	struct iscsi_task *t;

	TAILQ_FOREACH(t, &s->tasks, link)
		if (t->itt == itt)
			return t;
	return NULL;
}

void iscsi_task_put(struct iscsi_task *t)
{
	struct iscsi_conn *c = t->conn;

	if (--t->refs > 0)
		return;
	scsi_task_fini(&t->scsi);
	free(t);
	iscsi_conn_mem_kick(c);
	iscsi_conn_put(c);
}

/* The task leaves the session: its window slot frees. */
static void iscsi_task_unlink(struct iscsi_task *t)
{
	struct iscsi_sess *s = t->conn->sess;

	if (t->state == ISCSI_TASK_MEM_WAIT)
		TAILQ_REMOVE(&t->conn->mem_wait, t, wait_link);
	t->state = ISCSI_TASK_DONE;
	TAILQ_REMOVE(&s->tasks, t, link);
	if (t->counted) {
		s->in_flight--;
		iscsi_sess_update_window(s);
	}
	if (t->immediate)
		s->immediate--;
}

/* Drops the session's reference; a pending logout may go now. The
 * connection (and so the session) is freed from an idle watcher, never
 * here, so s stays valid. */
static void iscsi_task_release(struct iscsi_task *t)
{
	struct iscsi_sess *s = t->conn->sess;

	iscsi_task_put(t);
	if (s->logout)
		iscsi_logout_try(s);
}

static void iscsi_task_finish(struct iscsi_task *t)
{
	iscsi_task_unlink(t);
	iscsi_task_release(t);
}

static void iscsi_tmf_wait_done(struct iscsi_tmf *tmf);

/* SCSI layer completion (store I/O done). */
static void iscsi_task_scsi_done(struct scsi_task *st)
{
	struct iscsi_task *t = container_of(st, struct iscsi_task, scsi);
	struct iscsi_tmf *tmf = t->tmf;

	if (t->aborted || t->conn->state == ISCSI_CONN_CLOSED)
		iscsi_task_finish(t);
	else
		iscsi_task_respond(t);
	if (tmf)
		iscsi_tmf_wait_done(tmf);
}

/* Abort: no response for t (SAM-5 7.2). */
static void iscsi_task_abort(struct iscsi_task *t, struct iscsi_tmf *tmf)
{
	if (t->state == ISCSI_TASK_DONE || t->aborted)
		return;
	t->aborted = true;
	if (t->state != ISCSI_TASK_EXEC) {
		iscsi_task_finish(t);
		return;
	}
	if (tmf) {
		t->tmf = tmf;
		tmf->waiting++;
	}
}

void iscsi_sess_conn_lost(struct iscsi_sess *s)
{
	struct iscsi_task *t, *n;

	TAILQ_REMOVE(&s->srv->sessions, s, link);
	TAILQ_FOREACH_SAFE(t, &s->tasks, link, n)
		iscsi_task_abort(t, NULL);
}

/* Memory budget: R2T bursts and data-in wait when the connection's task
 * buffers exceed ISCSI_CONN_MEM_MAX, unless nothing else holds any. */
static bool iscsi_mem_ok(struct iscsi_conn *c, uint64_t bytes)
{
	return c->mem == 0 || c->mem + bytes <= ISCSI_CONN_MEM_MAX;
}

static void iscsi_task_mem_wait(struct iscsi_task *t)
{
	t->state = ISCSI_TASK_MEM_WAIT;
	TAILQ_INSERT_TAIL(&t->conn->mem_wait, t, wait_link);
}

void iscsi_conn_mem_kick(struct iscsi_conn *c)
{
	struct iscsi_task *t;

	while ((t = TAILQ_FIRST(&c->mem_wait)) && c->state != ISCSI_CONN_CLOSED) {
		TAILQ_REMOVE(&c->mem_wait, t, wait_link);
		if (t->scsi.desc && (t->scsi.desc->flags & SCMD_DATA_OUT) &&
		    t->solicit_off < t->want) {
			t->state = ISCSI_TASK_DATA_OUT;
			iscsi_task_data_out(t);
		} else {
			iscsi_task_exec(t);
		}
		if (t->state == ISCSI_TASK_MEM_WAIT)
			break;          /* still no room: keep the order */
	}
}

/* Responses: data-in, SCSI Response (RFC 7143 11.4, 11.7) */

static void iscsi_resid(const struct iscsi_task *t, uint8_t *flags, uint32_t *resid)
{
	uint32_t xfer = t->scsi.xfer, edtl = t->scsi.edtl;

	*resid = 0;
	if (xfer > edtl) {
		*flags |= ISCSI_RSP_OVER;
		*resid = xfer - edtl;
	} else if (xfer < edtl) {
		*flags |= ISCSI_RSP_UNDER;
		*resid = edtl - xfer;
	}
}

static struct iscsi_pdu *iscsi_data_in_pdu(struct iscsi_task *t, uint32_t off, uint32_t len)
{
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_DATA_IN, 0);
	uint32_t have;

	if (!p)
		return NULL;
	p->data = scsi_buf_at(&t->scsi.buf, off, &have);
	p->dlen = len;
	p->task = t;
	t->refs++;
	memcpy(p->hdr.data.lun, t->lun_raw, 8);
	p->hdr.data.itt = t->itt;
	p->hdr.data.ttt = ISCSI_RSVD_TAG;
	p->hdr.data.datasn = htobe32(t->datasn++);
	p->hdr.data.offset = htobe32(off);
	return p;
}

/* Sends data-in; with GOOD status the last PDU carries it (phase
 * collapse, RFC 7143 11.7.3). Returns true if the status went with it. */
static bool iscsi_task_send_data(struct iscsi_task *t, uint32_t len, bool status)
{
	struct iscsi_conn *c = t->conn;
	uint32_t off = 0, burst = 0;

	while (off < len) {
		uint32_t seg, have;
		struct iscsi_pdu *p;

		scsi_buf_at(&t->scsi.buf, off, &have);
		seg = len - off;
		seg = seg < c->params.max_send_dsl ? seg : c->params.max_send_dsl;
		seg = seg < have ? seg : have;  /* one chunk per PDU */
		seg = seg < c->params.max_burst - burst ? seg : c->params.max_burst - burst;
		p = iscsi_data_in_pdu(t, off, seg);
		if (!p) {
			iscsi_conn_close(c, "out of memory");
			return false;
		}
		off += seg;
		burst += seg;
		if (off == len || burst == c->params.max_burst) {
			p->hdr.data.flags = ISCSI_FLAG_FINAL;   /* end of a sequence */
			burst = 0;
		}
		if (off == len && status) {
			uint32_t resid;

			p->hdr.data.flags |= ISCSI_DATA_STATUS;
			p->hdr.data.status = t->scsi.status;
			iscsi_resid(t, &p->hdr.data.flags, &resid);
			p->hdr.data.resid = htobe32(resid);
			p->statsn = true;
		}
		iscsi_conn_send(c, p);
	}
	return status && len > 0;
}

static void iscsi_task_send_status(struct iscsi_task *t)
{
	uint32_t slen = t->scsi.sense_len ? t->scsi.sense_len + 2u : 0, resid;
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_SCSI_RSP, slen);

	if (!p) {
		iscsi_conn_close(t->conn, "out of memory");
		return;
	}
	p->hdr.rsp.flags = ISCSI_FLAG_FINAL;
	p->hdr.rsp.response = ISCSI_RSP_COMPLETED;
	p->hdr.rsp.status = t->scsi.status;
	p->hdr.rsp.itt = t->itt;
	p->hdr.rsp.exp_datasn = htobe32(t->datasn);
	iscsi_resid(t, &p->hdr.rsp.flags, &resid);
	p->hdr.rsp.resid = htobe32(resid);
	if (slen) {             /* RFC 7143 11.4.7.2: SenseLength, then sense */
		p->data[0] = (uint8_t)(t->scsi.sense_len >> 8);
		p->data[1] = (uint8_t)t->scsi.sense_len;
		memcpy(p->data + 2, t->scsi.sense, t->scsi.sense_len);
	}
	p->statsn = true;
	iscsi_conn_send(t->conn, p);
}

static void iscsi_task_respond(struct iscsi_task *t)
{
	uint32_t len = 0;
	bool good = t->scsi.status == SCSI_STATUS_GOOD ||
	            t->scsi.status == SCSI_STATUS_CONDITION_MET;

	iscsi_task_unlink(t);           /* MaxCmdSN in the response counts this slot */
	if ((t->flags & ISCSI_CMD_READ) && good) {
		len = t->scsi.data_in < t->scsi.edtl ? t->scsi.data_in : t->scsi.edtl;
		len = len < t->scsi.buf.len ? len : t->scsi.buf.len;
	}
	t->conn->sess->commands++;
	t->conn->sess->read_bytes += len;
	if ((t->flags & ISCSI_CMD_WRITE) && good)
		t->conn->sess->write_bytes += t->scsi.data_out;
	if (!iscsi_task_send_data(t, len, good && t->scsi.sense_len == 0))
		iscsi_task_send_status(t);
	iscsi_task_release(t);          /* after the response: logout comes last */
}

static void iscsi_task_exec(struct iscsi_task *t)
{
	struct iscsi_conn *c = t->conn;

	if (t->scsi.desc && (t->scsi.desc->flags & SCMD_DATA_IN) &&
	    !iscsi_mem_ok(c, t->scsi.xfer < t->scsi.edtl ? t->scsi.xfer : t->scsi.edtl)) {
		iscsi_task_mem_wait(t);
		return;
	}
	t->state = ISCSI_TASK_EXEC;
	t->scsi.data_out = t->want;     /* unsolicited, then every R2T burst: all in */
	if (scsi_task_exec(&t->scsi) == SCSI_DONE)
		iscsi_task_respond(t);
}

/* Data-out (RFC 7143 10.7, 10.8): R2Ts after the unsolicited part. */

static void iscsi_r2t_send(struct iscsi_task *t, uint32_t off, uint32_t len)
{
	struct iscsi_conn *c = t->conn;
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_R2T, 0);
	struct iscsi_r2t *r = &t->r2t[t->nr2t];

	if (!p) {
		iscsi_conn_close(c, "out of memory");
		return;
	}
	*r = (struct iscsi_r2t){ .ttt = c->sess->next_ttt++, .off = off, .len = len };
	if (c->sess->next_ttt == ISCSI_RSVD_TAG)
		c->sess->next_ttt = 1;
	t->nr2t++;
	p->hdr.r2t.flags = ISCSI_FLAG_FINAL;
	memcpy(p->hdr.r2t.lun, t->lun_raw, 8);
	p->hdr.r2t.itt = t->itt;
	p->hdr.r2t.ttt = htobe32(r->ttt);
	p->hdr.r2t.r2tsn = htobe32(t->r2tsn++);
	p->hdr.r2t.offset = htobe32(off);
	p->hdr.r2t.length = htobe32(len);
	t->datasn++;                    /* ExpDataSN counts R2Ts too */
	iscsi_conn_send(c, p);
}

static void iscsi_task_data_out(struct iscsi_task *t)
{
	struct iscsi_conn *c = t->conn;

	if (!t->unsol_done)
		return;                 /* unsolicited data first, then R2Ts */
	if (t->solicit_off < t->unsol_got)
		t->solicit_off = t->unsol_got;
	while (t->solicit_off < t->want && t->nr2t < c->params.max_r2t &&
	       c->state != ISCSI_CONN_CLOSED) {
		uint32_t len = t->want - t->solicit_off;

		len = len < c->params.max_burst ? len : c->params.max_burst;
		if (!iscsi_mem_ok(c, len)) {
			if (t->nr2t == 0)
				iscsi_task_mem_wait(t);
			return;
		}
		if (scsi_buf_copy_in(&t->scsi.buf, t->solicit_off, NULL, len) < 0) {
			iscsi_conn_close(c, "out of memory");
			return;
		}
		t->solicit_off += len;
		iscsi_r2t_send(t, t->solicit_off - len, len);
		if (c->state == ISCSI_CONN_CLOSED)
			return;         /* out of memory there: the close freed t */
	}
	if (t->solicit_off >= t->want && t->nr2t == 0 && t->state == ISCSI_TASK_DATA_OUT)
		iscsi_task_exec(t);
}

/* Keeps what falls inside want; the rest (EDTL beyond the CDB) is dropped. */
static int iscsi_task_data_copy(struct iscsi_task *t, uint32_t off, const uint8_t *d,
                                uint32_t len)
{
	if (off >= t->want)
		return 0;
	if (len > t->want - off)
		len = t->want - off;
	return scsi_buf_copy_in(&t->scsi.buf, off, d, len);
}

/* RFC 7143 11.4.7.2: iSCSI conditions that end a command in CHECK
 * CONDITION, ABORTED COMMAND (the connection goes on) */
#define ISCSI_ASC_UNEXPECTED_UNSOL      0x0c0c  /* unexpected unsolicited data */
#define ISCSI_ASC_UNSOL_AMOUNT          0x0c0d  /* incorrect amount of data */

/* Unsolicited Data-Out (TTT ffffffffh). Allowed only with InitialR2T=No
 * (13.10), as one burst right after the command: if EDTL exceeds
 * FirstBurstLength, immediate plus unsolicited data must make exactly
 * FirstBurstLength (11.4.7.2), never more. 0: taken; > 0: the command
 * ends with this ASC; -EPROTO: out of sequence (ERL 0: drop). */
static int iscsi_data_unsolicited(struct iscsi_task *t, const struct iscsi_bhs_data *h,
                                  const struct iscsi_pdu *p)
{
	uint32_t first = t->conn->params.first_burst;

	if (t->conn->params.initial_r2t || t->unsol_done)
		return ISCSI_ASC_UNEXPECTED_UNSOL;
	if (be32toh(h->offset) != t->unsol_got || be32toh(h->datasn) != t->unsol_datasn)
		return -EPROTO;
	if (t->unsol_got + p->dlen > first)
		return ISCSI_ASC_UNSOL_AMOUNT;
	if (iscsi_task_data_copy(t, t->unsol_got, p->data, p->dlen) < 0)
		return -ENOMEM;
	t->unsol_got += p->dlen;
	t->unsol_datasn++;
	if (!(h->flags & ISCSI_FLAG_FINAL))
		return 0;
	t->unsol_done = true;
	return t->scsi.edtl > first && t->unsol_got != first ? ISCSI_ASC_UNSOL_AMOUNT : 0;
}

static int iscsi_data_solicited(struct iscsi_task *t, const struct iscsi_bhs_data *h,
                                const struct iscsi_pdu *p)
{
	uint32_t ttt = be32toh(h->ttt), i;
	struct iscsi_r2t *r;

	for (i = 0; i < t->nr2t && t->r2t[i].ttt != ttt; i++)
		;
	if (i == t->nr2t)
		return -EPROTO;
	r = &t->r2t[i];
	/* DataPDUInOrder=Yes: offsets in order, DataSN from 0 per R2T */
	if (be32toh(h->offset) != r->off + r->got || be32toh(h->datasn) != r->datasn ||
	    r->got + p->dlen > r->len)
		return -EPROTO;
	if (iscsi_task_data_copy(t, r->off + r->got, p->data, p->dlen) < 0)
		return -ENOMEM;
	r->got += p->dlen;
	r->datasn++;
	if (r->got < r->len)
		return 0;
	if (!(h->flags & ISCSI_FLAG_FINAL))
		return -EPROTO;
	t->r2t[i] = t->r2t[--t->nr2t];
	return 0;
}

static void iscsi_rx_data_out(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	const struct iscsi_bhs_data *h = &p->hdr.data;
	struct iscsi_task *t = iscsi_task_find(c->sess, h->itt);
	int err;

	if (!t || t->state != ISCSI_TASK_DATA_OUT || t->aborted) {
		/* a task that ended early (CHECK CONDITION, abort): drop its data */
		iscsi_pdu_free(p);
		return;
	}
	if (h->ttt == ISCSI_RSVD_TAG)
		err = iscsi_data_unsolicited(t, h, p);
	else
		err = iscsi_data_solicited(t, h, p);
	iscsi_pdu_free(p);
	if (err > 0) {
		/* the rest of its data is dropped: the task is gone */
		iscsi_log(c->srv, STORE_LOG_WARN, "%s: ITT 0x%x: %s unsolicited data: command "
		          "ended", c->peer, be32toh(t->itt),
		          err == ISCSI_ASC_UNEXPECTED_UNSOL ? "unexpected" : "wrong amount of");
		scsi_sense(&t->scsi, SCSI_SK_ABORTED_COMMAND, (uint16_t)err);
		iscsi_task_respond(t);
		return;
	}
	if (err == -EPROTO) {
		/* ERL 0: a sequence error ends the connection (RFC 7143 7.1.4.1) */
		iscsi_conn_close(c, "Data-Out out of sequence");
		return;
	}
	if (err < 0) {
		iscsi_conn_close(c, "out of memory");
		return;
	}
	iscsi_task_data_out(t);
}

/* SCSI Command (RFC 7143 11.3) */

static struct iscsi_task *iscsi_task_new(struct iscsi_conn *c, const struct iscsi_pdu *p)
{
	const struct iscsi_bhs_cmd *h = &p->hdr.cmd;
	struct iscsi_sess *s = c->sess;
	struct iscsi_task *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->conn = c;
	iscsi_conn_get(c);
	t->refs = 1;
	t->itt = h->itt;
	t->cmdsn = be32toh(h->cmdsn);
	t->flags = h->flags;
	t->immediate = h->op & ISCSI_OP_IMMEDIATE;
	t->counted = !t->immediate;
	memcpy(t->lun_raw, h->lun, 8);
	memcpy(t->scsi.cdb, h->cdb, sizeof(t->scsi.cdb));
	t->scsi.lun = iscsi_lun_decode(h->lun);
	t->scsi.itl = iscsi_sess_itl(s, t->scsi.lun);
	t->scsi.port = &s->port;
	t->scsi.edtl = (h->flags & (ISCSI_CMD_READ | ISCSI_CMD_WRITE)) ? be32toh(h->edtl) : 0;
	t->scsi.done = iscsi_task_scsi_done;
	/* InitialR2T=Yes: no unsolicited Data-Out may follow, whatever F
	 * says; R2Ts start at once */
	t->unsol_done = !(h->flags & ISCSI_CMD_WRITE) || (h->flags & ISCSI_FLAG_FINAL) ||
	                c->params.initial_r2t;
	t->state = ISCSI_TASK_DATA_OUT;
	TAILQ_INSERT_TAIL(&s->tasks, t, link);
	if (t->counted)
		s->in_flight++;
	else
		s->immediate++;
	return t;
}

/* Malformed commands get a Reject; nothing else about them is kept. */
static uint8_t iscsi_cmd_check(struct iscsi_conn *c, const struct iscsi_pdu *p)
{
	const struct iscsi_bhs_cmd *h = &p->hdr.cmd;
	bool w = h->flags & ISCSI_CMD_WRITE;

	if (p->dlen && (!w || !c->params.immediate_data || p->dlen > be32toh(h->edtl) ||
	                p->dlen > c->params.first_burst))
		return ISCSI_REJECT_PROTOCOL;   /* RFC 7143 10.4: immediate data limits */
	if (!w && !(h->flags & ISCSI_FLAG_FINAL))
		return ISCSI_REJECT_PROTOCOL;
	if ((h->flags & ISCSI_CMD_READ) && w)
		return ISCSI_REJECT_NOT_SUPPORTED;      /* bidirectional commands */
	if (iscsi_task_find(c->sess, h->itt))
		return ISCSI_REJECT_TASK_IN_PROGRESS;
	if ((h->op & ISCSI_OP_IMMEDIATE) && c->sess->immediate >= ISCSI_IMMEDIATE_MAX)
		return ISCSI_REJECT_IMMEDIATE;
	return 0;
}

static void iscsi_rx_scsi_cmd(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	uint8_t reason = iscsi_cmd_check(c, p);
	struct iscsi_task *t;
	int rc;

	if (reason) {
		iscsi_cmd_reject(c, p, reason, true);
		return;
	}
	t = iscsi_task_new(c, p);
	if (!t) {
		iscsi_conn_close(c, "out of memory");
		iscsi_pdu_free(p);
		return;
	}
	rc = scsi_task_prepare(&t->scsi);
	if (rc != 0 || !(t->scsi.desc->flags & SCMD_DATA_OUT)) {
		/* done already, or nothing to receive: unsolicited data is dropped */
		iscsi_pdu_free(p);
		t->unsol_done = true;
		if (rc != 0)
			iscsi_task_respond(t);
		else
			iscsi_task_exec(t);
		return;
	}
	t->want = t->scsi.xfer < t->scsi.edtl ? t->scsi.xfer : t->scsi.edtl;
	if (scsi_buf_init(&t->scsi.buf, t->want, &c->mem) < 0 ||
	    iscsi_task_data_copy(t, 0, p->data, p->dlen) < 0) {
		iscsi_pdu_free(p);
		iscsi_conn_close(c, "out of memory");
		return;
	}
	t->unsol_got = p->dlen;
	iscsi_pdu_free(p);
	iscsi_task_data_out(t);
}

/* NOP (RFC 7143 11.18, 11.19) */

static void iscsi_rx_nop_out(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	struct iscsi_pdu *r;

	if (p->hdr.bhs.itt == ISCSI_RSVD_TAG) {
		/* the answer to our ping: the next one after an idle interval */
		if (c->ping_sent && be32toh(p->hdr.bhs.ttt) == c->ping_ttt) {
			c->ping_sent = 0;
			iscsi_conn_ping_arm(c, ev_now(c->loop) + c->srv->nop_interval);
		}
		iscsi_pdu_free(p);
		return;
	}
	r = iscsi_pdu_new(ISCSI_OP_NOP_IN, 0);
	if (!r) {
		iscsi_pdu_free(p);
		iscsi_conn_close(c, "out of memory");
		return;
	}
	r->hdr.bhs.flags = ISCSI_FLAG_FINAL;
	memcpy(r->hdr.bhs.lun, p->hdr.bhs.lun, 8);
	r->hdr.bhs.itt = p->hdr.bhs.itt;
	r->hdr.bhs.ttt = ISCSI_RSVD_TAG;
	r->buf = p->buf;                /* echo the ping data */
	r->data = p->data;
	r->dlen = p->dlen;
	p->buf = NULL;
	r->statsn = true;
	iscsi_pdu_free(p);
	iscsi_conn_send(c, r);
}

/* Timer: ping an idle initiator, drop one that stopped answering.
 *
 *   idle nop_interval --> NOP-In (TTT t) --(NOP-Out TTT t, or anything
 *   received)--> idle again;  --(nothing for nop_timeout)--> dropped
 *
 * The timer is re-armed for the next of these moments, so a ping leaves
 * nop_interval after the last PDU received and the drop comes
 * nop_timeout after the ping, whatever the two values are. */
static void iscsi_conn_ping_arm(struct iscsi_conn *c, ev_tstamp at)
{
	ev_tstamp d = at - ev_now(c->loop);

	c->timer.repeat = d > 0.01 ? d : 0.01;
	ev_timer_again(c->loop, &c->timer);
}

static void iscsi_conn_ping_send(struct iscsi_conn *c, ev_tstamp now)
{
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_NOP_IN, 0);

	if (!p) {
		iscsi_conn_ping_arm(c, now + c->srv->nop_interval);
		return;
	}
	/* RFC 7143 11.19: ITT reserved, TTT not: the initiator must answer
	 * with a NOP-Out carrying this TTT */
	c->ping_ttt = c->sess->next_ttt++;
	if (c->sess->next_ttt == ISCSI_RSVD_TAG)
		c->sess->next_ttt = 1;
	p->hdr.bhs.flags = ISCSI_FLAG_FINAL;
	p->hdr.bhs.itt = ISCSI_RSVD_TAG;
	p->hdr.bhs.ttt = htobe32(c->ping_ttt);
	c->ping_sent = now;
	iscsi_conn_ping_arm(c, now + c->srv->nop_timeout);
	iscsi_conn_send(c, p);  /* StatSN not advanced: ITT is reserved */
}

void iscsi_conn_ping_check(struct iscsi_conn *c)
{
	ev_tstamp now = ev_now(c->loop);

	if (c->state != ISCSI_CONN_FULL)
		return;                 /* logging out: the send queue decides */
	if (c->ping_sent && c->last_rx > c->ping_sent)
		c->ping_sent = 0;       /* it talks: alive, whether it answered or not */
	if (c->ping_sent) {
		if (now - c->ping_sent >= c->srv->nop_timeout) {
			iscsi_conn_close(c, "no answer to NOP-In");
			return;
		}
		iscsi_conn_ping_arm(c, c->ping_sent + c->srv->nop_timeout);
		return;
	}
	if (now - c->last_rx < c->srv->nop_interval || !c->sess) {
		iscsi_conn_ping_arm(c, c->last_rx + c->srv->nop_interval);
		return;
	}
	iscsi_conn_ping_send(c, now);
}

/* Text: SendTargets (RFC 7143 11.10, 11.11, 12.3) */

static void iscsi_text_send_part(struct iscsi_conn *c, uint32_t itt)
{
	uint32_t len = c->text_len - c->text_off;
	struct iscsi_pdu *p;
	bool more = len > c->params.max_send_dsl;

	len = more ? c->params.max_send_dsl : len;
	p = iscsi_pdu_new(ISCSI_OP_TEXT_RSP, len);
	if (!p) {
		iscsi_conn_close(c, "out of memory");
		return;
	}
	if (len)                /* an empty answer has no text */
		memcpy(p->data, c->text_rsp + c->text_off, len);
	c->text_off += len;
	p->hdr.bhs.flags = more ? ISCSI_TEXT_CONTINUE : ISCSI_FLAG_FINAL;
	p->hdr.bhs.itt = itt;
	c->text_ttt = more ? c->sess->next_ttt++ : 0;
	p->hdr.bhs.ttt = more ? htobe32(c->text_ttt) : ISCSI_RSVD_TAG;
	memset(p->hdr.bhs.lun, 0, 8);
	p->statsn = true;
	if (!more) {
		free(c->text_rsp);
		c->text_rsp = NULL;
	}
	iscsi_conn_send(c, p);
}

static int iscsi_text_answer(struct iscsi_conn *c, const struct iscsi_pdu *p,
                             struct iscsi_kv_buf *out)
{
	struct iscsi_text *kv;
	int err = iscsi_text_parse((const char *)p->data, p->dlen, &kv);

	if (err < 0)
		return err;
	for (size_t i = 0; i < iscsi_text_count(kv) && err == 0; i++) {
		const char *v, *k = iscsi_text_key(kv, i, &v);

		if (strcmp(k, "SendTargets") == 0)
			err = iscsi_target_send_targets(c, v, c->sess->initiator, out);
		else
			err = iscsi_kv_add(out, k, "NotUnderstood");
	}
	iscsi_text_free(kv);
	return err;
}

static void iscsi_rx_text(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	struct iscsi_kv_buf out = { 0 };
	uint32_t ttt = be32toh(p->hdr.bhs.ttt);

	if (p->hdr.bhs.ttt != ISCSI_RSVD_TAG && c->text_rsp && ttt == c->text_ttt) {
		iscsi_text_send_part(c, p->hdr.bhs.itt);        /* the next part */
		iscsi_pdu_free(p);
		return;
	}
	free(c->text_rsp);              /* a new request resets a pending one */
	c->text_rsp = NULL;
	if ((p->hdr.bhs.flags & ISCSI_TEXT_CONTINUE) || iscsi_text_answer(c, p, &out) < 0) {
		free(out.buf);
		iscsi_cmd_reject(c, p, ISCSI_REJECT_PROTOCOL, true);
		return;
	}
	c->text_rsp = out.buf;
	c->text_len = out.len;
	c->text_off = 0;
	iscsi_text_send_part(c, p->hdr.bhs.itt);
	iscsi_pdu_free(p);
}

/* Logout (RFC 7143 11.14, 11.15): answered once the session's commands
 * have finished; those still waiting for data-out are aborted. */

static void iscsi_logout_try(struct iscsi_sess *s)
{
	struct iscsi_conn *c = s->conn;
	struct iscsi_pdu *req = s->logout, *p;

	if (!TAILQ_EMPTY(&s->tasks) || c->state != ISCSI_CONN_FULL)
		return;
	s->logout = NULL;
	p = iscsi_pdu_new(ISCSI_OP_LOGOUT_RSP, 0);
	if (!p) {
		iscsi_pdu_free(req);
		iscsi_conn_close(c, "out of memory");
		return;
	}
	p->hdr.logout.flags = ISCSI_FLAG_FINAL;
	p->hdr.logout.response = ISCSI_LOGOUT_RSP_OK;
	p->hdr.logout.itt = req->hdr.logout.itt;
	p->hdr.logout.time2wait = htobe16((uint16_t)c->params.time2wait);
	p->statsn = true;
	p->close_after = true;
	iscsi_pdu_free(req);
	c->state = ISCSI_CONN_LOGOUT;
	ev_io_stop(c->loop, &c->rio);
	iscsi_conn_send(c, p);
}

static void iscsi_rx_logout(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	struct iscsi_sess *s = c->sess;
	uint8_t reason = p->hdr.logout.flags & 0x7f;
	struct iscsi_task *t, *n;

	if (reason == ISCSI_LOGOUT_RECOVERY || s->logout) {
		struct iscsi_pdu *r = iscsi_pdu_new(ISCSI_OP_LOGOUT_RSP, 0);

		if (r) {
			r->hdr.logout.flags = ISCSI_FLAG_FINAL;
			r->hdr.logout.response = ISCSI_LOGOUT_RSP_NO_RECOVERY;
			r->hdr.logout.itt = p->hdr.logout.itt;
			r->statsn = true;
			iscsi_conn_send(c, r);
		}
		iscsi_pdu_free(p);
		return;
	}
	s->logout = p;
	TAILQ_FOREACH_SAFE(t, &s->tasks, link, n)
		if (t->state != ISCSI_TASK_EXEC)
			iscsi_task_abort(t, NULL);
	if (s->logout)
		iscsi_logout_try(s);
}

void iscsi_sess_async_logout(struct iscsi_sess *s, unsigned secs)
{
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_ASYNC, 0);

	if (!p)
		return;
	p->hdr.async.flags = ISCSI_FLAG_FINAL;
	p->hdr.async.itt = ISCSI_RSVD_TAG;
	p->hdr.async.event = ISCSI_ASYNC_LOGOUT_REQUEST;
	p->hdr.async.param3 = htobe16((uint16_t)secs);  /* RFC 7143 11.9.1 */
	p->statsn = true;
	iscsi_conn_send(s->conn, p);
}

static void iscsi_rx_snack(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	/* ERL 0 has no SNACK (RFC 7143 11.16) */
	iscsi_conn_reject(c, &p->hdr, ISCSI_REJECT_SNACK);
	iscsi_pdu_free(p);
}

/* Task management (RFC 7143 11.5, 11.6; SAM-5 7) */

static void iscsi_tmf_respond(struct iscsi_tmf *tmf)
{
	struct iscsi_conn *c = tmf->conn;
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_TMF_RSP, 0);

	if (p) {
		p->hdr.tmf.flags = ISCSI_FLAG_FINAL;
		p->hdr.tmf.response = tmf->response;
		p->hdr.tmf.itt = tmf->itt;
		p->statsn = true;
		iscsi_conn_send(c, p);
	}
	if (tmf->cold) {        /* cold reset: every connection to the target goes */
		struct iscsi_sess *s, *n;
		const char *iqn = c->sess && c->sess->target ? c->sess->target->iqn : "";

		TAILQ_FOREACH_SAFE(s, &c->srv->sessions, link, n)
			if (s->target && strcasecmp(s->target->iqn, iqn) == 0 && s->conn != c)
				iscsi_conn_close(s->conn, "target cold reset");
		p = TAILQ_LAST(&c->txq, iscsi_pdu_list);
		if (p)
			p->close_after = true;
		else
			iscsi_conn_close(c, "target cold reset");
	}
	iscsi_conn_put(c);
	free(tmf);
}

static void iscsi_tmf_wait_done(struct iscsi_tmf *tmf)
{
	if (--tmf->waiting > 0)
		return;
	if (tmf->done) {
		tmf->done(tmf->arg);
		free(tmf);
		return;
	}
	iscsi_tmf_respond(tmf);
}

/* Aborts the tasks of every session of srv on lu (NULL: on any LU of the
 * target iqn) except those of keep; sets ua on their nexuses. */
static void iscsi_tmf_abort_lu(struct iscsi_srv *srv, struct scsi_lu *lu, const char *iqn,
                               struct iscsi_sess *only, struct iscsi_tmf *tmf)
{
	struct iscsi_sess *s;
	struct iscsi_task *t, *n;

	TAILQ_FOREACH(s, &srv->sessions, link) {
		if (only && s != only)
			continue;
		if (!lu && (!s->target || strcasecmp(s->target->iqn, iqn) != 0))
			continue;
		TAILQ_FOREACH_SAFE(t, &s->tasks, link, n)
			if (t->scsi.itl && (!lu || t->scsi.itl->lu == lu))
				iscsi_task_abort(t, tmf);
	}
}

/* PREEMPT AND ABORT (SPC-4 5.13.11.2.5): the preempted nexus's tasks on
 * lu are aborted, without a response; those in store I/O are waited for
 * (as a TMF waits), so none of the loser's writes lands after the PR OUT
 * that fenced it has completed. */
static int iscsi_port_abort(const struct scsi_port *p, struct scsi_lu *lu,
                            void (*done)(void *arg), void *arg)
{
	struct iscsi_sess *s = container_of(p, struct iscsi_sess, port);
	struct iscsi_tmf *w = calloc(1, sizeof(*w));

	if (!w) {               /* aborted all the same, just not waited for */
		iscsi_tmf_abort_lu(s->srv, lu, NULL, s, NULL);
		return 0;
	}
	w->done = done;
	w->arg = arg;
	w->waiting = 1;
	iscsi_tmf_abort_lu(s->srv, lu, NULL, s, w);
	if (--w->waiting > 0)
		return 1;
	free(w);
	return 0;
}

static void iscsi_sess_hold(struct iscsi_sess *s, struct iscsi_pdu *p, uint32_t sn);
static void iscsi_sess_drain_held(struct iscsi_conn *c);

/* The command at CmdSN sn was not taken (lost, rejected, or waiting behind
 * a gap): it counts as received and, if it waits, never runs. A NOP-Out
 * with the reserved ITT, which gets no answer, takes its place. */
static void iscsi_sess_plug(struct iscsi_sess *s, uint32_t sn, uint32_t rtt)
{
	struct iscsi_pdu *q, *nop;

	TAILQ_FOREACH(q, &s->held, link) {
		if (be32toh(q->hdr.bhs.sn) != sn)
			continue;
		if (q->hdr.bhs.itt != rtt)
			return;         /* another command has that CmdSN: it runs */
		TAILQ_REMOVE(&s->held, q, link);
		iscsi_pdu_free(q);
		break;
	}
	nop = iscsi_pdu_new(ISCSI_OP_NOP_OUT, 0);
	if (!nop)
		return;
	nop->hdr.bhs.flags = ISCSI_FLAG_FINAL;
	nop->hdr.bhs.itt = ISCSI_RSVD_TAG;
	nop->hdr.bhs.ttt = ISCSI_RSVD_TAG;
	nop->hdr.bhs.sn = htobe32(sn);
	iscsi_sess_hold(s, nop, sn);
	iscsi_sess_drain_held(s->conn);
}

static uint8_t iscsi_tmf_abort_task(struct iscsi_sess *s, const struct iscsi_bhs_tmf *h,
                                    struct iscsi_tmf *tmf)
{
	struct iscsi_task *t = iscsi_task_find(s, h->rtt);
	uint32_t ref = be32toh(h->ref_cmdsn);

	if (t) {
		iscsi_task_abort(t, tmf);
		return ISCSI_TMF_RSP_COMPLETE;
	}
	/* RFC 7143 11.5.1 b): no such task, but RefCmdSN is in the window and
	 * before the TMF's own CmdSN: "complete", the CmdSN taken as received
	 * (how an initiator plugs the gap a rejected command leaves, 7.2) */
	if (sn_diff(ref, s->max_cmdsn) > 0 || sn_diff(ref, be32toh(h->sn)) >= 0)
		return ISCSI_TMF_RSP_NO_TASK;
	if (sn_diff(ref, s->exp_cmdsn) >= 0)
		iscsi_sess_plug(s, ref, h->rtt);
	return ISCSI_TMF_RSP_COMPLETE;
}

static void iscsi_tmf_target_reset(struct iscsi_sess *s, struct iscsi_tmf *tmf)
{
	struct iscsi_sess *o;

	iscsi_tmf_abort_lu(s->srv, NULL, s->target->iqn, NULL, tmf);
	TAILQ_FOREACH(o, &s->srv->sessions, link)
		if (o->target && strcasecmp(o->target->iqn, s->target->iqn) == 0)
			for (size_t i = 0; i < o->port.nitls; i++) {
				scsi_lu_ua_set(o->itls[i].lu, SCSI_UA_BUS_RESET, NULL);
				pr_lu_reset(o->itls[i].lu->pr);        /* SPC-2 RESERVE */
			}
}

static uint8_t iscsi_tmf_run(struct iscsi_sess *s, const struct iscsi_bhs_tmf *h,
                             struct iscsi_tmf *tmf)
{
	uint8_t fn = h->flags & 0x7f;
	struct scsi_itl *itl = iscsi_sess_itl(s, iscsi_lun_decode(h->lun));

	if (s->discovery)
		return ISCSI_TMF_RSP_AUTH_FAILED;
	switch (fn) {
	case ISCSI_TMF_ABORT_TASK:
		return iscsi_tmf_abort_task(s, h, tmf);
	case ISCSI_TMF_ABORT_TASK_SET:
	case ISCSI_TMF_CLEAR_TASK_SET:
	case ISCSI_TMF_LUN_RESET:
		if (!itl)
			return ISCSI_TMF_RSP_NO_LUN;
		/* one task set per LU (TST=000b): CLEAR TASK SET and LUN RESET
		 * reach every nexus; ABORT TASK SET only this one */
		iscsi_tmf_abort_lu(s->srv, itl->lu, NULL, fn == ISCSI_TMF_ABORT_TASK_SET ? s : NULL,
		                   tmf);
		if (fn == ISCSI_TMF_CLEAR_TASK_SET)
			scsi_lu_ua_set(itl->lu, SCSI_UA_CMDS_CLEARED, itl);
		if (fn == ISCSI_TMF_LUN_RESET) {
			scsi_lu_ua_set(itl->lu, SCSI_UA_DEVICE_RESET, NULL);
			pr_lu_reset(itl->lu->pr);       /* SPC-2 RESERVE, not PR */
		}
		return ISCSI_TMF_RSP_COMPLETE;
	case ISCSI_TMF_TARGET_COLD_RESET:
		tmf->cold = true;
		/* fall through */
	case ISCSI_TMF_TARGET_WARM_RESET:
		iscsi_tmf_target_reset(s, tmf);
		return ISCSI_TMF_RSP_COMPLETE;
	case ISCSI_TMF_TASK_REASSIGN:
		return ISCSI_TMF_RSP_NO_REASSIGN;       /* ERL 0 */
	default:
		return ISCSI_TMF_RSP_NOT_SUPPORTED;     /* CLEAR ACA: no NACA */
	}
}

static void iscsi_rx_tmf(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	struct iscsi_tmf *tmf = calloc(1, sizeof(*tmf));

	if (!tmf) {
		iscsi_pdu_free(p);
		iscsi_conn_close(c, "out of memory");
		return;
	}
	tmf->conn = c;
	iscsi_conn_get(c);
	tmf->itt = p->hdr.tmf.itt;
	tmf->waiting = 1;               /* held until the function has run */
	tmf->response = iscsi_tmf_run(c->sess, &p->hdr.tmf, tmf);
	iscsi_log(c->srv, STORE_LOG_INFO, "%s: task management function %u: response %u",
	          c->peer, p->hdr.tmf.flags & 0x7f, tmf->response);
	iscsi_pdu_free(p);
	iscsi_tmf_wait_done(tmf);
}

/* Receive dispatch and the CmdSN window */

int iscsi_sess_hdr_check(struct iscsi_conn *c, const union iscsi_hdr *h)
{
	uint8_t op = h->bhs.op & ISCSI_OP_MASK;
	uint32_t max = c->params.max_recv_dsl;

	if (c->state == ISCSI_CONN_LOGIN) {
		if (op != ISCSI_OP_LOGIN_REQ)
			return -EPROTO;
		max = max > 8192 ? max : 8192;
	} else if (op == ISCSI_OP_LOGIN_REQ) {
		return -EPROTO;         /* RFC 7143 6.3: no login in the full phase */
	}
	return iscsi_dlen(h) > max ? -EPROTO : 0;
}

static void iscsi_sess_process(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	const struct iscsi_op_desc *d = &iscsi_ops[p->hdr.bhs.op & ISCSI_OP_MASK];

	uint8_t op = p->hdr.bhs.op & ISCSI_OP_MASK;

	if (!d->rx || !(d->flags & OPF_FULL)) {
		iscsi_cmd_reject(c, p, ISCSI_REJECT_NOT_SUPPORTED, d->flags & OPF_CMDSN);
		return;
	}
	/* RFC 7143 4.3: a discovery session has Text, Logout and NOP only */
	if (c->sess->discovery && op != ISCSI_OP_TEXT_REQ && op != ISCSI_OP_LOGOUT_REQ &&
	    op != ISCSI_OP_NOP_OUT) {
		iscsi_cmd_reject(c, p, ISCSI_REJECT_PROTOCOL, d->flags & OPF_CMDSN);
		return;
	}
	d->rx(c, p);
}

/* Takes the held PDUs whose turn has come. */
static void iscsi_sess_drain_held(struct iscsi_conn *c)
{
	struct iscsi_pdu *p;

	while (c->state == ISCSI_CONN_FULL && c->sess &&
	       (p = TAILQ_FIRST(&c->sess->held)) &&
	       be32toh(p->hdr.bhs.sn) == c->sess->exp_cmdsn) {
		TAILQ_REMOVE(&c->sess->held, p, link);
		c->sess->exp_cmdsn++;
		iscsi_sess_process(c, p);
	}
}

static void iscsi_sess_hold(struct iscsi_sess *s, struct iscsi_pdu *p, uint32_t sn)
{
	struct iscsi_pdu *q;

	TAILQ_FOREACH(q, &s->held, link) {
		int32_t d = sn_diff(sn, be32toh(q->hdr.bhs.sn));

		if (d == 0) {           /* a duplicate: drop it */
			iscsi_pdu_free(p);
			return;
		}
		if (d < 0) {
			TAILQ_INSERT_BEFORE(q, p, link);
			return;
		}
	}
	TAILQ_INSERT_TAIL(&s->held, p, link);
}

void iscsi_sess_rx(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	const struct iscsi_op_desc *d = &iscsi_ops[p->hdr.bhs.op & ISCSI_OP_MASK];
	struct iscsi_sess *s = c->sess;
	uint32_t sn = be32toh(p->hdr.bhs.sn);

	if (c->state != ISCSI_CONN_FULL || !s) {
		iscsi_pdu_free(p);
		return;
	}
	if (!(d->flags & OPF_CMDSN)) {
		iscsi_sess_process(c, p);
		return;
	}
	c->exp_statsn = be32toh(p->hdr.bhs.exp_sn);
	if (p->hdr.bhs.op & ISCSI_OP_IMMEDIATE) {
		iscsi_sess_process(c, p);       /* not ordered, CmdSN not taken */
		return;
	}
	if (sn_diff(sn, s->exp_cmdsn) < 0 || sn_diff(sn, s->max_cmdsn) > 0) {
		/* outside the window: silently ignored (RFC 7143 4.2.2.1) */
		iscsi_log(c->srv, STORE_LOG_DEBUG, "%s: CmdSN %u outside [%u, %u]: ignored",
		          c->peer, sn, s->exp_cmdsn, s->max_cmdsn);
		iscsi_pdu_free(p);
		return;
	}
	if (sn != s->exp_cmdsn) {
		iscsi_sess_hold(s, p, sn);
		return;
	}
	s->exp_cmdsn++;
	iscsi_sess_process(c, p);
	iscsi_sess_drain_held(c);
}

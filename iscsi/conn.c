/* iscsi/conn.c: one TCP connection: PDU framing in both directions,
 * digests, the send queue, timers and the connection's life cycle.
 *
 * Receive (RFC 7143 11.2): a state machine fed from a read-ahead buffer
 *
 *   RX_BHS --(AHS length > 0)--> RX_AHS --(HeaderDigest)--> RX_HDIG
 *      |                                                      |
 *      +---------------- header checked: iscsi_rx_hdr() ------+
 *      |                                                      |
 *   RX_DATA --(DataDigest)--> RX_DDIG --> iscsi_rx_dispatch() --> RX_BHS
 *
 * The header is validated (opcode legal in this phase, data segment no
 * longer than we declared) before a byte of the data segment is read, so
 * the memory a connection holds for reception is bounded by
 * MaxRecvDataSegmentLength. Nothing read from the socket is trusted: a bad
 * header digest or an oversized segment drops the connection (ERL 0 has no
 * recovery within a connection), a malformed PDU gets a Reject.
 *
 * Send: PDUs wait in txq in StatSN order and leave with writev(), many per
 * call; a task's data-in is borrowed from its buffer, not copied.
 *
 * Threads (loop.c): on a loop of its own, a connection's recv and writev
 * run without the target lock, on its loop's thread only: a PDU queued
 * from elsewhere (a store completion on the main loop) puts the
 * connection on its loop's flush list, written after that loop's next
 * batch of callbacks. On the main loop alone, PDUs are written at once.
 *
 * Transitions: accept -> LOGIN: iscsi_conn_create; LOGIN -> FULL:
 * login.c; FULL -> LOGOUT: session.c (logout response queued, close after
 * it is sent); any -> CLOSED: iscsi_conn_close; CLOSED -> freed when the
 * last reference goes (iscsi_conn_put).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <isa-l/crc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "iscsi/internal.h"

#define ISCSI_IOV_BATCH         64
/* A peer that sends but does not read (a NOP-Out or TEST UNIT READY flood)
 * would make its answers pile up without bound: past TXQ_HIGH queued PDUs
 * the connection is not read until its queue is down to TXQ_LOW. Data-In
 * of big reads in small PDUs may pass TXQ_HIGH too; it only slows the
 * reading. */
#define ISCSI_TXQ_HIGH          16384u
#define ISCSI_TXQ_LOW           4096u
#define ISCSI_PAD(n)            ((4u - ((n) & 3u)) & 3u)

uint32_t iscsi_crc32c(const void *buf, size_t len, uint32_t crc)
{
	while (len > 0) {       /* crc32_iscsi takes an int length */
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)buf, n, crc);
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return crc;
}

/* RFC 7143 11.2.1.4 header digest / 11.2.1.5 data digest: CRC32C, initial
 * value ~0, complemented, sent least significant byte first. */
static uint32_t iscsi_digest(const void *a, size_t alen, const void *b, size_t blen)
{
	static const uint8_t zero[4];
	uint32_t crc = iscsi_crc32c(a, alen, 0xffffffffu);

	if (b)
		crc = iscsi_crc32c(b, blen, crc);
	crc = iscsi_crc32c(zero, ISCSI_PAD(alen + blen), crc);
	return htole32(~crc);
}

uint32_t iscsi_dlen(const union iscsi_hdr *h)
{
	return (uint32_t)h->bhs.dlen[0] << 16 | (uint32_t)h->bhs.dlen[1] << 8 | h->bhs.dlen[2];
}

void iscsi_dlen_set(union iscsi_hdr *h, uint32_t len)
{
	h->bhs.dlen[0] = (uint8_t)(len >> 16);
	h->bhs.dlen[1] = (uint8_t)(len >> 8);
	h->bhs.dlen[2] = (uint8_t)len;
}

/* PDUs */

struct iscsi_pdu *iscsi_pdu_new(uint8_t op, uint32_t dlen)
{
	struct iscsi_pdu *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (dlen) {
		p->buf = calloc(1, dlen + ISCSI_PAD(dlen));
		if (!p->buf) {
			free(p);
			return NULL;
		}
		p->data = p->buf;
		p->dlen = dlen;
	}
	p->hdr.bhs.op = op;
	return p;
}

void iscsi_pdu_free(struct iscsi_pdu *p)
{
	if (!p)
		return;
	if (p->task)
		iscsi_task_put(p->task);
	free(p->buf);
	free(p);
}

/* Life cycle */

void iscsi_conn_get(struct iscsi_conn *c)
{
	c->refs++;
}

/* The socket, the PDU being received and the send queue: what the owner's
 * unlocked syscalls use, so released only when none runs (c->busy). */
static void iscsi_conn_release_io(struct iscsi_conn *c)
{
	struct iscsi_pdu *p;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while ((p = TAILQ_FIRST(&c->txq))) {
		TAILQ_REMOVE(&c->txq, p, link);
		iscsi_pdu_free(p);
	}
	c->txq_len = 0;
	iscsi_pdu_free(c->rx);
	c->rx = NULL;
}

/* The owner's big syscalls run without the target lock. */
static void iscsi_conn_io_begin(struct iscsi_conn *c)
{
	c->busy = true;
	iscsi_loop_unlock(c->iloop);
}

/* Locked again: what a close from another thread left is done now. */
static void iscsi_conn_io_end(struct iscsi_conn *c)
{
	iscsi_loop_lock(c->iloop);
	c->busy = false;
	if (c->state == ISCSI_CONN_CLOSED)
		iscsi_conn_release_io(c);
}

static void iscsi_conn_free(struct iscsi_conn *c)
{
	struct iscsi_srv *s = c->srv;

	ev_idle_stop(c->loop, &c->reap);
	iscsi_conn_release_io(c);
	c->iloop->nconns--;
	c->iloop->kick_main = true;     /* volume handles close */
	if (c->sess)
		iscsi_sess_destroy(c->sess);    /* its tasks are all gone now */
	iscsi_srv_conn_gone(s, c);
	free(c->text_rsp);
	free(c);
}

void iscsi_conn_put(struct iscsi_conn *c)
{
	if (--c->refs == 0 && c->state == ISCSI_CONN_CLOSED) {
		ev_idle_start(c->loop, &c->reap);
		iscsi_loop_wake(c->iloop);
	}
}

static void iscsi_conn_reap_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct iscsi_conn *c = container_of(w, struct iscsi_conn, reap);

	(void)loop; (void)revents;
	if (c->refs == 0)
		iscsi_conn_free(c);
	else
		ev_idle_stop(c->loop, &c->reap);
}

static void iscsi_tx_last(struct iscsi_conn *c);

void iscsi_conn_close(struct iscsi_conn *c, const char *why)
{
	if (c->state == ISCSI_CONN_CLOSED)
		return;
	iscsi_log(c->srv, why ? STORE_LOG_INFO : STORE_LOG_DEBUG, "%s: connection closed%s%s",
	          c->peer, why ? ": " : "", why ? why : "");
	c->state = ISCSI_CONN_CLOSED;
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_stop(c->loop, &c->timer);
	if (c->busy) {
		shutdown(c->fd, SHUT_RDWR);     /* the owner's syscall ends; it releases */
	} else {
		iscsi_tx_last(c);
		iscsi_conn_release_io(c);
	}
	iscsi_loop_wake(c->iloop);
	c->iloop->kick_main = true;
	iscsi_login_free(c->login);
	c->login = NULL;
	if (c->sess)
		iscsi_sess_conn_lost(c->sess);
	/* tasks still in the store hold references; the last one frees c */
	iscsi_conn_get(c);
	iscsi_conn_put(c);
}

/* Send */

static void iscsi_conn_window(const struct iscsi_conn *c, uint32_t *exp, uint32_t *max)
{
	if (c->sess) {
		*exp = c->sess->exp_cmdsn;
		*max = c->sess->max_cmdsn;
	} else {
		*exp = c->exp_statsn;   /* login: the CmdSN of the login request */
		*max = c->exp_statsn + ISCSI_QUEUE_DEPTH - 1;
	}
}

/* Fills the sequence numbers every target PDU carries at bytes 24-35. */
static void iscsi_pdu_fill_sn(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	struct iscsi_bhs *b = &p->hdr.bhs;
	uint8_t op = b->op & ISCSI_OP_MASK;
	uint32_t exp, max;

	iscsi_conn_window(c, &exp, &max);
	if (op == ISCSI_OP_DATA_IN && !(b->flags & ISCSI_DATA_STATUS))
		b->sn = 0;
	else
		b->sn = htobe32(c->statsn);
	if (p->statsn)
		c->statsn++;
	b->exp_sn = htobe32(exp);
	b->max_cmdsn = htobe32(max);
}

static void iscsi_pdu_frame(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	static const uint8_t pad[4];
	uint32_t padn = ISCSI_PAD(p->dlen);
	int n = 0;

	iscsi_dlen_set(&p->hdr, p->dlen);
	p->iov[n++] = (struct iovec){ p->hdr.raw, ISCSI_BHS_LEN };
	if (c->params.header_digest) {
		uint32_t d = iscsi_digest(p->hdr.raw, ISCSI_BHS_LEN, NULL, 0);

		memcpy(p->hdig, &d, 4);
		p->iov[n++] = (struct iovec){ p->hdig, 4 };
	}
	if (p->dlen) {
		p->iov[n++] = (struct iovec){ p->data, p->dlen };
		if (padn)
			p->iov[n++] = (struct iovec){ (void *)pad, padn };
		if (c->params.data_digest) {
			uint32_t d;

			/* on a loop thread the writer computes it, without the lock */
			p->ddig_later = c->iloop->threaded;
			if (!p->ddig_later) {
				d = iscsi_digest(p->data, p->dlen, NULL, 0);
				memcpy(p->ddig, &d, 4);
			}
			p->iov[n++] = (struct iovec){ p->ddig, 4 };
		}
	}
	p->iovcnt = n;
	p->total = 0;
	for (int i = 0; i < n; i++)
		p->total += p->iov[i].iov_len;
	p->sent = 0;
}

/* The iovecs of queued PDUs from where the last write stopped, and in
 * dig[] those whose data digest is still to compute. */
static int iscsi_tx_gather(struct iscsi_conn *c, struct iovec *iov, int max,
                           struct iscsi_pdu **dig, int *ndig)
{
	struct iscsi_pdu *p;
	int n = 0;

	*ndig = 0;
	TAILQ_FOREACH(p, &c->txq, link) {
		size_t skip = p->sent;

		if (p->ddig_later && *ndig < max)
			dig[(*ndig)++] = p;

		for (int i = 0; i < p->iovcnt && n < max; i++) {
			if (skip >= p->iov[i].iov_len) {
				skip -= p->iov[i].iov_len;
				continue;
			}
			iov[n].iov_base = (char *)p->iov[i].iov_base + skip;
			iov[n].iov_len = p->iov[i].iov_len - skip;
			skip = 0;
			n++;
		}
		if (n >= max || p->close_after)
			break;
	}
	return n;
}

static void iscsi_tx_digests(struct iscsi_pdu **dig, int ndig)
{
	for (int i = 0; i < ndig; i++) {
		uint32_t d = iscsi_digest(dig[i]->data, dig[i]->dlen, NULL, 0);

		memcpy(dig[i]->ddig, &d, 4);
	}
}

static void iscsi_conn_txq_check(struct iscsi_conn *c)
{
	if (c->txq_len > ISCSI_TXQ_HIGH && !c->rx_paused)
		iscsi_conn_rx_pause(c, true);
	else if (c->txq_len <= ISCSI_TXQ_LOW && c->rx_paused && c->state != ISCSI_CONN_LOGOUT)
		iscsi_conn_rx_pause(c, false);
}

/* Writes what the socket takes. 0, or -errno when the socket is broken:
 * the caller closes c, and only from the loop (iscsi_conn_write_cb),
 * since closing aborts and frees tasks a sender may be working on. What
 * failed stays queued, so the next flush fails the same way. */
static int iscsi_tx_flush(struct iscsi_conn *c)
{
	struct iovec iov[ISCSI_IOV_BATCH];
	struct iscsi_pdu *dig[ISCSI_IOV_BATCH];

	while (!TAILQ_EMPTY(&c->txq)) {
		int ndig, n = iscsi_tx_gather(c, iov, ISCSI_IOV_BATCH, dig, &ndig), err;
		struct iscsi_pdu *p;
		ssize_t w;

		/* the PDUs gathered stay queued: each holds its data (task ref) */
		iscsi_conn_io_begin(c);
		iscsi_tx_digests(dig, ndig);
		w = writev(c->fd, iov, n);
		err = errno;
		iscsi_conn_io_end(c);
		if (c->state == ISCSI_CONN_CLOSED)
			return 0;               /* by another thread meanwhile */
		for (int i = 0; i < ndig; i++)
			dig[i]->ddig_later = false;
		errno = err;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(c->loop, &c->wio);
			return 0;
		}
		if (w < 0)
			return -errno;
		while (w > 0 && (p = TAILQ_FIRST(&c->txq))) {
			size_t left = p->total - p->sent;
			size_t take = (size_t)w < left ? (size_t)w : left;

			p->sent += take;
			w -= (ssize_t)take;
			if (p->sent < p->total)
				break;
			TAILQ_REMOVE(&c->txq, p, link);
			c->txq_len--;
			if (!TAILQ_EMPTY(&c->mem_wait))
				c->iloop->kick_main = true;     /* freed memory starts I/O */
			if (p->close_after) {
				iscsi_pdu_free(p);
				iscsi_conn_close(c, NULL);
				return 0;
			}
			iscsi_pdu_free(p);
		}
	}
	ev_io_stop(c->loop, &c->wio);
	iscsi_conn_txq_check(c);
	return 0;
}

/* A connection closing right after an answer (a reject, a cold reset's
 * TMF response): what the socket takes now, locked, as with no loop
 * threads, where PDUs are written as they are queued. */
static void iscsi_tx_last(struct iscsi_conn *c)
{
	struct iovec iov[ISCSI_IOV_BATCH];
	struct iscsi_pdu *dig[ISCSI_IOV_BATCH];
	int ndig, n;

	if (!c->iloop->threaded || c->fd < 0 || TAILQ_EMPTY(&c->txq))
		return;
	n = iscsi_tx_gather(c, iov, ISCSI_IOV_BATCH, dig, &ndig);
	iscsi_tx_digests(dig, ndig);
	if (writev(c->fd, iov, n) < 0)
		return;                 /* closing anyway */
}

void iscsi_conn_send(struct iscsi_conn *c, struct iscsi_pdu *p)
{
	if (c->state == ISCSI_CONN_CLOSED) {
		iscsi_pdu_free(p);
		return;
	}
	iscsi_pdu_fill_sn(c, p);
	iscsi_pdu_frame(c, p);
	TAILQ_INSERT_TAIL(&c->txq, p, link);
	c->txq_len++;
	if (ev_is_active(&c->wio)) {
		/* the socket is full: the write callback goes on */
	} else if (c->iloop->threaded) {
		/* written by the owner, unlocked, after its current callbacks */
		if (!c->flush_queued) {
			c->flush_queued = true;
			iscsi_conn_get(c);
			TAILQ_INSERT_TAIL(&c->iloop->flushq, c, flush_link);
			iscsi_loop_wake(c->iloop);
		}
	} else if (iscsi_tx_flush(c) < 0) {
		ev_feed_event(c->loop, &c->wio, EV_WRITE);      /* closes it from the loop */
	}
	iscsi_conn_txq_check(c);
}

void iscsi_conn_tx_run(struct iscsi_conn *c)
{
	int err;

	if (c->state == ISCSI_CONN_CLOSED || ev_is_active(&c->wio))
		return;
	err = iscsi_tx_flush(c);
	if (err < 0)
		iscsi_conn_close(c, strerror(-err));
}

static void iscsi_conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct iscsi_conn *c = container_of(w, struct iscsi_conn, wio);
	int err;

	(void)loop; (void)revents;
	iscsi_conn_get(c);
	err = iscsi_tx_flush(c);
	if (err < 0)
		iscsi_conn_close(c, strerror(-err));
	iscsi_conn_put(c);
}

/* RFC 7143 11.17: the rejected PDU's header is the data segment. */
void iscsi_conn_reject(struct iscsi_conn *c, const union iscsi_hdr *h, uint8_t reason)
{
	struct iscsi_pdu *p = iscsi_pdu_new(ISCSI_OP_REJECT, ISCSI_BHS_LEN);

	iscsi_log(c->srv, STORE_LOG_WARN, "%s: reject opcode 0x%02x: reason 0x%02x", c->peer,
	          h->bhs.op & ISCSI_OP_MASK, reason);
	if (!p) {
		iscsi_conn_close(c, "out of memory");
		return;
	}
	p->hdr.reject.flags = ISCSI_FLAG_FINAL;
	p->hdr.reject.reason = reason;
	p->hdr.reject.itt = ISCSI_RSVD_TAG;
	p->statsn = true;
	memcpy(p->data, h->raw, ISCSI_BHS_LEN);
	iscsi_conn_send(c, p);
}

/* Receive */

static void iscsi_rx_expect(struct iscsi_conn *c, enum iscsi_rx_state st, void *dst,
                            uint32_t len)
{
	c->rx_state = st;
	c->rx_dst = dst;
	c->rx_need = len;
}

static int iscsi_rx_start(struct iscsi_conn *c)
{
	c->rx = calloc(1, sizeof(*c->rx));
	if (!c->rx)
		return -ENOMEM;
	c->rx_ahs_len = 0;
	iscsi_rx_expect(c, ISCSI_RX_BHS, c->rx->hdr.raw, ISCSI_BHS_LEN);
	return 0;
}

static void iscsi_rx_dispatch(struct iscsi_conn *c)
{
	struct iscsi_pdu *p = c->rx;

	c->rx = NULL;
	if (c->state == ISCSI_CONN_LOGIN)
		iscsi_login_rx(c, p);
	else
		iscsi_sess_rx(c, p);
	if (c->state != ISCSI_CONN_CLOSED && iscsi_rx_start(c) < 0)
		iscsi_conn_close(c, "out of memory");
}

/* The header is complete (and its digest good): may the data follow? */
static int iscsi_rx_hdr(struct iscsi_conn *c)
{
	uint32_t dlen = iscsi_dlen(&c->rx->hdr);
	int err = iscsi_sess_hdr_check(c, &c->rx->hdr);

	if (err < 0)
		return err;
	if (dlen == 0) {
		iscsi_rx_dispatch(c);
		return 0;
	}
	c->rx->buf = malloc(dlen + ISCSI_PAD(dlen));
	if (!c->rx->buf)
		return -ENOMEM;
	c->rx->data = c->rx->buf;
	c->rx->dlen = dlen;
	iscsi_rx_expect(c, ISCSI_RX_DATA, c->rx->buf, dlen + ISCSI_PAD(dlen));
	return 0;
}

/* One part of a PDU has been read: move the state machine on. */
static int iscsi_rx_step(struct iscsi_conn *c)
{
	struct iscsi_pdu *p = c->rx;
	uint32_t d;

	switch (c->rx_state) {
	case ISCSI_RX_BHS:
		c->rx_ahs_len = p->hdr.bhs.ahs_len * 4u;
		if (c->rx_ahs_len) {
			iscsi_rx_expect(c, ISCSI_RX_AHS, c->rx_ahs, c->rx_ahs_len);
			return 0;
		}
		/* fall through */
	case ISCSI_RX_AHS:
		if (c->params.header_digest) {
			iscsi_rx_expect(c, ISCSI_RX_HDIG, p->hdig, 4);
			return 0;
		}
		return iscsi_rx_hdr(c);
	case ISCSI_RX_HDIG:
		d = iscsi_crc32c(p->hdr.raw, ISCSI_BHS_LEN, 0xffffffffu);
		d = htole32(~iscsi_crc32c(c->rx_ahs, c->rx_ahs_len, d));
		if (memcmp(&d, p->hdig, 4) != 0)
			return -EBADMSG;        /* RFC 7143 7.8: cannot trust the length */
		return iscsi_rx_hdr(c);
	case ISCSI_RX_DATA:
		if (c->params.data_digest) {
			iscsi_rx_expect(c, ISCSI_RX_DDIG, p->ddig, 4);
			return 0;
		}
		iscsi_rx_dispatch(c);
		return 0;
	case ISCSI_RX_DDIG:
		iscsi_conn_io_begin(c);         /* c->rx is the owner's: no lock */
		d = iscsi_digest(p->data, p->dlen, NULL, 0);
		iscsi_conn_io_end(c);
		if (c->state == ISCSI_CONN_CLOSED)
			return -ECONNABORTED;   /* by another thread meanwhile */
		if (memcmp(&d, p->ddig, 4) != 0) {
			/* RFC 7143 7.8: Reject, and with ERL 0 the task is lost */
			iscsi_conn_reject(c, &p->hdr, ISCSI_REJECT_DIGEST);
			return -EBADMSG;
		}
		iscsi_rx_dispatch(c);
		return 0;
	}
	return -EINVAL;
}

static ssize_t iscsi_rx_read(struct iscsi_conn *c, void *dst, size_t len)
{
	ssize_t r;
	int err;

	iscsi_conn_io_begin(c);
	r = read(c->fd, dst, len);
	err = errno;
	iscsi_conn_io_end(c);
	errno = err;
	return r;
}

/* Copies from the read-ahead buffer, or reads big segments directly. The
 * caller checks that c is still open after it. */
static ssize_t iscsi_rx_fill(struct iscsi_conn *c)
{
	ssize_t r;

	if (c->rbuf_off < c->rbuf_len) {
		uint32_t n = c->rbuf_len - c->rbuf_off;

		if (n > c->rx_need)
			n = c->rx_need;
		memcpy(c->rx_dst, c->rbuf + c->rbuf_off, n);
		c->rbuf_off += n;
		return n;
	}
	if (c->rx_need >= sizeof(c->rbuf) / 2)
		return iscsi_rx_read(c, c->rx_dst, c->rx_need);
	r = iscsi_rx_read(c, c->rbuf, sizeof(c->rbuf));
	if (r <= 0 || c->state == ISCSI_CONN_CLOSED)
		return r;
	c->rbuf_off = 0;
	c->rbuf_len = (uint32_t)r;
	return 0;       /* copied on the next turn */
}

static void iscsi_conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct iscsi_conn *c = container_of(w, struct iscsi_conn, rio);
	int budget = 64;        /* PDUs per wake-up, so one peer cannot hog the loop */

	(void)revents;
	c->last_rx = ev_now(loop);
	iscsi_conn_get(c);
	c->iloop->kick_main = true;     /* commands reach the store */
	while (c->state != ISCSI_CONN_CLOSED && !c->rx_paused && budget > 0) {
		ssize_t n = iscsi_rx_fill(c);
		int err;

		if (c->state == ISCSI_CONN_CLOSED)
			break;                  /* by another thread meanwhile */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 || (n == 0 && c->rbuf_off == c->rbuf_len)) {
			iscsi_conn_close(c, n < 0 ? strerror(errno) : "closed by the initiator");
			break;
		}
		c->rx_dst += n;
		c->rx_need -= (uint32_t)n;
		if (c->rx_need > 0)
			continue;
		err = iscsi_rx_step(c);
		if (err < 0) {
			iscsi_conn_close(c, err == -EBADMSG ? "digest error" :
			                 err == -EPROTO ? "protocol error" : strerror(-err));
			break;
		}
		if (c->rx_state == ISCSI_RX_BHS)
			budget--;
	}
	/* more may be buffered: come back on the next loop turn */
	if (c->state != ISCSI_CONN_CLOSED && !c->rx_paused && c->rbuf_off < c->rbuf_len)
		ev_feed_event(loop, &c->rio, EV_READ);
	iscsi_conn_put(c);
}

void iscsi_conn_rx_pause(struct iscsi_conn *c, bool pause)
{
	if (c->state == ISCSI_CONN_CLOSED || c->rx_paused == pause)
		return;
	c->rx_paused = pause;
	if (pause) {
		ev_io_stop(c->loop, &c->rio);
	} else {
		ev_io_start(c->loop, &c->rio);
		ev_feed_event(c->loop, &c->rio, EV_READ);
	}
	iscsi_loop_wake(c->iloop);
}

/* Timer: login timeout while logging in, NOP-In pings after. */
static void iscsi_conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_conn *c = container_of(w, struct iscsi_conn, timer);

	(void)loop; (void)revents;
	if (c->state == ISCSI_CONN_LOGIN) {
		iscsi_conn_close(c, "login timed out");
		return;
	}
	iscsi_conn_ping_check(c);
}

static void iscsi_conn_name(struct iscsi_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		} else if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		}
	}
	snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
	         host, port);
	len = sizeof(c->local);
	if (getsockname(c->fd, (struct sockaddr *)&c->local, &len) < 0)
		memset(&c->local, 0, sizeof(c->local));
}

int iscsi_conn_create(struct iscsi_srv *s, int fd, uint16_t tpgt, struct iscsi_conn **out)
{
	struct iscsi_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return -ENOMEM;
	c->srv = s;
	c->iloop = iscsi_loop_pick(s);
	c->loop = c->iloop->loop;
	c->fd = fd;
	c->tpgt = tpgt;
	c->state = ISCSI_CONN_LOGIN;
	TAILQ_INIT(&c->txq);
	TAILQ_INIT(&c->mem_wait);
	iscsi_params_default(&c->params);
	if (iscsi_rx_start(c) < 0) {
		free(c);
		return -ENOMEM;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	iscsi_conn_name(c);
	ev_io_init(&c->rio, iscsi_conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, iscsi_conn_write_cb, fd, EV_WRITE);
	ev_init(&c->timer, iscsi_conn_timer_cb);
	ev_idle_init(&c->reap, iscsi_conn_reap_cb);
	c->timer.repeat = s->login_timeout;
	/* an idle loop's clock stopped when it went to sleep: the timeout
	 * counts from now, not from then (accept runs on another thread) */
	if (!iscsi_loop_mine(c->iloop))
		ev_now_update(c->loop);
	ev_timer_again(c->loop, &c->timer);
	ev_io_start(c->loop, &c->rio);
	c->last_rx = ev_now(c->loop);
	c->iloop->nconns++;
	iscsi_loop_wake(c->iloop);
	*out = c;
	return 0;
}

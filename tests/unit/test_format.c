/* tests/unit/test_format.c: the bytes a pool leaves on its device, read raw
 * and checked against store/format.h, field by field.
 *
 * The CRCs are checked with a bit-by-bit CRC32C written here, not with the
 * store's own (ISA-L) code: the format is "the CRC32C register, initial
 * value 0xffffffff, not inverted at the end" over the block with its CRC
 * field zero, and another implementation must be able to read it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/internal.h"    /* store_crc, the formats */
#include "tests/lib/crash_backend.h"
#include "tests/lib/pool_image.h"
#include "tests/lib/testlib.h"

#define POOL_BYTES  (32ull << 20)
#define SEG_BYTES   (1u << 20)

struct fmt_fixture {
	struct ev_loop       *loop;
	struct crash_backend *cb;
	struct store_pool    *pool;
	struct store_vol     *vol;
	uint8_t               a[4096], b[8192], c[512];
};

static void quiet(void *arg, enum store_log_level level, const char *msg)
{
	tl_log(arg, level == STORE_LOG_ERR ? STORE_LOG_WARN : level, msg);
}

/* A fresh pool, one volume and four operations after the first root:
 * records seq 1 (create), 2 (write a), 3 (write b), 4 (unmap), 5 (write c). */
static int setup(void **state)
{
	struct fmt_fixture *f = calloc(1, sizeof(*f));
	struct store_pool_opts o = {
		.create_bytes = POOL_BYTES, .segment_bytes = SEG_BYTES,
		.checkpoint_secs = 3600, .log = quiet,
	};

	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->cb = crash_backend_create(POOL_BYTES, NULL);
	o.backend = crash_backend_base(f->cb);
	assert_int_equal(store_pool_open(f->loop, &o, &f->pool), 0);
	assert_int_equal(tl_vol_create(f->loop, f->pool, "fmt", 2048, false), 0);
	assert_int_equal(store_vol_open(f->pool, "fmt", &f->vol), 0);
	memset(f->a, 0xa1, sizeof(f->a));
	memset(f->b, 0xb2, sizeof(f->b));
	memset(f->c, 0xc3, sizeof(f->c));
	assert_int_equal(tl_write(f->loop, f->vol, 8, f->a, sizeof(f->a), 0), 0);
	assert_int_equal(tl_write(f->loop, f->vol, 100, f->b, sizeof(f->b), 0), 0);
	assert_int_equal(tl_unmap(f->loop, f->vol, 8, 8), 0);
	assert_int_equal(tl_write(f->loop, f->vol, 1000, f->c, sizeof(f->c), 0), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fmt_fixture *f = *state;

	store_vol_close(f->vol);
	assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	crash_backend_free(f->cb);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* The CRC of a 4 KiB block whose CRC field is at crc_off, by the reference. */
static uint32_t ref_block_crc(const uint8_t *blk, size_t crc_off)
{
	uint8_t copy[4096];

	memcpy(copy, blk, sizeof(copy));
	memset(copy + crc_off, 0, 4);
	return img_crc32c_ref(copy, sizeof(copy));
}

/* Both copies are the same block; every field is what format.h says. */
static void test_format_superblock(void **state)
{
	struct fmt_fixture *f = *state;
	const uint8_t *img = crash_backend_durable(f->cb);
	const struct fmt_super *sb = (const void *)img;

	assert_memory_equal(img + FMT_SB_OFF(0), img + FMT_SB_OFF(1), 4096);
	assert_memory_equal(sb->magic, "SLUICEPL", 8);
	assert_int_equal(sb->version, 2);
	assert_int_equal(sb->crc, ref_block_crc(img, offsetof(struct fmt_super, crc)));
	assert_int_equal(sb->pool_bytes, POOL_BYTES);
	assert_int_equal(sb->segment_bytes, SEG_BYTES);
	assert_int_equal(sb->segments, (POOL_BYTES - FMT_DATA_OFF) / SEG_BYTES);
	assert_true(sb->created > 0);
}

/* The format's first root (generation 1, slot 1) starts the log at the
 * start of a segment, after no record (seq 0); slot 0 is still blank. */
static void test_format_first_root(void **state)
{
	struct fmt_fixture *f = *state;
	const uint8_t *img = crash_backend_durable(f->cb);
	const struct fmt_super *sb = (const void *)img;
	const struct fmt_root *r = (const void *)(img + FMT_ROOT_OFF(1));
	static const uint8_t zero[4096];

	assert_memory_equal(img + FMT_ROOT_OFF(0), zero, 4096);
	assert_memory_equal(r->magic, "SLCKROOT", 8);
	assert_int_equal(r->version, 2);
	assert_int_equal(r->crc, ref_block_crc((const uint8_t *)r, offsetof(struct fmt_root, crc)));
	assert_memory_equal(r->uuid, sb->uuid, 16);
	assert_int_equal(r->generation, 1);
	assert_int_equal(r->log_seq, 0);
	assert_int_equal(r->log_off, 0);
	assert_true(r->log_seg < sb->segments && r->next_seg < sb->segments);
	assert_true(r->log_seg != r->next_seg);
	assert_int_equal(r->payload_segs, 1);
	assert_int_equal(r->payload_bytes, sizeof(struct fmt_ckpt_hdr));
}

/* Checks the header of record seq at off in full, with its CRCs; returns
 * its entries, and the header through *out. */
static const struct fmt_rec_entry *check_record(const uint8_t *img, uint64_t off,
                                                uint64_t seq, uint64_t prev_seq,
                                                uint32_t n_entries,
                                                const struct fmt_rec_hdr **out)
{
	const struct fmt_super *sb = (const void *)img;
	const struct fmt_rec_hdr *h = (const void *)(img + off);
	uint8_t *hdr;

	assert_int_equal(off % 4096, 0);
	assert_int_equal(h->magic, 0x43524c53u);        /* "SLRC" */
	assert_memory_equal(&h->magic, "SLRC", 4);
	assert_memory_equal(h->uuid, sb->uuid, 16);
	assert_int_equal(h->seq, seq);
	assert_int_equal(h->prev_seq, prev_seq);
	assert_int_equal(h->n_entries, n_entries);
	assert_int_equal(h->hdr_bytes, 4096);           /* few entries: one block */
	assert_int_equal(h->data_bytes % 4096, 0);
	assert_true(h->next_seg < sb->segments);
	hdr = malloc(h->hdr_bytes);
	memcpy(hdr, h, h->hdr_bytes);
	memset(hdr + offsetof(struct fmt_rec_hdr, hdr_crc), 0, 4);
	assert_int_equal(h->hdr_crc, img_crc32c_ref(hdr, h->hdr_bytes));
	free(hdr);
	assert_int_equal(h->data_crc, img_crc32c_ref(img + off + h->hdr_bytes, h->data_bytes));
	/* the entries are followed by zeros up to hdr_bytes */
	for (size_t i = sizeof(*h) + n_entries * sizeof(struct fmt_rec_entry); i < h->hdr_bytes; i++)
		assert_int_equal(img[off + i], 0);
	*out = h;
	return (const void *)(h + 1);
}

static void expect_entry(const struct fmt_rec_entry *e, unsigned type, uint64_t lba,
                         uint64_t sectors, uint32_t data_off)
{
	assert_int_equal(e->type, type);
	assert_int_equal(e->vol, 1);
	assert_int_equal(e->lba, lba);
	assert_int_equal(e->sectors, sectors);
	assert_int_equal(e->data_off, data_off);
}

/* The log after the root: one record per operation, seq rising by one and
 * prev_seq naming the record before, each right after the one before, data
 * where the entry says. */
static void test_format_log_records(void **state)
{
	struct fmt_fixture *f = *state;
	const uint8_t *img = crash_backend_durable(f->cb);
	const struct fmt_root *r = (const void *)(img + FMT_ROOT_OFF(1));
	uint64_t off = FMT_DATA_OFF + (uint64_t)r->log_seg * SEG_BYTES + r->log_off;
	const struct fmt_rec_hdr *h;
	const struct fmt_rec_entry *e;
	struct pool_image im;

	const struct fmt_name_item *it;

	e = check_record(img, off, 1, 0, 1, &h);
	assert_int_equal(e->type, FMT_ENT_VOL_CREATE);
	assert_int_equal(e->sectors, 2048);
	assert_int_equal(h->data_bytes, 4096);
	/* the name in a one-sector item: the new id, its length, the time */
	it = (const void *)(img + off + h->hdr_bytes + e->data_off * 512);
	assert_int_equal(it->id, 1);
	assert_int_equal(it->src, 0);
	assert_int_equal(it->name_len, 3);
	assert_true(it->created > 1700000000u);
	assert_memory_equal(it->name, "fmt", 4);
	assert_int_equal(h->next_seg, r->next_seg);
	off += h->hdr_bytes + h->data_bytes;
	e = check_record(img, off, 2, 1, 1, &h);
	expect_entry(e, FMT_ENT_WRITE, 8, 8, 0);
	assert_memory_equal(img + off + h->hdr_bytes, f->a, sizeof(f->a));
	off += h->hdr_bytes + h->data_bytes;
	e = check_record(img, off, 3, 2, 1, &h);
	expect_entry(e, FMT_ENT_WRITE, 100, 16, 0);
	assert_int_equal(h->data_bytes, 8192);
	assert_memory_equal(img + off + h->hdr_bytes, f->b, sizeof(f->b));
	off += h->hdr_bytes + h->data_bytes;
	e = check_record(img, off, 4, 3, 1, &h);
	expect_entry(e, FMT_ENT_UNMAP, 8, 8, 0);
	assert_int_equal(h->data_bytes, 0);
	off += h->hdr_bytes + h->data_bytes;
	/* a 512-byte write: its data zero-padded to 4 KiB */
	e = check_record(img, off, 5, 4, 1, &h);
	expect_entry(e, FMT_ENT_WRITE, 1000, 1, 0);
	assert_int_equal(h->data_bytes, 4096);
	assert_memory_equal(img + off + h->hdr_bytes, f->c, sizeof(f->c));
	for (size_t i = 512; i < 4096; i++)
		assert_int_equal(img[off + h->hdr_bytes + i], 0);
	/* nothing valid after the last record: replay ends there */
	assert_int_equal(img_parse(&im, img, POOL_BYTES), 0);
	assert_int_equal(im.nrecs, 5);
	assert_int_equal(im.recs[4].off, off);
	img_free(&im);
}

/* A checkpoint writes generation 2 to slot 0, naming the last record and
 * the next one's position, with a payload of the map nodes, the volume
 * table and the address table. */
static void test_format_checkpoint(void **state)
{
	struct fmt_fixture *f = *state;
	const uint8_t *img = crash_backend_durable(f->cb);
	const struct fmt_root *r = (const void *)(img + FMT_ROOT_OFF(0));
	const struct fmt_ckpt_hdr *ph;
	const struct fmt_ckpt_vol *pv;
	const uint64_t *ext, *rec;
	const uint32_t *node;
	struct pool_image im;
	uint8_t *payload;

	assert_int_equal(tl_checkpoint(f->loop, f->pool), 0);
	assert_int_equal(img_parse(&im, img, POOL_BYTES), 0);
	assert_int_equal(im.newest, 0);
	assert_int_equal(r->generation, 2);
	assert_int_equal(r->crc, ref_block_crc((const uint8_t *)r, offsetof(struct fmt_root, crc)));
	assert_int_equal(r->log_seq, 5);
	assert_int_equal(FMT_DATA_OFF + (uint64_t)r->log_seg * SEG_BYTES + r->log_off,
	                 im.recs[4].off + im.recs[4].hdr_bytes + im.recs[4].data_bytes);
	assert_int_equal(r->payload_segs, 1);
	payload = (uint8_t *)img + FMT_DATA_OFF + (uint64_t)r->seg[0] * SEG_BYTES;
	assert_int_equal(r->payload_crc, img_crc32c_ref(payload, r->payload_bytes));
	ph = (const void *)payload;
	assert_memory_equal(ph->magic, "SLCKPAYL", 8);
	assert_int_equal(ph->version, 2);
	assert_int_equal(ph->n_vols, 1);
	assert_int_equal(ph->n_nodes, 1);
	assert_int_equal(ph->n_addr_recs, 2);
	assert_int_equal(ph->n_meta, 0);
	assert_int_equal(ph->next_vol_id, 2);
	assert_int_equal(r->payload_bytes, sizeof(*ph) + (8 + 2 * 16) + sizeof(*pv) + 2 * 32);
	/* one leaf node: n, leaf, then lba | len << 40 and the log address,
	 * seq << 16 | sector offset in the record's data */
	node = (const void *)(ph + 1);
	assert_int_equal(node[0], 2);
	assert_int_equal(node[1], 1);
	ext = (const void *)(node + 2);
	assert_int_equal(ext[0], 100 | 16ull << 40);
	assert_int_equal(ext[1], 3ull << 16);
	assert_int_equal(ext[2], 1000 | 1ull << 40);
	assert_int_equal(ext[3], 5ull << 16);
	pv = (const void *)(ext + 4);
	assert_int_equal(pv->id, 1);
	assert_int_equal(pv->flags, 0);
	assert_int_equal(pv->sectors, 2048);
	assert_int_equal(pv->extents, 2);
	assert_int_equal(pv->mapped, 17);
	assert_int_equal(pv->root, 1);
	assert_int_equal(pv->parent, 0);
	assert_string_equal(pv->name, "fmt");
	/* the address table: per record seq, n runs, then off, len and the
	 * device sector of each run (any record order) */
	rec = (const void *)(pv + 1);
	for (int i = 0; i < 2; i++, rec += 4) {
		const struct img_rec *ir = rec[0] == 3 ? &im.recs[2] : &im.recs[4];

		assert_true(rec[0] == 3 || rec[0] == 5);
		assert_int_equal(rec[1], 1);
		assert_int_equal(rec[2], rec[0] == 3 ? 16ull << 16 : 1ull << 16);
		assert_int_equal(rec[3] * 512, ir->off + ir->hdr_bytes);
	}
	img_free(&im);
}

/* Every open moves the next seq FMT_SEQ_JUMP past the last record, and the
 * first record after it names that last record as prev_seq: a record left
 * from before a crash can never continue the new chain. */
static void test_format_seq_jumps_at_open(void **state)
{
	struct fmt_fixture *f = *state;
	struct store_pool_opts o = {
		.backend = crash_backend_base(f->cb), .checkpoint_secs = 3600, .log = quiet,
	};
	const uint8_t *img = crash_backend_durable(f->cb);
	const struct fmt_rec_hdr *h;
	const struct fmt_rec_entry *e;
	struct pool_image im;

	store_vol_close(f->vol);
	assert_int_equal(tl_pool_close(f->loop, f->pool), 0);
	assert_int_equal(store_pool_open(f->loop, &o, &f->pool), 0);
	assert_int_equal(store_vol_open(f->pool, "fmt", &f->vol), 0);
	assert_int_equal(tl_write(f->loop, f->vol, 0, f->a, sizeof(f->a), 0), 0);
	assert_int_equal(img_parse(&im, img, POOL_BYTES), 0);
	assert_int_equal(im.nrecs, 6);
	e = check_record(img, im.recs[5].off, 5 + FMT_SEQ_JUMP, 5, 1, &h);
	expect_entry(e, FMT_ENT_WRITE, 0, 8, 0);
	assert_int_equal(im.root[im.newest].log_seq, 5);
	img_free(&im);
}

/* store_crc, which every structure uses, is the reference CRC. */
static void test_format_crc_matches_reference(void **state)
{
	uint8_t buf[9000];
	uint64_t rng = 77;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)tl_rand(&rng);
	assert_int_equal(img_crc32c_ref("123456789", 9), ~0xe3069283u);  /* CRC32C check value */
	for (size_t len = 0; len < sizeof(buf); len += 997)
		assert_int_equal(store_crc(buf, len), img_crc32c_ref(buf, len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format_superblock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_first_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_log_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_seq_jumps_at_open, setup, teardown),
		cmocka_unit_test(test_format_crc_matches_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/lib/pool_image.c: see pool_image.h. */
#include "tests/lib/pool_image.h"

#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>

#include "store/internal.h"     /* store_crc */

uint32_t img_crc32c_ref(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t crc = 0xffffffffu;     /* the register, never inverted at the end */

	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return crc;
}

/* CRC of a 4 KiB block whose crc field is at crc_off, taken as zero. */
static uint32_t block_crc(const uint8_t *blk, size_t crc_off)
{
	uint8_t copy[4096];

	memcpy(copy, blk, sizeof(copy));
	memset(copy + crc_off, 0, 4);
	return store_crc(copy, sizeof(copy));
}

bool img_super_valid(const uint8_t *buf, uint64_t size, int copy, struct fmt_super *out)
{
	uint64_t at = FMT_SB_OFF(copy);
	struct fmt_super sb;

	if (size < at + 4096)
		return false;
	memcpy(&sb, buf + at, sizeof(sb));
	if (memcmp(sb.magic, FMT_SB_MAGIC, 8) ||
	    block_crc(buf + at, offsetof(struct fmt_super, crc)) != sb.crc)
		return false;
	if (out)
		*out = sb;
	return true;
}

bool img_root_valid(const uint8_t *buf, uint64_t size, int slot, struct fmt_root *out)
{
	uint64_t at = FMT_ROOT_OFF(slot);

	if (size < at + 4096 || memcmp(buf + at, FMT_ROOT_MAGIC, 8) ||
	    block_crc(buf + at, offsetof(struct fmt_root, crc)) !=
	    ((const struct fmt_root *)(buf + at))->crc)
		return false;
	if (out)
		memcpy(out, buf + at, sizeof(*out));
	return true;
}

uint64_t img_seg_off(const struct pool_image *im, uint32_t seg)
{
	return FMT_DATA_OFF + (uint64_t)seg * im->sb.segment_bytes;
}

uint64_t img_rec_entries_off(const struct img_rec *r)
{
	return r->off + sizeof(struct fmt_rec_hdr);
}

/* The sizes of the header at off, if they fit before end. */
static bool rec_sizes_ok(const struct fmt_rec_hdr *h, uint64_t off, uint64_t end)
{
	return h->hdr_bytes >= 4096 && h->hdr_bytes % 4096 == 0 &&
	       h->hdr_bytes <= (64u << 20) && h->data_bytes % 4096 == 0 &&
	       h->data_bytes <= (64u << 20) &&
	       sizeof(*h) + (uint64_t)h->n_entries * sizeof(struct fmt_rec_entry) <= h->hdr_bytes &&
	       off + h->hdr_bytes + h->data_bytes <= end;
}

static bool rec_valid(const struct pool_image *im, uint64_t off, uint64_t end,
                      struct fmt_rec_hdr *h)
{
	uint8_t *hdr;
	bool ok;

	if (off + 4096 > end)
		return false;
	memcpy(h, im->buf + off, sizeof(*h));
	if (h->magic != FMT_REC_MAGIC || memcmp(h->uuid, im->sb.uuid, 16) ||
	    !rec_sizes_ok(h, off, end))
		return false;
	hdr = malloc(h->hdr_bytes);
	if (!hdr)
		return false;
	memcpy(hdr, im->buf + off, h->hdr_bytes);
	((struct fmt_rec_hdr *)hdr)->hdr_crc = 0;
	ok = store_crc(hdr, h->hdr_bytes) == h->hdr_crc &&
	     store_crc(im->buf + off + h->hdr_bytes, h->data_bytes) == h->data_crc;
	free(hdr);
	return ok;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct img_rec *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Like the store's fsck: records follow each other from offset 0 with
 * rising seqs; the first that does not hold ends the segment. */
static int scan_segment(struct pool_image *im, uint32_t seg)
{
	uint64_t start = img_seg_off(im, seg), end = start + im->sb.segment_bytes;
	uint64_t off = start, prev = 0;
	struct fmt_rec_hdr h;

	if (end > im->size)
		end = im->size;
	while (rec_valid(im, off, end, &h) && h.seq > prev) {
		struct img_rec *n = realloc(im->recs, (im->nrecs + 1) * sizeof(*n));

		if (!n)
			return -1;
		im->recs = n;
		n[im->nrecs++] = (struct img_rec){
			.seq = h.seq, .off = off, .seg = seg, .hdr_bytes = h.hdr_bytes,
			.data_bytes = h.data_bytes, .n_entries = h.n_entries,
		};
		prev = h.seq;
		off += h.hdr_bytes + h.data_bytes;
	}
	return 0;
}

static void parse_roots(struct pool_image *im)
{
	im->newest = im->older = -1;
	for (int s = 0; s < 2; s++)
		im->root_ok[s] = img_root_valid(im->buf, im->size, s, &im->root[s]) &&
		                 memcmp(im->root[s].uuid, im->sb.uuid, 16) == 0;
	if (im->root_ok[0] && im->root_ok[1]) {
		im->newest = im->root[1].generation > im->root[0].generation;
		im->older = !im->newest;
	} else if (im->root_ok[0] || im->root_ok[1]) {
		im->newest = im->root_ok[1];
	}
}

int img_parse(struct pool_image *im, const uint8_t *buf, uint64_t size)
{
	memset(im, 0, sizeof(*im));
	im->buf = buf;
	im->size = size;
	if (!img_super_valid(buf, size, 0, &im->sb) && !img_super_valid(buf, size, 1, &im->sb))
		return -1;
	if (im->sb.segment_bytes < FMT_SEG_MIN || im->sb.segment_bytes % 4096)
		return -1;
	parse_roots(im);
	for (uint32_t s = 0; s < im->sb.segments && img_seg_off(im, s) < size; s++)
		if (scan_segment(im, s))
			return -1;
	qsort(im->recs, im->nrecs, sizeof(*im->recs), rec_cmp);
	return 0;
}

void img_free(struct pool_image *im)
{
	free(im->recs);
	im->recs = NULL;
	im->nrecs = 0;
}

const struct img_rec *img_rec_find(const struct pool_image *im, uint64_t seq)
{
	for (size_t i = 0; i < im->nrecs; i++)
		if (im->recs[i].seq == seq)
			return &im->recs[i];
	return NULL;
}

void img_seal_super(uint8_t *buf, uint64_t size, int copy)
{
	uint8_t *blk = buf + FMT_SB_OFF(copy);

	if (size < FMT_SB_OFF(copy) + 4096)
		return;
	((struct fmt_super *)blk)->crc = block_crc(blk, offsetof(struct fmt_super, crc));
}

void img_seal_root(uint8_t *buf, uint64_t size, int slot)
{
	uint8_t *blk = buf + FMT_ROOT_OFF(slot);

	if (size < FMT_ROOT_OFF(slot) + 4096)
		return;
	((struct fmt_root *)blk)->crc = block_crc(blk, offsetof(struct fmt_root, crc));
}

void img_seal_payload(uint8_t *buf, uint64_t size, uint32_t seg_bytes, int slot)
{
	struct fmt_root *r = (struct fmt_root *)(buf + FMT_ROOT_OFF(slot));
	uint64_t left, bytes;
	uint32_t crc = 0xffffffffu;

	if (size < FMT_ROOT_OFF(slot) + 4096 || seg_bytes == 0 ||
	    r->payload_segs > FMT_ROOT_SEGS_MAX)
		return;
	left = r->payload_bytes;
	for (uint32_t i = 0; i < r->payload_segs && left > 0; i++, left -= bytes) {
		uint64_t at = FMT_DATA_OFF + (uint64_t)r->seg[i] * seg_bytes;

		bytes = left < seg_bytes ? left : seg_bytes;
		if (at > size || bytes > size - at)
			return;
		crc = crc32_iscsi(buf + at, (int)bytes, crc);
	}
	if (left > 0)
		return;
	r->payload_crc = crc;
	img_seal_root(buf, size, slot);
}

void img_seal_record(uint8_t *buf, uint64_t size, uint64_t off, uint64_t seg_end)
{
	struct fmt_rec_hdr *h = (struct fmt_rec_hdr *)(buf + off);

	if (seg_end > size)
		seg_end = size;
	if (off + 4096 > seg_end || !rec_sizes_ok(h, off, seg_end))
		return;
	h->data_crc = store_crc(buf + off + h->hdr_bytes, h->data_bytes);
	h->hdr_crc = 0;
	h->hdr_crc = store_crc(h, h->hdr_bytes);
}

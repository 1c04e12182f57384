/* tests/lib/pool_image.h: reading and re-sealing a pool's raw bytes, for the
 * tests and fuzz targets that check or damage the on-disk format
 * (store/format.h) directly.
 *
 * Nothing here trusts the image: every walk is bounded by the image size, so
 * it can run on bytes a test has just damaged.
 */
#ifndef SLUICE_POOL_IMAGE_H
#define SLUICE_POOL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/format.h"

/* One record found in the image, header and data CRCs holding. */
struct img_rec {
	uint64_t seq;
	uint64_t off;           /* bytes into the image */
	uint32_t seg;
	uint32_t hdr_bytes, data_bytes, n_entries;
};

struct pool_image {
	const uint8_t   *buf;
	uint64_t         size;
	struct fmt_super sb;            /* the first copy that holds */
	bool             root_ok[2];
	struct fmt_root  root[2];
	int              newest, older; /* root slots, -1 when missing */
	struct img_rec  *recs;          /* every valid record, by seq */
	size_t           nrecs;
};

/* 0, or -1 when neither superblock copy holds. */
int  img_parse(struct pool_image *im, const uint8_t *buf, uint64_t size);
void img_free(struct pool_image *im);

bool img_super_valid(const uint8_t *buf, uint64_t size, int copy, struct fmt_super *out);
bool img_root_valid(const uint8_t *buf, uint64_t size, int slot, struct fmt_root *out);
uint64_t img_seg_off(const struct pool_image *im, uint32_t seg);
/* The record of seq, or NULL. */
const struct img_rec *img_rec_find(const struct pool_image *im, uint64_t seq);
/* Bytes into the image of the entry array of record r. */
uint64_t img_rec_entries_off(const struct img_rec *r);

/* Recompute CRCs after a deliberate change, so that it reaches the checks
 * behind them. Each does nothing when the sizes it would trust are out of
 * bounds. */
void img_seal_super(uint8_t *buf, uint64_t size, int copy);
void img_seal_root(uint8_t *buf, uint64_t size, int slot);
/* The payload CRC in root slot (from the segments it names), then the root. */
void img_seal_payload(uint8_t *buf, uint64_t size, uint32_t seg_bytes, int slot);
/* The record at off, with its segment ending at seg_end. */
void img_seal_record(uint8_t *buf, uint64_t size, uint64_t off, uint64_t seg_end);

/* The CRC the format uses, computed bit by bit without ISA-L, so a test can
 * check the store's CRCs against an independent implementation. */
uint32_t img_crc32c_ref(const void *buf, size_t len);

#endif

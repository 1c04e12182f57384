/* iscsi/sbc.c: SBC-3 block commands over a store volume: READ/WRITE
 * (6/10/12/16), WRITE AND VERIFY, VERIFY, SYNCHRONIZE CACHE, PRE-FETCH,
 * READ CAPACITY(10/16), GET LBA STATUS, UNMAP, WRITE SAME(10/16), SANITIZE
 * (block erase), READ DEFECT DATA and COMPARE AND WRITE, and the block
 * ranges that make COMPARE AND WRITE atomic against every other write.
 *
 * Logical blocks are 512 bytes, the store's sector; the physical block is
 * the store's 4 KiB (LBPPBE 3). Decoders run once, before any data moves:
 * they set t->req and t->xfer (the bytes the CDB transfers) and check the
 * range, so an out-of-range WRITE is refused before its data is solicited.
 * Store calls complete asynchronously; their errors become sense through
 * scsi_sense_store() only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iscsi/scsi.h"

#define SBC_WS_CHUNK_BLOCKS     2048u   /* WRITE SAME writes 1 MiB at a time */

static struct store_vol *sbc_vol(const struct scsi_task *t)
{
	return t->itl->lu->vol;
}

static int sbc_lba_range(struct scsi_task *t, uint64_t lba, uint64_t n)
{
	uint64_t blocks = scsi_lu_blocks(t->itl->lu);

	if (lba > blocks || n > blocks - lba)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE), 1;
	return 0;
}

/* The part every read/write-like CDB shares; len_byte points at the
 * TRANSFER LENGTH field for the sense key specific data. */
static int sbc_decode(struct scsi_task *t, uint64_t lba, uint32_t n, unsigned len_byte)
{
	scsi_exec_fn *exec = t->desc->exec;
	unsigned bytchk = (t->cdb[1] >> 1) & 3;

	t->req.lba = lba;
	t->req.nblocks = n;
	t->req.flags = (t->cdb[1] & 0x08 ? SCSI_RQ_FUA : 0) | (t->cdb[1] & 0x10 ? SCSI_RQ_DPO : 0);
	if (exec == sbc_sync_cache && n == 0)   /* SBC-3 5.22: to the end */
		return sbc_lba_range(t, lba, 0);
	if (n > SCSI_MAX_XFER_BLOCKS && exec != sbc_sync_cache)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, (uint16_t)len_byte, 7), 1;
	if (exec == sbc_verify && bytchk == 2)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 1, 2), 1;
	if (sbc_lba_range(t, lba, n))
		return 1;
	if (exec == sbc_read || exec == sbc_write)
		t->xfer = n * SCSI_BLOCK;
	else if (exec == sbc_verify)
		t->xfer = bytchk == 0 ? 0 : bytchk == 1 ? n * SCSI_BLOCK : (n ? SCSI_BLOCK : 0);
	if (exec == sbc_verify && bytchk)
		t->req.flags |= SCSI_RQ_BYTCHK;
	return 0;
}

int sbc_decode_rw6(struct scsi_task *t)
{
	uint32_t lba = (uint32_t)(t->cdb[1] & 0x1f) << 16 | scsi_get16(t->cdb + 2);

	return sbc_decode(t, lba, t->cdb[4] ? t->cdb[4] : 256, 4);     /* 0 means 256 */
}

int sbc_decode_rw10(struct scsi_task *t)
{
	return sbc_decode(t, scsi_get32(t->cdb + 2), scsi_get16(t->cdb + 7), 7);
}

int sbc_decode_rw12(struct scsi_task *t)
{
	return sbc_decode(t, scsi_get32(t->cdb + 2), scsi_get32(t->cdb + 6), 6);
}

int sbc_decode_rw16(struct scsi_task *t)
{
	return sbc_decode(t, scsi_get64(t->cdb + 2), scsi_get32(t->cdb + 10), 10);
}

/* Completions */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Tells the server's I/O hook (statistics) of a READ or WRITE done. */
static void sbc_io_record(const struct scsi_task *t, bool write, uint64_t bytes)
{
	const struct scsi_lu *lu = t->itl->lu;

	if (lu->io && lu->io->fn)
		lu->io->fn(lu->io->arg, lu->name, write, bytes, now_ns() - t->started_ns);
}

static void sbc_read_done(void *arg, int err)
{
	struct scsi_task *t = arg;

	if (err == 0)
		sbc_io_record(t, false, t->buf.len);

	if (err < 0)
		scsi_sense_store(t, err, false);
	else
		scsi_good(t);
	if (err == 0)
		t->data_in = t->buf.len;
	scsi_task_async_done(t);
}

/* The pool's free space is looked at every 100 ms of writing, and after
 * each 1/256 of the pool written, so that the UA precedes running out of
 * space even on a small pool, while store_pool_get_stats() (a walk of the
 * segment table) stays off the per-write path of a large one. */
#define SBC_THIN_CHECK_NS       100000000ull

void sbc_thin_check(struct scsi_lu *lu, uint64_t bytes, bool force)
{
	struct store_pool_stats st;
	uint64_t now = now_ns(), left;
	bool low;

	lu->thin_bytes += bytes;
	if (!lu->thin_pct || (!force && now < lu->thin_next_ns &&
	                      lu->thin_bytes < lu->thin_step))
		return;
	store_pool_get_stats(lu->pool, &st);
	lu->thin_bytes = 0;
	lu->thin_next_ns = now + SBC_THIN_CHECK_NS;
	lu->thin_step = st.capacity_bytes / 256;
	left = st.capacity_bytes > st.used_bytes ? st.capacity_bytes - st.used_bytes : 0;
	low = left * 100 < st.capacity_bytes * lu->thin_pct;
	if (low && !lu->thin_low)
		scsi_lu_ua_set(lu, SCSI_UA_THIN_THRESHOLD, NULL);
	lu->thin_low = low;
}

static void sbc_write_done(void *arg, int err)
{
	struct scsi_task *t = arg;

	if (err == 0)
		sbc_io_record(t, true, t->pos);
	sbc_thin_check(t->itl->lu, err == 0 ? (uint64_t)t->req.nblocks * SCSI_BLOCK : 0,
	               err == -ENOSPC);

	if (err < 0)
		scsi_sense_store(t, err, true);
	else
		scsi_good(t);
	scsi_task_async_done(t);
}

/* READ (SBC-3 5.8-5.11): only what the EDTL can carry is read. */
int sbc_read(struct scsi_task *t)
{
	uint32_t bytes = t->req.nblocks * SCSI_BLOCK;
	uint32_t room = (t->edtl + SCSI_BLOCK - 1) / SCSI_BLOCK * SCSI_BLOCK;

	bytes = bytes < room ? bytes : room;
	if (bytes == 0)
		return scsi_good(t);
	if (scsi_buf_init(&t->buf, bytes, t->buf.acct) < 0 || scsi_buf_alloc_all(&t->buf, false) < 0)
		return scsi_sense_store(t, -ENOMEM, false);
	t->started_ns = now_ns();
	store_vol_read(sbc_vol(t), t->req.lba, t->buf.iov, (int)t->buf.n, sbc_read_done, t);
	return SCSI_ASYNC;
}

/* WRITE, WRITE AND VERIFY (SBC-3 5.32-5.40): whole blocks of what came. */
int sbc_write(struct scsi_task *t)
{
	uint32_t bytes = t->data_out / SCSI_BLOCK * SCSI_BLOCK;
	unsigned flags = (t->req.flags & SCSI_RQ_FUA) ? STORE_WRITE_FUA : 0;
	int iovcnt;

	if (bytes == 0)
		return scsi_good(t);
	/* WRITE AND VERIFY: verified on the medium, so durable first */
	if (t->cdb[0] == SCSI_WRITE_VERIFY_10 || t->cdb[0] == SCSI_WRITE_VERIFY_12 ||
	    t->cdb[0] == SCSI_WRITE_VERIFY_16)
		flags = STORE_WRITE_FUA;
	t->iov = scsi_buf_iov(&t->buf, 0, bytes, &iovcnt);
	if (!t->iov)
		return scsi_sense_store(t, -ENOMEM, true);
	t->started_ns = now_ns();
	t->pos = bytes;         /* what the hook reports */
	store_vol_write(sbc_vol(t), t->req.lba, t->iov, iovcnt, flags, sbc_write_done, t);
	return SCSI_ASYNC;
}

/* VERIFY (SBC-3 5.27-5.30): BYTCHK 01b compares the data-out with the
 * medium, 11b compares one block with each; MISCOMPARE names the offset. */
static void sbc_verify_done(void *arg, int err)
{
	struct scsi_task *t = arg;
	const uint8_t *medium = t->priv;
	bool one = ((t->cdb[1] >> 1) & 3) == 3;
	uint8_t want[SCSI_BLOCK];

	if (err < 0) {
		scsi_sense_store(t, err, false);
		goto out;
	}
	scsi_good(t);
	for (uint64_t off = 0; off < (uint64_t)t->req.nblocks * SCSI_BLOCK; off += SCSI_BLOCK) {
		scsi_buf_copy_out(&t->buf, one ? 0 : (uint32_t)off, want, SCSI_BLOCK);
		if (memcmp(want, medium + off, SCSI_BLOCK) == 0)
			continue;
		for (uint32_t i = 0; i < SCSI_BLOCK; i++)
			if (want[i] != medium[off + i]) {
				scsi_sense_info(t, SCSI_SK_MISCOMPARE, SCSI_ASC_MISCOMPARE_VERIFY,
				                off + i);
				break;
			}
		break;
	}
out:
	free(t->priv);
	t->priv = NULL;
	scsi_task_async_done(t);
}

int sbc_verify(struct scsi_task *t)
{
	uint32_t bytes = t->req.nblocks * SCSI_BLOCK;

	if (!(t->req.flags & SCSI_RQ_BYTCHK) || bytes == 0)
		return scsi_good(t);            /* the store has no unreadable blocks */
	if (t->data_out < t->xfer)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	t->priv = malloc(bytes);
	t->iov = calloc(1, sizeof(*t->iov));
	if (!t->priv || !t->iov)
		return scsi_sense_store(t, -ENOMEM, false);
	t->iov[0] = (struct iovec){ t->priv, bytes };
	store_vol_read(sbc_vol(t), t->req.lba, t->iov, 1, sbc_verify_done, t);
	return SCSI_ASYNC;
}

/* SYNCHRONIZE CACHE (SBC-3 5.22, 5.23): everything, not just the range. */
int sbc_sync_cache(struct scsi_task *t)
{
	store_vol_flush(sbc_vol(t), sbc_write_done, t);
	return SCSI_ASYNC;
}

/* PRE-FETCH (SBC-3 5.6): nothing is cached ahead, so GOOD (not CONDITION
 * MET); the range was checked by the decoder. */
int sbc_prefetch(struct scsi_task *t)
{
	return scsi_good(t);
}

/* READ CAPACITY (SBC-3 5.15, 5.16) */
int sbc_read_capacity10(struct scsi_task *t)
{
	uint64_t last = scsi_lu_blocks(t->itl->lu) - 1;
	uint8_t d[8];

	if (!(t->cdb[8] & 0x01) && scsi_get32(t->cdb + 2) != 0)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, 7);
	scsi_put32(d, last > 0xffffffffu ? 0xffffffffu : (uint32_t)last);
	scsi_put32(d + 4, SCSI_BLOCK);
	return scsi_data_in(t, d, sizeof(d), sizeof(d));
}

int sbc_read_capacity16(struct scsi_task *t)
{
	uint8_t d[32] = { 0 };

	scsi_put64(d, scsi_lu_blocks(t->itl->lu) - 1);
	scsi_put32(d + 8, SCSI_BLOCK);
	d[13] = 3;                      /* LBPPBE: 8 logical blocks per 4 KiB */
	d[14] = 0x80 | 0x40;            /* LBPME, LBPRZ */
	return scsi_data_in(t, d, sizeof(d), scsi_get32(t->cdb + 10));
}

/* GET LBA STATUS (SBC-3 5.5): one descriptor, for the run of blocks from
 * the requested LBA that are all mapped (0) or all deallocated (1). */
int sbc_get_lba_status(struct scsi_task *t)
{
	uint64_t lba = scsi_get64(t->cdb + 2), blocks = scsi_lu_blocks(t->itl->lu), run;
	uint8_t d[24] = { 0 };
	bool mapped;

	if (lba >= blocks || store_vol_map_status(sbc_vol(t), lba, &mapped, &run))
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
	scsi_put32(d, 20);
	scsi_put64(d + 8, lba);
	scsi_put32(d + 16, run > 0xffffffffu ? 0xffffffffu : (uint32_t)run);
	d[20] = mapped ? 0x00 : 0x01;
	return scsi_data_in(t, d, sizeof(d), scsi_get32(t->cdb + 10));
}

/* UNMAP (SBC-3 5.25): every descriptor is checked before any is done. */
int sbc_decode_unmap(struct scsi_task *t)
{
	t->xfer = scsi_get16(t->cdb + 7);
	return 0;
}

static void sbc_unmap_next(void *arg, int err)
{
	struct scsi_task *t = arg;
	uint8_t desc[16];

	if (err < 0) {
		scsi_sense_store(t, err, true);
		scsi_task_async_done(t);
		return;
	}
	while (t->pos < t->end) {
		uint32_t n;

		scsi_buf_copy_out(&t->buf, (uint32_t)(8 + 16 * t->pos++), desc, 16);
		n = scsi_get32(desc + 8);
		if (n) {
			store_vol_unmap(sbc_vol(t), scsi_get64(desc), n, sbc_unmap_next, t);
			return;
		}
	}
	sbc_thin_check(t->itl->lu, 0, t->itl->lu->thin_low);     /* re-arm soon */
	scsi_good(t);
	scsi_task_async_done(t);
}

int sbc_unmap(struct scsi_task *t)
{
	uint8_t hdr[8], desc[16];
	uint32_t ndesc;
	uint64_t total = 0;

	if (t->data_out == 0)
		return scsi_good(t);
	if (t->data_out < 8)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	scsi_buf_copy_out(&t->buf, 0, hdr, 8);
	ndesc = scsi_get16(hdr + 2) / 16;
	if (8 + 16 * ndesc > t->data_out)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	if (ndesc > SCSI_MAX_UNMAP_DESCS)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_PARAM,
		                        false, 2, 7);
	for (uint32_t i = 0; i < ndesc; i++) {
		scsi_buf_copy_out(&t->buf, 8 + 16 * i, desc, 16);
		total += scsi_get32(desc + 8);
		if (sbc_lba_range(t, scsi_get64(desc), scsi_get32(desc + 8)))
			return SCSI_DONE;
	}
	if (total > SCSI_MAX_UNMAP_BLOCKS)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_PARAM,
		                        false, 8, 7);
	t->pos = 0;
	t->end = ndesc;
	sbc_unmap_next(t, 0);
	return SCSI_ASYNC;
}

/* WRITE SAME (SBC-3 5.41, 5.42): the UNMAP bit, zeros or NDOB unmap, and
 * the store reads unmapped blocks back as zeros (LBPRZ); any other pattern
 * is written 1 MiB at a time from one buffer. */
static int sbc_decode_ws(struct scsi_task *t, uint64_t lba, uint32_t n, unsigned len_byte)
{
	t->req.lba = lba;
	t->req.nblocks = n;
	t->req.flags = (t->cdb[1] & 0x08 ? SCSI_RQ_UNMAP : 0) |
	               (t->cdb[0] == SCSI_WRITE_SAME_16 && (t->cdb[1] & 0x01) ? SCSI_RQ_NDOB : 0);
	if (sbc_lba_range(t, lba, n))
		return 1;
	/* WSNZ=0: no blocks means up to the end of the medium (SBC-3 5.41),
	 * which MAXIMUM WRITE SAME LENGTH limits like any other count */
	if ((n ? n : scsi_lu_blocks(t->itl->lu) - lba) > SCSI_MAX_WS_BLOCKS)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, (uint16_t)len_byte, 7), 1;
	t->xfer = (t->req.flags & SCSI_RQ_NDOB) ? 0 : SCSI_BLOCK;
	/* the data-out is exactly one block (SBC-3 5.42) */
	if (t->edtl != t->xfer)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, (uint16_t)len_byte, 7), 1;
	return 0;
}

int sbc_decode_ws10(struct scsi_task *t)
{
	return sbc_decode_ws(t, scsi_get32(t->cdb + 2), scsi_get16(t->cdb + 7), 7);
}

int sbc_decode_ws16(struct scsi_task *t)
{
	return sbc_decode_ws(t, scsi_get64(t->cdb + 2), scsi_get32(t->cdb + 10), 10);
}

static void sbc_ws_next(void *arg, int err)
{
	struct scsi_task *t = arg;
	uint64_t n;

	if (err < 0 || t->pos >= t->end) {
		free(t->priv);
		t->priv = NULL;
		t->pos = (t->end - t->req.lba) * SCSI_BLOCK;    /* what the hook reports */
		sbc_write_done(t, err);
		return;
	}
	n = t->end - t->pos < SBC_WS_CHUNK_BLOCKS ? t->end - t->pos : SBC_WS_CHUNK_BLOCKS;
	t->iov[0].iov_len = n * SCSI_BLOCK;
	t->pos += n;
	store_vol_write(sbc_vol(t), t->pos - n, t->iov, 1, 0, sbc_ws_next, t);
}

int sbc_write_same(struct scsi_task *t)
{
	static const uint8_t zero[SCSI_BLOCK];
	uint8_t block[SCSI_BLOCK] = { 0 };
	uint64_t chunk, n = t->req.nblocks;

	if (n == 0)     /* up to the end of the medium */
		n = scsi_lu_blocks(t->itl->lu) - t->req.lba;
	if (n == 0)
		return scsi_good(t);
	if (!(t->req.flags & SCSI_RQ_NDOB))
		scsi_buf_copy_out(&t->buf, 0, block, t->data_out < SCSI_BLOCK ? t->data_out : SCSI_BLOCK);
	if ((t->req.flags & SCSI_RQ_UNMAP) || memcmp(block, zero, SCSI_BLOCK) == 0) {
		store_vol_unmap(sbc_vol(t), t->req.lba, n, sbc_write_done, t);
		return SCSI_ASYNC;
	}
	chunk = n < SBC_WS_CHUNK_BLOCKS ? n : SBC_WS_CHUNK_BLOCKS;
	t->priv = malloc((size_t)chunk * SCSI_BLOCK);
	t->iov = calloc(1, sizeof(*t->iov));
	if (!t->priv || !t->iov)
		return scsi_sense_store(t, -ENOMEM, true);
	for (uint32_t i = 0; i < chunk; i++)
		memcpy((uint8_t *)t->priv + (size_t)i * SCSI_BLOCK, block, SCSI_BLOCK);
	t->iov[0].iov_base = t->priv;
	t->pos = t->req.lba;
	t->end = t->req.lba + n;
	sbc_ws_next(t, 0);
	return SCSI_ASYNC;
}

/* SANITIZE (SBC-3 5.19): BLOCK ERASE unmaps the whole volume; EXIT
 * FAILURE MODE has nothing to leave. No parameter list for either. */
int sbc_decode_sanitize(struct scsi_task *t)
{
	if (scsi_get16(t->cdb + 7) != 0)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 7, 7), 1;
	return 0;
}

int sbc_sanitize(struct scsi_task *t)
{
	if ((t->cdb[1] & 0x1f) == SCSI_SANITIZE_EXIT_FAILURE)
		return scsi_good(t);
	store_vol_unmap(sbc_vol(t), 0, scsi_lu_blocks(t->itl->lu), sbc_write_done, t);
	return SCSI_ASYNC;
}

/* READ DEFECT DATA (SBC-3 5.12, 5.13): a virtual volume has no defects;
 * the header echoes the lists and format asked for. */
int sbc_read_defect(struct scsi_task *t)
{
	uint8_t d[8] = { 0 };
	bool twelve = t->cdb[0] == SCSI_READ_DEFECT_DATA_12;

	d[1] = twelve ? t->cdb[1] & 0x1f : t->cdb[2] & 0x1f;
	return scsi_data_in(t, d, twelve ? 8 : 4, twelve ? scsi_get32(t->cdb + 6) : scsi_get16(t->cdb + 7));
}

/* Block ranges. Every command that writes a LU's blocks holds a range of
 * them from exec to completion, wherever it comes from (any session, any
 * portal, a copy). Writes share: with no exclusive holder and nobody
 * waiting, taking a range is a list insert. COMPARE AND WRITE holds its
 * blocks alone: it waits for the writes in flight over them, and writes
 * that arrive while it waits or runs wait behind it, in arrival order, so
 * nothing can land between its read and its write (SBC-3 5.3). */

static bool range_conflict(const struct scsi_range *a, const struct scsi_range *b)
{
	return (a->excl || b->excl) && a->lba < b->end && b->lba < a->end;
}

/* May r be held now? Not if it conflicts with a holder, or with a waiter
 * that came before it (stop: r's own place in the queue, or NULL). */
static bool range_free(struct scsi_lu *lu, const struct scsi_range *r,
                       const struct scsi_range *stop)
{
	const struct scsi_range *o;

	if (lu->range_excl || r->excl)
		TAILQ_FOREACH(o, &lu->ranges, link)
			if (range_conflict(r, o))
				return false;
	TAILQ_FOREACH(o, &lu->range_wait, link) {
		if (o == stop)
			break;
		if (range_conflict(r, o))
			return false;
	}
	return true;
}

static void range_hold(struct scsi_lu *lu, struct scsi_range *r)
{
	r->held = true;
	TAILQ_INSERT_TAIL(&lu->ranges, r, link);
	if (r->excl)
		lu->range_excl++;
}

int scsi_range_lock(struct scsi_lu *lu, struct scsi_range *r, uint64_t lba, uint64_t n,
                    unsigned flags, scsi_range_fn *granted)
{
	bool excl = flags & SCSI_RANGE_EXCL;

	if (!lu->range_init) {
		TAILQ_INIT(&lu->ranges);
		TAILQ_INIT(&lu->range_wait);
		lu->range_init = true;
	}
	r->lu = lu;
	r->lba = lba;
	r->end = n > UINT64_MAX - lba ? UINT64_MAX : lba + n;
	r->excl = excl;
	r->granted = granted;
	r->next_grant = NULL;
	if (flags & SCSI_RANGE_WRITE)
		tpc_lu_written(lu, r->lba, r->end);
	if ((!lu->range_excl && !excl && TAILQ_EMPTY(&lu->range_wait)) ||
	    range_free(lu, r, NULL)) {
		range_hold(lu, r);
		return 0;
	}
	r->held = false;
	TAILQ_INSERT_TAIL(&lu->range_wait, r, link);
	return 1;
}

/* Releases r, then grants, in order, the waiters that may now go; their
 * callbacks run after the queue is settled (they may unlock in turn). */
void scsi_range_unlock(struct scsi_range *r)
{
	struct scsi_lu *lu = r->lu;
	struct scsi_range *w, *next, *go = NULL, **tail = &go;

	if (!lu || !r->held)
		return;
	TAILQ_REMOVE(&lu->ranges, r, link);
	if (r->excl)
		lu->range_excl--;
	r->lu = NULL;
	r->held = false;
	for (w = TAILQ_FIRST(&lu->range_wait); w; w = next) {
		next = TAILQ_NEXT(w, link);
		if (!range_free(lu, w, w))
			continue;
		TAILQ_REMOVE(&lu->range_wait, w, link);
		range_hold(lu, w);
		*tail = w;
		tail = &w->next_grant;
	}
	while ((w = go)) {
		go = w->next_grant;
		w->next_grant = NULL;
		w->granted(w);
	}
}

/* UNMAP's blocks: from its lowest to its highest descriptor (a bad list
 * keeps the whole LU; the command refuses it anyway). */
static void sbc_unmap_bounds(const struct scsi_task *t, uint64_t *lba, uint64_t *n)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	uint8_t hdr[8], desc[16];
	uint32_t ndesc;

	if (t->data_out < 8)
		return;
	scsi_buf_copy_out(&t->buf, 0, hdr, 8);
	ndesc = scsi_get16(hdr + 2) / 16;
	if (ndesc > SCSI_MAX_UNMAP_DESCS || 8 + 16 * ndesc > t->data_out)
		return;
	for (uint32_t i = 0; i < ndesc; i++) {
		uint64_t l, c;

		scsi_buf_copy_out(&t->buf, 8 + 16 * i, desc, 16);
		l = scsi_get64(desc);
		c = scsi_get32(desc + 8);
		if (c == 0)
			continue;
		if (l > UINT64_MAX - c)
			return;
		lo = l < lo ? l : lo;
		hi = l + c > hi ? l + c : hi;
	}
	*lba = lo == UINT64_MAX ? 0 : lo;
	*n = lo == UINT64_MAX ? 0 : hi - lo;
}

/* The blocks a write-like command holds: its range when the CDB or the
 * parameter list names one, else the whole LU. */
int sbc_task_lock(struct scsi_task *t, scsi_range_fn *granted)
{
	scsi_exec_fn *exec = t->desc->exec;
	uint64_t lba = 0, n = UINT64_MAX;

	if (exec == tpc_write_using_token)
		return 0;               /* copy.c holds each destination range */
	if (exec == sbc_write || exec == sbc_compare_and_write ||
	    (exec == sbc_write_same && t->req.nblocks)) {
		lba = t->req.lba;
		n = t->req.nblocks;
	} else if (exec == sbc_write_same) {
		lba = t->req.lba;
	} else if (exec == sbc_unmap) {
		sbc_unmap_bounds(t, &lba, &n);
	}
	return scsi_range_lock(t->itl->lu, &t->range, lba, n, SCSI_RANGE_WRITE |
	                       (t->desc->flags & SCMD_ATOMIC ? SCSI_RANGE_EXCL : 0), granted);
}

/* COMPARE AND WRITE (SBC-3 5.3): the data-out is the blocks to compare,
 * then the blocks to write; it runs holding its blocks alone. */
int sbc_decode_caw(struct scsi_task *t)
{
	uint32_t n = t->cdb[13];

	t->req.lba = scsi_get64(t->cdb + 2);
	t->req.nblocks = n;
	t->req.flags = t->cdb[1] & 0x08 ? SCSI_RQ_FUA : 0;
	if (n > SCSI_MAX_CAW_BLOCKS)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 13, 7), 1;
	if (sbc_lba_range(t, t->req.lba, n))
		return 1;
	t->xfer = 2 * n * SCSI_BLOCK;
	/* half a pair is no compare and write: refuse before any data moves */
	if (t->edtl != t->xfer)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 13, 7), 1;
	return 0;
}

/* The first byte where the medium differs from the data-out, or -1. */
static int64_t sbc_caw_diff(const struct scsi_task *t, const uint8_t *medium, uint32_t bytes)
{
	uint32_t off = 0;

	while (off < bytes) {
		uint32_t have;
		const uint8_t *want = scsi_buf_at(&t->buf, off, &have);

		have = have < bytes - off ? have : bytes - off;
		if (memcmp(want, medium + off, have) != 0)
			for (uint32_t i = 0; i < have; i++)
				if (want[i] != medium[off + i])
					return (int64_t)off + i;
		off += have;
	}
	return -1;
}

static void sbc_caw_read_done(void *arg, int err)
{
	struct scsi_task *t = arg;
	uint32_t bytes = t->req.nblocks * SCSI_BLOCK;
	int64_t diff;
	int iovcnt;

	if (err == 0 && (diff = sbc_caw_diff(t, t->priv, bytes)) >= 0) {
		/* SBC-3 5.3: INFORMATION is the offset of the first difference */
		scsi_sense_info(t, SCSI_SK_MISCOMPARE, SCSI_ASC_MISCOMPARE_VERIFY,
		                (uint64_t)diff);
		err = 1;
	}
	free(t->priv);
	t->priv = NULL;
	free(t->iov);
	t->iov = NULL;
	if (err != 0) {
		if (err < 0)
			scsi_sense_store(t, err, false);
		scsi_task_async_done(t);
		return;
	}
	t->iov = scsi_buf_iov(&t->buf, bytes, bytes, &iovcnt);
	if (!t->iov) {
		sbc_write_done(t, -ENOMEM);
		return;
	}
	t->pos = bytes;
	store_vol_write(sbc_vol(t), t->req.lba, t->iov, iovcnt,
	                (t->req.flags & SCSI_RQ_FUA) ? STORE_WRITE_FUA : 0, sbc_write_done, t);
}

int sbc_compare_and_write(struct scsi_task *t)
{
	uint32_t bytes = t->req.nblocks * SCSI_BLOCK;

	if (bytes == 0)
		return scsi_good(t);    /* SBC-3 5.3: not an error */
	if (t->data_out < t->xfer)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	t->priv = malloc(bytes);
	t->iov = calloc(1, sizeof(*t->iov));
	if (!t->priv || !t->iov) {
		free(t->priv);
		t->priv = NULL;
		return scsi_sense_store(t, -ENOMEM, true);
	}
	t->iov[0] = (struct iovec){ t->priv, bytes };
	t->started_ns = now_ns();
	store_vol_read(sbc_vol(t), t->req.lba, t->iov, 1, sbc_caw_read_done, t);
	return SCSI_ASYNC;
}

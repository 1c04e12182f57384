/* store/recover.c: replay of the log written after the last checkpoint.
 *
 * Starting at the checkpoint root's position, each record is read and checked
 * (store/format.h says what makes one valid); a valid record's entries are
 * applied in order, exactly as the running pool applied them. Replay stops
 * at the first record that is torn, stale or out of sequence: everything
 * before it was written before it, and nothing after it can have been
 * acknowledged (D2). A record whose checksums hold but whose entries make no
 * sense is corruption, not a torn write: the pool refuses to open rather
 * than guess.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define HDR_LIMIT  (sizeof(struct fmt_rec_hdr) + \
                    STORE_BATCH_MAX_ENTRIES * sizeof(struct fmt_rec_entry))

/* 0 when h could be the record at off (bytes into its segment) following
 * the record prev_seq (STORE_ANY_SEQ: any). Checks sizes and identity, not
 * the CRCs. */
int store_rec_check_hdr(const struct store_pool *p, const struct fmt_rec_hdr *h,
                        uint32_t off, uint64_t prev_seq)
{
	if (h->magic != FMT_REC_MAGIC || memcmp(h->uuid, p->uuid, 16) != 0 ||
	    h->seq <= h->prev_seq || h->seq - h->prev_seq > 2 * FMT_SEQ_JUMP)
		return STORE_ECORRUPT;
	if (prev_seq != STORE_ANY_SEQ && h->prev_seq != prev_seq)
		return STORE_ECORRUPT;
	if (h->hdr_bytes < 4096 || h->hdr_bytes % 4096 || h->hdr_bytes > HDR_LIMIT + 4095 ||
	    h->data_bytes % 4096 || h->data_bytes > STORE_BATCH_MAX_BYTES ||
	    h->n_entries == 0 || h->n_entries > STORE_BATCH_MAX_ENTRIES ||
	    sizeof(*h) + (size_t)h->n_entries * sizeof(struct fmt_rec_entry) > h->hdr_bytes ||
	    (uint64_t)off + h->hdr_bytes + h->data_bytes > p->seg_bytes ||
	    h->next_seg >= p->nsegs)
		return STORE_ECORRUPT;
	return 0;
}

static int replay_meta(struct store_pool *p, const char *rec,
                       const struct fmt_rec_entry *e, uint64_t data_sectors)
{
	const struct fmt_rec_hdr *h = (const void *)rec;
	const char *key = rec + h->hdr_bytes + (size_t)e->data_off * STORE_SECTOR;
	bool put = e->type == FMT_ENT_META_PUT;
	uint64_t vlen = put ? e->sectors : 0;

	if (vlen > STORE_META_VALUE_MAX ||
	    e->data_off + (e->name_len + vlen + STORE_SECTOR - 1) / STORE_SECTOR > data_sectors ||
	    !store_meta_key_ok(key, e->name_len))
		return STORE_ECORRUPT;
	return store_meta_apply(p, key, e->name_len, key + e->name_len, vlen, put);
}

/* Applies the entries of a record whose CRCs hold. */
static int replay_entries(struct store_pool *p, const char *rec, uint32_t seg, uint32_t off)
{
	const struct fmt_rec_hdr *h = (const void *)rec;
	const struct fmt_rec_entry *ents = (const void *)(h + 1);
	uint64_t data_sectors = h->data_bytes / STORE_SECTOR;
	uint64_t data_pba = store_seg_sector(p, seg) + (off + h->hdr_bytes) / STORE_SECTOR;

	for (uint32_t i = 0; i < h->n_entries; i++) {
		struct fmt_rec_entry e = ents[i];
		int rc;

		if (e.type == FMT_ENT_META_PUT || e.type == FMT_ENT_META_DEL)
			rc = replay_meta(p, rec, &e, data_sectors);
		else
			rc = store_vol_apply(p, &e, rec + h->hdr_bytes, data_sectors, h->seq,
			                     data_pba + e.data_off, true);
		if (rc)
			return rc;
	}
	return 0;
}

/* A record header read during replay, and where it is. */
struct rhdr {
	char    *buf;                   /* HDR_LIMIT + 4096 bytes, 4 KiB-aligned */
	uint32_t seg, off;
	bool     valid;
};

static struct fmt_rec_hdr *rh(const struct rhdr *r)
{
	return (struct fmt_rec_hdr *)r->buf;
}

/* Reads the header at (seg, off) and checks it follows record prev and its
 * header CRC holds. The data is not read. */
static int replay_hdr_read(struct store_pool *p, uint32_t seg, uint32_t off,
                           uint64_t prev, struct rhdr *r)
{
	struct fmt_rec_hdr *h = rh(r);
	uint64_t at = FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes + off;
	uint32_t crc;
	int rc;

	r->valid = false;
	if ((uint64_t)off + 4096 > p->seg_bytes)
		return STORE_ECORRUPT;
	rc = p->be->ops->read_sync(p->be, r->buf, 4096, at);
	if (rc == 0)
		rc = store_rec_check_hdr(p, h, off, prev);
	if (rc == 0 && h->hdr_bytes > 4096)
		rc = p->be->ops->read_sync(p->be, r->buf + 4096, h->hdr_bytes - 4096, at + 4096);
	if (rc)
		return rc == -EIO ? rc : STORE_ECORRUPT;
	crc = h->hdr_crc;
	h->hdr_crc = 0;
	if (store_crc(r->buf, h->hdr_bytes) != crc)
		return STORE_ECORRUPT;
	h->hdr_crc = crc;
	r->seg = seg;
	r->off = off;
	r->valid = true;
	return 0;
}

/* The record after cur: at its end in the same segment, or at the start of
 * the segment cur named as next. */
static int replay_hdr_next(struct store_pool *p, const struct rhdr *cur, struct rhdr *nxt)
{
	const struct fmt_rec_hdr *h = rh(cur);
	uint32_t end = cur->off + h->hdr_bytes + h->data_bytes;
	int rc = replay_hdr_read(p, cur->seg, end, h->seq, nxt);

	if (rc == STORE_ECORRUPT)
		rc = replay_hdr_read(p, h->next_seg, 0, h->seq, nxt);
	return rc;
}

static bool rec_needs_data(const struct fmt_rec_hdr *h)
{
	const struct fmt_rec_entry *e = (const void *)(h + 1);

	for (uint32_t i = 0; i < h->n_entries; i++)
		if (e[i].type != FMT_ENT_WRITE && e[i].type != FMT_ENT_UNMAP &&
		    e[i].type != FMT_ENT_VOL_DELETE && e[i].type != FMT_ENT_VOL_RESIZE &&
		    e[i].type != FMT_ENT_VOL_SET_WB)
			return true;    /* names and values live in the data */
	return false;
}

/* Reads cur's data behind its header when it is needed: to apply names and
 * values, or to prove a record that no later record vouches for (it may
 * be a torn write). STORE_ECORRUPT when its data CRC fails. */
static int replay_data(struct store_pool *p, struct rhdr *cur, bool vouched)
{
	const struct fmt_rec_hdr *h = rh(cur);
	uint64_t at = FMT_DATA_OFF + (uint64_t)cur->seg * p->seg_bytes + cur->off + h->hdr_bytes;
	int rc;

	if ((vouched && !rec_needs_data(h)) || h->data_bytes == 0)
		return 0;
	rc = p->be->ops->read_sync(p->be, cur->buf + h->hdr_bytes, h->data_bytes, at);
	if (rc)
		return rc;
	if (store_crc(cur->buf + h->hdr_bytes, h->data_bytes) != h->data_crc)
		return STORE_ECORRUPT;
	p->st.replayed_data_bytes += h->data_bytes;
	return 0;
}

/* A valid record header at (seg, off) claiming a flush past last: proof that
 * the record after last was durable once. */
static bool replay_flushed_past(struct store_pool *p, uint32_t seg, uint32_t off,
                                uint64_t last, char *buf)
{
	struct fmt_rec_hdr *h = (void *)buf;
	uint64_t at = FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes + off;
	uint32_t crc;

	if (p->be->ops->read_sync(p->be, buf, 4096, at) ||
	    store_rec_check_hdr(p, h, off, STORE_ANY_SEQ) || h->flushed_seq <= last)
		return false;
	if (h->hdr_bytes > 4096 &&
	    p->be->ops->read_sync(p->be, buf + 4096, h->hdr_bytes - 4096, at + 4096))
		return false;
	crc = h->hdr_crc;
	h->hdr_crc = 0;
	return store_crc(buf, h->hdr_bytes) == crc;
}

/* Scans [from, seg_bytes) of seg in 1 MiB reads for a record that proves a
 * flush past last. */
static bool replay_scan(struct store_pool *p, uint32_t seg, uint32_t from, uint64_t last,
                        char *chunk, char *hdr)
{
	const uint32_t step = 1u << 20;

	for (uint32_t o = from; o < p->seg_bytes; o += step) {
		uint32_t n = p->seg_bytes - o < step ? p->seg_bytes - o : step;
		uint64_t at = FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes + o;

		if (p->be->ops->read_sync(p->be, chunk, n, at))
			return false;
		for (uint32_t b = 0; b < n; b += 4096) {
			const struct fmt_rec_hdr *h = (const void *)(chunk + b);

			if (h->magic == FMT_REC_MAGIC && h->flushed_seq > last &&
			    memcmp(h->uuid, p->uuid, 16) == 0 &&
			    replay_flushed_past(p, seg, o + b, last, hdr))
				return true;
		}
	}
	return false;
}

/* Replay stopped after record last at (seg, off). A torn write ends the log
 * there; damage does not, and shows as a later record that knew a flush
 * covered more (format.h). Looks in the rest of the segment and the next
 * one, and, when the older root was used, at the start of every segment. */
static int replay_check_end(struct store_pool *p, uint32_t seg, uint32_t off,
                            uint32_t next, uint64_t last, char *chunk, char *hdr)
{
	if (replay_scan(p, seg, off, last, chunk, hdr) ||
	    replay_scan(p, next, 0, last, chunk, hdr))
		return STORE_ECORRUPT;
	for (uint32_t s = 0; p->ckpt_fell_back && s < p->nsegs; s++)
		if (p->segs[s].state != SEG_CKPT && replay_flushed_past(p, s, 0, last, hdr))
			return STORE_ECORRUPT;
	return 0;
}

/* Marks what the log uses and counts the free segments. */
static void replay_settle(struct store_pool *p)
{
	p->segs[p->cur_seg].state = SEG_LOG;
	p->segs[p->next_seg].state = SEG_LOG;
	p->free_segs = 0;
	for (uint32_t s = 0; s < p->nsegs; s++) {
		struct seg_info *g = &p->segs[s];

		if (g->state == SEG_FREE && g->live > 0)
			g->state = SEG_LOG;
		if (g->state == SEG_FREE)
			p->free_segs++;
	}
}

static void replay_advance(struct store_pool *p, const struct rhdr *cur)
{
	const struct fmt_rec_hdr *h = rh(cur);

	p->segs[cur->seg].state = SEG_LOG;
	p->segs[cur->seg].last_seq = h->seq;
	p->st.replayed_records++;
	p->st.replayed_bytes += h->hdr_bytes + h->data_bytes;
	p->log_bytes_since_ckpt += h->hdr_bytes + h->data_bytes;
}

/* Reads the record after cur into nxt (nxt->valid false at the log's end). */
static int replay_fill(struct store_pool *p, const struct rhdr *cur, struct rhdr *nxt)
{
	int rc;

	nxt->valid = false;
	if (!cur->valid)
		return 0;
	rc = replay_hdr_next(p, cur, nxt);
	return rc == STORE_ECORRUPT ? 0 : rc;
}

/* Does a record in the lookahead say a flush covered seq? */
static bool replay_vouched(struct rhdr *const q[3], uint64_t seq)
{
	return (q[1]->valid && rh(q[1])->flushed_seq >= seq) ||
	       (q[2]->valid && rh(q[2])->flushed_seq >= seq);
}

/* Walks the chain from the root with two records of lookahead (at most two
 * batches are in flight, so the second record after a flushed one knows it
 * was flushed: D2). A vouched record's data need not be read (store_pool_check
 * verifies old data); only the unvouched tail is read and CRC-checked,
 * which is where a torn write can be. */
static int replay_walk(struct store_pool *p, struct rhdr r[3], uint32_t *seg,
                       uint32_t *off, uint32_t *next, uint64_t *prev)
{
	struct rhdr *q[3] = { &r[0], &r[1], &r[2] }, *t;
	int rc = replay_hdr_read(p, *seg, *off, *prev, q[0]);

	if (rc == STORE_ECORRUPT && *off > 0)
		rc = replay_hdr_read(p, *next, 0, *prev, q[0]);
	if (rc)
		return rc == STORE_ECORRUPT ? 0 : rc;
	if ((rc = replay_fill(p, q[0], q[1])) || (rc = replay_fill(p, q[1], q[2])))
		return rc;
	for (;;) {
		const struct fmt_rec_hdr *h = rh(q[0]);

		if (h->next_seg == q[0]->seg || p->segs[h->next_seg].state == SEG_CKPT ||
		    p->segs[q[0]->seg].state == SEG_CKPT)
			return STORE_ECORRUPT;
		rc = replay_data(p, q[0], replay_vouched(q, h->seq));
		if (rc)
			return rc == STORE_ECORRUPT ? 0 : rc;   /* a torn last record ends the log */
		rc = replay_entries(p, q[0]->buf, q[0]->seg, q[0]->off);
		if (rc)
			return rc;
		replay_advance(p, q[0]);
		*seg = q[0]->seg;
		*off = q[0]->off + h->hdr_bytes + h->data_bytes;
		*next = h->next_seg;
		*prev = h->seq;
		if (!q[1]->valid)
			return 0;
		t = q[0];
		q[0] = q[1];
		q[1] = q[2];
		q[2] = t;
		rc = replay_fill(p, q[1], q[2]);
		if (rc)
			return rc;
	}
}

int store_log_replay(struct store_pool *p, const struct fmt_root *root)
{
	const size_t cap = HDR_LIMIT + 4096 + STORE_BATCH_MAX_BYTES;
	struct rhdr r[3] = { { .buf = store_alloc_aligned(cap) }, { .buf = store_alloc_aligned(cap) },
	                     { .buf = store_alloc_aligned(cap) } };
	uint32_t seg = root->log_seg, off = root->log_off, next = root->next_seg;
	uint64_t prev = root->log_seq;
	int rc = -ENOMEM;

	if (!r[0].buf || !r[1].buf || !r[2].buf)
		goto out;
	rc = STORE_ECORRUPT;
	if (p->segs[seg].state == SEG_CKPT || p->segs[next].state == SEG_CKPT)
		goto out;
	p->segs[seg].state = SEG_LOG;   /* the log tail needs these until the next checkpoint */
	rc = replay_walk(p, r, &seg, &off, &next, &prev);
	if (rc == 0)
		rc = replay_check_end(p, seg, off, next, prev, r[0].buf, r[1].buf);
	/* Make what was read back durable before new records vouch for it. */
	if (rc == 0 && !p->read_only)
		rc = p->be->ops->write_sync(p->be, NULL, 0, 0);
out:
	for (int i = 0; i < 3; i++)
		free(r[i].buf);
	if (rc) {
		store_pool_logf(p, STORE_LOG_ERR, "the log after record %llu in segment %u is "
		                "damaged, and records after it were durable: %s",
		                (unsigned long long)prev, seg, store_strerror(rc));
		return rc;
	}
	p->cur_seg = seg;
	p->cur_off = off;
	p->next_seg = next;
	p->last_seq = prev;
	p->flushed_seq = prev;
	p->next_seq = prev + FMT_SEQ_JUMP;      /* see format.h: seqs are never reused */
	replay_settle(p);
	if (p->st.replayed_records)
		store_pool_logf(p, STORE_LOG_INFO, "replayed %llu log records (%llu MiB)",
		                (unsigned long long)p->st.replayed_records,
		                (unsigned long long)(p->st.replayed_bytes >> 20));
	return 0;
}

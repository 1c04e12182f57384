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
	    h->seq <= h->prev_seq || h->seq - h->prev_seq > FMT_SEQ_JUMP)
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

static bool name_ok(const char *n, size_t len)
{
	if (len == 0 || len > STORE_NAME_MAX || n[0] == '.' || n[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
		      (n[i] >= '0' && n[i] <= '9') || strchr("._:-", n[i])) || n[i] == 0)
			return false;
	return true;
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
		char name[STORE_NAME_MAX + 1] = "";
		int rc;

		if (e.type == FMT_ENT_WRITE &&
		    (e.sectors == 0 || e.data_off + e.sectors > data_sectors))
			return STORE_ECORRUPT;
		if (e.type == FMT_ENT_VOL_CREATE) {
			const char *n = rec + h->hdr_bytes + (size_t)e.data_off * STORE_SECTOR;

			if (e.data_off >= data_sectors || !name_ok(n, e.name_len) || e.vol == 0 ||
			    e.sectors == 0 || e.sectors > STORE_VOL_MAX_SECTORS)
				return STORE_ECORRUPT;
			memcpy(name, n, e.name_len);
		}
		if (e.type == FMT_ENT_META_PUT || e.type == FMT_ENT_META_DEL)
			rc = replay_meta(p, rec, &e, data_sectors);
		else
			rc = store_vol_apply(p, &e, name, data_pba + e.data_off, true);
		if (rc)
			return rc;
		if (e.type == FMT_ENT_VOL_CREATE && e.vol >= p->next_vol_id)
			p->next_vol_id = e.vol + 1;
	}
	return 0;
}

/* Reads and checks the record at (seg, off) following record prev. 0 with
 * the record in buf, or STORE_ECORRUPT when there is no valid record there. */
static int replay_read(struct store_pool *p, uint32_t seg, uint32_t off, uint64_t prev,
                       char *buf)
{
	const struct fmt_rec_hdr *h = (const void *)buf;
	uint64_t at = FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes + off;
	struct fmt_rec_hdr copy;
	int rc;

	if ((uint64_t)off + 4096 > p->seg_bytes)
		return STORE_ECORRUPT;
	rc = p->be->ops->read_sync(p->be, buf, 4096, at);
	if (rc == 0)
		rc = store_rec_check_hdr(p, h, off, prev);
	if (rc == 0 && h->hdr_bytes + h->data_bytes > 4096)
		rc = p->be->ops->read_sync(p->be, buf + 4096,
		                           h->hdr_bytes + h->data_bytes - 4096, at + 4096);
	if (rc)
		return rc == -EIO ? rc : STORE_ECORRUPT;
	copy = *h;
	((struct fmt_rec_hdr *)buf)->hdr_crc = 0;
	if (store_crc(buf, copy.hdr_bytes) != copy.hdr_crc ||
	    store_crc(buf + copy.hdr_bytes, copy.data_bytes) != copy.data_crc)
		return STORE_ECORRUPT;
	((struct fmt_rec_hdr *)buf)->hdr_crc = copy.hdr_crc;
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

int store_log_replay(struct store_pool *p, const struct fmt_root *root)
{
	char *buf = store_alloc_aligned(HDR_LIMIT + 4096 + STORE_BATCH_MAX_BYTES);
	uint32_t seg = root->log_seg, off = root->log_off, next = root->next_seg;
	uint64_t prev = root->log_seq;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	if (p->segs[seg].state == SEG_CKPT || p->segs[next].state == SEG_CKPT) {
		free(buf);
		return STORE_ECORRUPT;
	}
	p->segs[seg].state = SEG_LOG;   /* the log tail needs these until the next checkpoint */
	for (;;) {
		const struct fmt_rec_hdr *h = (const void *)buf;

		rc = replay_read(p, seg, off, prev, buf);
		if (rc == STORE_ECORRUPT && off > 0) {  /* did the log move on? */
			rc = replay_read(p, next, 0, prev, buf);
			if (rc == 0) {
				seg = next;
				off = 0;
			}
		}
		if (rc == STORE_ECORRUPT) {
			rc = 0;                 /* the end of the log */
			break;
		}
		if (rc)
			break;
		if (h->next_seg == seg || p->segs[h->next_seg].state == SEG_CKPT) {
			rc = STORE_ECORRUPT;
			break;
		}
		rc = replay_entries(p, buf, seg, off);
		if (rc)
			break;
		p->segs[seg].state = SEG_LOG;
		p->segs[seg].last_seq = h->seq;
		prev = h->seq;
		next = h->next_seg;
		off += h->hdr_bytes + h->data_bytes;
		p->st.replayed_records++;
		p->st.replayed_bytes += h->hdr_bytes + h->data_bytes;
		p->log_bytes_since_ckpt += h->hdr_bytes + h->data_bytes;
	}
	free(buf);
	if (rc) {
		store_pool_logf(p, STORE_LOG_ERR, "log record after %llu in segment %u is "
		                "corrupt: %s", (unsigned long long)prev, seg, store_strerror(rc));
		return rc;
	}
	p->cur_seg = seg;
	p->cur_off = off;
	p->next_seg = next;
	p->last_seq = prev;
	p->next_seq = prev + FMT_SEQ_JUMP;      /* see format.h: seqs are never reused */
	replay_settle(p);
	if (p->st.replayed_records)
		store_pool_logf(p, STORE_LOG_INFO, "replayed %llu log records (%llu MiB)",
		                (unsigned long long)p->st.replayed_records,
		                (unsigned long long)(p->st.replayed_bytes >> 20));
	return 0;
}

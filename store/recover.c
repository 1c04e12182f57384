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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/thread.h"

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

static int replay_meta(struct store_pool *p, const char *data,
                       const struct fmt_rec_entry *e, uint64_t data_sectors)
{
	const char *key = data + (size_t)e->data_off * STORE_SECTOR;
	bool put = e->type == FMT_ENT_META_PUT;
	uint64_t vlen = put ? e->sectors : 0;

	if (vlen > STORE_META_VALUE_MAX ||
	    e->data_off + (e->name_len + vlen + STORE_SECTOR - 1) / STORE_SECTOR > data_sectors ||
	    !store_meta_key_ok(key, e->name_len))
		return STORE_ECORRUPT;
	return store_meta_apply(p, key, e->name_len, key + e->name_len, vlen, put);
}

/* How far ahead of the entry being applied replay touches what later ones
 * will change: their map leaves first, then (once the leaf is cached) the
 * address runs of the data they overwrite. Random writes make every entry
 * a few cache misses; touched ahead, the misses of many entries overlap. */
#define PF_LEAF 16
#define PF_REC  10
#define PF_RUNS 5

static void replay_prefetch(struct store_pool *p, const struct fmt_rec_entry *e, int step)
{
	struct store_vol *v;
	uint64_t la;

	if ((e->type != FMT_ENT_WRITE && e->type != FMT_ENT_UNMAP) ||
	    (step > 0 && p->addr.dq) ||    /* the table's own thread looks ahead */
	    !(v = store_vol_by_id(p, e->vol)))
		return;
	if (step == 0)
		store_map_prefetch(&v->map, e->lba);
	else if (store_map_peek(&v->map, e->lba, &la))
		store_addr_prefetch(&p->addr, la, step == 2);
}

/* Applies the entries of a record whose CRCs hold (data: what of its data
 * was read). */
static int replay_entries(struct store_pool *p, const char *rec, const char *data,
                          uint32_t seg, uint32_t off)
{
	const struct fmt_rec_hdr *h = (const void *)rec;
	const struct fmt_rec_entry *ents = (const void *)(h + 1);
	uint64_t data_sectors = h->data_bytes / STORE_SECTOR;
	uint64_t data_pba = store_seg_sector(p, seg) + (off + h->hdr_bytes) / STORE_SECTOR;

	for (uint32_t i = 0; i < PF_LEAF && i < h->n_entries; i++)
		replay_prefetch(p, &ents[i], 0);
	for (uint32_t i = 0; i < h->n_entries; i++) {
		struct fmt_rec_entry e = ents[i];
		int rc;

		if (i + PF_LEAF < h->n_entries)
			replay_prefetch(p, &ents[i + PF_LEAF], 0);
		if (i + PF_REC < h->n_entries)
			replay_prefetch(p, &ents[i + PF_REC], 1);
		if (i + PF_RUNS < h->n_entries)
			replay_prefetch(p, &ents[i + PF_RUNS], 2);

		if (e.type == FMT_ENT_META_PUT || e.type == FMT_ENT_META_DEL)
			rc = replay_meta(p, data, &e, data_sectors);
		else
			rc = store_vol_apply(p, &e, data, data_sectors, h->seq,
			                     data_pba + e.data_off, true);
		if (rc)
			return rc;
	}
	return 0;
}

/* A record header read during replay, and where it is. */
struct rhdr {
	char    *buf;                   /* HDR_BUF bytes, 4 KiB-aligned */
	uint32_t seg, off;
};

#define HDR_BUF ((HDR_LIMIT + 4095) & ~(size_t)4095)

static struct fmt_rec_hdr *rh(const struct rhdr *r)
{
	return (struct fmt_rec_hdr *)r->buf;
}

/* Reads the header at (seg, off), guess bytes at once when they fit in the
 * segment (a log's records are much alike: one read is usually all), and
 * checks it follows record prev and its header CRC holds. The data is not
 * read. */
static int replay_hdr_read(struct store_pool *p, uint32_t seg, uint32_t off,
                           uint64_t prev, struct rhdr *r, uint32_t guess)
{
	struct fmt_rec_hdr *h = rh(r);
	uint64_t at = FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes + off;
	uint32_t crc, got;
	int rc;

	if ((uint64_t)off + 4096 > p->seg_bytes)
		return STORE_ECORRUPT;
	got = guess < p->seg_bytes - off ? guess : (p->seg_bytes - off) & ~4095u;
	got = got < 4096 ? 4096 : got > HDR_BUF ? (uint32_t)HDR_BUF : got;
	rc = p->be->ops->read_sync(p->be, r->buf, got, at);
	if (rc == 0)
		rc = store_rec_check_hdr(p, h, off, prev);
	if (rc == 0 && h->hdr_bytes > got)
		rc = p->be->ops->read_sync(p->be, r->buf + got, h->hdr_bytes - got, at + got);
	if (rc)
		return rc == -EIO ? rc : STORE_ECORRUPT;
	crc = h->hdr_crc;
	h->hdr_crc = 0;
	if (store_crc(r->buf, h->hdr_bytes) != crc)
		return STORE_ECORRUPT;
	h->hdr_crc = crc;
	r->seg = seg;
	r->off = off;
	return 0;
}

/* ---- the reader ------------------------------------------------------------ *
 *
 * Where a record starts is known only from the header before it, so finding
 * the log's records is a chain of small synchronous reads. A thread walks
 * that chain up to RD_SLOTS headers ahead of the replay, each checked
 * (sequence, sizes, header CRC) as before, so that the reads wait while
 * entries are applied instead of the other way round. It only reads (the
 * backend's read_sync, safe from any thread while nothing writes) and
 * stops at the first header that does not follow: the log's end, a torn or
 * stale record, or an I/O error. The replay takes its headers in order.
 * Without a thread the replay reads each one itself when it needs it. */
#define RD_SLOTS 8

struct reader {
	struct store_pool *p;
	struct rhdr        slot[RD_SLOTS];
	uint64_t           head, tail;  /* headers taken, headers read (counts) */
	bool               end;         /* nothing follows slot tail - 1 */
	int                err;         /* with end: an I/O error, or 0 */
	bool               stop;
	bool               threaded;
	pthread_t          thread;
	pthread_mutex_t    mu;
	pthread_cond_t     cv;
	/* the reader's own: where the next header is looked for */
	uint32_t           seg, off, next;
	uint64_t           prev;
	uint32_t           guess;
};

/* Reads the header after the last one into r: where that one ended, or at
 * the start of the segment it named as next. */
static int reader_read(struct reader *rd, struct rhdr *r)
{
	const struct fmt_rec_hdr *h = rh(r);
	int rc = replay_hdr_read(rd->p, rd->seg, rd->off, rd->prev, r, rd->guess);

	if (rc == STORE_ECORRUPT && rd->off > 0)
		rc = replay_hdr_read(rd->p, rd->next, 0, rd->prev, r, rd->guess);
	if (rc)
		return rc;
	rd->seg = r->seg;
	rd->off = r->off + h->hdr_bytes + h->data_bytes;
	rd->next = h->next_seg;
	rd->prev = h->seq;
	rd->guess = h->hdr_bytes;
	return 0;
}

/* Reads one more header into the free slot after tail (the caller knows
 * there is one); returns false at the end. Called without the lock: the
 * slot is the reader's alone until tail moves past it. */
static bool reader_step(struct reader *rd)
{
	int rc = reader_read(rd, &rd->slot[rd->tail % RD_SLOTS]);
	bool more = rc == 0;

	if (rd->threaded)
		pthread_mutex_lock(&rd->mu);
	if (more) {
		rd->tail++;
	} else {
		rd->end = true;
		rd->err = rc == STORE_ECORRUPT ? 0 : rc;        /* not valid: the end */
	}
	if (rd->threaded) {
		pthread_cond_broadcast(&rd->cv);
		pthread_mutex_unlock(&rd->mu);
	}
	return more;
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	for (;;) {
		bool go;

		pthread_mutex_lock(&rd->mu);
		while (!rd->stop && !rd->end && rd->tail - rd->head == RD_SLOTS)
			pthread_cond_wait(&rd->cv, &rd->mu);
		go = !rd->stop && !rd->end;
		pthread_mutex_unlock(&rd->mu);
		if (!go || !reader_step(rd))
			return NULL;
	}
}

/* The i-th header not yet taken (i < RD_SLOTS), NULL when the log ends
 * before it (*err: an I/O error, or 0). */
static struct rhdr *reader_peek(struct reader *rd, unsigned i, int *err)
{
	bool have;

	if (!rd->threaded) {
		while (!rd->end && rd->tail - rd->head <= i)
			reader_step(rd);
		have = rd->tail - rd->head > i;
	} else {
		pthread_mutex_lock(&rd->mu);
		while (!rd->end && rd->tail - rd->head <= i)
			pthread_cond_wait(&rd->cv, &rd->mu);
		have = rd->tail - rd->head > i;
		pthread_mutex_unlock(&rd->mu);
	}
	*err = have ? 0 : rd->err;
	return have ? &rd->slot[(rd->head + i) % RD_SLOTS] : NULL;
}

/* The oldest header is done with: its slot may be read into again. */
static void reader_pop(struct reader *rd)
{
	if (!rd->threaded) {
		rd->head++;
		return;
	}
	pthread_mutex_lock(&rd->mu);
	rd->head++;
	pthread_cond_broadcast(&rd->cv);
	pthread_mutex_unlock(&rd->mu);
}

/* Starts reading at the checkpoint root's position (record prev ends the
 * log there: the next one is at off of seg, or at the start of next). */
static int reader_start(struct reader *rd, struct store_pool *p, uint32_t seg, uint32_t off,
                        uint32_t next, uint64_t prev)
{

	memset(rd, 0, sizeof(*rd));
	rd->p = p;
	rd->seg = seg;
	rd->off = off;
	rd->next = next;
	rd->prev = prev;
	rd->guess = 4096;
	for (int i = 0; i < RD_SLOTS; i++)
		if (!(rd->slot[i].buf = store_alloc_aligned(HDR_BUF)))
			return -ENOMEM;
	if (pthread_mutex_init(&rd->mu, NULL))
		return 0;       /* read inline */
	if (pthread_cond_init(&rd->cv, NULL)) {
		pthread_mutex_destroy(&rd->mu);
		return 0;
	}
	rd->threaded = true;    /* before the thread looks */
	if (store_thread_start(&rd->thread, reader_main, rd) != 0)
		rd->threaded = false;
	if (!rd->threaded) {
		pthread_cond_destroy(&rd->cv);
		pthread_mutex_destroy(&rd->mu);
	}
	return 0;
}

/* Stops the thread, which may be reading ahead; the slots stay. */
static void reader_stop(struct reader *rd)
{
	if (!rd->threaded)
		return;
	pthread_mutex_lock(&rd->mu);
	rd->stop = true;
	pthread_cond_broadcast(&rd->cv);
	pthread_mutex_unlock(&rd->mu);
	pthread_join(rd->thread, NULL);
	pthread_cond_destroy(&rd->cv);
	pthread_mutex_destroy(&rd->mu);
	rd->threaded = false;
}

static void reader_free(struct reader *rd)
{
	reader_stop(rd);
	for (int i = 0; i < RD_SLOTS; i++)
		free(rd->slot[i].buf);
}

/* ---- the walk ---------------------------------------------------------------- */

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

/* Reads cur's data into data when it is needed: to apply names and values,
 * or to prove a record that no later record vouches for (it may be a torn
 * write). STORE_ECORRUPT when its data CRC fails. */
static int replay_data(struct store_pool *p, const struct rhdr *cur, char *data, bool vouched)
{
	const struct fmt_rec_hdr *h = rh(cur);
	uint64_t at = FMT_DATA_OFF + (uint64_t)cur->seg * p->seg_bytes + cur->off + h->hdr_bytes;
	int rc;

	if ((vouched && !rec_needs_data(h)) || h->data_bytes == 0)
		return 0;
	rc = p->be->ops->read_sync(p->be, data, h->data_bytes, at);
	if (rc)
		return rc;
	if (store_crc(data, h->data_bytes) != h->data_crc)
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

/* Does a record in the lookahead say a flush covered seq? */
static bool replay_vouched(const struct rhdr *n1, const struct rhdr *n2, uint64_t seq)
{
	return (n1 && rh(n1)->flushed_seq >= seq) || (n2 && rh(n2)->flushed_seq >= seq);
}

/* Walks the chain from the root with two records of lookahead (at most two
 * batches are in flight, so the second record after a flushed one knows it
 * was flushed: D2). A vouched record's data need not be read (store_pool_check
 * verifies old data); only the unvouched tail is read and CRC-checked,
 * which is where a torn write can be. */
static int replay_walk(struct store_pool *p, struct reader *rd, char *data, uint32_t *seg,
                       uint32_t *off, uint32_t *next, uint64_t *prev)
{
	for (;;) {
		int err, rc;
		struct rhdr *c = reader_peek(rd, 0, &err), *n1 = NULL, *n2 = NULL;
		const struct fmt_rec_hdr *h;

		if (c && !(n1 = reader_peek(rd, 1, &err)) && err)
			return err;
		if (n1 && !(n2 = reader_peek(rd, 2, &err)) && err)
			return err;
		if (!c)
			return err;
		h = rh(c);
		if (h->next_seg == c->seg || p->segs[h->next_seg].state == SEG_CKPT ||
		    p->segs[c->seg].state == SEG_CKPT)
			return STORE_ECORRUPT;
		rc = replay_data(p, c, data, replay_vouched(n1, n2, h->seq));
		if (rc)
			return rc == STORE_ECORRUPT ? 0 : rc;   /* a torn last record ends the log */
		rc = replay_entries(p, c->buf, data, c->seg, c->off);
		if (rc)
			return rc;
		replay_advance(p, c);
		*seg = c->seg;
		*off = c->off + h->hdr_bytes + h->data_bytes;
		*next = h->next_seg;
		*prev = h->seq;
		reader_pop(rd);
	}
}

int store_log_replay(struct store_pool *p, const struct fmt_root *root)
{
	uint32_t seg = root->log_seg, off = root->log_off, next = root->next_seg;
	uint64_t prev = root->log_seq;
	char *data = store_alloc_aligned(STORE_BATCH_MAX_BYTES);
	struct reader rd;
	int rc = -ENOMEM;

	memset(&rd, 0, sizeof(rd));
	if (!data)
		goto out;
	rc = STORE_ECORRUPT;
	if (p->segs[seg].state == SEG_CKPT || p->segs[next].state == SEG_CKPT)
		goto out;
	p->segs[seg].state = SEG_LOG;   /* the log tail needs these until the next checkpoint */
	rc = reader_start(&rd, p, seg, off, next, prev);
	if (rc == 0) {
		/* the address table's half of applying on a second thread: on
		 * error it all runs here */
		store_addr_defer_start(&p->addr);
		rc = replay_walk(p, &rd, data, &seg, &off, &next, &prev);
		store_addr_defer_stop(&p->addr);
		if (rc == 0 && p->addr.err)
			rc = p->addr.err == -ENOMEM ? -ENOMEM : STORE_ECORRUPT;
	}
	reader_stop(&rd);
	if (rc == 0)
		rc = replay_check_end(p, seg, off, next, prev, data, rd.slot[0].buf);
	/* Make what was read back durable before new records vouch for it. */
	if (rc == 0 && !p->read_only)
		rc = p->be->ops->write_sync(p->be, NULL, 0, 0);
out:
	reader_free(&rd);
	free(data);
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

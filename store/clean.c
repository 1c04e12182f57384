/* store/clean.c: the segment cleaner.
 *
 * Overwritten data leaves dead sectors behind in the segments it was
 * written to; a segment comes back only when none of its data is live. The
 * cleaner makes segments dead on purpose: it copies their live data
 * elsewhere and frees them.
 *
 * Shared data: a block may be referenced by a volume, 100 snapshots and 500
 * clones. None of their maps changes when it moves: maps hold log addresses,
 * and the address table (store/addr.h) is the one place that says where a
 * log address is on the device. Moving data is one update there, whatever
 * references it.
 *
 * One step, one victim at a time:
 *
 *   pick ──▶ read the victim's live runs ──▶ write them to a cold segment
 *   as records outside the log's chain (FMT_ENT_COLD), flushed ──▶ log a
 *   MOVE record in the chain ──(durable, applied in order: D3)──▶ the table
 *   points at the copies; the victim has no live data and is freed.
 *
 * A crash before the MOVE is durable leaves the table pointing at the
 * victim, which was not freed: the copies are garbage in a segment with no
 * live data. Replaying the MOVE moves only the parts still live at that
 * point of the log, the same parts as at run time.
 *
 * Choice: the segment with the least live data (greedy), the older first
 * among equals. Cold data is copied into segments of its own, oldest first,
 * never mixed with fresh writes: data that survived cleaning tends to
 * survive again, so cold segments stay full and hot ones empty out by
 * themselves (hot/cold separation). Rosenblum and Ousterhout's cost-benefit,
 * (1 - u) * age / (1 + u) with age the records since the segment was last
 * written, measured worse than greedy here on uniform, 90/10 and 95/5
 * overwrites (store-bench --test cleaner): a copy's segment looks young
 * although its data is old, and dating copies by their data's age made it
 * worse still. Getting age right (several cold streams by age, as in
 * multi-log cleaners) is the open work to bring skewed write amplification
 * down.
 *
 * Which segments may go: not the log's head, not one filling, none with
 * reads in flight, and none holding records the next replay needs (written
 * after the durable checkpoint: the replay walks them). When only such
 * segments could give space back, the cleaner asks for a checkpoint.
 * A victim is freed only when nothing unflushed could undo its death.
 *
 * Pacing: it starts when free segments fall under a low mark and stops
 * above a high one; one step at a time, so foreground writes share the
 * device with at most one victim read and one cold write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define HDR_ROOM        4096u           /* header of a cold record: 126 entries */
#define COLD_ENTS       ((HDR_ROOM - sizeof(struct fmt_rec_hdr)) / sizeof(struct fmt_rec_entry))
#define NO_SEG          UINT32_MAX

struct clean_run {
	uint64_t la, pba, to;
	uint32_t len;
};

struct cold_out {
	uint32_t         seg;
	uint32_t         off;           /* bytes into seg where this write starts */
	uint32_t         bytes;
	char            *buf;
	struct store_bio bio;
	struct iovec     iov;
};

struct store_cleaner {
	struct store_pool *p;
	bool               busy;
	uint32_t           victim;
	uint32_t           cold_seg, cold_off;
	struct clean_run  *runs;
	size_t             nruns, cap, taken;
	uint64_t           lo, hi;      /* victim sectors read */
	char              *vbuf;
	struct store_bio   rbio;
	struct iovec       riov;
	struct cold_out    out[2];
	int                pending, err;
	bool               stalled;     /* found nothing it could clean... */
	uint32_t           stalled_free; /* ...with this many free segments */
	uint32_t           retire[2];   /* cold segments filled this step */
	int                nretire;
	void             (*quiesced)(void *);
	void              *quiesced_arg;
};

static uint32_t seg_sectors(const struct store_pool *p)
{
	return p->seg_bytes / STORE_SECTOR;
}

static uint32_t low_mark(const struct store_pool *p)
{
	/* one segment of head start: every free segment held back is space
	 * the cleaner cannot spread dead data over, which costs more copies */
	return store_ckpt_reserve(p) + STORE_CLEAN_RESERVE + 1;
}

int store_clean_init(struct store_pool *p)
{
	struct store_cleaner *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->p = p;
	c->cold_seg = NO_SEG;
	p->cleaner = c;
	return 0;
}

void store_clean_fini(struct store_pool *p)
{
	struct store_cleaner *c = p->cleaner;

	if (!c)
		return;
	free(c->runs);
	free(c->vbuf);
	free(c->out[0].buf);
	free(c->out[1].buf);
	free(c);
	p->cleaner = NULL;
}

/* ---- choosing ------------------------------------------------------------ */

static bool seg_may_go(const struct store_pool *p, uint32_t s)
{
	const struct seg_info *g = &p->segs[s];

	return g->state == SEG_LOG && !g->pinned && g->readers == 0 &&
	       s != p->cur_seg && s != p->next_seg &&
	       (g->cold || g->last_seq <= p->ckpt_seq);
}

/* Frees s when it holds nothing live and no unflushed record could bring
 * its data back after a crash. */
static bool seg_try_free(struct store_pool *p, uint32_t s)
{
	if (!seg_may_go(p, s) || p->segs[s].live > 0 || p->dirty)
		return false;
	store_seg_release(p, s);
	return true;
}

#define CLEAN_U_MAX     0.97    /* fuller segments are not worth a copy */

/* Space the cleaner could give back, now or after a checkpoint, adds up to
 * a segment: writes wait for it rather than fail. */
bool store_clean_can_reclaim(const struct store_pool *p)
{
	const struct store_cleaner *c = p->cleaner;
	uint64_t dead = 0;

	/* dead space it cannot get at (no victim fits its room) does not count:
	 * writes fail for space instead of waiting for nothing */
	if (c && c->stalled && p->free_segs <= c->stalled_free && !p->ckpt && !p->ckpt_wanted)
		return false;
	for (uint32_t s = 0; s < p->nsegs; s++) {
		const struct seg_info *g = &p->segs[s];

		if (g->state == SEG_LOG && !g->pinned && s != p->cur_seg && s != p->next_seg &&
		    g->live <= CLEAN_U_MAX * seg_sectors(p))
			dead += seg_sectors(p) - g->live;
	}
	return dead >= seg_sectors(p);
}

/* The best victim with at most max_live sectors, NO_SEG when none may
 * go; *later: more space waits in segments the next checkpoint would let
 * go than in those that may go now. */
static uint32_t clean_pick(struct store_pool *p, uint64_t max_live, bool *later)
{
	uint64_t now_dead = 0, later_dead = 0;
	double best = 0;
	uint32_t pick = NO_SEG;

	for (uint32_t s = 0; s < p->nsegs; s++) {
		const struct seg_info *g = &p->segs[s];
		double u = (double)g->live / seg_sectors(p), age, score;

		if (g->state != SEG_LOG || u > CLEAN_U_MAX)
			continue;
		if (!seg_may_go(p, s)) {
			if (!g->pinned && g->last_seq > p->ckpt_seq &&
			    s != p->cur_seg && s != p->next_seg)
				later_dead += seg_sectors(p) - g->live;
			continue;
		}
		now_dead += seg_sectors(p) - g->live;
		if (g->live > max_live)
			continue;       /* its copies would not fit */
		/* greedy, older first among equals; see the top of the file */
		age = (double)(p->next_seq - g->last_seq) + 1;
		score = (1 - u) + age * 1e-12;
		if (score > best) {
			best = score;
			pick = s;
		}
	}
	*later = later_dead > now_dead;
	return pick;
}

/* Sectors of copies the cleaner can write now: what is left of its cold
 * segment and the free segments above the checkpoint's reserve, less a
 * cold record header per 8 MiB (and per segment). */
static uint64_t cold_room(const struct store_pool *p, const struct store_cleaner *c)
{
	uint64_t room = 0, per = (p->seg_bytes - 2 * HDR_ROOM) / STORE_SECTOR;

	if (c->cold_seg != NO_SEG && c->cold_off + 2 * HDR_ROOM < p->seg_bytes)
		room += (p->seg_bytes - c->cold_off - 2 * HDR_ROOM) / STORE_SECTOR;
	if (p->free_segs > store_ckpt_reserve(p))
		room += per;    /* one step takes at most one fresh segment */
	return room;
}

/* ---- collecting the victim's live runs ------------------------------------ */

static int runs_grow(struct store_cleaner *c)
{
	size_t cap = c->cap ? c->cap * 2 : 256;
	struct clean_run *v = realloc(c->runs, cap * sizeof(*v));

	if (!v)
		return -ENOMEM;
	c->runs = v;
	c->cap = cap;
	return 0;
}

static int collect_run(void *arg, uint64_t la, uint64_t len, uint64_t pba)
{
	struct store_cleaner *c = arg;

	if (c->nruns == c->cap && runs_grow(c))
		return -ENOMEM;
	c->runs[c->nruns++] = (struct clean_run){ .la = la, .pba = pba, .len = (uint32_t)len };
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int clean_collect(struct store_cleaner *c)
{
	struct store_pool *p = c->p;
	struct seg_info *g = &p->segs[c->victim];
	uint64_t lo = store_seg_sector(p, c->victim), hi = lo + seg_sectors(p);
	uint32_t n = 0;
	int rc = 0;

	/* records in seq order, each once: runs come out oldest first */
	qsort(g->recs, g->nrecs, sizeof(*g->recs), cmp_u64);
	for (uint32_t i = 0; i < g->nrecs; i++)
		if (i == 0 || g->recs[i] != g->recs[i - 1])
			g->recs[n++] = g->recs[i];
	g->nrecs = n;
	c->nruns = 0;
	for (uint32_t i = 0; i < n && !rc; i++)
		rc = store_addr_visit_record(&p->addr, g->recs[i], lo, hi, collect_run, c);
	if (rc)
		return rc;
	c->lo = hi;
	c->hi = lo;
	for (size_t i = 0; i < c->nruns; i++) {
		if (c->runs[i].pba < c->lo)
			c->lo = c->runs[i].pba;
		if (c->runs[i].pba + c->runs[i].len > c->hi)
			c->hi = c->runs[i].pba + c->runs[i].len;
	}
	c->lo &= ~(uint64_t)(STORE_BLOCK / STORE_SECTOR - 1);
	return 0;
}

/* ---- step ----------------------------------------------------------------- */

static void clean_step_end(struct store_cleaner *c)
{
	struct store_pool *p = c->p;

	/* filled cold segments stay pinned until their MOVE is applied (or
	 * abandoned): until then they look dead to a checkpoint */
	while (c->nretire > 0)
		p->segs[c->retire[--c->nretire]].pinned = 0;
	c->busy = false;
	if (c->quiesced) {
		void (*fn)(void *) = c->quiesced;

		c->quiesced = NULL;
		fn(c->quiesced_arg);
		return;
	}
	/* No kick from here: this may run inside a batch's completion, whose
	 * batch a new seal would reuse. The log's prepare watcher kicks the
	 * cleaner again before the loop sleeps. */
	(void)p;
}

static void clean_fail(struct store_cleaner *c, int err, const char *what)
{
	if (err != -ENOSPC)
		store_pool_logf(c->p, STORE_LOG_WARN, "cleaner: %s: %s", what,
		                store_strerror(err));
	clean_step_end(c);
}

static void clean_move_done(void *arg, int err)
{
	struct store_cleaner *c = arg;
	struct store_pool *p = c->p;

	if (err) {
		clean_fail(c, err, "logging the move");
		return;
	}
	if (seg_try_free(p, c->victim))
		p->st.cleaned_segments++;
	clean_step_end(c);
}

/* The copies are durable: log where they are. The MOVE goes ahead of
 * queued writes, which may be waiting for the space it frees. */
static void clean_log_move(struct store_cleaner *c)
{
	struct store_pool *p = c->p;
	size_t bytes = c->taken * sizeof(struct fmt_move);
	struct fmt_move *mv = calloc(1, (bytes + STORE_SECTOR - 1) / STORE_SECTOR * STORE_SECTOR);
	struct store_req *r = calloc(1, sizeof(*r));

	if (!mv || !r) {
		free(mv);
		free(r);
		clean_fail(c, -ENOMEM, "logging the move");
		return;
	}
	for (size_t i = 0; i < c->taken; i++)
		mv[i] = (struct fmt_move){ .la = c->runs[i].la, .from = c->runs[i].pba,
		                           .to = c->runs[i].to, .len = c->runs[i].len };
	r->type = REQ_META;
	r->meta = FMT_ENT_MOVE;
	r->sectors = c->taken;
	r->data = mv;
	r->data_len = (uint32_t)((bytes + STORE_SECTOR - 1) / STORE_SECTOR * STORE_SECTOR);
	r->done = clean_move_done;
	r->arg = c;
	STAILQ_INSERT_HEAD(&p->queue, r, link);    /* sealed before the loop sleeps */
}

static void clean_write_done(struct store_bio *b)
{
	struct store_cleaner *c = b->owner;

	if (b->result && !c->err) {
		store_pool_fail(c->p, b->result, "cleaner write");
		c->err = STORE_EFAILED;
	}
	if (--c->pending > 0)
		return;
	if (c->err || c->p->closing) {
		clean_step_end(c);      /* the copies stay garbage; nothing moved */
		return;
	}
	clean_log_move(c);
}

/* Room for a cold record of at least one block of data. */
static int cold_next(struct store_cleaner *c)
{
	struct store_pool *p = c->p;

	if (c->cold_seg != NO_SEG && c->cold_off + HDR_ROOM + STORE_BLOCK <= p->seg_bytes)
		return 0;
	if (c->cold_seg != NO_SEG)
		c->retire[c->nretire++] = c->cold_seg;  /* full: cleanable like any, later */
	c->cold_seg = NO_SEG;
	if (p->free_segs <= store_ckpt_reserve(p))
		return -ENOSPC;
	if (store_seg_alloc(p, SEG_LOG, &c->cold_seg))
		return -ENOSPC;
	p->segs[c->cold_seg].cold = 1;
	p->segs[c->cold_seg].pinned = 1;
	c->cold_off = 0;
	return 0;
}

/* Lays out one cold record at buf (room bytes) from runs[*i..]: header,
 * entries, data oldest first. Returns its bytes; 0 when nothing fits. */
static uint32_t cold_record(struct store_cleaner *c, char *buf, uint32_t room,
                            uint64_t at_sector, size_t *i)
{
	struct store_pool *p = c->p;
	struct fmt_rec_hdr *h = (void *)buf;
	struct fmt_rec_entry *e = (void *)(h + 1);
	uint64_t data_pba = at_sector + HDR_ROOM / STORE_SECTOR;
	uint32_t n = 0, data = 0, max = room > HDR_ROOM ? (room - HDR_ROOM) / STORE_SECTOR : 0;

	if (max > STORE_BATCH_MAX_BYTES / STORE_SECTOR)
		max = STORE_BATCH_MAX_BYTES / STORE_SECTOR;
	memset(buf, 0, HDR_ROOM);
	while (*i < c->nruns && n < COLD_ENTS && data < max) {
		struct clean_run *r = &c->runs[*i];
		uint32_t take = r->len < max - data ? r->len : max - data;

		if (take < r->len) {    /* the rest goes in the next record */
			if (c->nruns == c->cap && runs_grow(c))
				break;  /* this record ends here; the rest waits */
			r = &c->runs[*i];
			memmove(&c->runs[*i + 1], &c->runs[*i], (c->nruns - *i) * sizeof(*r));
			c->nruns++;
			c->runs[*i + 1].la += take;
			c->runs[*i + 1].pba += take;
			c->runs[*i + 1].len -= take;
			r->len = take;
		}
		memcpy(buf + HDR_ROOM + (size_t)data * STORE_SECTOR,
		       c->vbuf + (r->pba - c->lo) * STORE_SECTOR, (size_t)take * STORE_SECTOR);
		e[n] = (struct fmt_rec_entry){ .type = FMT_ENT_COLD, .lba = r->la,
		                               .sectors = take, .data_off = data };
		r->to = data_pba + data;
		data += take;
		n++;
		(*i)++;
	}
	if (n == 0)
		return 0;
	h->magic = FMT_REC_MAGIC;
	memcpy(h->uuid, p->uuid, 16);
	h->seq = p->next_seq++;         /* unique; the chain skips it */
	h->prev_seq = h->seq - 1;       /* never a chain record's: seqs only grow */
	h->hdr_bytes = HDR_ROOM;
	h->data_bytes = (data * STORE_SECTOR + STORE_BLOCK - 1) & ~(STORE_BLOCK - 1);
	memset(buf + HDR_ROOM + (size_t)data * STORE_SECTOR, 0,
	       h->data_bytes - (size_t)data * STORE_SECTOR);
	h->n_entries = n;
	h->data_crc = store_crc(buf + HDR_ROOM, h->data_bytes);
	h->hdr_crc = store_crc(h, HDR_ROOM);
	return HDR_ROOM + h->data_bytes;
}

/* Fills up to two cold segments with the runs; c->taken: how many went. */
static int clean_write(struct store_cleaner *c)
{
	struct store_pool *p = c->p;
	size_t i = 0;
	int used = 0, rc = 0;

	for (int k = 0; k < 2 && i < c->nruns; k++) {
		struct cold_out *o = &c->out[k];

		if ((rc = cold_next(c)))
			break;
		if (!o->buf && !(o->buf = store_alloc_aligned(p->seg_bytes)))
			return -ENOMEM;
		o->seg = c->cold_seg;
		o->off = c->cold_off;
		o->bytes = 0;
		while (i < c->nruns) {
			uint64_t at = store_seg_sector(p, o->seg) + (o->off + o->bytes) / STORE_SECTOR;
			uint32_t n = cold_record(c, o->buf + o->bytes, p->seg_bytes - o->off - o->bytes,
			                         at, &i);

			if (n == 0)
				break;
			o->bytes += n;
		}
		c->cold_off += o->bytes;
		if (o->bytes)
			used++;
	}
	c->taken = i;
	if (used == 0)
		return rc ? rc : -ENOSPC;
	c->pending = used;
	c->err = 0;
	for (int k = 0; k < used; k++) {
		struct cold_out *o = &c->out[k];

		memset(&o->bio, 0, sizeof(o->bio));
		o->iov = (struct iovec){ .iov_base = o->buf, .iov_len = o->bytes };
		o->bio.op = STORE_BIO_WRITE;
		o->bio.flush = true;    /* durable before the MOVE names them */
		o->bio.offset = FMT_DATA_OFF + (uint64_t)o->seg * p->seg_bytes + o->off;
		o->bio.iov = &o->iov;
		o->bio.iovcnt = 1;
		o->bio.done = clean_write_done;
		o->bio.owner = c;
		p->segs[o->seg].last_seq = p->last_seq;   /* its age */
		p->st.device_write_bytes += o->bytes;
		p->st.cleaner_write_bytes += o->bytes;
		p->st.flushes++;
		p->be->ops->submit(p->be, &o->bio);
	}
	return 0;
}

static void clean_read_done(struct store_bio *b)
{
	struct store_cleaner *c = b->owner;
	struct store_pool *p = c->p;
	int rc;

	p->segs[c->victim].readers--;
	if (b->result) {
		clean_fail(c, b->result, "reading a victim");
		return;
	}
	if (p->closing || p->failed) {
		clean_step_end(c);
		return;
	}
	rc = clean_write(c);
	if (rc)
		clean_fail(c, rc, "writing copies");
}

static void clean_step(struct store_pool *p)
{
	struct store_cleaner *c = p->cleaner;
	bool later;
	int rc;

	c->victim = clean_pick(p, cold_room(p, c), &later);
	if (later && !p->ckpt && p->log_bytes_since_ckpt > 0)
		p->ckpt_wanted = true;  /* the log tail holds the most space */
	c->stalled = c->victim == NO_SEG;
	c->stalled_free = p->free_segs;
	if (c->victim == NO_SEG)
		return;
	if (seg_try_free(p, c->victim)) {
		p->st.cleaned_segments++;
		return;
	}
	if (p->segs[c->victim].live == 0)
		return;                 /* dead; freed once the log is flushed */
	rc = clean_collect(c);
	if (rc || c->nruns == 0) {
		if (!rc)                /* the index missed its data: do not loop */
			store_pool_logf(p, STORE_LOG_WARN, "cleaner: segment %u has %llu live "
			                "sectors it cannot find", c->victim,
			                (unsigned long long)p->segs[c->victim].live);
		return;
	}
	if (!c->vbuf && !(c->vbuf = store_alloc_aligned(p->seg_bytes)))
		return;
	c->busy = true;
	memset(&c->rbio, 0, sizeof(c->rbio));
	c->riov = (struct iovec){ .iov_base = c->vbuf,
	                          .iov_len = ((c->hi - c->lo) * STORE_SECTOR + STORE_BLOCK - 1) &
	                                     ~(size_t)(STORE_BLOCK - 1) };
	c->rbio.op = STORE_BIO_READ;
	c->rbio.offset = c->lo * STORE_SECTOR;
	c->rbio.iov = &c->riov;
	c->rbio.iovcnt = 1;
	c->rbio.done = clean_read_done;
	c->rbio.owner = c;
	p->segs[c->victim].readers++;
	p->be->ops->submit(p->be, &c->rbio);
}

bool store_clean_busy(const struct store_pool *p)
{
	return p->cleaner && p->cleaner->busy;
}

bool store_clean_active(const struct store_pool *p)
{
	return store_clean_busy(p) || p->free_segs < low_mark(p);
}

void store_clean_kick(struct store_pool *p)
{
	struct store_cleaner *c = p->cleaner;

	if (!c || c->busy || p->failed || p->closing || p->read_only)
		return;
	/* dead segments go at once; then clean while free space is short */
	for (int guard = 0; guard < 64 && !c->busy && p->free_segs < low_mark(p); guard++) {
		uint32_t before = p->free_segs;

		clean_step(p);
		if (!c->busy && p->free_segs == before)
			break;
	}
}

void store_clean_quiesce(struct store_pool *p, void (*done)(void *), void *arg)
{
	struct store_cleaner *c = p->cleaner;

	if (!c || !c->busy) {
		done(arg);
		return;
	}
	c->quiesced = done;
	c->quiesced_arg = arg;
}

/* ---- applying a MOVE ---------------------------------------------------------- */

int store_clean_apply(struct store_pool *p, const struct fmt_rec_entry *e,
                      const char *data, uint64_t data_sectors)
{
	if (e->data_off > data_sectors || e->sectors > (data_sectors - e->data_off) *
	                                               STORE_SECTOR / sizeof(struct fmt_move))
		return STORE_ECORRUPT;
	for (uint64_t i = 0; i < e->sectors; i++) {
		struct fmt_move mv;

		memcpy(&mv, data + (size_t)e->data_off * STORE_SECTOR + i * sizeof(mv), sizeof(mv));
		if (mv.len == 0 || !store_pba_ok(p, mv.from, mv.len) || !store_pba_ok(p, mv.to, mv.len))
			return STORE_ECORRUPT;
		store_addr_move(&p->addr, mv.la, mv.len, mv.from, mv.to);
	}
	return p->addr.err ? (p->addr.err == -ENOMEM ? -ENOMEM : STORE_ECORRUPT) : 0;
}

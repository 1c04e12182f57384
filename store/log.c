/* store/log.c: the one log every volume writes to, group commit, and replay.
 *
 * Requests (writes, unmaps, metadata changes, flushes) queue up while the
 * loop runs. Just before the loop sleeps (an ev_prepare watcher, Redis's
 * beforeSleep), everything queued is sealed into one record — header,
 * entries, data, CRC32C — and written with one device write and, when any of
 * it must be durable, one flush. While that batch is in flight the next one
 * grows, so batches get larger exactly when the load is heavy; a second
 * batch may go out while the first one's flush runs (D2). The record format
 * is in store/format.h.
 *
 * Completion of a batch applies its entries to the maps in order (D3) and
 * completes the requests it finished: write-through ones after the flush
 * (D1), write-back ones after the write.
 *
 * Space: the log moves from segment to segment; the segment after the
 * current one is chosen in advance (next_seg, named in every record) so replay
 * can follow. When free segments fall to what a checkpoint needs, the log
 * asks for a checkpoint (which frees segments with no live data) and, if that
 * cannot help, fails writes with -ENOSPC; unmaps and metadata changes may
 * still use the reserve, so space can be freed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

#define HDR_MAX_BYTES  (((sizeof(struct fmt_rec_hdr) + STORE_BATCH_MAX_ENTRIES * \
                          sizeof(struct fmt_rec_entry)) + 4095) & ~(size_t)4095)
#define REC_MAX_BYTES  (HDR_MAX_BYTES + STORE_BATCH_MAX_BYTES)

static size_t round4k(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

static uint64_t seg_offset(const struct store_pool *p, uint32_t seg)
{
	return FMT_DATA_OFF + (uint64_t)seg * p->seg_bytes;
}

bool store_req_needs_flush(const struct store_req *r)
{
	switch (r->type) {
	case REQ_WRITE:
		return !r->vol->write_back || (r->flags & STORE_WRITE_FUA);
	case REQ_UNMAP:
	case REQ_COPY:
		return !r->vol->write_back;
	default:
		return true;
	}
}

/* ---- failure ------------------------------------------------------------ */

static void log_fail_queue(struct store_pool *p, int err, bool writes_only)
{
	struct req_list keep = STAILQ_HEAD_INITIALIZER(keep);

	while (!STAILQ_EMPTY(&p->queue)) {
		struct store_req *r = STAILQ_FIRST(&p->queue);

		STAILQ_REMOVE_HEAD(&p->queue, link);
		if (writes_only && r->type != REQ_WRITE) {
			STAILQ_INSERT_TAIL(&keep, r, link);
		} else if (r->pieces > 0) {
			/* part of it is in a batch in flight: that batch completes it */
			r->err = err;
			r->sealed = r->sectors;
		} else {
			store_req_defer(p, r, err);
		}
	}
	STAILQ_CONCAT(&p->queue, &keep);
}

/* D5: a failed pool completes everything that waits, checkpoints too. */
static void log_fail_all(struct store_pool *p)
{
	log_fail_queue(p, STORE_EFAILED, false);
	while (!p->ckpt && !STAILQ_EMPTY(&p->ckpt_waiters)) {
		struct store_req *r = STAILQ_FIRST(&p->ckpt_waiters);

		STAILQ_REMOVE_HEAD(&p->ckpt_waiters, link);
		store_req_defer(p, r, STORE_EFAILED);
	}
	p->ckpt_wanted = false;
}

/* ---- space -------------------------------------------------------------- */

static bool log_has_dead_segments(const struct store_pool *p)
{
	for (uint32_t s = 0; s < p->nsegs; s++) {
		const struct seg_info *g = &p->segs[s];

		if (g->state == SEG_LOG && g->live == 0 && g->readers == 0 && !g->pinned &&
		    s != p->cur_seg && s != p->next_seg)
			return true;
	}
	return false;
}

static bool queue_has_writes(const struct store_pool *p)
{
	const struct store_req *r;

	STAILQ_FOREACH(r, &p->queue, link)
		if (r->type == REQ_WRITE)
			return true;
	return false;
}

/* Moves the log to next_seg. 0, or -EAGAIN when a checkpoint or the
 * cleaner must run first, or -ENOSPC. The last segments are the
 * checkpoint's and the cleaner's: writes wait for the cleaner while it can
 * give space back, and fail only when nothing can. */
static int log_next_segment(struct store_pool *p)
{
	uint32_t seg;
	int rc;

	if (p->free_segs <= store_ckpt_reserve(p) + STORE_CLEAN_RESERVE) {
		bool head_is_meta = !STAILQ_EMPTY(&p->queue) &&
		                    STAILQ_FIRST(&p->queue)->type == REQ_META;

		if (log_has_dead_segments(p)) {
			p->ckpt_wanted = true;
			return -EAGAIN;
		}
		/* The cleaner's MOVE frees space: it may take the reserve's
		 * slack segment (a checkpoint needs one less than reserved). */
		if (head_is_meta && p->free_segs >= store_ckpt_reserve(p))
			goto take;
		/* a running checkpoint or cleaning step is about to give space */
		if (store_clean_can_reclaim(p) && (p->free_segs > store_ckpt_reserve(p) ||
		                                   p->ckpt || store_clean_busy(p))) {
			store_clean_kick(p);
			return -EAGAIN;
		}
		if (queue_has_writes(p)) {
			store_pool_logf(p, STORE_LOG_WARN, "pool full: failing writes "
			                "with out of space until space is freed");
			log_fail_queue(p, -ENOSPC, true);
		}
		if (p->free_segs == 0 || STAILQ_EMPTY(&p->queue))
			return -ENOSPC;
	}
take:
	rc = store_seg_alloc(p, SEG_LOG, &seg);
	if (rc)
		return rc;
	p->cur_seg = p->next_seg;
	p->cur_off = 0;
	p->next_seg = seg;
	return 0;
}

/* ---- sealing a batch into a record ---------------------------------------- */

static int batch_reserve(struct batch *b, size_t bytes)
{
	void *buf;

	if (b->buf_cap >= bytes)
		return 0;
	buf = store_alloc_aligned(bytes);
	if (!buf)
		return -ENOMEM;
	free(b->buf);
	b->buf = buf;
	b->buf_cap = bytes;
	if (!b->ents) {
		b->ents = calloc(STORE_BATCH_MAX_ENTRIES, sizeof(*b->ents));
		if (!b->ents)
			return -ENOMEM;
	}
	return 0;
}

/* Sectors of record data request r wants now (a write may be split). */
static uint64_t req_data_sectors(const struct store_req *r)
{
	if (r->type == REQ_WRITE)
		return r->sectors - r->sealed;
	if (r->data)
		return r->data_len / STORE_SECTOR;      /* names, a copy's source */
	if (r->type == REQ_META && r->blob)
		return (r->key_len + r->value_len + STORE_SECTOR - 1) / STORE_SECTOR;
	return 0;
}

/* Picks requests from the queue head that fit in room bytes. Returns the
 * data sectors used; entries go to b->ents. */
static uint64_t batch_pick(struct store_pool *p, struct batch *b, size_t room)
{
	uint64_t data = 0;

	while (!STAILQ_EMPTY(&p->queue) && b->n < STORE_BATCH_MAX_ENTRIES) {
		struct store_req *r = STAILQ_FIRST(&p->queue);
		size_t hdr = round4k(sizeof(struct fmt_rec_hdr) +
		                     (b->n + 1) * sizeof(struct fmt_rec_entry));
		uint64_t want = req_data_sectors(r), fit;
		struct batch_ent *be;
		bool full = false;

		/* under the mark, writes wait for the cleaner while it can give
		 * space back: the segments left are for its copies and MOVEs */
		if (r->type == REQ_WRITE && p->free_segs < store_ckpt_reserve(p) + STORE_CLEAN_RESERVE &&
		    store_clean_can_reclaim(p))
			break;
		if (r->type == REQ_FLUSH) {
			STAILQ_REMOVE_HEAD(&p->queue, link);
			STAILQ_INSERT_TAIL(&b->flushes, r, link);
			b->flush = true;
			continue;
		}
		if (hdr + STORE_BLOCK > room)
			break;
		if (r->dd) {            /* inline dedup: references, then data */
			uint64_t la, refs;

			if (store_dedup_waiting(r))
				break;  /* compares run: r keeps its place */
			if ((refs = store_dedup_refs(r, r->sealed, &la)) > 0) {
				be = &b->ents[b->n++];
				memset(be, 0, sizeof(*be));
				be->req = r;
				be->e = (struct fmt_rec_entry){ .type = FMT_ENT_REF,
					.vol = r->vol->id, .lba = r->lba + r->sealed,
					.sectors = refs, .data_off = (uint32_t)la,
					.reserved = (uint32_t)(la >> 32) };
				r->pieces++;
				if (store_req_needs_flush(r))
					b->flush = true;
				r->sealed += refs;
				if (r->sealed == r->sectors)
					STAILQ_REMOVE_HEAD(&p->queue, link);
				continue;
			}
			want = store_dedup_data(r, r->sealed);
		}
		fit = (room - hdr) / STORE_SECTOR;
		fit = fit > data ? fit - data : 0;
		if (want > fit && (r->type != REQ_WRITE || fit == 0))
			break;
		if (want > fit) {
			/* The rest of this write goes in the next record. Cut it
			 * where a 4 KiB block of the volume ends: a power cut
			 * between the two records must not tear a block (the
			 * LUN's physical block is 4 KiB). */
			uint64_t cut = (r->lba + r->sealed + fit) % (STORE_BLOCK / STORE_SECTOR);

			if (fit <= cut)
				break;
			want = fit - cut;
			full = true;
		}
		be = &b->ents[b->n++];
		memset(be, 0, sizeof(*be));
		be->req = r;
		be->e.vol = r->vol ? r->vol->id : 0;
		be->e.data_off = (uint32_t)data;
		data += want;
		r->pieces++;
		if (store_req_needs_flush(r))
			b->flush = true;
		if (r->type == REQ_WRITE) {
			be->e.type = FMT_ENT_WRITE;
			be->e.lba = r->lba + r->sealed;
			be->e.sectors = want;
			r->sealed += want;
			if (r->sealed < r->sectors && full)
				break;  /* record full: r stays at the head */
			if (r->sealed < r->sectors)
				continue;       /* a reference follows (dedup) */
		} else if (r->type == REQ_UNMAP || r->type == REQ_COPY) {
			be->e.type = r->type == REQ_UNMAP ? FMT_ENT_UNMAP : FMT_ENT_COPY;
			be->e.lba = r->lba;
			be->e.sectors = r->sectors;
		} else {
			be->e.type = r->meta;
			be->e.flags = r->meta_flags;
			be->e.sectors = r->blob ? r->value_len : r->sectors;
			if (r->blob)
				be->e.name_len = (uint16_t)r->key_len;
			else if (r->meta == FMT_ENT_ROLLBACK || r->meta == FMT_ENT_CLONE) {
				be->e.lba = r->sectors;         /* the snapshot's id */
				be->e.sectors = 0;
			}
		}
		STAILQ_REMOVE_HEAD(&p->queue, link);
	}
	return data;
}

/* Lays out header, entries and data in b->buf and computes both CRCs. */
static void batch_build(struct store_pool *p, struct batch *b, uint64_t data_sectors)
{
	struct fmt_rec_hdr *h = b->buf;
	struct fmt_rec_entry *ents = (struct fmt_rec_entry *)(h + 1);
	char *data;
	uint64_t data_pba;

	b->hdr_bytes = (uint32_t)round4k(sizeof(*h) + b->n * sizeof(*ents));
	b->data_bytes = (uint32_t)round4k(data_sectors * STORE_SECTOR);
	memset(b->buf, 0, b->hdr_bytes);
	memset((char *)b->buf + b->hdr_bytes + data_sectors * STORE_SECTOR, 0,
	       b->data_bytes - data_sectors * STORE_SECTOR);
	data = (char *)b->buf + b->hdr_bytes;
	data_pba = store_seg_sector(p, b->seg) + (p->cur_off + b->hdr_bytes) / STORE_SECTOR;
	for (uint32_t i = 0; i < b->n; i++) {
		struct batch_ent *be = &b->ents[i];
		struct store_req *r = be->req;
		char *dst = data + (size_t)be->e.data_off * STORE_SECTOR;

		ents[i] = be->e;
		be->pba = data_pba + be->e.data_off;
		if (be->e.type == FMT_ENT_WRITE)
			store_iov_to_buf(r->iov, r->iovcnt,
			                 (be->e.lba - r->lba) * STORE_SECTOR, dst,
			                 be->e.sectors * STORE_SECTOR);
		else if (r->data)
			memcpy(dst, r->data, r->data_len);
		else if (r->blob) {
			size_t n = r->key_len + r->value_len;

			memcpy(dst, r->blob, n);
			memset(dst + n, 0, (STORE_SECTOR - n % STORE_SECTOR) % STORE_SECTOR);
		}
	}
	h->magic = FMT_REC_MAGIC;
	memcpy(h->uuid, p->uuid, 16);
	h->seq = b->seq;
	h->prev_seq = p->last_seq;
	h->flushed_seq = p->flushed_seq;
	h->hdr_bytes = b->hdr_bytes;
	h->data_bytes = b->data_bytes;
	h->n_entries = b->n;
	h->next_seg = p->next_seg;
	h->data_crc = store_crc(data, b->data_bytes);
	h->hdr_crc = 0;
	h->hdr_crc = store_crc(h, b->hdr_bytes);
}

static void log_batch_done(struct store_bio *bio);

static void batch_submit(struct store_pool *p, struct batch *b)
{
	size_t len = b->has_record ? (size_t)b->hdr_bytes + b->data_bytes : 0;

	memset(&b->bio, 0, sizeof(b->bio));
	b->iov.iov_base = b->buf;
	b->iov.iov_len = len;
	b->bio.op = b->has_record ? STORE_BIO_WRITE : STORE_BIO_FLUSH;
	b->bio.flush = b->flush;
	b->bio.offset = seg_offset(p, p->cur_seg) + p->cur_off;
	b->bio.iov = &b->iov;
	b->bio.iovcnt = b->has_record ? 1 : 0;
	b->bio.done = log_batch_done;
	b->bio.owner = p;
	if (b->has_record) {
		p->cur_off += (uint32_t)len;
		p->segs[p->cur_seg].last_seq = b->seq;
		p->last_seq = b->seq;
		p->next_seq = b->seq + 1;
		p->st.batches++;
		p->st.device_write_bytes += len;
		p->st.log_write_bytes += len;
		p->log_bytes_since_ckpt += len;
	}
	if (b->flush)
		p->st.flushes++;
	b->completed = false;
	p->inflight++;
	p->be->ops->submit(p->be, &b->bio);
}

/* Room for the next record in the current segment, moving on if it is
 * nearly full. 0 when there is no room to be had now. */
static size_t log_room(struct store_pool *p)
{
	size_t room = p->seg_bytes - p->cur_off;
	/* a segment is filled to its end: a batch that does not fit is cut
	 * (one more record header) rather than leaving the tail empty, since
	 * empty tails are space the cleaner cannot use (higher utilization,
	 * more copies); only a tail without room for a header and a block
	 * is left, or one too small for the next request if that one cannot
	 * be cut (metadata, unmaps, copies: only writes can) */
	const struct store_req *r = STAILQ_FIRST(&p->queue);
	size_t least = 2 * STORE_BLOCK;         /* batch_pick's smallest record */

	if (r && r->type != REQ_WRITE && r->type != REQ_FLUSH &&
	    req_data_sectors(r) * STORE_SECTOR > STORE_BLOCK)
		least = STORE_BLOCK + round4k(req_data_sectors(r) * STORE_SECTOR);

	if (room < least) {
		int rc = log_next_segment(p);

		if (rc == -EAGAIN)
			return 0;
		if (rc) {
			log_fail_queue(p, rc, false);
			return 0;
		}
		room = p->seg_bytes;
	}
	return room < REC_MAX_BYTES ? room : REC_MAX_BYTES;
}

/* With no log space to be had now, only flushes can go: they need none. */
static void batch_take_flushes(struct store_pool *p, struct batch *b)
{
	struct req_list keep = STAILQ_HEAD_INITIALIZER(keep);

	while (!STAILQ_EMPTY(&p->queue)) {
		struct store_req *r = STAILQ_FIRST(&p->queue);

		STAILQ_REMOVE_HEAD(&p->queue, link);
		if (r->type == REQ_FLUSH) {
			STAILQ_INSERT_TAIL(&b->flushes, r, link);
			b->flush = true;
		} else {
			STAILQ_INSERT_TAIL(&keep, r, link);
		}
	}
	STAILQ_CONCAT(&p->queue, &keep);
}

/* Bytes of record data the queue holds. */
static uint64_t queue_bytes(const struct store_pool *p)
{
	const struct store_req *r;
	uint64_t n = 0;

	STAILQ_FOREACH(r, &p->queue, link)
		n += req_data_sectors(r) * STORE_SECTOR + sizeof(struct fmt_rec_entry);
	return n;
}

/* With the log idle and a deep queue, the first batch takes half of it so
 * that the second can be written while the first one's flush runs (D2). */
static size_t log_split_room(const struct store_pool *p, size_t room)
{
	uint64_t half = queue_bytes(p) / 2 + 2 * STORE_BLOCK;

	if (p->inflight > 0 || half < (256u << 10) || half >= room)
		return room;
	return (size_t)half & ~(size_t)(STORE_BLOCK - 1);
}

/* Seals the queue into the next batch and submits it. False when nothing
 * was submitted. */
static bool log_seal(struct store_pool *p)
{
	struct batch *b = &p->batch[(p->head + p->inflight) % 2];
	size_t room = log_room(p);
	uint64_t data = 0;

	b->n = 0;
	b->flush = false;
	STAILQ_INIT(&b->flushes);
	if (room && batch_reserve(b, room)) {
		store_pool_fail(p, -ENOMEM, "log buffer");
		log_fail_queue(p, STORE_EFAILED, false);
		return false;
	}
	if (room)
		data = batch_pick(p, b, log_split_room(p, room));
	else
		batch_take_flushes(p, b);
	b->has_record = b->n > 0;
	b->seg = p->cur_seg;
	b->seq = p->next_seq;
	if (p->inflight > 0)
		b->flush = true;        /* D2: a batch beside another needs its own flush */
	b->covers = b->has_record ? b->seq : p->last_seq;
	if (b->has_record) {
		batch_build(p, b, data);
	} else if (!b->flush || !p->dirty) {
		/* nothing unflushed: the flushes are already true */
		while (!STAILQ_EMPTY(&b->flushes)) {
			struct store_req *r = STAILQ_FIRST(&b->flushes);

			STAILQ_REMOVE_HEAD(&b->flushes, link);
			store_req_defer(p, r, 0);
		}
		return false;
	}
	batch_submit(p, b);
	return true;
}

/* ---- completion ------------------------------------------------------------ */

void store_log_piece_done(struct store_pool *p, struct store_req *r, int err)
{
	if (--r->pieces > 0)
		return;
	if (!err)
		err = r->err;           /* the queue failed the rest of it */
	if (r->type == REQ_WRITE && r->sealed < r->sectors && !err)
		return;                 /* the rest is still queued */
	if (r->type == REQ_WRITE && r->sealed < r->sectors)
		STAILQ_REMOVE(&p->queue, r, store_req, link);
	store_req_complete(p, r, err);
}

/* Applies and acknowledges a batch whose I/O is done and whose predecessors
 * are finished (D2, D3). */
static void batch_finish(struct store_pool *p, struct batch *b)
{
	int err = b->bio.result;

	if (err) {
		store_pool_fail(p, err, "log write or flush");
		err = STORE_EFAILED;
	} else {
		p->dirty = !b->flush;
		if (b->flush)
			p->flushed_seq = b->covers;
	}
	for (uint32_t i = 0; i < b->n && !err; i++) {
		struct batch_ent *be = &b->ents[i];
		struct store_req *r = be->req;
		int rc = r->blob ? store_meta_apply(p, r->blob, r->key_len, r->blob + r->key_len,
		                                    r->value_len, r->meta == FMT_ENT_META_PUT)
		                 : store_vol_apply(p, &be->e, (char *)b->buf + b->hdr_bytes,
		                                   b->data_bytes / STORE_SECTOR, b->seq, be->pba,
		                                   false);

		if (rc) {       /* the record is durable but the map cannot take it */
			store_pool_fail(p, rc, "map update");
			err = STORE_EFAILED;
		} else if (r->dd) {
			store_dedup_applied(p, r, &be->e, b->seq);
		}
	}
	for (uint32_t i = 0; i < b->n; i++)
		store_log_piece_done(p, b->ents[i].req, err);
	b->n = 0;
	while (!STAILQ_EMPTY(&b->flushes)) {
		struct store_req *r = STAILQ_FIRST(&b->flushes);

		STAILQ_REMOVE_HEAD(&b->flushes, link);
		store_req_complete(p, r, err);
	}
}

static void log_batch_done(struct store_bio *bio)
{
	struct store_pool *p = bio->owner;
	struct batch *b = (struct batch *)((char *)bio - offsetof(struct batch, bio));

	b->completed = true;
	while (p->inflight > 0 && p->batch[p->head].completed) {
		struct batch *h = &p->batch[p->head];

		p->head = (p->head + 1) % 2;
		p->inflight--;
		batch_finish(p, h);
	}
	if (p->failed && p->inflight == 0)
		log_fail_all(p);
	if (p->log_bytes_since_ckpt >= p->ckpt_log_bytes)
		p->ckpt_wanted = true;
	store_log_kick(p);
}

/* ---- the writer's watchers ------------------------------------------------ */

/* A second batch may go out beside a flushing one, unless a checkpoint
 * waits for the log to be still (D4). */
static bool log_can_seal(const struct store_pool *p)
{
	if (p->inflight == 0)
		return true;
	return p->inflight == 1 && p->batch[p->head].flush && !p->ckpt_wanted;
}

void store_log_kick(struct store_pool *p)
{
	if (p->failed) {
		if (p->inflight == 0)
			log_fail_all(p);
		return;
	}
	if (p->inflight == 0 && p->ckpt_wanted && !p->ckpt && !p->final_ckpt_done)
		store_ckpt_start(p);    /* D4: captured with no batch in flight */
	while (!STAILQ_EMPTY(&p->queue) && log_can_seal(p))
		if (!log_seal(p))
			break;
	/* sealing may have found the log needs a checkpoint to go on */
	if (p->inflight == 0 && p->ckpt_wanted && !p->ckpt && !p->final_ckpt_done)
		store_ckpt_start(p);
	store_clean_kick(p);
}

void store_log_enqueue(struct store_pool *p, struct store_req *r)
{
	STAILQ_INSERT_TAIL(&p->queue, r, link);
}

static void log_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	store_log_kick(w->data);
}

static void log_ckpt_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct store_pool *p = w->data;

	(void)loop;
	(void)revents;
	if (p->log_bytes_since_ckpt > 0)
		p->ckpt_wanted = true;
}

int store_log_start(struct store_pool *p)
{
	ev_prepare_init(&p->prepare, log_prepare_cb);
	p->prepare.data = p;
	ev_prepare_start(p->loop, &p->prepare);
	ev_timer_init(&p->ckpt_timer, log_ckpt_timer_cb, p->ckpt_secs, p->ckpt_secs);
	p->ckpt_timer.data = p;
	if (!p->read_only) {
		ev_timer_start(p->loop, &p->ckpt_timer);
		ev_unref(p->loop);      /* a periodic checkpoint alone keeps nothing alive */
	}
	return 0;
}

void store_log_stop(struct store_pool *p)
{
	ev_prepare_stop(p->loop, &p->prepare);
	if (ev_is_active(&p->ckpt_timer)) {
		ev_ref(p->loop);
		ev_timer_stop(p->loop, &p->ckpt_timer);
	}
	if (ev_is_active(&p->deferred_w))
		ev_idle_stop(p->loop, &p->deferred_w);
	for (int i = 0; i < 2; i++) {
		free(p->batch[i].buf);
		free(p->batch[i].ents);
	}
}

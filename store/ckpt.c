/* store/ckpt.c: checkpoints: the maps and volume table written whole, so
 * that recovery replays only the log after them.
 *
 * A checkpoint is captured with no batch in flight (D4) at log position P
 * (the next record's seq, segment and offset). Its payload (format.h:
 * fmt_ckpt_hdr, then per volume fmt_ckpt_vol and its extents) goes to free
 * segments; once those writes complete, the root naming them and P is
 * written to slot generation % 2 and flushed. Only then are the previous
 * checkpoint's segments and the segments that were dead at capture freed.
 *
 * The loop is held only for what is small: the volume records and the
 * metadata are copied at capture. The maps, which may be gigabytes of
 * nodes, are frozen then (map.h: struct store_map_freeze) and the address
 * table's save begun (addr.h: struct addr_save); both are saved a slice at
 * a time from the loop's prepare and idle watchers while writes go on,
 * copying the map nodes they change and saving the address records they
 * change first. Then the payload is put together and summed, a slice at a
 * time too. Each slice stops after
 * store_ckpt_slice_ns, so no loop iteration waits on a checkpoint for
 * longer.
 *
 * A crash at any point leaves the previous root and everything it needs
 * intact: its payload and log tail are freed only after the new root is
 * durable. A root whose payload fails its CRC is skipped for the older one.
 */
#include <errno.h>
#include <isa-l/crc.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/internal.h"

/* Of the loop's time, per slice; nodes saved between looks at the clock.
 * Tests make both tiny to spread a small checkpoint over many slices. */
uint64_t store_ckpt_slice_ns = 250000;
unsigned store_ckpt_slice_nodes = 16;
#define CKPT_CRC_STEP    (1u << 20)     /* bytes copied or summed between looks at the clock */
#define CKPT_BUCKET_STEP 64             /* address buckets saved between looks at the clock */
#define CKPT_REAP_STEP   256            /* retired nodes freed per slice */

enum ckpt_phase { CKPT_SAVE, CKPT_COPY, CKPT_CRC, CKPT_WRITE };

struct ckpt {
	struct store_pool *p;
	enum ckpt_phase    phase;
	/* captured with the log still: position P and what is small */
	uint64_t           log_seq;
	uint32_t           log_seg, log_off, next_seg;
	uint32_t           nvols, at;   /* volumes in the payload, the one being saved */
	struct fmt_ckpt_vol *vols;      /* their records; roots as they are saved */
	struct store_map_node **roots;  /* their maps' roots at capture (frozen) */
	char              *tail;        /* address table and metadata, serialised */
	size_t             tail_len, addr_len;
	size_t             tail_at, tail_off; /* copied of it, where to in the payload */
	uint64_t           n_addr_recs;
	uint32_t           n_meta, next_vol_id;
	struct store_map_saver sv;      /* writes the nodes into the payload */
	size_t             crc_at;
	uint32_t           crc;
	ev_prepare         prep;        /* slices: every loop iteration ... */
	ev_idle            idle;        /* ... and while the loop has nothing else */
	/* the payload and its writing */
	void              *payload;
	size_t             bytes;       /* payload, before padding */
	uint32_t           segs[FMT_ROOT_SEGS_MAX];
	uint32_t           nsegs;
	uint32_t          *dead;        /* segments dead at capture */
	uint32_t           ndead;
	struct fmt_root   *root;
	int                pending;
	int                err;
	struct req_list    waiters;
	struct store_bio   bio[FMT_ROOT_SEGS_MAX];
	struct iovec       iov[FMT_ROOT_SEGS_MAX];
	struct store_bio   flush_bio;   /* before the root: payload and log durable */
	struct store_bio   root_bio;
	struct iovec       root_iov;
};

/* ---- serialising ------------------------------------------------------------ */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void ckpt_vol_record(const struct store_vol *v, uint32_t root, struct fmt_ckpt_vol *fv)
{
	memset(fv, 0, sizeof(*fv));
	fv->id = v->id;
	fv->flags = (v->write_back ? FMT_ENT_F_WRITE_BACK : 0) |
	            (v->snapshot ? FMT_VOL_F_SNAPSHOT : 0);
	fv->sectors = v->sectors;
	fv->extents = v->map.extents;
	fv->mapped = v->map.mapped;
	fv->root = root;
	fv->parent = v->parent;
	fv->created = v->created;
	memcpy(fv->name, v->name, strlen(v->name));
}

/* Room for the address table in c->tail, then the metadata records. */
static int ckpt_capture_tail(struct store_pool *p, struct ckpt *c)
{
	size_t off;

	c->addr_len = store_addr_save_bytes(&p->addr);
	c->tail_len = c->addr_len + p->meta_bytes;
	c->tail = malloc(c->tail_len ? c->tail_len : 1);
	if (!c->tail)
		return -ENOMEM;
	off = c->addr_len;
	for (uint32_t i = 0; i < p->nmeta; i++) {
		const struct store_meta_ent *m = &p->meta[i];
		struct fmt_ckpt_meta fm = { .key_len = (uint16_t)m->key_len,
		                            .value_len = m->value_len };
		size_t mn = store_meta_ckpt_bytes(m);

		memset(c->tail + off, 0, mn);
		memcpy(c->tail + off, &fm, sizeof(fm));
		memcpy(c->tail + off + sizeof(fm), m->key, m->key_len);
		memcpy(c->tail + off + sizeof(fm) + m->key_len, m->key + m->key_len + 1,
		       m->value_len);
		off += mn;
	}
	c->n_addr_recs = p->addr.nrecs;
	c->n_meta = p->nmeta;
	return 0;
}

/* Takes what the checkpoint saves at log position P: freezes the maps and
 * notes their roots, copies the rest. The payload buffer is sized for every
 * node there is, so that the saver never moves it. */
static int ckpt_capture(struct store_pool *p, struct ckpt *c)
{
	size_t nodes_cap = (size_t)p->map_nodes * MAP_NODE_BYTES, cap;
	struct store_vol *v;
	uint32_t n = 0;

	TAILQ_FOREACH(v, &p->vols, link)
		c->nvols += v->state != VOL_CREATING;   /* its record comes after P */
	c->vols = calloc(c->nvols + 1, sizeof(*c->vols));
	c->roots = calloc(c->nvols + 1, sizeof(*c->roots));
	if (!c->vols || !c->roots || ckpt_capture_tail(p, c))
		return -ENOMEM;
	/* not zeroed (store_alloc_aligned would be, all of it at once): every
	 * byte up to the padding is written before it is read */
	cap = sizeof(struct fmt_ckpt_hdr) + nodes_cap + c->nvols * sizeof(*c->vols) + c->tail_len;
	if (posix_memalign(&c->payload, 4096, (cap + 4095) & ~(size_t)4095))
		return -ENOMEM;
	c->sv = (struct store_map_saver){
		.buf = (char *)c->payload + sizeof(struct fmt_ckpt_hdr), .cap = nodes_cap,
		.fixed = true, .gen = ++p->save_gen,
	};
	store_map_freeze_begin(&p->map_freeze, c->sv.gen, &p->map_nodes);
	store_addr_save_begin(&p->addr, c->sv.gen, c->tail);
	TAILQ_FOREACH(v, &p->vols, link) {
		store_map_freeze_join(&v->map, &p->map_freeze);
		if (v->state == VOL_CREATING)
			continue;
		ckpt_vol_record(v, 0, &c->vols[n]);
		c->roots[n++] = v->map.root;
	}
	c->next_vol_id = p->next_vol_id;
	c->log_seq = p->last_seq;
	c->log_seg = p->cur_seg;
	c->log_off = p->cur_off;
	c->next_seg = p->next_seg;
	return 0;
}

/* Saves map nodes, then address records, until deadline (0: all). 1 when
 * all is saved, 0 when time ran out first, or a negative errno. */
static int ckpt_save_some(struct store_pool *p, struct ckpt *c, uint64_t deadline)
{
	while (c->at < c->nvols) {
		unsigned budget = deadline ? store_ckpt_slice_nodes : UINT_MAX;
		uint32_t id;
		int rc = store_map_save_some(&c->sv, c->roots[c->at], &id, &budget);

		if (rc < 0)
			return rc == -EFBIG ? -EUCLEAN : rc;    /* more nodes than counted */
		if (rc == 1) {
			c->vols[c->at++].root = id;
			continue;
		}
		if (mono_ns() >= deadline)
			return 0;
	}
	while (!store_addr_save_some(&p->addr, deadline ? CKPT_BUCKET_STEP : UINT64_MAX))
		if (mono_ns() >= deadline)
			return 0;
	return 1;
}

/* All is saved: the views may go, and the payload takes its final shape:
 * header, nodes, volume records, then (copied by ckpt_copy_some) address
 * table and metadata. */
static int ckpt_seal(struct store_pool *p, struct ckpt *c)
{
	struct fmt_ckpt_hdr *h = c->payload;
	char *at = (char *)c->payload + sizeof(*h) + c->sv.len;
	size_t padded;

	store_map_freeze_end(&p->map_freeze);
	store_addr_save_end(&p->addr);
	if (p->addr.sv.len != c->addr_len || p->addr.sv.recs != c->n_addr_recs)
		return -EUCLEAN;        /* the table changed unseen: never written */
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, FMT_CKPT_MAGIC, 8);
	h->version = FMT_VERSION;
	h->next_vol_id = c->next_vol_id;
	h->n_nodes = c->sv.next_id;
	h->n_vols = c->nvols;
	h->n_addr_recs = c->n_addr_recs;
	h->n_meta = c->n_meta;
	memcpy(at, c->vols, c->nvols * sizeof(*c->vols));
	at += c->nvols * sizeof(*c->vols);
	c->tail_off = (size_t)(at - (char *)c->payload);
	c->bytes = c->tail_off + c->tail_len;
	padded = (c->bytes + 4095) & ~(size_t)4095;
	memset((char *)c->payload + c->bytes, 0, padded - c->bytes);
	free(c->vols);
	free(c->roots);
	c->vols = NULL;
	c->roots = NULL;
	c->crc = 0xffffffffu;   /* store_crc's start */
	return 0;
}

/* Copies the tail into the payload until deadline (0: all); true when
 * done. */
static bool ckpt_copy_some(struct ckpt *c, uint64_t deadline)
{
	while (c->tail_at < c->tail_len) {
		size_t n = c->tail_len - c->tail_at < CKPT_CRC_STEP ? c->tail_len - c->tail_at
		                                                     : CKPT_CRC_STEP;

		memcpy((char *)c->payload + c->tail_off + c->tail_at, c->tail + c->tail_at, n);
		c->tail_at += n;
		if (deadline && mono_ns() >= deadline)
			break;
	}
	return c->tail_at == c->tail_len;
}

/* Sums the payload until deadline (0: all); true when done. */
static bool ckpt_crc_some(struct ckpt *c, uint64_t deadline)
{
	while (c->crc_at < c->bytes) {
		size_t n = c->bytes - c->crc_at < CKPT_CRC_STEP ? c->bytes - c->crc_at : CKPT_CRC_STEP;

		c->crc = crc32_iscsi((unsigned char *)c->payload + c->crc_at, (int)n, c->crc);
		c->crc_at += n;
		if (deadline && mono_ns() >= deadline)
			break;
	}
	return c->crc_at == c->bytes;
}

static void ckpt_fill_root(struct store_pool *p, const struct ckpt *c, struct fmt_root *r,
                           uint64_t gen)
{
	memset(r, 0, 4096);
	memcpy(r->magic, FMT_ROOT_MAGIC, 8);
	r->version = FMT_VERSION;
	memcpy(r->uuid, p->uuid, 16);
	r->generation = gen;
	r->log_seq = c->log_seq;
	r->log_seg = c->log_seg;
	r->log_off = c->log_off;
	r->next_seg = c->next_seg;
	r->payload_segs = c->nsegs;
	r->payload_bytes = c->bytes;
	r->payload_crc = c->crc;
	memcpy(r->seg, c->segs, c->nsegs * sizeof(c->segs[0]));
	r->crc = store_crc(r, 4096);
}

/* Segments for the sealed payload. */
static int ckpt_alloc_segments(struct store_pool *p, struct ckpt *c)
{
	uint64_t need = (c->bytes + p->seg_bytes - 1) / p->seg_bytes;
	int rc;

	if (need > FMT_ROOT_SEGS_MAX || need > p->free_segs)
		return need > FMT_ROOT_SEGS_MAX ? -EFBIG : -ENOSPC;
	while (c->nsegs < need) {
		rc = store_seg_alloc(p, SEG_CKPT, &c->segs[c->nsegs]);
		if (rc) {       /* cannot happen after the check above; be safe */
			while (c->nsegs > 0)
				store_seg_release(p, c->segs[--c->nsegs]);
			return rc;
		}
		c->nsegs++;
	}
	return 0;
}

static void ckpt_adopt_segments(struct store_pool *p, const uint32_t *segs, uint32_t n)
{
	for (uint32_t i = 0; i < p->ckpt_nsegs; i++)
		store_seg_release(p, p->ckpt_segs[i]);
	memcpy(p->ckpt_segs, segs, n * sizeof(segs[0]));
	p->ckpt_nsegs = n;
}

/* Frees a checkpoint; its view ends and what it retired goes. */
static void ckpt_free(struct store_pool *p, struct ckpt *c)
{
	if (ev_is_active(&c->prep)) {
		ev_prepare_stop(p->loop, &c->prep);
		ev_idle_stop(p->loop, &c->idle);
	}
	store_map_freeze_end(&p->map_freeze);
	store_map_freeze_reap(&p->map_freeze, SIZE_MAX);
	if (p->addr.sv.active && p->addr.sv.buf == c->tail)
		store_addr_save_end(&p->addr);
	free(c->tail);
	free(c->vols);
	free(c->roots);
	free(c->payload);
	free(c->dead);
	free(c->root);
	free(c);
}

/* ---- the first checkpoint of a new pool (synchronous) ----------------------- */

int store_ckpt_format(struct store_pool *p)
{
	struct ckpt *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;

	if (!c || !(c->root = store_alloc_aligned(4096)))
		goto out;
	c->p = p;
	for (uint32_t s = 0; s < p->nsegs; s++)
		p->segs[s].state = SEG_FREE;
	p->free_segs = p->nsegs;
	p->last_seq = 0;
	p->next_seq = 1;
	if ((rc = store_seg_alloc(p, SEG_LOG, &p->cur_seg)) ||
	    (rc = store_seg_alloc(p, SEG_LOG, &p->next_seg)) ||
	    (rc = ckpt_capture(p, c)) || (rc = ckpt_save_some(p, c, 0)) < 0 ||
	    (rc = ckpt_seal(p, c)))
		goto out;
	ckpt_copy_some(c, 0);
	ckpt_crc_some(c, 0);
	if ((rc = ckpt_alloc_segments(p, c)))
		goto out;
	rc = p->be->ops->write_sync(p->be, c->payload, (c->bytes + 4095) & ~(size_t)4095,
	                            FMT_DATA_OFF + (uint64_t)c->segs[0] * p->seg_bytes);
	if (rc)
		goto out;
	ckpt_fill_root(p, c, c->root, 1);
	rc = p->be->ops->write_sync(p->be, c->root, 4096, FMT_ROOT_OFF(1));
	if (rc == 0) {
		p->ckpt_gen = 1;
		ckpt_adopt_segments(p, c->segs, c->nsegs);
	}
out:
	if (c)
		ckpt_free(p, c);
	return rc;
}

/* ---- the running checkpoint (asynchronous) ---------------------------------- */

static void ckpt_finish(struct ckpt *c)
{
	struct store_pool *p = c->p;
	int err = c->err;

	if (err) {
		for (uint32_t i = 0; i < c->nsegs; i++)
			store_seg_release(p, c->segs[i]);
		store_pool_logf(p, STORE_LOG_WARN, "checkpoint failed: %s", store_strerror(err));
	} else {
		p->ckpt_gen++;
		ckpt_adopt_segments(p, c->segs, c->nsegs);
		p->ckpt_seq = c->root->log_seq;
		for (uint32_t i = 0; i < c->ndead; i++) {
			struct seg_info *g = &p->segs[c->dead[i]];

			/* not freed (and perhaps reused) since the capture */
			if (g->dead_at_capture && g->state == SEG_LOG && g->live == 0 &&
			    g->readers == 0 && !g->pinned)
				store_seg_release(p, c->dead[i]);
		}
		p->st.checkpoints++;
	}
	while (!STAILQ_EMPTY(&c->waiters)) {
		struct store_req *r = STAILQ_FIRST(&c->waiters);

		STAILQ_REMOVE_HEAD(&c->waiters, link);
		store_req_complete(p, r, err);
	}
	p->ckpt = NULL;
	ckpt_free(p, c);
	store_log_kick(p);
}
static void ckpt_root_done(struct store_bio *b)
{
	struct ckpt *c = b->owner;

	if (b->result) {
		store_pool_fail(c->p, b->result, "checkpoint root write");
		c->err = STORE_EFAILED;
	}
	ckpt_finish(c);
}

static void ckpt_write_root(struct store_bio *b)
{
	struct ckpt *c = b->owner;
	struct store_pool *p = c->p;

	if (b->result) {
		store_pool_fail(p, b->result, "flush before the checkpoint root");
		c->err = STORE_EFAILED;
		ckpt_finish(c);
		return;
	}
	c->root_iov.iov_base = c->root;
	c->root_iov.iov_len = 4096;
	c->root_bio.op = STORE_BIO_WRITE;
	c->root_bio.flush = true;
	c->root_bio.offset = FMT_ROOT_OFF((p->ckpt_gen + 1) % 2);
	c->root_bio.iov = &c->root_iov;
	c->root_bio.iovcnt = 1;
	c->root_bio.done = ckpt_root_done;
	c->root_bio.owner = c;
	p->st.device_write_bytes += 4096;
	p->st.flushes++;
	p->be->ops->submit(p->be, &c->root_bio);
}

/* The payload is written. A bio's flush comes after its write, so the root
 * waits for a flush of its own: otherwise a device cache could keep the
 * root and lose the payload or the log records the root covers. */
static void ckpt_payload_done(struct store_bio *b)
{
	struct ckpt *c = b->owner;
	struct store_pool *p = c->p;

	if (b->result && !c->err) {
		store_pool_fail(p, b->result, "checkpoint write");
		c->err = STORE_EFAILED;
	}
	if (--c->pending > 0)
		return;
	if (c->err) {
		ckpt_finish(c);
		return;
	}
	c->flush_bio.op = STORE_BIO_FLUSH;
	c->flush_bio.done = ckpt_write_root;
	c->flush_bio.owner = c;
	p->st.flushes++;
	p->be->ops->submit(p->be, &c->flush_bio);
}

static void ckpt_note_dead(struct store_pool *p, struct ckpt *c)
{
	c->dead = calloc(p->nsegs, sizeof(*c->dead));
	if (!c->dead)
		return;         /* nothing freed this time; the next one will */
	for (uint32_t s = 0; s < p->nsegs; s++) {
		const struct seg_info *g = &p->segs[s];

		if (g->state == SEG_LOG && g->live == 0 && g->readers == 0 && !g->pinned &&
		    s != p->cur_seg && s != p->next_seg) {
			c->dead[c->ndead++] = s;
			p->segs[s].dead_at_capture = 1;
		}
	}
}

static void ckpt_submit_payload(struct store_pool *p, struct ckpt *c)
{
	size_t padded = (c->bytes + 4095) & ~(size_t)4095;

	c->pending = (int)c->nsegs;
	for (uint32_t i = 0; i < c->nsegs; i++) {
		size_t at = (size_t)i * p->seg_bytes;
		size_t n = padded - at < p->seg_bytes ? padded - at : p->seg_bytes;

		c->iov[i].iov_base = (char *)c->payload + at;
		c->iov[i].iov_len = n;
		c->bio[i].op = STORE_BIO_WRITE;
		c->bio[i].offset = FMT_DATA_OFF + (uint64_t)c->segs[i] * p->seg_bytes;
		c->bio[i].iov = &c->iov[i];
		c->bio[i].iovcnt = 1;
		c->bio[i].done = ckpt_payload_done;
		c->bio[i].owner = c;
		p->st.device_write_bytes += n;
		p->be->ops->submit(p->be, &c->bio[i]);
	}
}

/* Ends a checkpoint that could not be written: its waiters hear why. */
static void ckpt_fail(struct ckpt *c, int rc)
{
	c->err = rc;
	ckpt_finish(c);
}

/* The payload is sealed and summed: into segments, then the root. */
static void ckpt_write(struct store_pool *p, struct ckpt *c)
{
	int rc = ckpt_alloc_segments(p, c);

	if (rc) {
		ckpt_fail(c, rc);
		return;
	}
	ckpt_fill_root(p, c, c->root, p->ckpt_gen + 1);
	c->phase = CKPT_WRITE;
	ckpt_submit_payload(p, c);
}

/* One slice of saving and summing, at most store_ckpt_slice_ns of the loop. */
static void ckpt_slice(struct store_pool *p, struct ckpt *c)
{
	uint64_t deadline = mono_ns() + store_ckpt_slice_ns;
	int rc;

	if (c->phase == CKPT_SAVE) {
		rc = ckpt_save_some(p, c, deadline);
		if (rc == 1)
			rc = ckpt_seal(p, c);
		else if (rc == 0)
			return;
		if (rc) {
			ckpt_fail(c, rc);
			return;
		}
		c->phase = CKPT_COPY;
		return;
	}
	/* the views have ended: what they kept goes, a little at a time */
	store_map_freeze_reap(&p->map_freeze, CKPT_REAP_STEP);
	if (c->phase == CKPT_COPY) {
		if (!ckpt_copy_some(c, deadline))
			return;
		c->phase = CKPT_CRC;
	}
	if (!ckpt_crc_some(c, deadline))
		return;
	ev_prepare_stop(p->loop, &c->prep);
	ev_idle_stop(p->loop, &c->idle);
	ckpt_write(p, c);
}

static void ckpt_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct ckpt *c = w->data;

	(void)loop;
	(void)revents;
	ckpt_slice(c->p, c);
}

static void ckpt_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct ckpt *c = w->data;

	(void)loop;
	(void)revents;
	ckpt_slice(c->p, c);
}

/* Called by the log with no batch in flight: captures, and leaves the rest
 * to the slices. */
void store_ckpt_start(struct store_pool *p)
{
	struct ckpt *c = calloc(1, sizeof(*c));
	int rc;

	p->ckpt_wanted = false;
	if (!c || !(c->root = store_alloc_aligned(4096))) {
		rc = -ENOMEM;
		goto fail;
	}
	c->p = p;
	STAILQ_INIT(&c->waiters);
	STAILQ_CONCAT(&c->waiters, &p->ckpt_waiters);
	rc = ckpt_capture(p, c);
	if (rc)
		goto fail;
	ckpt_note_dead(p, c);
	p->log_bytes_since_ckpt = 0;
	p->ckpt = c;
	ev_prepare_init(&c->prep, ckpt_prepare_cb);
	c->prep.data = c;
	ev_idle_init(&c->idle, ckpt_idle_cb);
	c->idle.data = c;
	ev_prepare_start(p->loop, &c->prep);
	ev_idle_start(p->loop, &c->idle);
	return;
fail:
	store_pool_logf(p, STORE_LOG_WARN, "cannot start a checkpoint: %s", store_strerror(rc));
	if (c) {
		STAILQ_CONCAT(&p->ckpt_waiters, &c->waiters);
		ckpt_free(p, c);
	}
	while (!STAILQ_EMPTY(&p->ckpt_waiters)) {
		struct store_req *r = STAILQ_FIRST(&p->ckpt_waiters);

		STAILQ_REMOVE_HEAD(&p->ckpt_waiters, link);
		store_req_defer(p, r, rc);
	}
}

/* The pool goes away with a checkpoint still in flight (it failed, and the
 * backend, destroyed first, completes nothing more): its waiters hear so. */
void store_ckpt_abandon(struct store_pool *p)
{
	struct ckpt *c = p->ckpt;

	if (!c)
		return;
	p->ckpt = NULL;
	while (!STAILQ_EMPTY(&c->waiters)) {
		struct store_req *r = STAILQ_FIRST(&c->waiters);

		STAILQ_REMOVE_HEAD(&c->waiters, link);
		r->done(r->arg, STORE_EFAILED);
		free(r);
	}
	ckpt_free(p, c);
}

void store_ckpt_request(struct store_pool *p, struct store_req *waiter)
{
	STAILQ_INSERT_TAIL(&p->ckpt_waiters, waiter, link);
	p->ckpt_wanted = true;
}

/* ---- loading ---------------------------------------------------------------- */

static int ckpt_root_check(const struct store_pool *p, struct fmt_root *r)
{
	uint32_t crc = r->crc;

	if (memcmp(r->magic, FMT_ROOT_MAGIC, 8) != 0)
		return STORE_ECORRUPT;
	r->crc = 0;
	if (store_crc(r, 4096) != crc)
		return STORE_ECORRUPT;
	r->crc = crc;
	if (r->version != FMT_VERSION)
		return STORE_EVERSION;
	if (memcmp(r->uuid, p->uuid, 16) || r->log_seg >= p->nsegs ||
	    r->next_seg >= p->nsegs || r->log_seg == r->next_seg ||
	    r->log_off > p->seg_bytes || r->log_off % 4096 ||
	    r->payload_segs == 0 || r->payload_segs > FMT_ROOT_SEGS_MAX ||
	    r->payload_bytes < sizeof(struct fmt_ckpt_hdr) ||
	    r->payload_segs != (r->payload_bytes + p->seg_bytes - 1) / p->seg_bytes)
		return STORE_ECORRUPT;
	for (uint32_t i = 0; i < r->payload_segs; i++)
		if (r->seg[i] >= p->nsegs)
			return STORE_ECORRUPT;
	return 0;
}

static int ckpt_read_payload(struct store_pool *p, const struct fmt_root *r, char **out)
{
	size_t padded = (r->payload_bytes + 4095) & ~(uint64_t)4095;
	char *buf = store_alloc_aligned(padded);

	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->payload_segs; i++) {
		size_t at = (size_t)i * p->seg_bytes;
		size_t n = padded - at < p->seg_bytes ? padded - at : p->seg_bytes;
		int rc = p->be->ops->read_sync(p->be, buf + at, n,
		                               FMT_DATA_OFF + (uint64_t)r->seg[i] * p->seg_bytes);
		if (rc) {
			free(buf);
			return rc;
		}
	}
	if (store_crc(buf, r->payload_bytes) != r->payload_crc) {
		free(buf);
		return STORE_ECORRUPT;
	}
	*out = buf;
	return 0;
}

static int ckpt_parse_vol(struct store_pool *p, struct store_map_loader *l,
                          const char *buf, size_t size, size_t *off)
{
	struct fmt_ckpt_vol fv;
	struct store_vol *v;

	if (size - *off < sizeof(fv))
		return STORE_ECORRUPT;
	memcpy(&fv, buf + *off, sizeof(fv));
	*off += sizeof(fv);
	if (memchr(fv.name, 0, sizeof(fv.name)) == NULL || fv.name[0] == 0 ||
	    strlen(fv.name) > STORE_FULL_NAME_MAX ||
	    fv.sectors == 0 || fv.sectors > STORE_VOL_MAX_SECTORS ||
	    fv.mapped > fv.sectors || fv.extents > fv.mapped || store_vol_by_id(p, fv.id) ||
	    store_vol_find(p, fv.name) || fv.id == 0 || fv.id > STORE_VOL_ID_MAX)
		return STORE_ECORRUPT;
	v = store_vol_new(p, fv.name, fv.id, fv.sectors, fv.flags & FMT_ENT_F_WRITE_BACK);
	if (!v)
		return -ENOMEM;
	v->parent = fv.parent;
	v->created = fv.created;
	if (fv.flags & FMT_VOL_F_SNAPSHOT) {    /* linked to its volume later */
		v->snapshot = true;
		p->nvols--;
		p->nsnaps++;
	}
	if (store_map_load_root(l, &v->map, fv.root))
		return STORE_ECORRUPT;
	v->map.extents = fv.extents;
	v->map.mapped = fv.mapped;
	return 0;
}

/* Every snapshot belongs to a volume of the checkpoint. */
static int ckpt_link_snapshots(struct store_pool *p)
{
	struct store_vol *v;

	TAILQ_FOREACH(v, &p->vols, link) {
		struct store_vol *of = v->snapshot ? store_vol_by_id(p, v->parent) : NULL;

		if (!v->snapshot)
			continue;
		if (!of || of->snapshot)
			return STORE_ECORRUPT;
		of->snaps++;
	}
	return 0;
}

static int ckpt_parse_meta(struct store_pool *p, const char *buf, size_t size, size_t *off)
{
	struct fmt_ckpt_meta fm;
	const char *key = buf + *off + sizeof(fm);
	size_t n;

	if (size - *off < sizeof(fm))
		return STORE_ECORRUPT;
	memcpy(&fm, buf + *off, sizeof(fm));
	n = sizeof(fm) + ((fm.key_len + (size_t)fm.value_len + 7) & ~(size_t)7);
	if (fm.value_len > STORE_META_VALUE_MAX || n > size - *off ||
	    !store_meta_key_ok(key, fm.key_len))
		return STORE_ECORRUPT;
	*off += n;
	return store_meta_apply(p, key, fm.key_len, key + fm.key_len, fm.value_len, true);
}

/* Forgets the maps of a load that failed before they owned their nodes. */
static void ckpt_abort_maps(struct store_pool *p, struct store_map_loader *l)
{
	struct store_vol *v;

	TAILQ_FOREACH(v, &p->vols, link)
		store_map_forget(&v->map);
	store_map_loader_abort(l);
}

static int ckpt_parse(struct store_pool *p, const char *buf, size_t size)
{
	struct store_map_loader l = { 0 };
	struct fmt_ckpt_hdr h;
	size_t off = sizeof(h), used;
	int rc;

	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, FMT_CKPT_MAGIC, 8) || h.version != FMT_VERSION ||
	    h.n_nodes > UINT32_MAX || h.n_nodes > (size - off) / 8)
		return STORE_ECORRUPT;
	rc = store_map_load_nodes(&l, buf + off, size - off, (uint32_t)h.n_nodes, &used);
	off += used;
	for (uint32_t i = 0; rc == 0 && i < h.n_vols; i++)
		rc = ckpt_parse_vol(p, &l, buf, size, &off);
	if (rc == 0)
		rc = store_addr_load(&p->addr, buf + off, size - off, h.n_addr_recs,
		                     store_pba_ok, p, &used);
	if (rc == 0) {
		off += used;
		rc = store_map_loader_finish(&l, store_addr_ref, &p->addr, &p->map_nodes);
	}
	if (rc) {
		ckpt_abort_maps(p, &l);
		return rc == -ENOMEM ? rc : STORE_ECORRUPT;
	}
	/* every map extent found its data, and all data is referenced */
	if (p->addr.err || store_addr_prune(&p->addr))
		return STORE_ECORRUPT;
	rc = ckpt_link_snapshots(p);
	for (uint32_t i = 0; rc == 0 && i < h.n_meta; i++)
		rc = ckpt_parse_meta(p, buf, size, &off);
	if (rc)
		return rc;
	if (off != size || h.next_vol_id == 0 || h.next_vol_id > STORE_VOL_ID_MAX + 1)
		return STORE_ECORRUPT;
	if (h.next_vol_id > p->next_vol_id)
		p->next_vol_id = h.next_vol_id;
	return 0;
}

static void ckpt_reset(struct store_pool *p)
{
	while (!TAILQ_EMPTY(&p->vols))
		store_vol_free(TAILQ_FIRST(&p->vols));
	store_meta_free_all(p);
	store_addr_fini(&p->addr);
	store_addr_init(&p->addr, store_seg_live_cb, p);
	for (uint32_t i = 0; i < p->nsegs; i++)
		free(p->segs[i].recs);
	memset(p->segs, 0, p->nsegs * sizeof(*p->segs));
	p->next_vol_id = 1;
}

static int ckpt_try_root(struct store_pool *p, const struct fmt_root *r)
{
	char *buf = NULL;
	int rc = ckpt_read_payload(p, r, &buf);

	if (rc == 0)
		rc = ckpt_parse(p, buf, r->payload_bytes);
	free(buf);
	if (rc) {
		ckpt_reset(p);
		return rc;
	}
	for (uint32_t i = 0; i < r->payload_segs; i++)
		p->segs[r->seg[i]].state = SEG_CKPT;
	memcpy(p->ckpt_segs, r->seg, r->payload_segs * sizeof(r->seg[0]));
	p->ckpt_nsegs = r->payload_segs;
	p->ckpt_gen = r->generation;
	return 0;
}

static bool ckpt_block_zero(const void *block)
{
	const uint64_t *w = block;

	for (unsigned i = 0; i < 4096 / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Loads the newest root whose payload is whole into p; copies it to *out.
 * A pool always has one: the superblock is written after the first root. */
int store_ckpt_load(struct store_pool *p, struct fmt_root *out)
{
	struct fmt_root *r[2] = { store_alloc_aligned(4096), store_alloc_aligned(4096) };
	int ok[2], rc = -ENOMEM, blank = 0;
	bool never[2];          /* the slot was never written: all zeros */

	if (!r[0] || !r[1])
		goto out;
	for (int i = 0; i < 2; i++) {
		static const char zero[8];

		ok[i] = p->be->ops->read_sync(p->be, r[i], 4096, FMT_ROOT_OFF(i));
		if (ok[i] == 0 && memcmp(r[i]->magic, zero, 8) == 0)
			blank++;
		never[i] = ok[i] == 0 && ckpt_block_zero(r[i]);
		if (ok[i] == 0)
			ok[i] = ckpt_root_check(p, r[i]);
	}
	rc = STORE_ECORRUPT;
	if (blank == 2)
		store_pool_logf(p, STORE_LOG_ERR, "both checkpoint roots are blank");
	for (int pass = 0; pass < 2; pass++) {
		/* newest first */
		int i = (ok[0] == 0 && ok[1] == 0) ?
		        (r[0]->generation > r[1]->generation) == (pass == 0) ? 0 : 1 : pass;

		if (ok[i] != 0)
			continue;
		rc = ckpt_try_root(p, r[i]);
		if (rc == 0) {
			int o = 1 - i;

			memcpy(out, r[i], 4096);
			p->ckpt_seq = r[i]->log_seq;
			/* the other slot holds a root, and not an older whole one: a
			 * later checkpoint was written (a pool's first checkpoint
			 * leaves one slot never written) */
			p->ckpt_fell_back = !never[o] &&
			                    !(ok[o] == 0 && r[o]->generation < r[i]->generation);
			if (p->ckpt_fell_back)
				store_pool_logf(p, STORE_LOG_WARN, "newest checkpoint is damaged; "
				                "recovering from the one before");
			break;
		}
		if (rc == -ENOMEM)
			break;
		rc = STORE_ECORRUPT;
	}
	if (rc == STORE_ECORRUPT)
		store_pool_logf(p, STORE_LOG_ERR, "no valid checkpoint root in the pool");
out:
	free(r[0]);
	free(r[1]);
	return rc;
}

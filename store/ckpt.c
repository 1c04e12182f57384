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
 * A crash at any point leaves the previous root and everything it needs
 * intact: its payload and log tail are freed only after the new root is
 * durable. A root whose payload fails its CRC is skipped for the older one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

struct ckpt {
	struct store_pool *p;
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

/* Serialises the volume table, maps, address table and metadata into a
 * fresh 4 KiB-aligned buffer. */
static int ckpt_serialise(struct store_pool *p, void **out, size_t *bytes)
{
	struct store_map_saver sv = { .gen = ++p->save_gen };
	struct fmt_ckpt_hdr *h;
	struct fmt_ckpt_vol *fv;
	struct store_vol *v;
	uint32_t *roots, n = 0;
	size_t off, size;
	char *buf;
	int rc = 0;

	roots = calloc(p->nvols + p->nsnaps + 1, sizeof(*roots));
	if (!roots)
		return -ENOMEM;
	TAILQ_FOREACH(v, &p->vols, link) {
		if (v->state == VOL_CREATING)
			continue;       /* its record comes after P and is replayed */
		rc = store_map_save(&sv, &v->map, &roots[n++]);
		if (rc)
			goto out;
	}
	size = sizeof(*h) + sv.len + n * sizeof(*fv) + store_addr_save_bytes(&p->addr) +
	       p->meta_bytes;
	buf = store_alloc_aligned((size + 4095) & ~(size_t)4095);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	h = (struct fmt_ckpt_hdr *)buf;
	memcpy(h->magic, FMT_CKPT_MAGIC, 8);
	h->version = FMT_VERSION;
	h->next_vol_id = p->next_vol_id;
	h->n_nodes = sv.next_id;
	h->n_vols = n;
	h->n_addr_recs = p->addr.nrecs;
	h->n_meta = p->nmeta;
	off = sizeof(*h);
	if (sv.len)     /* no nodes: no buffer */
		memcpy(buf + off, sv.buf, sv.len);
	off += sv.len;
	n = 0;
	TAILQ_FOREACH(v, &p->vols, link) {
		if (v->state == VOL_CREATING)
			continue;
		ckpt_vol_record(v, roots[n++], (struct fmt_ckpt_vol *)(buf + off));
		off += sizeof(*fv);
	}
	off += store_addr_save(&p->addr, buf + off);
	for (uint32_t i = 0; i < p->nmeta; i++) {
		const struct store_meta_ent *m = &p->meta[i];
		struct fmt_ckpt_meta fm = { .key_len = (uint16_t)m->key_len,
		                            .value_len = m->value_len };
		size_t mn = store_meta_ckpt_bytes(m);

		memset(buf + off, 0, mn);
		memcpy(buf + off, &fm, sizeof(fm));
		memcpy(buf + off + sizeof(fm), m->key, m->key_len);
		memcpy(buf + off + sizeof(fm) + m->key_len, m->key + m->key_len + 1,
		       m->value_len);
		off += mn;
	}
	*out = buf;
	*bytes = size;
out:
	free(sv.buf);
	free(roots);
	return rc;
}

static void ckpt_fill_root(struct store_pool *p, struct fmt_root *r, uint64_t gen,
                           const uint32_t *segs, uint32_t nsegs, const void *payload,
                           size_t bytes)
{
	memset(r, 0, 4096);
	memcpy(r->magic, FMT_ROOT_MAGIC, 8);
	r->version = FMT_VERSION;
	memcpy(r->uuid, p->uuid, 16);
	r->generation = gen;
	r->log_seq = p->last_seq;
	r->log_seg = p->cur_seg;
	r->log_off = p->cur_off;
	r->next_seg = p->next_seg;
	r->payload_segs = nsegs;
	r->payload_bytes = bytes;
	r->payload_crc = store_crc(payload, bytes);
	memcpy(r->seg, segs, nsegs * sizeof(segs[0]));
	r->crc = store_crc(r, 4096);
}

/* Serialises into a fresh padded buffer and allocates its segments. */
static int ckpt_prepare(struct store_pool *p, void **payload, size_t *bytes,
                        uint32_t *segs, uint32_t *nsegs)
{
	int rc = ckpt_serialise(p, payload, bytes);
	uint64_t need;

	if (rc)
		return rc;
	need = (*bytes + p->seg_bytes - 1) / p->seg_bytes;
	if (need > FMT_ROOT_SEGS_MAX || need > p->free_segs) {
		free(*payload);
		return need > FMT_ROOT_SEGS_MAX ? -EFBIG : -ENOSPC;
	}
	*nsegs = 0;
	while (*nsegs < need) {
		rc = store_seg_alloc(p, SEG_CKPT, &segs[*nsegs]);
		if (rc) {       /* cannot happen after the check above; be safe */
			while (*nsegs > 0)
				store_seg_release(p, segs[--*nsegs]);
			free(*payload);
			return rc;
		}
		(*nsegs)++;
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

/* ---- the first checkpoint of a new pool (synchronous) ----------------------- */

int store_ckpt_format(struct store_pool *p)
{
	struct fmt_root *root = store_alloc_aligned(4096);
	uint32_t segs[FMT_ROOT_SEGS_MAX], nsegs;
	void *payload = NULL;
	size_t bytes;
	int rc = -ENOMEM;

	if (!root)
		return rc;
	for (uint32_t s = 0; s < p->nsegs; s++)
		p->segs[s].state = SEG_FREE;
	p->free_segs = p->nsegs;
	p->last_seq = 0;
	p->next_seq = 1;
	if ((rc = store_seg_alloc(p, SEG_LOG, &p->cur_seg)) ||
	    (rc = store_seg_alloc(p, SEG_LOG, &p->next_seg)) ||
	    (rc = ckpt_prepare(p, &payload, &bytes, segs, &nsegs)))
		goto out;
	rc = p->be->ops->write_sync(p->be, payload, (bytes + 4095) & ~(size_t)4095,
	                            FMT_DATA_OFF + (uint64_t)segs[0] * p->seg_bytes);
	if (rc)
		goto out;
	ckpt_fill_root(p, root, 1, segs, nsegs, payload, bytes);
	rc = p->be->ops->write_sync(p->be, root, 4096, FMT_ROOT_OFF(1));
	if (rc == 0) {
		p->ckpt_gen = 1;
		ckpt_adopt_segments(p, segs, nsegs);
	}
out:
	free(payload);
	free(root);
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
	free(c->payload);
	free(c->dead);
	free(c->root);
	free(c);
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

/* Called by the log with no batch in flight. */
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
	rc = ckpt_prepare(p, &c->payload, &c->bytes, c->segs, &c->nsegs);
	if (rc)
		goto fail;
	ckpt_note_dead(p, c);
	ckpt_fill_root(p, c->root, p->ckpt_gen + 1, c->segs, c->nsegs, c->payload, c->bytes);
	p->log_bytes_since_ckpt = 0;
	p->ckpt = c;
	ckpt_submit_payload(p, c);
	return;
fail:
	store_pool_logf(p, STORE_LOG_WARN, "cannot start a checkpoint: %s", store_strerror(rc));
	if (c) {
		STAILQ_CONCAT(&p->ckpt_waiters, &c->waiters);
		free(c->root);
		free(c);
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
	free(c->payload);
	free(c->dead);
	free(c->root);
	free(c);
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

/* Loads the newest root whose payload is whole into p; copies it to *out.
 * A pool always has one: the superblock is written after the first root. */
int store_ckpt_load(struct store_pool *p, struct fmt_root *out)
{
	struct fmt_root *r[2] = { store_alloc_aligned(4096), store_alloc_aligned(4096) };
	int ok[2], rc = -ENOMEM, blank = 0;

	if (!r[0] || !r[1])
		goto out;
	for (int i = 0; i < 2; i++) {
		static const char zero[8];

		ok[i] = p->be->ops->read_sync(p->be, r[i], 4096, FMT_ROOT_OFF(i));
		if (ok[i] == 0 && memcmp(r[i]->magic, zero, 8) == 0)
			blank++;
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
			memcpy(out, r[i], 4096);
			p->ckpt_seq = r[i]->log_seq;
			p->ckpt_fell_back = pass == 1;
			if (pass == 1)
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

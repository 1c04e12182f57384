/* iscsi/copy.c: third-party copy, the copy manager of every LU (SPC-4
 * 5.17, 6.4, 6.18, 7.8.17; SBC-3 4.29, 5.7, 5.48): EXTENDED COPY (LID1)
 * with block-to-block segments between LUs named by NAA, RECEIVE COPY
 * RESULTS (copy status, operating parameters), POPULATE TOKEN and WRITE
 * USING TOKEN (ODX), RECEIVE ROD TOKEN INFORMATION and the third-party
 * copy VPD page.
 *
 * Every copy is a copy by reference inside the pool (store_vol_copy): no
 * data moves and no space is taken until source and copy diverge. A copy
 * runs as a job of pieces (source range -> destination range); each piece
 * holds its destination blocks (sbc.c ranges) while it runs, so COMPARE
 * AND WRITE stays atomic against copies too. Pieces are submitted one
 * after the other, in order, without waiting for the previous one: the
 * store logs them in that order and group commit makes them durable
 * together.
 *
 * ROD tokens are kept by the LU whose data they describe, and are bound
 * to that data the "change vulnerable" way (SBC-3 4.29.2): a write over
 * any of their ranges through this server revokes them. Writes made
 * outside iSCSI (the HTTP data import, a snapshot rollback) are not seen.
 * A token is 512 bytes: the standard header naming the creator LU by its
 * NAA, then a random secret, so that a token cannot be forged or guessed.
 * Tokens expire after their inactivity timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "iscsi/internal.h"     /* the server's LU list (tpc_lu_by_naa) */
#include "iscsi/pr.h"
#include "iscsi/scsi.h"

#define TPC_MAX_CSCD            16u     /* CSCD descriptors per command */
#define TPC_MAX_SEGS            128u    /* segment descriptors per command */
#define TPC_MAX_DESC_LEN        4096u   /* both lists together */
#define TPC_MAX_SEG_BLOCKS      0xffffu /* a block-to-block segment's field */
#define TPC_MAX_PARAM           (64u << 10)
#define TPC_CONCURRENT          64u     /* total concurrent copies we report */
#define TPC_TOKEN_LEN           512u
#define TPC_TOKEN_TIMEOUT       60u     /* seconds of inactivity, default */
#define TPC_TOKEN_TIMEOUT_MAX   3600u
#define TPC_TOKEN_MAX_BLOCKS    (1ull << 27)    /* 64 GiB per token */
#define TPC_TOKEN_OPT_BLOCKS    (1ull << 21)    /* 1 GiB */

/* ROD types (SPC-4 7.8.17.8 table) */
#define TPC_ROD_PIT_DEFAULT     0x00800000u
#define TPC_ROD_PIT_VULNERABLE  0x00800001u
#define TPC_ROD_ZERO            0xffff0001u     /* block device zero ROD */

/* Descriptor type codes */
#define TPC_SEG_B2B             0x02u
#define TPC_CSCD_ID             0xe4u   /* identification descriptor CSCD */

/* Copy operation status (SPC-4 6.18.4): what copies[].state holds */
#define TPC_ST_DONE             0x01u
#define TPC_ST_ERROR            0x02u
#define TPC_ST_RESIDUAL         0x03u
#define TPC_ST_RUNNING          0x11u   /* in progress, foreground */

/* Sense (SPC-4 annex D) */
#define TPC_SK_COPY_ABORTED     0x0au
#define TPC_ASC_OP_IN_PROGRESS  0x0016u
#define TPC_ASC_UNREACHABLE     0x0d02u /* COPY TARGET DEVICE NOT REACHABLE */
#define TPC_ASC_TOO_MANY_CSCD   0x2606u
#define TPC_ASC_UNSUPP_CSCD     0x2607u
#define TPC_ASC_TOO_MANY_SEGS   0x2608u
#define TPC_ASC_UNSUPP_SEG      0x2609u
#define TPC_ASC_TOKEN_UNKNOWN   0x2304u
#define TPC_ASC_TOKEN_CORRUPT   0x2305u
#define TPC_ASC_TOKEN_REVOKED   0x2306u
#define TPC_ASC_TOKEN_EXPIRED   0x2307u
#define TPC_ASC_TOKEN_LENGTH    0x230au

static uint64_t tpc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* An error in the parameter list, pointing at its byte (SPC-4 4.5.2.4.2). */
static int tpc_bad(struct scsi_task *t, uint8_t key, uint16_t asc, uint32_t field)
{
	return scsi_sense_field(t, key, asc, false, (uint16_t)(field > 0xffff ? 0xffff : field),
	                        -1);
}

static int tpc_bad_param(struct scsi_task *t, uint16_t asc, uint32_t field)
{
	return tpc_bad(t, SCSI_SK_ILLEGAL_REQUEST, asc, field);
}

/* Every open LU of the server, through the I/O hook each LU points at:
 * the one embedded in its server (iscsi_srv.io), whose list holds them. */
static struct scsi_lu *tpc_lu_by_naa(struct scsi_lu *self, const uint8_t naa[16])
{
	struct iscsi_srv *s;
	struct scsi_lu *lu;

	if (memcmp(self->naa, naa, 16) == 0)
		return self;
	if (!self->io)
		return NULL;
	s = container_of(self->io, struct iscsi_srv, io);
	LIST_FOREACH(lu, &s->lus, link)
		if (memcmp(lu->naa, naa, 16) == 0)
			return lu;
	return NULL;
}

/* The data-out, whole, in one buffer; NULL with the sense set. */
static uint8_t *tpc_param(struct scsi_task *t, uint32_t min, uint32_t *len)
{
	uint8_t *d;

	*len = t->data_out < t->xfer ? t->data_out : t->xfer;
	if (*len < min) {
		scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
		return NULL;
	}
	d = malloc(*len);
	if (!d) {
		scsi_sense_store(t, -ENOMEM, false);
		return NULL;
	}
	scsi_buf_copy_out(&t->buf, 0, d, *len);
	return d;
}

int tpc_decode_out(struct scsi_task *t)
{
	t->xfer = scsi_get32(t->cdb + 10);
	if (t->xfer > TPC_MAX_PARAM)    /* more than any list we accept */
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH), 1;
	return 0;
}

/* Copy results of the nexus, by list identifier. LID1 (EXTENDED COPY)
 * and LID4 (the token commands) identifiers are separate name spaces. */

static bool tpc_rec_lid4(const struct scsi_copy_rec *r)
{
	return r->sa != SCSI_TPC_XCOPY_LID1;
}

static struct scsi_copy_rec *tpc_rec_find(struct scsi_itl *itl, uint32_t list_id, bool lid4)
{
	for (size_t i = 0; i < sizeof(itl->copies) / sizeof(itl->copies[0]); i++) {
		struct scsi_copy_rec *r = &itl->copies[i];

		if (r->state && r->list_id == list_id && tpc_rec_lid4(r) == lid4)
			return r;
	}
	return NULL;
}

/* A record for a new copy: replaces one with its identifier, else a free
 * one, else the oldest finished one; NULL if all are running. */
static struct scsi_copy_rec *tpc_rec_new(struct scsi_itl *itl, uint32_t list_id, uint8_t sa)
{
	size_t n = sizeof(itl->copies) / sizeof(itl->copies[0]);
	struct scsi_copy_rec *r = tpc_rec_find(itl, list_id, sa != SCSI_TPC_XCOPY_LID1);

	for (size_t i = 0; !r && i < n; i++)
		if (!itl->copies[i].state)
			r = &itl->copies[i];
	for (size_t i = 0; !r && i < n; i++) {
		struct scsi_copy_rec *o = &itl->copies[itl->copy_next++ % n];

		if (o->state != TPC_ST_RUNNING)
			r = o;
	}
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->list_id = list_id;
	r->sa = sa;
	r->state = TPC_ST_RUNNING;
	return r;
}

/* SPC-4 5.17.4.3: a list identifier still in use is refused. */
static bool tpc_rec_busy(struct scsi_itl *itl, uint32_t list_id, bool lid4)
{
	struct scsi_copy_rec *r = tpc_rec_find(itl, list_id, lid4);

	return r && r->state == TPC_ST_RUNNING;
}

static void tpc_rec_end(struct scsi_copy_rec *r, const struct scsi_task *t, uint8_t state)
{
	r->state = state;
	r->status = t->status;
	r->sense_len = t->sense_len;
	memcpy(r->sense, t->sense, t->sense_len);
}

/* Copy jobs */

struct tpc_job;

struct tpc_piece {
	struct scsi_range       range;          /* its destination blocks */
	struct tpc_job         *job;
	struct scsi_lu         *src, *dst;      /* src NULL: zeros */
	uint64_t                src_lba, dst_lba, n;
	uint16_t                seg;            /* the segment it belongs to */
};

struct tpc_job {
	struct scsi_task       *t;
	struct scsi_copy_rec   *rec;            /* may be NULL */
	uint64_t                want;           /* blocks asked for (residual) */
	uint32_t                npieces, next, inflight;
	uint32_t                failed;         /* first piece that failed */
	int                     err;
	bool                    waiting, finished, started;
	struct scsi_lu         *del_lu;         /* WRITE USING TOKEN DEL_TKN: */
	struct scsi_token      *del_token;      /* the token to drop at the end */
	uint64_t                del_id;
	struct tpc_piece        pieces[];
};

static struct tpc_job *tpc_job_new(struct scsi_task *t, uint32_t npieces)
{
	struct tpc_job *j = calloc(1, sizeof(*j) + npieces * sizeof(j->pieces[0]));

	if (j) {
		j->t = t;
		j->failed = UINT32_MAX;
	}
	return j;
}

static void tpc_job_add(struct tpc_job *j, struct scsi_lu *src, uint64_t src_lba,
                        struct scsi_lu *dst, uint64_t dst_lba, uint64_t n, uint16_t seg)
{
	struct tpc_piece *p = &j->pieces[j->npieces++];

	p->job = j;
	p->src = src;
	p->dst = dst;
	p->src_lba = src_lba;
	p->dst_lba = dst_lba;
	p->n = n;
	p->seg = seg;
}

static void tpc_job_run(struct tpc_job *j);

/* Status, record, references; frees j. */
static void tpc_job_end(struct tpc_job *j)
{
	struct scsi_task *t = j->t;
	uint64_t done = 0;
	uint16_t segs = 0;

	for (uint32_t i = 0; i < j->npieces && i < j->failed; i++) {
		done += j->pieces[i].n;
		segs = j->pieces[i].seg + 1;
	}
	if (j->err < 0)
		scsi_sense_store(t, j->err, true);
	else
		scsi_good(t);
	if (j->rec) {
		j->rec->blocks = done;
		j->rec->segments = j->err < 0 ? segs : j->rec->segments;
		tpc_rec_end(j->rec, t, j->err < 0 ? TPC_ST_ERROR :
		            done < j->want ? TPC_ST_RESIDUAL : TPC_ST_DONE);
	}
	if (j->err == 0 && j->del_token && j->del_token->id == j->del_id) {
		j->del_token->id = 0;
		j->del_lu->ntokens--;
	}
	for (uint32_t i = 0; i < j->npieces && j->started; i++) {
		if (j->pieces[i].src)
			scsi_lu_put(j->pieces[i].src);
		scsi_lu_put(j->pieces[i].dst);
	}
	t->priv = NULL;
	free(j);
}

static void tpc_job_finish(struct tpc_job *j)
{
	struct scsi_task *t = j->t;

	tpc_job_end(j);
	scsi_task_async_done(t);
}

static void tpc_piece_done(void *arg, int err)
{
	struct tpc_piece *p = arg;
	struct tpc_job *j = p->job;
	uint32_t i = (uint32_t)(p - j->pieces);

	scsi_range_unlock(&p->range);
	if (err < 0 && i < j->failed) {
		j->err = err;
		j->failed = i;
	}
	j->inflight--;
	tpc_job_run(j);
}

static void tpc_piece_go(struct tpc_piece *p)
{
	p->job->inflight++;
	if (!p->src)
		store_vol_unmap(p->dst->vol, p->dst_lba, p->n, tpc_piece_done, p);
	else
		store_vol_copy(p->dst->vol, p->dst_lba, p->src->vol, p->src_lba, p->n,
		               tpc_piece_done, p);
}

static void tpc_piece_granted(struct scsi_range *r)
{
	struct tpc_piece *p = container_of(r, struct tpc_piece, range);

	p->job->waiting = false;
	tpc_piece_go(p);
	tpc_job_run(p->job);
}

/* Submits pieces in order until one must wait for its blocks; finishes
 * the job once every piece is done. After a failure nothing new starts. */
static void tpc_job_run(struct tpc_job *j)
{
	while (!j->waiting && j->next < j->npieces && j->err == 0) {
		struct tpc_piece *p = &j->pieces[j->next++];

		if (scsi_range_lock(p->dst, &p->range, p->dst_lba, p->n, SCSI_RANGE_WRITE,
		                    tpc_piece_granted) != 0) {
			j->waiting = true;
			return;
		}
		tpc_piece_go(p);
	}
	if (!j->waiting && j->inflight == 0 && !j->finished &&
	    (j->next == j->npieces || j->err)) {
		j->finished = true;
		tpc_job_finish(j);
	}
}

/* Starts j: references the LUs it touches, so they outlive it. A job
 * with nothing to copy ends at once. */
static int tpc_job_start(struct tpc_job *j)
{
	if (j->npieces == 0) {
		tpc_job_end(j);
		return SCSI_DONE;
	}
	j->started = true;
	for (uint32_t i = 0; i < j->npieces; i++) {
		if (j->pieces[i].src)
			j->pieces[i].src->refs++;
		j->pieces[i].dst->refs++;
	}
	j->t->priv = j;
	tpc_job_run(j);
	return SCSI_ASYNC;
}

/* EXTENDED COPY (LID1) (SPC-4 6.4): the parameter list header, CSCD
 * descriptors (identification by NAA only), block-to-block segments. */

struct tpc_xcopy {
	uint8_t          list_id, usage;
	uint32_t         ncscd, nseg, seg_off, seg_end;
	struct scsi_lu  *cscd[TPC_MAX_CSCD];
};

static int tpc_xcopy_header(struct scsi_task *t, const uint8_t *d, uint32_t len,
                            struct tpc_xcopy *x)
{
	uint64_t tdl = scsi_get16(d + 2), sdl = scsi_get32(d + 8), inl = scsi_get32(d + 12);

	x->list_id = d[0];
	x->usage = (d[1] >> 3) & 3;
	if (x->usage == 1)      /* reserved */
		return tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 1);
	if (tdl + sdl > TPC_MAX_DESC_LEN || 16 + tdl + sdl + inl > len)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	if (tdl % 32)
		return tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 2);
	x->ncscd = (uint32_t)tdl / 32;
	if (x->ncscd > TPC_MAX_CSCD)
		return tpc_bad_param(t, TPC_ASC_TOO_MANY_CSCD, 2);
	x->seg_off = 16 + (uint32_t)tdl;
	x->seg_end = x->seg_off + (uint32_t)sdl;
	x->nseg = 0;
	for (uint32_t off = x->seg_off; off < x->seg_end; x->nseg++) {
		if (off + 4 > x->seg_end || off + 4 + scsi_get16(d + off + 2) > x->seg_end)
			return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
		off += 4 + scsi_get16(d + off + 2);
	}
	if (x->nseg > TPC_MAX_SEGS)
		return tpc_bad_param(t, TPC_ASC_TOO_MANY_SEGS, 8);
	if (x->usage != 3 && tpc_rec_busy(t->itl, x->list_id, false))
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, TPC_ASC_OP_IN_PROGRESS);
	return -1;
}

/* CSCD descriptors: an identification descriptor naming a LU of this
 * server by NAA; one naming anything else is unreachable if used. */
static int tpc_xcopy_cscds(struct scsi_task *t, const uint8_t *d, struct tpc_xcopy *x)
{
	for (uint32_t i = 0; i < x->ncscd; i++) {
		const uint8_t *c = d + 16 + 32 * i;
		uint32_t blen = (uint32_t)c[29] << 16 | scsi_get16(c + 30);

		if (c[0] != TPC_CSCD_ID || (c[1] & 0x1f) != SCSI_TYPE_DISK)
			return tpc_bad_param(t, TPC_ASC_UNSUPP_CSCD, 16 + 32 * i);
		x->cscd[i] = NULL;
		if ((c[4] & 0x0f) == SCSI_CODESET_BINARY && (c[5] & 0x3f) == SCSI_DESIG_NAA &&
		    c[7] == 16)
			x->cscd[i] = tpc_lu_by_naa(t->itl->lu, c + 8);
		if (x->cscd[i] && blen != SCSI_BLOCK)
			return tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 16 + 32 * i + 29);
	}
	return -1;
}

static int tpc_xcopy_segs(struct scsi_task *t, const uint8_t *d, struct tpc_xcopy *x,
                          struct tpc_job *j)
{
	uint32_t off = x->seg_off;

	for (uint16_t i = 0; i < x->nseg; i++, off += 4 + scsi_get16(d + off + 2)) {
		const uint8_t *s = d + off;
		uint32_t si, di, n;
		uint64_t src, dst;
		struct scsi_lu *from, *to;

		if (s[0] != TPC_SEG_B2B)
			return tpc_bad_param(t, TPC_ASC_UNSUPP_SEG, off);
		if (scsi_get16(s + 2) != 0x18)
			return tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, off + 2);
		si = scsi_get16(s + 4);
		di = scsi_get16(s + 6);
		n = scsi_get16(s + 10);
		src = scsi_get64(s + 12);
		dst = scsi_get64(s + 20);
		if (si >= x->ncscd || di >= x->ncscd || !x->cscd[si] || !x->cscd[di])
			return tpc_bad(t, TPC_SK_COPY_ABORTED, TPC_ASC_UNREACHABLE, off + 4);
		from = x->cscd[si];
		to = x->cscd[di];
		if (src > scsi_lu_blocks(from) || n > scsi_lu_blocks(from) - src)
			return tpc_bad(t, TPC_SK_COPY_ABORTED, SCSI_ASC_NONE, off + 12);
		if (dst > scsi_lu_blocks(to) || n > scsi_lu_blocks(to) - dst)
			return tpc_bad(t, TPC_SK_COPY_ABORTED, SCSI_ASC_NONE, off + 20);
		if (n && (to->snapshot || to->swp))
			return scsi_sense(t, SCSI_SK_DATA_PROTECT, SCSI_ASC_WRITE_PROTECTED);
		/* SPC-4 5.17.4: the copy manager reads and writes for the
		 * nexus, under the reservations of the LUs it reaches */
		if (n && (!pr_allows(from, t->port, 0) || !pr_allows(to, t->port, SCMD_WRITE)))
			return scsi_reservation_conflict(t);
		if (n)
			tpc_job_add(j, from, src, to, dst, n, i);
		j->want += n;
	}
	return -1;
}

int tpc_extended_copy(struct scsi_task *t)
{
	struct tpc_xcopy x = { 0 };
	struct tpc_job *j = NULL;
	uint32_t len;
	uint8_t *d;
	int rc;

	if (t->xfer == 0)
		return scsi_good(t);    /* SPC-4 6.4.1: no list, nothing to do */
	d = tpc_param(t, 16, &len);
	if (!d)
		return SCSI_DONE;
	if ((rc = tpc_xcopy_header(t, d, len, &x)) >= 0 ||
	    (rc = tpc_xcopy_cscds(t, d, &x)) >= 0)
		goto out;
	j = tpc_job_new(t, x.nseg);
	if (!j) {
		rc = scsi_sense_store(t, -ENOMEM, true);
		goto out;
	}
	if ((rc = tpc_xcopy_segs(t, d, &x, j)) >= 0)
		goto out;
	if (x.usage != 3 && !(j->rec = tpc_rec_new(t->itl, x.list_id, SCSI_TPC_XCOPY_LID1))) {
		rc = scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, TPC_ASC_OP_IN_PROGRESS);
		goto out;
	}
	if (j->rec)
		j->rec->segments = (uint16_t)x.nseg;
	free(d);
	return tpc_job_start(j);
out:
	free(j);
	free(d);
	return rc;
}

/* RECEIVE COPY RESULTS (SPC-4 6.18) */

/* A transfer count in bytes, scaled to fit 32 bits (SPC-4 6.18.2). */
static void tpc_count(uint64_t bytes, uint8_t *units, uint8_t *count)
{
	uint8_t u = 0;

	while (bytes > 0xffffffffu) {
		bytes >>= 10;
		u++;
	}
	*units = u;
	scsi_put32(count, (uint32_t)bytes);
}

int tpc_copy_status(struct scsi_task *t)
{
	struct scsi_copy_rec *r = tpc_rec_find(t->itl, t->cdb[2], false);
	uint8_t d[12] = { 0 };

	if (!r)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, -1);
	scsi_put32(d, 8);
	d[4] = r->state == TPC_ST_RUNNING ? 0x00 : r->state == TPC_ST_ERROR ? 0x02 : 0x01;
	scsi_put16(d + 5, r->segments);
	tpc_count(r->blocks * SCSI_BLOCK, &d[7], d + 8);
	if (r->state != TPC_ST_RUNNING)
		r->state = 0;   /* reported: discarded (SPC-4 5.17.4.3) */
	return scsi_data_in(t, d, sizeof(d), scsi_get32(t->cdb + 10));
}

int tpc_op_params(struct scsi_task *t)
{
	static const uint8_t impl[] = { TPC_SEG_B2B, TPC_CSCD_ID };
	uint8_t d[44 + sizeof(impl)] = { 0 };

	scsi_put32(d, sizeof(d) - 4);
	d[4] = 0x01;                            /* SNLID: list id usage 11b works */
	scsi_put16(d + 8, TPC_MAX_CSCD);
	scsi_put16(d + 10, TPC_MAX_SEGS);
	scsi_put32(d + 12, TPC_MAX_DESC_LEN);
	scsi_put32(d + 16, TPC_MAX_SEG_BLOCKS * SCSI_BLOCK);
	scsi_put16(d + 34, TPC_CONCURRENT);          /* inline and held data: none */
	d[36] = (uint8_t)TPC_CONCURRENT;
	d[37] = 9;                              /* data segment granularity: 512 */
	d[43] = sizeof(impl);
	memcpy(d + 44, impl, sizeof(impl));
	return scsi_data_in(t, d, sizeof(d), scsi_get32(t->cdb + 10));
}

/* ROD tokens */

static bool tpc_token_expired(const struct scsi_token *k, uint64_t now)
{
	return now - k->used_ns > (uint64_t)k->timeout * 1000000000u;
}

/* A slot for a new token: a free one, else an expired or revoked one,
 * else the least recently used. */
static struct scsi_token *tpc_token_slot(struct scsi_lu *lu)
{
	uint64_t now = tpc_now_ns();
	struct scsi_token *best = NULL;

	for (uint32_t i = 0; i < SCSI_TOKENS_PER_LU; i++) {
		struct scsi_token *k = &lu->tokens[i];

		if (!k->id)
			return k;
		if (k->revoked || tpc_token_expired(k, now))
			best = k;
		else if (!best || (!best->revoked && !tpc_token_expired(best, now) &&
		                   k->used_ns < best->used_ns))
			best = k;
	}
	best->id = 0;
	lu->ntokens--;
	return best;
}

/* Every write of a LU with tokens looks here: expired tokens go, so that
 * a LU whose tokens are all gone costs its writes nothing again. */
void tpc_lu_written(struct scsi_lu *lu, uint64_t lba, uint64_t end)
{
	uint64_t now;

	if (!lu->ntokens)
		return;
	now = tpc_now_ns();
	for (uint32_t i = 0; i < SCSI_TOKENS_PER_LU; i++) {
		struct scsi_token *k = &lu->tokens[i];

		if (k->id && tpc_token_expired(k, now)) {
			k->id = 0;
			lu->ntokens--;
		}
		for (uint32_t r = 0; k->id && !k->revoked && r < k->nranges; r++)
			if (k->ranges[r].lba < end && lba < k->ranges[r].lba + k->ranges[r].n)
				k->revoked = true;
	}
}

/* The 512 bytes of a token (SPC-4 7.6.2.2): ROD type, length, our id,
 * the creator LU as an identification CSCD, the bytes it represents,
 * then (vendor specific) the secret. */
static void tpc_token_bytes(const struct scsi_lu *lu, const struct scsi_token *k, uint8_t *d)
{
	memset(d, 0, TPC_TOKEN_LEN);
	scsi_put32(d, k->rod_type);
	scsi_put16(d + 6, TPC_TOKEN_LEN - 8);
	scsi_put64(d + 8, k->id);
	d[16] = TPC_CSCD_ID;
	d[20] = SCSI_CODESET_BINARY;
	d[21] = SCSI_DESIG_NAA;
	d[23] = 16;
	memcpy(d + 24, lu->naa, 16);
	scsi_put16(d + 46, SCSI_BLOCK);
	scsi_put64(d + 56, k->blocks * SCSI_BLOCK);
	memcpy(d + 128, k->secret, sizeof(k->secret));
}

/* Block device range descriptors (SBC-3 5.7.3): checked, counted. */
static int tpc_ranges(struct scsi_task *t, const uint8_t *d, uint32_t len, uint32_t off,
                      uint32_t *n, uint64_t *blocks)
{
	uint32_t rdl = scsi_get16(d + off - 2);
	uint64_t lu_blocks = scsi_lu_blocks(t->itl->lu);

	if (rdl % 16 || off + rdl > len)
		return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	*n = rdl / 16;
	if (*n == 0)
		return tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, off - 2);
	if (*n > SCSI_TOKEN_RANGES)
		return tpc_bad_param(t, TPC_ASC_TOO_MANY_SEGS, off - 2);
	*blocks = 0;
	for (uint32_t i = 0; i < *n; i++) {
		uint64_t lba = scsi_get64(d + off + 16 * i), c = scsi_get32(d + off + 16 * i + 8);

		if (lba > lu_blocks || c > lu_blocks - lba)
			return scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_LBA_OUT_OF_RANGE);
		*blocks += c;
	}
	return -1;
}

/* The token of a POPULATE TOKEN whose parameter list (checked) is in
 * t->priv, made while it holds its blocks: no write is in flight over
 * them, so the token describes data that no write has half changed. */
static void tpc_token_make(struct scsi_task *t)
{
	struct scsi_copy_rec *r = tpc_rec_find(t->itl, scsi_get32(t->cdb + 6), true);
	uint8_t *d = t->priv;
	uint32_t n = scsi_get16(d + 14) / 16, timeout = scsi_get32(d + 4);
	uint32_t rod = (d[2] & 0x02) ? scsi_get32(d + 8) : 0;
	struct scsi_lu *lu = t->itl->lu;
	struct scsi_token *k = tpc_token_slot(lu);

	t->priv = NULL;
	memset(k, 0, sizeof(*k));
	do {
		if (getrandom(&k->id, sizeof(k->id), 0) != sizeof(k->id) ||
		    getrandom(k->secret, sizeof(k->secret), 0) != sizeof(k->secret)) {
			free(d);
			k->id = 0;
			scsi_sense_store(t, -EIO, false);
			tpc_rec_end(r, t, TPC_ST_ERROR);
			return;
		}
	} while (k->id == 0);
	lu->ntokens++;
	k->used_ns = tpc_now_ns();
	k->timeout = timeout ? timeout : TPC_TOKEN_TIMEOUT;
	k->rod_type = rod ? rod : TPC_ROD_PIT_VULNERABLE;
	k->nranges = n;
	for (uint32_t i = 0; i < n; i++) {
		k->ranges[i].lba = scsi_get64(d + 16 + 16 * i);
		k->ranges[i].n = scsi_get32(d + 16 + 16 * i + 8);
		k->blocks += k->ranges[i].n;
	}
	free(d);
	r->token = k->id;
	r->blocks = k->blocks;
	r->segments = (uint16_t)n;
	scsi_good(t);
	tpc_rec_end(r, t, TPC_ST_DONE);
}

static void tpc_token_granted(struct scsi_range *rg)
{
	struct scsi_task *t = container_of(rg, struct scsi_task, range);

	tpc_token_make(t);
	scsi_task_async_done(t);
}

/* POPULATE TOKEN (SBC-3 5.7): a token for the ranges, made as soon as
 * the writes in flight over them are done (it holds them alone). */
int tpc_populate_token(struct scsi_task *t)
{
	struct scsi_lu *lu = t->itl->lu;
	uint32_t list_id = scsi_get32(t->cdb + 6), len, timeout, rod, n;
	uint64_t blocks, lo = UINT64_MAX, hi = 0;
	uint8_t *d;
	int rc = SCSI_DONE;

	if (t->xfer == 0)
		return scsi_good(t);
	if (!(d = tpc_param(t, 16, &len)))
		return SCSI_DONE;
	timeout = scsi_get32(d + 4);
	rod = (d[2] & 0x02) ? scsi_get32(d + 8) : TPC_ROD_PIT_VULNERABLE;
	if (scsi_get16(d) + 2u > len)
		rc = scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_PARAM_LIST_LENGTH);
	else if (rod != 0 && rod != TPC_ROD_PIT_DEFAULT && rod != TPC_ROD_PIT_VULNERABLE)
		rc = tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 8);
	else if (timeout > TPC_TOKEN_TIMEOUT_MAX)
		rc = tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 4);
	else if ((rc = tpc_ranges(t, d, len, 16, &n, &blocks)) >= 0)
		;
	else if (blocks > TPC_TOKEN_MAX_BLOCKS)
		rc = tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 16);
	else if (tpc_rec_busy(t->itl, list_id, true) ||
	         !tpc_rec_new(t->itl, list_id, SCSI_TPC_POPULATE_TOKEN))
		rc = scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, TPC_ASC_OP_IN_PROGRESS);
	if (rc >= 0) {
		free(d);
		return rc;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t lba = scsi_get64(d + 16 + 16 * i), c = scsi_get32(d + 16 + 16 * i + 8);

		lo = lba < lo ? lba : lo;
		hi = lba + c > hi ? lba + c : hi;
	}
	t->priv = d;
	if (scsi_range_lock(lu, &t->range, lo, hi - lo, SCSI_RANGE_EXCL, tpc_token_granted) != 0)
		return SCSI_ASYNC;
	tpc_token_make(t);
	scsi_range_unlock(&t->range);
	return SCSI_DONE;
}

/* The token a WRITE USING TOKEN names: ours, alive and unchanged. */
static int tpc_token_find(struct scsi_task *t, const uint8_t *tok, struct scsi_lu **src,
                          struct scsi_token **out)
{
	uint64_t id = scsi_get64(tok + 8), now = tpc_now_ns();
	struct scsi_lu *lu;

	if (scsi_get16(tok + 6) != TPC_TOKEN_LEN - 8)
		return tpc_bad_param(t, TPC_ASC_TOKEN_LENGTH, 16 + 6);
	if (tok[16] != TPC_CSCD_ID || tok[23] != 16 ||
	    !(lu = tpc_lu_by_naa(t->itl->lu, tok + 24)))
		return tpc_bad_param(t, TPC_ASC_TOKEN_UNKNOWN, 16 + 16);
	for (uint32_t i = 0; id && i < SCSI_TOKENS_PER_LU; i++) {
		struct scsi_token *k = &lu->tokens[i];

		if (k->id != id)
			continue;
		if (memcmp(k->secret, tok + 128, sizeof(k->secret)) != 0)
			return tpc_bad_param(t, TPC_ASC_TOKEN_CORRUPT, 16 + 128);
		if (k->revoked)
			return tpc_bad_param(t, TPC_ASC_TOKEN_REVOKED, 16 + 8);
		if (tpc_token_expired(k, now)) {
			k->id = 0;
			lu->ntokens--;
			return tpc_bad_param(t, TPC_ASC_TOKEN_EXPIRED, 16 + 8);
		}
		k->used_ns = now;
		*src = lu;
		*out = k;
		return -1;
	}
	return tpc_bad_param(t, TPC_ASC_TOKEN_UNKNOWN, 16 + 8);
}

/* Lays the token's ranges, from off blocks in, over the destination
 * ranges in order: one piece per overlap. Returns the blocks laid. */
static uint64_t tpc_wut_pieces(struct tpc_job *j, struct scsi_lu *src,
                               const struct scsi_token *k, uint64_t off,
                               struct scsi_lu *dst, const uint8_t *ranges, uint32_t n)
{
	uint32_t s = 0;
	uint64_t s_used = 0, laid = 0;

	while (s < k->nranges && off >= k->ranges[s].n)         /* skip off blocks */
		off -= k->ranges[s++].n;
	s_used = off;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t lba = scsi_get64(ranges + 16 * i), left = scsi_get32(ranges + 16 * i + 8);

		while (left && s < k->nranges) {
			uint64_t c = k->ranges[s].n - s_used;

			c = c < left ? c : left;
			if (c)
				tpc_job_add(j, src, k->ranges[s].lba + s_used, dst, lba, c, (uint16_t)i);
			lba += c;
			left -= c;
			laid += c;
			s_used += c;
			if (s_used == k->ranges[s].n) {
				s++;
				s_used = 0;
			}
		}
	}
	return laid;
}

/* The zero ROD token: the destination ranges become zeros (unmapped). */
static void tpc_wut_zero(struct tpc_job *j, struct scsi_lu *dst, const uint8_t *ranges,
                         uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (scsi_get32(ranges + 16 * i + 8))
			tpc_job_add(j, NULL, 0, dst, scsi_get64(ranges + 16 * i),
			            scsi_get32(ranges + 16 * i + 8), (uint16_t)i);
}

/* WRITE USING TOKEN (SBC-3 5.48): copies the token's data by reference
 * into the ranges; a short token leaves a residual (RRTI tells). */
int tpc_write_using_token(struct scsi_task *t)
{
	struct scsi_lu *lu = t->itl->lu, *src = NULL;
	uint32_t list_id = scsi_get32(t->cdb + 6), len, n;
	struct scsi_token *k = NULL;
	struct tpc_job *j = NULL;
	uint64_t blocks, off;
	uint8_t *d;
	int rc;

	if (t->xfer == 0)
		return scsi_good(t);
	if (!(d = tpc_param(t, 536, &len)))
		return SCSI_DONE;
	off = scsi_get64(d + 8);
	if ((rc = tpc_ranges(t, d, len, 536, &n, &blocks)) >= 0)
		goto out;
	if (scsi_get32(d + 16) != TPC_ROD_ZERO && (rc = tpc_token_find(t, d + 16, &src, &k)) >= 0)
		goto out;
	if (k && off >= k->blocks) {
		rc = tpc_bad_param(t, SCSI_ASC_INVALID_FIELD_PARAM, 8);
		goto out;
	}
	j = tpc_job_new(t, n + (k ? k->nranges : 0));
	if (!j) {
		rc = scsi_sense_store(t, -ENOMEM, true);
		goto out;
	}
	j->want = blocks;
	if (k)
		tpc_wut_pieces(j, src, k, off, lu, d + 536, n);
	else
		tpc_wut_zero(j, lu, d + 536, n);
	if (tpc_rec_busy(t->itl, list_id, true) ||
	    !(j->rec = tpc_rec_new(t->itl, list_id, SCSI_TPC_WRITE_USING_TOKEN))) {
		rc = scsi_sense(t, SCSI_SK_ILLEGAL_REQUEST, TPC_ASC_OP_IN_PROGRESS);
		goto out;
	}
	j->rec->segments = (uint16_t)n;
	if (k && (d[2] & 0x02)) {       /* DEL_TKN: gone once the copy is done */
		j->del_lu = src;
		j->del_token = k;
		j->del_id = k->id;
	}
	free(d);
	return tpc_job_start(j);
out:
	free(j);
	free(d);
	return rc;
}

/* RECEIVE ROD TOKEN INFORMATION (SBC-3 5.19, SPC-4 6.18.5): the status
 * of the nexus's POPULATE TOKEN or WRITE USING TOKEN with that list
 * identifier and, for a POPULATE TOKEN, the token. */
int tpc_rod_token_info(struct scsi_task *t)
{
	struct scsi_copy_rec *r = tpc_rec_find(t->itl, scsi_get32(t->cdb + 2), true);
	struct scsi_lu *lu = t->itl->lu;
	uint8_t d[32 + SCSI_SENSE_MAX + 4 + 2 + TPC_TOKEN_LEN] = { 0 };
	uint32_t n;

	if (!r)
		return scsi_sense_field(t, SCSI_SK_ILLEGAL_REQUEST, SCSI_ASC_INVALID_FIELD_CDB,
		                        true, 2, -1);
	d[4] = r->sa;
	d[5] = r->state;
	d[12] = r->status;
	d[13] = r->sense_len;
	d[14] = r->sense_len;
	d[15] = 0xf1;                           /* transfer count in logical blocks */
	scsi_put64(d + 16, r->blocks);
	scsi_put16(d + 24, r->segments);
	memcpy(d + 32, r->sense, r->sense_len);
	n = 32 + r->sense_len;
	for (uint32_t i = 0; r->token && i < SCSI_TOKENS_PER_LU; i++) {
		if (lu->tokens[i].id != r->token)
			continue;
		scsi_put32(d + n, 2 + TPC_TOKEN_LEN);        /* ROD token descriptors length */
		tpc_token_bytes(lu, &lu->tokens[i], d + n + 6);
		n += 4 + 2 + TPC_TOKEN_LEN;
		break;
	}
	if (n == 32u + r->sense_len)
		n += 4;                                 /* no token: length 0 */
	scsi_put32(d, n - 4);
	return scsi_data_in(t, d, n, scsi_get32(t->cdb + 10));
}

/* The third-party copy VPD page (SPC-4 7.8.17, SBC-3 6.6.3): one
 * descriptor per limit; every number is what the code above accepts. */

static uint32_t tpc_desc(uint8_t *d, uint16_t type, uint32_t len)
{
	scsi_put16(d, type);
	scsi_put16(d + 2, len);
	return 4 + len;
}

static uint32_t tpc_vpd_bdrl(uint8_t *d)              /* block device ROD limits */
{
	scsi_put16(d + 10, SCSI_TOKEN_RANGES);
	scsi_put32(d + 12, TPC_TOKEN_TIMEOUT_MAX);
	scsi_put32(d + 16, TPC_TOKEN_TIMEOUT);
	scsi_put64(d + 20, TPC_TOKEN_MAX_BLOCKS);
	scsi_put64(d + 28, TPC_TOKEN_OPT_BLOCKS);
	return tpc_desc(d, 0x0000, 0x20);
}

static uint32_t tpc_vpd_commands(uint8_t *d)          /* supported commands */
{
	static const uint8_t list[] = {
		SCSI_EXTENDED_COPY, 3, SCSI_TPC_XCOPY_LID1, SCSI_TPC_POPULATE_TOKEN,
		SCSI_TPC_WRITE_USING_TOKEN,
		SCSI_RECEIVE_COPY, 3, SCSI_TPC_COPY_STATUS, SCSI_TPC_OP_PARAMS,
		SCSI_TPC_ROD_TOKEN_INFO,
	};

	d[4] = sizeof(list);
	memcpy(d + 5, list, sizeof(list));
	return tpc_desc(d, 0x0001, (1 + sizeof(list) + 3) & ~3u);
}

static uint32_t tpc_vpd_params(uint8_t *d)            /* parameter data */
{
	scsi_put16(d + 8, TPC_MAX_CSCD);
	scsi_put16(d + 10, TPC_MAX_SEGS);
	scsi_put32(d + 12, TPC_MAX_DESC_LEN);
	return tpc_desc(d, 0x0004, 0x1c);
}

static uint32_t tpc_vpd_descriptors(uint8_t *d)       /* supported descriptors */
{
	d[4] = 2;
	d[5] = TPC_SEG_B2B;
	d[6] = TPC_CSCD_ID;
	return tpc_desc(d, 0x0008, 4);
}

static uint32_t tpc_vpd_features(uint8_t *d)          /* ROD token features */
{
	uint8_t *b = d + 48;                    /* block device features */

	scsi_put32(d + 16, 0);                       /* minimum lifetime: none */
	scsi_put32(d + 20, TPC_TOKEN_TIMEOUT_MAX);
	scsi_put32(d + 24, TPC_TOKEN_TIMEOUT_MAX);
	scsi_put16(d + 46, 48);
	b[0] = SCSI_TYPE_DISK;
	scsi_put16(b + 2, 44);
	scsi_put16(b + 6, 1);                        /* optimal granularity: a block */
	scsi_put64(b + 8, TPC_TOKEN_MAX_BLOCKS * SCSI_BLOCK);
	scsi_put64(b + 16, TPC_TOKEN_OPT_BLOCKS * SCSI_BLOCK);
	scsi_put64(b + 24, TPC_TOKEN_OPT_BLOCKS * SCSI_BLOCK);
	scsi_put64(b + 32, TPC_TOKEN_OPT_BLOCKS * SCSI_BLOCK);
	return tpc_desc(d, 0x0106, 44 + 48);
}

static uint32_t tpc_vpd_rod_types(uint8_t *d)         /* supported ROD types */
{
	scsi_put16(d + 6, 2 * 64);
	scsi_put32(d + 8, TPC_ROD_PIT_VULNERABLE);
	d[12] = 0x03;                           /* TOKEN_IN, TOKEN_OUT */
	scsi_put32(d + 8 + 64, TPC_ROD_ZERO);
	d[12 + 64] = 0x02;                      /* TOKEN_IN */
	return tpc_desc(d, 0x0108, 4 + 2 * 64);
}

static uint32_t tpc_vpd_general(uint8_t *d)           /* general copy operations */
{
	scsi_put32(d + 4, TPC_CONCURRENT);
	scsi_put32(d + 8, TPC_CONCURRENT);
	scsi_put32(d + 12, TPC_MAX_SEG_BLOCKS * SCSI_BLOCK);
	d[16] = 9;                              /* data segment granularity: 512 */
	return tpc_desc(d, 0x8001, 0x20);
}

uint32_t tpc_vpd(const struct scsi_task *t, uint8_t *d)
{
	uint32_t n = 4;

	(void)t;
	n += tpc_vpd_bdrl(d + n);
	n += tpc_vpd_commands(d + n);
	n += tpc_vpd_params(d + n);
	n += tpc_vpd_descriptors(d + n);
	n += tpc_vpd_features(d + n);
	n += tpc_vpd_rod_types(d + n);
	n += tpc_vpd_general(d + n);
	return n;
}

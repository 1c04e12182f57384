/* mgmt/api_data.c: PUT and GET /volumes/{name}/data, a raw image streamed
 * into or out of a volume, in bounded memory.
 *
 * Import: body pieces are copied into XFER_SLOTS buffers of XFER_CHUNK
 * bytes; a full buffer becomes one store_vol_write() at once, and the next
 * buffer fills while it is in flight, so several writes ride in one group
 * commit. When every buffer is taken the request is suspended (the TCP
 * window closes: backpressure) until a write completes. The last partial
 * sector is padded with zeros. A write-back volume is flushed at the end,
 * so a 200 always means the whole image is durable. An image larger than
 * the volume is refused before a byte is written when Content-Length says
 * so, else when the excess arrives (the part before it stays written).
 *
 * Export: the reply body comes from a libmicrohttpd content reader; reads
 * run ahead into the same kind of buffers, and the reader suspends the
 * connection when the next buffer is not there yet.
 *
 * A transfer (struct mgmt_xfer) outlives its request when the client goes
 * away with I/O in flight: it is reference counted, one reference for the
 * request, one for the export's reply, one per store operation. One
 * transfer per volume at a time; GET /volumes/{name} shows its progress.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/internal.h"

#define XFER_CHUNK      (1u << 20)
#define XFER_SLOTS      8               /* <= 8 MiB buffered per transfer */
#define XFER_READ_BLOCK (256u << 10)    /* MHD's buffer for the reply */

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_IO, SLOT_READY };

struct xfer_slot {
	struct mgmt_xfer *x;
	char             *buf;
	size_t            len;              /* bytes in buf */
	uint64_t          off;              /* volume byte offset of buf[0] */
	uint64_t          submitted_ns;
	struct iovec      iov;
	enum slot_state   state;
};

struct mgmt_xfer {
	LIST_ENTRY(mgmt_xfer) link;         /* srv->xfers */
	struct mgmt_srv  *srv;
	struct mgmt_req  *rq;               /* NULL once MHD is done with it */
	struct store_vol *vol;
	char              name[STORE_NAME_MAX + 1];
	bool              import;
	bool              write_back;
	uint64_t          vol_bytes;
	uint64_t          total;            /* expected bytes; 0: unknown */
	uint64_t          received;         /* import: taken from the client */
	uint64_t          done;             /* written, or sent */
	uint64_t          next_off;         /* export: next read */
	uint64_t          started_ns;
	int               err;              /* sticky: the first store error */
	int               refs;
	unsigned          inflight;
	unsigned          cur;              /* import: filling; export: to send */
	bool              ended;            /* import: the body is complete */
	bool              waiting;          /* the request is suspended on us */
	bool              aborted;          /* mgmt_stop() */
	struct xfer_slot  slot[XFER_SLOTS];
};

/* ---- life ---------------------------------------------------------------- */

static void xfer_unref(struct mgmt_xfer *x)
{
	if (--x->refs > 0)
		return;
	LIST_REMOVE(x, link);
	store_vol_close(x->vol);
	for (unsigned i = 0; i < XFER_SLOTS; i++)
		free(x->slot[i].buf);
	free(x);
}

static struct mgmt_xfer *xfer_find(struct mgmt_srv *m, const char *name)
{
	struct mgmt_xfer *x;

	LIST_FOREACH(x, &m->xfers, link)
		if (strcmp(x->name, name) == 0)
			return x;
	return NULL;
}

bool mgmt_xfer_info_get(struct mgmt_srv *m, const char *volume,
                        struct mgmt_xfer_info *out)
{
	struct mgmt_xfer *x = xfer_find(m, volume);

	if (!x)
		return false;
	out->direction = x->import ? "import" : "export";
	out->done = x->done;
	out->total = x->total;
	out->started_ns = x->started_ns;
	return true;
}

void mgmt_xfer_abort_all(struct mgmt_srv *m)
{
	struct mgmt_xfer *x;

	LIST_FOREACH(x, &m->xfers, link)
		x->aborted = true;
}

static void xfer_req_closed(struct mgmt_req *rq)
{
	struct mgmt_xfer *x = rq->ctx;

	x->rq = NULL;
	rq->ctx = NULL;
	xfer_unref(x);
}

/* Checks the name, opens the volume and claims it for one transfer. */
static int xfer_create(struct mgmt_req *rq, bool import, struct mgmt_xfer **out)
{
	struct mgmt_srv *m = rq->srv;
	const char *name = rq->arg[0], *why;
	struct store_vol_info vi;
	struct mgmt_xfer *x;
	char q[64];
	int err;

	if (!mgmt_vol_name_ok(name, &why))
		return mgmt_fail(rq, -EINVAL, "volume name %s",  why);
	if (xfer_find(m, name))
		return mgmt_fail(rq, -EBUSY, "volume %s has an image transfer running",
		                 mgmt_quote(name, q, sizeof(q)));
	x = calloc(1, sizeof(*x));
	if (!x)
		return mgmt_fail(rq, -ENOMEM, "out of memory");
	err = store_vol_open(m->pool, name, &x->vol);
	if (err < 0) {
		free(x);
		return mgmt_fail(rq, err, "volume %s: %s", mgmt_quote(name, q, sizeof(q)),
		                 err == -ENOENT ? "no such volume" : store_strerror(err));
	}
	store_vol_get_info(x->vol, &vi);
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->srv = m;
	x->rq = rq;
	x->import = import;
	x->write_back = vi.write_back;
	x->vol_bytes = vi.sectors * STORE_SECTOR;
	x->started_ns = mgmt_now_ns();
	x->refs = 1;                            /* the request's */
	for (unsigned i = 0; i < XFER_SLOTS; i++)
		x->slot[i].x = x;
	LIST_INSERT_HEAD(&m->xfers, x, link);
	rq->ctx = x;
	rq->on_close = xfer_req_closed;
	*out = x;
	return MGMT_PENDING;
}

static int xfer_slot_alloc(struct xfer_slot *s)
{
	if (!s->buf)
		s->buf = malloc(XFER_CHUNK);
	return s->buf ? 0 : -ENOMEM;
}

/* Wakes the request if it waits for a buffer or an answer. */
static void xfer_wake(struct mgmt_xfer *x)
{
	if (x->rq && x->waiting) {
		x->waiting = false;
		mgmt_req_resume(x->rq);
	}
}

/* ---- import ------------------------------------------------------------- */

static int xfer_import_reply(struct mgmt_xfer *x);

static void xfer_flushed(void *arg, int err)
{
	struct mgmt_xfer *x = arg;

	if (err < 0 && !x->err)
		x->err = err;
	x->write_back = false;                  /* flushed: reply now */
	x->inflight--;
	if (x->rq && xfer_import_reply(x) == MGMT_DONE)
		mgmt_req_finish(x->rq);
	mgmt_op_end(x->srv);
	xfer_unref(x);
}

static void xfer_io_begin(struct mgmt_xfer *x)
{
	x->inflight++;
	x->refs++;
	mgmt_op_begin(x->srv);
}

/* The body is in and every write done: flush a write-back volume, then
 * say how it went. MGMT_PENDING while the flush runs. */
static int xfer_import_reply(struct mgmt_xfer *x)
{
	struct mgmt_req *rq = x->rq;
	double secs = (double)(mgmt_now_ns() - x->started_ns) / 1e9;

	if (x->err)
		return mgmt_fail(rq, x->err, "image import into %s failed after %llu "
		                 "bytes: %s", x->name, (unsigned long long)x->done,
		                 store_strerror(x->err));
	if (x->write_back) {
		xfer_io_begin(x);
		store_vol_flush(x->vol, xfer_flushed, x);
		return MGMT_PENDING;
	}
	return mgmt_reply_json(rq, 200, json_pack("{s:s, s:I, s:I, s:f, s:f}",
		"volume", x->name, "bytes", (json_int_t)x->received,
		"written_bytes", (json_int_t)x->done, "seconds", secs,
		"bytes_per_second", secs > 0 ? (double)x->received / secs : 0.0));
}

static void xfer_written(void *arg, int err)
{
	struct xfer_slot *s = arg;
	struct mgmt_xfer *x = s->x;

	mgmt_io_record(x->srv, x->name, MGMT_IO_WRITE, s->len,
	               mgmt_now_ns() - s->submitted_ns);
	if (err < 0 && !x->err)
		x->err = err;
	if (err == 0)
		x->done += s->len;
	s->state = SLOT_FREE;
	s->len = 0;
	x->inflight--;
	if (x->rq && x->ended && x->inflight == 0) {
		if (xfer_import_reply(x) == MGMT_DONE)
			mgmt_req_finish(x->rq);
	} else {
		xfer_wake(x);
	}
	mgmt_op_end(x->srv);
	xfer_unref(x);
}

static void xfer_write_submit(struct mgmt_xfer *x, struct xfer_slot *s)
{
	s->state = SLOT_IO;
	s->iov = (struct iovec){ s->buf, s->len };
	s->submitted_ns = mgmt_now_ns();
	xfer_io_begin(x);
	store_vol_write(x->vol, s->off / STORE_SECTOR, &s->iov, 1, 0, xfer_written, s);
	x->cur = XFER_SLOTS;
}

/* The buffer being filled, or a free one; NULL when all are busy. */
static struct xfer_slot *xfer_fill_slot(struct mgmt_xfer *x)
{
	if (x->cur < XFER_SLOTS)
		return &x->slot[x->cur];
	for (unsigned i = 0; i < XFER_SLOTS; i++) {
		struct xfer_slot *s = &x->slot[i];

		if (s->state == SLOT_FREE && xfer_slot_alloc(s) == 0) {
			s->state = SLOT_FILLING;
			s->off = x->received;
			s->len = 0;
			x->cur = i;
			return s;
		}
	}
	return NULL;
}

static size_t xfer_import_data(struct mgmt_req *rq, const char *buf, size_t len)
{
	struct mgmt_xfer *x = rq->ctx;
	size_t used = 0;

	if (x->aborted || x->err) {
		if (x->aborted)
			mgmt_fail(rq, -ESHUTDOWN, "the daemon is shutting down");
		else
			xfer_import_reply(x);
		return len;
	}
	if (len > x->vol_bytes - x->received) {
		mgmt_fail(rq, -EFBIG, "the image is larger than volume %s (%llu bytes): "
		          "the import stopped there, and the volume may hold part of it",
		          x->name, (unsigned long long)x->vol_bytes);
		return len;
	}
	while (used < len) {
		struct xfer_slot *s = xfer_fill_slot(x);
		size_t n;

		if (!s) {                       /* every buffer in flight: wait */
			x->waiting = true;
			mgmt_req_suspend(rq);
			break;
		}
		n = len - used < XFER_CHUNK - s->len ? len - used : XFER_CHUNK - s->len;
		memcpy(s->buf + s->len, buf + used, n);
		s->len += n;
		used += n;
		x->received += n;
		if (s->len == XFER_CHUNK)
			xfer_write_submit(x, s);
	}
	return used;
}

static int xfer_import_end(struct mgmt_req *rq)
{
	struct mgmt_xfer *x = rq->ctx;

	x->ended = true;
	if (x->aborted)
		return mgmt_fail(rq, -ESHUTDOWN, "the daemon is shutting down");
	if (x->cur < XFER_SLOTS && !x->err) {   /* the tail, padded to a sector */
		struct xfer_slot *s = &x->slot[x->cur];
		size_t pad = (STORE_SECTOR - s->len % STORE_SECTOR) % STORE_SECTOR;

		memset(s->buf + s->len, 0, pad);
		s->len += pad;
		xfer_write_submit(x, s);
	}
	if (x->inflight == 0)
		return xfer_import_reply(x);
	x->waiting = true;
	return MGMT_PENDING;
}

static const struct mgmt_stream xfer_import_ops = {
	.data = xfer_import_data,
	.end  = xfer_import_end,
};

static int api_data_put(struct mgmt_req *rq)
{
	struct mgmt_xfer *x;

	if (xfer_create(rq, true, &x) == MGMT_DONE)
		return MGMT_DONE;
	if (rq->has_length && rq->content_length > x->vol_bytes)
		return mgmt_fail(rq, -EFBIG, "an image of %llu bytes does not fit volume "
		                 "%s (%llu bytes); nothing was written",
		                 (unsigned long long)rq->content_length, x->name,
		                 (unsigned long long)x->vol_bytes);
	x->total = rq->has_length ? rq->content_length : 0;
	x->cur = XFER_SLOTS;
	rq->stream = &xfer_import_ops;
	return MGMT_PENDING;
}

/* ---- export ------------------------------------------------------------- */

static void xfer_read(struct mgmt_xfer *x, struct xfer_slot *s);

static void xfer_was_read(void *arg, int err)
{
	struct xfer_slot *s = arg;
	struct mgmt_xfer *x = s->x;

	mgmt_io_record(x->srv, x->name, MGMT_IO_READ, s->len,
	               mgmt_now_ns() - s->submitted_ns);
	if (err < 0 && !x->err)
		x->err = err;
	s->state = SLOT_READY;
	x->inflight--;
	xfer_wake(x);
	mgmt_op_end(x->srv);
	xfer_unref(x);
}

static void xfer_read(struct mgmt_xfer *x, struct xfer_slot *s)
{
	uint64_t left = x->vol_bytes - x->next_off;

	if (left == 0 || x->aborted || x->err) {
		s->state = SLOT_FREE;
		return;
	}
	s->off = x->next_off;
	s->len = left < XFER_CHUNK ? (size_t)left : XFER_CHUNK;
	x->next_off += s->len;
	s->state = SLOT_IO;
	s->iov = (struct iovec){ s->buf, s->len };
	s->submitted_ns = mgmt_now_ns();
	xfer_io_begin(x);
	store_vol_read(x->vol, s->off / STORE_SECTOR, &s->iov, 1, xfer_was_read, s);
}

static ssize_t xfer_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct mgmt_xfer *x = cls;
	struct xfer_slot *s = &x->slot[x->cur];
	size_t within, n;

	if (x->aborted || x->err || !x->rq)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (s->state != SLOT_READY) {           /* not read yet: wait for it */
		x->waiting = true;
		mgmt_req_suspend(x->rq);
		return 0;
	}
	within = (size_t)(pos - s->off);
	n = s->len - within < max ? s->len - within : max;
	memcpy(buf, s->buf + within, n);
	x->done = pos + n;
	if (within + n == s->len) {             /* used up: read further ahead */
		xfer_read(x, s);
		x->cur = (x->cur + 1) % XFER_SLOTS;
	}
	return (ssize_t)n;
}

static void xfer_reader_free(void *cls)
{
	xfer_unref(cls);
}

static int api_data_get(struct mgmt_req *rq)
{
	struct mgmt_xfer *x;
	struct MHD_Response *r;

	if (xfer_create(rq, false, &x) == MGMT_DONE)
		return MGMT_DONE;
	x->total = x->vol_bytes;
	for (unsigned i = 0; i < XFER_SLOTS; i++) {
		if (xfer_slot_alloc(&x->slot[i]) < 0)
			return mgmt_fail(rq, -ENOMEM, "out of memory for read buffers");
	}
	r = MHD_create_response_from_callback(x->vol_bytes, XFER_READ_BLOCK,
	                                      xfer_reader, x, xfer_reader_free);
	if (!r)
		return mgmt_fail(rq, -ENOMEM, "out of memory for the reply");
	x->refs++;                              /* the reply's */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        "application/octet-stream");
	for (unsigned i = 0; i < XFER_SLOTS; i++)
		xfer_read(x, &x->slot[i]);
	return mgmt_reply_response(rq, 200, r);
}

const struct mgmt_route mgmt_routes_data[] = {
	{ "PUT",    "/api/v1/volumes/{name}/data",  api_data_put,  MGMT_BODY_STREAM },
	{ "GET",    "/api/v1/volumes/{name}/data",  api_data_get,  0 },
	{ NULL, NULL, NULL, 0 },
};

/* tests/lib/crash_backend.c: see crash_backend.h. */
#include "tests/lib/crash_backend.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/testlib.h"

struct pending_write {
	struct pending_write *next;
	uint64_t off;
	size_t   len;
	uint8_t  data[];
};

struct crash_backend {
	struct store_backend  base;
	uint8_t              *durable;     /* what survives a power cut */
	uint8_t              *current;     /* what reads see */
	struct pending_write *unflushed, **tail;
	uint64_t              submitted, cut, fail_from;
	bool                  fired;
	uint64_t              rng;          /* completion order */
	crash_trace_fn       *trace;
	void                 *trace_arg;
	struct ev_loop       *loop;
	ev_idle               idle;
	STAILQ_HEAD(, store_bio) queue;
};

/* The crash tests make and drop backends by the thousand: their buffers are
 * kept for the next one instead of going back to the system (and being
 * faulted in again, page by page). Single-threaded, like the tests. Under
 * AddressSanitizer a kept buffer is poisoned, so a use after free is still
 * caught. */
#define SPARE_MAX 8

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CB_ASAN 1
#endif
#endif
#ifdef __SANITIZE_ADDRESS__
#define CB_ASAN 1
#endif
#ifdef CB_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n)   ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

static struct {
	uint8_t  *buf;
	uint64_t  size;
} spare[SPARE_MAX];

static uint8_t *buf_get(uint64_t size)
{
	for (int i = 0; i < SPARE_MAX; i++)
		if (spare[i].buf && spare[i].size == size) {
			uint8_t *b = spare[i].buf;

			spare[i].buf = NULL;
			ASAN_UNPOISON_MEMORY_REGION(b, size);
			return b;
		}
	return malloc(size);
}

static void buf_put(uint8_t *buf, uint64_t size)
{
	for (int i = 0; buf && i < SPARE_MAX; i++)
		if (!spare[i].buf) {
			spare[i].buf = buf;
			spare[i].size = size;
			ASAN_POISON_MEMORY_REGION(buf, size);
			return;
		}
	free(buf);
}

static int cb_read_sync(struct store_backend *be, void *buf, size_t len, uint64_t off)
{
	struct crash_backend *cb = (struct crash_backend *)be;

	if (off > be->size || len > be->size - off)
		return -EIO;
	memcpy(buf, cb->current + off, len);
	return 0;
}

static void cb_flush(struct crash_backend *cb);

static int cb_write_sync(struct store_backend *be, const void *buf, size_t len, uint64_t off)
{
	struct crash_backend *cb = (struct crash_backend *)be;

	if (off > be->size || len > be->size - off)
		return -EIO;
	if (len == 0) {
		cb_flush(cb);
		return 0;
	}
	memcpy(cb->current + off, buf, len);
	memcpy(cb->durable + off, buf, len);
	return 0;
}

static void cb_flush(struct crash_backend *cb)
{
	while (cb->unflushed) {
		struct pending_write *w = cb->unflushed;

		cb->unflushed = w->next;
		memcpy(cb->durable + w->off, w->data, w->len);
		free(w);
	}
	cb->tail = &cb->unflushed;
}

static int cb_write(struct crash_backend *cb, struct store_bio *b)
{
	uint64_t off = b->offset;

	for (int i = 0; i < b->iovcnt; i++) {
		size_t len = b->iov[i].iov_len;
		struct pending_write *w;

		if (off > cb->base.size || len > cb->base.size - off)
			return -EIO;
		w = malloc(sizeof(*w) + len);
		if (!w)
			return -ENOMEM;
		w->next = NULL;
		w->off = off;
		w->len = len;
		memcpy(w->data, b->iov[i].iov_base, len);
		memcpy(cb->current + off, w->data, len);
		*cb->tail = w;
		cb->tail = &w->next;
		off += len;
	}
	return 0;
}

static int cb_read(struct crash_backend *cb, struct store_bio *b)
{
	uint64_t off = b->offset;

	for (int i = 0; i < b->iovcnt; i++) {
		size_t len = b->iov[i].iov_len;

		if (off > cb->base.size || len > cb->base.size - off)
			return -EIO;
		memcpy(b->iov[i].iov_base, cb->current + off, len);
		off += len;
	}
	return 0;
}

static int cb_run(struct crash_backend *cb, struct store_bio *b)
{
	int rc = 0;

	if (b->op == STORE_BIO_READ)
		return cb_read(cb, b);
	if (b->op == STORE_BIO_WRITE)
		rc = cb_write(cb, b);
	if (rc == 0 && (b->op == STORE_BIO_FLUSH || b->flush))
		cb_flush(cb);
	return rc;
}

/* Bios in flight together complete in any order, as on a real device, and
 * take effect when they complete: a flush covers the writes completed before
 * it, not every write submitted before it. */
static void cb_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct crash_backend *cb = w->data;
	struct store_bio *list[256];
	int n = 0;

	(void)revents;
	while (!STAILQ_EMPTY(&cb->queue) && n < 256) {
		list[n++] = STAILQ_FIRST(&cb->queue);
		STAILQ_REMOVE_HEAD(&cb->queue, link);
	}
	if (STAILQ_EMPTY(&cb->queue))
		ev_idle_stop(loop, w);
	for (int i = n - 1; i > 0; i--) {
		int j = (int)tl_rand_below(&cb->rng, (uint64_t)i + 1);
		struct store_bio *t = list[i];

		list[i] = list[j];
		list[j] = t;
	}
	for (int i = 0; i < n; i++) {
		struct store_bio *b = list[i];

		if (!b->pending && cb->trace)
			cb->trace(cb->trace_arg, CRASH_TRACE_RUN, b);
		b->result = b->pending ? -EIO : cb_run(cb, b);
		b->done(b);
	}
}

static int cb_start(struct store_backend *be, struct ev_loop *loop)
{
	struct crash_backend *cb = (struct crash_backend *)be;

	cb->loop = loop;
	ev_idle_init(&cb->idle, cb_idle);
	cb->idle.data = cb;
	return 0;
}

/* After the cut nothing more reaches the media: the bio fails. */
static void cb_submit(struct store_backend *be, struct store_bio *b)
{
	struct crash_backend *cb = (struct crash_backend *)be;

	cb->submitted++;
	if (cb->cut && cb->submitted >= cb->cut)
		cb->fired = true;
	b->pending = cb->fired || (cb->fail_from && cb->submitted >= cb->fail_from);
	if (cb->trace)
		cb->trace(cb->trace_arg, CRASH_TRACE_SUBMIT, b);
	STAILQ_INSERT_TAIL(&cb->queue, b, link);
	if (!ev_is_active(&cb->idle))
		ev_idle_start(cb->loop, &cb->idle);
}

static void cb_destroy(struct store_backend *be)
{
	struct crash_backend *cb = (struct crash_backend *)be;

	if (cb->loop && ev_is_active(&cb->idle))
		ev_idle_stop(cb->loop, &cb->idle);
	cb->loop = NULL;
}

static const struct store_backend_ops crash_ops = {
	.name       = "memory",
	.read_sync  = cb_read_sync,
	.write_sync = cb_write_sync,
	.start      = cb_start,
	.submit     = cb_submit,
	.destroy    = cb_destroy,
};

struct crash_backend *crash_backend_create(uint64_t size, const uint8_t *image)
{
	struct crash_backend *cb = calloc(1, sizeof(*cb));

	if (!cb)
		return NULL;
	cb->base.ops = &crash_ops;
	cb->base.size = size;
	cb->base.engine = "memory";
	cb->durable = buf_get(size);
	cb->current = buf_get(size);
	if (!cb->durable || !cb->current) {
		crash_backend_free(cb);
		return NULL;
	}
	if (image) {
		memcpy(cb->durable, image, size);
		memcpy(cb->current, image, size);
	} else {
		memset(cb->durable, 0, size);
		memset(cb->current, 0, size);
	}
	cb->tail = &cb->unflushed;
	cb->rng = 0x9e3779b97f4a7c15ull ^ size;
	STAILQ_INIT(&cb->queue);
	return cb;
}

struct store_backend *crash_backend_base(struct crash_backend *cb)
{
	return &cb->base;
}

void crash_backend_arm(struct crash_backend *cb, uint64_t cut)
{
	cb->cut = cut ? cb->submitted + cut : 0;
}

void crash_backend_trace(struct crash_backend *cb, crash_trace_fn *fn, void *arg)
{
	cb->trace = fn;
	cb->trace_arg = arg;
}

void crash_backend_poke(struct crash_backend *cb, uint64_t off, const void *data, size_t len)
{
	if (off > cb->base.size || len > cb->base.size - off)
		abort();
	memcpy(cb->durable + off, data, len);
	memcpy(cb->current + off, data, len);
}

void crash_backend_fail_from(struct crash_backend *cb, uint64_t nth)
{
	cb->fail_from = nth ? cb->submitted + nth : 0;
}

bool crash_backend_fired(const struct crash_backend *cb)
{
	return cb->fired;
}

uint64_t crash_backend_submitted(const struct crash_backend *cb)
{
	return cb->submitted;
}

uint8_t *crash_backend_durable(struct crash_backend *cb)
{
	return cb->durable;
}

/* Each unflushed write onto img: whole, lost or torn, as rng says. */
static void apply_unflushed(const struct crash_backend *cb, uint8_t *img, uint64_t *rng)
{
	for (const struct pending_write *w = cb->unflushed; w; w = w->next) {
		switch (tl_rand_below(rng, 3)) {
		case 0:         /* reached the media whole */
			memcpy(img + w->off, w->data, w->len);
			break;
		case 1:         /* lost */
			break;
		default:        /* torn: some sectors made it */
			for (size_t s = 0; s < w->len; s += 512)
				if (tl_rand_below(rng, 2))
					memcpy(img + w->off + s, w->data + s,
					       w->len - s < 512 ? w->len - s : 512);
		}
	}
}

uint8_t *crash_backend_image(const struct crash_backend *cb, uint64_t *rng)
{
	uint8_t *img = malloc(cb->base.size);

	if (!img)
		return NULL;
	memcpy(img, cb->durable, cb->base.size);
	apply_unflushed(cb, img, rng);
	return img;
}

struct crash_backend *crash_backend_after_cut(const struct crash_backend *cb, uint64_t *rng)
{
	struct crash_backend *n = crash_backend_create(cb->base.size, cb->durable);

	if (!n)
		return NULL;
	apply_unflushed(cb, n->durable, rng);
	memcpy(n->current, n->durable, n->base.size);
	return n;
}

void crash_backend_free(struct crash_backend *cb)
{
	if (!cb)
		return;
	while (cb->unflushed) {
		struct pending_write *w = cb->unflushed;

		cb->unflushed = w->next;
		free(w);
	}
	buf_put(cb->durable, cb->base.size);
	buf_put(cb->current, cb->base.size);
	free(cb);
}

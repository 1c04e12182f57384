/* store/io_threads.c: the worker-thread I/O engine.
 *
 * For kernels and containers where io_uring is disabled. Workers only make
 * the blocking syscalls (preadv, pwritev, fdatasync) and hand each finished
 * bio back through a completion list and one ev_async, so a single wake-up of
 * the loop drains many completions. Workers block every signal.
 */
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/thread.h"

#define THREADS_MAX 16

struct threads_engine {
	struct store_io_engine base;
	int             fd;
	int             rfd;            /* reads */
	unsigned        nthreads;
	pthread_t       tid[THREADS_MAX];
	pthread_mutex_t lock;
	pthread_cond_t  cond;
	bool            stopping;
	STAILQ_HEAD(, store_bio) todo, done;
	struct ev_loop *loop;
	ev_async        done_async;
};

/* Transfers the whole iovec; a short transfer that makes no progress is -EIO. */
static int threads_rw(int fd, struct store_bio *b)
{
	struct iovec iov[64], *v = iov;
	int cnt = b->iovcnt;
	uint64_t off = b->offset;

	if (cnt > 64)
		return -EINVAL;
	for (int i = 0; i < cnt; i++)
		iov[i] = b->iov[i];
	while (cnt > 0) {
		ssize_t r = b->op == STORE_BIO_READ ? preadv(fd, v, cnt, (off_t)off)
		                                    : pwritev(fd, v, cnt, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		off += (uint64_t)r;
		while (cnt > 0 && (size_t)r >= v->iov_len) {
			r -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + r;
			v->iov_len -= (size_t)r;
		}
	}
	return 0;
}

static int threads_run(const struct threads_engine *e, struct store_bio *b)
{
	int rc = 0;

	if (b->op != STORE_BIO_FLUSH)
		rc = threads_rw(b->op == STORE_BIO_READ ? e->rfd : e->fd, b);
	if (rc == 0 && (b->op == STORE_BIO_FLUSH || b->flush))
		rc = fdatasync(e->fd) ? -errno : 0;
	return rc;
}

static void *threads_main(void *arg)
{
	struct threads_engine *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct store_bio *b;

		while (!e->stopping && STAILQ_EMPTY(&e->todo))
			pthread_cond_wait(&e->cond, &e->lock);
		if (STAILQ_EMPTY(&e->todo))
			break;
		b = STAILQ_FIRST(&e->todo);
		STAILQ_REMOVE_HEAD(&e->todo, link);
		pthread_mutex_unlock(&e->lock);

		b->result = threads_run(e, b);

		pthread_mutex_lock(&e->lock);
		STAILQ_INSERT_TAIL(&e->done, b, link);
		ev_async_send(e->loop, &e->done_async);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

static void threads_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct threads_engine *e = w->data;
	STAILQ_HEAD(, store_bio) list = STAILQ_HEAD_INITIALIZER(list);

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&e->lock);
	STAILQ_CONCAT(&list, &e->done);
	pthread_mutex_unlock(&e->lock);
	while (!STAILQ_EMPTY(&list)) {
		struct store_bio *b = STAILQ_FIRST(&list);

		STAILQ_REMOVE_HEAD(&list, link);
		b->done(b);
	}
}

static int threads_start(struct store_io_engine *base, struct ev_loop *loop)
{
	struct threads_engine *e = (struct threads_engine *)base;
	int rc = 0;

	e->loop = loop;
	ev_async_init(&e->done_async, threads_done_cb);
	e->done_async.data = e;
	ev_async_start(loop, &e->done_async);

	unsigned want = e->nthreads;

	e->nthreads = 0;
	for (unsigned i = 0; i < want && rc == 0; i++) {
		rc = store_thread_start(&e->tid[i], threads_main, e);
		if (rc == 0)
			e->nthreads++;
	}
	return rc;
}

static void threads_submit(struct store_io_engine *base, struct store_bio *b)
{
	struct threads_engine *e = (struct threads_engine *)base;

	pthread_mutex_lock(&e->lock);
	STAILQ_INSERT_TAIL(&e->todo, b, link);
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static void threads_destroy(struct store_io_engine *base)
{
	struct threads_engine *e = (struct threads_engine *)base;

	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	for (unsigned i = 0; e->loop && i < e->nthreads; i++)
		pthread_join(e->tid[i], NULL);
	if (e->loop)
		ev_async_stop(e->loop, &e->done_async);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static const struct store_engine_ops threads_ops = {
	.start   = threads_start,
	.submit  = threads_submit,
	.destroy = threads_destroy,
};

int store_engine_threads_create(int fd, int read_fd, unsigned nthreads,
                                struct store_io_engine **out)
{
	struct threads_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->base.ops = &threads_ops;
	e->base.name = "threads";
	e->fd = fd;
	e->rfd = read_fd;
	e->nthreads = nthreads > THREADS_MAX ? THREADS_MAX : nthreads ? nthreads : 1;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	STAILQ_INIT(&e->todo);
	STAILQ_INIT(&e->done);
	*out = &e->base;
	return 0;
}

/* store/io_uring.c: the io_uring I/O engine.
 *
 * The ring's completions are signalled on an eventfd that the loop watches
 * (never the data file: regular files are always "ready"). A write that must
 * be durable is a writev linked to an fdatasync (IOSQE_IO_LINK), one trip to
 * the kernel. A short write counts as -EIO; the linked fsync of a failed
 * write completes with -ECANCELED and the bio keeps the first error.
 *
 * When the submission queue is full, bios wait in a backlog that drains as
 * completions free slots.
 */
#include <errno.h>
#include <ev.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store/backend.h"

struct uring_engine {
	struct store_io_engine base;
	int             fd;
	int             rfd;         /* reads */
	int             efd;
	unsigned        free_sqes;   /* entries we may still use */
	struct io_uring ring;
	STAILQ_HEAD(, store_bio) backlog;
	ev_io           efd_w;
	struct ev_loop *loop;
};

#define URING_FSYNC_TAG 1ul      /* low bit of user_data marks the linked fsync */

static size_t bio_bytes(const struct store_bio *b)
{
	size_t n = 0;

	for (int i = 0; i < b->iovcnt; i++)
		n += b->iov[i].iov_len;
	return n;
}

static void uring_prep(struct uring_engine *e, struct store_bio *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

	b->result = 0;
	b->pending = 1;
	switch (b->op) {
	case STORE_BIO_READ:
		io_uring_prep_readv(sqe, e->rfd, b->iov, (unsigned)b->iovcnt, b->offset);
		break;
	case STORE_BIO_WRITE:
		io_uring_prep_writev(sqe, e->fd, b->iov, (unsigned)b->iovcnt, b->offset);
		break;
	case STORE_BIO_FLUSH:
		io_uring_prep_fsync(sqe, e->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, b);
	e->free_sqes--;
	if (b->op == STORE_BIO_WRITE && b->flush) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(&e->ring);
		io_uring_prep_fsync(sqe, e->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data(sqe, (void *)((uintptr_t)b | URING_FSYNC_TAG));
		e->free_sqes--;
		b->pending = 2;
	}
}

static unsigned bio_sqes(const struct store_bio *b)
{
	return b->op == STORE_BIO_WRITE && b->flush ? 2 : 1;
}

static void uring_kick(struct uring_engine *e)
{
	bool any = false;

	while (!STAILQ_EMPTY(&e->backlog)) {
		struct store_bio *b = STAILQ_FIRST(&e->backlog);

		if (e->free_sqes < bio_sqes(b))
			break;
		STAILQ_REMOVE_HEAD(&e->backlog, link);
		uring_prep(e, b);
		any = true;
	}
	if (any)
		io_uring_submit(&e->ring);
}

static void uring_complete(struct uring_engine *e, struct io_uring_cqe *cqe)
{
	uintptr_t tag = (uintptr_t)io_uring_cqe_get_data(cqe);
	struct store_bio *b = (struct store_bio *)(tag & ~URING_FSYNC_TAG);
	int res = cqe->res;

	e->free_sqes++;
	if (res < 0 && b->result == 0)
		b->result = res;
	else if (res >= 0 && !(tag & URING_FSYNC_TAG) && b->op != STORE_BIO_FLUSH &&
	         (size_t)res != bio_bytes(b) && b->result == 0)
		b->result = -EIO;       /* short transfer */
	if (--b->pending == 0)
		b->done(b);
}

static void uring_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct uring_engine *e = w->data;
	struct io_uring_cqe *cqe;
	unsigned ready;
	uint64_t n;
	ssize_t r;

	(void)loop;
	(void)revents;
	r = read(e->efd, &n, sizeof(n));    /* a hint only: the CQ is the truth */
	(void)r;
	/* Only what is there now: a read the page cache serves completes inside
	 * its submission, so a done() that reads again would keep this loop
	 * going for ever and starve the loop's timers. Later completions
	 * signal the eventfd again. */
	ready = io_uring_cq_ready(&e->ring);
	while (ready-- > 0 && io_uring_peek_cqe(&e->ring, &cqe) == 0) {
		struct io_uring_cqe c = *cqe;

		io_uring_cqe_seen(&e->ring, cqe);
		uring_complete(e, &c);
	}
	uring_kick(e);
}

static int uring_start(struct store_io_engine *base, struct ev_loop *loop)
{
	struct uring_engine *e = (struct uring_engine *)base;

	e->loop = loop;
	ev_io_init(&e->efd_w, uring_cb, e->efd, EV_READ);
	e->efd_w.data = e;
	ev_io_start(loop, &e->efd_w);
	return 0;
}

static void uring_submit(struct store_io_engine *base, struct store_bio *b)
{
	struct uring_engine *e = (struct uring_engine *)base;

	STAILQ_INSERT_TAIL(&e->backlog, b, link);
	uring_kick(e);
}

static void uring_destroy(struct store_io_engine *base)
{
	struct uring_engine *e = (struct uring_engine *)base;

	if (e->loop)
		ev_io_stop(e->loop, &e->efd_w);
	io_uring_queue_exit(&e->ring);
	close(e->efd);
	free(e);
}

static const struct store_engine_ops uring_ops = {
	.start   = uring_start,
	.submit  = uring_submit,
	.destroy = uring_destroy,
};

int store_engine_uring_create(int fd, int read_fd, unsigned depth, struct store_io_engine **out)
{
	struct uring_engine *e = calloc(1, sizeof(*e));
	int rc;

	if (!e)
		return -ENOMEM;
	rc = io_uring_queue_init(depth, &e->ring, 0);
	if (rc < 0) {
		free(e);
		return rc;
	}
	e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->efd < 0 || io_uring_register_eventfd(&e->ring, e->efd) < 0) {
		rc = e->efd < 0 ? -errno : -EINVAL;
		if (e->efd >= 0)
			close(e->efd);
		io_uring_queue_exit(&e->ring);
		free(e);
		return rc;
	}
	e->base.ops = &uring_ops;
	e->base.name = "io_uring";
	e->fd = fd;
	e->rfd = read_fd;
	e->free_sqes = depth;
	STAILQ_INIT(&e->backlog);
	*out = &e->base;
	return 0;
}

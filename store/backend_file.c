/* store/backend_file.c: the pool on a local file or block device.
 *
 * Written with O_DIRECT where the file system allows it (the log does its
 * own batching; the page cache would only add a copy), falling back to
 * buffered I/O, where fdatasync still makes each batch durable.
 *
 * Reads: when the pool has a read cache of its own (store/cache.h), direct
 * too, so that no block sits in RAM twice and the cache's bound is what
 * reads cost in memory. Without one, through a second, buffered
 * descriptor: the kernel's page cache is the read cache, as it is for any
 * file a target serves. Readahead is off on it (POSIX_FADV_RANDOM): a read
 * brings in only what was asked, so it never races a direct write to a
 * range nothing has read; a direct write drops the cached pages it covers.
 *
 * An exclusive flock() keeps a second sluiced from opening the same pool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"

#define URING_DEPTH    256
#define IO_THREADS     4

struct file_backend {
	struct store_backend    base;
	int                     fd;
	int                     rfd;    /* reads: buffered, or fd */
	struct store_io_engine *eng;
};

static void file_log(store_log_fn *log, void *arg, enum store_log_level lvl,
                     const char *msg)
{
	if (log)
		log(arg, lvl, msg);
}

static int file_read_sync(struct store_backend *be, void *buf, size_t len, uint64_t off)
{
	struct file_backend *f = (struct file_backend *)be;

	while (len > 0) {
		ssize_t r = pread(f->fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		buf = (char *)buf + r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int file_write_sync(struct store_backend *be, const void *buf, size_t len,
                           uint64_t off)
{
	struct file_backend *f = (struct file_backend *)be;

	while (len > 0) {
		ssize_t r = pwrite(f->fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		buf = (const char *)buf + r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return fdatasync(f->fd) ? -errno : 0;
}

static int file_start(struct store_backend *be, struct ev_loop *loop)
{
	struct file_backend *f = (struct file_backend *)be;

	return f->eng->ops->start(f->eng, loop);
}

static void file_submit(struct store_backend *be, struct store_bio *b)
{
	struct file_backend *f = (struct file_backend *)be;

	f->eng->ops->submit(f->eng, b);
}

static void file_destroy(struct store_backend *be)
{
	struct file_backend *f = (struct file_backend *)be;

	if (f->eng)
		f->eng->ops->destroy(f->eng);
	if (f->rfd != f->fd)
		close(f->rfd);
	close(f->fd);
	free(f);
}

static const struct store_backend_ops file_ops = {
	.name       = "file",
	.read_sync  = file_read_sync,
	.write_sync = file_write_sync,
	.start      = file_start,
	.submit     = file_submit,
	.destroy    = file_destroy,
};

static int file_open_fd(const char *path, uint64_t create_bytes, bool read_only,
                        store_log_fn *log, void *log_arg)
{
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd = open(path, flags | O_DIRECT);

	if (fd < 0 && errno == ENOENT && create_bytes > 0 && !read_only) {
		fd = open(path, flags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0 && ftruncate(fd, (off_t)create_bytes) < 0) {
			int e = errno;
			close(fd);
			unlink(path);
			errno = e;
			return -1;
		}
		if (fd >= 0) {
			close(fd);
			fd = open(path, flags | O_DIRECT);
		}
	}
	if (fd < 0 && errno == EINVAL) {
		file_log(log, log_arg, STORE_LOG_INFO,
		         "O_DIRECT not supported here: using buffered I/O with fdatasync");
		fd = open(path, flags);
	}
	return fd;
}

/* A process killed a moment ago may hold the lock a few milliseconds more
 * (its io_uring is torn down after it is reaped): wait up to 2 s. */
static int file_lock(int fd, bool shared)
{
	for (int tries = 0; tries < 200; tries++) {
		struct timespec ten_ms = { 0, 10 * 1000 * 1000 };

		if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK)
			return -errno;
		nanosleep(&ten_ms, NULL);
	}
	return -EBUSY;
}

static int file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int file_engine(int fd, int rfd, enum store_engine want, store_log_fn *log,
                       void *log_arg, struct store_io_engine **out)
{
	int rc;

	if (want == STORE_ENGINE_THREADS)
		return store_engine_threads_create(fd, rfd, IO_THREADS, out);
	rc = store_engine_uring_create(fd, rfd, URING_DEPTH, out);
	if (rc == 0 || want == STORE_ENGINE_URING)
		return rc;
	file_log(log, log_arg, STORE_LOG_WARN,
	         "io_uring unavailable (disabled by the kernel or a seccomp profile): "
	         "using the thread-pool I/O engine");
	return store_engine_threads_create(fd, rfd, IO_THREADS, out);
}

/* The buffered descriptor reads go through; fd itself when it is buffered
 * already or a second open fails. */
static int file_read_fd(const char *path, int fd)
{
	int rfd;

	if (!(fcntl(fd, F_GETFL) & O_DIRECT) || (rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return fd;
	posix_fadvise(rfd, 0, 0, POSIX_FADV_RANDOM);
	return rfd;
}

int store_backend_file_open(const char *path, uint64_t create_bytes,
                            enum store_engine engine, bool read_only, bool direct_reads,
                            store_log_fn *log, void *log_arg,
                            struct store_backend **out)
{
	struct file_backend *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return -ENOMEM;
	f->base.ops = &file_ops;
	f->fd = file_open_fd(path, create_bytes, read_only, log, log_arg);
	if (f->fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = file_lock(f->fd, read_only);
	if (rc)
		goto fail_fd;
	rc = file_size(f->fd, &f->base.size);
	if (rc)
		goto fail_fd;
	f->rfd = direct_reads ? f->fd : file_read_fd(path, f->fd);
	rc = file_engine(f->fd, f->rfd, engine, log, log_arg, &f->eng);
	if (rc)
		goto fail_fd;
	f->base.engine = f->eng->name;
	*out = &f->base;
	return 0;
fail_fd:
	if (f->rfd > 0 && f->rfd != f->fd)
		close(f->rfd);
	close(f->fd);
fail:
	free(f);
	return rc;
}

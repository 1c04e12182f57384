/* store/backend.h: where the pool's bytes live (private to store/ and tests).
 *
 * A backend is one linear byte space: a file or block device through an I/O
 * engine (io_uring or worker threads), or a test's memory image. Synchronous
 * calls are for open, format and recovery, before the loop serves anything;
 * everything after that goes through submit(), whose done() runs later on the
 * loop thread, exactly once, never inside submit().
 *
 * Buffers are 4 KiB-aligned and offsets and lengths 4 KiB multiples, so a
 * backend may use O_DIRECT.
 */
#ifndef SLUICE_STORE_BACKEND_H
#define SLUICE_STORE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "store/store.h"

enum store_bio_op { STORE_BIO_READ, STORE_BIO_WRITE, STORE_BIO_FLUSH };

struct store_bio {
	enum store_bio_op op;
	bool          flush;      /* WRITE: flush the device after the write */
	uint64_t      offset;     /* bytes */
	struct iovec *iov;        /* borrowed until done() */
	int           iovcnt;
	int           result;     /* 0 or -errno (a short transfer is -EIO) */
	void        (*done)(struct store_bio *b);
	void         *owner;
	/* engine-private */
	STAILQ_ENTRY(store_bio) link;
	int           pending;
};

struct store_backend;

struct store_backend_ops {
	const char *name;
	int  (*read_sync)(struct store_backend *be, void *buf, size_t len, uint64_t off);
	/* writes and makes durable; len 0: only flushes */
	int  (*write_sync)(struct store_backend *be, const void *buf, size_t len, uint64_t off);
	int  (*start)(struct store_backend *be, struct ev_loop *loop);
	void (*submit)(struct store_backend *be, struct store_bio *b);
	void (*destroy)(struct store_backend *be);
};

struct store_backend {
	const struct store_backend_ops *ops;
	uint64_t size;            /* bytes */
	const char *engine;       /* static name of the I/O engine */
};

/* Opens (creating sparse when create_bytes > 0 and it does not exist) a file
 * or block device, locked against a second opener. direct_reads: reads
 * bypass the page cache too (the pool has a read cache of its own). */
int store_backend_file_open(const char *path, uint64_t create_bytes,
                            enum store_engine engine, bool read_only, bool direct_reads,
                            store_log_fn *log, void *log_arg,
                            struct store_backend **out);

/* I/O engines for a file (store/io_threads.c, store/io_uring.c): writes and
 * flushes go to fd, reads to read_fd (which may be fd). */
struct store_engine_ops;
struct store_io_engine {
	const struct store_engine_ops *ops;
	const char *name;
};
struct store_engine_ops {
	int  (*start)(struct store_io_engine *e, struct ev_loop *loop);
	void (*submit)(struct store_io_engine *e, struct store_bio *b);
	void (*destroy)(struct store_io_engine *e);
};
int store_engine_threads_create(int fd, int read_fd, unsigned nthreads,
                                struct store_io_engine **out);
int store_engine_uring_create(int fd, int read_fd, unsigned depth, struct store_io_engine **out);

#endif

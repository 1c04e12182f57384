/* tests/fuzz/fuzz_mgmt.c: libFuzzer target for the HTTP management API:
 * libmicrohttpd's request parsing as we drive it, routing, the bearer token,
 * JSON bodies and their checks, streamed image bodies, and every handler.
 *
 * The input is the raw bytes of one or more HTTP/1.1 requests, sent over a
 * real loopback TCP connection to the real API (mgmt_start()) serving a pool
 * in memory (the crash backend) that holds volume v0 (1 MiB), its snapshot
 * s0, a clone c0 of it, volume t0 (4 KiB: an image too large for it fits in
 * an input) and target FUZZ_IQN, which maps v0. What follows FUZZ_MARK in
 * the input goes on a second connection, once the first one's requests are
 * in (and may still be running: requests that meet each other). Once the
 * server has gone quiet, the write sides are shut; the run ends when the
 * server has closed them or after FUZZ_TURNS loop turns. Whatever the
 * bytes, the server must neither crash nor leak, and must still answer
 * GET /health on a fresh connection afterwards (else abort(): a finding).
 *
 * Each input starts from the same state, so that findings replay alone:
 * when an input changed the pool (a fingerprint of its volumes and
 * metadata records differs) the API and pool are torn down and built again,
 * and every FUZZ_REBUILD inputs anyway (the log grows with data writes).
 */
#define _GNU_SOURCE             /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mgmt/mgmt.h"
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define FUZZ_TOKEN      "fuzz-token-3f9a1c"
#define FUZZ_IQN        "iqn.2026-11.io.sluice:fuzz"
#define FUZZ_TURNS      1000    /* loop turns per input, at most */
#define FUZZ_QUIET      64      /* turns without a byte back: the server is idle */
#define FUZZ_REBUILD    1000    /* inputs between two rebuilds, at most */
#define FUZZ_POOL_BYTES (64u << 20)
/* In an input, the end of what the first connection sends and the start of
 * what a second one sends. */
#define FUZZ_MARK       "\r\n~~next connection~~\r\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	struct ev_loop       *loop;
	struct crash_backend *cb;
	struct store_pool    *pool;
	struct mgmt_srv      *mgmt;
	uint16_t              port;
	uint64_t              print;    /* the fingerprint of a fresh state */
	unsigned              inputs;   /* since the last rebuild */
} fz;

/* ---- the state each input starts from ------------------------------------ */

static void fuzz_fnv(uint64_t *h, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		*h = (*h ^ b[i]) * 0x100000001b3ull;
}

static int fuzz_meta_print(void *arg, const char *key, const void *value, size_t len)
{
	fuzz_fnv(arg, key, strlen(key) + 1);
	fuzz_fnv(arg, value, len);
	return 0;
}

/* What the API can change: volumes (sizes, modes, data, snapshots, clones)
 * and metadata records (targets, discovery). */
static uint64_t fuzz_fingerprint(void)
{
	struct store_vol_info vi[16];
	size_t n = store_vol_list(fz.pool, vi, 16);
	uint64_t h = 0xcbf29ce484222325ull;

	fuzz_fnv(&h, &n, sizeof(n));
	for (size_t i = 0; i < n && i < 16; i++) {
		fuzz_fnv(&h, vi[i].name, strlen(vi[i].name) + 1);
		fuzz_fnv(&h, vi[i].origin, strlen(vi[i].origin) + 1);
		fuzz_fnv(&h, &vi[i].id, sizeof(vi[i].id));
		fuzz_fnv(&h, &vi[i].sectors, sizeof(vi[i].sectors));
		fuzz_fnv(&h, &vi[i].write_back, sizeof(vi[i].write_back));
		fuzz_fnv(&h, &vi[i].mapped_sectors, sizeof(vi[i].mapped_sectors));
		fuzz_fnv(&h, &vi[i].extents, sizeof(vi[i].extents));
	}
	store_meta_foreach(fz.pool, "", fuzz_meta_print, &h);
	return h;
}

/* A loopback port nobody listens on now, for mgmt_start(). */
static uint16_t fuzz_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Another process may take the port between the probe and the bind. */
static void fuzz_mgmt_start(void)
{
	struct mgmt_opts o = {
		.loop = fz.loop, .pool = fz.pool, .host = "127.0.0.1",
		.data_dir = "/nonexistent", .api_token = FUZZ_TOKEN,
		.log = tl_log, .log_arg = NULL,
	};

	for (int tries = 0; tries < 20; tries++) {
		o.port = fuzz_free_port();
		if (o.port && mgmt_start(&o, &fz.mgmt) == 0) {
			fz.port = o.port;
			return;
		}
	}
	fprintf(stderr, "fuzz_mgmt: cannot start the API on loopback\n");
	abort();
}

static void fuzz_setup(void)
{
	static const char target[] = "{\"iqn\":\"" FUZZ_IQN "\",\"luns\":[{\"lun\":0,"
		"\"volume\":\"v0\"}],\"allow\":[\"*\"],"
		"\"chap\":{\"user\":\"u\",\"secret\":\"fuzz-secret-12\"}}";
	struct store_pool_opts o = { .create_bytes = FUZZ_POOL_BYTES,
	                             .segment_bytes = 1u << 20 };
	struct tl_op op = { 0 };
	struct store_vol *v;
	char block[4096];

	memset(block, 0x5a, sizeof(block));
	fz.cb = crash_backend_create(FUZZ_POOL_BYTES, NULL);
	o.backend = crash_backend_base(fz.cb);
	if (store_pool_open(fz.loop, &o, &fz.pool) ||
	    tl_vol_create(fz.loop, fz.pool, "v0", 2048, false) ||
	    store_vol_open(fz.pool, "v0", &v))
		abort();
	if (tl_write(fz.loop, v, 0, block, sizeof(block), 0))   /* shared with c0 */
		abort();
	store_vol_close(v);
	if (tl_snap_create(fz.loop, fz.pool, "v0", "s0") ||
	    tl_vol_clone(fz.loop, fz.pool, "v0@s0", "c0", true) ||
	    tl_vol_create(fz.loop, fz.pool, "t0", 8, false))
		abort();
	store_meta_put(fz.pool, MGMT_TARGET_PREFIX FUZZ_IQN, target, sizeof(target) - 1,
	               tl_done, &op);
	if (tl_wait(fz.loop, &op))
		abort();
	fuzz_mgmt_start();
	fz.print = fuzz_fingerprint();
	fz.inputs = 0;
}

static void fuzz_stopped(void *arg, int err)
{
	(void)err;
	*(bool *)arg = true;
}

static void fuzz_teardown(void)
{
	bool stopped = false;

	mgmt_stop(fz.mgmt, fuzz_stopped, &stopped);
	for (int turn = 0; !stopped && turn < 100000; turn++)   /* never blocks */
		ev_run(fz.loop, EVRUN_NOWAIT);
	if (!stopped) {
		fprintf(stderr, "fuzz_mgmt: mgmt_stop() never finished\n");
		abort();
	}
	if (tl_pool_close(fz.loop, fz.pool))
		abort();
	crash_backend_free(fz.cb);
}

/* ---- client connections ------------------------------------------------ */

/* Non-blocking from the start, so that a signal (libFuzzer's timer) cannot
 * leave a connect half done. */
static int fuzz_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(fz.port) };
	struct pollfd pfd = { .events = POLLOUT };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
	int err = 0;
	socklen_t len = sizeof(err);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		abort();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		pfd.fd = fd;
		/* the listener's accept runs on our loop: turn it while waiting */
		for (int turn = 0; turn < 10000 && poll(&pfd, 1, 0) == 0; turn++)
			ev_run(fz.loop, EVRUN_NOWAIT);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err ||
		    !(pfd.revents & POLLOUT)) {
			fprintf(stderr, "fuzz_mgmt: connect to the API: %s\n",
			        strerror(err ? err : ETIMEDOUT));
			abort();
		}
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A client connection: what it sends, and what came back (the reply is
 * kept only when reply is set, up to cap - 1 bytes, NUL-terminated). */
struct fuzz_conn {
	int            fd;
	const uint8_t *data;
	size_t         size, sent;
	char          *reply;
	size_t         cap, got;
	bool           closed;
};

static void fuzz_send(struct fuzz_conn *c)
{
	ssize_t n;

	if (c->closed || c->sent == c->size)
		return;
	n = write(c->fd, c->data + c->sent, c->size - c->sent);
	if (n > 0)
		c->sent += (size_t)n;
}

/* Reads what came back; returns how much (0 once it is closed). */
static size_t fuzz_recv(struct fuzz_conn *c)
{
	char sink[65536];
	size_t total = 0;
	ssize_t n;

	if (c->closed)
		return 0;
	while ((n = read(c->fd, sink, sizeof(sink))) > 0) {
		total += (size_t)n;
		if (c->reply && c->got + 1 < c->cap) {
			size_t k = c->cap - 1 - c->got < (size_t)n ? c->cap - 1 - c->got : (size_t)n;

			memcpy(c->reply + c->got, sink, k);
			c->got += k;
			c->reply[c->got] = '\0';
		}
	}
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		c->closed = true;
	return total;
}

/* Connection 0 sends all it has and the server goes quiet; then
 * connection 1 (when there is one) does the same, while 0 stays open, so
 * that its request can still be running (an image import waiting for the
 * rest of its body, say); then both write sides are shut, and the run
 * ends when the server has closed both, or after FUZZ_TURNS. */
static void fuzz_exchange(struct fuzz_conn *c, int nconns)
{
	int active = 1, quiet = 0;

	for (int i = 0; i < nconns; i++)
		c[i].fd = fuzz_connect();
	for (int turn = 0; turn < FUZZ_TURNS; turn++) {
		size_t got = 0;
		bool open = false, sending = false;

		for (int i = 0; i < active && i < nconns; i++)
			fuzz_send(&c[i]);
		ev_run(fz.loop, EVRUN_NOWAIT);
		for (int i = 0; i < nconns; i++) {
			got += fuzz_recv(&c[i]);
			open |= !c[i].closed;
			sending |= i < active && c[i].sent < c[i].size && !c[i].closed;
		}
		if (!open)
			break;
		quiet = got || sending ? 0 : quiet + 1;
		if (quiet < FUZZ_QUIET || active > nconns)
			continue;
		quiet = 0;
		if (++active > nconns)
			for (int i = 0; i < nconns; i++)
				shutdown(c[i].fd, SHUT_WR);
	}
	for (int i = 0; i < nconns; i++)
		close(c[i].fd);
	for (int turn = 0; turn < 20; turn++)   /* let the server see the close */
		ev_run(fz.loop, EVRUN_NOWAIT);
}

/* The API still serves: a fresh connection gets 200 from GET /health. */
static void fuzz_health(void)
{
	static const char req[] = "GET /api/v1/health HTTP/1.1\r\nHost: fuzz\r\n"
	                          "Connection: close\r\n\r\n";
	char reply[256] = "";
	struct fuzz_conn c = { .data = (const uint8_t *)req, .size = sizeof(req) - 1,
	                       .reply = reply, .cap = sizeof(reply) };

	fuzz_exchange(&c, 1);
	if (strncmp(reply, "HTTP/1.1 200 ", 13) != 0) {
		fprintf(stderr, "fuzz_mgmt: GET /api/v1/health after the input: %s\n",
		        reply[0] ? reply : "no reply");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *mark = memmem(data, size, FUZZ_MARK, sizeof(FUZZ_MARK) - 1);
	struct fuzz_conn c[2] = { { .data = data, .size = size } };
	int nconns = 1;

	if (mark) {
		c[0].size = (size_t)(mark - data);
		c[1].data = mark + sizeof(FUZZ_MARK) - 1;
		c[1].size = size - c[0].size - (sizeof(FUZZ_MARK) - 1);
		nconns = 2;
	}
	if (!fz.loop) {
		tl_log_quiet = true;
		fz.loop = ev_loop_new(EVFLAG_AUTO);
		fuzz_setup();
	}
	fuzz_exchange(c, nconns);
	fuzz_health();
	if (++fz.inputs >= FUZZ_REBUILD || fuzz_fingerprint() != fz.print) {
		fuzz_teardown();
		fuzz_setup();
	}
	return 0;
}

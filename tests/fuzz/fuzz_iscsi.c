/* tests/fuzz/fuzz_iscsi.c: libFuzzer target for the iSCSI target's network
 * parsers: PDU framing, login negotiation, text keys, SCSI CDB decoding.
 *
 * The input is the byte stream an initiator sends, delivered over a real
 * loopback TCP connection to a real iscsi_srv serving one volume from a
 * pool in memory (the crash backend, which never cuts power here). The
 * server's answers are read and dropped; the run ends when the server closes
 * the connection or after a bounded number of loop turns. Whatever the
 * bytes, the server must neither crash nor leak, and must keep serving.
 */
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

#include "iscsi/iscsi.h"
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define FUZZ_IQN    "iqn.2026-11.io.sluice:fuzz"
#define FUZZ_TURNS  400

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	struct ev_loop    *loop;
	struct store_pool *pool;
	struct iscsi_srv  *srv;
	uint16_t           port;
} fz;

static void fuzz_setup(void)
{
	static const char target[] = "{\"iqn\": \"" FUZZ_IQN "\", \"luns\": "
	                             "[{\"lun\": 0, \"volume\": \"v0\"}], \"allow\": [\"*\"], \"chap\": null}";
	struct crash_backend *cb = crash_backend_create(64u << 20, NULL);
	struct store_pool_opts o = {
		.backend = crash_backend_base(cb), .create_bytes = 64u << 20,
		.segment_bytes = 1u << 20,
	};
	struct iscsi_portal_addr addr = { "127.0.0.1", 0 };
	struct iscsi_srv_opts so = { .portals = &addr, .nportals = 1 };
	struct tl_op op = { 0 };

	tl_log_quiet = true;
	fz.loop = ev_loop_new(EVFLAG_AUTO);
	if (store_pool_open(fz.loop, &o, &fz.pool) ||
	    tl_vol_create(fz.loop, fz.pool, "v0", 2048, false))
		abort();
	store_meta_put(fz.pool, "target/" FUZZ_IQN, target, sizeof(target) - 1, tl_done, &op);
	if (tl_wait(fz.loop, &op) || iscsi_srv_create(fz.loop, fz.pool, &so, &fz.srv))
		abort();
	fz.port = iscsi_srv_port(fz.srv, 0);
}

/* A connect interrupted by libFuzzer's timer signal goes on by itself:
 * wait for it to finish. */
static bool fuzz_connected(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	if (errno != EINTR && errno != EINPROGRESS && errno != EALREADY)
		return false;
	while (poll(&pfd, 1, 5000) < 0 && errno == EINTR)
		;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		errno = err ? err : errno;
		return false;
	}
	return true;
}

static int fuzz_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(fz.port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		abort();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && !fuzz_connected(fd)) {
		fprintf(stderr, "fuzz_iscsi: connect to the target: %s\n", strerror(errno));
		abort();
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Sends what fits, runs the loop, drains the answers; true once the server
 * has closed the connection. */
static bool fuzz_turn(int fd, const uint8_t *data, size_t size, size_t *sent)
{
	char sink[65536];
	ssize_t n;

	if (*sent < size) {
		n = write(fd, data + *sent, size - *sent);
		if (n > 0)
			*sent += (size_t)n;
		if (*sent == size)
			shutdown(fd, SHUT_WR);
	}
	ev_run(fz.loop, EVRUN_NOWAIT);
	while ((n = read(fd, sink, sizeof(sink))) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t sent = 0;
	int fd;

	if (!fz.loop)
		fuzz_setup();
	fd = fuzz_connect();
	if (size == 0)
		shutdown(fd, SHUT_WR);
	for (int turn = 0; turn < FUZZ_TURNS; turn++)
		if (fuzz_turn(fd, data, size, &sent))
			break;
	close(fd);
	for (int turn = 0; turn < 20; turn++)     /* let the server see the close */
		ev_run(fz.loop, EVRUN_NOWAIT);
	return 0;
}

/* tests/fuzz/fuzz_iscsi.c: libFuzzer target for the iSCSI target's network
 * parsers: PDU framing, login negotiation, text keys, SCSI CDB decoding.
 *
 * The input is the byte stream an initiator sends, delivered over a real
 * loopback TCP connection to a real iscsi_srv serving one volume from a
 * pool in memory (the crash backend, which never cuts power here). The
 * server's answers are read and dropped; the run ends when the server closes
 * the connection or after a bounded number of loop turns. Whatever the
 * bytes, the server must neither crash nor leak, and must keep serving.
 *
 * Two things an input cannot know are filled in (make_iscsi_seeds.py
 * writes the seeds): FUZZ_NAA_MARK stands for the LU's NAA, which comes
 * from the pool's random UUID, so that EXTENDED COPY descriptors and ROD
 * tokens can name the LU; and an input that offers "AuthMethod=CHAP" meets
 * a discovery CHAP account, the others none (so SendTargets stays open).
 * FUZZ_TOKEN_MARK stands for the 512 bytes of the last ROD token the server
 * sent (RECEIVE ROD TOKEN INFORMATION): sending stops there until one came
 * or the server is quiet, so that WRITE USING TOKEN can use a real token
 * (the LU, and its tokens, live as long as the session: no other way).
 * FUZZ_CHAP_MARK, likewise, waits for a CHAP challenge and becomes the right
 * CHAP_R value ("0x" and 32 hex digits) for the discovery account.
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

#include "iscsi/internal.h"     /* iscsi_chap_md5, iscsi_hex_decode */
#include "iscsi/iscsi.h"
#include "iscsi/pr.h"           /* pr_forget_all */
#include "iscsi/scsi.h"         /* SCSI_NAA_OUI */
#include "store/store.h"
#include "tests/lib/crash_backend.h"
#include "tests/lib/testlib.h"

#define FUZZ_IQN    "iqn.2026-11.io.sluice:fuzz"
#define FUZZ_TURNS  1000
#define FUZZ_QUIET  50
#define FUZZ_NAA_MARK "\xfe\xedNAA-of-fuzz-LU"       /* 16 bytes */
#define FUZZ_CHAP   "AuthMethod=CHAP"
#define FUZZ_TOKEN_MARK "\xfe\xedROD-token-here"      /* 16 bytes */
#define FUZZ_TOKEN_LEN  512
#define FUZZ_CHAP_MARK  "\xfe\xed" "CHAP-response!"  /* 16 bytes */
#define FUZZ_CHAP_USER  "disc"
#define FUZZ_CHAP_SECRET "disc-secret-12"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	struct ev_loop    *loop;
	struct store_pool *pool;
	struct iscsi_srv  *srv;
	uint16_t           port;
	uint8_t            naa[16];     /* as iscsi/lu.c makes it */
	bool               disc_chap;   /* the discovery record has CHAP */
	bool               have_token;  /* token: the last one seen */
	uint8_t            token[FUZZ_TOKEN_LEN];
	bool               have_chap;   /* the last CHAP challenge seen: */
	uint8_t            chap_id, chap_c[64];
	size_t             chap_clen;
} fz;

static void fuzz_naa(void)
{
	struct store_pool_stats st;
	struct store_vol_info info;
	struct store_vol *v;
	uint64_t hi = (uint64_t)6 << 60 | (uint64_t)SCSI_NAA_OUI << 36, lo, u0 = 0, u1 = 0;

	if (store_vol_open(fz.pool, "v0", &v) < 0)
		abort();
	store_vol_get_info(v, &info);
	store_vol_close(v);
	store_pool_get_stats(fz.pool, &st);
	for (int i = 0; i < 8; i++) {
		u0 = u0 << 8 | st.uuid[i];
		u1 = u1 << 8 | st.uuid[8 + i];
	}
	hi |= u0 >> 28;
	lo = (u0 & 0x0fffffffull) << 36 | (u1 >> 60) << 32 | info.id;
	for (int i = 0; i < 8; i++) {
		fz.naa[i] = (uint8_t)(hi >> (56 - 8 * i));
		fz.naa[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
}

static void fuzz_disc_chap(bool on)
{
	static const char chap[] = "{\"chap\": {\"user\": \"" FUZZ_CHAP_USER "\", \"secret\": "
	                           "\"" FUZZ_CHAP_SECRET "\", \"mutual_user\": \"tgt\", "
	                           "\"mutual_secret\": \"tgt-secret-123\"}}";
	static const char none[] = "{\"chap\": null}";
	struct tl_op op = { 0 };

	if (on == fz.disc_chap)
		return;
	store_meta_put(fz.pool, ISCSI_DISCOVERY_KEY, on ? chap : none,
	               on ? sizeof(chap) - 1 : sizeof(none) - 1, tl_done, &op);
	if (tl_wait(fz.loop, &op))
		abort();
	fz.disc_chap = on;
}

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
	fuzz_naa();
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

/* A point in time ROD token (ROD type 0080000xh, length 1F8h), as
 * copy.c makes them, in an answer read whole. */
static void fuzz_token_seen(const uint8_t *d, size_t len)
{
	static const uint8_t hdr[] = { 0x00, 0x80, 0x00 }, tlen[] = { 0, 0, 0x01, 0xf8 };
	const uint8_t *p;

	for (p = d; (p = memmem(p, len - (size_t)(p - d), hdr, 3)); p++)
		if (p + FUZZ_TOKEN_LEN <= d + len && p[3] <= 1 && !memcmp(p + 4, tlen, 4)) {
			memcpy(fz.token, p, FUZZ_TOKEN_LEN);
			fz.have_token = true;
			return;
		}
}

/* CHAP_I and CHAP_C of a login response read whole. */
static void fuzz_chap_seen(const uint8_t *d, size_t len)
{
	const uint8_t *i = memmem(d, len, "CHAP_I=", 7), *c = memmem(d, len, "CHAP_C=", 7);
	char buf[sizeof(fz.chap_c) * 2 + 3] = "";
	const uint8_t *e;

	if (!i || !c || !(e = memchr(c, 0, len - (size_t)(c - d))) ||
	    (size_t)(e - c - 7) >= sizeof(buf) || !memchr(i, 0, len - (size_t)(i - d)))
		return;
	memcpy(buf, c + 7, (size_t)(e - c - 7));
	buf[e - c - 7] = 0;
	if (iscsi_hex_decode(buf, fz.chap_c, sizeof(fz.chap_c), &fz.chap_clen) < 0)
		return;
	fz.chap_id = (uint8_t)strtoul((const char *)i + 7, NULL, 10);
	fz.have_chap = true;
}

/* Where sending stops next: the next mark at or after from. */
static size_t fuzz_stop(const uint8_t *data, size_t size, size_t from)
{
	size_t stop = size;

	for (int k = 0; k < 2 && from < size; k++) {
		const uint8_t *m = memmem(data + from, size - from,
		                          k ? FUZZ_CHAP_MARK : FUZZ_TOKEN_MARK, 16);

		if (m && (size_t)(m - data) < stop)
			stop = (size_t)(m - data);
	}
	return stop;
}

/* At a mark: true when what it stands for is known, and then in place. */
static bool fuzz_fill(uint8_t *at, size_t room)
{
	uint8_t md[16];

	if (!memcmp(at, FUZZ_TOKEN_MARK, 16)) {
		if (fz.have_token && room >= FUZZ_TOKEN_LEN)
			memcpy(at, fz.token, FUZZ_TOKEN_LEN);
		return fz.have_token;
	}
	if (fz.have_chap && room >= 34) {
		iscsi_chap_md5(fz.chap_id, FUZZ_CHAP_SECRET, strlen(FUZZ_CHAP_SECRET), fz.chap_c,
		               fz.chap_clen, md);
		memcpy(at, "0x", 2);
		for (int i = 0; i < 16; i++) {
			at[2 + 2 * i] = (uint8_t)"0123456789abcdef"[md[i] >> 4];
			at[3 + 2 * i] = (uint8_t)"0123456789abcdef"[md[i] & 15];
		}
	}
	return fz.have_chap;
}

/* Sends what fits, runs the loop, drains the answers (*got: some came);
 * true once the server has closed the connection. */
static bool fuzz_turn(int fd, const uint8_t *data, size_t size, size_t *sent, bool *got)
{
	uint8_t sink[65536];
	ssize_t n;

	if (*sent < size) {
		n = write(fd, data + *sent, size - *sent);
		if (n > 0)
			*sent += (size_t)n;
	}
	ev_run(fz.loop, EVRUN_NOWAIT);
	*got = false;
	while ((n = read(fd, sink, sizeof(sink))) > 0) {
		*got = true;
		fuzz_token_seen(sink, (size_t)n);
		fuzz_chap_seen(sink, (size_t)n);
	}
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = NULL;
	size_t sent = 0, stop;
	int fd;

	if (!fz.loop)
		fuzz_setup();
	fuzz_disc_chap(size && memmem(data, size, FUZZ_CHAP, strlen(FUZZ_CHAP)));
	if (size >= 16 && (memmem(data, size, FUZZ_NAA_MARK, 16) ||
	                   memmem(data, size, FUZZ_TOKEN_MARK, 16) ||
	                   memmem(data, size, FUZZ_CHAP_MARK, 16))) {
		uint8_t *p;

		if (!(copy = malloc(size)))
			abort();
		memcpy(copy, data, size);
		for (p = copy; (p = memmem(p, size - (size_t)(p - copy), FUZZ_NAA_MARK, 16));)
			memcpy(p, fz.naa, 16);
		data = copy;
	}
	fz.have_token = fz.have_chap = false;
	stop = fuzz_stop(data, size, 0);
	fd = fuzz_connect();
	/* The end of the input closes our side once the server has been quiet
	 * for FUZZ_QUIET turns: commands that wait for the store (writes, PR
	 * changes kept across power loss) answer before the server sees EOF
	 * and drops what is still in flight. */
	for (int turn = 0, quiet = 0; turn < FUZZ_TURNS; turn++) {
		bool got;

		if (fuzz_turn(fd, data, stop, &sent, &got))
			break;
		quiet = got || sent < stop ? 0 : quiet + 1;
		if (stop < size && sent == stop &&
		    (fuzz_fill(copy + stop, size - stop) || quiet == FUZZ_QUIET)) {
			stop = fuzz_stop(data, size, stop + 16);
			quiet = 0;
		} else if (quiet == FUZZ_QUIET) {
			shutdown(fd, SHUT_WR);
		}
	}
	close(fd);
	for (int turn = 0; turn < 20; turn++)     /* let the server see the close */
		ev_run(fz.loop, EVRUN_NOWAIT);
	/* registrations outlive the session: one left behind would make every
	 * later input a reservation conflict */
	pr_forget_all();
	free(copy);
	return 0;
}

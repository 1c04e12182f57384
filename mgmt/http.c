/* mgmt/http.c: libmicrohttpd inside the daemon's libev loop, and the life
 * of a request.
 *
 * libmicrohttpd runs in external epoll mode with no thread of its own: an
 * ev_io on its epoll fd and an ev_timer set from MHD_get_timeout() call
 * MHD_run(). Requests waiting for the store are suspended
 * (MHD_ALLOW_SUSPEND_RESUME) and resumed from the store's callback, which
 * wakes MHD through its inter-thread channel, itself in the epoll set.
 *
 * The access handler is called several times per request:
 *
 *   headers     -> req_begin: route, token, size checks; a streamed body's
 *                  handler starts here (it may still refuse: nothing read)
 *   body pieces -> req_body: appended to rq->body (<= MGMT_BODY_MAX), or
 *                  given to rq->stream->data, which may suspend for space
 *   complete    -> req_complete: the handler runs (or stream->end); its
 *                  reply is queued now, or later after a resume
 *
 * libmicrohttpd 0.9.75 takes a reply only before the body or after it (not
 * even on a suspended connection), so an error found in the middle of a
 * body is kept, the rest of the body read and dropped, and the reply sent
 * at its end. A client that goes on past HTTP_DROP_MAX is cut off instead.
 *
 * Stopping (mgmt_stop): stop accepting, refuse new work with 503, wait for
 * the store operations in flight (they hold buffers of our requests), then
 * resume whatever is suspended and let MHD_stop_daemon() close it all.
 */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mgmt/internal.h"

#define HTTP_CONN_LIMIT         256
#define HTTP_CONN_TIMEOUT_SECS  120
/* MHD's per-connection memory: headers and the read buffer. Larger reads
 * mean fewer calls per imported MiB. */
#define HTTP_CONN_MEMORY        (256u << 10)
/* Body bytes dropped after an error before we close instead of replying. */
#define HTTP_DROP_MAX           (4ull << 30)

uint64_t mgmt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mgmt_log(struct mgmt_srv *m, enum store_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!m->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m->log(m->log_arg, level, msg);
}

static void http_mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct mgmt_srv *m = arg;
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	mgmt_log(m, STORE_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* ---- the loop ----------------------------------------------------------- */

static void http_timer_arm(struct mgmt_srv *m)
{
	MHD_UNSIGNED_LONG_LONG ms;

	ev_timer_stop(m->loop, &m->mhd_timer);
	if (MHD_get_timeout(m->mhd, &ms) != MHD_YES)
		return;
	ev_timer_set(&m->mhd_timer, (double)ms / 1000.0, 0.);
	ev_timer_start(m->loop, &m->mhd_timer);
}

static void http_run(struct mgmt_srv *m)
{
	if (MHD_run(m->mhd) != MHD_YES)
		mgmt_log(m, STORE_LOG_WARN, "MHD_run failed");
	http_timer_arm(m);
}

static void http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop; (void)revents;
	http_run(container_of(w, struct mgmt_srv, mhd_io));
}

static void http_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	http_run(container_of(w, struct mgmt_srv, mhd_timer));
}

/* ---- request life ------------------------------------------------------ */

static void req_free(struct mgmt_req *rq)
{
	TAILQ_REMOVE(&rq->srv->reqs, rq, link);
	if (rq->resp)
		MHD_destroy_response(rq->resp);
	json_decref(rq->json);
	free(rq->body);
	free(rq->path);
	free(rq);
}

void mgmt_req_get(struct mgmt_req *rq)
{
	rq->refs++;
	mgmt_op_begin(rq->srv);
}

bool mgmt_req_put(struct mgmt_req *rq)
{
	struct mgmt_srv *m = rq->srv;
	bool alive = !rq->closed;

	if (--rq->refs == 0) {
		req_free(rq);
		alive = false;
	}
	mgmt_op_end(m);
	return alive;
}

void mgmt_req_suspend(struct mgmt_req *rq)
{
	if (!rq->suspended) {
		rq->suspended = true;
		MHD_suspend_connection(rq->conn);
	}
}

/* MHD notices a resume only inside MHD_run() ("external" mode: the docs
 * ask for MHD_run() after MHD_resume_connection()), so run it from the
 * loop's next iteration; many resumes share the one run. */
static void http_kick(struct mgmt_srv *m)
{
	ev_timer_stop(m->loop, &m->mhd_timer);
	ev_timer_set(&m->mhd_timer, 0., 0.);
	ev_timer_start(m->loop, &m->mhd_timer);
}

void mgmt_req_resume(struct mgmt_req *rq)
{
	if (rq->suspended && !rq->closed) {
		rq->suspended = false;
		MHD_resume_connection(rq->conn);
		http_kick(rq->srv);
	}
}

void mgmt_req_finish(struct mgmt_req *rq)
{
	mgmt_req_resume(rq);
}

static enum MHD_Result req_queue(struct mgmt_req *rq)
{
	struct mgmt_srv *m = rq->srv;
	enum MHD_Result r;

	r = MHD_queue_response(rq->conn, rq->status, rq->resp);
	if (r != MHD_YES)
		mgmt_log(m, STORE_LOG_WARN, "MHD_queue_response refused a reply");
	MHD_destroy_response(rq->resp);
	rq->resp = NULL;
	m->http_requests++;
	if (rq->status >= 400)
		m->http_errors++;
	mgmt_log(m, STORE_LOG_DEBUG, "%s %s: %u in %.3f ms",
	         rq->route ? rq->route->method : "-", rq->route ? rq->route->path : "-",
	         rq->status, (double)(mgmt_now_ns() - rq->started_ns) / 1e6);
	return r;
}

static void req_length_parse(struct mgmt_req *rq)
{
	const char *v = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;

	if (!v || *v < '0' || *v > '9')
		return;
	errno = 0;
	rq->content_length = strtoull(v, &end, 10);
	rq->has_length = !*end && !errno;
}

static int req_route(struct mgmt_req *rq, const char *method, const char *url)
{
	char allow[64];
	int err = mgmt_route_find(rq, method, url, allow, sizeof(allow));

	if (err == -ENOENT)
		return mgmt_fail(rq, -ENOENT, "no such path: %s",
		                 mgmt_quote(url, (char[96]){0}, 96));
	if (err == -EOPNOTSUPP) {
		mgmt_fail(rq, -EOPNOTSUPP, "%s is not allowed here; allowed: %s",
		          method, allow);
		mgmt_reply_header(rq, MHD_HTTP_HEADER_ALLOW, allow);
		return MGMT_DONE;
	}
	return err < 0 ? mgmt_fail(rq, err, "cannot route the request") : MGMT_PENDING;
}

static int req_auth(struct mgmt_req *rq)
{
	const char *auth;

	if (rq->route->flags & MGMT_NOAUTH)
		return MGMT_PENDING;
	auth = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
	                                   MHD_HTTP_HEADER_AUTHORIZATION);
	if (mgmt_token_check(rq->srv, auth))
		return MGMT_PENDING;
	mgmt_fail(rq, -EACCES, auth ? "wrong bearer token"
	                            : "missing Authorization: Bearer token");
	mgmt_reply_header(rq, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"sluice\"");
	return MGMT_DONE;
}

/* Headers are in: everything that can be refused before reading a byte of
 * the body is refused here. MGMT_PENDING: go on reading. */
static int req_begin(struct mgmt_req *rq, const char *method, const char *url)
{
	if (rq->srv->stopping)
		return mgmt_fail(rq, -ESHUTDOWN, "the daemon is shutting down");
	if (req_route(rq, method, url) == MGMT_DONE || req_auth(rq) == MGMT_DONE)
		return MGMT_DONE;
	req_length_parse(rq);
	if (rq->route->flags & MGMT_BODY_STREAM)
		return rq->route->fn(rq);       /* sets rq->stream, or replies */
	if (rq->has_length && rq->content_length > MGMT_BODY_MAX)
		return mgmt_fail(rq, -EMSGSIZE, "a body of %llu bytes is too large here "
		                 "(at most %u)", (unsigned long long)rq->content_length,
		                 MGMT_BODY_MAX);
	return MGMT_PENDING;
}

static int req_body_append(struct mgmt_req *rq, const char *data, size_t len)
{
	if (len > MGMT_BODY_MAX - rq->body_len)
		return mgmt_fail(rq, -EMSGSIZE, "the body is too large here (at most %u bytes)",
		                 MGMT_BODY_MAX);
	if (rq->body_len + len + 1 > rq->body_cap) {
		size_t cap = rq->body_cap ? rq->body_cap : 1024;
		char *b;

		while (cap < rq->body_len + len + 1)
			cap *= 2;
		b = realloc(rq->body, cap);
		if (!b)
			return mgmt_fail(rq, -ENOMEM, "out of memory for the body");
		rq->body = b;
		rq->body_cap = cap;
	}
	memcpy(rq->body + rq->body_len, data, len);
	rq->body_len += len;
	rq->body[rq->body_len] = '\0';
	return MGMT_PENDING;
}

/* A body piece. Returns what MHD should see as still unconsumed. Once a
 * reply is set (an error), the rest of the body is dropped. */
static size_t req_body(struct mgmt_req *rq, const char *data, size_t len)
{
	if (rq->resp) {
		rq->dropped += len;
		return 0;
	}
	if (rq->stream)
		return len - rq->stream->data(rq, data, len);
	req_body_append(rq, data, len);
	return 0;
}

static int req_json_parse(struct mgmt_req *rq)
{
	json_error_t jerr;

	if (rq->body_len == 0)
		return mgmt_fail(rq, -EINVAL, "this request needs a JSON object body");
	rq->json = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!rq->json)
		return mgmt_fail(rq, -EBADMSG, "malformed JSON at line %d column %d: %s",
		                 jerr.line, jerr.column, jerr.text);
	if (!json_is_object(rq->json))
		return mgmt_fail(rq, -EINVAL, "the body must be a JSON object");
	return MGMT_PENDING;
}

/* The body is complete: run the handler, or end the stream (once). */
static int req_complete(struct mgmt_req *rq)
{
	rq->completed = true;
	if (rq->stream)
		return rq->stream->end(rq);
	if (rq->srv->stopping)
		return mgmt_fail(rq, -ESHUTDOWN, "the daemon is shutting down");
	if ((rq->route->flags & MGMT_BODY_JSON) && req_json_parse(rq) == MGMT_DONE)
		return MGMT_DONE;
	return rq->route->fn(rq);
}

static struct mgmt_req *req_create(struct mgmt_srv *m, struct MHD_Connection *conn)
{
	struct mgmt_req *rq = calloc(1, sizeof(*rq));

	if (!rq)
		return NULL;
	rq->srv = m;
	rq->conn = conn;
	rq->refs = 1;                           /* MHD's, until completed */
	rq->started_ns = mgmt_now_ns();
	TAILQ_INSERT_TAIL(&m->reqs, rq, link);
	return rq;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
                                   const char *url, const char *method,
                                   const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
	struct mgmt_req *rq = *con_cls;

	(void)version;
	if (!rq) {
		rq = req_create(cls, conn);
		if (!rq)
			return MHD_NO;          /* closes the connection */
		*con_cls = rq;
		if (req_begin(rq, method, url) == MGMT_DONE)
			return req_queue(rq);
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = req_body(rq, upload_data, *upload_data_size);
		/* the reply waits for the end of the body, but not forever */
		return rq->dropped > HTTP_DROP_MAX ? MHD_NO : MHD_YES;
	}
	if (rq->resp)
		return req_queue(rq);
	if (!rq->completed && req_complete(rq) == MGMT_DONE && rq->resp)
		return req_queue(rq);
	mgmt_req_suspend(rq);                   /* until a callback replies */
	return MHD_YES;
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
	struct mgmt_req *rq = *con_cls;

	(void)cls; (void)conn;
	if (!rq)
		return;
	*con_cls = NULL;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		mgmt_log(rq->srv, STORE_LOG_DEBUG, "%s: connection ended early (%d)",
		         rq->route ? rq->route->path : "request", (int)toe);
	rq->closed = true;
	rq->suspended = false;
	if (rq->on_close)
		rq->on_close(rq);
	if (--rq->refs == 0)
		req_free(rq);
}

/* ---- start and stop ---------------------------------------------------- */

void mgmt_op_begin(struct mgmt_srv *m)
{
	m->store_ops++;
}

void mgmt_op_end(struct mgmt_srv *m)
{
	if (--m->store_ops == 0 && m->stopping)
		ev_idle_start(m->loop, &m->stop_idle);
}

/* A bound, listening, non-blocking socket for host:port; MHD takes it. */
static int http_listen(struct mgmt_srv *m, const char *host, uint16_t port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char service[8];
	int fd, one = 1, err;

	snprintf(service, sizeof(service), "%u", (unsigned)port);
	err = getaddrinfo(host, service, &hints, &res);
	if (err) {
		mgmt_log(m, STORE_LOG_ERR, "http_listen %s: %s", host, gai_strerror(err));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		err = -errno;
		mgmt_log(m, STORE_LOG_ERR, "http_listen %s port %u: %s", host,
		         (unsigned)port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = err;
	}
	freeaddrinfo(res);
	return fd;
}

/* Reads a whole PEM file into a NUL-terminated buffer. */
static char *http_file_read(struct mgmt_srv *m, const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f) {
		mgmt_log(m, STORE_LOG_ERR, "TLS file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
	} else {
		mgmt_log(m, STORE_LOG_ERR, "TLS file %s: cannot read it (empty, "
		         "over 1 MiB or unreadable)", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int http_mhd_start(struct mgmt_srv *m, const struct mgmt_opts *o, int fd)
{
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	bool tls = o->tls_cert && *o->tls_cert;
	struct MHD_OptionItem tls_opts[3] = { { MHD_OPTION_END, 0, NULL } };

	if (tls) {
		flags |= MHD_USE_TLS;
		/* kept until the daemon stops: MHD holds the pointers */
		m->tls_cert = http_file_read(m, o->tls_cert);
		m->tls_key = m->tls_cert ? http_file_read(m, o->tls_key) : NULL;
		if (!m->tls_key)
			return -EINVAL;
		tls_opts[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, m->tls_cert };
		tls_opts[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, m->tls_key };
		tls_opts[2] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	}
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_access, m,
		MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, m,    /* first: MHD wants it so */
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, http_completed, m,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT_SECS,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
		MHD_OPTION_ARRAY, tls_opts,
		MHD_OPTION_END);
	if (!m->mhd) {
		mgmt_log(m, STORE_LOG_ERR, "cannot start libmicrohttpd%s", tls ?
		         " (are the TLS certificate and key valid PEM, and a pair?)" : "");
		return -EINVAL;
	}
	return 0;
}

static void http_stop_idle_cb(struct ev_loop *loop, ev_idle *w, int revents);

static int http_watchers_start(struct mgmt_srv *m)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);

	if (!info) {
		mgmt_log(m, STORE_LOG_ERR, "libmicrohttpd has no epoll fd");
		return -EINVAL;
	}
	ev_io_init(&m->mhd_io, http_io_cb, info->epoll_fd, EV_READ);
	ev_io_start(m->loop, &m->mhd_io);
	ev_init(&m->mhd_timer, http_timer_cb);
	ev_idle_init(&m->stop_idle, http_stop_idle_cb);
	http_timer_arm(m);
	return 0;
}

static void http_srv_free(struct mgmt_srv *m)
{
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	if (m->stats)
		mgmt_stats_destroy(m->loop, m->stats);
	free(m->tls_cert);
	free(m->tls_key);
	free(m);
}

int mgmt_start(const struct mgmt_opts *o, struct mgmt_srv **out)
{
	struct mgmt_srv *m = calloc(1, sizeof(*m));
	int fd = -1, err;

	if (!m)
		return -ENOMEM;
	m->loop = o->loop;
	m->pool = o->pool;
	m->log = o->log;
	m->log_arg = o->log_arg;
	TAILQ_INIT(&m->reqs);
	LIST_INIT(&m->xfers);
	if ((err = mgmt_token_load(m, o)) < 0 ||
	    (err = mgmt_stats_create(m->loop, &m->stats)) < 0)
		goto fail;
	if ((fd = http_listen(m, o->host, o->port)) < 0) {
		err = fd;
		goto fail;
	}
	if ((err = http_mhd_start(m, o, fd)) < 0) {
		close(fd);
		goto fail;
	}
	if ((err = http_watchers_start(m)) < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	http_srv_free(m);
	return err;
}

/* Every store operation is done: no callback can touch a request now. */
static void http_stop_finish(struct mgmt_srv *m)
{
	struct mgmt_req *rq;
	store_done_fn *done = m->stop_done;
	void *arg = m->stop_arg;

	TAILQ_FOREACH(rq, &m->reqs, link) {
		if (rq->suspended && !rq->resp)
			mgmt_fail(rq, -ESHUTDOWN, "the daemon is shutting down");
		mgmt_req_resume(rq);
	}
	MHD_run(m->mhd);                        /* takes the resumed ones back */
	ev_io_stop(m->loop, &m->mhd_io);
	ev_timer_stop(m->loop, &m->mhd_timer);
	ev_idle_stop(m->loop, &m->stop_idle);
	http_srv_free(m);                       /* MHD_stop_daemon closes the rest */
	done(arg, 0);
}

static void http_stop_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct mgmt_srv *m = container_of(w, struct mgmt_srv, stop_idle);

	(void)revents;
	ev_idle_stop(loop, w);
	if (m->store_ops == 0)
		http_stop_finish(m);
}

void mgmt_stop(struct mgmt_srv *m, store_done_fn *done, void *arg)
{
	MHD_socket fd;

	m->stopping = true;
	m->stop_done = done;
	m->stop_arg = arg;
	fd = MHD_quiesce_daemon(m->mhd);        /* no new connections */
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	mgmt_xfer_abort_all(m);
	mgmt_log(m, STORE_LOG_INFO, "stopping the HTTP API: %u store operations "
	         "in flight", m->store_ops);
	ev_idle_start(m->loop, &m->stop_idle);  /* never calls done from here */
}

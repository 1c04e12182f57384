/* iscsi/srv.c: the server: portals (one listening socket and one portal
 * group each), accepting connections, logging, and the orderly stop.
 *
 * Stop (iscsi_srv_stop): listeners close at once; each logged-in
 * initiator gets an Async Message asking it to log out (RFC 7143 11.9.1,
 * AsyncEvent 1); connections still open after the grace period are
 * dropped; when the last connection has been freed (which waits for the
 * store I/O its tasks started) the server frees itself and calls back.
 *
 * Portals stay on the caller's loop; each accepted connection goes to the
 * least loaded of opts.loops connection loops (loop.c), or stays on the
 * caller's loop when there are none.
 */
#define _GNU_SOURCE             /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iscsi/internal.h"

#define ISCSI_BACKLOG           128

void iscsi_log(struct iscsi_srv *s, enum store_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!s->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, level, msg);
}

/* Out of descriptors or memory, accept() fails again at once while the
 * listening socket stays readable: the loop would spin (and log) until a
 * descriptor frees. The portal pauses instead; waiting connections stay
 * in the kernel's backlog. */
#define ISCSI_ACCEPT_PAUSE      0.1

static void iscsi_accept_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_portal *pt = container_of(w, struct iscsi_portal, pause);

	(void)revents;
	if (pt->fd >= 0 && !pt->srv->stopping)
		ev_io_start(loop, &pt->io);
}

static void iscsi_accept_pause(struct iscsi_portal *pt, int err)
{
	struct iscsi_srv *s = pt->srv;

	iscsi_log(s, STORE_LOG_WARN, "accept on %s:%u: %s: pausing the portal %.1f s",
	          pt->host, pt->port, strerror(err), ISCSI_ACCEPT_PAUSE);
	ev_io_stop(s->loop, &pt->io);
	ev_timer_set(&pt->pause, ISCSI_ACCEPT_PAUSE, 0);
	ev_timer_start(s->loop, &pt->pause);
}

static void iscsi_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct iscsi_portal *pt = container_of(w, struct iscsi_portal, io);
	struct iscsi_srv *s = pt->srv;

	(void)loop; (void)revents;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(pt->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct iscsi_conn *c;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				iscsi_accept_pause(pt, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			         errno != ECONNABORTED)
				iscsi_log(s, STORE_LOG_WARN, "accept on %s:%u: %s", pt->host,
				          pt->port, strerror(errno));
			return;
		}
		if (s->stopping || iscsi_conn_create(s, fd, pt->tpgt, &c) < 0) {
			close(fd);
			continue;
		}
		TAILQ_INSERT_TAIL(&s->conns, c, link);
		iscsi_log(s, STORE_LOG_DEBUG, "%s: connected to portal %s:%u", c->peer,
		          pt->host, pt->port);
	}
}

static int iscsi_portal_bind(struct iscsi_portal *pt, const struct addrinfo *ai)
{
	int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	                         ai->ai_protocol);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "::" and "0.0.0.0" may both be portals */
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, ISCSI_BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	pt->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	                 ((struct sockaddr_in *)&ss)->sin_port);
	pt->fd = fd;
	return 0;
}

static int iscsi_portal_listen(struct iscsi_srv *s, struct iscsi_portal *pt,
                               const struct iscsi_portal_addr *a)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char port[8];
	int err;

	snprintf(port, sizeof(port), "%u", a->port);
	snprintf(pt->host, sizeof(pt->host), "%s", a->host);
	pt->srv = s;
	pt->fd = -1;
	pt->wildcard = strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0;
	err = getaddrinfo(a->host, port, &hints, &ai);
	if (err) {
		iscsi_log(s, STORE_LOG_ERR, "portal %s:%u: %s", a->host, a->port, gai_strerror(err));
		return -EINVAL;
	}
	err = iscsi_portal_bind(pt, ai);
	freeaddrinfo(ai);
	if (err < 0) {
		iscsi_log(s, STORE_LOG_ERR, "portal %s:%u: %s", a->host, a->port, strerror(-err));
		return err;
	}
	ev_io_init(&pt->io, iscsi_accept_cb, pt->fd, EV_READ);
	ev_init(&pt->pause, iscsi_accept_resume_cb);
	ev_io_start(s->loop, &pt->io);
	iscsi_log(s, STORE_LOG_INFO, "listening on %s%s%s:%u, portal group %u",
	          strchr(pt->host, ':') ? "[" : "", pt->host, strchr(pt->host, ':') ? "]" : "",
	          pt->port, pt->tpgt);
	return 0;
}

static void iscsi_portals_close(struct iscsi_srv *s)
{
	for (size_t i = 0; i < s->nportals; i++) {
		if (s->portals[i].fd < 0)
			continue;
		ev_io_stop(s->loop, &s->portals[i].io);
		ev_timer_stop(s->loop, &s->portals[i].pause);
		close(s->portals[i].fd);
		s->portals[i].fd = -1;
	}
}

int iscsi_srv_create(struct ev_loop *loop, struct store_pool *p,
                     const struct iscsi_srv_opts *o, struct iscsi_srv **out)
{
	struct iscsi_srv *s;
	struct store_pool_stats st;
	int err = 0;

	if (o->nportals == 0 || o->nportals > ISCSI_PORTALS_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->pool = p;
	s->log = o->log;
	s->log_arg = o->log_arg;
	s->nop_interval = o->nop_interval_secs ? o->nop_interval_secs : 10;
	s->nop_timeout = o->nop_timeout_secs ? o->nop_timeout_secs : 30;
	s->logout_grace = o->logout_grace_secs ? o->logout_grace_secs : 2;
	s->login_timeout = o->login_timeout_secs ? o->login_timeout_secs : ISCSI_LOGIN_TIMEOUT;
	s->thin_pct = o->thin_threshold ? o->thin_threshold : ISCSI_THIN_THRESHOLD_DEFAULT;
	s->next_tsih = 1;
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->sessions);
	LIST_INIT(&s->lus);
	store_pool_get_stats(p, &st);
	memcpy(s->uuid, st.uuid, sizeof(s->uuid));
	err = iscsi_loops_start(s, o->loops);
	if (err < 0) {
		free(s);
		return err;
	}
	for (size_t i = 0; i < o->nportals && err == 0; i++) {
		s->portals[i].tpgt = (uint16_t)(i + 1);
		s->nportals = i + 1;
		err = iscsi_portal_listen(s, &s->portals[i], &o->portals[i]);
	}
	if (err < 0) {
		iscsi_portals_close(s);
		iscsi_loops_stop(s);
		free(s);
		return err;
	}
	if (o->loops)
		iscsi_log(s, STORE_LOG_INFO, "%u connection loops", o->loops);
	*out = s;
	return 0;
}

void iscsi_srv_set_io_hook(struct iscsi_srv *s, iscsi_io_fn *fn, void *arg)
{
	s->io.fn = fn;
	s->io.arg = arg;
}

uint16_t iscsi_srv_port(const struct iscsi_srv *s, size_t i)
{
	return i < s->nportals ? s->portals[i].port : 0;
}

static void iscsi_srv_finish_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct iscsi_srv *s = container_of(w, struct iscsi_srv, stop_idle);
	store_done_fn *done = s->stop_done;
	void *arg = s->stop_arg;

	(void)revents;
	ev_idle_stop(loop, &s->stop_idle);
	ev_timer_stop(loop, &s->stop_timer);
	iscsi_loops_stop(s);
	iscsi_log(s, STORE_LOG_INFO, "iSCSI target stopped");
	free(s);
	done(arg, 0);
}

void iscsi_srv_conn_gone(struct iscsi_srv *s, struct iscsi_conn *c)
{
	TAILQ_REMOVE(&s->conns, c, link);
	if (s->stopping && TAILQ_EMPTY(&s->conns)) {
		ev_idle_start(s->loop, &s->stop_idle);
		iscsi_loop_wake(&s->main);
	}
}

/* The grace period is over: drop whoever has not logged out. */
static void iscsi_srv_stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct iscsi_srv *s = container_of(w, struct iscsi_srv, stop_timer);
	struct iscsi_conn *c, *n;

	(void)loop; (void)revents;
	TAILQ_FOREACH_SAFE(c, &s->conns, link, n)
		iscsi_conn_close(c, "target stopping");
}

void iscsi_srv_stop(struct iscsi_srv *s, store_done_fn *done, void *arg)
{
	struct iscsi_conn *c, *n;
	unsigned asked = 0;

	s->stopping = true;
	s->stop_done = done;
	s->stop_arg = arg;
	iscsi_portals_close(s);
	ev_idle_init(&s->stop_idle, iscsi_srv_finish_cb);
	ev_timer_init(&s->stop_timer, iscsi_srv_stop_timer_cb, s->logout_grace, 0);
	TAILQ_FOREACH_SAFE(c, &s->conns, link, n) {
		if (c->state == ISCSI_CONN_FULL && c->sess) {
			iscsi_sess_async_logout(c->sess, (unsigned)s->logout_grace);
			asked++;
		} else {
			iscsi_conn_close(c, "target stopping");
		}
	}
	iscsi_log(s, STORE_LOG_INFO, "stopping the iSCSI target: %u sessions asked to log out",
	          asked);
	if (TAILQ_EMPTY(&s->conns))
		ev_idle_start(s->loop, &s->stop_idle);
	else
		ev_timer_start(s->loop, &s->stop_timer);
}

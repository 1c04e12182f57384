/* iscsi/loop.c: the connection loops, one thread each, and the target lock.
 *
 * libev's own model for threads ("THREADS AND COROUTINES", the thread
 * locking example in ev(3)): one mutex, srv->lock, covers every iSCSI,
 * SCSI, store and mgmt object. Each loop thread holds it while it runs
 * callbacks and lets go only while it sleeps in epoll (the loop's
 * release/acquire callbacks) and around the big syscalls of a connection
 * (iscsi_conn_io_begin/end: recv of PDU bytes, writev of queued PDUs).
 * Those copies of data segments are most of a target's CPU; they are what
 * runs on both cores at once.
 *
 *   main loop (the pool's, caller's thread): portals, store completions,
 *              group commit, mgmt, the stop
 *   loops[i] (one thread each): the connections accepted onto it,
 *              round-robin; their sockets, timers and PDU framing
 *
 * Holding the lock, any thread may start or stop watchers of any loop;
 * it then wakes that loop (iscsi_loop_wake) so the loop re-arms them. A
 * connection loop wakes the main loop after callbacks that may have given
 * the store work, since group commit runs in the main loop's ev_prepare.
 *
 * With no extra loop (opts.loops 0: tests, fuzzing) nothing here runs:
 * connections live on the main loop, no lock is taken and syscalls are
 * made in place, as before.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/internal.h"

static __thread struct iscsi_loop *iscsi_loop_self;     /* this thread's */

bool iscsi_loop_mine(const struct iscsi_loop *l)
{
	return !l->threaded || l == iscsi_loop_self;
}

void iscsi_loop_wake(struct iscsi_loop *l)
{
	if (l->threaded && l != iscsi_loop_self)
		ev_async_send(l->loop, &l->wake);
}

void iscsi_loop_unlock(struct iscsi_loop *l)
{
	if (l->threaded)
		pthread_mutex_unlock(&l->srv->lock);
}

void iscsi_loop_lock(struct iscsi_loop *l)
{
	if (l->threaded)
		pthread_mutex_lock(&l->srv->lock);
}

/* Least loaded, ties round-robin. */
struct iscsi_loop *iscsi_loop_pick(struct iscsi_srv *s)
{
	struct iscsi_loop *best = NULL;

	if (s->nloops == 0)
		return &s->main;
	for (unsigned i = 0; i < s->nloops; i++) {
		struct iscsi_loop *l = &s->loops[(s->next_loop + i) % s->nloops];

		if (!best || l->nconns < best->nconns)
			best = l;
	}
	s->next_loop = (unsigned)(best - s->loops + 1) % s->nloops;
	return best;
}

static void iscsi_loop_release_cb(struct ev_loop *loop)
{
	struct iscsi_loop *l = ev_userdata(loop);

	pthread_mutex_unlock(&l->srv->lock);
}

static void iscsi_loop_acquire_cb(struct ev_loop *loop)
{
	struct iscsi_loop *l = ev_userdata(loop);

	pthread_mutex_lock(&l->srv->lock);
}

/* After each batch of callbacks: the writes they queued, with the lock
 * let go around each writev (iscsi_conn_tx_run). */
static void iscsi_loop_invoke_cb(struct ev_loop *loop)
{
	struct iscsi_loop *l = ev_userdata(loop);
	struct iscsi_conn *c;

	ev_invoke_pending(loop);
	while ((c = TAILQ_FIRST(&l->flushq))) {
		TAILQ_REMOVE(&l->flushq, c, flush_link);
		c->flush_queued = false;
		iscsi_conn_tx_run(c);
		iscsi_conn_put(c);
	}
	if (l->kick_main) {
		l->kick_main = false;
		iscsi_loop_wake(&l->srv->main);
	}
}

static void iscsi_loop_wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct iscsi_loop *l = container_of(w, struct iscsi_loop, wake);

	(void)revents;
	if (l->stop)
		ev_break(loop, EVBREAK_ALL);
}

static void *iscsi_loop_thread(void *arg)
{
	struct iscsi_loop *l = arg;

	pthread_mutex_lock(&l->srv->lock);
	iscsi_loop_self = l;
	ev_run(l->loop, 0);
	iscsi_loop_self = NULL;
	pthread_mutex_unlock(&l->srv->lock);
	return NULL;
}

static void iscsi_loop_setup(struct iscsi_srv *s, struct iscsi_loop *l, struct ev_loop *loop,
                             bool main)
{
	l->srv = s;
	l->loop = loop;
	l->threaded = true;
	TAILQ_INIT(&l->flushq);
	ev_set_userdata(loop, l);
	ev_set_loop_release_cb(loop, iscsi_loop_release_cb, iscsi_loop_acquire_cb);
	ev_async_init(&l->wake, iscsi_loop_wake_cb);
	ev_async_start(loop, &l->wake);
	if (main)
		ev_unref(loop);         /* keeps the caller's loop no longer alive */
}

static void iscsi_loop_teardown(struct iscsi_loop *l, bool main)
{
	if (main)
		ev_ref(l->loop);
	ev_async_stop(l->loop, &l->wake);
	ev_set_loop_release_cb(l->loop, NULL, NULL);
	ev_set_invoke_pending_cb(l->loop, ev_invoke_pending);
	ev_set_userdata(l->loop, NULL);
	l->threaded = false;
}

/* Called with the lock held; takes it back before it returns. */
static void iscsi_loops_join(struct iscsi_srv *s)
{
	for (unsigned i = 0; i < s->nloops; i++) {
		s->loops[i].stop = true;
		if (s->loops[i].loop)
			ev_async_send(s->loops[i].loop, &s->loops[i].wake);
	}
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nloops; i++)
		if (s->loops[i].started)
			pthread_join(s->loops[i].thread, NULL);
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nloops; i++) {
		if (!s->loops[i].loop)
			continue;
		iscsi_loop_teardown(&s->loops[i], false);
		ev_loop_destroy(s->loops[i].loop);
	}
	free(s->loops);
	s->loops = NULL;
	s->nloops = 0;
}

void iscsi_loops_stop(struct iscsi_srv *s)
{
	if (!s->main.threaded)
		return;
	iscsi_loops_join(s);
	iscsi_loop_teardown(&s->main, true);
	iscsi_loop_self = NULL;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
}

/* n loops of their own for connections; 0: the main loop serves them. */
int iscsi_loops_start(struct iscsi_srv *s, unsigned n)
{
	sigset_t all, old;
	int err = 0;

	s->main.srv = s;
	s->main.loop = s->loop;
	TAILQ_INIT(&s->main.flushq);
	if (n == 0)
		return 0;
	s->loops = calloc(n, sizeof(*s->loops));
	if (!s->loops || pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s->loops);
		s->loops = NULL;
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);   /* the main thread's from now on */
	iscsi_loop_setup(s, &s->main, s->loop, true);
	iscsi_loop_self = &s->main;
	s->nloops = n;
	for (unsigned i = 0; i < n && err == 0; i++) {
		struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);

		if (!loop) {
			err = -ENOMEM;
			break;
		}
		iscsi_loop_setup(s, &s->loops[i], loop, false);
		ev_set_invoke_pending_cb(loop, iscsi_loop_invoke_cb);
	}
	/* signals stay with the main thread (its ev_signal watchers) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < n && err == 0; i++) {
		err = -pthread_create(&s->loops[i].thread, NULL, iscsi_loop_thread, &s->loops[i]);
		s->loops[i].started = err == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err < 0)
		iscsi_loops_stop(s);
	return err;
}

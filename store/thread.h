/* store/thread.h: starting the store's helper threads (private to store/).
 *
 * The I/O engine's workers, recovery's log reader and the address table's
 * replay thread all start with every signal blocked: signals stay with the
 * threads that wait for them (the daemon's loop).
 */
#ifndef SLUICE_STORE_THREAD_H
#define SLUICE_STORE_THREAD_H

#include <pthread.h>
#include <signal.h>

/* 0 or -errno. */
static inline int store_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

#endif

/* daemon/daemon.h: sluiced's wiring. One context, created in main() and
 * passed to everything; nothing in store/ includes this file.
 *
 * Start-up is a list of small steps (daemon.c), each logging its own
 * failure. Shutdown mirrors it: SIGTERM or SIGINT starts a drain, the pool
 * is closed (which writes a checkpoint) and its callback breaks the loop.
 */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <ev.h>
#include <stdbool.h>

#include "daemon/config.h"
#include "iscsi/iscsi.h"
#include "mgmt/mgmt.h"
#include "store/store.h"

/* Exit statuses of sluiced and sluice-fsck. */
enum {
	DAEMON_EXIT_OK      = 0,
	DAEMON_EXIT_FAILED  = 1,        /* a start-up step failed; or check found problems */
	DAEMON_EXIT_USAGE   = 2,        /* bad command line or config; or check cannot open */
};

struct sluiced {
	struct ev_loop    *loop;
	struct cfg         cfg;         /* effective configuration, after flags */
	struct store_pool *pool;
	struct mgmt_srv   *mgmt;        /* the HTTP API; NULL until started */
	struct iscsi_srv  *iscsi;       /* the iSCSI target; NULL until started */
	char               pool_path[PATH_MAX];
	ev_signal          sig_term, sig_int;
	bool               draining;
	int                close_err;   /* from store_pool_close(); 0 if clean */
	int                ready_fd;    /* detach.c: tells the parent we are up; -1 */
	ev_timer           notify_status_timer, notify_watchdog;   /* notify.c */
	char               notify_status[128];  /* the last STATUS= sent */
};

/* Runs the daemon configured in d->cfg until SIGTERM/SIGINT has drained it.
 * Returns the process exit status. */
int  daemon_run(struct sluiced *d);
/* Stop taking work, close the pool (checkpoint), then break the loop. */
void daemon_drain(struct sluiced *d);

/* Background mode (detach.c). daemon_detach() forks; the parent waits and
 * exits 0 once the child calls daemon_detach_ready(), or 1 if the child
 * dies first. The child keeps stderr until it is ready, so start-up errors
 * still reach the terminal that started it. */
int  daemon_detach(struct sluiced *d);
void daemon_detach_ready(struct sluiced *d);

/* systemd's service notification (notify.c, sd_notify(3)); no-ops unless
 * NOTIFY_SOCKET is set. _ready sends READY=1 and the serving STATUS=, then
 * keeps STATUS= current and pings WATCHDOG=1 if WatchdogSec= asks for it;
 * _stopping sends STOPPING=1; _stop stops the timers before the loop goes. */
void daemon_notify_ready(struct sluiced *d);
void daemon_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void daemon_notify_stopping(struct sluiced *d);
void daemon_notify_stop(struct sluiced *d);

/* The offline pool check behind both `sluiced --check` and sluice-fsck
 * (check.c): opens path read-only, prints every problem and a summary to
 * stdout. Returns 0 clean, 1 problems found, 2 cannot open. */
int  daemon_pool_check(const char *path, enum store_engine engine);

#endif

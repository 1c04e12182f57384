/* daemon/notify.c: telling systemd how sluiced is doing (sd_notify(3)).
 *
 * Under a Type=notify unit systemd counts sluiced as started only on
 * READY=1, which is sent once the pool is open and every portal and the
 * HTTP API listen: "systemctl start" returns when initiators can log in,
 * and units ordered after sluiced.service find it serving. STATUS= lines
 * show in "systemctl status"; STOPPING=1 marks the drain on SIGTERM. With
 * WatchdogSec= a timer on the loop sends WATCHDOG=1 at half the interval,
 * so a loop that stops turning gets the daemon restarted.
 *
 * Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon/daemon.h"
#include "daemon/log.h"

/* STATUS= is refreshed this often, and only sent when it changed. */
#define NOTIFY_STATUS_SECS      5.0

static bool daemon_notify_wanted(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && s[0];
}

static void daemon_notify_send(const char *msg)
{
	int err = sd_notify(0, msg);

	if (err < 0)
		log_debug("sd_notify \"%s\": %s", msg, strerror(-err));
}

void daemon_notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!daemon_notify_wanted())
		return;
	memcpy(msg, "STATUS=", 7);
	va_start(ap, fmt);
	vsnprintf(msg + 7, sizeof(msg) - 7, fmt, ap);
	va_end(ap);
	daemon_notify_send(msg);
}

static int daemon_notify_count(void *arg, const char *key, const void *value,
                               size_t len)
{
	(void)key; (void)value; (void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

/* "serving 2 targets, 5 volumes on 1 portal", sent when it changes. */
static void daemon_notify_serving(struct sluiced *d)
{
	struct store_pool_stats st;
	uint64_t targets = 0;
	char status[sizeof(d->notify_status)];

	if (!d->pool)
		return;
	store_pool_get_stats(d->pool, &st);
	store_meta_foreach(d->pool, "target/", daemon_notify_count, &targets);
	snprintf(status, sizeof(status),
	         "serving %" PRIu64 " target%s, %" PRIu64 " volume%s on %zu portal%s",
	         targets, targets == 1 ? "" : "s", st.volumes,
	         st.volumes == 1 ? "" : "s", d->cfg.iscsi_listen_n,
	         d->cfg.iscsi_listen_n == 1 ? "" : "s");
	if (strcmp(status, d->notify_status) == 0)
		return;
	memcpy(d->notify_status, status, sizeof(status));
	daemon_notify_status("%s", status);
}

static void daemon_notify_status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)revents;
	daemon_notify_serving(w->data);
}

static void daemon_notify_watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)w; (void)revents;
	daemon_notify_send("WATCHDOG=1");
}

/* A housekeeping timer must not keep the loop alive on its own. */
static void daemon_notify_timer_start(struct sluiced *d, ev_timer *w,
                                      void (*cb)(struct ev_loop *, ev_timer *, int),
                                      double secs)
{
	ev_timer_init(w, cb, secs, secs);
	w->data = d;
	ev_timer_start(d->loop, w);
	ev_unref(d->loop);
}

static void daemon_notify_timer_stop(struct sluiced *d, ev_timer *w)
{
	if (!ev_is_active(w))
		return;
	ev_ref(d->loop);
	ev_timer_stop(d->loop, w);
}

void daemon_notify_ready(struct sluiced *d)
{
	uint64_t usec = 0;

	if (!daemon_notify_wanted())
		return;
	d->notify_status[0] = '\0';
	daemon_notify_serving(d);
	daemon_notify_send("READY=1");
	daemon_notify_timer_start(d, &d->notify_status_timer, daemon_notify_status_cb,
	                          NOTIFY_STATUS_SECS);
	/* > 0 only when WatchdogSec= is set and meant for this very process */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		log_info("systemd watchdog: pinging every %.1f s", (double)usec / 2e6);
		daemon_notify_timer_start(d, &d->notify_watchdog, daemon_notify_watchdog_cb,
		                          (double)usec / 2e6);
	}
}

void daemon_notify_stopping(struct sluiced *d)
{
	if (!daemon_notify_wanted())
		return;
	/* the watchdog pings on while the drain runs the loop */
	if (d->loop)
		daemon_notify_timer_stop(d, &d->notify_status_timer);
	daemon_notify_send("STOPPING=1\nSTATUS=draining: finishing I/O, writing a checkpoint");
}

void daemon_notify_stop(struct sluiced *d)
{
	if (!d->loop)
		return;
	daemon_notify_timer_stop(d, &d->notify_status_timer);
	daemon_notify_timer_stop(d, &d->notify_watchdog);
}

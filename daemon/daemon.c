/* daemon/daemon.c: start-up steps, the loop, and the drain on SIGTERM.
 *
 * Start-up runs the steps of daemon_steps[] in order; each logs its own
 * failure, and whatever was set up before it is torn down. The loop thread
 * owns everything here; signals arrive as ev_signal watchers, so no state
 * is shared with a signal handler. The iSCSI target adds a thread per CPU
 * for its connections; from its start to its stop this loop's callbacks
 * run under the target's lock (iscsi/iscsi.h), and its threads block
 * every signal, so they still all come here.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"

typedef int daemon_step_fn(struct sluiced *d);

static void daemon_syserr_cb(const char *msg)
{
	/* libev cannot go on (epoll or a watcher fd failed): no safe recovery */
	log_error("libev: %s: %s", msg, strerror(errno));
	abort();
}

/* mkdir -p; path is modified while walking it and restored. */
static int daemon_mkdir_p(char *path)
{
	struct stat st;

	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0750);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(path, 0750) < 0 && errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Creates the data dir and makes its path absolute: the background mode
 * leaves the working directory, and logs are clearer with a full path. */
static int daemon_data_dir_make(struct sluiced *d)
{
	char *abs;
	int err = daemon_mkdir_p(d->cfg.data_dir);

	if (err < 0) {
		log_error("data dir %s: %s", d->cfg.data_dir, strerror(-err));
		return err;
	}
	abs = realpath(d->cfg.data_dir, NULL);
	if (!abs) {
		err = -errno;
		log_error("data dir %s: %s", d->cfg.data_dir, strerror(errno));
		return err;
	}
	if (strlen(abs) >= sizeof(d->cfg.data_dir) - sizeof(CFG_POOL_FILE) - 1) {
		log_error("data dir %s: path too long", abs);
		free(abs);
		return -ENAMETOOLONG;
	}
	strcpy(d->cfg.data_dir, abs);
	free(abs);
	return cfg_pool_path(&d->cfg, d->pool_path, sizeof(d->pool_path));
}

static int daemon_detach_step(struct sluiced *d)
{
	return d->cfg.foreground ? 0 : daemon_detach(d);
}

static int daemon_loop_create(struct sluiced *d)
{
	ev_set_syserr_cb(daemon_syserr_cb);
	d->loop = ev_default_loop(EVFLAG_AUTO);
	if (!d->loop) {
		log_error("cannot create the event loop (bad LIBEV_FLAGS?)");
		return -ENOMEM;
	}
	return 0;
}

static int daemon_pool_open(struct sluiced *d)
{
	struct store_pool_opts o = {
		.path            = d->pool_path,
		.create_bytes    = d->cfg.pool_size,
		.segment_bytes   = d->cfg.segment_size,
		.engine          = d->cfg.io_engine,
		.checkpoint_secs = d->cfg.checkpoint_interval,
		.dedup           = d->cfg.dedup,
		.read_cache_bytes = d->cfg.read_cache_size,
		.log             = log_store_cb,
	};
	struct stat st;
	int err;

	if (stat(d->pool_path, &st) == 0)
		log_info("opening pool %s", d->pool_path);
	else
		log_info("creating pool %s: %" PRIu64 " bytes, sparse", d->pool_path,
		         d->cfg.pool_size);
	err = store_pool_open(d->loop, &o, &d->pool);
	if (err < 0) {
		log_error("cannot open pool %s (engine %s): %s", d->pool_path,
		          store_engine_name(d->cfg.io_engine), store_strerror(err));
		d->pool = NULL;
		return err;
	}
	return 0;
}

static void daemon_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct sluiced *d = w->data;

	(void)loop; (void)revents;
	log_info("%s received", w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
	daemon_drain(d);
}

static int daemon_signals_start(struct sluiced *d)
{
	/* a closed connection must be an EPIPE from write(), not a dead daemon */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		log_error("ignore SIGPIPE: %s", strerror(errno));
		return -errno;
	}
	ev_signal_init(&d->sig_term, daemon_signal_cb, SIGTERM);
	ev_signal_init(&d->sig_int, daemon_signal_cb, SIGINT);
	d->sig_term.data = d;
	d->sig_int.data = d;
	ev_signal_start(d->loop, &d->sig_term);
	ev_signal_start(d->loop, &d->sig_int);
	return 0;
}

/* iscsi_io_fn: the iSCSI target's READs and WRITEs go into the API's
 * per-volume statistics. */
static void daemon_iscsi_io(void *arg, const char *volume, bool write, uint64_t bytes,
                            uint64_t latency_ns)
{
	struct sluiced *d = arg;

	mgmt_io_record(d->mgmt, volume, write ? MGMT_IO_WRITE : MGMT_IO_READ, bytes, latency_ns);
}

static int daemon_mgmt_start(struct sluiced *d)
{
	struct mgmt_opts o = {
		.loop      = d->loop,
		.pool      = d->pool,
		.host      = d->cfg.http_listen.host,
		.port      = d->cfg.http_listen.port,
		.data_dir  = d->cfg.data_dir,
		.api_token = d->cfg.api_token,
		.tls_cert  = d->cfg.tls_cert,
		.tls_key   = d->cfg.tls_key,
		.log       = log_store_cb,
		.log_arg   = (void *)"http",
	};
	char addr[CFG_HOST_MAX + 16];
	int err = mgmt_start(&o, &d->mgmt);

	cfg_addr_format(&d->cfg.http_listen, addr, sizeof(addr));
	if (err < 0) {
		log_error("cannot start the HTTP API on %s: %s", addr, strerror(-err));
		d->mgmt = NULL;
		return err;
	}
	log_info("HTTP API on %s://%s/api/v1", d->cfg.tls_cert[0] ? "https" : "http",
	         addr);
	if (d->iscsi) {
		iscsi_srv_set_io_hook(d->iscsi, daemon_iscsi_io, d);
		mgmt_set_iscsi(d->mgmt, d->iscsi);
	}
	return 0;
}

/* One connection loop per online CPU: the copies of data segments to and
 * from the sockets run there, without the target lock, on every core. */
static unsigned daemon_iscsi_loops(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

/* After the pool is open: targets are read from its metadata at each
 * login, so portals accept only once targets can be found. */
static int daemon_iscsi_start(struct sluiced *d)
{
	struct iscsi_portal_addr addrs[CFG_LISTEN_MAX];
	struct iscsi_srv_opts o = {
		.portals  = addrs,
		.nportals = d->cfg.iscsi_listen_n,
		.thin_threshold = d->cfg.thin_threshold,
		.nop_interval_secs = d->cfg.nop_interval,
		.nop_timeout_secs = d->cfg.nop_timeout,
		.login_timeout_secs = d->cfg.login_timeout,
		.loops    = daemon_iscsi_loops(),
		.log      = log_store_cb,
		.log_arg  = (void *)"iscsi",
	};
	int err;

	for (size_t i = 0; i < d->cfg.iscsi_listen_n; i++)
		addrs[i] = (struct iscsi_portal_addr){ d->cfg.iscsi_listen[i].host,
		                                       d->cfg.iscsi_listen[i].port };
	err = iscsi_srv_create(d->loop, d->pool, &o, &d->iscsi);
	if (err < 0) {
		log_error("cannot start the iSCSI target: %s", strerror(-err));
		d->iscsi = NULL;
		return err;
	}
	return 0;
}

static const struct daemon_step {
	const char     *name;
	daemon_step_fn *run;
} daemon_steps[] = {
	{ "make data dir",  daemon_data_dir_make },
	{ "detach",         daemon_detach_step },
	{ "create loop",    daemon_loop_create },
	{ "open pool",      daemon_pool_open },
	{ "start signals",  daemon_signals_start },
	{ "start iSCSI",    daemon_iscsi_start },
	{ "start HTTP API", daemon_mgmt_start },
};

/* "a:1, [b]:2" into buf. */
static void daemon_addrs_format(const struct cfg_addr *a, size_t n, char *buf,
                                size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < len; i++) {
		if (i > 0)
			used += (size_t)snprintf(buf + used, len - used, ", ");
		if (used + 1 < len)
			cfg_addr_format(&a[i], buf + used, len - used);
		used += strlen(buf + used);
	}
}

static void daemon_ready_log(struct sluiced *d)
{
	struct store_pool_stats st;
	char iscsi[1024];

	store_pool_get_stats(d->pool, &st);
	log_info("ready: pool %s, engine %s, %" PRIu64 " volumes, %" PRIu64
	         " of %" PRIu64 " bytes used", d->pool_path, st.engine, st.volumes,
	         st.used_bytes, st.capacity_bytes);
	daemon_addrs_format(d->cfg.iscsi_listen, d->cfg.iscsi_listen_n, iscsi,
	                    sizeof(iscsi));
	log_info("iSCSI portals %s", iscsi);
}

static void daemon_pool_closed_cb(void *arg, int err)
{
	struct sluiced *d = arg;

	d->pool = NULL;
	d->close_err = err;
	if (err < 0)
		log_error("close pool %s: %s", d->pool_path, store_strerror(err));
	else
		log_info("pool %s closed", d->pool_path);
	if (ev_is_active(&d->sig_term)) {
		ev_signal_stop(d->loop, &d->sig_term);
		ev_signal_stop(d->loop, &d->sig_int);
	}
	ev_break(d->loop, EVBREAK_ALL);
}

/* Last: the front ends hold volume handles until they have stopped. */
static void daemon_pool_drain(struct sluiced *d)
{
	log_info("draining: closing the pool and writing a checkpoint");
	store_pool_close(d->pool, daemon_pool_closed_cb, d);
}

static void daemon_mgmt_stopped_cb(void *arg, int err)
{
	struct sluiced *d = arg;

	(void)err;
	d->mgmt = NULL;
	log_info("HTTP API stopped");
	daemon_pool_drain(d);
}

static void daemon_http_drain(struct sluiced *d)
{
	if (d->mgmt) {
		log_info("draining: stopping the HTTP API");
		mgmt_stop(d->mgmt, daemon_mgmt_stopped_cb, d);
		return;
	}
	daemon_pool_drain(d);
}

/* The initiators were asked to log out; their I/O has completed. */
static void daemon_iscsi_stopped_cb(void *arg, int err)
{
	struct sluiced *d = arg;

	(void)err;
	d->iscsi = NULL;
	if (d->mgmt)
		mgmt_set_iscsi(d->mgmt, NULL);
	daemon_http_drain(d);
}

void daemon_drain(struct sluiced *d)
{
	if (d->draining) {
		log_info("already draining");
		return;
	}
	d->draining = true;
	daemon_notify_stopping(d);
	if (d->iscsi) {
		log_info("draining: stopping the iSCSI target");
		iscsi_srv_stop(d->iscsi, daemon_iscsi_stopped_cb, d);
		return;
	}
	daemon_http_drain(d);
}

/* Undoes whatever start-up did; also the normal exit path. */
static void daemon_teardown(struct sluiced *d)
{
	if (d->pool) {
		daemon_drain(d);
		ev_run(d->loop, 0);             /* until daemon_pool_closed_cb */
	}
	if (d->loop) {
		daemon_notify_stop(d);
		ev_loop_destroy(d->loop);
		d->loop = NULL;
	}
}

int daemon_run(struct sluiced *d)
{
	int rc = DAEMON_EXIT_OK;

	d->ready_fd = -1;
	for (size_t i = 0; i < sizeof(daemon_steps) / sizeof(daemon_steps[0]); i++) {
		log_debug("start-up: %s", daemon_steps[i].name);
		daemon_notify_status("start-up: %s", daemon_steps[i].name);
		if (daemon_steps[i].run(d) < 0) {
			daemon_notify_status("start-up failed: %s", daemon_steps[i].name);
			daemon_teardown(d);
			return DAEMON_EXIT_FAILED;
		}
	}
	daemon_ready_log(d);
	daemon_detach_ready(d);
	daemon_notify_ready(d);
	ev_run(d->loop, 0);
	if (d->close_err < 0)
		rc = DAEMON_EXIT_FAILED;
	daemon_teardown(d);
	log_info("exiting with status %d", rc);
	return rc;
}

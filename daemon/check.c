/* daemon/check.c: the offline pool check behind `sluiced --check` and
 * sluice-fsck.
 *
 * The pool is opened read-only: recovery replays the log in memory and
 * writes nothing, so checking a damaged pool never makes it worse. Problems
 * and the summary go to stdout (they are the result); why the pool could
 * not be opened goes to the log (stderr).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/daemon.h"

struct check_ctx {
	struct ev_loop *loop;
	int             close_err;
};

static void check_problem_cb(void *arg, enum store_log_level level, const char *msg)
{
	(void)arg; (void)level;
	printf("problem: %s\n", msg);
}

static void check_closed_cb(void *arg, int err)
{
	struct check_ctx *ctx = arg;

	ctx->close_err = err;
	ev_break(ctx->loop, EVBREAK_ALL);
}

/* One line per volume, in name order. */
static void check_volumes_print(struct store_pool *pool)
{
	struct store_vol_info none;
	size_t n = store_vol_list(pool, &none, 0);      /* just the count */
	struct store_vol_info *vi = calloc(n ? n : 1, sizeof(*vi));

	if (!vi) {
		printf("(no memory to list %zu volumes)\n", n);
		return;
	}
	n = store_vol_list(pool, vi, n);
	for (size_t i = 0; i < n; i++)
		printf("volume %s: id %" PRIu32 ", %" PRIu64 " sectors, %" PRIu64
		       " mapped, %" PRIu64 " extents%s\n", vi[i].name, vi[i].id,
		       vi[i].sectors, vi[i].mapped_sectors, vi[i].extents,
		       vi[i].write_back ? ", write-back" : "");
	free(vi);
}

static void check_summary_print(struct store_pool *pool, const char *path, int found)
{
	struct store_pool_stats st;

	store_pool_get_stats(pool, &st);
	check_volumes_print(pool);
	if (found < 0)
		printf("%s: the check stopped: %s\n", path, store_strerror(found));
	else if (found == 0)
		printf("%s: clean\n", path);
	else
		printf("%s: %d problem%s\n", path, found, found == 1 ? "" : "s");
	printf("volumes %" PRIu64 ", extents %" PRIu64 ", used bytes %" PRIu64
	       ", replayed records %" PRIu64 "\n", st.volumes, st.map_extents,
	       st.used_bytes, st.replayed_records);
}

int daemon_pool_check(const char *path, enum store_engine engine)
{
	struct check_ctx ctx = { .loop = ev_loop_new(EVFLAG_AUTO) };
	struct store_pool_opts o = {
		.path      = path,
		.engine    = engine,
		.read_only = true,
		.log       = log_store_cb,
	};
	struct store_pool *pool;
	int err, found;

	if (!ctx.loop) {
		log_error("cannot create the event loop");
		return DAEMON_EXIT_USAGE;
	}
	err = store_pool_open(ctx.loop, &o, &pool);
	if (err < 0) {
		log_error("cannot open pool %s: %s", path, store_strerror(err));
		ev_loop_destroy(ctx.loop);
		return DAEMON_EXIT_USAGE;
	}
	found = store_pool_check(pool, check_problem_cb, NULL);
	check_summary_print(pool, path, found);
	fflush(stdout);
	store_pool_close(pool, check_closed_cb, &ctx);
	ev_run(ctx.loop, 0);
	ev_loop_destroy(ctx.loop);
	if (ctx.close_err < 0)
		log_warn("close pool %s: %s", path, store_strerror(ctx.close_err));
	/* a check that could not finish has not shown the pool clean */
	return found == 0 ? DAEMON_EXIT_OK : DAEMON_EXIT_FAILED;
}

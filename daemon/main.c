/* daemon/main.c: sluiced's entry point. Parses the command line, loads the
 * configuration, then either checks the pool (--check) or runs the daemon.
 * Everything else lives in libsl_daemon.a, where tests can reach it.
 */
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

/* --check: the same check as sluice-fsck, on the configured pool. */
static int main_check(const struct cfg *c)
{
	char path[PATH_MAX];

	if (cfg_pool_path(c, path, sizeof(path)) < 0) {
		log_error("data dir %s: path too long", c->data_dir);
		return DAEMON_EXIT_USAGE;
	}
	return daemon_pool_check(path, c->io_engine);
}

int main(int argc, char **argv)
{
	struct sluiced d;
	struct cfg_args args;

	memset(&d, 0, sizeof(d));
	log_open("sluiced", LOG_LEVEL_INFO, LOG_TARGET_STDERR);
	if (cfg_args_parse(&args, argc, argv) < 0)
		return DAEMON_EXIT_USAGE;
	if (args.action == CFG_ACTION_HELP) {
		cfg_usage_print(stdout, argv[0]);
		return DAEMON_EXIT_OK;
	}
	if (args.action == CFG_ACTION_VERSION) {
		printf("sluiced %s\n", PACKAGE_VERSION);
		return DAEMON_EXIT_OK;
	}
	if (cfg_load(&d.cfg, &args) < 0)
		return DAEMON_EXIT_USAGE;
	log_level_set(d.cfg.log_level);
	if (args.action == CFG_ACTION_CHECK)
		return main_check(&d.cfg);
	/* a terminal or --foreground reads stderr; otherwise nobody does */
	if (!d.cfg.foreground && !isatty(STDERR_FILENO))
		log_target_set(LOG_TARGET_SYSLOG);
	int rc = daemon_run(&d);
	log_close();
	return rc;
}

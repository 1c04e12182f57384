/* daemon/fsck.c: sluice-fsck, the offline pool check.
 *
 *   sluice-fsck [--data-dir DIR | POOLFILE]
 *
 * Exit status: 0 clean, 1 problems found, 2 cannot open (or bad usage).
 * The check itself is daemon_pool_check(), shared with `sluiced --check`.
 */
#include <getopt.h>
#include <stdio.h>

#include "daemon/daemon.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

static void fsck_usage_print(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [--data-dir DIR | POOLFILE]\n"
		"Check a sluice pool offline (read-only) and print what is wrong.\n"
		"\n"
		"  --data-dir DIR   check DIR/%s (default %s/%s)\n"
		"  POOLFILE         check this pool file or device\n"
		"  -h, --help       show this help and exit\n"
		"  -V, --version    show the version and exit\n"
		"\n"
		"Exit status: 0 clean, 1 problems found, 2 cannot open.\n",
		prog, CFG_POOL_FILE, CFG_DEFAULT_DATA_DIR, CFG_POOL_FILE);
}

/* The pool path from argv into buf; returns -1 (after saying why) on bad
 * usage, 1 when help or version was printed, 0 to go on. */
static int fsck_args_parse(int argc, char **argv, char *buf, size_t len)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help",     no_argument,       NULL, 'h' },
		{ "version",  no_argument,       NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	int opt, n;

	while ((opt = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 'h': fsck_usage_print(stdout, argv[0]); return 1;
		case 'V': printf("sluice-fsck %s\n", PACKAGE_VERSION); return 1;
		default:  goto usage;
		}
	}
	if (argc - optind > 1 || (dir && optind < argc)) {
		fprintf(stderr, "%s: give either --data-dir DIR or one POOLFILE\n", argv[0]);
		goto usage;
	}
	if (optind < argc)
		n = snprintf(buf, len, "%s", argv[optind]);
	else
		n = snprintf(buf, len, "%s/%s", dir ? dir : CFG_DEFAULT_DATA_DIR,
		             CFG_POOL_FILE);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "%s: path too long\n", argv[0]);
		return -1;
	}
	return 0;
usage:
	fprintf(stderr, "Try '%s --help' for more information.\n", argv[0]);
	return -1;
}

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	int rc;

	log_open("sluice-fsck", LOG_LEVEL_WARN, LOG_TARGET_STDERR);
	rc = fsck_args_parse(argc, argv, path, sizeof(path));
	if (rc != 0)
		return rc > 0 ? DAEMON_EXIT_OK : DAEMON_EXIT_USAGE;
	return daemon_pool_check(path, STORE_ENGINE_AUTO);
}

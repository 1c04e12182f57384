/* daemon/config.h: sluiced's configuration: embedded defaults, then the
 * JSON file (--config), then command-line flags, each overriding the last.
 */
#ifndef SLUICE_DAEMON_CONFIG_H
#define SLUICE_DAEMON_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "daemon/log.h"
#include "store/store.h"

#define CFG_LISTEN_MAX          16      /* iscsi_listen addresses */
#define CFG_HOST_MAX            255     /* bytes of a host name or address */
#define CFG_TOKEN_MAX           256     /* bytes of api_token */
#define CFG_POOL_FILE           "pool"  /* the pool's name inside the data dir */

#define CFG_DEFAULT_DATA_DIR    "./sluice-data"
#define CFG_DEFAULT_ISCSI       "0.0.0.0:3260"
#define CFG_DEFAULT_HTTP        "127.0.0.1:8080"
#define CFG_DEFAULT_POOL_SIZE   (64ull << 30)   /* sparse: costs nothing until written */
#define CFG_DEFAULT_CKPT_SECS   30

/* A listen address. IPv6 hosts are kept without their brackets. */
struct cfg_addr {
	char     host[CFG_HOST_MAX + 1];
	uint16_t port;
};

enum cfg_action {
	CFG_ACTION_RUN,
	CFG_ACTION_CHECK,       /* --check: check the pool offline, then exit */
	CFG_ACTION_HELP,
	CFG_ACTION_VERSION,
};

/* The command line as given; strings are borrowed from argv. cfg_load()
 * checks them, so that a bad flag and a bad file key read alike. */
struct cfg_args {
	enum cfg_action action;
	const char *config;
	const char *data_dir;
	const char *iscsi_listen[CFG_LISTEN_MAX];
	size_t      iscsi_listen_n;
	const char *http_listen;
	const char *io_engine;
	const char *log_level;
	bool        foreground;
};

/* The effective configuration. Plain arrays: copied by assignment, no
 * cleanup. */
struct cfg {
	char              config_file[PATH_MAX];   /* "" when none */
	char              data_dir[PATH_MAX];
	struct cfg_addr   iscsi_listen[CFG_LISTEN_MAX];
	size_t            iscsi_listen_n;
	struct cfg_addr   http_listen;
	enum store_engine io_engine;
	enum log_level    log_level;
	uint64_t          pool_size;               /* bytes, at creation */
	uint32_t          segment_size;            /* bytes, at creation; 0: the store's */
	uint32_t          checkpoint_interval;     /* seconds */
	uint32_t          thin_threshold;          /* % of the pool left; 0: iSCSI's default */
	int               dedup;                   /* 1 on, -1 off, 0: as the pool has it */
	uint64_t          read_cache_size;         /* bytes of the store's read cache; 0: off */
	uint32_t          nop_interval;            /* seconds idle before a NOP-In; 0: iSCSI's */
	uint32_t          nop_timeout;             /* seconds a NOP-In may go unanswered; 0: iSCSI's */
	uint32_t          login_timeout;           /* seconds a login may take; 0: iSCSI's */
	char              api_token[CFG_TOKEN_MAX + 1]; /* "": generate (mgmt/) */
	char              tls_cert[PATH_MAX];      /* PEM; with tls_key: HTTPS. "": none */
	char              tls_key[PATH_MAX];
	bool              foreground;
};

/* getopt_long over argv. Returns 0, or -EINVAL after printing why. */
int  cfg_args_parse(struct cfg_args *a, int argc, char **argv);
void cfg_usage_print(FILE *f, const char *prog);
/* Defaults, then a->config, then the flags in a. Logs each problem;
 * returns 0 or -EINVAL. */
int  cfg_load(struct cfg *c, const struct cfg_args *a);

/* "HOST:PORT", "[IPv6]:PORT". Returns 0 or -EINVAL. */
int  cfg_addr_parse(const char *s, struct cfg_addr *out);
void cfg_addr_format(const struct cfg_addr *a, char *buf, size_t len);
/* "auto", "uring", "threads". Returns 0 or -EINVAL. */
int  cfg_engine_parse(const char *name, enum store_engine *out);
/* DATA_DIR/pool into buf. Returns 0 or -ENAMETOOLONG. */
int  cfg_pool_path(const struct cfg *c, char *buf, size_t len);

#endif

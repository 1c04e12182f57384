/* daemon/log.h: the daemon's logging. One line per message, to stderr with
 * a timestamp (foreground or a terminal) or to syslog (in the background).
 *
 * The logger is process-wide state, like stderr and openlog() beneath it:
 * it is the one thing in daemon/ that is not passed in a context, so that
 * every function can report its own failure. Call it from the loop thread
 * (the store's worker threads never log).
 */
#ifndef SLUICE_DAEMON_LOG_H
#define SLUICE_DAEMON_LOG_H

#include <stdbool.h>

#include "store/store.h"

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
};

/* ident is borrowed for the life of the process (syslog keeps it). */
void log_open(const char *ident, enum log_level max, enum log_target target);
void log_close(void);
void log_level_set(enum log_level max);
void log_target_set(enum log_target target);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...)  log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

/* store_pool_opts.log: forwards the store's messages ("store: ..."). Also
 * mgmt_opts.log, with a prefix string as arg ("http: ..."). */
store_log_fn log_store_cb;

#endif

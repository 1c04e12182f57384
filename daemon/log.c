/* daemon/log.c: one log line per message, to stderr or syslog.
 *
 * A stderr line is built whole and written with one write(), so lines from
 * the daemon and from anything sharing its stderr (a test harness) do not
 * interleave mid-line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"

#define LOG_LINE_MAX 2048

/* Process-wide, as explained in log.h. */
static struct {
	const char     *ident;
	enum log_level  max;
	enum log_target target;
} log_state = { "sluiced", LOG_LEVEL_INFO, LOG_TARGET_STDERR };

static const struct {
	const char *name;
	int         syslog_prio;
} log_levels[] = {
	[LOG_LEVEL_ERROR] = { "error", LOG_ERR },
	[LOG_LEVEL_WARN]  = { "warn",  LOG_WARNING },
	[LOG_LEVEL_INFO]  = { "info",  LOG_INFO },
	[LOG_LEVEL_DEBUG] = { "debug", LOG_DEBUG },
};

void log_open(const char *ident, enum log_level max, enum log_target target)
{
	log_state.ident = ident;
	log_state.max = max;
	log_target_set(target);
}

void log_close(void)
{
	if (log_state.target == LOG_TARGET_SYSLOG)
		closelog();
	log_state.target = LOG_TARGET_STDERR;
}

void log_level_set(enum log_level max)
{
	log_state.max = max;
}

void log_target_set(enum log_target target)
{
	if (target == log_state.target)
		return;
	if (log_state.target == LOG_TARGET_SYSLOG)
		closelog();
	if (target == LOG_TARGET_SYSLOG)
		openlog(log_state.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_state.target = target;
}

bool log_enabled(enum log_level level)
{
	return level <= log_state.max;
}

/* "2024-05-01 12:00:00.123 +0200" into buf. */
static void log_time_format(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char date[32], zone[8];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(buf, len, "%s.%03ld %s", date, ts.tv_nsec / 1000000L, zone);
}

static void log_stderr_write(enum log_level level, const char *msg)
{
	char line[LOG_LINE_MAX], when[64];
	int n;

	log_time_format(when, sizeof(when));
	n = snprintf(line, sizeof(line), "%s %s[%ld] %s: %s\n", when,
	             log_state.ident, (long)getpid(), log_levels[level].name, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {        /* truncated: keep the newline */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* Nothing sensible to do if stderr is gone; the daemon carries on. */
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	va_list ap;
	int saved_errno = errno;        /* callers log and then use errno */

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_state.target == LOG_TARGET_SYSLOG)
		syslog(log_levels[level].syslog_prio, "%s", msg);
	else
		log_stderr_write(level, msg);
	errno = saved_errno;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcmp(name, log_levels[i].name) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	return log_levels[level].name;
}

void log_store_cb(void *arg, enum store_log_level level, const char *msg)
{
	static const enum log_level from_store[] = {
		[STORE_LOG_ERR]   = LOG_LEVEL_ERROR,
		[STORE_LOG_WARN]  = LOG_LEVEL_WARN,
		[STORE_LOG_INFO]  = LOG_LEVEL_INFO,
		[STORE_LOG_DEBUG] = LOG_LEVEL_DEBUG,
	};

	if ((unsigned)level >= sizeof(from_store) / sizeof(from_store[0]))
		level = STORE_LOG_ERR;
	log_msg(from_store[level], "%s: %s", arg ? (const char *)arg : "store", msg);
}

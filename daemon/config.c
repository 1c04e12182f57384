/* daemon/config.c: command line (getopt_long) and JSON config file (jansson).
 *
 * Both sources go through the same value parsers, so "--io-engine fast" and
 * {"io_engine": "fast"} fail with the same explanation. The file is checked
 * strictly, like json_unpack_ex(..., JSON_STRICT, ...): an unknown key or a
 * value of the wrong type is an error that names the key, and every problem
 * in the file is reported, not only the first.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"

/* ---- values: shared by flags and file keys ------------------------------ */

/* Each parser returns 0, or -EINVAL with *why saying what was expected. */
typedef int cfg_str_fn(struct cfg *c, const char *s, const char **why);

static int cfg_copy(char *dst, size_t len, const char *s, const char **why)
{
	size_t n = strlen(s);

	if (n == 0 || n >= len) {
		*why = n ? "is too long" : "must not be empty";
		return -EINVAL;
	}
	memcpy(dst, s, n + 1);
	return 0;
}

static int cfg_data_dir_set(struct cfg *c, const char *s, const char **why)
{
	/* room for "/pool" after it */
	return cfg_copy(c->data_dir, sizeof(c->data_dir) - sizeof(CFG_POOL_FILE) - 1,
	                s, why);
}

static const char cfg_addr_why[] =
	"must be HOST:PORT, with an IPv6 address in brackets ([::1]:3260)";

static int cfg_iscsi_listen_add(struct cfg *c, const char *s, const char **why)
{
	if (c->iscsi_listen_n == CFG_LISTEN_MAX) {
		*why = "has too many addresses (at most 16)";
		return -EINVAL;
	}
	if (cfg_addr_parse(s, &c->iscsi_listen[c->iscsi_listen_n]) < 0) {
		*why = cfg_addr_why;
		return -EINVAL;
	}
	c->iscsi_listen_n++;
	return 0;
}

static int cfg_http_listen_set(struct cfg *c, const char *s, const char **why)
{
	if (cfg_addr_parse(s, &c->http_listen) < 0) {
		*why = cfg_addr_why;
		return -EINVAL;
	}
	return 0;
}

static int cfg_io_engine_set(struct cfg *c, const char *s, const char **why)
{
	if (cfg_engine_parse(s, &c->io_engine) < 0) {
		*why = "must be uring, threads or auto";
		return -EINVAL;
	}
	return 0;
}

static int cfg_log_level_set(struct cfg *c, const char *s, const char **why)
{
	if (log_level_parse(s, &c->log_level) < 0) {
		*why = "must be error, warn, info or debug";
		return -EINVAL;
	}
	return 0;
}

static int cfg_api_token_set(struct cfg *c, const char *s, const char **why)
{
	for (const char *p = s; *p; p++) {
		if (*p <= ' ' || *p > '~') {     /* it goes into an HTTP header */
			*why = "must be printable ASCII without spaces";
			return -EINVAL;
		}
	}
	return cfg_copy(c->api_token, sizeof(c->api_token), s, why);
}

/* Absolute, because the background mode leaves the working directory;
 * and checked now, so a typo fails at start-up with the key's name. */
static int cfg_file_path_set(char *dst, const char *s, const char **why)
{
	char *abs = realpath(s, NULL);
	int err;

	if (!abs) {
		*why = "is not an existing file";
		return -EINVAL;
	}
	err = cfg_copy(dst, PATH_MAX, abs, why);
	free(abs);
	return err;
}

static int cfg_tls_cert_set(struct cfg *c, const char *s, const char **why)
{
	return cfg_file_path_set(c->tls_cert, s, why);
}

static int cfg_tls_key_set(struct cfg *c, const char *s, const char **why)
{
	return cfg_file_path_set(c->tls_key, s, why);
}

int cfg_addr_parse(const char *s, struct cfg_addr *out)
{
	const char *host = s, *port;
	size_t hlen;
	char *end;
	unsigned long n;

	if (s[0] == '[') {                      /* [IPv6]:PORT */
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		host = s + 1;
		hlen = (size_t)(close - host);
		port = close + 2;
		if (!memchr(host, ':', hlen))
			return -EINVAL;
	} else {                                /* HOST:PORT, one colon */
		const char *colon = strchr(s, ':');

		if (!colon || strchr(colon + 1, ':'))
			return -EINVAL;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hlen == 0 || hlen > CFG_HOST_MAX || memchr(host, '/', hlen))
		return -EINVAL;
	if (port[0] < '0' || port[0] > '9' || strlen(port) > 5)
		return -EINVAL;
	errno = 0;
	n = strtoul(port, &end, 10);
	if (*end || errno || n > 65535)
		return -EINVAL;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = (uint16_t)n;
	return 0;
}

void cfg_addr_format(const struct cfg_addr *a, char *buf, size_t len)
{
	if (strchr(a->host, ':'))
		snprintf(buf, len, "[%s]:%u", a->host, (unsigned)a->port);
	else
		snprintf(buf, len, "%s:%u", a->host, (unsigned)a->port);
}

int cfg_engine_parse(const char *name, enum store_engine *out)
{
	static const struct {
		const char       *name;
		enum store_engine engine;
	} engines[] = {
		{ "auto",    STORE_ENGINE_AUTO },
		{ "uring",   STORE_ENGINE_URING },
		{ "threads", STORE_ENGINE_THREADS },
	};

	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		if (strcmp(name, engines[i].name) == 0) {
			*out = engines[i].engine;
			return 0;
		}
	}
	return -EINVAL;
}

int cfg_pool_path(const struct cfg *c, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", c->data_dir, CFG_POOL_FILE);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The memory limit of our cgroup (systemd's MemoryMax=, a container's
 * limit) when there is one below ram. */
static uint64_t cfg_cgroup_memory(uint64_t ram)
{
	FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");   /* cgroup v2 */
	unsigned long long max;

	if (!f)
		return ram;
	if (fscanf(f, "%llu", &max) != 1 || max >= ram)  /* "max": no limit */
		max = ram;
	fclose(f);
	return max;
}

/* The read cache: an eighth of the RAM we may use, at least 64 MiB. The
 * rest is for the maps (which grow with what is mapped), the kernel and
 * whatever else runs on the host; a dedicated appliance with spare RAM
 * raises it, a small one shares the host and keeps most RAM for its
 * neighbours. On a 16 GiB host it holds a 2 GiB working set, a desktop
 * pool's golden image many times over. */
static uint64_t cfg_default_read_cache(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
	uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
	uint64_t eighth = cfg_cgroup_memory(ram) / 8;

	return eighth > (64ull << 20) ? eighth : 64ull << 20;
}

static void cfg_defaults(struct cfg *c)
{
	const char *why;

	memset(c, 0, sizeof(*c));
	strcpy(c->data_dir, CFG_DEFAULT_DATA_DIR);
	cfg_iscsi_listen_add(c, CFG_DEFAULT_ISCSI, &why);
	cfg_http_listen_set(c, CFG_DEFAULT_HTTP, &why);
	c->io_engine = STORE_ENGINE_AUTO;
	c->log_level = LOG_LEVEL_INFO;
	c->pool_size = CFG_DEFAULT_POOL_SIZE;
	c->checkpoint_interval = CFG_DEFAULT_CKPT_SECS;
	c->read_cache_size = cfg_default_read_cache();
}

/* ---- the JSON file ------------------------------------------------------- */

/* What was wrong with a key's value: why, and which part (the value, or
 * one element of an array) to show. */
struct cfg_json_err {
	const char *why;
	json_t     *bad;
};

/* A key's value, already known to have the key's JSON type. */
typedef int cfg_json_fn(struct cfg *c, json_t *v, struct cfg_json_err *e);

static int cfg_json_data_dir(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_data_dir_set(c, json_string_value(v), &e->why);
}

static int cfg_json_iscsi_listen(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	size_t i;
	json_t *addr;

	if (json_array_size(v) == 0) {
		e->why = "must list at least one HOST:PORT";
		return -EINVAL;
	}
	c->iscsi_listen_n = 0;                  /* the file's list replaces the default */
	json_array_foreach(v, i, addr) {
		e->bad = addr;
		if (!json_is_string(addr)) {
			e->why = "must be a \"HOST:PORT\" string";
			return -EINVAL;
		}
		if (cfg_iscsi_listen_add(c, json_string_value(addr), &e->why) < 0)
			return -EINVAL;
	}
	return 0;
}

static int cfg_json_http_listen(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_http_listen_set(c, json_string_value(v), &e->why);
}

static int cfg_json_io_engine(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_io_engine_set(c, json_string_value(v), &e->why);
}

static int cfg_json_log_level(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_log_level_set(c, json_string_value(v), &e->why);
}

static int cfg_json_tls_cert(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_tls_cert_set(c, json_string_value(v), &e->why);
}

static int cfg_json_tls_key(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_tls_key_set(c, json_string_value(v), &e->why);
}

static int cfg_json_api_token(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	e->bad = NULL;                          /* a secret: do not log it */
	return cfg_api_token_set(c, json_string_value(v), &e->why);
}

/* An integer in [min, max] into *out. */
static int cfg_json_range(json_t *v, uint64_t min, uint64_t max, uint64_t *out,
                          const char **why)
{
	json_int_t n = json_integer_value(v);

	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
		*why = "is out of range";
		return -EINVAL;
	}
	*out = (uint64_t)n;
	return 0;
}

static int cfg_json_pool_size(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	/* at least one 4 KiB block; the store checks what it needs beyond that */
	return cfg_json_range(v, STORE_BLOCK, UINT64_MAX, &c->pool_size, &e->why);
}

static int cfg_json_segment_size(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	uint64_t n;

	if (cfg_json_range(v, 0, UINT32_MAX, &n, &e->why) < 0)
		return -EINVAL;
	c->segment_size = (uint32_t)n;
	return 0;
}

static int cfg_json_checkpoint_interval(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	uint64_t n;

	if (cfg_json_range(v, 1, 86400, &n, &e->why) < 0) {
		e->why = "must be 1 to 86400 seconds";
		return -EINVAL;
	}
	c->checkpoint_interval = (uint32_t)n;
	return 0;
}

static int cfg_json_thin_threshold(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	uint64_t n;

	if (cfg_json_range(v, 1, 99, &n, &e->why) < 0) {
		e->why = "must be 1 to 99 (percent of the pool)";
		return -EINVAL;
	}
	c->thin_threshold = (uint32_t)n;
	return 0;
}

/* iSCSI timers, in seconds: an hour at most, so a typo does not leave
 * dead initiators' connections open for days. */
static int cfg_json_secs(json_t *v, uint32_t *out, const char **why)
{
	uint64_t n;

	if (cfg_json_range(v, 1, 3600, &n, why) < 0) {
		*why = "must be 1 to 3600 seconds";
		return -EINVAL;
	}
	*out = (uint32_t)n;
	return 0;
}

static int cfg_json_nop_interval(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_json_secs(v, &c->nop_interval, &e->why);
}

static int cfg_json_nop_timeout(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_json_secs(v, &c->nop_timeout, &e->why);
}

static int cfg_json_login_timeout(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_json_secs(v, &c->login_timeout, &e->why);
}

static int cfg_json_read_cache_size(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	return cfg_json_range(v, 0, INT64_MAX, &c->read_cache_size, &e->why);
}

/* Inline dedup: the pool keeps the setting, so a config without the key
 * leaves it as it was. */
static int cfg_json_dedup(struct cfg *c, json_t *v, struct cfg_json_err *e)
{
	(void)e;
	c->dedup = json_is_true(v) ? 1 : -1;
	return 0;
}

static const struct cfg_key {
	const char  *name;
	json_type    type;
	cfg_json_fn *set;
} cfg_keys[] = {
	{ "data_dir",            JSON_STRING,  cfg_json_data_dir },
	{ "iscsi_listen",        JSON_ARRAY,   cfg_json_iscsi_listen },
	{ "http_listen",         JSON_STRING,  cfg_json_http_listen },
	{ "io_engine",           JSON_STRING,  cfg_json_io_engine },
	{ "log_level",           JSON_STRING,  cfg_json_log_level },
	{ "pool_size",           JSON_INTEGER, cfg_json_pool_size },
	{ "segment_size",        JSON_INTEGER, cfg_json_segment_size },
	{ "checkpoint_interval", JSON_INTEGER, cfg_json_checkpoint_interval },
	{ "thin_threshold_percent", JSON_INTEGER, cfg_json_thin_threshold },
	{ "dedup",               JSON_TRUE,    cfg_json_dedup },
	{ "read_cache_size",     JSON_INTEGER, cfg_json_read_cache_size },
	{ "nop_interval",        JSON_INTEGER, cfg_json_nop_interval },
	{ "nop_timeout",         JSON_INTEGER, cfg_json_nop_timeout },
	{ "login_timeout",       JSON_INTEGER, cfg_json_login_timeout },
	{ "api_token",           JSON_STRING,  cfg_json_api_token },
	{ "tls_cert",            JSON_STRING,  cfg_json_tls_cert },
	{ "tls_key",             JSON_STRING,  cfg_json_tls_key },
};
#define CFG_KEYS_N (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static const char *cfg_json_type_name(json_type t)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
		[JSON_STRING] = "a string",  [JSON_INTEGER] = "an integer",
		[JSON_REAL] = "a real number", [JSON_TRUE] = "a boolean",
		[JSON_FALSE] = "a boolean",  [JSON_NULL] = "null",
	};

	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static void cfg_unknown_key_log(const char *file, const char *key)
{
	char known[512] = "";

	for (size_t i = 0; i < CFG_KEYS_N; i++) {
		strncat(known, cfg_keys[i].name, sizeof(known) - strlen(known) - 1);
		if (i + 1 < CFG_KEYS_N)
			strncat(known, ", ", sizeof(known) - strlen(known) - 1);
	}
	log_error("config %s: unknown key \"%s\" (known keys: %s)", file, key, known);
}

static void cfg_bad_value_log(const char *file, const char *key,
                              const struct cfg_json_err *e)
{
	char *shown = e->bad ? json_dumps(e->bad, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

	log_error("config %s: \"%s\": %s %s", file, key, shown ? shown : "value",
	          e->why);
	free(shown);
}

static int cfg_key_set(struct cfg *c, const char *file, const char *key, json_t *v)
{
	struct cfg_json_err e = { .why = "is not valid", .bad = v };

	for (size_t i = 0; i < CFG_KEYS_N; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (strcmp(key, k->name) != 0)
			continue;
		if (json_typeof(v) != k->type && !(k->type == JSON_TRUE && json_is_boolean(v))) {
			log_error("config %s: \"%s\" must be %s, not %s", file, key,
			          cfg_json_type_name(k->type),
			          cfg_json_type_name(json_typeof(v)));
			return -EINVAL;
		}
		if (k->set(c, v, &e) < 0) {
			cfg_bad_value_log(file, key, &e);
			return -EINVAL;
		}
		return 0;
	}
	cfg_unknown_key_log(file, key);
	return -EINVAL;
}

static int cfg_file_load(struct cfg *c, const char *path)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int rc = 0;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (jerr.line > 0)
			log_error("config %s:%d:%d: %s", path, jerr.line, jerr.column,
			          jerr.text);
		else
			log_error("config %s: %s", path, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		log_error("config %s: the top level must be a JSON object", path);
		rc = -EINVAL;
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (cfg_key_set(c, path, key, v) < 0)
			rc = -EINVAL;           /* keep going: report every bad key */
	}
	if (rc == 0 && !c->tls_cert[0] != !c->tls_key[0]) {
		log_error("config %s: \"tls_cert\" and \"tls_key\" go together", path);
		rc = -EINVAL;
	}
out:
	json_decref(root);
	return rc;
}

/* ---- the command line ---------------------------------------------------- */

enum {
	OPT_CONFIG = 256, OPT_DATA_DIR, OPT_ISCSI_LISTEN, OPT_HTTP_LISTEN,
	OPT_IO_ENGINE, OPT_FOREGROUND, OPT_LOG_LEVEL, OPT_CHECK,
};

static const struct option cfg_options[] = {
	{ "config",       required_argument, NULL, OPT_CONFIG },
	{ "data-dir",     required_argument, NULL, OPT_DATA_DIR },
	{ "iscsi-listen", required_argument, NULL, OPT_ISCSI_LISTEN },
	{ "http-listen",  required_argument, NULL, OPT_HTTP_LISTEN },
	{ "io-engine",    required_argument, NULL, OPT_IO_ENGINE },
	{ "foreground",   no_argument,       NULL, OPT_FOREGROUND },
	{ "log-level",    required_argument, NULL, OPT_LOG_LEVEL },
	{ "check",        no_argument,       NULL, OPT_CHECK },
	{ "help",         no_argument,       NULL, 'h' },
	{ "version",      no_argument,       NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

void cfg_usage_print(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [OPTION]...\n"
		"Serve iSCSI LUNs from a log-structured store.\n"
		"\n"
		"  --config FILE            JSON configuration file; flags override it\n"
		"  --data-dir DIR           data directory (default %s)\n"
		"  --iscsi-listen HOST:PORT iSCSI portal, repeatable (default %s)\n"
		"  --http-listen HOST:PORT  management API (default %s)\n"
		"  --io-engine ENGINE       uring, threads or auto (default auto:\n"
		"                           io_uring where the kernel allows it)\n"
		"  --foreground             stay in the foreground, log to stderr\n"
		"  --log-level LEVEL        error, warn, info or debug (default info)\n"
		"  --check                  check the pool offline and exit:\n"
		"                           0 clean, 1 problems found, 2 cannot open\n"
		"  -h, --help               show this help and exit\n"
		"  -V, --version            show the version and exit\n",
		prog, CFG_DEFAULT_DATA_DIR, CFG_DEFAULT_ISCSI, CFG_DEFAULT_HTTP);
}

static int cfg_args_option(struct cfg_args *a, int opt, const char *arg)
{
	switch (opt) {
	case OPT_CONFIG:      a->config = arg; break;
	case OPT_DATA_DIR:    a->data_dir = arg; break;
	case OPT_HTTP_LISTEN: a->http_listen = arg; break;
	case OPT_IO_ENGINE:   a->io_engine = arg; break;
	case OPT_LOG_LEVEL:   a->log_level = arg; break;
	case OPT_FOREGROUND:  a->foreground = true; break;
	case OPT_CHECK:       a->action = CFG_ACTION_CHECK; break;
	case 'h':             a->action = CFG_ACTION_HELP; break;
	case 'V':             a->action = CFG_ACTION_VERSION; break;
	case OPT_ISCSI_LISTEN:
		if (a->iscsi_listen_n == CFG_LISTEN_MAX) {
			fprintf(stderr, "too many --iscsi-listen (at most %d)\n",
			        CFG_LISTEN_MAX);
			return -EINVAL;
		}
		a->iscsi_listen[a->iscsi_listen_n++] = arg;
		break;
	default:                                /* getopt said why */
		return -EINVAL;
	}
	return 0;
}

int cfg_args_parse(struct cfg_args *a, int argc, char **argv)
{
	const char *prog = argc > 0 ? argv[0] : "sluiced";
	int opt;

	memset(a, 0, sizeof(*a));
	optind = 0;                             /* glibc: start afresh (tests) */
	while ((opt = getopt_long(argc, argv, "hV", cfg_options, NULL)) != -1) {
		if (cfg_args_option(a, opt, optarg) < 0)
			goto fail;
		if (a->action == CFG_ACTION_HELP || a->action == CFG_ACTION_VERSION)
			return 0;
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "Try '%s --help' for more information.\n", prog);
	return -EINVAL;
}

/* One flag through its parser; logs "--flag "value": why". */
static int cfg_flag_apply(struct cfg *c, const char *flag, const char *val,
                          cfg_str_fn *set)
{
	const char *why = NULL;

	if (!val || set(c, val, &why) == 0)
		return 0;
	log_error("%s: \"%s\" %s", flag, val, why);
	return -EINVAL;
}

static int cfg_args_apply(struct cfg *c, const struct cfg_args *a)
{
	int rc = 0;

	rc |= cfg_flag_apply(c, "--data-dir", a->data_dir, cfg_data_dir_set);
	rc |= cfg_flag_apply(c, "--http-listen", a->http_listen, cfg_http_listen_set);
	rc |= cfg_flag_apply(c, "--io-engine", a->io_engine, cfg_io_engine_set);
	rc |= cfg_flag_apply(c, "--log-level", a->log_level, cfg_log_level_set);
	if (a->iscsi_listen_n > 0)
		c->iscsi_listen_n = 0;          /* flags replace the file's list */
	for (size_t i = 0; i < a->iscsi_listen_n; i++)
		rc |= cfg_flag_apply(c, "--iscsi-listen", a->iscsi_listen[i],
		                     cfg_iscsi_listen_add);
	if (a->foreground)
		c->foreground = true;
	return rc ? -EINVAL : 0;
}

int cfg_load(struct cfg *c, const struct cfg_args *a)
{
	const char *why;
	int rc = 0;

	cfg_defaults(c);
	if (a->config) {
		if (cfg_copy(c->config_file, sizeof(c->config_file), a->config, &why) < 0) {
			log_error("--config: \"%s\" %s", a->config, why);
			return -EINVAL;
		}
		rc = cfg_file_load(c, a->config);
	}
	if (cfg_args_apply(c, a) < 0)
		rc = -EINVAL;
	return rc;
}

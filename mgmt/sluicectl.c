/* mgmt/sluicectl.c: sluicectl, the command line over sluiced's HTTP API.
 *
 *   sluicectl [--url URL] [--token T | --data-dir DIR] [--json] NOUN VERB ARGS
 *
 * Each command is one row of ctl_cmds[]: it calls the API (libcurl), then
 * prints a table for people or, with --json, the API's JSON as is. Exit
 * statuses: 0 done, 1 the API (or a local file) refused, 2 bad usage, 3 the
 * daemon cannot be reached. The token is --token, else $SLUICE_TOKEN, else
 * DATA_DIR/api-token (--data-dir, default ./sluice-data), which sluiced
 * writes on its first start.
 *
 * Sizes on the command line take binary suffixes (20G, 512M, 1T; K M G T
 * P, optionally followed by iB or B); the API itself speaks bytes. A
 * snapshot is named VOLUME SNAPSHOT or VOLUME@SNAPSHOT (the API's form).
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { CTL_OK = 0, CTL_EAPI = 1, CTL_EUSAGE = 2, CTL_ECONNECT = 3 };

#define CTL_DEFAULT_URL      "http://127.0.0.1:8080"
#define CTL_DEFAULT_DATA_DIR "./sluice-data"
#define CTL_LIST_MAX         64          /* --lun and --allow, each */

struct ctl {
	char        url[1024];             /* without a trailing '/' */
	const char *data_dir;
	const char *token_path;             /* where the token came from, for hints */
	char        token[512];
	bool        json;
	bool        insecure;
	const char *cacert;
	CURL       *curl;
	/* command options */
	bool        write_back;
	const char *luns[CTL_LIST_MAX];
	int         nluns;
	const char *allow[CTL_LIST_MAX];
	int         nallow;
	const char *chap_user, *chap_secret, *mutual_user, *mutual_secret;
	bool        no_chap;
};

/* ---- output helpers ------------------------------------------------------- */

static void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("sluicectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* 1536 -> "1.5 KiB"; exact bytes below 1 KiB. */
static const char *ctl_size(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

static uint64_t ctl_u64(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

static double ctl_num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *ctl_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

static void ctl_json_print(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s) {
		puts(s);
		free(s);
	}
}

/* "20G" -> 21474836480. 0, or -EINVAL / -ERANGE. */
static int ctl_size_parse(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGTP";
	char *end;
	uint64_t n;
	const char *p;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end && (p = strchr(suffixes, *end >= 'a' ? *end - 32 : *end)) && *p) {
		shift = 10 * (int)(p - suffixes + 1);
		end++;
		if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
			end += strlen(end);
	} else if (strcmp(end, "B") == 0) {
		end++;
	}
	if (*end)
		return -EINVAL;
	if (shift && n > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = n << shift;
	return 0;
}

/* ---- HTTP ----------------------------------------------------------------- */

struct ctl_buf {
	char  *data;
	size_t len, cap;
};

static size_t ctl_buf_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ctl_buf *b = arg;
	size_t n = size * nmemb;

	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return 0;               /* curl reports a write error */
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* Common options of every request: URL, token, TLS. */
static struct curl_slist *ctl_setup(struct ctl *c, const char *method, const char *path)
{
	struct curl_slist *h = NULL;
	char url[2048], auth[600];

	curl_easy_reset(c->curl);
	snprintf(url, sizeof(url), "%s/api/v1%s", c->url, path);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	if (c->token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		h = curl_slist_append(h, auth);
	}
	h = curl_slist_append(h, "Expect:");    /* no 100-continue round trip */
	if (c->insecure) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->cacert)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cacert);
	return h;
}

/* The API's error body, or the HTTP status when there is none. */
static int ctl_api_error(struct ctl *c, long status, const struct ctl_buf *b)
{
	json_t *j = b->data ? json_loads(b->data, 0, NULL) : NULL;
	json_t *e = json_object_get(j, "error");

	if (c->json && j)
		ctl_json_print(j);
	if (e)
		ctl_err("%s (HTTP %ld, %s)", ctl_str(e, "message"), status, ctl_str(e, "code"));
	else
		ctl_err("HTTP %ld from %s", status, c->url);
	if (status == 401)
		fprintf(stderr, "sluicectl: the token %s; pass --token or --data-dir\n",
		        c->token[0] ? (c->token_path ? "came from the data dir" : "was given")
		                    : "is missing");
	json_decref(j);
	return CTL_EAPI;
}

static int ctl_perform(struct ctl *c, long *status)
{
	CURLcode rc = curl_easy_perform(c->curl);

	if (rc != CURLE_OK) {
		ctl_err("cannot reach sluiced at %s: %s", c->url, curl_easy_strerror(rc));
		return rc == CURLE_WRITE_ERROR || rc == CURLE_READ_ERROR ? CTL_EAPI
		                                                        : CTL_ECONNECT;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	return CTL_OK;
}

/* One JSON call. body: borrowed, may be NULL. *out: the reply's JSON (the
 * caller decrefs), NULL for 204. Prints the error and returns its exit
 * status on failure. */
static int ctl_call(struct ctl *c, const char *method, const char *path,
                    json_t *body, json_t **out)
{
	struct ctl_buf b = { 0 };
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct curl_slist *h = ctl_setup(c, method, path);
	long status = 0;
	int rc;

	if (text) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, ctl_buf_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	rc = ctl_perform(c, &status);
	if (rc == CTL_OK && status >= 300)
		rc = ctl_api_error(c, status, &b);
	*out = NULL;
	if (rc == CTL_OK && b.data && b.len) {
		*out = json_loads(b.data, 0, NULL);
		if (!*out) {
			ctl_err("the reply is not JSON: %.80s", b.data);
			rc = CTL_EAPI;
		}
	}
	curl_slist_free_all(h);
	free(text);
	free(b.data);
	return rc;
}

/* A path segment from user input, escaped. Caller frees with curl_free(). */
static char *ctl_esc(struct ctl *c, const char *s)
{
	return curl_easy_escape(c->curl, s, 0);
}

static int ctl_get_path(struct ctl *c, const char *fmt, const char *arg, json_t **out)
{
	char path[1024];
	char *e = arg ? ctl_esc(c, arg) : NULL;
	int rc;

	snprintf(path, sizeof(path), fmt, e ? e : "");
	curl_free(e);
	rc = ctl_call(c, "GET", path, NULL, out);
	return rc;
}

/* ---- progress bar ---------------------------------------------------------- */

struct ctl_progress {
	const char *what;
	double      started;
	double      last_draw;
	bool        drawn;
};

static double ctl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ctl_bar_draw(struct ctl_progress *p, uint64_t done, uint64_t total)
{
	double secs = ctl_now() - p->started, rate = secs > 0 ? (double)done / secs : 0;
	int width = 30, fill = total ? (int)((double)done * width / (double)total) : 0;
	char a[32], r[32];

	fprintf(stderr, "\r%s [", p->what);
	for (int i = 0; i < width; i++)
		fputc(i < fill ? '#' : '.', stderr);
	fprintf(stderr, "] %3d%% %s %s/s ", total ? (int)(done * 100 / total) : 0,
	        ctl_size(done, a, sizeof(a)), ctl_size((uint64_t)rate, r, sizeof(r)));
	if (rate > 0 && total > done)
		fprintf(stderr, "ETA %.0f s  ", (double)(total - done) / rate);
	p->drawn = true;
}

static int ctl_xferinfo(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                        curl_off_t ultotal, curl_off_t ulnow)
{
	struct ctl_progress *p = arg;
	double now = ctl_now();
	uint64_t done = (uint64_t)(ultotal ? ulnow : dlnow);
	uint64_t total = (uint64_t)(ultotal ? ultotal : dltotal);

	if (now - p->last_draw >= 0.2) {        /* five frames a second */
		p->last_draw = now;
		ctl_bar_draw(p, done, total);
	}
	return 0;
}

static void ctl_progress_start(struct ctl *c, struct ctl_progress *p, const char *what)
{
	*p = (struct ctl_progress){ .what = what, .started = ctl_now() };
	if (c->json || !isatty(STDERR_FILENO))
		return;
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, ctl_xferinfo);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, p);
}

static void ctl_progress_end(struct ctl_progress *p)
{
	if (p->drawn)
		fputc('\n', stderr);
}

/* ---- volumes --------------------------------------------------------------- */

/* A clone's snapshot, or "-". */
static const char *vol_origin(const json_t *v)
{
	const char *o = json_string_value(json_object_get(v, "origin"));

	return o ? o : "-";
}

static void vol_row(const json_t *v)
{
	char size[32], used[32], xfer[64] = "";
	const json_t *t = json_object_get(v, "transfer");

	if (t) {
		uint64_t total = ctl_u64(t, "bytes_total");

		snprintf(xfer, sizeof(xfer), "%s %d%%", ctl_str(t, "direction"),
		         total ? (int)(ctl_u64(t, "bytes_done") * 100 / total) : 0);
	}
	printf("%-32s %12s %12s %5" PRIu64 " %-14s %-24s %s\n", ctl_str(v, "name"),
	       ctl_size(ctl_u64(v, "size"), size, sizeof(size)),
	       ctl_size(ctl_u64(v, "mapped_bytes"), used, sizeof(used)),
	       ctl_u64(v, "snapshots"), ctl_str(v, "write_cache"), vol_origin(v), xfer);
}

/* GET path: its JSON with --json, else a table of the array under key,
 * head first, one row() per element. */
static int ctl_list(struct ctl *c, const char *path, const char *key, const char *head,
                    void (*row)(const json_t *))
{
	json_t *r, *v;
	size_t i;
	int rc = ctl_call(c, "GET", path, NULL, &r);

	if (rc)
		return rc;
	if (c->json) {
		ctl_json_print(r);
	} else {
		fputs(head, stdout);
		json_array_foreach(json_object_get(r, key), i, v)
			row(v);
	}
	json_decref(r);
	return CTL_OK;
}

static int cmd_vol_list(struct ctl *c, char **argv)
{
	char head[160];

	(void)argv;
	snprintf(head, sizeof(head), "%-32s %12s %12s %5s %-14s %-24s %s\n", "NAME", "SIZE",
	         "USED", "SNAPS", "WRITE-CACHE", "ORIGIN", "TRANSFER");
	return ctl_list(c, "/volumes", "volumes", head, vol_row);
}

/* "used: 3.0 MiB (unique 1.0 MiB, shared 2.0 MiB)" */
static void ctl_space_print(const json_t *v)
{
	char a[32], b[32], d[32];

	printf("used:         %s (unique %s, shared %s)\n",
	       ctl_size(ctl_u64(v, "mapped_bytes"), a, sizeof(a)),
	       ctl_size(ctl_u64(v, "unique_bytes"), b, sizeof(b)),
	       ctl_size(ctl_u64(v, "shared_bytes"), d, sizeof(d)));
}

static void vol_print(struct ctl *c, const json_t *v)
{
	char a[32], b[32];
	const json_t *t = json_object_get(v, "transfer");

	if (c->json) {
		ctl_json_print(v);
		return;
	}
	printf("name:         %s\n", ctl_str(v, "name"));
	printf("id:           %" PRIu64 "\n", ctl_u64(v, "id"));
	printf("size:         %s (%" PRIu64 " bytes)\n",
	       ctl_size(ctl_u64(v, "size"), a, sizeof(a)), ctl_u64(v, "size"));
	ctl_space_print(v);
	printf("write cache:  %s\n", ctl_str(v, "write_cache"));
	printf("created:      %s\n", ctl_str(v, "created"));
	printf("clone of:     %s\n", vol_origin(v));
	printf("snapshots:    %" PRIu64 "\n", ctl_u64(v, "snapshots"));
	printf("extents:      %" PRIu64 "\n", ctl_u64(v, "extents"));
	if (t)
		printf("transfer:     %s, %s of %s\n", ctl_str(t, "direction"),
		       ctl_size(ctl_u64(t, "bytes_done"), a, sizeof(a)),
		       ctl_size(ctl_u64(t, "bytes_total"), b, sizeof(b)));
}

static int cmd_vol_show(struct ctl *c, char **argv)
{
	json_t *r;
	int rc = ctl_get_path(c, "/volumes/%s", argv[0], &r);

	if (rc == CTL_OK)
		vol_print(c, r);
	json_decref(r);
	return rc;
}

static int ctl_size_arg(const char *s, uint64_t *out)
{
	int err = ctl_size_parse(s, out);

	if (err < 0)
		ctl_err("size \"%s\": %s", s, err == -ERANGE ? "too large"
		        : "expected bytes or a number with K, M, G, T or P (20G)");
	return err < 0 ? CTL_EUSAGE : CTL_OK;
}

static int cmd_vol_create(struct ctl *c, char **argv)
{
	uint64_t size;
	json_t *body, *r;
	int rc = ctl_size_arg(argv[1], &size);

	if (rc)
		return rc;
	body = json_pack("{s:s, s:I, s:s}", "name", argv[0], "size", (json_int_t)size,
	                 "write_cache", c->write_back ? "write-back" : "write-through");
	rc = ctl_call(c, "POST", "/volumes", body, &r);
	json_decref(body);
	if (rc == CTL_OK)
		vol_print(c, r);
	json_decref(r);
	return rc;
}

/* PATCH /volumes/NAME with body (taken). */
static int vol_patch(struct ctl *c, const char *name, json_t *body)
{
	char path[1024], *e = ctl_esc(c, name);
	json_t *r;
	int rc;

	snprintf(path, sizeof(path), "/volumes/%s", e);
	curl_free(e);
	rc = ctl_call(c, "PATCH", path, body, &r);
	json_decref(body);
	if (rc == CTL_OK)
		vol_print(c, r);
	json_decref(r);
	return rc;
}

static int cmd_vol_grow(struct ctl *c, char **argv)
{
	uint64_t size;
	int rc = ctl_size_arg(argv[1], &size);

	if (rc)
		return rc;
	return vol_patch(c, argv[0], json_pack("{s:I}", "size", (json_int_t)size));
}

static int cmd_vol_set_cache(struct ctl *c, char **argv)
{
	if (strcmp(argv[1], "write-through") != 0 && strcmp(argv[1], "write-back") != 0) {
		ctl_err("the cache mode is write-through or write-back, not \"%s\"", argv[1]);
		return CTL_EUSAGE;
	}
	return vol_patch(c, argv[0], json_pack("{s:s}", "write_cache", argv[1]));
}

/* DELETE PREFIX/NAME; prints "deleted WHAT NAME". */
static int ctl_delete(struct ctl *c, const char *prefix, const char *what, const char *name)
{
	char path[1024], *e = ctl_esc(c, name);
	json_t *r;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", prefix, e);
	curl_free(e);
	rc = ctl_call(c, "DELETE", path, NULL, &r);
	json_decref(r);
	if (rc == CTL_OK && !c->json)
		printf("deleted %s %s\n", what, name);
	return rc;
}

static int cmd_vol_delete(struct ctl *c, char **argv)
{
	return ctl_delete(c, "/volumes", "volume", argv[0]);
}

/* ---- images ---------------------------------------------------------------- */

static int cmd_image_import(struct ctl *c, char **argv)
{
	FILE *f = fopen(argv[1], "rb");
	struct ctl_buf b = { 0 };
	struct ctl_progress p;
	struct curl_slist *h;
	struct stat st;
	char path[1024], *e;
	long status = 0;
	int rc;

	if (!f || fstat(fileno(f), &st) < 0) {
		ctl_err("%s: %s", argv[1], strerror(errno));
		if (f)
			fclose(f);
		return CTL_EAPI;
	}
	e = ctl_esc(c, argv[0]);
	snprintf(path, sizeof(path), "/volumes/%s/data", e);
	curl_free(e);
	h = ctl_setup(c, "PUT", path);
	h = curl_slist_append(h, "Content-Type: application/octet-stream");
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, f);
	if (S_ISREG(st.st_mode))                /* else chunked: a pipe */
		curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, ctl_buf_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	ctl_progress_start(c, &p, "import");
	rc = ctl_perform(c, &status);
	ctl_progress_end(&p);
	if (rc == CTL_OK && status >= 300)
		rc = ctl_api_error(c, status, &b);
	if (rc == CTL_OK) {
		json_t *r = json_loads(b.data ? b.data : "", 0, NULL);
		char a[32], s[32];

		if (c->json)
			ctl_json_print(r);
		else
			printf("imported %s into %s in %.2f s (%s/s)\n",
			       ctl_size(ctl_u64(r, "bytes"), a, sizeof(a)), argv[0],
			       ctl_num(r, "seconds"),
			       ctl_size((uint64_t)ctl_num(r, "bytes_per_second"), s, sizeof(s)));
		json_decref(r);
	}
	curl_slist_free_all(h);
	free(b.data);
	fclose(f);
	return rc;
}

struct ctl_sink {
	FILE       *f;
	long        status;
	struct ctl_buf err;                     /* the body of an error reply */
	CURL       *curl;
};

static size_t ctl_sink_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ctl_sink *s = arg;

	if (!s->status)
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status >= 300)
		return ctl_buf_write(ptr, size, nmemb, &s->err);
	return fwrite(ptr, size, nmemb, s->f);
}

static int cmd_image_export(struct ctl *c, char **argv)
{
	bool out_stdout = strcmp(argv[1], "-") == 0;
	struct ctl_sink s = { .f = out_stdout ? stdout : fopen(argv[1], "wb") };
	struct ctl_progress p;
	struct curl_slist *h;
	char path[1024], *e;
	long status = 0;
	int rc;

	if (!s.f) {
		ctl_err("%s: %s", argv[1], strerror(errno));
		return CTL_EAPI;
	}
	e = ctl_esc(c, argv[0]);
	snprintf(path, sizeof(path), "/volumes/%s/data", e);
	curl_free(e);
	h = ctl_setup(c, "GET", path);
	s.curl = c->curl;
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, ctl_sink_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	ctl_progress_start(c, &p, "export");
	rc = ctl_perform(c, &status);
	ctl_progress_end(&p);
	if (rc == CTL_OK && status >= 300)
		rc = ctl_api_error(c, status, &s.err);
	if (!out_stdout && fclose(s.f) != 0 && rc == CTL_OK) {
		ctl_err("%s: %s", argv[1], strerror(errno));
		rc = CTL_EAPI;
	}
	if (rc == CTL_OK && !c->json && !out_stdout)
		printf("exported %s to %s\n", argv[0], argv[1]);
	curl_slist_free_all(h);
	free(s.err.data);
	return rc;
}

/* ---- snapshots and clones ------------------------------------------------- */

static void snap_row(const json_t *v)
{
	char size[32], used[32], uniq[32];

	printf("%-32s %-20s %12s %12s %12s %6" PRIu64 "\n", ctl_str(v, "snapshot"),
	       ctl_str(v, "created"), ctl_size(ctl_u64(v, "size"), size, sizeof(size)),
	       ctl_size(ctl_u64(v, "mapped_bytes"), used, sizeof(used)),
	       ctl_size(ctl_u64(v, "unique_bytes"), uniq, sizeof(uniq)),
	       ctl_u64(v, "clones"));
}

static void snap_table(const json_t *list)
{
	json_t *v;
	size_t i;

	printf("%-32s %-20s %12s %12s %12s %6s\n", "SNAPSHOT", "CREATED", "SIZE", "USED",
	       "UNIQUE", "CLONES");
	json_array_foreach(list, i, v)
		snap_row(v);
}

static void snap_print(struct ctl *c, const json_t *v)
{
	char a[32];

	if (c->json) {
		ctl_json_print(v);
		return;
	}
	printf("snapshot:     %s\n", ctl_str(v, "snapshot"));
	printf("id:           %" PRIu64 "\n", ctl_u64(v, "id"));
	printf("size:         %s (%" PRIu64 " bytes)\n",
	       ctl_size(ctl_u64(v, "size"), a, sizeof(a)), ctl_u64(v, "size"));
	ctl_space_print(v);
	printf("created:      %s\n", ctl_str(v, "created"));
	printf("clones:       %" PRIu64 "\n", ctl_u64(v, "clones"));
}

/* VOLUME SNAPSHOT, or VOLUME@SNAPSHOT as one argument. */
static int snap_args(char **argv, char *vol, size_t len, const char **snap)
{
	const char *at = strchr(argv[0], '@');

	if (argv[1] && !at) {
		snprintf(vol, len, "%s", argv[0]);
		*snap = argv[1];
		return CTL_OK;
	}
	if (!argv[1] && at && at > argv[0] && at[1] && (size_t)(at - argv[0]) < len) {
		snprintf(vol, len, "%.*s", (int)(at - argv[0]), argv[0]);
		*snap = at + 1;
		return CTL_OK;
	}
	ctl_err("name a snapshot as VOLUME SNAPSHOT or VOLUME@SNAPSHOT");
	return CTL_EUSAGE;
}

/* METHOD /volumes/VOL/snapshots[/SNAP][TAIL]; *out: the reply. */
static int snap_call(struct ctl *c, const char *method, const char *vol,
                     const char *snap, const char *tail, json_t *body, json_t **out)
{
	char path[1024], *v = ctl_esc(c, vol), *s = snap ? ctl_esc(c, snap) : NULL;
	int rc;

	snprintf(path, sizeof(path), "/volumes/%s/snapshots%s%s%s", v, s ? "/" : "",
	         s ? s : "", tail);
	curl_free(v);
	curl_free(s);
	rc = ctl_call(c, method, path, body, out);
	json_decref(body);
	return rc;
}

static int cmd_snap_list(struct ctl *c, char **argv)
{
	json_t *r;
	int rc = snap_call(c, "GET", argv[0], NULL, "", NULL, &r);

	if (rc == CTL_OK) {
		if (c->json)
			ctl_json_print(r);
		else
			snap_table(json_object_get(r, "snapshots"));
	}
	json_decref(r);
	return rc;
}

enum snap_op { SNAP_SHOW, SNAP_CREATE, SNAP_DELETE, SNAP_ROLLBACK };

/* snapshot show|create|delete|rollback VOL SNAP (or VOL@SNAP). */
static int snap_do(struct ctl *c, char **argv, enum snap_op op)
{
	char vol[1024];
	const char *snap;
	json_t *r = NULL;
	int rc = snap_args(argv, vol, sizeof(vol), &snap);

	if (rc)
		return rc;
	switch (op) {
	case SNAP_SHOW:
		rc = snap_call(c, "GET", vol, snap, "", NULL, &r);
		break;
	case SNAP_CREATE:
		rc = snap_call(c, "POST", vol, NULL, "", json_pack("{s:s}", "name", snap), &r);
		break;
	case SNAP_DELETE:
		rc = snap_call(c, "DELETE", vol, snap, "", NULL, &r);
		break;
	case SNAP_ROLLBACK:
		rc = snap_call(c, "POST", vol, snap, "/rollback", NULL, &r);
		break;
	}
	if (rc == CTL_OK) {
		if (op == SNAP_SHOW || op == SNAP_CREATE)
			snap_print(c, r);
		else if (op == SNAP_DELETE && !c->json)
			printf("deleted snapshot %s@%s\n", vol, snap);
		if (op == SNAP_ROLLBACK && !c->json)
			printf("rolled %s back to %s@%s\n", vol, vol, snap);
		if (op == SNAP_ROLLBACK)
			vol_print(c, r);
	}
	json_decref(r);
	return rc;
}

static int cmd_snap_show(struct ctl *c, char **argv) { return snap_do(c, argv, SNAP_SHOW); }
static int cmd_snap_create(struct ctl *c, char **argv) { return snap_do(c, argv, SNAP_CREATE); }
static int cmd_snap_delete(struct ctl *c, char **argv) { return snap_do(c, argv, SNAP_DELETE); }
static int cmd_snap_rollback(struct ctl *c, char **argv) { return snap_do(c, argv, SNAP_ROLLBACK); }

/* snapshot group NAME VOLUME...: one point in time, all or none. */
static int cmd_snap_group(struct ctl *c, char **argv)
{
	json_t *vols = json_array(), *body, *r;
	int rc;

	for (int i = 1; argv[i]; i++)
		json_array_append_new(vols, json_string(argv[i]));
	body = json_pack("{s:s, s:o}", "name", argv[0], "volumes", vols);
	rc = ctl_call(c, "POST", "/snapshots", body, &r);
	json_decref(body);
	if (rc == CTL_OK) {
		if (c->json)
			ctl_json_print(r);
		else
			snap_table(json_object_get(r, "snapshots"));
	}
	json_decref(r);
	return rc;
}

static int cmd_clone(struct ctl *c, char **argv)
{
	const char *at = strchr(argv[0], '@');
	json_t *body, *r;
	int rc;

	if (!at || at == argv[0] || !at[1]) {
		ctl_err("clone a snapshot: VOLUME@SNAPSHOT, not \"%s\"", argv[0]);
		return CTL_EUSAGE;
	}
	body = json_pack("{s:s, s:s, s:s}", "name", argv[1], "clone_of", argv[0],
	                 "write_cache", c->write_back ? "write-back" : "write-through");
	rc = ctl_call(c, "POST", "/volumes", body, &r);
	json_decref(body);
	if (rc == CTL_OK)
		vol_print(c, r);
	json_decref(r);
	return rc;
}

/* ---- targets ---------------------------------------------------------------- */

static void target_luns_format(const json_t *t, char *buf, size_t len)
{
	size_t i, used = 0;
	json_t *l;

	buf[0] = '\0';
	json_array_foreach(json_object_get(t, "luns"), i, l)
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%"
		                         PRIu64 "=%s", i ? "," : "", ctl_u64(l, "lun"),
		                         ctl_str(l, "volume"));
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void target_allow_format(const json_t *t, char *buf, size_t len)
{
	size_t i, used = 0;
	json_t *a;

	buf[0] = '\0';
	json_array_foreach(json_object_get(t, "allow"), i, a)
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
		                         i ? "," : "", json_string_value(a));
	if (!buf[0])
		snprintf(buf, len, "(nobody)");
}

static const char *target_chap_kind(const json_t *t)
{
	const json_t *chap = json_object_get(t, "chap");

	if (!chap)
		return "none";
	return json_object_get(chap, "mutual_user") ? "mutual" : "one-way";
}

static int cmd_target_list(struct ctl *c, char **argv)
{
	json_t *r, *t;
	size_t i;
	char luns[256], allow[256];
	int rc = ctl_call(c, "GET", "/targets", NULL, &r);

	(void)argv;
	if (rc)
		return rc;
	if (c->json) {
		ctl_json_print(r);
	} else {
		printf("%-48s %-24s %-8s %s\n", "IQN", "LUNS", "CHAP", "ALLOW");
		json_array_foreach(json_object_get(r, "targets"), i, t) {
			target_luns_format(t, luns, sizeof(luns));
			target_allow_format(t, allow, sizeof(allow));
			printf("%-48s %-24s %-8s %s\n", ctl_str(t, "iqn"), luns,
			       target_chap_kind(t), allow);
		}
	}
	json_decref(r);
	return CTL_OK;
}

/* " (user U, target user T)" and the end of the line. */
static void chap_users_print(const json_t *chap)
{
	const json_t *mutual = json_object_get(chap, "mutual_user");

	if (chap && !json_is_null(chap))
		printf(" (user %s%s%s)", ctl_str(chap, "user"), mutual ? ", target user " : "",
		       mutual ? json_string_value(mutual) : "");
	putchar('\n');
}

static void target_print(struct ctl *c, const json_t *t)
{
	char luns[1024], allow[1024];
	const json_t *chap = json_object_get(t, "chap");

	if (c->json) {
		ctl_json_print(t);
		return;
	}
	target_luns_format(t, luns, sizeof(luns));
	target_allow_format(t, allow, sizeof(allow));
	printf("iqn:    %s\nluns:   %s\nallow:  %s\nchap:   %s", ctl_str(t, "iqn"), luns,
	       allow, target_chap_kind(t));
	chap_users_print(chap);
}

static int cmd_target_show(struct ctl *c, char **argv)
{
	json_t *r;
	int rc = ctl_get_path(c, "/targets/%s", argv[0], &r);

	if (rc == CTL_OK)
		target_print(c, r);
	json_decref(r);
	return rc;
}

/* --lun N=VOLUME ... into [{"lun": N, "volume": V}]. */
static int target_luns_json(struct ctl *c, json_t **out)
{
	json_t *luns = json_array();

	for (int i = 0; i < c->nluns; i++) {
		const char *eq = strchr(c->luns[i], '=');
		char *end;
		long n;

		errno = 0;
		n = eq ? strtol(c->luns[i], &end, 10) : -1;
		if (!eq || end != eq || errno || n < 0 || !eq[1]) {
			ctl_err("--lun \"%s\": expected N=VOLUME (0=db1)", c->luns[i]);
			json_decref(luns);
			return CTL_EUSAGE;
		}
		json_array_append_new(luns, json_pack("{s:I, s:s}", "lun", (json_int_t)n,
		                                      "volume", eq + 1));
	}
	*out = luns;
	return CTL_OK;
}

static int target_chap_json(struct ctl *c, json_t **out)
{
	*out = NULL;
	if (c->no_chap) {
		*out = json_null();
		return CTL_OK;
	}
	if (!c->chap_user && !c->chap_secret && !c->mutual_user && !c->mutual_secret)
		return CTL_OK;
	if (!c->chap_user || !c->chap_secret) {
		ctl_err("CHAP needs --chap-user and --chap-secret");
		return CTL_EUSAGE;
	}
	*out = json_pack("{s:s, s:s}", "user", c->chap_user, "secret", c->chap_secret);
	if (c->mutual_user)
		json_object_set_new(*out, "mutual_user", json_string(c->mutual_user));
	if (c->mutual_secret)
		json_object_set_new(*out, "mutual_secret", json_string(c->mutual_secret));
	return CTL_OK;
}

/* The body from the options; PATCH sends only what was given. */
static int target_body(struct ctl *c, const char *iqn, bool patch, json_t **out)
{
	json_t *b = iqn ? json_pack("{s:s}", "iqn", iqn) : json_object(), *luns, *chap;
	int rc;

	if ((rc = target_luns_json(c, &luns)) || (rc = target_chap_json(c, &chap))) {
		json_decref(b);
		return rc;
	}
	if (!patch || c->nluns)
		json_object_set_new(b, "luns", luns);
	else
		json_decref(luns);
	if (!patch || c->nallow) {
		json_t *allow = json_array();

		for (int i = 0; i < c->nallow; i++)
			json_array_append_new(allow, json_string(c->allow[i]));
		json_object_set_new(b, "allow", allow);
	}
	if (chap)
		json_object_set_new(b, "chap", chap);
	*out = b;
	return CTL_OK;
}

static int cmd_target_create(struct ctl *c, char **argv)
{
	json_t *b, *r;
	int rc = target_body(c, argv[0], false, &b);

	if (rc)
		return rc;
	rc = ctl_call(c, "POST", "/targets", b, &r);
	json_decref(b);
	if (rc == CTL_OK)
		target_print(c, r);
	json_decref(r);
	return rc;
}

static int cmd_target_set(struct ctl *c, char **argv)
{
	char path[1024], *e;
	json_t *b, *r;
	int rc = target_body(c, NULL, true, &b);

	if (rc)
		return rc;
	e = ctl_esc(c, argv[0]);
	snprintf(path, sizeof(path), "/targets/%s", e);
	curl_free(e);
	rc = ctl_call(c, "PATCH", path, b, &r);
	json_decref(b);
	if (rc == CTL_OK)
		target_print(c, r);
	json_decref(r);
	return rc;
}

static int cmd_target_delete(struct ctl *c, char **argv)
{
	return ctl_delete(c, "/targets", "target", argv[0]);
}

/* ---- discovery sessions ------------------------------------------------------ */

static void discovery_print(struct ctl *c, const json_t *d)
{
	const json_t *chap = json_object_get(d, "chap");

	if (c->json) {
		ctl_json_print(d);
		return;
	}
	printf("discovery chap: %s", json_is_object(chap) ? target_chap_kind(d) :
	       "none (discovery needs no authentication)");
	chap_users_print(chap);
}

static int cmd_discovery_show(struct ctl *c, char **argv)
{
	json_t *r;
	int rc = ctl_call(c, "GET", "/discovery", NULL, &r);

	(void)argv;
	if (rc == CTL_OK)
		discovery_print(c, r);
	json_decref(r);
	return rc;
}

static int cmd_discovery_set(struct ctl *c, char **argv)
{
	json_t *chap, *b, *r;
	int rc = target_chap_json(c, &chap);

	(void)argv;
	if (rc)
		return rc;
	if (!chap) {
		ctl_err("discovery set: give --chap-user and --chap-secret (and the "
		        "--mutual-* pair), or --no-chap");
		return CTL_EUSAGE;
	}
	b = json_pack("{s:o}", "chap", chap);
	rc = ctl_call(c, "PUT", "/discovery", b, &r);
	json_decref(b);
	if (rc == CTL_OK)
		discovery_print(c, r);
	json_decref(r);
	return rc;
}

/* ---- pool, stats, health ------------------------------------------------------ */

static int cmd_pool(struct ctl *c, char **argv)
{
	json_t *r, *wa;
	char a[32], b[32], d[32];
	int rc = ctl_call(c, "GET", "/pool", NULL, &r);

	(void)argv;
	if (rc)
		return rc;
	if (c->json) {
		ctl_json_print(r);
		json_decref(r);
		return CTL_OK;
	}
	wa = json_object_get(r, "write_amplification");
	printf("uuid:        %s\nengine:      %s\n", ctl_str(r, "uuid"), ctl_str(r, "engine"));
	printf("capacity:    %s (used %s, free %s)\n",
	       ctl_size(ctl_u64(r, "capacity_bytes"), a, sizeof(a)),
	       ctl_size(ctl_u64(r, "used_bytes"), b, sizeof(b)),
	       ctl_size(ctl_u64(r, "free_bytes"), d, sizeof(d)));
	printf("logical:     %s in %" PRIu64 " volumes, %" PRIu64 " snapshots\n",
	       ctl_size(ctl_u64(r, "logical_bytes"), a, sizeof(a)), ctl_u64(r, "volumes"),
	       ctl_u64(r, "snapshots"));
	if (json_is_number(wa))
		printf("write amp.:  %.2f\n", json_number_value(wa));
	else
		printf("write amp.:  - (nothing written yet)\n");
	printf("cleaner:     %s\nfailed:      %s\n",
	       ctl_str(json_object_get(r, "cleaner"), "state"),
	       json_is_true(json_object_get(r, "failed")) ? "YES: restart sluiced" : "no");
	json_decref(r);
	return CTL_OK;
}

static void stats_row(const char *name, const json_t *set)
{
	const json_t *rd = json_object_get(set, "read"), *wr = json_object_get(set, "write");
	char rb[32], wb[32];

	printf("%-24s %10.0f %10.0f %11s/s %11s/s %9.0f %9.0f\n", name,
	       ctl_num(rd, "iops"), ctl_num(wr, "iops"),
	       ctl_size((uint64_t)ctl_num(rd, "bytes_per_second"), rb, sizeof(rb)),
	       ctl_size((uint64_t)ctl_num(wr, "bytes_per_second"), wb, sizeof(wb)),
	       ctl_num(json_object_get(rd, "latency_us"), "p99"),
	       ctl_num(json_object_get(wr, "latency_us"), "p99"));
}

static void stats_table(const json_t *r, const char *which, const char *only)
{
	json_t *v;
	size_t i;

	printf("%s:\n%-24s %10s %10s %13s %13s %9s %9s\n", which, "VOLUME", "R-IOPS",
	       "W-IOPS", "READ", "WRITE", "R-p99us", "W-p99us");
	json_array_foreach(json_object_get(r, "volumes"), i, v)
		if (!only || strcmp(ctl_str(v, "name"), only) == 0)
			stats_row(ctl_str(v, "name"), json_object_get(v, which));
	if (!only)
		stats_row("(all)", json_object_get(json_object_get(r, "totals"), which));
}

static int cmd_stats(struct ctl *c, char **argv)
{
	json_t *r;
	int rc = ctl_call(c, "GET", "/stats", NULL, &r);

	if (rc)
		return rc;
	if (c->json) {
		ctl_json_print(r);
	} else {
		stats_table(r, "last_second", argv[0]);
		putchar('\n');
		stats_table(r, "since_start", argv[0]);
	}
	json_decref(r);
	return CTL_OK;
}

static int cmd_health(struct ctl *c, char **argv)
{
	json_t *r;
	int rc = ctl_call(c, "GET", "/health", NULL, &r);

	(void)argv;
	if (rc == CTL_OK) {
		if (c->json)
			ctl_json_print(r);
		else
			printf("%s (engine %s, up %.0f s)\n", ctl_str(r, "status"),
			       ctl_str(r, "engine"), ctl_num(r, "uptime_seconds"));
	}
	json_decref(r);
	return rc;
}

/* ---- sessions --------------------------------------------------------------- */

/* One row a session: who, where from, what it sees, how busy. */
static void session_row(const json_t *s)
{
	const json_t *conn = json_array_get(json_object_get(s, "connections"), 0);
	const json_t *io = json_object_get(s, "io");
	const json_t *tgt = json_object_get(s, "target");
	char luns[128], rb[32], wb[32];

	target_luns_format(s, luns, sizeof(luns));
	printf("%-40s %-40s %-22s %5" PRIu64 " %-12s %4" PRIu64 " %10s %10s\n",
	       json_is_string(tgt) ? json_string_value(tgt) : "(discovery)",
	       ctl_str(s, "initiator"), ctl_str(conn, "initiator_address"),
	       ctl_u64(s, "tsih"), luns, ctl_u64(s, "commands_in_flight"),
	       ctl_size(ctl_u64(io, "read_bytes"), rb, sizeof(rb)),
	       ctl_size(ctl_u64(io, "write_bytes"), wb, sizeof(wb)));
}

static int cmd_sessions(struct ctl *c, char **argv)
{
	char head[160];

	(void)argv;
	snprintf(head, sizeof(head), "%-40s %-40s %-22s %5s %-12s %4s %10s %10s\n", "TARGET",
	         "INITIATOR", "FROM", "TSIH", "LUNS", "QD", "READ", "WRITTEN");
	return ctl_list(c, "/sessions", "sessions", head, session_row);
}

/* ---- the command table ------------------------------------------------------ */

typedef int ctl_cmd_fn(struct ctl *c, char **argv);

static const struct ctl_cmd {
	const char *noun, *verb;
	int         nargs, nopt;        /* required, then optional arguments */
	ctl_cmd_fn *fn;
	const char *usage;
} ctl_cmds[] = {
	{ "health",   NULL,        0, 0, cmd_health,        "health" },
	{ "pool",     NULL,        0, 0, cmd_pool,          "pool" },
	{ "stats",    NULL,        0, 1, cmd_stats,         "stats [VOLUME]" },
	{ "sessions", NULL,        0, 0, cmd_sessions,      "sessions" },
	{ "volume",   "list",      0, 0, cmd_vol_list,      "volume list" },
	{ "volume",   "show",      1, 0, cmd_vol_show,      "volume show NAME" },
	{ "volume",   "create",    2, 0, cmd_vol_create,    "volume create NAME SIZE [--write-back]" },
	{ "volume",   "grow",      2, 0, cmd_vol_grow,      "volume grow NAME SIZE" },
	{ "volume",   "set-cache", 2, 0, cmd_vol_set_cache, "volume set-cache NAME write-through|write-back" },
	{ "volume",   "delete",    1, 0, cmd_vol_delete,    "volume delete NAME" },
	{ "image",    "import",    2, 0, cmd_image_import,  "image import VOLUME FILE" },
	{ "image",    "export",    2, 0, cmd_image_export,  "image export VOLUME FILE|-" },
	{ "snapshot", "list",      1, 0, cmd_snap_list,     "snapshot list VOLUME" },
	{ "snapshot", "show",      1, 1, cmd_snap_show,     "snapshot show VOLUME SNAPSHOT" },
	{ "snapshot", "create",    1, 1, cmd_snap_create,   "snapshot create VOLUME SNAPSHOT" },
	{ "snapshot", "delete",    1, 1, cmd_snap_delete,   "snapshot delete VOLUME SNAPSHOT" },
	{ "snapshot", "rollback",  1, 1, cmd_snap_rollback, "snapshot rollback VOLUME SNAPSHOT" },
	{ "snapshot", "group",     2, 63, cmd_snap_group,   "snapshot group SNAPSHOT VOLUME... (at most 64)" },
	{ "clone",    NULL,        2, 0, cmd_clone,         "clone VOLUME@SNAPSHOT NEW [--write-back]" },
	{ "target",   "list",      0, 0, cmd_target_list,   "target list" },
	{ "target",   "show",      1, 0, cmd_target_show,   "target show IQN" },
	{ "target",   "create",    1, 0, cmd_target_create, "target create IQN [--lun N=VOLUME]... [--allow NAME|'*']... [CHAP]" },
	{ "target",   "set",       1, 0, cmd_target_set,    "target set IQN [--lun N=VOLUME]... [--allow NAME|'*']... [CHAP | --no-chap]" },
	{ "target",   "delete",    1, 0, cmd_target_delete, "target delete IQN" },
	{ "discovery", "show",     0, 0, cmd_discovery_show, "discovery show" },
	{ "discovery", "set",      0, 0, cmd_discovery_set, "discovery set CHAP | --no-chap" },
};
#define CTL_CMDS_N (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static void ctl_usage(FILE *f)
{
	fprintf(f, "Usage: sluicectl [OPTION]... COMMAND [ARG]...\n"
	        "Manage sluiced over its HTTP API.\n\nCommands:\n");
	for (size_t i = 0; i < CTL_CMDS_N; i++)
		fprintf(f, "  %s\n", ctl_cmds[i].usage);
	fprintf(f, "\nOptions:\n"
	        "  --url URL           the API (default %s)\n"
	        "  --token TOKEN       bearer token (default: $SLUICE_TOKEN, else\n"
	        "                      DATA_DIR/api-token)\n"
	        "  --data-dir DIR      sluiced's data dir, for the token (default %s)\n"
	        "  --json              print the API's JSON instead of tables\n"
	        "  --cacert FILE       trust this CA for https:// URLs\n"
	        "  --insecure          do not verify the server's certificate\n"
	        "  --write-back        volume create, clone: write-back cache mode\n"
	        "  --lun N=VOLUME      target: map VOLUME as LUN N (repeat)\n"
	        "  --allow NAME        target: admit this initiator; '*' is any (repeat)\n"
	        "  --chap-user U --chap-secret S [--mutual-user U --mutual-secret S]\n"
	        "                      target, discovery: CHAP, one-way or mutual\n"
	        "  --no-chap           target set, discovery set: remove CHAP\n"
	        "  -h, --help          this text\n\n"
	        "A snapshot is VOLUME SNAPSHOT or VOLUME@SNAPSHOT. Sizes take K, M, G, T, P\n"
	        "(binary): 20G. Exit status: 0 done, 1 the API refused (the reason is\n"
	        "printed), 2 bad usage, 3 sluiced cannot be reached.\n",
	        CTL_DEFAULT_URL, CTL_DEFAULT_DATA_DIR);
}

enum {
	OPT_URL = 256, OPT_TOKEN, OPT_DATA_DIR, OPT_JSON, OPT_CACERT, OPT_INSECURE,
	OPT_WRITE_BACK, OPT_LUN, OPT_ALLOW, OPT_CHAP_USER, OPT_CHAP_SECRET,
	OPT_MUTUAL_USER, OPT_MUTUAL_SECRET, OPT_NO_CHAP,
};

static const struct option ctl_options[] = {
	{ "url", 1, NULL, OPT_URL }, { "token", 1, NULL, OPT_TOKEN },
	{ "data-dir", 1, NULL, OPT_DATA_DIR }, { "json", 0, NULL, OPT_JSON },
	{ "cacert", 1, NULL, OPT_CACERT }, { "insecure", 0, NULL, OPT_INSECURE },
	{ "write-back", 0, NULL, OPT_WRITE_BACK }, { "lun", 1, NULL, OPT_LUN },
	{ "allow", 1, NULL, OPT_ALLOW }, { "chap-user", 1, NULL, OPT_CHAP_USER },
	{ "chap-secret", 1, NULL, OPT_CHAP_SECRET },
	{ "mutual-user", 1, NULL, OPT_MUTUAL_USER },
	{ "mutual-secret", 1, NULL, OPT_MUTUAL_SECRET },
	{ "no-chap", 0, NULL, OPT_NO_CHAP }, { "help", 0, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int ctl_list_add(const char **list, int *n, const char *v, const char *opt)
{
	if (*n == CTL_LIST_MAX) {
		ctl_err("%s: at most %d times", opt, CTL_LIST_MAX);
		return CTL_EUSAGE;
	}
	list[(*n)++] = v;
	return CTL_OK;
}

static int ctl_opt(struct ctl *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_URL:           snprintf(c->url, sizeof(c->url), "%s", arg); break;
	case OPT_TOKEN:         snprintf(c->token, sizeof(c->token), "%s", arg); break;
	case OPT_DATA_DIR:      c->data_dir = arg; break;
	case OPT_JSON:          c->json = true; break;
	case OPT_CACERT:        c->cacert = arg; break;
	case OPT_INSECURE:      c->insecure = true; break;
	case OPT_WRITE_BACK:    c->write_back = true; break;
	case OPT_LUN:           return ctl_list_add(c->luns, &c->nluns, arg, "--lun");
	case OPT_ALLOW:         return ctl_list_add(c->allow, &c->nallow, arg, "--allow");
	case OPT_CHAP_USER:     c->chap_user = arg; break;
	case OPT_CHAP_SECRET:   c->chap_secret = arg; break;
	case OPT_MUTUAL_USER:   c->mutual_user = arg; break;
	case OPT_MUTUAL_SECRET: c->mutual_secret = arg; break;
	case OPT_NO_CHAP:       c->no_chap = true; break;
	case 'h':               ctl_usage(stdout); exit(CTL_OK);
	default:                return CTL_EUSAGE;
	}
	return CTL_OK;
}

/* --token, $SLUICE_TOKEN, or DATA_DIR/api-token; none is fine for /health
 * (the API's 401 says the rest). */
static void ctl_token_load(struct ctl *c)
{
	static char path[4096];
	const char *env = getenv("SLUICE_TOKEN");
	FILE *f;
	size_t n;

	if (c->token[0])
		return;
	if (env && *env) {
		snprintf(c->token, sizeof(c->token), "%s", env);
		return;
	}
	snprintf(path, sizeof(path), "%s/api-token", c->data_dir);
	f = fopen(path, "r");
	if (!f)
		return;
	n = fread(c->token, 1, sizeof(c->token) - 1, f);
	fclose(f);
	while (n > 0 && (c->token[n - 1] == '\n' || c->token[n - 1] == '\r'))
		n--;
	c->token[n] = '\0';
	c->token_path = path;
}

static const struct ctl_cmd *ctl_cmd_find(int argc, char **argv, int *used)
{
	for (size_t i = 0; i < CTL_CMDS_N; i++) {
		const struct ctl_cmd *cmd = &ctl_cmds[i];

		if (strcmp(argv[0], cmd->noun) != 0)
			continue;
		if (!cmd->verb) {
			*used = 1;
			return cmd;
		}
		if (argc > 1 && strcmp(argv[1], cmd->verb) == 0) {
			*used = 2;
			return cmd;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct ctl c = { .url = CTL_DEFAULT_URL, .data_dir = CTL_DEFAULT_DATA_DIR };
	size_t len;
	const struct ctl_cmd *cmd;
	int opt, used, n, rc;

	while ((opt = getopt_long(argc, argv, "h", ctl_options, NULL)) != -1)
		if (ctl_opt(&c, opt, optarg) != CTL_OK)
			goto usage;
	argc -= optind;
	argv += optind;
	if (argc == 0)
		goto usage;
	cmd = ctl_cmd_find(argc, argv, &used);
	if (!cmd) {
		ctl_err("unknown command \"%s%s%s\"", argv[0], argc > 1 ? " " : "",
		        argc > 1 ? argv[1] : "");
		goto usage;
	}
	n = argc - used;
	if (n < cmd->nargs || n > cmd->nargs + cmd->nopt) {
		ctl_err("usage: sluicectl %s", cmd->usage);
		return CTL_EUSAGE;
	}
	while ((len = strlen(c.url)) > 0 && c.url[len - 1] == '/')
		c.url[len - 1] = '\0';
	ctl_token_load(&c);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c.curl = curl_easy_init();
	if (!c.curl) {
		ctl_err("cannot start libcurl");
		return CTL_EAPI;
	}
	rc = cmd->fn(&c, argv + used);  /* argv[argc] is NULL: ends the arguments */
	curl_easy_cleanup(c.curl);
	curl_global_cleanup();
	return rc;
usage:
	ctl_usage(stderr);
	return CTL_EUSAGE;
}

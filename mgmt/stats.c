/* mgmt/stats.c: per-volume I/O statistics for GET /stats and /metrics.
 *
 * Whoever does I/O on a volume reports each operation to mgmt_io_record()
 * (the API's own imports and exports; the iSCSI target through the same
 * hook). Counters live in memory only: they describe this run.
 *
 * Latency goes into a log-linear histogram of microseconds: exact below 8,
 * then 4 buckets per power of two (each within 12.5 % of its middle), so
 * percentiles cost a walk over 144 counters and no sample is kept. Each
 * volume has the histogram since start and two per-second ones: the second
 * being counted and the last complete second, swapped by a 1 s timer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/internal.h"

#define STATS_BUCKETS   144             /* up to 2^36 us, about 19 hours */
#define STATS_HASH      1024

struct stats_dir {
	uint64_t ops, bytes, lat_sum_us;
	uint64_t lat[STATS_BUCKETS];
};

/* [MGMT_IO_READ], [MGMT_IO_WRITE] */
struct stats_set {
	struct stats_dir total[2];
	struct stats_dir sec[2][2];             /* [second index][direction] */
};

struct stats_vol {
	struct stats_vol *next;                 /* hash chain */
	struct stats_set  set;
	char              name[STORE_NAME_MAX + 1];
};

struct mgmt_stats {
	struct stats_vol *hash[STATS_HASH];
	struct stats_set  all;                  /* every volume together */
	unsigned          cur;                  /* sec[cur] is being counted */
	ev_timer          tick;
	uint64_t          started_ns;
	uint64_t          tick_ns;              /* when sec[cur] started */
	double            last_secs;            /* length of the last second */
};

static const char *const dir_name[2] = { "read", "write" };

/* ---- histogram ------------------------------------------------------------ */

static unsigned stats_bucket(uint64_t us)
{
	unsigned msb;

	if (us < 8)
		return (unsigned)us;
	msb = 63u - (unsigned)__builtin_clzll(us);
	if (msb > 36)
		return STATS_BUCKETS - 1;
	return (msb - 1) * 4 + (unsigned)((us >> (msb - 2)) & 3);
}

/* The middle of bucket i, in microseconds. */
static double stats_bucket_mid(unsigned i)
{
	unsigned msb = i / 4 + 1;
	uint64_t low, width;

	if (i < 8)
		return i;
	width = 1ull << (msb - 2);
	low = (4ull + i % 4) << (msb - 2);
	return (double)low + (double)width / 2;
}

static double stats_quantile(const struct stats_dir *d, double q)
{
	uint64_t want, seen = 0;

	if (d->ops == 0)
		return 0;
	want = (uint64_t)(q * (double)d->ops + 0.999999);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < STATS_BUCKETS; i++) {
		seen += d->lat[i];
		if (seen >= want)
			return stats_bucket_mid(i);
	}
	return stats_bucket_mid(STATS_BUCKETS - 1);
}

static void stats_add(struct stats_dir *d, uint64_t bytes, uint64_t us)
{
	d->ops++;
	d->bytes += bytes;
	d->lat_sum_us += us;
	d->lat[stats_bucket(us)]++;
}

/* ---- volumes ------------------------------------------------------------ */

static unsigned stats_hash(const char *s)
{
	uint32_t h = 2166136261u;               /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h % STATS_HASH;
}

static struct stats_vol **stats_slot(struct mgmt_stats *s, const char *name)
{
	struct stats_vol **pp = &s->hash[stats_hash(name)];

	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct stats_vol *stats_vol_get(struct mgmt_stats *s, const char *name)
{
	struct stats_vol **pp = stats_slot(s, name);

	if (!*pp && strlen(name) <= STORE_NAME_MAX) {
		*pp = calloc(1, sizeof(**pp));
		if (*pp)
			strcpy((*pp)->name, name);
	}
	return *pp;
}

void mgmt_io_record(void *arg, const char *volume, enum mgmt_io_dir dir,
                    uint64_t bytes, uint64_t latency_ns)
{
	struct mgmt_srv *m = arg;
	struct mgmt_stats *s = m->stats;
	struct stats_vol *v = stats_vol_get(s, volume);
	uint64_t us = latency_ns / 1000;
	unsigned d = dir == MGMT_IO_WRITE;

	stats_add(&s->all.total[d], bytes, us);
	stats_add(&s->all.sec[s->cur][d], bytes, us);
	if (!v)
		return;                         /* out of memory: totals still count */
	stats_add(&v->set.total[d], bytes, us);
	stats_add(&v->set.sec[s->cur][d], bytes, us);
}

void mgmt_stats_forget(struct mgmt_stats *s, const char *volume)
{
	struct stats_vol **pp = stats_slot(s, volume), *v = *pp;

	if (v) {
		*pp = v->next;
		free(v);
	}
}

/* ---- the second ---------------------------------------------------------- */

static void stats_set_turn(struct stats_set *set, unsigned next)
{
	memset(set->sec[next], 0, sizeof(set->sec[next]));
}

static void stats_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mgmt_stats *s = container_of(w, struct mgmt_stats, tick);
	unsigned next = !s->cur;
	uint64_t now = mgmt_now_ns();

	(void)loop; (void)revents;
	s->last_secs = (double)(now - s->tick_ns) / 1e9;
	s->tick_ns = now;
	stats_set_turn(&s->all, next);
	for (unsigned i = 0; i < STATS_HASH; i++)
		for (struct stats_vol *v = s->hash[i]; v; v = v->next)
			stats_set_turn(&v->set, next);
	s->cur = next;
}

int mgmt_stats_create(struct ev_loop *loop, struct mgmt_stats **out)
{
	struct mgmt_stats *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->started_ns = s->tick_ns = mgmt_now_ns();
	s->last_secs = 1;
	ev_timer_init(&s->tick, stats_tick_cb, 1., 1.);
	ev_timer_start(loop, &s->tick);
	*out = s;
	return 0;
}

void mgmt_stats_destroy(struct ev_loop *loop, struct mgmt_stats *s)
{
	ev_timer_stop(loop, &s->tick);
	for (unsigned i = 0; i < STATS_HASH; i++) {
		while (s->hash[i]) {
			struct stats_vol *v = s->hash[i];

			s->hash[i] = v->next;
			free(v);
		}
	}
	free(s);
}

double mgmt_stats_uptime(const struct mgmt_stats *s)
{
	return (double)(mgmt_now_ns() - s->started_ns) / 1e9;
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *stats_dir_json(const struct stats_dir *d, double secs)
{
	if (secs <= 0)
		secs = 1;
	return json_pack("{s:I, s:I, s:f, s:f, s:{s:f, s:f, s:f, s:f, s:f}}",
		"ops", (json_int_t)d->ops, "bytes", (json_int_t)d->bytes,
		"iops", (double)d->ops / secs, "bytes_per_second", (double)d->bytes / secs,
		"latency_us", "mean", d->ops ? (double)d->lat_sum_us / (double)d->ops : 0.0,
		"p50", stats_quantile(d, 0.5), "p90", stats_quantile(d, 0.9),
		"p99", stats_quantile(d, 0.99), "p999", stats_quantile(d, 0.999));
}

static json_t *stats_set_json(const struct mgmt_stats *s, const struct stats_set *set)
{
	const struct stats_dir *last = set->sec[!s->cur];
	double up = mgmt_stats_uptime(s);

	return json_pack("{s:{s:o, s:o}, s:{s:o, s:o}}",
		"since_start", "read", stats_dir_json(&set->total[0], up),
		"write", stats_dir_json(&set->total[1], up),
		"last_second", "read", stats_dir_json(&last[0], s->last_secs),
		"write", stats_dir_json(&last[1], s->last_secs));
}

json_t *mgmt_stats_vol_json(struct mgmt_stats *s, const char *volume)
{
	static const struct stats_set none;
	struct stats_vol *v = *stats_slot(s, volume);

	return stats_set_json(s, v ? &v->set : &none);
}

json_t *mgmt_stats_totals_json(struct mgmt_stats *s)
{
	return stats_set_json(s, &s->all);
}

/* ---- Prometheus ------------------------------------------------------------ */

int mgmt_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (*buf && (size_t)n < *cap - *len)
			break;
		size_t ncap = *cap ? *cap * 2 : 8192;
		while (ncap < *len + (size_t)n + 1)
			ncap *= 2;
		char *b = realloc(*buf, ncap);
		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = ncap;
	}
	*len += (size_t)n;
	return 0;
}

static const struct stats_dir *stats_total(struct mgmt_stats *s, const char *vol,
                                           unsigned d)
{
	static const struct stats_dir zero;
	struct stats_vol *v = *stats_slot(s, vol);

	return v ? &v->set.total[d] : &zero;
}

/* One family: HELP and TYPE once, then every volume's samples. */
static int stats_family(struct mgmt_stats *s, const struct store_vol_info *vi,
                        size_t n, unsigned which, char **b, size_t *len, size_t *cap)
{
	static const char *const fam[3][3] = {
		{ "sluice_volume_ops_total", "counter", "I/O operations completed." },
		{ "sluice_volume_bytes_total", "counter", "Bytes read or written." },
		{ "sluice_volume_latency_seconds", "summary", "I/O latency since start." },
	};
	static const double q[] = { 0.5, 0.9, 0.99, 0.999 };
	int err = mgmt_buf_printf(b, len, cap, "# HELP %s %s\n# TYPE %s %s\n",
	                          fam[which][0], fam[which][2], fam[which][0],
	                          fam[which][1]);

	for (size_t i = 0; i < n && !err; i++) {
		for (unsigned d = 0; d < 2 && !err; d++) {
			const struct stats_dir *t = stats_total(s, vi[i].name, d);
			const char *nm = vi[i].name, *op = dir_name[d];

			if (which == 0)
				err = mgmt_buf_printf(b, len, cap, "%s{volume=\"%s\",op=\"%s\"} %"
				                      PRIu64 "\n", fam[0][0], nm, op, t->ops);
			else if (which == 1)
				err = mgmt_buf_printf(b, len, cap, "%s{volume=\"%s\",op=\"%s\"} %"
				                      PRIu64 "\n", fam[1][0], nm, op, t->bytes);
			else {
				for (unsigned k = 0; k < 4 && !err; k++)
					err = mgmt_buf_printf(b, len, cap, "%s{volume=\"%s\",op=\"%s\","
					                      "quantile=\"%g\"} %.9g\n", fam[2][0], nm, op,
					                      q[k], stats_quantile(t, q[k]) / 1e6);
				err |= mgmt_buf_printf(b, len, cap, "%s_sum{volume=\"%s\",op=\"%s\"} "
				                       "%.9g\n%s_count{volume=\"%s\",op=\"%s\"} %" PRIu64
				                       "\n", fam[2][0], nm, op,
				                       (double)t->lat_sum_us / 1e6, fam[2][0], nm, op,
				                       t->ops);
			}
		}
	}
	return err;
}

int mgmt_stats_metrics(struct mgmt_stats *s, const struct store_vol_info *vi,
                       size_t n, char **b, size_t *len, size_t *cap)
{
	for (unsigned which = 0; which < 3; which++)
		if (stats_family(s, vi, n, which, b, len, cap) < 0)
			return -ENOMEM;
	return 0;
}

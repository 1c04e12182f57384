/* mgmt/api_sys.c: /health, /pool, /stats, /metrics and /sessions.
 *
 * All of these read state the loop thread owns and reply at once. /metrics
 * is the Prometheus text exposition format (version 0.0.4): one HELP and
 * TYPE line per family, counters end in _total, and volume series carry a
 * volume="name" label (names need no escaping: store.h allows no quote or
 * backslash in them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iscsi/iscsi.h"
#include "mgmt/internal.h"

static int api_health(struct mgmt_req *rq)
{
	struct store_pool_stats st;

	store_pool_get_stats(rq->srv->pool, &st);
	if (st.failed)
		return mgmt_fail(rq, STORE_EFAILED, "the pool failed a device write or "
		                 "flush; restart the daemon to recover it");
	return mgmt_reply_json(rq, 200, json_pack("{s:s, s:s, s:f}", "status", "ok",
		"engine", st.engine, "uptime_seconds", mgmt_stats_uptime(rq->srv->stats)));
}

static void uuid_format(const uint8_t u[16], char out[37])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[u[i] >> 4];
		*p++ = hex[u[i] & 15];
	}
	*p = '\0';
}

static json_t *pool_json(const struct store_pool_stats *st)
{
	char uuid[37];
	json_t *o, *wa;

	uuid_format(st->uuid, uuid);
	/* device bytes per byte the clients wrote; null before any write */
	wa = st->host_write_bytes ? json_real((double)st->device_write_bytes /
	                                      (double)st->host_write_bytes) : json_null();
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, "
	              "s:{s:s, s:I, s:I}, s:b}",
		"uuid", uuid, "engine", st->engine,
		"capacity_bytes", (json_int_t)st->capacity_bytes,
		"used_bytes", (json_int_t)st->used_bytes,
		"free_bytes", (json_int_t)st->free_bytes,
		"logical_bytes", (json_int_t)st->logical_bytes,
		"physical_bytes", (json_int_t)st->used_bytes,
		"segment_bytes", (json_int_t)st->segment_bytes,
		"segments", (json_int_t)st->segments,
		"free_segments", (json_int_t)st->free_segments,
		"volumes", (json_int_t)st->volumes,
		"snapshots", (json_int_t)st->snapshots,
		"write_amplification", wa,
		"cleaner", "state", st->cleaning ? "cleaning" : "idle",
		"cleaned_segments", (json_int_t)st->cleaned_segments,
		"write_bytes", (json_int_t)st->cleaner_write_bytes,
		"failed", st->failed);
	if (!o)
		return NULL;
	/* blocks: 4 KiB writes stored as a reference to equal data */
	json_object_set_new(o, "dedup", json_pack("{s:b, s:I, s:I, s:I}",
		"enabled", st->dedup, "blocks", (json_int_t)st->dedup_blocks,
		"mismatches", (json_int_t)st->dedup_mismatches,
		"rewrites", (json_int_t)st->dedup_rewrites));
	json_object_set_new(o, "read_cache", json_pack("{s:I, s:I, s:I, s:I}",
		"capacity_bytes", (json_int_t)st->read_cache_capacity,
		"bytes", (json_int_t)st->read_cache_bytes,
		"hits", (json_int_t)st->read_cache_hits,
		"misses", (json_int_t)st->read_cache_misses));
	json_object_set_new(o, "counters", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, "
	                                              "s:I, s:I, s:I, s:I, s:I}",
		"acked_writes", (json_int_t)st->acked_writes,
		"batches", (json_int_t)st->batches,
		"flushes", (json_int_t)st->flushes,
		"device_write_bytes", (json_int_t)st->device_write_bytes,
		"log_write_bytes", (json_int_t)st->log_write_bytes,
		"host_write_bytes", (json_int_t)st->host_write_bytes,
		"checkpoints", (json_int_t)st->checkpoints,
		"map_bytes", (json_int_t)st->map_bytes,
		"map_extents", (json_int_t)st->map_extents,
		"replayed_records", (json_int_t)st->replayed_records,
		"replayed_bytes", (json_int_t)st->replayed_bytes));
	return o;
}

static int api_pool_get(struct mgmt_req *rq)
{
	struct store_pool_stats st;

	store_pool_get_stats(rq->srv->pool, &st);
	return mgmt_reply_json(rq, 200, pool_json(&st));
}

/* The volumes, in name order; *n set. NULL when out of memory. */
static struct store_vol_info *sys_vols(struct mgmt_srv *m, size_t *n)
{
	size_t count = store_vol_list(m->pool, NULL, 0);
	struct store_vol_info *vi = calloc(count ? count : 1, sizeof(*vi));

	if (vi)
		*n = store_vol_list(m->pool, vi, count);
	return vi;
}

static int api_stats_get(struct mgmt_req *rq)
{
	struct mgmt_srv *m = rq->srv;
	struct store_pool_stats st;
	struct store_vol_info *vi;
	json_t *vols = json_array(), *o;
	size_t n = 0;

	vi = sys_vols(m, &n);
	if (!vi || !vols) {
		free(vi);
		json_decref(vols);
		return mgmt_fail(rq, -ENOMEM, "out of memory for statistics");
	}
	for (size_t i = 0; i < n; i++) {
		o = mgmt_stats_vol_json(m->stats, vi[i].name);
		if (o)
			json_object_set_new(o, "name", json_string(vi[i].name));
		json_array_append_new(vols, o);
	}
	free(vi);
	store_pool_get_stats(m->pool, &st);
	return mgmt_reply_json(rq, 200, json_pack("{s:f, s:o, s:o, s:o}",
		"uptime_seconds", mgmt_stats_uptime(m->stats),
		"pool", pool_json(&st), "totals", mgmt_stats_totals_json(m->stats),
		"volumes", vols));
}

/* ---- /metrics ------------------------------------------------------------ */

struct metric {
	const char *name, *type, *help;
	size_t      off;                /* of a uint64_t in store_pool_stats */
};

#define POOL_METRIC(n, t, f, h) { "sluice_pool_" n, t, h, \
	offsetof(struct store_pool_stats, f) }

static const struct metric pool_metrics[] = {
	POOL_METRIC("capacity_bytes", "gauge", capacity_bytes, "Bytes of log segments."),
	POOL_METRIC("used_bytes", "gauge", used_bytes, "Live data bytes in the log."),
	POOL_METRIC("free_bytes", "gauge", free_bytes, "Bytes of free segments."),
	POOL_METRIC("logical_bytes", "gauge", logical_bytes, "Sum of volume sizes."),
	POOL_METRIC("volumes", "gauge", volumes, "Volumes in the pool (clones too)."),
	POOL_METRIC("snapshots", "gauge", snapshots, "Snapshots in the pool."),
	POOL_METRIC("free_segments", "gauge", free_segments, "Free log segments."),
	POOL_METRIC("map_bytes", "gauge", map_bytes, "RAM held by volume maps."),
	POOL_METRIC("acked_writes_total", "counter", acked_writes, "Write requests completed."),
	POOL_METRIC("batches_total", "counter", batches, "Log records written (group commits)."),
	POOL_METRIC("flushes_total", "counter", flushes, "Device flushes issued."),
	POOL_METRIC("device_write_bytes_total", "counter", device_write_bytes,
	            "Bytes written to the device, all causes."),
	POOL_METRIC("host_write_bytes_total", "counter", host_write_bytes,
	            "Bytes the clients asked to write."),
	POOL_METRIC("checkpoints_total", "counter", checkpoints, "Checkpoints written."),
	POOL_METRIC("cleaner_write_bytes_total", "counter", cleaner_write_bytes,
	            "Bytes the segment cleaner copied (part of device writes)."),
	POOL_METRIC("cleaned_segments_total", "counter", cleaned_segments,
	            "Segments the cleaner freed."),
	POOL_METRIC("read_cache_capacity_bytes", "gauge", read_cache_capacity,
	            "Bytes the read cache may take, its index included (0: off)."),
	POOL_METRIC("read_cache_bytes", "gauge", read_cache_bytes, "Data bytes in the read cache."),
	POOL_METRIC("read_cache_hits_total", "counter", read_cache_hits,
	            "4 KiB blocks read from the read cache."),
	POOL_METRIC("read_cache_misses_total", "counter", read_cache_misses,
	            "4 KiB blocks the read cache did not hold."),
};

static int metrics_pool(struct mgmt_srv *m, char **b, size_t *len, size_t *cap)
{
	struct store_pool_stats st;
	int err = 0;

	store_pool_get_stats(m->pool, &st);
	for (size_t i = 0; i < sizeof(pool_metrics) / sizeof(pool_metrics[0]); i++) {
		const struct metric *mt = &pool_metrics[i];
		uint64_t v = *(const uint64_t *)(const void *)((const char *)&st + mt->off);

		err |= mgmt_buf_printf(b, len, cap, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
		                       mt->name, mt->help, mt->name, mt->type, mt->name, v);
	}
	err |= mgmt_buf_printf(b, len, cap, "# HELP sluice_pool_failed 1 when a device "
	                       "write or flush failed.\n# TYPE sluice_pool_failed gauge\n"
	                       "sluice_pool_failed %d\n", st.failed ? 1 : 0);
	err |= mgmt_buf_printf(b, len, cap, "# HELP sluice_http_requests_total API "
	                       "requests answered.\n# TYPE sluice_http_requests_total "
	                       "counter\nsluice_http_requests_total %" PRIu64 "\n"
	                       "# HELP sluice_http_errors_total API requests answered "
	                       "with 4xx or 5xx.\n# TYPE sluice_http_errors_total counter\n"
	                       "sluice_http_errors_total %" PRIu64 "\n",
	                       m->http_requests, m->http_errors);
	return err ? -ENOMEM : 0;
}

static int metrics_vols(struct mgmt_srv *m, char **b, size_t *len, size_t *cap)
{
	size_t n = 0;
	struct store_vol_info *vi = sys_vols(m, &n);
	int err = 0;

	if (!vi)
		return -ENOMEM;
	err |= mgmt_buf_printf(b, len, cap, "# HELP sluice_volume_size_bytes Logical "
	                       "size.\n# TYPE sluice_volume_size_bytes gauge\n");
	for (size_t i = 0; i < n; i++)
		err |= mgmt_buf_printf(b, len, cap, "sluice_volume_size_bytes{volume=\"%s\"} "
		                       "%" PRIu64 "\n", vi[i].name, vi[i].sectors * STORE_SECTOR);
	err |= mgmt_buf_printf(b, len, cap, "# HELP sluice_volume_mapped_bytes Bytes "
	                       "that hold data.\n# TYPE sluice_volume_mapped_bytes gauge\n");
	for (size_t i = 0; i < n; i++)
		err |= mgmt_buf_printf(b, len, cap, "sluice_volume_mapped_bytes{volume=\"%s\"} "
		                       "%" PRIu64 "\n", vi[i].name,
		                       vi[i].mapped_sectors * STORE_SECTOR);
	err |= mgmt_buf_printf(b, len, cap, "# HELP sluice_volume_unique_bytes Bytes "
	                       "no snapshot or clone shares: what deleting it frees.\n"
	                       "# TYPE sluice_volume_unique_bytes gauge\n");
	for (size_t i = 0; i < n; i++) {
		uint64_t unique = 0;

		store_vol_unique(m->pool, vi[i].name, &unique);
		err |= mgmt_buf_printf(b, len, cap, "sluice_volume_unique_bytes{volume=\"%s\"} "
		                       "%" PRIu64 "\n", vi[i].name, unique * STORE_SECTOR);
	}
	if (!err)
		err = mgmt_stats_metrics(m->stats, vi, n, b, len, cap);
	free(vi);
	return err ? -ENOMEM : 0;
}

static int api_metrics_get(struct mgmt_req *rq)
{
	char *b = NULL;
	size_t len = 0, cap = 0;

	if (metrics_pool(rq->srv, &b, &len, &cap) < 0 ||
	    metrics_vols(rq->srv, &b, &len, &cap) < 0) {
		free(b);
		return mgmt_fail(rq, -ENOMEM, "out of memory for metrics");
	}
	return mgmt_reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b, len);
}

void mgmt_set_iscsi(struct mgmt_srv *m, struct iscsi_srv *s)
{
	m->iscsi = s;
}

static json_t *session_params_json(const struct iscsi_session_info *si)
{
	/* MaxRecvDataSegmentLength is declared by each side for what it
	 * receives (RFC 7143 13.12): both are shown */
	return json_pack("{s:s, s:s, s:{s:I, s:I}, s:I, s:I, s:s, s:s}",
		"HeaderDigest", si->header_digest ? "CRC32C" : "None",
		"DataDigest", si->data_digest ? "CRC32C" : "None",
		"MaxRecvDataSegmentLength",
		"target", (json_int_t)si->max_recv_dsl,
		"initiator", (json_int_t)si->max_send_dsl,
		"MaxBurstLength", (json_int_t)si->max_burst,
		"FirstBurstLength", (json_int_t)si->first_burst,
		"ImmediateData", si->immediate_data ? "Yes" : "No",
		"InitialR2T", si->initial_r2t ? "Yes" : "No");
}

/* iscsi_session_fn: one session into the array arg (NULL on failure). */
static void session_json(void *arg, const struct iscsi_session_info *si)
{
	json_t *list = arg, *luns = json_array(), *o;
	char isid[13], when[32];
	time_t t = (time_t)si->login_time;
	struct tm tm;

	for (size_t i = 0; luns && i < si->nluns; i++)
		json_array_append_new(luns, json_pack("{s:I, s:s}", "lun",
			(json_int_t)si->luns[i].lun, "volume", si->luns[i].volume));
	for (int i = 0; i < 6; i++)
		snprintf(isid + 2 * i, 3, "%02x", si->isid[i]);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	o = json_pack("{s:s, s:s?, s:s, s:s, s:i, s:i, s:[{s:s, s:s}], s:o, s:o, s:s, s:I, "
	              "s:i, s:{s:I, s:I, s:I}}",
		"type", si->target ? "normal" : "discovery",
		"target", si->target, "initiator", si->initiator, "isid", isid,
		"tsih", (int)si->tsih, "portal_group", (int)si->tpgt,
		"connections", "portal", si->portal, "initiator_address", si->peer,
		"luns", luns ? luns : json_array(),
		"parameters", session_params_json(si),
		"login_time", when, "login_unix", (json_int_t)si->login_time,
		"commands_in_flight", (int)si->in_flight,
		"io", "commands", (json_int_t)si->commands,
		"read_bytes", (json_int_t)si->read_bytes,
		"write_bytes", (json_int_t)si->write_bytes);
	if (!o || json_array_append_new(list, o) < 0)
		json_array_clear(list);         /* the caller sees the loss */
}

static int api_sessions_get(struct mgmt_req *rq)
{
	json_t *list = json_array();
	int n = 0;

	if (!list)
		return mgmt_fail(rq, -ENOMEM, "out of memory for sessions");
	if (rq->srv->iscsi)
		n = iscsi_srv_sessions(rq->srv->iscsi, session_json, list);
	if (n < 0 || json_array_size(list) != (size_t)n) {
		json_decref(list);
		return mgmt_fail(rq, -ENOMEM, "out of memory for sessions");
	}
	return mgmt_reply_json(rq, 200, json_pack("{s:o}", "sessions", list));
}

const struct mgmt_route mgmt_routes_sys[] = {
	{ "GET",    "/api/v1/health",   api_health,       MGMT_NOAUTH },
	{ "GET",    "/api/v1/pool",     api_pool_get,     0 },
	{ "GET",    "/api/v1/stats",    api_stats_get,    0 },
	{ "GET",    "/api/v1/metrics",  api_metrics_get,  0 },
	{ "GET",    "/api/v1/sessions", api_sessions_get, 0 },
	{ NULL, NULL, NULL, 0 },
};

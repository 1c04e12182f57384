/* mgmt/mgmt.h: the whole public interface of sluice's management plane, the
 * JSON-over-HTTP API under /api/v1 (DESIGN.md, "Interfaces"; the routes are
 * in mgmt/openapi.yaml).
 *
 * The server runs inside the caller's libev loop: libmicrohttpd in external
 * epoll mode, driven by an ev_io on its epoll fd and an ev_timer from
 * MHD_get_timeout(), so it has no thread of its own. Requests that wait for
 * the store are suspended and resumed from the store's callbacks. Call
 * everything here on the loop thread.
 *
 * Objects the API creates live in the store: volumes as store volumes,
 * everything else as store metadata records (store_meta_put). The records
 * other modules read are described below, beside their key prefix.
 */
#ifndef SLUICE_MGMT_H
#define SLUICE_MGMT_H

#include <stdint.h>

#include "store/store.h"

struct ev_loop;
struct mgmt_srv;        /* opaque: one HTTP server and its state */

/* The API token's file inside the data directory (mode 0600). */
#define MGMT_TOKEN_FILE         "api-token"

/* Store metadata key prefix of iSCSI targets: "target/<iqn>". The value is
 * the JSON object the API validated, UTF-8, without whitespace:
 *   {"iqn": "iqn.2024-01.com.example:db",          an RFC 7143 iSCSI name
 *    "luns": [{"lun": 0, "volume": "db1"}, ...],    lun 0..16383, unique;
 *                                                   each volume existed when
 *                                                   the target was written
 *    "allow": ["iqn.1998-01.com.vmware:esx1", "*"], initiator names; "*" is
 *                                                   any; [] admits nobody
 *    "chap": {"user": "u", "secret": "12-255 bytes", optional; mutual_* both
 *             "mutual_user": "t", "mutual_secret": "..."}}   or neither
 * Keys not listed may be added later; readers should ignore them. */
#define MGMT_TARGET_PREFIX      "target/"

/* Store metadata key of the discovery sessions' settings (PUT /discovery):
 *   {"chap": null or {"user", "secret", "mutual_user", "mutual_secret"}}
 * as a target's "chap". Missing, or chap null: discovery needs no CHAP. */
#define MGMT_DISCOVERY_KEY      "discovery"

struct mgmt_opts {
	struct ev_loop    *loop;
	struct store_pool *pool;         /* borrowed; outlives the server */
	const char        *host;         /* listen address or host name */
	uint16_t           port;
	const char        *data_dir;     /* where MGMT_TOKEN_FILE lives */
	const char        *api_token;    /* NULL or "": read or create the file */
	const char        *tls_cert;     /* PEM files: HTTPS when both are set */
	const char        *tls_key;
	store_log_fn      *log;          /* may be NULL */
	void              *log_arg;
};

/* Loads or creates the API token, binds the listen address and starts
 * serving from o->loop. Blocking (file and socket set-up): call before the
 * loop runs. Logs its own failure; *out is set only on 0. */
int  mgmt_start(const struct mgmt_opts *o, struct mgmt_srv **out);

/* Stops accepting, fails new work with 503, waits for the store operations
 * in flight, closes every connection and volume handle, frees m and then
 * calls done(arg, 0) on the loop thread (never inside this call). The
 * pool may be closed from done. */
void mgmt_stop(struct mgmt_srv *m, store_done_fn *done, void *arg);

/* Per-volume I/O statistics (GET /stats, GET /metrics). The API counts the
 * I/O it does itself (image import and export); other front ends feed the
 * same counters through this hook, e.g. the iSCSI target once per SCSI
 * READ or WRITE, with arg = the struct mgmt_srv. volume is borrowed for the
 * call. Cheap: a hash lookup and a few additions. */
/* The iSCSI target whose sessions GET /sessions lists (iscsi/iscsi.h's
 * read-only iterator); NULL before it starts and once it has stopped. */
struct iscsi_srv;
void mgmt_set_iscsi(struct mgmt_srv *m, struct iscsi_srv *s);

enum mgmt_io_dir { MGMT_IO_READ, MGMT_IO_WRITE };
typedef void mgmt_io_fn(void *arg, const char *volume, enum mgmt_io_dir dir,
                        uint64_t bytes, uint64_t latency_ns);
mgmt_io_fn mgmt_io_record;

#endif

/* mgmt/internal.h: what the files of mgmt/ share; nothing outside mgmt/
 * includes it.
 *
 * A request (struct mgmt_req) lives from the first call of libmicrohttpd's
 * access handler (headers received) to its "request completed" callback.
 * Each store operation a handler starts takes a reference on it, so a
 * request whose client went away is freed only when the store is done with
 * its buffers. Handlers return MGMT_DONE after mgmt_reply*() or
 * mgmt_fail(), or MGMT_PENDING when a store callback will reply later
 * (the connection stays suspended until then).
 */
#ifndef SLUICE_MGMT_INTERNAL_H
#define SLUICE_MGMT_INTERNAL_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "mgmt/mgmt.h"

#define MGMT_PREFIX             "/api/v1"
#define MGMT_BODY_MAX           (64u << 10)     /* a JSON body; one target fits */
#define MGMT_MAX_CAPTURES       2               /* {name}, {snap} */

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_Response;
struct mgmt_req;
struct mgmt_xfer;
struct mgmt_vol_stats;

/* ---- routes (routes.c) ---------------------------------------------- */

enum { MGMT_DONE = 0, MGMT_PENDING = 1 };

typedef int mgmt_handler_fn(struct mgmt_req *rq);

#define MGMT_NOAUTH       0x1u   /* served without the bearer token */
#define MGMT_BODY_JSON    0x2u   /* needs a JSON object body (<= MGMT_BODY_MAX) */
#define MGMT_BODY_STREAM  0x4u   /* fn runs on the headers; rq->stream takes the body */

struct mgmt_route {
	const char      *method;
	const char      *path;      /* literal segments and {captures} */
	mgmt_handler_fn *fn;
	unsigned         flags;
};

/* Each api_*.c file ends with its routes; routes.c walks these tables. */
extern const struct mgmt_route mgmt_routes_sys[];       /* api_sys.c */
extern const struct mgmt_route mgmt_routes_vol[];       /* api_vol.c */
extern const struct mgmt_route mgmt_routes_data[];      /* api_data.c */
extern const struct mgmt_route mgmt_routes_target[];    /* api_target.c */

/* Finds the route of method + path and fills rq->route and rq->arg[].
 * 0, -ENOENT (no such path) or -EOPNOTSUPP (path without that method; the
 * methods it has are in allow). */
int  mgmt_route_find(struct mgmt_req *rq, const char *method, const char *url,
                     char *allow, size_t allow_len);

/* ---- requests and replies (http.c, reply.c) ------------------------- */

/* A streamed body: data() consumes what it can of buf and returns how
 * much; when it returns less than len it has suspended the request and
 * will resume it. It may set a reply instead (an error): the rest of the
 * body is then dropped. end() runs once the body is complete and returns
 * like a handler. */
struct mgmt_stream {
	size_t (*data)(struct mgmt_req *rq, const char *buf, size_t len);
	int    (*end)(struct mgmt_req *rq);
};

struct mgmt_req {
	struct mgmt_srv          *srv;
	struct MHD_Connection    *conn;
	TAILQ_ENTRY(mgmt_req)     link;         /* srv->reqs */
	const struct mgmt_route  *route;
	char                     *path;         /* our copy of the URL; arg[] point in it */
	const char               *arg[MGMT_MAX_CAPTURES];
	uint64_t                  content_length;
	uint64_t                  dropped;      /* body bytes after an error reply */
	bool                      has_length;
	uint64_t                  started_ns;
	int                       step;         /* handlers with several store steps */
	/* a JSON body, when the route takes one */
	char                     *body;
	size_t                    body_len, body_cap;
	json_t                   *json;
	/* a streamed body */
	const struct mgmt_stream *stream;
	void                     *ctx;          /* the handler's */
	void                    (*on_close)(struct mgmt_req *rq); /* MHD is done with it */
	/* the reply, kept until the access handler can queue it */
	struct MHD_Response      *resp;
	unsigned                  status;
	int                       refs;         /* MHD's + one per store op in flight */
	bool                      completed;    /* the body is in; handler or end() ran */
	bool                      suspended;
	bool                      closed;       /* MHD finished with the connection */
};

/* References: one per store operation in flight (mgmt_req_get() before
 * submitting, mgmt_req_put() in the callback). put returns true if rq
 * still exists and its client is still there. */
void mgmt_req_get(struct mgmt_req *rq);
bool mgmt_req_put(struct mgmt_req *rq);
void mgmt_req_suspend(struct mgmt_req *rq);
/* Resumes a suspended request; its reply, if set, is then sent. */
void mgmt_req_resume(struct mgmt_req *rq);
/* A reply set after the access handler returned: resume and send it. */
void mgmt_req_finish(struct mgmt_req *rq);

/* Replies. Each returns MGMT_DONE. body: the reply takes ownership. */
int  mgmt_reply_json(struct mgmt_req *rq, unsigned status, json_t *body);
int  mgmt_reply_text(struct mgmt_req *rq, unsigned status, const char *type,
                     char *text, size_t len);   /* takes text (malloc'd) */
int  mgmt_reply_empty(struct mgmt_req *rq, unsigned status);
/* A reply libmicrohttpd built (a streamed body): the request takes it. */
int  mgmt_reply_response(struct mgmt_req *rq, unsigned status, struct MHD_Response *r);
/* The one error path: err is a negative errno or STORE_E* code, turned
 * into a status and a code string by the table in reply.c; the message
 * says what was wrong, for a person. */
int  mgmt_fail(struct mgmt_req *rq, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The status mgmt_fail() would use (tests of the table, logging). */
unsigned mgmt_err_status(int err);
void mgmt_reply_header(struct mgmt_req *rq, const char *name, const char *value);

/* ---- body checks (body.c) ------------------------------------------- */

/* What a JSON object may hold: unknown keys, missing required keys and
 * wrong types fail with 400 and a message naming the key. */
struct mgmt_field {
	const char *name;
	int         type;       /* a json_type; JSON_TRUE means a boolean */
	bool        required;
	bool        nullable;   /* null is accepted too (PATCH: remove) */
};
int  mgmt_fields_check(struct mgmt_req *rq, const json_t *obj, const char *what,
                       const struct mgmt_field *f, size_t n);
#define MGMT_FIELDS_N(f) (sizeof(f) / sizeof((f)[0]))

/* Volume names as store.h defines them; on failure *why says what is
 * wrong. Sizes: bytes, a multiple of 512, 1 sector to 64 TiB. */
bool mgmt_vol_name_ok(const char *name, const char **why);
bool mgmt_size_ok(json_int_t size, const char **why);
/* A printable, bounded rendition of untrusted text for error messages. */
const char *mgmt_quote(const char *s, char *buf, size_t len);

/* ---- the server (http.c) --------------------------------------------- */

/* A volume's import or export in progress (api_data.c). */
struct mgmt_xfer_info {
	const char *direction;  /* "import" or "export" */
	uint64_t    done, total;
	uint64_t    started_ns;
};

struct mgmt_srv {
	struct ev_loop          *loop;
	struct store_pool       *pool;
	store_log_fn            *log;
	void                    *log_arg;
	struct MHD_Daemon       *mhd;
	ev_io                    mhd_io;        /* MHD's epoll fd */
	ev_timer                 mhd_timer;     /* MHD_get_timeout() */
	ev_idle                  stop_idle;     /* mgmt_stop(): finish off the stack */
	char                    *tls_cert, *tls_key;   /* PEM, for MHD */
	char                     token[256 + 1];
	size_t                   token_len;
	TAILQ_HEAD(, mgmt_req)   reqs;          /* every live request */
	LIST_HEAD(, mgmt_xfer)   xfers;         /* imports and exports running */
	unsigned                 store_ops;     /* store operations in flight */
	unsigned                 meta_busy;     /* metadata changes in flight */
	bool                     stopping;
	store_done_fn           *stop_done;
	void                    *stop_arg;
	struct mgmt_stats       *stats;
	uint64_t                 http_requests, http_errors;
	struct iscsi_srv        *iscsi;         /* GET /sessions; NULL: none */
};

void mgmt_log(struct mgmt_srv *m, enum store_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t mgmt_now_ns(void);

/* Store operations in flight, so that mgmt_stop() knows when it may close
 * connections: op_begin() before submitting, op_end() in the callback. */
void mgmt_op_begin(struct mgmt_srv *m);
void mgmt_op_end(struct mgmt_srv *m);

/* The transfer running on a volume, or NULL (api_data.c). */
bool mgmt_xfer_info_get(struct mgmt_srv *m, const char *volume,
                        struct mgmt_xfer_info *out);
void mgmt_xfer_abort_all(struct mgmt_srv *m);

/* ---- token (token.c) ------------------------------------------------ */

/* o->api_token, or DATA_DIR/api-token, created with 32 random bytes in hex
 * (mode 0600) when missing. 0 or a negative errno (logged). */
int  mgmt_token_load(struct mgmt_srv *m, const struct mgmt_opts *o);
/* The Authorization header holds "Bearer <our token>"; constant time in
 * the token's bytes. */
bool mgmt_token_check(const struct mgmt_srv *m, const char *authorization);

/* ---- statistics (stats.c) ------------------------------------------- */

int  mgmt_stats_create(struct ev_loop *loop, struct mgmt_stats **out);
void mgmt_stats_destroy(struct ev_loop *loop, struct mgmt_stats *s);
void mgmt_stats_forget(struct mgmt_stats *s, const char *volume);
/* {"since_start": {...}, "last_second": {...}} of one volume. */
json_t *mgmt_stats_vol_json(struct mgmt_stats *s, const char *volume);
json_t *mgmt_stats_totals_json(struct mgmt_stats *s);
double  mgmt_stats_uptime(const struct mgmt_stats *s);
/* Appends the Prometheus families of the volumes vi[0..n) to *buf (a
 * growing string). */
int  mgmt_stats_metrics(struct mgmt_stats *s, const struct store_vol_info *vi,
                        size_t n, char **buf, size_t *len, size_t *cap);

/* A growing string for text replies; returns 0 or -ENOMEM. */
int  mgmt_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- targets (api_target.c) ------------------------------------------ */

/* -EBUSY with the target's name in iqn when a target maps the volume. */
int  mgmt_target_uses_volume(struct mgmt_srv *m, const char *volume,
                             char *iqn, size_t len);
/* RFC 7143 "iSCSI Names": "iqn.", "eui." or "naa." names; *why on failure. */
bool mgmt_iscsi_name_ok(const char *name, const char **why);

#endif

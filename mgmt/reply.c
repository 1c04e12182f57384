/* mgmt/reply.c: replies, and the one table that turns errors into HTTP.
 *
 * Every error the API returns goes through mgmt_fail(): a negative errno or
 * STORE_E* code picks the status and the stable code string from
 * http_of_err[], the message says what was wrong for a person, and the
 * body is always {"error": {"code": ..., "message": ...}} (DESIGN.md).
 * Handlers pick the errno that fits; they never choose a status for an
 * error themselves.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/internal.h"

static const struct {
	int         err;
	unsigned    status;
	const char *code;
} http_of_err[] = {
	{ -EINVAL,          400, "invalid_argument" },
	{ -ERANGE,          400, "out_of_range" },
	{ -EBADMSG,         400, "invalid_json" },
	{ -E2BIG,           400, "too_many_volumes" },
	{ -EACCES,          401, "unauthorized" },
	{ -ENOENT,          404, "not_found" },
	{ -EOPNOTSUPP,      405, "method_not_allowed" },
	{ -EEXIST,          409, "already_exists" },
	{ -EBUSY,           409, "in_use" },
	{ -ENOTEMPTY,       409, "has_snapshots" },
	{ -EMLINK,          409, "too_many_snapshots" },
	{ -EROFS,           409, "read_only_snapshot" },
	{ -EMSGSIZE,        413, "payload_too_large" },
	{ -EFBIG,           413, "image_too_large" },
	{ -ENOMEM,          500, "out_of_memory" },
	{ STORE_ECORRUPT,   500, "corrupt" },
	{ -ENOSYS,          501, "not_implemented" },
	{ -ESHUTDOWN,       503, "shutting_down" },
	{ -EAGAIN,          503, "busy" },
	{ STORE_EFAILED,    503, "pool_failed" },
	{ STORE_EREADONLY,  503, "read_only" },
	{ -ENOSPC,          507, "insufficient_storage" },
};
#define HTTP_OF_ERR_N (sizeof(http_of_err) / sizeof(http_of_err[0]))

static unsigned err_index(int err)
{
	for (unsigned i = 0; i < HTTP_OF_ERR_N; i++)
		if (http_of_err[i].err == err)
			return i;
	return HTTP_OF_ERR_N;
}

unsigned mgmt_err_status(int err)
{
	unsigned i = err_index(err);

	return i < HTTP_OF_ERR_N ? http_of_err[i].status : 500;
}

static int reply_set(struct mgmt_req *rq, unsigned status, struct MHD_Response *r)
{
	if (rq->resp)                           /* a later reply wins */
		MHD_destroy_response(rq->resp);
	rq->resp = r;
	rq->status = status;
	if (!r) {                               /* MHD could not allocate */
		rq->status = 500;
		rq->resp = MHD_create_response_from_buffer(0, (void *)"",
		                                           MHD_RESPMEM_PERSISTENT);
	}
	return MGMT_DONE;
}

int mgmt_reply_text(struct mgmt_req *rq, unsigned status, const char *type,
                    char *text, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text,
	                                                         MHD_RESPMEM_MUST_FREE);

	if (!r)
		free(text);
	reply_set(rq, status, r);
	if (r)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	return MGMT_DONE;
}

int mgmt_reply_json(struct mgmt_req *rq, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	char *nl;

	json_decref(body);
	if (!text)                              /* out of memory: a bare 500 */
		return reply_set(rq, 500, NULL);
	nl = realloc(text, strlen(text) + 2);   /* a newline: nicer for curl */
	if (nl) {
		text = nl;
		strcat(text, "\n");
	}
	return mgmt_reply_text(rq, status, "application/json", text, strlen(text));
}

int mgmt_reply_empty(struct mgmt_req *rq, unsigned status)
{
	return reply_set(rq, status, MHD_create_response_from_buffer(0, (void *)"",
	                                                             MHD_RESPMEM_PERSISTENT));
}

int mgmt_reply_response(struct mgmt_req *rq, unsigned status, struct MHD_Response *r)
{
	return reply_set(rq, status, r);
}

void mgmt_reply_header(struct mgmt_req *rq, const char *name, const char *value)
{
	if (rq->resp)
		MHD_add_response_header(rq->resp, name, value);
}

int mgmt_fail(struct mgmt_req *rq, int err, const char *fmt, ...)
{
	unsigned i = err_index(err);
	char msg[1024];
	va_list ap;
	json_t *body;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (i == HTTP_OF_ERR_N)                 /* unexpected: say which error */
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (%s)",
		         store_strerror(err));
	body = json_pack("{s:{s:s, s:s}}", "error", "code",
	                 i < HTTP_OF_ERR_N ? http_of_err[i].code : "internal_error",
	                 "message", msg);
	if (!body)
		return reply_set(rq, 500, NULL);
	return mgmt_reply_json(rq, mgmt_err_status(err), body);
}

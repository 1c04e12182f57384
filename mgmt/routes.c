/* mgmt/routes.c: which handler serves a request.
 *
 * The routes themselves are tables at the end of each api_*.c file, beside
 * their handlers (knot's control table, SPDK's RPC registry); this file
 * walks them. A path is matched segment by segment: literal segments
 * exactly, "{x}" captures one non-empty segment into rq->arg[]. The path
 * is matched first, then the method, so a known path with the wrong method
 * is 405 (with Allow) and an unknown path is 404.
 *
 * tests/integration/openapi-check.sh reads these tables' source lines and
 * mgmt/openapi.yaml and fails when they differ.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/internal.h"

static const struct mgmt_route *const route_tables[] = {
	mgmt_routes_sys, mgmt_routes_vol, mgmt_routes_data, mgmt_routes_target,
};
#define ROUTE_TABLES_N (sizeof(route_tables) / sizeof(route_tables[0]))

/* Does url (our writable copy) fit the pattern? Captures go to arg[],
 * pointing into url, whose '/' separators become NULs on a match. */
static bool route_match(const char *pattern, char *url, const char **arg)
{
	const char *p = pattern;
	char *u = url;
	char *ends[16];
	unsigned nargs = 0, nends = 0;

	while (*p && *u) {
		const char *pe = strchr(p, '/') ? strchr(p, '/') : p + strlen(p);
		char *ue = strchr(u, '/') ? strchr(u, '/') : u + strlen(u);
		size_t plen = (size_t)(pe - p), ulen = (size_t)(ue - u);

		if (p[0] == '{') {
			if (ulen == 0 || nargs == MGMT_MAX_CAPTURES)
				return false;
			arg[nargs++] = u;
			if (*ue && nends < 16)
				ends[nends++] = ue;
		} else if (plen != ulen || memcmp(p, u, plen) != 0) {
			return false;
		}
		p = *pe ? pe + 1 : pe;
		u = *ue ? ue + 1 : ue;
		if (!*pe != !*ue)               /* one ends, the other goes on */
			return false;
	}
	if (*p || *u)
		return false;
	for (unsigned i = 0; i < nends; i++)    /* the captures become strings */
		*ends[i] = '\0';
	return true;
}

static void route_allow_add(char *allow, size_t len, const char *method)
{
	size_t used = strlen(allow);

	if (strstr(allow, method))
		return;
	if (used + strlen(method) + 3 > len)
		return;
	if (used)
		strcat(allow, ", ");
	strcat(allow, method);
}

int mgmt_route_find(struct mgmt_req *rq, const char *method, const char *url,
                    char *allow, size_t allow_len)
{
	char *copy;
	const char *arg[MGMT_MAX_CAPTURES];

	allow[0] = '\0';
	if (strncmp(url, MGMT_PREFIX "/", sizeof(MGMT_PREFIX)) != 0)
		return -ENOENT;
	copy = strdup(url);
	if (!copy)
		return -ENOMEM;
	for (size_t t = 0; t < ROUTE_TABLES_N; t++) {
		for (const struct mgmt_route *r = route_tables[t]; r->method; r++) {
			strcpy(copy, url);
			if (!route_match(r->path, copy, arg))
				continue;
			if (strcmp(r->method, method) != 0) {
				route_allow_add(allow, allow_len, r->method);
				continue;
			}
			rq->route = r;
			rq->path = copy;
			memcpy(rq->arg, arg, sizeof(arg));
			return 0;
		}
	}
	free(copy);
	return allow[0] ? -EOPNOTSUPP : -ENOENT;
}

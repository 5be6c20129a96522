/* router: see router.h. A pattern segment "*" matches one non-empty
 * segment; a final "**" matches the rest of the path, '/' included, and may
 * be empty (so "/v1/names/" reaches the handler, which says invalid_key). */
#include "router.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "../cluster/cluster.h"
#include "../handlers/handlers.h"
#include "reply.h"
#include "uri.h"

/* Who may call a route when the server has --auth-token. */
enum access {
	OPEN,     /* anyone: the dashboard's files and /healthz */
	API,      /* reads (GET, HEAD) with the read or the full token, the rest with the full token */
	API_RW,   /* the full token even to GET: the receive acknowledges messages */
};

struct route {
	const char *pattern;
	enum access access;
	http_handler h[HTTP_METHOD_COUNT];
	const char *allow;
};

static const struct route routes[] = {
	{ "/", OPEN, { [HTTP_GET] = ui_index }, "GET, HEAD" },
	{ "/ui/*", OPEN, { [HTTP_GET] = ui_file }, "GET, HEAD" },
	{ "/healthz", OPEN, { [HTTP_GET] = ops_healthz }, "GET, HEAD" },
	{ "/metrics", API, { [HTTP_GET] = ops_metrics }, "GET, HEAD" },
	{ "/v1/stats", API, { [HTTP_GET] = ops_stats }, "GET, HEAD" },
	{ "/v1/sessions", API, { [HTTP_GET] = sessions_list, [HTTP_POST] = sessions_create }, "GET, HEAD, POST" },
	{ "/v1/nodes", API, { [HTTP_GET] = ops_nodes }, "GET, HEAD" },
	{ "/v1/sessions/*", API, { [HTTP_GET] = sessions_get, [HTTP_DELETE] = sessions_delete }, "GET, HEAD, DELETE" },
	{ "/v1/sessions/*/heartbeat", API, { [HTTP_POST] = sessions_heartbeat }, "POST" },
	{ "/v1/sessions/*/messages", API_RW, { [HTTP_GET] = messages_receive }, "GET, HEAD" },
	{ "/v1/send", API, { [HTTP_POST] = messages_send }, "POST" },
	{ "/internal/deliver", OPEN, { [HTTP_POST] = messages_deliver }, "POST" }, /* node to node */
	{ "/v1/call", API, { [HTTP_POST] = calls_start }, "POST" },
	{ "/v1/replies/*", API, { [HTTP_POST] = calls_reply }, "POST" },
	{ "/v1/events", API, { [HTTP_GET] = events_get }, "GET, HEAD" },
	{ "/v1/names", API, { [HTTP_GET] = names_list }, "GET, HEAD" },
	{ "/v1/names/**", API, { [HTTP_GET] = names_get, [HTTP_PUT] = names_put, [HTTP_DELETE] = names_delete },
	  "GET, HEAD, PUT, DELETE" },
	{ "/v1/props", API, { [HTTP_GET] = props_list }, "GET, HEAD" },
	{ "/v1/props/**", API, { [HTTP_GET] = props_get, [HTTP_PUT] = props_put, [HTTP_DELETE] = props_delete },
	  "GET, HEAD, PUT, DELETE" },
	{ "/v1/groups", API, { [HTTP_GET] = groups_list }, "GET, HEAD" },
	{ "/v1/groups/**", API, { [HTTP_GET] = groups_get, [HTTP_PUT] = groups_put, [HTTP_DELETE] = groups_delete },
	  "GET, HEAD, PUT, DELETE" },
};

_Static_assert(sizeof(routes) / sizeof(routes[0]) < METRICS_ROUTES, "metrics need a slot per route and one for none");

size_t router_route_count(void)
{
	return sizeof(routes) / sizeof(routes[0]);
}

const char *router_route_name(size_t i)
{
	return i < router_route_count() ? routes[i].pattern : "none";
}

enum http_method router_method(const char *m)
{
	if (!strcmp(m, "GET"))
		return HTTP_GET;
	if (!strcmp(m, "HEAD"))
		return HTTP_HEAD;
	if (!strcmp(m, "POST"))
		return HTTP_POST;
	if (!strcmp(m, "PUT"))
		return HTTP_PUT;
	if (!strcmp(m, "DELETE"))
		return HTTP_DELETE;
	return HTTP_OTHER;
}

/* Matches path against pattern; on success sets the wildcard's span. */
static bool match(const char *pat, const char *path, size_t plen, const char **param, size_t *param_len)
{
	const char *p = path, *end = path + plen;

	while (*pat) {
		if (pat[0] == '*' && pat[1] == '*') {
			*param = p;
			*param_len = (size_t)(end - p);
			return true;
		}
		if (*pat == '*') {
			const char *s = p;
			while (p < end && *p != '/')
				p++;
			if (p == s)
				return false;
			*param = s;
			*param_len = (size_t)(p - s);
			pat++;
			continue;
		}
		if (p >= end || *p != *pat)
			return false;
		p++;
		pat++;
	}
	return p == end;
}

/* The bearer token of the request: "Authorization: Bearer T", else the
 * query's access_token (EventSource cannot set headers), decoded into buf.
 * NULL when there is none. */
static const char *bearer(const struct http_request *req, char *buf, size_t cap, size_t *len)
{
	const char *v;
	size_t n;

	if (req->authorization && !strncasecmp(req->authorization, "Bearer ", 7)) {
		v = req->authorization + 7;
		while (*v == ' ')
			v++;
		*len = strlen(v);
		return v;
	}
	if (uri_query_find(req->query, req->query_len, "access_token", &v, &n) &&
	    uri_decode(v, n, true, buf, cap, len))
		return buf;
	return NULL;
}

static bool token_is(const char *t, size_t n, const char *want)
{
	return want && strlen(want) == n && hmap_ct_equal(t, want, n);
}

/* With --auth-token, every API route needs a token: the full one, or the
 * read one for reads. 401 unauthorized / 403 read_only otherwise. */
static bool authorized(struct http_request *req, struct http_reply *rep, const struct route *r)
{
	const struct config *cfg = req->app->cfg;
	char buf[256];
	const char *t;
	size_t n = 0;
	bool read = r->access == API && (req->method == HTTP_GET || req->method == HTTP_HEAD);

	if (!cfg->auth_token)
		return true;
	t = bearer(req, buf, sizeof(buf), &n);
	if (t && token_is(t, n, cfg->auth_token))
		return true;
	if (t && token_is(t, n, cfg->read_token)) {
		if (read)
			return true;
		reply_error(rep, ERR_READ_ONLY, NULL);
		return false;
	}
	rep->www_authenticate = "Bearer realm=\"rollcall\"";
	reply_error(rep, ERR_UNAUTHORIZED, NULL);
	return false;
}

/* ?min_index=N on a single node: its index is all there is, so an N
 * beyond it is 503 cluster_unavailable at once. */
static bool min_index_ok(struct http_request *req, struct http_reply *rep)
{
	const char *v;
	size_t n;
	uint64_t min;

	if (!uri_query_find(req->query, req->query_len, "min_index", &v, &n))
		return true;
	if (!query_uint(req, rep, "min_index", 0, &min))
		return false;
	if (min > store_index(req->app->store)) {
		reply_error(rep, ERR_CLUSTER_UNAVAILABLE, "min_index is beyond this server's index.");
		return false;
	}
	return true;
}

void router_dispatch(struct http_request *req, struct http_reply *rep)
{
	const struct route *r = NULL;
	struct app *app = req->app;
	http_handler h;
	size_t i;

	req->route = SIZE_MAX;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (match(routes[i].pattern, req->path, req->path_len, &req->param, &req->param_len)) {
			r = &routes[i];
			req->route = i;
			break;
		}
	}
	if (!r) {
		reply_error(rep, ERR_NOT_FOUND, NULL);
		return;
	}
	h = r->h[req->method];
	if (!h && req->method == HTTP_HEAD)
		h = r->h[HTTP_GET];
	if (!h) {
		rep->allow = r->allow;
		reply_error(rep, ERR_METHOD_NOT_ALLOWED, NULL);
		return;
	}
	if (r->access != OPEN && !authorized(req, rep, r))
		return;
	if (app->shutting_down && !req->wake) {
		rep->close = true;
		reply_error(rep, ERR_SHUTTING_DOWN, NULL);
		return;
	}
	if (req->path_len >= 3 && !memcmp(req->path, "/v1", 3)) {
		if (app->cluster) {
			/* a copy not ready, ?min_index=, a session homed elsewhere */
			/* /v1/sessions/{id}...: the id is a session's, whose home answers */
			if (!cluster_route(req, rep, !strncmp(r->pattern, "/v1/sessions/*", 14))) {
				req->routed_wait = rep->suspend;
				return;
			}
		} else {
			if (!min_index_ok(req, rep))
				return;
		}
	}
	/* Any request that carries a live session's token is a sign of life.
	 * Looked up on every call: a resumed request's session may be gone. */
	req->caller = NULL;
	if (req->token) {
		req->caller = store_session_by_token(app->store, req->now, req->token, strlen(req->token));
		if (req->caller)
			store_session_touch(app->store, req->now, req->caller);
	}
	h(req, rep);
	if (req->path_len >= 3 && !memcmp(req->path, "/v1", 3) && !rep->with_index) {
		rep->with_index = true;
		rep->index = store_index(app->store);
	}
}

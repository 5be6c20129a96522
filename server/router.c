/* router: see router.h. A pattern segment "*" matches one non-empty
 * segment; a final "**" matches the rest of the path, '/' included, and may
 * be empty (so "/v1/names/" reaches the handler, which says invalid_key). */
#include "router.h"

#include <stdint.h>
#include <string.h>

#include "../handlers/handlers.h"
#include "reply.h"

struct route {
	const char *pattern;
	bool v1; /* a registry route: answers carry X-Rollcall-Index */
	http_handler h[HTTP_METHOD_COUNT];
	const char *allow;
};

static const struct route routes[] = {
	{ "/", false, { [HTTP_GET] = ui_index }, "GET, HEAD" },
	{ "/ui/*", false, { [HTTP_GET] = ui_file }, "GET, HEAD" },
	{ "/healthz", false, { [HTTP_GET] = ops_healthz }, "GET, HEAD" },
	{ "/metrics", false, { [HTTP_GET] = ops_metrics }, "GET, HEAD" },
	{ "/v1/stats", true, { [HTTP_GET] = ops_stats }, "GET, HEAD" },
	{ "/v1/sessions", true, { [HTTP_GET] = sessions_list, [HTTP_POST] = sessions_create }, "GET, HEAD, POST" },
	{ "/v1/sessions/*", true, { [HTTP_GET] = sessions_get, [HTTP_DELETE] = sessions_delete }, "GET, HEAD, DELETE" },
	{ "/v1/sessions/*/heartbeat", true, { [HTTP_POST] = sessions_heartbeat }, "POST" },
	{ "/v1/sessions/*/messages", true, { [HTTP_GET] = messages_receive }, "GET, HEAD" },
	{ "/v1/send", true, { [HTTP_POST] = messages_send }, "POST" },
	{ "/v1/events", true, { [HTTP_GET] = events_get }, "GET, HEAD" },
	{ "/v1/names", true, { [HTTP_GET] = names_list }, "GET, HEAD" },
	{ "/v1/names/**", true, { [HTTP_GET] = names_get, [HTTP_PUT] = names_put, [HTTP_DELETE] = names_delete },
	  "GET, HEAD, PUT, DELETE" },
	{ "/v1/props", true, { [HTTP_GET] = props_list }, "GET, HEAD" },
	{ "/v1/props/**", true, { [HTTP_GET] = props_get, [HTTP_PUT] = props_put, [HTTP_DELETE] = props_delete },
	  "GET, HEAD, PUT, DELETE" },
	{ "/v1/groups", true, { [HTTP_GET] = groups_list }, "GET, HEAD" },
	{ "/v1/groups/**", true, { [HTTP_GET] = groups_get, [HTTP_PUT] = groups_put, [HTTP_DELETE] = groups_delete },
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
	if (app->shutting_down && !req->wake) {
		rep->close = true;
		reply_error(rep, ERR_SHUTTING_DOWN, NULL);
		return;
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
	if (r->v1) {
		rep->with_index = true;
		rep->index = store_index(app->store);
	}
}

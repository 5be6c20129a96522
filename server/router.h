/* router: the routing table and the dispatcher that runs a request through
 * it: route match (404, or 405 with Allow), the caller's session from the
 * token (a sign of life for its lease), then the handler. */
#ifndef ROLLCALL_ROUTER_H
#define ROLLCALL_ROUTER_H

#include "request.h"

/* Runs req and fills rep (which the caller zeroes and later clears). */
void router_dispatch(struct http_request *req, struct http_reply *rep);

/* The routing table's size, and a route's pattern (for metrics labels). */
size_t router_route_count(void);
const char *router_route_name(size_t i);

/* The method of an HTTP method name. */
enum http_method router_method(const char *name);

#endif

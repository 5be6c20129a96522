/* request: what a handler sees of an HTTP request and what it answers, with
 * no libmicrohttpd type in sight, so a handler can be called from a test
 * without a socket. server/daemon.c fills these from libmicrohttpd. */
#ifndef ROLLCALL_REQUEST_H
#define ROLLCALL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"
#include "config.h"
#include "metrics.h"

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_OTHER, HTTP_METHOD_COUNT };

/* What every handler shares: the registry and the settings. */
struct cluster;

struct app {
	struct store *store;
	const struct config *cfg;
	struct metrics *metrics;
	struct cluster *cluster; /* NULL on a single node (no --etcd) */
	char started[32];        /* when the server started (RFC 3339, UTC) */
	bool shutting_down;
};

struct http_request {
	enum http_method method;
	const char *path;   /* raw (still percent-encoded), without the query */
	size_t path_len;
	const char *query;  /* raw, without the '?'; NULL when there is none */
	size_t query_len;
	const char *param;  /* raw path part matched by the route's {id} or {key} */
	size_t param_len;
	const char *token;  /* X-Session-Token, or NULL */
	const char *accept; /* Accept, or NULL */
	const char *last_event_id; /* Last-Event-ID, or NULL */
	const char *if_none_match; /* If-None-Match, or NULL */
	const char *authorization; /* Authorization, or NULL */
	const char *body;   /* the whole body (at most --max-body bytes) */
	size_t body_len;
	uint64_t now;       /* ms, monotonic */
	struct app *app;
	/* 0 on the first call; why the request was resumed after a suspend */
	enum store_wake wake;
	/* parked in the store while the request is suspended; its wake
	 * callback is set by whoever owns the request */
	struct store_waiter waiter;
	/* a handler's own number, kept across a suspend (0 at first) */
	uint64_t saved;
	/* set by the dispatcher: the route's index in the table (SIZE_MAX: none) */
	size_t route;
	/* set by the dispatcher: the live session the token belongs to */
	struct store_session *caller;
	/* a handler's state that outlives a suspend (a call); cleanup, when
	 * set, is called once when the request ends, however it ends */
	void *state;
	void (*cleanup)(struct http_request *req);
	/* cluster mode: the write or forward in flight for this request
	 * (cluster_request_done frees it), and what the router did already */
	void *cl_op;
	bool caught_up;   /* the node caught up with etcd before calling a token or id unknown */
	bool routed_wait; /* suspended by the cluster's routing, before any handler ran */
	bool beyond;      /* the index asked for (min_index, an event's after) is beyond anything etcd has */
	uint64_t etcd_rev; /* etcd's revision when the node caught up */
	const char *forward_secret; /* X-Rollcall-Forward, or NULL */
	const char *content_type;   /* Content-Type, or NULL */
	/* a streamed answer's state, owned by the stream (see http_stream) */
	const struct http_stream *stream;
	void *stream_state;
};

/* A streamed answer (the event stream). A handler that sets rep->stream
 * (with req->stream_state its own) gets read() called whenever the client
 * can take more, and free() once when the request ends, however it ends. */
struct http_stream {
	/* Writes up to max bytes into buf and returns how many. Returns 0 with
	 * *wait set when nothing is ready: read() has parked req->waiter, and
	 * the connection sleeps until it wakes (req->wake says why). Returns 0
	 * without *wait to end the stream. */
	size_t (*read)(struct http_request *req, char *buf, size_t max, bool *wait);
	void (*free)(struct http_request *req);
};

struct http_reply {
	int status;
	char *body;          /* malloc'd, owned by the reply (unless body_static); NULL for none */
	bool body_static;    /* body is static data, not owned */
	const char *etag;    /* static, or NULL */
	size_t body_len;
	const char *content_type; /* static; NULL means JSON */
	const char *allow;   /* static; the Allow header of a 405 */
	const char *cache_control; /* static, or NULL for none */
	const char *www_authenticate; /* static, or NULL for none */
	const char *node;    /* X-Rollcall-Node when not this node (a relayed answer) */
	bool with_index;     /* add X-Rollcall-Index */
	uint64_t index;
	bool suspend;        /* the handler parked req->waiter: suspend the connection */
	const struct http_stream *stream; /* stream the body (status 200, content_type) */
	bool close;          /* close the connection after answering */
};

typedef void (*http_handler)(struct http_request *req, struct http_reply *rep);

/* Frees what the reply owns. */
void http_reply_clear(struct http_reply *rep);

#endif

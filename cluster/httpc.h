/* httpc: an HTTP/1.1 client on libcurl's multi socket interface, driven by
 * the server's own epoll loop (no thread): etcd's gateway and forwards from
 * node to node. Connections are kept alive and reused. Every request has a
 * deadline and ends with exactly one on_done call, unless it is cancelled
 * first. Callbacks may start and cancel requests (those are deferred until
 * libcurl has returned). */
#ifndef ROLLCALL_HTTPC_H
#define ROLLCALL_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct httpc;
struct httpc_req;

struct httpc_result {
	int status;          /* the HTTP status; 0 when no complete answer came (error says why) */
	bool timed_out;      /* the deadline passed */
	const char *error;   /* NULL on a complete answer; else a short static or curl sentence */
	const char *body;    /* the whole body, NUL-terminated ("" for none); not kept for streams */
	size_t body_len;
	/* response headers, NUL-terminated values, NULL when absent */
	const char *content_type, *allow, *x_index, *x_node, *www_authenticate;
};

struct httpc_opts {
	const char *method;   /* "GET", "POST", "PUT", "DELETE", "HEAD" */
	const char *url;
	const char *body;     /* copied; NULL for none */
	size_t body_len;
	const char *const *headers; /* "Name: value" lines, NULL-terminated, copied; may be NULL */
	unsigned timeout_ms;  /* the whole request; 0: none (a watch) */
	unsigned connect_timeout_ms; /* 0: 2000 */
	size_t max_body;      /* an answer body (for a stream: a line) longer than this fails ("too large"); 0: 256 MiB */
	/* A stream: each '\n'-terminated line of the body (without the '\n',
	 * NUL-terminated, valid during the call) is handed over as it arrives,
	 * whatever its length; the body is not kept. Returning false cancels
	 * the request (no on_done). May be NULL. */
	bool (*on_line)(void *ctx, const char *line, size_t len);
	/* Called once when the request ends, unless it was cancelled. res and
	 * what it points at are valid during the call only. */
	void (*on_done)(void *ctx, const struct httpc_result *res);
	void *ctx;
};

/* A client whose sockets are added to epfd with data.ptr pointing at an
 * int equal to tag (so the loop can tell them from its own). NULL when
 * out of memory or when libcurl cannot start. */
struct httpc *httpc_new(int epfd, int tag);

/* Cancels every request (no callbacks) and frees the client. Not from
 * inside one of its callbacks. */
void httpc_free(struct httpc *c);

/* Starts a request; NULL when out of memory. */
struct httpc_req *httpc_start(struct httpc *c, const struct httpc_opts *o);

/* Ends r at once: its on_done is not called, and r is freed. */
void httpc_cancel(struct httpc *c, struct httpc_req *r);

/* The loop got events for a socket whose epoll data.ptr had our tag. */
void httpc_on_event(struct httpc *c, void *ptr, uint32_t events);

/* Milliseconds until httpc_run_timers() is due; -1 when nothing is.
 * Call it before each epoll_wait(): it also frees the sockets libcurl let
 * go of, which events of the last batch may still have pointed at. */
long httpc_timeout(struct httpc *c);

/* Runs libcurl's timers (deadlines, connects) and what follows from them. */
void httpc_run_timers(struct httpc *c);

/* Requests not yet ended. */
size_t httpc_active(const struct httpc *c);

#endif

/* librollcall: a C client of rollcall's HTTP API (api.md), on libcurl.
 *
 * A struct rc is one client: its server URL, its access token and one
 * kept-alive connection. It is not thread-safe: use one per thread (they
 * share nothing). rc_keepalive_start() runs a thread with a client of its
 * own; its start and stop may be called from any thread. There is no global state of the library's own; call
 * curl_global_init() once before the first rc_new() in a threaded program
 * (rc_new() does it otherwise, which is not thread-safe).
 *
 * Every call answers with a struct rc_result: the HTTP status, api.md's
 * error code and message when it failed, and the parsed JSON body. A
 * request that got no answer has status 0 and error "unreachable". */
#ifndef ROLLCALL_CLIENT_H
#define ROLLCALL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct rc;

struct rc_result {
	int status;          /* the HTTP status; 0 when no answer came */
	char error[48];      /* api.md's code ("name_taken", ...), "unreachable", or "" on success */
	char message[256];   /* its sentence */
	cJSON *json;         /* the parsed body, or NULL (owned: rc_result_clear frees it) */
	uint64_t index;      /* X-Rollcall-Index, 0 when absent */
};

/* A session this client made: its id and token. */
struct rc_session {
	char id[17];
	char token[33];
	unsigned ttl;
};

/* A client of the server at url (http://host:port, no trailing path);
 * auth_token: sent as a bearer token, or NULL. NULL when out of memory. */
struct rc *rc_new(const char *url, const char *auth_token);
void rc_free(struct rc *c);

/* Frees what r holds and zeroes it. */
void rc_result_clear(struct rc_result *r);

/* One request: method, path (with its query, already encoded), a JSON
 * body or NULL, a session token or NULL, a deadline in milliseconds (0:
 * 30 s). Fills r (cleared first); returns r->status. */
int rc_request(struct rc *c, const char *method, const char *path, const char *body, const char *token,
	       long timeout_ms, struct rc_result *r);

/* --- the API (each fills r and returns its status) --- */

int rc_session_create(struct rc *c, unsigned ttl, const char *label, struct rc_session *out, struct rc_result *r);
int rc_session_heartbeat(struct rc *c, const struct rc_session *s, struct rc_result *r);
int rc_session_delete(struct rc *c, const struct rc_session *s, struct rc_result *r);

/* PUT /v1/names|props|groups/{key} for s; value: JSON text or NULL. */
int rc_register(struct rc *c, const struct rc_session *s, const char *kind, const char *key, const char *value,
		struct rc_result *r);

/* GET /v1/names/{key}, waiting up to wait_s seconds (0: none). */
int rc_lookup(struct rc *c, const char *key, unsigned wait_s, struct rc_result *r);

/* GET /v1/{kind}?prefix=&limit=1000: kind is names, props, groups,
 * sessions or nodes; prefix may be NULL. */
int rc_list(struct rc *c, const char *kind, const char *prefix, struct rc_result *r);

/* GET /v1/groups/{group}, with pick (random, round_robin, hash; NULL for
 * all members) and hash_key (for hash). */
int rc_members(struct rc *c, const char *group, const char *pick, const char *hash_key, struct rc_result *r);

/* POST /v1/send and /v1/call: target and body are JSON text (see
 * rc_target()); from may be NULL (anonymous). */
int rc_send(struct rc *c, const struct rc_session *from, const char *target, const char *body, struct rc_result *r);
int rc_call(struct rc *c, const struct rc_session *from, const char *target, const char *body, unsigned timeout_ms,
	    struct rc_result *r);

/* GET /v1/sessions/{id}/messages?after=&wait=&max=. */
int rc_receive(struct rc *c, const struct rc_session *s, uint64_t after, unsigned wait_s, struct rc_result *r);

/* POST /v1/replies/{call_id} {"body"} as s. */
int rc_reply(struct rc *c, const struct rc_session *s, const char *call_id, const char *body, struct rc_result *r);

int rc_stats(struct rc *c, struct rc_result *r);

/* Follows GET /v1/events as a Server-Sent Events stream (prefix may be
 * NULL; after: resume after that index (0 included), sent as
 * Last-Event-ID; -1: from the next change). on_event gets each event's
 * type and its data (a JSON object); returning false ends the stream.
 * Returns when the stream ends: r->status 200 when it ended by on_event or
 * by the server closing it (reconnect), else the error. */
int rc_events(struct rc *c, const char *prefix, int64_t after,
	      bool (*on_event)(void *ctx, const char *type, const cJSON *data), void *ctx, struct rc_result *r);

/* --- keeping a session alive --- */

/* On the caller's loop: when s's next heartbeat is due, in the caller's
 * milliseconds, given when the last sign of life was (a third of its ttl
 * later, so that two heartbeats can fail before the lease runs out). */
uint64_t rc_heartbeat_due(const struct rc_session *s, uint64_t last_ms);

/* On its own thread: heartbeats s (a copy is kept) at a third of its ttl
 * through a client of its own (url, auth_token as rc_new), until
 * rc_keepalive_stop(). When the server says the session is gone (404), the
 * thread calls on_lost(ctx) once, from the thread, and stops beating; a
 * heartbeat that gets no answer is tried again a second later. NULL when
 * out of memory or when the thread cannot start. The thread is the only
 * user of its client: the caller's own clients are untouched. */
struct rc_keepalive;
struct rc_keepalive *rc_keepalive_start(const char *url, const char *auth_token, const struct rc_session *s,
					void (*on_lost)(void *ctx), void *ctx);

/* Stops the thread (at once: it does not wait for a heartbeat's deadline
 * longer than the one in flight) and frees it. */
void rc_keepalive_stop(struct rc_keepalive *k);

/* --- helpers --- */

/* A target as rollcallctl writes it: name:N, session:ID, prop:K, group:G or
 * group:G:random|round_robin|hash[:HASH_KEY], as the JSON of api.md's "to"
 * (malloc'd). NULL with a sentence in err when spec is not one. */
char *rc_target(const char *spec, char *err, size_t errlen);

/* rollcallctl's exit status for a result: 0 done; 1 not found or empty
 * (404); 2 a request the server refused as bad (400, 401, 403, 405, 413);
 * 3 a conflict (409); 4 unreachable or unable to serve (no answer, 429,
 * 5xx, except 504); 5 a deadline reached (504 call_timeout). */
int rc_exit_code(const struct rc_result *r);

#endif

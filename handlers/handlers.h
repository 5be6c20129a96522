/* handlers: one function per route, and the helpers they share. A handler
 * reads a struct http_request, calls the store, and fills a struct
 * http_reply; none of them touches a socket. */
#ifndef ROLLCALL_HANDLERS_H
#define ROLLCALL_HANDLERS_H

#include "../server/json.h"
#include "../server/jw.h"
#include "../server/request.h"

/* sessions.c */
void sessions_create(struct http_request *req, struct http_reply *rep);
void sessions_list(struct http_request *req, struct http_reply *rep);
void sessions_get(struct http_request *req, struct http_reply *rep);
void sessions_delete(struct http_request *req, struct http_reply *rep);
void sessions_heartbeat(struct http_request *req, struct http_reply *rep);

/* names.c */
void names_put(struct http_request *req, struct http_reply *rep);
void names_get(struct http_request *req, struct http_reply *rep);
void names_delete(struct http_request *req, struct http_reply *rep);
void names_list(struct http_request *req, struct http_reply *rep);

/* props.c */
void props_put(struct http_request *req, struct http_reply *rep);
void props_get(struct http_request *req, struct http_reply *rep);
void props_delete(struct http_request *req, struct http_reply *rep);
void props_list(struct http_request *req, struct http_reply *rep);

/* groups.c */
void groups_put(struct http_request *req, struct http_reply *rep);
void groups_get(struct http_request *req, struct http_reply *rep);
void groups_delete(struct http_request *req, struct http_reply *rep);
void groups_list(struct http_request *req, struct http_reply *rep);

/* messages.c */
void messages_send(struct http_request *req, struct http_reply *rep);
void messages_receive(struct http_request *req, struct http_reply *rep);
void messages_deliver(struct http_request *req, struct http_reply *rep);

/* The pick named name ("random", "round_robin", "hash"): 400 bad_request
 * for another. */
bool need_pick(struct http_reply *rep, const char *name, enum store_pick *how);

/* A message's target, from the body's "to". */
enum target_kind { T_NAME, T_SESSION, T_PROP, T_GROUP };
struct target {
	enum target_kind kind;
	const char *key; /* decoded, NUL-terminated (points into the parsed body) */
	size_t klen;
	bool pick;       /* a group target with "pick": one member */
	enum store_pick how;
	const char *hash_key;
	size_t hklen;
};

/* Reads "to": exactly one of name, session, prop, group (with an optional
 * pick and hash_key for a group). 400 bad_request or invalid_key. */
bool need_target(const struct json_body *b, struct http_reply *rep, struct target *t);

/* What send and call share: an unknown token is 403; the body is parsed;
 * "to" is read; "body" (*body, NULL when absent) is at most --max-value. */
bool need_message(struct http_request *req, struct http_reply *rep, struct json_body *b, struct target *t,
		  const struct json_member **body);

/* The one session t names (a name's holder, a session, a picked member),
 * or NULL for a broadcast: 404 name_not_found, session_not_found,
 * group_empty answered. *rr is the entry a round-robin pick took (else
 * NULL), to give back with store_group_unpick() when the request fails. */
bool target_single(struct http_request *req, struct http_reply *rep, const struct target *t,
		   struct store_session **to, struct store_entry **rr);

/* calls.c */
void calls_start(struct http_request *req, struct http_reply *rep);
void calls_reply(struct http_request *req, struct http_reply *rep);

/* events.c */
void events_get(struct http_request *req, struct http_reply *rep);

/* ui.c */
void ui_index(struct http_request *req, struct http_reply *rep);
void ui_file(struct http_request *req, struct http_reply *rep);

/* ops.c */
void ops_healthz(struct http_request *req, struct http_reply *rep);
void ops_metrics(struct http_request *req, struct http_reply *rep);
void ops_stats(struct http_request *req, struct http_reply *rep);
void ops_nodes(struct http_request *req, struct http_reply *rep);

/* --- common.c: helpers that answer the error themselves and return false --- */

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define WAIT_MAX_SECONDS 300

/* The caller's session: 401 missing_token without a token, 403 bad_token
 * when it is not a live session's. */
bool need_caller(struct http_request *req, struct http_reply *rep);

/* The session named by the path's {id}: 404 session_not_found when there is
 * none; then, when the token must be that session's, 401 or 403. */
bool need_own_session(struct http_request *req, struct http_reply *rep, struct store_session **out);

/* The path's {key}, decoded into out (STORE_KEY_MAX + 1 bytes): 400 invalid_key. */
bool need_key(struct http_request *req, struct http_reply *rep, char *out, size_t *len);

/* A numeric query parameter (non-negative decimal digits; huge values
 * saturate): *out = dflt when absent; 400 bad_request otherwise. */
bool query_uint(struct http_request *req, struct http_reply *rep, const char *name, uint64_t dflt, uint64_t *out);

/* limit: default 100; 0 or over 1000 means 1000. */
bool query_limit(struct http_request *req, struct http_reply *rep, size_t *out);

/* max: default 100; 0 or over 1000 means 1000. */
bool query_max(struct http_request *req, struct http_reply *rep, size_t *out);

/* wait: seconds, 0 to 300, default 0. */
bool query_wait(struct http_request *req, struct http_reply *rep, unsigned *out);

/* A text query parameter, decoded (with '+' as space) into out (capacity
 * STORE_KEY_MAX + 1), valid UTF-8 without control characters. *present tells
 * whether it was given. 400 bad_request when bad or too long. */
bool query_text(struct http_request *req, struct http_reply *rep, const char *name,
		char *out, size_t *len, bool *present);

/* The request body as a JSON object (empty is {}): 400 bad_request or 503. */
bool need_body(struct http_request *req, struct http_reply *rep, struct json_body *b);

/* What a PUT of a name, a property or a group membership needs: the key
 * from the path, the caller's session and the body's "value" as JSON text
 * ("null" when absent). */
struct put_args {
	char key[STORE_KEY_MAX + 1];
	size_t klen;
	struct json_body body;
	const char *value; /* minified (no white space between tokens) */
	size_t vlen;
	char *minified;    /* what value points at, when it came with a body */
	struct jw w; /* the answer, with room made before the change */
};

/* Fills a, answering 400 invalid_key, 401, 403, 400 bad_request, 413
 * payload_too_large (a value over --max-value) or 503 when it cannot. The
 * answer's buffer is reserved here, before anything changes, so that a
 * change is never followed by a 503. Free with put_args_free() either way. */
bool need_put(struct http_request *req, struct http_reply *rep, struct put_args *a);
void put_args_free(struct put_args *a);

/* Makes room for an answer of n bytes before a change: 503 when it cannot. */
bool need_room(struct http_reply *rep, struct jw *w, size_t n);

/* The key (or group) and limit, prefix and after of a listing: 400 when bad. */
struct list_args {
	char prefix[STORE_KEY_MAX + 1], after[STORE_KEY_MAX + 1];
	size_t plen, alen, limit;
	bool has_after;
};
bool need_list(struct http_request *req, struct http_reply *rep, struct list_args *a);

/* Answers on hot paths are written with jw (server/jw.h). */

/* {"<field>":[  and  ],"next":<last or null>}: a listing page around its items. */
void jw_page_open(struct jw *w, const char *field);
void jw_page_close(struct jw *w, bool more, const char *last, size_t lastlen);

/* "name":"<s>" (s escaped). */
void jw_field(struct jw *w, const char *name, const char *s, size_t n);

/* {"session", "value"} of a property holder or a group member. */
void jw_entry(struct jw *w, const struct store_entry *e);

/* {"<keyfield>": key, "session", "value"}: the answer to a PUT. */
void jw_entry_put(struct jw *w, const struct store_entry *e, const char *keyfield);

/* [jw_entry...] of k's entries in order; [] when k is NULL. */
void jw_entries(struct jw *w, const struct store_key *k);

/* Answers a listing page of keys: {"<field>": [{"<keyfield>": key,
 * "<countfield>": entries}...], "next"}. */
void reply_keys(struct http_reply *rep, const char *field, struct store_key *const *page, size_t n, bool more,
		const char *keyfield, const char *countfield);

/* The body's "ttl": 0 when absent, else a whole number 1..max_ttl: 400 invalid_ttl. */
bool body_ttl(struct http_request *req, struct http_reply *rep, const struct json_body *b, unsigned *ttl);

#endif

/* reply: see reply.h. */
#include "reply.h"

#include <stdlib.h>
#include <string.h>

#include "jw.h"

static const struct {
	int status;
	const char *code;
	const char *message;
} errors[ERR_COUNT] = {
	[ERR_BAD_REQUEST] = { 400, "bad_request", "The request is malformed." },
	[ERR_INVALID_KEY] = { 400, "invalid_key", "A key must be 1 to 512 bytes of UTF-8 with no control characters." },
	[ERR_INVALID_TTL] = { 400, "invalid_ttl", "ttl must be a whole number of seconds from 1 to the server's maximum." },
	[ERR_MISSING_TOKEN] = { 401, "missing_token", "This request needs an X-Session-Token header." },
	[ERR_UNAUTHORIZED] = { 401, "unauthorized", "This server needs Authorization: Bearer <token>." },
	[ERR_READ_ONLY] = { 403, "read_only", "The read token allows reads and the event stream only." },
	[ERR_BAD_TOKEN] = { 403, "bad_token", "The session token is unknown, expired, or not this session's." },
	[ERR_NOT_OWNER] = { 403, "not_owner", "Another session holds this name." },
	[ERR_NOT_FOUND] = { 404, "not_found", "No such route." },
	[ERR_SESSION_NOT_FOUND] = { 404, "session_not_found", "No such session: it never existed, expired, or was deleted." },
	[ERR_NAME_NOT_FOUND] = { 404, "name_not_found", "No session holds this name." },
	[ERR_NOT_HELD] = { 404, "not_held", "The session does not hold this key." },
	[ERR_CALL_NOT_FOUND] = { 404, "call_not_found", "No call waits for this reply: unknown, answered, timed out, or its caller left." },
	[ERR_RECEIVER_GONE] = { 503, "receiver_gone", "The called session ended before it replied." },
	[ERR_CALL_TIMEOUT] = { 504, "call_timeout", "No reply came before timeout_ms." },
	[ERR_GROUP_EMPTY] = { 404, "group_empty", "The group has no members to pick from." },
	[ERR_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed", "This path does not take that method." },
	[ERR_NAME_TAKEN] = { 409, "name_taken", "Another session holds this name." },
	[ERR_PAYLOAD_TOO_LARGE] = { 413, "payload_too_large", "The body or the value is over its limit." },
	[ERR_MAILBOX_FULL] = { 429, "mailbox_full", "The receiver's mailbox is full; nothing was delivered." },
	[ERR_LIMIT_REACHED] = { 503, "limit_reached", "A server limit was reached; try again later." },
	[ERR_NO_MEMORY] = { 503, "limit_reached", "The server is out of memory; nothing was changed." },
	[ERR_SHUTTING_DOWN] = { 503, "shutting_down", "The server is shutting down." },
	[ERR_CLUSTER_UNAVAILABLE] = { 503, "cluster_unavailable", "etcd cannot be reached or has no leader; nothing was changed." },
	[ERR_NODE_UNREACHABLE] = { 503, "node_unreachable", "The node this request belongs to cannot be reached." },
	[ERR_HEADER_TOO_LARGE] = { 431, "header_too_large", "The request head is over the server's limit (about 6.75 KiB)." },
	[ERR_URI_TOO_LONG] = { 414, "uri_too_long", "The request target is over the server's limit (about 6.75 KiB)." },
	[ERR_NOT_IMPLEMENTED] = { 501, "not_implemented", "The only Transfer-Encoding taken is chunked." },
	[ERR_HTTP_VERSION] = { 505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are served." },
	[ERR_INTERNAL] = { 500, "internal_error", "The server could not handle the request." },
};

static const enum api_error store_errors[STORE_RC_COUNT] = {
	[STORE_OK] = ERR_COUNT,
	[STORE_CREATED] = ERR_COUNT,
	[STORE_E_NOMEM] = ERR_NO_MEMORY,
	[STORE_E_LIMIT] = ERR_LIMIT_REACHED,
	[STORE_E_INVALID_TTL] = ERR_INVALID_TTL,
	[STORE_E_SESSION_NOT_FOUND] = ERR_SESSION_NOT_FOUND,
	[STORE_E_NAME_NOT_FOUND] = ERR_NAME_NOT_FOUND,
	[STORE_E_NAME_TAKEN] = ERR_NAME_TAKEN,
	[STORE_E_NOT_OWNER] = ERR_NOT_OWNER,
	[STORE_E_NOT_HELD] = ERR_NOT_HELD,
	[STORE_E_GROUP_EMPTY] = ERR_GROUP_EMPTY,
	[STORE_E_MAILBOX_FULL] = ERR_MAILBOX_FULL,
	[STORE_E_CALL_NOT_FOUND] = ERR_CALL_NOT_FOUND,
	[STORE_E_NOT_RECEIVER] = ERR_BAD_TOKEN,
};

enum api_error reply_error_of(enum store_rc rc)
{
	return (unsigned)rc < STORE_RC_COUNT ? store_errors[rc] : ERR_NO_MEMORY;
}

int reply_error_status(enum api_error e) { return errors[e].status; }
const char *reply_error_code(enum api_error e) { return errors[e].code; }

void http_reply_clear(struct http_reply *rep)
{
	if (!rep->body_static)
		free(rep->body);
	rep->body_static = false;
	rep->body = NULL;
	rep->body_len = 0;
}

/* The last-resort answer when even the error body cannot be allocated. */
static void reply_oom(struct http_reply *rep)
{
	http_reply_clear(rep);
	rep->status = 503;
	rep->content_type = NULL;
}

/* Prints obj (taking it) as the reply's body; false when memory ran out. */
static bool set_json(struct http_reply *rep, int status, cJSON *obj)
{
	char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;

	cJSON_Delete(obj);
	http_reply_clear(rep);
	if (!text)
		return false;
	rep->status = status;
	rep->body = text;
	rep->body_len = strlen(text);
	rep->content_type = NULL;
	return true;
}

void reply_json(struct http_reply *rep, int status, cJSON *obj)
{
	if (!set_json(rep, status, obj))
		reply_error(rep, ERR_NO_MEMORY, NULL);
}

void reply_error(struct http_reply *rep, enum api_error e, const char *message)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "error", errors[e].code) ||
	    !cJSON_AddStringToObject(o, "message", message ? message : errors[e].message)) {
		cJSON_Delete(o);
		reply_oom(rep);
		return;
	}
	if (!set_json(rep, errors[e].status, o))
		reply_oom(rep);
}

void reply_store_error(struct http_reply *rep, enum store_rc rc)
{
	reply_error(rep, reply_error_of(rc), NULL);
}

void reply_empty(struct http_reply *rep, int status)
{
	http_reply_clear(rep);
	rep->status = status;
}

void reply_jw(struct http_reply *rep, int status, struct jw *w)
{
	size_t len;
	char *text = jw_finish(w, &len);

	http_reply_clear(rep);
	if (!text) {
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return;
	}
	rep->status = status;
	rep->body = text;
	rep->body_len = len;
	rep->content_type = NULL;
}

/* reply: JSON answers and the one table of errors (api.md's codes, their
 * HTTP status and a default sentence), including the mapping from store
 * results. */
#ifndef ROLLCALL_REPLY_H
#define ROLLCALL_REPLY_H

#include <cjson/cJSON.h>

#include "request.h"

enum api_error {
	ERR_BAD_REQUEST,
	ERR_INVALID_KEY,
	ERR_INVALID_TTL,
	ERR_MISSING_TOKEN,
	ERR_UNAUTHORIZED,
	ERR_READ_ONLY,
	ERR_BAD_TOKEN,
	ERR_NOT_OWNER,
	ERR_NOT_FOUND,
	ERR_SESSION_NOT_FOUND,
	ERR_NAME_NOT_FOUND,
	ERR_NOT_HELD,
	ERR_CALL_NOT_FOUND,
	ERR_RECEIVER_GONE,
	ERR_CALL_TIMEOUT,
	ERR_GROUP_EMPTY,
	ERR_METHOD_NOT_ALLOWED,
	ERR_NAME_TAKEN,
	ERR_PAYLOAD_TOO_LARGE,
	ERR_MAILBOX_FULL,
	ERR_LIMIT_REACHED,
	ERR_NO_MEMORY,
	ERR_SHUTTING_DOWN,
	ERR_CLUSTER_UNAVAILABLE,
	ERR_NODE_UNREACHABLE,
	ERR_HEADER_TOO_LARGE,
	ERR_URI_TOO_LONG,
	ERR_NOT_IMPLEMENTED,
	ERR_HTTP_VERSION,
	ERR_INTERNAL,
	ERR_COUNT
};

/* The api_error a store result stands for (STORE_OK and STORE_CREATED have none). */
enum api_error reply_error_of(enum store_rc rc);

/* HTTP status and code string of an error. */
int reply_error_status(enum api_error e);
const char *reply_error_code(enum api_error e);

/* Answers {"error", "message"}; message NULL takes the table's sentence. */
void reply_error(struct http_reply *rep, enum api_error e, const char *message);

/* Answers the error a store result stands for. */
void reply_store_error(struct http_reply *rep, enum store_rc rc);

/* Answers obj printed compactly with status; takes ownership of obj. Out of
 * memory (obj NULL included) becomes a 503. */
void reply_json(struct http_reply *rep, int status, cJSON *obj);

struct jw;

/* Answers the text w holds with status (taking it); 503 when the writer ran
 * out of memory. */
void reply_jw(struct http_reply *rep, int status, struct jw *w);

/* Answers status with no body (204). */
void reply_empty(struct http_reply *rep, int status);

#endif

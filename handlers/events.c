/* events: watching the registry. GET /v1/events streams every change as
 * Server-Sent Events (Accept: text/event-stream), or answers a long-poll
 * with JSON. Both read the store's event log from an index on; an index
 * older than the log keeps gets a reset, and the client lists again. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/reply.h"
#include "../server/uri.h"

#define KEEPALIVE_MS 15000       /* a comment this often keeps proxies from closing a quiet stream */
#define STREAM_BATCH (64 * 1024) /* bytes formatted ahead of the socket at most */

static bool is_group_event(enum store_event_type t)
{
	return t == STORE_EV_GROUP_JOINED || t == STORE_EV_GROUP_LEFT;
}

static bool matches(const struct store_event *e, const char *prefix, size_t plen)
{
	if (!plen)
		return true;
	/* session events have no key, so a prefix leaves them out */
	return e->key && e->klen >= plen && !memcmp(e->key, prefix, plen);
}

/* {"index", "type", "session", "key" or "group", "value"}. */
static cJSON *event_json(const struct store_event *e)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddNumberToObject(o, "index", (double)e->index) ||
	    !cJSON_AddStringToObject(o, "type", store_event_type_name(e->type)) ||
	    !cJSON_AddStringToObject(o, "session", e->session) ||
	    (e->key && !cJSON_AddStringToObject(o, is_group_event(e->type) ? "group" : "key", e->key)) ||
	    (e->value && !cJSON_AddRawToObject(o, "value", e->value))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *reset_json(uint64_t index)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddNumberToObject(o, "index", (double)index) || !cJSON_AddStringToObject(o, "type", "reset")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* True when a client that has seen up to after must list again: it missed
 * events no longer kept, or its index is from another history (ahead of
 * ours: the server restarted, and indices began again at 1). */
static bool stale(const struct store *st, uint64_t after)
{
	return after > store_index(st) || (after < store_index(st) && after + 1 < store_event_oldest(st));
}

/* Where to start: ?after=N, else Last-Event-ID, else now. 400 when either is bad. */
static bool start_index(struct http_request *req, struct http_reply *rep, uint64_t *after)
{
	const char *v, *p;
	size_t n;

	if (uri_query_find(req->query, req->query_len, "after", &v, &n))
		return query_uint(req, rep, "after", 0, after);
	*after = store_index(req->app->store);
	if (!req->last_event_id)
		return true;
	for (p = req->last_event_id, *after = 0; *p >= '0' && *p <= '9' && *after < UINT64_MAX / 10; p++)
		*after = *after * 10 + (uint64_t)(*p - '0');
	if (*p || p == req->last_event_id) {
		reply_error(rep, ERR_BAD_REQUEST, "Last-Event-ID must be an event index.");
		return false;
	}
	return true;
}

/* --- the stream --- */

struct ev_stream {
	uint64_t cursor; /* the last index written or passed over */
	char prefix[STORE_KEY_MAX + 1];
	size_t plen;
	char *out; /* formatted and not yet sent: out[off..len) */
	size_t off, len, cap;
	bool ended;
};

static bool out_append(struct ev_stream *es, const char *s, size_t n)
{
	if (es->len + n > es->cap) {
		size_t cap = es->cap ? es->cap : 4096;
		char *nb;
		while (cap < es->len + n)
			cap *= 2;
		nb = realloc(es->out, cap);
		if (!nb)
			return false;
		es->out = nb;
		es->cap = cap;
	}
	memcpy(es->out + es->len, s, n);
	es->len += n;
	return true;
}

/* "id: N\nevent: T\ndata: {...}\n\n" (data is one line: cJSON prints no newline). */
static bool out_event(struct ev_stream *es, uint64_t index, const char *type, cJSON *data)
{
	char *text = data ? cJSON_PrintUnformatted(data) : NULL;
	char head[96];
	int n;
	bool ok;

	cJSON_Delete(data);
	if (!text)
		return false;
	n = snprintf(head, sizeof(head), "id: %llu\nevent: %s\ndata: ", (unsigned long long)index, type);
	ok = out_append(es, head, (size_t)n) && out_append(es, text, strlen(text)) && out_append(es, "\n\n", 2);
	free(text);
	return ok;
}

/* Formats what is new since the cursor, up to a batch. False when out of memory. */
static bool fill(struct store *st, struct ev_stream *es)
{
	uint64_t last = store_index(st);

	if (stale(st, es->cursor)) {
		if (!out_event(es, last, "reset", reset_json(last)))
			return false;
		es->cursor = last;
	}
	while (es->cursor < last && es->len < STREAM_BATCH) {
		const struct store_event *e = store_event_at(st, es->cursor + 1);
		if (e && matches(e, es->prefix, es->plen) &&
		    !out_event(es, e->index, store_event_type_name(e->type), event_json(e)))
			return false;
		es->cursor++;
	}
	return true;
}

static size_t stream_read(struct http_request *req, char *buf, size_t max, bool *wait)
{
	struct ev_stream *es = req->stream_state;
	struct store *st = req->app->store;
	size_t n;

	if (es->off == es->len) {
		es->off = es->len = 0;
		if (es->ended)
			return 0;
		if (!fill(st, es)) {
			es->ended = true; /* out of memory: end it; the client reconnects */
			return 0;
		}
		if (es->len == 0) {
			if (req->wake == STORE_WAKE_SHUTDOWN || req->app->shutting_down)
				return 0;
			if (req->wake == STORE_WAKE_TIMEOUT) {
				out_append(es, ": keep-alive\n\n", 14);
			} else if (store_event_watch(st, req->now + KEEPALIVE_MS, &req->waiter) == STORE_OK) {
				*wait = true;
				return 0;
			} else {
				return 0; /* past --max-waiters: end; the client retries */
			}
		}
	}
	n = es->len - es->off < max ? es->len - es->off : max;
	memcpy(buf, es->out + es->off, n);
	es->off += n;
	return n;
}

static void stream_free(struct http_request *req)
{
	struct ev_stream *es = req->stream_state;

	if (es)
		free(es->out);
	free(es);
	req->stream_state = NULL;
}

static const struct http_stream events_stream = { stream_read, stream_free };

static void start_stream(struct http_request *req, struct http_reply *rep, uint64_t after,
			 const char *prefix, size_t plen)
{
	struct ev_stream *es = calloc(1, sizeof(*es));
	/* The client reconnects a second after a drop. */
	static const char hello[] = "retry: 1000\n\n";

	if (!es || !out_append(es, hello, sizeof(hello) - 1)) {
		if (es)
			free(es->out);
		free(es);
		reply_store_error(rep, STORE_E_NOMEM);
		return;
	}
	es->cursor = after;
	memcpy(es->prefix, prefix, plen);
	es->plen = plen;
	req->stream_state = es;
	rep->stream = &events_stream;
	rep->status = 200;
	rep->content_type = "text/event-stream";
	rep->cache_control = "no-cache";
}

/* --- the long-poll --- */

static void reply_events(struct http_request *req, struct http_reply *rep, uint64_t after,
			 const char *prefix, size_t plen, size_t max, uint64_t *last, size_t *count)
{
	struct store *st = req->app->store;
	uint64_t i, end = store_index(st);
	cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "events") : NULL;

	*count = 0;
	*last = end;
	for (i = after + 1; arr && i <= end && *count < max; i++) {
		const struct store_event *e = store_event_at(st, i);
		cJSON *x;
		if (!e || !matches(e, prefix, plen))
			continue;
		x = event_json(e);
		if (!x || !cJSON_AddItemToArray(arr, x)) {
			cJSON_Delete(x);
			arr = NULL;
			break;
		}
		*last = i;
		(*count)++;
	}
	if (!arr || !cJSON_AddNumberToObject(o, "last", (double)*last)) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
}

/* {"events": [the reset object], "last": index}: list again, then follow. */
static void reply_reset(struct http_reply *rep, uint64_t index)
{
	cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "events") : NULL;
	cJSON *r = reset_json(index);

	if (!arr || !r || !cJSON_AddItemToArray(arr, r)) {
		cJSON_Delete(r);
		cJSON_Delete(o);
		reply_json(rep, 200, NULL);
		return;
	}
	if (!cJSON_AddNumberToObject(o, "last", (double)index)) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
}

void events_get(struct http_request *req, struct http_reply *rep)
{
	struct store *st = req->app->store;
	char prefix[STORE_KEY_MAX + 1];
	size_t plen, max, count;
	uint64_t after, last, deadline;
	unsigned wait;
	bool has_prefix;
	enum store_rc rc;

	if (!start_index(req, rep, &after) || !query_text(req, rep, "prefix", prefix, &plen, &has_prefix) ||
	    !query_wait(req, rep, &wait) || !query_max(req, rep, &max))
		return;
	/* "now" means when the request came, not when it woke */
	if (req->wake)
		after = req->saved;
	req->saved = after;
	if (req->accept && strstr(req->accept, "text/event-stream")) {
		start_stream(req, rep, after, prefix, plen);
		return;
	}
	if (req->wake == STORE_WAKE_SHUTDOWN) {
		reply_error(rep, ERR_SHUTTING_DOWN, NULL);
		return;
	}
	if (stale(st, after)) {
		reply_reset(rep, store_index(st));
		return;
	}
	reply_events(req, rep, after, prefix, plen, max, &last, &count);
	if (count || wait == 0 || req->wake == STORE_WAKE_TIMEOUT || rep->status != 200)
		return;
	/* Nothing (that the prefix lets through) yet: wait for the next change. */
	deadline = req->wake ? req->waiter.timer.deadline : req->now + (uint64_t)wait * 1000;
	if (deadline <= req->now)
		return;
	http_reply_clear(rep);
	rc = store_event_watch(st, deadline, &req->waiter);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		return;
	}
	rep->suspend = true;
}

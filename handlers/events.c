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
static void jw_event(struct jw *w, const struct store_event *e)
{
	jw_lit(w, "{\"index\":");
	jw_u64(w, e->index);
	jw_lit(w, ",\"type\":\"");
	jw_lit(w, store_event_type_name(e->type));
	jw_lit(w, "\",");
	jw_field(w, "session", e->session, STORE_ID_LEN);
	if (e->key) {
		jw_lit(w, ",");
		jw_field(w, is_group_event(e->type) ? "group" : "key", e->key, e->klen);
	}
	if (e->value) {
		jw_lit(w, ",\"value\":");
		jw_raw(w, e->value, e->vlen);
	}
	jw_lit(w, "}");
}

static void jw_reset(struct jw *w, uint64_t index)
{
	jw_lit(w, "{\"index\":");
	jw_u64(w, index);
	jw_lit(w, ",\"type\":\"reset\"}");
}

/* True when a client that has seen up to after must list again: it missed
 * events no longer kept, or (on a single node) its index is from another
 * history (ahead of ours: the server restarted, and indices began again
 * at 1). In a cluster an index ahead of this node's copy is one it has not
 * reached yet: the client waits for it. */
static bool stale(const struct http_request *req, uint64_t after)
{
	const struct store *st = req->app->store;

	return (after > store_index(st) && (!req->app->cluster || req->beyond)) || store_event_missed(st, after);
}

/* The end (seq) of the run of events sharing the index of the event at
 * seq: an answer never splits an index. */
static uint64_t index_end(const struct store *st, uint64_t seq, uint64_t end)
{
	uint64_t index = store_event_get(st, seq)->index;

	while (++seq < end && store_event_get(st, seq)->index == index)
		;
	return seq;
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
	size_t plen;
	struct jw out;   /* formatted and not yet sent: out.buf[off..out.len) */
	size_t off;
	uint64_t last_sent; /* when the client last got a byte (for the keep-alive) */
	bool ended;
	char prefix[]; /* plen bytes + NUL */
};

/* "id: N\nevent: T\ndata: " ... "\n\n" around one data line (JSON has no
 * raw newline). Only the last event of an index carries its id, so a
 * stream cut inside an index resumes with the whole index again. */
static void out_head(struct jw *w, uint64_t index, bool with_id, const char *type)
{
	if (with_id) {
		jw_lit(w, "id: ");
		jw_u64(w, index);
		jw_lit(w, "\n");
	}
	jw_lit(w, "event: ");
	jw_lit(w, type);
	jw_lit(w, "\ndata: ");
}

/* Formats what is new since the cursor, up to a batch. False when out of memory. */
static bool fill(struct http_request *req, struct ev_stream *es)
{
	struct store *st = req->app->store;
	uint64_t last = store_index(st), seq, end = store_event_end(st);

	if (stale(req, es->cursor)) {
		out_head(&es->out, last, true, "reset");
		jw_reset(&es->out, last);
		jw_lit(&es->out, "\n\n");
		es->cursor = last;
	}
	for (seq = store_event_seek(st, es->cursor); seq < end && es->out.len < STREAM_BATCH;) {
		uint64_t stop = index_end(st, seq, end), lastm = stop, i;
		for (i = seq; i < stop; i++) /* the last event of the index that the prefix lets through */
			if (matches(store_event_get(st, i), es->prefix, es->plen))
				lastm = i;
		for (i = seq; i < stop; i++) {
			const struct store_event *e = store_event_get(st, i);
			if (!matches(e, es->prefix, es->plen))
				continue;
			out_head(&es->out, e->index, i == lastm, store_event_type_name(e->type));
			jw_event(&es->out, e);
			jw_lit(&es->out, "\n\n");
		}
		es->cursor = store_event_get(st, seq)->index;
		seq = stop;
	}
	return !es->out.oom;
}

static size_t stream_read(struct http_request *req, char *buf, size_t max, bool *wait)
{
	struct ev_stream *es = req->stream_state;
	struct store *st = req->app->store;
	size_t n;

	if (es->off == es->out.len) {
		es->off = es->out.len = 0;
		if (es->ended)
			return 0;
		if (!fill(req, es)) {
			es->ended = true; /* out of memory: end it; the client reconnects */
			return 0;
		}
		if (es->out.len == 0) {
			if (req->wake == STORE_WAKE_SHUTDOWN || req->app->shutting_down)
				return 0;
			/* A keep-alive KEEPALIVE_MS after the last byte sent, however
			 * many changes the prefix has let pass meanwhile. */
			if (req->now >= es->last_sent + KEEPALIVE_MS) {
				jw_lit(&es->out, ": keep-alive\n\n");
			} else if (store_event_watch(st, es->last_sent + KEEPALIVE_MS, &req->waiter, es->prefix, es->plen) ==
				   STORE_OK) {
				*wait = true;
				return 0;
			} else {
				return 0; /* past --max-waiters: end; the client retries */
			}
			if (es->out.oom)
				return 0;
		}
	}
	n = es->out.len - es->off < max ? es->out.len - es->off : max;
	memcpy(buf, es->out.buf + es->off, n);
	es->off += n;
	es->last_sent = req->now;
	return n;
}

static void stream_free(struct http_request *req)
{
	struct ev_stream *es = req->stream_state;

	if (es)
		free(es->out.buf);
	free(es);
	req->stream_state = NULL;
}

static const struct http_stream events_stream = { stream_read, stream_free };

static void start_stream(struct http_request *req, struct http_reply *rep, uint64_t after,
			 const char *prefix, size_t plen)
{
	struct ev_stream *es = calloc(1, sizeof(*es) + plen + 1);

	if (!es) {
		reply_store_error(rep, STORE_E_NOMEM);
		return;
	}
	es->out.small = true;
	jw_lit(&es->out, "retry: 1000\n\n"); /* the client reconnects a second after a drop */
	if (es->out.oom) {
		free(es);
		reply_store_error(rep, STORE_E_NOMEM);
		return;
	}
	es->cursor = after;
	es->last_sent = req->now;
	memcpy(es->prefix, prefix, plen);
	es->plen = plen;
	req->stream_state = es;
	rep->stream = &events_stream;
	rep->status = 200;
	rep->content_type = "text/event-stream";
	rep->cache_control = "no-cache";
}

/* --- the long-poll --- */

/* {"events": [up to max after `after`, that the prefix lets through, and
 * the rest of the last one's index], "last"}. */
static void reply_events(struct http_request *req, struct http_reply *rep, uint64_t after,
			 const char *prefix, size_t plen, size_t max, size_t *count)
{
	struct store *st = req->app->store;
	uint64_t seq, end = store_event_end(st), last = store_index(st);
	struct jw w = { 0 };

	*count = 0;
	jw_lit(&w, "{\"events\":[");
	for (seq = store_event_seek(st, after); seq < end && *count < max;) {
		uint64_t stop = index_end(st, seq, end);
		for (; seq < stop; seq++) {
			const struct store_event *e = store_event_get(st, seq);
			if (!matches(e, prefix, plen))
				continue;
			if (*count)
				jw_lit(&w, ",");
			jw_event(&w, e);
			last = e->index;
			(*count)++;
		}
	}
	jw_lit(&w, "],\"last\":");
	jw_u64(&w, last);
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
}

static void free_state(struct http_request *req)
{
	free(req->state);
	req->state = NULL;
}

/* {"events": [the reset object], "last": index}: list again, then follow. */
static void reply_reset(struct http_reply *rep, uint64_t index)
{
	struct jw w = { 0 };

	jw_lit(&w, "{\"events\":[");
	jw_reset(&w, index);
	jw_lit(&w, "],\"last\":");
	jw_u64(&w, index);
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
}

void events_get(struct http_request *req, struct http_reply *rep)
{
	struct store *st = req->app->store;
	char prefix[STORE_KEY_MAX + 1];
	size_t plen, max, count;
	uint64_t after, deadline;
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
	if (stale(req, after)) {
		reply_reset(rep, store_index(st));
		return;
	}
	reply_events(req, rep, after, prefix, plen, max, &count);
	if (count || wait == 0 || req->wake == STORE_WAKE_TIMEOUT || rep->status != 200)
		return;
	/* Nothing (that the prefix lets through) yet: wait for the next change. */
	deadline = req->wake ? req->waiter.timer.deadline : req->now + (uint64_t)wait * 1000;
	if (deadline <= req->now)
		return;
	http_reply_clear(rep);
	/* Nothing up to here let through: on waking, look only at what is new
	 * (not at everything since the request came, on every change). */
	if (store_index(st) > req->saved)
		req->saved = store_index(st);
	if (!req->state && plen) { /* the filter must outlive this call: the waiter keeps it */
		req->state = malloc(plen);
		if (!req->state) {
			reply_store_error(rep, STORE_E_NOMEM);
			return;
		}
		memcpy(req->state, prefix, plen);
		req->cleanup = free_state;
	}
	rc = store_event_watch(st, deadline, &req->waiter, req->state, plen);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		return;
	}
	rep->suspend = true;
}

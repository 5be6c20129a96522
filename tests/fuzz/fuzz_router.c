/* fuzz_router: a libFuzzer target that runs sequences of HTTP requests
 * through router_dispatch() and the handlers with no socket, the way
 * server/daemon.c drives them, against one store that lives across inputs.
 *
 * Build and run: `make fuzz` (see tests/fuzz/README). Reproduce one input:
 *   build/fuzz/fuzz_router FILE            (state starts fresh for a file)
 *   ROLLCALL_FUZZ_TRACE=1 build/fuzz/fuzz_router FILE   (prints each exchange)
 *
 * --- The input format (see tests/fuzz/README for examples) ---
 *
 * An input is a list of records separated by a line holding exactly "==",
 * that is the four bytes "\n==\n". A record is one of:
 *
 *   METHOD TARGET             an HTTP request; TARGET is path?query, raw
 *   Header: value             zero or more header lines
 *                             a blank line, then the body: every byte up to
 *   body...                   the record's end (no blank line: no body)
 *
 *   TICK ms                   move the clock ms forward (no request)
 *   CANCEL k                  the client of pending request slot k % 8 goes
 *                             away (the request is completed, see below)
 *   SHUTDOWN                  as SIGTERM: shutting_down, store_wake_all();
 *                             the store is thrown away at the input's end
 *   AUTH on | AUTH off        --auth-token full-secret --read-token
 *                             read-secret, or none (off at each input's start)
 *
 * Headers passed to the handler (names case-insensitive): X-Session-Token,
 * Accept, Last-Event-ID, Authorization, If-None-Match. Headers for the
 * harness: "@advance: ms" (clock step before this request, default 0),
 * "@reads: n" (reads of a streamed answer before the client leaves, default
 * 3, at most 64), "@readmax: n" (bytes asked per read, default 16384, 1 to
 * 65536), "@late: ms" (the clock moves ms further after the tick, so the
 * request sees deadlines that store_tick() has not run yet, as when the
 * daemon serves a request a while after its loop's tick), "@defer: 1" (the
 * requests woken so far are not resumed before this one, but after it: as
 * when MHD serves another connection before a resumed one). A record's lines
 * end with "\n"; header values and the target end at a NUL byte, as C
 * strings from libmicrohttpd do; the body may hold any byte.
 *
 * In the target, header values and the body, "$S<c>" becomes the id and
 * "$T<c>" the token of a session created earlier (by this input or an
 * earlier one: the last 16 201 answers of POST /v1/sessions are kept), and
 * "$C<c>" a call id seen earlier in an answer ("reply_to" of a received
 * message; the last 8 are kept): c is a digit or a-f, 0 the newest, 1 the
 * one before... When there is none yet they become a well-formed id, token
 * or call id that nothing has.
 *
 * --- What each record does ---
 *
 * Every record first moves the fake clock (by @advance or TICK's ms, at most
 * 10,000,000) and calls store_tick() until nothing more is due (a small
 * budget, so the "call again" path runs), then (unless @defer) resumes every
 * request whose waiter the store woke since (router_dispatch() again with
 * req.wake set, or stream->read() again for a stream), as the daemon's loop
 * does. Then a request takes a free slot of 8 (the oldest pending one is
 * cancelled when none is free) and is dispatched. An answer is checked and
 * the request completed. rep.suspend leaves it parked in its slot until
 * woken or cancelled. rep.stream is read up to @reads times (a read that
 * waits parks it, and a wake reads on); then the client leaves. Completing
 * a request is what on_completed does: store_waiter_cancel(), req.cleanup()
 * when set (a call's state), stream->free() for a stream. At the input's
 * end woken requests are resumed, the rest cancelled, and no waiter and no
 * call may be left pending in the store.
 *
 * Checks (abort() so libFuzzer reports): every answer whose body claims JSON
 * (content_type NULL or "...json...") passes json_check(); every line of an
 * event stream is an SSE line we write (id:, event:, retry:, a comment, or
 * blank) and every "data:" line is strict JSON; a status is 100..599; a
 * suspend has its waiter parked, an answer has not; a stream read returns at
 * most max bytes and waits only with its waiter parked; a wake only comes
 * to a request that waits. ASan/UBSan/LSan do the rest.
 *
 * The store, the clock, the session and call tables and the metrics persist
 * across inputs (so state builds up); ROLLCALL_FUZZ_FRESH=1 gives each input
 * a new store, freed at its end (to see whether a crash needs earlier
 * inputs; libFuzzer's own per-input leak check is exact then). The store is
 * also renewed every 20,000 inputs and after a SHUTDOWN, and every 5,000
 * inputs LeakSanitizer looks for lost blocks (the persistent state is
 * reachable, so libFuzzer's per-input check alone would miss or blur
 * leaks). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "../../handlers/handlers.h"
#include "../../server/config.h"
#include "../../server/json.h"
#include "../../server/metrics.h"
#include "../../server/reply.h"
#include "../../server/request.h"
#include "../../server/router.h"
#include "../../store/store.h"

#define T0 1000000u            /* ms: where the clock starts */
#define MAX_ADVANCE 10000000u  /* ms per record, more than max_ttl */
#define TICK_BUDGET 3
#define NSESS 16
#define NPEND 8
#define NCALLS 8
#define MAX_READS 64
#define SSE_LINE_MAX (1u << 20)
#define RENEW_EVERY 20000
#define LEAK_CHECK_EVERY 5000

/* LeakSanitizer's check now (the persistent store is reachable: only lost
 * blocks count); weak, so that a build without it still links. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));
#define AUTH_FULL "full-secret"
#define AUTH_READ "read-secret"

enum hdr { H_TOKEN, H_ACCEPT, H_LAST_EVENT_ID, H_AUTHORIZATION, H_IF_NONE_MATCH, H_COUNT };

static const char *const hdr_names[H_COUNT] = {
	"X-Session-Token", "Accept", "Last-Event-ID", "Authorization", "If-None-Match",
};

/* The SSE checker's state: the line being read. */
struct sse {
	char *line;
	size_t len, cap;
	bool after_cr; /* the last byte was a CR: a following LF ends nothing */
	bool too_long; /* a line over SSE_LINE_MAX: no longer checked */
};

/* One request, alive from its dispatch to its completion. */
struct pend {
	bool used;
	bool streaming;   /* answered with a stream: reads go on */
	bool woken;       /* its waiter woke; it waits for the loop to resume it */
	bool waited;      /* was suspended at some point (metrics) */
	unsigned reads_left;
	size_t read_max;
	char *target, *body, *hdr[H_COUNT];
	struct sse sse;
	struct http_request req;
};

static struct {
	bool started;
	struct config cfg;
	struct store_config sc;
	struct app app;
	struct metrics metrics;
	uint64_t rng, now;
	char ids[NSESS][STORE_ID_LEN + 1], toks[NSESS][STORE_TOKEN_LEN + 1];
	size_t nsess; /* sessions recorded so far (the table is a ring) */
	char calls[NCALLS][STORE_CALL_ID_LEN + 1];
	size_t ncalls; /* call ids seen in answers so far (a ring too) */
	struct pend pend[NPEND];
	size_t evict;
	unsigned long inputs;
	bool fresh, trace, shutdown;
} F;

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

static void die(const char *what, const struct pend *p, const char *text, size_t n)
{
	fprintf(stderr, "fuzz_router: BUG: %s\n", what);
	if (p && p->target)
		fprintf(stderr, "  request: %s\n", p->target);
	if (text)
		fprintf(stderr, "  text (%zu bytes): %.*s\n", n, (int)(n > 4096 ? 4096 : n), text);
	abort();
}

/* --- the store --- */

static void fake_random(void *ctx, void *buf, size_t len)
{
	uint64_t *s = ctx;
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		p[i] = (unsigned char)(*s >> 32);
	}
}

static void on_expired(void *ctx, const struct store_session *s)
{
	(void)ctx;
	if (!s || strlen(s->id) != STORE_ID_LEN)
		die("expired callback with a bad session", NULL, NULL, 0);
}

static void store_start(void)
{
	config_defaults(&F.cfg);
	/* small limits, so that fuzzing reaches them */
	F.cfg.max_value = 256;
	F.cfg.max_sessions = 32;
	F.cfg.max_keys_per_session = 8;
	F.cfg.max_queue = 4;
	F.cfg.max_waiters = 6;
	F.cfg.event_buffer = 32;
	memset(&F.sc, 0, sizeof(F.sc));
	F.sc.default_ttl = F.cfg.default_ttl;
	F.sc.max_ttl = F.cfg.max_ttl;
	F.sc.max_sessions = F.cfg.max_sessions;
	F.sc.max_keys_per_session = F.cfg.max_keys_per_session;
	F.sc.max_queue = F.cfg.max_queue;
	F.sc.max_waiters = F.cfg.max_waiters;
	F.sc.event_buffer = F.cfg.event_buffer;
	F.sc.event_bytes = 4096;
	F.sc.expired = on_expired;
	F.sc.random = fake_random;
	F.sc.random_ctx = &F.rng;
	F.rng = 0x9e3779b97f4a7c15ULL;
	memset(&F.app, 0, sizeof(F.app));
	memset(&F.metrics, 0, sizeof(F.metrics));
	F.app.cfg = &F.cfg;
	F.app.metrics = &F.metrics;
	F.app.store = store_new(&F.sc);
	if (!F.app.store)
		die("store_new failed", NULL, NULL, 0);
	F.now = T0;
	F.nsess = 0;
	F.ncalls = 0;
	F.shutdown = false;
	F.started = true;
}

static void store_stop(void)
{
	if (F.started)
		store_free(F.app.store);
	F.app.store = NULL;
	F.started = false;
}

/* Moves the clock and runs what is due, in small budgets. */
static void advance(uint64_t ms)
{
	F.now += ms > MAX_ADVANCE ? MAX_ADVANCE : ms;
	while (store_tick(F.app.store, F.now, TICK_BUDGET) == TICK_BUDGET)
		;
}

/* --- the session table --- */

static void remember_session(const char *body, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(body, len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(o, "token");

	if (cJSON_IsString(id) && cJSON_IsString(tok) && strlen(id->valuestring) == STORE_ID_LEN &&
	    strlen(tok->valuestring) == STORE_TOKEN_LEN) {
		memcpy(F.ids[F.nsess % NSESS], id->valuestring, STORE_ID_LEN + 1);
		memcpy(F.toks[F.nsess % NSESS], tok->valuestring, STORE_TOKEN_LEN + 1);
		F.nsess++;
	} else {
		die("201 from POST /v1/sessions without an id and a token", NULL, body, len);
	}
	cJSON_Delete(o);
}

/* Every "reply_to":"<call id>" in an answer: a call a later record may answer. */
static void remember_calls(const char *body, size_t len)
{
	static const char pat[] = "\"reply_to\":\"";
	const size_t pl = sizeof(pat) - 1;
	size_t i, j;

	for (i = 0; i + pl + STORE_CALL_ID_LEN < len; i++) {
		if (memcmp(body + i, pat, pl))
			continue;
		for (j = 0; j < STORE_CALL_ID_LEN; j++) {
			char c = body[i + pl + j];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				break;
		}
		if (j < STORE_CALL_ID_LEN || body[i + pl + j] != '"')
			continue;
		memcpy(F.calls[F.ncalls % NCALLS], body + i + pl, STORE_CALL_ID_LEN);
		F.calls[F.ncalls % NCALLS][STORE_CALL_ID_LEN] = '\0';
		F.ncalls++;
	}
}

/* The id (S) or token (T) of the c-th newest session recorded, or the c-th
 * newest call id seen (C). */
static const char *session_ref(char kind, unsigned char c)
{
	size_t n = kind == 'C' ? F.ncalls : F.nsess, ring = kind == 'C' ? NCALLS : NSESS;
	size_t have = n < ring ? n : ring, back, at;

	if (!have)
		return kind == 'S' ? "00000000000000ff" : "000000000000000000000000000000ff";
	back = (c >= '0' && c <= '9') ? (size_t)(c - '0') : (size_t)(c - 'a' + 10);
	at = (n - 1 - back % have) % ring;
	return kind == 'C' ? F.calls[at] : kind == 'S' ? F.ids[at] : F.toks[at];
}

/* s[0..n) with $S<c> and $T<c> replaced: malloc'd, NUL-terminated, *out_len
 * without the NUL. */
static char *subst(const char *s, size_t n, size_t *out_len)
{
	size_t cap = n + 1, len = 0, i;
	char *out;

	for (i = 0; i + 2 < n; i++)
		if (s[i] == '$' && (s[i + 1] == 'S' || s[i + 1] == 'T' || s[i + 1] == 'C'))
			cap += STORE_TOKEN_LEN;
	out = malloc(cap);
	if (!out)
		abort();
	for (i = 0; i < n; i++) {
		if (s[i] == '$' && i + 2 < n && (s[i + 1] == 'S' || s[i + 1] == 'T' || s[i + 1] == 'C')) {
			unsigned char d = (unsigned char)s[i + 2];
			if ((d >= '0' && d <= '9') || (d >= 'a' && d <= 'f')) {
				const char *r = session_ref(s[i + 1], d);
				size_t rl = strlen(r);
				memcpy(out + len, r, rl);
				len += rl;
				i += 2;
				continue;
			}
		}
		out[len++] = s[i];
	}
	out[len] = '\0';
	*out_len = len;
	return out;
}

/* --- the SSE checker --- */

static bool digits(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void sse_line(const struct pend *p, const char *l, size_t n)
{
	const char *why = NULL;

	if (n == 0 || l[0] == ':')
		return; /* end of an event, or a comment */
	if (n >= 6 && !memcmp(l, "data: ", 6)) {
		if (!json_check(l + 6, n - 6, JSON_MAX_DEPTH, &why))
			die("an event stream's data line is not strict JSON", p, l, n);
		return;
	}
	if (n >= 4 && !memcmp(l, "id: ", 4) && digits(l + 4, n - 4))
		return;
	if (n >= 7 && !memcmp(l, "retry: ", 7) && digits(l + 7, n - 7))
		return;
	if (n > 7 && !memcmp(l, "event: ", 7)) {
		size_t i;
		for (i = 7; i < n; i++)
			if (!((l[i] >= 'a' && l[i] <= 'z') || l[i] == '_'))
				die("an event stream's event line has a bad type", p, l, n);
		return;
	}
	die("an event stream has a line that is not one we write (a data line broken by a raw CR or LF?)", p, l, n);
}

/* SSE lines end at CRLF, LF or CR (the EventSource rules). */
static void sse_feed(struct pend *p, const char *buf, size_t n)
{
	struct sse *s = &p->sse;
	size_t i;

	for (i = 0; i < n; i++) {
		char c = buf[i];
		if (c == '\n' && s->after_cr) {
			s->after_cr = false;
			continue;
		}
		s->after_cr = c == '\r';
		if (c == '\n' || c == '\r') {
			if (!s->too_long)
				sse_line(p, s->line, s->len);
			s->len = 0;
			s->too_long = false;
			continue;
		}
		if (s->too_long)
			continue;
		if (s->len + 1 > s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 256;
			char *nl;
			if (cap > SSE_LINE_MAX) {
				s->too_long = true;
				continue;
			}
			nl = realloc(s->line, cap);
			if (!nl)
				abort();
			s->line = nl;
			s->cap = cap;
		}
		s->line[s->len++] = c;
	}
}

/* --- requests --- */

static void on_wake(struct store_waiter *w, enum store_wake why)
{
	struct pend *p = container_of(w, struct pend, req.waiter);

	if (!p->used || p->woken)
		die("the store woke a waiter whose request is not waiting", p, NULL, 0);
	if (why < STORE_WAKE_FIRED || why > STORE_WAKE_GONE)
		die("a wake with an unknown reason", p, NULL, 0);
	p->req.wake = why;
	p->woken = true;
}

/* on_completed: the request ends, however it ends. */
static void complete(struct pend *p)
{
	size_t i;

	store_waiter_cancel(F.app.store, &p->req.waiter);
	if (p->req.cleanup)
		p->req.cleanup(&p->req);
	if (p->req.stream) {
		p->req.stream->free(&p->req);
		F.metrics.streams_open--;
	}
	if (p->streaming && p->sse.len && !p->sse.too_long && F.trace)
		fprintf(stderr, "  (stream ended mid-line)\n");
	free(p->target);
	free(p->body);
	for (i = 0; i < H_COUNT; i++)
		free(p->hdr[i]);
	free(p->sse.line);
	memset(p, 0, sizeof(*p));
}

static bool claims_json(const struct http_reply *rep)
{
	return !rep->content_type || strstr(rep->content_type, "json");
}

static void check_answer(struct pend *p, const struct http_reply *rep)
{
	const char *why = NULL;

	if (rep->status < 100 || rep->status > 599)
		die("an answer without a valid status", p, rep->body, rep->body ? rep->body_len : 0);
	if (store_waiter_parked(&p->req.waiter))
		die("an answer (not a suspend) left the request's waiter parked", p, NULL, 0);
	if (rep->body && !rep->body_static && claims_json(rep) &&
	    !json_check(rep->body, rep->body_len, JSON_MAX_DEPTH, &why)) {
		fprintf(stderr, "fuzz_router: json_check: %s\n", why ? why : "?");
		die("an answer that claims JSON is not strict JSON", p, rep->body, rep->body_len);
	}
	if (rep->body && rep->body_static && claims_json(rep) &&
	    !json_check(rep->body, rep->body_len, JSON_MAX_DEPTH, &why))
		die("a static answer that claims JSON is not strict JSON", p, rep->body, rep->body_len);
	if ((rep->status == 204 || rep->status == 304) && rep->body && rep->body_len)
		die("a 204 or 304 with a body", p, rep->body, rep->body_len);
	if (rep->stream && (rep->status != 200 || !rep->content_type))
		die("a streamed answer that is not a 200 with a content type", p, NULL, 0);
	if (rep->status == 405 && !rep->allow)
		die("a 405 without Allow", p, NULL, 0);
	if (rep->status == 401 && !rep->www_authenticate && rep->body &&
	    strstr(rep->body, "\"unauthorized\""))
		die("a 401 unauthorized without WWW-Authenticate", p, NULL, 0);
}

/* The daemon's stream_reader, called until the client has read enough,
 * the stream ends, or it waits. */
static void pump(struct pend *p)
{
	char *buf = malloc(p->read_max); /* exactly max: a longer write is caught */

	if (!buf)
		abort();
	while (p->reads_left) {
		bool wait = false;
		size_t n;

		p->req.now = F.now;
		n = p->req.stream->read(&p->req, buf, p->read_max, &wait);
		p->req.wake = 0;
		if (n > p->read_max)
			die("a stream read returned more than max", p, NULL, 0);
		if (n) {
			if (F.trace)
				fprintf(stderr, "  stream: %.*s", (int)n, buf);
			sse_feed(p, buf, n);
			p->reads_left--;
			continue;
		}
		if (!wait)
			break; /* the end of the stream */
		if (!store_waiter_parked(&p->req.waiter))
			die("a stream read waits without a parked waiter (it would hang)", p, NULL, 0);
		if (p->woken)
			die("a stream read waits on a waiter that already woke", p, NULL, 0);
		p->waited = true;
		free(buf);
		return;
	}
	free(buf);
	complete(p); /* the end, or the client has read enough and leaves */
}

/* on_access's dispatch (first time or resumed) and what follows. */
static void dispatch(struct pend *p)
{
	struct http_reply rep;

	memset(&rep, 0, sizeof(rep));
	p->req.now = F.now;
	router_dispatch(&p->req, &rep);
	if (rep.suspend) {
		http_reply_clear(&rep);
		if (!store_waiter_parked(&p->req.waiter))
			die("a handler suspends without a parked waiter (it would hang)", p, NULL, 0);
		if (p->woken)
			die("a handler suspends on a waiter that already woke", p, NULL, 0);
		if (rep.stream)
			die("a handler both suspends and streams", p, NULL, 0);
		p->waited = true;
		if (F.trace)
			fprintf(stderr, "< suspended\n");
		return;
	}
	if (F.trace)
		fprintf(stderr, "< %d %.*s\n", rep.status, rep.body && claims_json(&rep) ? (int)rep.body_len : 0,
			rep.body ? rep.body : "");
	check_answer(p, &rep);
	metrics_record(&F.metrics, p->req.route, rep.status, p->waited, 0.0002);
	if (rep.status == 201 && p->req.method == HTTP_POST && p->req.route != SIZE_MAX &&
	    !strcmp(router_route_name(p->req.route), "/v1/sessions") && rep.body)
		remember_session(rep.body, rep.body_len);
	if (rep.body && claims_json(&rep))
		remember_calls(rep.body, rep.body_len);
	if (rep.stream) {
		p->req.stream = rep.stream;
		F.metrics.streams_open++;
		http_reply_clear(&rep);
		p->streaming = true;
		pump(p);
		return;
	}
	http_reply_clear(&rep);
	complete(p);
}

/* The loop resumes what woke: a request runs again, a stream reads on. */
static void resume_woken(void)
{
	int pass, i;
	bool any = true;

	for (pass = 0; pass < 16 && any; pass++) {
		any = false;
		for (i = 0; i < NPEND; i++) {
			struct pend *p = &F.pend[i];
			if (!p->used || !p->woken)
				continue;
			any = true;
			p->woken = false;
			if (F.trace)
				fprintf(stderr, "~ resume slot %d (wake %d): %s\n", i, (int)p->req.wake, p->target);
			if (p->streaming)
				pump(p);
			else
				dispatch(p);
		}
	}
}

static struct pend *free_slot(void)
{
	struct pend *p;
	int i;

	for (i = 0; i < NPEND; i++)
		if (!F.pend[i].used)
			return &F.pend[i];
	p = &F.pend[F.evict++ % NPEND]; /* all busy: the oldest client gives up */
	complete(p);
	return p;
}

/* --- parsing --- */

static uint64_t number(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	while (i < n && s[i] == ' ')
		i++;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		v = v > UINT64_MAX / 20 ? UINT64_MAX / 2 : v * 10 + (uint64_t)(s[i] - '0');
	return v;
}

static const char *find_nl(const char *p, const char *end)
{
	const char *q = memchr(p, '\n', (size_t)(end - p));

	return q ? q : end;
}

static bool starts(const char *p, size_t n, const char *word)
{
	size_t w = strlen(word);

	return n >= w && !memcmp(p, word, w);
}

/* A C string (ends at the first NUL, as from libmicrohttpd) with
 * substitutions, exactly sized. */
static char *cstring(const char *s, size_t n)
{
	size_t len;
	const char *nul = memchr(s, '\0', n);
	char *t = subst(s, nul ? (size_t)(nul - s) : n, &len);
	char *out = malloc(len + 1);

	if (!out)
		abort();
	memcpy(out, t, len + 1);
	free(t);
	return out;
}

static void request(const char *cmd, size_t cn, const char *p, const char *end)
{
	const char *sp = memchr(cmd, ' ', cn);
	char method[16] = "";
	const char *hval[H_COUNT] = { 0 };
	size_t hlen[H_COUNT] = { 0 };
	const char *body = NULL;
	size_t blen = 0, mlen = sp ? (size_t)(sp - cmd) : cn, i;
	uint64_t adv = 0, late = 0, reads = 3, readmax = 16384;
	bool defer = false;
	struct pend *slot;
	char *q;

	if (mlen < sizeof(method) && !memchr(cmd, '\0', mlen))
		memcpy(method, cmd, mlen); /* else "": no method we know */
	/* header lines up to a blank line */
	while (p < end) {
		const char *le = find_nl(p, end), *colon, *v;
		size_t ln = (size_t)(le - p);
		if (ln == 0) {
			body = le + 1;
			blen = (size_t)(end - body);
			break;
		}
		colon = memchr(p, ':', ln);
		if (colon) {
			size_t nn = (size_t)(colon - p);
			v = colon + 1;
			while (v < le && *v == ' ')
				v++;
			for (i = 0; i < H_COUNT; i++) {
				if (strlen(hdr_names[i]) == nn && !strncasecmp(p, hdr_names[i], nn)) {
					hval[i] = v;
					hlen[i] = (size_t)(le - v);
				}
			}
			if (nn == 8 && !memcmp(p, "@advance", 8))
				adv = number(v, (size_t)(le - v));
			else if (nn == 6 && !memcmp(p, "@reads", 6))
				reads = number(v, (size_t)(le - v));
			else if (nn == 8 && !memcmp(p, "@readmax", 8))
				readmax = number(v, (size_t)(le - v));
			else if (nn == 5 && !memcmp(p, "@late", 5))
				late = number(v, (size_t)(le - v));
			else if (nn == 6 && !memcmp(p, "@defer", 6))
				defer = true;
		}
		p = le < end ? le + 1 : end;
	}
	advance(adv);
	if (!defer)
		resume_woken();
	/* the request comes in a little after the loop's tick: what fell due
	 * since is found expired by the store's lookups, not by the tick */
	F.now += late > MAX_ADVANCE ? MAX_ADVANCE : late;

	slot = free_slot();
	slot->used = true;
	slot->reads_left = (unsigned)(reads > MAX_READS ? MAX_READS : reads);
	slot->read_max = readmax < 1 ? 1 : readmax > 65536 ? 65536 : (size_t)readmax;
	slot->target = cstring(sp ? sp + 1 : cmd + cn, sp ? (size_t)(cmd + cn - sp - 1) : 0);
	for (i = 0; i < H_COUNT; i++)
		if (hval[i])
			slot->hdr[i] = cstring(hval[i], hlen[i]);
	if (body && blen) {
		size_t n;
		char *t = subst(body, blen, &n);
		slot->body = malloc(n ? n : 1); /* exactly the body: no NUL after it, as in the daemon */
		if (!slot->body)
			abort();
		memcpy(slot->body, t, n);
		free(t);
		blen = n;
	} else {
		blen = 0;
	}

	/* as on_uri and on_access fill it */
	memset(&slot->req, 0, sizeof(slot->req));
	slot->req.app = &F.app;
	slot->req.route = SIZE_MAX;
	slot->req.waiter.wake = on_wake;
	slot->req.waiter.timer.idx = TIMER_IDLE;
	slot->req.path = slot->target;
	q = strchr(slot->target, '?');
	if (q) {
		slot->req.path_len = (size_t)(q - slot->target);
		slot->req.query = q + 1;
		slot->req.query_len = strlen(q + 1);
	} else {
		slot->req.path_len = strlen(slot->target);
	}
	slot->req.method = router_method(method);
	slot->req.token = slot->hdr[H_TOKEN];
	slot->req.accept = slot->hdr[H_ACCEPT];
	slot->req.last_event_id = slot->hdr[H_LAST_EVENT_ID];
	slot->req.authorization = slot->hdr[H_AUTHORIZATION];
	slot->req.if_none_match = slot->hdr[H_IF_NONE_MATCH];
	slot->req.body = blen ? slot->body : "";
	slot->req.body_len = blen;
	if (F.trace)
		fprintf(stderr, "> %s %s (now %llu)\n", method, slot->target, (unsigned long long)F.now);
	dispatch(slot);
}

static void record(const char *p, const char *end)
{
	const char *le = find_nl(p, end);
	size_t cn = (size_t)(le - p);
	const char *rest = le < end ? le + 1 : end;

	if (starts(p, cn, "TICK")) {
		advance(number(p + 4, cn - 4));
		resume_woken();
	} else if (starts(p, cn, "CANCEL")) {
		uint64_t k = number(p + 6, cn - 6);
		advance(0);
		resume_woken();
		if (F.pend[k % NPEND].used) {
			if (F.trace)
				fprintf(stderr, "~ cancel slot %d\n", (int)(k % NPEND));
			complete(&F.pend[k % NPEND]);
		}
	} else if (starts(p, cn, "SHUTDOWN")) {
		advance(0);
		resume_woken();
		F.app.shutting_down = true;
		F.shutdown = true;
		store_wake_all(F.app.store);
		resume_woken();
	} else if (starts(p, cn, "AUTH")) {
		bool on = cn >= 7 && !memcmp(p + 5, "on", 2);
		F.cfg.auth_token = on ? AUTH_FULL : NULL;
		F.cfg.read_token = on ? AUTH_READ : NULL;
	} else if (cn) {
		request(p, cn, rest, end);
	}
}

static const char *find_sep(const char *p, const char *end)
{
	while (p + 4 <= end) {
		const char *q = memchr(p, '\n', (size_t)(end - p));
		if (!q || q + 4 > end)
			return end;
		if (q[1] == '=' && q[2] == '=' && q[3] == '\n')
			return q;
		p = q + 1;
	}
	return end;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	F.fresh = getenv("ROLLCALL_FUZZ_FRESH") && *getenv("ROLLCALL_FUZZ_FRESH") == '1';
	F.trace = getenv("ROLLCALL_FUZZ_TRACE") && *getenv("ROLLCALL_FUZZ_TRACE") == '1';
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	int i;

	if (F.started && (F.fresh || F.inputs % RENEW_EVERY == 0 || F.now > (1ULL << 50)))
		store_stop();
	if (!F.started)
		store_start();
	F.inputs++;
	F.cfg.auth_token = NULL;
	F.cfg.read_token = NULL;

	while (p < end) {
		const char *sep = find_sep(p, end);
		record(p, sep);
		p = sep < end ? sep + 4 : end;
	}

	/* the loop resumes what woke; the clients still waiting go away */
	advance(0);
	resume_woken();
	for (i = 0; i < NPEND; i++)
		if (F.pend[i].used)
			complete(&F.pend[i]);
	if (store_waiter_count(F.app.store))
		die("a waiter is still parked in the store after every request ended", NULL, NULL, 0);
	{
		struct store_stats st;
		store_get_stats(F.app.store, &st);
		if (st.calls_pending)
			die("a call is still pending after every request ended", NULL, NULL, 0);
	}
	if (F.metrics.streams_open)
		die("streams_open is not 0 after every request ended", NULL, NULL, 0);
	if (F.shutdown || F.fresh)
		store_stop(); /* the daemon exits; the next input starts a new one */
	if (F.inputs % LEAK_CHECK_EVERY == 0 && __lsan_do_recoverable_leak_check &&
	    __lsan_do_recoverable_leak_check()) {
		fprintf(stderr, "fuzz_router: BUG: memory leaked (by this input or one of the %d before it)\n",
			LEAK_CHECK_EVERY - 1);
		abort();
	}
	return 0;
}

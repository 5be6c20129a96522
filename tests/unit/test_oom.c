/* test_oom: allocation failure anywhere gives that request a 503 and leaves
 * the registry as it was. Every request of a list runs through the router
 * once per allocation it makes, with that allocation failing (malloc,
 * calloc and realloc of our own code are wrapped at link time: see the
 * Makefile); each run must answer its normal status or 503 limit_reached,
 * and after a 503 the registry's counts and index must be unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../handlers/handlers.h"
#include "../../server/config.h"
#include "../../server/request.h"
#include "../../server/router.h"
#include "../../store/store.h"

/* --- the failing allocator --- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static long countdown = -1; /* the allocation that fails: 0 is the next one; -1 never */
static long allocations;    /* made since the last arm() */

static bool fail_now(void)
{
	allocations++;
	if (countdown < 0)
		return false;
	return countdown-- == 0;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return fail_now() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

static void arm(long k)
{
	countdown = k;
	allocations = 0;
}

/* --- fixture --- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static void fake_random(void *ctx, void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t i;

	(void)ctx;
	for (i = 0; i < len; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		p[i] = (unsigned char)(rng >> 32);
	}
}

struct hx {
	struct config cfg;
	struct app app;
	struct store_session *s; /* a session the requests act as */
	char token[STORE_TOKEN_LEN + 1];
	char id[STORE_ID_LEN + 1];
};

static struct hx *hx_new(void)
{
	struct hx *h = calloc(1, sizeof(*h));
	struct store_config sc = { 0 };

	assert_non_null(h);
	rng = 0x9e3779b97f4a7c15ULL; /* the same ids every time */
	config_defaults(&h->cfg);
	sc.default_ttl = h->cfg.default_ttl;
	sc.max_ttl = h->cfg.max_ttl;
	sc.max_sessions = h->cfg.max_sessions;
	sc.random = fake_random;
	h->app.cfg = &h->cfg;
	h->app.store = store_new(&sc);
	assert_non_null(h->app.store);
	assert_int_equal(store_session_create(h->app.store, 1000, 60, NULL, 0, &h->s), STORE_CREATED);
	memcpy(h->token, h->s->token, sizeof(h->token));
	memcpy(h->id, h->s->id, sizeof(h->id));
	return h;
}

static void hx_free(struct hx *h)
{
	store_free(h->app.store);
	free(h);
}

/* What must not change when a request fails. (The event log may lose what
 * it kept when an event cannot be stored: watchers then get a reset.) */
struct snapshot {
	struct store_stats st;
	uint64_t index;
};

static void snap(struct hx *h, struct snapshot *s)
{
	store_get_stats(h->app.store, &s->st);
	s->st.events_kept = 0;
	s->index = store_index(h->app.store);
}

/* Runs one request; returns its status (and frees what it left). */
static int dispatch(struct hx *h, enum http_method m, const char *target, const char *body)
{
	struct http_request req;
	struct http_reply rep;
	const char *q = strchr(target, '?');
	int status;

	memset(&req, 0, sizeof(req));
	memset(&rep, 0, sizeof(rep));
	req.method = m;
	req.path = target;
	req.path_len = q ? (size_t)(q - target) : strlen(target);
	req.query = q ? q + 1 : NULL;
	req.query_len = q ? strlen(q + 1) : 0;
	req.token = h->token;
	req.body = body ? body : "";
	req.body_len = body ? strlen(body) : 0;
	req.now = 2000;
	req.app = &h->app;
	req.waiter.timer.idx = TIMER_IDLE;
	router_dispatch(&req, &rep);
	status = rep.status;
	if (rep.suspend) /* a waiting request: let it go, as the daemon would on a disconnect */
		store_waiter_cancel(h->app.store, &req.waiter);
	if (req.cleanup)
		req.cleanup(&req);
	if (rep.stream)
		rep.stream->free(&req);
	http_reply_clear(&rep);
	return status;
}

/* Each allocation of the request fails in turn: 503 and no change, or the
 * normal answer. Then it runs once more without failing. */
static void sweep(enum http_method m, const char *target, const char *body, int ok_status,
		  void (*prepare)(struct hx *h))
{
	long k;

	for (k = 0;; k++) {
		struct hx *h = hx_new();
		long left;
		struct snapshot before, after;
		int status;

		if (prepare)
			prepare(h);
		snap(h, &before);
		arm(k);
		status = dispatch(h, m, target, body);
		left = countdown;
		arm(-1);
		if (status != ok_status && status != 503)
			fail_msg("%s with allocation %ld failing: status %d", target, k, status);
		if (status == 503) {
			snap(h, &after);
			if (memcmp(&before.st, &after.st, sizeof(before.st)) || before.index != after.index)
				fail_msg("%s with allocation %ld failing: 503 but the registry changed", target, k);
		}
		hx_free(h);
		if (left >= 0) /* the request made fewer than k + 1 allocations: all were tried */
			break;
		if (k > 10000)
			fail_msg("%s: no end to its allocations", target);
	}
}

static void with_name(struct hx *h)
{
	struct store_name *n;

	assert_int_equal(store_name_register(h->app.store, h->s, "db", 2, "1", 1, &n), STORE_CREATED);
}

static void with_group(struct hx *h)
{
	struct store_entry *e;

	assert_int_equal(store_group_join(h->app.store, h->s, "g", 1, "1", 1, &e), STORE_CREATED);
	assert_int_equal(store_prop_set(h->app.store, h->s, "p", 1, "1", 1, &e), STORE_CREATED);
}

static void test_session_create_fails_cleanly(void **state)
{
	(void)state;
	sweep(HTTP_POST, "/v1/sessions", "{\"ttl\": 30, \"label\": \"a label\"}", 201, NULL);
}

static void test_name_register_fails_cleanly(void **state)
{
	(void)state;
	sweep(HTTP_PUT, "/v1/names/a/b", "{\"value\": {\"x\": [1, 2, 3]}}", 201, NULL);
	sweep(HTTP_PUT, "/v1/names/db", "{\"value\": 2}", 200, with_name);
}

static void test_prop_and_group_fail_cleanly(void **state)
{
	(void)state;
	sweep(HTTP_PUT, "/v1/props/job/1", "{\"value\": \"x\"}", 201, NULL);
	sweep(HTTP_PUT, "/v1/groups/workers", "{\"value\": {\"port\": 1}}", 201, NULL);
	sweep(HTTP_PUT, "/v1/groups/g", "{\"value\": 2}", 200, with_group);
}

static void test_send_and_call_fail_cleanly(void **state)
{
	(void)state;
	sweep(HTTP_POST, "/v1/send", "{\"to\": {\"name\": \"db\"}, \"body\": {\"q\": 1}}", 202, with_name);
	sweep(HTTP_POST, "/v1/send", "{\"to\": {\"group\": \"g\"}, \"body\": 1}", 202, with_group);
	/* a call that parks answers nothing yet (status 0) */
	sweep(HTTP_POST, "/v1/call", "{\"to\": {\"name\": \"db\"}, \"body\": 1}", 0, with_name);
}

static void test_reads_fail_cleanly(void **state)
{
	(void)state;
	sweep(HTTP_GET, "/v1/names?prefix=d", NULL, 200, with_name);
	sweep(HTTP_GET, "/v1/groups/g", NULL, 200, with_group);
	sweep(HTTP_GET, "/v1/props", NULL, 200, with_group);
	sweep(HTTP_GET, "/v1/sessions", NULL, 200, with_group);
	sweep(HTTP_GET, "/v1/events?after=0", NULL, 200, with_group);
	sweep(HTTP_GET, "/v1/stats", NULL, 200, NULL);
	sweep(HTTP_GET, "/metrics", NULL, 200, NULL);
}

static void test_delete_session_never_fails(void **state)
{
	char target[64];
	struct hx *h = hx_new();

	(void)state;
	snprintf(target, sizeof(target), "/v1/sessions/%s", h->id);
	hx_free(h);
	/* a release allocates nothing but its events; losing those is allowed
	 * (the log resets), the release itself always happens */
	sweep(HTTP_DELETE, target, NULL, 204, with_group);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_create_fails_cleanly),
		cmocka_unit_test(test_name_register_fails_cleanly),
		cmocka_unit_test(test_prop_and_group_fail_cleanly),
		cmocka_unit_test(test_send_and_call_fail_cleanly),
		cmocka_unit_test(test_reads_fail_cleanly),
		cmocka_unit_test(test_delete_session_never_fails),
	};

	return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}

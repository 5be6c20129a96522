/* test_handlers: the routes of sessions and names run through the router
 * (server/router.h) with no socket: a real store with a deterministic random
 * source, a struct http_request filled by hand, and the JSON answer parsed
 * back with cJSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../handlers/handlers.h"
#include "../../server/config.h"
#include "../../server/json.h"
#include "../../server/request.h"
#include "../../server/router.h"
#include "../../store/store.h"

#define T0 5000000u /* ms on the test's clock */

/* --- fixture --- */

struct hx {
	struct config cfg;
	struct store_config sc;
	struct app app;
	uint64_t rng;
	uint64_t now;
	cJSON *last; /* the last answer's parsed body, freed by the next call */
};

static uint64_t seed_counter;

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

static int setup(void **state)
{
	struct hx *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	config_defaults(&h->cfg);
	h->rng = 0x9e3779b97f4a7c15ULL * ++seed_counter;
	h->sc.default_ttl = h->cfg.default_ttl;
	h->sc.max_ttl = h->cfg.max_ttl;
	h->sc.max_sessions = h->cfg.max_sessions;
	h->sc.max_keys_per_session = h->cfg.max_keys_per_session;
	h->sc.random = fake_random;
	h->sc.random_ctx = &h->rng;
	h->app.cfg = &h->cfg;
	h->app.store = store_new(&h->sc);
	h->now = T0;
	*state = h;
	return h->app.store ? 0 : -1;
}

static int teardown(void **state)
{
	struct hx *h = *state;

	cJSON_Delete(h->last);
	store_free(h->app.store); /* with the sessions the test left live */
	free(h);
	return 0;
}

/* What a test looks at in an answer. */
struct res {
	int status;
	cJSON *json; /* owned by the fixture (h->last) */
	bool with_index;
	uint64_t index;
	const char *allow;
	bool suspend;
	bool has_body;
};

static void fill(struct http_request *req, struct hx *h, enum http_method m, const char *target,
		 const char *token, const char *body)
{
	const char *q = strchr(target, '?');

	memset(req, 0, sizeof(*req));
	req->method = m;
	req->path = target;
	req->path_len = q ? (size_t)(q - target) : strlen(target);
	req->query = q ? q + 1 : NULL;
	req->query_len = q ? strlen(q + 1) : 0;
	req->token = token;
	req->body = body ? body : ""; /* as the daemon passes a request without a body */
	req->body_len = body ? strlen(body) : 0;
	req->now = h->now;
	req->app = &h->app;
	req->waiter.timer.idx = TIMER_IDLE;
}

/* Dispatches req and reads the answer: checks that a JSON body is strict
 * JSON and parses it, then clears the reply. */
static struct res run(struct hx *h, struct http_request *req)
{
	struct http_reply rep;
	struct res r;
	const char *why = NULL;

	memset(&rep, 0, sizeof(rep));
	router_dispatch(req, &rep);
	memset(&r, 0, sizeof(r));
	r.status = rep.status;
	r.with_index = rep.with_index;
	r.index = rep.index;
	r.allow = rep.allow;
	r.suspend = rep.suspend;
	r.has_body = rep.body != NULL;
	cJSON_Delete(h->last);
	h->last = NULL;
	if (rep.body) {
		assert_null(rep.content_type);
		if (!json_check(rep.body, rep.body_len, JSON_MAX_DEPTH, &why))
			fail_msg("the answer is not strict JSON (%s): %s", why, rep.body);
		h->last = cJSON_ParseWithLength(rep.body, rep.body_len);
		assert_non_null(h->last);
	}
	r.json = h->last;
	http_reply_clear(&rep);
	assert_null(rep.body);
	return r;
}

static struct res call(struct hx *h, enum http_method m, const char *target, const char *token, const char *body)
{
	struct http_request req;

	fill(&req, h, m, target, token, body);
	return run(h, &req);
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void assert_error(struct res r, int status, const char *code)
{
	assert_int_equal(r.status, status);
	assert_non_null(r.json);
	assert_non_null(str(r.json, "error"));
	assert_string_equal(str(r.json, "error"), code);
	assert_non_null(str(r.json, "message"));
	assert_true(strlen(str(r.json, "message")) > 0);
}

static bool lower_hex(const char *s, size_t n)
{
	size_t i;

	if (!s || strlen(s) != n)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A session made through the API: its id and token. */
struct sess {
	char id[STORE_ID_LEN + 1];
	char token[STORE_TOKEN_LEN + 1];
};

static struct sess new_session(struct hx *h, const char *body)
{
	struct res r = call(h, HTTP_POST, "/v1/sessions", NULL, body);
	struct sess s;

	assert_int_equal(r.status, 201);
	assert_true(lower_hex(str(r.json, "id"), STORE_ID_LEN));
	assert_true(lower_hex(str(r.json, "token"), STORE_TOKEN_LEN));
	memcpy(s.id, str(r.json, "id"), sizeof(s.id));
	memcpy(s.token, str(r.json, "token"), sizeof(s.token));
	return s;
}

static char *path_of(char *buf, size_t cap, const char *fmt, const char *id)
{
	snprintf(buf, cap, fmt, id);
	return buf;
}

/* --- sessions --- */

static void test_create_session_201_with_id_and_token(void **state)
{
	struct hx *h = *state;
	struct res r = call(h, HTTP_POST, "/v1/sessions", NULL, NULL);
	const char *id, *tok;

	assert_int_equal(r.status, 201);
	id = str(r.json, "id");
	tok = str(r.json, "token");
	assert_true(lower_hex(id, STORE_ID_LEN));
	assert_true(lower_hex(tok, STORE_TOKEN_LEN));
	assert_string_not_equal(id, tok);
	assert_int_equal((int)num(r.json, "ttl"), 15);
	assert_int_equal((int)num(r.json, "expires_in_ms"), 15000);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "label")));
	assert_non_null(store_session_find(h->app.store, h->now, id, STORE_ID_LEN));
	assert_int_equal(store_session_count(h->app.store), 1);
}

static void test_create_session_with_ttl_and_label(void **state)
{
	struct hx *h = *state;
	struct res r = call(h, HTTP_POST, "/v1/sessions", NULL, "{\"ttl\": 60, \"label\": \"api@host-3\"}");

	assert_int_equal(r.status, 201);
	assert_int_equal((int)num(r.json, "ttl"), 60);
	assert_int_equal((int)num(r.json, "expires_in_ms"), 60000);
	assert_string_equal(str(r.json, "label"), "api@host-3");
	/* an empty body and {} are the same */
	assert_int_equal(call(h, HTTP_POST, "/v1/sessions", NULL, "{}").status, 201);
	assert_int_equal(call(h, HTTP_POST, "/v1/sessions", NULL, " \n").status, 201);
	assert_int_equal(store_session_count(h->app.store), 3);
}

static void test_create_session_bad_ttl_400_invalid_ttl(void **state)
{
	static const char *const bodies[] = {
		"{\"ttl\": 0}", "{\"ttl\": -1}", "{\"ttl\": 1.5}", "{\"ttl\": \"15\"}", "{\"ttl\": 3601}",
		"{\"ttl\": null}", "{\"ttl\": 1e300}", "{\"ttl\": [15]}", "{\"ttl\": true}",
	};
	struct hx *h = *state;
	uint64_t idx = store_index(h->app.store);
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		assert_error(call(h, HTTP_POST, "/v1/sessions", NULL, bodies[i]), 400, "invalid_ttl");
	assert_int_equal(store_session_count(h->app.store), 0);
	assert_int_equal(store_index(h->app.store), idx);
	/* the bounds themselves are fine */
	assert_int_equal(call(h, HTTP_POST, "/v1/sessions", NULL, "{\"ttl\": 1}").status, 201);
	assert_int_equal(call(h, HTTP_POST, "/v1/sessions", NULL, "{\"ttl\": 3600}").status, 201);
}

static void test_create_session_bad_label_400(void **state)
{
	struct hx *h = *state;
	char body[400];

	assert_error(call(h, HTTP_POST, "/v1/sessions", NULL, "{\"label\": 5}"), 400, "bad_request");
	snprintf(body, sizeof(body), "{\"label\": \"%0257d\"}", 0);
	assert_error(call(h, HTTP_POST, "/v1/sessions", NULL, body), 400, "bad_request");
	snprintf(body, sizeof(body), "{\"label\": \"%0256d\"}", 0);
	assert_int_equal(call(h, HTTP_POST, "/v1/sessions", NULL, body).status, 201);
	assert_int_equal(store_session_count(h->app.store), 1);
}

static void test_heartbeat_200_extends_lease(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, "{\"ttl\": 10}");
	char p[96];
	struct res r;

	h->now += 8000;
	r = call(h, HTTP_POST, path_of(p, sizeof(p), "/v1/sessions/%s/heartbeat", s.id), s.token, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(str(r.json, "id"), s.id);
	assert_int_equal((int)num(r.json, "ttl"), 10);
	assert_int_equal((int)num(r.json, "expires_in_ms"), 10000);
	/* with a new ttl */
	r = call(h, HTTP_POST, p, s.token, "{\"ttl\": 120}");
	assert_int_equal(r.status, 200);
	assert_int_equal((int)num(r.json, "ttl"), 120);
	assert_int_equal((int)num(r.json, "expires_in_ms"), 120000);
	/* past the first deadline it is still alive */
	h->now += 100000;
	assert_non_null(store_session_find(h->app.store, h->now, s.id, STORE_ID_LEN));
	/* a bad ttl is refused and changes nothing */
	assert_error(call(h, HTTP_POST, p, s.token, "{\"ttl\": 0}"), 400, "invalid_ttl");
	assert_int_equal(store_session_find(h->app.store, h->now, s.id, STORE_ID_LEN)->ttl, 120);
}

static void test_heartbeat_after_expiry_404_session_not_found(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, "{\"ttl\": 5}");
	char p[96];

	h->now += 5000;
	assert_error(call(h, HTTP_POST, path_of(p, sizeof(p), "/v1/sessions/%s/heartbeat", s.id), s.token, NULL),
		     404, "session_not_found");
	/* never was: the same, whatever the token */
	assert_error(call(h, HTTP_POST, "/v1/sessions/0123456789abcdef/heartbeat", "nope", NULL), 404,
		     "session_not_found");
}

static void test_session_paths_need_that_sessions_token(void **state)
{
	struct hx *h = *state;
	struct sess a = new_session(h, NULL), b = new_session(h, NULL);
	char p[96];

	path_of(p, sizeof(p), "/v1/sessions/%s/heartbeat", a.id);
	assert_error(call(h, HTTP_POST, p, NULL, NULL), 401, "missing_token");
	assert_error(call(h, HTTP_POST, p, b.token, NULL), 403, "bad_token");
	assert_error(call(h, HTTP_POST, p, "0123", NULL), 403, "bad_token");
	path_of(p, sizeof(p), "/v1/sessions/%s", a.id);
	assert_error(call(h, HTTP_DELETE, p, b.token, NULL), 403, "bad_token");
	assert_int_equal(store_session_count(h->app.store), 2);
}

static void test_session_delete_204_releases_names(void **state)
{
	struct hx *h = *state;
	struct sess a = new_session(h, NULL), b = new_session(h, NULL);
	char p[96];
	struct res r;

	assert_int_equal(call(h, HTTP_PUT, "/v1/names/a1", a.token, NULL).status, 201);
	assert_int_equal(call(h, HTTP_PUT, "/v1/names/a2", a.token, NULL).status, 201);
	assert_int_equal(call(h, HTTP_PUT, "/v1/names/b1", b.token, NULL).status, 201);
	r = call(h, HTTP_DELETE, path_of(p, sizeof(p), "/v1/sessions/%s", a.id), a.token, NULL);
	assert_int_equal(r.status, 204);
	assert_false(r.has_body);
	assert_error(call(h, HTTP_GET, "/v1/names/a1", NULL, NULL), 404, "name_not_found");
	assert_error(call(h, HTTP_GET, "/v1/names/a2", NULL, NULL), 404, "name_not_found");
	assert_int_equal(call(h, HTTP_GET, "/v1/names/b1", NULL, NULL).status, 200);
	/* gone: its paths are 404 and its token is no longer good */
	assert_error(call(h, HTTP_GET, p, NULL, NULL), 404, "session_not_found");
	assert_error(call(h, HTTP_DELETE, p, a.token, NULL), 404, "session_not_found");
	assert_error(call(h, HTTP_PUT, "/v1/names/a1", a.token, NULL), 403, "bad_token");
}

static void test_get_session_shows_held_names_not_token(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, "{\"label\": \"worker\"}");
	const cJSON *held, *names;
	char p[96];
	struct res r;

	call(h, HTTP_PUT, "/v1/names/zeta", s.token, NULL);
	call(h, HTTP_PUT, "/v1/names/alpha", s.token, NULL);
	r = call(h, HTTP_GET, path_of(p, sizeof(p), "/v1/sessions/%s", s.id), NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(str(r.json, "id"), s.id);
	assert_string_equal(str(r.json, "label"), "worker");
	assert_null(cJSON_GetObjectItemCaseSensitive(r.json, "token"));
	{
		char *text = cJSON_PrintUnformatted(r.json);
		assert_non_null(text);
		assert_null(strstr(text, s.token));
		cJSON_free(text);
	}
	assert_int_equal((int)num(r.json, "names"), 2);
	held = cJSON_GetObjectItemCaseSensitive(r.json, "held");
	names = cJSON_GetObjectItemCaseSensitive(held, "names");
	assert_int_equal(cJSON_GetArraySize(names), 2);
	assert_string_equal(cJSON_GetArrayItem(names, 0)->valuestring, "alpha");
	assert_string_equal(cJSON_GetArrayItem(names, 1)->valuestring, "zeta");
	assert_true(r.with_index);
}

static void test_list_sessions_paginates_by_id(void **state)
{
	struct hx *h = *state;
	char q[96];
	const cJSON *arr, *next;
	struct res r;
	int i, seen = 0;

	for (i = 0; i < 5; i++)
		new_session(h, NULL);
	r = call(h, HTTP_GET, "/v1/sessions?limit=3", NULL, NULL);
	assert_int_equal(r.status, 200);
	arr = cJSON_GetObjectItemCaseSensitive(r.json, "sessions");
	assert_int_equal(cJSON_GetArraySize(arr), 3);
	seen += 3;
	next = cJSON_GetObjectItemCaseSensitive(r.json, "next");
	assert_true(cJSON_IsString(next));
	assert_string_equal(next->valuestring, str(cJSON_GetArrayItem(arr, 2), "id"));
	assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 0), "token"));
	snprintf(q, sizeof(q), "/v1/sessions?limit=3&after=%s", next->valuestring);
	r = call(h, HTTP_GET, q, NULL, NULL);
	arr = cJSON_GetObjectItemCaseSensitive(r.json, "sessions");
	seen += cJSON_GetArraySize(arr);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "next")));
	assert_int_equal(seen, 5);
	assert_error(call(h, HTTP_GET, "/v1/sessions?limit=-1", NULL, NULL), 400, "bad_request");
}

/* --- names --- */

static void test_put_encoded_slash_name_201_then_get_200(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	struct res r;

	r = call(h, HTTP_PUT, "/v1/names/a%2Fb", s.token, "{\"value\": {\"port\": 8080}}");
	assert_int_equal(r.status, 201);
	assert_string_equal(str(r.json, "key"), "a/b");
	assert_string_equal(str(r.json, "session"), s.id);
	assert_int_equal((int)num(cJSON_GetObjectItemCaseSensitive(r.json, "value"), "port"), 8080);
	r = call(h, HTTP_GET, "/v1/names/a%2Fb", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(str(r.json, "key"), "a/b");
	assert_string_equal(str(r.json, "session"), s.id);
	/* a raw '/' names the same key */
	r = call(h, HTTP_GET, "/v1/names/a/b", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(str(r.json, "key"), "a/b");
	assert_non_null(store_name_get(h->app.store, "a/b", 3));
}

static void test_put_without_value_stores_null(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	struct res r = call(h, HTTP_PUT, "/v1/names/svc", s.token, NULL);

	assert_int_equal(r.status, 201);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "value")));
}

static void test_value_served_back_as_sent(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	const cJSON *v;
	struct res r;

	assert_int_equal(call(h, HTTP_PUT, "/v1/names/svc", s.token,
			      "{\"value\": [1, \"caf\\u00e9\", {\"a\": null}, -2.5e-3, \"\\ud83d\\ude00\"]}").status,
			 201);
	r = call(h, HTTP_GET, "/v1/names/svc", NULL, NULL);
	assert_int_equal(r.status, 200);
	v = cJSON_GetObjectItemCaseSensitive(r.json, "value");
	assert_int_equal(cJSON_GetArraySize(v), 5);
	assert_string_equal(cJSON_GetArrayItem(v, 1)->valuestring, "caf\xc3\xa9");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 2), "a")));
	assert_string_equal(cJSON_GetArrayItem(v, 4)->valuestring, "\xf0\x9f\x98\x80");
}

static void test_put_again_by_owner_200_replaces_value(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	struct res r;

	assert_int_equal(call(h, HTTP_PUT, "/v1/names/svc", s.token, "{\"value\": 1}").status, 201);
	r = call(h, HTTP_PUT, "/v1/names/svc", s.token, "{\"value\": 2}");
	assert_int_equal(r.status, 200);
	assert_int_equal((int)num(r.json, "value"), 2);
	r = call(h, HTTP_GET, "/v1/names/svc", NULL, NULL);
	assert_int_equal((int)num(r.json, "value"), 2);
}

static void test_put_held_by_other_409_with_owner(void **state)
{
	struct hx *h = *state;
	struct sess a = new_session(h, NULL), b = new_session(h, NULL);
	uint64_t idx;
	struct res r;

	assert_int_equal(call(h, HTTP_PUT, "/v1/names/svc", a.token, "{\"value\": \"a\"}").status, 201);
	idx = store_index(h->app.store);
	r = call(h, HTTP_PUT, "/v1/names/svc", b.token, "{\"value\": \"b\"}");
	assert_error(r, 409, "name_taken");
	assert_string_equal(str(r.json, "owner"), a.id);
	assert_int_equal(store_index(h->app.store), idx);
	r = call(h, HTTP_GET, "/v1/names/svc", NULL, NULL);
	assert_string_equal(str(r.json, "value"), "a");
}

static void test_put_without_token_401_missing_token(void **state)
{
	struct hx *h = *state;

	new_session(h, NULL);
	assert_error(call(h, HTTP_PUT, "/v1/names/svc", NULL, "{\"value\": 1}"), 401, "missing_token");
	assert_error(call(h, HTTP_DELETE, "/v1/names/svc", NULL, NULL), 401, "missing_token");
	assert_int_equal(store_name_count(h->app.store), 0);
}

static void test_put_with_wrong_token_403_bad_token(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	char wrong[STORE_TOKEN_LEN + 1];

	memcpy(wrong, s.token, sizeof(wrong));
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	assert_error(call(h, HTTP_PUT, "/v1/names/svc", wrong, NULL), 403, "bad_token");
	assert_error(call(h, HTTP_PUT, "/v1/names/svc", "", NULL), 403, "bad_token");
	assert_error(call(h, HTTP_PUT, "/v1/names/svc", s.id, NULL), 403, "bad_token"); /* the id is no token */
	assert_int_equal(store_name_count(h->app.store), 0);
}

static void test_expired_token_403_bad_token(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, "{\"ttl\": 2}");

	h->now += 1999;
	assert_int_equal(call(h, HTTP_PUT, "/v1/names/svc", s.token, NULL).status, 201);
	/* that request was a sign of life: the lease runs 2 s from it */
	h->now += 1999;
	assert_int_equal(call(h, HTTP_PUT, "/v1/names/svc", s.token, NULL).status, 200);
	h->now += 2000;
	assert_error(call(h, HTTP_PUT, "/v1/names/svc", s.token, NULL), 403, "bad_token");
	assert_error(call(h, HTTP_GET, "/v1/names/svc", NULL, NULL), 404, "name_not_found");
}

static void test_get_absent_name_404_name_not_found(void **state)
{
	struct hx *h = *state;

	assert_error(call(h, HTTP_GET, "/v1/names/nobody", NULL, NULL), 404, "name_not_found");
	assert_error(call(h, HTTP_GET, "/v1/names/nobody?wait=0", NULL, NULL), 404, "name_not_found");
}

static void test_delete_name_204_then_404_and_not_owner_403(void **state)
{
	struct hx *h = *state;
	struct sess a = new_session(h, NULL), b = new_session(h, NULL);
	struct res r;

	call(h, HTTP_PUT, "/v1/names/svc", a.token, NULL);
	assert_error(call(h, HTTP_DELETE, "/v1/names/svc", b.token, NULL), 403, "not_owner");
	assert_int_equal(store_name_count(h->app.store), 1);
	r = call(h, HTTP_DELETE, "/v1/names/svc", a.token, NULL);
	assert_int_equal(r.status, 204);
	assert_false(r.has_body);
	assert_error(call(h, HTTP_DELETE, "/v1/names/svc", a.token, NULL), 404, "name_not_found");
}

static void test_bad_key_400_invalid_key(void **state)
{
	static const char *const paths[] = {
		"/v1/names/", "/v1/names/%00", "/v1/names/a%00b", "/v1/names/%C3%28", "/v1/names/%C0%AF",
		"/v1/names/%G1", "/v1/names/%4", "/v1/names/a%09b", "/v1/names/%7F",
	};
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	uint64_t idx = store_index(h->app.store);
	char longkey[16 + 513 + 1];
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_error(call(h, HTTP_PUT, paths[i], s.token, NULL), 400, "invalid_key");
		assert_error(call(h, HTTP_GET, paths[i], NULL, NULL), 400, "invalid_key");
	}
	memcpy(longkey, "/v1/names/", 10);
	memset(longkey + 10, 'k', 513);
	longkey[10 + 513] = '\0';
	assert_error(call(h, HTTP_PUT, longkey, s.token, NULL), 400, "invalid_key");
	longkey[10 + 512] = '\0';
	assert_int_equal(call(h, HTTP_PUT, longkey, s.token, NULL).status, 201);
	assert_int_equal(store_name_count(h->app.store), 1);
	assert_int_equal(store_index(h->app.store), idx + 1);
}

static void test_bad_json_400_and_index_unchanged(void **state)
{
	static const char *const bodies[] = {
		"{", "{\"value\": 01}", "{\"value\": .5}", "{\"value\": NaN}", "{\"value\": \"a\tb\"}",
		"{\"value\": 1} x", "{\"value\": 1, \"value\": 2}", "[1]", "{\"value\": /*c*/ 1}", "{\"value\": \"\\x\"}",
	};
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	uint64_t idx = store_index(h->app.store);
	size_t n = store_session_count(h->app.store), i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_error(call(h, HTTP_PUT, "/v1/names/svc", s.token, bodies[i]), 400, "bad_request");
		assert_error(call(h, HTTP_POST, "/v1/sessions", NULL, bodies[i]), 400, "bad_request");
	}
	assert_int_equal(store_index(h->app.store), idx);
	assert_int_equal(store_name_count(h->app.store), 0);
	assert_int_equal(store_session_count(h->app.store), n);
}

static void test_value_over_max_value_413(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	size_t big = h->cfg.max_value + 1, i;
	char *body = malloc(big + 32);

	assert_non_null(body);
	/* {"value": "xxx...x"}: the value's text is max_value + 1 bytes */
	strcpy(body, "{\"value\": \"");
	i = strlen(body);
	memset(body + i, 'x', big - 2);
	strcpy(body + i + big - 2, "\"}");
	assert_error(call(h, HTTP_PUT, "/v1/names/svc", s.token, body), 413, "payload_too_large");
	assert_int_equal(store_name_count(h->app.store), 0);
	/* one byte less fits */
	strcpy(body + i + big - 3, "\"}");
	assert_int_equal(call(h, HTTP_PUT, "/v1/names/svc", s.token, body).status, 201);
	free(body);
}

static void test_list_names_prefix_and_next(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	const cJSON *arr, *next;
	struct res r;

	call(h, HTTP_PUT, "/v1/names/svc/b", s.token, NULL);
	call(h, HTTP_PUT, "/v1/names/svc/a", s.token, NULL);
	call(h, HTTP_PUT, "/v1/names/svc/c", s.token, NULL);
	call(h, HTTP_PUT, "/v1/names/other", s.token, NULL);
	r = call(h, HTTP_GET, "/v1/names?prefix=svc%2F&limit=2", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_true(r.with_index);
	arr = cJSON_GetObjectItemCaseSensitive(r.json, "names");
	assert_int_equal(cJSON_GetArraySize(arr), 2);
	assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "key"), "svc/a");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 1), "key"), "svc/b");
	assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "session"), s.id);
	next = cJSON_GetObjectItemCaseSensitive(r.json, "next");
	assert_string_equal(next->valuestring, "svc/b");
	r = call(h, HTTP_GET, "/v1/names?prefix=svc/&limit=2&after=svc%2Fb", NULL, NULL);
	arr = cJSON_GetObjectItemCaseSensitive(r.json, "names");
	assert_int_equal(cJSON_GetArraySize(arr), 1);
	assert_string_equal(str(cJSON_GetArrayItem(arr, 0), "key"), "svc/c");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "next")));
	/* everything, default limit */
	r = call(h, HTTP_GET, "/v1/names", NULL, NULL);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "names")), 4);
	assert_string_equal(str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "names"), 0), "key"),
			    "other");
}

static void test_list_names_bad_parameters_400(void **state)
{
	struct hx *h = *state;

	assert_error(call(h, HTTP_GET, "/v1/names?limit=abc", NULL, NULL), 400, "bad_request");
	assert_error(call(h, HTTP_GET, "/v1/names?limit=-5", NULL, NULL), 400, "bad_request");
	assert_error(call(h, HTTP_GET, "/v1/names?limit=", NULL, NULL), 400, "bad_request");
	assert_error(call(h, HTTP_GET, "/v1/names?prefix=%00", NULL, NULL), 400, "bad_request");
	assert_error(call(h, HTTP_GET, "/v1/names?prefix=%G0", NULL, NULL), 400, "bad_request");
	assert_error(call(h, HTTP_GET, "/v1/names/x?wait=301", NULL, NULL), 400, "bad_request");
	assert_error(call(h, HTTP_GET, "/v1/names/x?wait=1.5", NULL, NULL), 400, "bad_request");
	/* 0 and over the maximum are the maximum, not an error */
	assert_int_equal(call(h, HTTP_GET, "/v1/names?limit=0", NULL, NULL).status, 200);
	assert_int_equal(call(h, HTTP_GET, "/v1/names?limit=99999999999999999999999", NULL, NULL).status, 200);
}

/* A request parked by GET ?wait= is woken through its waiter. */
struct parked {
	struct http_request req;
	int calls;
	enum store_wake why;
};

static void parked_wake(struct store_waiter *w, enum store_wake why)
{
	struct parked *p = (struct parked *)(void *)((char *)w - offsetof(struct parked, req.waiter));

	p->calls++;
	p->why = why;
	p->req.wake = why;
}

static void test_get_with_wait_parks_until_registered(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);
	struct parked p;
	struct res r;

	memset(&p, 0, sizeof(p));
	fill(&p.req, h, HTTP_GET, "/v1/names/job%2F1?wait=30", NULL, NULL);
	p.req.waiter.wake = parked_wake;
	r = run(h, &p.req);
	assert_true(r.suspend);
	assert_int_equal(store_waiter_count(h->app.store), 1);
	assert_true(store_waiter_parked(&p.req.waiter));
	assert_int_equal(p.req.waiter.timer.deadline, h->now + 30000);
	h->now += 1000;
	assert_int_equal(call(h, HTTP_PUT, "/v1/names/job/1", s.token, "{\"value\": 7}").status, 201);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.why, STORE_WAKE_FIRED);
	/* resumed: the handler runs again and answers at once */
	p.req.now = h->now;
	r = run(h, &p.req);
	assert_false(r.suspend);
	assert_int_equal(r.status, 200);
	assert_string_equal(str(r.json, "key"), "job/1");
	assert_int_equal((int)num(r.json, "value"), 7);
	assert_int_equal(store_waiter_count(h->app.store), 0);
}

static void test_get_with_wait_times_out_404(void **state)
{
	struct hx *h = *state;
	struct parked p;
	struct res r;

	memset(&p, 0, sizeof(p));
	fill(&p.req, h, HTTP_GET, "/v1/names/late?wait=2", NULL, NULL);
	p.req.waiter.wake = parked_wake;
	r = run(h, &p.req);
	assert_true(r.suspend);
	assert_int_equal(store_tick(h->app.store, h->now + 1999, 100), 0);
	assert_int_equal(store_tick(h->app.store, h->now + 2000, 100), 1);
	assert_int_equal(p.why, STORE_WAKE_TIMEOUT);
	p.req.now = h->now + 2000;
	assert_error(run(h, &p.req), 404, "name_not_found");
	assert_int_equal(store_waiter_count(h->app.store), 0);
}

/* --- routing --- */

static void test_unknown_route_404_not_found(void **state)
{
	static const char *const paths[] = {
		"/v1", "/v1/", "/v2/names/x", "/v1/namesx", "/v1/sessionsx", "/v1/sessions/", "/v1/sessions//heartbeat",
		"/v1/sessions/abc/heartbeat/x", "/V1/names/x", "", "/healthz/", "/ui/", "/ui/a/b",
	};
	struct hx *h = *state;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct res r = call(h, HTTP_GET, paths[i], NULL, NULL);
		if (r.status != 404)
			fail_msg("%s gave %d", paths[i], r.status);
		assert_error(r, 404, "not_found");
	}
}

static void test_wrong_method_405_with_allow(void **state)
{
	struct hx *h = *state;
	struct res r;

	r = call(h, HTTP_DELETE, "/v1/names", NULL, NULL);
	assert_error(r, 405, "method_not_allowed");
	assert_non_null(r.allow);
	assert_string_equal(r.allow, "GET, HEAD");
	r = call(h, HTTP_POST, "/v1/names/x", NULL, NULL);
	assert_error(r, 405, "method_not_allowed");
	assert_non_null(strstr(r.allow, "PUT"));
	assert_non_null(strstr(r.allow, "DELETE"));
	r = call(h, HTTP_PUT, "/v1/sessions", NULL, NULL);
	assert_error(r, 405, "method_not_allowed");
	assert_non_null(strstr(r.allow, "POST"));
	r = call(h, HTTP_OTHER, "/healthz", NULL, NULL);
	assert_error(r, 405, "method_not_allowed");
	assert_string_equal(r.allow, "GET, HEAD");
	r = call(h, HTTP_GET, "/v1/sessions/0123456789abcdef/heartbeat", NULL, NULL);
	assert_error(r, 405, "method_not_allowed");
	assert_string_equal(r.allow, "POST");
	assert_int_equal(store_session_count(h->app.store), 0);
}

static void test_head_runs_the_get_handler(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, NULL);

	call(h, HTTP_PUT, "/v1/names/svc", s.token, NULL);
	assert_int_equal(call(h, HTTP_HEAD, "/v1/names/svc", NULL, NULL).status, 200);
	assert_int_equal(call(h, HTTP_HEAD, "/healthz", NULL, NULL).status, 200);
}

static void test_v1_routes_set_with_index(void **state)
{
	struct hx *h = *state;
	struct sess s;
	struct res r;

	r = call(h, HTTP_POST, "/v1/sessions", NULL, NULL);
	assert_true(r.with_index);
	assert_int_equal(r.index, 1);
	memcpy(s.token, str(r.json, "token"), sizeof(s.token));
	r = call(h, HTTP_PUT, "/v1/names/svc", s.token, NULL);
	assert_true(r.with_index);
	assert_int_equal(r.index, 2);
	r = call(h, HTTP_GET, "/v1/names/svc", NULL, NULL);
	assert_true(r.with_index);
	assert_int_equal(r.index, store_index(h->app.store));
	r = call(h, HTTP_GET, "/v1/names", NULL, NULL);
	assert_true(r.with_index);
	r = call(h, HTTP_GET, "/v1/sessions", NULL, NULL);
	assert_true(r.with_index);
	/* errors on /v1 routes carry it too: the reader saw the registry at N */
	r = call(h, HTTP_GET, "/v1/names/none", NULL, NULL);
	assert_int_equal(r.status, 404);
	assert_true(r.with_index);
	assert_int_equal(r.index, 2);
	/* not a registry route */
	r = call(h, HTTP_GET, "/healthz", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(str(r.json, "status"), "ok");
	assert_false(r.with_index);
}

static void test_token_on_any_request_touches_lease(void **state)
{
	struct hx *h = *state;
	struct sess s = new_session(h, "{\"ttl\": 10}");
	struct store_session *ss;

	h->now += 9000;
	/* a read that carries the token is a sign of life too */
	assert_error(call(h, HTTP_GET, "/v1/names/none", s.token, NULL), 404, "name_not_found");
	h->now += 9000;
	ss = store_session_find(h->app.store, h->now, s.id, STORE_ID_LEN);
	assert_non_null(ss);
	assert_int_equal(store_session_expires_in(ss, h->now), 1000);
}

static void test_shutting_down_503(void **state)
{
	struct hx *h = *state;

	h->app.shutting_down = true;
	assert_error(call(h, HTTP_POST, "/v1/sessions", NULL, NULL), 503, "shutting_down");
	assert_int_equal(store_session_count(h->app.store), 0);
	h->app.shutting_down = false;
}

/* A member name written with an escape is the same name: {"\u0074tl": 99999}
 * is {"ttl": 99999}, an invalid ttl (it once made a default-ttl session). */
static void test_escaped_member_name_is_still_ttl(void **state)
{
	struct hx *h = *state;

	assert_error(call(h, HTTP_POST, "/v1/sessions", NULL, "{\"\\u0074tl\": 99999}"), 400, "invalid_ttl");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_create_session_201_with_id_and_token),
		T(test_create_session_with_ttl_and_label),
		T(test_create_session_bad_ttl_400_invalid_ttl),
		T(test_create_session_bad_label_400),
		T(test_heartbeat_200_extends_lease),
		T(test_heartbeat_after_expiry_404_session_not_found),
		T(test_session_paths_need_that_sessions_token),
		T(test_session_delete_204_releases_names),
		T(test_get_session_shows_held_names_not_token),
		T(test_list_sessions_paginates_by_id),
		T(test_put_encoded_slash_name_201_then_get_200),
		T(test_put_without_value_stores_null),
		T(test_value_served_back_as_sent),
		T(test_put_again_by_owner_200_replaces_value),
		T(test_put_held_by_other_409_with_owner),
		T(test_put_without_token_401_missing_token),
		T(test_put_with_wrong_token_403_bad_token),
		T(test_expired_token_403_bad_token),
		T(test_get_absent_name_404_name_not_found),
		T(test_delete_name_204_then_404_and_not_owner_403),
		T(test_bad_key_400_invalid_key),
		T(test_bad_json_400_and_index_unchanged),
		T(test_value_over_max_value_413),
		T(test_list_names_prefix_and_next),
		T(test_list_names_bad_parameters_400),
		T(test_get_with_wait_parks_until_registered),
		T(test_get_with_wait_times_out_404),
		T(test_unknown_route_404_not_found),
		T(test_wrong_method_405_with_allow),
		T(test_head_runs_the_get_handler),
		T(test_v1_routes_set_with_index),
		T(test_token_on_any_request_touches_lease),
		T(test_shutting_down_503),
		T(test_escaped_member_name_is_still_ttl),
	};

	return cmocka_run_group_tests_name("handlers", tests, NULL, NULL);
}

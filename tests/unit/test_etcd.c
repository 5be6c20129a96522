/* test_etcd: the etcd gateway codec (cluster/etcd.h) on its own: base64,
 * the request bodies (read back with cJSON), and the answers, with samples
 * taken from shared/etcd-gateway.md and every kind of hostile input. Inputs
 * are copied to buffers of their exact size, so that ASan sees any read
 * past the end. No etcd is needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cluster/etcd.h"

#define S(lit) lit, (sizeof(lit) - 1)

/* --- samples, as etcd 3.4.23 sent them (shared/etcd-gateway.md) --- */

#define HDR "{\"cluster_id\":\"14841639068965178418\",\"member_id\":\"10276657743932975437\",\"revision\":\"2\",\"raft_term\":\"2\"}"

/* the create-if-absent txn, when the name was taken */
static const char txn_present[] =
	"{\"header\":" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"2\"},"
	"\"kvs\":[{\"key\":\"L2cvbmFtZXMvYWxwaGE=\",\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
	"\"value\":\"eyJub2RlIjoibjEiLCJzZXNzaW9uIjoiczEifQ==\",\"lease\":\"5628551979766709544\"}],\"count\":\"1\"}}]}";

/* the same txn when the name was free */
static const char txn_absent[] = "{\"header\":" HDR ",\"succeeded\":true,\"responses\":[{\"response_put\":"
				 "{\"header\":{\"revision\":\"2\"}}}]}";

/* a page of a prefix range: /g/names/alpha and /g/names/beta, 5 in all */
static const char range_page[] =
	"{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"8\",\"raft_term\":\"3\"},\"kvs\":["
	"{\"key\":\"L2cvbmFtZXMvYWxwaGE=\",\"create_revision\":\"2\",\"mod_revision\":\"4\",\"version\":\"2\","
	"\"value\":\"eyJub2RlIjoibjEiLCJzZXNzaW9uIjoiczEifQ==\",\"lease\":\"5628551979766709544\"},"
	"{\"key\":\"L2cvbmFtZXMvYmV0YQ==\",\"create_revision\":\"3\",\"mod_revision\":\"3\",\"version\":\"1\","
	"\"value\":\"djI=\"}],\"more\":true,\"count\":\"5\"}";

static const char range_none[] = "{\"header\":" HDR "}";

static const char lease_grant[] = "{\"header\":" HDR ",\"ID\":\"5628551979766709511\",\"TTL\":\"10\"}";
static const char keepalive_ok[] =
	"{\"result\":{\"header\":" HDR ",\"ID\":\"5628551979766709523\",\"TTL\":\"10\"}}\n";
static const char keepalive_gone[] = "{\"result\":{\"header\":" HDR ",\"ID\":\"12345\"}}\n";
static const char timetolive_unknown[] = "{\"header\":" HDR ",\"ID\":\"12345\",\"TTL\":\"-1\"}";

static const char watch_created[] = "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
				    "\"revision\":\"11\",\"raft_term\":\"2\"},\"created\":true}}\n";
static const char watch_put[] =
	"{\"result\":{\"header\":{\"revision\":\"12\"},\"watch_id\":\"1\",\"events\":[{\"kv\":{\"key\":\"L2cvdy9h\","
	"\"create_revision\":\"12\",\"mod_revision\":\"12\",\"version\":\"1\",\"value\":\"djE=\","
	"\"lease\":\"5628551979766709570\"}}]}}\n";
static const char watch_deletes[] =
	"{\"result\":{\"header\":{\"revision\":\"17\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"L2cvdy9h\","
	"\"mod_revision\":\"17\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"L2cvdy9i\",\"mod_revision\":\"17\"}}]}}\n";
static const char watch_compacted[] =
	"{\"result\":{\"header\":{\"cluster_id\":\"1\"},\"watch_id\":\"77\",\"canceled\":true,"
	"\"compact_revision\":\"5\"}}\n";
static const char watch_progress[] = "{\"result\":{\"header\":{\"revision\":\"17\",\"raft_term\":\"2\"}}}\n";
static const char stream_error[] = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
				   "leader\",\"http_status\":\"Service Unavailable\"}}\n";
static const char unary_error[] = "{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: "
				  "requested lease not found\",\"code\":5}";

/* --- helpers --- */

/* A copy of s[0..n) in a buffer of exactly n bytes (no NUL after it). */
static char *exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	if (n)
		memcpy(p, s, n);
	return p;
}

static enum etcd_rc range_of(const char *s, size_t n, struct etcd_range *r, struct etcd_error *e)
{
	char *b = exact(s, n);
	enum etcd_rc rc = etcd_parse_range(b, n, r, e);

	free(b);
	return rc;
}

static enum etcd_rc txn_of(const char *s, size_t n, struct etcd_txn_result *r, struct etcd_error *e)
{
	char *b = exact(s, n);
	enum etcd_rc rc = etcd_parse_txn(b, n, r, e);

	free(b);
	return rc;
}

static enum etcd_rc watch_of(const char *s, size_t n, struct etcd_watch_msg *m, struct etcd_error *e)
{
	char *b = exact(s, n);
	enum etcd_rc rc = etcd_parse_watch_line(b, n, m, e);

	free(b);
	return rc;
}

static enum etcd_rc lease_of(const char *s, size_t n, struct etcd_header *h, int64_t *id, int64_t *ttl,
			     struct etcd_error *e)
{
	char *b = exact(s, n);
	enum etcd_rc rc = etcd_parse_lease(b, n, h, id, ttl, e);

	free(b);
	return rc;
}

/* Runs every decoder over s[0..n) and frees what they gave; returns
 * how many said ETCD_OK. */
static int parse_all(const char *s, size_t n)
{
	struct etcd_range r;
	struct etcd_txn_result t;
	struct etcd_watch_msg m;
	struct etcd_error e;
	struct etcd_header h;
	int64_t id, ttl;
	int ok = 0;

	ok += range_of(s, n, &r, &e) == ETCD_OK;
	etcd_range_free(&r);
	ok += txn_of(s, n, &t, &e) == ETCD_OK;
	etcd_txn_result_free(&t);
	ok += watch_of(s, n, &m, &e) == ETCD_OK;
	etcd_watch_msg_free(&m);
	ok += lease_of(s, n, &h, &id, &ttl, &e) == ETCD_OK;
	{
		char *b = exact(s, n);
		etcd_parse_error(b, n, 500, &e);
		free(b);
	}
	assert_true(memchr(e.message, '\0', sizeof(e.message)) != NULL);
	return ok;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A body from a builder, parsed back (len read after the builder ran); the body is freed. */
static cJSON *json_of(char *body, const size_t *len)
{
	cJSON *o;

	assert_non_null(body);
	assert_int_equal(strlen(body), *len);
	o = cJSON_ParseWithLength(body, *len);
	free(body);
	assert_non_null(o);
	return o;
}

/* o's member name is a string whose base64 decodes to want[0..n). */
static void assert_b64_member(const cJSON *o, const char *name, const char *want, size_t n)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	char *d;
	size_t dn;

	assert_true(cJSON_IsString(it));
	assert_true(etcd_b64_decode(it->valuestring, strlen(it->valuestring), &d, &dn));
	assert_int_equal(dn, n);
	assert_memory_equal(d, want, n);
	free(d);
}

static void assert_str_member(const cJSON *o, const char *name, const char *want)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

	assert_true(cJSON_IsString(it));
	assert_string_equal(it->valuestring, want);
}

static const cJSON *obj(const cJSON *o, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

	assert_non_null(it);
	return it;
}

/* --- base64 --- */

static void test_b64_round_trips_every_length_and_byte(void **state)
{
	unsigned char data[300];
	size_t n, i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	for (n = 0; n < sizeof(data); n++) {
		struct jw w = { 0 };
		char *text, *back;
		size_t tlen, blen;

		etcd_b64_put(&w, data, n);
		jw_lit(&w, "");
		text = jw_finish(&w, &tlen);
		assert_non_null(text);
		assert_int_equal(tlen, (n + 2) / 3 * 4);
		assert_true(etcd_b64_decode(text, tlen, &back, &blen));
		assert_int_equal(blen, n);
		assert_memory_equal(back, data, n);
		assert_int_equal(back[blen], '\0');
		free(back);
		free(text);
	}
}

static void test_b64_matches_rfc4648_vectors(void **state)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	size_t i;

	(void)state;
	for (i = 0; i < 7; i++) {
		struct jw w = { 0 };
		char *text, *back;
		size_t tlen, blen;

		jw_lit(&w, "");
		etcd_b64_put(&w, plain[i], strlen(plain[i]));
		text = jw_finish(&w, &tlen);
		assert_string_equal(text, coded[i]);
		free(text);
		assert_true(etcd_b64_decode(coded[i], strlen(coded[i]), &back, &blen));
		assert_int_equal(blen, strlen(plain[i]));
		assert_string_equal(back, plain[i]);
		free(back);
	}
}

static void test_b64_decodes_empty_input_to_empty_string(void **state)
{
	char *out = NULL;
	size_t n = 99;

	(void)state;
	assert_true(etcd_b64_decode("", 0, &out, &n));
	assert_non_null(out);
	assert_int_equal(n, 0);
	assert_string_equal(out, "");
	free(out);
}

static void test_b64_rejects_malformed_input(void **state)
{
	static const char *const bad[] = {
		"Zg=", "Zm9", "Z", "Zm9vY",  /* length not a multiple of 4 */
		"Zg==Zg==",                  /* padding in the middle */
		"Z===", "====",              /* three or four pads */
		"Zm=v",                      /* '=' before a data character */
		"Zm9v\n", "Zm 9v", "Zm9\tv", /* whitespace */
		"Zm9-", "Zm9_",              /* URL alphabet */
		"Zm9*",                      /* not base64 at all */
		"Zh==", "Zm9=",              /* bits under the padding not zero */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out = (char *)1;
		size_t n;
		char *b = exact(bad[i], strlen(bad[i]));

		assert_false(etcd_b64_decode(b, strlen(bad[i]), &out, &n));
		assert_null(out);
		free(b);
	}
}

static void test_b64_rejects_a_nul_inside_the_text(void **state)
{
	char *out;
	size_t n;

	(void)state;
	assert_false(etcd_b64_decode("Zm\0v", 4, &out, &n));
	assert_null(out);
}

/* --- prefix ends --- */

static void test_prefix_end_increments_the_last_byte(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(etcd_prefix_end(S("/a/"), out), 3);
	assert_memory_equal(out, "/a0", 3);
	assert_int_equal(etcd_prefix_end(S("/g/names/"), out), 9);
	assert_memory_equal(out, "/g/names0", 9);
}

static void test_prefix_end_drops_trailing_ff_bytes(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(etcd_prefix_end(S("a\xff"), out), 1);
	assert_memory_equal(out, "b", 1);
	assert_int_equal(etcd_prefix_end(S("x\xfe\xff\xff"), out), 2);
	assert_memory_equal(out, "x\xff", 2);
}

static void test_prefix_end_of_only_ff_bytes_is_one_nul(void **state)
{
	char out[16] = "zz";

	(void)state;
	assert_int_equal(etcd_prefix_end(S("\xff\xff"), out), 1);
	assert_int_equal(out[0], '\0');
	assert_int_equal(etcd_prefix_end("", 0, out), 1);
	assert_int_equal(out[0], '\0');
}

/* --- int64 --- */

static void test_parse_int64_reads_the_extremes_exactly(void **state)
{
	int64_t v;

	(void)state;
	assert_true(etcd_parse_int64(S("0"), &v));
	assert_true(v == 0);
	assert_true(etcd_parse_int64(S("9223372036854775807"), &v));
	assert_true(v == INT64_MAX);
	assert_true(etcd_parse_int64(S("-9223372036854775808"), &v));
	assert_true(v == INT64_MIN);
	assert_true(etcd_parse_int64(S("5628551979766709511"), &v));
	assert_true(v == 5628551979766709511LL);
	assert_true(etcd_parse_int64(S("-1"), &v));
	assert_true(v == -1);
}

static void test_parse_int64_refuses_overflow(void **state)
{
	int64_t v = 42;

	(void)state;
	assert_false(etcd_parse_int64(S("9223372036854775808"), &v));
	assert_false(etcd_parse_int64(S("-9223372036854775809"), &v));
	assert_false(etcd_parse_int64(S("18446744073709551616"), &v));
	assert_false(etcd_parse_int64(S("99999999999999999999999999999"), &v));
	assert_true(v == 42);
}

static void test_parse_int64_refuses_anything_but_digits(void **state)
{
	static const char *const bad[] = { "", "-", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "abc", "--1", "01", "-0",
					   "1-", "١" };
	int64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(etcd_parse_int64(bad[i], strlen(bad[i]), &v));
	assert_false(etcd_parse_int64(NULL, 0, &v));
	assert_false(etcd_parse_int64("12\0", 3, &v));
}

/* --- requests --- */

static void test_txn_create_if_absent_body_round_trips(void **state)
{
	struct etcd_txn t = { 0 };
	static const char key[] = "/g/names/alpha", val[] = "{\"node\":\"n1\",\"session\":\"s1\"}";
	const cJSON *c, *p, *r;
	cJSON *o;
	size_t len;
	char *body;

	(void)state;
	etcd_txn_cmp(&t, S(key), ETCD_T_CREATE, ETCD_EQUAL, 0);
	etcd_txn_put(&t, false, S(key), S(val), 5628551979766709544LL, false);
	etcd_txn_range(&t, true, S(key), NULL, 0, 0);
	body = etcd_txn_finish(&t, &len);
	o = json_of(body, &len);
	assert_int_equal(cJSON_GetArraySize(obj(o, "compare")), 1);
	assert_int_equal(cJSON_GetArraySize(obj(o, "success")), 1);
	assert_int_equal(cJSON_GetArraySize(obj(o, "failure")), 1);
	c = cJSON_GetArrayItem(obj(o, "compare"), 0);
	assert_b64_member(c, "key", S(key));
	assert_str_member(c, "target", "CREATE");
	assert_str_member(c, "result", "EQUAL");
	assert_str_member(c, "create_revision", "0");
	p = obj(cJSON_GetArrayItem(obj(o, "success"), 0), "request_put");
	assert_b64_member(p, "key", S(key));
	assert_b64_member(p, "value", S(val));
	assert_str_member(p, "lease", "5628551979766709544");
	assert_null(cJSON_GetObjectItem(p, "ignore_lease"));
	r = obj(cJSON_GetArrayItem(obj(o, "failure"), 0), "request_range");
	assert_b64_member(r, "key", S(key));
	assert_null(cJSON_GetObjectItem(r, "range_end"));
	assert_null(cJSON_GetObjectItem(r, "limit"));
	cJSON_Delete(o);
	/* finish emptied the txn */
	assert_true(t.cmp.buf == NULL && t.ncmp == 0 && t.nok == 0 && t.nfail == 0);
}

static void test_txn_body_matches_the_gateway_notes_byte_for_byte(void **state)
{
	struct etcd_txn t = { 0 };
	static const char key[] = "/g/names/alpha", val[] = "{\"node\":\"n1\",\"session\":\"s1\"}";
	size_t len;
	char *body;

	(void)state;
	etcd_txn_cmp(&t, S(key), ETCD_T_CREATE, ETCD_EQUAL, 0);
	etcd_txn_put(&t, false, S(key), S(val), 5628551979766709544LL, false);
	etcd_txn_range(&t, true, S(key), NULL, 0, 0);
	body = etcd_txn_finish(&t, &len);
	assert_string_equal(
		body,
		"{\"compare\":[{\"key\":\"L2cvbmFtZXMvYWxwaGE=\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
		"\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"L2cvbmFtZXMvYWxwaGE=\","
		"\"value\":\"eyJub2RlIjoibjEiLCJzZXNzaW9uIjoiczEifQ==\",\"lease\":\"5628551979766709544\"}}],"
		"\"failure\":[{\"request_range\":{\"key\":\"L2cvbmFtZXMvYWxwaGE=\"}}]}");
	free(body);
}

static void test_txn_compare_targets_name_their_field(void **state)
{
	static const struct {
		enum etcd_target t;
		const char *name, *field;
	} cases[] = {
		{ ETCD_T_CREATE, "CREATE", "create_revision" },
		{ ETCD_T_MOD, "MOD", "mod_revision" },
		{ ETCD_T_VERSION, "VERSION", "version" },
		{ ETCD_T_LEASE, "LEASE", "lease" },
	};
	struct etcd_txn t = { 0 };
	size_t i, len;
	cJSON *o;

	(void)state;
	for (i = 0; i < 4; i++)
		etcd_txn_cmp(&t, S("k"), cases[i].t, ETCD_GREATER, -7 - (int64_t)i);
	o = json_of(etcd_txn_finish(&t, &len), &len);
	assert_int_equal(cJSON_GetArraySize(obj(o, "compare")), 4);
	for (i = 0; i < 4; i++) {
		const cJSON *c = cJSON_GetArrayItem(obj(o, "compare"), (int)i);
		char want[8];

		snprintf(want, sizeof(want), "%d", -7 - (int)i);
		assert_str_member(c, "target", cases[i].name);
		assert_str_member(c, cases[i].field, want);
		assert_int_equal(cJSON_GetArraySize(c), 4); /* key, target, result, the field */
	}
	cJSON_Delete(o);
}

static void test_txn_compare_results_are_named(void **state)
{
	static const char *const names[] = { "EQUAL", "GREATER", "LESS", "NOT_EQUAL" };
	static const enum etcd_result res[] = { ETCD_EQUAL, ETCD_GREATER, ETCD_LESS, ETCD_NOT_EQUAL };
	struct etcd_txn t = { 0 };
	size_t i, len;
	cJSON *o;

	(void)state;
	for (i = 0; i < 4; i++)
		etcd_txn_cmp(&t, S("k"), ETCD_T_MOD, res[i], 3);
	o = json_of(etcd_txn_finish(&t, &len), &len);
	for (i = 0; i < 4; i++)
		assert_str_member(cJSON_GetArrayItem(obj(o, "compare"), (int)i), "result", names[i]);
	cJSON_Delete(o);
}

static void test_txn_value_compare_sends_base64_bytes(void **state)
{
	struct etcd_txn t = { 0 };
	static const char v[] = "a\0b\"\xff";
	const cJSON *c;
	size_t len;
	cJSON *o;

	(void)state;
	etcd_txn_cmp_value(&t, S("/k"), ETCD_NOT_EQUAL, v, sizeof(v) - 1);
	o = json_of(etcd_txn_finish(&t, &len), &len);
	c = cJSON_GetArrayItem(obj(o, "compare"), 0);
	assert_str_member(c, "target", "VALUE");
	assert_str_member(c, "result", "NOT_EQUAL");
	assert_b64_member(c, "value", v, sizeof(v) - 1);
	assert_b64_member(c, "key", S("/k"));
	cJSON_Delete(o);
}

static void test_txn_refuses_a_value_target_on_the_int64_compare(void **state)
{
	struct etcd_txn t = { 0 };
	size_t len = 7;

	(void)state;
	etcd_txn_cmp(&t, S("k"), ETCD_T_VALUE, ETCD_EQUAL, 1);
	etcd_txn_put(&t, false, S("k"), S("v"), 0, false);
	assert_null(etcd_txn_finish(&t, &len));
	assert_int_equal(len, 0);
	assert_true(t.ok.buf == NULL && t.nok == 0);
}

static void test_txn_put_with_ignore_lease_sends_no_lease(void **state)
{
	struct etcd_txn t = { 0 };
	const cJSON *p;
	size_t len;
	cJSON *o;

	(void)state;
	etcd_txn_put(&t, false, S("k"), S("v"), 99, true);
	etcd_txn_put(&t, false, S("k2"), "", 0, 0, false);
	o = json_of(etcd_txn_finish(&t, &len), &len);
	p = obj(cJSON_GetArrayItem(obj(o, "success"), 0), "request_put");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p, "ignore_lease")));
	assert_null(cJSON_GetObjectItem(p, "lease"));
	p = obj(cJSON_GetArrayItem(obj(o, "success"), 1), "request_put");
	assert_null(cJSON_GetObjectItem(p, "lease")); /* lease 0: none, detaches */
	assert_null(cJSON_GetObjectItem(p, "ignore_lease"));
	assert_b64_member(p, "value", "", 0);
	cJSON_Delete(o);
}

static void test_txn_delete_and_range_send_range_end_and_limit(void **state)
{
	struct etcd_txn t = { 0 };
	char end[16];
	size_t elen = etcd_prefix_end(S("/g/"), end), len;
	const cJSON *d, *r;
	cJSON *o;

	(void)state;
	etcd_txn_delete(&t, false, S("/g/"), end, elen);
	etcd_txn_delete(&t, false, S("/g/x"), NULL, 0);
	etcd_txn_range(&t, false, S("/g/"), end, elen, 1000);
	o = json_of(etcd_txn_finish(&t, &len), &len);
	d = obj(cJSON_GetArrayItem(obj(o, "success"), 0), "request_delete_range");
	assert_b64_member(d, "key", S("/g/"));
	assert_b64_member(d, "range_end", S("/g0"));
	d = obj(cJSON_GetArrayItem(obj(o, "success"), 1), "request_delete_range");
	assert_null(cJSON_GetObjectItem(d, "range_end"));
	r = obj(cJSON_GetArrayItem(obj(o, "success"), 2), "request_range");
	assert_b64_member(r, "range_end", S("/g0"));
	assert_str_member(r, "limit", "1000");
	cJSON_Delete(o);
}

static void test_txn_failure_ops_go_to_failure_in_order(void **state)
{
	struct etcd_txn t = { 0 };
	size_t len;
	cJSON *o;

	(void)state;
	etcd_txn_put(&t, true, S("a"), S("1"), 0, false);
	etcd_txn_delete(&t, true, S("b"), NULL, 0);
	etcd_txn_range(&t, true, S("c"), NULL, 0, 0);
	assert_int_equal(t.nfail, 3);
	assert_int_equal(t.nok, 0);
	o = json_of(etcd_txn_finish(&t, &len), &len);
	assert_int_equal(cJSON_GetArraySize(obj(o, "success")), 0);
	assert_int_equal(cJSON_GetArraySize(obj(o, "compare")), 0);
	assert_int_equal(cJSON_GetArraySize(obj(o, "failure")), 3);
	assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(obj(o, "failure"), 0), "request_put"));
	assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(obj(o, "failure"), 1), "request_delete_range"));
	assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(obj(o, "failure"), 2), "request_range"));
	cJSON_Delete(o);
}

static void test_txn_empty_gives_three_empty_arrays(void **state)
{
	struct etcd_txn t = { 0 };
	size_t len;
	char *body;

	(void)state;
	body = etcd_txn_finish(&t, &len);
	assert_string_equal(body, "{\"compare\":[],\"success\":[],\"failure\":[]}");
	assert_int_equal(len, strlen(body));
	free(body);
}

static void test_txn_free_drops_a_txn_being_built(void **state)
{
	struct etcd_txn t = { 0 };

	(void)state;
	etcd_txn_cmp(&t, S("k"), ETCD_T_MOD, ETCD_EQUAL, 1);
	etcd_txn_put(&t, false, S("k"), S("v"), 0, false);
	etcd_txn_put(&t, true, S("k"), S("v"), 0, false);
	etcd_txn_free(&t);
	assert_true(t.cmp.buf == NULL && t.ok.buf == NULL && t.fail.buf == NULL);
	etcd_txn_free(&t); /* twice is harmless */
}

static void test_txn_with_the_maximum_ops_has_them_all(void **state)
{
	struct etcd_txn t = { 0 };
	size_t i, len;
	cJSON *o;

	(void)state;
	for (i = 0; i < ETCD_MAX_TXN_OPS; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "/g/names/%zu", i);
		etcd_txn_cmp(&t, key, (size_t)n, ETCD_T_CREATE, ETCD_EQUAL, 0);
		etcd_txn_put(&t, false, key, (size_t)n, key, (size_t)n, INT64_MAX, false);
		etcd_txn_range(&t, true, key, (size_t)n, NULL, 0, 0);
	}
	o = json_of(etcd_txn_finish(&t, &len), &len);
	assert_int_equal(cJSON_GetArraySize(obj(o, "compare")), ETCD_MAX_TXN_OPS);
	assert_int_equal(cJSON_GetArraySize(obj(o, "success")), ETCD_MAX_TXN_OPS);
	assert_int_equal(cJSON_GetArraySize(obj(o, "failure")), ETCD_MAX_TXN_OPS);
	assert_str_member(obj(cJSON_GetArrayItem(obj(o, "success"), 127), "request_put"), "lease",
			  "9223372036854775807");
	assert_b64_member(cJSON_GetArrayItem(obj(o, "compare"), 127), "key", S("/g/names/127"));
	cJSON_Delete(o);
}

static void test_range_body_leaves_out_defaults(void **state)
{
	size_t len;
	char *body;

	(void)state;
	body = etcd_range_body(S("/g/names/alpha"), NULL, 0, 0, false, 0, &len);
	assert_string_equal(body, "{\"key\":\"L2cvbmFtZXMvYWxwaGE=\"}");
	assert_int_equal(len, strlen(body));
	free(body);
}

static void test_range_body_sends_every_option(void **state)
{
	char end[16];
	size_t elen = etcd_prefix_end(S("/g/names/"), end), len;
	cJSON *o;

	(void)state;
	o = json_of(etcd_range_body(S("/g/names/"), end, elen, 2, true, 9007199254740993LL, &len), &len);
	assert_b64_member(o, "key", S("/g/names/"));
	assert_b64_member(o, "range_end", S("/g/names0"));
	assert_str_member(o, "range_end", "L2cvbmFtZXMw"); /* as in the notes */
	assert_str_member(o, "limit", "2");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "serializable")));
	assert_str_member(o, "revision", "9007199254740993");
	cJSON_Delete(o);
}

static void test_watch_body_asks_for_progress_and_not_prev_kv(void **state)
{
	const cJSON *c;
	size_t len;
	cJSON *o;

	(void)state;
	o = json_of(etcd_watch_body(S("/g/"), S("/g0"), 18, &len), &len);
	c = obj(o, "create_request");
	assert_b64_member(c, "key", S("/g/"));
	assert_b64_member(c, "range_end", S("/g0"));
	assert_str_member(c, "start_revision", "18");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(c, "progress_notify")));
	assert_null(cJSON_GetObjectItem(c, "prev_kv"));
	cJSON_Delete(o);
	o = json_of(etcd_watch_body(S("/g/"), NULL, 0, 0, &len), &len);
	c = obj(o, "create_request");
	assert_null(cJSON_GetObjectItem(c, "start_revision"));
	assert_null(cJSON_GetObjectItem(c, "range_end"));
	cJSON_Delete(o);
}

static void test_lease_bodies_send_int64s_as_strings(void **state)
{
	size_t len;
	char *b;

	(void)state;
	b = etcd_lease_grant_body(10, &len);
	assert_string_equal(b, "{\"TTL\":\"10\"}");
	assert_int_equal(len, strlen(b));
	free(b);
	b = etcd_lease_id_body(5628551979766709511LL, &len);
	assert_string_equal(b, "{\"ID\":\"5628551979766709511\"}");
	free(b);
	b = etcd_lease_id_body(INT64_MIN, &len);
	assert_string_equal(b, "{\"ID\":\"-9223372036854775808\"}");
	free(b);
}

static void test_binary_keys_travel_as_base64(void **state)
{
	static const char key[] = "\"\\\n\0\x01\xff\xfe/";
	size_t len;
	cJSON *o;

	(void)state;
	o = json_of(etcd_range_body(key, sizeof(key) - 1, NULL, 0, 0, false, 0, &len), &len);
	assert_b64_member(o, "key", key, sizeof(key) - 1);
	cJSON_Delete(o);
}

/* --- range answers --- */

static void test_range_answer_from_the_notes_decodes_its_kvs(void **state)
{
	struct etcd_range r;

	(void)state;
	assert_int_equal(range_of(S(range_page), &r, NULL), ETCD_OK);
	assert_true(r.h.revision == 8 && r.h.raft_term == 3);
	assert_true(r.more);
	assert_true(r.count == 5);
	assert_int_equal(r.nkvs, 2);
	assert_int_equal(r.kvs[0].klen, 14);
	assert_string_equal(r.kvs[0].key, "/g/names/alpha");
	assert_string_equal(r.kvs[0].value, "{\"node\":\"n1\",\"session\":\"s1\"}");
	assert_int_equal(r.kvs[0].vlen, strlen(r.kvs[0].value));
	assert_true(r.kvs[0].create_revision == 2 && r.kvs[0].mod_revision == 4 && r.kvs[0].version == 2);
	assert_true(r.kvs[0].lease == 5628551979766709544LL);
	assert_string_equal(r.kvs[1].key, "/g/names/beta");
	assert_string_equal(r.kvs[1].value, "v2");
	assert_true(r.kvs[1].lease == 0); /* absent: no lease */
	etcd_range_free(&r);
	assert_null(r.kvs);
	etcd_range_free(&r);
}

static void test_range_answer_without_kvs_is_empty(void **state)
{
	struct etcd_range r;

	(void)state;
	assert_int_equal(range_of(S(range_none), &r, NULL), ETCD_OK);
	assert_true(r.h.revision == 2);
	assert_int_equal(r.nkvs, 0);
	assert_null(r.kvs);
	assert_false(r.more);
	assert_true(r.count == 0);
	etcd_range_free(&r);
	assert_int_equal(range_of(S("{\"header\":{},\"kvs\":[],\"count\":\"0\"}"), &r, NULL), ETCD_OK);
	assert_int_equal(r.nkvs, 0);
	etcd_range_free(&r);
	assert_int_equal(range_of(S("{}"), &r, NULL), ETCD_OK);
	assert_true(r.h.revision == 0);
	etcd_range_free(&r);
}

static void test_range_kv_without_value_has_empty_value(void **state)
{
	struct etcd_range r;

	(void)state;
	assert_int_equal(range_of(S("{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"3\"}]}"), &r, NULL), ETCD_OK);
	assert_int_equal(r.nkvs, 1);
	assert_non_null(r.kvs[0].value);
	assert_string_equal(r.kvs[0].value, "");
	assert_int_equal(r.kvs[0].vlen, 0);
	assert_true(r.kvs[0].create_revision == 0 && r.kvs[0].version == 0);
	etcd_range_free(&r);
}

static void test_range_keeps_binary_keys_and_values(void **state)
{
	struct etcd_range r;

	(void)state;
	/* key "a\0b", value "\xff\x00" */
	assert_int_equal(range_of(S("{\"kvs\":[{\"key\":\"YQBi\",\"value\":\"/wA=\"}]}"), &r, NULL), ETCD_OK);
	assert_int_equal(r.kvs[0].klen, 3);
	assert_memory_equal(r.kvs[0].key, "a\0b", 4);
	assert_int_equal(r.kvs[0].vlen, 2);
	assert_memory_equal(r.kvs[0].value, "\xff\0\0", 3);
	etcd_range_free(&r);
}

static void test_range_refuses_a_kv_without_a_usable_key(void **state)
{
	static const char *const bad[] = {
		"{\"kvs\":[{\"value\":\"djE=\"}]}",
		"{\"kvs\":[{\"key\":\"\"}]}",
		"{\"kvs\":[{\"key\":\"YQ\"}]}",
		"{\"kvs\":[{\"key\":\"Y Q==\"}]}",
		"{\"kvs\":[{\"key\":null}]}",
		"{\"kvs\":[{\"key\":\"YQ==\"},{\"key\":\"YQ==\",\"value\":\"djE\"}]}",
	};
	struct etcd_range r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(range_of(bad[i], strlen(bad[i]), &r, NULL), ETCD_E_GARBAGE);
		assert_null(r.kvs);
		assert_int_equal(r.nkvs, 0);
	}
}

static void test_range_refuses_wrong_types_for_every_field(void **state)
{
	static const char *const bad[] = {
		"{\"header\":\"x\"}",
		"{\"header\":[]}",
		"{\"header\":{\"revision\":true}}",
		"{\"header\":{\"revision\":{}}}",
		"{\"header\":{\"revision\":\"abc\"}}",
		"{\"header\":{\"revision\":\"1.5\"}}",
		"{\"header\":{\"revision\":null}}",
		"{\"header\":{\"raft_term\":[]}}",
		"{\"kvs\":{}}",
		"{\"kvs\":\"x\"}",
		"{\"kvs\":[\"x\"]}",
		"{\"kvs\":[[]]}",
		"{\"kvs\":[null]}",
		"{\"kvs\":[{\"key\":5}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"value\":7}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"value\":{}}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"x\"}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":1.5}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"version\":null}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"lease\":false}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"lease\":\"\"}]}",
		"{\"more\":\"true\"}",
		"{\"more\":1}",
		"{\"count\":\"five\"}",
		"{\"count\":true}",
	};
	struct etcd_range r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum etcd_rc rc = range_of(bad[i], strlen(bad[i]), &r, NULL);
		if (rc != ETCD_E_GARBAGE)
			fail_msg("%s: rc %d", bad[i], rc);
	}
}

static void test_top_level_that_is_not_an_object_is_garbage(void **state)
{
	static const char *const bad[] = { "[]", "\"x\"", "5", "null", "true", "{} {}", "{}x", "{\"a\":1}]", "" };
	struct etcd_range r;
	struct etcd_txn_result t;
	struct etcd_watch_msg m;
	int64_t id, ttl;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);
		assert_int_equal(range_of(bad[i], n, &r, NULL), ETCD_E_GARBAGE);
		assert_int_equal(txn_of(bad[i], n, &t, NULL), ETCD_E_GARBAGE);
		assert_int_equal(watch_of(bad[i], n, &m, NULL), ETCD_E_GARBAGE);
		assert_int_equal(lease_of(bad[i], n, NULL, &id, &ttl, NULL), ETCD_E_GARBAGE);
	}
	assert_int_equal(etcd_parse_range(NULL, 0, &r, NULL), ETCD_E_GARBAGE);
}

static void test_range_answer_with_error_member_is_an_etcd_error(void **state)
{
	struct etcd_range r;
	struct etcd_error e;

	(void)state;
	assert_int_equal(range_of(S(unary_error), &r, &e), ETCD_E_ERROR);
	assert_int_equal(e.code, ETCD_GRPC_NOT_FOUND);
	assert_string_equal(e.message, "etcdserver: requested lease not found");
	assert_int_equal(r.nkvs, 0);
	assert_int_equal(range_of(S(unary_error), &r, NULL), ETCD_E_ERROR); /* err may be NULL */
	assert_int_equal(range_of(S("{\"error\":5}"), &r, &e), ETCD_E_GARBAGE);
}

/* --- numbers --- */

static void test_int64_fields_accept_numbers_only_below_2_53(void **state)
{
	struct etcd_range r;

	(void)state;
	assert_int_equal(range_of(S("{\"header\":{\"revision\":9007199254740991},\"count\":3}"), &r, NULL), ETCD_OK);
	assert_true(r.h.revision == 9007199254740991LL);
	assert_true(r.count == 3);
	etcd_range_free(&r);
	assert_int_equal(range_of(S("{\"header\":{\"revision\":9007199254740992}}"), &r, NULL), ETCD_E_GARBAGE);
	assert_int_equal(range_of(S("{\"header\":{\"revision\":5628551979766709511}}"), &r, NULL), ETCD_E_GARBAGE);
	assert_int_equal(range_of(S("{\"header\":{\"revision\":1e300}}"), &r, NULL), ETCD_E_GARBAGE);
	assert_int_equal(range_of(S("{\"header\":{\"revision\":1e999}}"), &r, NULL), ETCD_E_GARBAGE);
	assert_int_equal(range_of(S("{\"header\":{\"revision\":2.5}}"), &r, NULL), ETCD_E_GARBAGE);
}

static void test_huge_int64_strings_are_garbage(void **state)
{
	struct etcd_range r;
	int64_t id, ttl;

	(void)state;
	assert_int_equal(range_of(S("{\"header\":{\"revision\":\"9223372036854775807\"}}"), &r, NULL), ETCD_OK);
	assert_true(r.h.revision == INT64_MAX);
	etcd_range_free(&r);
	assert_int_equal(range_of(S("{\"header\":{\"revision\":\"9223372036854775808\"}}"), &r, NULL),
			 ETCD_E_GARBAGE);
	assert_int_equal(range_of(S("{\"count\":\"123456789012345678901234567890\"}"), &r, NULL), ETCD_E_GARBAGE);
	assert_int_equal(lease_of(S("{\"ID\":\"18446744073709551615\"}"), NULL, &id, &ttl, NULL), ETCD_E_GARBAGE);
}

static void test_negative_revisions_and_counts_are_garbage(void **state)
{
	static const char *const bad[] = {
		"{\"header\":{\"revision\":\"-1\"}}",
		"{\"header\":{\"raft_term\":\"-2\"}}",
		"{\"count\":\"-1\"}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"-5\"}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":-5}]}",
		"{\"kvs\":[{\"key\":\"YQ==\",\"version\":\"-1\"}]}",
	};
	struct etcd_range r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(range_of(bad[i], strlen(bad[i]), &r, NULL), ETCD_E_GARBAGE);
}

/* --- txn answers --- */

static void test_txn_answer_when_name_was_free_succeeded_with_a_put(void **state)
{
	struct etcd_txn_result t;

	(void)state;
	assert_int_equal(txn_of(S(txn_absent), &t, NULL), ETCD_OK);
	assert_true(t.succeeded);
	assert_true(t.h.revision == 2 && t.h.raft_term == 2);
	assert_int_equal(t.nresp, 1);
	assert_int_equal(t.resp[0].kind, ETCD_RESP_PUT);
	etcd_txn_result_free(&t);
	assert_null(t.resp);
}

static void test_txn_answer_when_name_was_taken_gives_the_owner(void **state)
{
	struct etcd_txn_result t;
	const struct etcd_range *r;

	(void)state;
	assert_int_equal(txn_of(S(txn_present), &t, NULL), ETCD_OK);
	assert_false(t.succeeded); /* absent */
	assert_int_equal(t.nresp, 1);
	assert_int_equal(t.resp[0].kind, ETCD_RESP_RANGE);
	r = &t.resp[0].range;
	assert_true(r->h.revision == 2 && r->count == 1);
	assert_int_equal(r->nkvs, 1);
	assert_string_equal(r->kvs[0].key, "/g/names/alpha");
	assert_string_equal(r->kvs[0].value, "{\"node\":\"n1\",\"session\":\"s1\"}");
	assert_true(r->kvs[0].lease == 5628551979766709544LL);
	etcd_txn_result_free(&t);
}

static void test_txn_answer_keeps_branch_order_and_deleted_counts(void **state)
{
	static const char body[] = "{\"header\":{\"revision\":\"9\"},\"succeeded\":true,\"responses\":["
				   "{\"response_delete_range\":{\"header\":{},\"deleted\":\"5\"}},"
				   "{\"response_put\":{\"header\":{}}},"
				   "{\"response_range\":{\"header\":{}}},"
				   "{\"response_delete_range\":{\"header\":{}}},"
				   "{\"response_txn\":{\"header\":{}}}]}";
	struct etcd_txn_result t;

	(void)state;
	assert_int_equal(txn_of(S(body), &t, NULL), ETCD_OK);
	assert_int_equal(t.nresp, 5);
	assert_int_equal(t.resp[0].kind, ETCD_RESP_DELETE);
	assert_true(t.resp[0].deleted == 5);
	assert_int_equal(t.resp[1].kind, ETCD_RESP_PUT);
	assert_int_equal(t.resp[2].kind, ETCD_RESP_RANGE);
	assert_int_equal(t.resp[2].range.nkvs, 0);
	assert_int_equal(t.resp[3].kind, ETCD_RESP_DELETE);
	assert_true(t.resp[3].deleted == 0);
	assert_int_equal(t.resp[4].kind, ETCD_RESP_TXN);
	etcd_txn_result_free(&t);
}

static void test_txn_answer_refuses_wrong_types_for_every_field(void **state)
{
	static const char *const bad[] = {
		"{\"succeeded\":\"true\"}",
		"{\"succeeded\":1}",
		"{\"header\":5}",
		"{\"responses\":{}}",
		"{\"responses\":[5]}",
		"{\"responses\":[{}]}",
		"{\"responses\":[{\"response_bogus\":{}}]}",
		"{\"responses\":[{\"response_put\":1}]}",
		"{\"responses\":[{\"response_range\":[]}]}",
		"{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"!!!!\"}]}}]}",
		"{\"responses\":[{\"response_range\":{\"count\":\"-3\"}}]}",
		"{\"responses\":[{\"response_delete_range\":{\"deleted\":\"x\"}}]}",
		"{\"responses\":[{\"response_delete_range\":{\"deleted\":\"-1\"}}]}",
		"{\"responses\":[{\"response_delete_range\":\"5\"}]}",
		"{\"responses\":[{\"response_txn\":[]}]}",
		"{\"responses\":[{\"response_put\":{}},7]}",
	};
	struct etcd_txn_result t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum etcd_rc rc = txn_of(bad[i], strlen(bad[i]), &t, NULL);
		if (rc != ETCD_E_GARBAGE)
			fail_msg("%s: rc %d", bad[i], rc);
		assert_null(t.resp);
	}
}

static void test_txn_answer_with_lease_not_found_is_an_etcd_error(void **state)
{
	struct etcd_txn_result t;
	struct etcd_error e;

	(void)state;
	assert_int_equal(txn_of(S(unary_error), &t, &e), ETCD_E_ERROR);
	assert_int_equal(e.code, 5);
	assert_int_equal(t.nresp, 0);
}

/* --- lease answers --- */

static void test_lease_grant_answer_keeps_the_id_exact(void **state)
{
	struct etcd_header h;
	int64_t id, ttl;

	(void)state;
	assert_int_equal(lease_of(S(lease_grant), &h, &id, &ttl, NULL), ETCD_OK);
	assert_true(id == 5628551979766709511LL);
	assert_true(ttl == 10);
	assert_true(h.revision == 2);
}

static void test_keepalive_line_reads_the_ttl(void **state)
{
	int64_t id, ttl;

	(void)state;
	assert_int_equal(lease_of(S(keepalive_ok), NULL, &id, &ttl, NULL), ETCD_OK);
	assert_true(id == 5628551979766709523LL);
	assert_true(ttl == 10);
}

static void test_keepalive_line_without_ttl_means_the_lease_is_gone(void **state)
{
	int64_t id, ttl;

	(void)state;
	assert_int_equal(lease_of(S(keepalive_gone), NULL, &id, &ttl, NULL), ETCD_OK);
	assert_true(id == 12345);
	assert_true(ttl == -1);
}

static void test_timetolive_of_an_unknown_lease_reads_minus_one(void **state)
{
	int64_t id, ttl;

	(void)state;
	assert_int_equal(lease_of(S(timetolive_unknown), NULL, &id, &ttl, NULL), ETCD_OK);
	assert_true(ttl == -1);
	assert_int_equal(lease_of(S("{\"ID\":\"1\",\"TTL\":\"-2\"}"), NULL, &id, &ttl, NULL), ETCD_E_GARBAGE);
	assert_true(ttl == -1 && id == 0);
}

static void test_lease_answer_refuses_wrong_types(void **state)
{
	static const char *const bad[] = {
		"{\"ID\":\"x\"}",   "{\"ID\":true}",          "{\"TTL\":[]}",
		"{\"TTL\":\"1e3\"}", "{\"result\":[]}",        "{\"result\":\"x\"}",
		"{\"result\":{\"header\":1}}", "{\"result\":{\"TTL\":{}}}", "{\"ID\":1.5}",
	};
	int64_t id, ttl;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(lease_of(bad[i], strlen(bad[i]), NULL, &id, &ttl, NULL), ETCD_E_GARBAGE);
}

static void test_keepalive_error_line_is_an_etcd_error(void **state)
{
	struct etcd_error e;
	int64_t id = 3, ttl = 3;

	(void)state;
	assert_int_equal(lease_of(S(stream_error), NULL, &id, &ttl, &e), ETCD_E_ERROR);
	assert_int_equal(e.code, ETCD_GRPC_UNAVAILABLE);
	assert_int_equal(e.http_status, 503);
	assert_string_equal(e.message, "etcdserver: no leader");
	assert_true(id == 0 && ttl == -1);
}

static void test_lease_grant_with_empty_error_field_is_not_an_error(void **state)
{
	int64_t id, ttl;

	(void)state;
	assert_int_equal(lease_of(S("{\"ID\":\"7\",\"TTL\":\"2\",\"error\":\"\"}"), NULL, &id, &ttl, NULL), ETCD_OK);
	assert_true(id == 7 && ttl == 2);
}

/* --- watch lines --- */

static void test_watch_created_line_carries_the_start_revision(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S(watch_created), &m, NULL), ETCD_OK);
	assert_true(m.created);
	assert_false(m.canceled);
	assert_true(m.watch_id == 0); /* absent for watch 0 */
	assert_true(m.h.revision == 11 && m.h.raft_term == 2);
	assert_int_equal(m.nevents, 0);
	etcd_watch_msg_free(&m);
}

static void test_watch_put_event_has_no_type(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S(watch_put), &m, NULL), ETCD_OK);
	assert_true(m.watch_id == 1);
	assert_int_equal(m.nevents, 1);
	assert_false(m.events[0].del);
	assert_string_equal(m.events[0].kv.key, "/g/w/a");
	assert_string_equal(m.events[0].kv.value, "v1");
	assert_true(m.events[0].kv.mod_revision == 12 && m.events[0].kv.version == 1);
	assert_true(m.events[0].kv.lease == 5628551979766709570LL);
	etcd_watch_msg_free(&m);
}

static void test_watch_delete_events_keep_their_order(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S(watch_deletes), &m, NULL), ETCD_OK);
	assert_int_equal(m.nevents, 2);
	assert_true(m.events[0].del && m.events[1].del);
	assert_string_equal(m.events[0].kv.key, "/g/w/a");
	assert_string_equal(m.events[1].kv.key, "/g/w/b");
	assert_true(m.events[1].kv.mod_revision == 17);
	assert_string_equal(m.events[1].kv.value, "");
	etcd_watch_msg_free(&m);
}

static void test_watch_explicit_put_type_and_enum_numbers_are_read(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S("{\"result\":{\"events\":[{\"type\":\"PUT\",\"kv\":{\"key\":\"YQ==\"}},"
				    "{\"type\":1,\"kv\":{\"key\":\"YQ==\"}},{\"type\":0,\"kv\":{\"key\":\"YQ==\"}}]}}"),
				  &m, NULL),
			 ETCD_OK);
	assert_false(m.events[0].del);
	assert_true(m.events[1].del);
	assert_false(m.events[2].del);
	etcd_watch_msg_free(&m);
}

static void test_watch_canceled_by_compaction_reads_compact_revision(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S(watch_compacted), &m, NULL), ETCD_OK);
	assert_true(m.canceled);
	assert_false(m.created);
	assert_true(m.compact_revision == 5);
	assert_true(m.watch_id == 77);
	assert_true(m.h.revision == 0); /* absent on a canceled watch */
	etcd_watch_msg_free(&m);
}

static void test_watch_refused_create_has_watch_id_minus_one(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S("{\"result\":{\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,"
				    "\"cancel_reason\":\"mvcc: duplicate watch ID provided on the WatchStream\"}}"),
				  &m, NULL),
			 ETCD_OK);
	assert_true(m.watch_id == -1 && m.created && m.canceled);
	etcd_watch_msg_free(&m);
}

static void test_watch_progress_notification_is_an_empty_message(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(S(watch_progress), &m, NULL), ETCD_OK);
	assert_true(m.h.revision == 17);
	assert_false(m.created || m.canceled);
	assert_int_equal(m.nevents, 0);
	assert_null(m.events);
	etcd_watch_msg_free(&m);
}

static void test_watch_error_line_is_a_streaming_error(void **state)
{
	struct etcd_watch_msg m;
	struct etcd_error e;

	(void)state;
	assert_int_equal(watch_of(S(stream_error), &m, &e), ETCD_E_ERROR);
	assert_int_equal(e.code, 14);
	assert_int_equal(e.http_status, 503);
	assert_string_equal(e.message, "etcdserver: no leader");
	assert_int_equal(m.nevents, 0);
}

static void test_watch_line_with_or_without_newline_reads_the_same(void **state)
{
	struct etcd_watch_msg m;

	(void)state;
	assert_int_equal(watch_of(watch_put, sizeof(watch_put) - 2, &m, NULL), ETCD_OK);
	assert_int_equal(m.nevents, 1);
	etcd_watch_msg_free(&m);
	assert_int_equal(watch_of(S("{\"result\":{}}\r\n"), &m, NULL), ETCD_OK);
	etcd_watch_msg_free(&m);
}

static void test_watch_two_lines_run_together_are_garbage(void **state)
{
	struct etcd_watch_msg m;
	char two[2 * sizeof(watch_put)];

	(void)state;
	snprintf(two, sizeof(two), "%s%s", watch_put, watch_put);
	assert_int_equal(watch_of(two, strlen(two), &m, NULL), ETCD_E_GARBAGE);
}

static void test_watch_refuses_wrong_types_for_every_field(void **state)
{
	static const char *const bad[] = {
		"{}",
		"{\"result\":[]}",
		"{\"result\":\"x\"}",
		"{\"result\":null}",
		"{\"result\":{\"header\":[]}}",
		"{\"result\":{\"watch_id\":\"z\"}}",
		"{\"result\":{\"watch_id\":\"-2\"}}",
		"{\"result\":{\"created\":1}}",
		"{\"result\":{\"canceled\":\"true\"}}",
		"{\"result\":{\"compact_revision\":\"-5\"}}",
		"{\"result\":{\"compact_revision\":{}}}",
		"{\"result\":{\"events\":{}}}",
		"{\"result\":{\"events\":\"x\"}}",
		"{\"result\":{\"events\":[1]}}",
		"{\"result\":{\"events\":[{}]}}",
		"{\"result\":{\"events\":[{\"kv\":5}]}}",
		"{\"result\":{\"events\":[{\"kv\":{}}]}}",
		"{\"result\":{\"events\":[{\"type\":\"BOGUS\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":true,\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":2,\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"type\":\"delete\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\"}},{\"kv\":{\"key\":\"YQ=\"}}]}}",
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"1x\"}}]}}",
	};
	struct etcd_watch_msg m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum etcd_rc rc = watch_of(bad[i], strlen(bad[i]), &m, NULL);
		if (rc != ETCD_E_GARBAGE)
			fail_msg("%s: rc %d", bad[i], rc);
		assert_null(m.events);
		assert_int_equal(m.nevents, 0);
	}
}

static void test_watch_line_with_10000_events_reads_them_all(void **state)
{
	enum { N = 10000 };
	struct jw w = { 0 };
	struct etcd_watch_msg m;
	size_t i, len;
	char *line;

	(void)state;
	jw_lit(&w, "{\"result\":{\"header\":{\"revision\":\"345\"},\"events\":[");
	for (i = 0; i < N; i++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "/g/names/n%05zu", i);
		jw_lit(&w, i ? ",{" : "{");
		if (i % 2)
			jw_lit(&w, "\"type\":\"DELETE\",");
		jw_lit(&w, "\"kv\":{\"key\":\"");
		etcd_b64_put(&w, key, (size_t)n);
		jw_lit(&w, "\",\"mod_revision\":\"345\"}}");
	}
	jw_lit(&w, "]}}\n");
	line = jw_finish(&w, &len);
	assert_non_null(line);
	assert_int_equal(watch_of(line, len, &m, NULL), ETCD_OK);
	free(line);
	assert_int_equal(m.nevents, N);
	for (i = 0; i < N; i++) {
		char key[32];
		snprintf(key, sizeof(key), "/g/names/n%05zu", i);
		assert_string_equal(m.events[i].kv.key, key);
		assert_int_equal(m.events[i].del, i % 2 == 1);
		assert_true(m.events[i].kv.mod_revision == 345);
	}
	etcd_watch_msg_free(&m);
}

/* --- hostile input --- */

static const char *const samples[] = {
	txn_present, txn_absent,	range_page,    range_none,	  lease_grant,	keepalive_ok, keepalive_gone,
	timetolive_unknown, watch_created, watch_put, watch_deletes, watch_compacted, watch_progress, stream_error,
	unary_error,
};

static void test_answer_torn_at_every_byte_is_garbage(void **state)
{
	size_t s;

	(void)state;
	for (s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
		size_t n = strlen(samples[s]), cut;
		while (n && samples[s][n - 1] == '\n')
			n--; /* a line's newline may be lost without harm */
		for (cut = 0; cut < n; cut++) {
			struct etcd_range r;
			struct etcd_txn_result t;
			struct etcd_watch_msg m;
			struct etcd_error e;
			int64_t id, ttl;

			assert_int_equal(range_of(samples[s], cut, &r, NULL), ETCD_E_GARBAGE);
			assert_int_equal(txn_of(samples[s], cut, &t, NULL), ETCD_E_GARBAGE);
			assert_int_equal(watch_of(samples[s], cut, &m, NULL), ETCD_E_GARBAGE);
			assert_int_equal(lease_of(samples[s], cut, NULL, &id, &ttl, NULL), ETCD_E_GARBAGE);
			{
				char *b = exact(samples[s], cut);
				etcd_parse_error(b, cut, 502, &e);
				free(b);
			}
			assert_int_equal(e.code, 0);
			assert_int_equal(e.http_status, 502);
			assert_true(strlen(e.message) < sizeof(e.message));
		}
	}
}

static void test_random_garbage_never_crashes_or_leaks(void **state)
{
	static const char alphabet[] = "{}[]\":,0123456789-+.eE truefalsnl\\u/=YQ\n\t";
	char buf[96];
	int i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		size_t n = (size_t)(rnd() % sizeof(buf)), k;
		for (k = 0; k < n; k++) {
			uint64_t r = rnd();
			buf[k] = (r & 3) ? alphabet[(r >> 8) % (sizeof(alphabet) - 1)] : (char)(r >> 16);
		}
		parse_all(buf, n);
	}
}

static void test_mutated_answers_never_crash_or_leak(void **state)
{
	static const char junk[] = "{}[]\":,0-9.e\\u\0\xff x=";
	int i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		const char *s = samples[rnd() % (sizeof(samples) / sizeof(samples[0]))];
		size_t n = strlen(s), k, edits = 1 + rnd() % 3;
		char *b = exact(s, n);

		for (k = 0; k < edits; k++)
			b[rnd() % n] = junk[rnd() % (sizeof(junk) - 1)];
		parse_all(b, n);
		free(b);
	}
}

static void test_deep_nesting_is_garbage_not_a_crash(void **state)
{
	enum { D = 100000 };
	char *b = malloc(2 * D + 16);
	size_t n = 0, i;

	(void)state;
	assert_non_null(b);
	n += (size_t)sprintf(b, "{\"result\":");
	for (i = 0; i < D; i++)
		b[n++] = '[';
	for (i = 0; i < D; i++)
		b[n++] = ']';
	b[n++] = '}';
	assert_int_equal(parse_all(b, n), 0);
	free(b);
}

/* --- etcd_parse_error --- */

static void test_parse_error_reads_the_unary_shape(void **state)
{
	struct etcd_error e;
	char *b = exact(S(unary_error));

	(void)state;
	etcd_parse_error(b, sizeof(unary_error) - 1, 404, &e);
	free(b);
	assert_int_equal(e.code, ETCD_GRPC_NOT_FOUND);
	assert_int_equal(e.http_status, 404);
	assert_string_equal(e.message, "etcdserver: requested lease not found");
	etcd_parse_error(S("{\"error\":\"etcdserver: no leader\",\"code\":14}"), 503, &e);
	assert_int_equal(e.code, 14);
	assert_string_equal(e.message, "etcdserver: no leader"); /* from "error" when no "message" */
}

static void test_parse_error_reads_the_streaming_shape_and_its_http_code(void **state)
{
	struct etcd_error e;

	(void)state;
	etcd_parse_error(S(stream_error), 200, &e);
	assert_int_equal(e.code, 14);
	assert_int_equal(e.http_status, 503);
	assert_string_equal(e.message, "etcdserver: no leader");
	etcd_parse_error(S("{\"error\":{\"grpc_code\":14,\"http_code\":9999}}"), 200, &e);
	assert_int_equal(e.http_status, 200); /* not a status: the caller's stays */
	assert_string_equal(e.message, "");
}

static void test_parse_error_of_html_says_what_came(void **state)
{
	struct etcd_error e;

	(void)state;
	etcd_parse_error(S("<html><body>502 Bad Gateway</body></html>"), 502, &e);
	assert_int_equal(e.code, 0);
	assert_int_equal(e.http_status, 502);
	assert_non_null(strstr(e.message, "etcd answered HTTP 502 with no etcd error"));
	assert_non_null(strstr(e.message, "Bad Gateway"));
}

static void test_parse_error_of_an_empty_body_says_so(void **state)
{
	struct etcd_error e;

	(void)state;
	etcd_parse_error(NULL, 0, 502, &e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.message, "etcd answered HTTP 502 with no etcd error (empty body)");
	etcd_parse_error(S("{\"health\":\"false\"}"), 503, &e);
	assert_int_equal(e.code, 0);
	assert_non_null(strstr(e.message, "etcd answered HTTP 503 with no etcd error"));
}

static void test_parse_error_cuts_long_messages_and_terminates_them(void **state)
{
	struct etcd_error e;
	char body[1200], *b;
	int n;

	(void)state;
	n = snprintf(body, sizeof(body), "{\"error\":\"x\",\"message\":\"%0800d\",\"code\":3}", 0);
	b = exact(body, (size_t)n);
	etcd_parse_error(b, (size_t)n, 400, &e);
	assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
	assert_int_equal(e.code, 3);
	memset(body, 'A', 1000);
	etcd_parse_error(body, 1000, 500, &e);
	assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
	free(b);
}

static void test_parse_error_cuts_at_a_character_boundary(void **state)
{
	struct etcd_error e;
	char body[400];
	int n;

	(void)state;
	/* 158 bytes of 'a', then "é" (2 bytes): only 159 fit, so the é goes */
	n = snprintf(body, sizeof(body), "{\"error\":\"%.*s\xc3\xa9\"}", 158,
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	etcd_parse_error(body, (size_t)n, 400, &e);
	assert_int_equal(strlen(e.message), 158);
	n = snprintf(body, sizeof(body), "{\"error\":\"%.*s\xc3\xa9\"}", 157,
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	etcd_parse_error(body, (size_t)n, 400, &e);
	assert_int_equal(strlen(e.message), 159);
	assert_memory_equal(e.message + 157, "\xc3\xa9", 2);
}

static void test_parse_error_replaces_control_and_invalid_bytes(void **state)
{
	struct etcd_error e;

	(void)state;
	etcd_parse_error(S("{\"error\":\"a\\nb\xff\xc0\xafz\xe2\x82\xac\"}"), 400, &e);
	assert_string_equal(e.message, "a?b???z\xe2\x82\xac");
	etcd_parse_error(S("\x01<p>\xed\xa0\x80</p>"), 502, &e); /* a surrogate in "UTF-8" */
	assert_non_null(strstr(e.message, ": ?<p>??" "?</p>"));
}

/* --- allocation failures --- */

/* cJSON's allocations go through its hooks; ours are wrapped at link time
 * when the binary is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
 * (see test_oom in the Makefile); the weak references are NULL otherwise. */
extern void *__real_malloc(size_t n) __attribute__((weak));
extern void *__real_calloc(size_t n, size_t m) __attribute__((weak));
extern void *__real_realloc(void *p, size_t n) __attribute__((weak));

static long countdown = -1; /* the allocation that fails: 0 is the next one; -1 never */
static long failures;

static bool fail_now(void)
{
	if (countdown < 0)
		return false;
	if (countdown-- == 0) {
		failures++;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

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

static void *hook_malloc(size_t n)
{
	if (fail_now())
		return NULL;
	return __real_malloc ? __real_malloc(n) : malloc(n);
}

static void hook_free(void *p)
{
	free(p);
}

/* One decoder over b[0..n), what it gave freed. */
static enum etcd_rc decode(int which, const char *b, size_t n)
{
	struct etcd_range r;
	struct etcd_txn_result t;
	struct etcd_watch_msg m;
	int64_t id, ttl;
	enum etcd_rc rc;

	switch (which) {
	case 0:
		rc = etcd_parse_range(b, n, &r, NULL);
		etcd_range_free(&r);
		return rc;
	case 1:
		rc = etcd_parse_txn(b, n, &t, NULL);
		etcd_txn_result_free(&t);
		return rc;
	case 2:
		rc = etcd_parse_watch_line(b, n, &m, NULL);
		etcd_watch_msg_free(&m);
		return rc;
	default:
		return etcd_parse_lease(b, n, NULL, &id, &ttl, NULL);
	}
}

/* Runs each decoder over s with allocation k failing, for k = 0, 1, ...
 * until none fails: a run where an allocation failed must give NOMEM.
 * Returns how many runs gave NOMEM. */
static long parse_failing_each_allocation(const char *s, size_t n)
{
	cJSON_Hooks hooks = { hook_malloc, hook_free };
	char *b = exact(s, n);
	long nomem = 0;
	int which;

	cJSON_InitHooks(&hooks);
	for (which = 0; which < 4; which++) {
		enum etcd_rc clean = decode(which, b, n);
		long k;

		for (k = 0;; k++) {
			long before = failures;
			enum etcd_rc rc;

			countdown = k;
			rc = decode(which, b, n);
			countdown = -1;
			if (failures == before) {
				assert_int_equal(rc, clean);
				break;
			}
			if (rc != ETCD_E_NOMEM)
				fail_msg("decoder %d, allocation %ld failing: rc %d", which, k, rc);
			nomem++;
		}
	}
	cJSON_InitHooks(NULL);
	free(b);
	return nomem;
}

static void test_cjson_allocation_failure_gives_nomem_not_garbage(void **state)
{
	size_t s;

	(void)state;
	for (s = 0; s < sizeof(samples) / sizeof(samples[0]); s++)
		assert_true(parse_failing_each_allocation(samples[s], strlen(samples[s])) > 0);
}

static void test_our_allocation_failures_give_nomem_or_null(void **state)
{
	static const char key[] = "/g/names/alpha";
	long k;

	(void)state;
	if (!__real_malloc)
		skip(); /* not linked with --wrap: our own allocations cannot be failed */
	for (k = 0;; k++) {
		struct etcd_txn t = { 0 };
		size_t len;
		char *body, *d;
		long before = failures;
		bool got;

		countdown = k;
		etcd_txn_cmp(&t, S(key), ETCD_T_CREATE, ETCD_EQUAL, 0);
		etcd_txn_put(&t, false, S(key), S(key), 1, false);
		etcd_txn_range(&t, true, S(key), NULL, 0, 0);
		body = etcd_txn_finish(&t, &len);
		assert_true((body == NULL) == (failures > before));
		free(body);
		body = etcd_range_body(S(key), S(key), 3, true, 4, &len);
		free(body);
		body = etcd_watch_body(S(key), S(key), 3, &len);
		free(body);
		body = etcd_lease_grant_body(3, &len);
		free(body);
		body = etcd_lease_id_body(3, &len);
		free(body);
		got = etcd_b64_decode(S("Zm9v"), &d, &len);
		assert_true(got || d == NULL);
		free(d);
		countdown = -1;
		if (failures == before)
			break;
	}
	assert_true(parse_failing_each_allocation(S(range_page)) > 2);
	assert_true(parse_failing_each_allocation(S(txn_present)) > 2);
	assert_true(parse_failing_each_allocation(S(watch_deletes)) > 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_round_trips_every_length_and_byte),
		cmocka_unit_test(test_b64_matches_rfc4648_vectors),
		cmocka_unit_test(test_b64_decodes_empty_input_to_empty_string),
		cmocka_unit_test(test_b64_rejects_malformed_input),
		cmocka_unit_test(test_b64_rejects_a_nul_inside_the_text),
		cmocka_unit_test(test_prefix_end_increments_the_last_byte),
		cmocka_unit_test(test_prefix_end_drops_trailing_ff_bytes),
		cmocka_unit_test(test_prefix_end_of_only_ff_bytes_is_one_nul),
		cmocka_unit_test(test_parse_int64_reads_the_extremes_exactly),
		cmocka_unit_test(test_parse_int64_refuses_overflow),
		cmocka_unit_test(test_parse_int64_refuses_anything_but_digits),
		cmocka_unit_test(test_txn_create_if_absent_body_round_trips),
		cmocka_unit_test(test_txn_body_matches_the_gateway_notes_byte_for_byte),
		cmocka_unit_test(test_txn_compare_targets_name_their_field),
		cmocka_unit_test(test_txn_compare_results_are_named),
		cmocka_unit_test(test_txn_value_compare_sends_base64_bytes),
		cmocka_unit_test(test_txn_refuses_a_value_target_on_the_int64_compare),
		cmocka_unit_test(test_txn_put_with_ignore_lease_sends_no_lease),
		cmocka_unit_test(test_txn_delete_and_range_send_range_end_and_limit),
		cmocka_unit_test(test_txn_failure_ops_go_to_failure_in_order),
		cmocka_unit_test(test_txn_empty_gives_three_empty_arrays),
		cmocka_unit_test(test_txn_free_drops_a_txn_being_built),
		cmocka_unit_test(test_txn_with_the_maximum_ops_has_them_all),
		cmocka_unit_test(test_range_body_leaves_out_defaults),
		cmocka_unit_test(test_range_body_sends_every_option),
		cmocka_unit_test(test_watch_body_asks_for_progress_and_not_prev_kv),
		cmocka_unit_test(test_lease_bodies_send_int64s_as_strings),
		cmocka_unit_test(test_binary_keys_travel_as_base64),
		cmocka_unit_test(test_range_answer_from_the_notes_decodes_its_kvs),
		cmocka_unit_test(test_range_answer_without_kvs_is_empty),
		cmocka_unit_test(test_range_kv_without_value_has_empty_value),
		cmocka_unit_test(test_range_keeps_binary_keys_and_values),
		cmocka_unit_test(test_range_refuses_a_kv_without_a_usable_key),
		cmocka_unit_test(test_range_refuses_wrong_types_for_every_field),
		cmocka_unit_test(test_top_level_that_is_not_an_object_is_garbage),
		cmocka_unit_test(test_range_answer_with_error_member_is_an_etcd_error),
		cmocka_unit_test(test_int64_fields_accept_numbers_only_below_2_53),
		cmocka_unit_test(test_huge_int64_strings_are_garbage),
		cmocka_unit_test(test_negative_revisions_and_counts_are_garbage),
		cmocka_unit_test(test_txn_answer_when_name_was_free_succeeded_with_a_put),
		cmocka_unit_test(test_txn_answer_when_name_was_taken_gives_the_owner),
		cmocka_unit_test(test_txn_answer_keeps_branch_order_and_deleted_counts),
		cmocka_unit_test(test_txn_answer_refuses_wrong_types_for_every_field),
		cmocka_unit_test(test_txn_answer_with_lease_not_found_is_an_etcd_error),
		cmocka_unit_test(test_lease_grant_answer_keeps_the_id_exact),
		cmocka_unit_test(test_keepalive_line_reads_the_ttl),
		cmocka_unit_test(test_keepalive_line_without_ttl_means_the_lease_is_gone),
		cmocka_unit_test(test_timetolive_of_an_unknown_lease_reads_minus_one),
		cmocka_unit_test(test_lease_answer_refuses_wrong_types),
		cmocka_unit_test(test_keepalive_error_line_is_an_etcd_error),
		cmocka_unit_test(test_lease_grant_with_empty_error_field_is_not_an_error),
		cmocka_unit_test(test_watch_created_line_carries_the_start_revision),
		cmocka_unit_test(test_watch_put_event_has_no_type),
		cmocka_unit_test(test_watch_delete_events_keep_their_order),
		cmocka_unit_test(test_watch_explicit_put_type_and_enum_numbers_are_read),
		cmocka_unit_test(test_watch_canceled_by_compaction_reads_compact_revision),
		cmocka_unit_test(test_watch_refused_create_has_watch_id_minus_one),
		cmocka_unit_test(test_watch_progress_notification_is_an_empty_message),
		cmocka_unit_test(test_watch_error_line_is_a_streaming_error),
		cmocka_unit_test(test_watch_line_with_or_without_newline_reads_the_same),
		cmocka_unit_test(test_watch_two_lines_run_together_are_garbage),
		cmocka_unit_test(test_watch_refuses_wrong_types_for_every_field),
		cmocka_unit_test(test_watch_line_with_10000_events_reads_them_all),
		cmocka_unit_test(test_answer_torn_at_every_byte_is_garbage),
		cmocka_unit_test(test_random_garbage_never_crashes_or_leaks),
		cmocka_unit_test(test_mutated_answers_never_crash_or_leak),
		cmocka_unit_test(test_deep_nesting_is_garbage_not_a_crash),
		cmocka_unit_test(test_parse_error_reads_the_unary_shape),
		cmocka_unit_test(test_parse_error_reads_the_streaming_shape_and_its_http_code),
		cmocka_unit_test(test_parse_error_of_html_says_what_came),
		cmocka_unit_test(test_parse_error_of_an_empty_body_says_so),
		cmocka_unit_test(test_parse_error_cuts_long_messages_and_terminates_them),
		cmocka_unit_test(test_parse_error_cuts_at_a_character_boundary),
		cmocka_unit_test(test_parse_error_replaces_control_and_invalid_bytes),
		cmocka_unit_test(test_cjson_allocation_failure_gives_nomem_not_garbage),
		cmocka_unit_test(test_our_allocation_failures_give_nomem_or_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

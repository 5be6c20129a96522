/* test_json_uri: the untrusted-input checkers of the server: the strict
 * RFC 8259 checker and body reader (server/json.h), and percent-decoding of
 * keys and query parameters (server/uri.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../server/json.h"
#include "../../server/uri.h"
#include "../../store/store.h"

/* --- helpers --- */

static bool check_n(const char *s, size_t n, int depth)
{
	const char *why = NULL;
	bool ok = json_check(s, n, depth, &why);

	if (!ok && !why)
		fail_msg("rejected without a reason: %.60s", s);
	return ok;
}

static bool check(const char *s)
{
	return check_n(s, strlen(s), JSON_MAX_DEPTH);
}

static void all_accepted(const char *const *docs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!check(docs[i]))
			fail_msg("rejected valid JSON: %s", docs[i]);
}

static void all_rejected(const char *const *docs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (check(docs[i]))
			fail_msg("accepted invalid JSON: %s", docs[i]);
}

#define ACCEPTED(...)                                                    \
	do {                                                             \
		static const char *const d_[] = { __VA_ARGS__ };         \
		all_accepted(d_, sizeof(d_) / sizeof(d_[0]));            \
	} while (0)
#define REJECTED(...)                                                    \
	do {                                                             \
		static const char *const d_[] = { __VA_ARGS__ };         \
		all_rejected(d_, sizeof(d_) / sizeof(d_[0]));            \
	} while (0)

/* open times "[" (or "{\"a\":"), then close times the closer: a malloc'd
 * document nested depth deep. */
static char *nested(size_t depth, bool objects, bool closed, size_t *len)
{
	const char *open = objects ? "{\"a\":" : "[";
	size_t ol = strlen(open), i, k = 0;
	char *s = malloc(depth * (ol + 1) + 8);

	assert_non_null(s);
	for (i = 0; i < depth; i++) {
		memcpy(s + k, open, ol);
		k += ol;
	}
	if (objects)
		s[k++] = '1';
	for (i = 0; closed && i < depth; i++)
		s[k++] = objects ? '}' : ']';
	s[k] = '\0';
	*len = k;
	return s;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* --- json_check --- */

static void test_json_accepts_valid_documents(void **state)
{
	(void)state;
	ACCEPTED("{}", "[]", "0", "-0", "1", "-1", "123", "0.5", "-0.5", "1e5", "1E+5", "1e-5", "1.25e10",
		 "\"\"", "\"abc\"", "true", "false", "null", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n ",
		 "{\"a\":{\"b\":{\"c\":[true,false,null]}}}", "[[],[[]],{}]", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
		 "\"\\u0000\\u001f\\u00e9\\uFFFF\"", "\"\\ud83d\\ude00\"", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
		 "\"\x7f\"", "[1,\"2\",{\"3\":4}]", "1234567890123456789012345678901234567890123456789012345678901234567890");
}

static void test_json_rejects_leading_zeros(void **state)
{
	(void)state;
	REJECTED("01", "00", "-01", "[007]", "{\"a\":01}", "0123.5", "-00.1");
}

static void test_json_rejects_bad_number_forms(void **state)
{
	(void)state;
	REJECTED(".5", "-.5", "+1", "1.", "1.e5", "1e", "1e+", "-", "--1", "0x10", "1_000", "[.5]", "{\"a\":+1}");
}

static void test_json_rejects_nan_and_infinity(void **state)
{
	(void)state;
	REJECTED("NaN", "nan", "Infinity", "-Infinity", "[NaN]", "{\"a\":Infinity}");
}

static void test_json_rejects_bad_literals(void **state)
{
	(void)state;
	REJECTED("tru", "True", "nul", "NULL", "falsey", "undefined", "'a'", "[true false]");
}

static void test_json_rejects_raw_control_char_in_string(void **state)
{
	char s[8];
	int c;

	(void)state;
	REJECTED("\"a\tb\"", "\"a\nb\"", "\"\r\"", "{\"k\x01\":1}");
	for (c = 0; c < 0x20; c++) {
		s[0] = '"';
		s[1] = (char)c;
		s[2] = '"';
		if (check_n(s, 3, JSON_MAX_DEPTH))
			fail_msg("accepted raw control character 0x%02x in a string", c);
	}
}

static void test_json_rejects_bad_escapes(void **state)
{
	(void)state;
	REJECTED("\"\\a\"", "\"\\x41\"", "\"\\'\"", "\"\\0\"", "\"\\U0041\"", "\"\\u12\"", "\"\\u12G4\"",
		 "\"\\u\"", "\"abc\\\"", "\"\\");
}

static void test_json_rejects_lone_surrogates(void **state)
{
	(void)state;
	REJECTED("\"\\ud800\"", "\"\\udbff\"", "\"\\udc00\"", "\"\\udfff\"", "\"\\ud800x\"",
		 "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"", "\"\\ude00\\ud83d\"", "\"\\ud800\\\"");
	ACCEPTED("\"\\ud800\\udc00\"", "\"\\udbff\\udfff\"");
}

static void test_json_rejects_comments(void **state)
{
	(void)state;
	REJECTED("// c\n{}", "{} // c", "/* c */ {}", "{/* c */}", "[1, /* c */ 2]", "# c\n{}");
}

static void test_json_rejects_trailing_text(void **state)
{
	(void)state;
	REJECTED("{}x", "{} {}", "1 2", "[1]]", "{}}", "\"a\" \"b\"", "null,");
	/* a NUL inside the given length is text too */
	assert_false(check_n("{}\0", 3, JSON_MAX_DEPTH));
	/* but a NUL just past the given length is not looked at */
	assert_true(check_n("{}\0garbage", 2, JSON_MAX_DEPTH));
}

static void test_json_rejects_structural_errors(void **state)
{
	(void)state;
	REJECTED("", "   ", "{", "[", "}", "]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{a:1}", "{'a':1}",
		 "{\"a\":1,}", "[1,]", "[,1]", "{,}", "[1 2]", "\"unterminated", "{\"a\":1 \"b\":2}");
}

static void test_json_nesting_512_ok_513_rejected(void **state)
{
	size_t n;
	char *s;

	(void)state;
	s = nested(512, false, true, &n);
	assert_true(check_n(s, n, 512));
	free(s);
	s = nested(513, false, true, &n);
	assert_false(check_n(s, n, 512));
	free(s);
	s = nested(512, true, true, &n);
	assert_true(check_n(s, n, 512));
	free(s);
	s = nested(513, true, true, &n);
	assert_false(check_n(s, n, 512));
	free(s);
	/* mixed, and the limit is the caller's */
	assert_true(check("[{\"a\":[{}]}]"));
	assert_false(check_n("[{\"a\":[{}]}]", 12, 3));
	assert_true(check_n("[{\"a\":[{}]}]", 12, 4));
}

static void test_json_100000_deep_rejected_quickly(void **state)
{
	struct timespec t0;
	size_t n;
	char *open, *closed;

	(void)state;
	open = nested(100000, false, false, &n);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_false(check_n(open, n, JSON_MAX_DEPTH));
	free(open);
	closed = nested(100000, true, true, &n);
	assert_false(check_n(closed, n, JSON_MAX_DEPTH));
	free(closed);
	/* it stops at depth 513: far under a second even with sanitizers */
	assert_true(seconds_since(&t0) < 0.5);
}

static void test_json_rejects_invalid_utf8(void **state)
{
	(void)state;
	REJECTED("\"\x80\"",                 /* a lone continuation byte */
		 "\"\xc3\"",                 /* truncated */
		 "\"\xc3(\"",                /* bad continuation */
		 "\"\xc0\xaf\"",             /* overlong '/' */
		 "\"\xc1\xbf\"",             /* overlong */
		 "\"\xe0\x80\xaf\"",         /* overlong, 3 bytes */
		 "\"\xf0\x80\x80\xaf\"",     /* overlong, 4 bytes */
		 "\"\xed\xa0\x80\"",         /* an encoded surrogate */
		 "\"\xf4\x90\x80\x80\"",     /* over U+10FFFF */
		 "\"\xf5\x80\x80\x80\"", "\"\xf8\x88\x80\x80\x80\"", "\"\xfe\"", "\"\xff\"",
		 "\"\xe2\x82\"",             /* truncated at the quote */
		 "\xc3\xa9",                 /* outside a string */
		 "{\"\xff\":1}");            /* in a member name */
	ACCEPTED("\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xef\xbf\xbf\"", "\"\xf0\x90\x80\x80\"",
		 "\"\xf4\x8f\xbf\xbf\"", "\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"");
}

static void test_json_check_reports_why(void **state)
{
	const char *why = NULL;

	(void)state;
	assert_false(json_check("01", 2, JSON_MAX_DEPTH, &why));
	assert_non_null(why);
	assert_true(strlen(why) > 0);
}

/* --- json_body --- */

static void test_body_empty_is_ok_with_null_root(void **state)
{
	static const char *const empties[] = { "", " ", "\r\n\t " };
	struct json_body b;
	const char *why = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(json_body_parse(empties[i], strlen(empties[i]), &b, &why), JSON_BODY_OK);
		assert_null(b.root);
		assert_int_equal(b.nm, 0);
		assert_null(json_body_member(&b, "ttl"));
		assert_null(json_body_get(&b, "ttl"));
		json_body_free(&b);
	}
}

static void test_body_non_object_rejected(void **state)
{
	static const char *const docs[] = { "[]", "[{\"a\":1}]", "1", "\"s\"", "null", "true" };
	struct json_body b;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		why = NULL;
		assert_int_equal(json_body_parse(docs[i], strlen(docs[i]), &b, &why), JSON_BODY_BAD);
		assert_non_null(why);
		assert_null(b.root);
		json_body_free(&b);
	}
}

static void test_body_invalid_json_rejected_with_reason(void **state)
{
	static const char *const docs[] = {
		"{", "{\"a\":01}", "{\"a\":1}x", "{\"a\":\"\t\"}", "{\"a\":NaN}", "{} {}", "{\"a\":1,}",
		"{\"a\":\"\\ud800\"}", "{\"a\":\"\xc0\xaf\"}", "{/*c*/}", "[1", "01",
	};
	struct json_body b;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		why = NULL;
		if (json_body_parse(docs[i], strlen(docs[i]), &b, &why) != JSON_BODY_BAD)
			fail_msg("accepted invalid body: %s", docs[i]);
		assert_non_null(why);
		json_body_free(&b);
	}
}

static void test_body_duplicate_top_level_member_rejected(void **state)
{
	static const char *const dups[] = {
		"{\"ttl\":1,\"ttl\":2}", "{\"a\":1,\"b\":2,\"a\":3}", "{\"\":1,\"\":2}", "{\"v\":{},\"v\":{}}",
	};
	struct json_body b;
	const char *why;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
		why = NULL;
		assert_int_equal(json_body_parse(dups[i], strlen(dups[i]), &b, &why), JSON_BODY_BAD);
		assert_non_null(why);
		json_body_free(&b);
	}
	/* names that share a prefix are not duplicates, nor are nested ones */
	{
		const char *ok = "{\"a\":1,\"ab\":2,\"b\":{\"a\":3}}";
		assert_int_equal(json_body_parse(ok, strlen(ok), &b, &why), JSON_BODY_OK);
	}
	assert_int_equal(b.nm, 3);
	json_body_free(&b);
}

static void test_body_member_gives_raw_value_text(void **state)
{
	const char *doc = " { \"value\" :\t{\"x\": [1, 2.5e3, \"s\\\"q\"]} ,\n\"ttl\":5, \"s\": \"caf\\u00e9\", \"n\":null } ";
	const struct json_member *m;
	struct json_body b;
	const char *why = NULL;

	(void)state;
	assert_int_equal(json_body_parse(doc, strlen(doc), &b, &why), JSON_BODY_OK);
	assert_non_null(b.root);
	assert_int_equal(b.nm, 4);
	m = json_body_member(&b, "value");
	assert_non_null(m);
	assert_int_equal(m->vlen, strlen("{\"x\": [1, 2.5e3, \"s\\\"q\"]}"));
	assert_memory_equal(m->value, "{\"x\": [1, 2.5e3, \"s\\\"q\"]}", m->vlen);
	m = json_body_member(&b, "ttl");
	assert_non_null(m);
	assert_int_equal(m->vlen, 1);
	assert_memory_equal(m->value, "5", 1);
	m = json_body_member(&b, "s");
	assert_int_equal(m->vlen, strlen("\"caf\\u00e9\""));
	assert_memory_equal(m->value, "\"caf\\u00e9\"", m->vlen);
	m = json_body_member(&b, "n");
	assert_memory_equal(m->value, "null", 4);
	assert_int_equal(m->vlen, 4);
	assert_null(json_body_member(&b, "val"));
	assert_null(json_body_member(&b, "x")); /* nested members are not top-level */
	json_body_free(&b);
}

static void test_body_get_gives_parsed_member(void **state)
{
	const char *doc = "{\"ttl\":30,\"label\":\"caf\\u00e9\",\"value\":[1,2]}";
	struct json_body b;
	const char *why = NULL;
	const cJSON *v;

	(void)state;
	assert_int_equal(json_body_parse(doc, strlen(doc), &b, &why), JSON_BODY_OK);
	v = json_body_get(&b, "ttl");
	assert_true(cJSON_IsNumber(v));
	assert_int_equal(v->valueint, 30);
	v = json_body_get(&b, "label");
	assert_true(cJSON_IsString(v));
	assert_string_equal(v->valuestring, "caf\xc3\xa9");
	v = json_body_get(&b, "value");
	assert_true(cJSON_IsArray(v));
	assert_int_equal(cJSON_GetArraySize(v), 2);
	assert_null(json_body_get(&b, "nope"));
	assert_null(json_body_get(&b, "TTL"));
	json_body_free(&b);
}

static void test_body_reads_only_the_given_length(void **state)
{
	const char buf[] = "{\"a\":1}garbage that is not JSON";
	struct json_body b;
	const char *why = NULL;

	(void)state;
	assert_int_equal(json_body_parse(buf, 7, &b, &why), JSON_BODY_OK);
	assert_non_null(b.root);
	assert_int_equal(json_body_get(&b, "a")->valueint, 1);
	json_body_free(&b);
	/* and a body cut short inside is bad, even though the buffer goes on */
	assert_int_equal(json_body_parse(buf, 6, &b, &why), JSON_BODY_BAD);
	json_body_free(&b);
}

static void test_body_nesting_limit_applies(void **state)
{
	struct json_body b;
	const char *why = NULL;
	size_t n;
	char *s;

	(void)state;
	/* the top-level object counts as one level */
	s = nested(512, true, true, &n);
	assert_int_equal(json_body_parse(s, n, &b, &why), JSON_BODY_OK);
	assert_non_null(b.root);
	json_body_free(&b);
	free(s);
	s = nested(513, true, true, &n);
	assert_int_equal(json_body_parse(s, n, &b, &why), JSON_BODY_BAD);
	json_body_free(&b);
	free(s);
}

static void test_body_free_is_safe_twice(void **state)
{
	struct json_body b;
	const char *why = NULL;

	(void)state;
	assert_int_equal(json_body_parse("{\"a\":1,\"b\":2,\"c\":3}", strlen("{\"a\":1,\"b\":2,\"c\":3}"), &b, &why),
			 JSON_BODY_OK);
	json_body_free(&b);
	json_body_free(&b);
	assert_null(b.root);
	assert_null(b.m);
}

/* Member names are compared once decoded: "ttl" and "\u0074tl" are the
 * same name (RFC 8259), so together they are a duplicate, and the escaped
 * one is found as "ttl". */
static void test_body_escaped_duplicate_member_rejected(void **state)
{
	const char *dup = "{\"ttl\":1,\"\\u0074tl\":2}";
	const char *esc = "{\"\\u0074tl\":99999}";
	struct json_body b;
	const char *why = NULL;

	(void)state;
	assert_int_equal(json_body_parse(dup, strlen(dup), &b, &why), JSON_BODY_BAD);
	json_body_free(&b);
	assert_int_equal(json_body_parse(esc, strlen(esc), &b, &why), JSON_BODY_OK);
	assert_non_null(json_body_member(&b, "ttl"));
	json_body_free(&b);
}

/* The duplicate check must not grow with the square of the member count:
 * a 1 MiB body of ~95,000 short members once took 15 s on the event loop.
 * 50,000 members must parse well within 2 s (quadratic took 4 s). */
static void test_body_many_members_parse_in_linear_time(void **state)
{
	enum { N = 50000 };
	char *doc = malloc((size_t)N * 12 + 4);
	struct json_body b;
	struct timespec t0;
	const char *why = NULL;
	size_t k = 0, i;

	(void)state;
	assert_non_null(doc);
	doc[k++] = '{';
	for (i = 0; i < N; i++)
		k += (size_t)sprintf(doc + k, "%s\"%06zx\":0", i ? "," : "", i);
	doc[k++] = '}';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(json_body_parse(doc, k, &b, &why), JSON_BODY_OK);
	assert_true(seconds_since(&t0) < 2.0);
	json_body_free(&b);
	free(doc);
}

/* Values are kept minified: white space between tokens goes (a raw newline
 * in a value once split an event stream's data line), strings keep theirs. */
static void test_json_minify_drops_space_between_tokens_only(void **state)
{
	const char *in = "{ \"a b\" :\n [1 ,\r\n 2\t],\"q\\\" x\":\"\\\\ \" }";
	char out[64];
	size_t n;

	(void)state;
	n = json_minify(in, strlen(in), out);
	out[n] = '\0';
	assert_string_equal(out, "{\"a b\":[1,2],\"q\\\" x\":\"\\\\ \"}");
	assert_null(memchr(out, '\n', n));
	n = json_minify(" 12 ", 4, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "12", 2);
}

/* --- uri_decode --- */

static void test_uri_decode_escapes(void **state)
{
	char out[64];
	size_t n = 99;

	(void)state;
	assert_true(uri_decode("a%2Fb", 5, false, out, sizeof(out), &n));
	assert_int_equal(n, 3);
	assert_memory_equal(out, "a/b", 3);
	assert_true(uri_decode("%41%6a%6A%2f", 12, false, out, sizeof(out), &n));
	assert_int_equal(n, 4);
	assert_memory_equal(out, "Ajj/", 4);
	assert_true(uri_decode("%00%ff", 6, false, out, sizeof(out), &n));
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\0\xff", 2);
	assert_true(uri_decode("", 0, false, out, sizeof(out), &n));
	assert_int_equal(n, 0);
	assert_true(uri_decode("plain", 5, false, out, sizeof(out), &n));
	assert_memory_equal(out, "plain", 5);
}

static void test_uri_decode_rejects_bad_escapes(void **state)
{
	static const char *const bad[] = { "%G1", "%1G", "%4", "%", "a%", "ab%4", "%%", "%%41", "% 1", "%-1", "%+1" };
	char out[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (uri_decode(bad[i], strlen(bad[i]), false, out, sizeof(out), &n))
			fail_msg("accepted bad escape: %s", bad[i]);
	/* a good escape cut off by the length is bad */
	assert_false(uri_decode("%41", 2, false, out, sizeof(out), &n));
}

static void test_uri_decode_plus_is_space_only_when_asked(void **state)
{
	char out[16];
	size_t n;

	(void)state;
	assert_true(uri_decode("a+b%2B", 6, true, out, sizeof(out), &n));
	assert_int_equal(n, 4);
	assert_memory_equal(out, "a b+", 4);
	assert_true(uri_decode("a+b", 3, false, out, sizeof(out), &n));
	assert_memory_equal(out, "a+b", 3);
}

static void test_uri_decode_respects_capacity(void **state)
{
	char out[4];
	size_t n;

	(void)state;
	assert_true(uri_decode("abc", 3, false, out, 3, &n));
	assert_false(uri_decode("abcd", 4, false, out, 3, &n));
	assert_true(uri_decode("%41%42%43", 9, false, out, 3, &n));
	assert_int_equal(n, 3);
	assert_false(uri_decode("%41%42%43%44", 12, false, out, 3, &n));
	assert_false(uri_decode("a", 1, false, out, 0, &n));
}

/* --- uri_decode_key --- */

static bool key_ok(const char *raw)
{
	char out[STORE_KEY_MAX + 1];
	size_t n;

	return uri_decode_key(raw, strlen(raw), out, &n);
}

static void test_uri_key_rejects_empty(void **state)
{
	char out[STORE_KEY_MAX + 1];
	size_t n;

	(void)state;
	assert_false(uri_decode_key("", 0, out, &n));
	assert_false(uri_decode_key("abc", 0, out, &n));
}

static void test_uri_key_length_limit_is_512_bytes(void **state)
{
	char raw[3 * 600 + 1], out[STORE_KEY_MAX + 1];
	size_t n, i;

	(void)state;
	memset(raw, 'k', 513);
	assert_true(uri_decode_key(raw, 512, out, &n));
	assert_int_equal(n, 512);
	assert_false(uri_decode_key(raw, 513, out, &n));
	/* the limit is on decoded bytes: 512 escapes are fine, 513 are not */
	for (i = 0; i < 513; i++)
		memcpy(raw + 3 * i, "%61", 3);
	assert_true(uri_decode_key(raw, 3 * 512, out, &n));
	assert_int_equal(n, 512);
	assert_false(uri_decode_key(raw, 3 * 513, out, &n));
	/* 256 two-byte characters are exactly 512 bytes */
	for (i = 0; i < 256; i++)
		memcpy(raw + 6 * i, "%C3%A9", 6);
	assert_true(uri_decode_key(raw, 6 * 256, out, &n));
	assert_int_equal(n, 512);
}

static void test_uri_key_rejects_nul(void **state)
{
	(void)state;
	assert_false(key_ok("%00"));
	assert_false(key_ok("a%00b"));
	assert_false(key_ok("abc%00"));
	/* a raw NUL inside the given length too */
	{
		char out[STORE_KEY_MAX + 1];
		size_t n;
		assert_false(uri_decode_key("a\0b", 3, out, &n));
	}
}

static void test_uri_key_rejects_control_chars(void **state)
{
	char raw[8];
	int c;

	(void)state;
	for (c = 1; c < 0x20; c++) {
		snprintf(raw, sizeof(raw), "a%%%02X", c);
		if (key_ok(raw))
			fail_msg("accepted control character %s", raw);
	}
	assert_false(key_ok("%7F"));
	assert_false(key_ok("%7f"));
	assert_false(key_ok("a\tb"));
	assert_false(key_ok("a\x7f"));
	assert_true(key_ok("a%20b")); /* a space is not a control character */
	assert_true(key_ok("%7E"));
}

static void test_uri_key_rejects_invalid_utf8(void **state)
{
	(void)state;
	assert_false(key_ok("%C3%28"));       /* bad continuation */
	assert_false(key_ok("%C0%AF"));       /* overlong '/' */
	assert_false(key_ok("%E0%80%AF"));    /* overlong, 3 bytes */
	assert_false(key_ok("%ED%A0%80"));    /* a surrogate */
	assert_false(key_ok("%F4%90%80%80")); /* over U+10FFFF */
	assert_false(key_ok("%FF"));
	assert_false(key_ok("%80"));
	assert_false(key_ok("%C3"));          /* truncated */
	assert_false(key_ok("a%E2%82"));      /* truncated at the end */
	assert_false(key_ok("\xc3("));        /* raw bytes are checked as well */
}

static void test_uri_key_accepts_utf8(void **state)
{
	char out[STORE_KEY_MAX + 1];
	size_t n;

	(void)state;
	assert_true(uri_decode_key("caf%C3%A9", 9, out, &n));
	assert_int_equal(n, 5);
	assert_memory_equal(out, "caf\xc3\xa9", 5);
	assert_true(uri_decode_key("%F0%9F%98%80", 12, out, &n));
	assert_int_equal(n, 4);
	assert_true(key_ok("%E2%82%AC"));
	assert_true(key_ok("%C2%80")); /* U+0080 is not in the refused ranges */
	assert_true(key_ok("\xc3\xa9")); /* raw UTF-8 in the path */
}

static void test_uri_key_accepts_encoded_slash(void **state)
{
	char out[STORE_KEY_MAX + 1];
	size_t n;

	(void)state;
	assert_true(uri_decode_key("a%2Fb", 5, out, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(out, "a/b", 3);
	assert_true(uri_decode_key("session/123", 11, out, &n));
	assert_memory_equal(out, "session/123", 11);
	assert_true(uri_decode_key("%2f", 3, out, &n));
	assert_memory_equal(out, "/", 1);
	/* '+' in a path is a plus, not a space */
	assert_true(uri_decode_key("a+b", 3, out, &n));
	assert_memory_equal(out, "a+b", 3);
}

static void test_uri_key_rejects_bad_escape(void **state)
{
	(void)state;
	assert_false(key_ok("%G1"));
	assert_false(key_ok("a%4"));
	assert_false(key_ok("%"));
}

/* --- uri_query_find --- */

static bool qfind(const char *q, const char *name, const char *want)
{
	const char *v = NULL;
	size_t n = 0;

	if (!uri_query_find(q, q ? strlen(q) : 0, name, &v, &n))
		return want == NULL;
	return want && n == strlen(want) && memcmp(v, want, n) == 0;
}

static void test_uri_query_find_values(void **state)
{
	(void)state;
	assert_true(qfind("a=1&b=2", "a", "1"));
	assert_true(qfind("a=1&b=2", "b", "2"));
	assert_true(qfind("a=1&b=2", "c", NULL));
	assert_true(qfind("x=1&x=2", "x", "1"));        /* the first one */
	assert_true(qfind("x=a=b", "x", "a=b"));        /* only the first '=' splits */
	assert_true(qfind("prefix=a%2Fb", "prefix", "a%2Fb")); /* still encoded */
	assert_true(qfind("&&x=1&", "x", "1"));
}

static void test_uri_query_find_flag_and_empty_values(void **state)
{
	(void)state;
	assert_true(qfind("flag&x=1", "flag", ""));
	assert_true(qfind("x=1&flag", "flag", ""));
	assert_true(qfind("x=", "x", ""));
	assert_true(qfind("x=&y=2", "x", ""));
}

static void test_uri_query_find_matches_whole_names(void **state)
{
	(void)state;
	assert_true(qfind("limitx=1&lim=2&limit=3", "limit", "3"));
	assert_true(qfind("limitx=1", "limit", NULL));
	assert_true(qfind("lim=1", "limit", NULL));
	assert_true(qfind("=1", "limit", NULL));
	assert_true(qfind("Limit=1", "limit", NULL));
}

static void test_uri_query_find_without_query(void **state)
{
	const char *v;
	size_t n;

	(void)state;
	assert_false(uri_query_find(NULL, 0, "x", &v, &n));
	assert_false(uri_query_find("", 0, "x", &v, &n));
	/* only the given length counts */
	assert_false(uri_query_find("a=1&x=2", 3, "x", &v, &n));
}

static void test_uri_query_find_decodes_names(void **state)
{
	(void)state;
	/* per uri.h: the parameter's decoded name is compared */
	assert_true(qfind("w%61it=5", "wait", "5"));
	assert_true(qfind("%77%61%69%74=7&wait=1", "wait", "7"));
	assert_true(qfind("w%6", "wait", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_accepts_valid_documents),
		cmocka_unit_test(test_json_rejects_leading_zeros),
		cmocka_unit_test(test_json_rejects_bad_number_forms),
		cmocka_unit_test(test_json_rejects_nan_and_infinity),
		cmocka_unit_test(test_json_rejects_bad_literals),
		cmocka_unit_test(test_json_rejects_raw_control_char_in_string),
		cmocka_unit_test(test_json_rejects_bad_escapes),
		cmocka_unit_test(test_json_rejects_lone_surrogates),
		cmocka_unit_test(test_json_rejects_comments),
		cmocka_unit_test(test_json_rejects_trailing_text),
		cmocka_unit_test(test_json_rejects_structural_errors),
		cmocka_unit_test(test_json_nesting_512_ok_513_rejected),
		cmocka_unit_test(test_json_100000_deep_rejected_quickly),
		cmocka_unit_test(test_json_rejects_invalid_utf8),
		cmocka_unit_test(test_json_check_reports_why),
		cmocka_unit_test(test_body_empty_is_ok_with_null_root),
		cmocka_unit_test(test_body_non_object_rejected),
		cmocka_unit_test(test_body_invalid_json_rejected_with_reason),
		cmocka_unit_test(test_body_duplicate_top_level_member_rejected),
		cmocka_unit_test(test_body_member_gives_raw_value_text),
		cmocka_unit_test(test_body_get_gives_parsed_member),
		cmocka_unit_test(test_body_reads_only_the_given_length),
		cmocka_unit_test(test_body_nesting_limit_applies),
		cmocka_unit_test(test_body_free_is_safe_twice),
		cmocka_unit_test(test_body_escaped_duplicate_member_rejected),
		cmocka_unit_test(test_body_many_members_parse_in_linear_time),
		cmocka_unit_test(test_json_minify_drops_space_between_tokens_only),
		cmocka_unit_test(test_uri_decode_escapes),
		cmocka_unit_test(test_uri_decode_rejects_bad_escapes),
		cmocka_unit_test(test_uri_decode_plus_is_space_only_when_asked),
		cmocka_unit_test(test_uri_decode_respects_capacity),
		cmocka_unit_test(test_uri_key_rejects_empty),
		cmocka_unit_test(test_uri_key_length_limit_is_512_bytes),
		cmocka_unit_test(test_uri_key_rejects_nul),
		cmocka_unit_test(test_uri_key_rejects_control_chars),
		cmocka_unit_test(test_uri_key_rejects_invalid_utf8),
		cmocka_unit_test(test_uri_key_accepts_utf8),
		cmocka_unit_test(test_uri_key_accepts_encoded_slash),
		cmocka_unit_test(test_uri_key_rejects_bad_escape),
		cmocka_unit_test(test_uri_query_find_values),
		cmocka_unit_test(test_uri_query_find_flag_and_empty_values),
		cmocka_unit_test(test_uri_query_find_matches_whole_names),
		cmocka_unit_test(test_uri_query_find_without_query),
		cmocka_unit_test(test_uri_query_find_decodes_names),
	};

	return cmocka_run_group_tests_name("json_uri", tests, NULL, NULL);
}

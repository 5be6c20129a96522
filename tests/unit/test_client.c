/* librollcall's parsing and error mapping (client/rollcall.h): rollcallctl's
 * targets and its exit statuses. No server: rc_request against nothing
 * listening is "unreachable". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../client/rollcall.h"

/* spec's target as JSON, asserted to parse. */
static void target_is(const char *spec, const char *want)
{
	char err[200] = "";
	char *got = rc_target(spec, err, sizeof(err));

	if (!got)
		fail_msg("%s: %s", spec, err);
	assert_string_equal(got, want);
	free(got);
}

static void target_refused(const char *spec)
{
	char err[200] = "";
	char *got = rc_target(spec, err, sizeof(err));

	if (got)
		fail_msg("%s parsed as %s", spec, got);
	assert_true(strlen(err) > 0);
}

static void test_targets_of_each_kind(void **state)
{
	(void)state;
	target_is("name:db_worker", "{\"name\":\"db_worker\"}");
	target_is("name:a/b:c", "{\"name\":\"a/b:c\"}"); /* colons after the first belong to the key */
	target_is("session:3f9c2a7d01b4e865", "{\"session\":\"3f9c2a7d01b4e865\"}");
	target_is("prop:role/db", "{\"prop\":\"role/db\"}");
	target_is("group:workers", "{\"group\":\"workers\"}");
	target_is("name:quote\"d", "{\"name\":\"quote\\\"d\"}");
}

static void test_group_picks(void **state)
{
	(void)state;
	target_is("group:workers:random", "{\"group\":\"workers\",\"pick\":\"random\"}");
	target_is("group:workers:round_robin", "{\"group\":\"workers\",\"pick\":\"round_robin\"}");
	target_is("group:workers:hash:user-42", "{\"group\":\"workers\",\"pick\":\"hash\",\"hash_key\":\"user-42\"}");
	target_is("group:a:b:random", "{\"group\":\"a:b\",\"pick\":\"random\"}");
	/* a group named like a pick, and a pick word inside a name, stay names */
	target_is("group:random", "{\"group\":\"random\"}");
	target_is("group:x:randomly", "{\"group\":\"x:randomly\"}");
}

static void test_bad_targets_refused(void **state)
{
	(void)state;
	target_refused("db_worker");
	target_refused("name:");
	target_refused("names:x");
	target_refused(":x");
	target_refused("");
	target_refused("group:workers:hash"); /* hash needs its key */
}

static void test_exit_codes(void **state)
{
	static const struct {
		int status, code;
	} cases[] = {
		{ 200, 0 }, { 201, 0 }, { 202, 0 }, { 204, 0 },
		{ 404, 1 },
		{ 400, 2 }, { 401, 2 }, { 403, 2 }, { 405, 2 }, { 413, 2 }, { 431, 2 },
		{ 409, 3 },
		{ 0, 4 }, { 429, 4 }, { 500, 4 }, { 503, 4 },
		{ 504, 5 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct rc_result r = { 0 };
		r.status = cases[i].status;
		if (rc_exit_code(&r) != cases[i].code)
			fail_msg("status %d: exit %d, want %d", cases[i].status, rc_exit_code(&r), cases[i].code);
	}
}

static void test_no_server_is_unreachable(void **state)
{
	struct rc *c = rc_new("http://127.0.0.1:1/", NULL);
	struct rc_result r = { 0 };

	(void)state;
	assert_non_null(c);
	assert_int_equal(rc_stats(c, &r), 0);
	assert_string_equal(r.error, "unreachable");
	assert_true(strlen(r.message) > 0);
	assert_null(r.json);
	assert_int_equal(rc_exit_code(&r), 4);
	rc_result_clear(&r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.error, "");
	rc_free(c);
}

static void test_heartbeat_due_at_a_third_of_the_ttl(void **state)
{
	struct rc_session s = { .ttl = 15 };

	(void)state;
	assert_int_equal(rc_heartbeat_due(&s, 1000), 6000);
	s.ttl = 3;
	assert_int_equal(rc_heartbeat_due(&s, 0), 1000);
	s.ttl = 0; /* unknown: the server's default 15 */
	assert_int_equal(rc_heartbeat_due(&s, 0), 5000);
}

static int lost_calls;

static void on_lost(void *ctx)
{
	(void)ctx;
	lost_calls++;
}

static void test_keepalive_with_no_server_retries_and_stops_at_once(void **state)
{
	struct rc_session s = { .id = "0123456789abcdef", .token = "0123456789abcdef0123456789abcdef", .ttl = 3 };
	struct rc_keepalive *k = rc_keepalive_start("http://127.0.0.1:1", NULL, &s, on_lost, NULL);
	struct timespec t0, t1, nap = { 1, 500000000L };

	(void)state;
	assert_non_null(k);
	nanosleep(&nap, NULL); /* a beat at 1 s fails (nothing listens): tried again, not "lost" */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc_keepalive_stop(k);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(lost_calls, 0);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 900);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets_of_each_kind),
		cmocka_unit_test(test_group_picks),
		cmocka_unit_test(test_bad_targets_refused),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_no_server_is_unreachable),
		cmocka_unit_test(test_heartbeat_due_at_a_third_of_the_ttl),
		cmocka_unit_test(test_keepalive_with_no_server_retries_and_stops_at_once),
	};
	return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}

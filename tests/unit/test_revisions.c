/* Unit tests of the store in cluster mode: changes applied at etcd
 * revisions (events sharing an index, gaps between indices), sessions
 * inserted with their id, token and home, leases handed to lease_due, and
 * index waiters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../store/store.h"

#define T0 1000000

static uint64_t rng_state;
static int due_calls;
static struct store_session *due_last;
static int woken;
static enum store_wake woken_why;

static void fake_random(void *ctx, void *buf, size_t len)
{
	unsigned char *p = buf;

	(void)ctx;
	while (len--) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		*p++ = (unsigned char)rng_state;
	}
}

static void on_due(void *ctx, struct store_session *s)
{
	(void)ctx;
	due_calls++;
	due_last = s;
}

static void on_wake(struct store_waiter *w, enum store_wake why)
{
	(void)w;
	woken++;
	woken_why = why;
}

static struct store *new_store(bool cluster)
{
	struct store_config cfg = { 0 };
	struct store *st;

	rng_state = 0x9e3779b97f4a7c15ULL;
	due_calls = 0;
	due_last = NULL;
	woken = 0;
	cfg.default_ttl = 15;
	cfg.max_ttl = 3600;
	cfg.max_sessions = 100;
	cfg.max_keys_per_session = 2;
	cfg.random = fake_random;
	if (cluster)
		cfg.lease_due = on_due;
	st = store_new(&cfg);
	assert_non_null(st);
	return st;
}

static const char ID1[] = "00000000000000a1", TOK1[] = "0000000000000000000000000000a001";
static const char ID2[] = "00000000000000b2", TOK2[] = "0000000000000000000000000000b002";

static struct store_session *insert(struct store *st, const char *id, const char *tok, bool remote)
{
	struct store_session *s;

	store_revision_begin(st, store_index(st) + 7);
	assert_int_equal(store_session_insert(st, T0, id, tok, 10, "lbl", 3, "n1", remote, &s), STORE_CREATED);
	store_revision_end(st);
	return s;
}

static void test_events_of_one_revision_share_its_index(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s = insert(st, ID1, TOK1, true);
	struct store_name *n;
	uint64_t seq;

	(void)state;
	assert_int_equal(store_index(st), 7);
	store_revision_begin(st, 20);
	assert_int_equal(store_name_register(st, s, "a", 1, "1", 1, &n), STORE_CREATED);
	assert_int_equal(store_name_register(st, s, "b", 1, "2", 1, &n), STORE_CREATED);
	store_revision_end(st);
	assert_int_equal(store_index(st), 20);
	seq = store_event_seek(st, 7);
	assert_int_equal(store_event_get(st, seq)->index, 20);
	assert_string_equal(store_event_get(st, seq)->key, "a");
	assert_int_equal(store_event_get(st, seq + 1)->index, 20);
	assert_string_equal(store_event_get(st, seq + 1)->key, "b");
	assert_null(store_event_get(st, seq + 2));
	assert_int_equal(store_event_seek(st, 20), store_event_end(st));
	/* an index between two revisions finds the next one */
	assert_int_equal(store_event_seek(st, 10), seq);
	store_free(st);
}

static void test_applied_changes_pass_the_key_limit(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s = insert(st, ID1, TOK1, true);
	struct store_name *n;
	struct store_entry *e;

	(void)state;
	store_revision_begin(st, 30);
	assert_int_equal(store_name_register(st, s, "a", 1, "1", 1, &n), STORE_CREATED);
	assert_int_equal(store_name_register(st, s, "b", 1, "1", 1, &n), STORE_CREATED);
	assert_int_equal(store_prop_set(st, s, "p", 1, "1", 1, &e), STORE_CREATED);
	store_revision_end(st);
	assert_int_equal(s->n_names + s->n_props, 3);
	store_free(st);
}

static void test_a_revision_without_changes_moves_the_index(void **state)
{
	struct store *st = new_store(true);

	(void)state;
	store_revision_begin(st, 99);
	store_revision_end(st);
	assert_int_equal(store_index(st), 99);
	assert_int_equal(store_event_seek(st, 0), store_event_end(st));
	store_free(st);
}

static void test_inserted_session_keeps_id_token_and_home(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s = insert(st, ID1, TOK1, true), *again;

	(void)state;
	assert_string_equal(s->id, ID1);
	assert_string_equal(s->token, TOK1);
	assert_string_equal(s->home, "n1");
	assert_ptr_equal(store_session_by_token(st, T0, TOK1, 32), s);
	/* the same id again changes nothing */
	assert_int_equal(store_session_insert(st, T0, ID1, TOK2, 10, NULL, 0, "n2", true, &again), STORE_OK);
	assert_ptr_equal(again, s);
	assert_int_equal(store_session_count(st), 1);
	store_free(st);
}

static void test_insert_refuses_bad_ids_tokens_and_ttls(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s;

	(void)state;
	assert_int_equal(store_session_insert(st, T0, "zz", TOK1, 10, NULL, 0, "n1", true, &s), STORE_E_INVALID_TTL);
	assert_int_equal(store_session_insert(st, T0, ID1, "00", 10, NULL, 0, "n1", true, &s), STORE_E_INVALID_TTL);
	assert_int_equal(store_session_insert(st, T0, ID1, TOK1, 0, NULL, 0, "n1", true, &s), STORE_E_INVALID_TTL);
	insert(st, ID1, TOK1, true);
	/* a token already in use by another session */
	assert_int_equal(store_session_insert(st, T0, ID2, TOK1, 10, NULL, 0, "n1", true, &s), STORE_E_INVALID_TTL);
	assert_int_equal(store_session_count(st), 1);
	store_free(st);
}

static void test_remote_session_never_expires_here(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s = insert(st, ID1, TOK1, true);

	(void)state;
	assert_int_equal(store_tick(st, T0 + 3600 * 1000, 100), 0);
	assert_ptr_equal(store_session_find(st, T0 + 3600 * 1000, ID1, 16), s);
	assert_int_equal(due_calls, 0);
	store_free(st);
}

static void test_home_session_lease_goes_to_lease_due(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s = insert(st, ID1, TOK1, false);
	uint64_t idx = store_index(st);

	(void)state;
	assert_int_equal(store_tick(st, T0 + 9999, 100), 0);
	assert_int_equal(store_tick(st, T0 + 10000, 100), 1);
	assert_int_equal(due_calls, 1);
	assert_ptr_equal(due_last, s);
	assert_true(s->ending);
	/* not live any more, but still there until etcd says it ended */
	assert_null(store_session_find(st, T0 + 10000, ID1, 16));
	assert_null(store_session_by_token(st, T0 + 10000, TOK1, 32));
	assert_ptr_equal(store_session_lookup(st, ID1, 16), s);
	assert_int_equal(store_index(st), idx);
	/* the lease does not fire twice */
	assert_int_equal(store_tick(st, T0 + 20000, 100), 0);
	assert_int_equal(due_calls, 1);
	store_revision_begin(st, idx + 1);
	store_session_end(st, s, true);
	store_revision_end(st);
	assert_null(store_session_lookup(st, ID1, 16));
	assert_int_equal(store_event_get(st, store_event_end(st) - 1)->type, STORE_EV_SESSION_EXPIRED);
	store_free(st);
}

static void test_found_past_deadline_goes_to_lease_due(void **state)
{
	struct store *st = new_store(true);

	(void)state;
	insert(st, ID1, TOK1, false);
	assert_null(store_session_by_token(st, T0 + 10000, TOK1, 32));
	assert_int_equal(due_calls, 1);
	assert_int_equal(store_session_count(st), 1);
	store_free(st);
}

static void test_release_ends_everything_at_one_index(void **state)
{
	struct store *st = new_store(true);
	struct store_session *s = insert(st, ID1, TOK1, true);
	struct store_name *n;
	struct store_entry *e;
	uint64_t seq;
	int k = 0;

	(void)state;
	store_revision_begin(st, 40);
	assert_int_equal(store_name_register(st, s, "a", 1, "1", 1, &n), STORE_CREATED);
	assert_int_equal(store_group_join(st, s, "g", 1, "1", 1, &e), STORE_CREATED);
	store_revision_end(st);
	store_revision_begin(st, 45);
	store_session_end(st, s, false);
	store_revision_end(st);
	for (seq = store_event_seek(st, 40); seq < store_event_end(st); seq++, k++)
		assert_int_equal(store_event_get(st, seq)->index, 45);
	assert_int_equal(k, 3); /* group_left, name_unregistered, session_deleted */
	assert_int_equal(store_event_get(st, store_event_end(st) - 1)->type, STORE_EV_SESSION_DELETED);
	assert_null(store_name_get(st, "a", 1));
	store_free(st);
}

static void test_index_waiter_wakes_when_the_index_is_reached(void **state)
{
	struct store *st = new_store(true);
	struct store_waiter w = { 0 };

	(void)state;
	w.wake = on_wake;
	w.timer.idx = SIZE_MAX;
	assert_int_equal(store_index_wait(st, 50, T0 + 5000, &w), STORE_OK);
	store_revision_begin(st, 49);
	store_revision_end(st);
	assert_int_equal(woken, 0);
	store_revision_begin(st, 52);
	store_revision_end(st);
	assert_int_equal(woken, 1);
	assert_int_equal(woken_why, STORE_WAKE_FIRED);
	assert_false(store_waiter_parked(&w));
	store_free(st);
}

static void test_index_waiter_times_out_and_cancels(void **state)
{
	struct store *st = new_store(true);
	struct store_waiter w = { 0 }, w2 = { 0 };

	(void)state;
	w.wake = w2.wake = on_wake;
	w.timer.idx = w2.timer.idx = SIZE_MAX;
	assert_int_equal(store_index_wait(st, 50, T0 + 5000, &w), STORE_OK);
	assert_int_equal(store_index_wait(st, 60, T0 + 9000, &w2), STORE_OK);
	store_waiter_cancel(st, &w2);
	assert_int_equal(store_tick(st, T0 + 5000, 10), 1);
	assert_int_equal(woken, 1);
	assert_int_equal(woken_why, STORE_WAKE_TIMEOUT);
	store_revision_begin(st, 70);
	store_revision_end(st);
	assert_int_equal(woken, 1);
	assert_int_equal(store_waiter_count(st), 0);
	store_free(st);
}

static void test_single_node_keeps_one_index_per_event(void **state)
{
	struct store *st = new_store(false);
	struct store_session *s;
	struct store_name *n;

	(void)state;
	assert_int_equal(store_session_create(st, T0, 10, NULL, 0, &s), STORE_CREATED);
	assert_int_equal(store_name_register(st, s, "a", 1, "1", 1, &n), STORE_CREATED);
	assert_int_equal(store_index(st), 2);
	assert_int_equal(store_event_get(st, store_event_seek(st, 1))->index, 2);
	assert_null(s->home);
	/* expiry releases at once without lease_due */
	assert_int_equal(store_tick(st, T0 + 10000, 10), 1);
	assert_int_equal(store_session_count(st), 0);
	assert_int_equal(store_index(st), 4);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_of_one_revision_share_its_index),
		cmocka_unit_test(test_applied_changes_pass_the_key_limit),
		cmocka_unit_test(test_a_revision_without_changes_moves_the_index),
		cmocka_unit_test(test_inserted_session_keeps_id_token_and_home),
		cmocka_unit_test(test_insert_refuses_bad_ids_tokens_and_ttls),
		cmocka_unit_test(test_remote_session_never_expires_here),
		cmocka_unit_test(test_home_session_lease_goes_to_lease_due),
		cmocka_unit_test(test_found_past_deadline_goes_to_lease_due),
		cmocka_unit_test(test_release_ends_everything_at_one_index),
		cmocka_unit_test(test_index_waiter_wakes_when_the_index_is_reached),
		cmocka_unit_test(test_index_waiter_times_out_and_cancels),
		cmocka_unit_test(test_single_node_keeps_one_index_per_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

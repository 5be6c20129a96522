/* test_events: the store's event log (store/events.c): indices without
 * gaps, what each event carries, eviction by count, and which watchers a
 * change wakes (a prefix watcher sleeps through other keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/store.h"

#define T0 1000000u

static uint64_t rng_state;

static void fake_random(void *ctx, void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t i;

	(void)ctx;
	for (i = 0; i < len; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		p[i] = (unsigned char)(rng_state >> 32);
	}
}

static struct store *new_store(size_t buffer)
{
	struct store_config cfg = { 0 };
	struct store *st;

	rng_state = 0x9e3779b97f4a7c15ULL;
	cfg.default_ttl = 15;
	cfg.max_ttl = 3600;
	cfg.max_sessions = 100;
	cfg.event_buffer = buffer;
	cfg.random = fake_random;
	st = store_new(&cfg);
	assert_non_null(st);
	return st;
}

struct watcher {
	struct store_waiter w; /* first member */
	int wakes;
	enum store_wake why;
};

static void on_wake(struct store_waiter *w, enum store_wake why)
{
	struct watcher *x = (struct watcher *)(void *)w;

	x->wakes++;
	x->why = why;
}

static void put(struct store *st, struct store_session *s, const char *key, const char *value)
{
	struct store_name *n;

	assert_int_equal(store_name_register(st, s, key, strlen(key), value, strlen(value), &n), STORE_CREATED);
}

/* The event with this index (one per index on a single node), or NULL. */
static const struct store_event *store_event_at(const struct store *st, uint64_t index)
{
	const struct store_event *e = index ? store_event_get(st, store_event_seek(st, index - 1)) : NULL;

	return e && e->index == index ? e : NULL;
}

static void test_events_have_consecutive_indices_and_fields(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s;
	const struct store_event *e;

	(void)state;
	assert_int_equal(store_session_create(st, T0, 10, NULL, 0, &s), STORE_CREATED);
	put(st, s, "a/x", "[1]");
	assert_int_equal(store_name_delete(st, s, "a/x", 3), STORE_OK);
	assert_int_equal(store_index(st), 3);
	e = store_event_at(st, 1);
	assert_int_equal(e->type, STORE_EV_SESSION_CREATED);
	assert_null(e->key);
	assert_string_equal(e->session, s->id);
	e = store_event_at(st, 2);
	assert_int_equal(e->type, STORE_EV_NAME_REGISTERED);
	assert_string_equal(e->key, "a/x");
	assert_string_equal(e->value, "[1]");
	e = store_event_at(st, 3);
	assert_int_equal(e->type, STORE_EV_NAME_UNREGISTERED);
	assert_null(e->value);
	assert_null(store_event_at(st, 4));
	assert_null(store_event_at(st, 0));
	store_free(st);
}

static void test_ring_keeps_the_last_buffer_events(void **state)
{
	struct store *st = new_store(4);
	struct store_session *s;
	char k[8];
	int i;

	(void)state;
	assert_int_equal(store_session_create(st, T0, 10, NULL, 0, &s), STORE_CREATED);
	for (i = 0; i < 9; i++) {
		k[0] = (char)('a' + i);
		k[1] = '\0';
		put(st, s, k, "1");
	}
	assert_int_equal(store_index(st), 10);
	assert_true(store_event_missed(st, 5));
	assert_false(store_event_missed(st, 6));
	assert_null(store_event_at(st, 6));
	assert_string_equal(store_event_at(st, 7)->key, "f");
	assert_string_equal(store_event_at(st, 10)->key, "i");
	store_free(st);
}

static void test_prefix_watcher_wakes_only_for_its_keys(void **state)
{
	struct store *st = new_store(0);
	struct watcher all = { .w.wake = on_wake }, pre = { .w.wake = on_wake };
	struct store_session *s;

	(void)state;
	assert_int_equal(store_event_watch(st, T0 + 5000, &all.w, NULL, 0), STORE_OK);
	assert_int_equal(store_event_watch(st, T0 + 5000, &pre.w, "svc/", 4), STORE_OK);
	assert_int_equal(store_session_create(st, T0, 10, NULL, 0, &s), STORE_CREATED);
	assert_int_equal(all.wakes, 1); /* a session event: only the watcher without a prefix */
	assert_int_equal(pre.wakes, 0);
	put(st, s, "db/1", "1");
	assert_int_equal(pre.wakes, 0);
	assert_true(store_waiter_parked(&pre.w));
	put(st, s, "svc", "1"); /* shorter than the prefix */
	assert_int_equal(pre.wakes, 0);
	put(st, s, "svc/api", "1");
	assert_int_equal(pre.wakes, 1);
	assert_int_equal(pre.why, STORE_WAKE_FIRED);
	assert_false(store_waiter_parked(&pre.w));
	assert_int_equal(store_waiter_count(st), 0);
	store_free(st);
}

static void test_watcher_times_out_at_deadline(void **state)
{
	struct store *st = new_store(0);
	struct watcher x = { .w.wake = on_wake };

	(void)state;
	assert_int_equal(store_event_watch(st, T0 + 100, &x.w, "p", 1), STORE_OK);
	store_tick(st, T0 + 99, 10);
	assert_int_equal(x.wakes, 0);
	store_tick(st, T0 + 100, 10);
	assert_int_equal(x.wakes, 1);
	assert_int_equal(x.why, STORE_WAKE_TIMEOUT);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_have_consecutive_indices_and_fields),
		cmocka_unit_test(test_ring_keeps_the_last_buffer_events),
		cmocka_unit_test(test_prefix_watcher_wakes_only_for_its_keys),
		cmocka_unit_test(test_watcher_times_out_at_deadline),
	};

	return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}

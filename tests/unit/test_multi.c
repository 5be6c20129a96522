/* test_multi: properties and groups in the store (store/multi.c): order,
 * replace, remove, release with the session, the per-session limit,
 * listings, and the three picks, with the rendezvous property measured over
 * 10,000 keys. Randomness is a seeded xorshift; time is a number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/store.h"

#define T0 1000000u
#define NKEYS 10000

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

static struct store *new_store(size_t max_keys)
{
	struct store_config cfg = { 0 };
	struct store *st;

	rng_state = 0x9e3779b97f4a7c15ULL;
	cfg.default_ttl = 15;
	cfg.max_ttl = 3600;
	cfg.max_sessions = 100000;
	cfg.max_keys_per_session = max_keys;
	cfg.random = fake_random;
	st = store_new(&cfg);
	assert_non_null(st);
	return st;
}

static struct store_session *mk(struct store *st, unsigned ttl)
{
	struct store_session *s = NULL;

	assert_int_equal(store_session_create(st, T0, ttl, NULL, 0, &s), STORE_CREATED);
	return s;
}

static enum store_rc prop(struct store *st, struct store_session *s, const char *k, const char *v)
{
	struct store_entry *e = NULL;
	enum store_rc rc = store_prop_set(st, s, k, strlen(k), v, strlen(v), &e);

	if (rc == STORE_OK || rc == STORE_CREATED) {
		assert_ptr_equal(e->session, s);
		assert_string_equal(e->value, v);
		assert_string_equal(e->key->key, k);
	}
	return rc;
}

static enum store_rc join(struct store *st, struct store_session *s, const char *g, const char *v)
{
	struct store_entry *e = NULL;

	return store_group_join(st, s, g, strlen(g), v, strlen(v), &e);
}

static struct store_session *pick(struct store *st, const char *g, enum store_pick how, const char *hk)
{
	struct store_entry *e = NULL;
	enum store_rc rc = store_group_pick(st, g, strlen(g), how, hk, hk ? strlen(hk) : 0, &e);

	assert_int_equal(rc, STORE_OK);
	return e->session;
}

/* The sessions of a key's entries, in order, into out; returns the count. */
static size_t entries_of(const struct store_key *k, struct store_session **out)
{
	const struct store_entry *e;
	size_t n = 0;

	for (e = k ? k->head : NULL; e; e = e->k_next)
		out[n++] = e->session;
	return n;
}

/* --- properties --- */

static void test_prop_set_new_then_replace_keeps_place(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0), *b = mk(st, 0), *order[4];
	struct store_key *k;

	(void)state;
	assert_int_equal(prop(st, a, "job/1", "1"), STORE_CREATED);
	assert_int_equal(prop(st, b, "job/1", "2"), STORE_CREATED);
	assert_int_equal(prop(st, a, "job/1", "\"again\""), STORE_OK);
	k = store_prop_get(st, "job/1", 5);
	assert_non_null(k);
	assert_int_equal(k->n, 2);
	assert_int_equal(entries_of(k, order), 2);
	assert_ptr_equal(order[0], a);
	assert_ptr_equal(order[1], b);
	assert_string_equal(k->head->value, "\"again\"");
	assert_int_equal(store_prop_count(st), 2);
	assert_int_equal(a->n_props, 1);
	store_free(st);
}

static void test_prop_holders_in_registration_order(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[5], *order[5];
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++)
		s[i] = mk(st, 0);
	for (i = 5; i-- > 0;) /* register in reverse creation order */
		assert_int_equal(prop(st, s[i], "k", "null"), STORE_CREATED);
	assert_int_equal(entries_of(store_prop_get(st, "k", 1), order), 5);
	for (i = 0; i < 5; i++)
		assert_ptr_equal(order[i], s[4 - i]);
	store_free(st);
}

static void test_prop_remove_only_the_callers_entry(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0), *b = mk(st, 0), *c = mk(st, 0), *order[3];

	(void)state;
	prop(st, a, "k", "1");
	prop(st, b, "k", "2");
	assert_int_equal(store_prop_remove(st, c, "k", 1), STORE_E_NOT_HELD);
	assert_int_equal(store_prop_remove(st, a, "k", 1), STORE_OK);
	assert_int_equal(store_prop_remove(st, a, "k", 1), STORE_E_NOT_HELD);
	assert_int_equal(entries_of(store_prop_get(st, "k", 1), order), 1);
	assert_ptr_equal(order[0], b);
	assert_int_equal(a->n_props, 0);
	assert_int_equal(store_prop_remove(st, b, "k", 1), STORE_OK);
	assert_null(store_prop_get(st, "k", 1)); /* the key goes with its last holder */
	assert_int_equal(store_prop_remove(st, b, "nope", 4), STORE_E_NOT_HELD);
	assert_int_equal(store_prop_count(st), 0);
	store_free(st);
}

static void test_props_and_groups_are_separate_namespaces(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0);
	struct store_entry *e;

	(void)state;
	prop(st, a, "x", "1");
	assert_null(store_group_get(st, "x", 1));
	assert_int_equal(store_group_leave(st, a, "x", 1), STORE_E_NOT_HELD);
	assert_int_equal(store_group_pick(st, "x", 1, STORE_PICK_RANDOM, NULL, 0, &e), STORE_E_GROUP_EMPTY);
	store_free(st);
}

/* --- release with the session --- */

static void test_deleted_session_leaves_every_prop_and_group(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0), *b = mk(st, 0), *order[2];
	uint64_t before;

	(void)state;
	prop(st, a, "p1", "1");
	prop(st, a, "p2", "1");
	prop(st, b, "p1", "2");
	join(st, a, "g1", "1");
	join(st, b, "g1", "2");
	join(st, a, "g2", "1");
	before = store_index(st);
	store_session_delete(st, a);
	/* one event per entry released (2 props, 2 groups) and one for the session */
	assert_int_equal(store_index(st) - before, 5);
	assert_int_equal(entries_of(store_prop_get(st, "p1", 2), order), 1);
	assert_ptr_equal(order[0], b);
	assert_null(store_prop_get(st, "p2", 2));
	assert_int_equal(entries_of(store_group_get(st, "g1", 2), order), 1);
	assert_ptr_equal(order[0], b);
	assert_null(store_group_get(st, "g2", 2));
	assert_int_equal(store_prop_count(st), 1);
	assert_int_equal(store_member_count(st), 1);
	store_free(st);
}

static void test_expired_session_leaves_every_prop_and_group(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 1), *b = mk(st, 60), *order[2];

	(void)state;
	prop(st, a, "p", "1");
	prop(st, b, "p", "2");
	join(st, a, "g", "1");
	join(st, b, "g", "2");
	assert_int_equal(store_tick(st, T0 + 999, 100), 0);
	assert_int_equal(store_group_get(st, "g", 1)->n, 2);
	assert_int_equal(store_tick(st, T0 + 1000, 100), 1);
	assert_int_equal(entries_of(store_group_get(st, "g", 1), order), 1);
	assert_ptr_equal(order[0], b);
	assert_int_equal(entries_of(store_prop_get(st, "p", 1), order), 1);
	assert_ptr_equal(order[0], b);
	store_free(st);
}

static void test_release_of_a_big_holder_keeps_other_members_in_order(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[50], *order[50];
	char g[16];
	size_t i, j, n;

	(void)state;
	for (i = 0; i < 50; i++)
		s[i] = mk(st, 0);
	for (j = 0; j < 20; j++) {
		snprintf(g, sizeof(g), "g%zu", j);
		for (i = 0; i < 50; i++)
			assert_int_equal(join(st, s[i], g, "0"), STORE_CREATED);
	}
	store_session_delete(st, s[10]);
	store_session_delete(st, s[0]);
	store_session_delete(st, s[49]);
	for (j = 0; j < 20; j++) {
		snprintf(g, sizeof(g), "g%zu", j);
		n = entries_of(store_group_get(st, g, strlen(g)), order);
		assert_int_equal(n, 47);
		/* the others, still in join order */
		for (i = 1, n = 0; i < 49; i++)
			if (i != 10)
				assert_ptr_equal(order[n++], s[i]);
	}
	assert_int_equal(store_member_count(st), 20 * 47);
	store_free(st);
}

/* --- the per-session limit --- */

static void test_limit_counts_names_props_and_groups_together(void **state)
{
	struct store *st = new_store(3);
	struct store_session *a = mk(st, 0), *b = mk(st, 0);
	struct store_name *n;
	uint64_t idx;

	(void)state;
	assert_int_equal(store_name_register(st, a, "n", 1, "1", 1, &n), STORE_CREATED);
	assert_int_equal(prop(st, a, "p", "1"), STORE_CREATED);
	assert_int_equal(join(st, a, "g", "1"), STORE_CREATED);
	idx = store_index(st);
	assert_int_equal(prop(st, a, "p2", "1"), STORE_E_LIMIT);
	assert_int_equal(join(st, a, "g2", "1"), STORE_E_LIMIT);
	assert_int_equal(store_name_register(st, a, "n2", 2, "1", 1, &n), STORE_E_LIMIT);
	assert_int_equal(store_index(st), idx); /* nothing changed */
	assert_null(store_prop_get(st, "p2", 2));
	assert_null(store_group_get(st, "g2", 2));
	/* replacing what it holds is no new entry */
	assert_int_equal(prop(st, a, "p", "2"), STORE_OK);
	assert_int_equal(join(st, a, "g", "2"), STORE_OK);
	assert_int_equal(store_name_register(st, a, "n", 1, "2", 1, &n), STORE_OK);
	/* another session has its own allowance */
	assert_int_equal(prop(st, b, "p2", "1"), STORE_CREATED);
	/* after a leave there is room again */
	assert_int_equal(store_group_leave(st, a, "g", 1), STORE_OK);
	assert_int_equal(prop(st, a, "p2", "1"), STORE_CREATED);
	store_free(st);
}

/* --- listings --- */

static void test_prop_page_order_prefix_after_and_counts(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0), *b = mk(st, 0);
	const char *keys[] = { "b", "a/b", "a", "ab", "a0", "\xc3\xa9", "c" };
	struct store_key *page[8];
	bool more;
	size_t n, i;

	(void)state;
	for (i = 0; i < 7; i++)
		prop(st, a, keys[i], "1");
	prop(st, b, "a", "2");
	n = store_prop_page(st, "", 0, NULL, 0, 100, page, &more);
	assert_int_equal(n, 7);
	assert_false(more);
	assert_string_equal(page[0]->key, "a");
	assert_int_equal(page[0]->n, 2);
	assert_string_equal(page[1]->key, "a/b");
	assert_string_equal(page[2]->key, "a0");
	assert_string_equal(page[3]->key, "ab");
	assert_string_equal(page[4]->key, "b");
	assert_string_equal(page[5]->key, "c");
	assert_string_equal(page[6]->key, "\xc3\xa9");
	n = store_prop_page(st, "a", 1, NULL, 0, 2, page, &more);
	assert_int_equal(n, 2);
	assert_true(more);
	n = store_prop_page(st, "a", 1, page[1]->key, page[1]->klen, 2, page, &more);
	assert_int_equal(n, 2);
	assert_string_equal(page[0]->key, "a0");
	assert_string_equal(page[1]->key, "ab");
	assert_false(more);
	store_free(st);
}

static void test_group_page_counts_members(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[3];
	struct store_key *page[4];
	bool more;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "workers", "0");
	}
	join(st, s[0], "solo", "0");
	assert_int_equal(store_group_page(st, "", 0, NULL, 0, 10, page, &more), 2);
	assert_string_equal(page[0]->key, "solo");
	assert_int_equal(page[0]->n, 1);
	assert_string_equal(page[1]->key, "workers");
	assert_int_equal(page[1]->n, 3);
	assert_int_equal(store_group_page(st, "w", 1, NULL, 0, 1, page, &more), 1);
	assert_false(more);
	store_free(st);
}

/* --- picks --- */

static void test_pick_from_unknown_group_is_empty(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0);
	struct store_entry *e;

	(void)state;
	assert_int_equal(store_group_pick(st, "g", 1, STORE_PICK_ROUND_ROBIN, NULL, 0, &e), STORE_E_GROUP_EMPTY);
	join(st, a, "g", "1");
	store_group_leave(st, a, "g", 1);
	assert_int_equal(store_group_pick(st, "g", 1, STORE_PICK_RANDOM, NULL, 0, &e), STORE_E_GROUP_EMPTY);
	assert_int_equal(store_group_pick(st, "g", 1, STORE_PICK_HASH, "k", 1, &e), STORE_E_GROUP_EMPTY);
	store_free(st);
}

static void test_pick_random_covers_members_evenly(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[4];
	size_t hits[4] = { 0 }, i, j;

	(void)state;
	for (i = 0; i < 4; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	for (i = 0; i < 4000; i++) {
		struct store_session *p = pick(st, "g", STORE_PICK_RANDOM, NULL);
		for (j = 0; j < 4 && s[j] != p; j++)
			;
		assert_true(j < 4);
		hits[j]++;
	}
	for (j = 0; j < 4; j++) /* expected 1000 each; 800..1200 is > 6 sigma */
		assert_true(hits[j] > 800 && hits[j] < 1200);
	store_free(st);
}

static void test_pick_round_robin_visits_each_once_in_join_order(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[5];
	size_t i, round;

	(void)state;
	for (i = 0; i < 5; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	for (round = 0; round < 3; round++)
		for (i = 0; i < 5; i++)
			assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[i]);
	store_free(st);
}

static void test_pick_round_robin_survives_leave_and_join(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[5], *late;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[0]);
	/* s[1] is next; it leaves: its turn passes to s[2] */
	store_group_leave(st, s[1], "g", 1);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[2]);
	/* a newcomer joins at the end of the cycle */
	late = mk(st, 0);
	join(st, late, "g", "0");
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[3]);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), late);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[0]);
	/* the last member leaving while it is next wraps to the head */
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[2]);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[3]);
	store_group_leave(st, late, "g", 1);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[0]);
	store_free(st);
}

static void test_pick_round_robin_unpick_gives_the_turn_back(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[3];
	struct store_entry *e;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[0]);
	assert_int_equal(store_group_pick(st, "g", 1, STORE_PICK_ROUND_ROBIN, NULL, 0, &e), STORE_OK);
	assert_ptr_equal(e->session, s[1]);
	store_group_unpick(e); /* its request failed on the server's side */
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[1]);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[2]);
	assert_ptr_equal(pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL), s[0]);
	store_free(st);
}

static void test_pick_hash_is_stable_for_a_key(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[5], *first;
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	first = pick(st, "g", STORE_PICK_HASH, "user-42");
	for (i = 0; i < 100; i++) {
		assert_ptr_equal(pick(st, "g", STORE_PICK_HASH, "user-42"), first);
		pick(st, "g", STORE_PICK_ROUND_ROBIN, NULL); /* other picks change nothing */
	}
	/* value replacement is no membership change */
	join(st, s[2], "g", "\"new\"");
	assert_ptr_equal(pick(st, "g", STORE_PICK_HASH, "user-42"), first);
	store_free(st);
}

/* Where each of NKEYS keys goes, into out[]. */
static void map_keys(struct store *st, struct store_session **out)
{
	char k[32];
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		snprintf(k, sizeof(k), "key-%zu", i);
		out[i] = pick(st, "g", STORE_PICK_HASH, k);
	}
}

static void test_pick_hash_moves_only_the_leavers_keys(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[8], **before = calloc(NKEYS, sizeof(*before)),
				    **after = calloc(NKEYS, sizeof(*after));
	size_t i, moved = 0, owned = 0, share[8] = { 0 }, j;

	(void)state;
	assert_non_null(before);
	assert_non_null(after);
	for (i = 0; i < 8; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	map_keys(st, before);
	for (i = 0; i < NKEYS; i++) {
		for (j = 0; j < 8 && s[j] != before[i]; j++)
			;
		share[j]++;
	}
	for (j = 0; j < 8; j++) /* 1250 expected each */
		assert_true(share[j] > 1000 && share[j] < 1500);
	store_group_leave(st, s[3], "g", 1);
	map_keys(st, after);
	for (i = 0; i < NKEYS; i++) {
		if (before[i] == s[3]) {
			owned++;
			assert_ptr_not_equal(after[i], s[3]);
		} else {
			assert_ptr_equal(after[i], before[i]); /* nothing else moves */
		}
		moved += before[i] != after[i];
	}
	assert_int_equal(moved, owned);
	assert_int_equal(owned, share[3]);
	free(before);
	free(after);
	store_free(st);
}

static void test_pick_hash_join_moves_keys_only_to_the_newcomer(void **state)
{
	struct store *st = new_store(0);
	struct store_session *s[5], *late, **before = calloc(NKEYS, sizeof(*before)),
					  **after = calloc(NKEYS, sizeof(*after));
	size_t i, moved = 0;

	(void)state;
	assert_non_null(before);
	assert_non_null(after);
	for (i = 0; i < 5; i++) {
		s[i] = mk(st, 0);
		join(st, s[i], "g", "0");
	}
	map_keys(st, before);
	late = mk(st, 0);
	join(st, late, "g", "0");
	map_keys(st, after);
	for (i = 0; i < NKEYS; i++) {
		if (after[i] != before[i]) {
			assert_ptr_equal(after[i], late);
			moved++;
		}
	}
	/* about a sixth of the keys: 1667 expected */
	assert_true(moved > 1300 && moved < 2000);
	free(before);
	free(after);
	store_free(st);
}

static void test_free_with_entries_releases_everything(void **state)
{
	struct store *st = new_store(0);
	struct store_session *a = mk(st, 0), *b = mk(st, 0);

	(void)state;
	prop(st, a, "p", "1");
	prop(st, b, "p", "1");
	join(st, a, "g", "1");
	join(st, b, "h", "1");
	store_free(st); /* LeakSanitizer in `make asan` checks nothing is left */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prop_set_new_then_replace_keeps_place),
		cmocka_unit_test(test_prop_holders_in_registration_order),
		cmocka_unit_test(test_prop_remove_only_the_callers_entry),
		cmocka_unit_test(test_props_and_groups_are_separate_namespaces),
		cmocka_unit_test(test_deleted_session_leaves_every_prop_and_group),
		cmocka_unit_test(test_expired_session_leaves_every_prop_and_group),
		cmocka_unit_test(test_release_of_a_big_holder_keeps_other_members_in_order),
		cmocka_unit_test(test_limit_counts_names_props_and_groups_together),
		cmocka_unit_test(test_prop_page_order_prefix_after_and_counts),
		cmocka_unit_test(test_group_page_counts_members),
		cmocka_unit_test(test_pick_from_unknown_group_is_empty),
		cmocka_unit_test(test_pick_random_covers_members_evenly),
		cmocka_unit_test(test_pick_round_robin_visits_each_once_in_join_order),
		cmocka_unit_test(test_pick_round_robin_survives_leave_and_join),
		cmocka_unit_test(test_pick_round_robin_unpick_gives_the_turn_back),
		cmocka_unit_test(test_pick_hash_is_stable_for_a_key),
		cmocka_unit_test(test_pick_hash_moves_only_the_leavers_keys),
		cmocka_unit_test(test_pick_hash_join_moves_keys_only_to_the_newcomer),
		cmocka_unit_test(test_free_with_entries_releases_everything),
	};

	return cmocka_run_group_tests_name("multi", tests, NULL, NULL);
}

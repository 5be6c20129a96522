/* test_structs: the store's building blocks on their own: the seeded hash
 * table (store/hmap.h), the ordered skip list (store/skiplist.h) and the
 * deadline heap with back-pointers (store/timer_heap.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../store/hmap.h"
#include "../../store/skiplist.h"
#include "../../store/timer_heap.h"

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* --- hmap --- */

struct item {
	struct hmap_node node;
	char key[24];
	int v;
};

static void item_set(struct item *it, const char *key, size_t klen, int v)
{
	memcpy(it->key, key, klen);
	it->node.key = it->key;
	it->node.klen = klen;
	it->v = v;
}

static struct item *item_of(struct hmap_node *n)
{
	return n ? (struct item *)(void *)((char *)n - offsetof(struct item, node)) : NULL;
}

static void test_hmap_put_get_remove(void **state)
{
	struct hmap m;
	struct item a, b;

	(void)state;
	assert_int_equal(hmap_init(&m, 1, 2), 0);
	assert_null(hmap_get(&m, "a", 1));
	item_set(&a, "alpha", 5, 1);
	item_set(&b, "beta", 4, 2);
	hmap_put(&m, &a.node);
	hmap_put(&m, &b.node);
	assert_int_equal(m.count, 2);
	assert_ptr_equal(item_of(hmap_get(&m, "alpha", 5)), &a);
	assert_ptr_equal(item_of(hmap_get(&m, "beta", 4)), &b);
	hmap_remove(&m, &a.node);
	assert_int_equal(m.count, 1);
	assert_null(hmap_get(&m, "alpha", 5));
	assert_ptr_equal(item_of(hmap_get(&m, "beta", 4)), &b);
	/* put back after a remove */
	hmap_put(&m, &a.node);
	assert_ptr_equal(item_of(hmap_get(&m, "alpha", 5)), &a);
	hmap_destroy(&m);
	assert_null(m.buckets);
}

static void test_hmap_grows_past_thousands_of_keys(void **state)
{
	enum { N = 20000 };
	struct item *it = calloc(N, sizeof(*it));
	struct hmap m;
	char k[24];
	size_t i;

	(void)state;
	assert_non_null(it);
	assert_int_equal(hmap_init(&m, 0x1234, 0x5678), 0);
	for (i = 0; i < N; i++) {
		int len = snprintf(k, sizeof(k), "key-%zu", i);
		item_set(&it[i], k, (size_t)len, (int)i);
		hmap_put(&m, &it[i].node);
	}
	assert_int_equal(m.count, N);
	/* the load stays at most about 1: the table doubled as it filled */
	assert_true(m.mask + 1 >= N / 2);
	assert_int_equal((m.mask + 1) & m.mask, 0);
	for (i = 0; i < N; i++) {
		int len = snprintf(k, sizeof(k), "key-%zu", i);
		struct item *got = item_of(hmap_get(&m, k, (size_t)len));
		assert_non_null(got);
		assert_int_equal(got->v, (int)i);
	}
	assert_null(hmap_get(&m, "key-20000", 9));
	assert_null(hmap_get(&m, "key-", 4));
	hmap_destroy(&m);
	free(it);
}

static void test_hmap_equal_length_keys_are_distinct(void **state)
{
	enum { N = 256 };
	static struct item it[N];
	struct hmap m;
	char k[8];
	size_t i;

	(void)state;
	assert_int_equal(hmap_init(&m, 7, 9), 0);
	/* 8-byte keys that differ in one byte only: the first, or the last */
	for (i = 0; i < N; i++) {
		memcpy(k, "abcdefgh", 8);
		if (i < N / 2)
			k[0] = (char)i;
		else
			k[7] = (char)i;
		item_set(&it[i], k, 8, (int)i);
		hmap_put(&m, &it[i].node);
	}
	for (i = 0; i < N; i++) {
		struct item *got = item_of(hmap_get(&m, it[i].key, 8));
		assert_non_null(got);
		assert_int_equal(got->v, (int)i);
	}
	assert_null(hmap_get(&m, "abcdefgX", 8));
	hmap_destroy(&m);
}

static void test_hmap_prefix_and_empty_keys_are_distinct(void **state)
{
	struct hmap m;
	struct item e, a, ab, abc, nul;

	(void)state;
	assert_int_equal(hmap_init(&m, 3, 4), 0);
	item_set(&e, "", 0, 0);
	item_set(&a, "a", 1, 1);
	item_set(&ab, "ab", 2, 2);
	item_set(&abc, "abc", 3, 3);
	item_set(&nul, "a\0", 2, 4);
	hmap_put(&m, &e.node);
	hmap_put(&m, &a.node);
	hmap_put(&m, &ab.node);
	hmap_put(&m, &abc.node);
	hmap_put(&m, &nul.node);
	assert_ptr_equal(item_of(hmap_get(&m, "", 0)), &e);
	assert_ptr_equal(item_of(hmap_get(&m, "a", 1)), &a);
	assert_ptr_equal(item_of(hmap_get(&m, "ab", 2)), &ab);
	assert_ptr_equal(item_of(hmap_get(&m, "abc", 3)), &abc);
	assert_ptr_equal(item_of(hmap_get(&m, "a\0", 2)), &nul);
	assert_null(hmap_get(&m, "abcd", 4));
	hmap_destroy(&m);
}

static void test_hmap_remove_keeps_the_others(void **state)
{
	enum { N = 5000 };
	struct item *it = calloc(N, sizeof(*it));
	struct hmap m;
	char k[24];
	size_t i;

	(void)state;
	assert_non_null(it);
	assert_int_equal(hmap_init(&m, 11, 13), 0);
	for (i = 0; i < N; i++) {
		int len = snprintf(k, sizeof(k), "%zu", i * 7919);
		item_set(&it[i], k, (size_t)len, (int)i);
		hmap_put(&m, &it[i].node);
	}
	for (i = 0; i < N; i += 2)
		hmap_remove(&m, &it[i].node);
	assert_int_equal(m.count, N / 2);
	for (i = 0; i < N; i++) {
		struct item *got = item_of(hmap_get(&m, it[i].key, it[i].node.klen));
		if (i % 2)
			assert_ptr_equal(got, &it[i]);
		else
			assert_null(got);
	}
	hmap_destroy(&m);
	free(it);
}

static void test_hmap_seed_changes_the_hash(void **state)
{
	(void)state;
	assert_int_not_equal(hmap_siphash(1, 2, "token", 5), hmap_siphash(1, 3, "token", 5));
	assert_int_not_equal(hmap_siphash(1, 2, "token", 5), hmap_siphash(2, 2, "token", 5));
	assert_int_equal(hmap_siphash(1, 2, "token", 5), hmap_siphash(1, 2, "token", 5));
}

static void test_hmap_siphash_matches_reference_vectors(void **state)
{
	/* SipHash-2-4, key 00 01 .. 0f, message 00 01 .. (len-1): the
	 * reference implementation's vectors.h (and the paper's appendix for 15). */
	const uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
	unsigned char msg[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	assert_int_equal(hmap_siphash(k0, k1, msg, 0), 0x726fdb47dd0e0e31ULL);
	assert_int_equal(hmap_siphash(k0, k1, msg, 1), 0x74f839c593dc67fdULL);
	assert_int_equal(hmap_siphash(k0, k1, msg, 8), 0x93f5f5799a932462ULL);
	assert_int_equal(hmap_siphash(k0, k1, msg, 15), 0xa129ca6149be45e5ULL);
}

static void test_hmap_ct_equal(void **state)
{
	char a[64], b[64];

	(void)state;
	memset(a, 'x', sizeof(a));
	memset(b, 'x', sizeof(b));
	assert_true(hmap_ct_equal(a, b, sizeof(a)));
	assert_true(hmap_ct_equal(a, b, 0));
	b[0] = 'y';
	assert_false(hmap_ct_equal(a, b, sizeof(a)));
	assert_true(hmap_ct_equal(a + 1, b + 1, sizeof(a) - 1));
	b[0] = 'x';
	b[63] = 'y';
	assert_false(hmap_ct_equal(a, b, sizeof(a)));
	assert_true(hmap_ct_equal(a, b, 63));
	/* a difference in the high bit only */
	b[63] = (char)('x' ^ 0x80);
	assert_false(hmap_ct_equal(a, b, sizeof(a)));
}

/* --- skiplist --- */

static int cmp_keys(const void *x, const void *y)
{
	const char *a = *(const char *const *)x, *b = *(const char *const *)y;
	size_t al = strlen(a), bl = strlen(b);
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

static struct skip_node *first(const struct skiplist *l)
{
	return l->head->next[0];
}

static void check_order(const struct skiplist *l)
{
	struct skip_node *n, *prev = NULL;
	size_t count = 0;

	for (n = first(l); n; n = skiplist_next(n)) {
		if (prev)
			assert_true(skiplist_cmp(prev->key, prev->klen, n->key, n->klen) < 0);
		prev = n;
		count++;
	}
	assert_int_equal(count, l->count);
}

static void ins(struct skiplist *l, const char *key)
{
	assert_int_equal(skiplist_insert(l, key, strlen(key), (void *)key), 0);
}

static void test_skiplist_cmp_is_byte_order(void **state)
{
	(void)state;
	assert_int_equal(skiplist_cmp("a", 1, "a", 1), 0);
	assert_int_equal(skiplist_cmp("", 0, "", 0), 0);
	assert_true(skiplist_cmp("", 0, "a", 1) < 0);
	assert_true(skiplist_cmp("a", 1, "", 0) > 0);
	assert_true(skiplist_cmp("a", 1, "a/", 2) < 0); /* a prefix sorts first */
	assert_true(skiplist_cmp("a/", 2, "a0", 2) < 0);
	assert_true(skiplist_cmp("a0", 2, "ab", 2) < 0);
	assert_true(skiplist_cmp("B", 1, "a", 1) < 0);
	assert_true(skiplist_cmp("z", 1, "\xc3\xa9", 2) < 0); /* bytes >= 0x80 after ASCII */
	assert_true(skiplist_cmp("\x7f", 1, "\x80", 1) < 0);
	assert_true(skiplist_cmp("a\0", 2, "a", 1) > 0); /* lengths count, not NULs */
	assert_true(skiplist_cmp("ab", 2, "abc", 2) == 0);
}

static void test_skiplist_insert_and_seek(void **state)
{
	struct skiplist l;
	struct skip_node *n;

	(void)state;
	assert_int_equal(skiplist_init(&l, 42), 0);
	assert_null(skiplist_seek(&l, "a", 1, 0));
	ins(&l, "b");
	ins(&l, "d");
	ins(&l, "a/b");
	ins(&l, "a");
	assert_int_equal(l.count, 4);
	check_order(&l);
	/* non-strict: equal or the next */
	n = skiplist_seek(&l, "b", 1, 0);
	assert_non_null(n);
	assert_string_equal(n->value, "b");
	n = skiplist_seek(&l, "c", 1, 0);
	assert_string_equal(n->value, "d");
	n = skiplist_seek(&l, "", 0, 0);
	assert_string_equal(n->value, "a");
	n = skiplist_seek(&l, "a/", 2, 0);
	assert_string_equal(n->value, "a/b");
	/* strict: always after */
	n = skiplist_seek(&l, "b", 1, 1);
	assert_string_equal(n->value, "d");
	n = skiplist_seek(&l, "a", 1, 1);
	assert_string_equal(n->value, "a/b");
	n = skiplist_seek(&l, "c", 1, 1);
	assert_string_equal(n->value, "d");
	/* past the end */
	assert_null(skiplist_seek(&l, "d", 1, 1));
	assert_null(skiplist_seek(&l, "e", 1, 0));
	skiplist_destroy(&l);
}

static void test_skiplist_remove(void **state)
{
	struct skiplist l;
	static const char *keys[] = { "m", "c", "x", "a", "q" };
	size_t i;

	(void)state;
	assert_int_equal(skiplist_init(&l, 7), 0);
	for (i = 0; i < 5; i++)
		ins(&l, keys[i]);
	assert_ptr_equal(skiplist_remove(&l, "m", 1), keys[0]);
	assert_null(skiplist_remove(&l, "m", 1));
	assert_null(skiplist_remove(&l, "b", 1));
	assert_null(skiplist_remove(&l, "", 0));
	assert_int_equal(l.count, 4);
	check_order(&l);
	assert_string_equal(skiplist_seek(&l, "m", 1, 0)->value, "q");
	assert_ptr_equal(skiplist_remove(&l, "a", 1), keys[3]); /* the first */
	assert_ptr_equal(skiplist_remove(&l, "x", 1), keys[2]); /* the last */
	assert_string_equal(first(&l)->value, "c");
	check_order(&l);
	assert_ptr_equal(skiplist_remove(&l, "c", 1), keys[1]);
	assert_ptr_equal(skiplist_remove(&l, "q", 1), keys[4]);
	assert_int_equal(l.count, 0);
	assert_null(first(&l));
	assert_int_equal(l.level, 1);
	/* usable again once empty */
	ins(&l, "z");
	assert_string_equal(first(&l)->value, "z");
	skiplist_destroy(&l);
}

static void test_skiplist_order_matches_qsort_of_random_keys(void **state)
{
	enum { N = 3000 };
	static char keys[N][12];
	static const char alphabet[] = { 'a', 'b', 'z', '/', '0', 'A', (char)0x80, (char)0xc3, (char)0xff };
	char *want[N];
	struct skiplist l;
	struct skip_node *n;
	uint64_t rng = 99;
	size_t i, j, nk = 0;

	(void)state;
	assert_int_equal(skiplist_init(&l, 1234), 0);
	for (i = 0; i < N; i++) {
		size_t len = 1 + (size_t)(xorshift(&rng) % 10);
		for (j = 0; j < len; j++)
			keys[i][j] = alphabet[xorshift(&rng) % sizeof(alphabet)];
		keys[i][len] = '\0';
		if (skiplist_seek(&l, keys[i], len, 0) &&
		    skiplist_cmp(skiplist_seek(&l, keys[i], len, 0)->key, skiplist_seek(&l, keys[i], len, 0)->klen,
				 keys[i], len) == 0)
			continue; /* already in: the list takes each key once */
		ins(&l, keys[i]);
		want[nk++] = keys[i];
	}
	assert_int_equal(l.count, nk);
	qsort(want, nk, sizeof(want[0]), cmp_keys);
	i = 0;
	for (n = first(&l); n; n = skiplist_next(n))
		assert_string_equal(n->value, want[i++]);
	assert_int_equal(i, nk);
	/* remove a third of them at random and check again */
	for (i = 0; i < nk; i += 3)
		assert_ptr_equal(skiplist_remove(&l, want[i], strlen(want[i])), want[i]);
	j = 0;
	for (n = first(&l); n; n = skiplist_next(n)) {
		if (j % 3 == 0)
			j++;
		assert_string_equal(n->value, want[j++]);
	}
	check_order(&l);
	/* every seek lands where the sorted array says */
	for (i = 0; i < nk; i++) {
		n = skiplist_seek(&l, want[i], strlen(want[i]), 1);
		if (i + 1 < nk && (i + 1) % 3 != 0)
			assert_string_equal(n->value, want[i + 1]);
		else if (i + 2 < nk)
			assert_string_equal(n->value, want[i + 2]);
	}
	skiplist_destroy(&l);
}

/* --- timer_heap --- */

static void check_heap(const struct timer_heap *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		assert_int_equal(h->a[i]->idx, i);
		if (i > 0)
			assert_true(h->a[(i - 1) / 2]->deadline <= h->a[i]->deadline);
	}
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return (a > b) - (a < b);
}

static void test_heap_pops_random_deadlines_in_order(void **state)
{
	enum { N = 2000 };
	static struct timer t[N];
	uint64_t want[N];
	struct timer_heap h;
	uint64_t rng = 5;
	size_t i;

	(void)state;
	timer_heap_init(&h);
	assert_null(timer_heap_peek(&h));
	for (i = 0; i < N; i++) {
		t[i].deadline = xorshift(&rng) % 1000; /* with many ties */
		want[i] = t[i].deadline;
		assert_int_equal(timer_heap_add(&h, &t[i]), 0);
	}
	check_heap(&h);
	qsort(want, N, sizeof(want[0]), cmp_u64);
	for (i = 0; i < N; i++) {
		struct timer *top = timer_heap_peek(&h);
		assert_non_null(top);
		assert_int_equal(top->deadline, want[i]);
		timer_heap_remove(&h, top);
		assert_int_equal(top->idx, TIMER_IDLE);
	}
	assert_null(timer_heap_peek(&h));
	assert_int_equal(h.n, 0);
	timer_heap_destroy(&h);
}

static void test_heap_update_moves_up_and_down(void **state)
{
	struct timer t[10];
	struct timer_heap h;
	size_t i;

	(void)state;
	timer_heap_init(&h);
	for (i = 0; i < 10; i++) {
		t[i].deadline = 100 + i * 10;
		assert_int_equal(timer_heap_add(&h, &t[i]), 0);
	}
	/* the last to the front */
	timer_heap_update(&h, &t[9], 5);
	check_heap(&h);
	assert_ptr_equal(timer_heap_peek(&h), &t[9]);
	/* the front to the back */
	timer_heap_update(&h, &t[9], 1000);
	check_heap(&h);
	assert_ptr_equal(timer_heap_peek(&h), &t[0]);
	timer_heap_update(&h, &t[0], 500);
	check_heap(&h);
	assert_ptr_equal(timer_heap_peek(&h), &t[1]);
	/* to the same deadline: stays valid */
	timer_heap_update(&h, &t[5], t[5].deadline);
	check_heap(&h);
	/* everything out in the new order */
	{
		static const int order[] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 9 };
		for (i = 0; i < 10; i++) {
			struct timer *top = timer_heap_peek(&h);
			assert_ptr_equal(top, &t[order[i]]);
			timer_heap_remove(&h, top);
		}
	}
	timer_heap_destroy(&h);
}

static void test_heap_remove_from_middle_keeps_order(void **state)
{
	enum { N = 500 };
	static struct timer t[N];
	struct timer_heap h;
	uint64_t rng = 77, last = 0;
	size_t i;

	(void)state;
	timer_heap_init(&h);
	for (i = 0; i < N; i++) {
		t[i].deadline = xorshift(&rng) % 100000;
		assert_int_equal(timer_heap_add(&h, &t[i]), 0);
	}
	/* remove by identity, wherever each one sits */
	for (i = 0; i < N; i += 3) {
		timer_heap_remove(&h, &t[i]);
		assert_int_equal(t[i].idx, TIMER_IDLE);
		check_heap(&h);
	}
	assert_int_equal(h.n, N - (N + 2) / 3);
	while (timer_heap_peek(&h)) {
		struct timer *top = timer_heap_peek(&h);
		assert_true(top->deadline >= last);
		assert_true((size_t)(top - t) % 3 != 0);
		last = top->deadline;
		timer_heap_remove(&h, top);
	}
	timer_heap_destroy(&h);
}

static void test_heap_remove_marks_idle_and_is_idempotent(void **state)
{
	struct timer a = { .deadline = 1 }, b = { .deadline = 2 }, c = { .deadline = 3 };
	struct timer_heap h;

	(void)state;
	timer_heap_init(&h);
	timer_heap_add(&h, &a);
	timer_heap_add(&h, &b);
	timer_heap_add(&h, &c);
	timer_heap_remove(&h, &b);
	assert_int_equal(b.idx, TIMER_IDLE);
	assert_int_equal(h.n, 2);
	timer_heap_remove(&h, &b); /* not in the heap: nothing */
	assert_int_equal(h.n, 2);
	check_heap(&h);
	/* an idle timer's update only records the deadline */
	timer_heap_update(&h, &b, 0);
	assert_int_equal(b.deadline, 0);
	assert_int_equal(b.idx, TIMER_IDLE);
	assert_ptr_equal(timer_heap_peek(&h), &a);
	/* the last element, then the only one */
	timer_heap_remove(&h, &c);
	timer_heap_remove(&h, &a);
	assert_int_equal(a.idx, TIMER_IDLE);
	assert_null(timer_heap_peek(&h));
	/* and re-added after */
	assert_int_equal(timer_heap_add(&h, &b), 0);
	assert_ptr_equal(timer_heap_peek(&h), &b);
	timer_heap_destroy(&h);
	assert_int_equal(b.idx, TIMER_IDLE); /* destroy leaves every timer idle */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hmap_put_get_remove),
		cmocka_unit_test(test_hmap_grows_past_thousands_of_keys),
		cmocka_unit_test(test_hmap_equal_length_keys_are_distinct),
		cmocka_unit_test(test_hmap_prefix_and_empty_keys_are_distinct),
		cmocka_unit_test(test_hmap_remove_keeps_the_others),
		cmocka_unit_test(test_hmap_seed_changes_the_hash),
		cmocka_unit_test(test_hmap_siphash_matches_reference_vectors),
		cmocka_unit_test(test_hmap_ct_equal),
		cmocka_unit_test(test_skiplist_cmp_is_byte_order),
		cmocka_unit_test(test_skiplist_insert_and_seek),
		cmocka_unit_test(test_skiplist_remove),
		cmocka_unit_test(test_skiplist_order_matches_qsort_of_random_keys),
		cmocka_unit_test(test_heap_pops_random_deadlines_in_order),
		cmocka_unit_test(test_heap_update_moves_up_and_down),
		cmocka_unit_test(test_heap_remove_from_middle_keeps_order),
		cmocka_unit_test(test_heap_remove_marks_idle_and_is_idempotent),
	};

	return cmocka_run_group_tests_name("structs", tests, NULL, NULL);
}

/* test_store: the registry (store/store.h) on its own: sessions and leases,
 * unique names, the change index, listings, waiters and freeing. Randomness
 * is a seeded xorshift and time is a number the test moves; nothing sleeps. */
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

#define T0 1000000u /* an arbitrary start on the monotonic clock, in ms */

/* --- fixture: a store with a deterministic random source --- */

struct fx {
	struct store *st;
	struct store_config cfg;
	uint64_t rng; /* xorshift64 state; never 0 */
};

static uint64_t seed_counter;

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void fake_random(void *ctx, void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(xorshift(ctx) >> 32);
}

static struct fx *fx_new(unsigned default_ttl, unsigned max_ttl, size_t max_sessions)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	/* An odd multiplier keeps every seed non-zero and each store different. */
	f->rng = 0x9e3779b97f4a7c15ULL * ++seed_counter;
	f->cfg.default_ttl = default_ttl;
	f->cfg.max_ttl = max_ttl;
	f->cfg.max_sessions = max_sessions;
	f->cfg.random = fake_random;
	f->cfg.random_ctx = &f->rng;
	f->st = store_new(&f->cfg);
	assert_non_null(f->st);
	return f;
}

/* Deletes every live session, as a listing page at a time. */
static void drain_sessions(struct store *st)
{
	struct store_session *page[64];
	bool more = true;
	size_t n, i;

	while (more) {
		n = store_session_page(st, NULL, 0, 64, page, &more);
		for (i = 0; i < n; i++)
			store_session_delete(st, page[i]);
		if (n == 0)
			break;
	}
}

/* Frees the store with whatever the test left in it: live sessions with
 * names included (ASan checks that this is clean). */
static void fx_free(struct fx *f)
{
	store_free(f->st);
	free(f);
}

static int setup(void **state)
{
	*state = fx_new(15, 3600, 100000);
	return 0;
}

static int teardown(void **state)
{
	fx_free(*state);
	return 0;
}

/* --- helpers --- */

static struct store_session *mk(struct store *st, uint64_t now, unsigned ttl)
{
	struct store_session *s = NULL;

	assert_int_equal(store_session_create(st, now, ttl, NULL, 0, &s), STORE_CREATED);
	assert_non_null(s);
	return s;
}

static enum store_rc reg(struct store *st, struct store_session *s, const char *key, const char *value)
{
	struct store_name *n = NULL;

	return store_name_register(st, s, key, strlen(key), value, strlen(value), &n);
}

static bool lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

/* memcmp order, shorter first on a common prefix: what the listings promise. */
static int bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return (alen > blen) - (alen < blen);
}

static int cmp_cstr_ptr(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;

	return bytecmp(x, strlen(x), y, strlen(y));
}

/* A waiter that counts its wake-ups. */
struct probe {
	struct store_waiter w;
	int calls;
	enum store_wake why;
};

static void on_wake(struct store_waiter *w, enum store_wake why)
{
	struct probe *p = (struct probe *)(void *)((char *)w - offsetof(struct probe, w));

	p->calls++;
	p->why = why;
}

static void probe_init(struct probe *p)
{
	memset(p, 0, sizeof(*p));
	p->w.wake = on_wake;
	p->w.timer.idx = TIMER_IDLE;
}

static void await_key(struct store *st, const char *key, uint64_t deadline, struct probe *p)
{
	assert_int_equal(store_name_await(st, key, strlen(key), deadline, &p->w), STORE_OK);
}

/* --- sessions --- */

static void test_session_create_gives_hex_id_and_token(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);

	assert_int_equal(strlen(s->id), STORE_ID_LEN);
	assert_int_equal(strlen(s->token), STORE_TOKEN_LEN);
	assert_true(lower_hex(s->id, STORE_ID_LEN));
	assert_true(lower_hex(s->token, STORE_TOKEN_LEN));
	assert_int_equal(store_session_count(f->st), 1);
}

static void test_session_ids_and_tokens_are_distinct(void **state)
{
	struct fx *f = *state;
	enum { N = 500 };
	static struct store_session *s[N];
	char *ids[N], *toks[N];
	size_t i;

	for (i = 0; i < N; i++) {
		s[i] = mk(f->st, T0, 0);
		ids[i] = s[i]->id;
		toks[i] = s[i]->token;
		/* the token does not repeat or contain the public id */
		assert_null(strstr(s[i]->token, s[i]->id));
	}
	qsort(ids, N, sizeof(ids[0]), cmp_cstr_ptr);
	qsort(toks, N, sizeof(toks[0]), cmp_cstr_ptr);
	for (i = 1; i < N; i++) {
		assert_string_not_equal(ids[i - 1], ids[i]);
		assert_string_not_equal(toks[i - 1], toks[i]);
	}
}

static void test_session_create_ttl0_uses_default(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);

	assert_int_equal(s->ttl, 15);
	assert_int_equal(s->lease.deadline, T0 + 15000);
	assert_int_equal(store_session_expires_in(s, T0), 15000);
}

static void test_session_create_with_ttl_sets_lease(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 7);
	struct store_session *m = mk(f->st, T0, 3600);

	assert_int_equal(s->ttl, 7);
	assert_int_equal(s->lease.deadline, T0 + 7000);
	assert_int_equal(m->ttl, 3600);
	assert_int_equal(m->lease.deadline, T0 + 3600000ull);
}

static void test_session_create_ttl_over_max_is_invalid(void **state)
{
	struct fx *f = *state;
	struct store_session *s = NULL;
	uint64_t idx = store_index(f->st);

	assert_int_equal(store_session_create(f->st, T0, 3601, NULL, 0, &s), STORE_E_INVALID_TTL);
	assert_int_equal(store_session_create(f->st, T0, UINT32_MAX, "x", 1, &s), STORE_E_INVALID_TTL);
	assert_null(s);
	assert_int_equal(store_session_count(f->st), 0);
	assert_int_equal(store_index(f->st), idx);
	assert_int_equal(store_next_deadline(f->st), UINT64_MAX);
}

static void test_session_create_default_over_max_is_invalid(void **state)
{
	struct fx *g = fx_new(20, 10, 10);
	struct store_session *s = NULL;

	(void)state;
	assert_int_equal(store_session_create(g->st, T0, 0, NULL, 0, &s), STORE_E_INVALID_TTL);
	assert_int_equal(store_session_count(g->st), 0);
	fx_free(g);
}

static void test_session_create_copies_label(void **state)
{
	struct fx *f = *state;
	char label[] = "api@host-3";
	struct store_session *s = NULL, *n;

	assert_int_equal(store_session_create(f->st, T0, 0, label, strlen(label), &s), STORE_CREATED);
	memset(label, 'X', strlen(label));
	assert_string_equal(s->label, "api@host-3");
	assert_int_equal(s->label_len, 10);
	/* a label of exactly the maximum, and no label at all */
	{
		char big[STORE_LABEL_MAX];
		struct store_session *b = NULL;
		memset(big, 'l', sizeof(big));
		assert_int_equal(store_session_create(f->st, T0, 0, big, sizeof(big), &b), STORE_CREATED);
		assert_int_equal(b->label_len, STORE_LABEL_MAX);
		assert_int_equal(strlen(b->label), STORE_LABEL_MAX);
	}
	n = mk(f->st, T0, 0);
	assert_null(n->label);
	assert_int_equal(n->label_len, 0);
}

static void test_session_find_by_id_and_by_token(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0), *b = mk(f->st, T0, 0);

	assert_ptr_equal(store_session_find(f->st, T0, a->id, STORE_ID_LEN), a);
	assert_ptr_equal(store_session_find(f->st, T0, b->id, STORE_ID_LEN), b);
	assert_ptr_equal(store_session_by_token(f->st, T0, a->token, STORE_TOKEN_LEN), a);
	assert_ptr_equal(store_session_by_token(f->st, T0, b->token, STORE_TOKEN_LEN), b);
	/* an id is not a token and a token is not an id */
	assert_null(store_session_by_token(f->st, T0, a->id, STORE_ID_LEN));
	assert_null(store_session_find(f->st, T0, a->token, STORE_TOKEN_LEN));
}

static void test_session_find_unknown_or_truncated_is_null(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0);
	char id[STORE_ID_LEN + 1], tok[STORE_TOKEN_LEN + 1];

	memcpy(id, a->id, sizeof(id));
	memcpy(tok, a->token, sizeof(tok));
	id[0] = id[0] == '0' ? '1' : '0';
	tok[STORE_TOKEN_LEN - 1] = tok[STORE_TOKEN_LEN - 1] == '0' ? '1' : '0';
	assert_null(store_session_find(f->st, T0, id, STORE_ID_LEN));
	assert_null(store_session_by_token(f->st, T0, tok, STORE_TOKEN_LEN));
	assert_null(store_session_find(f->st, T0, a->id, STORE_ID_LEN - 1));
	assert_null(store_session_by_token(f->st, T0, a->token, STORE_TOKEN_LEN - 1));
	assert_null(store_session_find(f->st, T0, "", 0));
	assert_int_equal(store_session_count(f->st), 1);
}

static void test_session_limit_then_delete_frees_a_slot(void **state)
{
	struct fx *g = fx_new(15, 3600, 3);
	struct store_session *s[3], *extra = NULL;
	uint64_t idx;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		s[i] = mk(g->st, T0, 0);
	idx = store_index(g->st);
	assert_int_equal(store_session_create(g->st, T0, 0, NULL, 0, &extra), STORE_E_LIMIT);
	assert_null(extra);
	assert_int_equal(store_session_count(g->st), 3);
	assert_int_equal(store_index(g->st), idx);
	store_session_delete(g->st, s[1]);
	assert_int_equal(store_session_create(g->st, T0, 0, NULL, 0, &extra), STORE_CREATED);
	assert_int_equal(store_session_count(g->st), 3);
	fx_free(g);
}

static void test_session_limit_frees_up_after_expiry(void **state)
{
	struct fx *g = fx_new(15, 3600, 2);
	struct store_session *extra = NULL;

	(void)state;
	mk(g->st, T0, 1);
	mk(g->st, T0, 10);
	assert_int_equal(store_session_create(g->st, T0 + 999, 0, NULL, 0, &extra), STORE_E_LIMIT);
	assert_int_equal(store_tick(g->st, T0 + 1000, 100), 1);
	assert_int_equal(store_session_create(g->st, T0 + 1000, 0, NULL, 0, &extra), STORE_CREATED);
	fx_free(g);
}

static void test_session_delete_removes_it(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0);
	char id[STORE_ID_LEN + 1], tok[STORE_TOKEN_LEN + 1];

	memcpy(id, a->id, sizeof(id));
	memcpy(tok, a->token, sizeof(tok));
	store_session_delete(f->st, a);
	assert_null(store_session_find(f->st, T0, id, STORE_ID_LEN));
	assert_null(store_session_by_token(f->st, T0, tok, STORE_TOKEN_LEN));
	assert_int_equal(store_session_count(f->st), 0);
	assert_int_equal(store_next_deadline(f->st), UINT64_MAX);
	assert_int_equal(store_tick(f->st, T0 + 100000, 10), 0);
}

/* --- leases --- */

static void test_lease_alive_one_ms_before_deadline(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);
	uint64_t deadline = T0 + 5000;

	assert_int_equal(store_tick(f->st, deadline - 1, 100), 0);
	assert_ptr_equal(store_session_find(f->st, deadline - 1, s->id, STORE_ID_LEN), s);
	assert_ptr_equal(store_session_by_token(f->st, deadline - 1, s->token, STORE_TOKEN_LEN), s);
	assert_int_equal(store_session_expires_in(s, deadline - 1), 1);
	assert_int_equal(store_session_count(f->st), 1);
}

static void test_lease_expires_at_deadline_via_tick(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);
	char id[STORE_ID_LEN + 1];

	memcpy(id, s->id, sizeof(id));
	assert_int_equal(store_session_expires_in(s, T0 + 5000), 0);
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 1);
	assert_int_equal(store_session_count(f->st), 0);
	assert_null(store_session_find(f->st, T0 + 5000, id, STORE_ID_LEN));
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 0);
}

static void test_lease_expires_at_deadline_via_find(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);
	char id[STORE_ID_LEN + 1];
	uint64_t idx;

	reg(f->st, s, "svc", "1");
	idx = store_index(f->st);
	memcpy(id, s->id, sizeof(id));
	/* no tick: the look-up itself expires it, with what it held */
	assert_null(store_session_find(f->st, T0 + 5000, id, STORE_ID_LEN));
	assert_int_equal(store_session_count(f->st), 0);
	assert_null(store_name_get(f->st, "svc", 3));
	assert_int_equal(store_index(f->st), idx + 2);
	assert_int_equal(store_next_deadline(f->st), UINT64_MAX);
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 0);
}

static void test_lease_expires_at_deadline_via_token(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);
	char tok[STORE_TOKEN_LEN + 1];

	memcpy(tok, s->token, sizeof(tok));
	assert_null(store_session_by_token(f->st, T0 + 5000, tok, STORE_TOKEN_LEN));
	assert_int_equal(store_session_count(f->st), 0);
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 0);
}

static void test_touch_moves_deadline(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);

	store_session_touch(f->st, T0 + 4000, s);
	assert_int_equal(s->lease.deadline, T0 + 9000);
	assert_int_equal(store_next_deadline(f->st), T0 + 9000);
	assert_int_equal(store_tick(f->st, T0 + 8999, 100), 0);
	assert_ptr_equal(store_session_find(f->st, T0 + 8999, s->id, STORE_ID_LEN), s);
	assert_int_equal(store_tick(f->st, T0 + 9000, 100), 1);
	assert_int_equal(store_session_count(f->st), 0);
}

static void test_touch_keeps_other_leases_in_order(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 5), *b = mk(f->st, T0, 6);
	char bid[STORE_ID_LEN + 1];

	memcpy(bid, b->id, sizeof(bid));
	/* a moves behind b: b must now expire first, and a only later */
	store_session_touch(f->st, T0 + 2000, a);
	assert_int_equal(store_next_deadline(f->st), T0 + 6000);
	assert_int_equal(store_tick(f->st, T0 + 6000, 100), 1);
	assert_ptr_equal(store_session_find(f->st, T0 + 6000, a->id, STORE_ID_LEN), a);
	assert_null(store_session_find(f->st, T0 + 6000, bid, STORE_ID_LEN));
	assert_int_equal(store_session_count(f->st), 1);
	assert_int_equal(store_tick(f->st, T0 + 7000, 100), 1);
	assert_int_equal(store_session_count(f->st), 0);
}

static void test_heartbeat_moves_deadline(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);

	assert_int_equal(store_session_heartbeat(f->st, T0 + 3000, s, 0), STORE_OK);
	assert_int_equal(s->ttl, 5);
	assert_int_equal(s->lease.deadline, T0 + 8000);
	assert_int_equal(store_tick(f->st, T0 + 7999, 100), 0);
	assert_int_equal(store_tick(f->st, T0 + 8000, 100), 1);
}

static void test_heartbeat_with_new_ttl(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);

	assert_int_equal(store_session_heartbeat(f->st, T0 + 1000, s, 60), STORE_OK);
	assert_int_equal(s->ttl, 60);
	assert_int_equal(s->lease.deadline, T0 + 61000);
	assert_int_equal(store_next_deadline(f->st), T0 + 61000);
	/* and the new ttl sticks for later touches */
	store_session_touch(f->st, T0 + 2000, s);
	assert_int_equal(s->lease.deadline, T0 + 62000);
	/* shortening works too */
	assert_int_equal(store_session_heartbeat(f->st, T0 + 3000, s, 1), STORE_OK);
	assert_int_equal(store_next_deadline(f->st), T0 + 4000);
}

static void test_heartbeat_with_bad_ttl_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 5);
	uint64_t idx = store_index(f->st);

	assert_int_equal(store_session_heartbeat(f->st, T0 + 3000, s, 3601), STORE_E_INVALID_TTL);
	assert_int_equal(s->ttl, 5);
	assert_int_equal(s->lease.deadline, T0 + 5000);
	assert_int_equal(store_next_deadline(f->st), T0 + 5000);
	assert_int_equal(store_index(f->st), idx);
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 1);
}

static void test_next_deadline_is_earliest(void **state)
{
	struct fx *f = *state;
	struct store_session *a, *b;
	struct probe p;

	assert_int_equal(store_next_deadline(f->st), UINT64_MAX);
	a = mk(f->st, T0, 10);
	assert_int_equal(store_next_deadline(f->st), T0 + 10000);
	b = mk(f->st, T0 + 1000, 5);
	assert_int_equal(store_next_deadline(f->st), T0 + 6000);
	probe_init(&p);
	await_key(f->st, "k", T0 + 3000, &p);
	assert_int_equal(store_next_deadline(f->st), T0 + 3000);
	store_waiter_cancel(f->st, &p.w);
	assert_int_equal(store_next_deadline(f->st), T0 + 6000);
	store_session_delete(f->st, b);
	assert_int_equal(store_next_deadline(f->st), T0 + 10000);
	store_session_touch(f->st, T0 + 5000, a);
	assert_int_equal(store_next_deadline(f->st), T0 + 15000);
	store_session_delete(f->st, a);
	assert_int_equal(store_next_deadline(f->st), UINT64_MAX);
}

static void test_tick_respects_budget(void **state)
{
	struct fx *f = *state;
	int i;

	for (i = 0; i < 2500; i++)
		mk(f->st, T0, 5);
	assert_int_equal(store_tick(f->st, T0 + 4999, 1000), 0);
	assert_int_equal(store_tick(f->st, T0 + 5000, 1000), 1000);
	assert_int_equal(store_session_count(f->st), 1500);
	assert_int_equal(store_tick(f->st, T0 + 5000, 1000), 1000);
	assert_int_equal(store_session_count(f->st), 500);
	assert_int_equal(store_tick(f->st, T0 + 5000, 1000), 500);
	assert_int_equal(store_session_count(f->st), 0);
	assert_int_equal(store_tick(f->st, T0 + 5000, 1000), 0);
}

static void test_tick_runs_in_deadline_order(void **state)
{
	struct fx *f = *state;
	struct store_session *s3 = mk(f->st, T0, 3), *s1 = mk(f->st, T0, 1), *s2 = mk(f->st, T0, 2);

	(void)s1;
	assert_int_equal(store_tick(f->st, T0 + 10000, 1), 1);
	assert_ptr_equal(store_session_find(f->st, T0, s2->id, STORE_ID_LEN), s2);
	assert_ptr_equal(store_session_find(f->st, T0, s3->id, STORE_ID_LEN), s3);
	assert_int_equal(store_tick(f->st, T0 + 10000, 1), 1);
	assert_ptr_equal(store_session_find(f->st, T0, s3->id, STORE_ID_LEN), s3);
	assert_int_equal(store_session_count(f->st), 1);
}

/* --- names --- */

static void test_name_register_new_is_created(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct store_name *n = NULL;

	assert_int_equal(store_name_register(f->st, s, "svc", 3, "{\"port\":80}", 11, &n), STORE_CREATED);
	assert_non_null(n);
	assert_ptr_equal(n->owner, s);
	assert_int_equal(n->klen, 3);
	assert_memory_equal(n->key, "svc", 4);
	assert_string_equal(n->value, "{\"port\":80}");
	assert_int_equal(n->vlen, 11);
	assert_int_equal(s->n_names, 1);
	assert_int_equal(store_name_count(f->st), 1);
}

static void test_name_register_copies_key_and_value(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	char key[] = "svc", val[] = "\"v\"";
	struct store_name *n = NULL;

	assert_int_equal(store_name_register(f->st, s, key, 3, val, 3, &n), STORE_CREATED);
	memset(key, 'z', 3);
	memset(val, 'z', 3);
	assert_ptr_equal(store_name_get(f->st, "svc", 3), n);
	assert_string_equal(n->key, "svc");
	assert_string_equal(n->value, "\"v\"");
}

static void test_name_reregister_by_owner_replaces_value(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct store_name *n1 = NULL, *n2 = NULL;

	assert_int_equal(store_name_register(f->st, s, "svc", 3, "1", 1, &n1), STORE_CREATED);
	assert_int_equal(store_name_register(f->st, s, "svc", 3, "[1,2,3]", 7, &n2), STORE_OK);
	assert_ptr_equal(n1, n2);
	assert_string_equal(n2->value, "[1,2,3]");
	assert_int_equal(n2->vlen, 7);
	assert_int_equal(s->n_names, 1);
	assert_int_equal(store_name_count(f->st), 1);
}

static void test_name_register_by_other_is_taken_with_holder(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0), *b = mk(f->st, T0, 0);
	struct store_name *na = NULL, *out = NULL;

	assert_int_equal(store_name_register(f->st, a, "svc", 3, "\"a\"", 3, &na), STORE_CREATED);
	assert_int_equal(store_name_register(f->st, b, "svc", 3, "\"b\"", 3, &out), STORE_E_NAME_TAKEN);
	assert_ptr_equal(out, na);
	assert_ptr_equal(out->owner, a);
	assert_string_equal(na->value, "\"a\"");
	assert_int_equal(b->n_names, 0);
	assert_int_equal(a->n_names, 1);
}

static void test_name_get(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct store_name *n;

	assert_null(store_name_get(f->st, "svc", 3));
	reg(f->st, s, "svc", "42");
	n = store_name_get(f->st, "svc", 3);
	assert_non_null(n);
	assert_string_equal(n->value, "42");
	assert_null(store_name_get(f->st, "sv", 2));
	assert_null(store_name_get(f->st, "svcx", 4));
	assert_null(store_name_get(f->st, "SVC", 3));
}

static void test_name_delete_by_owner(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);

	reg(f->st, s, "a", "1");
	reg(f->st, s, "b", "2");
	reg(f->st, s, "c", "3");
	assert_int_equal(store_name_delete(f->st, s, "b", 1), STORE_OK);
	assert_null(store_name_get(f->st, "b", 1));
	assert_non_null(store_name_get(f->st, "a", 1));
	assert_non_null(store_name_get(f->st, "c", 1));
	assert_int_equal(s->n_names, 2);
	assert_string_equal(s->names_head->key, "a");
	assert_string_equal(s->names_tail->key, "c");
	assert_ptr_equal(s->names_head->s_next, s->names_tail);
	/* the name can be registered again, by anyone */
	assert_int_equal(reg(f->st, mk(f->st, T0, 0), "b", "4"), STORE_CREATED);
}

static void test_name_delete_absent_is_not_found(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	uint64_t idx = store_index(f->st);

	assert_int_equal(store_name_delete(f->st, s, "nope", 4), STORE_E_NAME_NOT_FOUND);
	reg(f->st, s, "x", "1");
	assert_int_equal(store_name_delete(f->st, s, "x", 1), STORE_OK);
	assert_int_equal(store_name_delete(f->st, s, "x", 1), STORE_E_NAME_NOT_FOUND);
	assert_int_equal(store_index(f->st), idx + 2);
}

static void test_name_delete_by_other_is_not_owner(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0), *b = mk(f->st, T0, 0);
	uint64_t idx;

	reg(f->st, a, "svc", "1");
	idx = store_index(f->st);
	assert_int_equal(store_name_delete(f->st, b, "svc", 3), STORE_E_NOT_OWNER);
	assert_non_null(store_name_get(f->st, "svc", 3));
	assert_int_equal(a->n_names, 1);
	assert_int_equal(store_index(f->st), idx);
}

static void test_name_keys_with_slash_and_utf8(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	static const char *keys[] = {
		"session/123", "a/b/c/", "/", "caf\xc3\xa9", "\xe2\x82\xac/\xf0\x9f\x98\x80", "\xff\xfe",
	};
	char nul_key[] = { 'a', '\0', 'b' };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(reg(f->st, s, keys[i], "1"), STORE_CREATED);
	/* the store compares bytes and lengths: an embedded NUL makes a different key */
	assert_int_equal(store_name_register(f->st, s, nul_key, 3, "2", 1, &(struct store_name *){ NULL }), STORE_CREATED);
	assert_int_equal(reg(f->st, s, "a", "3"), STORE_CREATED);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct store_name *n = store_name_get(f->st, keys[i], strlen(keys[i]));
		assert_non_null(n);
		assert_int_equal(n->klen, strlen(keys[i]));
		assert_memory_equal(n->key, keys[i], n->klen);
	}
	assert_string_equal(store_name_get(f->st, nul_key, 3)->value, "2");
	assert_string_equal(store_name_get(f->st, "a", 1)->value, "3");
	assert_null(store_name_get(f->st, "session", 7));
	assert_int_equal(store_name_count(f->st), 8);
}

static void test_name_key_of_max_length(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	char key[STORE_KEY_MAX];
	struct store_name *n = NULL;

	memset(key, 'k', sizeof(key));
	assert_int_equal(store_name_register(f->st, s, key, sizeof(key), "1", 1, &n), STORE_CREATED);
	assert_ptr_equal(store_name_get(f->st, key, sizeof(key)), n);
	assert_int_equal(n->key[STORE_KEY_MAX], '\0');
}

static void test_session_names_kept_in_registration_order(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	static const char *order[] = { "zeta", "alpha", "mid" };
	struct store_name *n;
	size_t i = 0;

	for (i = 0; i < 3; i++)
		reg(f->st, s, order[i], "1");
	i = 0;
	for (n = s->names_head; n; n = n->s_next)
		assert_string_equal(n->key, order[i++]);
	assert_int_equal(i, 3);
}

static void test_deleted_session_releases_only_its_names(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0), *b = mk(f->st, T0, 0);

	reg(f->st, a, "a1", "1");
	reg(f->st, b, "b1", "1");
	reg(f->st, a, "a2", "1");
	reg(f->st, b, "b2", "1");
	reg(f->st, a, "a3", "1");
	store_session_delete(f->st, a);
	assert_null(store_name_get(f->st, "a1", 2));
	assert_null(store_name_get(f->st, "a2", 2));
	assert_null(store_name_get(f->st, "a3", 2));
	assert_ptr_equal(store_name_get(f->st, "b1", 2)->owner, b);
	assert_ptr_equal(store_name_get(f->st, "b2", 2)->owner, b);
	assert_int_equal(store_name_count(f->st), 2);
	assert_int_equal(b->n_names, 2);
	/* the released names are free again, in the listing too */
	assert_int_equal(reg(f->st, b, "a1", "2"), STORE_CREATED);
	{
		struct store_name *page[8];
		bool more;
		assert_int_equal(store_name_page(f->st, "a", 1, NULL, 0, 8, page, &more), 1);
		assert_string_equal(page[0]->key, "a1");
	}
}

static void test_expired_session_releases_only_its_names(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 2), *b = mk(f->st, T0, 10);

	reg(f->st, a, "a1", "1");
	reg(f->st, b, "b1", "1");
	reg(f->st, a, "a2", "1");
	assert_int_equal(store_tick(f->st, T0 + 2000, 100), 1);
	assert_null(store_name_get(f->st, "a1", 2));
	assert_null(store_name_get(f->st, "a2", 2));
	assert_ptr_equal(store_name_get(f->st, "b1", 2)->owner, b);
	assert_int_equal(store_name_count(f->st), 1);
	assert_int_equal(store_session_count(f->st), 1);
}

/* --- the index --- */

static void test_index_moves_once_per_change(void **state)
{
	struct fx *f = *state;
	struct store_session *a, *b;
	uint64_t i0 = store_index(f->st);

	assert_int_equal(i0, 0);
	a = mk(f->st, T0, 0);
	assert_int_equal(store_index(f->st), i0 + 1); /* session_created */
	assert_int_equal(reg(f->st, a, "x", "1"), STORE_CREATED);
	assert_int_equal(store_index(f->st), i0 + 2); /* name_registered */
	assert_int_equal(reg(f->st, a, "x", "2"), STORE_OK);
	assert_int_equal(store_index(f->st), i0 + 3); /* name_updated */
	assert_int_equal(store_name_delete(f->st, a, "x", 1), STORE_OK);
	assert_int_equal(store_index(f->st), i0 + 4); /* name_unregistered */
	reg(f->st, a, "p", "1");
	reg(f->st, a, "q", "1");
	reg(f->st, a, "r", "1");
	assert_int_equal(store_index(f->st), i0 + 7);
	store_session_delete(f->st, a);
	assert_int_equal(store_index(f->st), i0 + 11); /* 3 names + session_deleted */
	b = mk(f->st, T0, 1);
	reg(f->st, b, "p", "1");
	reg(f->st, b, "q", "1");
	assert_int_equal(store_index(f->st), i0 + 14);
	assert_int_equal(store_tick(f->st, T0 + 1000, 100), 1);
	assert_int_equal(store_index(f->st), i0 + 17); /* 2 names + session_expired */
}

static void test_index_unchanged_by_failed_calls(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0), *b = mk(f->st, T0, 0), *none = NULL;
	struct store_name *out = NULL;
	struct probe p;
	uint64_t idx;

	reg(f->st, a, "x", "1");
	idx = store_index(f->st);
	assert_int_equal(store_session_create(f->st, T0, 99999, NULL, 0, &none), STORE_E_INVALID_TTL);
	assert_int_equal(store_session_heartbeat(f->st, T0, a, 99999), STORE_E_INVALID_TTL);
	assert_int_equal(store_name_register(f->st, b, "x", 1, "2", 1, &out), STORE_E_NAME_TAKEN);
	assert_int_equal(store_name_delete(f->st, b, "x", 1), STORE_E_NOT_OWNER);
	assert_int_equal(store_name_delete(f->st, b, "y", 1), STORE_E_NAME_NOT_FOUND);
	assert_null(store_session_find(f->st, T0, "0000000000000000", STORE_ID_LEN));
	assert_null(store_name_get(f->st, "y", 1));
	/* reads, touches, heartbeats and waiters are not changes either */
	store_session_touch(f->st, T0 + 1, a);
	assert_int_equal(store_session_heartbeat(f->st, T0 + 2, a, 20), STORE_OK);
	probe_init(&p);
	await_key(f->st, "y", T0 + 5, &p);
	assert_int_equal(store_tick(f->st, T0 + 5, 10), 1);
	assert_int_equal(store_index(f->st), idx);
}

/* --- listings --- */

static void test_name_page_byte_order(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	/* inserted shuffled; listed in memcmp order, a prefix before its extensions */
	static const char *in[] = { "b", "ab", "\xc3\xa9t\xc3\xa9", "a0", "A", "a/b", "~", "a", "\xe2\x82\xac", "a/", "z" };
	static const char *want[] = { "A", "a", "a/", "a/b", "a0", "ab", "b", "z", "~", "\xc3\xa9t\xc3\xa9", "\xe2\x82\xac" };
	struct store_name *page[32];
	bool more = true;
	size_t i, n;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		reg(f->st, s, in[i], "1");
	n = store_name_page(f->st, NULL, 0, NULL, 0, 32, page, &more);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	assert_false(more);
	for (i = 0; i < n; i++)
		assert_string_equal(page[i]->key, want[i]);
}

static void test_name_page_prefix_filters(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	static const char *in[] = { "a", "a/b", "a/c", "a0", "ab", "b/a", "a/", "\xc3\xa9", "\xc3\xa9/x" };
	struct store_name *page[32];
	bool more = true;
	size_t i, n;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		reg(f->st, s, in[i], "1");
	n = store_name_page(f->st, "a/", 2, NULL, 0, 32, page, &more);
	assert_int_equal(n, 3);
	assert_false(more);
	assert_string_equal(page[0]->key, "a/");
	assert_string_equal(page[1]->key, "a/b");
	assert_string_equal(page[2]->key, "a/c");

	n = store_name_page(f->st, "a", 1, NULL, 0, 32, page, &more);
	assert_int_equal(n, 6);
	assert_string_equal(page[0]->key, "a");
	assert_string_equal(page[5]->key, "ab");

	n = store_name_page(f->st, "\xc3\xa9", 2, NULL, 0, 32, page, &more);
	assert_int_equal(n, 2);
	assert_string_equal(page[1]->key, "\xc3\xa9/x");

	/* a prefix nothing has, and one past every key */
	assert_int_equal(store_name_page(f->st, "a/bb", 4, NULL, 0, 32, page, &more), 0);
	assert_false(more);
	assert_int_equal(store_name_page(f->st, "\xff", 1, NULL, 0, 32, page, &more), 0);
	assert_false(more);
}

static void test_name_page_after_continues(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	static const char *in[] = { "a", "a/b", "a0", "ab", "b" };
	struct store_name *page[32];
	bool more = true;
	size_t i, n;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		reg(f->st, s, in[i], "1");
	/* after an existing key: strictly after it */
	n = store_name_page(f->st, NULL, 0, "a", 1, 32, page, &more);
	assert_int_equal(n, 4);
	assert_string_equal(page[0]->key, "a/b");
	/* after a key that is not there: the next one up */
	n = store_name_page(f->st, NULL, 0, "a/a", 3, 32, page, &more);
	assert_int_equal(n, 4);
	assert_string_equal(page[0]->key, "a/b");
	n = store_name_page(f->st, NULL, 0, "a1", 2, 32, page, &more);
	assert_int_equal(n, 2);
	assert_string_equal(page[0]->key, "ab");
	/* after the last key, and after everything */
	assert_int_equal(store_name_page(f->st, NULL, 0, "b", 1, 32, page, &more), 0);
	assert_false(more);
	assert_int_equal(store_name_page(f->st, NULL, 0, "\xff", 1, 32, page, &more), 0);
	/* after before the prefix starts from the prefix; after past it gives none */
	n = store_name_page(f->st, "a", 1, "0", 1, 32, page, &more);
	assert_int_equal(n, 4);
	assert_string_equal(page[0]->key, "a");
	n = store_name_page(f->st, "a", 1, "a0", 2, 32, page, &more);
	assert_int_equal(n, 1);
	assert_string_equal(page[0]->key, "ab");
	assert_false(more);
	assert_int_equal(store_name_page(f->st, "a", 1, "b", 1, 32, page, &more), 0);
	assert_false(more);
}

static void test_name_page_more_flag_exact_at_boundary(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct store_name *page[8];
	bool more;

	reg(f->st, s, "p/1", "1");
	reg(f->st, s, "p/2", "1");
	reg(f->st, s, "p/3", "1");
	reg(f->st, s, "q", "1");
	/* exactly as many as the limit: no more */
	assert_int_equal(store_name_page(f->st, "p/", 2, NULL, 0, 3, page, &more), 3);
	assert_false(more);
	/* one fewer: more */
	assert_int_equal(store_name_page(f->st, "p/", 2, NULL, 0, 2, page, &more), 2);
	assert_true(more);
	/* the second page ends exactly at the last: no more */
	assert_int_equal(store_name_page(f->st, "p/", 2, "p/2", 3, 1, page, &more), 1);
	assert_string_equal(page[0]->key, "p/3");
	assert_false(more);
	/* without a prefix the following "q" counts */
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 3, page, &more), 3);
	assert_true(more);
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 4, page, &more), 4);
	assert_false(more);
	/* an empty store */
	drain_sessions(f->st);
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 4, page, &more), 0);
	assert_false(more);
}

static void test_name_page_limit(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct store_name *page[64];
	char key[16];
	bool more;
	int i;

	for (i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		reg(f->st, s, key, "1");
	}
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 10, page, &more), 10);
	assert_true(more);
	assert_string_equal(page[9]->key, "k09");
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 1, page, &more), 1);
	assert_string_equal(page[0]->key, "k00");
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 64, page, &more), 50);
	assert_false(more);
	assert_int_equal(store_name_page(f->st, NULL, 0, NULL, 0, 0, page, &more), 0);
	assert_true(more);
}

static void test_name_pages_concatenate_to_full_sorted_list(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	static const char alphabet[] = { 'a', 'b', '/', '0', 'Z', (char)0xc3, (char)0xa9, (char)0xff };
	enum { N = 600, PAGE = 7 };
	static char keys[N][8];
	char *want[N];
	size_t nkeys = 0, i, got = 0;
	uint64_t rng = 12345;
	char after[8];
	size_t alen = 0;
	bool more = true, first = true;

	for (i = 0; i < N; i++) {
		size_t len = 1 + (size_t)(xorshift(&rng) % 6), j;
		for (j = 0; j < len; j++)
			keys[i][j] = alphabet[xorshift(&rng) % sizeof(alphabet)];
		keys[i][len] = '\0';
		if (reg(f->st, s, keys[i], "1") == STORE_CREATED)
			want[nkeys++] = keys[i];
	}
	assert_true(nkeys > N / 2);
	qsort(want, nkeys, sizeof(want[0]), cmp_cstr_ptr);
	while (more) {
		struct store_name *page[PAGE];
		size_t n = store_name_page(f->st, NULL, 0, first ? NULL : after, alen, PAGE, page, &more);
		assert_true(n > 0 && n <= PAGE);
		assert_true(more || got + n == nkeys);
		for (i = 0; i < n; i++) {
			assert_true(got < nkeys);
			assert_string_equal(page[i]->key, want[got]);
			got++;
		}
		assert_true(n == PAGE || !more);
		alen = page[n - 1]->klen;
		memcpy(after, page[n - 1]->key, alen);
		first = false;
	}
	assert_int_equal(got, nkeys);
}

static void test_session_page_in_id_order_with_pagination(void **state)
{
	struct fx *f = *state;
	enum { N = 53, PAGE = 8 };
	char *want[N];
	struct store_session *page[PAGE];
	const char *after = NULL;
	size_t i, got = 0, n;
	bool more = true;

	for (i = 0; i < N; i++)
		want[i] = mk(f->st, T0, 0)->id;
	qsort(want, N, sizeof(want[0]), cmp_cstr_ptr);
	while (more) {
		n = store_session_page(f->st, after, after ? STORE_ID_LEN : 0, PAGE, page, &more);
		for (i = 0; i < n; i++)
			assert_string_equal(page[i]->id, want[got++]);
		assert_true(n == PAGE || !more);
		if (n == 0)
			break;
		after = page[n - 1]->id;
	}
	assert_int_equal(got, N);
	/* exactly at the boundary */
	n = store_session_page(f->st, want[N - PAGE - 1], STORE_ID_LEN, PAGE, page, &more);
	assert_int_equal(n, PAGE);
	assert_false(more);
	n = store_session_page(f->st, want[N - PAGE - 2], STORE_ID_LEN, PAGE, page, &more);
	assert_int_equal(n, PAGE);
	assert_true(more);
	/* after an id that is not there */
	n = store_session_page(f->st, "0", 1, 1, page, &more);
	assert_int_equal(n, 1);
	assert_string_equal(page[0]->id, want[0]);
	assert_int_equal(store_session_page(f->st, "g", 1, PAGE, page, &more), 0);
	assert_false(more);
}

static void test_session_page_leaves_out_deleted(void **state)
{
	struct fx *f = *state;
	struct store_session *a = mk(f->st, T0, 0), *b = mk(f->st, T0, 0), *c = mk(f->st, T0, 0);
	struct store_session *page[4];
	bool more;

	store_session_delete(f->st, b);
	assert_int_equal(store_session_page(f->st, NULL, 0, 4, page, &more), 2);
	assert_false(more);
	assert_true((page[0] == a && page[1] == c) || (page[0] == c && page[1] == a));
}

/* --- waiters --- */

static void test_await_then_register_fires_once(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct probe p;

	probe_init(&p);
	await_key(f->st, "svc", T0 + 5000, &p);
	assert_true(store_waiter_parked(&p.w));
	assert_int_equal(p.calls, 0);
	assert_int_equal(reg(f->st, s, "svc", "1"), STORE_CREATED);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.why, STORE_WAKE_FIRED);
	assert_false(store_waiter_parked(&p.w));
	assert_int_equal(store_waiter_count(f->st), 0);
	/* nothing more: not an update, a delete, a re-register, nor the old deadline */
	reg(f->st, s, "svc", "2");
	store_name_delete(f->st, s, "svc", 3);
	reg(f->st, s, "svc", "3");
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 0);
	assert_int_equal(p.calls, 1);
	assert_int_equal(store_next_deadline(f->st), T0 + 15000);
}

static void test_await_not_woken_by_other_key(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct probe p;

	probe_init(&p);
	await_key(f->st, "svc", T0 + 5000, &p);
	reg(f->st, s, "svc2", "1");
	reg(f->st, s, "sv", "1");
	reg(f->st, s, "SVC", "1");
	assert_int_equal(p.calls, 0);
	assert_true(store_waiter_parked(&p.w));
	store_waiter_cancel(f->st, &p.w);
}

static void test_await_many_waiters_all_woken(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	enum { N = 100 };
	static struct probe p[N];
	struct probe other;
	size_t i;

	for (i = 0; i < N; i++) {
		probe_init(&p[i]);
		await_key(f->st, "svc", T0 + 1000 + i, &p[i]);
	}
	probe_init(&other);
	await_key(f->st, "else", T0 + 1000, &other);
	assert_int_equal(store_waiter_count(f->st), N + 1);
	reg(f->st, s, "svc", "1");
	for (i = 0; i < N; i++) {
		assert_int_equal(p[i].calls, 1);
		assert_int_equal(p[i].why, STORE_WAKE_FIRED);
		assert_false(store_waiter_parked(&p[i].w));
	}
	assert_int_equal(store_waiter_count(f->st), 1);
	assert_int_equal(other.calls, 0);
	assert_int_equal(store_next_deadline(f->st), T0 + 1000);
	/* the waiter on the other key still times out; none of the others does */
	assert_int_equal(store_tick(f->st, T0 + 2000, 1000), 1);
	assert_int_equal(other.why, STORE_WAKE_TIMEOUT);
	for (i = 0; i < N; i++)
		assert_int_equal(p[i].calls, 1);
}

static void test_await_deadline_wakes_with_timeout(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct probe p;

	probe_init(&p);
	await_key(f->st, "svc", T0 + 5000, &p);
	assert_int_equal(store_next_deadline(f->st), T0 + 5000);
	assert_int_equal(store_tick(f->st, T0 + 4999, 100), 0);
	assert_int_equal(p.calls, 0);
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 1);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.why, STORE_WAKE_TIMEOUT);
	assert_false(store_waiter_parked(&p.w));
	assert_int_equal(store_waiter_count(f->st), 0);
	/* a later register finds no waiter */
	reg(f->st, s, "svc", "1");
	assert_int_equal(p.calls, 1);
}

static void test_await_timeouts_share_tick_budget_with_leases(void **state)
{
	struct fx *f = *state;
	struct probe p[3];
	int i;

	for (i = 0; i < 3; i++) {
		probe_init(&p[i]);
		await_key(f->st, "k", T0 + 1000, &p[i]);
		mk(f->st, T0, 1);
	}
	assert_int_equal(store_tick(f->st, T0 + 1000, 4), 4);
	assert_int_equal(store_tick(f->st, T0 + 1000, 4), 2);
	assert_int_equal(store_session_count(f->st), 0);
	assert_int_equal(store_waiter_count(f->st), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(p[i].calls, 1);
}

static void test_waiter_cancel_unparks_without_waking(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct probe a, b, c;

	probe_init(&a);
	probe_init(&b);
	probe_init(&c);
	await_key(f->st, "svc", T0 + 5000, &a);
	await_key(f->st, "svc", T0 + 5000, &b);
	await_key(f->st, "svc", T0 + 5000, &c);
	store_waiter_cancel(f->st, &b.w); /* from the middle of the list */
	assert_false(store_waiter_parked(&b.w));
	assert_int_equal(store_waiter_count(f->st), 2);
	store_waiter_cancel(f->st, &b.w); /* twice is harmless */
	assert_int_equal(store_waiter_count(f->st), 2);
	reg(f->st, s, "svc", "1");
	assert_int_equal(a.calls, 1);
	assert_int_equal(c.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(store_tick(f->st, T0 + 5000, 100), 0);
	assert_int_equal(b.calls, 0);
	/* cancelling after a wake, and cancelling one never parked */
	store_waiter_cancel(f->st, &a.w);
	{
		struct probe never;
		probe_init(&never);
		store_waiter_cancel(f->st, &never.w);
		assert_false(store_waiter_parked(&never.w));
	}
	assert_int_equal(store_waiter_count(f->st), 0);
}

static void test_waiter_cancel_last_then_await_again(void **state)
{
	struct fx *f = *state;
	struct store_session *s = mk(f->st, T0, 0);
	struct probe p;

	probe_init(&p);
	await_key(f->st, "svc", T0 + 5000, &p);
	store_waiter_cancel(f->st, &p.w);
	assert_int_equal(store_next_deadline(f->st), T0 + 15000);
	/* the same waiter parks again on the same key, as a resumed request does */
	await_key(f->st, "svc", T0 + 6000, &p);
	assert_int_equal(store_waiter_count(f->st), 1);
	reg(f->st, s, "svc", "1");
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.why, STORE_WAKE_FIRED);
}

static void test_waiter_parked_and_count(void **state)
{
	struct fx *f = *state;
	struct probe a, b;

	probe_init(&a);
	probe_init(&b);
	assert_false(store_waiter_parked(&a.w));
	assert_int_equal(store_waiter_count(f->st), 0);
	await_key(f->st, "x", T0 + 10, &a);
	assert_true(store_waiter_parked(&a.w));
	assert_int_equal(store_waiter_count(f->st), 1);
	await_key(f->st, "y", T0 + 20, &b);
	assert_int_equal(store_waiter_count(f->st), 2);
	assert_int_equal(store_tick(f->st, T0 + 10, 100), 1);
	assert_false(store_waiter_parked(&a.w));
	assert_true(store_waiter_parked(&b.w));
	assert_int_equal(store_waiter_count(f->st), 1);
	store_waiter_cancel(f->st, &b.w);
	assert_int_equal(store_waiter_count(f->st), 0);
}

static void test_wake_all_wakes_with_shutdown(void **state)
{
	struct fx *f = *state;
	enum { N = 40 };
	static struct probe p[N];
	char key[16];
	size_t i;

	for (i = 0; i < N; i++) {
		probe_init(&p[i]);
		snprintf(key, sizeof(key), "k%zu", i % 7);
		await_key(f->st, key, T0 + 1000 + i, &p[i]);
	}
	store_wake_all(f->st);
	for (i = 0; i < N; i++) {
		assert_int_equal(p[i].calls, 1);
		assert_int_equal(p[i].why, STORE_WAKE_SHUTDOWN);
		assert_false(store_waiter_parked(&p[i].w));
	}
	assert_int_equal(store_waiter_count(f->st), 0);
	assert_int_equal(store_next_deadline(f->st), UINT64_MAX);
	assert_int_equal(store_tick(f->st, T0 + 100000, 1000), 0);
	store_wake_all(f->st); /* with none parked: nothing */
	for (i = 0; i < N; i++)
		assert_int_equal(p[i].calls, 1);
}

static void test_free_with_waiters_parked_is_clean(void **state)
{
	struct fx *g = fx_new(15, 3600, 10);
	struct probe p[3];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		probe_init(&p[i]);
		await_key(g->st, i == 2 ? "other" : "svc", T0 + 1000, &p[i]);
	}
	store_free(g->st); /* ASan reports any leak or stray access */
	free(g);
	for (i = 0; i < 3; i++) {
		assert_int_equal(p[i].calls, 0); /* detached, not woken */
		assert_false(store_waiter_parked(&p[i].w));
	}
}

static void test_free_after_sessions_and_names_come_and_go_is_clean(void **state)
{
	struct fx *g = fx_new(15, 3600, 10);
	struct store_session *a = mk(g->st, T0, 1), *b = mk(g->st, T0, 0);

	(void)state;
	reg(g->st, a, "x", "1");
	reg(g->st, b, "y", "1");
	reg(g->st, b, "y", "2");
	assert_int_equal(store_tick(g->st, T0 + 1000, 10), 1);
	store_session_delete(g->st, b);
	store_free(g->st);
	free(g);
}

/* Regression: store_free() used to free the sessions first and then let
 * timer_heap_destroy() write into their embedded lease timers (a
 * heap-use-after-free under ASan for every live session). */
static void test_free_with_live_sessions_and_waiters_is_clean(void **state)
{
	struct fx *g = fx_new(15, 3600, 10);
	struct store_session *a = mk(g->st, T0, 0), *b = mk(g->st, T0, 0);
	struct probe p;

	(void)state;
	reg(g->st, a, "x", "1");
	reg(g->st, a, "y", "1");
	reg(g->st, b, "z", "1");
	probe_init(&p);
	await_key(g->st, "w", T0 + 1000, &p);
	store_free(g->st);
	free(g);
	assert_int_equal(p.calls, 0);
	assert_false(store_waiter_parked(&p.w));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_session_create_gives_hex_id_and_token),
		T(test_session_ids_and_tokens_are_distinct),
		T(test_session_create_ttl0_uses_default),
		T(test_session_create_with_ttl_sets_lease),
		T(test_session_create_ttl_over_max_is_invalid),
		T(test_session_create_default_over_max_is_invalid),
		T(test_session_create_copies_label),
		T(test_session_find_by_id_and_by_token),
		T(test_session_find_unknown_or_truncated_is_null),
		T(test_session_limit_then_delete_frees_a_slot),
		T(test_session_limit_frees_up_after_expiry),
		T(test_session_delete_removes_it),
		T(test_lease_alive_one_ms_before_deadline),
		T(test_lease_expires_at_deadline_via_tick),
		T(test_lease_expires_at_deadline_via_find),
		T(test_lease_expires_at_deadline_via_token),
		T(test_touch_moves_deadline),
		T(test_touch_keeps_other_leases_in_order),
		T(test_heartbeat_moves_deadline),
		T(test_heartbeat_with_new_ttl),
		T(test_heartbeat_with_bad_ttl_changes_nothing),
		T(test_next_deadline_is_earliest),
		T(test_tick_respects_budget),
		T(test_tick_runs_in_deadline_order),
		T(test_name_register_new_is_created),
		T(test_name_register_copies_key_and_value),
		T(test_name_reregister_by_owner_replaces_value),
		T(test_name_register_by_other_is_taken_with_holder),
		T(test_name_get),
		T(test_name_delete_by_owner),
		T(test_name_delete_absent_is_not_found),
		T(test_name_delete_by_other_is_not_owner),
		T(test_name_keys_with_slash_and_utf8),
		T(test_name_key_of_max_length),
		T(test_session_names_kept_in_registration_order),
		T(test_deleted_session_releases_only_its_names),
		T(test_expired_session_releases_only_its_names),
		T(test_index_moves_once_per_change),
		T(test_index_unchanged_by_failed_calls),
		T(test_name_page_byte_order),
		T(test_name_page_prefix_filters),
		T(test_name_page_after_continues),
		T(test_name_page_more_flag_exact_at_boundary),
		T(test_name_page_limit),
		T(test_name_pages_concatenate_to_full_sorted_list),
		T(test_session_page_in_id_order_with_pagination),
		T(test_session_page_leaves_out_deleted),
		T(test_await_then_register_fires_once),
		T(test_await_not_woken_by_other_key),
		T(test_await_many_waiters_all_woken),
		T(test_await_deadline_wakes_with_timeout),
		T(test_await_timeouts_share_tick_budget_with_leases),
		T(test_waiter_cancel_unparks_without_waking),
		T(test_waiter_cancel_last_then_await_again),
		T(test_waiter_parked_and_count),
		T(test_wake_all_wakes_with_shutdown),
		T(test_free_with_waiters_parked_is_clean),
		T(test_free_after_sessions_and_names_come_and_go_is_clean),
		T(test_free_with_live_sessions_and_waiters_is_clean),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}

/* test_calls: the store's call table (store/calls.c): a call's message and
 * its reply_to, the answer, the deadline, the receiver's end, the caller
 * going away, the limits, and that nothing is left behind after each.
 * Randomness is a seeded xorshift; time is a number; nothing sleeps. */
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

/* A caller: its waiter, and what woke it. */
struct caller {
	struct store_waiter w;
	int wakes;
	enum store_wake why;
};

static void on_wake(struct store_waiter *w, enum store_wake why)
{
	struct caller *c = (struct caller *)(void *)w; /* w is the first member */

	c->wakes++;
	c->why = why;
}

static struct caller *new_caller(void)
{
	struct caller *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->w.wake = on_wake;
	return c;
}

struct fx {
	struct store *st;
	struct store_session *recv, *other;
};

static struct fx *fx_new(size_t max_queue, size_t max_waiters)
{
	struct store_config cfg = { 0 };
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	rng_state = 0x9e3779b97f4a7c15ULL;
	cfg.default_ttl = 15;
	cfg.max_ttl = 3600;
	cfg.max_sessions = 100;
	cfg.max_queue = max_queue;
	cfg.max_waiters = max_waiters;
	cfg.random = fake_random;
	f->st = store_new(&cfg);
	assert_non_null(f->st);
	assert_int_equal(store_session_create(f->st, T0, 10, NULL, 0, &f->recv), STORE_CREATED);
	assert_int_equal(store_session_create(f->st, T0, 10, NULL, 0, &f->other), STORE_CREATED);
	return f;
}

static void fx_free(struct fx *f)
{
	store_free(f->st);
	free(f);
}

static struct store_call *start(struct fx *f, struct caller *c, uint64_t deadline)
{
	struct store_call *call = NULL;

	assert_int_equal(store_call_start(f->st, f->recv, f->other->id, "{\"name\":\"w\"}", 12, "{\"q\":1}", 7,
					  deadline, &c->w, &call),
			 STORE_OK);
	assert_non_null(call);
	return call;
}

static void pending(struct fx *f, size_t n)
{
	struct store_stats s;

	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_pending, n);
}

static void test_call_puts_message_with_reply_to_and_parks_caller(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call;
	const struct store_msg *m;
	size_t i;

	(void)state;
	call = start(f, c, T0 + 5000);
	assert_int_equal(strlen(call->id), STORE_CALL_ID_LEN);
	for (i = 0; i < STORE_CALL_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", call->id[i]));
	m = f->recv->mq_head;
	assert_non_null(m);
	assert_int_equal(m->seq, 1);
	assert_string_equal(m->p->reply_to, call->id);
	assert_string_equal(m->p->from, f->other->id);
	assert_string_equal(m->p->body, "{\"q\":1}");
	assert_string_equal(call->from, f->recv->id);
	assert_true(store_waiter_parked(&c->w));
	assert_int_equal(store_waiter_count(f->st), 1);
	pending(f, 1);
	assert_int_equal(c->wakes, 0);
	store_waiter_cancel(f->st, &c->w);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_reply_wakes_caller_with_body_once(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 5000);
	struct store_stats s;
	char id[STORE_CALL_ID_LEN + 1];

	(void)state;
	memcpy(id, call->id, sizeof(id));
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, f->recv, "[1,2]", 5), STORE_OK);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_FIRED);
	assert_false(store_waiter_parked(&c->w));
	assert_string_equal(call->reply, "[1,2]");
	assert_int_equal(call->rlen, 5);
	/* a second reply finds nothing, and wakes nobody */
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, f->recv, "2", 1), STORE_E_CALL_NOT_FOUND);
	assert_int_equal(c->wakes, 1);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_pending, 0);
	assert_int_equal(s.calls_answered, 1);
	assert_int_equal(store_waiter_count(f->st), 0);
	/* the deadline passing later wakes nobody either */
	store_tick(f->st, T0 + 6000, 100);
	assert_int_equal(c->wakes, 1);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_reply_by_another_session_is_refused(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 5000);

	(void)state;
	assert_int_equal(store_call_reply(f->st, call->id, STORE_CALL_ID_LEN, f->other, "1", 1), STORE_E_NOT_RECEIVER);
	assert_int_equal(store_call_reply(f->st, call->id, STORE_CALL_ID_LEN, NULL, "1", 1), STORE_E_NOT_RECEIVER);
	assert_int_equal(c->wakes, 0);
	pending(f, 1);
	/* the receiver still can */
	assert_int_equal(store_call_reply(f->st, call->id, STORE_CALL_ID_LEN, f->recv, "1", 1), STORE_OK);
	assert_int_equal(c->why, STORE_WAKE_FIRED);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_unknown_call_id_is_not_found(void **state)
{
	struct fx *f = fx_new(0, 0);

	(void)state;
	assert_int_equal(store_call_reply(f->st, "0123456789abcdef0123456789abcdef", 32, f->recv, "1", 1),
			 STORE_E_CALL_NOT_FOUND);
	assert_int_equal(store_call_reply(f->st, "", 0, f->recv, "1", 1), STORE_E_CALL_NOT_FOUND);
	fx_free(f);
}

static void test_call_times_out_at_deadline(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 300);
	struct store_stats s;
	char id[STORE_CALL_ID_LEN + 1];

	(void)state;
	memcpy(id, call->id, sizeof(id));
	store_tick(f->st, T0 + 299, 100);
	assert_int_equal(c->wakes, 0);
	store_tick(f->st, T0 + 300, 100);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_TIMEOUT);
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, f->recv, "1", 1), STORE_E_CALL_NOT_FOUND);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_timed_out, 1);
	assert_int_equal(s.calls_pending, 0);
	/* the message stays in the mailbox, acknowledged as any other */
	assert_int_equal(f->recv->queued, 1);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_receiver_deleted_fails_its_calls_at_once(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *a = new_caller(), *b = new_caller();
	struct store_call *ca = start(f, a, T0 + 5000), *cb = start(f, b, T0 + 9000);
	struct store_stats s;

	(void)state;
	store_session_delete(f->st, f->recv);
	assert_int_equal(a->wakes, 1);
	assert_int_equal(a->why, STORE_WAKE_GONE);
	assert_int_equal(b->wakes, 1);
	assert_int_equal(b->why, STORE_WAKE_GONE);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_receiver_gone, 2);
	assert_int_equal(s.calls_pending, 0);
	assert_int_equal(store_waiter_count(f->st), 0);
	store_tick(f->st, T0 + 10000, 100); /* nothing left to time out */
	assert_int_equal(a->wakes, 1);
	store_call_free(ca);
	store_call_free(cb);
	free(a);
	free(b);
	fx_free(f);
}

static void test_receiver_expiry_fails_its_calls(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 60000);

	(void)state;
	store_tick(f->st, T0 + 9999, 100);
	assert_int_equal(c->wakes, 0);
	store_tick(f->st, T0 + 10000, 100); /* the receiver's ttl is 10 s */
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_GONE);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_caller_gone_cancels_call(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 5000);
	struct store_stats s;
	char id[STORE_CALL_ID_LEN + 1];

	(void)state;
	memcpy(id, call->id, sizeof(id));
	store_waiter_cancel(f->st, &c->w); /* the daemon does this when the client goes */
	store_call_free(call);
	assert_int_equal(c->wakes, 0);
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, f->recv, "1", 1), STORE_E_CALL_NOT_FOUND);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_caller_gone, 1);
	assert_int_equal(s.calls_pending, 0);
	/* the receiver can still end without touching the freed call */
	store_session_delete(f->st, f->recv);
	free(c);
	fx_free(f);
}

static void test_full_mailbox_refuses_call_and_changes_nothing(void **state)
{
	struct fx *f = fx_new(1, 0);
	struct caller *a = new_caller(), *b = new_caller();
	struct store_call *ca = start(f, a, T0 + 5000), *cb = NULL;

	(void)state;
	assert_int_equal(store_call_start(f->st, f->recv, NULL, "{}", 2, "1", 1, T0 + 5000, &b->w, &cb),
			 STORE_E_MAILBOX_FULL);
	assert_null(cb);
	assert_false(store_waiter_parked(&b->w));
	assert_int_equal(store_waiter_count(f->st), 1);
	assert_int_equal(f->recv->queued, 1);
	pending(f, 1);
	store_waiter_cancel(f->st, &a->w);
	store_call_free(ca);
	free(a);
	free(b);
	fx_free(f);
}

static void test_waiter_cap_refuses_call_and_changes_nothing(void **state)
{
	struct fx *f = fx_new(0, 1);
	struct caller *a = new_caller(), *b = new_caller();
	struct store_call *ca = start(f, a, T0 + 5000), *cb = NULL;

	(void)state;
	assert_int_equal(store_call_start(f->st, f->recv, NULL, "{}", 2, "1", 1, T0 + 5000, &b->w, &cb), STORE_E_LIMIT);
	assert_null(cb);
	assert_int_equal(f->recv->queued, 1); /* no message for the refused call */
	pending(f, 1);
	store_waiter_cancel(f->st, &a->w);
	store_call_free(ca);
	free(a);
	free(b);
	fx_free(f);
}

static void test_shutdown_wakes_callers(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 5000);

	(void)state;
	store_wake_all(f->st);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_SHUTDOWN);
	pending(f, 0);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_free_with_pending_calls_leaves_caller_unparked(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 5000);

	(void)state;
	fx_free(f); /* the store goes first, as in the server's exit */
	assert_false(store_waiter_parked(&c->w));
	assert_int_equal(c->wakes, 0);
	store_call_free(call);
	free(c);
}

/* --- calls parked for a receiver homed on another node (cluster mode) --- */

/* A session homed on node n2, as the cluster inserts it. */
static struct store_session *remote_session(struct fx *f)
{
	struct store_session *s = NULL;

	assert_int_equal(store_session_insert(f->st, T0, "00000000000000aa", "0000000000000000000000000000aaaa", 10,
					      NULL, 0, "n2", true, &s),
			 STORE_CREATED);
	assert_non_null(s);
	return s;
}

static struct store_call *park(struct fx *f, struct store_session *receiver, struct caller *c, uint64_t deadline)
{
	struct store_call *call = NULL;

	assert_int_equal(store_call_park(f->st, receiver, deadline, &c->w, &call), STORE_OK);
	assert_non_null(call);
	return call;
}

static void test_park_puts_nothing_in_mailbox_and_reply_by_id_wakes_caller(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *c = new_caller();
	struct store_call *call = park(f, r, c, T0 + 5000);
	struct store_stats s;
	char id[STORE_CALL_ID_LEN + 1];
	size_t i;

	(void)state;
	assert_int_equal(strlen(call->id), STORE_CALL_ID_LEN);
	for (i = 0; i < STORE_CALL_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", call->id[i]));
	assert_string_equal(call->from, r->id);
	assert_null(r->mq_head);
	assert_int_equal(r->queued, 0);
	assert_int_equal(r->last_seq, 0);
	assert_true(store_waiter_parked(&c->w));
	assert_int_equal(store_waiter_count(f->st), 1);
	pending(f, 1);
	assert_int_equal(c->wakes, 0);
	memcpy(id, call->id, sizeof(id));
	/* found by id; only its receiver answers */
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, f->other, "1", 1), STORE_E_NOT_RECEIVER);
	assert_int_equal(c->wakes, 0);
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, r, "{\"ok\":1}", 8), STORE_OK);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_FIRED);
	assert_false(store_waiter_parked(&c->w));
	assert_string_equal(call->reply, "{\"ok\":1}");
	assert_int_equal(call->rlen, 8);
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, r, "2", 1), STORE_E_CALL_NOT_FOUND);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_pending, 0);
	assert_int_equal(s.calls_answered, 1);
	assert_int_equal(store_waiter_count(f->st), 0);
	store_tick(f->st, T0 + 6000, 100);
	assert_int_equal(c->wakes, 1);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_parked_call_times_out_at_deadline(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *c = new_caller();
	struct store_call *call = park(f, r, c, T0 + 300);
	struct store_stats s;
	char id[STORE_CALL_ID_LEN + 1];

	(void)state;
	memcpy(id, call->id, sizeof(id));
	store_tick(f->st, T0 + 299, 100);
	assert_int_equal(c->wakes, 0);
	store_tick(f->st, T0 + 300, 100);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_TIMEOUT);
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, r, "1", 1), STORE_E_CALL_NOT_FOUND);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_timed_out, 1);
	assert_int_equal(s.calls_pending, 0);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_call_fail_wakes_parked_caller_gone_once(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *c = new_caller();
	struct store_call *call = park(f, r, c, T0 + 5000);
	struct store_stats s;
	char id[STORE_CALL_ID_LEN + 1];

	(void)state;
	memcpy(id, call->id, sizeof(id));
	store_call_fail(f->st, call);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_GONE);
	assert_false(store_waiter_parked(&c->w));
	assert_null(call->reply);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_receiver_gone, 1);
	assert_int_equal(s.calls_pending, 0);
	assert_int_equal(s.calls_answered, 0);
	assert_int_equal(store_waiter_count(f->st), 0);
	/* off the table: a late reply finds nothing, a second fail does nothing */
	assert_int_equal(store_call_reply(f->st, id, STORE_CALL_ID_LEN, r, "1", 1), STORE_E_CALL_NOT_FOUND);
	store_call_fail(f->st, call);
	assert_int_equal(c->wakes, 1);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_receiver_gone, 1);
	/* nor does the deadline, nor the receiver's end */
	store_tick(f->st, T0 + 6000, 100);
	store_session_end(f->st, r, false);
	assert_int_equal(c->wakes, 1);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_call_fail_wakes_a_started_call_gone(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct caller *c = new_caller();
	struct store_call *call = start(f, c, T0 + 5000);
	struct store_stats s;

	(void)state;
	store_call_fail(f->st, call);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_GONE);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_receiver_gone, 1);
	assert_int_equal(s.calls_pending, 0);
	assert_int_equal(f->recv->queued, 1); /* its message stays, as after a timeout */
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_call_fail_after_reply_does_nothing(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *c = new_caller();
	struct store_call *call = park(f, r, c, T0 + 5000);
	struct store_stats s;

	(void)state;
	assert_int_equal(store_call_reply(f->st, call->id, STORE_CALL_ID_LEN, r, "7", 1), STORE_OK);
	store_call_fail(f->st, call);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_FIRED);
	assert_string_equal(call->reply, "7");
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_answered, 1);
	assert_int_equal(s.calls_receiver_gone, 0);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_call_fail_after_timeout_does_nothing(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *c = new_caller();
	struct store_call *call = park(f, r, c, T0 + 300);
	struct store_stats s;

	(void)state;
	store_tick(f->st, T0 + 300, 100);
	assert_int_equal(c->why, STORE_WAKE_TIMEOUT);
	store_call_fail(f->st, call);
	assert_int_equal(c->wakes, 1);
	assert_int_equal(c->why, STORE_WAKE_TIMEOUT);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_timed_out, 1);
	assert_int_equal(s.calls_receiver_gone, 0);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_call_fail_after_caller_gone_does_nothing(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *c = new_caller();
	struct store_call *call = park(f, r, c, T0 + 5000);
	struct store_stats s;

	(void)state;
	store_waiter_cancel(f->st, &c->w);
	store_call_fail(f->st, call); /* before the caller frees it */
	assert_int_equal(c->wakes, 0);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_caller_gone, 1);
	assert_int_equal(s.calls_receiver_gone, 0);
	assert_int_equal(s.calls_pending, 0);
	store_call_free(call);
	free(c);
	fx_free(f);
}

static void test_receiver_end_fails_parked_calls(void **state)
{
	struct fx *f = fx_new(0, 0);
	struct store_session *r = remote_session(f);
	struct caller *a = new_caller(), *b = new_caller();
	struct store_call *ca = park(f, r, a, T0 + 5000), *cb = park(f, r, b, T0 + 9000);
	struct store_stats s;

	(void)state;
	pending(f, 2);
	store_session_end(f->st, r, false); /* its home said it ended */
	assert_int_equal(a->wakes, 1);
	assert_int_equal(a->why, STORE_WAKE_GONE);
	assert_int_equal(b->wakes, 1);
	assert_int_equal(b->why, STORE_WAKE_GONE);
	store_get_stats(f->st, &s);
	assert_int_equal(s.calls_receiver_gone, 2);
	assert_int_equal(s.calls_pending, 0);
	assert_int_equal(store_waiter_count(f->st), 0);
	store_tick(f->st, T0 + 10000, 100);
	assert_int_equal(a->wakes, 1);
	assert_int_equal(b->wakes, 1);
	store_call_free(ca);
	store_call_free(cb);
	free(a);
	free(b);
	fx_free(f);
}

static void test_park_respects_the_waiter_cap(void **state)
{
	struct fx *f = fx_new(0, 1);
	struct store_session *r = remote_session(f);
	struct caller *a = new_caller(), *b = new_caller();
	struct store_call *ca = start(f, a, T0 + 5000), *cb = NULL;

	(void)state;
	assert_int_equal(store_call_park(f->st, r, T0 + 5000, &b->w, &cb), STORE_E_LIMIT);
	assert_null(cb);
	assert_false(store_waiter_parked(&b->w));
	assert_int_equal(store_waiter_count(f->st), 1);
	assert_null(r->calls);
	pending(f, 1);
	/* room again once the first call has ended */
	store_waiter_cancel(f->st, &a->w);
	store_call_free(ca);
	cb = park(f, r, b, T0 + 5000);
	pending(f, 1);
	store_call_fail(f->st, cb);
	assert_int_equal(b->why, STORE_WAKE_GONE);
	store_call_free(cb);
	free(a);
	free(b);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_puts_message_with_reply_to_and_parks_caller),
		cmocka_unit_test(test_reply_wakes_caller_with_body_once),
		cmocka_unit_test(test_reply_by_another_session_is_refused),
		cmocka_unit_test(test_unknown_call_id_is_not_found),
		cmocka_unit_test(test_call_times_out_at_deadline),
		cmocka_unit_test(test_receiver_deleted_fails_its_calls_at_once),
		cmocka_unit_test(test_receiver_expiry_fails_its_calls),
		cmocka_unit_test(test_caller_gone_cancels_call),
		cmocka_unit_test(test_full_mailbox_refuses_call_and_changes_nothing),
		cmocka_unit_test(test_waiter_cap_refuses_call_and_changes_nothing),
		cmocka_unit_test(test_shutdown_wakes_callers),
		cmocka_unit_test(test_free_with_pending_calls_leaves_caller_unparked),
		cmocka_unit_test(test_park_puts_nothing_in_mailbox_and_reply_by_id_wakes_caller),
		cmocka_unit_test(test_parked_call_times_out_at_deadline),
		cmocka_unit_test(test_call_fail_wakes_parked_caller_gone_once),
		cmocka_unit_test(test_call_fail_wakes_a_started_call_gone),
		cmocka_unit_test(test_call_fail_after_reply_does_nothing),
		cmocka_unit_test(test_call_fail_after_timeout_does_nothing),
		cmocka_unit_test(test_call_fail_after_caller_gone_does_nothing),
		cmocka_unit_test(test_receiver_end_fails_parked_calls),
		cmocka_unit_test(test_park_respects_the_waiter_cap),
	};

	return cmocka_run_group_tests_name("calls", tests, NULL, NULL);
}

/* calls: request and reply (GenServer.call). A call is a message with
 * reply_to in the receiver's mailbox plus a parked caller; the reply wakes
 * the caller, and so do its deadline, the receiver's end (the monitor) and
 * shutdown. Pending calls are found by id (a hash table) and by receiver (a
 * list), so a reply costs O(1) and a receiver's end what it was owed. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

int store_calls_init(struct store *st)
{
	uint64_t k[2];

	st->cfg.random(st->cfg.random_ctx, k, sizeof(k));
	return hmap_init(&st->calls, k[0], k[1]);
}

/* Takes c off the id table and the receiver's list: no reply can reach it. */
static void unlink_call(struct store *st, struct store_call *c)
{
	struct store_session *r = c->receiver;

	if (!r)
		return;
	hmap_remove(&st->calls, &c->node);
	if (c->r_prev)
		c->r_prev->r_next = c->r_next;
	else
		r->calls = c->r_next;
	if (c->r_next)
		c->r_next->r_prev = c->r_prev;
	c->r_prev = c->r_next = NULL;
	c->receiver = NULL;
}

/* A new call with a fresh id, to receiver. */
static struct store_call *call_new(struct store *st, struct store_session *receiver)
{
	struct store_call *c = calloc(1, sizeof(*c));
	unsigned char raw[STORE_CALL_ID_LEN / 2];

	if (!c)
		return NULL;
	do { /* 128 random bits (96 in a cluster, after the node's tag); a clash
	      * is all but impossible, and cheap to rule out */
		st->cfg.random(st->cfg.random_ctx, raw, sizeof(raw));
		if (st->cfg.call_tag) {
			raw[0] = (unsigned char)(st->cfg.call_tag >> 24);
			raw[1] = (unsigned char)(st->cfg.call_tag >> 16);
			raw[2] = (unsigned char)(st->cfg.call_tag >> 8);
			raw[3] = (unsigned char)st->cfg.call_tag;
		}
		store_hex(raw, sizeof(raw), c->id);
	} while (hmap_get(&st->calls, c->id, STORE_CALL_ID_LEN));
	memcpy(c->from, receiver->id, STORE_ID_LEN + 1);
	return c;
}

/* Puts c on the id table and the receiver's list. */
static void link_call(struct store *st, struct store_call *c, struct store_session *receiver)
{
	c->receiver = receiver;
	c->r_next = receiver->calls;
	if (receiver->calls)
		receiver->calls->r_prev = c;
	receiver->calls = c;
	c->node.key = c->id;
	c->node.klen = STORE_CALL_ID_LEN;
	hmap_put(&st->calls, &c->node);
}

enum store_rc store_call_start(struct store *st, struct store_session *receiver, const char *from,
			       const char *to, size_t tolen, const char *body, size_t blen,
			       uint64_t deadline, struct store_waiter *w, struct store_call **out)
{
	struct store_call *c = call_new(st, receiver);
	struct store_payload *p = NULL;
	enum store_rc rc;

	if (!c)
		return STORE_E_NOMEM;
	p = store_payload_new(from, to, tolen, body, blen);
	if (!p) {
		free(c);
		return STORE_E_NOMEM;
	}
	memcpy(p->reply_to, c->id, STORE_CALL_ID_LEN + 1);
	/* Park first: a push cannot be taken back, a park can. */
	rc = store_waiter_park(st, w, WK_CALL, deadline);
	if (rc == STORE_OK) {
		w->call = c;
		c->caller = w;
		rc = store_mailbox_push(st, receiver, p);
		if (rc != STORE_OK) {
			c->caller = NULL;
			store_waiter_cancel(st, w);
		}
	}
	store_payload_unref(p);
	if (rc != STORE_OK) {
		free(c);
		return rc;
	}
	link_call(st, c, receiver);
	*out = c;
	return STORE_OK;
}

enum store_rc store_call_park(struct store *st, struct store_session *receiver, uint64_t deadline,
			      struct store_waiter *w, struct store_call **out)
{
	struct store_call *c = call_new(st, receiver);
	enum store_rc rc;

	if (!c)
		return STORE_E_NOMEM;
	rc = store_waiter_park(st, w, WK_CALL, deadline);
	if (rc != STORE_OK) {
		free(c);
		return rc;
	}
	w->call = c;
	c->caller = w;
	link_call(st, c, receiver);
	*out = c;
	return STORE_OK;
}

void store_call_fail(struct store *st, struct store_call *c)
{
	if (c && c->receiver && c->caller)
		store_waiter_wake(st, c->caller, STORE_WAKE_GONE);
}

enum store_rc store_call_reply(struct store *st, const char *id, size_t idlen, struct store_session *replier,
			       const char *body, size_t blen)
{
	struct hmap_node *hn = hmap_get(&st->calls, id, idlen);
	struct store_call *c;

	if (!hn)
		return STORE_E_CALL_NOT_FOUND;
	c = container_of(hn, struct store_call, node);
	if (!replier || replier != c->receiver)
		return STORE_E_NOT_RECEIVER;
	c->reply = store_dup(body, blen);
	if (!c->reply)
		return STORE_E_NOMEM;
	c->rlen = blen;
	unlink_call(st, c);
	st->calls_answered++;
	store_waiter_wake(st, c->caller, STORE_WAKE_FIRED);
	return STORE_OK;
}

void store_call_detached(struct store *st, struct store_waiter *w, enum store_wake why)
{
	struct store_call *c = w->call;

	w->call = NULL;
	if (!c)
		return;
	c->caller = NULL;
	if (!c->receiver) /* answered: already off the table */
		return;
	unlink_call(st, c);
	if (why == STORE_WAKE_TIMEOUT)
		st->calls_timed_out++;
	else if (why == STORE_WAKE_GONE)
		st->calls_receiver_gone++;
	else if (why == 0)
		st->calls_caller_gone++;
}

void store_calls_fail(struct store *st, struct store_session *s)
{
	while (s->calls)
		store_waiter_wake(st, s->calls->caller, STORE_WAKE_GONE);
}

void store_call_free(struct store_call *c)
{
	if (!c)
		return;
	free(c->reply);
	free(c);
}

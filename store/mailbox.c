/* mailbox: each session's queue of messages (Erlang's mailbox) and its one
 * pending receive. Messages are numbered per session and leave only when
 * acknowledged, so delivery is at least once. A payload is shared by every
 * mailbox a broadcast reached. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

struct store_payload *store_payload_new(const char *from, const char *to, size_t tolen,
					const char *body, size_t blen)
{
	struct store_payload *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->refs = 1;
	if (from)
		memcpy(p->from, from, STORE_ID_LEN);
	p->to = store_dup(to, tolen);
	p->body = store_dup(body, blen);
	p->tolen = tolen;
	p->blen = blen;
	if (!p->to || !p->body) {
		store_payload_unref(p);
		return NULL;
	}
	return p;
}

void store_payload_unref(struct store_payload *p)
{
	if (!p || --p->refs)
		return;
	free(p->to);
	free(p->body);
	free(p);
}

enum store_rc store_mailbox_push(struct store *st, struct store_session *s, struct store_payload *p)
{
	struct store_msg *m;

	if (s->queued >= st->cfg.max_queue)
		return STORE_E_MAILBOX_FULL;
	m = malloc(sizeof(*m));
	if (!m)
		return STORE_E_NOMEM;
	m->seq = ++s->last_seq;
	m->p = p;
	p->refs++;
	m->next = NULL;
	if (s->mq_tail)
		s->mq_tail->next = m;
	else
		s->mq_head = m;
	s->mq_tail = m;
	s->queued++;
	st->queued++;
	if (s->receiver)
		store_waiter_wake(st, s->receiver, STORE_WAKE_FIRED);
	return STORE_OK;
}

enum store_rc store_mailbox_push_all(struct store *st, struct store_session *const *to, size_t n,
				     struct store_payload *p, bool *full, size_t *delivered)
{
	struct store_msg **m = malloc((n ? n : 1) * sizeof(*m));
	size_t i, k = 0;

	if (!m)
		return STORE_E_NOMEM;
	/* Every allocation first: then nothing can fail half-way. */
	for (i = 0; i < n; i++) {
		full[i] = to[i]->queued >= st->cfg.max_queue;
		if (full[i])
			continue;
		m[k] = malloc(sizeof(**m));
		if (!m[k]) {
			while (k)
				free(m[--k]);
			free(m);
			return STORE_E_NOMEM;
		}
		k++;
	}
	*delivered = k;
	for (i = 0, k = 0; i < n; i++) {
		struct store_session *s = to[i];
		struct store_msg *x;
		if (full[i])
			continue;
		x = m[k++];
		x->seq = ++s->last_seq;
		x->p = p;
		p->refs++;
		x->next = NULL;
		if (s->mq_tail)
			s->mq_tail->next = x;
		else
			s->mq_head = x;
		s->mq_tail = x;
		s->queued++;
		st->queued++;
		if (s->receiver)
			store_waiter_wake(st, s->receiver, STORE_WAKE_FIRED);
	}
	free(m);
	return STORE_OK;
}

static void drop_head(struct store_session *s)
{
	struct store_msg *m = s->mq_head;

	s->mq_head = m->next;
	if (!s->mq_head)
		s->mq_tail = NULL;
	s->queued--;
	store_payload_unref(m->p);
	free(m);
}

void store_mailbox_ack(struct store *st, struct store_session *s, uint64_t after)
{
	while (s->mq_head && s->mq_head->seq <= after) {
		drop_head(s);
		st->queued--;
	}
}

void store_mailbox_clear(struct store *st, struct store_session *s)
{
	store_mailbox_ack(st, s, UINT64_MAX);
}

enum store_rc store_receive_wait(struct store *st, struct store_session *s, uint64_t deadline,
				 struct store_waiter *w)
{
	enum store_rc rc;

	if (s->receiver) /* one pending receive per session: the newer wins */
		store_waiter_wake(st, s->receiver, STORE_WAKE_REPLACED);
	rc = store_waiter_park(st, w, WK_RECEIVE, deadline);
	if (rc != STORE_OK)
		return rc;
	w->session = s;
	s->receiver = w;
	/* The lease waits with it: no deadline until the receive ends. */
	timer_heap_update(&st->timers, &s->lease, UINT64_MAX);
	return STORE_OK;
}

void store_receive_detached(struct store *st, struct store_waiter *w)
{
	struct store_session *s = w->session;

	w->session = NULL;
	if (!s || s->receiver != w)
		return;
	s->receiver = NULL;
	store_session_touch(st, st->now, s); /* the countdown starts again now */
}

/* store: the registry; see store.h. Sessions are found by id and by token
 * (hash tables) and listed by id (skip list); names likewise by key. Each
 * session links the names it holds, so releasing it costs what it holds. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "skiplist.h"
#include "store_int.h"

static uint64_t rand64(struct store *st)
{
	uint64_t v = 0;

	st->cfg.random(st->cfg.random_ctx, &v, sizeof(v));
	return v;
}

char *store_dup(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

void store_hex(const unsigned char *b, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * n] = '\0';
}

struct store *store_new(const struct store_config *cfg)
{
	struct store *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->cfg = *cfg;
	if (!st->cfg.max_keys_per_session)
		st->cfg.max_keys_per_session = SIZE_MAX;
	if (!st->cfg.max_queue)
		st->cfg.max_queue = SIZE_MAX;
	if (!st->cfg.max_waiters)
		st->cfg.max_waiters = SIZE_MAX;
	if (hmap_init(&st->sessions_by_id, rand64(st), rand64(st)) ||
	    hmap_init(&st->sessions_by_token, rand64(st), rand64(st)) ||
	    hmap_init(&st->names, rand64(st), rand64(st)) ||
	    hmap_init(&st->awaits, rand64(st), rand64(st)) ||
	    skiplist_init(&st->sessions_sorted, rand64(st) | 1) ||
	    skiplist_init(&st->names_sorted, rand64(st) | 1) ||
	    store_multi_init(st) || store_events_init(st) || store_calls_init(st)) {
		store_free(st);
		return NULL;
	}
	st->rng = rand64(st) | 1;
	/* Rendezvous picks use one fixed key, so that every node of a cluster
	 * (and a restarted server) sends a hash_key to the same member. */
	st->hk0 = 0x726f6c6c63616c6cULL; /* "rollcall" */
	st->hk1 = 0x686173687069636bULL;
	timer_heap_init(&st->timers);
	return st;
}

static void free_name(struct store_name *n)
{
	free(n->value);
	free(n);
}

void store_free(struct store *st)
{
	size_t i;

	if (!st)
		return;
	while (st->waiters) /* parked requests outlive the store: unpark them */
		store_waiter_cancel(st, st->waiters);
	store_multi_free(st); /* entries first: sessions only point at them */
	/* The heap marks each timer idle, and lease timers live in the sessions
	 * freed below: empty it while they are still there. */
	timer_heap_destroy(&st->timers);
	if (st->sessions_by_id.buckets) {
		for (i = 0; i <= st->sessions_by_id.mask; i++) {
			struct hmap_node *hn = st->sessions_by_id.buckets[i], *next;
			for (; hn; hn = next) {
				struct store_session *s = container_of(hn, struct store_session, by_id);
				struct store_name *n, *nn;
				next = hn->next;
				for (n = s->names_head; n; n = nn) {
					nn = n->s_next;
					free_name(n);
				}
				store_mailbox_clear(st, s);
				free(s->label);
				free(s);
			}
		}
	}
	hmap_destroy(&st->sessions_by_id);
	hmap_destroy(&st->sessions_by_token);
	hmap_destroy(&st->names);
	hmap_destroy(&st->awaits);
	hmap_destroy(&st->calls);
	skiplist_destroy(&st->sessions_sorted);
	skiplist_destroy(&st->names_sorted);
	store_events_free(st);
	free(st);
}

uint64_t store_index(const struct store *st) { return st->index; }

void store_get_stats(const struct store *st, struct store_stats *out)
{
	out->sessions = st->sessions_by_id.count;
	out->names = st->names.count;
	out->props = st->props.entries;
	out->group_members = st->groups.entries;
	out->queued = st->queued;
	out->awaits = st->n_kind[WK_AWAIT];
	out->receives = st->n_kind[WK_RECEIVE];
	out->watchers = st->n_kind[WK_EVENTS];
	out->expirations = st->expirations;
	out->index = st->index;
	out->events_kept = st->ev_next - st->ev_oldest;
	out->calls_pending = st->calls.count;
	out->calls_answered = st->calls_answered;
	out->calls_timed_out = st->calls_timed_out;
	out->calls_receiver_gone = st->calls_receiver_gone;
	out->calls_caller_gone = st->calls_caller_gone;
}
size_t store_session_count(const struct store *st) { return st->sessions_by_id.count; }
size_t store_name_count(const struct store *st) { return st->names.count; }
size_t store_waiter_count(const struct store *st) { return st->n_waiters; }


/* --- sessions --- */

static bool ttl_ok(const struct store *st, unsigned ttl)
{
	return ttl >= 1 && ttl <= st->cfg.max_ttl;
}

/* A zeroed session with a copy of its label (when given), or NULL. */
static struct store_session *session_alloc(const char *label, size_t label_len)
{
	struct store_session *s = calloc(1, sizeof(*s));

	if (s && label) {
		s->label = store_dup(label, label_len);
		if (!s->label) {
			free(s);
			return NULL;
		}
		s->label_len = label_len;
	}
	return s;
}

/* Makes s (id, token, ttl set) known: listed, found by id and token, its
 * lease counting down from now when lease is set; emits session_created.
 * STORE_CREATED with *out, or STORE_E_NOMEM with s freed. */
static enum store_rc link_session(struct store *st, uint64_t now, struct store_session *s, bool lease,
				  struct store_session **out)
{
	s->lease.kind = TK_LEASE;
	s->lease.idx = TIMER_IDLE;
	s->lease.deadline = now + (uint64_t)s->ttl * 1000;
	if (skiplist_insert(&st->sessions_sorted, s->id, STORE_ID_LEN, s))
		goto nomem;
	if (lease && timer_heap_add(&st->timers, &s->lease)) {
		skiplist_remove(&st->sessions_sorted, s->id, STORE_ID_LEN);
		goto nomem;
	}
	s->by_id.key = s->id;
	s->by_id.klen = STORE_ID_LEN;
	hmap_put(&st->sessions_by_id, &s->by_id);
	s->by_token.key = s->token;
	s->by_token.klen = STORE_TOKEN_LEN;
	hmap_put(&st->sessions_by_token, &s->by_token);
	store_emit(st, STORE_EV_SESSION_CREATED, s, NULL, 0, NULL, 0);
	*out = s;
	return STORE_CREATED;
nomem:
	free(s->label);
	free(s);
	return STORE_E_NOMEM;
}

enum store_rc store_session_create(struct store *st, uint64_t now, unsigned ttl,
				   const char *label, size_t label_len,
				   struct store_session **out)
{
	struct store_session *s;
	unsigned char raw[16];

	store_clock(st, now);
	if (ttl == 0)
		ttl = st->cfg.default_ttl;
	if (!ttl_ok(st, ttl))
		return STORE_E_INVALID_TTL;
	if (store_session_count(st) >= st->cfg.max_sessions)
		return STORE_E_LIMIT;
	s = session_alloc(label, label_len);
	if (!s)
		return STORE_E_NOMEM;
	do { /* 64 and 128 random bits: a collision is astronomically rare, but cheap to rule out */
		st->cfg.random(st->cfg.random_ctx, raw, 8);
		store_hex(raw, 8, s->id);
	} while (hmap_get(&st->sessions_by_id, s->id, STORE_ID_LEN));
	do {
		st->cfg.random(st->cfg.random_ctx, raw, 16);
		store_hex(raw, 16, s->token);
	} while (hmap_get(&st->sessions_by_token, s->token, STORE_TOKEN_LEN));
	s->ttl = ttl;
	return link_session(st, now, s, true, out);
}

static void unlink_name(struct store *st, struct store_name *n)
{
	struct store_session *s = n->owner;

	hmap_remove(&st->names, &n->node);
	skiplist_remove(&st->names_sorted, n->key, n->klen);
	if (n->s_prev)
		n->s_prev->s_next = n->s_next;
	else
		s->names_head = n->s_next;
	if (n->s_next)
		n->s_next->s_prev = n->s_prev;
	else
		s->names_tail = n->s_prev;
	s->n_names--;
}

/* Releases everything s holds, emitting one event per entry and one for the
 * session, then frees it. Single-threaded, so no reader sees half of it. */
static void release_session(struct store *st, struct store_session *s, bool expired)
{
	struct store_name *n;

	if (expired && st->cfg.expired)
		st->cfg.expired(st->cfg.expired_ctx, s);
	store_calls_fail(st, s); /* its callers learn at once (gen_server's monitor) */
	if (s->receiver) /* its pending receive ends: the session is gone */
		store_waiter_wake(st, s->receiver, STORE_WAKE_GONE);
	store_mailbox_clear(st, s);
	store_multi_release(st, s);
	while ((n = s->names_head) != NULL) {
		unlink_name(st, n);
		store_emit(st, STORE_EV_NAME_UNREGISTERED, s, n->key, n->klen, NULL, 0);
		free_name(n);
	}
	timer_heap_remove(&st->timers, &s->lease);
	hmap_remove(&st->sessions_by_id, &s->by_id);
	hmap_remove(&st->sessions_by_token, &s->by_token);
	skiplist_remove(&st->sessions_sorted, s->id, STORE_ID_LEN);
	if (expired)
		st->expirations++;
	store_emit(st, expired ? STORE_EV_SESSION_EXPIRED : STORE_EV_SESSION_DELETED, s, NULL, 0, NULL, 0);
	free(s->label);
	free(s);
}

/* A session whose lease ran out, homed here: released at once on a single
 * node; in a cluster, handed to lease_due (which has etcd end it) and no
 * longer live. */
static void lease_out(struct store *st, struct store_session *s)
{
	if (!st->cfg.lease_due) {
		release_session(st, s, true);
		return;
	}
	timer_heap_remove(&st->timers, &s->lease);
	s->ending = true;
	st->cfg.lease_due(st->cfg.lease_due_ctx, s);
}

static struct store_session *live(struct store *st, uint64_t now, struct store_session *s)
{
	if (s && s->ending)
		return NULL;
	/* A pending receive holds the lease: its countdown has not begun.
	 * A remote session's lease is kept by its home. */
	if (s && !s->remote && !s->receiver && s->lease.deadline <= now) {
		lease_out(st, s);
		return NULL;
	}
	return s;
}

struct store_session *store_session_lookup(struct store *st, const char *id, size_t len)
{
	struct hmap_node *hn = hmap_get(&st->sessions_by_id, id, len);

	return hn ? container_of(hn, struct store_session, by_id) : NULL;
}

void store_session_end(struct store *st, struct store_session *s, bool expired)
{
	release_session(st, s, expired);
}

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

enum store_rc store_session_insert(struct store *st, uint64_t now, const char *id, const char *token,
				   unsigned ttl, const char *label, size_t label_len, const char *home,
				   bool remote, struct store_session **out)
{
	struct store_session *s = store_session_lookup(st, id, strlen(id));

	store_clock(st, now);
	if (s) {
		*out = s;
		return STORE_OK;
	}
	if (!ttl_ok(st, ttl) || !is_hex(id, STORE_ID_LEN) || !is_hex(token, STORE_TOKEN_LEN))
		return STORE_E_INVALID_TTL;
	if (hmap_get(&st->sessions_by_token, token, STORE_TOKEN_LEN))
		return STORE_E_INVALID_TTL; /* a token is one session's */
	s = session_alloc(label, label_len);
	if (!s)
		return STORE_E_NOMEM;
	memcpy(s->id, id, STORE_ID_LEN + 1);
	memcpy(s->token, token, STORE_TOKEN_LEN + 1);
	s->ttl = ttl;
	s->home = home;
	s->remote = remote;
	return link_session(st, now, s, !remote, out);
}

struct store_session *store_session_find(struct store *st, uint64_t now, const char *id, size_t len)
{
	struct hmap_node *hn = hmap_get(&st->sessions_by_id, id, len);

	return live(st, now, hn ? container_of(hn, struct store_session, by_id) : NULL);
}

struct store_session *store_session_by_token(struct store *st, uint64_t now, const char *token, size_t len)
{
	struct hmap_node *hn = hmap_get(&st->sessions_by_token, token, len);

	return live(st, now, hn ? container_of(hn, struct store_session, by_token) : NULL);
}

void store_clock(struct store *st, uint64_t now)
{
	if (now > st->now)
		st->now = now;
}

void store_session_touch(struct store *st, uint64_t now, struct store_session *s)
{
	store_clock(st, now);
	if (s->receiver)
		return; /* a pending receive holds the lease; it restarts at the end */
	timer_heap_update(&st->timers, &s->lease, now + (uint64_t)s->ttl * 1000);
}

enum store_rc store_session_heartbeat(struct store *st, uint64_t now, struct store_session *s, unsigned ttl)
{
	if (ttl) {
		if (!ttl_ok(st, ttl))
			return STORE_E_INVALID_TTL;
		s->ttl = ttl;
	}
	store_session_touch(st, now, s);
	return STORE_OK;
}

void store_session_delete(struct store *st, struct store_session *s)
{
	release_session(st, s, false);
}

uint64_t store_session_expires_in(const struct store_session *s, uint64_t now)
{
	if (s->receiver)
		return (uint64_t)s->ttl * 1000;
	return s->lease.deadline > now ? s->lease.deadline - now : 0;
}

size_t store_session_page(struct store *st, const char *after, size_t after_len,
			  size_t limit, struct store_session **out, bool *more)
{
	struct skip_node *n = after ? skiplist_seek(&st->sessions_sorted, after, after_len, 1)
				    : st->sessions_sorted.head->next[0];
	size_t k = 0;

	for (; n && k < limit; n = skiplist_next(n))
		out[k++] = n->value;
	*more = n != NULL;
	return k;
}

/* --- names --- */

static void wake_awaiters(struct store *st, const char *key, size_t klen);

enum store_rc store_name_register(struct store *st, struct store_session *s,
				  const char *key, size_t klen,
				  const char *value, size_t vlen,
				  struct store_name **out)
{
	struct hmap_node *hn = hmap_get(&st->names, key, klen);
	struct store_name *n;
	char *v = store_dup(value, vlen);

	if (!v)
		return STORE_E_NOMEM;
	if (hn) {
		n = container_of(hn, struct store_name, node);
		*out = n;
		if (n->owner != s) {
			free(v);
			return STORE_E_NAME_TAKEN;
		}
		free(n->value);
		n->value = v;
		n->vlen = vlen;
		store_emit(st, STORE_EV_NAME_UPDATED, s, n->key, n->klen, v, vlen);
		return STORE_OK;
	}
	if (!st->applying && s->n_names + s->n_props + s->n_groups >= st->cfg.max_keys_per_session) {
		free(v);
		return STORE_E_LIMIT;
	}
	n = malloc(sizeof(*n) + klen + 1);
	if (!n) {
		free(v);
		return STORE_E_NOMEM;
	}
	memcpy(n->key, key, klen);
	n->key[klen] = '\0';
	n->klen = klen;
	n->value = v;
	n->vlen = vlen;
	n->owner = s;
	if (skiplist_insert(&st->names_sorted, n->key, klen, n)) {
		free_name(n);
		return STORE_E_NOMEM;
	}
	n->node.key = n->key;
	n->node.klen = klen;
	hmap_put(&st->names, &n->node);
	n->s_next = NULL;
	n->s_prev = s->names_tail;
	if (s->names_tail)
		s->names_tail->s_next = n;
	else
		s->names_head = n;
	s->names_tail = n;
	s->n_names++;
	store_emit(st, STORE_EV_NAME_REGISTERED, s, n->key, klen, v, vlen);
	*out = n;
	wake_awaiters(st, key, klen);
	return STORE_CREATED;
}

struct store_name *store_name_get(struct store *st, const char *key, size_t klen)
{
	struct hmap_node *hn = hmap_get(&st->names, key, klen);

	return hn ? container_of(hn, struct store_name, node) : NULL;
}

enum store_rc store_name_delete(struct store *st, struct store_session *s, const char *key, size_t klen)
{
	struct store_name *n = store_name_get(st, key, klen);

	if (!n)
		return STORE_E_NAME_NOT_FOUND;
	if (n->owner != s)
		return STORE_E_NOT_OWNER;
	unlink_name(st, n);
	store_emit(st, STORE_EV_NAME_UNREGISTERED, s, n->key, n->klen, NULL, 0);
	free_name(n);
	return STORE_OK;
}

size_t store_name_page(struct store *st, const char *prefix, size_t plen,
		       const char *after, size_t alen, size_t limit,
		       struct store_name **out, bool *more)
{
	struct skip_node *n = skiplist_page_start(&st->names_sorted, prefix, plen, after, alen);
	size_t k = 0;

	for (; n && k < limit && skiplist_has_prefix(n, prefix, plen); n = skiplist_next(n))
		out[k++] = n->value;
	*more = n != NULL && skiplist_has_prefix(n, prefix, plen);
	return k;
}

/* --- waiters --- */

/* Parks w on the store's list of all waiters with its deadline, as kind.
 * STORE_E_LIMIT past max_waiters, STORE_E_NOMEM when the heap cannot grow. */
enum store_rc store_waiter_park(struct store *st, struct store_waiter *w, int kind, uint64_t deadline)
{
	if (st->n_waiters >= st->cfg.max_waiters)
		return STORE_E_LIMIT;
	w->timer.kind = TK_WAITER;
	w->timer.deadline = deadline;
	w->timer.idx = TIMER_IDLE;
	if (timer_heap_add(&st->timers, &w->timer))
		return STORE_E_NOMEM;
	w->kind = kind;
	st->n_kind[kind]++;
	w->gprev = NULL;
	w->gnext = st->waiters;
	if (st->waiters)
		st->waiters->gprev = w;
	st->waiters = w;
	st->n_waiters++;
	return STORE_OK;
}

/* Unparks w; why is the reason it will be woken, 0 when it is cancelled. */
static void detach_waiter(struct store *st, struct store_waiter *w, enum store_wake why)
{
	struct await_list *al = w->list;

	if (!w->kind)
		return;
	timer_heap_remove(&st->timers, &w->timer);
	if (w->gprev)
		w->gprev->gnext = w->gnext;
	else
		st->waiters = w->gnext;
	if (w->gnext)
		w->gnext->gprev = w->gprev;
	w->gprev = w->gnext = NULL;
	st->n_waiters--;
	st->n_kind[w->kind]--;
	if (w->kind == WK_RECEIVE) {
		store_receive_detached(st, w);
	} else if (w->kind == WK_EVENTS) {
		store_event_unwatch(st, w);
	} else if (w->kind == WK_CALL) {
		store_call_detached(st, w, why);
	} else if (w->kind == WK_INDEX) {
		if (w->prev)
			w->prev->next = w->next;
		else
			st->index_waiters = w->next;
		if (w->next)
			w->next->prev = w->prev;
		w->prev = w->next = NULL;
	} else if (al) {
		if (w->prev)
			w->prev->next = w->next;
		else
			al->head = w->next;
		if (w->next)
			w->next->prev = w->prev;
		w->list = NULL;
		w->prev = w->next = NULL;
		if (!al->head) {
			hmap_remove(&st->awaits, &al->node);
			free(al);
		}
	}
	w->kind = 0;
}

void store_waiter_wake(struct store *st, struct store_waiter *w, enum store_wake why)
{
	detach_waiter(st, w, why);
	w->wake(w, why);
}

enum store_rc store_name_await(struct store *st, const char *key, size_t klen,
			       uint64_t deadline, struct store_waiter *w)
{
	struct hmap_node *hn = hmap_get(&st->awaits, key, klen);
	struct await_list *al;
	enum store_rc rc;

	if (hn) {
		al = container_of(hn, struct await_list, node);
	} else {
		al = malloc(sizeof(*al) + klen + 1);
		if (!al)
			return STORE_E_NOMEM;
		memcpy(al->key, key, klen);
		al->key[klen] = '\0';
		al->klen = klen;
		al->head = NULL;
		al->node.key = al->key;
		al->node.klen = klen;
	}
	rc = store_waiter_park(st, w, WK_AWAIT, deadline);
	if (rc != STORE_OK) {
		if (!hn)
			free(al);
		return rc;
	}
	if (!hn)
		hmap_put(&st->awaits, &al->node);
	w->list = al;
	w->prev = NULL;
	w->next = al->head;
	if (al->head)
		al->head->prev = w;
	al->head = w;
	return STORE_OK;
}

void store_waiter_cancel(struct store *st, struct store_waiter *w)
{
	detach_waiter(st, w, 0);
}

bool store_waiter_parked(const struct store_waiter *w)
{
	return w->kind != 0;
}

static void wake_awaiters(struct store *st, const char *key, size_t klen)
{
	struct hmap_node *hn = hmap_get(&st->awaits, key, klen);
	struct await_list *al;

	if (!hn)
		return;
	al = container_of(hn, struct await_list, node);
	/* Detaching the last waiter frees the list, so take the head each time. */
	for (;;) {
		struct store_waiter *w = al->head;
		bool last = w->next == NULL;
		store_waiter_wake(st, w, STORE_WAKE_FIRED);
		if (last)
			break;
	}
}

size_t store_tick(struct store *st, uint64_t now, size_t budget)
{
	size_t done = 0;
	struct timer *t;

	store_clock(st, now);

	while (done < budget && (t = timer_heap_peek(&st->timers)) && t->deadline <= now) {
		if (t->kind == TK_LEASE) {
			lease_out(st, container_of(t, struct store_session, lease));
		} else {
			store_waiter_wake(st, container_of(t, struct store_waiter, timer), STORE_WAKE_TIMEOUT);
		}
		done++;
	}
	return done;
}

uint64_t store_next_deadline(const struct store *st)
{
	struct timer *t = timer_heap_peek(&st->timers);

	return t ? t->deadline : UINT64_MAX;
}

void store_wake_all(struct store *st)
{
	while (st->waiters)
		store_waiter_wake(st, st->waiters, STORE_WAKE_SHUTDOWN);
}

/* --- indices: cluster mode --- */

void store_revision_begin(struct store *st, uint64_t rev)
{
	if (rev > st->index)
		st->index = rev;
	st->applying = true;
}

void store_revision_end(struct store *st)
{
	struct store_waiter *w, *next;

	st->applying = false;
	for (w = st->index_waiters; w; w = next) {
		next = w->next;
		if (w->min_index <= st->index)
			store_waiter_wake(st, w, STORE_WAKE_FIRED);
	}
}

enum store_rc store_index_wait(struct store *st, uint64_t min, uint64_t deadline, struct store_waiter *w)
{
	enum store_rc rc = store_waiter_park(st, w, WK_INDEX, deadline);

	if (rc != STORE_OK)
		return rc;
	w->min_index = min;
	w->prev = NULL;
	w->next = st->index_waiters;
	if (st->index_waiters)
		st->index_waiters->prev = w;
	st->index_waiters = w;
	return STORE_OK;
}

/* store_int: what the store's own files share and nobody else sees: the
 * struct store itself and a few helpers. Not part of the store's API. */
#ifndef ROLLCALL_STORE_INT_H
#define ROLLCALL_STORE_INT_H

#include "skiplist.h"
#include "store.h"

enum { TK_LEASE = 1, TK_WAITER = 2 };
enum { WK_AWAIT = 1, WK_RECEIVE = 2, WK_EVENTS = 3, WK_CALL = 4, WK_INDEX = 5 }; /* store_waiter.kind; 0 when not parked */

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

struct await_list {
	struct hmap_node node;
	struct store_waiter *head;
	size_t klen;
	char key[];
};

/* Properties or groups: keys, each with its ordered entries. */
struct store_multi {
	struct hmap keys;     /* key text -> struct store_key */
	struct skiplist sorted; /* the same keys, in byte order */
	struct hmap pairs;    /* (session, key) -> struct store_entry */
	size_t entries;
};

struct store {
	struct store_config cfg;
	uint64_t index;
	struct hmap sessions_by_id, sessions_by_token, names, awaits;
	struct skiplist sessions_sorted, names_sorted;
	struct store_multi props, groups;
	struct timer_heap timers;
	size_t n_waiters;
	size_t n_kind[6];        /* parked waiters by kind (WK_*) */
	struct hmap calls;       /* pending calls by id */
	uint64_t calls_answered, calls_timed_out, calls_receiver_gone, calls_caller_gone;
	uint64_t expirations;
	struct store_waiter *waiters; /* every parked waiter, any kind */
	uint64_t now;     /* the latest time the store was given */
	size_t queued;    /* messages in all mailboxes */
	struct ring_event **ring; /* event_buffer slots; event seq in slot seq % event_buffer */
	uint64_t ev_oldest, ev_next; /* the seq of the oldest event kept, and of the next */
	uint64_t dropped; /* the highest index of an event no longer kept (0: none) */
	bool applying;    /* a revision is open: events take st->index as it is */
	struct store_waiter *index_waiters; /* parked index waiters (prev/next links) */
	size_t ring_bytes;
	struct store_waiter *watchers; /* parked event watchers (prev/next links) */
	uint64_t rng;     /* xorshift state for random picks (not for secrets) */
	uint64_t hk0, hk1; /* SipHash key of rendezvous picks */
};

/* events.c: one change applied: the index moves by one, the event is
 * logged (key, value copied) and every watcher wakes. s is the session the
 * change belongs to. */
void store_emit(struct store *st, enum store_event_type type, const struct store_session *s,
		const char *key, size_t klen, const char *value, size_t vlen);
int store_events_init(struct store *st);
void store_events_free(struct store *st);
void store_event_unwatch(struct store *st, struct store_waiter *w);
struct ring_event;


/* The latest time seen moves forward to now (never back). */
void store_clock(struct store *st, uint64_t now);

/* Waiters of any kind: park with a deadline (STORE_OK, STORE_E_LIMIT past
 * max_waiters, STORE_E_NOMEM), and detach-then-wake. */
enum store_rc store_waiter_park(struct store *st, struct store_waiter *w, int kind, uint64_t deadline);
void store_waiter_wake(struct store *st, struct store_waiter *w, enum store_wake why);

/* mailbox.c: a receive waiter was detached (its lease countdown restarts);
 * a session's messages are dropped. */
void store_receive_detached(struct store *st, struct store_waiter *w);
void store_mailbox_clear(struct store *st, struct store_session *s);

/* calls.c: a call's waiter was detached (why: 0 for a cancel); the
 * calls to a session that ends fail. */
int store_calls_init(struct store *st);
void store_call_detached(struct store *st, struct store_waiter *w, enum store_wake why);
void store_calls_fail(struct store *st, struct store_session *s);

/* multi.c: set up and tear down the props and groups tables; release all
 * that a session holds in them, emitting one event per entry. */
int store_multi_init(struct store *st);
void store_multi_free(struct store *st);
void store_multi_release(struct store *st, struct store_session *s);

#endif

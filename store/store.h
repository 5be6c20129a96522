/* store: the registry itself (sessions with leases, unique names,
 * properties, groups, waiters).
 * Plain C: no HTTP, no JSON parsing, no sockets, no clock of its own. Every
 * call that can depend on time takes `now` in milliseconds on a monotonic
 * clock, so tests move time by hand. One thread owns a store. */
#ifndef ROLLCALL_STORE_H
#define ROLLCALL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timer_heap.h"
#include "hmap.h"

#define STORE_ID_LEN 16     /* hex characters of a session id */
#define STORE_TOKEN_LEN 32  /* hex characters of a session token */
#define STORE_KEY_MAX 512   /* bytes of a key */
#define STORE_LABEL_MAX 256 /* bytes of a session label */
#define STORE_CALL_ID_LEN 32 /* hex characters of a call id */

/* Results of store calls. server/reply.c maps each to an HTTP answer. */
enum store_rc {
	STORE_OK = 0,              /* done; for a register: an existing entry was updated */
	STORE_CREATED,             /* done, and a new entry was made */
	STORE_E_NOMEM,             /* out of memory; nothing changed */
	STORE_E_LIMIT,             /* a configured limit was reached; nothing changed */
	STORE_E_INVALID_TTL,       /* ttl outside 1..max_ttl */
	STORE_E_SESSION_NOT_FOUND, /* no such live session */
	STORE_E_NAME_NOT_FOUND,    /* no such name */
	STORE_E_NAME_TAKEN,        /* another session holds the name */
	STORE_E_NOT_OWNER,         /* the name is held by another session */
	STORE_E_NOT_HELD,          /* the session holds no such property or group membership */
	STORE_E_GROUP_EMPTY,       /* a pick from a group with no members */
	STORE_E_MAILBOX_FULL,      /* the mailbox holds max_queue messages */
	STORE_E_CALL_NOT_FOUND,    /* no pending call with this id */
	STORE_E_NOT_RECEIVER,      /* the session is not the one the call was made to */
	STORE_RC_COUNT
};

/* Why a waiter was woken. */
enum store_wake {
	STORE_WAKE_FIRED = 1, /* what it waited for happened */
	STORE_WAKE_TIMEOUT,   /* its deadline passed */
	STORE_WAKE_SHUTDOWN,  /* store_wake_all(): the server is stopping */
	STORE_WAKE_REPLACED,  /* a newer receive for the same session took its place */
	STORE_WAKE_GONE,      /* the session it waited for expired or was deleted */
};

struct store_name;
struct store_entry;
struct store_call;
struct await_list;

struct store_session {
	char id[STORE_ID_LEN + 1];       /* public, lowercase hex */
	char token[STORE_TOKEN_LEN + 1]; /* secret, lowercase hex */
	char *label;                     /* NUL-terminated, or NULL */
	size_t label_len;
	unsigned ttl;          /* seconds */
	struct timer lease;    /* lease.deadline: expiry time in ms */
	size_t n_names, n_props, n_groups;
	struct store_name *names_head, *names_tail; /* in registration order */
	struct store_entry *props_head, *props_tail, *groups_head, *groups_tail;
	/* the mailbox: messages not yet acknowledged, in seq order */
	struct store_msg *mq_head, *mq_tail;
	size_t queued;
	uint64_t last_seq; /* the highest seq ever given out; 0 before the first */
	struct store_waiter *receiver; /* the pending receive, or NULL */
	struct store_call *calls;      /* calls made to it, waiting for its reply */
	/* Cluster mode: the name of the node it lives on (owned by whoever
	 * inserted it, and outliving it); NULL on a single node. */
	const char *home;
	bool remote;  /* homed on another node: no lease countdown here */
	bool ending;  /* its lease ran out (lease_due was called): not live, not yet released */
	/* private */
	struct hmap_node by_id, by_token;
};

struct store_name {
	struct store_session *owner;
	char *value; /* serialized JSON text, NUL-terminated */
	size_t vlen;
	size_t klen;
	/* private */
	struct store_name *s_prev, *s_next;
	struct hmap_node node;
	char key[]; /* klen bytes + NUL */
};

/* A property key or a group name, with its entries (holders or members)
 * in the order they registered or joined. Exists while it has entries. */
struct store_key {
	size_t n;                        /* entries */
	struct store_entry *head, *tail; /* registration or join order */
	/* private */
	struct store_entry **slots;      /* the same entries, unordered: O(1) random pick */
	size_t cap;
	struct store_entry *rr;          /* round robin: the next to pick (NULL: the head) */
	struct hmap_node node;
	size_t klen;
	char key[]; /* klen bytes + NUL */
};

/* One session's property value under a key, or its membership of a group. */
struct store_entry {
	struct store_session *session;
	struct store_key *key;
	char *value; /* serialized JSON text, NUL-terminated */
	size_t vlen;
	struct store_entry *k_next; /* the key's next entry */
	/* private */
	struct store_entry *k_prev, *s_prev, *s_next;
	size_t slot;
	struct hmap_node node;
	const void *pair[2]; /* the pairs map's key: session and key pointers */
};

enum store_pick { STORE_PICK_RANDOM, STORE_PICK_ROUND_ROBIN, STORE_PICK_HASH };

/* What a change was. */
enum store_event_type {
	STORE_EV_SESSION_CREATED,
	STORE_EV_SESSION_EXPIRED,
	STORE_EV_SESSION_DELETED,
	STORE_EV_NAME_REGISTERED,
	STORE_EV_NAME_UPDATED,
	STORE_EV_NAME_UNREGISTERED,
	STORE_EV_PROP_SET,
	STORE_EV_PROP_REMOVED,
	STORE_EV_GROUP_JOINED,
	STORE_EV_GROUP_LEFT,
};

/* One change, as the event log keeps it. */
struct store_event {
	uint64_t index;
	enum store_event_type type;
	char session[STORE_ID_LEN + 1];
	const char *key;   /* the name, property key or group; NULL for session events */
	size_t klen;
	const char *value; /* JSON text where one was set (registered, updated, set, joined); else NULL */
	size_t vlen;
};

/* What a message carries, shared by every mailbox a broadcast reached. */
struct store_payload {
	size_t refs;
	char from[STORE_ID_LEN + 1]; /* the sender's session id; "" when none */
	char reply_to[STORE_CALL_ID_LEN + 1]; /* a call's id; "" for a plain message */
	char *to;   /* the target as the sender gave it: JSON text */
	size_t tolen;
	char *body; /* JSON text */
	size_t blen;
};

/* One message in a mailbox. */
struct store_msg {
	uint64_t seq;
	struct store_payload *p;
	struct store_msg *next;
};

/* A request waiting for something. The owner embeds it and sets `wake`,
 * which the store calls once (the waiter is detached by then). The wake
 * callback must not call back into the store. Zero it before first use. */
struct store_waiter {
	struct timer timer;
	void (*wake)(struct store_waiter *w, enum store_wake why);
	/* private */
	int kind;
	struct await_list *list;          /* an await's key */
	struct store_waiter *prev, *next; /* in that key's list */
	struct store_waiter *gprev, *gnext; /* in the store's list of all waiters */
	struct store_session *session;    /* a receive's session */
	struct store_call *call;          /* a call's */
	const char *prefix;               /* an event watcher's filter */
	size_t plen;
	uint64_t min_index;               /* an index waiter's goal */
};

/* A call (request and reply): its message sits in the receiver's mailbox
 * with reply_to = id, and its caller waits until the reply, the deadline, or
 * the receiver's end. The caller owns it and frees it when it has ended. */
struct store_call {
	char id[STORE_CALL_ID_LEN + 1]; /* unguessable, lowercase hex */
	char from[STORE_ID_LEN + 1];    /* the receiver's id: who answers */
	char *reply;                    /* the reply's body (JSON text), once answered */
	size_t rlen;
	/* private */
	struct store_session *receiver; /* while pending */
	struct store_call *r_prev, *r_next; /* in the receiver's list */
	struct store_waiter *caller;
	struct hmap_node node;
};

struct store_config {
	unsigned default_ttl; /* seconds, for a session created with ttl 0 */
	unsigned max_ttl;     /* seconds */
	size_t max_sessions;
	size_t max_keys_per_session; /* names + properties + group memberships; 0: no limit */
	size_t max_queue;   /* messages per mailbox; 0: no limit */
	size_t max_waiters; /* parked waiters (awaits, receives, watchers); 0: no limit */
	size_t event_buffer; /* events kept; 0: 65,536 */
	size_t event_bytes;  /* bytes of events kept; 0: 64 MiB */
	/* Called for each session that expires, just before its release (the
	 * server logs it); may be NULL. Must not call back into the store. */
	void (*expired)(void *ctx, const struct store_session *s);
	void *expired_ctx;
	/* Cluster mode: called instead of releasing a session (homed here)
	 * whose lease ran out; the session is `ending` from then on (no longer
	 * found as live) until store_session_end() releases it. NULL: release
	 * at once. Must not call back into the store. */
	void (*lease_due)(void *ctx, struct store_session *s);
	void *lease_due_ctx;
	/* Cluster mode: the first 32 bits of every call id (8 hex digits) name
	 * the node that holds the call, so a reply finds its way there; 0: all
	 * 128 bits are random. */
	uint32_t call_tag;
	/* Fills buf with len random bytes (getrandom(2) in the server). */
	void (*random)(void *ctx, void *buf, size_t len);
	void *random_ctx;
};

struct store;

/* Small helpers the store's neighbours use too: a NUL-terminated copy of
 * s[0..n) (malloc'd, or NULL), and b[0..n) as 2n lowercase hex digits and
 * a NUL written to out. */
char *store_dup(const char *s, size_t n);
void store_hex(const unsigned char *b, size_t n, char *out);

/* A new empty store, or NULL when out of memory. The config is copied. */
struct store *store_new(const struct store_config *cfg);

/* Frees the store and everything in it. Waiters still parked are detached
 * without being woken. */
void store_free(struct store *st);

/* The index of the last change applied: one per event (session created,
 * expired or deleted; name registered, updated or unregistered; property set
 * or removed; group joined or left). */
uint64_t store_index(const struct store *st);

size_t store_session_count(const struct store *st);
size_t store_name_count(const struct store *st);
size_t store_prop_count(const struct store *st);  /* (session, key) entries */
size_t store_member_count(const struct store *st); /* group memberships */

/* What the registry holds and has done, for /metrics and /v1/stats. */
struct store_stats {
	size_t sessions, names, props, group_members, queued;
	size_t awaits, receives, watchers; /* parked waiters by kind */
	uint64_t expirations;              /* sessions expired since start */
	uint64_t index;                    /* events since start */
	uint64_t events_kept;
	size_t calls_pending;
	uint64_t calls_answered, calls_timed_out, calls_receiver_gone, calls_caller_gone;
};

void store_get_stats(const struct store *st, struct store_stats *out);

/* --- sessions --- */

/* Creates a session with ttl seconds (0: the default) and an optional label
 * (label_len <= STORE_LABEL_MAX, copied). STORE_CREATED with *out set, or
 * STORE_E_INVALID_TTL, STORE_E_LIMIT, STORE_E_NOMEM. */
enum store_rc store_session_create(struct store *st, uint64_t now, unsigned ttl,
				   const char *label, size_t label_len,
				   struct store_session **out);

/* The live session with this id (or token), or NULL. A session whose deadline
 * has passed is expired here and then, so it is never seen alive late. */
struct store_session *store_session_find(struct store *st, uint64_t now, const char *id, size_t len);
struct store_session *store_session_by_token(struct store *st, uint64_t now, const char *token, size_t len);

/* A sign of life: the lease runs ttl seconds from now (while a receive is
 * pending the lease is held, and this changes nothing). Never allocates. */
void store_session_touch(struct store *st, uint64_t now, struct store_session *s);

/* Heartbeat: touch, after setting the ttl when ttl != 0. STORE_OK or
 * STORE_E_INVALID_TTL (nothing changed then). */
enum store_rc store_session_heartbeat(struct store *st, uint64_t now, struct store_session *s, unsigned ttl);

/* Deletes the session and releases all it holds in one step. s is freed. */
void store_session_delete(struct store *st, struct store_session *s);

/* Cluster mode: a session decided elsewhere (etcd), with its id and token
 * (hex, STORE_ID_LEN and STORE_TOKEN_LEN), on the node `home` (kept, not
 * copied). remote: no lease countdown here (its home keeps it); else its
 * lease runs ttl seconds from now. No limit applies: the node that created
 * it checked them. STORE_CREATED with *out, STORE_OK when the id exists
 * (*out is it, nothing changed), STORE_E_INVALID_TTL, STORE_E_NOMEM. */
enum store_rc store_session_insert(struct store *st, uint64_t now, const char *id, const char *token,
				   unsigned ttl, const char *label, size_t label_len, const char *home,
				   bool remote, struct store_session **out);

/* The session with this id, live or ending, or NULL: no lease check. */
struct store_session *store_session_lookup(struct store *st, const char *id, size_t len);

/* Releases s as expired (expired true) or deleted, all it holds in one
 * step; s is freed. */
void store_session_end(struct store *st, struct store_session *s, bool expired);

/* Milliseconds left on the lease (0 when due). */
uint64_t store_session_expires_in(const struct store_session *s, uint64_t now);

/* Up to limit live sessions with id > after (after may be NULL), in id order,
 * into out[]. Returns how many; *more tells whether more follow. */
size_t store_session_page(struct store *st, const char *after, size_t after_len,
			  size_t limit, struct store_session **out, bool *more);

/* --- names --- */

/* Registers key for s with the JSON text value (copied). STORE_CREATED (new),
 * STORE_OK (s held it: value replaced), STORE_E_NAME_TAKEN (*out is the
 * holder's entry), STORE_E_LIMIT (s holds max_keys_per_session entries),
 * STORE_E_NOMEM. *out is the entry on success. */
enum store_rc store_name_register(struct store *st, struct store_session *s,
				  const char *key, size_t klen,
				  const char *value, size_t vlen,
				  struct store_name **out);

/* The entry for key, or NULL. */
struct store_name *store_name_get(struct store *st, const char *key, size_t klen);

/* Unregisters key for s: STORE_OK, STORE_E_NAME_NOT_FOUND, STORE_E_NOT_OWNER. */
enum store_rc store_name_delete(struct store *st, struct store_session *s, const char *key, size_t klen);

/* Up to limit names that start with prefix and sort after `after` (when
 * given), in byte order, into out[]. Returns how many; *more tells whether
 * more names with the prefix follow. */
size_t store_name_page(struct store *st, const char *prefix, size_t plen,
		       const char *after, size_t alen, size_t limit,
		       struct store_name **out, bool *more);

/* --- properties (non-unique: many sessions per key, one entry each) --- */

/* Sets s's value under key (copied). STORE_CREATED (new: the key's last
 * holder), STORE_OK (value replaced, place kept), STORE_E_LIMIT,
 * STORE_E_NOMEM. *out is the entry on success. */
enum store_rc store_prop_set(struct store *st, struct store_session *s, const char *key, size_t klen,
			     const char *value, size_t vlen, struct store_entry **out);

/* Removes s's entry under key: STORE_OK or STORE_E_NOT_HELD. */
enum store_rc store_prop_remove(struct store *st, struct store_session *s, const char *key, size_t klen);

/* The key with its holders, or NULL when nobody holds it. */
struct store_key *store_prop_get(struct store *st, const char *key, size_t klen);

/* Up to limit keys that start with prefix and sort after `after` (when
 * given), in byte order; as store_name_page. */
size_t store_prop_page(struct store *st, const char *prefix, size_t plen, const char *after, size_t alen,
		       size_t limit, struct store_key **out, bool *more);

/* s's property entry under key (group false) or its membership of group
 * key (group true), or NULL: O(1), however many hold the key. */
struct store_entry *store_entry_get(struct store *st, bool group, const struct store_session *s, const char *key,
				    size_t klen);

/* --- groups --- */

/* Joins s to group (value copied): STORE_CREATED (new: the last member),
 * STORE_OK (already a member: value replaced, place kept), STORE_E_LIMIT,
 * STORE_E_NOMEM. */
enum store_rc store_group_join(struct store *st, struct store_session *s, const char *group, size_t glen,
			       const char *value, size_t vlen, struct store_entry **out);

/* s leaves group: STORE_OK or STORE_E_NOT_HELD. */
enum store_rc store_group_leave(struct store *st, struct store_session *s, const char *group, size_t glen);

/* The group with its members, or NULL when it has none. */
struct store_key *store_group_get(struct store *st, const char *group, size_t glen);

size_t store_group_page(struct store *st, const char *prefix, size_t plen, const char *after, size_t alen,
			size_t limit, struct store_key **out, bool *more);

/* One member of group: STORE_OK with *out, or STORE_E_GROUP_EMPTY.
 * RANDOM: uniform. ROUND_ROBIN: join order, every member once before any
 * again (a cursor that survives joins and leaves). HASH: rendezvous
 * (highest random weight) hashing of hash_key with each member's id: the same
 * hash_key picks the same member while membership is unchanged, and when a
 * member leaves only the keys it had move. */
enum store_rc store_group_pick(struct store *st, const char *group, size_t glen, enum store_pick how,
			       const char *hash_key, size_t hklen, struct store_entry **out);

/* Takes back a round-robin pick of e (the last pick of its group) whose
 * request then failed, so that e's turn is not lost. */
void store_group_unpick(struct store_entry *e);

/* --- messages --- */

/* A payload with one reference: from (a session id, or NULL), to and body
 * (JSON text) are copied. NULL when out of memory. */
struct store_payload *store_payload_new(const char *from, const char *to, size_t tolen,
					const char *body, size_t blen);

/* Drops a reference; the last one frees it. */
void store_payload_unref(struct store_payload *p);

/* Appends a message with p (taking a reference of its own) to s's mailbox,
 * with the next seq, and wakes s's pending receive. STORE_OK,
 * STORE_E_MAILBOX_FULL (nothing changed), STORE_E_NOMEM. */
enum store_rc store_mailbox_push(struct store *st, struct store_session *s, struct store_payload *p);

/* Delivers p to each of the n sessions whose mailbox has room, all or
 * nothing: STORE_OK with full[i] true for each that was full and
 * *delivered the rest; STORE_E_NOMEM with nothing delivered. */
enum store_rc store_mailbox_push_all(struct store *st, struct store_session *const *to, size_t n,
				     struct store_payload *p, bool *full, size_t *delivered);

/* Acknowledges and removes every message with seq <= after. */
void store_mailbox_ack(struct store *st, struct store_session *s, uint64_t after);

/* Parks w as s's pending receive until a message arrives (FIRED), the
 * deadline (TIMEOUT), a newer receive (the older gets REPLACED), or the end
 * of s (GONE). While parked, s does not expire; when it ends, however it
 * ends, s's countdown starts again from the latest time the store was given
 * (store_tick keeps that current). STORE_OK, STORE_E_LIMIT (max_waiters),
 * STORE_E_NOMEM. */
enum store_rc store_receive_wait(struct store *st, struct store_session *s, uint64_t deadline,
				 struct store_waiter *w);

/* --- calls: request and reply --- */

/* Starts a call to receiver: parks w (the caller) until deadline and puts
 * a message with reply_to in the receiver's mailbox (from: a session id or
 * NULL; to, body: JSON text, copied). STORE_OK with *out, STORE_E_MAILBOX_FULL,
 * STORE_E_LIMIT (max_waiters), STORE_E_NOMEM; nothing changed on failure.
 * w wakes FIRED (answered), TIMEOUT, GONE (the receiver ended) or SHUTDOWN;
 * cancelling w (the caller went away) ends the call. */
enum store_rc store_call_start(struct store *st, struct store_session *receiver, const char *from,
			       const char *to, size_t tolen, const char *body, size_t blen,
			       uint64_t deadline, struct store_waiter *w, struct store_call **out);

/* Cluster mode: a call to receiver, a session homed on another node, whose
 * message the caller's node sends there itself: parks w as
 * store_call_start does (same wakes, same table, so a reply forwarded here
 * by id finds it and the receiver's end fails it), but puts nothing in the
 * copy's mailbox. STORE_OK with *out, STORE_E_LIMIT, STORE_E_NOMEM. */
enum store_rc store_call_park(struct store *st, struct store_session *receiver, uint64_t deadline,
			      struct store_waiter *w, struct store_call **out);

/* Ends a pending call c at once as if its receiver had ended (its caller
 * wakes GONE): its message could not reach the receiver's home, or that
 * home was lost. Nothing when c has already ended. */
void store_call_fail(struct store *st, struct store_call *c);

/* Answers call id with body (copied), by replier: STORE_OK (the caller
 * wakes), STORE_E_CALL_NOT_FOUND (unknown, answered, timed out, or its caller
 * went away), STORE_E_NOT_RECEIVER (replier is NULL or not the receiver),
 * STORE_E_NOMEM. */
enum store_rc store_call_reply(struct store *st, const char *id, size_t idlen, struct store_session *replier,
			       const char *body, size_t blen);

/* Frees an ended call (its waiter woke or was cancelled). */
void store_call_free(struct store_call *c);

/* --- the event log --- */

/* Events are kept in a ring and numbered by position (seq): the first
 * kept event with an index above `after` is at store_event_seek(after);
 * store_event_get(seq) is that event, or NULL when seq is not kept (too old,
 * or store_event_end() and beyond). Valid until the next change. Indices
 * never go down from one seq to the next; several events may share one. */
uint64_t store_event_seek(const struct store *st, uint64_t after);
const struct store_event *store_event_get(const struct store *st, uint64_t seq);
uint64_t store_event_end(const struct store *st);

/* True when events with an index above `after` are no longer kept: a client
 * that has seen up to `after` has missed some, and must list again. */
bool store_event_missed(const struct store *st, uint64_t after);

/* Parks w until the next change whose key or group starts with prefix
 * (plen 0: any change, session events included) (FIRED), or the deadline
 * (TIMEOUT). prefix must stay valid while w is parked. STORE_OK,
 * STORE_E_LIMIT, STORE_E_NOMEM. */
enum store_rc store_event_watch(struct store *st, uint64_t deadline, struct store_waiter *w,
				const char *prefix, size_t plen);

/* "session_created", "name_registered", ... */
const char *store_event_type_name(enum store_event_type t);

/* --- indices: cluster mode --- */

/* Applies a change decided elsewhere: between begin and end, every event
 * gets index rev (rev above the current index), and the index is rev from
 * begin on. A revision with no change of ours still moves the index (begin
 * then end). End wakes the index waiters it satisfies. Nothing else in the
 * store moves the index while a revision is open. */
void store_revision_begin(struct store *st, uint64_t rev);
void store_revision_end(struct store *st);

/* Parks w until the index reaches min (FIRED) or deadline (TIMEOUT).
 * STORE_OK, STORE_E_LIMIT, STORE_E_NOMEM. */
enum store_rc store_index_wait(struct store *st, uint64_t min, uint64_t deadline, struct store_waiter *w);

/* --- waiters and time --- */

/* Parks w until key is registered (wake FIRED) or until deadline (wake
 * TIMEOUT). STORE_OK, STORE_E_LIMIT (max_waiters) or STORE_E_NOMEM. */
enum store_rc store_name_await(struct store *st, const char *key, size_t klen,
			       uint64_t deadline, struct store_waiter *w);

/* Unparks w without waking it; harmless when it is not parked. */
void store_waiter_cancel(struct store *st, struct store_waiter *w);

/* True while w is parked. */
bool store_waiter_parked(const struct store_waiter *w);

/* Runs what is due at now: lease expiries and waiter deadlines, at most
 * budget of them. Returns how many ran; when that equals budget, call again. */
size_t store_tick(struct store *st, uint64_t now, size_t budget);

/* The earliest deadline in the store, or UINT64_MAX when none. */
uint64_t store_next_deadline(const struct store *st);

/* Wakes every parked waiter (awaits, receives, watchers, calls) with STORE_WAKE_SHUTDOWN. */
void store_wake_all(struct store *st);

/* Number of parked waiters of every kind. */
size_t store_waiter_count(const struct store *st);

#endif

/* events: the log of recent changes. Every change appends one event to a
 * ring of at most event_buffer events and event_bytes bytes; the oldest go
 * first. Events are numbered by position (seq, no gaps: event seq sits in
 * slot seq % capacity) and carry the index of their change: one per event
 * on a single node, an etcd revision (shared, with gaps) in a cluster.
 * Watchers (long-polls, streams) wake on each append. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

struct ring_event {
	struct store_event ev;
	size_t size;
	char data[]; /* key bytes + NUL, then value bytes + NUL */
};

int store_events_init(struct store *st)
{
	if (!st->cfg.event_buffer)
		st->cfg.event_buffer = 65536;
	if (!st->cfg.event_bytes)
		st->cfg.event_bytes = (size_t)64 << 20;
	st->ring = calloc(st->cfg.event_buffer, sizeof(*st->ring));
	return st->ring ? 0 : -1;
}

static struct ring_event **slot(const struct store *st, uint64_t seq)
{
	return &st->ring[seq % st->cfg.event_buffer];
}

/* Drops the oldest kept event; whoever has not seen its index must list again. */
static void drop_oldest(struct store *st)
{
	struct ring_event **sl = slot(st, st->ev_oldest);

	if ((*sl)->ev.index > st->dropped)
		st->dropped = (*sl)->ev.index;
	st->ring_bytes -= (*sl)->size;
	free(*sl);
	*sl = NULL;
	st->ev_oldest++;
}

void store_events_free(struct store *st)
{
	if (!st->ring)
		return;
	while (st->ev_oldest < st->ev_next)
		drop_oldest(st);
	free(st->ring);
	st->ring = NULL;
}

void store_emit(struct store *st, enum store_event_type type, const struct store_session *s,
		const char *key, size_t klen, const char *value, size_t vlen)
{
	size_t size = sizeof(struct ring_event) + klen + 1 + (value ? vlen + 1 : 0);
	struct store_waiter *w, *next;
	struct ring_event *e;

	if (!st->applying)
		st->index++;
	while (st->ev_oldest < st->ev_next &&
	       (st->ev_next - st->ev_oldest >= st->cfg.event_buffer || st->ring_bytes + size > st->cfg.event_bytes))
		drop_oldest(st);
	e = malloc(size);
	if (!e) {
		/* The change stands; its event cannot be kept. Forget the whole
		 * log, so that anyone asking for it is told to list again (reset)
		 * rather than shown a gap. */
		while (st->ev_oldest < st->ev_next)
			drop_oldest(st);
		st->dropped = st->index;
	} else {
		e->size = size;
		e->ev.index = st->index;
		e->ev.type = type;
		memcpy(e->ev.session, s->id, STORE_ID_LEN + 1);
		e->ev.key = klen || key ? e->data : NULL;
		e->ev.klen = klen;
		if (klen)
			memcpy(e->data, key, klen);
		e->data[klen] = '\0';
		e->ev.value = NULL;
		e->ev.vlen = 0;
		if (value) {
			char *v = e->data + klen + 1;
			memcpy(v, value, vlen);
			v[vlen] = '\0';
			e->ev.value = v;
			e->ev.vlen = vlen;
		}
		*slot(st, st->ev_next) = e;
		st->ev_next++;
		st->ring_bytes += size;
	}
	/* Only the watchers this change concerns wake: a prefix watcher
	 * sleeps through changes to other keys and through session events. */
	for (w = st->watchers; w; w = next) {
		next = w->next;
		if (!w->plen || (klen >= w->plen && !memcmp(key, w->prefix, w->plen)))
			store_waiter_wake(st, w, STORE_WAKE_FIRED);
	}
}

bool store_event_missed(const struct store *st, uint64_t after)
{
	return after < st->dropped;
}

uint64_t store_event_end(const struct store *st)
{
	return st->ev_next;
}

const struct store_event *store_event_get(const struct store *st, uint64_t seq)
{
	if (seq < st->ev_oldest || seq >= st->ev_next)
		return NULL;
	return &(*slot(st, seq))->ev;
}

/* Indices never go down along the ring: a binary search by seq. */
uint64_t store_event_seek(const struct store *st, uint64_t after)
{
	uint64_t lo = st->ev_oldest, hi = st->ev_next;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if ((*slot(st, mid))->ev.index <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

enum store_rc store_event_watch(struct store *st, uint64_t deadline, struct store_waiter *w,
				const char *prefix, size_t plen)
{
	enum store_rc rc = store_waiter_park(st, w, WK_EVENTS, deadline);

	if (rc != STORE_OK)
		return rc;
	w->prefix = prefix;
	w->plen = plen;
	w->prev = NULL;
	w->next = st->watchers;
	if (st->watchers)
		st->watchers->prev = w;
	st->watchers = w;
	return STORE_OK;
}

void store_event_unwatch(struct store *st, struct store_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		st->watchers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

const char *store_event_type_name(enum store_event_type t)
{
	static const char *const names[] = {
		[STORE_EV_SESSION_CREATED] = "session_created",
		[STORE_EV_SESSION_EXPIRED] = "session_expired",
		[STORE_EV_SESSION_DELETED] = "session_deleted",
		[STORE_EV_NAME_REGISTERED] = "name_registered",
		[STORE_EV_NAME_UPDATED] = "name_updated",
		[STORE_EV_NAME_UNREGISTERED] = "name_unregistered",
		[STORE_EV_PROP_SET] = "prop_set",
		[STORE_EV_PROP_REMOVED] = "prop_removed",
		[STORE_EV_GROUP_JOINED] = "group_joined",
		[STORE_EV_GROUP_LEFT] = "group_left",
	};

	return (unsigned)t < sizeof(names) / sizeof(names[0]) && names[t] ? names[t] : "unknown";
}

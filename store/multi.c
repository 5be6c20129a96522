/* multi: properties and groups, the registry's non-unique half. Both are a
 * key with an ordered list of (session, value) entries; a session holds a key
 * at most once. Each entry sits on three structures at once: its key's list
 * (registration order) and slot array (random pick), its session's list (so a
 * release costs what the session holds), and a (session, key) hash map (so
 * "does s hold k" costs O(1) however many hold k). */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

static struct store_multi *table(struct store *st, bool groups)
{
	return groups ? &st->groups : &st->props;
}

int store_multi_init(struct store *st)
{
	struct store_multi *m[2] = { &st->props, &st->groups };
	int i;

	for (i = 0; i < 2; i++) {
		uint64_t k[4];
		st->cfg.random(st->cfg.random_ctx, k, sizeof(k));
		if (hmap_init(&m[i]->keys, k[0], k[1]) || hmap_init(&m[i]->pairs, k[2], k[3]) ||
		    skiplist_init(&m[i]->sorted, k[0] ^ k[3]))
			return -1;
	}
	return 0;
}

static void free_key(struct store_key *k)
{
	struct store_entry *e, *next;

	for (e = k->head; e; e = next) {
		next = e->k_next;
		free(e->value);
		free(e);
	}
	free(k->slots);
	free(k);
}

void store_multi_free(struct store *st)
{
	struct store_multi *m[2] = { &st->props, &st->groups };
	int i;

	for (i = 0; i < 2; i++) {
		struct skip_node *n, *next;
		if (m[i]->sorted.head) {
			for (n = m[i]->sorted.head->next[0]; n; n = next) {
				next = skiplist_next(n);
				free_key(n->value);
			}
		}
		skiplist_destroy(&m[i]->sorted);
		hmap_destroy(&m[i]->keys);
		hmap_destroy(&m[i]->pairs);
	}
}

static struct store_key *find_key(struct store_multi *m, const char *key, size_t klen)
{
	struct hmap_node *hn = hmap_get(&m->keys, key, klen);

	return hn ? container_of(hn, struct store_key, node) : NULL;
}

static struct store_entry *find_entry(struct store_multi *m, const struct store_session *s,
				      const struct store_key *k)
{
	const void *pair[2] = { s, k };
	struct hmap_node *hn = hmap_get(&m->pairs, (const char *)pair, sizeof(pair));

	return hn ? container_of(hn, struct store_entry, node) : NULL;
}

struct store_entry *store_entry_get(struct store *st, bool group, const struct store_session *s, const char *key,
				    size_t klen)
{
	struct store_multi *m = table(st, group);
	struct store_key *k = find_key(m, key, klen);

	return k ? find_entry(m, s, k) : NULL;
}

static struct store_key *new_key(struct store_multi *m, const char *key, size_t klen)
{
	struct store_key *k = calloc(1, sizeof(*k) + klen + 1);

	if (!k)
		return NULL;
	memcpy(k->key, key, klen);
	k->key[klen] = '\0';
	k->klen = klen;
	k->cap = 4;
	k->slots = malloc(k->cap * sizeof(*k->slots));
	if (!k->slots || skiplist_insert(&m->sorted, k->key, klen, k)) {
		free(k->slots);
		free(k);
		return NULL;
	}
	k->node.key = k->key;
	k->node.klen = klen;
	hmap_put(&m->keys, &k->node);
	return k;
}

static void drop_key(struct store_multi *m, struct store_key *k)
{
	hmap_remove(&m->keys, &k->node);
	skiplist_remove(&m->sorted, k->key, k->klen);
	free(k->slots);
	free(k);
}

/* The session's list of entries of this table. */
static struct store_entry **s_head(struct store_session *s, bool groups)
{
	return groups ? &s->groups_head : &s->props_head;
}

static struct store_entry **s_tail(struct store_session *s, bool groups)
{
	return groups ? &s->groups_tail : &s->props_tail;
}

static size_t *s_count(struct store_session *s, bool groups)
{
	return groups ? &s->n_groups : &s->n_props;
}

static enum store_rc set(struct store *st, bool groups, struct store_session *s, const char *key,
			 size_t klen, const char *value, size_t vlen, struct store_entry **out)
{
	struct store_multi *m = table(st, groups);
	struct store_key *k = find_key(m, key, klen);
	struct store_entry *e = k ? find_entry(m, s, k) : NULL;
	char *v = store_dup(value, vlen);
	bool new_k = false;

	if (!v)
		return STORE_E_NOMEM;
	if (e) {
		free(e->value);
		e->value = v;
		e->vlen = vlen;
		store_emit(st, groups ? STORE_EV_GROUP_JOINED : STORE_EV_PROP_SET, s, k->key, k->klen, v, vlen);
		*out = e;
		return STORE_OK;
	}
	if (!st->applying && s->n_names + s->n_props + s->n_groups >= st->cfg.max_keys_per_session) {
		free(v);
		return STORE_E_LIMIT;
	}
	if (!k) {
		k = new_key(m, key, klen);
		if (!k) {
			free(v);
			return STORE_E_NOMEM;
		}
		new_k = true;
	}
	if (k->n == k->cap) {
		struct store_entry **ns = realloc(k->slots, k->cap * 2 * sizeof(*ns));
		if (!ns)
			goto nomem;
		k->slots = ns;
		k->cap *= 2;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		goto nomem;
	e->session = s;
	e->key = k;
	e->value = v;
	e->vlen = vlen;
	/* the key's list, at the end */
	e->k_prev = k->tail;
	if (k->tail)
		k->tail->k_next = e;
	else
		k->head = e;
	k->tail = e;
	e->slot = k->n;
	k->slots[k->n++] = e;
	/* the session's list */
	e->s_prev = *s_tail(s, groups);
	if (e->s_prev)
		e->s_prev->s_next = e;
	else
		*s_head(s, groups) = e;
	*s_tail(s, groups) = e;
	(*s_count(s, groups))++;
	/* the (session, key) map */
	e->pair[0] = s;
	e->pair[1] = k;
	e->node.key = (const char *)e->pair;
	e->node.klen = sizeof(e->pair);
	hmap_put(&m->pairs, &e->node);
	m->entries++;
	store_emit(st, groups ? STORE_EV_GROUP_JOINED : STORE_EV_PROP_SET, s, k->key, k->klen, v, vlen);
	*out = e;
	return STORE_CREATED;
nomem:
	free(v);
	if (new_k)
		drop_key(m, k);
	return STORE_E_NOMEM;
}

/* Unlinks e from everything and frees it; the key goes with its last entry. */
static void remove_entry(struct store *st, bool groups, struct store_entry *e)
{
	struct store_multi *m = table(st, groups);
	struct store_key *k = e->key;
	struct store_session *s = e->session;
	struct store_entry *last;

	if (k->rr == e)
		k->rr = e->k_next;
	if (e->k_prev)
		e->k_prev->k_next = e->k_next;
	else
		k->head = e->k_next;
	if (e->k_next)
		e->k_next->k_prev = e->k_prev;
	else
		k->tail = e->k_prev;
	last = k->slots[--k->n];
	k->slots[e->slot] = last;
	last->slot = e->slot;

	if (e->s_prev)
		e->s_prev->s_next = e->s_next;
	else
		*s_head(s, groups) = e->s_next;
	if (e->s_next)
		e->s_next->s_prev = e->s_prev;
	else
		*s_tail(s, groups) = e->s_prev;
	(*s_count(s, groups))--;

	hmap_remove(&m->pairs, &e->node);
	m->entries--;
	free(e->value);
	free(e);
	store_emit(st, groups ? STORE_EV_GROUP_LEFT : STORE_EV_PROP_REMOVED, s, k->key, k->klen, NULL, 0);
	if (k->n == 0)
		drop_key(m, k);
}

static enum store_rc unset(struct store *st, bool groups, struct store_session *s, const char *key, size_t klen)
{
	struct store_multi *m = table(st, groups);
	struct store_key *k = find_key(m, key, klen);
	struct store_entry *e = k ? find_entry(m, s, k) : NULL;

	if (!e)
		return STORE_E_NOT_HELD;
	remove_entry(st, groups, e);
	return STORE_OK;
}

void store_multi_release(struct store *st, struct store_session *s)
{
	while (s->props_head)
		remove_entry(st, false, s->props_head);
	while (s->groups_head)
		remove_entry(st, true, s->groups_head);
}

static size_t page(struct store_multi *m, const char *prefix, size_t plen, const char *after, size_t alen,
		   size_t limit, struct store_key **out, bool *more)
{
	struct skip_node *n = skiplist_page_start(&m->sorted, prefix, plen, after, alen);
	size_t k = 0;

	for (; n && k < limit && skiplist_has_prefix(n, prefix, plen); n = skiplist_next(n))
		out[k++] = n->value;
	*more = n != NULL && skiplist_has_prefix(n, prefix, plen);
	return k;
}

size_t store_prop_count(const struct store *st) { return st->props.entries; }
size_t store_member_count(const struct store *st) { return st->groups.entries; }

enum store_rc store_prop_set(struct store *st, struct store_session *s, const char *key, size_t klen,
			     const char *value, size_t vlen, struct store_entry **out)
{
	return set(st, false, s, key, klen, value, vlen, out);
}

enum store_rc store_prop_remove(struct store *st, struct store_session *s, const char *key, size_t klen)
{
	return unset(st, false, s, key, klen);
}

struct store_key *store_prop_get(struct store *st, const char *key, size_t klen)
{
	return find_key(&st->props, key, klen);
}

size_t store_prop_page(struct store *st, const char *prefix, size_t plen, const char *after, size_t alen,
		       size_t limit, struct store_key **out, bool *more)
{
	return page(&st->props, prefix, plen, after, alen, limit, out, more);
}

enum store_rc store_group_join(struct store *st, struct store_session *s, const char *group, size_t glen,
			       const char *value, size_t vlen, struct store_entry **out)
{
	return set(st, true, s, group, glen, value, vlen, out);
}

enum store_rc store_group_leave(struct store *st, struct store_session *s, const char *group, size_t glen)
{
	return unset(st, true, s, group, glen);
}

struct store_key *store_group_get(struct store *st, const char *group, size_t glen)
{
	return find_key(&st->groups, group, glen);
}

size_t store_group_page(struct store *st, const char *prefix, size_t plen, const char *after, size_t alen,
			size_t limit, struct store_key **out, bool *more)
{
	return page(&st->groups, prefix, plen, after, alen, limit, out, more);
}

/* xorshift64*: fast, and good enough to spread picks; not for secrets. */
static uint64_t next_rand(struct store *st)
{
	uint64_t x = st->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	st->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Rendezvous weight of (hash_key, member): SipHash of the key, a 0 byte that
 * no key contains, and the member's id. */
static uint64_t weight(const struct store *st, const char *hk, size_t hklen, const struct store_entry *e)
{
	char buf[STORE_KEY_MAX + 1 + STORE_ID_LEN];

	memcpy(buf, hk, hklen);
	buf[hklen] = '\0';
	memcpy(buf + hklen + 1, e->session->id, STORE_ID_LEN);
	return hmap_siphash(st->hk0, st->hk1, buf, hklen + 1 + STORE_ID_LEN);
}

enum store_rc store_group_pick(struct store *st, const char *group, size_t glen, enum store_pick how,
			       const char *hash_key, size_t hklen, struct store_entry **out)
{
	struct store_key *k = find_key(&st->groups, group, glen);
	struct store_entry *e, *best = NULL;
	uint64_t w, best_w = 0;

	if (!k)
		return STORE_E_GROUP_EMPTY;
	switch (how) {
	case STORE_PICK_RANDOM:
		/* k->n is small next to 2^64: the modulo bias is negligible */
		*out = k->slots[next_rand(st) % k->n];
		break;
	case STORE_PICK_ROUND_ROBIN:
		e = k->rr ? k->rr : k->head;
		k->rr = e->k_next;
		*out = e;
		break;
	case STORE_PICK_HASH:
		if (hklen > STORE_KEY_MAX)
			hklen = STORE_KEY_MAX;
		for (e = k->head; e; e = e->k_next) {
			w = weight(st, hash_key, hklen, e);
			/* ties (2^-64) go to the smaller id, so the answer never depends on order */
			if (!best || w > best_w ||
			    (w == best_w && memcmp(e->session->id, best->session->id, STORE_ID_LEN) < 0)) {
				best = e;
				best_w = w;
			}
		}
		*out = best;
		break;
	}
	return STORE_OK;
}

void store_group_unpick(struct store_entry *e)
{
	e->key->rr = e;
}

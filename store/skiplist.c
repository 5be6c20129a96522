/* skiplist: see skiplist.h. Levels are drawn with p = 1/4 from a xorshift
 * generator, so a node carries 1.33 links on average. */
#include "skiplist.h"

#include <stdlib.h>
#include <string.h>

int skiplist_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int random_level(struct skiplist *l)
{
	uint64_t x = l->rng;
	int lvl = 1;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	l->rng = x;
	while (lvl < SKIPLIST_MAX_LEVEL && (x & 3) == 0) {
		lvl++;
		x >>= 2;
	}
	return lvl;
}

int skiplist_init(struct skiplist *l, uint64_t seed)
{
	l->head = calloc(1, sizeof(struct skip_node) + SKIPLIST_MAX_LEVEL * sizeof(struct skip_node *));
	if (!l->head)
		return -1;
	l->head->level = SKIPLIST_MAX_LEVEL;
	l->level = 1;
	l->count = 0;
	l->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	return 0;
}

void skiplist_destroy(struct skiplist *l)
{
	struct skip_node *n, *next;

	if (!l->head)
		return;
	for (n = l->head->next[0]; n; n = next) {
		next = n->next[0];
		free(n);
	}
	free(l->head);
	l->head = NULL;
	l->count = 0;
}

/* Fills update[i] with the last node at level i whose key is < key. */
static void find_preds(const struct skiplist *l, const char *key, size_t klen,
		       struct skip_node **update)
{
	struct skip_node *x = l->head;
	int i;

	for (i = l->level - 1; i >= 0; i--) {
		while (x->next[i] && skiplist_cmp(x->next[i]->key, x->next[i]->klen, key, klen) < 0)
			x = x->next[i];
		update[i] = x;
	}
}

int skiplist_insert(struct skiplist *l, const char *key, size_t klen, void *value)
{
	struct skip_node *update[SKIPLIST_MAX_LEVEL], *n;
	int lvl = random_level(l), i;

	find_preds(l, key, klen, update);
	n = malloc(sizeof(*n) + (size_t)lvl * sizeof(struct skip_node *));
	if (!n)
		return -1;
	n->key = key;
	n->klen = klen;
	n->value = value;
	n->level = lvl;
	for (i = l->level; i < lvl; i++)
		update[i] = l->head;
	if (lvl > l->level)
		l->level = lvl;
	for (i = 0; i < lvl; i++) {
		n->next[i] = update[i]->next[i];
		update[i]->next[i] = n;
	}
	l->count++;
	return 0;
}

void *skiplist_remove(struct skiplist *l, const char *key, size_t klen)
{
	struct skip_node *update[SKIPLIST_MAX_LEVEL], *n;
	void *v;
	int i;

	find_preds(l, key, klen, update);
	n = update[0]->next[0];
	if (!n || skiplist_cmp(n->key, n->klen, key, klen) != 0)
		return NULL;
	for (i = 0; i < n->level; i++)
		update[i]->next[i] = n->next[i];
	while (l->level > 1 && !l->head->next[l->level - 1])
		l->level--;
	v = n->value;
	free(n);
	l->count--;
	return v;
}

struct skip_node *skiplist_seek(const struct skiplist *l, const char *key, size_t klen, int strict)
{
	struct skip_node *update[SKIPLIST_MAX_LEVEL], *n;

	find_preds(l, key, klen, update);
	n = update[0]->next[0];
	if (strict && n && skiplist_cmp(n->key, n->klen, key, klen) == 0)
		n = n->next[0];
	return n;
}

struct skip_node *skiplist_page_start(const struct skiplist *l, const char *prefix, size_t plen,
				      const char *after, size_t alen)
{
	/* Start at the larger of the prefix and the key after `after`. */
	if (after && skiplist_cmp(after, alen, prefix, plen) >= 0)
		return skiplist_seek(l, after, alen, 1);
	return skiplist_seek(l, prefix, plen, 0);
}

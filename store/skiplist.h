/* skiplist: an ordered index of byte-string keys (memcmp order, shorter first
 * on a common prefix), for listings by prefix and "after" whose cost grows with
 * the page: a seek is O(log n) expected, each next step O(1). */
#ifndef ROLLCALL_SKIPLIST_H
#define ROLLCALL_SKIPLIST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SKIPLIST_MAX_LEVEL 24

struct skip_node {
	const char *key; /* not owned: points into the value's own memory */
	size_t klen;
	void *value;
	int level;
	struct skip_node *next[]; /* level entries */
};

struct skiplist {
	struct skip_node *head; /* sentinel with SKIPLIST_MAX_LEVEL links */
	int level;
	size_t count;
	uint64_t rng;
};

/* Initialises an empty list. Returns 0, or -1 when out of memory. */
int skiplist_init(struct skiplist *l, uint64_t seed);

/* Frees every node (not the keys or values). */
void skiplist_destroy(struct skiplist *l);

/* Inserts key -> value; the key must not be present. Returns 0, or -1 when out of memory. */
int skiplist_insert(struct skiplist *l, const char *key, size_t klen, void *value);

/* Removes key if present; returns its value or NULL. */
void *skiplist_remove(struct skiplist *l, const char *key, size_t klen);

/* First node whose key is >= key (strictly > when strict), or NULL. */
struct skip_node *skiplist_seek(const struct skiplist *l, const char *key, size_t klen, int strict);

/* Where a listing by prefix that continues after `after` (NULL: from the
 * start) begins: the first node >= prefix and > after, or NULL. O(log n). */
struct skip_node *skiplist_page_start(const struct skiplist *l, const char *prefix, size_t plen,
				      const char *after, size_t alen);

/* True when n's key starts with prefix. */
static inline int skiplist_has_prefix(const struct skip_node *n, const char *prefix, size_t plen)
{
	return n->klen >= plen && (plen == 0 || memcmp(n->key, prefix, plen) == 0);
}

/* The node after n, or NULL. */
static inline struct skip_node *skiplist_next(const struct skip_node *n)
{
	return n->next[0];
}

/* Byte order of two keys: <0, 0, >0. */
int skiplist_cmp(const char *a, size_t alen, const char *b, size_t blen);

#endif

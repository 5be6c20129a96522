/* hmap: an intrusive hash table keyed by byte strings, with a seeded SipHash
 * so that keys chosen by clients cannot pile into one bucket. The caller owns
 * the nodes (embedded in its own structs) and the key bytes they point at. */
#ifndef ROLLCALL_HMAP_H
#define ROLLCALL_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_node {
	struct hmap_node *next;
	uint64_t hash;
	const char *key; /* not owned; must live as long as the node is in a map */
	size_t klen;
};

struct hmap {
	struct hmap_node **buckets;
	size_t mask;  /* buckets - 1; bucket count is a power of two */
	size_t count;
	uint64_t k0, k1; /* SipHash key */
};

/* Initialises an empty map with the given seed. Returns 0, or -1 when out of memory. */
int hmap_init(struct hmap *m, uint64_t k0, uint64_t k1);

/* Frees the bucket array (not the nodes). */
void hmap_destroy(struct hmap *m);

/* The node whose key equals key[0..klen), or NULL. Keys of equal length are
 * compared in constant time, so a lookup by token leaks nothing of it. */
struct hmap_node *hmap_get(const struct hmap *m, const char *key, size_t klen);

/* Inserts n (n->key and n->klen set by the caller; the key must not be present).
 * Never fails: when the table cannot grow it just gets fuller. */
void hmap_put(struct hmap *m, struct hmap_node *n);

/* Removes n, which must be in m. */
void hmap_remove(struct hmap *m, struct hmap_node *n);

/* SipHash-2-4 of data under (k0, k1). */
uint64_t hmap_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);

/* 1 when a[0..n) equals b[0..n), in time that depends on n only. */
int hmap_ct_equal(const void *a, const void *b, size_t n);

#endif

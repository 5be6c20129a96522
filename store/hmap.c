/* hmap: intrusive chained hash table; see hmap.h. Buckets double when the
 * load passes 1, so a look-up walks one node on average. */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                   \
	do {                                                       \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;             \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;             \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

uint64_t hmap_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56;
	size_t i, left = len & 7, end = len - left;

	for (i = 0; i < end; i += 8) {
		uint64_t m;
		memcpy(&m, p + i, 8); /* little-endian hosts only; fine for Linux x86/arm */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	switch (left) {
	case 7: b |= (uint64_t)p[end + 6] << 48; /* fall through */
	case 6: b |= (uint64_t)p[end + 5] << 40; /* fall through */
	case 5: b |= (uint64_t)p[end + 4] << 32; /* fall through */
	case 4: b |= (uint64_t)p[end + 3] << 24; /* fall through */
	case 3: b |= (uint64_t)p[end + 2] << 16; /* fall through */
	case 2: b |= (uint64_t)p[end + 1] << 8;  /* fall through */
	case 1: b |= (uint64_t)p[end]; break;
	default: break;
	}
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int hmap_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

int hmap_init(struct hmap *m, uint64_t k0, uint64_t k1)
{
	m->mask = 15;
	m->count = 0;
	m->k0 = k0;
	m->k1 = k1;
	m->buckets = calloc(m->mask + 1, sizeof(*m->buckets));
	return m->buckets ? 0 : -1;
}

void hmap_destroy(struct hmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->count = 0;
}

struct hmap_node *hmap_get(const struct hmap *m, const char *key, size_t klen)
{
	uint64_t h = hmap_siphash(m->k0, m->k1, key, klen);
	struct hmap_node *n;

	for (n = m->buckets[h & m->mask]; n; n = n->next)
		if (n->hash == h && n->klen == klen && hmap_ct_equal(n->key, key, klen))
			return n;
	return NULL;
}

static void grow(struct hmap *m)
{
	size_t nb = (m->mask + 1) * 2, i;
	struct hmap_node **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* stay at this size: longer chains, still correct */
	for (i = 0; i <= m->mask; i++) {
		struct hmap_node *n = m->buckets[i], *next;
		for (; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->mask = nb - 1;
}

void hmap_put(struct hmap *m, struct hmap_node *n)
{
	struct hmap_node **slot;

	if (m->count >= m->mask + 1)
		grow(m);
	n->hash = hmap_siphash(m->k0, m->k1, n->key, n->klen);
	slot = &m->buckets[n->hash & m->mask];
	n->next = *slot;
	*slot = n;
	m->count++;
}

void hmap_remove(struct hmap *m, struct hmap_node *n)
{
	struct hmap_node **p = &m->buckets[n->hash & m->mask];

	while (*p && *p != n)
		p = &(*p)->next;
	if (*p) {
		*p = n->next;
		m->count--;
	}
	n->next = NULL;
}

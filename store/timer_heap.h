/* timer_heap: a binary min-heap of deadlines with back-pointers, for leases
 * and waiter deadlines on one structure. Moving a timer never allocates. */
#ifndef ROLLCALL_TIMER_HEAP_H
#define ROLLCALL_TIMER_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define TIMER_IDLE SIZE_MAX

struct timer {
	uint64_t deadline; /* ms on the store's clock */
	size_t idx;        /* position in the heap, TIMER_IDLE when not in it */
	int kind;          /* what the timer belongs to; the owner's tag */
};

struct timer_heap {
	struct timer **a;
	size_t n, cap;
};

/* Empty heap; no allocation until the first add. */
void timer_heap_init(struct timer_heap *h);
void timer_heap_destroy(struct timer_heap *h);

/* Adds t with its deadline. Returns 0, or -1 when out of memory (t stays idle). */
int timer_heap_add(struct timer_heap *h, struct timer *t);

/* Moves t (which must be in h) to a new deadline. */
void timer_heap_update(struct timer_heap *h, struct timer *t, uint64_t deadline);

/* Removes t if it is in h. */
void timer_heap_remove(struct timer_heap *h, struct timer *t);

/* The earliest timer, or NULL. */
static inline struct timer *timer_heap_peek(const struct timer_heap *h)
{
	return h->n ? h->a[0] : NULL;
}

#endif

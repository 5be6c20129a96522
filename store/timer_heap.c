/* timer_heap: see timer_heap.h. */
#include "timer_heap.h"

#include <stdlib.h>

void timer_heap_init(struct timer_heap *h)
{
	h->a = NULL;
	h->n = h->cap = 0;
}

void timer_heap_destroy(struct timer_heap *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		h->a[i]->idx = TIMER_IDLE;
	free(h->a);
	timer_heap_init(h);
}

static void place(struct timer_heap *h, size_t i, struct timer *t)
{
	h->a[i] = t;
	t->idx = i;
}

static void sift_up(struct timer_heap *h, size_t i)
{
	struct timer *t = h->a[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->a[p]->deadline <= t->deadline)
			break;
		place(h, i, h->a[p]);
		i = p;
	}
	place(h, i, t);
}

static void sift_down(struct timer_heap *h, size_t i)
{
	struct timer *t = h->a[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->a[c + 1]->deadline < h->a[c]->deadline)
			c++;
		if (t->deadline <= h->a[c]->deadline)
			break;
		place(h, i, h->a[c]);
		i = c;
	}
	place(h, i, t);
}

int timer_heap_add(struct timer_heap *h, struct timer *t)
{
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 64;
		struct timer **na = realloc(h->a, nc * sizeof(*na));
		if (!na) {
			t->idx = TIMER_IDLE;
			return -1;
		}
		h->a = na;
		h->cap = nc;
	}
	place(h, h->n++, t);
	sift_up(h, t->idx);
	return 0;
}

void timer_heap_update(struct timer_heap *h, struct timer *t, uint64_t deadline)
{
	uint64_t old = t->deadline;

	t->deadline = deadline;
	if (t->idx == TIMER_IDLE)
		return;
	if (deadline < old)
		sift_up(h, t->idx);
	else
		sift_down(h, t->idx);
}

void timer_heap_remove(struct timer_heap *h, struct timer *t)
{
	size_t i = t->idx;
	struct timer *last;

	if (i == TIMER_IDLE || i >= h->n || h->a[i] != t)
		return;
	t->idx = TIMER_IDLE;
	last = h->a[--h->n];
	if (last == t)
		return;
	place(h, i, last);
	if (i > 0 && h->a[(i - 1) / 2]->deadline > last->deadline)
		sift_up(h, i);
	else
		sift_down(h, i);
}

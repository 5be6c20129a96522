/* metrics: what the server counts about its requests (by route and status
 * class, and a latency histogram), for GET /metrics and GET /v1/stats. The
 * registry's own counts come from the store (store_get_stats). */
#ifndef ROLLCALL_METRICS_H
#define ROLLCALL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_ROUTES 32 /* room for the routing table, plus "no route" */
#define METRICS_BUCKETS 12

/* Upper bounds of the latency buckets, in seconds (the last is +Inf). */
extern const double metrics_bounds[METRICS_BUCKETS];

struct metrics {
	uint64_t requests[METRICS_ROUTES][5]; /* [route][status / 100 - 1] */
	uint64_t latency[METRICS_BUCKETS];     /* answers per bucket (not cumulative) */
	uint64_t latency_count;
	double latency_sum;                    /* seconds */
	uint64_t streams_open;                 /* event streams now open */
	uint64_t parked;                       /* requests parked now (their connections suspended) */
	uint64_t streams_parked;               /* of those, event streams waiting for the next change */
};

/* Counts an answer of route (METRICS_ROUTES - 1: no route) with status;
 * when it did not wait (a long-poll's wait is not latency), its time too. */
void metrics_record(struct metrics *m, size_t route, int status, int waited, double seconds);

#endif

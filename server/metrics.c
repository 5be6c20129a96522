/* metrics: see metrics.h. */
#include "metrics.h"

const double metrics_bounds[METRICS_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 1e300,
};

void metrics_record(struct metrics *m, size_t route, int status, int waited, double seconds)
{
	size_t i;

	if (route >= METRICS_ROUTES)
		route = METRICS_ROUTES - 1;
	if (status >= 100 && status < 600)
		m->requests[route][status / 100 - 1]++;
	if (waited)
		return;
	for (i = 0; i < METRICS_BUCKETS - 1 && seconds > metrics_bounds[i]; i++)
		;
	m->latency[i]++;
	m->latency_count++;
	m->latency_sum += seconds;
}

/* main: flags, the store, the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "request.h"
#include "../cluster/cluster.h"

/* One info line per lease expiry. */
static void log_expiry(void *ctx, const struct store_session *s)
{
	(void)ctx;
	fprintf(stderr, "rollcall: info: session %s%s%s%s expired (ttl %u s), releasing %zu names, %zu props, %zu groups, %zu queued messages\n",
		s->id, s->label ? " (" : "", s->label ? s->label : "", s->label ? ")" : "", s->ttl, s->n_names,
		s->n_props, s->n_groups, s->queued);
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct store_config sc = { 0 };
	static struct metrics metrics;
	struct app app = { 0 };
	int rc;

	config_defaults(&cfg);
	switch (config_parse(&cfg, argc, argv, stdout, stderr)) {
	case CONFIG_EXIT_OK:
		return 0;
	case CONFIG_EXIT_USAGE:
		return 2;
	case CONFIG_RUN:
		break;
	}
	sc.default_ttl = cfg.default_ttl;
	sc.max_ttl = cfg.max_ttl;
	sc.max_sessions = cfg.max_sessions;
	sc.max_keys_per_session = cfg.max_keys_per_session;
	sc.max_queue = cfg.max_queue;
	sc.max_waiters = cfg.max_waiters;
	sc.event_buffer = cfg.event_buffer;
	sc.random = daemon_random;
	sc.expired = cfg.etcd ? NULL : log_expiry; /* a cluster logs the expiries of its own sessions */
	if (cfg.etcd) {
		sc.lease_due = cluster_lease_due;
		sc.lease_due_ctx = &app;
		sc.call_tag = cluster_call_tag(cfg.node);
	}
	{
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(app.started, sizeof(app.started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	app.cfg = &cfg;
	app.metrics = &metrics;
	app.store = store_new(&sc);
	if (!app.store) {
		fprintf(stderr, "rollcall: out of memory\n");
		return 1;
	}
	rc = daemon_run(&app);
	store_free(app.store);
	return rc;
}

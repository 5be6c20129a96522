/* ops: operations: health, Prometheus metrics, and the same counts as JSON. */
#include "handlers.h"

#include "../cluster/cluster.h"

#include <stdio.h>

#include "../server/reply.h"
#include "../server/router.h"

void ops_healthz(struct http_request *req, struct http_reply *rep)
{
	struct cluster *cl = req->app->cluster;
	struct jw w = { 0 };

	if (cl && cluster_state(cl) != CLUSTER_LIVE) {
		/* the node serves reads from its copy, but cannot write */
		jw_lit(&w, "{\"status\":\"degraded\",\"cluster\":\"");
		jw_lit(&w, cluster_state_name(cluster_state(cl)));
		jw_lit(&w, "\"}");
		reply_jw(rep, 503, &w);
		return;
	}
	jw_lit(&w, "{\"status\":\"ok\"}");
	reply_jw(rep, 200, &w);
}

void ops_nodes(struct http_request *req, struct http_reply *rep)
{
	struct jw w = { 0 };

	if (req->app->cluster) {
		cluster_nodes(req, rep);
		return;
	}
	/* a single node: the one node, live since it started */
	jw_lit(&w, "{\"nodes\":[{");
	jw_field(&w, "node", req->app->cfg->node, strlen(req->app->cfg->node));
	jw_lit(&w, ",");
	jw_field(&w, "url", req->app->cfg->advertise, strlen(req->app->cfg->advertise));
	jw_lit(&w, ",\"sessions\":");
	jw_u64(&w, store_session_count(req->app->store));
	jw_lit(&w, ",");
	jw_field(&w, "since", req->app->started, strlen(req->app->started));
	jw_lit(&w, "}]}");
	reply_jw(rep, 200, &w);
}

static const char *const classes[5] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

/* A double as text ("%.17g" keeps it exact; +Inf for the last bound). */
static void jw_double(struct jw *w, double v)
{
	char tmp[32];

	if (v > 1e299)
		jw_lit(w, "+Inf");
	else
		jw_raw(w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.17g", v));
}

/* A metric family's # HELP and # TYPE lines. */
static void family(struct jw *w, const char *name, const char *help, const char *type)
{
	jw_lit(w, "# HELP ");
	jw_lit(w, name);
	jw_lit(w, " ");
	jw_lit(w, help);
	jw_lit(w, "\n# TYPE ");
	jw_lit(w, name);
	jw_lit(w, " ");
	jw_lit(w, type);
	jw_lit(w, "\n");
}

static void gauge(struct jw *w, const char *name, const char *help, const char *type, uint64_t v)
{
	family(w, name, help, type);
	jw_lit(w, name);
	jw_lit(w, " ");
	jw_u64(w, v);
	jw_lit(w, "\n");
}

/* The server's request counters; zeros where the app keeps none (a test). */
static const struct metrics *metrics_of(const struct http_request *req)
{
	static const struct metrics none;

	return req->app->metrics ? req->app->metrics : &none;
}

/* One line of rollcall_parked. */
static void parked_line(struct jw *w, const char *kind, uint64_t v)
{
	jw_lit(w, "rollcall_parked{kind=\"");
	jw_lit(w, kind);
	jw_lit(w, "\"} ");
	jw_u64(w, v);
	jw_lit(w, "\n");
}

/* One counter family by peer node: name{peer="n2"} v, for each peer. */
static void peer_family(struct jw *w, const struct cluster_stats *cs, const char *name, const char *help,
			const char *type, int which)
{
	family(w, name, help, type);
	for (size_t i = 0; i < cs->npeers; i++) {
		const struct mail_peer_stats *p = &cs->peers[i];
		jw_lit(w, name);
		jw_lit(w, "{peer=\"");
		jw_lit(w, p->peer);
		jw_lit(w, "\"} ");
		switch (which) {
		case 0:
			jw_u64(w, p->batches);
			break;
		case 1:
			jw_u64(w, p->failed);
			break;
		default:
			jw_u64(w, p->items);
			break;
		}
		jw_lit(w, "\n");
	}
}

/* Forwards to each peer node: sent, failed, items, round trips. */
static void peer_metrics(struct jw *w, const struct cluster_stats *cs)
{
	peer_family(w, cs, "rollcall_peer_forwards_total",
		    "Requests sent to a peer node (batches of messages, and forwarded requests).", "counter", 0);
	peer_family(w, cs, "rollcall_peer_forward_failures_total", "Requests to a peer node that got no good answer.",
		    "counter", 1);
	peer_family(w, cs, "rollcall_peer_items_total", "Messages, calls, replies and signs of life sent to a peer node.",
		    "counter", 2);
	/* a summary without quantiles: the sum and count of round trips */
	family(w, "rollcall_peer_forward_seconds", "Round trips of answered requests to a peer node.", "summary");
	for (size_t i = 0; i < cs->npeers; i++) {
		char tmp[64];
		const struct mail_peer_stats *p = &cs->peers[i];
		jw_lit(w, "rollcall_peer_forward_seconds_sum{peer=\"");
		jw_lit(w, p->peer);
		jw_lit(w, "\"} ");
		jw_raw(w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.6f", (double)p->latency_us_sum / 1e6));
		jw_lit(w, "\nrollcall_peer_forward_seconds_count{peer=\"");
		jw_lit(w, p->peer);
		jw_lit(w, "\"} ");
		jw_u64(w, p->latency_count);
		jw_lit(w, "\n");
	}
}

void ops_metrics(struct http_request *req, struct http_reply *rep)
{
	const struct metrics *m = metrics_of(req);
	struct store_stats s;
	struct jw w = { 0 };
	uint64_t cum = 0;
	size_t r, c, nroutes = router_route_count();

	store_get_stats(req->app->store, &s);
	gauge(&w, "rollcall_sessions", "Live sessions.", "gauge", s.sessions);
	gauge(&w, "rollcall_names", "Registered names.", "gauge", s.names);
	gauge(&w, "rollcall_props", "Property entries (session, key).", "gauge", s.props);
	gauge(&w, "rollcall_group_members", "Group memberships.", "gauge", s.group_members);
	gauge(&w, "rollcall_queued_messages", "Messages waiting in mailboxes.", "gauge", s.queued);
	jw_lit(&w, "# HELP rollcall_pending Requests waiting on the event loop, by kind.\n"
		   "# TYPE rollcall_pending gauge\n");
	jw_lit(&w, "rollcall_pending{kind=\"await\"} ");
	jw_u64(&w, s.awaits);
	jw_lit(&w, "\nrollcall_pending{kind=\"receive\"} ");
	jw_u64(&w, s.receives);
	jw_lit(&w, "\nrollcall_pending{kind=\"events\"} ");
	jw_u64(&w, s.watchers);
	jw_lit(&w, "\n");
	gauge(&w, "rollcall_streams_open", "Open event streams.", "gauge", m->streams_open);
	family(&w, "rollcall_parked", "Requests parked now (holding no thread), by kind.", "gauge");
	parked_line(&w, "await", s.awaits);
	parked_line(&w, "receive", s.receives);
	parked_line(&w, "call", s.calls_pending);
	parked_line(&w, "event_poll", s.watchers > m->streams_parked ? s.watchers - m->streams_parked : 0);
	parked_line(&w, "stream", m->streams_parked);
	parked_line(&w, "all", m->parked);
	if (req->app->cluster) {
		struct cluster_stats cs;
		char tmp[64];
		cluster_get_stats(req->app->cluster, req->now, &cs);
		gauge(&w, "rollcall_cluster_nodes", "Live nodes in the cluster.", "gauge", cs.nodes);
		gauge(&w, "rollcall_etcd_requests_total", "Requests sent to etcd.", "counter", cs.etcd_requests);
		gauge(&w, "rollcall_etcd_failures_total", "etcd requests that failed (no answer or 5xx).", "counter",
		      cs.etcd_failures);
		jw_lit(&w, "# HELP rollcall_etcd_round_trip_seconds Moving average of etcd round trips.\n"
			   "# TYPE rollcall_etcd_round_trip_seconds gauge\nrollcall_etcd_round_trip_seconds ");
		jw_raw(&w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.6f\n", cs.etcd_rtt_ms / 1000));
		jw_lit(&w, "# HELP rollcall_watch_lag_seconds Time since the etcd watch last brought news (progress included).\n"
			   "# TYPE rollcall_watch_lag_seconds gauge\nrollcall_watch_lag_seconds ");
		jw_raw(&w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.3f\n", (double)cs.watch_lag_ms / 1000));
		gauge(&w, "rollcall_forwards_total", "Requests forwarded to another node.", "counter", cs.forwards);
		gauge(&w, "rollcall_forward_failures_total", "Forwards whose node could not be reached.", "counter",
		      cs.forward_failures);
		gauge(&w, "rollcall_messages_forwarded_total",
		      "Messages sent to other nodes' sessions (a broadcast: one per node).", "counter",
		      cs.messages_forwarded);
		peer_metrics(&w, &cs);
	}
	gauge(&w, "rollcall_calls_pending", "Calls waiting for their reply.", "gauge", s.calls_pending);
	jw_lit(&w, "# HELP rollcall_calls_total Calls ended, by how.\n# TYPE rollcall_calls_total counter\n");
	jw_lit(&w, "rollcall_calls_total{result=\"answered\"} ");
	jw_u64(&w, s.calls_answered);
	jw_lit(&w, "\nrollcall_calls_total{result=\"timed_out\"} ");
	jw_u64(&w, s.calls_timed_out);
	jw_lit(&w, "\nrollcall_calls_total{result=\"receiver_gone\"} ");
	jw_u64(&w, s.calls_receiver_gone);
	jw_lit(&w, "\nrollcall_calls_total{result=\"caller_gone\"} ");
	jw_u64(&w, s.calls_caller_gone);
	jw_lit(&w, "\n");
	gauge(&w, "rollcall_expirations_total", "Sessions expired.", "counter", s.expirations);
	gauge(&w, "rollcall_events_total", "Registry changes (events) since start.", "counter", s.index);
	jw_lit(&w, "# HELP rollcall_requests_total Answers by route and status class.\n"
		   "# TYPE rollcall_requests_total counter\n");
	for (r = 0; r <= nroutes; r++) {
		size_t slot = r < nroutes ? r : METRICS_ROUTES - 1;
		for (c = 0; c < 5; c++) {
			if (!m->requests[slot][c])
				continue;
			jw_lit(&w, "rollcall_requests_total{route=\"");
			jw_lit(&w, router_route_name(r));
			jw_lit(&w, "\",code=\"");
			jw_lit(&w, classes[c]);
			jw_lit(&w, "\"} ");
			jw_u64(&w, m->requests[slot][c]);
			jw_lit(&w, "\n");
		}
	}
	jw_lit(&w, "# HELP rollcall_request_duration_seconds Time to answer requests that did not wait.\n"
		   "# TYPE rollcall_request_duration_seconds histogram\n");
	for (c = 0; c < METRICS_BUCKETS; c++) {
		cum += m->latency[c];
		jw_lit(&w, "rollcall_request_duration_seconds_bucket{le=\"");
		jw_double(&w, metrics_bounds[c]);
		jw_lit(&w, "\"} ");
		jw_u64(&w, cum);
		jw_lit(&w, "\n");
	}
	jw_lit(&w, "rollcall_request_duration_seconds_sum ");
	jw_double(&w, m->latency_sum);
	jw_lit(&w, "\nrollcall_request_duration_seconds_count ");
	jw_u64(&w, m->latency_count);
	jw_lit(&w, "\n");
	reply_jw(rep, 200, &w);
	rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void num(struct jw *w, const char *name, uint64_t v, int comma)
{
	jw_lit(w, comma ? ",\"" : "\"");
	jw_lit(w, name);
	jw_lit(w, "\":");
	jw_u64(w, v);
}

void ops_stats(struct http_request *req, struct http_reply *rep)
{
	const struct metrics *m = metrics_of(req);
	struct store_stats s;
	struct jw w = { 0 };
	uint64_t total[5] = { 0 }, cum = 0;
	size_t r, c, nroutes = router_route_count();
	int first = 1;

	store_get_stats(req->app->store, &s);
	jw_lit(&w, "{");
	num(&w, "sessions", s.sessions, 0);
	num(&w, "names", s.names, 1);
	num(&w, "props", s.props, 1);
	num(&w, "group_members", s.group_members, 1);
	num(&w, "queued_messages", s.queued, 1);
	jw_lit(&w, ",\"pending\":{");
	num(&w, "awaits", s.awaits, 0);
	num(&w, "receives", s.receives, 1);
	num(&w, "event_watchers", s.watchers, 1);
	jw_lit(&w, "}");
	num(&w, "streams_open", m->streams_open, 1);
	jw_lit(&w, ",\"parked\":{");
	num(&w, "awaits", s.awaits, 0);
	num(&w, "receives", s.receives, 1);
	num(&w, "calls", s.calls_pending, 1);
	num(&w, "event_polls", s.watchers > m->streams_parked ? s.watchers - m->streams_parked : 0, 1);
	num(&w, "streams", m->streams_parked, 1);
	num(&w, "all", m->parked, 1);
	jw_lit(&w, "}");
	jw_lit(&w, ",\"calls\":{");
	num(&w, "pending", s.calls_pending, 0);
	num(&w, "answered", s.calls_answered, 1);
	num(&w, "timed_out", s.calls_timed_out, 1);
	num(&w, "receiver_gone", s.calls_receiver_gone, 1);
	num(&w, "caller_gone", s.calls_caller_gone, 1);
	jw_lit(&w, "}");
	num(&w, "expirations", s.expirations, 1);
	num(&w, "events", s.index, 1);
	num(&w, "events_kept", s.events_kept, 1);
	if (req->app->cluster) {
		struct cluster_stats cs;
		char tmp[64];
		cluster_get_stats(req->app->cluster, req->now, &cs);
		jw_lit(&w, ",\"cluster\":{\"state\":\"");
		jw_lit(&w, cs.state);
		jw_lit(&w, "\"");
		num(&w, "nodes", cs.nodes, 1);
		num(&w, "etcd_requests", cs.etcd_requests, 1);
		num(&w, "etcd_failures", cs.etcd_failures, 1);
		jw_lit(&w, ",\"etcd_round_trip_ms\":");
		jw_raw(&w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.3f", cs.etcd_rtt_ms));
		num(&w, "watch_lag_ms", cs.watch_lag_ms, 1);
		num(&w, "forwards", cs.forwards, 1);
		num(&w, "forward_failures", cs.forward_failures, 1);
		num(&w, "messages_forwarded", cs.messages_forwarded, 1);
		jw_lit(&w, ",\"peers\":{");
		for (size_t i = 0; i < cs.npeers; i++) {
			const struct mail_peer_stats *p = &cs.peers[i];
			jw_lit(&w, i ? "," : "");
			jw_str(&w, p->peer, strlen(p->peer));
			jw_lit(&w, ":{\"forwards\":");
			jw_u64(&w, p->batches);
			num(&w, "failed", p->failed, 1);
			num(&w, "items", p->items, 1);
			num(&w, "queued", p->queued, 1);
			jw_lit(&w, ",\"latency_ms_avg\":");
			jw_raw(&w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.3f",
							  p->latency_count ? (double)p->latency_us_sum / p->latency_count / 1000
									   : 0.0));
			jw_lit(&w, ",\"latency_ms_max\":");
			jw_raw(&w, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%.3f", (double)p->latency_us_max / 1000));
			jw_lit(&w, "}");
		}
		jw_lit(&w, "}}");
	}
	jw_lit(&w, ",\"requests\":{\"by_route\":{");
	for (r = 0; r <= nroutes; r++) {
		size_t slot = r < nroutes ? r : METRICS_ROUTES - 1;
		int any = 0;
		for (c = 0; c < 5; c++)
			any |= m->requests[slot][c] != 0;
		if (!any)
			continue;
		jw_lit(&w, first ? "\"" : ",\"");
		first = 0;
		jw_lit(&w, router_route_name(r));
		jw_lit(&w, "\":{");
		for (c = 0; c < 5; c++) {
			num(&w, classes[c], m->requests[slot][c], c > 0);
			total[c] += m->requests[slot][c];
		}
		jw_lit(&w, "}");
	}
	jw_lit(&w, "}");
	for (c = 0; c < 5; c++)
		num(&w, classes[c], total[c], 1);
	jw_lit(&w, "},\"latency_seconds\":{");
	num(&w, "count", m->latency_count, 0);
	jw_lit(&w, ",\"sum\":");
	jw_double(&w, m->latency_sum);
	jw_lit(&w, ",\"buckets\":[");
	for (c = 0; c < METRICS_BUCKETS; c++) {
		cum += m->latency[c];
		jw_lit(&w, c ? ",{\"le\":" : "{\"le\":");
		if (c == METRICS_BUCKETS - 1)
			jw_lit(&w, "null");
		else
			jw_double(&w, metrics_bounds[c]);
		num(&w, "count", cum, 1);
		jw_lit(&w, "}");
	}
	jw_lit(&w, "]}}");
	reply_jw(rep, 200, &w);
}

/* cluster: one registry across several nodes, on etcd (api.md, Cluster).
 * The node keeps a copy of the registry in its store, fed by one etcd
 * watch; writes go to etcd as transactions and are answered once the watch
 * has brought them back; requests for a session homed on another node are
 * forwarded there. Everything runs on the server's loop (httpc). What the
 * node believes of the cluster is one state, changed in one place:
 *   joining  -> live      its lease, its node key and its first copy are in
 *   live     -> degraded  etcd refused or missed a renewal, a write or the watch
 *   degraded -> live      a renewal and the watch work again
 *   any      -> fenced    its standing ran out (--node-ttl unrenewed) or
 *                         another node took its name: its sessions end
 *   fenced   -> joining   etcd answers again: a new lease and node key */
#ifndef ROLLCALL_CLUSTER_H
#define ROLLCALL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../server/request.h"
#include "mail.h"

#define CLUSTER_STATS_PEERS 64

struct cluster;

enum cluster_state { CLUSTER_JOINING, CLUSTER_LIVE, CLUSTER_DEGRADED, CLUSTER_FENCED };

/* Starts joining: the node's sockets go to epfd tagged with tag. NULL when
 * out of memory or when a flag cannot be used. */
struct cluster *cluster_new(struct app *app, int epfd, int tag);
void cluster_free(struct cluster *cl);

/* The loop: events for sockets tagged ours, the next deadline (ms from
 * now, -1 none), and what is due. */
void cluster_on_event(struct cluster *cl, void *ptr, uint32_t events);
long cluster_timeout(struct cluster *cl, uint64_t now);
void cluster_tick(struct cluster *cl, uint64_t now);

/* SIGTERM: the node leaves (its sessions end as expired, its lease is
 * revoked). True once that is done or cannot be. */
bool cluster_leave(struct cluster *cl, uint64_t now);

enum cluster_state cluster_state(const struct cluster *cl);
const char *cluster_state_name(enum cluster_state s);
const char *cluster_node(const struct cluster *cl);

/* Another process started under this node's name: this one is dropped
 * for good (its sessions have ended) and should exit. */
bool cluster_taken_over(const struct cluster *cl);

/* The router, before a /v1 handler: answers 503 while the node has no copy,
 * waits for ?min_index=, catches up with etcd before a token or session id
 * is called unknown, and forwards requests that belong to a session homed
 * elsewhere. True: run the handler here. False: rep is the answer, or
 * rep->suspend is set. session_path: the route's {id} is a session id. */
bool cluster_route(struct http_request *req, struct http_reply *rep, bool session_path);

/* Writes, from the handlers: each starts the write and suspends the
 * request (rep->suspend), or answers at once (an error). When the request
 * is resumed, the handler calls cluster_answer() first thing (req->cl_op is
 * set then). The caller's session is req->caller; inputs are checked. */
void cluster_answer(struct http_request *req, struct http_reply *rep);
void cluster_session_create(struct http_request *req, struct http_reply *rep, unsigned ttl, const char *label,
			    size_t label_len);
void cluster_session_delete(struct http_request *req, struct http_reply *rep, struct store_session *s);
/* A heartbeat that changes s's ttl: etcd's record first, then the lease. */
void cluster_session_ttl(struct http_request *req, struct http_reply *rep, struct store_session *s, unsigned ttl);
void cluster_name_put(struct http_request *req, struct http_reply *rep, const char *key, size_t klen,
		      const char *value, size_t vlen);
void cluster_name_delete(struct http_request *req, struct http_reply *rep, const char *key, size_t klen);
/* A property (group false) or a group membership (group true). */
void cluster_entry_put(struct http_request *req, struct http_reply *rep, bool group, const char *key, size_t klen,
		       const char *value, size_t vlen);
void cluster_entry_delete(struct http_request *req, struct http_reply *rep, bool group, const char *key,
			  size_t klen);

/* The request ends however it ends: what the cluster held for it goes. */
void cluster_request_done(struct http_request *req);

/* A send whose one receiver, to, is homed on another node: p goes there
 * in the next batch of messages for that node (mail.h), and the answer is
 * 202 {"delivered": 1} once the home has it, 429 mailbox_full, 404
 * session_not_found (it had ended), or 503 node_unreachable (nothing
 * delivered; a round-robin pick of rr_group, when not NULL, gets its turn
 * back). Sets rep->suspend, or answers an error. */
void cluster_send_to(struct http_request *req, struct http_reply *rep, const struct store_session *to,
		     const struct store_payload *p, const char *rr_group, size_t rr_glen);
/* A call c (parked by store_call_park on req->waiter) whose receiver, to,
 * is homed on another node: p (with reply_to c's id) goes there. The call
 * waits here; the reply comes back by its id. If the message cannot be
 * delivered, or the connection to the home breaks while the call waits, c
 * fails (its waiter wakes GONE) and cluster_call_failed() answers why.
 * False: answered with an error, nothing sent (cancel the waiter). */
bool cluster_call_to(struct http_request *req, struct http_reply *rep, const struct store_session *to,
		     const struct store_payload *p, struct store_call *c, const char *rr_group, size_t rr_glen);
/* A woken call whose message could not be delivered, or whose receiver's
 * home was lost: answers rep and returns true. */
bool cluster_call_failed(struct http_request *req, struct http_reply *rep);
/* POST /v1/replies/{id} for a call held by another node (its id's tag):
 * the reply (by req->caller, body) goes there, and its answer is relayed.
 * False: the call is this node's (or no live node's): the store answers. */
bool cluster_reply_elsewhere(struct http_request *req, struct http_reply *rep, const char *body, size_t blen);
/* A broadcast's rest: the n receivers homed on other nodes get p through
 * one forward per node; the answer (202 {"delivered", "full",
 * "unreachable"}) counts the local_delivered and lists full_ids (quoted
 * ids, comma-separated, len bytes) delivered here too. Each node's share
 * is one item in its next batch of messages. Sets rep->suspend,
 * or answers. */
void cluster_fanout(struct http_request *req, struct http_reply *rep, struct store_session *const *to, size_t n,
		    const struct store_payload *p, size_t local_delivered, const char *full_ids, size_t len);

/* True when req came from another node of this cluster (its secret). */
bool cluster_from_node(const struct http_request *req);

/* The tag in the first 8 hex digits of the call ids node makes. */
uint32_t cluster_call_tag(const char *node);

/* The store's lease_due (ctx: the struct app): a session homed here ran
 * out of lease; etcd is told to end it. */
void cluster_lease_due(void *app, struct store_session *s);

/* GET /v1/nodes. */
void cluster_nodes(struct http_request *req, struct http_reply *rep);

/* The live node called name: its advertised URL, NULL when none. */
const char *cluster_node_url(const struct cluster *cl, const char *name);

/* For the unit tests: one line of the etcd watch applied to the copy (as
 * the watch does; marks the copy loaded), and the transaction that ends
 * session s (deleted: by DELETE, else expired; *leftover: its names that
 * did not fit and follow in clean-up batches). The body is malloc'd. */
bool cluster_apply_watch_line(struct cluster *cl, const char *line, size_t len);
char *cluster_end_txn(struct cluster *cl, const struct store_session *s, bool deleted, size_t *len,
		      size_t *leftover);
/* ... and a range answer of the whole prefix brought into the copy, as
 * after the watch lost its place (compaction). False on a bad answer. */
bool cluster_reconcile_range(struct cluster *cl, const char *body, size_t len);

struct cluster_stats {
	const char *state;
	size_t nodes;
	uint64_t etcd_requests, etcd_failures;
	double etcd_rtt_ms;      /* a moving average of etcd round trips */
	uint64_t watch_lag_ms;   /* since the watch last brought something (progress included) */
	uint64_t forwards, forward_failures;
	uint64_t messages_forwarded; /* message items sent to other nodes (a broadcast: one per node) */
	/* by peer node: batches of messages and forwarded requests sent, failed,
	 * items in the batches, round trips */
	size_t npeers;
	struct mail_peer_stats peers[CLUSTER_STATS_PEERS];
};
void cluster_get_stats(const struct cluster *cl, uint64_t now, struct cluster_stats *out);

#endif

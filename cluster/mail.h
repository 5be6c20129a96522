/* mail: the forwarder of messages between nodes. Every message, call or
 * reply that must reach a session homed on another node is an item (a JSON
 * object) for that node; the items waiting for one node at the same moment
 * travel together in one POST /internal/deliver (a JSON array of items,
 * answered 200 with an array of results, one per item, in order; at most
 * MAIL_MAX_ITEMS items), on a kept-alive
 * connection of httpc. One batch per node is out at a time, so items reach
 * a node in the order they were posted, and a crowd shares round trips
 * (Phoenix PubSub's per-node fan-out; etcd's batching of proposals).
 *
 * The loop calls mail_flush() before it sleeps: what was posted during the
 * turn goes then. A batch that gets no complete, well-formed answer (the
 * peer closed the connection mid-batch, refused it, timed out) fails all of
 * its items: at least once, as on one node, since the peer may have taken
 * them before it failed to answer. And when a kept-alive connection turns
 * out to be dead before any of the answer came, libcurl sends the batch
 * again on a new one: a peer that took it and died answering may get it
 * twice (a message delivered twice; a second reply is call_not_found). */
#ifndef ROLLCALL_MAIL_H
#define ROLLCALL_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define MAIL_MAX_ITEMS 1024
#define MAIL_MAX_QUEUED 100000 /* items waiting for one peer; more are refused */

struct httpc;
struct mail;
struct mail_item;

/* Called once per item, unless it was forgotten first: result is the
 * peer's result object for it, or NULL when the peer could not be reached
 * or did not say (timed_out: the batch's deadline passed). After the call
 * the item is gone: its handle must not be used again. May post and
 * forget other items. */
typedef void (*mail_done_fn)(void *ctx, const cJSON *result, bool timed_out);

/* The forwarder's counts for one peer node. */
struct mail_peer_stats {
	const char *peer;
	uint64_t batches;        /* batches sent */
	uint64_t failed;         /* batches that got no good answer */
	uint64_t items;          /* items sent (messages, calls, replies) */
	uint64_t latency_us_sum; /* over answered batches */
	uint64_t latency_count;
	uint64_t latency_us_max;
	size_t queued;           /* items waiting now */
};

/* Told once per batch that got no answer at all (the connection to peer
 * broke or was refused: not a timeout, not an error status), before its
 * items' done calls. */
typedef void (*mail_broken_fn)(void *ctx, const char *peer);

/* A forwarder on hc. secret: the cluster's forward secret, a string that
 * the caller keeps (it may be filled in later; sent as X-Rollcall-Forward);
 * auth_token: sent as a bearer token, or NULL; max_bytes: the largest batch
 * body (an item larger still goes alone); timeout_ms: a batch's deadline;
 * now_us: a monotonic clock in microseconds; broken: may be NULL. */
struct mail *mail_new(struct httpc *hc, const char *secret, const char *auth_token, size_t max_bytes,
		      unsigned timeout_ms, uint64_t (*now_us)(void), mail_broken_fn broken, void *ctx);

/* Frees it all: batches out are cancelled, no callback is called. */
void mail_free(struct mail *m);

/* Queues item (len bytes of a JSON object, copied) for the node peer, whose
 * URL is url (http://host:port). NULL when out of memory or when
 * MAIL_MAX_QUEUED items already wait for peer (done is not called then). */
struct mail_item *mail_post(struct mail *m, const char *peer, const char *url, const char *item, size_t len,
			    mail_done_fn done, void *ctx);

/* The item's owner is gone: done will not be called. A queued item does
 * not go; one already sent is answered to no one. */
void mail_forget(struct mail *m, struct mail_item *it);

/* Sends what is queued for every peer with no batch out. */
void mail_flush(struct mail *m);

/* True when something is queued that mail_flush() would send. */
bool mail_pending(const struct mail *m);

/* The node peer is gone: its queued items and its batch out fail now. */
void mail_peer_lost(struct mail *m, const char *peer);

/* Counts a request sent to peer another way (a forward): failed or not,
 * and its round trip. */
void mail_note(struct mail *m, const char *peer, bool failed, uint64_t latency_us);

/* The counts of up to max peers, in the order first seen; how many. */
size_t mail_stats(const struct mail *m, struct mail_peer_stats *out, size_t max);

#endif

/* cluster: see cluster.h. Keys in etcd, under the prefix P:
 *   P n/<node>        {"url","since"}, on the node's lease: the node is live while it exists;
 *                     its create_revision is the node's incarnation
 *   P s/<id>          {"node","nrev","token","ttl","label"}: a session, homed on incarnation nrev
 *   P k/<key>         {"s":<id>,"v":<value>}: a name
 *   P p/<id>/<key>    <value>: a property entry;  P g/<id>/<group>  <value>: a membership
 *   P e/<node>        <id>: written with an explicit session delete (so readers say deleted, not expired)
 *   P secret          the shared secret nodes forward with
 * An entry is visible only while its session's record is, and a session only
 * while its node's key (of the same incarnation) is: deleting one record is
 * the single step that ends all a session holds, on every node at once. */
#define _GNU_SOURCE
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../handlers/handlers.h"
#include "../server/jw.h"
#include "../server/reply.h"
#include "../server/uri.h"
#include "mail.h"
#include "etcd.h"
#include "httpc.h"

#define WRITE_TIMEOUT_MS 8000    /* above etcd's 7 s request timeout, under api.md's 10 s */
#define READ_TIMEOUT_MS 5000
#define APPLY_WAIT_MS 10000      /* a write's answer waits this long for the copy at most */
#define RETRY_MS 500             /* joining, the watch: again after this */
#define MAX_TRIES 6              /* a write's compare-and-retry rounds */
#define CLEAN_BATCH 60           /* names deleted per clean-up transaction */
#define BATCH_BYTES (1000 * 1000) /* a request's body at most: etcd takes 1.5 MiB (decoded) */

uint64_t daemon_now_ms(void);
void daemon_random(void *ctx, void *buf, size_t len);

struct node {
	char name[65];
	char *url;
	char since[32];
	int64_t crev; /* the incarnation: its key's create_revision */
	size_t sessions;
	struct node *next;
};

/* A session's names, values kept as written, to be deleted once its node is gone. */
struct clean_item {
	char *key; /* full etcd key */
	size_t klen;
	char *value; /* the value to compare with, or NULL: delete without compare */
	size_t vlen;
	bool range;  /* every key under key (which ends in '/') */
	bool solo;   /* in a transaction of its own */
	struct clean_item *next;
};

struct batch;
struct ecall;

struct cluster {
	struct app *app;
	struct store *st;
	const struct config *cfg;
	struct httpc *hc;
	struct mail *mail;   /* messages, calls and replies for other nodes, in batches */
	char **urls;
	size_t nurls, cur;
	const char *prefix;
	size_t plen;
	enum cluster_state state;
	bool loaded;         /* the first copy is in */
	bool leaving;
	bool taken_over;     /* another process took our name: never join again */
	bool applying;       /* a revision is being applied to the store */
	bool renew_failing;  /* the latest renewal failed: etcd is away or leaderless */
	bool resyncing;      /* reading everything again after the watch lost its place */
	int64_t lease;       /* the node's lease, 0 while it has none */
	char nonce[17];      /* this process's, in its node key: a key of our name with it is ours */
	int64_t my_crev;     /* this incarnation's node key create_revision */
	struct node *nodes;  /* live nodes, by name */
	struct node *me;     /* in nodes while live; else me_shadow */
	struct node me_shadow;
	char secret[33];
	uint64_t last_renewed; /* when the latest successful renewal (or the grant) was sent */
	uint64_t join_sent;    /* when the lease grant of the current join was sent */
	uint64_t next_renew, next_join, next_watch, next_clean, next_join_log, next_check;
	struct httpc_req *join_req, *renew_req, *watch_req, *clean_req, *leave_req, *check_req;
	uint64_t last_watch_ms;
	struct clean_item *clean_head, *clean_tail, *clean_busy;
	struct batch *open_batch; /* writes waiting to share a transaction */
	struct ecall *ecalls;     /* etcd requests in flight */
	struct op *fwd;           /* forwards waiting on other nodes */
	struct op *expiring;      /* ends of our sessions etcd has not taken yet (fnext links) */
	size_t batches_out;
	uint64_t batch_last_sent; /* when the latest batch went */
	uint64_t etcd_requests, etcd_failures, forwards, forward_failures, messages_forwarded;
	double rtt_ms;
};

/* --- small helpers --- */

static const char *state_names[] = { "joining", "live", "degraded", "fenced" };

const char *cluster_state_name(enum cluster_state s) { return state_names[s]; }
enum cluster_state cluster_state(const struct cluster *cl) { return cl->state; }
const char *cluster_node(const struct cluster *cl) { return cl->cfg->node; }
bool cluster_taken_over(const struct cluster *cl) { return cl->taken_over; }

static void set_state(struct cluster *cl, enum cluster_state s, const char *why)
{
	if (cl->state == s)
		return;
	fprintf(stderr, "rollcall: cluster: %s -> %s: %s\n", state_names[cl->state], state_names[s], why);
	fflush(stderr);
	cl->state = s;
}

/* The full key P<kind>/<rest>; malloc'd into *out, length returned (0: no memory). */
static size_t key_of(const struct cluster *cl, char kind, const char *a, size_t alen, const char *b, size_t blen,
		     char **out)
{
	size_t n = cl->plen + 2 + alen + (b ? 1 + blen : 0);
	char *k = malloc(n + 1), *p;

	*out = k;
	if (!k)
		return 0;
	memcpy(k, cl->prefix, cl->plen);
	p = k + cl->plen;
	*p++ = kind;
	*p++ = '/';
	memcpy(p, a, alen);
	p += alen;
	if (b) {
		*p++ = '/';
		memcpy(p, b, blen);
		p += blen;
	}
	*p = '\0';
	return n;
}

static struct node *node_find(struct cluster *cl, const char *name, size_t n)
{
	struct node *nd;

	for (nd = cl->nodes; nd; nd = nd->next)
		if (strlen(nd->name) == n && !memcmp(nd->name, name, n))
			return nd;
	return NULL;
}

const char *cluster_node_url(const struct cluster *cl, const char *name)
{
	struct node *nd = node_find((struct cluster *)cl, name, strlen(name));

	return nd ? nd->url : NULL;
}

uint32_t cluster_call_tag(const char *node)
{
	uint32_t h = 2166136261u; /* FNV-1a: the same on every node */

	for (; *node; node++)
		h = (h ^ (unsigned char)*node) * 16777619u;
	return h ? h : 1;
}

/* The live node whose call tag begins call id, or NULL. */
static struct node *node_of_call(struct cluster *cl, const char *id, size_t n)
{
	struct node *nd;
	char hex[9];

	if (n != STORE_CALL_ID_LEN)
		return NULL;
	for (nd = cl->nodes; nd; nd = nd->next) {
		snprintf(hex, sizeof(hex), "%08x", cluster_call_tag(nd->name));
		if (!memcmp(hex, id, 8))
			return nd;
	}
	return NULL;
}

/* The lowest-named live node, the one being dropped aside, cleans up
 * after lost ones. */
static bool is_cleaner(const struct cluster *cl, const char *dropped)
{
	const struct node *nd = cl->nodes;

	while (nd && dropped && !strcmp(nd->name, dropped))
		nd = nd->next;
	return nd && nd == cl->me;
}

/* --- talking to etcd --- */

struct ecall {
	struct cluster *cl;
	uint64_t t0;
	void (*done)(void *ctx, const struct httpc_result *res);
	void *ctx;
	struct httpc_req **slot; /* cleared when it ends */
	struct httpc_req *req;
	struct ecall *prev, *next; /* the cluster's calls in flight */
};

static void ecall_unlink(struct ecall *ec)
{
	if (ec->prev)
		ec->prev->next = ec->next;
	else
		ec->cl->ecalls = ec->next;
	if (ec->next)
		ec->next->prev = ec->prev;
}

static void ecall_done(void *ctx, const struct httpc_result *res)
{
	struct ecall *ec = ctx;
	struct cluster *cl = ec->cl;
	double ms = (double)(daemon_now_ms() - ec->t0);

	cl->rtt_ms = cl->rtt_ms ? cl->rtt_ms * 0.9 + ms * 0.1 : ms;
	ecall_unlink(ec);
	if (ec->slot)
		*ec->slot = NULL;
	if (res->status == 0 || res->status >= 500) {
		cl->etcd_failures++;
		cl->cur = (cl->cur + 1) % cl->nurls; /* try another member next time */
	}
	ec->done(ec->ctx, res);
	free(ec);
}

/* POSTs body to the current etcd member's path. write: fail fast without a
 * leader (Grpc-Metadata-hasleader). *slot (may be NULL) holds the request
 * while it runs. False when out of memory (nothing started). */
static bool etcd_post(struct cluster *cl, const char *path, const char *body, size_t len, bool write,
		      unsigned timeout_ms, void (*done)(void *, const struct httpc_result *), void *ctx,
		      struct httpc_req **slot)
{
	static const char *const hdr_w[] = { "Content-Type: application/json", "Grpc-Metadata-hasleader: true", NULL };
	static const char *const hdr_r[] = { "Content-Type: application/json", NULL };
	struct ecall *ec = calloc(1, sizeof(*ec));
	struct httpc_opts o = { 0 };
	char url[512];
	struct httpc_req *r;

	if (!ec)
		return false;
	snprintf(url, sizeof(url), "%s%s", cl->urls[cl->cur], path);
	ec->cl = cl;
	ec->t0 = daemon_now_ms();
	ec->done = done;
	ec->ctx = ctx;
	ec->slot = slot;
	o.method = "POST";
	o.url = url;
	o.body = body;
	o.body_len = len;
	o.headers = write ? hdr_w : hdr_r;
	o.timeout_ms = timeout_ms;
	o.on_done = ecall_done;
	o.ctx = ec;
	cl->etcd_requests++;
	r = httpc_start(cl->hc, &o);
	if (!r) {
		free(ec);
		return false;
	}
	ec->req = r;
	ec->next = cl->ecalls;
	if (cl->ecalls)
		cl->ecalls->prev = ec;
	cl->ecalls = ec;
	if (slot)
		*slot = r;
	return true;
}

/* Ends the etcd call r without its callback (whose context then belongs to
 * the caller). False when r is not an etcd call. */
static bool etcd_cancel(struct cluster *cl, struct httpc_req *r)
{
	struct ecall *ec;

	for (ec = cl->ecalls; ec; ec = ec->next)
		if (ec->req == r)
			break;
	if (!ec)
		return false;
	ecall_unlink(ec);
	httpc_cancel(cl->hc, r);
	free(ec);
	return true;
}

/* A txn answer: ETCD_OK with *out filled (free it), else a failure. */
static enum etcd_rc txn_result(const struct httpc_result *res, struct etcd_txn_result *out)
{
	struct etcd_error err;

	memset(out, 0, sizeof(*out));
	if (res->status != 200)
		return ETCD_E_ERROR;
	return etcd_parse_txn(res->body, res->body_len, out, &err);
}

/* --- the copy: applying what etcd says --- */

static void end_node_sessions(struct cluster *cl, const char *home, bool queue_clean);
static void fence(struct cluster *cl, const char *why);
static void forwards_fail(struct cluster *cl, const char *home);
struct op;
static void forward_unlink(struct op *op);
static void expire_retry(struct cluster *cl, uint64_t now);
static void batch_flush(struct cluster *cl);
static void expiring_free(struct cluster *cl);

/* A session record's fields. */
struct srec {
	char node[65];
	int64_t nrev;
	char token[STORE_TOKEN_LEN + 1];
	unsigned ttl;
	const char *label;
	size_t llen;
	cJSON *root;
};

static bool parse_srec(const char *v, size_t n, struct srec *r)
{
	const cJSON *node, *nrev, *tok, *ttl, *label;

	memset(r, 0, sizeof(*r));
	r->root = cJSON_ParseWithLength(v, n);
	if (!r->root)
		return false;
	node = cJSON_GetObjectItemCaseSensitive(r->root, "node");
	nrev = cJSON_GetObjectItemCaseSensitive(r->root, "nrev");
	tok = cJSON_GetObjectItemCaseSensitive(r->root, "token");
	ttl = cJSON_GetObjectItemCaseSensitive(r->root, "ttl");
	label = cJSON_GetObjectItemCaseSensitive(r->root, "label");
	if (!cJSON_IsString(node) || strlen(node->valuestring) > 64 || !cJSON_IsString(nrev) ||
	    !etcd_parse_int64(nrev->valuestring, strlen(nrev->valuestring), &r->nrev) || !cJSON_IsString(tok) ||
	    strlen(tok->valuestring) != STORE_TOKEN_LEN || !cJSON_IsNumber(ttl) || ttl->valuedouble < 1 ||
	    ttl->valuedouble > 1e9) {
		cJSON_Delete(r->root);
		r->root = NULL;
		return false;
	}
	strcpy(r->node, node->valuestring);
	strcpy(r->token, tok->valuestring);
	r->ttl = (unsigned)ttl->valuedouble;
	if (cJSON_IsString(label)) {
		r->label = label->valuestring;
		r->llen = strlen(label->valuestring);
	}
	return true;
}

/* A name's value {"s":<id>,"v":<value>}: the id and the value's text. */
static bool parse_name(const char *v, size_t n, char *sid, char **val, size_t *vlen)
{
	static const char head[] = "{\"s\":\"", mid[] = "\",\"v\":";
	const size_t hl = sizeof(head) - 1, ml = sizeof(mid) - 1;
	const char *why, *x;
	size_t i, xl;

	/* Exactly as name_value() wrote it: the value's bytes are kept as they
	 * are (a parse and print would change 1.0 or "\u00e9", and then no
	 * compare on the value would find it again). */
	*val = NULL;
	if (n < hl + STORE_ID_LEN + ml + 2 || memcmp(v, head, hl) || memcmp(v + hl + STORE_ID_LEN, mid, ml) ||
	    v[n - 1] != '}')
		return false;
	for (i = 0; i < STORE_ID_LEN; i++) {
		char c = v[hl + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	x = v + hl + STORE_ID_LEN + ml;
	xl = n - 1 - (size_t)(x - v);
	if (!json_check(x, xl, JSON_MAX_DEPTH, &why))
		return false;
	memcpy(sid, v + hl, STORE_ID_LEN);
	sid[STORE_ID_LEN] = '\0';
	*val = store_dup(x, xl);
	*vlen = xl;
	return *val != NULL;
}

/* {"s":"<id>","v":<value>}: written the same way by every node, so a
 * value compare can find it again. */
static char *name_value(const char *sid, const char *v, size_t vlen, size_t *len)
{
	struct jw w = { 0 };

	jw_lit(&w, "{\"s\":\"");
	jw_raw(&w, sid, STORE_ID_LEN);
	jw_lit(&w, "\",\"v\":");
	jw_raw(&w, v, vlen);
	jw_lit(&w, "}");
	return jw_finish(&w, len);
}

/* A node key written by this process (any of its joins): it has our nonce. */
static bool ours(const struct cluster *cl, const struct etcd_kv *kv)
{
	cJSON *root = cJSON_ParseWithLength(kv->value, kv->vlen);
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(root, "nonce");
	bool yes = cJSON_IsString(nonce) && !strcmp(nonce->valuestring, cl->nonce);

	cJSON_Delete(root);
	return yes;
}

static void node_put(struct cluster *cl, const char *name, size_t n, const struct etcd_kv *kv)
{
	struct node *nd = node_find(cl, name, n), **pp;
	cJSON *root;
	const cJSON *url, *since;

	if (n == 0 || n > 64)
		return;
	if (n == strlen(cl->cfg->node) && !memcmp(name, cl->cfg->node, n)) {
		if (!ours(cl, kv)) {
			/* not on our lease: another process took this node's name, and
			 * we are dropped for good */
			cl->taken_over = true;
			fence(cl, "another node started under this node's name");
			return;
		}
		nd = &cl->me_shadow;
		if (!node_find(cl, name, n))
			nd = NULL; /* not listed yet: listed below */
	}
	if (nd && nd->crev != kv->create_revision && nd != &cl->me_shadow) {
		/* the same name, a new incarnation: the earlier one's sessions end */
		fprintf(stderr, "rollcall: cluster: node %s started again: its earlier sessions end\n", nd->name);
		mail_peer_lost(cl->mail, nd->name);
		forwards_fail(cl, nd->name);
		end_node_sessions(cl, nd->name, true);
		nd->sessions = 0;
	}
	root = cJSON_ParseWithLength(kv->value, kv->vlen);
	url = cJSON_GetObjectItemCaseSensitive(root, "url");
	since = cJSON_GetObjectItemCaseSensitive(root, "since");
	if (!cJSON_IsString(url)) {
		cJSON_Delete(root);
		return;
	}
	if (!nd) {
		if (n == strlen(cl->cfg->node) && !memcmp(name, cl->cfg->node, n)) {
			nd = &cl->me_shadow; /* our own key: keep the pointer sessions already use */
		} else {
			nd = calloc(1, sizeof(*nd));
			if (!nd) {
				cJSON_Delete(root);
				return;
			}
			memcpy(nd->name, name, n);
		}
		for (pp = &cl->nodes; *pp && strcmp((*pp)->name, nd->name) < 0; pp = &(*pp)->next)
			;
		nd->next = *pp;
		*pp = nd;
	}
	free(nd->url);
	nd->url = strdup(url->valuestring);
	snprintf(nd->since, sizeof(nd->since), "%s", cJSON_IsString(since) ? since->valuestring : "");
	nd->crev = kv->create_revision;
	cJSON_Delete(root);
}

static void node_delete(struct cluster *cl, const char *name, size_t n)
{
	struct node *nd = node_find(cl, name, n), **pp;

	if (!nd)
		return;
	if (nd != &cl->me_shadow) {
		fprintf(stderr, "rollcall: cluster: node %s lost (%zu sessions end)\n", nd->name, nd->sessions);
		mail_peer_lost(cl->mail, nd->name);
		forwards_fail(cl, nd->name);
	}
	end_node_sessions(cl, nd->name, true);
	for (pp = &cl->nodes; *pp != nd; pp = &(*pp)->next)
		;
	*pp = nd->next;
	nd->next = NULL;
	nd->sessions = 0;
	if (nd == &cl->me_shadow) { /* dropped by the others (or by a process taking our name) */
		if (!cl->leaving)
			fence(cl, "this node's key was deleted in etcd");
		return;
	}
	free(nd->url);
	free(nd);
}

/* A key to delete later, with the value it must still have (or NULL). */
static struct clean_item *clean_new(struct cluster *cl, char kind, const char *a, size_t alen, const char *b,
				    size_t blen, bool range, const char *value, size_t vlen)
{
	struct clean_item *it = calloc(1, sizeof(*it));

	if (!it)
		return NULL;
	it->klen = key_of(cl, kind, a, alen, b, blen, &it->key);
	it->range = range;
	if (value) {
		it->value = store_dup(value, vlen);
		it->vlen = vlen;
	}
	if (!it->klen || (value && !it->value)) {
		free(it->key);
		free(it->value);
		free(it);
		return NULL;
	}
	return it;
}

/* Queues a chain of items for the clean-up. */
static void clean_append(struct cluster *cl, struct clean_item *it)
{
	if (!it)
		return;
	if (cl->clean_tail)
		cl->clean_tail->next = it;
	else
		cl->clean_head = it;
	while (it->next)
		it = it->next;
	cl->clean_tail = it;
	if (!cl->clean_req && !cl->next_clean)
		cl->next_clean = daemon_now_ms();
}

static void clean_push(struct cluster *cl, char kind, const char *a, size_t alen, const char *b, size_t blen,
		       bool range, const char *value, size_t vlen)
{
	clean_append(cl, clean_new(cl, kind, a, alen, b, blen, range, value, vlen));
}

/* Ends every session homed on `home` (inside an open revision): they are
 * gone on every node at this index. The clean-up node queues their keys. */
static void end_node_sessions(struct cluster *cl, const char *home, bool queue_clean)
{
	struct store_session *page[256];
	char after[STORE_ID_LEN + 1] = "";
	bool more = true;

	while (more) {
		size_t n = store_session_page(cl->st, after[0] ? after : NULL, STORE_ID_LEN, 256, page, &more), i;
		if (n)
			memcpy(after, page[n - 1]->id, STORE_ID_LEN + 1);
		for (i = 0; i < n; i++) {
			struct store_session *s = page[i];
			if (!s->home || strcmp(s->home, home))
				continue;
			if (queue_clean && is_cleaner(cl, home)) {
				struct store_name *nm;
				for (nm = s->names_head; nm; nm = nm->s_next) {
					size_t vl;
					char *v = name_value(s->id, nm->value, nm->vlen, &vl);
					if (v)
						clean_push(cl, 'k', nm->key, nm->klen, NULL, 0, false, v, vl);
					free(v);
				}
				clean_push(cl, 'p', s->id, STORE_ID_LEN, "", 0, true, NULL, 0);
				clean_push(cl, 'g', s->id, STORE_ID_LEN, "", 0, true, NULL, 0);
				clean_push(cl, 's', s->id, STORE_ID_LEN, NULL, 0, false, NULL, 0);
			}
			store_session_end(cl->st, s, true);
		}
	}
}

static void session_put(struct cluster *cl, const char *id, size_t n, const struct etcd_kv *kv)
{
	struct store_session *s;
	struct node *nd;
	struct srec r;
	char sid[STORE_ID_LEN + 1];

	if (n != STORE_ID_LEN || !parse_srec(kv->value, kv->vlen, &r))
		return;
	s = store_session_lookup(cl->st, id, n);
	if (s) { /* a record changes only in its ttl (its home set it already) */
		s->ttl = r.ttl;
		cJSON_Delete(r.root);
		return;
	}
	nd = node_find(cl, r.node, strlen(r.node));
	if (nd && nd->crev == r.nrev) {
		memcpy(sid, id, n);
		sid[n] = '\0';
		if (store_session_insert(cl->st, daemon_now_ms(), sid, r.token, r.ttl, r.label, r.llen, nd->name,
					 nd != cl->me, &s) == STORE_CREATED)
			nd->sessions++;
	}
	cJSON_Delete(r.root);
}

static void session_delete(struct cluster *cl, const char *id, size_t n, const char *deleted, size_t dlen)
{
	struct store_session *s = store_session_lookup(cl->st, id, n);
	struct node *nd;

	if (!s)
		return;
	nd = s->home ? node_find(cl, s->home, strlen(s->home)) : NULL;
	if (nd && nd->sessions)
		nd->sessions--;
	store_session_end(cl->st, s, !(deleted && dlen == n && !memcmp(deleted, id, n)));
}

static void name_put(struct cluster *cl, const char *key, size_t klen, const struct etcd_kv *kv)
{
	char sid[STORE_ID_LEN + 1], *val;
	struct store_session *s;
	struct store_name *nm;
	size_t vlen;

	if (!parse_name(kv->value, kv->vlen, sid, &val, &vlen))
		return;
	s = store_session_lookup(cl->st, sid, STORE_ID_LEN);
	nm = store_name_get(cl->st, key, klen);
	if (nm && nm->owner == s && nm->vlen == vlen && !memcmp(nm->value, val, vlen)) {
		free(val); /* as it was (a registry read again) */
		return;
	}
	if (nm && nm->owner != s)
		store_name_delete(cl->st, nm->owner, key, klen); /* taken over from an ended owner */
	if (s)
		store_name_register(cl->st, s, key, klen, val, vlen, &nm);
	free(val);
}

static void name_delete(struct cluster *cl, const char *key, size_t klen)
{
	struct store_name *nm = store_name_get(cl->st, key, klen);

	if (nm)
		store_name_delete(cl->st, nm->owner, key, klen);
}

static void entry_apply(struct cluster *cl, bool group, bool del, const char *rest, size_t n,
			const struct etcd_kv *kv)
{
	struct store_session *s;
	struct store_entry *e;

	if (n < STORE_ID_LEN + 2 || rest[STORE_ID_LEN] != '/')
		return;
	s = store_session_lookup(cl->st, rest, STORE_ID_LEN);
	if (!s)
		return;
	rest += STORE_ID_LEN + 1;
	n -= STORE_ID_LEN + 1;
	if (del) {
		if (group)
			store_group_leave(cl->st, s, rest, n);
		else
			store_prop_remove(cl->st, s, rest, n);
	} else if (kv->vlen && kv->vlen <= cl->cfg->max_body) {
		e = store_entry_get(cl->st, group, s, rest, n);
		if (e && e->vlen == kv->vlen && !memcmp(e->value, kv->value, kv->vlen))
			return; /* as it was (a registry read again) */
		if (group)
			store_group_join(cl->st, s, rest, n, kv->value, kv->vlen, &e);
		else
			store_prop_set(cl->st, s, rest, n, kv->value, kv->vlen, &e);
	}
}

/* One key's change, inside an open revision. deleted: the session an
 * explicit delete in this revision ended (from P e/...), or NULL. */
static void apply_kv(struct cluster *cl, bool del, const struct etcd_kv *kv, const char *deleted, size_t dlen)
{
	const char *k = kv->key, *rest;
	size_t n;

	if (kv->klen < cl->plen + 2 || memcmp(k, cl->prefix, cl->plen) || k[cl->plen + 1] != '/')
		return;
	rest = k + cl->plen + 2;
	n = kv->klen - cl->plen - 2;
	switch (k[cl->plen]) {
	case 'n':
		if (del)
			node_delete(cl, rest, n);
		else
			node_put(cl, rest, n, kv);
		break;
	case 's':
		if (del)
			session_delete(cl, rest, n, deleted, dlen);
		else
			session_put(cl, rest, n, kv);
		break;
	case 'k':
		if (n == 0 || n > STORE_KEY_MAX)
			break;
		if (del)
			name_delete(cl, rest, n);
		else
			name_put(cl, rest, n, kv);
		break;
	case 'p':
	case 'g':
		entry_apply(cl, k[cl->plen] == 'g', del, rest, n, kv);
		break;
	default:
		break;
	}
}

/* Applies events [from, to) of one revision. */
static void apply_revision(struct cluster *cl, const struct etcd_event *ev, size_t count, int64_t rev)
{
	const char *deleted = NULL;
	size_t dlen = 0, i;

	for (i = 0; i < count; i++) /* the explicit delete marker of this revision, if any */
		if (!ev[i].del && ev[i].kv.klen > cl->plen + 2 && ev[i].kv.key[cl->plen] == 'e' &&
		    !memcmp(ev[i].kv.key, cl->prefix, cl->plen)) {
			deleted = ev[i].kv.value;
			dlen = ev[i].kv.vlen;
		}
	store_revision_begin(cl->st, (uint64_t)rev);
	cl->applying = true;
	for (i = 0; i < count; i++)
		apply_kv(cl, ev[i].del, &ev[i].kv, deleted, dlen);
	cl->applying = false;
	store_revision_end(cl->st);
}

/* --- fencing: this node's standing ran out --- */

/* Ends this node's sessions here: at the revision being applied, or at
 * the current index when none is (etcd is away: the others drop them when
 * this node's key expires). */
static void end_own_sessions(struct cluster *cl)
{
	if (cl->applying) {
		end_node_sessions(cl, cl->me_shadow.name, false);
	} else {
		store_revision_begin(cl->st, store_index(cl->st));
		end_node_sessions(cl, cl->me_shadow.name, false);
		store_revision_end(cl->st);
	}
	cl->me_shadow.sessions = 0;
}

static void fence(struct cluster *cl, const char *why)
{
	struct node **pp;

	if (cl->state == CLUSTER_FENCED)
		return;
	set_state(cl, CLUSTER_FENCED, why);
	end_own_sessions(cl);
	for (pp = &cl->nodes; *pp; pp = &(*pp)->next)
		if (*pp == &cl->me_shadow) {
			*pp = cl->me_shadow.next;
			break;
		}
	cl->me_shadow.next = NULL;
	cl->lease = 0;
	cl->my_crev = 0; /* a renewal still out ends on its own: fenced, it changes nothing */
	if (cl->join_req) { /* a join under the lease just lost goes no further */
		etcd_cancel(cl, cl->join_req);
		cl->join_req = NULL;
	}
	cl->next_join = cl->taken_over ? 0 : daemon_now_ms();
}

/* How often the lease is renewed: a renewal costs etcd no write, and the
 * node ends its sessions --node-ttl after the last one that succeeded, so
 * often enough that an etcd outage a little shorter than the ttl loses
 * nothing: every second (a quarter of the ttl at most). */
static uint64_t renew_every(const struct cluster *cl)
{
	uint64_t q = cl->cfg->node_ttl * 1000 / 4;

	return q < 1000 ? q : 1000;
}

/* --- the watch --- */

static void start_watch(struct cluster *cl);
static void resync(struct cluster *cl);
static void reconcile(struct cluster *cl, struct etcd_range *r);

static bool watch_line(void *ctx, const char *line, size_t len)
{
	struct cluster *cl = ctx;
	struct etcd_watch_msg m;
	struct etcd_error err;
	enum etcd_rc rc;
	size_t i, j;

	if (len == 0)
		return true;
	rc = etcd_parse_watch_line(line, len, &m, &err);
	if (rc != ETCD_OK) {
		fprintf(stderr, "rollcall: cluster: watch: %s\n",
			rc == ETCD_E_ERROR ? err.message : "an answer that is not a watch message");
		if (cl->state == CLUSTER_LIVE)
			set_state(cl, CLUSTER_DEGRADED, "the etcd watch failed");
		cl->watch_req = NULL;
		cl->cur = (cl->cur + 1) % cl->nurls; /* another member next time */
		cl->next_watch = daemon_now_ms() + RETRY_MS;
		return false;
	}
	cl->last_watch_ms = daemon_now_ms();
	if (m.canceled) {
		fprintf(stderr, "rollcall: cluster: watch canceled (compacted at %lld): reading the registry again\n",
			(long long)m.compact_revision);
		/* The changes since the copy's index are gone from etcd: read
		 * everything again and bring the copy to it; then watch on. */
		etcd_watch_msg_free(&m);
		cl->watch_req = NULL;
		if (cl->state == CLUSTER_LIVE)
			set_state(cl, CLUSTER_DEGRADED, "the copy is behind what etcd keeps");
		resync(cl);
		return false;
	}
	for (i = 0; i < m.nevents; i = j) {
		int64_t rev = m.events[i].kv.mod_revision;
		for (j = i + 1; j < m.nevents && m.events[j].kv.mod_revision == rev; j++)
			;
		if (rev > (int64_t)store_index(cl->st))
			apply_revision(cl, m.events + i, j - i, rev);
	}
	/* A progress notification: nothing of ours up to its revision. (The
	 * `created` answer's revision is etcd's current one, whose events may
	 * still be on their way: it proves nothing.) */
	if (!m.nevents && !m.created && m.h.revision > (int64_t)store_index(cl->st)) {
		store_revision_begin(cl->st, (uint64_t)m.h.revision);
		store_revision_end(cl->st);
	}
	etcd_watch_msg_free(&m);
	return true;
}

static void watch_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;

	cl->watch_req = NULL;
	fprintf(stderr, "rollcall: cluster: the etcd watch ended (%s)\n", res->error ? res->error : "closed");
	if (cl->state == CLUSTER_LIVE)
		set_state(cl, CLUSTER_DEGRADED, "the etcd watch ended");
	cl->cur = (cl->cur + 1) % cl->nurls; /* another member next time */
	cl->next_watch = daemon_now_ms() + RETRY_MS;
}

static void start_watch(struct cluster *cl)
{
	static const char *const hdr[] = { "Content-Type: application/json", "Grpc-Metadata-hasleader: true", NULL };
	char end[300], url[512];
	struct httpc_opts o = { 0 };
	size_t len, elen = etcd_prefix_end(cl->prefix, cl->plen, end);
	char *body = etcd_watch_body(cl->prefix, cl->plen, end, elen, (int64_t)store_index(cl->st) + 1, &len);

	cl->next_watch = 0;
	if (!body) {
		cl->next_watch = daemon_now_ms() + RETRY_MS;
		return;
	}
	snprintf(url, sizeof(url), "%s/v3/watch", cl->urls[cl->cur]);
	o.method = "POST";
	o.url = url;
	o.body = body;
	o.body_len = len;
	o.headers = hdr;
	o.on_line = watch_line;
	o.on_done = watch_done;
	o.ctx = cl;
	cl->watch_req = httpc_start(cl->hc, &o);
	free(body);
	if (!cl->watch_req)
		cl->next_watch = daemon_now_ms() + RETRY_MS;
	cl->last_watch_ms = daemon_now_ms();
}

/* A watch can go quiet while its connection looks alive. Every few
 * seconds the newest change under the prefix is read: if it is ahead of
 * the copy and the watch has brought nothing for a while, the watch starts
 * again (on another member). */
#define WATCH_CHECK_MS 5000

static void check_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_range r;
	struct etcd_error err;
	uint64_t now = daemon_now_ms();

	if (res->status != 200 || etcd_parse_range(res->body, res->body_len, &r, &err) != ETCD_OK)
		return;
	if (r.nkvs == 1 && (uint64_t)r.kvs[0].mod_revision > store_index(cl->st) && cl->watch_req &&
	    now > cl->last_watch_ms + 3000) {
		fprintf(stderr, "rollcall: cluster: the watch is silent while etcd is at %lld and the copy at %llu: "
			"watching again\n", (long long)r.kvs[0].mod_revision, (unsigned long long)store_index(cl->st));
		httpc_cancel(cl->hc, cl->watch_req);
		cl->watch_req = NULL;
		cl->cur = (cl->cur + 1) % cl->nurls;
		cl->next_watch = now;
		if (cl->state == CLUSTER_LIVE)
			set_state(cl, CLUSTER_DEGRADED, "the etcd watch went silent");
	}
	etcd_range_free(&r);
}

static void watch_check(struct cluster *cl)
{
	struct jw w = { 0 };
	char end[300];
	size_t elen = etcd_prefix_end(cl->prefix, cl->plen, end), len;
	char *body;

	cl->next_check = daemon_now_ms() + WATCH_CHECK_MS;
	jw_lit(&w, "{\"key\":\"");
	etcd_b64_put(&w, cl->prefix, cl->plen);
	jw_lit(&w, "\",\"range_end\":\"");
	etcd_b64_put(&w, end, elen);
	jw_lit(&w, "\",\"limit\":\"1\",\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\",\"keys_only\":true,"
		   "\"serializable\":true}");
	body = jw_finish(&w, &len);
	if (body)
		etcd_post(cl, "/v3/kv/range", body, len, false, READ_TIMEOUT_MS, check_done, cl, &cl->check_req);
	free(body);
}

/* --- joining: lease, node key, secret, first copy, watch --- */

static void join_next(struct cluster *cl);

static void join_failed(struct cluster *cl, const char *what, const struct httpc_result *res)
{
	struct etcd_error err;

	etcd_parse_error(res->body, res->body_len, res->status, &err);
	if (!cl->leaving && daemon_now_ms() >= cl->next_join_log) { /* once, then every 10 s */
		fprintf(stderr, "rollcall: cluster: joining: %s failed: %s\n", what,
			res->status ? err.message : (res->error ? res->error : "no answer"));
		cl->next_join_log = daemon_now_ms() + 10000;
	}
	cl->next_join = daemon_now_ms() + RETRY_MS * 2;
}

static int kv_rank(const struct cluster *cl, const struct etcd_kv *kv)
{
	char c = kv->klen > cl->plen ? kv->key[cl->plen] : 0;

	return c == 'n' ? 0 : c == 's' ? 1 : 2;
}

static const struct cluster *sort_cl;

static int kv_cmp(const void *a, const void *b)
{
	const struct etcd_kv *x = a, *y = b;
	int rx = kv_rank(sort_cl, x), ry = kv_rank(sort_cl, y);

	if (rx != ry)
		return rx - ry;
	return x->create_revision < y->create_revision ? -1 : x->create_revision > y->create_revision;
}

/* The first copy: every key under the prefix at one revision, applied as
 * that revision (nodes, then sessions, then entries in creation order). */
static void load_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_range r;
	struct etcd_error err;
	size_t i;

	if (res->status != 200 || etcd_parse_range(res->body, res->body_len, &r, &err) != ETCD_OK) {
		if (cl->resyncing) { /* the watch tries again, and is told again */
			cl->resyncing = false;
			cl->next_watch = daemon_now_ms() + RETRY_MS;
			return;
		}
		join_failed(cl, "reading the registry", res);
		return;
	}
	sort_cl = cl;
	qsort(r.kvs, r.nkvs, sizeof(r.kvs[0]), kv_cmp);
	if (cl->resyncing) {
		reconcile(cl, &r);
		etcd_range_free(&r);
		cl->resyncing = false;
		if (!cl->watch_req)
			start_watch(cl);
		return;
	}
	if (!cl->loaded || r.h.revision > (int64_t)store_index(cl->st)) {
		store_revision_begin(cl->st, (uint64_t)r.h.revision);
		cl->applying = true;
		for (i = 0; i < r.nkvs; i++) {
			if (cl->loaded && kv_rank(cl, &r.kvs[i]) != 0)
				continue; /* a re-join after fencing: only the node table is read again */
			apply_kv(cl, false, &r.kvs[i], NULL, 0);
		}
		cl->applying = false;
		store_revision_end(cl->st);
	}
	etcd_range_free(&r);
	cl->loaded = true;
	if (!cl->watch_req)
		start_watch(cl);
	set_state(cl, CLUSTER_LIVE, "joined");
}

static void cleared_done(void *ctx, const struct httpc_result *res);

/* Is key[0..n) among the range's kvs (sorted by kv_cmp: not by key)? The
 * range's keys are put in a sorted array first: see reconcile(). */
static int key_cmp(const void *a, const void *b)
{
	const struct etcd_kv *x = *(const struct etcd_kv *const *)a, *y = *(const struct etcd_kv *const *)b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static bool in_range(struct etcd_kv **sorted, size_t n, const char *key, size_t klen)
{
	struct etcd_kv probe, *pp = &probe;

	probe.key = (char *)key;
	probe.klen = klen;
	return bsearch(&pp, sorted, n, sizeof(*sorted), key_cmp) != NULL;
}

/* The copy becomes what etcd holds at the range's revision: what is there
 * is applied (as a load does), and what the copy has that etcd no longer
 * has goes, all as changes at that one revision. */
static void reconcile(struct cluster *cl, struct etcd_range *r)
{
	struct etcd_kv **sorted = malloc((r->nkvs ? r->nkvs : 1) * sizeof(*sorted));
	struct store_session *page[256];
	char after[STORE_ID_LEN + 1] = "", *k;
	struct node *nd, *next;
	bool more = true;
	size_t i, kl;

	if (!sorted) {
		cl->next_watch = daemon_now_ms() + RETRY_MS; /* try it all again */
		return;
	}
	for (i = 0; i < r->nkvs; i++)
		sorted[i] = &r->kvs[i];
	qsort(sorted, r->nkvs, sizeof(*sorted), key_cmp);
	store_revision_begin(cl->st, (uint64_t)r->h.revision);
	cl->applying = true;
	for (nd = cl->nodes; nd; nd = next) { /* nodes gone */
		next = nd->next;
		kl = key_of(cl, 'n', nd->name, strlen(nd->name), NULL, 0, &k);
		if (kl && !in_range(sorted, r->nkvs, k, kl))
			node_delete(cl, nd->name, strlen(nd->name));
		free(k);
	}
	while (more) { /* sessions gone, and what live ones no longer hold */
		size_t n = store_session_page(cl->st, after[0] ? after : NULL, STORE_ID_LEN, 256, page, &more), j;
		if (n)
			memcpy(after, page[n - 1]->id, STORE_ID_LEN + 1);
		for (j = 0; j < n; j++) {
			struct store_session *s = page[j];
			struct store_name *nm, *nn;
			struct store_entry *e, *en;
			kl = key_of(cl, 's', s->id, STORE_ID_LEN, NULL, 0, &k);
			if (kl && !in_range(sorted, r->nkvs, k, kl)) {
				free(k);
				session_delete(cl, s->id, STORE_ID_LEN, NULL, 0);
				continue;
			}
			free(k);
			for (nm = s->names_head; nm; nm = nn) {
				nn = nm->s_next;
				kl = key_of(cl, 'k', nm->key, nm->klen, NULL, 0, &k);
				if (kl && !in_range(sorted, r->nkvs, k, kl))
					store_name_delete(cl->st, s, nm->key, nm->klen);
				free(k);
			}
			for (e = s->props_head; e; e = en) {
				en = e->s_next;
				kl = key_of(cl, 'p', s->id, STORE_ID_LEN, e->key->key, e->key->klen, &k);
				if (kl && !in_range(sorted, r->nkvs, k, kl))
					store_prop_remove(cl->st, s, e->key->key, e->key->klen);
				free(k);
			}
			for (e = s->groups_head; e; e = en) {
				en = e->s_next;
				kl = key_of(cl, 'g', s->id, STORE_ID_LEN, e->key->key, e->key->klen, &k);
				if (kl && !in_range(sorted, r->nkvs, k, kl))
					store_group_leave(cl->st, s, e->key->key, e->key->klen);
				free(k);
			}
		}
	}
	for (i = 0; i < r->nkvs; i++) /* what is there: nodes, sessions, then entries in creation order */
		apply_kv(cl, false, &r->kvs[i], NULL, 0);
	cl->applying = false;
	store_revision_end(cl->st);
	free(sorted);
	fprintf(stderr, "rollcall: cluster: the copy was read again at %lld\n", (long long)r->h.revision);
}

/* Reads everything under the prefix again (the watch lost its place). */
static void resync(struct cluster *cl)
{
	char end[300];
	size_t len, elen = etcd_prefix_end(cl->prefix, cl->plen, end);
	char *body = etcd_range_body(cl->prefix, cl->plen, end, elen, 0, false, 0, &len);

	cl->resyncing = true;
	if (!body || !etcd_post(cl, "/v3/kv/range", body, len, false, 30000, load_done, cl, NULL)) {
		cl->resyncing = false;
		cl->next_watch = daemon_now_ms() + RETRY_MS;
	}
	free(body);
}

/* The node key is ours (new incarnation) and the secret known: read the registry. */
static void node_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_txn_result t;
	char end[300];
	size_t len, i, elen;
	char *body;

	if (txn_result(res, &t) != ETCD_OK) {
		join_failed(cl, "writing the node key", res);
		return;
	}
	if (!t.succeeded) {
		const struct etcd_kv *kv = t.nresp == 1 && t.resp[0].kind == ETCD_RESP_RANGE && t.resp[0].range.nkvs == 1
						   ? &t.resp[0].range.kvs[0] : NULL;
		if (cl->loaded && kv && !ours(cl, kv)) {
			/* joining again, and the name is on someone else's lease */
			etcd_txn_result_free(&t);
			cl->taken_over = true;
			cl->next_join = 0;
			fprintf(stderr, "rollcall: cluster: another node holds the name %s\n", cl->cfg->node);
			return;
		}
		if (cl->loaded && kv) { /* our own key from before we were fenced: it goes */
			struct etcd_txn tx = { 0 };
			size_t blen;
			char *b;
			etcd_txn_cmp(&tx, kv->key, kv->klen, ETCD_T_MOD, ETCD_EQUAL, kv->mod_revision);
			etcd_txn_delete(&tx, false, kv->key, kv->klen, NULL, 0);
			b = etcd_txn_finish(&tx, &blen);
			etcd_txn_result_free(&t);
			if (b && etcd_post(cl, "/v3/kv/txn", b, blen, true, WRITE_TIMEOUT_MS, cleared_done, cl, &cl->join_req)) {
				free(b);
				return;
			}
			free(b);
			cl->next_join = daemon_now_ms() + RETRY_MS;
			return;
		}
		etcd_txn_result_free(&t);
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}
	cl->my_crev = t.h.revision;
	/* the secret: ours if we made it, else the one in the range answer */
	for (i = 0; i < t.nresp; i++)
		if (t.resp[i].kind == ETCD_RESP_RANGE && t.resp[i].range.nkvs == 1 && t.resp[i].range.kvs[0].vlen == 32)
			memcpy(cl->secret, t.resp[i].range.kvs[0].value, 33);
	etcd_txn_result_free(&t);
	cl->me_shadow.crev = cl->my_crev;
	cl->me = &cl->me_shadow;
	if (cl->loaded) { /* a re-join: the watch keeps the copy */
		if (!cl->watch_req && !cl->next_watch)
			cl->next_watch = daemon_now_ms();
		set_state(cl, CLUSTER_LIVE, "joined again");
		return;
	}
	elen = etcd_prefix_end(cl->prefix, cl->plen, end);
	body = etcd_range_body(cl->prefix, cl->plen, end, elen, 0, false, 0, &len);
	if (!body || !etcd_post(cl, "/v3/kv/range", body, len, false, 30000, load_done, cl, &cl->join_req)) {
		free(body);
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}
	free(body);
}

static void now_rfc3339(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes this node's key (on its lease) if there is none; the range
 * tells the secret, the failure's range who holds the name. */
static void write_node_key(struct cluster *cl)
{
	struct etcd_txn tx = { 0 };
	struct jw v = { 0 };
	char *key, *skey, *val, *body;
	size_t klen, sklen, vlen, len;

	if (!cl->lease) { /* fenced meanwhile: a key without a lease would never go */
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}

	now_rfc3339(cl->me_shadow.since, sizeof(cl->me_shadow.since));
	jw_lit(&v, "{\"url\":");
	jw_str(&v, cl->cfg->advertise, strlen(cl->cfg->advertise));
	jw_lit(&v, ",\"since\":\"");
	jw_lit(&v, cl->me_shadow.since);
	jw_lit(&v, "\",\"nonce\":\"");
	jw_lit(&v, cl->nonce);
	jw_lit(&v, "\"}");
	val = jw_finish(&v, &vlen);
	klen = key_of(cl, 'n', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &key);
	sklen = cl->plen + 6;
	skey = malloc(sklen + 1);
	if (skey)
		snprintf(skey, sklen + 1, "%ssecret", cl->prefix);
	if (!val || !klen || !skey) {
		free(val);
		free(key);
		free(skey);
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}
	etcd_txn_cmp(&tx, key, klen, ETCD_T_CREATE, ETCD_EQUAL, 0);
	etcd_txn_put(&tx, false, key, klen, val, vlen, cl->lease, false);
	etcd_txn_range(&tx, false, skey, sklen, NULL, 0, 0);
	etcd_txn_range(&tx, true, key, klen, NULL, 0, 0);
	body = etcd_txn_finish(&tx, &len);
	free(val);
	free(key);
	free(skey);
	if (!body || !etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, node_done, cl, &cl->join_req)) {
		free(body);
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}
	free(body);
}

/* An earlier process's key of this name is gone: write ours. */
static void cleared_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_txn_result t;

	if (txn_result(res, &t) != ETCD_OK) {
		join_failed(cl, "clearing an earlier node of this name", res);
		return;
	}
	etcd_txn_result_free(&t);
	write_node_key(cl);
}

/* The secret exists (made or found). Starting, a node takes its name over
 * from an earlier process; joining again after being fenced, it takes
 * back only its own stale key (write_node_key finds out whose it is). */
static void secret_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_txn_result t;
	struct etcd_txn tx = { 0 };
	char *key, *body;
	size_t klen, len;

	if (txn_result(res, &t) != ETCD_OK) {
		join_failed(cl, "writing the cluster secret", res);
		return;
	}
	etcd_txn_result_free(&t);
	if (cl->loaded) {
		write_node_key(cl);
		return;
	}
	klen = key_of(cl, 'n', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &key);
	if (!klen) {
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}
	etcd_txn_delete(&tx, false, key, klen, NULL, 0);
	body = etcd_txn_finish(&tx, &len);
	free(key);
	if (!body || !etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, cleared_done, cl, &cl->join_req))
		cl->next_join = daemon_now_ms() + RETRY_MS;
	free(body);
}

static void grant_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_header h;
	struct etcd_txn tx = { 0 };
	int64_t id, ttl;
	char *skey, *body, rnd[16], secret[33];
	size_t sklen, len;

	if (res->status != 200 || etcd_parse_lease(res->body, res->body_len, &h, &id, &ttl, NULL) != ETCD_OK ||
	    ttl <= 0) {
		join_failed(cl, "granting the node's lease", res);
		return;
	}
	cl->lease = id;
	cl->last_renewed = cl->join_sent; /* the standing counts from the grant's asking */
	cl->next_renew = cl->join_sent + renew_every(cl);
	sklen = cl->plen + 6;
	skey = malloc(sklen + 1);
	if (!skey) {
		cl->next_join = daemon_now_ms() + RETRY_MS;
		return;
	}
	snprintf(skey, sklen + 1, "%ssecret", cl->prefix);
	daemon_random(NULL, rnd, sizeof(rnd));
	store_hex((unsigned char *)rnd, sizeof(rnd), secret);
	etcd_txn_cmp(&tx, skey, sklen, ETCD_T_CREATE, ETCD_EQUAL, 0);
	etcd_txn_put(&tx, false, skey, sklen, secret, 32, 0, false);
	body = etcd_txn_finish(&tx, &len);
	free(skey);
	if (!body || !etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, secret_done, cl, &cl->join_req))
		cl->next_join = daemon_now_ms() + RETRY_MS;
	free(body);
}

static void join_next(struct cluster *cl)
{
	size_t len;
	char *body = etcd_lease_grant_body(cl->cfg->node_ttl, &len);

	cl->next_join = 0;
	cl->join_sent = daemon_now_ms();
	if (!body || !etcd_post(cl, "/v3/lease/grant", body, len, true, WRITE_TIMEOUT_MS, grant_done, cl, &cl->join_req)) {
		cl->next_join = daemon_now_ms() + RETRY_MS;
	}
	free(body);
}

/* --- renewing the node's standing --- */

struct renew {
	struct cluster *cl;
	uint64_t sent;
	int64_t lease;
};

/* The lease was renewed under another (the node was fenced and joined again). */
static bool id_changed(const struct cluster *cl, const struct renew *rn)
{
	return rn->lease != cl->lease;
}

static void renew_done(void *ctx, const struct httpc_result *res)
{
	struct renew *rn = ctx;
	struct cluster *cl = rn->cl;
	struct etcd_header h;
	int64_t id, ttl = -1;
	const char *nl = memchr(res->body, '\n', res->body_len);
	size_t n = nl ? (size_t)(nl - res->body) : res->body_len;

	cl->renew_req = NULL;
	if (cl->state == CLUSTER_FENCED || id_changed(cl, rn)) {
		free(rn);
		return;
	}
	if (res->status == 200 && etcd_parse_lease(res->body, n, &h, &id, &ttl, NULL) == ETCD_OK && ttl > 0) {
		cl->last_renewed = rn->sent;
		cl->renew_failing = false;
		cl->next_renew = rn->sent + renew_every(cl);
		if (cl->state == CLUSTER_DEGRADED && cl->watch_req)
			set_state(cl, CLUSTER_LIVE, "etcd answers again");
	} else if (res->status == 200 && ttl <= 0) {
		fence(cl, "etcd says this node's lease is gone");
	} else {
		if (cl->state == CLUSTER_LIVE)
			set_state(cl, CLUSTER_DEGRADED, "renewing the node's lease failed");
		cl->renew_failing = true;
		cl->next_renew = daemon_now_ms() + 200; /* soon, and to another member */
	}
	free(rn);
}

static void renew(struct cluster *cl)
{
	struct renew *rn = malloc(sizeof(*rn));
	size_t len;
	char *body = etcd_lease_id_body(cl->lease, &len);

	cl->next_renew = daemon_now_ms() + RETRY_MS;
	if (!rn || !body) {
		free(rn);
		free(body);
		return;
	}
	rn->cl = cl;
	rn->sent = daemon_now_ms();
	rn->lease = cl->lease;
	/* a member that has lost its leader may hold a keepalive for seconds:
	 * give up on it early and ask another, several times within the ttl */
	if (!etcd_post(cl, "/v3/lease/keepalive", body, len, true, (unsigned)renew_every(cl), renew_done, rn,
		       &cl->renew_req))
		free(rn);
	free(body);
}

/* --- clean-up of lost nodes' keys (the lowest-named live node) --- */

static void clean_free(struct clean_item *it)
{
	while (it) {
		struct clean_item *next = it->next;
		free(it->key);
		free(it->value);
		free(it);
		it = next;
	}
}

/* A batch failed: a name in it changed (taken over since), or etcd is
 * away. Its items go back to the queue, each on its own, so that only the
 * changed ones are left alone. */
static void clean_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;
	struct etcd_txn_result t;
	struct clean_item *it = cl->clean_busy, *next;
	bool answered = txn_result(res, &t) == ETCD_OK;
	bool refused = !answered && res->status >= 400 && res->status < 500; /* etcd will not take it as it is */
	bool single = it && !it->next;

	cl->clean_req = NULL;
	cl->clean_busy = NULL;
	cl->next_clean = daemon_now_ms();
	if ((answered && (t.succeeded || (single && it->solo))) || (refused && single)) {
		/* done; or a name that changed hands (not ours to delete); or one
		 * etcd refuses on its own (it never will take it) */
		if (answered)
			etcd_txn_result_free(&t);
		clean_free(it);
		return;
	}
	if (answered)
		etcd_txn_result_free(&t);
	for (; it; it = next) { /* back to the front of the queue: one by one if etcd answered */
		next = it->next;
		it->solo = answered || refused;
		it->next = cl->clean_head;
		cl->clean_head = it;
		if (!cl->clean_tail)
			cl->clean_tail = it;
	}
	if (!answered && !refused)
		cl->next_clean = daemon_now_ms() + RETRY_MS * 4; /* etcd is away */
}

/* Sends the next batch of deletes. A name is deleted only if its value is
 * still the ended owner's (compare), so a name taken over since stays. */
static void clean_step(struct cluster *cl)
{
	struct etcd_txn tx = { 0 };
	struct clean_item *it, **tail = &cl->clean_busy;
	size_t n = 0, len;
	char *body;

	size_t bytes = 0;

	cl->next_clean = 0;
	if (!cl->clean_head || cl->clean_req)
		return;
	if (cl->state != CLUSTER_LIVE) { /* again once etcd answers */
		cl->next_clean = daemon_now_ms() + RETRY_MS;
		return;
	}
	while ((it = cl->clean_head) && n < CLEAN_BATCH && !(n && it->solo) &&
	       !(n && bytes + 2 * (it->klen + it->vlen) > BATCH_BYTES / 2)) {
		bytes += 2 * (it->klen + it->vlen); /* base64, and the key twice */
		if (it->value)
			etcd_txn_cmp_value(&tx, it->key, it->klen, ETCD_EQUAL, it->value, it->vlen);
		if (it->range) {
			char end[600];
			size_t elen = etcd_prefix_end(it->key, it->klen, end);
			etcd_txn_delete(&tx, false, it->key, it->klen, end, elen);
		} else {
			etcd_txn_delete(&tx, false, it->key, it->klen, NULL, 0);
		}
		cl->clean_head = it->next;
		it->next = NULL;
		*tail = it;
		tail = &it->next;
		n++;
		if (it->solo)
			break;
	}
	if (!cl->clean_head)
		cl->clean_tail = NULL;
	body = etcd_txn_finish(&tx, &len);
	if (!body || !etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, clean_done, cl, &cl->clean_req)) {
		struct httpc_result none = { 0 };
		none.body = "";
		none.error = "out of memory";
		clean_done(cl, &none);
	}
	free(body);
}

/* --- the life of the node --- */

static void split_urls(struct cluster *cl, const char *s)
{
	const char *p = s;

	while (p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		char **nu = realloc(cl->urls, (cl->nurls + 1) * sizeof(*nu));
		if (!nu)
			return;
		cl->urls = nu;
		while (n && p[n - 1] == '/')
			n--;
		cl->urls[cl->nurls] = store_dup(p, n);
		if (cl->urls[cl->nurls])
			cl->nurls++;
		p = c ? c + 1 : NULL;
	}
}

#define MAIL_TIMEOUT_MS 5000

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A batch for another node stays well under its --max-body (the nodes of a
 * cluster share their flags). */
static size_t mail_bytes(const struct config *cfg)
{
	size_t n = cfg->max_body / 2;

	return n > 256 * 1024 ? 256 * 1024 : n;
}

static void mail_broken(void *ctx, const char *peer);

struct cluster *cluster_new(struct app *app, int epfd, int tag)
{
	struct cluster *cl = calloc(1, sizeof(*cl));

	if (!cl)
		return NULL;
	cl->app = app;
	cl->st = app->store;
	cl->cfg = app->cfg;
	cl->prefix = app->cfg->etcd_prefix;
	cl->plen = strlen(cl->prefix);
	cl->hc = httpc_new(epfd, tag);
	cl->mail = cl->hc ? mail_new(cl->hc, cl->secret, app->cfg->auth_token, mail_bytes(app->cfg), MAIL_TIMEOUT_MS,
				     now_us, mail_broken, cl)
			  : NULL;
	split_urls(cl, app->cfg->etcd);
	if (!cl->hc || !cl->mail || !cl->nurls) {
		cluster_free(cl);
		return NULL;
	}
	cl->cur = cluster_call_tag(app->cfg->node) % cl->nurls; /* nodes spread over the members */
	snprintf(cl->me_shadow.name, sizeof(cl->me_shadow.name), "%s", app->cfg->node);
	{
		unsigned char raw[8];
		daemon_random(NULL, raw, sizeof(raw));
		store_hex(raw, sizeof(raw), cl->nonce);
	}
	cl->me_shadow.url = strdup(app->cfg->advertise);
	cl->me = &cl->me_shadow;
	cl->state = CLUSTER_JOINING;
	cl->next_join = daemon_now_ms();
	fprintf(stderr, "rollcall: cluster: node %s (%s), etcd %s, prefix %s, node ttl %u s\n", app->cfg->node,
		app->cfg->advertise, app->cfg->etcd, cl->prefix, app->cfg->node_ttl);
	return cl;
}

void cluster_free(struct cluster *cl)
{
	struct node *nd, *next;
	size_t i;

	if (!cl)
		return;
	/* Every etcd call in flight ends as failed, so whoever waits frees what
	 * it holds; the node is stopping, so nothing new is started from here. */
	cl->leaving = true;
	while (cl->ecalls) {
		struct ecall *ec = cl->ecalls;
		struct httpc_result none = { 0 };
		none.body = "";
		none.error = "the node is stopping";
		httpc_cancel(cl->hc, ec->req);
		ecall_done(ec, &none);
	}
	mail_free(cl->mail);
	httpc_free(cl->hc);
	expiring_free(cl);
	for (nd = cl->nodes; nd; nd = next) {
		next = nd->next;
		if (nd != &cl->me_shadow) {
			free(nd->url);
			free(nd);
		}
	}
	free(cl->me_shadow.url);
	clean_free(cl->clean_head);
	clean_free(cl->clean_busy);
	for (i = 0; i < cl->nurls; i++)
		free(cl->urls[i]);
	free(cl->urls);
	free(cl);
}

void cluster_on_event(struct cluster *cl, void *ptr, uint32_t events)
{
	httpc_on_event(cl->hc, ptr, events);
}

static long until(uint64_t t, uint64_t now)
{
	return !t ? -1 : t > now ? (long)(t - now) : 0;
}

static long min_to(long a, long b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

long cluster_timeout(struct cluster *cl, uint64_t now)
{
	long t;

	/* the loop is about to sleep: what was posted this turn goes now */
	if (mail_pending(cl->mail))
		mail_flush(cl->mail);
	t = httpc_timeout(cl->hc);

	t = min_to(t, until(cl->next_join, now));
	t = min_to(t, until(cl->next_watch, now));
	t = min_to(t, until(cl->next_clean, now));
	if (cl->expiring)
		t = min_to(t, 200);
	if (cl->open_batch)
		t = min_to(t, 100);
	if (cl->loaded && cl->watch_req && !cl->check_req)
		t = min_to(t, until(cl->next_check ? cl->next_check : now, now));
	if (cl->lease && !cl->renew_req)
		t = min_to(t, until(cl->next_renew, now));
	if (cl->lease && cl->state != CLUSTER_FENCED) /* the standing's end */
		t = min_to(t, until(cl->last_renewed + cl->cfg->node_ttl * 1000, now));
	return t;
}

void cluster_tick(struct cluster *cl, uint64_t now)
{
	httpc_run_timers(cl->hc);
	if (cl->leaving)
		return;
	/* No renewal for --node-ttl: the others may have dropped us. End our
	 * sessions before serving anything more (a node paused past its ttl
	 * comes here first). */
	if (cl->lease && cl->state != CLUSTER_FENCED && now >= cl->last_renewed + cl->cfg->node_ttl * 1000)
		fence(cl, "no renewal of the node's lease for --node-ttl");
	if (cl->next_join && now >= cl->next_join && !cl->join_req)
		join_next(cl);
	if (cl->loaded && cl->next_watch && now >= cl->next_watch && !cl->watch_req)
		start_watch(cl);
	if (cl->lease && cl->state != CLUSTER_FENCED && !cl->renew_req && now >= cl->next_renew)
		renew(cl);
	if (cl->next_clean && now >= cl->next_clean)
		clean_step(cl);
	if (cl->expiring)
		expire_retry(cl, now);
	if (cl->open_batch)
		batch_flush(cl);
	if (cl->loaded && cl->watch_req && !cl->check_req && now >= cl->next_check)
		watch_check(cl);
}

static void leave_done(void *ctx, const struct httpc_result *res)
{
	struct cluster *cl = ctx;

	(void)res;
	cl->leave_req = NULL;
	cl->lease = 0;
}

bool cluster_leave(struct cluster *cl, uint64_t now)
{
	(void)now;
	if (!cl->leaving) {
		size_t len;
		char *body;
		cl->leaving = true;
		end_own_sessions(cl);
		if (cl->lease) {
			body = etcd_lease_id_body(cl->lease, &len);
			if (!body || !etcd_post(cl, "/v3/lease/revoke", body, len, true, 2000, leave_done, cl, &cl->leave_req))
				cl->lease = 0;
			free(body);
		}
	}
	return !cl->leave_req;
}

/* --- writes --- */

enum op_kind { OP_SESSION_CREATE, OP_SESSION_END, OP_NAME_PUT, OP_NAME_DELETE, OP_ENTRY_PUT, OP_ENTRY_DELETE,
	       OP_SESSION_TTL, OP_FORWARD, OP_CATCH_UP, OP_FANOUT, OP_MAIL };

struct op {
	struct cluster *cl;
	struct http_request *req; /* NULL once the request has gone */
	enum op_kind kind;
	struct httpc_req *hr;
	bool done, group, expired;
	int status;            /* the answer's: 2xx, or 0 with err */
	enum api_error err;
	const char *msg;
	uint64_t rev;          /* the copy must reach it before the answer */
	char sid[STORE_ID_LEN + 1], token[STORE_TOKEN_LEN + 1], owner[STORE_ID_LEN + 1];
	unsigned ttl;
	char *label, *key, *value;
	size_t llen, klen, vlen;
	int64_t krev;          /* a name's mod_revision, for an update or a take-over */
	char prev_owner[STORE_ID_LEN + 1]; /* a take-over: the ended owner whose record goes too */
	int tries;
	uint64_t next_try;     /* an expiry tried again after this */
	/* a broadcast's forwards: how many are out, and what they said */
	size_t pending;
	bool in_batch;         /* its write is in a batch (the batch frees it if the request is gone) */
	bool batched;          /* its write goes in a batch (built without the node's compare) */
	struct clean_item *leftover; /* a session's names that did not fit its end's transaction */
	uint64_t delivered;
	struct jw full, unreachable;
	/* a forward (or a call delivered elsewhere): where it went, the cluster's list of them */
	char home[65];
	bool listed;
	struct op *fprev, *fnext;
	/* a message, call or reply sent through the mail (OP_MAIL) */
	struct mail_item *mi;
	struct store_call *call;  /* a call's, while it waits (the request owns it) */
	char *rr_group;           /* a round-robin pick's group: its turn is given back if the send fails */
	size_t rr_glen;
	/* a forward's answer */
	char *body, *ctype, *allow, *node, *wwwa;
	size_t blen;
	bool with_index;
	uint64_t index;
	uint64_t sent_us; /* when the forward went */
};

struct fan { /* one node's share of a broadcast */
	struct op *op;
	struct jw ids; /* its receivers, quoted and comma-separated */
};

static void clean_free(struct clean_item *it);

static void op_free(struct op *op)
{
	clean_free(op->leftover);
	free(op->full.buf);
	free(op->unreachable.buf);
	free(op->label);
	free(op->key);
	free(op->value);
	free(op->body);
	free(op->ctype);
	free(op->allow);
	free(op->node);
	free(op->wwwa);
	free(op->rr_group);
	free(op);
}

void cluster_request_done(struct http_request *req)
{
	struct op *op = req->cl_op;

	if (!op)
		return;
	req->cl_op = NULL;
	forward_unlink(op);
	if (op->mi) {
		mail_forget(op->cl->mail, op->mi);
		op->mi = NULL;
	}
	if (op->hr) {
		if (!etcd_cancel(op->cl, op->hr)) /* an etcd call, or a forward */
			httpc_cancel(op->cl->hc, op->hr);
		op->hr = NULL;
	}
	if (op->pending || op->in_batch) { /* forwards or a batch still out: they free the op */
		op->req = NULL;
		return;
	}
	op_free(op);
}

/* The op is over: wait (up to 10 s) for the copy to show rev, then resume. */
static void op_finish(struct op *op)
{
	struct http_request *req = op->req;
	struct store *st = op->cl->st;

	op->done = true;
	op->hr = NULL;
	if (!req)
		return;
	if (op->rev > store_index(st) &&
	    store_index_wait(st, op->rev, daemon_now_ms() + APPLY_WAIT_MS, &req->waiter) == STORE_OK)
		return;
	req->waiter.wake(&req->waiter, STORE_WAKE_FIRED);
}

static void op_fail(struct op *op, enum api_error e, const char *msg)
{
	op->status = 0;
	op->err = e;
	op->msg = msg;
	op->rev = 0;
	op_finish(op);
}

static void op_unavailable(struct op *op, const struct httpc_result *res)
{
	struct etcd_error err;

	etcd_parse_error(res->body, res->body_len, res->status, &err);
	if (err.code == ETCD_GRPC_RESOURCE_EXHAUSTED)
		op_fail(op, ERR_CLUSTER_UNAVAILABLE, "etcd is out of space (database space exceeded); nothing was changed.");
	else if (res->status == 0 && res->timed_out)
		op_fail(op, ERR_CLUSTER_UNAVAILABLE, "etcd did not answer in time: the write may or may not have been made; read to know.");
	else
		op_fail(op, ERR_CLUSTER_UNAVAILABLE, NULL);
	/* One write's failure does not make the node degraded: a write held
	 * by a member that lost its leader fails seconds after etcd is back.
	 * The renewals and the watch say what etcd's state is. */
}

static void op_send(struct op *op);
static void op_txn_done(void *ctx, const struct httpc_result *res);
static void op_result(struct op *op, struct etcd_txn_result *t, uint64_t rev);
static void batch_add(struct cluster *cl, struct op *op, const char *txn, size_t len, const char *key);
static void batch_flush(struct cluster *cl);
static void batch_send(struct cluster *cl);

static struct op *op_new(struct http_request *req, struct http_reply *rep, enum op_kind kind)
{
	struct cluster *cl = req->app->cluster;
	struct op *op;

	/* Degraded only for want of its watch, a node still writes; etcd known
	 * away (its last renewal failed), a write is refused at once. */
	if ((cl->state == CLUSTER_JOINING || cl->state == CLUSTER_FENCED ||
	     (cl->state == CLUSTER_DEGRADED && cl->renew_failing)) && kind != OP_FORWARD && kind != OP_CATCH_UP &&
	    kind != OP_MAIL) {
		reply_error(rep, ERR_CLUSTER_UNAVAILABLE,
			    cl->state == CLUSTER_DEGRADED ? "etcd cannot be reached or has no leader; nothing was changed."
							  : "This node is not part of the cluster at the moment; nothing was changed.");
		return NULL;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return NULL;
	}
	op->cl = cl;
	op->req = req;
	op->kind = kind;
	return op;
}

/* Starts op for req: it is the request's until it ends. */
static void op_start(struct op *op, struct http_reply *rep)
{
	op->req->cl_op = op;
	op_send(op);
	if (op->done && !store_waiter_parked(&op->req->waiter)) { /* failed on the spot: answer now */
		cluster_answer(op->req, rep);
		return;
	}
	rep->suspend = true;
}

/* Compares every write for a session makes: the session and this node's
 * incarnation still exist. */
static void guard(struct op *op, struct etcd_txn *tx, const char *sid)
{
	struct cluster *cl = op->cl;
	char *k;
	size_t n = key_of(cl, 's', sid, STORE_ID_LEN, NULL, 0, &k);

	if (n)
		etcd_txn_cmp(tx, k, n, ETCD_T_CREATE, ETCD_GREATER, 0);
	else
		tx->cmp.oom = true; /* no transaction rather than an unguarded one */
	free(k);
	if (op->batched) /* the batch compares the node's incarnation once for all */
		return;
	n = key_of(cl, 'n', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &k);
	if (n)
		etcd_txn_cmp(tx, k, n, ETCD_T_CREATE, ETCD_EQUAL, cl->my_crev);
	free(k);
}

/* The deletes that end a session: its record first (what readers see),
 * its entries, and as many of its names as fit; the rest of its names
 * follow in clean-up batches. */
static void end_ops(struct op *op, struct etcd_txn *tx, struct store_session *s, bool explicit)
{
	struct cluster *cl = op->cl;
	struct store_name *nm;
	char *k, end[600];
	size_t n, elen, ops = 0;

	/* Only while the record is there: a retry after a lost answer must not
	 * delete names that changed hands since (the record was gone then). */
	if ((n = key_of(cl, 's', op->sid, STORE_ID_LEN, NULL, 0, &k))) {
		etcd_txn_cmp(tx, k, n, ETCD_T_CREATE, ETCD_GREATER, 0);
		etcd_txn_delete(tx, false, k, n, NULL, 0), ops++;
	} else {
		tx->cmp.oom = true; /* no transaction rather than an unguarded one */
	}
	free(k);
	if (explicit) {
		if ((n = key_of(cl, 'e', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &k)))
			etcd_txn_put(tx, false, k, n, op->sid, STORE_ID_LEN, 0, false), ops++;
		free(k);
	}
	if ((n = key_of(cl, 'p', op->sid, STORE_ID_LEN, "", 0, &k))) {
		elen = etcd_prefix_end(k, n, end);
		etcd_txn_delete(tx, false, k, n, end, elen), ops++;
	}
	free(k);
	if ((n = key_of(cl, 'g', op->sid, STORE_ID_LEN, "", 0, &k))) {
		elen = etcd_prefix_end(k, n, end);
		etcd_txn_delete(tx, false, k, n, end, elen), ops++;
	}
	free(k);
	for (nm = s ? s->names_head : NULL; nm; nm = nm->s_next) {
		if (ops < ETCD_MAX_TXN_OPS - 1) {
			if ((n = key_of(cl, 'k', nm->key, nm->klen, NULL, 0, &k)))
				etcd_txn_delete(tx, false, k, n, NULL, 0), ops++;
			free(k);
		} else { /* left-overs, deleted if unchanged once the record is gone (not before!) */
			size_t vl;
			char *v = name_value(op->sid, nm->value, nm->vlen, &vl);
			struct clean_item *it = v ? clean_new(cl, 'k', nm->key, nm->klen, NULL, 0, false, v, vl) : NULL;
			if (it) {
				it->next = op->leftover;
				op->leftover = it;
			}
			free(v);
		}
	}
}

/* Builds and sends op's transaction for its current step. */
static void op_send(struct op *op)
{
	struct cluster *cl = op->cl;
	struct etcd_txn tx = { 0 };
	struct store_session *s;
	char *k = NULL, *v = NULL, *body;
	size_t n, vl, len;
	struct jw w = { 0 };

	/* Writes share batches; a session's end (up to 128 operations) and a
	 * take-over (which deletes another key too) go alone. */
	op->batched = op->kind != OP_SESSION_END && !(op->kind == OP_NAME_PUT && op->prev_owner[0]);
	switch (op->kind) {
	case OP_SESSION_TTL:
	case OP_SESSION_CREATE:
		jw_lit(&w, "{\"node\":");
		jw_str(&w, cl->cfg->node, strlen(cl->cfg->node));
		jw_lit(&w, ",\"nrev\":\"");
		jw_u64(&w, (uint64_t)cl->my_crev);
		jw_lit(&w, "\",\"token\":\"");
		jw_raw(&w, op->token, STORE_TOKEN_LEN);
		jw_lit(&w, "\",\"ttl\":");
		jw_u64(&w, op->ttl);
		if (op->label) {
			jw_lit(&w, ",\"label\":");
			jw_str(&w, op->label, op->llen);
		}
		jw_lit(&w, "}");
		v = jw_finish(&w, &vl);
		n = key_of(cl, 's', op->sid, STORE_ID_LEN, NULL, 0, &k);
		if (v && n && op->kind == OP_SESSION_TTL) {
			guard(op, &tx, op->sid);
			etcd_txn_put(&tx, false, k, n, v, vl, 0, false);
		} else if (v && n) {
			char *nk;
			size_t nn = key_of(cl, 'n', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &nk);
			etcd_txn_cmp(&tx, k, n, ETCD_T_CREATE, ETCD_EQUAL, 0);
			if (nn && !op->batched)
				etcd_txn_cmp(&tx, nk, nn, ETCD_T_CREATE, ETCD_EQUAL, cl->my_crev);
			free(nk);
			etcd_txn_put(&tx, false, k, n, v, vl, 0, false);
		}
		break;
	case OP_SESSION_END:
		s = store_session_lookup(cl->st, op->sid, STORE_ID_LEN);
		end_ops(op, &tx, s, !op->expired);
		break;
	case OP_NAME_PUT:
		v = name_value(op->sid, op->value, op->vlen, &vl);
		n = key_of(cl, 'k', op->key, op->klen, NULL, 0, &k);
		if (v && n) {
			guard(op, &tx, op->sid);
			if (op->krev) /* an update of ours, or a take-over: the key as we saw it */
				etcd_txn_cmp(&tx, k, n, ETCD_T_MOD, ETCD_EQUAL, op->krev);
			else
				etcd_txn_cmp(&tx, k, n, ETCD_T_CREATE, ETCD_EQUAL, 0);
			etcd_txn_put(&tx, false, k, n, v, vl, 0, false);
			if (op->prev_owner[0]) { /* the ended owner's record goes with it */
				char *sk;
				size_t sn = key_of(cl, 's', op->prev_owner, STORE_ID_LEN, NULL, 0, &sk);
				if (sn)
					etcd_txn_delete(&tx, false, sk, sn, NULL, 0);
				free(sk);
			}
			etcd_txn_range(&tx, true, k, n, NULL, 0, 0);
		}
		break;
	case OP_NAME_DELETE:
		n = key_of(cl, 'k', op->key, op->klen, NULL, 0, &k);
		if (n) {
			guard(op, &tx, op->sid);
			etcd_txn_delete(&tx, false, k, n, NULL, 0);
		}
		break;
	case OP_ENTRY_PUT:
	case OP_ENTRY_DELETE:
		n = key_of(cl, op->group ? 'g' : 'p', op->sid, STORE_ID_LEN, op->key, op->klen, &k);
		if (n) {
			guard(op, &tx, op->sid);
			if (op->kind == OP_ENTRY_PUT)
				etcd_txn_put(&tx, false, k, n, op->value, op->vlen, 0, false);
			else
				etcd_txn_delete(&tx, false, k, n, NULL, 0);
		}
		break;
	default:
		break;
	}
	body = etcd_txn_finish(&tx, &len);
	if (body && op->batched && k) {
		batch_add(cl, op, body, len, k);
	} else if (!body || !etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, op_txn_done, op, &op->hr)) {
		op_fail(op, ERR_NO_MEMORY, NULL);
	}
	free(k);
	free(v);
	free(body);
}

static void op_txn_done(void *ctx, const struct httpc_result *res)
{
	struct op *op = ctx;
	struct etcd_txn_result t;

	op->hr = NULL;
	if (!op->req) { /* the client left: nothing to answer */
		op_free(op);
		return;
	}
	if (txn_result(res, &t) != ETCD_OK) {
		op_unavailable(op, res);
		return;
	}
	op_result(op, &t, (uint64_t)t.h.revision);
}

/* --- batches: writes waiting at the same time share one transaction ---
 * Each write is a nested transaction with its own compares; a batch goes
 * when fewer than BATCH_INFLIGHT are out, so a lone write goes at once and
 * a crowd shares round trips (etcd's cost is per transaction). */

#define BATCH_MAX 64
#define BATCH_INFLIGHT 2

struct batch {
	struct cluster *cl;
	struct op *ops[BATCH_MAX];
	char *keys[BATCH_MAX]; /* the key each op writes: no two alike in a batch */
	size_t n, bytes;
	struct etcd_txn tx;
	struct batch *next;
};

static void batch_free(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->keys[i]);
	etcd_txn_free(&b->tx);
	free(b);
}

static void batch_done(void *ctx, const struct httpc_result *res)
{
	struct batch *b = ctx;
	struct cluster *cl = b->cl;
	struct etcd_txn_result t;
	bool parsed = txn_result(res, &t) == ETCD_OK, ok = parsed && t.nresp == b->n;
	size_t i;

	cl->batches_out--;
	for (i = 0; i < b->n; i++) {
		struct op *op = b->ops[i];
		op->in_batch = false;
		if (!op->req) {
			op_free(op);
		} else if (parsed && !t.succeeded) { /* the node's own compare failed */
			op_fail(op, ERR_CLUSTER_UNAVAILABLE, "This node lost its standing in the cluster; nothing was changed.");
		} else if (!ok) {
			op_unavailable(op, res);
		} else if (t.resp[i].kind != ETCD_RESP_TXN || !t.resp[i].txn) {
			op_fail(op, ERR_CLUSTER_UNAVAILABLE, "etcd's answer to a batch of writes was not understood.");
		} else {
			op_result(op, t.resp[i].txn, (uint64_t)t.h.revision);
		}
	}
	if (parsed)
		etcd_txn_result_free(&t);
	batch_free(b);
	batch_flush(cl);
}

/* Room for another batch: fewer than BATCH_INFLIGHT out; or the latest
 * has been out a second (a member that lost its leader holds writes for
 * 7 s: new ones must not queue behind them), up to BATCH_MAX_OUT. */
#define BATCH_MAX_OUT 8

static bool batch_room(const struct cluster *cl)
{
	return cl->batches_out < BATCH_INFLIGHT ||
	       (cl->batches_out < BATCH_MAX_OUT && daemon_now_ms() >= cl->batch_last_sent + 1000);
}

/* Sends the open batch when there is room in flight. */
static void batch_flush(struct cluster *cl)
{
	if (cl->open_batch && batch_room(cl))
		batch_send(cl);
}

/* Sends the open batch. */
static void batch_send(struct cluster *cl)
{
	struct batch *b = cl->open_batch;
	size_t len, i;
	char *body;

	if (!b)
		return;
	cl->open_batch = NULL;
	body = etcd_txn_finish(&b->tx, &len);
	if (body && etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, batch_done, b, NULL)) {
		cl->batches_out++;
		cl->batch_last_sent = daemon_now_ms();
		free(body);
		return;
	}
	free(body);
	for (i = 0; i < b->n; i++) {
		b->ops[i]->in_batch = false;
		if (b->ops[i]->req)
			op_fail(b->ops[i], ERR_NO_MEMORY, NULL);
		else
			op_free(b->ops[i]);
	}
	batch_free(b);
}

static void batch_add(struct cluster *cl, struct op *op, const char *txn, size_t len, const char *key)
{
	struct batch *b = cl->open_batch;
	size_t i;

	for (i = 0; b && i < b->n; i++)
		if (!strcmp(b->keys[i], key))
			break;
	if (b && (b->n == BATCH_MAX || i < b->n || b->bytes + len > BATCH_BYTES)) {
		/* full, or the key is in it: it goes as it is, room or not */
		batch_send(cl);
		b = NULL;
	}
	if (!b) {
		char *nk;
		size_t nn;
		b = calloc(1, sizeof(*b));
		nn = b ? key_of(cl, 'n', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &nk) : 0;
		if (!nn) {
			free(b);
			op_fail(op, ERR_NO_MEMORY, NULL);
			return;
		}
		/* once for all its writes: this node's incarnation still stands */
		etcd_txn_cmp(&b->tx, nk, nn, ETCD_T_CREATE, ETCD_EQUAL, cl->my_crev);
		free(nk);
		b->cl = cl;
		cl->open_batch = b;
	}
	b->keys[b->n] = strdup(key);
	if (!b->keys[b->n]) {
		op_fail(op, ERR_NO_MEMORY, NULL);
		return;
	}
	etcd_txn_nested(&b->tx, false, txn, len);
	b->bytes += len;
	b->ops[b->n++] = op;
	op->in_batch = true;
	batch_flush(cl);
}

/* What etcd said of op's transaction t (made at revision rev). */
static void op_result(struct op *op, struct etcd_txn_result *t0, uint64_t rev)
{
	struct cluster *cl = op->cl;
	struct etcd_txn_result t = *t0;
	struct store_session *o;

	memset(t0, 0, sizeof(*t0)); /* ours to free now */
	op->rev = rev;
	if (t.succeeded) {
		clean_append(cl, op->leftover); /* the record is gone: now the rest of its names */
		op->leftover = NULL;
		etcd_txn_result_free(&t);
		op->status = op->kind == OP_SESSION_CREATE ? 201 : op->kind == OP_SESSION_END || op->kind == OP_NAME_DELETE ||
			op->kind == OP_ENTRY_DELETE ? 204 : op->kind == OP_SESSION_TTL ? 200 : op->status ? op->status : 201;
		op_finish(op);
		return;
	}
	/* A compare failed. For a name: who holds it now? */
	if (op->kind == OP_NAME_PUT && t.nresp == 1 && t.resp[0].kind == ETCD_RESP_RANGE &&
	    t.resp[0].range.nkvs == 1 && ++op->tries < MAX_TRIES) {
		const struct etcd_kv *kv = &t.resp[0].range.kvs[0];
		char sid[STORE_ID_LEN + 1], *val;
		size_t vl;
		if (!parse_name(kv->value, kv->vlen, sid, &val, &vl)) {
			etcd_txn_result_free(&t);
			op_fail(op, ERR_CLUSTER_UNAVAILABLE, "etcd holds a name this node cannot read.");
			return;
		}
		free(val);
		op->krev = kv->mod_revision;
		etcd_txn_result_free(&t);
		if (!strcmp(sid, op->sid)) { /* ours already: an update */
			op->prev_owner[0] = '\0';
			op->status = 200;
			op_send(op);
			return;
		}
		/* Another session's. Alive as of the copy at this revision? (The copy
		 * cannot be behind the key: a record comes before its names.) */
		if (store_index(cl->st) < op->rev) {
			/* wait for the copy, then decide: resumed through the handler */
			op->done = false;
			memcpy(op->owner, sid, sizeof(op->owner));
			op->status = -1; /* "decide after the wait" */
			if (store_index_wait(cl->st, op->rev, daemon_now_ms() + APPLY_WAIT_MS, &op->req->waiter) == STORE_OK)
				return;
			op_fail(op, ERR_CLUSTER_UNAVAILABLE, "This node's copy could not catch up to decide; nothing was changed.");
			return;
		}
		o = store_session_lookup(cl->st, sid, STORE_ID_LEN);
		if (o) {
			memcpy(op->owner, sid, sizeof(op->owner));
			op->status = 409;
			op->rev = 0;
			op_finish(op);
			return;
		}
		memcpy(op->prev_owner, sid, sizeof(op->prev_owner)); /* ended: take it over */
		op->status = 201;
		op_send(op);
		return;
	}
	etcd_txn_result_free(&t);
	if (op->kind == OP_NAME_PUT && op->tries < MAX_TRIES && ++op->tries < MAX_TRIES && op->krev) {
		op->krev = 0; /* the key went away meanwhile: create it */
		op->prev_owner[0] = '\0';
		op->status = 201;
		op_send(op);
		return;
	}
	/* The session or this node's standing is gone. */
	op_fail(op, op->kind == OP_SESSION_CREATE ? ERR_CLUSTER_UNAVAILABLE : ERR_BAD_TOKEN,
		op->kind == OP_SESSION_CREATE ? "This node lost its standing in the cluster; nothing was changed."
					      : "The session ended while the request was made.");
}

/* A name op that waited for the copy before deciding (status -1). */
static bool op_decide(struct op *op, struct http_reply *rep)
{
	struct store_session *o;

	if (op->status != -1)
		return false;
	if (store_index(op->cl->st) < op->rev) { /* the copy did not get there: a stale copy must not decide */
		op->status = 0;
		op->err = ERR_CLUSTER_UNAVAILABLE;
		op->msg = "This node's copy could not catch up to decide; nothing was changed.";
		op->rev = 0;
		op->done = true;
		return false;
	}
	o = store_session_lookup(op->cl->st, op->owner, STORE_ID_LEN);
	if (o) {
		op->status = 409;
		op->rev = 0;
		op->done = true;
		return false;
	}
	memcpy(op->prev_owner, op->owner, sizeof(op->prev_owner));
	op->status = 201;
	op->done = false;
	op_send(op);
	if (op->done && !store_waiter_parked(&op->req->waiter))
		return false; /* failed on the spot: the caller answers it */
	rep->suspend = true;
	return true;
}

static void jw_value_answer(struct jw *w, const char *keyfield, const char *key, size_t klen, const char *sid,
			    const char *value, size_t vlen)
{
	jw_lit(w, "{");
	jw_field(w, keyfield, key, klen);
	jw_lit(w, ",");
	jw_field(w, "session", sid, STORE_ID_LEN);
	jw_lit(w, ",\"value\":");
	jw_raw(w, value, vlen);
	jw_lit(w, "}");
}

void cluster_answer(struct http_request *req, struct http_reply *rep)
{
	struct op *op = req->cl_op;
	struct jw w = { 0 };

	if (op->kind != OP_FORWARD && op_decide(op, rep))
		return;
	if (!op->done) { /* woken before the end: only by a shutdown */
		if (req->wake == STORE_WAKE_SHUTDOWN) {
			reply_error(rep, ERR_SHUTTING_DOWN, "The node is stopping; the write may or may not have been made.");
			return;
		}
		rep->suspend = true;
		return;
	}
	if (op->kind == OP_FANOUT) {
		jw_lit(&w, "{\"delivered\":");
		jw_u64(&w, op->delivered);
		jw_lit(&w, ",\"full\":[");
		jw_raw(&w, op->full.buf ? op->full.buf : "", op->full.len);
		jw_lit(&w, "],\"unreachable\":[");
		jw_raw(&w, op->unreachable.buf ? op->unreachable.buf : "", op->unreachable.len);
		jw_lit(&w, "]}");
		reply_jw(rep, 202, &w);
		return;
	}
	if (op->kind == OP_FORWARD) {
		rep->status = op->status;
		if (op->body) {
			rep->body = op->body;
			rep->body_len = op->blen;
			op->body = NULL;
		}
		rep->content_type = op->ctype;
		rep->allow = op->allow;
		rep->www_authenticate = op->wwwa;
		rep->node = op->node;
		rep->with_index = op->with_index;
		rep->index = op->index;
		return;
	}
	if (op->status == 0) {
		reply_error(rep, op->err, op->msg);
		return;
	}
	rep->with_index = true;
	rep->index = op->rev ? op->rev : store_index(op->cl->st);
	switch (op->kind) {
	case OP_SESSION_CREATE:
		jw_lit(&w, "{\"id\":\"");
		jw_raw(&w, op->sid, STORE_ID_LEN);
		jw_lit(&w, "\",\"token\":\"");
		jw_raw(&w, op->token, STORE_TOKEN_LEN);
		jw_lit(&w, "\",\"ttl\":");
		jw_u64(&w, op->ttl);
		jw_lit(&w, ",\"label\":");
		if (op->label)
			jw_str(&w, op->label, op->llen);
		else
			jw_lit(&w, "null");
		jw_lit(&w, ",\"expires_in_ms\":");
		jw_u64(&w, (uint64_t)op->ttl * 1000);
		jw_lit(&w, ",\"node\":");
		jw_str(&w, op->cl->cfg->node, strlen(op->cl->cfg->node));
		jw_lit(&w, "}");
		reply_jw(rep, 201, &w);
		break;
	case OP_NAME_PUT:
		if (op->status == 409) {
			jw_lit(&w, "{\"error\":\"name_taken\",\"message\":\"Another session holds this name; owner is its id.\",\"owner\":\"");
			jw_raw(&w, op->owner, STORE_ID_LEN);
			jw_lit(&w, "\"}");
			reply_jw(rep, 409, &w);
			break;
		}
		jw_value_answer(&w, "key", op->key, op->klen, op->sid, op->value, op->vlen);
		reply_jw(rep, op->status, &w);
		break;
	case OP_ENTRY_PUT:
		jw_value_answer(&w, op->group ? "group" : "key", op->key, op->klen, op->sid, op->value, op->vlen);
		reply_jw(rep, op->status, &w);
		break;
	case OP_SESSION_TTL: {
		/* etcd has the new ttl: now the lease here takes it, and a heartbeat */
		struct store_session *s = store_session_find(op->cl->st, req->now, op->sid, STORE_ID_LEN);
		if (!s || s->remote) {
			reply_error(rep, ERR_SESSION_NOT_FOUND, NULL);
			break;
		}
		store_session_heartbeat(op->cl->st, req->now, s, op->ttl);
		jw_lit(&w, "{");
		jw_field(&w, "id", s->id, STORE_ID_LEN);
		jw_lit(&w, ",\"ttl\":");
		jw_u64(&w, s->ttl);
		jw_lit(&w, ",\"expires_in_ms\":");
		jw_u64(&w, store_session_expires_in(s, req->now));
		jw_lit(&w, "}");
		reply_jw(rep, 200, &w);
		break;
	}
	case OP_MAIL:
		if (op->status == 202) { /* a send to one receiver */
			jw_lit(&w, "{\"delivered\":1}");
			reply_jw(rep, 202, &w);
			break;
		}
		reply_empty(rep, 204); /* a reply */
		break;
	default:
		reply_empty(rep, 204);
		break;
	}
}

void cluster_session_create(struct http_request *req, struct http_reply *rep, unsigned ttl, const char *label,
			    size_t label_len)
{
	struct cluster *cl = req->app->cluster;
	struct op *op;
	unsigned char raw[24];

	if (ttl == 0)
		ttl = cl->cfg->default_ttl;
	if (ttl < 1 || ttl > cl->cfg->max_ttl) {
		reply_error(rep, ERR_INVALID_TTL, NULL);
		return;
	}
	if (cl->me->sessions >= cl->cfg->max_sessions) {
		reply_error(rep, ERR_LIMIT_REACHED, "This node homes --max-sessions sessions.");
		return;
	}
	op = op_new(req, rep, OP_SESSION_CREATE);
	if (!op)
		return;
	daemon_random(NULL, raw, sizeof(raw));
	store_hex(raw, 8, op->sid);
	store_hex(raw + 8, 16, op->token);
	op->ttl = ttl;
	if (label) {
		op->label = store_dup(label, label_len);
		op->llen = label_len;
		if (!op->label) {
			op_free(op);
			reply_error(rep, ERR_NO_MEMORY, NULL);
			return;
		}
	}
	op_start(op, rep);
}

void cluster_session_ttl(struct http_request *req, struct http_reply *rep, struct store_session *s, unsigned ttl)
{
	struct op *op = op_new(req, rep, OP_SESSION_TTL);

	if (!op)
		return;
	memcpy(op->sid, s->id, sizeof(op->sid));
	memcpy(op->token, s->token, sizeof(op->token));
	op->ttl = ttl;
	if (s->label) {
		op->label = store_dup(s->label, s->label_len);
		op->llen = s->label_len;
		if (!op->label) {
			op_free(op);
			reply_error(rep, ERR_NO_MEMORY, NULL);
			return;
		}
	}
	op_start(op, rep);
}

void cluster_session_delete(struct http_request *req, struct http_reply *rep, struct store_session *s)
{
	struct op *op = op_new(req, rep, OP_SESSION_END);

	if (!op)
		return;
	memcpy(op->sid, s->id, sizeof(op->sid));
	op_start(op, rep);
}

static bool keys_full(const struct cluster *cl, const struct store_session *s)
{
	return s->n_names + s->n_props + s->n_groups >= cl->cfg->max_keys_per_session;
}

/* Starts a write of kind for the caller's session on key (and value, NULL
 * for a delete), answering status when it succeeds. */
static void start_keyed(struct http_request *req, struct http_reply *rep, enum op_kind kind, bool group,
			const char *key, size_t klen, const char *value, size_t vlen, int status)
{
	struct op *op = op_new(req, rep, kind);

	if (!op)
		return;
	op->group = group;
	op->status = status;
	memcpy(op->sid, req->caller->id, sizeof(op->sid));
	op->key = store_dup(key, klen);
	op->klen = klen;
	if (value) {
		op->value = store_dup(value, vlen);
		op->vlen = vlen;
	}
	if (!op->key || (value && !op->value)) {
		op_free(op);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return;
	}
	op_start(op, rep);
}

void cluster_name_put(struct http_request *req, struct http_reply *rep, const char *key, size_t klen,
		      const char *value, size_t vlen)
{
	struct cluster *cl = req->app->cluster;
	struct store_name *nm = store_name_get(cl->st, key, klen);

	if (!(nm && nm->owner == req->caller) && keys_full(cl, req->caller)) {
		reply_store_error(rep, STORE_E_LIMIT);
		return;
	}
	start_keyed(req, rep, OP_NAME_PUT, false, key, klen, value, vlen, 201);
}

void cluster_name_delete(struct http_request *req, struct http_reply *rep, const char *key, size_t klen)
{
	struct store_name *nm = store_name_get(req->app->cluster->st, key, klen);

	if (!nm)
		reply_error(rep, ERR_NAME_NOT_FOUND, NULL);
	else if (nm->owner != req->caller)
		reply_error(rep, ERR_NOT_OWNER, NULL);
	else
		start_keyed(req, rep, OP_NAME_DELETE, false, key, klen, NULL, 0, 204);
}

void cluster_entry_put(struct http_request *req, struct http_reply *rep, bool group, const char *key, size_t klen,
		       const char *value, size_t vlen)
{
	struct cluster *cl = req->app->cluster;
	bool held = store_entry_get(cl->st, group, req->caller, key, klen) != NULL;

	if (!held && keys_full(cl, req->caller)) {
		reply_store_error(rep, STORE_E_LIMIT);
		return;
	}
	start_keyed(req, rep, OP_ENTRY_PUT, group, key, klen, value, vlen, held ? 200 : 201);
}

void cluster_entry_delete(struct http_request *req, struct http_reply *rep, bool group, const char *key,
			  size_t klen)
{
	if (!store_entry_get(req->app->cluster->st, group, req->caller, key, klen))
		reply_error(rep, ERR_NOT_HELD, NULL);
	else
		start_keyed(req, rep, OP_ENTRY_DELETE, group, key, klen, NULL, 0, 204);
}

/* A home session's lease ran out: etcd ends it (the copy releases it when
 * the watch brings the delete). Not tied to a request. */
static void expire_send(struct op *op);

/* etcd took the end (or the record was gone already): done. No answer:
 * the end waits on the cluster's list and is tried again, however long
 * etcd is away, until it is taken or this node's standing ends (then every
 * session of ours ends anyway). Meanwhile the session is not live here. */
static void expire_done(void *ctx, const struct httpc_result *res)
{
	struct op *op = ctx;
	struct cluster *cl = op->cl;
	struct etcd_txn_result t;
	uint64_t wait;

	if (txn_result(res, &t) == ETCD_OK) {
		if (t.succeeded) {
			clean_append(cl, op->leftover);
			op->leftover = NULL;
		}
		etcd_txn_result_free(&t);
		op_free(op);
		return;
	}
	if (cl->leaving) {
		op_free(op);
		return;
	}
	wait = (uint64_t)RETRY_MS << (op->tries < 4 ? op->tries : 4); /* 0.5 s up to 8 s */
	op->tries++;
	op->next_try = daemon_now_ms() + wait;
	op->fnext = cl->expiring;
	cl->expiring = op;
}

static void expire_send(struct op *op)
{
	struct cluster *cl = op->cl;
	struct store_session *s = store_session_lookup(cl->st, op->sid, STORE_ID_LEN);
	struct etcd_txn tx = { 0 };
	size_t len;
	char *body;

	if (!s || !s->ending || cl->state == CLUSTER_FENCED || cl->leaving) { /* ended some other way */
		op_free(op);
		return;
	}
	clean_free(op->leftover);
	op->leftover = NULL;
	end_ops(op, &tx, s, false);
	body = etcd_txn_finish(&tx, &len);
	if (!body || !etcd_post(cl, "/v3/kv/txn", body, len, true, WRITE_TIMEOUT_MS, expire_done, op, NULL)) {
		struct httpc_result none = { 0 };
		none.body = "";
		none.error = "out of memory";
		free(body);
		expire_done(op, &none); /* tried again later */
		return;
	}
	free(body);
}

static void expiring_free(struct cluster *cl)
{
	while (cl->expiring) {
		struct op *op = cl->expiring;
		cl->expiring = op->fnext;
		op_free(op);
	}
}

/* The ends due again. */
static void expire_retry(struct cluster *cl, uint64_t now)
{
	struct op **pp = &cl->expiring, *op;

	while ((op = *pp)) {
		if (op->next_try > now) {
			pp = &op->fnext;
			continue;
		}
		*pp = op->fnext;
		op->fnext = NULL;
		expire_send(op);
	}
}

static void on_lease_due(void *ctx, struct store_session *s)
{
	struct cluster *cl = ctx;
	struct op *op;

	if (cl->state == CLUSTER_FENCED || cl->leaving)
		return;
	fprintf(stderr, "rollcall: info: session %s expired (ttl %u s), releasing %zu names, %zu props, %zu groups\n",
		s->id, s->ttl, s->n_names, s->n_props, s->n_groups);
	op = calloc(1, sizeof(*op));
	if (!op) { /* the session stays ending here; fencing or a restart ends it */
		fprintf(stderr, "rollcall: cluster: out of memory ending session %s\n", s->id);
		return;
	}
	op->cl = cl;
	op->kind = OP_SESSION_END;
	op->expired = true;
	memcpy(op->sid, s->id, sizeof(op->sid));
	expire_send(op);
}

void cluster_lease_due(void *app, struct store_session *s)
{
	struct cluster *cl = ((struct app *)app)->cluster;

	if (cl)
		on_lease_due(cl, s);
}

/* --- forwards and the router --- */

static void forward_done(void *ctx, const struct httpc_result *res)
{
	struct op *op = ctx;
	struct cluster *cl = op->cl;

	op->hr = NULL;
	forward_unlink(op);
	mail_note(cl->mail, op->home, res->status == 0, now_us() - op->sent_us);
	if (!op->req) {
		op_free(op);
		return;
	}
	if (res->status == 0) {
		cl->forward_failures++;
		op->kind = OP_CATCH_UP; /* answered as an error */
		op_fail(op, ERR_NODE_UNREACHABLE, NULL);
		return;
	}
	op->status = res->status;
	op->body = res->body_len ? store_dup(res->body, res->body_len) : NULL;
	op->blen = op->body ? res->body_len : 0;
	op->ctype = res->content_type ? strdup(res->content_type) : NULL;
	op->allow = res->allow ? strdup(res->allow) : NULL;
	op->wwwa = res->www_authenticate ? strdup(res->www_authenticate) : NULL;
	op->node = res->x_node ? strdup(res->x_node) : NULL;
	if (res->x_index && etcd_parse_int64(res->x_index, strlen(res->x_index), (int64_t *)&op->index)) {
		op->with_index = true;
		/* read your writes here too: a write's index must show in this copy */
		if (op->req->method != HTTP_GET && op->req->method != HTTP_HEAD && res->status < 300)
			op->rev = op->index;
	}
	op_finish(op);
}

static void touch_done(void *ctx, const cJSON *r, bool timed_out)
{
	(void)ctx;
	(void)r;
	(void)timed_out;
}

/* The deadline of a forward: a receive's wait (the node there answers at
 * it) and some slack; else 15 s. (Sends and calls are not forwarded: they
 * go through the mail.) */
static unsigned forward_timeout(struct http_request *req)
{
	const char *v;
	size_t n;
	uint64_t wait = 0;

	if (uri_query_find(req->query, req->query_len, "wait", &v, &n)) {
		struct http_reply scratch = { 0 };
		if (!query_uint(req, &scratch, "wait", 0, &wait) || wait > 300)
			wait = 0;
		http_reply_clear(&scratch);
	}
	/* a write at the home may take etcd's 7 s, and 10 s more for its copy */
	return (unsigned)wait * 1000 + (req->method == HTTP_GET || req->method == HTTP_HEAD ? 15000 : 30000);
}

static void forward_unlink(struct op *op)
{
	struct cluster *cl = op->cl;

	if (!op->listed)
		return;
	if (op->fprev)
		op->fprev->fnext = op->fnext;
	else
		cl->fwd = op->fnext;
	if (op->fnext)
		op->fnext->fprev = op->fprev;
	op->fprev = op->fnext = NULL;
	op->listed = false;
}

/* The node `home` is gone: forwards waiting on it end now (a call's
 * receiver with it: receiver_gone), not at their deadline. */
static void forwards_fail(struct cluster *cl, const char *home)
{
	struct op *op, *next;

	for (op = cl->fwd; op; op = next) {
		next = op->fnext;
		if (strcmp(op->home, home))
			continue;
		forward_unlink(op);
		cl->forward_failures++;
		if (op->kind == OP_MAIL) { /* a call delivered there, waiting */
			op->status = 0;
			op->done = true;
			op->err = ERR_RECEIVER_GONE;
			op->msg = "The called session's node was lost, or the connection to it broke, while the call waited.";
			store_call_fail(cl->st, op->call);
			continue;
		}
		if (op->hr)
			httpc_cancel(cl->hc, op->hr);
		op->hr = NULL;
		op->kind = OP_CATCH_UP; /* answered as an error */
		op_fail(op, ERR_NODE_UNREACHABLE, NULL);
	}
}

/* Sends req as it came to node nd, to be answered from there. A request
 * that came from a node is not forwarded again (cluster_route), so a wrong
 * --advertise cannot make one loop. */
static void forward(struct cluster *cl, struct http_request *req, struct http_reply *rep, const struct node *nd)
{
	const char *url = nd->url;

	static const char *methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "GET" };
	struct op *op = op_new(req, rep, OP_FORWARD);
	struct httpc_opts o = { 0 };
	char *full, tokh[300], secret[80], accept[300], auth[300];
	const char *hdrs[7];
	size_t nh = 0, n;
	unsigned timeout;

	if (!op)
		return;
	timeout = forward_timeout(req);
	snprintf(op->home, sizeof(op->home), "%s", nd->name);
	n = strlen(url) + req->path_len + (req->query ? req->query_len + 1 : 0) + 1;
	full = malloc(n);
	if (!full) {
		op_free(op);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return;
	}
	snprintf(full, n, "%s%.*s%s%.*s", url, (int)req->path_len, req->path, req->query ? "?" : "",
		 req->query ? (int)req->query_len : 0, req->query ? req->query : "");
	if (req->token && strlen(req->token) < 200) {
		snprintf(tokh, sizeof(tokh), "X-Session-Token: %s", req->token);
		hdrs[nh++] = tokh;
	}
	if (req->authorization && strlen(req->authorization) < 250) {
		snprintf(auth, sizeof(auth), "Authorization: %s", req->authorization);
		hdrs[nh++] = auth;
	}
	if (req->accept && strlen(req->accept) < 250) {
		snprintf(accept, sizeof(accept), "Accept: %s", req->accept);
		hdrs[nh++] = accept;
	}
	snprintf(secret, sizeof(secret), "X-Rollcall-Forward: %s", cl->secret);
	hdrs[nh++] = secret;
	hdrs[nh++] = "Content-Type: application/json";
	hdrs[nh] = NULL;
	o.method = methods[req->method];
	o.url = full;
	o.body = req->body_len ? req->body : NULL;
	o.body_len = req->body_len;
	o.headers = hdrs;
	o.timeout_ms = timeout;
	o.on_done = forward_done;
	o.ctx = op;
	cl->forwards++;
	req->cl_op = op;
	op->sent_us = now_us();
	op->hr = httpc_start(cl->hc, &o);
	free(full);
	if (!op->hr) {
		req->cl_op = NULL;
		op_free(op);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return;
	}
	op->listed = true;
	op->fnext = cl->fwd;
	if (cl->fwd)
		cl->fwd->fprev = op;
	cl->fwd = op;
	rep->suspend = true;
}

bool cluster_from_node(const struct http_request *req)
{
	const struct cluster *cl = req->app->cluster;

	return cl && req->forward_secret && cl->secret[0] && strlen(req->forward_secret) == 32 &&
	       !memcmp(req->forward_secret, cl->secret, 32);
}

static void jw_list_add(struct jw *w, const char *items, size_t n)
{
	if (!n)
		return;
	if (w->len)
		jw_lit(w, ",");
	jw_raw(w, items, n);
}

/* --- messages, calls and replies for other nodes: the mail (mail.h) ---
 * An item for a node is a JSON object:
 *   a message: {"from": id|null, "to": target, "body": json,
 *               "receivers": [ids homed there], "reply_to": call id (a call)}
 *     -> {"delivered": n, "full": [ids], "gone": [ids that had ended]}
 *   a reply:   {"reply": call id, "by": replier's id, "body": json}
 *     -> {"status": 204} or {"error": "call_not_found" | "bad_token"} */

/* A message item: receivers is ids (quoted, comma-separated, n bytes). */
static char *message_item(const struct store_payload *p, const char *receivers, size_t n, const char *reply_to,
			  size_t *len)
{
	struct jw w = { 0 };

	jw_lit(&w, "{\"from\":");
	if (p->from[0])
		jw_str(&w, p->from, STORE_ID_LEN);
	else
		jw_lit(&w, "null");
	jw_lit(&w, ",\"to\":");
	jw_raw(&w, p->to, p->tolen);
	jw_lit(&w, ",\"body\":");
	jw_raw(&w, p->body, p->blen);
	jw_lit(&w, ",\"receivers\":[");
	jw_raw(&w, receivers, n);
	jw_lit(&w, "]");
	if (reply_to) {
		jw_lit(&w, ",");
		jw_field(&w, "reply_to", reply_to, STORE_CALL_ID_LEN);
	}
	jw_lit(&w, "}");
	return jw_finish(&w, len);
}

/* What a node said of a message item: how many it delivered, and whether
 * its one receiver was full. */
static uint64_t result_delivered(const cJSON *r, bool *full)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "delivered");
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "full");

	*full = cJSON_GetArraySize(f) > 0;
	return cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble < 1e15 ? (uint64_t)d->valuedouble : 0;
}

/* A failed send to a round-robin pick gives the member its turn back. */
static void give_turn_back(struct op *op)
{
	struct store_session *s;
	struct store_entry *e;

	if (!op->rr_group)
		return;
	s = store_session_lookup(op->cl->st, op->sid, STORE_ID_LEN);
	e = s ? store_entry_get(op->cl->st, true, s, op->rr_group, op->rr_glen) : NULL;
	if (e)
		store_group_unpick(e);
}

/* An OP_MAIL op for req that posts message p (reply_to: a call's id, or
 * NULL) to the home of its one receiver, to; done hears the home's result.
 * rr_group: a round-robin pick's group, whose turn comes back if the home
 * cannot be reached. NULL when answered (an error): nothing was sent. */
static struct op *post_message(struct http_request *req, struct http_reply *rep, const struct store_session *to,
			       const struct store_payload *p, const char *reply_to, const char *rr_group,
			       size_t rr_glen, mail_done_fn done)
{
	struct cluster *cl = req->app->cluster;
	struct node *nd = to->home ? node_find(cl, to->home, strlen(to->home)) : NULL;
	struct op *op = op_new(req, rep, OP_MAIL);
	char ids[STORE_ID_LEN + 2], *item = NULL;
	size_t len;

	if (!op)
		return NULL;
	memcpy(op->sid, to->id, STORE_ID_LEN + 1);
	op->rr_glen = rr_glen;
	if (rr_group && !(op->rr_group = store_dup(rr_group, rr_glen)))
		goto nomem;
	if (!nd || !nd->url || nd == cl->me) {
		give_turn_back(op); /* the node, not the member, failed: it keeps its turn */
		reply_error(rep, ERR_NODE_UNREACHABLE, NULL);
		op_free(op);
		return NULL;
	}
	ids[0] = '"';
	memcpy(ids + 1, to->id, STORE_ID_LEN);
	ids[STORE_ID_LEN + 1] = '"';
	item = message_item(p, ids, sizeof(ids), reply_to, &len);
	snprintf(op->home, sizeof(op->home), "%s", nd->name);
	op->mi = item ? mail_post(cl->mail, nd->name, nd->url, item, len, done, op) : NULL;
	if (!op->mi && item) { /* MAIL_MAX_QUEUED wait for that node already */
		free(item);
		give_turn_back(op);
		reply_error(rep, ERR_NODE_UNREACHABLE, "Too many messages wait for the receiver's node; nothing was delivered.");
		op_free(op);
		return NULL;
	}
	free(item);
	if (!op->mi)
		goto nomem;
	cl->forwards++;
	cl->messages_forwarded++;
	req->cl_op = op;
	return op;
nomem:
	give_turn_back(op);
	reply_error(rep, ERR_NO_MEMORY, NULL);
	op_free(op);
	return NULL;
}

static void send_done(void *ctx, const cJSON *r, bool timed_out)
{
	struct op *op = ctx;
	bool full;

	(void)timed_out;
	op->mi = NULL;
	if (!r) {
		op->cl->forward_failures++;
		give_turn_back(op);
		op_fail(op, ERR_NODE_UNREACHABLE, "The receiver's node could not be reached; nothing was delivered.");
	} else if (result_delivered(r, &full)) {
		op->status = 202;
		op_finish(op);
	} else {
		/* a full member loses its turn, as on one node */
		op_fail(op, full ? ERR_MAILBOX_FULL : ERR_SESSION_NOT_FOUND, NULL);
	}
}

void cluster_send_to(struct http_request *req, struct http_reply *rep, const struct store_session *to,
		     const struct store_payload *p, const char *rr_group, size_t rr_glen)
{
	if (post_message(req, rep, to, p, NULL, rr_group, rr_glen, send_done))
		rep->suspend = true;
}

static void call_done(void *ctx, const cJSON *r, bool timed_out)
{
	struct op *op = ctx;
	struct cluster *cl = op->cl;
	bool full = false;

	(void)timed_out;
	op->mi = NULL;
	if (r && result_delivered(r, &full)) { /* delivered: the call waits, failed if the home is lost */
		op->listed = true;
		op->fnext = cl->fwd;
		if (cl->fwd)
			cl->fwd->fprev = op;
		cl->fwd = op;
		return;
	}
	op->status = 0;
	op->done = true;
	if (!r) {
		cl->forward_failures++;
		give_turn_back(op);
		op->err = ERR_RECEIVER_GONE;
		op->msg = "The called session's node could not be reached; the call was not delivered.";
	} else {
		op->err = full ? ERR_MAILBOX_FULL : ERR_RECEIVER_GONE;
	}
	store_call_fail(cl->st, op->call); /* the caller wakes, and answers op's error */
}

bool cluster_call_to(struct http_request *req, struct http_reply *rep, const struct store_session *to,
		     const struct store_payload *p, struct store_call *c, const char *rr_group, size_t rr_glen)
{
	struct op *op = post_message(req, rep, to, p, c->id, rr_group, rr_glen, call_done);

	if (!op)
		return false;
	op->call = c;
	return true;
}

bool cluster_call_failed(struct http_request *req, struct http_reply *rep)
{
	struct op *op = req->cl_op;

	if (!op || op->kind != OP_MAIL || !op->done || op->status != 0)
		return false;
	reply_error(rep, op->err, op->msg);
	return true;
}

static void reply_done(void *ctx, const cJSON *r, bool timed_out)
{
	struct op *op = ctx;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(r, "error");

	(void)timed_out;
	op->mi = NULL;
	if (!r) {
		op->cl->forward_failures++;
		op_fail(op, ERR_NODE_UNREACHABLE, "The caller's node could not be reached; the reply was not delivered.");
	} else if (cJSON_IsNumber(st) && st->valuedouble == 204) {
		op->status = 204;
		op_finish(op);
	} else if (cJSON_IsString(err) && !strcmp(err->valuestring, "bad_token")) {
		op_fail(op, ERR_BAD_TOKEN, "This token is not the called session's.");
	} else {
		op_fail(op, ERR_CALL_NOT_FOUND, NULL);
	}
}

bool cluster_reply_elsewhere(struct http_request *req, struct http_reply *rep, const char *body, size_t blen)
{
	struct cluster *cl = req->app->cluster;
	struct node *nd = node_of_call(cl, req->param, req->param_len);
	struct op *op;
	struct jw w = { 0 };
	char *item;
	size_t len;

	if (!nd || nd == cl->me || req->param_len != STORE_CALL_ID_LEN)
		return false; /* held here, or by no live node: the store says */
	if (!req->caller) {
		reply_error(rep, ERR_BAD_TOKEN, "This token is not the called session's.");
		return true;
	}
	if (!nd->url) {
		reply_error(rep, ERR_NODE_UNREACHABLE, NULL);
		return true;
	}
	op = op_new(req, rep, OP_MAIL);
	if (!op)
		return true;
	jw_lit(&w, "{");
	jw_field(&w, "reply", req->param, STORE_CALL_ID_LEN);
	jw_lit(&w, ",");
	jw_field(&w, "by", req->caller->id, STORE_ID_LEN);
	jw_lit(&w, ",\"body\":");
	jw_raw(&w, body, blen);
	jw_lit(&w, "}");
	item = jw_finish(&w, &len);
	snprintf(op->home, sizeof(op->home), "%s", nd->name);
	op->mi = item ? mail_post(cl->mail, nd->name, nd->url, item, len, reply_done, op) : NULL;
	free(item);
	if (!op->mi) {
		op_free(op);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return true;
	}
	cl->forwards++;
	req->cl_op = op;
	rep->suspend = true;
	return true;
}

/* A connection to peer broke: the calls delivered there and waiting fail
 * now (api.md: at once when the connection to the home breaks). */
static void mail_broken(void *ctx, const char *peer)
{
	forwards_fail(ctx, peer);
}

/* One node's share of a broadcast has answered (or could not). */
static void fan_done(void *ctx, const cJSON *r, bool timed_out)
{
	struct fan *f = ctx;
	struct op *op = f->op;
	const cJSON *full, *id;
	bool any_full;

	(void)timed_out;
	if (r) {
		op->delivered += result_delivered(r, &any_full);
		full = cJSON_GetObjectItemCaseSensitive(r, "full");
		cJSON_ArrayForEach(id, full) {
			if (!cJSON_IsString(id) || strlen(id->valuestring) != STORE_ID_LEN)
				continue;
			if (op->full.len)
				jw_lit(&op->full, ",");
			jw_str(&op->full, id->valuestring, STORE_ID_LEN);
		}
	} else {
		op->cl->forward_failures++;
		jw_list_add(&op->unreachable, f->ids.buf, f->ids.len);
	}
	free(f->ids.buf);
	free(f);
	if (--op->pending)
		return;
	if (!op->req) {
		op_free(op);
		return;
	}
	op->status = 202;
	op_finish(op);
}

static int by_home(const void *a, const void *b)
{
	const struct store_session *x = *(struct store_session *const *)a, *y = *(struct store_session *const *)b;

	return strcmp(x->home ? x->home : "", y->home ? y->home : "");
}

void cluster_fanout(struct http_request *req, struct http_reply *rep, struct store_session *const *to, size_t n,
		    const struct store_payload *p, size_t local_delivered, const char *full_ids, size_t len)
{
	struct cluster *cl = req->app->cluster;
	struct store_session **ss = n ? malloc(n * sizeof(*ss)) : NULL;
	struct op *op = calloc(1, sizeof(*op));
	size_t i, j;

	if ((n && !ss) || !op) {
		free(ss);
		free(op);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return;
	}
	op->cl = cl;
	op->req = req;
	op->kind = OP_FANOUT;
	op->delivered = local_delivered;
	jw_raw(&op->full, full_ids ? full_ids : "", len);
	if (n)
		memcpy(ss, to, n * sizeof(*ss));
	if (n)
		qsort(ss, n, sizeof(*ss), by_home);
	req->cl_op = op;
	for (i = 0; i < n; i = j) {
		struct fan *f = calloc(1, sizeof(*f));
		struct node *nd = ss[i]->home ? node_find(cl, ss[i]->home, strlen(ss[i]->home)) : NULL;
		size_t blen = 0;
		char *b;

		for (j = i; j < n && !by_home(&ss[i], &ss[j]); j++) {
			if (f) {
				if (f->ids.len)
					jw_lit(&f->ids, ",");
				jw_str(&f->ids, ss[j]->id, STORE_ID_LEN);
			}
		}
		if (!f)
			continue; /* out of memory: they count as nothing (rare) */
		f->op = op;
		b = nd && nd->url && nd != cl->me && !f->ids.oom ? message_item(p, f->ids.buf, f->ids.len, NULL, &blen)
								 : NULL;
		cl->forwards++;
		if (b && mail_post(cl->mail, nd->name, nd->url, b, blen, fan_done, f)) {
			op->pending++;
			cl->messages_forwarded++;
		} else {
			jw_list_add(&op->unreachable, f->ids.buf, f->ids.len);
			free(f->ids.buf);
			free(f);
		}
		free(b);
	}
	free(ss);
	if (!op->pending) { /* nothing went out: answer now */
		op->status = 202;
		op->done = true;
		cluster_answer(req, rep);
		return;
	}
	rep->suspend = true;
}

/* A read here carried the token of a session homed on nd: a sign of life
 * that its home must hear (a heartbeat sent on, its answer not awaited). */
static void touch_home(struct cluster *cl, const struct node *nd, const struct store_session *s)
{
	char item[80];
	int n;

	if (!nd || !nd->url || nd == cl->me)
		return;
	n = snprintf(item, sizeof(item), "{\"touch\":\"%s\"}", s->id);
	mail_post(cl->mail, nd->name, nd->url, item, (size_t)n, touch_done, NULL);
}

/* The node's copy may lag: learn etcd's current revision, wait for it. */
static void catch_up_done(void *ctx, const struct httpc_result *res)
{
	struct op *op = ctx;
	struct etcd_range r;
	struct etcd_error err;

	op->hr = NULL;
	if (!op->req) {
		op_free(op);
		return;
	}
	if (res->status != 200 || etcd_parse_range(res->body, res->body_len, &r, &err) != ETCD_OK) {
		/* without etcd's word, "unknown" or "beyond" cannot be said */
		op_fail(op, ERR_CLUSTER_UNAVAILABLE, "etcd could not be asked how far the registry is; try again.");
		return;
	}
	op->rev = (uint64_t)r.h.revision;
	etcd_range_free(&r);
	op->status = 200;
	op_finish(op);
}

static void catch_up(struct cluster *cl, struct http_request *req, struct http_reply *rep)
{
	struct op *op = op_new(req, rep, OP_CATCH_UP);
	char *k, *body;
	size_t n, len;

	if (!op)
		return;
	n = key_of(cl, 'n', cl->cfg->node, strlen(cl->cfg->node), NULL, 0, &k);
	body = n ? etcd_range_body(k, n, NULL, 0, 1, false, 0, &len) : NULL;
	free(k);
	req->cl_op = op;
	req->caught_up = true;
	if (!body || !etcd_post(cl, "/v3/kv/range", body, len, false, READ_TIMEOUT_MS, catch_up_done, op, &op->hr)) {
		req->cl_op = NULL;
		op_free(op);
		free(body);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return;
	}
	free(body);
	rep->suspend = true;
}

/* The ?min_index= of a request (0 when absent or bad). */
static uint64_t min_of_query(struct http_request *req)
{
	struct http_reply scratch = { 0 };
	uint64_t v = 0;

	if (!query_uint(req, &scratch, "min_index", 0, &v))
		v = 0;
	http_reply_clear(&scratch);
	return v;
}

/* Where an event listing starts: ?after=, else Last-Event-ID, else 0
 * (now). False when either is malformed. */
static bool event_after(struct http_request *req, uint64_t *after)
{
	struct http_reply scratch = { 0 };
	const char *v, *p;
	size_t n;
	bool ok = true;

	*after = 0;
	if (uri_query_find(req->query, req->query_len, "after", &v, &n)) {
		ok = query_uint(req, &scratch, "after", 0, after);
		http_reply_clear(&scratch);
		return ok;
	}
	if (!req->last_event_id)
		return true;
	for (p = req->last_event_id; *p >= '0' && *p <= '9' && *after < UINT64_MAX / 10; p++)
		*after = *after * 10 + (uint64_t)(*p - '0');
	return !*p && p != req->last_event_id;
}

/* POST /v1/send, /v1/call, /v1/replies/{id}. */
static bool message_path(const struct http_request *req)
{
	return req->method == HTTP_POST &&
	       ((req->path_len == 8 && (!memcmp(req->path, "/v1/send", 8) || !memcmp(req->path, "/v1/call", 8))) ||
		(req->path_len > 12 && !memcmp(req->path, "/v1/replies/", 12)));
}

bool cluster_route(struct http_request *req, struct http_reply *rep, bool session_path)
{
	struct cluster *cl = req->app->cluster;
	struct store_session *s = NULL;
	const char *v;
	size_t n;
	uint64_t min, after = 0;
	bool has_min;
	bool from_node = cluster_from_node(req);
	enum store_wake woke = 0;

	/* A wait of the routing's own (catch-up, min_index, a forward) is not
	 * the handler's: the handler sees its first call. */
	if (req->routed_wait) {
		req->routed_wait = false;
		woke = req->wake;
		req->wake = 0;
		if (woke == STORE_WAKE_SHUTDOWN && !req->cl_op) {
			reply_error(rep, ERR_SHUTTING_DOWN, NULL);
			return false;
		}
	}

	if (req->cl_op) {
		struct op *op = req->cl_op;
		if (op->kind == OP_FANOUT || op->kind == OP_MAIL)
			return true; /* the handler answers it */
		if (op->kind == OP_FORWARD || (op->kind == OP_CATCH_UP && op->status == 0)) {
			cluster_answer(req, rep);
			return false;
		}
		if (op->kind == OP_CATCH_UP) { /* caught up: route again */
			req->etcd_rev = op->rev;
			cluster_request_done(req);
			if (store_index(cl->st) < req->etcd_rev) { /* the copy did not get there in 10 s */
				reply_error(rep, ERR_CLUSTER_UNAVAILABLE, "This node's copy is behind etcd; try again.");
				return false;
			}
		} else {
			return true; /* a write of the handler's, resumed */
		}
	}
	if (!cl->loaded) {
		reply_error(rep, ERR_CLUSTER_UNAVAILABLE, "This node has no copy of the registry yet: etcd cannot be reached.");
		return false;
	}
	/* An index ahead of this copy: ?min_index=, or where an event
	 * listing starts. Waited for, once etcd says it has it. */
	has_min = uri_query_find(req->query, req->query_len, "min_index", &v, &n);
	if (has_min && !query_uint(req, rep, "min_index", 0, &min))
		return false;
	if (!has_min)
		min = 0;
	if (req->path_len == 10 && !memcmp(req->path, "/v1/events", 10) && !event_after(req, &after))
		return true; /* the handler says what is wrong */
	if (after > min)
		min = after;
	if (min > store_index(cl->st)) {
		if (!req->caught_up) {
			catch_up(cl, req, rep);
			return false;
		}
		if (min > req->etcd_rev) { /* beyond anything etcd has */
			if (has_min && min_of_query(req) > req->etcd_rev) {
				reply_error(rep, ERR_CLUSTER_UNAVAILABLE, "min_index is beyond anything etcd has.");
				return false;
			}
			req->beyond = true; /* the event listing starts over (reset) */
		} else if (woke == STORE_WAKE_TIMEOUT) {
			reply_error(rep, ERR_CLUSTER_UNAVAILABLE, "This node's copy did not reach that index within 10 s.");
			return false;
		} else {
			if (store_index_wait(cl->st, min, req->now + APPLY_WAIT_MS, &req->waiter) != STORE_OK) {
				reply_error(rep, ERR_LIMIT_REACHED, NULL);
				return false;
			}
			rep->suspend = true;
			return false;
		}
	}
	if (from_node)
		return true;
	/* a node's own listing of its sessions, with every field */
	if (req->path_len == 12 && !memcmp(req->path, "/v1/sessions", 12) &&
	    uri_query_find(req->query, req->query_len, "node", &v, &n)) {
		char name[65];
		size_t nlen;
		struct node *nd;
		if (uri_decode(v, n, true, name, sizeof(name), &nlen) && (nd = node_find(cl, name, nlen)) && nd != cl->me &&
		    nd->url) {
			forward(cl, req, rep, nd);
			return false;
		}
	}
	if (req->token) {
		/* Reads, and sends, calls and replies (which act for no session
		 * but carry its id as their from), are served here; a write
		 * acting for a session goes to its home. */
		bool read = req->method == HTTP_GET || req->method == HTTP_HEAD, msg = message_path(req);
		s = store_session_by_token(cl->st, req->now, req->token, strlen(req->token));
		if (!s && !read && !req->caught_up && !req->wake && !woke) {
			catch_up(cl, req, rep);
			return false;
		}
		if (s && s->remote) {
			struct node *nd = node_find(cl, s->home, strlen(s->home));
			if (read || msg) { /* served here; the home hears the sign of life */
				touch_home(cl, nd, s);
			} else if (!nd || !nd->url) {
				reply_error(rep, ERR_NODE_UNREACHABLE, NULL);
				return false;
			} else { /* a write acts for the session: its home does it */
				forward(cl, req, rep, nd);
				return false;
			}
		}
	}
	if (session_path) {
		s = store_session_lookup(cl->st, req->param, req->param_len);
		if (!s && !req->caught_up && !req->wake && !woke) {
			catch_up(cl, req, rep);
			return false;
		}
		if (s && s->remote) {
			struct node *nd = node_find(cl, s->home, strlen(s->home));
			if (!nd || !nd->url) {
				reply_error(rep, ERR_NODE_UNREACHABLE, NULL);
				return false;
			}
			forward(cl, req, rep, nd);
			return false;
		}
	}
	return true;
}

/* --- nodes and stats --- */

void cluster_nodes(struct http_request *req, struct http_reply *rep)
{
	struct cluster *cl = req->app->cluster;
	struct jw w = { 0 };
	struct node *nd;

	jw_lit(&w, "{\"nodes\":[");
	for (nd = cl->nodes; nd; nd = nd->next) {
		if (nd != cl->nodes)
			jw_lit(&w, ",");
		jw_lit(&w, "{");
		jw_field(&w, "node", nd->name, strlen(nd->name));
		jw_lit(&w, ",");
		jw_field(&w, "url", nd->url ? nd->url : "", nd->url ? strlen(nd->url) : 0);
		jw_lit(&w, ",\"sessions\":");
		jw_u64(&w, nd->sessions);
		jw_lit(&w, ",");
		jw_field(&w, "since", nd->since, strlen(nd->since));
		jw_lit(&w, "}");
	}
	jw_lit(&w, "]}");
	reply_jw(rep, 200, &w);
}

void cluster_get_stats(const struct cluster *cl, uint64_t now, struct cluster_stats *out)
{
	struct node *nd;

	memset(out, 0, sizeof(*out));
	out->state = state_names[cl->state];
	for (nd = cl->nodes; nd; nd = nd->next)
		out->nodes++;
	out->etcd_requests = cl->etcd_requests;
	out->etcd_failures = cl->etcd_failures;
	out->etcd_rtt_ms = cl->rtt_ms;
	out->watch_lag_ms = cl->last_watch_ms && now > cl->last_watch_ms ? now - cl->last_watch_ms : 0;
	out->forwards = cl->forwards;
	out->forward_failures = cl->forward_failures;
	out->messages_forwarded = cl->messages_forwarded;
	out->npeers = mail_stats(cl->mail, out->peers, CLUSTER_STATS_PEERS);
}

/* --- seams for the unit tests (tests/unit/test_cluster.c) --- */

bool cluster_apply_watch_line(struct cluster *cl, const char *line, size_t len)
{
	cl->loaded = true;
	return watch_line(cl, line, len);
}

char *cluster_end_txn(struct cluster *cl, const struct store_session *s, bool deleted, size_t *len, size_t *leftover)
{
	struct op op = { 0 };
	struct etcd_txn tx = { 0 };
	struct clean_item *it;

	op.cl = cl;
	memcpy(op.sid, s->id, sizeof(op.sid));
	end_ops(&op, &tx, (struct store_session *)s, deleted);
	for (*leftover = 0, it = op.leftover; it; it = it->next)
		(*leftover)++;
	clean_free(op.leftover);
	return etcd_txn_finish(&tx, len);
}

bool cluster_reconcile_range(struct cluster *cl, const char *body, size_t len)
{
	struct etcd_range r;
	struct etcd_error err;

	if (etcd_parse_range(body, len, &r, &err) != ETCD_OK)
		return false;
	sort_cl = cl;
	qsort(r.kvs, r.nkvs, sizeof(r.kvs[0]), kv_cmp);
	reconcile(cl, &r);
	etcd_range_free(&r);
	return true;
}

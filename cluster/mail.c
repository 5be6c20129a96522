/* mail: the forwarder of messages between nodes (see mail.h). Each peer
 * has a queue of items and at most one batch out; a batch takes the queue's
 * head, up to MAIL_BATCH_ITEMS items or max_bytes of body. */
#include "mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"

#define MAIL_BATCH_ITEMS MAIL_MAX_ITEMS
#define MAIL_MAX_PEERS 1024

struct mail_item {
	struct mail_item *next;
	struct peer *peer;
	char *json;
	size_t len;
	mail_done_fn done;
	void *ctx;
	bool out;       /* in the batch out */
	bool forgotten; /* its owner is gone */
};

struct peer {
	struct peer *next;
	struct mail *m;
	char name[65];
	char *url;
	struct mail_item *head, *tail; /* queued */
	size_t queued;
	struct mail_item *out;         /* the batch out, in order */
	struct httpc_req *hr;
	uint64_t sent_at;
	struct mail_peer_stats st;
};

struct mail {
	struct httpc *hc;
	const char *secret;
	mail_broken_fn broken;
	void *ctx;
	char *auth_hdr;
	size_t max_bytes;
	unsigned timeout_ms;
	uint64_t (*now_us)(void);
	struct peer *peers, *peers_tail;
	size_t npeers;
};

struct mail *mail_new(struct httpc *hc, const char *secret, const char *auth_token, size_t max_bytes,
		      unsigned timeout_ms, uint64_t (*now_us)(void), mail_broken_fn broken, void *ctx)
{
	struct mail *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->hc = hc;
	m->secret = secret ? secret : "";
	m->broken = broken;
	m->ctx = ctx;
	if (auth_token) {
		size_t n = strlen(auth_token) + sizeof("Authorization: Bearer ");
		m->auth_hdr = malloc(n);
		if (!m->auth_hdr) {
			free(m);
			return NULL;
		}
		snprintf(m->auth_hdr, n, "Authorization: Bearer %s", auth_token);
	}
	m->max_bytes = max_bytes ? max_bytes : 256 * 1024;
	m->timeout_ms = timeout_ms ? timeout_ms : 5000;
	m->now_us = now_us;
	return m;
}

static void item_free(struct mail_item *it)
{
	free(it->json);
	free(it);
}

void mail_free(struct mail *m)
{
	struct peer *p, *pn;
	struct mail_item *it, *next;

	if (!m)
		return;
	for (p = m->peers; p; p = pn) {
		pn = p->next;
		if (p->hr)
			httpc_cancel(m->hc, p->hr);
		for (it = p->head; it; it = next) {
			next = it->next;
			item_free(it);
		}
		for (it = p->out; it; it = next) {
			next = it->next;
			item_free(it);
		}
		free(p->url);
		free(p);
	}
	free(m->auth_hdr);
	free(m);
}

static struct peer *peer_get(struct mail *m, const char *name, bool create)
{
	struct peer *p;

	for (p = m->peers; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	if (!create || strlen(name) >= sizeof(p->name) || m->npeers >= MAIL_MAX_PEERS)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->m = m;
	p->st.peer = p->name;
	if (m->peers_tail)
		m->peers_tail->next = p;
	else
		m->peers = p;
	m->peers_tail = p;
	m->npeers++;
	return p;
}

struct mail_item *mail_post(struct mail *m, const char *peer, const char *url, const char *item, size_t len,
			    mail_done_fn done, void *ctx)
{
	struct peer *p = peer_get(m, peer, true);
	struct mail_item *it;

	if (!p || p->queued >= MAIL_MAX_QUEUED)
		return NULL;
	if (!p->url || strcmp(p->url, url)) { /* first seen, or advertised anew */
		char *u = strdup(url);
		if (!u)
			return NULL;
		free(p->url);
		p->url = u;
	}
	it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->json = malloc(len + 1);
	if (!it->json) {
		free(it);
		return NULL;
	}
	memcpy(it->json, item, len);
	it->json[len] = '\0';
	it->len = len;
	it->done = done;
	it->ctx = ctx;
	it->peer = p;
	if (p->tail)
		p->tail->next = it;
	else
		p->head = it;
	p->tail = it;
	p->queued++;
	return it;
}

void mail_forget(struct mail *m, struct mail_item *it)
{
	struct peer *p;
	struct mail_item **pp;

	(void)m;
	if (!it)
		return;
	if (it->out) { /* answered to no one; the batch frees it */
		it->forgotten = true;
		return;
	}
	p = it->peer;
	for (pp = &p->head; *pp && *pp != it; pp = &(*pp)->next)
		;
	if (!*pp)
		return;
	*pp = it->next;
	if (p->tail == it) {
		struct mail_item *t = p->head;
		while (t && t->next)
			t = t->next;
		p->tail = t;
	}
	p->queued--;
	item_free(it);
}

static void batch_send(struct peer *p);

/* Ends the batch out of p: each item's done gets its result (results: the
 * answer's array, one per item; NULL when there was no good answer; an
 * entry that is not an object counts as none). Then, with send_next, the next
 * batch goes if any is queued (else at the next mail_flush). */
static void batch_end(struct peer *p, const cJSON *results, bool timed_out, bool send_next)
{
	struct mail_item *it = p->out, *next;
	const cJSON *r = results ? results->child : NULL;

	p->out = NULL;
	p->hr = NULL;
	for (; it; it = next) {
		next = it->next;
		if (!it->forgotten && it->done)
			it->done(it->ctx, cJSON_IsObject(r) ? r : NULL, timed_out);
		if (r)
			r = r->next;
		item_free(it);
	}
	if (send_next && p->head && !p->hr)
		batch_send(p);
}

static void batch_done(void *ctx, const struct httpc_result *res)
{
	struct peer *p = ctx;
	struct mail *m = p->m;
	cJSON *root = NULL;
	const cJSON *results = NULL;
	size_t n = 0;
	struct mail_item *it;

	for (it = p->out; it; it = it->next)
		n++;
	if (res->status == 200 && (root = cJSON_ParseWithLength(res->body, res->body_len)) &&
	    cJSON_IsArray(results = root) && (size_t)cJSON_GetArraySize(results) == n) {
		uint64_t now = m->now_us(), lat = now > p->sent_at ? now - p->sent_at : 0;
		p->st.latency_us_sum += lat;
		p->st.latency_count++;
		if (lat > p->st.latency_us_max)
			p->st.latency_us_max = lat;
	} else {
		results = NULL;
		p->st.failed++;
	}
	p->hr = NULL; /* httpc frees the request after this call */
	if (res->status == 0 && !res->timed_out && m->broken)
		m->broken(m->ctx, p->name);
	batch_end(p, results, !results && res->status == 0 && res->timed_out, true);
	cJSON_Delete(root);
}

/* Sends the head of p's queue as one batch. */
static void batch_send(struct peer *p)
{
	struct mail *m = p->m;
	struct mail_item *it, *last = NULL;
	size_t n = 0, bytes = 16, len = 0;
	const char *hdrs[4];
	char secret[128];
	struct httpc_opts o = { 0 };
	char *url, *body;
	size_t h = 0;

	if (p->hr || !p->head)
		return;
	/* how many go: at least one, whatever its size */
	for (it = p->head; it && n < MAIL_BATCH_ITEMS; it = it->next) {
		if (n && bytes + it->len + 1 > m->max_bytes)
			break;
		bytes += it->len + 1;
		last = it;
		n++;
	}
	url = malloc(strlen(p->url) + sizeof("/internal/deliver"));
	body = malloc(bytes);
	if (!url || !body) {
		free(url);
		free(body);
		goto fail;
	}
	sprintf(url, "%s/internal/deliver", p->url);
	body[0] = '[';
	len = 1;
	for (it = p->head;; it = it->next) {
		if (it != p->head)
			body[len++] = ',';
		memcpy(body + len, it->json, it->len);
		len += it->len;
		if (it == last)
			break;
	}
	body[len++] = ']';
	snprintf(secret, sizeof(secret), "X-Rollcall-Forward: %s", m->secret);
	hdrs[h++] = secret;
	if (m->auth_hdr)
		hdrs[h++] = m->auth_hdr;
	hdrs[h++] = "Content-Type: application/json";
	hdrs[h] = NULL;
	o.method = "POST";
	o.url = url;
	o.body = body;
	o.body_len = len;
	o.headers = hdrs;
	o.timeout_ms = m->timeout_ms;
	o.on_done = batch_done;
	o.ctx = p;
	/* the batch leaves the queue before the request starts */
	p->out = p->head;
	p->head = last->next;
	last->next = NULL;
	if (!p->head)
		p->tail = NULL;
	p->queued -= n;
	for (it = p->out; it; it = it->next)
		it->out = true;
	p->sent_at = m->now_us();
	p->st.batches++;
	p->st.items += n;
	p->hr = httpc_start(m->hc, &o);
	free(url);
	free(body);
	if (!p->hr) {
		p->st.failed++;
		batch_end(p, NULL, false, false);
	}
	return;
fail: /* out of memory: the head item fails, the rest waits for the next mail_flush */
	it = p->head;
	p->head = it->next;
	if (!p->head)
		p->tail = NULL;
	p->queued--;
	it->next = NULL;
	it->out = true;
	p->out = it;
	p->st.batches++;
	p->st.failed++;
	batch_end(p, NULL, false, false);
}

void mail_flush(struct mail *m)
{
	struct peer *p;

	for (p = m->peers; p; p = p->next)
		if (p->head && !p->hr)
			batch_send(p);
}

bool mail_pending(const struct mail *m)
{
	const struct peer *p;

	for (p = m->peers; p; p = p->next)
		if (p->head && !p->hr)
			return true;
	return false;
}

void mail_peer_lost(struct mail *m, const char *peer)
{
	struct peer *p = peer_get(m, peer, false);
	struct mail_item *q;

	if (!p)
		return;
	if (p->hr) {
		httpc_cancel(m->hc, p->hr);
		p->hr = NULL;
		p->st.failed++;
	}
	/* the queued ones fail with the batch out, in order */
	q = p->head;
	p->head = p->tail = NULL;
	p->queued = 0;
	if (p->out) {
		struct mail_item *t = p->out;
		while (t->next)
			t = t->next;
		t->next = q;
	} else {
		p->out = q;
	}
	for (q = p->out; q; q = q->next)
		q->out = true;
	batch_end(p, NULL, false, false);
}

void mail_note(struct mail *m, const char *peer, bool failed, uint64_t latency_us)
{
	struct peer *p = peer_get(m, peer, true);

	if (!p)
		return;
	p->st.batches++;
	if (failed) {
		p->st.failed++;
		return;
	}
	p->st.latency_us_sum += latency_us;
	p->st.latency_count++;
	if (latency_us > p->st.latency_us_max)
		p->st.latency_us_max = latency_us;
}

size_t mail_stats(const struct mail *m, struct mail_peer_stats *out, size_t max)
{
	const struct peer *p;
	size_t n = 0;

	for (p = m->peers; p && n < max; p = p->next) {
		out[n] = p->st;
		out[n].queued = p->queued;
		n++;
	}
	return n;
}

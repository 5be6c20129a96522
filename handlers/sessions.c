/* sessions: create, heartbeat, delete, list and inspect sessions. */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#include "../cluster/cluster.h"
#include "../server/reply.h"
#include "../server/uri.h"

/* "id", "ttl", "expires_in_ms": what every session answer has (a session
 * homed on another node has its lease there: null). */
static void jw_lease(struct jw *w, const struct store_session *s, uint64_t now)
{
	jw_field(w, "id", s->id, STORE_ID_LEN);
	jw_lit(w, ",\"ttl\":");
	jw_u64(w, s->ttl);
	jw_lit(w, ",\"expires_in_ms\":");
	if (s->remote)
		jw_lit(w, "null");
	else
		jw_u64(w, store_session_expires_in(s, now));
}

static void jw_label(struct jw *w, const struct store_session *s)
{
	if (s->label)
		jw_field(w, "label", s->label, s->label_len);
	else
		jw_lit(w, "\"label\":null");
}

/* The listing's view of a session, without its closing brace. */
static void jw_summary(struct jw *w, const struct store_session *s, uint64_t now)
{
	jw_lit(w, "{");
	jw_lease(w, s, now);
	jw_lit(w, ",");
	jw_label(w, s);
	jw_lit(w, ",\"names\":");
	jw_u64(w, s->n_names);
	jw_lit(w, ",\"props\":");
	jw_u64(w, s->n_props);
	jw_lit(w, ",\"groups\":");
	jw_u64(w, s->n_groups);
	jw_lit(w, ",\"queued\":");
	if (s->remote)
		jw_lit(w, "null");
	else
		jw_u64(w, s->queued);
	if (s->home) {
		jw_lit(w, ",");
		jw_field(w, "node", s->home, strlen(s->home));
	}
}

void sessions_create(struct http_request *req, struct http_reply *rep)
{
	struct json_body b;
	const struct json_member *lm;
	const cJSON *label;
	struct store_session *s;
	struct jw w = { 0 };
	enum store_rc rc;
	unsigned ttl;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_body(req, rep, &b) || !body_ttl(req, rep, &b, &ttl))
		goto out;
	label = json_body_get(&b, "label");
	lm = json_body_member(&b, "label");
	if (lm && !cJSON_IsNull(label) &&
	    (!cJSON_IsString(label) || strlen(label->valuestring) > STORE_LABEL_MAX ||
	     json_has_escaped_nul(lm->value, lm->vlen))) {
		reply_error(rep, ERR_BAD_REQUEST, "label must be a string of at most 256 bytes, without U+0000.");
		goto out;
	}
	if (!cJSON_IsString(label))
		label = NULL;
	if (req->app->cluster) {
		cluster_session_create(req, rep, ttl, label ? label->valuestring : NULL,
				       label ? strlen(label->valuestring) : 0);
		goto out;
	}
	/* {"id","ttl","expires_in_ms","token","label"}: room first, so that a
	 * session is never made that nobody learns the token of */
	if (!need_room(rep, &w, (label ? strlen(label->valuestring) * 6 : 0) + 160))
		goto out;
	rc = store_session_create(req->app->store, req->now, ttl,
				  label ? label->valuestring : NULL,
				  label ? strlen(label->valuestring) : 0, &s);
	if (rc != STORE_CREATED) {
		reply_store_error(rep, rc);
		goto out;
	}
	jw_lit(&w, "{");
	jw_lease(&w, s, req->now);
	jw_lit(&w, ",");
	jw_field(&w, "token", s->token, STORE_TOKEN_LEN);
	jw_lit(&w, ",");
	jw_label(&w, s);
	jw_lit(&w, "}");
	reply_jw(rep, 201, &w);
out:
	free(w.buf);
	json_body_free(&b);
}

void sessions_heartbeat(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s;
	struct json_body b = { 0 };
	struct jw w = { 0 };
	enum store_rc rc;
	unsigned ttl;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_own_session(req, rep, &s) || !need_body(req, rep, &b) || !body_ttl(req, rep, &b, &ttl))
		goto out;
	if (req->app->cluster && ttl && ttl != s->ttl) { /* the record in etcd has the ttl: write it first */
		cluster_session_ttl(req, rep, s, ttl);
		goto out;
	}
	rc = store_session_heartbeat(req->app->store, req->now, s, ttl);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		goto out;
	}
	jw_lit(&w, "{");
	jw_lease(&w, s, req->now);
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
out:
	json_body_free(&b);
}

void sessions_delete(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_own_session(req, rep, &s))
		return;
	if (req->app->cluster) {
		cluster_session_delete(req, rep, s);
		return;
	}
	store_session_delete(req->app->store, s);
	reply_empty(rep, 204);
}

/* Whether s lives on the node called node (in a cluster, its home; on a
 * single node, that node). */
static bool homed_on(const struct http_request *req, const struct store_session *s, const char *node, size_t n)
{
	const char *home = s->home ? s->home : req->app->cfg->node;

	return strlen(home) == n && !memcmp(home, node, n);
}

void sessions_list(struct http_request *req, struct http_reply *rep)
{
	struct store_session *page[LIST_LIMIT_MAX];
	char after[STORE_KEY_MAX + 1], node[STORE_KEY_MAX + 1];
	size_t limit, alen, nlen, n, i, k = 0;
	bool has_after, has_node, more;
	struct jw w = { 0 };

	if (!query_limit(req, rep, &limit) || !query_text(req, rep, "after", after, &alen, &has_after) ||
	    !query_text(req, rep, "node", node, &nlen, &has_node))
		return;
	jw_page_open(&w, "sessions");
	do { /* ?node=: one node's sessions, a page of them however sparse */
		n = store_session_page(req->app->store, has_after ? after : NULL, alen, limit - k, page, &more);
		for (i = 0; i < n; i++) {
			if (has_node && !homed_on(req, page[i], node, nlen))
				continue;
			if (k++)
				jw_lit(&w, ",");
			jw_summary(&w, page[i], req->now);
			jw_lit(&w, "}");
		}
		if (n) {
			memcpy(after, page[n - 1]->id, STORE_ID_LEN + 1);
			alen = STORE_ID_LEN;
			has_after = true;
		}
	} while (has_node && more && k < limit);
	jw_page_close(&w, more, k ? after : NULL, STORE_ID_LEN);
	reply_jw(rep, 200, &w);
}

/* A key to sort: what a session holds, as text. */
struct held_key {
	const char *key;
	size_t klen;
};

static int cmp_keys(const void *a, const void *b)
{
	const struct held_key *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* "field":[the n keys, sorted in byte order] */
static void jw_sorted(struct jw *w, const char *field, struct held_key *keys, size_t n)
{
	size_t i;

	qsort(keys, n, sizeof(*keys), cmp_keys);
	jw_lit(w, "\"");
	jw_lit(w, field);
	jw_lit(w, "\":[");
	for (i = 0; i < n; i++) {
		if (i)
			jw_lit(w, ",");
		jw_str(w, keys[i].key, keys[i].klen);
	}
	jw_lit(w, "]");
}

/* The keys of a session's property or group entries, sorted. */
static void jw_held_entries(struct jw *w, const char *field, const struct store_entry *e, struct held_key *keys)
{
	size_t n = 0;

	for (; e; e = e->s_next, n++) {
		keys[n].key = e->key->key;
		keys[n].klen = e->key->klen;
	}
	jw_sorted(w, field, keys, n);
}

/* "held":{"names": [...], "props": [...], "groups": [...]}, each sorted:
 * what the session holds (gproc's info). False when out of memory. */
static bool jw_held(struct jw *w, const struct store_session *s)
{
	size_t most = s->n_names > s->n_props ? s->n_names : s->n_props, n = 0;
	const struct store_name *nm;
	struct held_key *keys;

	if (s->n_groups > most)
		most = s->n_groups;
	keys = malloc((most ? most : 1) * sizeof(*keys));
	if (!keys)
		return false;
	for (nm = s->names_head; nm; nm = nm->s_next, n++) {
		keys[n].key = nm->key;
		keys[n].klen = nm->klen;
	}
	jw_lit(w, "\"held\":{");
	jw_sorted(w, "names", keys, n);
	jw_lit(w, ",");
	jw_held_entries(w, "props", s->props_head, keys);
	jw_lit(w, ",");
	jw_held_entries(w, "groups", s->groups_head, keys);
	jw_lit(w, "}");
	free(keys);
	return true;
}

void sessions_get(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s = store_session_find(req->app->store, req->now, req->param, req->param_len);
	struct jw w = { 0 };

	if (!s) {
		reply_error(rep, ERR_SESSION_NOT_FOUND, NULL);
		return;
	}
	jw_summary(&w, s, req->now);
	jw_lit(&w, ",");
	if (!jw_held(&w, s))
		w.oom = true;
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
}

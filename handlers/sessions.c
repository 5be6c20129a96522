/* sessions: create, heartbeat, delete, list and inspect sessions. */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#include "../server/reply.h"
#include "../server/uri.h"

/* Adds the fields every session answer shares. False when out of memory. */
static bool add_lease(cJSON *o, const struct store_session *s, uint64_t now)
{
	return cJSON_AddStringToObject(o, "id", s->id) &&
	       cJSON_AddNumberToObject(o, "ttl", s->ttl) &&
	       cJSON_AddNumberToObject(o, "expires_in_ms", (double)store_session_expires_in(s, now));
}

static bool add_label(cJSON *o, const struct store_session *s)
{
	return s->label ? cJSON_AddStringToObject(o, "label", s->label) != NULL
			: cJSON_AddNullToObject(o, "label") != NULL;
}

/* The listing's view of a session: lease, label and counts. */
static cJSON *session_summary(const struct store_session *s, uint64_t now)
{
	cJSON *o = cJSON_CreateObject();

	if (o && add_lease(o, s, now) && add_label(o, s) &&
	    cJSON_AddNumberToObject(o, "names", (double)s->n_names) &&
	    cJSON_AddNumberToObject(o, "props", (double)s->n_props) &&
	    cJSON_AddNumberToObject(o, "groups", (double)s->n_groups) &&
	    cJSON_AddNumberToObject(o, "queued", (double)s->queued))
		return o;
	cJSON_Delete(o);
	return NULL;
}

void sessions_create(struct http_request *req, struct http_reply *rep)
{
	struct json_body b;
	const struct json_member *lm;
	const cJSON *label;
	struct store_session *s;
	enum store_rc rc;
	unsigned ttl;
	cJSON *o;

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
	rc = store_session_create(req->app->store, req->now, ttl,
				  label ? label->valuestring : NULL,
				  label ? strlen(label->valuestring) : 0, &s);
	if (rc != STORE_CREATED) {
		reply_store_error(rep, rc);
		goto out;
	}
	o = cJSON_CreateObject();
	if (!o || !add_lease(o, s, req->now) || !cJSON_AddStringToObject(o, "token", s->token) || !add_label(o, s)) {
		/* Nobody will ever learn the token: take the session back. */
		cJSON_Delete(o);
		store_session_delete(req->app->store, s);
		reply_error(rep, ERR_NO_MEMORY, NULL);
		goto out;
	}
	reply_json(rep, 201, o);
out:
	json_body_free(&b);
}

void sessions_heartbeat(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s;
	struct json_body b = { 0 };
	enum store_rc rc;
	unsigned ttl;
	cJSON *o;

	if (!need_own_session(req, rep, &s) || !need_body(req, rep, &b) || !body_ttl(req, rep, &b, &ttl))
		goto out;
	rc = store_session_heartbeat(req->app->store, req->now, s, ttl);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		goto out;
	}
	o = cJSON_CreateObject();
	if (o && !add_lease(o, s, req->now)) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
out:
	json_body_free(&b);
}

void sessions_delete(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s;

	if (!need_own_session(req, rep, &s))
		return;
	store_session_delete(req->app->store, s);
	reply_empty(rep, 204);
}

void sessions_list(struct http_request *req, struct http_reply *rep)
{
	struct store_session *page[LIST_LIMIT_MAX];
	char after[STORE_KEY_MAX + 1];
	size_t limit, alen, n, i;
	bool has_after, more;
	cJSON *arr;

	if (!query_limit(req, rep, &limit) || !query_text(req, rep, "after", after, &alen, &has_after))
		return;
	n = store_session_page(req->app->store, has_after ? after : NULL, alen, limit, page, &more);
	arr = cJSON_CreateArray();
	for (i = 0; arr && i < n; i++) {
		cJSON *s = session_summary(page[i], req->now);
		if (!s || !cJSON_AddItemToArray(arr, s)) {
			cJSON_Delete(s);
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	reply_page(rep, "sessions", arr, more, n ? page[n - 1]->id : NULL);
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

/* Adds field: the n keys sorted in byte order. False when out of memory. */
static bool add_sorted(cJSON *o, const char *field, struct held_key *keys, size_t n)
{
	cJSON *arr = cJSON_AddArrayToObject(o, field);
	size_t i;

	if (!arr)
		return false;
	qsort(keys, n, sizeof(*keys), cmp_keys);
	for (i = 0; i < n; i++) {
		cJSON *k = cJSON_CreateString(keys[i].key);
		if (!k || !cJSON_AddItemToArray(arr, k)) {
			cJSON_Delete(k);
			return false;
		}
	}
	return true;
}

/* Adds the keys of a session's property or group entries, sorted. */
static bool add_entries(cJSON *o, const char *field, const struct store_entry *e, struct held_key *keys)
{
	size_t n = 0;

	for (; e; e = e->s_next, n++) {
		keys[n].key = e->key->key;
		keys[n].klen = e->key->klen;
	}
	return add_sorted(o, field, keys, n);
}

/* {"names": [...], "props": [...], "groups": [...]}, each sorted: what the
 * session holds (gproc's info). */
static cJSON *held(const struct store_session *s)
{
	size_t most = s->n_names > s->n_props ? s->n_names : s->n_props, n = 0;
	struct held_key *keys;
	const struct store_name *nm;
	cJSON *o = cJSON_CreateObject();
	bool ok;

	if (s->n_groups > most)
		most = s->n_groups;
	keys = malloc((most ? most : 1) * sizeof(*keys));
	if (!o || !keys) {
		free(keys);
		cJSON_Delete(o);
		return NULL;
	}
	for (nm = s->names_head; nm; nm = nm->s_next, n++) {
		keys[n].key = nm->key;
		keys[n].klen = nm->klen;
	}
	ok = add_sorted(o, "names", keys, n) && add_entries(o, "props", s->props_head, keys) &&
	     add_entries(o, "groups", s->groups_head, keys);
	free(keys);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void sessions_get(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s = store_session_find(req->app->store, req->now, req->param, req->param_len);
	cJSON *o, *h;

	if (!s) {
		reply_error(rep, ERR_SESSION_NOT_FOUND, NULL);
		return;
	}
	o = session_summary(s, req->now);
	h = o ? held(s) : NULL;
	if (!h || !cJSON_AddItemToObject(o, "held", h)) {
		cJSON_Delete(h);
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
}

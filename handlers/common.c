/* common: input checks shared by the handlers; see handlers.h. */
#include "handlers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../server/reply.h"
#include "../server/uri.h"

bool need_caller(struct http_request *req, struct http_reply *rep)
{
	if (!req->token) {
		reply_error(rep, ERR_MISSING_TOKEN, NULL);
		return false;
	}
	if (!req->caller) {
		reply_error(rep, ERR_BAD_TOKEN, NULL);
		return false;
	}
	return true;
}

bool need_own_session(struct http_request *req, struct http_reply *rep, struct store_session **out)
{
	struct store_session *s = store_session_find(req->app->store, req->now, req->param, req->param_len);

	if (!s) {
		reply_error(rep, ERR_SESSION_NOT_FOUND, NULL);
		return false;
	}
	/* The dispatcher found the caller by its token; the id must be the same session. */
	if (!need_caller(req, rep))
		return false;
	if (req->caller != s) {
		reply_error(rep, ERR_BAD_TOKEN, "This token is not this session's.");
		return false;
	}
	*out = s;
	return true;
}

bool need_key(struct http_request *req, struct http_reply *rep, char *out, size_t *len)
{
	if (!uri_decode_key(req->param, req->param_len, out, len)) {
		reply_error(rep, ERR_INVALID_KEY, NULL);
		return false;
	}
	return true;
}

bool query_uint(struct http_request *req, struct http_reply *rep, const char *name, uint64_t dflt, uint64_t *out)
{
	const char *raw;
	char v[32];
	size_t rn, n = 0, i;
	uint64_t x = 0;

	if (!uri_query_find(req->query, req->query_len, name, &raw, &rn)) {
		*out = dflt;
		return true;
	}
	/* Decoded first, as any query value: "%33" is "3". Longer than 31
	 * bytes after decoding cannot be a number we accept, so it fails. */
	if (!uri_decode(raw, rn, true, v, sizeof(v) - 1, &n))
		n = 0;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			break;
		x = x > (UINT64_MAX - 9) / 10 ? UINT64_MAX : x * 10 + (uint64_t)(v[i] - '0');
	}
	if (n == 0 || i < n) {
		char msg[96];
		snprintf(msg, sizeof(msg), "The query parameter '%s' must be a non-negative whole number.", name);
		reply_error(rep, ERR_BAD_REQUEST, msg);
		return false;
	}
	*out = x;
	return true;
}

/* A count parameter: default 100; 0 or over 1000 means 1000. */
static bool query_count(struct http_request *req, struct http_reply *rep, const char *name, size_t *out)
{
	uint64_t v;

	if (!query_uint(req, rep, name, LIST_LIMIT_DEFAULT, &v))
		return false;
	*out = (v == 0 || v > LIST_LIMIT_MAX) ? LIST_LIMIT_MAX : (size_t)v;
	return true;
}

bool query_limit(struct http_request *req, struct http_reply *rep, size_t *out)
{
	return query_count(req, rep, "limit", out);
}

bool query_max(struct http_request *req, struct http_reply *rep, size_t *out)
{
	return query_count(req, rep, "max", out);
}

bool query_wait(struct http_request *req, struct http_reply *rep, unsigned *out)
{
	uint64_t v;

	if (!query_uint(req, rep, "wait", 0, &v))
		return false;
	if (v > WAIT_MAX_SECONDS) {
		reply_error(rep, ERR_BAD_REQUEST, "wait is at most 300 seconds.");
		return false;
	}
	*out = (unsigned)v;
	return true;
}

bool query_text(struct http_request *req, struct http_reply *rep, const char *name,
		char *out, size_t *len, bool *present)
{
	const char *v;
	size_t n;

	*len = 0;
	*present = uri_query_find(req->query, req->query_len, name, &v, &n);
	if (!*present)
		return true;
	if (!uri_decode(v, n, true, out, STORE_KEY_MAX, len) || !uri_text_ok(out, *len)) {
		char msg[128];
		snprintf(msg, sizeof(msg),
			 "The query parameter '%s' must be percent-encoded UTF-8 of at most 512 bytes without control characters.",
			 name);
		reply_error(rep, ERR_BAD_REQUEST, msg);
		return false;
	}
	out[*len] = '\0';
	return true;
}

bool need_body(struct http_request *req, struct http_reply *rep, struct json_body *b)
{
	const char *why = NULL;
	char msg[160];

	switch (json_body_parse(req->body, req->body_len, b, &why)) {
	case JSON_BODY_OK:
		return true;
	case JSON_BODY_NOMEM:
		reply_error(rep, ERR_NO_MEMORY, NULL);
		return false;
	case JSON_BODY_BAD:
	default:
		snprintf(msg, sizeof(msg), "The body is not valid JSON for this request: %s.", why ? why : "malformed");
		reply_error(rep, ERR_BAD_REQUEST, msg);
		return false;
	}
}

bool body_ttl(struct http_request *req, struct http_reply *rep, const struct json_body *b, unsigned *ttl)
{
	const cJSON *t = json_body_get(b, "ttl");
	double d;

	*ttl = 0;
	if (!json_body_member(b, "ttl"))
		return true;
	d = t && cJSON_IsNumber(t) ? t->valuedouble : -1;
	if (!isfinite(d) || d < 1 || d > req->app->cfg->max_ttl || d != floor(d)) {
		reply_error(rep, ERR_INVALID_TTL, NULL);
		return false;
	}
	*ttl = (unsigned)d;
	return true;
}

bool need_put(struct http_request *req, struct http_reply *rep, struct put_args *a)
{
	const struct json_member *v;

	memset(&a->body, 0, sizeof(a->body));
	memset(&a->w, 0, sizeof(a->w));
	a->minified = NULL;
	if (!need_key(req, rep, a->key, &a->klen) || !need_caller(req, rep) || !need_body(req, rep, &a->body))
		return false;
	v = json_body_member(&a->body, "value");
	a->value = "null";
	a->vlen = 4;
	if (v) {
		a->minified = malloc(v->vlen ? v->vlen : 1);
		if (!a->minified) {
			reply_error(rep, ERR_NO_MEMORY, NULL);
			return false;
		}
		a->vlen = json_minify(v->value, v->vlen, a->minified);
		a->value = a->minified;
		/* the limit is on the value as kept (api.md: "once serialized") */
		if (a->vlen > req->app->cfg->max_value) {
			reply_error(rep, ERR_PAYLOAD_TOO_LARGE, "The value is over --max-value bytes.");
			return false;
		}
	}
	/* {"key":<escaped>,"session":"<id>","value":<value>} */
	return need_room(rep, &a->w, a->klen * 6 + a->vlen + 64 + STORE_ID_LEN);
}

void put_args_free(struct put_args *a)
{
	json_body_free(&a->body);
	free(a->minified);
	a->minified = NULL;
	free(a->w.buf);
	a->w.buf = NULL;
}

bool need_room(struct http_reply *rep, struct jw *w, size_t n)
{
	if (jw_grow(w, n))
		return true;
	reply_error(rep, ERR_NO_MEMORY, NULL);
	return false;
}

bool need_list(struct http_request *req, struct http_reply *rep, struct list_args *a)
{
	bool has_prefix;

	return query_limit(req, rep, &a->limit) &&
	       query_text(req, rep, "prefix", a->prefix, &a->plen, &has_prefix) &&
	       query_text(req, rep, "after", a->after, &a->alen, &a->has_after);
}

void jw_page_open(struct jw *w, const char *field)
{
	jw_lit(w, "{\"");
	jw_lit(w, field);
	jw_lit(w, "\":[");
}

void jw_page_close(struct jw *w, bool more, const char *last, size_t lastlen)
{
	jw_lit(w, "],\"next\":");
	if (more && last)
		jw_str(w, last, lastlen);
	else
		jw_lit(w, "null");
	jw_lit(w, "}");
}

void jw_field(struct jw *w, const char *name, const char *s, size_t n)
{
	jw_lit(w, "\"");
	jw_lit(w, name);
	jw_lit(w, "\":");
	jw_str(w, s, n);
}

void jw_entry(struct jw *w, const struct store_entry *e)
{
	jw_lit(w, "{");
	jw_field(w, "session", e->session->id, STORE_ID_LEN);
	jw_lit(w, ",\"value\":");
	jw_raw(w, e->value, e->vlen);
	jw_lit(w, "}");
}

void jw_entry_put(struct jw *w, const struct store_entry *e, const char *keyfield)
{
	jw_lit(w, "{");
	jw_field(w, keyfield, e->key->key, e->key->klen);
	jw_lit(w, ",");
	jw_field(w, "session", e->session->id, STORE_ID_LEN);
	jw_lit(w, ",\"value\":");
	jw_raw(w, e->value, e->vlen);
	jw_lit(w, "}");
}

void jw_entries(struct jw *w, const struct store_key *k)
{
	const struct store_entry *e;

	jw_lit(w, "[");
	for (e = k ? k->head : NULL; e; e = e->k_next) {
		if (e != k->head)
			jw_lit(w, ",");
		jw_entry(w, e);
	}
	jw_lit(w, "]");
}

void reply_keys(struct http_reply *rep, const char *field, struct store_key *const *page, size_t n, bool more,
		const char *keyfield, const char *countfield)
{
	struct jw w = { 0 };
	size_t i;

	jw_page_open(&w, field);
	for (i = 0; i < n; i++) {
		jw_lit(&w, i ? ",{" : "{");
		jw_field(&w, keyfield, page[i]->key, page[i]->klen);
		jw_lit(&w, ",\"");
		jw_lit(&w, countfield);
		jw_lit(&w, "\":");
		jw_u64(&w, page[i]->n);
		jw_lit(&w, "}");
	}
	jw_page_close(&w, more, n ? page[n - 1]->key : NULL, n ? page[n - 1]->klen : 0);
	reply_jw(rep, 200, &w);
}

bool need_pick(struct http_reply *rep, const char *name, enum store_pick *how)
{
	static const struct {
		const char *name;
		enum store_pick how;
	} picks[] = {
		{ "random", STORE_PICK_RANDOM },
		{ "round_robin", STORE_PICK_ROUND_ROBIN },
		{ "hash", STORE_PICK_HASH },
	};
	size_t i;

	for (i = 0; i < sizeof(picks) / sizeof(picks[0]); i++) {
		if (!strcmp(name, picks[i].name)) {
			*how = picks[i].how;
			return true;
		}
	}
	reply_error(rep, ERR_BAD_REQUEST, "pick must be random, round_robin or hash.");
	return false;
}

/* librollcall: see rollcall.h. One libcurl easy handle per client, kept
 * between requests so that its connection is reused. */
#include "rollcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000L

struct rc {
	CURL *curl;
	char *url;
	char *auth; /* "Authorization: Bearer ..." or NULL */
};

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t add = size * n;

	if (b->len + add + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;
		while (cap < b->len + add + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return 0;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	struct rc_result *r = ctx;
	size_t len = size * n;
	static const char name[] = "x-rollcall-index:";

	if (len > sizeof(name) - 1 && !strncasecmp(data, name, sizeof(name) - 1))
		r->index = strtoull(data + sizeof(name) - 1, NULL, 10);
	return len;
}

struct rc *rc_new(const char *url, const char *auth_token)
{
	struct rc *c = calloc(1, sizeof(*c));
	size_t n;

	if (!c)
		return NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->curl = curl_easy_init();
	c->url = strdup(url);
	if (c->url) {
		n = strlen(c->url);
		while (n && c->url[n - 1] == '/')
			c->url[--n] = '\0';
	}
	if (auth_token) {
		n = strlen(auth_token) + sizeof("Authorization: Bearer ");
		c->auth = malloc(n);
		if (c->auth)
			snprintf(c->auth, n, "Authorization: Bearer %s", auth_token);
	}
	if (!c->curl || !c->url || (auth_token && !c->auth)) {
		rc_free(c);
		return NULL;
	}
	return c;
}

void rc_free(struct rc *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->url);
	free(c->auth);
	free(c);
}

void rc_result_clear(struct rc_result *r)
{
	cJSON_Delete(r->json);
	memset(r, 0, sizeof(*r));
}

static void set_error(struct rc_result *r, const char *code, const char *msg)
{
	snprintf(r->error, sizeof(r->error), "%s", code);
	snprintf(r->message, sizeof(r->message), "%s", msg);
}

int rc_request(struct rc *c, const char *method, const char *path, const char *body, const char *token,
	       long timeout_ms, struct rc_result *r)
{
	struct curl_slist *h = NULL, *t;
	struct buf b = { 0 };
	char *url, tok[80];
	size_t n = strlen(c->url) + strlen(path) + 1;
	CURLcode cc;
	long status = 0;

	rc_result_clear(r);
	url = malloc(n);
	if (!url) {
		set_error(r, "unreachable", "out of memory");
		return 0;
	}
	snprintf(url, n, "%s%s", c->url, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (h && c->auth && (t = curl_slist_append(h, c->auth)))
		h = t;
	if (h && token) {
		snprintf(tok, sizeof(tok), "X-Session-Token: %s", token);
		if ((t = curl_slist_append(h, tok)))
			h = t;
	}
	if (h && (t = curl_slist_append(h, "Expect:"))) /* no 100-continue round trip */
		h = t;
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "GET") && strcmp(method, "HEAD") && strcmp(method, "DELETE")) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, 0L);
	}
	cc = curl_easy_perform(c->curl);
	curl_slist_free_all(h);
	free(url);
	if (cc != CURLE_OK || b.oom) {
		free(b.p);
		set_error(r, "unreachable", b.oom ? "out of memory" : curl_easy_strerror(cc));
		return r->status = 0;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	r->status = (int)status;
	r->json = b.len ? cJSON_ParseWithLength(b.p, b.len) : NULL;
	free(b.p);
	if (r->status >= 400) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->json, "message");
		set_error(r, cJSON_IsString(e) ? e->valuestring : "http_error",
			  cJSON_IsString(m) ? m->valuestring : "The server refused the request.");
	}
	return r->status;
}

/* --- paths and bodies --- */

/* "/v1/<kind>/<key>" with the key percent-encoded, its '/' kept (api.md:
 * a key's slashes are part of the path). malloc'd; NULL out of memory. */
static char *key_path(const char *kind, const char *key, const char *suffix)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(kind) + strlen(key) * 3 + strlen(suffix) + 8, k;
	char *p = malloc(n);
	const unsigned char *s;

	if (!p)
		return NULL;
	k = (size_t)snprintf(p, n, "/v1/%s/", kind);
	for (s = (const unsigned char *)key; *s; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    strchr("-._~/:@!$&'()*+,;=", *s)) {
			p[k++] = (char)*s;
		} else {
			p[k++] = '%';
			p[k++] = hex[*s >> 4];
			p[k++] = hex[*s & 15];
		}
	}
	snprintf(p + k, n - k, "%s", suffix);
	return p;
}

/* A query value, percent-encoded (malloc'd). */
static char *query_value(const char *v)
{
	char *e = curl_easy_escape(NULL, v, 0), *p;

	if (!e)
		return NULL;
	p = strdup(e);
	curl_free(e);
	return p;
}

static int nomem(struct rc_result *r)
{
	rc_result_clear(r);
	set_error(r, "unreachable", "out of memory");
	return 0;
}

int rc_session_create(struct rc *c, unsigned ttl, const char *label, struct rc_session *out, struct rc_result *r)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *id, *tok, *t;
	char *body;

	if (!o)
		return nomem(r);
	if (ttl)
		cJSON_AddNumberToObject(o, "ttl", ttl);
	if (label)
		cJSON_AddStringToObject(o, "label", label);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!body)
		return nomem(r);
	rc_request(c, "POST", "/v1/sessions", body, NULL, 0, r);
	free(body);
	memset(out, 0, sizeof(*out));
	if (r->status == 201) {
		id = cJSON_GetObjectItemCaseSensitive(r->json, "id");
		tok = cJSON_GetObjectItemCaseSensitive(r->json, "token");
		t = cJSON_GetObjectItemCaseSensitive(r->json, "ttl");
		if (cJSON_IsString(id) && cJSON_IsString(tok) && strlen(id->valuestring) < sizeof(out->id) &&
		    strlen(tok->valuestring) < sizeof(out->token)) {
			strcpy(out->id, id->valuestring);
			strcpy(out->token, tok->valuestring);
			out->ttl = cJSON_IsNumber(t) ? (unsigned)t->valuedouble : ttl;
		} else {
			set_error(r, "bad_answer", "The server's answer to POST /v1/sessions was not understood.");
			r->status = 0;
		}
	}
	return r->status;
}

int rc_session_heartbeat(struct rc *c, const struct rc_session *s, struct rc_result *r)
{
	char path[64];

	snprintf(path, sizeof(path), "/v1/sessions/%s/heartbeat", s->id);
	return rc_request(c, "POST", path, NULL, s->token, 0, r);
}

int rc_session_delete(struct rc *c, const struct rc_session *s, struct rc_result *r)
{
	char path[48];

	snprintf(path, sizeof(path), "/v1/sessions/%s", s->id);
	return rc_request(c, "DELETE", path, NULL, s->token, 0, r);
}

int rc_register(struct rc *c, const struct rc_session *s, const char *kind, const char *key, const char *value,
		struct rc_result *r)
{
	char *path = key_path(kind, key, ""), *body = NULL;
	size_t n;

	if (!path)
		return nomem(r);
	if (value) {
		n = strlen(value) + 16;
		body = malloc(n);
		if (!body) {
			free(path);
			return nomem(r);
		}
		snprintf(body, n, "{\"value\":%s}", value);
	}
	rc_request(c, "PUT", path, body, s->token, 0, r);
	free(path);
	free(body);
	return r->status;
}

int rc_lookup(struct rc *c, const char *key, unsigned wait_s, struct rc_result *r)
{
	char suffix[32] = "";
	char *path;

	if (wait_s)
		snprintf(suffix, sizeof(suffix), "?wait=%u", wait_s);
	path = key_path("names", key, suffix);
	if (!path)
		return nomem(r);
	rc_request(c, "GET", path, NULL, NULL, (long)wait_s * 1000 + 10000, r);
	free(path);
	return r->status;
}

int rc_list(struct rc *c, const char *kind, const char *prefix, struct rc_result *r)
{
	char *q = prefix ? query_value(prefix) : NULL, *path;
	size_t n;

	if (prefix && !q)
		return nomem(r);
	n = strlen(kind) + (q ? strlen(q) : 0) + 48;
	path = malloc(n);
	if (!path) {
		free(q);
		return nomem(r);
	}
	if (!strcmp(kind, "nodes"))
		snprintf(path, n, "/v1/nodes");
	else
		snprintf(path, n, "/v1/%s?limit=1000%s%s", kind, q ? "&prefix=" : "", q ? q : "");
	rc_request(c, "GET", path, NULL, NULL, 0, r);
	free(path);
	free(q);
	return r->status;
}

int rc_members(struct rc *c, const char *group, const char *pick, const char *hash_key, struct rc_result *r)
{
	char *hk = hash_key ? query_value(hash_key) : NULL, *path, *suffix;
	size_t n = (pick ? strlen(pick) : 0) + (hk ? strlen(hk) : 0) + 32;

	suffix = malloc(n);
	if (!suffix || (hash_key && !hk)) {
		free(suffix);
		free(hk);
		return nomem(r);
	}
	snprintf(suffix, n, "%s%s%s%s", pick ? "?pick=" : "", pick ? pick : "", hk ? "&hash_key=" : "", hk ? hk : "");
	path = key_path("groups", group, suffix);
	free(suffix);
	free(hk);
	if (!path)
		return nomem(r);
	rc_request(c, "GET", path, NULL, NULL, 0, r);
	free(path);
	return r->status;
}

/* {"to": target, "body": body[, "timeout_ms": ms]} (malloc'd). */
static char *message_body(const char *target, const char *body, unsigned timeout_ms)
{
	size_t n = strlen(target) + strlen(body) + 64;
	char *p = malloc(n);

	if (!p)
		return NULL;
	if (timeout_ms)
		snprintf(p, n, "{\"to\":%s,\"body\":%s,\"timeout_ms\":%u}", target, body, timeout_ms);
	else
		snprintf(p, n, "{\"to\":%s,\"body\":%s}", target, body);
	return p;
}

int rc_send(struct rc *c, const struct rc_session *from, const char *target, const char *body, struct rc_result *r)
{
	char *b = message_body(target, body, 0);

	if (!b)
		return nomem(r);
	rc_request(c, "POST", "/v1/send", b, from ? from->token : NULL, 0, r);
	free(b);
	return r->status;
}

int rc_call(struct rc *c, const struct rc_session *from, const char *target, const char *body, unsigned timeout_ms,
	    struct rc_result *r)
{
	char *b = message_body(target, body, timeout_ms ? timeout_ms : 5000);

	if (!b)
		return nomem(r);
	rc_request(c, "POST", "/v1/call", b, from ? from->token : NULL,
		   (long)(timeout_ms ? timeout_ms : 5000) + 10000, r);
	free(b);
	return r->status;
}

int rc_receive(struct rc *c, const struct rc_session *s, uint64_t after, unsigned wait_s, struct rc_result *r)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/sessions/%s/messages?after=%llu&wait=%u", s->id, (unsigned long long)after,
		 wait_s);
	return rc_request(c, "GET", path, NULL, s->token, (long)wait_s * 1000 + 10000, r);
}

int rc_reply(struct rc *c, const struct rc_session *s, const char *call_id, const char *body, struct rc_result *r)
{
	char path[96], *b;
	size_t n = strlen(body) + 16;

	if (strlen(call_id) > 64)
		call_id = "-";
	snprintf(path, sizeof(path), "/v1/replies/%s", call_id);
	b = malloc(n);
	if (!b)
		return nomem(r);
	snprintf(b, n, "{\"body\":%s}", body);
	rc_request(c, "POST", path, b, s->token, 0, r);
	free(b);
	return r->status;
}

int rc_stats(struct rc *c, struct rc_result *r)
{
	return rc_request(c, "GET", "/v1/stats", NULL, NULL, 0, r);
}

/* --- the event stream --- */

struct sse {
	bool (*on_event)(void *ctx, const char *type, const cJSON *data);
	void *ctx;
	struct buf line;   /* the line being read */
	char type[48];     /* the block's event: */
	struct buf data;   /* the block's data: lines */
	bool stopped;
};

/* One line of the stream (without its end); an empty one ends a block. */
static bool sse_line(struct sse *e, const char *l, size_t n)
{
	if (n == 0) {
		if (e->data.len) {
			cJSON *j = cJSON_ParseWithLength(e->data.p, e->data.len);
			bool go = !j || e->on_event(e->ctx, e->type[0] ? e->type : "message", j);
			cJSON_Delete(j);
			if (!go)
				return false;
		}
		e->type[0] = '\0';
		e->data.len = 0;
		return true;
	}
	if (n > 6 && !strncmp(l, "event:", 6)) {
		l += 6;
		n -= 6;
		if (*l == ' ')
			l++, n--;
		snprintf(e->type, sizeof(e->type), "%.*s", (int)n, l);
	} else if (n >= 5 && !strncmp(l, "data:", 5)) {
		l += 5;
		n -= 5;
		if (n && *l == ' ')
			l++, n--;
		if (e->data.len)
			on_body("\n", 1, 1, &e->data);
		on_body((char *)l, 1, n, &e->data);
	}
	return !e->data.oom;
}

static size_t on_stream(char *p, size_t size, size_t n, void *ctx)
{
	struct sse *e = ctx;
	size_t len = size * n, i, start = 0;

	for (i = 0; i < len; i++) {
		if (p[i] != '\n')
			continue;
		on_body(p + start, 1, i - start, &e->line);
		if (e->line.len && e->line.p[e->line.len - 1] == '\r')
			e->line.len--;
		if (!sse_line(e, e->line.p ? e->line.p : "", e->line.len)) {
			e->stopped = true;
			return 0; /* ends the transfer */
		}
		e->line.len = 0;
		start = i + 1;
	}
	if (start < len)
		on_body(p + start, 1, len - start, &e->line);
	return e->line.oom ? 0 : len;
}

int rc_events(struct rc *c, const char *prefix, int64_t after,
	      bool (*on_event)(void *ctx, const char *type, const cJSON *data), void *ctx, struct rc_result *r)
{
	struct sse e = { .on_event = on_event, .ctx = ctx };
	struct curl_slist *h = NULL, *t;
	char *q = prefix ? query_value(prefix) : NULL, *url, lid[48];
	size_t n = strlen(c->url) + (q ? strlen(q) : 0) + 32;
	CURLcode cc;
	long status = 0;

	rc_result_clear(r);
	url = malloc(n);
	if (!url || (prefix && !q)) {
		free(url);
		free(q);
		return nomem(r);
	}
	snprintf(url, n, "%s/v1/events%s%s", c->url, q ? "?prefix=" : "", q ? q : "");
	free(q);
	h = curl_slist_append(h, "Accept: text/event-stream");
	if (h && c->auth && (t = curl_slist_append(h, c->auth)))
		h = t;
	if (h && after >= 0) {
		snprintf(lid, sizeof(lid), "Last-Event-ID: %lld", (long long)after);
		if ((t = curl_slist_append(h, lid)))
			h = t;
	}
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &e);
	/* a stream that says nothing for a minute is taken as dead: reconnect */
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 60L);
	cc = curl_easy_perform(c->curl);
	curl_slist_free_all(h);
	free(url);
	free(e.line.p);
	free(e.data.p);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	r->status = (int)status;
	if (e.stopped || (cc == CURLE_OK && status == 200) || (status == 200 && cc != CURLE_OK))
		return r->status = status ? (int)status : 200; /* ended by us, or the server closed it */
	if (status >= 400) {
		set_error(r, status == 401 ? "unauthorized" : status == 403 ? "read_only" : "http_error",
			  "The server refused the event stream.");
		return r->status;
	}
	set_error(r, "unreachable", curl_easy_strerror(cc));
	return r->status = 0;
}

/* --- keeping a session alive --- */

uint64_t rc_heartbeat_due(const struct rc_session *s, uint64_t last_ms)
{
	unsigned ttl = s->ttl ? s->ttl : 15;

	return last_ms + (uint64_t)ttl * 1000 / 3;
}

struct rc_keepalive {
	struct rc *c;
	struct rc_session s;
	void (*on_lost)(void *ctx);
	void *ctx;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

static void *keepalive_main(void *arg)
{
	struct rc_keepalive *k = arg;
	struct rc_result r = { 0 };
	struct timespec until;
	long wait_ms = (long)(k->s.ttl ? k->s.ttl : 15) * 1000 / 3;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) == 0)
			;
		if (k->stop)
			break;
		pthread_mutex_unlock(&k->mu);
		rc_session_heartbeat(k->c, &k->s, &r);
		pthread_mutex_lock(&k->mu);
		if (r.status == 404) { /* the session is gone: say so once, and stop */
			rc_result_clear(&r);
			pthread_mutex_unlock(&k->mu);
			if (k->on_lost)
				k->on_lost(k->ctx);
			return NULL;
		}
		wait_ms = r.status == 0 ? 1000 : (long)(k->s.ttl ? k->s.ttl : 15) * 1000 / 3;
		rc_result_clear(&r);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

struct rc_keepalive *rc_keepalive_start(const char *url, const char *auth_token, const struct rc_session *s,
					void (*on_lost)(void *ctx), void *ctx)
{
	struct rc_keepalive *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->c = rc_new(url, auth_token);
	k->s = *s;
	k->on_lost = on_lost;
	k->ctx = ctx;
	if (!k->c || pthread_mutex_init(&k->mu, NULL)) {
		rc_free(k->c);
		free(k);
		return NULL;
	}
	pthread_cond_init(&k->cv, NULL);
	if (pthread_create(&k->thread, NULL, keepalive_main, k)) {
		pthread_cond_destroy(&k->cv);
		pthread_mutex_destroy(&k->mu);
		rc_free(k->c);
		free(k);
		return NULL;
	}
	return k;
}

void rc_keepalive_stop(struct rc_keepalive *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = true;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	rc_free(k->c);
	free(k);
}

/* --- helpers --- */

char *rc_target(const char *spec, char *err, size_t errlen)
{
	static const char *const kinds[] = { "name", "session", "prop", "group" };
	const char *colon = strchr(spec, ':'), *key, *rest = NULL;
	cJSON *o = NULL;
	char *out = NULL, *k = NULL;
	size_t i, klen;

	for (i = 0; colon && i < 4; i++)
		if ((size_t)(colon - spec) == strlen(kinds[i]) && !strncmp(spec, kinds[i], strlen(kinds[i])))
			break;
	if (!colon || i == 4 || !colon[1]) {
		snprintf(err, errlen, "%s: a target is name:N, session:ID, prop:K, group:G or group:G:PICK", spec);
		return NULL;
	}
	key = colon + 1;
	klen = strlen(key);
	if (i == 3) { /* group:G[:random|round_robin|hash[:HASH_KEY]] */
		static const char *const picks[] = { ":random", ":round_robin", ":hash" };
		size_t j;
		for (j = 0; j < 3 && !rest; j++) {
			const char *p = strstr(key, picks[j]);
			size_t pl = strlen(picks[j]);
			while (p && !(p[pl] == '\0' || (j == 2 && p[pl] == ':')))
				p = strstr(p + 1, picks[j]);
			if (p && p != key) {
				rest = p + 1;
				klen = (size_t)(p - key);
			}
		}
	}
	k = strndup(key, klen);
	o = cJSON_CreateObject();
	if (!k || !o || !cJSON_AddStringToObject(o, kinds[i], k))
		goto nomem;
	if (rest) {
		const char *hk = !strncmp(rest, "hash:", 5) ? rest + 5 : NULL;
		char *pick = strndup(rest, hk ? 4 : strlen(rest));
		if (!pick || !cJSON_AddStringToObject(o, "pick", pick) || (hk && !cJSON_AddStringToObject(o, "hash_key", hk))) {
			free(pick);
			goto nomem;
		}
		free(pick);
		if (!strcmp(rest, "hash")) {
			snprintf(err, errlen, "%s: a hash pick needs its key: group:G:hash:KEY", spec);
			goto out;
		}
	}
	out = cJSON_PrintUnformatted(o);
	if (!out)
		goto nomem;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	free(k);
	cJSON_Delete(o);
	return out;
}

int rc_exit_code(const struct rc_result *r)
{
	if (r->status == 0)
		return 4;
	if (r->status < 300)
		return 0;
	switch (r->status) {
	case 404:
		return 1;
	case 409:
		return 3;
	case 504:
		return 5;
	case 429:
		return 4;
	default:
		return r->status >= 500 ? 4 : 2;
	}
}

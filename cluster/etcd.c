/* etcd: the bodies rollcall sends to etcd 3.4's v3 JSON gateway (written
 * with jw) and the answers it reads back (read with cJSON, every member
 * checked for its type; an int64 never goes through a double above 2^53). */
#include "etcd.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- base64 --- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void etcd_b64_put(struct jw *w, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t i, out;
	char *o;

	if (n == 0)
		return;
	if (n / 3 >= (SIZE_MAX - 8) / 4) {
		w->oom = true;
		return;
	}
	out = (n + 2) / 3 * 4;
	if (!jw_grow(w, out))
		return;
	o = w->buf + w->len;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t q = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64_chars[q >> 18];
		*o++ = b64_chars[(q >> 12) & 63];
		*o++ = b64_chars[(q >> 6) & 63];
		*o++ = b64_chars[q & 63];
	}
	if (n - i == 1) {
		uint32_t q = (uint32_t)p[i] << 16;
		*o++ = b64_chars[q >> 18];
		*o++ = b64_chars[(q >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t q = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = b64_chars[q >> 18];
		*o++ = b64_chars[(q >> 12) & 63];
		*o++ = b64_chars[(q >> 6) & 63];
		*o++ = '=';
	}
	w->len += out;
}

/* etcd_b64_decode, telling bad input (ETCD_E_GARBAGE) from no memory. */
static enum etcd_rc b64_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	size_t i, o = 0, pad = 0;
	unsigned char *d;

	*out = NULL;
	*outlen = 0;
	if (n % 4)
		return ETCD_E_GARBAGE;
	if (n && s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	d = malloc(n / 4 * 3 + 1);
	if (!d)
		return ETCD_E_NOMEM;
	for (i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		size_t k, real = last ? 4 - pad : 4;
		int v[4] = { 0, 0, 0, 0 };
		uint32_t q;

		for (k = 0; k < real; k++) {
			v[k] = b64_value((unsigned char)s[i + k]);
			if (v[k] < 0)
				goto bad;
		}
		/* The bits under the padding must be zero: one encoding per byte string. */
		if ((real == 2 && (v[1] & 15)) || (real == 3 && (v[2] & 3)))
			goto bad;
		q = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		d[o++] = (unsigned char)(q >> 16);
		if (real > 2)
			d[o++] = (unsigned char)(q >> 8);
		if (real > 3)
			d[o++] = (unsigned char)q;
	}
	d[o] = '\0';
	*out = (char *)d;
	*outlen = o;
	return ETCD_OK;
bad:
	free(d);
	return ETCD_E_GARBAGE;
}

bool etcd_b64_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	return b64_decode(s, n, out, outlen) == ETCD_OK;
}

size_t etcd_prefix_end(const char *prefix, size_t n, char *out)
{
	size_t i = n;

	while (i > 0 && (unsigned char)prefix[i - 1] == 0xff)
		i--;
	if (i == 0) {
		out[0] = '\0';
		return 1;
	}
	memcpy(out, prefix, i - 1);
	out[i - 1] = (char)((unsigned char)prefix[i - 1] + 1);
	return i;
}

/* --- requests --- */

static void raw_n(struct jw *w, const char *s, size_t n)
{
	if (n) /* an empty jw has a NULL buffer: no memcpy from NULL */
		jw_raw(w, s, n);
}

/* "<base64>" */
static void put_b64(struct jw *w, const char *s, size_t n)
{
	jw_raw(w, "\"", 1);
	etcd_b64_put(w, s, n);
	jw_raw(w, "\"", 1);
}

/* "<int64>": etcd's int64s travel as strings, as lease IDs exceed 2^53. */
static void put_i64(struct jw *w, int64_t v)
{
	jw_raw(w, "\"", 1);
	if (v < 0) {
		jw_raw(w, "-", 1);
		jw_u64(w, (uint64_t)0 - (uint64_t)v);
	} else {
		jw_u64(w, (uint64_t)v);
	}
	jw_raw(w, "\"", 1);
}

/* "key":"..",("range_end":"..")? — the start of every key selector. */
static void put_key_range(struct jw *w, const char *key, size_t klen, const char *range_end, size_t relen)
{
	jw_lit(w, "\"key\":");
	put_b64(w, key, klen);
	if (range_end) {
		jw_lit(w, ",\"range_end\":");
		put_b64(w, range_end, relen);
	}
}

static const struct {
	const char *name, *field;
} targets[] = {
	[ETCD_T_CREATE] = { "CREATE", "create_revision" },
	[ETCD_T_MOD] = { "MOD", "mod_revision" },
	[ETCD_T_VERSION] = { "VERSION", "version" },
	[ETCD_T_VALUE] = { "VALUE", "value" },
	[ETCD_T_LEASE] = { "LEASE", "lease" },
};

static const char *const results[] = {
	[ETCD_EQUAL] = "EQUAL",
	[ETCD_GREATER] = "GREATER",
	[ETCD_LESS] = "LESS",
	[ETCD_NOT_EQUAL] = "NOT_EQUAL",
};

/* Opens one compare: {"key":"..","target":"T","result":"R", */
static bool cmp_open(struct etcd_txn *t, const char *key, size_t klen, enum etcd_target target,
		     enum etcd_result result)
{
	struct jw *w = &t->cmp;

	if ((unsigned)target >= sizeof(targets) / sizeof(targets[0]) ||
	    (unsigned)result >= sizeof(results) / sizeof(results[0])) {
		w->oom = true; /* a caller's bug: the body is refused, as on no memory */
		return false;
	}
	if (!w->buf)
		w->small = true;
	if (t->ncmp++)
		jw_raw(w, ",", 1);
	jw_lit(w, "{");
	put_key_range(w, key, klen, NULL, 0);
	jw_lit(w, ",\"target\":\"");
	jw_lit(w, targets[target].name);
	jw_lit(w, "\",\"result\":\"");
	jw_lit(w, results[result]);
	jw_lit(w, "\",\"");
	jw_lit(w, targets[target].field);
	jw_lit(w, "\":");
	return true;
}

void etcd_txn_cmp(struct etcd_txn *t, const char *key, size_t klen, enum etcd_target target,
		  enum etcd_result result, int64_t v)
{
	if (target == ETCD_T_VALUE) { /* compares bytes: etcd_txn_cmp_value */
		t->cmp.oom = true;
		return;
	}
	if (!cmp_open(t, key, klen, target, result))
		return;
	put_i64(&t->cmp, v);
	jw_lit(&t->cmp, "}");
}

void etcd_txn_cmp_value(struct etcd_txn *t, const char *key, size_t klen, enum etcd_result result,
			const char *value, size_t vlen)
{
	if (!cmp_open(t, key, klen, ETCD_T_VALUE, result))
		return;
	put_b64(&t->cmp, value, vlen);
	jw_lit(&t->cmp, "}");
}

/* Opens one operation on a branch: {"request_<kind>":{ */
static struct jw *op_open(struct etcd_txn *t, bool fail, const char *kind)
{
	struct jw *w = fail ? &t->fail : &t->ok;
	size_t *n = fail ? &t->nfail : &t->nok;

	if (!w->buf && fail)
		w->small = true;
	if ((*n)++)
		jw_raw(w, ",", 1);
	jw_lit(w, "{\"");
	jw_lit(w, kind);
	jw_lit(w, "\":{");
	return w;
}

void etcd_txn_put(struct etcd_txn *t, bool fail, const char *key, size_t klen, const char *value, size_t vlen,
		  int64_t lease, bool ignore_lease)
{
	struct jw *w = op_open(t, fail, "request_put");

	put_key_range(w, key, klen, NULL, 0);
	jw_lit(w, ",\"value\":");
	put_b64(w, value, vlen);
	/* etcd refuses a lease together with ignore_lease; ignore_lease wins. */
	if (ignore_lease) {
		jw_lit(w, ",\"ignore_lease\":true");
	} else if (lease) {
		jw_lit(w, ",\"lease\":");
		put_i64(w, lease);
	}
	jw_lit(w, "}}");
}

void etcd_txn_delete(struct etcd_txn *t, bool fail, const char *key, size_t klen, const char *range_end,
		     size_t relen)
{
	struct jw *w = op_open(t, fail, "request_delete_range");

	put_key_range(w, key, klen, range_end, relen);
	jw_lit(w, "}}");
}

void etcd_txn_range(struct etcd_txn *t, bool fail, const char *key, size_t klen, const char *range_end,
		    size_t relen, int64_t limit)
{
	struct jw *w = op_open(t, fail, "request_range");

	put_key_range(w, key, klen, range_end, relen);
	if (limit) {
		jw_lit(w, ",\"limit\":");
		put_i64(w, limit);
	}
	jw_lit(w, "}}");
}

void etcd_txn_nested(struct etcd_txn *t, bool fail, const char *txn, size_t len)
{
	struct jw *w = op_open(t, fail, "request_txn");

	/* op_open left the object open: take back its "{" and put the body */
	if (!w->oom && w->len) {
		w->len--;
		jw_raw(w, txn, len);
		jw_lit(w, "}");
	}
}

char *etcd_txn_finish(struct etcd_txn *t, size_t *len)
{
	struct jw w = { 0 };
	char *out = NULL;

	*len = 0;
	if (!t->cmp.oom && !t->ok.oom && !t->fail.oom) {
		jw_lit(&w, "{\"compare\":[");
		raw_n(&w, t->cmp.buf, t->cmp.len);
		jw_lit(&w, "],\"success\":[");
		raw_n(&w, t->ok.buf, t->ok.len);
		jw_lit(&w, "],\"failure\":[");
		raw_n(&w, t->fail.buf, t->fail.len);
		jw_lit(&w, "]}");
		out = jw_finish(&w, len);
	}
	etcd_txn_free(t);
	return out;
}

void etcd_txn_free(struct etcd_txn *t)
{
	free(t->cmp.buf);
	free(t->ok.buf);
	free(t->fail.buf);
	memset(t, 0, sizeof(*t));
}

static char *finish(struct jw *w, size_t *len)
{
	*len = 0;
	return jw_finish(w, len);
}

char *etcd_range_body(const char *key, size_t klen, const char *range_end, size_t relen, int64_t limit,
		      bool serializable, int64_t revision, size_t *len)
{
	struct jw w = { .small = true };

	jw_lit(&w, "{");
	put_key_range(&w, key, klen, range_end, relen);
	if (limit) {
		jw_lit(&w, ",\"limit\":");
		put_i64(&w, limit);
	}
	if (serializable)
		jw_lit(&w, ",\"serializable\":true");
	if (revision) {
		jw_lit(&w, ",\"revision\":");
		put_i64(&w, revision);
	}
	jw_lit(&w, "}");
	return finish(&w, len);
}

char *etcd_watch_body(const char *key, size_t klen, const char *range_end, size_t relen,
		      int64_t start_revision, size_t *len)
{
	struct jw w = { .small = true };

	jw_lit(&w, "{\"create_request\":{");
	put_key_range(&w, key, klen, range_end, relen);
	if (start_revision) {
		jw_lit(&w, ",\"start_revision\":");
		put_i64(&w, start_revision);
	}
	jw_lit(&w, ",\"progress_notify\":true}}");
	return finish(&w, len);
}

char *etcd_lease_grant_body(int64_t ttl, size_t *len)
{
	struct jw w = { .small = true };

	jw_lit(&w, "{\"TTL\":");
	put_i64(&w, ttl);
	jw_lit(&w, "}");
	return finish(&w, len);
}

char *etcd_lease_id_body(int64_t id, size_t *len)
{
	struct jw w = { .small = true };

	jw_lit(&w, "{\"ID\":");
	put_i64(&w, id);
	jw_lit(&w, "}");
	return finish(&w, len);
}

/* --- reading JSON --- */

bool etcd_parse_int64(const char *s, size_t n, int64_t *out)
{
	uint64_t v = 0, lim = INT64_MAX;
	size_t i = 0;
	bool neg = false;

	if (!s || n == 0)
		return false;
	if (s[0] == '-') {
		neg = true;
		lim = (uint64_t)INT64_MAX + 1;
		i = 1;
	}
	/* digits, no leading zero, no "-0": the only spelling Go writes */
	if (i == n || (s[i] == '0' && (n - i > 1 || neg)))
		return false;
	for (; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';
		if (d > 9 || v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (!neg)
		*out = (int64_t)v;
	else if (v == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)v;
	return true;
}

#define JSON_MAX_DEPTH 512 /* below cJSON's nesting limit (1000) */

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hex4(const unsigned char *p, const unsigned char *end)
{
	int v = 0, i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		int c = p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	return v;
}

static bool json_string(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp;

	if (p == end || *p++ != '"')
		return false;
	while (p < end && *p != '"') {
		int u, lo;
		if (*p < 0x20)
			return false;
		if (*p++ != '\\')
			continue;
		if (p == end)
			return false;
		if (*p && strchr("\"\\/bfnrt", *p)) {
			p++;
			continue;
		}
		if (*p++ != 'u' || (u = hex4(p, end)) < 0)
			return false;
		p += 4;
		if (u >= 0xdc00 && u <= 0xdfff)
			return false; /* a lone low surrogate: cJSON refuses it */
		if (u >= 0xd800 && u <= 0xdbff) {
			if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
				return false;
			lo = hex4(p + 2, end);
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
			p += 6;
		}
	}
	if (p == end)
		return false;
	*pp = p + 1;
	return true;
}

static bool json_scalar(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp, *start = p;
	static const char *const words[] = { "true", "false", "null" };
	size_t i;

	if (p < end && *p == '"')
		return json_string(pp, end);
	for (i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(end - p) >= n && !memcmp(p, words[i], n)) {
			*pp = p + n;
			return true;
		}
	}
	if (p < end && *p == '-')
		p++;
	if (p == end || *p < '0' || *p > '9')
		return false;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		if (++p == end || *p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || *p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p - start > 63) /* cJSON reads at most 63 bytes of a number */
		return false;
	*pp = p;
	return true;
}

/* "key" : */
static bool json_key(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = skip_ws(*pp, end);

	if (!json_string(&p, end))
		return false;
	p = skip_ws(p, end);
	if (p == end || *p != ':')
		return false;
	*pp = p + 1;
	return true;
}

/* Whether s[0..n) is one JSON value that cJSON accepts. cJSON gives NULL
 * both for bad text and for an allocation that failed; this, which
 * allocates nothing, tells the two apart. Where it differs from cJSON it
 * is stricter, so a failed parse of text it accepts is a failed allocation. */
static bool json_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	unsigned char stack[JSON_MAX_DEPTH]; /* '{' or '[' per open container */
	size_t depth = 0;

	for (;;) {
		/* a value is expected */
		p = skip_ws(p, end);
		if (p == end)
			return false;
		if (*p == '{' || *p == '[') {
			unsigned char close = *p == '{' ? '}' : ']';
			if (depth == JSON_MAX_DEPTH)
				return false;
			stack[depth++] = *p++;
			p = skip_ws(p, end);
			if (p < end && *p == close) {
				p++;
				depth--;
			} else {
				if (close == '}' && !json_key(&p, end))
					return false;
				continue;
			}
		} else if (!json_scalar(&p, end)) {
			return false;
		}
		/* after a value: a comma, a close, or the end */
		for (;;) {
			p = skip_ws(p, end);
			if (depth == 0)
				return p == end;
			if (p == end)
				return false;
			if (*p == ',') {
				p++;
				if (stack[depth - 1] == '{' && !json_key(&p, end))
					return false;
				break;
			}
			if (*p != (stack[depth - 1] == '{' ? '}' : ']'))
				return false;
			p++;
			depth--;
		}
	}
}

/* The object in body[0..len), nothing but whitespace after it. */
static enum etcd_rc parse_object(const char *body, size_t len, cJSON **root)
{
	const char *end = NULL;
	const unsigned char *rest;

	*root = NULL;
	if (!body || len == 0)
		return ETCD_E_GARBAGE;
	*root = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!*root)
		return json_valid(body, len) ? ETCD_E_NOMEM : ETCD_E_GARBAGE;
	rest = skip_ws((const unsigned char *)end, (const unsigned char *)body + len);
	if (rest != (const unsigned char *)body + len || !cJSON_IsObject(*root)) {
		cJSON_Delete(*root);
		*root = NULL;
		return ETCD_E_GARBAGE;
	}
	return ETCD_OK;
}

static const cJSON *member(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* A JSON int64: a string of digits, or a number that a double holds exactly. */
static bool item_i64(const cJSON *it, int64_t *out)
{
	double d;

	if (cJSON_IsString(it))
		return etcd_parse_int64(it->valuestring, strlen(it->valuestring), out);
	if (!cJSON_IsNumber(it))
		return false;
	d = it->valuedouble;
	if (!(d > -9007199254740992.0 && d < 9007199254740992.0) || (double)(int64_t)d != d)
		return false;
	*out = (int64_t)d;
	return true;
}

/* o's int64 member name: absent gives absent (proto3 leaves defaults
 * out); below min (revisions and counts are never negative) is garbage. */
static bool member_i64(const cJSON *o, const char *name, int64_t absent, int64_t min, int64_t *out)
{
	const cJSON *it = member(o, name);
	int64_t v;

	if (!it) {
		*out = absent;
		return true;
	}
	if (!item_i64(it, &v) || v < min)
		return false;
	*out = v;
	return true;
}

static bool member_bool(const cJSON *o, const char *name, bool *out)
{
	const cJSON *it = member(o, name);

	*out = false;
	if (!it)
		return true;
	if (!cJSON_IsBool(it))
		return false;
	*out = cJSON_IsTrue(it);
	return true;
}

/* The length of the valid UTF-8 sequence at p (at most avail bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* Copies s into the message, cut to fit at a character boundary; control
 * characters and bytes that are not UTF-8 become '?', so the message can go
 * into a log line or a JSON answer as it is. */
static void copy_message(char *dst, size_t cap, size_t at, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k = utf8_len(p + i, n - i);
		if (k <= 1 && (k == 0 || p[i] < 0x20 || p[i] == 0x7f)) {
			if (at + 1 >= cap)
				break;
			dst[at++] = '?';
			i += k ? k : 1;
			continue;
		}
		if (at + k >= cap)
			break;
		memcpy(dst + at, p + i, k);
		at += k;
		i += k;
	}
	dst[at] = '\0';
}

static void set_message(struct etcd_error *e, const char *s)
{
	copy_message(e->message, sizeof(e->message), 0, s, strlen(s));
}

/* Fills e (whose http_status is set) from root's "error" member, in
 * either of etcd's two shapes; false when root holds neither. */
static bool error_from_json(const cJSON *root, struct etcd_error *e)
{
	const cJSON *er = member(root, "error"), *msg;
	int64_t v;

	if (cJSON_IsString(er)) { /* unary: {"error","message","code"} */
		msg = member(root, "message");
		set_message(e, cJSON_IsString(msg) && msg->valuestring[0] ? msg->valuestring : er->valuestring);
		if (member_i64(root, "code", 0, 0, &v) && v <= INT_MAX)
			e->code = (int)v;
		return true;
	}
	if (cJSON_IsObject(er)) { /* streaming: {"error":{"grpc_code","http_code","message",...}} */
		msg = member(er, "message");
		if (cJSON_IsString(msg))
			set_message(e, msg->valuestring);
		if (member_i64(er, "grpc_code", 0, 0, &v) && v <= INT_MAX)
			e->code = (int)v;
		if (member_i64(er, "http_code", 0, 0, &v) && v >= 100 && v <= 599)
			e->http_status = (int)v;
		return true;
	}
	return false;
}

void etcd_parse_error(const char *body, size_t len, int http_status, struct etcd_error *e)
{
	cJSON *root = NULL;
	int n;

	memset(e, 0, sizeof(*e));
	e->http_status = http_status;
	if (parse_object(body, len, &root) == ETCD_OK && error_from_json(root, e)) {
		cJSON_Delete(root);
		return;
	}
	cJSON_Delete(root);
	memset(e, 0, sizeof(*e));
	e->http_status = http_status;
	if (!body)
		len = 0;
	n = snprintf(e->message, sizeof(e->message), "etcd answered HTTP %d with no etcd error%s", http_status,
		     len ? ": " : " (empty body)");
	if (len && n > 0 && (size_t)n < sizeof(e->message))
		copy_message(e->message, sizeof(e->message), (size_t)n, body, len);
}

/* An answer holding an "error" member: ETCD_E_ERROR, err filled. */
static enum etcd_rc check_error(const cJSON *root, struct etcd_error *err)
{
	const cJSON *er = member(root, "error");
	struct etcd_error e = { 0 };

	if (!er || (cJSON_IsString(er) && !er->valuestring[0]))
		return ETCD_OK; /* LeaseGrantResponse's own "error" field, when empty */
	if (!error_from_json(root, &e))
		return ETCD_E_GARBAGE;
	if (err)
		*err = e;
	return ETCD_E_ERROR;
}

static enum etcd_rc parse_header(const cJSON *o, struct etcd_header *h)
{
	const cJSON *hd = member(o, "header");

	memset(h, 0, sizeof(*h));
	if (!hd)
		return ETCD_OK;
	if (!cJSON_IsObject(hd) || !member_i64(hd, "revision", 0, 0, &h->revision) ||
	    !member_i64(hd, "raft_term", 0, 0, &h->raft_term))
		return ETCD_E_GARBAGE;
	return ETCD_OK;
}

/* One kv into kv (zeroed); what it allocated stays in kv on failure too. */
static enum etcd_rc parse_kv(const cJSON *o, struct etcd_kv *kv)
{
	const cJSON *k, *v;
	enum etcd_rc rc;

	if (!cJSON_IsObject(o))
		return ETCD_E_GARBAGE;
	k = member(o, "key");
	v = member(o, "value");
	if (!cJSON_IsString(k) || !k->valuestring[0] || (v && !cJSON_IsString(v)) ||
	    !member_i64(o, "create_revision", 0, 0, &kv->create_revision) ||
	    !member_i64(o, "mod_revision", 0, 0, &kv->mod_revision) ||
	    !member_i64(o, "version", 0, 0, &kv->version) || !member_i64(o, "lease", 0, INT64_MIN, &kv->lease))
		return ETCD_E_GARBAGE;
	rc = b64_decode(k->valuestring, strlen(k->valuestring), &kv->key, &kv->klen);
	if (rc == ETCD_OK)
		rc = b64_decode(v ? v->valuestring : "", v ? strlen(v->valuestring) : 0, &kv->value, &kv->vlen);
	return rc;
}

/* An array member of o: absent gives *n 0; else a calloc'd array of n items of size sz. */
static enum etcd_rc member_array(const cJSON *o, const char *name, size_t sz, const cJSON **arr, void **items,
				 size_t *n)
{
	int count;

	*arr = member(o, name);
	*items = NULL;
	*n = 0;
	if (!*arr)
		return ETCD_OK;
	if (!cJSON_IsArray(*arr))
		return ETCD_E_GARBAGE;
	count = cJSON_GetArraySize(*arr);
	if (count <= 0)
		return ETCD_OK;
	*items = calloc((size_t)count, sz);
	if (!*items)
		return ETCD_E_NOMEM;
	*n = (size_t)count;
	return ETCD_OK;
}

/* A RangeResponse object into r (zeroed); the caller frees r on failure. */
static enum etcd_rc parse_range_obj(const cJSON *o, struct etcd_range *r)
{
	const cJSON *kvs, *it;
	enum etcd_rc rc;
	void *items;
	size_t i = 0;

	rc = parse_header(o, &r->h);
	if (rc)
		return rc;
	if (!member_bool(o, "more", &r->more) || !member_i64(o, "count", 0, 0, &r->count))
		return ETCD_E_GARBAGE;
	rc = member_array(o, "kvs", sizeof(*r->kvs), &kvs, &items, &r->nkvs);
	r->kvs = items;
	if (rc || !r->nkvs)
		return rc;
	cJSON_ArrayForEach(it, kvs) {
		rc = parse_kv(it, &r->kvs[i++]);
		if (rc)
			return rc;
	}
	return ETCD_OK;
}

enum etcd_rc etcd_parse_range(const char *body, size_t len, struct etcd_range *out, struct etcd_error *err)
{
	cJSON *root;
	enum etcd_rc rc;

	memset(out, 0, sizeof(*out));
	rc = parse_object(body, len, &root);
	if (rc == ETCD_OK)
		rc = check_error(root, err);
	if (rc == ETCD_OK)
		rc = parse_range_obj(root, out);
	if (rc)
		etcd_range_free(out);
	cJSON_Delete(root);
	return rc;
}

void etcd_range_free(struct etcd_range *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->nkvs; i++) {
		free(r->kvs[i].key);
		free(r->kvs[i].value);
	}
	free(r->kvs);
	memset(r, 0, sizeof(*r));
}

static enum etcd_rc parse_txn_obj(const cJSON *root, struct etcd_txn_result *out);

/* One of a txn's "responses": {"response_<kind>":{...}}. */
static enum etcd_rc parse_txn_resp(const cJSON *o, struct etcd_txn_resp *r)
{
	const cJSON *x;

	if (!cJSON_IsObject(o))
		return ETCD_E_GARBAGE;
	if ((x = member(o, "response_range"))) {
		r->kind = ETCD_RESP_RANGE;
		return cJSON_IsObject(x) ? parse_range_obj(x, &r->range) : ETCD_E_GARBAGE;
	}
	if ((x = member(o, "response_put"))) {
		r->kind = ETCD_RESP_PUT;
		return cJSON_IsObject(x) ? ETCD_OK : ETCD_E_GARBAGE;
	}
	if ((x = member(o, "response_delete_range"))) {
		r->kind = ETCD_RESP_DELETE;
		return cJSON_IsObject(x) && member_i64(x, "deleted", 0, 0, &r->deleted) ? ETCD_OK : ETCD_E_GARBAGE;
	}
	if ((x = member(o, "response_txn"))) { /* a nested txn (a batch of writes) */
		r->kind = ETCD_RESP_TXN;
		if (!cJSON_IsObject(x))
			return ETCD_E_GARBAGE;
		r->txn = calloc(1, sizeof(*r->txn));
		return r->txn ? parse_txn_obj(x, r->txn) : ETCD_E_NOMEM;
	}
	return ETCD_E_GARBAGE;
}

/* A txn answer's object (the whole answer, or a nested one): header,
 * succeeded, responses. */
static enum etcd_rc parse_txn_obj(const cJSON *root, struct etcd_txn_result *out)
{
	const cJSON *arr, *it;
	enum etcd_rc rc;
	void *items = NULL;
	size_t i = 0;

	rc = parse_header(root, &out->h);
	if (rc == ETCD_OK && !member_bool(root, "succeeded", &out->succeeded))
		rc = ETCD_E_GARBAGE;
	if (rc == ETCD_OK) {
		rc = member_array(root, "responses", sizeof(*out->resp), &arr, &items, &out->nresp);
		out->resp = items;
	}
	if (rc == ETCD_OK && out->nresp) {
		cJSON_ArrayForEach(it, arr) {
			rc = parse_txn_resp(it, &out->resp[i++]);
			if (rc)
				break;
		}
	}
	return rc;
}

enum etcd_rc etcd_parse_txn(const char *body, size_t len, struct etcd_txn_result *out, struct etcd_error *err)
{
	cJSON *root;
	enum etcd_rc rc;

	memset(out, 0, sizeof(*out));
	rc = parse_object(body, len, &root);
	if (rc == ETCD_OK)
		rc = check_error(root, err);
	if (rc == ETCD_OK)
		rc = parse_txn_obj(root, out);
	if (rc)
		etcd_txn_result_free(out);
	cJSON_Delete(root);
	return rc;
}

void etcd_txn_result_free(struct etcd_txn_result *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->nresp; i++) {
		etcd_range_free(&r->resp[i].range); /* zeroed unless a range */
		if (r->resp[i].txn) {
			etcd_txn_result_free(r->resp[i].txn);
			free(r->resp[i].txn);
		}
	}
	free(r->resp);
	memset(r, 0, sizeof(*r));
}

enum etcd_rc etcd_parse_lease(const char *body, size_t len, struct etcd_header *h, int64_t *id, int64_t *ttl,
			      struct etcd_error *err)
{
	struct etcd_header hh = { 0 };
	int64_t i = 0, t = -1;
	const cJSON *o;
	cJSON *root;
	enum etcd_rc rc;

	rc = parse_object(body, len, &root);
	if (rc == ETCD_OK)
		rc = check_error(root, err);
	if (rc == ETCD_OK) {
		o = member(root, "result"); /* a keepalive line; a grant is unwrapped */
		if (!o)
			o = root;
		if (!cJSON_IsObject(o))
			rc = ETCD_E_GARBAGE;
		else if ((rc = parse_header(o, &hh)) == ETCD_OK &&
			 (!member_i64(o, "ID", 0, INT64_MIN, &i) || !member_i64(o, "TTL", -1, -1, &t)))
			rc = ETCD_E_GARBAGE;
	}
	if (rc) {
		memset(&hh, 0, sizeof(hh));
		i = 0;
		t = -1;
	}
	if (h)
		*h = hh;
	if (id)
		*id = i;
	if (ttl)
		*ttl = t;
	cJSON_Delete(root);
	return rc;
}

static enum etcd_rc parse_event(const cJSON *o, struct etcd_event *ev)
{
	const cJSON *type;

	if (!cJSON_IsObject(o))
		return ETCD_E_GARBAGE;
	type = member(o, "type"); /* absent: PUT, proto3's default */
	if (cJSON_IsString(type) && !strcmp(type->valuestring, "DELETE"))
		ev->del = true;
	else if (cJSON_IsNumber(type) && type->valuedouble == 1)
		ev->del = true;
	else if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "PUT")) &&
		 !(cJSON_IsNumber(type) && type->valuedouble == 0))
		return ETCD_E_GARBAGE;
	return parse_kv(member(o, "kv"), &ev->kv);
}

enum etcd_rc etcd_parse_watch_line(const char *line, size_t len, struct etcd_watch_msg *out,
				   struct etcd_error *err)
{
	const cJSON *r, *arr, *it;
	cJSON *root;
	enum etcd_rc rc;
	void *items = NULL;
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	rc = parse_object(line, len, &root);
	if (rc == ETCD_OK)
		rc = check_error(root, err);
	if (rc == ETCD_OK) {
		r = member(root, "result");
		if (!cJSON_IsObject(r))
			rc = ETCD_E_GARBAGE;
		else if ((rc = parse_header(r, &out->h)) == ETCD_OK &&
			 (!member_i64(r, "watch_id", 0, -1, &out->watch_id) || /* -1: a create refused */
			  !member_bool(r, "created", &out->created) || !member_bool(r, "canceled", &out->canceled) ||
			  !member_i64(r, "compact_revision", 0, 0, &out->compact_revision)))
			rc = ETCD_E_GARBAGE;
		if (rc == ETCD_OK) {
			rc = member_array(r, "events", sizeof(*out->events), &arr, &items, &out->nevents);
			out->events = items;
		}
	}
	if (rc == ETCD_OK && out->nevents) {
		cJSON_ArrayForEach(it, arr) {
			rc = parse_event(it, &out->events[i++]);
			if (rc)
				break;
		}
	}
	if (rc)
		etcd_watch_msg_free(out);
	cJSON_Delete(root);
	return rc;
}

void etcd_watch_msg_free(struct etcd_watch_msg *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nevents; i++) {
		free(m->events[i].kv.key);
		free(m->events[i].kv.value);
	}
	free(m->events);
	memset(m, 0, sizeof(*m));
}

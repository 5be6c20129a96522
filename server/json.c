/* json: strict checking and request-body reading; see json.h. The checker is
 * a recursive descent bounded by max_depth, so a body nested 100,000 deep
 * costs a quick 400, not the stack. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "uri.h"

struct cursor {
	const unsigned char *p, *end;
	const char *why;
	int depth, max_depth;
	/* top-level member collection, when collecting */
	struct json_body *body;
	bool nomem;
};

static void ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool fail(struct cursor *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return false;
}

static bool hex4(struct cursor *c, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (c->end - c->p < 4)
		return fail(c, "truncated \\u escape in a string");
	for (i = 0; i < 4; i++) {
		int h = uri_hexval(c->p[i]);
		if (h < 0)
			return fail(c, "bad \\u escape in a string");
		v = v * 16 + (unsigned)h;
	}
	c->p += 4;
	*out = v;
	return true;
}

/* One UTF-8 sequence starting at c->p (a byte >= 0x80). */
static bool utf8_seq(struct cursor *c)
{
	size_t n = uri_utf8_seq(c->p, (size_t)(c->end - c->p));

	if (!n)
		return fail(c, "invalid UTF-8 in the body");
	c->p += n;
	return true;
}

static bool string(struct cursor *c)
{
	c->p++; /* opening quote */
	while (c->p < c->end) {
		unsigned char ch = *c->p;
		if (ch == '"') {
			c->p++;
			return true;
		}
		if (ch < 0x20)
			return fail(c, "raw control character in a string");
		if (ch == '\\') {
			c->p++;
			if (c->p >= c->end)
				break;
			switch (*c->p++) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				break;
			case 'u': {
				unsigned u, lo;
				if (!hex4(c, &u))
					return false;
				if (u >= 0xdc00 && u <= 0xdfff)
					return fail(c, "lone low surrogate in a \\u escape");
				if (u >= 0xd800 && u <= 0xdbff) {
					if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
						return fail(c, "lone high surrogate in a \\u escape");
					c->p += 2;
					if (!hex4(c, &lo))
						return false;
					if (lo < 0xdc00 || lo > 0xdfff)
						return fail(c, "bad surrogate pair in a \\u escape");
				}
				break;
			}
			default:
				return fail(c, "bad escape in a string");
			}
			continue;
		}
		if (ch >= 0x80) {
			if (!utf8_seq(c))
				return false;
			continue;
		}
		c->p++;
	}
	return fail(c, "unterminated string");
}

static bool digits(struct cursor *c)
{
	const unsigned char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start;
}

static bool number(struct cursor *c)
{
	if (*c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0') {
		c->p++;
	} else if (c->p < c->end && *c->p >= '1' && *c->p <= '9') {
		digits(c);
	} else {
		return fail(c, "bad number");
	}
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!digits(c))
			return fail(c, "bad number: digits must follow the point");
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digits(c))
			return fail(c, "bad number: digits must follow the exponent");
	}
	if (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		return fail(c, "bad number: leading zero");
	return true;
}

static bool literal(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return fail(c, "unexpected character");
	c->p += n;
	return true;
}

static bool value(struct cursor *c);

/* Notes a top-level member's value span; its decoded name comes from cJSON
 * later (json_body_parse), where duplicates are found. */
static bool record_member(struct cursor *c, const unsigned char *name, size_t nlen,
			  const unsigned char *val, size_t vlen)
{
	struct json_body *b = c->body;
	struct json_member *m;

	/* A name holding U+0000 would read as a shorter one once decoded. */
	if (json_has_escaped_nul((const char *)name, nlen))
		return fail(c, "a member name holds U+0000");
	if ((b->nm & (b->nm - 1)) == 0) { /* grow at 0, 1, 2, 4, 8, ... */
		m = realloc(b->m, (b->nm ? b->nm * 2 : 1) * sizeof(*m));
		if (!m) {
			c->nomem = true;
			return fail(c, "out of memory");
		}
		b->m = m;
	}
	b->m[b->nm].item = NULL;
	b->m[b->nm].value = (const char *)val;
	b->m[b->nm].vlen = vlen;
	b->nm++;
	return true;
}

static bool object(struct cursor *c)
{
	bool top = c->depth == 1 && c->body;

	c->p++;
	ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return true;
	}
	for (;;) {
		const unsigned char *name, *val;
		size_t nlen;
		ws(c);
		if (c->p >= c->end || *c->p != '"')
			return fail(c, "expected a member name in an object");
		name = c->p + 1;
		if (!string(c))
			return false;
		nlen = (size_t)(c->p - 1 - name);
		ws(c);
		if (c->p >= c->end || *c->p != ':')
			return fail(c, "expected ':' in an object");
		c->p++;
		ws(c);
		val = c->p;
		if (!value(c))
			return false;
		if (top && !record_member(c, name, nlen, val, (size_t)(c->p - val)))
			return false;
		ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == '}') {
			c->p++;
			return true;
		}
		return fail(c, "expected ',' or '}' in an object");
	}
}

static bool array(struct cursor *c)
{
	c->p++;
	ws(c);
	if (c->p < c->end && *c->p == ']') {
		c->p++;
		return true;
	}
	for (;;) {
		ws(c);
		if (!value(c))
			return false;
		ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == ']') {
			c->p++;
			return true;
		}
		return fail(c, "expected ',' or ']' in an array");
	}
}

static bool value(struct cursor *c)
{
	bool ok;

	if (c->p >= c->end)
		return fail(c, "unexpected end of the body");
	switch (*c->p) {
	case '{':
	case '[':
		if (++c->depth > c->max_depth)
			return fail(c, "JSON nested too deep");
		ok = *c->p == '{' ? object(c) : array(c);
		c->depth--;
		return ok;
	case '"':
		return string(c);
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	default:
		if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
			return number(c);
		return fail(c, "unexpected character");
	}
}

static bool document(struct cursor *c)
{
	ws(c);
	if (!value(c))
		return false;
	ws(c);
	if (c->p != c->end)
		return fail(c, "unexpected text after the JSON value");
	return true;
}

bool json_check(const char *s, size_t n, int max_depth, const char **why)
{
	struct cursor c = { (const unsigned char *)s, (const unsigned char *)s + n, NULL, 0, max_depth, NULL, false };

	if (document(&c))
		return true;
	*why = c.why;
	return false;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Pairs each member's span with its parsed item (same order), and refuses
 * duplicate names once decoded ("ttl" and "\u0074tl" are one name): sorted
 * and compared with the neighbour, so a body of many members stays cheap. */
static enum json_body_rc link_members(struct json_body *b, const char **why)
{
	const cJSON **sorted;
	cJSON *it = b->root->child;
	size_t i;

	for (i = 0; i < b->nm && it; i++, it = it->next)
		b->m[i].item = it;
	if (b->nm < 2)
		return JSON_BODY_OK;
	sorted = malloc(b->nm * sizeof(*sorted));
	if (!sorted) {
		*why = "out of memory";
		return JSON_BODY_NOMEM;
	}
	for (i = 0; i < b->nm; i++)
		sorted[i] = b->m[i].item;
	qsort(sorted, b->nm, sizeof(*sorted), cmp_names);
	for (i = 1; i < b->nm && strcmp(sorted[i - 1]->string, sorted[i]->string); i++)
		;
	free(sorted);
	if (i < b->nm) {
		*why = "duplicate member name in the body object";
		return JSON_BODY_BAD;
	}
	return JSON_BODY_OK;
}

long json_array_split(const char *s, size_t n, struct json_span *out, size_t max, const char **why)
{
	struct cursor c = { (const unsigned char *)s, (const unsigned char *)s + n, NULL, 0, JSON_MAX_DEPTH, NULL, false };
	size_t k = 0;

	ws(&c);
	if (c.p == c.end || *c.p != '[') {
		*why = "expected a JSON array";
		return -1;
	}
	c.p++;
	c.depth = 1;
	ws(&c);
	if (c.p < c.end && *c.p == ']') {
		c.p++;
	} else {
		for (;;) {
			const unsigned char *start;
			ws(&c);
			start = c.p;
			if (!value(&c)) {
				*why = c.why;
				return -1;
			}
			if (k == max) {
				*why = "too many elements";
				return -1;
			}
			out[k].p = (const char *)start;
			out[k].n = (size_t)(c.p - start);
			k++;
			ws(&c);
			if (c.p < c.end && *c.p == ',') {
				c.p++;
				continue;
			}
			if (c.p < c.end && *c.p == ']') {
				c.p++;
				break;
			}
			*why = "expected ',' or ']' in an array";
			return -1;
		}
	}
	ws(&c);
	if (c.p != c.end) {
		*why = "unexpected text after the JSON value";
		return -1;
	}
	return (long)k;
}

enum json_body_rc json_body_parse(const char *buf, size_t len, struct json_body *b, const char **why)
{
	struct cursor c = { (const unsigned char *)buf, (const unsigned char *)buf + len, NULL, 0, JSON_MAX_DEPTH, b, false };

	memset(b, 0, sizeof(*b));
	ws(&c);
	if (c.p == c.end)
		return JSON_BODY_OK;
	if (*c.p != '{') {
		/* Still check it, so the message names the real fault when there is one. */
		c.body = NULL;
		*why = document(&c) ? "the body must be a JSON object" : c.why;
		return JSON_BODY_BAD;
	}
	if (!document(&c)) {
		*why = c.why;
		return c.nomem ? JSON_BODY_NOMEM : JSON_BODY_BAD;
	}
	b->root = cJSON_ParseWithLength(buf, len);
	if (!b->root) {
		/* The text passed the strict check, so only memory can fail here. */
		*why = "out of memory";
		return JSON_BODY_NOMEM;
	}
	return link_members(b, why);
}

const struct json_member *json_body_member(const struct json_body *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->nm; i++)
		if (b->m[i].item && !strcmp(b->m[i].item->string, name))
			return &b->m[i];
	return NULL;
}

const cJSON *json_body_get(const struct json_body *b, const char *name)
{
	const struct json_member *m = json_body_member(b, name);

	return m ? m->item : NULL;
}

void json_body_free(struct json_body *b)
{
	cJSON_Delete(b->root);
	free(b->m);
	memset(b, 0, sizeof(*b));
}

bool json_has_escaped_nul(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 6 <= n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4))
			return true;
		i++; /* skip the escaped character: an escaped backslash before "u0000" is text */
	}
	return false;
}

size_t json_minify(const char *s, size_t n, char *out)
{
	size_t i, k = 0;
	bool in_string = false;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (in_string) {
			out[k++] = c;
			if (c == '\\' && i + 1 < n)
				out[k++] = s[++i]; /* the escaped character, a quote included */
			else if (c == '"')
				in_string = false;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			out[k++] = c;
			in_string = c == '"';
		}
	}
	return k;
}

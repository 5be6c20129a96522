/* jw: see jw.h. */
#include "jw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool jw_grow(struct jw *w, size_t more)
{
	size_t cap;
	char *nb;

	if (w->oom)
		return false;
	if (w->len + more + 1 <= w->cap)
		return true;
	/* A first buffer of 2 KiB unless asked for less (an idle stream keeps
	 * its buffer, and there may be thousands of those). */
	cap = w->cap ? w->cap : (more + 1 < 2048 ? (w->small ? 256 : 2048) : 2048);
	while (cap < w->len + more + 1)
		cap *= 2;
	nb = realloc(w->buf, cap);
	if (!nb) {
		w->oom = true;
		return false;
	}
	w->buf = nb;
	w->cap = cap;
	return true;
}

void jw_str(struct jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	/* at most 6 bytes out per byte in, plus the quotes */
	if (!jw_grow(w, n * 6 + 2))
		return;
	w->buf[w->len++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char *o;
		if (c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		memcpy(w->buf + w->len, s + i - run, run);
		w->len += run;
		run = 0;
		o = w->buf + w->len;
		o[0] = '\\';
		switch (c) {
		case '"': o[1] = '"'; w->len += 2; break;
		case '\\': o[1] = '\\'; w->len += 2; break;
		case '\n': o[1] = 'n'; w->len += 2; break;
		case '\r': o[1] = 'r'; w->len += 2; break;
		case '\t': o[1] = 't'; w->len += 2; break;
		case '\b': o[1] = 'b'; w->len += 2; break;
		case '\f': o[1] = 'f'; w->len += 2; break;
		default:
			o[1] = 'u';
			o[2] = '0';
			o[3] = '0';
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			w->len += 6;
		}
	}
	memcpy(w->buf + w->len, s + n - run, run);
	w->len += run;
	w->buf[w->len++] = '"';
}

void jw_u64(struct jw *w, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);

	jw_raw(w, tmp, (size_t)n);
}

char *jw_finish(struct jw *w, size_t *len)
{
	char *out;

	if (!jw_grow(w, 0)) {
		free(w->buf);
		w->buf = NULL;
		return NULL;
	}
	w->buf[w->len] = '\0';
	out = w->buf;
	*len = w->len;
	w->buf = NULL;
	w->len = w->cap = 0;
	return out;
}

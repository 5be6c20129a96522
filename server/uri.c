/* uri: see uri.h. */
#include "uri.h"

#include <string.h>

#include "../store/store.h"

int uri_hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

size_t uri_utf8_seq(const unsigned char *s, size_t left)
{
	unsigned cp;
	size_t len, j;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (left < len)
		return 0;
	for (j = 1; j < len; j++) {
		if ((s[j] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[j] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool uri_decode(const char *raw, size_t n, bool plus_space, char *out, size_t cap, size_t *outlen)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)raw[i];
		if (k >= cap)
			return false;
		if (ch == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return false;
			hi = uri_hexval((unsigned char)raw[i + 1]);
			lo = uri_hexval((unsigned char)raw[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			out[k++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (ch == '+' && plus_space) {
			out[k++] = ' ';
		} else {
			out[k++] = (char)ch;
		}
	}
	*outlen = k;
	return true;
}

bool uri_text_ok(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		size_t len = 1;
		if (s[i] < 0x80) {
			if (s[i] < 0x20 || s[i] == 0x7f)
				return false;
		} else if ((len = uri_utf8_seq(s + i, n - i)) == 0) {
			return false;
		}
		i += len;
	}
	return true;
}

bool uri_decode_key(const char *raw, size_t n, char *out, size_t *outlen)
{
	if (!uri_decode(raw, n, false, out, STORE_KEY_MAX, outlen))
		return false;
	out[*outlen] = '\0';
	return *outlen >= 1 && uri_text_ok(out, *outlen);
}

/* True when the raw (encoded) parameter name raw[0..n) decodes to name[0..nl):
 * "w%61it" is "wait". */
static bool name_is(const char *raw, size_t n, const char *name, size_t nl)
{
	char buf[64];
	size_t len;

	if (n == nl && memcmp(raw, name, nl) == 0)
		return true;
	if (!memchr(raw, '%', n) && !memchr(raw, '+', n))
		return false;
	return uri_decode(raw, n, true, buf, sizeof(buf), &len) && len == nl && memcmp(buf, name, nl) == 0;
}

bool uri_query_find(const char *q, size_t qn, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name), i = 0;

	while (q && i < qn) {
		size_t end = i, eq;
		while (end < qn && q[end] != '&')
			end++;
		for (eq = i; eq < end && q[eq] != '='; eq++)
			;
		if (name_is(q + i, eq - i, name, nl)) {
			*val = eq < end ? q + eq + 1 : q + end;
			*vlen = eq < end ? end - eq - 1 : 0;
			return true;
		}
		i = end + 1;
	}
	return false;
}

/* uri: our own decoding of the raw request target. libmicrohttpd would
 * unescape the path before we see it, and %00 would cut it short, so the
 * server keeps the raw target and keys and query values are decoded here. */
#ifndef ROLLCALL_URI_H
#define ROLLCALL_URI_H

#include <stdbool.h>
#include <stddef.h>

/* Percent-decodes raw[0..n) into out (capacity cap). With plus_space, '+'
 * becomes ' ' (form encoding, for query values). Returns false on a bad
 * escape or when the result would not fit. */
bool uri_decode(const char *raw, size_t n, bool plus_space, char *out, size_t cap, size_t *outlen);

/* The value of a hex digit, or -1. */
int uri_hexval(unsigned char ch);

/* The length (2 to 4) of the well-formed UTF-8 sequence at s[0], a byte >=
 * 0x80, with left bytes available: shortest form, no surrogates, at most
 * U+10FFFF. 0 when it is not one. */
size_t uri_utf8_seq(const unsigned char *s, size_t left);

/* True when s[0..n) is valid UTF-8 (shortest form, no surrogates) with no
 * control character (U+0000..U+001F, U+007F). */
bool uri_text_ok(const char *s, size_t n);

/* Decodes a key from a path tail into out (at least STORE_KEY_MAX + 1 bytes),
 * NUL-terminated: 1..512 bytes of valid UTF-8 without control characters. */
bool uri_decode_key(const char *raw, size_t n, char *out, size_t *outlen);

/* Finds the first query parameter whose decoded name is name in the raw
 * query q[0..qn) (without the '?'); sets *val and *vlen to its raw (still encoded) value, ""
 * when it has no '='. Returns false when absent. */
bool uri_query_find(const char *q, size_t qn, const char *name, const char **val, size_t *vlen);

#endif

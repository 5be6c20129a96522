/* json: a strict RFC 8259 checker for request bodies (cJSON alone accepts
 * leading zeros, raw control characters and more), and the request-body
 * reader that hands handlers both parsed fields and the raw text of values. */
#ifndef ROLLCALL_JSON_H
#define ROLLCALL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define JSON_MAX_DEPTH 512

/* Checks that s[0..n) is exactly one JSON value (with surrounding white
 * space), strictly per RFC 8259, valid UTF-8, nested at most max_depth deep.
 * Returns true, or false with *why set to a static sentence. */
bool json_check(const char *s, size_t n, int max_depth, const char **why);

/* One top-level member of a body object: parsed, and as raw text. */
struct json_member {
	const cJSON *item;  /* the parsed member; item->string is its decoded name */
	const char *value;  /* the value's text, no surrounding white space */
	size_t vlen;
};

struct json_body {
	cJSON *root; /* the parsed object; NULL for an empty body */
	struct json_member *m;
	size_t nm;
};

enum json_body_rc { JSON_BODY_OK = 0, JSON_BODY_BAD, JSON_BODY_NOMEM };

/* Reads a request body: empty (or only white space) is {}; otherwise it must
 * be one strict JSON object with no duplicate member names (compared once
 * decoded), none holding U+0000. On JSON_BODY_BAD
 * *why says what is wrong. Free with json_body_free() whatever it returns. */
enum json_body_rc json_body_parse(const char *buf, size_t len, struct json_body *b, const char **why);

/* The member whose decoded name is name, or NULL. */
const struct json_member *json_body_member(const struct json_body *b, const char *name);

/* The parsed member called name, or NULL. */
const cJSON *json_body_get(const struct json_body *b, const char *name);

void json_body_free(struct json_body *b);

/* A piece of a JSON text. */
struct json_span {
	const char *p;
	size_t n;
};

/* Checks that s[0..n) is one strict JSON array and puts each element's
 * text in out[0..max): how many elements, or -1 when it is not such an
 * array or has more than max elements (*why says which). */
long json_array_split(const char *s, size_t n, struct json_span *out, size_t max, const char **why);

/* Copies the valid JSON text s[0..n) into out (room for n bytes) without
 * the white space between tokens; returns the new length. A value kept
 * this way is one line (an event stream's data line stays one line) and
 * no bigger than it needs to be. */
size_t json_minify(const char *s, size_t n, char *out);

/* True when the JSON text s[0..n) holds the escape \u0000, which a C string
 * decoded from it would silently end at. */
bool json_has_escaped_nul(const char *s, size_t n);

#endif

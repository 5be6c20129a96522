/* jw: a small JSON writer for the answers on hot paths (a group's members,
 * names, messages, events). It appends to one growing buffer, so an answer
 * costs one or two allocations instead of a tree of cJSON items; values
 * kept as JSON text are copied in as they are. */
#ifndef ROLLCALL_JW_H
#define ROLLCALL_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jw {
	char *buf;
	size_t len, cap;
	bool oom; /* an append failed: the text is incomplete */
};

/* Appends s[0..n) as it is (JSON text, or punctuation). */
void jw_raw(struct jw *w, const char *s, size_t n);

/* Appends a NUL-terminated literal as it is. */
void jw_lit(struct jw *w, const char *s);

/* Appends s[0..n) (UTF-8) as a quoted JSON string, escaping what must be. */
void jw_str(struct jw *w, const char *s, size_t n);

/* Appends a decimal number. */
void jw_u64(struct jw *w, uint64_t v);

/* The text (NUL-terminated, malloc'd: the caller frees it) and its length,
 * or NULL when an append ran out of memory (the buffer is freed then). */
char *jw_finish(struct jw *w, size_t *len);

#endif

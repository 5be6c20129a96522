/* jw: a small JSON writer for the answers on hot paths (a group's members,
 * names, messages, events). It appends to one growing buffer, so an answer
 * costs one or two allocations instead of a tree of cJSON items; values
 * kept as JSON text are copied in as they are. */
#ifndef ROLLCALL_JW_H
#define ROLLCALL_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jw {
	char *buf;
	size_t len, cap;
	bool oom;   /* an append failed: the text is incomplete */
	bool small; /* start with 256 bytes, not 2 KiB (long-lived, mostly idle) */
};

/* Makes room for more bytes (and a NUL); false when out of memory. */
bool jw_grow(struct jw *w, size_t more);

/* Appends s[0..n) as it is (JSON text, or punctuation). */
static inline void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->len + n + 1 > w->cap && !jw_grow(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* Appends a NUL-terminated text as it is (inline, so a literal's length
 * is known at compile time). */
static inline void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

/* Appends s[0..n) (UTF-8) as a quoted JSON string, escaping what must be. */
void jw_str(struct jw *w, const char *s, size_t n);

/* Appends a decimal number. */
void jw_u64(struct jw *w, uint64_t v);

/* The text (NUL-terminated, malloc'd: the caller frees it) and its length,
 * or NULL when an append ran out of memory (the buffer is freed then). */
char *jw_finish(struct jw *w, size_t *len);

#endif

/* etcd: the requests rollcall sends to etcd 3.4's v3 JSON gateway, and the
 * answers it reads back (see shared notes: keys and values base64, int64s
 * as JSON strings, fields with default values left out, two error shapes).
 * Pure functions: no I/O, no clock, no global state. Every decoder treats
 * its input as hostile: torn, truncated, garbage, or of the wrong shape. */
#ifndef ROLLCALL_ETCD_H
#define ROLLCALL_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../server/jw.h"

#define ETCD_MAX_TXN_OPS 128 /* etcd's --max-txn-ops default: per branch, and for compares */

/* --- base64 (standard alphabet, '=' padding) --- */

/* Appends the base64 of data[0..n) to w (no quotes). */
void etcd_b64_put(struct jw *w, const void *data, size_t n);

/* Decodes s[0..n): strict (length a multiple of 4, padding only at the
 * end, no other characters). *out is malloc'd and NUL-terminated (the
 * caller frees it), *outlen its length. False on bad input or out of
 * memory (*out NULL then). */
bool etcd_b64_decode(const char *s, size_t n, char **out, size_t *outlen);

/* The end of the range of every key that starts with prefix[0..n): the
 * prefix with its last byte below 0xff increased by one and the bytes
 * after it dropped, written to out (room for n bytes, and at least 1);
 * returns its length.
 * A prefix of only 0xff bytes (or empty) gives 1 byte "\0": every key from
 * the prefix on (etcd's convention). */
size_t etcd_prefix_end(const char *prefix, size_t n, char *out);

/* --- requests: JSON bodies, malloc'd and NUL-terminated (the caller
 * frees them), NULL when out of memory; *len is set to the length --- */

enum etcd_target { ETCD_T_CREATE, ETCD_T_MOD, ETCD_T_VERSION, ETCD_T_VALUE, ETCD_T_LEASE };
enum etcd_result { ETCD_EQUAL, ETCD_GREATER, ETCD_LESS, ETCD_NOT_EQUAL };

/* A transaction, built one compare or operation at a time. Zero it, add
 * to it, then etcd_txn_finish() (or etcd_txn_free() to drop it). */
struct etcd_txn {
	struct jw cmp, ok, fail; /* the three arrays' insides, as built */
	size_t ncmp, nok, nfail;
};

/* key's create_revision, mod_revision, version or lease compared with v. */
void etcd_txn_cmp(struct etcd_txn *t, const char *key, size_t klen, enum etcd_target target,
		  enum etcd_result result, int64_t v);
/* key's value compared (as bytes) with value[0..vlen). */
void etcd_txn_cmp_value(struct etcd_txn *t, const char *key, size_t klen, enum etcd_result result,
			const char *value, size_t vlen);
/* A put of key = value, on the success branch (fail false) or the failure
 * branch. lease 0: none (a put without a lease detaches the key from its
 * lease); ignore_lease keeps the key's current lease. */
void etcd_txn_put(struct etcd_txn *t, bool fail, const char *key, size_t klen, const char *value, size_t vlen,
		  int64_t lease, bool ignore_lease);
/* A delete of key (range_end NULL), or of [key, range_end). */
void etcd_txn_delete(struct etcd_txn *t, bool fail, const char *key, size_t klen, const char *range_end,
		     size_t relen);
/* A range read of key (range_end NULL), or of [key, range_end); limit 0: no limit. */
void etcd_txn_range(struct etcd_txn *t, bool fail, const char *key, size_t klen, const char *range_end,
		    size_t relen, int64_t limit);
/* A nested transaction (etcd 3.3 and later): txn[0..len) is the body of
 * another, from etcd_txn_finish(). Each nested txn has its own compares:
 * a batch of independent writes in one round trip (no two of them may put
 * the same key). */
void etcd_txn_nested(struct etcd_txn *t, bool fail, const char *txn, size_t len);
/* The body {"compare":[...],"success":[...],"failure":[...]}; t is emptied
 * whatever happens. NULL when any step ran out of memory. */
char *etcd_txn_finish(struct etcd_txn *t, size_t *len);
void etcd_txn_free(struct etcd_txn *t);

/* {"key","range_end"?,"limit"?,"serializable"?,"revision"?}: revision 0 is
 * the current one. */
char *etcd_range_body(const char *key, size_t klen, const char *range_end, size_t relen, int64_t limit,
		      bool serializable, int64_t revision, size_t *len);
/* {"create_request":{"key","range_end","start_revision","progress_notify":true}}
 * (no prev_kv: the mirror knows the old values). */
char *etcd_watch_body(const char *key, size_t klen, const char *range_end, size_t relen,
		      int64_t start_revision, size_t *len);
/* {"TTL":"ttl"} and {"ID":"id"} (keepalive, revoke, timetolive). */
char *etcd_lease_grant_body(int64_t ttl, size_t *len);
char *etcd_lease_id_body(int64_t id, size_t *len);

/* --- answers --- */

enum etcd_rc {
	ETCD_OK = 0,
	ETCD_E_GARBAGE, /* not an answer of the expected shape (torn, truncated, bad base64, ...) */
	ETCD_E_NOMEM,
	ETCD_E_ERROR,   /* an error object: see struct etcd_error */
};

/* gRPC codes seen through the gateway. */
enum {
	ETCD_GRPC_INVALID_ARGUMENT = 3,
	ETCD_GRPC_NOT_FOUND = 5,      /* "requested lease not found" */
	ETCD_GRPC_RESOURCE_EXHAUSTED = 8, /* "database space exceeded" */
	ETCD_GRPC_FAILED_PRECONDITION = 9,
	ETCD_GRPC_OUT_OF_RANGE = 11,  /* "required revision has been compacted" */
	ETCD_GRPC_UNAVAILABLE = 14,   /* no leader, timed out, leader changed */
};

struct etcd_error {
	int code;          /* gRPC code; 0 when the answer had none */
	int http_status;   /* as the caller gave it, or the streaming error's http_code */
	char message[160]; /* etcd's words, cut to fit; "" when none */
};

/* Reads an error answer: the unary shape {"error","message","code"} or the
 * streaming shape {"error":{"grpc_code","http_code","message",...}}.
 * Whatever body is (empty, garbage, HTML), e is filled: code 0 and a
 * message saying what came when it was not an etcd error. */
void etcd_parse_error(const char *body, size_t len, int http_status, struct etcd_error *e);

struct etcd_header {
	int64_t revision; /* 0 when absent (a canceled watch) */
	int64_t raft_term;
};

/* One key-value as etcd sends it; key and value decoded from base64,
 * malloc'd and NUL-terminated (value "" when absent). */
struct etcd_kv {
	char *key, *value;
	size_t klen, vlen;
	int64_t create_revision, mod_revision, version, lease;
};

struct etcd_range {
	struct etcd_header h;
	struct etcd_kv *kvs; /* malloc'd array */
	size_t nkvs;
	bool more;
	int64_t count;
};

enum etcd_resp_kind { ETCD_RESP_RANGE, ETCD_RESP_PUT, ETCD_RESP_DELETE, ETCD_RESP_TXN };

struct etcd_txn_result;

struct etcd_txn_resp {
	enum etcd_resp_kind kind;
	struct etcd_range range; /* for ETCD_RESP_RANGE */
	int64_t deleted;         /* for ETCD_RESP_DELETE */
	struct etcd_txn_result *txn; /* for ETCD_RESP_TXN (malloc'd; freed with the whole) */
};

struct etcd_txn_result {
	struct etcd_header h;
	bool succeeded;
	struct etcd_txn_resp *resp; /* malloc'd array, in the branch's order */
	size_t nresp;
};

/* Parse the 200 answer of /v3/kv/range, /v3/kv/txn. An answer holding an
 * "error" member gives ETCD_E_ERROR with *err filled (err may be NULL). */
enum etcd_rc etcd_parse_range(const char *body, size_t len, struct etcd_range *out, struct etcd_error *err);
enum etcd_rc etcd_parse_txn(const char *body, size_t len, struct etcd_txn_result *out, struct etcd_error *err);
void etcd_range_free(struct etcd_range *r);
void etcd_txn_result_free(struct etcd_txn_result *r);

/* /v3/lease/grant (unary) or one line of /v3/lease/keepalive (wrapped in
 * {"result":...}: pass the line). *ttl is -1 when the answer has no TTL:
 * for a keepalive, the lease is gone. */
enum etcd_rc etcd_parse_lease(const char *body, size_t len, struct etcd_header *h, int64_t *id, int64_t *ttl,
			      struct etcd_error *err);

/* One line of /v3/watch: {"result":{...}} or {"error":{...}}. */
struct etcd_event {
	bool del; /* a DELETE; else a PUT */
	struct etcd_kv kv; /* for a DELETE: key and mod_revision only */
};

struct etcd_watch_msg {
	struct etcd_header h;
	int64_t watch_id;
	bool created, canceled;
	int64_t compact_revision; /* set with canceled when the start revision was compacted */
	struct etcd_event *events; /* malloc'd array, in etcd's order */
	size_t nevents;
};

/* ETCD_OK, ETCD_E_ERROR (*err filled: a streaming error line, e.g. no
 * leader), ETCD_E_GARBAGE, ETCD_E_NOMEM. A progress notification is a
 * message with no event, not created, not canceled. */
enum etcd_rc etcd_parse_watch_line(const char *line, size_t len, struct etcd_watch_msg *out,
				   struct etcd_error *err);
void etcd_watch_msg_free(struct etcd_watch_msg *m);

/* A JSON int64 as etcd sends it: a string of digits (optionally '-') or a
 * number without fraction or exponent; never through a double. False on
 * anything else or overflow. */
bool etcd_parse_int64(const char *s, size_t n, int64_t *out);

#endif

/* Unit tests of the cluster's copy: etcd watch lines applied to the store
 * (nodes, sessions, names, entries, their ends, indices), and the
 * transaction that ends a session holding more than one transaction can
 * carry. No etcd and no socket: the cluster is made but never ticked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "../../cluster/cluster.h"
#include "../../cluster/etcd.h"
#include "../../server/config.h"

#define P "/rollcall/"

static const char TOK1[] = "0000000000000000000000000000a001", TOK2[] = "0000000000000000000000000000b002";
static const char ID1[] = "00000000000000a1", ID2[] = "00000000000000b2";

struct fx {
	struct config cfg;
	struct app app;
	int epfd;
};

static void fake_random(void *ctx, void *buf, size_t len)
{
	static uint64_t x = 0x9e3779b97f4a7c15ULL;
	unsigned char *p = buf;

	(void)ctx;
	while (len--) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*p++ = (unsigned char)x;
	}
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_config sc = { 0 };

	assert_non_null(f);
	config_defaults(&f->cfg);
	f->cfg.etcd = "http://127.0.0.1:9";
	strcpy(f->cfg.node, "n1");
	strcpy(f->cfg.advertise, "http://127.0.0.1:7071");
	sc.default_ttl = 15;
	sc.max_ttl = 3600;
	sc.max_sessions = 1000;
	sc.max_keys_per_session = 10;
	sc.random = fake_random;
	sc.lease_due = cluster_lease_due;
	sc.lease_due_ctx = &f->app;
	f->app.cfg = &f->cfg;
	f->app.store = store_new(&sc);
	assert_non_null(f->app.store);
	f->epfd = epoll_create1(0);
	assert_true(f->epfd >= 0);
	f->app.cluster = cluster_new(&f->app, f->epfd, 7);
	assert_non_null(f->app.cluster);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	cluster_free(f->app.cluster);
	store_free(f->app.store);
	close(f->epfd);
	free(f);
	return 0;
}

/* --- watch lines, as etcd's gateway writes them --- */

struct line {
	struct jw w;
	int n;
};

static void line_begin(struct line *l, int64_t header_rev)
{
	memset(l, 0, sizeof(*l));
	jw_lit(&l->w, "{\"result\":{\"header\":{\"revision\":\"");
	jw_u64(&l->w, (uint64_t)header_rev);
	jw_lit(&l->w, "\"},\"events\":[");
}

static void line_event(struct line *l, bool del, const char *key, const char *value, int64_t rev, int64_t crev)
{
	if (l->n++)
		jw_lit(&l->w, ",");
	jw_lit(&l->w, del ? "{\"type\":\"DELETE\",\"kv\":{\"key\":\"" : "{\"kv\":{\"key\":\"");
	etcd_b64_put(&l->w, key, strlen(key));
	jw_lit(&l->w, "\",\"mod_revision\":\"");
	jw_u64(&l->w, (uint64_t)rev);
	jw_lit(&l->w, "\"");
	if (!del) {
		jw_lit(&l->w, ",\"create_revision\":\"");
		jw_u64(&l->w, (uint64_t)crev);
		jw_lit(&l->w, "\",\"version\":\"1\",\"value\":\"");
		etcd_b64_put(&l->w, value, strlen(value));
		jw_lit(&l->w, "\"");
	}
	jw_lit(&l->w, "}}");
}

static bool line_apply(struct fx *f, struct line *l)
{
	size_t len;
	char *text;
	bool ok;

	jw_lit(&l->w, "]}}");
	text = jw_finish(&l->w, &len);
	assert_non_null(text);
	ok = cluster_apply_watch_line(f->app.cluster, text, len);
	free(text);
	return ok;
}

/* One event in a line of its own. */
static void put(struct fx *f, const char *key, const char *value, int64_t rev)
{
	struct line l;

	line_begin(&l, rev);
	line_event(&l, false, key, value, rev, rev);
	assert_true(line_apply(f, &l));
}

static void del(struct fx *f, const char *key, int64_t rev)
{
	struct line l;

	line_begin(&l, rev);
	line_event(&l, true, key, NULL, rev, 0);
	assert_true(line_apply(f, &l));
}

static const char NODE2[] = "{\"url\":\"http://127.0.0.1:7072\",\"since\":\"2026-12-02T00:00:00Z\"}";

static void session_record(char *out, size_t n, const char *node, int64_t nrev, const char *token)
{
	snprintf(out, n, "{\"node\":\"%s\",\"nrev\":\"%lld\",\"token\":\"%s\",\"ttl\":15}", node, (long long)nrev, token);
}

/* Node n2 (incarnation 5) with session ID1 (rev 6). */
static struct store_session *node2_session(struct fx *f)
{
	char rec[256];

	put(f, P "n/n2", NODE2, 5);
	session_record(rec, sizeof(rec), "n2", 5, TOK1);
	put(f, P "s/00000000000000a1", rec, 6);
	return store_session_lookup(f->app.store, ID1, 16);
}

static const struct store_event *last_event(struct fx *f)
{
	return store_event_get(f->app.store, store_event_end(f->app.store) - 1);
}

/* --- the tests --- */

static void test_watched_session_and_name_appear_at_their_revision(void **state)
{
	struct fx *f = *state;
	struct store_session *s = node2_session(f);
	struct store_name *nm;

	assert_non_null(s);
	assert_true(s->remote);
	assert_string_equal(s->home, "n2");
	assert_string_equal(s->token, TOK1);
	put(f, P "k/alpha", "{\"s\":\"00000000000000a1\",\"v\":{\"a\":1}}", 7);
	nm = store_name_get(f->app.store, "alpha", 5);
	assert_non_null(nm);
	assert_ptr_equal(nm->owner, s);
	assert_string_equal(nm->value, "{\"a\":1}");
	assert_int_equal(store_index(f->app.store), 7);
	assert_int_equal(last_event(f)->index, 7);
	assert_int_equal(last_event(f)->type, STORE_EV_NAME_REGISTERED);
}

static void test_a_session_of_a_node_not_live_is_not_shown(void **state)
{
	struct fx *f = *state;
	char rec[256];

	put(f, P "n/n2", NODE2, 5);
	session_record(rec, sizeof(rec), "n3", 5, TOK1); /* no such node */
	put(f, P "s/00000000000000a1", rec, 6);
	session_record(rec, sizeof(rec), "n2", 4, TOK2); /* an earlier incarnation of n2 */
	put(f, P "s/00000000000000b2", rec, 7);
	assert_int_equal(store_session_count(f->app.store), 0);
	assert_int_equal(store_index(f->app.store), 7);
}

static void test_entries_of_unknown_sessions_are_ignored(void **state)
{
	struct fx *f = *state;

	put(f, P "k/orphan", "{\"s\":\"00000000000000ff\",\"v\":1}", 3);
	put(f, P "p/00000000000000ff/p", "1", 4);
	assert_null(store_name_get(f->app.store, "orphan", 6));
	assert_null(store_prop_get(f->app.store, "p", 1));
	assert_int_equal(store_index(f->app.store), 4);
}

static void test_properties_and_groups_follow_their_keys(void **state)
{
	struct fx *f = *state;
	struct store_session *s = node2_session(f);
	struct store_key *k;

	put(f, P "p/00000000000000a1/color", "\"red\"", 7);
	put(f, P "g/00000000000000a1/workers", "{\"port\":1}", 8);
	k = store_prop_get(f->app.store, "color", 5);
	assert_non_null(k);
	assert_ptr_equal(k->head->session, s);
	assert_string_equal(k->head->value, "\"red\"");
	assert_non_null(store_group_get(f->app.store, "workers", 7));
	del(f, P "g/00000000000000a1/workers", 9);
	assert_null(store_group_get(f->app.store, "workers", 7));
	assert_int_equal(last_event(f)->type, STORE_EV_GROUP_LEFT);
}

static void test_a_lost_node_ends_its_sessions_at_one_index(void **state)
{
	struct fx *f = *state;
	char rec[256];
	uint64_t seq;
	int n = 0;

	node2_session(f);
	session_record(rec, sizeof(rec), "n2", 5, TOK2);
	put(f, P "s/00000000000000b2", rec, 7);
	put(f, P "k/a", "{\"s\":\"00000000000000a1\",\"v\":1}", 8);
	put(f, P "k/b", "{\"s\":\"00000000000000b2\",\"v\":2}", 9);
	del(f, P "n/n2", 20);
	assert_int_equal(store_session_count(f->app.store), 0);
	assert_null(store_name_get(f->app.store, "a", 1));
	assert_null(store_name_get(f->app.store, "b", 1));
	for (seq = store_event_seek(f->app.store, 9); seq < store_event_end(f->app.store); seq++, n++) {
		const struct store_event *e = store_event_get(f->app.store, seq);
		assert_int_equal(e->index, 20);
		assert_true(e->type == STORE_EV_NAME_UNREGISTERED || e->type == STORE_EV_SESSION_EXPIRED);
	}
	assert_int_equal(n, 4);
}

static void test_an_explicit_delete_says_deleted_and_a_plain_one_expired(void **state)
{
	struct fx *f = *state;
	char rec[256];
	struct line l;

	node2_session(f);
	session_record(rec, sizeof(rec), "n2", 5, TOK2);
	put(f, P "s/00000000000000b2", rec, 7);
	line_begin(&l, 8);
	line_event(&l, true, P "s/00000000000000a1", NULL, 8, 0);
	line_event(&l, false, P "e/n2", ID1, 8, 3);
	assert_true(line_apply(f, &l));
	assert_int_equal(last_event(f)->type, STORE_EV_SESSION_DELETED);
	del(f, P "s/00000000000000b2", 9);
	assert_int_equal(last_event(f)->type, STORE_EV_SESSION_EXPIRED);
}

static void test_a_name_taken_over_from_an_ended_owner_changes_hands(void **state)
{
	struct fx *f = *state;
	char rec[256];
	struct store_name *nm;

	node2_session(f);
	put(f, P "k/x", "{\"s\":\"00000000000000a1\",\"v\":1}", 7);
	del(f, P "s/00000000000000a1", 8); /* the owner ends; its name key is still in etcd */
	assert_null(store_name_get(f->app.store, "x", 1));
	session_record(rec, sizeof(rec), "n2", 5, TOK2);
	put(f, P "s/00000000000000b2", rec, 9);
	put(f, P "k/x", "{\"s\":\"00000000000000b2\",\"v\":2}", 10);
	nm = store_name_get(f->app.store, "x", 1);
	assert_non_null(nm);
	assert_string_equal(nm->owner->id, ID2);
}

static void test_a_ttl_change_reaches_the_copy(void **state)
{
	struct fx *f = *state;
	struct store_session *s = node2_session(f);

	put(f, P "s/00000000000000a1",
	    "{\"node\":\"n2\",\"nrev\":\"5\",\"token\":\"0000000000000000000000000000a001\",\"ttl\":99}", 7);
	assert_int_equal(s->ttl, 99);
	assert_int_equal(store_session_count(f->app.store), 1);
}

static void test_progress_moves_the_index_and_created_does_not(void **state)
{
	struct fx *f = *state;
	static const char created[] = "{\"result\":{\"header\":{\"revision\":\"50\"},\"created\":true}}";
	static const char progress[] = "{\"result\":{\"header\":{\"revision\":\"40\"}}}";

	assert_true(cluster_apply_watch_line(f->app.cluster, created, strlen(created)));
	assert_int_equal(store_index(f->app.store), 0);
	assert_true(cluster_apply_watch_line(f->app.cluster, progress, strlen(progress)));
	assert_int_equal(store_index(f->app.store), 40);
}

static void test_events_of_one_revision_in_a_catch_up_line_share_it(void **state)
{
	struct fx *f = *state;
	char rec[256];
	struct line l;

	line_begin(&l, 30); /* a catch-up line: the header is etcd's current revision */
	line_event(&l, false, P "n/n2", NODE2, 5, 5);
	session_record(rec, sizeof(rec), "n2", 5, TOK1);
	line_event(&l, false, P "s/00000000000000a1", rec, 6, 6);
	line_event(&l, false, P "k/a", "{\"s\":\"00000000000000a1\",\"v\":1}", 6, 6);
	assert_true(line_apply(f, &l));
	assert_int_equal(store_index(f->app.store), 6);
	assert_int_equal(last_event(f)->index, 6);
	assert_non_null(store_name_get(f->app.store, "a", 1));
}

static void test_a_revision_already_applied_is_not_applied_twice(void **state)
{
	struct fx *f = *state;
	uint64_t end;

	node2_session(f);
	put(f, P "k/a", "{\"s\":\"00000000000000a1\",\"v\":1}", 7);
	end = store_event_end(f->app.store);
	put(f, P "k/a", "{\"s\":\"00000000000000a1\",\"v\":1}", 7);
	assert_int_equal(store_event_end(f->app.store), end);
}

static void test_garbage_or_error_lines_end_the_watch_and_change_nothing(void **state)
{
	struct fx *f = *state;
	static const char *bad[] = {
		"{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":[{\"kv\":{\"key\":\"!!\"}}]}}",
		"{\"result\":",
		"<html>",
		"{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"}}",
	};
	size_t i;

	node2_session(f);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(cluster_apply_watch_line(f->app.cluster, bad[i], strlen(bad[i])));
	assert_int_equal(store_index(f->app.store), 6);
	assert_int_equal(store_session_count(f->app.store), 1);
}

static void test_a_record_or_name_of_garbage_is_skipped(void **state)
{
	struct fx *f = *state;

	put(f, P "n/n2", NODE2, 5);
	put(f, P "s/00000000000000a1", "{\"node\":\"n2\"", 6);
	put(f, P "s/00000000000000b2", "{\"node\":\"n2\",\"nrev\":\"5\",\"token\":\"short\",\"ttl\":15}", 7);
	put(f, P "k/a", "[]", 8);
	assert_int_equal(store_session_count(f->app.store), 0);
	assert_null(store_name_get(f->app.store, "a", 1));
	assert_int_equal(store_index(f->app.store), 8);
}

/* A session holding 300 names: its end is one transaction of at most 128
 * operations that deletes its record first; the names that do not fit
 * follow later, yet every reader sees all 300 go at the record's index. */
static void test_release_of_more_names_than_a_transaction_holds_is_atomic(void **state)
{
	struct fx *f = *state;
	struct store_session *s = node2_session(f);
	const cJSON *ops, *first;
	size_t len, leftover, i;
	struct line l;
	char key[64], *body;
	cJSON *root;
	uint64_t seq;
	int n = 0;

	assert_non_null(s);
	line_begin(&l, 100);
	for (i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), P "k/n%03zu", i);
		line_event(&l, false, key, "{\"s\":\"00000000000000a1\",\"v\":0}", 100, 100);
	}
	assert_true(line_apply(f, &l));
	assert_int_equal(s->n_names, 300);

	body = cluster_end_txn(f->app.cluster, s, false, &len, &leftover);
	assert_non_null(body);
	root = cJSON_ParseWithLength(body, len);
	assert_non_null(root);
	ops = cJSON_GetObjectItemCaseSensitive(root, "success");
	assert_true(cJSON_GetArraySize(ops) <= ETCD_MAX_TXN_OPS);
	assert_int_equal((size_t)cJSON_GetArraySize(ops) - 3 + leftover, 300); /* record, props, groups + names */
	assert_true(leftover > 0);
	first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ops, 0), "request_delete_range");
	assert_non_null(first);
	{
		char *k;
		size_t kl;
		const cJSON *kk = cJSON_GetObjectItemCaseSensitive(first, "key");
		assert_true(etcd_b64_decode(kk->valuestring, strlen(kk->valuestring), &k, &kl));
		assert_string_equal(k, P "s/00000000000000a1");
		free(k);
	}
	cJSON_Delete(root);
	free(body);

	/* etcd applies it: the record and the first names go at 101 ... */
	line_begin(&l, 101);
	line_event(&l, true, P "s/00000000000000a1", NULL, 101, 0);
	for (i = 0; i < 300 - leftover; i++) {
		snprintf(key, sizeof(key), P "k/n%03zu", i);
		line_event(&l, true, key, NULL, 101, 0);
	}
	assert_true(line_apply(f, &l));
	assert_int_equal(store_name_count(f->app.store), 0);
	for (seq = store_event_seek(f->app.store, 100); seq < store_event_end(f->app.store); seq++, n++)
		assert_int_equal(store_event_get(f->app.store, seq)->index, 101);
	assert_int_equal(n, 301); /* 300 names and the session, all at 101 */
	/* ... and the rest later, which nobody sees as a change */
	line_begin(&l, 102);
	for (i = 300 - leftover; i < 300; i++) {
		snprintf(key, sizeof(key), P "k/n%03zu", i);
		line_event(&l, true, key, NULL, 102, 0);
	}
	assert_true(line_apply(f, &l));
	assert_int_equal(store_event_end(f->app.store), store_event_seek(f->app.store, 100) + 301);
	assert_int_equal(store_index(f->app.store), 102);
}

static void test_an_explicit_end_writes_the_marker(void **state)
{
	struct fx *f = *state;
	struct store_session *s = node2_session(f);
	size_t len, leftover;
	char *body = cluster_end_txn(f->app.cluster, s, true, &len, &leftover);
	char *marker = NULL;
	struct jw w = { 0 };

	assert_non_null(body);
	etcd_b64_put(&w, P "e/n1", strlen(P "e/n1"));
	marker = jw_finish(&w, &len);
	assert_non_null(strstr(body, marker));
	assert_int_equal(leftover, 0);
	free(marker);
	free(body);
}

/* A range answer: kvs of (key, value), created at crev[i], at revision rev. */
static char *range_answer(int64_t rev, const char *const *kv, const int64_t *crev, size_t n, size_t *len)
{
	struct jw w = { 0 };
	size_t i;

	jw_lit(&w, "{\"header\":{\"revision\":\"");
	jw_u64(&w, (uint64_t)rev);
	jw_lit(&w, "\"},\"kvs\":[");
	for (i = 0; i < n; i++) {
		if (i)
			jw_lit(&w, ",");
		jw_lit(&w, "{\"key\":\"");
		etcd_b64_put(&w, kv[2 * i], strlen(kv[2 * i]));
		jw_lit(&w, "\",\"create_revision\":\"");
		jw_u64(&w, (uint64_t)crev[i]);
		jw_lit(&w, "\",\"mod_revision\":\"");
		jw_u64(&w, (uint64_t)crev[i]);
		jw_lit(&w, "\",\"value\":\"");
		etcd_b64_put(&w, kv[2 * i + 1], strlen(kv[2 * i + 1]));
		jw_lit(&w, "\"}");
	}
	jw_lit(&w, "]}");
	return jw_finish(&w, len);
}

/* After compaction the copy is read again: what etcd no longer has goes,
 * what it has comes, at one revision, and what did not change makes no
 * event. */
static void test_reading_again_brings_the_copy_to_etcd(void **state)
{
	struct fx *f = *state;
	char rec1[256], rec2[256], *body;
	const char *kv[10];
	uint64_t seq;
	size_t len;
	int added = 0, removed = 0, other = 0;

	node2_session(f);
	put(f, P "k/a", "{\"s\":\"00000000000000a1\",\"v\":1}", 7);
	put(f, P "k/b", "{\"s\":\"00000000000000a1\",\"v\":2}", 8);
	put(f, P "p/00000000000000a1/color", "\"red\"", 9);
	session_record(rec1, sizeof(rec1), "n2", 5, TOK1);
	session_record(rec2, sizeof(rec2), "n2", 5, TOK2);
	kv[0] = P "n/n2", kv[1] = NODE2;
	kv[2] = P "s/00000000000000a1", kv[3] = rec1;
	kv[4] = P "k/a", kv[5] = "{\"s\":\"00000000000000a1\",\"v\":1}";
	kv[6] = P "s/00000000000000b2", kv[7] = rec2;
	kv[8] = P "k/c", kv[9] = "{\"s\":\"00000000000000b2\",\"v\":3}";
	{
		static const int64_t crev[] = { 5, 6, 7, 20, 21 };
		body = range_answer(40, kv, crev, 5, &len);
	}
	assert_non_null(body);
	assert_true(cluster_reconcile_range(f->app.cluster, body, len));
	free(body);
	assert_non_null(store_name_get(f->app.store, "a", 1));
	assert_null(store_name_get(f->app.store, "b", 1));
	assert_null(store_prop_get(f->app.store, "color", 5));
	assert_non_null(store_name_get(f->app.store, "c", 1));
	assert_int_equal(store_session_count(f->app.store), 2);
	assert_int_equal(store_index(f->app.store), 40);
	for (seq = store_event_seek(f->app.store, 9); seq < store_event_end(f->app.store); seq++) {
		const struct store_event *e = store_event_get(f->app.store, seq);
		assert_int_equal(e->index, 40);
		if (e->type == STORE_EV_SESSION_CREATED || e->type == STORE_EV_NAME_REGISTERED)
			added++;
		else if (e->type == STORE_EV_NAME_UNREGISTERED || e->type == STORE_EV_PROP_REMOVED)
			removed++;
		else
			other++;
	}
	assert_int_equal(added, 2);   /* session b2 and its name c */
	assert_int_equal(removed, 2); /* name b and the property */
	assert_int_equal(other, 0);   /* nothing said of what did not change */
}

/* A name's value is kept byte for byte (a print of a parse would change
 * it, and a compare on it would then miss). */
static void test_a_name_value_keeps_its_bytes(void **state)
{
	struct fx *f = *state;
	struct store_name *nm;

	node2_session(f);
	put(f, P "k/f", "{\"s\":\"00000000000000a1\",\"v\":[1.0,\"\\u00e9\",12345678901234567890]}", 7);
	nm = store_name_get(f->app.store, "f", 1);
	assert_non_null(nm);
	assert_string_equal(nm->value, "[1.0,\"\\u00e9\",12345678901234567890]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_watched_session_and_name_appear_at_their_revision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_session_of_a_node_not_live_is_not_shown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entries_of_unknown_sessions_are_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_properties_and_groups_follow_their_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_lost_node_ends_its_sessions_at_one_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_explicit_delete_says_deleted_and_a_plain_one_expired, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_name_taken_over_from_an_ended_owner_changes_hands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_ttl_change_reaches_the_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_progress_moves_the_index_and_created_does_not, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_of_one_revision_in_a_catch_up_line_share_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_revision_already_applied_is_not_applied_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_or_error_lines_end_the_watch_and_change_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_record_or_name_of_garbage_is_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_of_more_names_than_a_transaction_holds_is_atomic, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_an_explicit_end_writes_the_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reading_again_brings_the_copy_to_etcd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_name_value_keeps_its_bytes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

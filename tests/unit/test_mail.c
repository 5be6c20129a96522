/* test_mail: the forwarder between nodes (cluster/mail.c) against fake
 * peers: an HTTP/1.1 server in threads of this process that records every
 * request and answers each as the test scripted it (results, a hold, a cut,
 * garbage, an error status, silence), with mail and httpc driven by a small
 * epoll loop like the daemon's. mail's clock is a number the tests set. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../cluster/httpc.h"
#include "../../cluster/mail.h"
#include "fake_server.h"

#define TAG 78
#define MAX_SEEN 64
#define MAX_SCRIPT 8
#define SECRET "0123456789abcdef0123456789abcdef"

/* --- the fake peers (fake_server.h) ---
 * One server stands for two peers: "a" at its root (POST /internal/deliver)
 * and "b" under /b (POST /b/internal/deliver). Each peer follows its own
 * script for its first requests, then answers M_RESULTS. */

enum mode {
	M_RESULTS,   /* 200, one result {"i":<index>,"n":<the item's n>} per item */
	M_HOLD,      /* the same, once release() is called */
	M_CLOSE,     /* reads the request, closes without a word */
	M_SHORT,     /* 200, one result too few */
	M_GARBAGE,   /* 200, a body that is not JSON */
	M_NOT_ARRAY, /* 200, the right results as an object's members {"0":..,"1":..} */
	M_STATUS500, /* 500, the right results */
	M_SILENT,    /* never answers */
};

/* One request as the peer saw it. */
struct seen {
	int peer; /* 0: "a", 1: "b", -1: another path */
	char method[16], path[128];
	bool has_fwd, has_auth, has_ctype;
	char fwd[128], auth[128], ctype[64];
	char *body; /* NUL-terminated */
	size_t body_len;
	int items;  /* how many "n": it held */
};

/* The peers' scripts and what they saw, under srv.mu. */
static struct peers {
	bool released;
	enum mode script[2][MAX_SCRIPT];
	int nscript[2], used[2];
	struct seen seen[MAX_SEEN];
	int nseen;
} peers;

/* The value of header name in a request head, trimmed; false when absent. */
static bool header_value(const char *head, const char *name, char *out, size_t cap)
{
	char pat[64];
	const char *p, *end;
	size_t n;

	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	p = strcasestr(head, pat);
	if (!p)
		return false;
	p += strlen(pat);
	while (*p == ' ' || *p == '\t')
		p++;
	end = strstr(p, "\r\n");
	n = end ? (size_t)(end - p) : strlen(p);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* The values of every "n": in body, in order (malloc'd); how many. Items
 * are {"n":<number>,...} and nothing else in them says "n":. */
static int item_ns(const char *body, long **out)
{
	const char *p;
	int n = 0, i = 0;
	long *ns;

	for (p = body; (p = strstr(p, "\"n\":")); p += 4)
		n++;
	ns = malloc(sizeof(*ns) * (size_t)(n + 1));
	if (!ns)
		return -1;
	for (p = body; (p = strstr(p, "\"n\":")); p += 4)
		ns[i++] = strtol(p + 4, NULL, 10);
	*out = ns;
	return n;
}

/* The answer to a batch of count items whose n are ns; false when the
 * connection is to end. */
static bool answer(int fd, enum mode mode, const long *ns, int count)
{
	size_t cap = 64 + 40 * (size_t)count, len = 0;
	char *res = malloc(cap), head[160];
	int i, nres = mode == M_SHORT ? count - 1 : count, hn, status = 200;
	bool ok;

	if (!res)
		return false;
	res[len++] = mode == M_NOT_ARRAY ? '{' : '[';
	for (i = 0; i < nres; i++) {
		if (i)
			res[len++] = ',';
		if (mode == M_NOT_ARRAY)
			len += (size_t)snprintf(res + len, cap - len, "\"%d\":", i);
		len += (size_t)snprintf(res + len, cap - len, "{\"i\":%d,\"n\":%ld}", i, ns[i]);
	}
	res[len++] = mode == M_NOT_ARRAY ? '}' : ']';
	res[len] = '\0';
	if (mode == M_GARBAGE)
		len = (size_t)snprintf(res, cap, "this is not json");
	if (mode == M_STATUS500)
		status = 500;
	hn = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		      status, status == 200 ? "OK" : "Internal Server Error", len);
	ok = send_all(fd, head, (size_t)hn) && send_all(fd, res, len);
	free(res);
	return ok;
}

/* Serves one connection's requests in turn, each recorded and answered as
 * its peer's script says. */
static void serve(int fd)
{
	char head[8192];

	for (;;) {
		struct seen s = { .peer = -1 };
		enum mode mode = M_RESULTS;
		long *ns = NULL;
		int count;
		bool keep;

		if (!read_head(fd, head, sizeof(head)))
			break;
		sscanf(head, "%15s %127s", s.method, s.path);
		if (!strcmp(s.path, "/internal/deliver"))
			s.peer = 0;
		else if (!strcmp(s.path, "/b/internal/deliver"))
			s.peer = 1;
		s.has_fwd = header_value(head, "X-Rollcall-Forward", s.fwd, sizeof(s.fwd));
		s.has_auth = header_value(head, "Authorization", s.auth, sizeof(s.auth));
		s.has_ctype = header_value(head, "Content-Type", s.ctype, sizeof(s.ctype));
		s.body = read_body(fd, head, &s.body_len);
		if (!s.body)
			break;
		count = item_ns(s.body, &ns);
		if (count < 0) {
			free(s.body);
			break;
		}
		s.items = count;
		pthread_mutex_lock(&srv.mu);
		if (s.peer >= 0 && peers.used[s.peer] < peers.nscript[s.peer])
			mode = peers.script[s.peer][peers.used[s.peer]++];
		if (peers.nseen < MAX_SEEN)
			peers.seen[peers.nseen++] = s;
		else
			free(s.body);
		while (mode == M_HOLD && !peers.released && !srv.stopping)
			pthread_cond_wait(&srv.cv, &srv.mu);
		pthread_mutex_unlock(&srv.mu);
		if (mode == M_SILENT)
			wait_gone(fd);
		keep = mode != M_CLOSE && mode != M_SILENT && answer(fd, mode, ns, count);
		free(ns);
		if (!keep)
			break;
	}
}

/* Peer (0: "a", 1: "b") answers its next requests in these modes. */
static void script(int peer, int n, ...)
{
	va_list ap;
	int i;

	va_start(ap, n);
	pthread_mutex_lock(&srv.mu);
	for (i = 0; i < n && i < MAX_SCRIPT; i++)
		peers.script[peer][i] = (enum mode)va_arg(ap, int);
	peers.nscript[peer] = i;
	peers.used[peer] = 0;
	pthread_mutex_unlock(&srv.mu);
	va_end(ap);
}

/* Held answers go now. */
static void release(void)
{
	pthread_mutex_lock(&srv.mu);
	peers.released = true;
	pthread_cond_broadcast(&srv.cv);
	pthread_mutex_unlock(&srv.mu);
}

static int seen_count(void)
{
	return read_locked(&peers.nseen);
}

/* The k-th request seen (k from 0); it does not change once seen. */
static const struct seen *seen_at(int k)
{
	const struct seen *s;

	pthread_mutex_lock(&srv.mu);
	assert_true(k < peers.nseen);
	s = &peers.seen[k];
	pthread_mutex_unlock(&srv.mu);
	return s;
}

/* The k-th request to peer (0: "a", 1: "b"), or NULL. */
static const struct seen *seen_by(int peer, int k)
{
	const struct seen *s = NULL;
	int i;

	pthread_mutex_lock(&srv.mu);
	for (i = 0; i < peers.nseen; i++) {
		if (peers.seen[i].peer == peer && k-- == 0) {
			s = &peers.seen[i];
			break;
		}
	}
	pthread_mutex_unlock(&srv.mu);
	return s;
}

static int seen_of(int peer)
{
	int i, n = 0;

	pthread_mutex_lock(&srv.mu);
	for (i = 0; i < peers.nseen; i++)
		n += peers.seen[i].peer == peer;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

/* s is a POST to a peer's /internal/deliver of a JSON array of count
 * objects whose n are ns, in order. */
static void assert_batch(const struct seen *s, const long *ns, int count)
{
	cJSON *root, *item;
	int i = 0;

	assert_non_null(s);
	assert_string_equal(s->method, "POST");
	assert_true(s->peer >= 0); /* <url>/internal/deliver */
	root = cJSON_ParseWithLength(s->body, s->body_len);
	assert_non_null(root);
	assert_true(cJSON_IsArray(root));
	assert_int_equal(cJSON_GetArraySize(root), count);
	cJSON_ArrayForEach(item, root) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, "n");
		assert_true(cJSON_IsObject(item));
		assert_true(cJSON_IsNumber(n));
		assert_int_equal((long)n->valuedouble, ns[i]);
		i++;
	}
	cJSON_Delete(root);
}

/* --- the client side: the loop, and what the callbacks saw --- */

static uint64_t fake_now;
static int stamp; /* bumped by every callback: their order */

static uint64_t clock_us(void)
{
	return fake_now;
}

struct env {
	int epfd;
	struct httpc *hc;
	struct mail *m;
	char secret[80]; /* the caller's string mail reads at each send */
	char url_a[64], url_b[64];
	bool no_flush;   /* turn() leaves flushing to the test */
	int done;        /* done calls, all items */
	int broken, broken_at;
	char broken_peer[80];
};

/* What one item's done call saw, and what it does then. */
struct got {
	struct env *env;
	struct mail_item *it;
	int calls, at;
	bool result, timed_out;
	long i, n; /* the result's, -1 when absent */
	/* done does these */
	struct got *forget;  /* forgets that item */
	struct got *post;    /* posts that one (n post_n) to post_peer (0: a, 1: b) */
	int post_peer;
	long post_n;
};

static const char *peer_name(int peer)
{
	return peer ? "b" : "a";
}

static const char *peer_url(struct env *e, int peer)
{
	return peer ? e->url_b : e->url_a;
}

static void on_done(void *ctx, const cJSON *result, bool timed_out);

/* Posts a size-byte item {"n":n,"pad":"xx.."} (size 0: {"n":n}) to peer. */
static struct mail_item *post_sized(struct env *e, int peer, long n, size_t size, struct got *g)
{
	char small[64], *item = small;
	int len = snprintf(small, sizeof(small), "{\"n\":%ld}", n);

	if (size) {
		int pre = snprintf(small, sizeof(small), "{\"n\":%ld,\"pad\":\"", n);
		assert_true(size >= (size_t)pre + 2);
		item = malloc(size + 1);
		assert_non_null(item);
		memcpy(item, small, (size_t)pre);
		memset(item + pre, 'x', size - (size_t)pre - 2);
		memcpy(item + size - 2, "\"}", 3);
		len = (int)size;
	}
	g->env = e;
	g->it = mail_post(e->m, peer_name(peer), peer_url(e, peer), item, (size_t)len, on_done, g);
	if (item != small)
		free(item);
	assert_non_null(g->it);
	return g->it;
}

static struct mail_item *post(struct env *e, int peer, long n, struct got *g)
{
	return post_sized(e, peer, n, 0, g);
}

static void on_done(void *ctx, const cJSON *result, bool timed_out)
{
	struct got *g = ctx;
	const cJSON *i, *n;

	g->calls++;
	g->at = ++stamp;
	g->env->done++;
	g->result = result != NULL;
	g->timed_out = timed_out;
	g->i = g->n = -1;
	if (result) {
		i = cJSON_GetObjectItemCaseSensitive(result, "i");
		n = cJSON_GetObjectItemCaseSensitive(result, "n");
		if (cJSON_IsNumber(i))
			g->i = (long)i->valuedouble;
		if (cJSON_IsNumber(n))
			g->n = (long)n->valuedouble;
	}
	g->it = NULL; /* gone after this call */
	if (g->forget) {
		mail_forget(g->env->m, g->forget->it);
		g->forget->it = NULL;
		g->forget = NULL;
	}
	if (g->post) {
		post(g->env, g->post_peer, g->post_n, g->post);
		g->post = NULL;
	}
}

static void on_broken(void *ctx, const char *peer)
{
	struct env *e = ctx;

	e->broken++;
	e->broken_at = ++stamp;
	snprintf(e->broken_peer, sizeof(e->broken_peer), "%s", peer);
}

/* A forwarder for the test (the env's secret, broken counted in the env). */
static void open_mail(struct env *e, const char *auth_token, size_t max_bytes, unsigned timeout_ms)
{
	e->m = mail_new(e->hc, e->secret, auth_token, max_bytes, timeout_ms, clock_us, on_broken, e);
	assert_non_null(e->m);
}

/* One turn of the daemon's loop: what was posted goes before it sleeps
 * (unless no_flush), then at most max_ms of waiting and the events. */
static void turn(struct env *e, int max_ms)
{
	if (e->m && !e->no_flush && mail_pending(e->m))
		mail_flush(e->m);
	loop_turn(e->hc, e->epfd, TAG, max_ms);
}

/* Runs the loop until *count reaches want or max_ms pass. */
static void run_until(struct env *e, const int *count, int want, int max_ms)
{
	int64_t end = now_ms() + max_ms;

	while (*count < want && now_ms() < end)
		turn(e, 20);
}

/* Runs the loop until the peers have seen want requests in all. */
static void run_until_seen(struct env *e, int want, int max_ms)
{
	int64_t end = now_ms() + max_ms;

	while (seen_count() < want && now_ms() < end)
		turn(e, 20);
	assert_int_equal(seen_count(), want);
}

static void run_for(struct env *e, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end)
		turn(e, 10);
}

/* The counts of peer (asserted to be known). */
static struct mail_peer_stats stats_of(struct env *e, const char *peer)
{
	struct mail_peer_stats st[8];
	size_t n = mail_stats(e->m, st, 8), i;

	for (i = 0; i < n; i++)
		if (!strcmp(st[i].peer, peer))
			return st[i];
	fail_msg("no counts for peer %s", peer);
	return st[0];
}

/* g was done once with result i and its own n. */
static void assert_result(const struct got *g, long i, long n)
{
	assert_int_equal(g->calls, 1);
	assert_true(g->result);
	assert_false(g->timed_out);
	assert_int_equal(g->i, i);
	assert_int_equal(g->n, n);
}

/* g was done once with no result. */
static void assert_failed(const struct got *g, bool timed_out)
{
	assert_int_equal(g->calls, 1);
	assert_false(g->result);
	assert_int_equal(g->timed_out, timed_out);
}

/* Makes the forwarder and has peer "a" hold its first batch: items with n
 * 0 to count - 1, posted with g[0..count-1], sent and seen; release() answers. */
static void hold_first_batch(struct env *e, struct got *g, int count)
{
	int k;

	script(0, 1, M_HOLD);
	open_mail(e, NULL, 0, 3000);
	for (k = 0; k < count; k++)
		post(e, 0, k, &g[k]);
	mail_flush(e->m);
	run_until_seen(e, 1, 3000);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	fake_now = 1000000;
	stamp = 0;
	memset(&peers, 0, sizeof(peers));
	fake_start(serve, TAG, &e->epfd, &e->hc);
	snprintf(e->url_a, sizeof(e->url_a), "http://127.0.0.1:%d", srv.port);
	snprintf(e->url_b, sizeof(e->url_b), "http://127.0.0.1:%d/b", srv.port);
	snprintf(e->secret, sizeof(e->secret), "%s", SECRET);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	int i;

	mail_free(e->m);
	fake_stop(e->epfd, e->hc);
	for (i = 0; i < peers.nseen; i++)
		free(peers.seen[i].body);
	free(e);
	return 0;
}

/* --- tests --- */

static void test_items_of_one_turn_go_in_one_post_and_get_their_own_results(void **state)
{
	struct env *e = *state;
	struct got g[4] = { { 0 } };
	const long ns[4] = { 10, 11, 12, 13 };
	const struct seen *s;
	int k;

	open_mail(e, NULL, 0, 3000);
	for (k = 0; k < 4; k++)
		post(e, 0, ns[k], &g[k]);
	assert_true(mail_pending(e->m));
	assert_int_equal(stats_of(e, "a").queued, 4);
	mail_flush(e->m);
	assert_false(mail_pending(e->m));
	run_until(e, &e->done, 4, 3000);
	assert_int_equal(seen_count(), 1);
	s = seen_at(0);
	assert_string_equal(s->method, "POST");
	assert_string_equal(s->path, "/internal/deliver");
	assert_string_equal(s->body, "[{\"n\":10},{\"n\":11},{\"n\":12},{\"n\":13}]");
	assert_true(s->has_ctype);
	assert_string_equal(s->ctype, "application/json");
	for (k = 0; k < 4; k++) {
		assert_result(&g[k], k, ns[k]);
		assert_int_equal(g[k].at, k + 1); /* in posting order */
	}
	assert_int_equal(e->broken, 0);
	run_for(e, 50);
	assert_int_equal(seen_count(), 1);
	assert_int_equal(e->done, 4);
}

static void test_secret_is_read_at_send_time_and_token_sent_as_bearer(void **state)
{
	struct env *e = *state;
	struct got g[2] = { { 0 } };

	e->secret[0] = '\0'; /* not known yet when mail is made */
	open_mail(e, "tok-123", 0, 3000);
	snprintf(e->secret, sizeof(e->secret), "%s", SECRET);
	post(e, 0, 1, &g[0]);
	mail_flush(e->m);
	run_until(e, &e->done, 1, 3000);
	assert_result(&g[0], 0, 1);
	assert_true(seen_at(0)->has_fwd);
	assert_string_equal(seen_at(0)->fwd, SECRET);
	assert_true(seen_at(0)->has_auth);
	assert_string_equal(seen_at(0)->auth, "Bearer tok-123");
	/* a new secret goes with the next batch */
	snprintf(e->secret, sizeof(e->secret), "%s", "fedcba9876543210fedcba9876543210");
	post(e, 0, 2, &g[1]);
	mail_flush(e->m);
	run_until(e, &e->done, 2, 3000);
	assert_result(&g[1], 0, 2);
	assert_string_equal(seen_at(1)->fwd, "fedcba9876543210fedcba9876543210");
}

static void test_no_authorization_header_without_token(void **state)
{
	struct env *e = *state;
	struct got g = { 0 };

	open_mail(e, NULL, 0, 3000);
	post(e, 0, 1, &g);
	mail_flush(e->m);
	run_until(e, &e->done, 1, 3000);
	assert_result(&g, 0, 1);
	assert_true(seen_at(0)->has_fwd);
	assert_string_equal(seen_at(0)->fwd, SECRET);
	assert_false(seen_at(0)->has_auth);
}

static void test_items_posted_while_a_batch_is_out_go_together_next(void **state)
{
	struct env *e = *state;
	struct got g[7] = { { 0 } };
	const long first[2] = { 0, 1 }, next[5] = { 2, 3, 4, 5, 6 };
	int k;

	hold_first_batch(e, g, 2);
	for (k = 2; k < 7; k++)
		post(e, 0, k, &g[k]);
	/* one batch out per peer: these wait */
	assert_false(mail_pending(e->m));
	mail_flush(e->m);
	run_for(e, 100);
	assert_int_equal(seen_count(), 1);
	assert_int_equal(e->done, 0);
	assert_int_equal(stats_of(e, "a").queued, 5);
	e->no_flush = true; /* the next batch leaves as the first returns */
	release();
	run_until(e, &e->done, 7, 3000);
	assert_int_equal(seen_count(), 2);
	assert_batch(seen_at(0), first, 2);
	assert_batch(seen_at(1), next, 5);
	assert_result(&g[0], 0, 0);
	assert_result(&g[1], 1, 1);
	for (k = 2; k < 7; k++) {
		assert_result(&g[k], k - 2, k);
		assert_int_equal(g[k].at, k + 1);
	}
	assert_int_equal(stats_of(e, "a").batches, 2);
	assert_int_equal(stats_of(e, "a").queued, 0);
}

static void test_peer_closing_mid_batch_fails_it_and_reports_broken_first(void **state)
{
	struct env *e = *state;
	struct got g[5] = { { 0 } };
	const long behind[2] = { 3, 4 };
	struct mail_peer_stats st;
	int k;

	script(0, 1, M_CLOSE);
	open_mail(e, NULL, 0, 3000);
	for (k = 0; k < 3; k++)
		post(e, 0, k, &g[k]);
	mail_flush(e->m);
	post(e, 0, 3, &g[3]); /* behind the batch out */
	post(e, 0, 4, &g[4]);
	e->no_flush = true; /* they leave as the batch fails */
	run_until(e, &e->done, 5, 3000);
	assert_int_equal(e->broken, 1);
	assert_string_equal(e->broken_peer, "a");
	for (k = 0; k < 3; k++) {
		assert_failed(&g[k], false);
		assert_true(e->broken_at < g[k].at);
	}
	/* the ones behind went afterwards, and the peer answered them */
	assert_int_equal(seen_count(), 2);
	assert_batch(seen_at(1), behind, 2);
	assert_result(&g[3], 0, 3);
	assert_result(&g[4], 1, 4);
	assert_true(g[2].at < g[3].at);
	st = stats_of(e, "a");
	assert_int_equal(st.batches, 2);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.items, 5);
	assert_int_equal(st.latency_count, 1);
	assert_int_equal(e->broken, 1);
}

/* The cut above comes on a fresh connection. On a kept-alive one, libcurl
 * sends a request again when the connection closes before any answer
 * (it takes that for a stale connection): the peer gets the batch twice,
 * at least once as mail.h says, and the items get the second answer. */
static void test_cut_on_a_kept_alive_connection_is_sent_again(void **state)
{
	struct env *e = *state;
	struct got g[2] = { { 0 } };
	const long ns[1] = { 1 };

	script(0, 2, M_RESULTS, M_CLOSE);
	open_mail(e, NULL, 0, 3000);
	post(e, 0, 0, &g[0]);
	mail_flush(e->m);
	run_until(e, &e->done, 1, 3000);
	post(e, 0, 1, &g[1]);
	mail_flush(e->m);
	run_until(e, &e->done, 2, 3000);
	assert_int_equal(seen_count(), 3);
	assert_int_equal(server_accepts(), 2); /* sent again on a new connection */
	assert_batch(seen_at(1), ns, 1);
	assert_batch(seen_at(2), ns, 1);
	assert_result(&g[1], 0, 1);
	assert_int_equal(e->broken, 0);
	assert_int_equal(stats_of(e, "a").batches, 2);
	assert_int_equal(stats_of(e, "a").failed, 0);
}

/* Peer "a" answers its first batch of 3 in mode: every item fails, without
 * a word to broken; the next batch is answered well. */
static void check_bad_answer(struct env *e, enum mode mode)
{
	struct got g[4] = { { 0 } };
	struct mail_peer_stats st;
	int k;

	script(0, 1, mode);
	open_mail(e, NULL, 0, 3000);
	for (k = 0; k < 3; k++)
		post(e, 0, k, &g[k]);
	mail_flush(e->m);
	run_until(e, &e->done, 3, 3000);
	for (k = 0; k < 3; k++)
		assert_failed(&g[k], false);
	assert_int_equal(e->broken, 0);
	st = stats_of(e, "a");
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.latency_count, 0);
	post(e, 0, 3, &g[3]);
	mail_flush(e->m);
	run_until(e, &e->done, 4, 3000);
	assert_result(&g[3], 0, 3);
	assert_int_equal(e->broken, 0);
}

static void test_wrong_number_of_results_fails_items_without_broken(void **state)
{
	check_bad_answer(*state, M_SHORT);
}

static void test_answer_not_json_fails_items_without_broken(void **state)
{
	check_bad_answer(*state, M_GARBAGE);
}

static void test_answer_not_an_array_fails_items_without_broken(void **state)
{
	check_bad_answer(*state, M_NOT_ARRAY);
}

static void test_error_status_fails_items_without_broken(void **state)
{
	check_bad_answer(*state, M_STATUS500);
}

static void test_silent_peer_times_out_items(void **state)
{
	struct env *e = *state;
	struct got g[2] = { { 0 } };
	int64_t t0 = now_ms(), took;

	script(0, 1, M_SILENT);
	open_mail(e, NULL, 0, 200);
	post(e, 0, 0, &g[0]);
	post(e, 0, 1, &g[1]);
	mail_flush(e->m);
	run_until(e, &e->done, 2, 3000);
	took = now_ms() - t0;
	assert_failed(&g[0], true);
	assert_failed(&g[1], true);
	assert_true(took >= 190 && took < 2000);
	assert_int_equal(e->broken, 0);
	assert_int_equal(stats_of(e, "a").failed, 1);
}

static void test_refused_connection_fails_items_and_reports_broken(void **state)
{
	struct env *e = *state;
	struct got g[2] = { { 0 } };
	int port, fd = bound_socket(false, &port); /* bound, never listening: refused */

	snprintf(e->url_a, sizeof(e->url_a), "http://127.0.0.1:%d", port);
	open_mail(e, NULL, 0, 3000);
	post(e, 0, 0, &g[0]);
	post(e, 0, 1, &g[1]);
	mail_flush(e->m);
	run_until(e, &e->done, 2, 3000);
	assert_failed(&g[0], false);
	assert_failed(&g[1], false);
	assert_int_equal(e->broken, 1);
	assert_string_equal(e->broken_peer, "a");
	assert_true(e->broken_at < g[0].at);
	assert_int_equal(stats_of(e, "a").failed, 1);
	close(fd);
}

static void test_forgotten_queued_item_does_not_go(void **state)
{
	struct env *e = *state;
	struct got g[5] = { { 0 } };
	const long ns[3] = { 0, 2, 4 };

	open_mail(e, NULL, 0, 3000);
	post(e, 0, 0, &g[0]);
	post(e, 0, 1, &g[1]);
	post(e, 0, 2, &g[2]);
	post(e, 0, 3, &g[3]);
	mail_forget(e->m, g[1].it); /* from the middle */
	mail_forget(e->m, g[3].it); /* the tail: the next post goes after 2 */
	assert_int_equal(stats_of(e, "a").queued, 2);
	post(e, 0, 4, &g[4]);
	mail_flush(e->m);
	run_until(e, &e->done, 3, 3000);
	run_for(e, 50);
	assert_int_equal(seen_count(), 1);
	assert_batch(seen_at(0), ns, 3);
	assert_result(&g[0], 0, 0);
	assert_result(&g[2], 1, 2);
	assert_result(&g[4], 2, 4);
	assert_int_equal(g[1].calls, 0);
	assert_int_equal(g[3].calls, 0);
	assert_int_equal(stats_of(e, "a").items, 3);
}

static void test_forgotten_only_item_leaves_nothing_to_send(void **state)
{
	struct env *e = *state;
	struct got g = { 0 };

	open_mail(e, NULL, 0, 3000);
	post(e, 0, 0, &g);
	mail_forget(e->m, g.it);
	assert_false(mail_pending(e->m));
	mail_flush(e->m);
	run_for(e, 100);
	assert_int_equal(seen_count(), 0);
	assert_int_equal(g.calls, 0);
	assert_int_equal(stats_of(e, "a").batches, 0);
}

static void test_forgotten_item_in_batch_out_is_answered_to_no_one(void **state)
{
	struct env *e = *state;
	struct got g[3] = { { 0 } };
	const long ns[3] = { 0, 1, 2 };

	hold_first_batch(e, g, 3);
	mail_forget(e->m, g[1].it);
	release();
	run_until(e, &e->done, 2, 3000);
	run_for(e, 50);
	assert_batch(seen_at(0), ns, 3);
	assert_result(&g[0], 0, 0);
	assert_int_equal(g[1].calls, 0);
	assert_result(&g[2], 2, 2); /* its own result, not the forgotten one's */
	assert_int_equal(e->done, 2);
}

static void test_peer_lost_fails_its_items_at_once_and_spares_others(void **state)
{
	struct env *e = *state;
	struct got a[4] = { { 0 } }, b[2] = { { 0 } };
	const long again[1] = { 9 };
	struct mail_peer_stats st;
	int k;

	script(0, 1, M_HOLD);
	script(1, 1, M_HOLD);
	open_mail(e, NULL, 0, 3000);
	post(e, 0, 0, &a[0]);
	post(e, 0, 1, &a[1]);
	post(e, 1, 100, &b[0]);
	mail_flush(e->m);
	run_until_seen(e, 2, 3000); /* both batches out, held */
	post(e, 0, 2, &a[2]);       /* queued behind */
	post(e, 1, 101, &b[1]);
	mail_peer_lost(e->m, "a");
	/* at once, without a turn of the loop, in posting order */
	for (k = 0; k < 3; k++) {
		assert_failed(&a[k], false);
		assert_int_equal(a[k].at, k + 1);
	}
	assert_int_equal(b[0].calls + b[1].calls, 0);
	assert_int_equal(e->broken, 0);
	st = stats_of(e, "a");
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.failed, 1);
	assert_int_equal(stats_of(e, "b").queued, 1);
	assert_int_equal(httpc_active(e->hc), 1); /* a's request is cancelled, b's goes on */
	release();
	run_until(e, &e->done, 5, 3000);
	assert_result(&b[0], 0, 100);
	assert_result(&b[1], 0, 101);
	run_for(e, 50);
	for (k = 0; k < 3; k++)
		assert_int_equal(a[k].calls, 1);
	assert_int_equal(stats_of(e, "b").failed, 0);
	/* the peer may come back: its next item goes */
	post(e, 0, 9, &a[3]);
	mail_flush(e->m);
	run_until(e, &e->done, 6, 3000);
	assert_result(&a[3], 0, 9);
	st = stats_of(e, "a");
	assert_int_equal(st.batches, 2);
	assert_int_equal(st.failed, 1);
	assert_int_equal(seen_of(0), 2);
	assert_batch(seen_by(0, 1), again, 1);
}

static void test_batches_split_at_max_bytes_in_order(void **state)
{
	struct env *e = *state;
	struct got g[5] = { { 0 } };
	const long b0[2] = { 0, 1 }, b1[2] = { 2, 3 }, b2[1] = { 4 };
	int k;

	/* two 100-byte items fit in 250 bytes of body; three do not */
	open_mail(e, NULL, 250, 3000);
	for (k = 0; k < 5; k++)
		post_sized(e, 0, k, 100, &g[k]);
	mail_flush(e->m);
	run_until(e, &e->done, 5, 3000);
	assert_int_equal(seen_count(), 3);
	assert_batch(seen_at(0), b0, 2);
	assert_batch(seen_at(1), b1, 2);
	assert_batch(seen_at(2), b2, 1);
	for (k = 0; k < 3; k++)
		assert_true(seen_at(k)->body_len <= 250);
	for (k = 0; k < 5; k++) {
		assert_result(&g[k], k % 2, k);
		assert_int_equal(g[k].at, k + 1);
	}
	assert_int_equal(stats_of(e, "a").batches, 3);
	assert_int_equal(stats_of(e, "a").items, 5);
}

static void test_item_bigger_than_max_bytes_goes_alone(void **state)
{
	struct env *e = *state;
	struct got g[3] = { { 0 } };
	const long b0[1] = { 0 }, b1[1] = { 1 }, b2[1] = { 2 };

	open_mail(e, NULL, 250, 3000);
	post_sized(e, 0, 0, 20, &g[0]);
	post_sized(e, 0, 1, 600, &g[1]);
	post_sized(e, 0, 2, 20, &g[2]);
	mail_flush(e->m);
	run_until(e, &e->done, 3, 3000);
	assert_int_equal(seen_count(), 3);
	assert_batch(seen_at(0), b0, 1);
	assert_batch(seen_at(1), b1, 1);
	assert_int_equal(seen_at(1)->body_len, 602); /* whole: [ + 600 + ] */
	assert_batch(seen_at(2), b2, 1);
	assert_result(&g[0], 0, 0);
	assert_result(&g[1], 0, 1);
	assert_result(&g[2], 0, 2);
}

#define OVER (MAIL_MAX_ITEMS + 6)

static void test_batch_holds_at_most_max_items(void **state)
{
	struct env *e = *state;
	struct got *g = calloc(OVER, sizeof(*g));
	int k;

	assert_non_null(g);
	open_mail(e, NULL, 0, 3000);
	for (k = 0; k < OVER; k++)
		post(e, 0, k, &g[k]);
	mail_flush(e->m);
	run_until(e, &e->done, OVER, 5000);
	assert_int_equal(seen_count(), 2);
	assert_int_equal(seen_at(0)->items, MAIL_MAX_ITEMS);
	assert_int_equal(seen_at(1)->items, OVER - MAIL_MAX_ITEMS);
	for (k = 0; k < OVER; k++)
		assert_result(&g[k], k < MAIL_MAX_ITEMS ? k : k - MAIL_MAX_ITEMS, k);
	free(g);
}

static void test_stats_count_batches_failures_items_latency_and_notes(void **state)
{
	struct env *e = *state;
	struct got g[3] = { { 0 } };
	struct mail_peer_stats st[4];
	size_t n;

	script(0, 2, M_HOLD, M_SHORT);
	open_mail(e, NULL, 0, 3000);
	assert_int_equal(mail_stats(e->m, st, 4), 0);
	post(e, 0, 0, &g[0]);
	post(e, 0, 1, &g[1]);
	assert_int_equal(stats_of(e, "a").queued, 2);
	mail_flush(e->m); /* sent at 1000000 */
	run_until_seen(e, 1, 3000);
	fake_now += 750;
	release();
	run_until(e, &e->done, 2, 3000);
	post(e, 0, 2, &g[2]); /* answered with too few results */
	mail_flush(e->m);
	fake_now += 5000;
	run_until(e, &e->done, 3, 3000);
	assert_failed(&g[2], false);
	mail_note(e->m, "a", false, 300);
	mail_note(e->m, "a", true, 99999);
	mail_note(e->m, "z", false, 50); /* a peer first seen here */
	n = mail_stats(e->m, st, 4);
	assert_int_equal(n, 2);
	assert_string_equal(st[0].peer, "a");
	assert_int_equal(st[0].batches, 4);
	assert_int_equal(st[0].failed, 2);
	assert_int_equal(st[0].items, 3);
	assert_int_equal(st[0].latency_count, 2);
	assert_int_equal(st[0].latency_us_sum, 1050);
	assert_int_equal(st[0].latency_us_max, 750);
	assert_int_equal(st[0].queued, 0);
	assert_string_equal(st[1].peer, "z");
	assert_int_equal(st[1].batches, 1);
	assert_int_equal(st[1].failed, 0);
	assert_int_equal(st[1].items, 0);
	assert_int_equal(st[1].latency_count, 1);
	assert_int_equal(st[1].latency_us_sum, 50);
	assert_int_equal(st[1].latency_us_max, 50);
	assert_int_equal(mail_stats(e->m, st, 1), 1); /* no more than asked */
	assert_string_equal(st[0].peer, "a");
}

static void test_done_callback_may_post_new_items(void **state)
{
	struct env *e = *state;
	struct got g[2] = { { 0 } }, later = { 0 }, other = { 0 };
	const long first[2] = { 0, 1 }, second[1] = { 7 }, to_b[1] = { 8 };

	open_mail(e, NULL, 0, 3000);
	g[0].post = &later; /* to the same peer, whose batch is ending */
	g[0].post_peer = 0;
	g[0].post_n = 7;
	g[1].post = &other; /* to another peer */
	g[1].post_peer = 1;
	g[1].post_n = 8;
	post(e, 0, 0, &g[0]);
	post(e, 0, 1, &g[1]);
	mail_flush(e->m);
	run_until(e, &e->done, 4, 3000);
	assert_result(&g[0], 0, 0);
	assert_result(&g[1], 1, 1);
	assert_result(&later, 0, 7);
	assert_result(&other, 0, 8);
	assert_int_equal(seen_of(0), 2);
	assert_batch(seen_by(0, 0), first, 2);
	assert_batch(seen_by(0, 1), second, 1);
	assert_int_equal(seen_of(1), 1);
	assert_batch(seen_by(1, 0), to_b, 1);
}

static void test_done_callback_may_forget_a_later_item_of_its_batch(void **state)
{
	struct env *e = *state;
	struct got g[3] = { { 0 } };

	open_mail(e, NULL, 0, 3000);
	g[0].forget = &g[1];
	post(e, 0, 0, &g[0]);
	post(e, 0, 1, &g[1]);
	post(e, 0, 2, &g[2]);
	mail_flush(e->m);
	run_until(e, &e->done, 2, 3000);
	run_for(e, 50);
	assert_result(&g[0], 0, 0);
	assert_int_equal(g[1].calls, 0);
	assert_result(&g[2], 2, 2);
}

static void test_done_callback_may_forget_a_queued_item(void **state)
{
	struct env *e = *state;
	struct got g[3] = { { 0 } };
	const long next[1] = { 2 };

	g[0].forget = &g[1];
	hold_first_batch(e, g, 1);
	post(e, 0, 1, &g[1]); /* queued behind the batch out */
	post(e, 0, 2, &g[2]);
	release();
	run_until(e, &e->done, 2, 3000);
	run_for(e, 50);
	assert_result(&g[0], 0, 0);
	assert_int_equal(g[1].calls, 0);
	assert_result(&g[2], 0, 2);
	assert_int_equal(seen_count(), 2);
	assert_batch(seen_at(1), next, 1);
}

static void test_new_url_of_a_peer_is_used_for_its_next_batch(void **state)
{
	struct env *e = *state;
	struct got g[2] = { { 0 } };
	struct mail_peer_stats st[2];

	open_mail(e, NULL, 0, 3000);
	post(e, 0, 4, &g[0]);
	mail_flush(e->m);
	run_until(e, &e->done, 1, 3000);
	assert_result(&g[0], 0, 4);
	/* peer "a" advertises itself anew, at the URL under /b */
	g[1].env = e;
	g[1].it = mail_post(e->m, "a", e->url_b, "{\"n\":5}", 7, on_done, &g[1]);
	assert_non_null(g[1].it);
	mail_flush(e->m);
	run_until(e, &e->done, 2, 3000);
	assert_result(&g[1], 0, 5);
	assert_int_equal(seen_count(), 2);
	assert_string_equal(seen_at(0)->path, "/internal/deliver");
	assert_string_equal(seen_at(1)->path, "/b/internal/deliver");
	assert_int_equal(mail_stats(e->m, st, 2), 1); /* one peer still */
}

static void test_queue_of_a_peer_is_bounded(void **state)
{
	struct env *e = *state;
	long i;

	open_mail(e, NULL, 0, 3000);
	for (i = 0; i < MAIL_MAX_QUEUED; i++)
		assert_non_null(mail_post(e->m, "a", e->url_a, "{}", 2, NULL, NULL));
	assert_null(mail_post(e->m, "a", e->url_a, "{}", 2, NULL, NULL));
	assert_int_equal(stats_of(e, "a").queued, MAIL_MAX_QUEUED);
	/* another peer has its own bound */
	assert_non_null(mail_post(e->m, "b", e->url_b, "{}", 2, NULL, NULL));
}

static void test_free_with_a_batch_out_calls_nothing(void **state)
{
	struct env *e = *state;
	struct got g[3] = { { 0 } };

	hold_first_batch(e, g, 2);
	post(e, 0, 2, &g[2]);
	mail_free(e->m);
	e->m = NULL;
	assert_int_equal(httpc_active(e->hc), 0);
	release();
	run_for(e, 100);
	assert_int_equal(e->done, 0);
	assert_int_equal(e->broken, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_items_of_one_turn_go_in_one_post_and_get_their_own_results),
		T(test_secret_is_read_at_send_time_and_token_sent_as_bearer),
		T(test_no_authorization_header_without_token),
		T(test_items_posted_while_a_batch_is_out_go_together_next),
		T(test_peer_closing_mid_batch_fails_it_and_reports_broken_first),
		T(test_cut_on_a_kept_alive_connection_is_sent_again),
		T(test_wrong_number_of_results_fails_items_without_broken),
		T(test_answer_not_json_fails_items_without_broken),
		T(test_answer_not_an_array_fails_items_without_broken),
		T(test_error_status_fails_items_without_broken),
		T(test_silent_peer_times_out_items),
		T(test_refused_connection_fails_items_and_reports_broken),
		T(test_forgotten_queued_item_does_not_go),
		T(test_forgotten_only_item_leaves_nothing_to_send),
		T(test_forgotten_item_in_batch_out_is_answered_to_no_one),
		T(test_peer_lost_fails_its_items_at_once_and_spares_others),
		T(test_batches_split_at_max_bytes_in_order),
		T(test_item_bigger_than_max_bytes_goes_alone),
		T(test_batch_holds_at_most_max_items),
		T(test_stats_count_batches_failures_items_latency_and_notes),
		T(test_done_callback_may_post_new_items),
		T(test_done_callback_may_forget_a_later_item_of_its_batch),
		T(test_done_callback_may_forget_a_queued_item),
		T(test_new_url_of_a_peer_is_used_for_its_next_batch),
		T(test_queue_of_a_peer_is_bounded),
		T(test_free_with_a_batch_out_calls_nothing),
	};
#undef T
	return cmocka_run_group_tests_name("mail", tests, NULL, NULL);
}

/* test_httpc: the HTTP client (cluster/httpc.c) against a scripted HTTP/1.1
 * server running in a thread of this process (one thread per connection),
 * driven by a small epoll loop like the daemon's: answers, headers, streams,
 * deadlines, broken servers, keep-alive, cancels and starts from callbacks. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../cluster/httpc.h"
#include "fake_server.h"

#define TAG 77
#define BIG_LINE (5u * 1024 * 1024)
#define BIG_POST (2u * 1024 * 1024)

/* --- failing allocations (linked with --wrap=malloc,calloc,realloc) ---
 * Only the main thread's allocations in our own objects count: libcurl's
 * and libc's are not wrapped, and the server threads are left alone. */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static pthread_t main_thread;
static long countdown = -1; /* the allocation that fails: 0 is the next one; -1 never */
static long allocations;    /* counted since the last arm() */

static bool fail_now(void)
{
	if (countdown < 0 || !pthread_equal(pthread_self(), main_thread))
		return false;
	allocations++;
	return countdown-- == 0;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return fail_now() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

static void arm(long k)
{
	countdown = k;
	allocations = 0;
}

/* --- the scripted server (fake_server.h) --- */

/* The last request seen, under srv.mu. */
static struct {
	char head[8192];
	bool saw_expect;
} last;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static bool send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

static bool send_chunk(int fd, const char *p, size_t n)
{
	char h[32];

	snprintf(h, sizeof(h), "%zx\r\n", n);
	return send_str(fd, h) && send_all(fd, p, n) && send_str(fd, "\r\n");
}

static const char JSON_ANSWER[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type:  application/json \r\n"
	"allow: GET, PUT\r\n"
	"X-Rollcall-Index: 42\r\n"
	"x-rollcall-node:\tn1\r\n"
	"WWW-Authenticate: Basic realm=\"r\"\r\n"
	"Content-Length: 11\r\n"
	"\r\n"
	"{\"ok\":true}";

static const char CHUNKED_HEAD[] =
	"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n";

/* Answers one request; false when the connection is to end. */
static bool answer(int fd, const char *method, const char *path, const char *body, size_t body_len)
{
	char buf[256];
	int n;
	size_t i;

	if (strcmp(path, "/json") == 0)
		return send_str(fd, JSON_ANSWER);
	if (strcmp(path, "/echo") == 0) {
		char text[128];
		int tn = snprintf(text, sizeof(text), "%s %zu %.*s", method, body_len,
				  (int)(body_len < 16 ? body_len : 16), body);
		n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", tn);
		if (!send_all(fd, buf, (size_t)n))
			return false;
		return strcmp(method, "HEAD") == 0 || send_all(fd, text, (size_t)tn);
	}
	if (strcmp(path, "/stream") == 0) {
		static const char *const parts[] = { "alpha\n", "be", "ta\ngam", "ma\n", "tail" };
		if (!send_str(fd, CHUNKED_HEAD))
			return false;
		for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
			sleep_ms(20);
			if (!send_chunk(fd, parts[i], strlen(parts[i])))
				return false;
		}
		return send_str(fd, "0\r\n\r\n");
	}
	if (strcmp(path, "/bytes") == 0) {
		static const char text[] = "one\ntwo\n\nlast";
		if (!send_str(fd, CHUNKED_HEAD))
			return false;
		for (i = 0; i < sizeof(text) - 1; i++) {
			sleep_ms(2);
			if (!send_chunk(fd, text + i, 1))
				return false;
		}
		return send_str(fd, "0\r\n\r\n");
	}
	if (strcmp(path, "/big") == 0) {
		char *line = malloc(BIG_LINE + 1);
		bool ok;
		if (!line)
			return false;
		memset(line, 'x', BIG_LINE);
		line[BIG_LINE] = '\n';
		n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", BIG_LINE + 1);
		ok = send_all(fd, buf, (size_t)n) && send_all(fd, line, BIG_LINE + 1);
		free(line);
		return ok;
	}
	if (strcmp(path, "/slow") == 0) {
		wait_gone(fd);
		return false;
	}
	if (strcmp(path, "/cut") == 0) {
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
		return false;
	}
	if (strcmp(path, "/cutstream") == 0) {
		send_str(fd, CHUNKED_HEAD);
		send_chunk(fd, "one\n", 4);
		send_chunk(fd, "tw", 2);
		return false;
	}
	if (strcmp(path, "/garbage") == 0) {
		send_str(fd, "SSH-2.0-OpenSSH_9.2\r\nthis is not http at all\r\n\r\n");
		return false;
	}
	if (strcmp(path, "/continue") == 0)
		return send_str(fd, "HTTP/1.1 100 Continue\r\nX-Rollcall-Index: 7\r\nX-Rollcall-Node: early\r\n\r\n"
				    "HTTP/1.1 200 OK\r\nX-Rollcall-Node: late\r\nContent-Length: 2\r\n\r\nok");
	if (strcmp(path, "/redirect") == 0)
		return send_str(fd, "HTTP/1.1 302 Found\r\nLocation: /json\r\nContent-Length: 0\r\n\r\n");
	return send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

/* Serves one connection's requests in turn, keeping the last head seen. */
static void serve(int fd)
{
	char head[8192];

	for (;;) {
		char method[16] = "", path[256] = "", *body;
		size_t body_len;
		bool keep;

		if (!read_head(fd, head, sizeof(head)))
			break;
		sscanf(head, "%15s %255s", method, path);
		pthread_mutex_lock(&srv.mu);
		memcpy(last.head, head, sizeof(head));
		last.saw_expect = strcasestr(head, "\r\nExpect:") != NULL;
		pthread_mutex_unlock(&srv.mu);
		body = read_body(fd, head, &body_len);
		if (!body)
			break;
		keep = answer(fd, method, path, body, body_len);
		free(body);
		if (!keep)
			break;
	}
}

/* --- the client side: an epoll loop and what the callbacks saw --- */

struct env {
	int epfd;
	struct httpc *c;
};

#define MAX_LINES 16

/* What one request's callbacks saw. */
struct rec {
	struct env *env;
	int done, lines;
	int status;
	bool timed_out;
	char *error, *body, *content_type, *allow, *x_index, *x_node, *www_auth;
	size_t body_len;
	char *line[MAX_LINES];
	size_t line_len[MAX_LINES];
	bool line_all_x;
	/* what the callbacks do */
	int cancel_self_after;       /* on_line: cancel this request after so many lines */
	int refuse_after;            /* on_line: return false after so many lines */
	struct httpc_req *self;
	struct httpc_req *to_cancel; /* cancelled from on_line or on_done */
	struct rec *to_start;        /* started (/json) from on_line or on_done */
	struct rec *start_and_cancel; /* started and cancelled at once from on_line */
	int *counter;                /* bumped by on_done */
};

static char *dup_or_null(const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	assert_non_null(d);
	return d;
}

static void rec_clear(struct rec *r)
{
	int i;

	free(r->error);
	free(r->body);
	free(r->content_type);
	free(r->allow);
	free(r->x_index);
	free(r->x_node);
	free(r->www_auth);
	for (i = 0; i < MAX_LINES; i++)
		free(r->line[i]);
}

static char url_buf[128];

static const char *url(const char *path)
{
	snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", srv.port, path);
	return url_buf;
}

static void on_done(void *ctx, const struct httpc_result *res);
static bool on_line(void *ctx, const char *line, size_t len);

static struct httpc_req *start(struct env *e, struct rec *r, const char *method, const char *path)
{
	struct httpc_opts o = { .method = method, .url = url(path), .timeout_ms = 3000,
				.on_done = on_done, .ctx = r };

	r->env = e;
	r->self = httpc_start(e->c, &o);
	assert_non_null(r->self);
	return r->self;
}

static struct httpc_req *start_stream(struct env *e, struct rec *r, const char *path)
{
	struct httpc_opts o = { .method = "GET", .url = url(path), .timeout_ms = 3000,
				.on_line = on_line, .on_done = on_done, .ctx = r };

	r->env = e;
	r->self = httpc_start(e->c, &o);
	assert_non_null(r->self);
	return r->self;
}

static void on_done(void *ctx, const struct httpc_result *res)
{
	struct rec *r = ctx;

	r->done++;
	r->status = res->status;
	r->timed_out = res->timed_out;
	r->error = dup_or_null(res->error);
	assert_non_null(res->body);
	assert_int_equal(res->body[res->body_len], '\0');
	r->body = dup_or_null(res->body);
	r->body_len = res->body_len;
	r->content_type = dup_or_null(res->content_type);
	r->allow = dup_or_null(res->allow);
	r->x_index = dup_or_null(res->x_index);
	r->x_node = dup_or_null(res->x_node);
	r->www_auth = dup_or_null(res->www_authenticate);
	if (r->counter)
		(*r->counter)++;
	if (r->to_cancel) {
		httpc_cancel(r->env->c, r->to_cancel);
		r->to_cancel = NULL;
	}
	if (r->to_start) {
		start(r->env, r->to_start, "GET", "/json");
		r->to_start = NULL;
	}
}

static bool on_line(void *ctx, const char *line, size_t len)
{
	struct rec *r = ctx;
	int i = r->lines++;

	assert_int_equal(line[len], '\0');
	if (i < MAX_LINES) {
		r->line_len[i] = len;
		if (len < 1024) {
			r->line[i] = __real_malloc(len + 1); /* never failed */
			assert_non_null(r->line[i]);
			memcpy(r->line[i], line, len);
			r->line[i][len] = '\0';
		}
	}
	if (len == BIG_LINE) {
		size_t k;
		r->line_all_x = true;
		for (k = 0; k < len; k++)
			r->line_all_x &= line[k] == 'x';
	}
	if (r->to_cancel) {
		httpc_cancel(r->env->c, r->to_cancel);
		r->to_cancel = NULL;
	}
	if (r->to_start) {
		start(r->env, r->to_start, "GET", "/json");
		r->to_start = NULL;
	}
	if (r->start_and_cancel) {
		struct httpc_req *q = start(r->env, r->start_and_cancel, "GET", "/json");
		httpc_cancel(r->env->c, q);
		r->start_and_cancel = NULL;
	}
	if (r->cancel_self_after && r->lines == r->cancel_self_after)
		httpc_cancel(r->env->c, r->self);
	return !(r->refuse_after && r->lines == r->refuse_after);
}

/* One turn of the loop, waiting at most max_ms. */
static void turn(struct env *e, int max_ms)
{
	loop_turn(e->c, e->epfd, TAG, max_ms);
}

/* Runs the loop until *count reaches want or max_ms pass. */
static void run_until(struct env *e, const int *count, int want, int max_ms)
{
	int64_t end = now_ms() + max_ms;

	while (*count < want && now_ms() < end)
		turn(e, 20);
}

static void run_for(struct env *e, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end)
		turn(e, 10);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	memset(&last, 0, sizeof(last));
	fake_start(serve, TAG, &e->epfd, &e->c);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	fake_stop(e->epfd, e->c);
	free(e);
	return 0;
}

/* --- tests --- */

static void test_idle_client_has_no_timer_and_nothing_active(void **state)
{
	struct env *e = *state;

	assert_int_equal(httpc_timeout(e->c), -1);
	assert_int_equal(httpc_active(e->c), 0);
}

static void test_get_returns_status_body_and_trimmed_headers(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "GET", "/json");
	assert_int_equal(httpc_active(e->c), 1);
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.done, 1);
	assert_int_equal(httpc_active(e->c), 0);
	assert_int_equal(r.status, 200);
	assert_null(r.error);
	assert_false(r.timed_out);
	assert_string_equal(r.body, "{\"ok\":true}");
	assert_int_equal(r.body_len, 11);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.allow, "GET, PUT");
	assert_string_equal(r.x_index, "42");
	assert_string_equal(r.x_node, "n1");
	assert_string_equal(r.www_auth, "Basic realm=\"r\"");
	rec_clear(&r);
}

static void test_sequential_requests_reuse_one_connection(void **state)
{
	struct env *e = *state;
	struct rec a = { 0 }, b = { 0 };

	start(e, &a, "GET", "/json");
	run_until(e, &a.done, 1, 3000);
	start(e, &b, "GET", "/json");
	run_until(e, &b.done, 1, 3000);
	assert_int_equal(a.status, 200);
	assert_int_equal(b.status, 200);
	assert_int_equal(server_accepts(), 1);
	rec_clear(&a);
	rec_clear(&b);
}

static void test_post_sends_big_body_without_expect_and_with_headers(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };
	const char *const headers[] = { "X-Test: yes", "Content-Type: application/json", NULL };
	char *body = malloc(BIG_POST);
	struct httpc_opts o = { .method = "POST", .url = url("/echo"), .headers = headers,
				.timeout_ms = 3000, .on_done = on_done, .ctx = &r };
	int64_t t0 = now_ms();

	assert_non_null(body);
	memset(body, 'b', BIG_POST);
	o.body = body;
	o.body_len = BIG_POST;
	r.env = e;
	assert_non_null(httpc_start(e->c, &o));
	free(body); /* the client has its own copy */
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST 2097152 bbbbbbbbbbbbbbbb");
	assert_false(last.saw_expect);
	assert_non_null(strstr(last.head, "\r\nX-Test: yes\r\n"));
	assert_non_null(strstr(last.head, "\r\nContent-Type: application/json\r\n"));
	assert_true(now_ms() - t0 < 900); /* no 1 s wait for a 100 Continue */
	rec_clear(&r);
}

static void test_put_without_body_sends_empty_body(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "PUT", "/echo");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "PUT 0 ");
	assert_non_null(strstr(last.head, "PUT /echo HTTP/1.1\r\n"));
	rec_clear(&r);
}

static void test_delete_with_and_without_body(void **state)
{
	struct env *e = *state;
	struct rec a = { 0 }, b = { 0 };
	struct httpc_opts o = { .method = "DELETE", .url = url("/echo"), .body = "xyz", .body_len = 3,
				.timeout_ms = 3000, .on_done = on_done, .ctx = &a };

	a.env = e;
	assert_non_null(httpc_start(e->c, &o));
	run_until(e, &a.done, 1, 3000);
	assert_string_equal(a.body, "DELETE 3 xyz");
	start(e, &b, "DELETE", "/echo");
	run_until(e, &b.done, 1, 3000);
	assert_string_equal(b.body, "DELETE 0 ");
	assert_int_equal(b.status, 200);
	rec_clear(&a);
	rec_clear(&b);
}

static void test_head_returns_headers_without_body(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "HEAD", "/echo");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 200);
	assert_null(r.error);
	assert_string_equal(r.body, "");
	assert_int_equal(r.body_len, 0);
	assert_string_equal(r.content_type, "text/plain");
	rec_clear(&r);
}

static void test_redirect_is_not_followed(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "GET", "/redirect");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 302);
	assert_null(r.error);
	assert_null(r.content_type);
	run_for(e, 50);
	assert_int_equal(server_accepts(), 1);
	rec_clear(&r);
}

static void test_last_header_block_wins(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "GET", "/continue");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok");
	assert_string_equal(r.x_node, "late");
	assert_null(r.x_index);
	rec_clear(&r);
}

static void test_stream_splits_lines_across_chunks(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start_stream(e, &r, "/stream");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 200);
	assert_null(r.error);
	assert_int_equal(r.lines, 4);
	assert_string_equal(r.line[0], "alpha");
	assert_string_equal(r.line[1], "beta");
	assert_string_equal(r.line[2], "gamma");
	assert_string_equal(r.line[3], "tail"); /* unterminated, at the end of a whole answer */
	assert_string_equal(r.body, "");
	rec_clear(&r);
}

static void test_stream_handles_one_byte_chunks(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start_stream(e, &r, "/bytes");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.lines, 4);
	assert_string_equal(r.line[0], "one");
	assert_string_equal(r.line[1], "two");
	assert_string_equal(r.line[2], "");
	assert_string_equal(r.line[3], "last");
	rec_clear(&r);
}

static void test_stream_delivers_a_5mb_line_whole(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start_stream(e, &r, "/big");
	run_until(e, &r.done, 1, 5000);
	assert_int_equal(r.status, 200);
	assert_null(r.error);
	assert_int_equal(r.lines, 1);
	assert_int_equal(r.line_len[0], BIG_LINE);
	assert_true(r.line_all_x);
	rec_clear(&r);
}

static void test_body_over_max_body_fails_too_large(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };
	struct httpc_opts o = { .url = url("/json"), .timeout_ms = 3000, .max_body = 5,
				.on_done = on_done, .ctx = &r };

	r.env = e;
	assert_non_null(httpc_start(e->c, &o));
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.error, "too large");
	assert_string_equal(r.body, "");
	rec_clear(&r);
}

static void test_stream_line_over_max_body_fails_too_large(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };
	struct httpc_opts o = { .url = url("/big"), .timeout_ms = 3000, .max_body = 1024 * 1024,
				.on_line = on_line, .on_done = on_done, .ctx = &r };

	r.env = e;
	assert_non_null(httpc_start(e->c, &o));
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.lines, 0);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.error, "too large");
	rec_clear(&r);
}

static void test_deadline_ends_with_timed_out(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };
	struct httpc_opts o = { .url = url("/slow"), .timeout_ms = 200, .on_done = on_done, .ctx = &r };
	int64_t t0 = now_ms(), took;

	r.env = e;
	assert_non_null(httpc_start(e->c, &o));
	run_until(e, &r.done, 1, 3000);
	took = now_ms() - t0;
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, 0);
	assert_true(r.timed_out);
	assert_non_null(r.error);
	assert_true(took >= 190 && took < 1000);
	assert_int_equal(httpc_active(e->c), 0);
	rec_clear(&r);
}

static void test_refused_connection_fails_quickly(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };
	int port, fd = bound_socket(false, &port); /* bound, never listening: refused */
	char u[64];
	struct httpc_opts o = { .url = u, .timeout_ms = 3000, .on_done = on_done, .ctx = &r };
	int64_t t0 = now_ms();

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/json", port);
	r.env = e;
	assert_non_null(httpc_start(e->c, &o));
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, 0);
	assert_false(r.timed_out);
	assert_non_null(r.error);
	assert_true(now_ms() - t0 < 500);
	close(fd);
	rec_clear(&r);
}

static void test_close_mid_body_is_an_error(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "GET", "/cut");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, 0);
	assert_non_null(r.error);
	assert_false(r.timed_out);
	rec_clear(&r);
}

static void test_close_mid_stream_drops_the_unfinished_line(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start_stream(e, &r, "/cutstream");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.lines, 1);
	assert_string_equal(r.line[0], "one");
	assert_int_equal(r.status, 0);
	assert_non_null(r.error);
	rec_clear(&r);
}

static void test_garbage_answer_is_an_error(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "GET", "/garbage");
	run_until(e, &r.done, 1, 3000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, 0);
	assert_non_null(r.error);
	rec_clear(&r);
}

static void test_cancel_from_on_line_skips_on_done(void **state)
{
	struct env *e = *state;
	struct rec r = { .cancel_self_after = 1 };

	start_stream(e, &r, "/stream");
	run_until(e, &r.lines, 1, 3000);
	assert_int_equal(httpc_active(e->c), 0);
	run_for(e, 200);
	assert_int_equal(r.lines, 1);
	assert_int_equal(r.done, 0);
	assert_string_equal(r.line[0], "alpha");
	rec_clear(&r);
}

static void test_on_line_returning_false_cancels(void **state)
{
	struct env *e = *state;
	struct rec r = { .refuse_after = 2 };

	start_stream(e, &r, "/stream");
	run_until(e, &r.lines, 2, 3000);
	assert_int_equal(httpc_active(e->c), 0);
	run_for(e, 200);
	assert_int_equal(r.lines, 2);
	assert_int_equal(r.done, 0);
	rec_clear(&r);
}

static void test_on_line_may_start_and_cancel_requests(void **state)
{
	struct env *e = *state;
	struct rec slow = { 0 }, started = { 0 }, dropped = { 0 }, s = { 0 };

	start(e, &slow, "GET", "/slow");
	s.to_cancel = slow.self;
	s.to_start = &started;
	s.start_and_cancel = &dropped;
	start_stream(e, &s, "/stream");
	run_until(e, &s.done, 1, 3000);
	run_until(e, &started.done, 1, 3000);
	assert_int_equal(s.status, 200);
	assert_int_equal(s.lines, 4);
	assert_int_equal(started.done, 1);
	assert_int_equal(started.status, 200);
	assert_int_equal(slow.done, 0);
	assert_int_equal(dropped.done, 0);
	assert_int_equal(httpc_active(e->c), 0);
	rec_clear(&s);
	rec_clear(&started);
	rec_clear(&slow);
	rec_clear(&dropped);
}

static void test_on_done_may_start_and_cancel_requests(void **state)
{
	struct env *e = *state;
	struct rec slow = { 0 }, second = { 0 }, first = { 0 };

	start(e, &slow, "GET", "/slow");
	first.to_cancel = slow.self;
	first.to_start = &second;
	start(e, &first, "GET", "/json");
	run_until(e, &second.done, 1, 3000);
	assert_int_equal(first.done, 1);
	assert_int_equal(second.done, 1);
	assert_int_equal(second.status, 200);
	assert_string_equal(second.body, "{\"ok\":true}");
	run_for(e, 50);
	assert_int_equal(slow.done, 0);
	assert_int_equal(httpc_active(e->c), 0);
	rec_clear(&first);
	rec_clear(&second);
	rec_clear(&slow);
}

static void test_cancel_outside_callbacks_ends_at_once(void **state)
{
	struct env *e = *state;
	struct rec r = { 0 };

	start(e, &r, "GET", "/slow");
	run_for(e, 50);
	assert_int_equal(server_accepts(), 1);
	httpc_cancel(e->c, r.self);
	assert_int_equal(httpc_active(e->c), 0);
	run_for(e, 100);
	assert_int_equal(r.done, 0);
	rec_clear(&r);
}

static void test_free_with_requests_in_flight_calls_nothing(void **state)
{
	struct env *e = *state;
	struct rec r[4] = { { 0 } };

	start(e, &r[0], "GET", "/slow");
	start(e, &r[1], "GET", "/slow");
	start_stream(e, &r[2], "/stream");
	start(e, &r[3], "GET", "/json");
	run_until(e, &r[3].done, 1, 3000);
	assert_int_equal(httpc_active(e->c), 3);
	httpc_free(e->c);
	e->c = httpc_new(e->epfd, TAG); /* for teardown */
	assert_non_null(e->c);
	assert_int_equal(r[0].done + r[1].done + r[2].done, 0);
	rec_clear(&r[0]);
	rec_clear(&r[1]);
	rec_clear(&r[2]);
	rec_clear(&r[3]);
}

/* Each allocation of ours fails in turn, while a client is made and runs
 * an answer, a stream and a keep-alive reuse: either httpc_new or
 * httpc_start says NULL, or the request ends with one on_done; ASan finds
 * what leaks. */
static void test_every_allocation_failure_ends_cleanly(void **state)
{
	struct env *e = *state;
	long k;

	for (k = 0;; k++) {
		struct rec r[3] = { { 0 } };
		struct httpc_opts o[3] = {
			{ .url = url("/json"), .timeout_ms = 3000, .on_done = on_done, .ctx = &r[0] },
			{ .url = url("/stream"), .timeout_ms = 3000, .on_line = on_line, .on_done = on_done, .ctx = &r[1] },
			{ .url = url("/json"), .timeout_ms = 3000, .on_done = on_done, .ctx = &r[2] },
		};
		struct httpc *c;
		bool hit;
		int i;

		arm(k);
		c = httpc_new(e->epfd, TAG);
		if (c) {
			struct env e2 = { .epfd = e->epfd, .c = c };
			for (i = 0; i < 3; i++) {
				r[i].env = &e2;
				r[i].self = httpc_start(c, &o[i]);
				if (r[i].self)
					run_until(&e2, &r[i].done, 1, 3000);
				assert_int_equal(r[i].done, r[i].self ? 1 : 0);
				if (r[i].done && !r[i].error)
					assert_int_equal(r[i].status, 200);
			}
			assert_int_equal(httpc_active(c), 0);
			httpc_free(c);
		}
		hit = countdown < 0;
		arm(-1);
		for (i = 0; i < 3; i++)
			rec_clear(&r[i]);
		if (!hit)
			break; /* every allocation has failed once */
	}
	assert_true(k > 5);
}

#define MANY 200

static void test_200_concurrent_requests_all_complete(void **state)
{
	struct env *e = *state;
	struct rec *r = calloc(MANY, sizeof(*r));
	int count = 0, i;

	assert_non_null(r);
	for (i = 0; i < MANY; i++) {
		r[i].counter = &count;
		start(e, &r[i], "GET", "/json");
	}
	assert_int_equal(httpc_active(e->c), MANY);
	run_until(e, &count, MANY, 8000);
	assert_int_equal(count, MANY);
	for (i = 0; i < MANY; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].status, 200);
		rec_clear(&r[i]);
	}
	assert_int_equal(httpc_active(e->c), 0);
	free(r);
}

int main(void)
{
	main_thread = pthread_self();
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_idle_client_has_no_timer_and_nothing_active),
		T(test_get_returns_status_body_and_trimmed_headers),
		T(test_sequential_requests_reuse_one_connection),
		T(test_post_sends_big_body_without_expect_and_with_headers),
		T(test_put_without_body_sends_empty_body),
		T(test_delete_with_and_without_body),
		T(test_head_returns_headers_without_body),
		T(test_redirect_is_not_followed),
		T(test_last_header_block_wins),
		T(test_stream_splits_lines_across_chunks),
		T(test_stream_handles_one_byte_chunks),
		T(test_stream_delivers_a_5mb_line_whole),
		T(test_body_over_max_body_fails_too_large),
		T(test_stream_line_over_max_body_fails_too_large),
		T(test_deadline_ends_with_timed_out),
		T(test_refused_connection_fails_quickly),
		T(test_close_mid_body_is_an_error),
		T(test_close_mid_stream_drops_the_unfinished_line),
		T(test_garbage_answer_is_an_error),
		T(test_cancel_from_on_line_skips_on_done),
		T(test_on_line_returning_false_cancels),
		T(test_on_line_may_start_and_cancel_requests),
		T(test_on_done_may_start_and_cancel_requests),
		T(test_cancel_outside_callbacks_ends_at_once),
		T(test_free_with_requests_in_flight_calls_nothing),
		T(test_200_concurrent_requests_all_complete),
		T(test_every_allocation_failure_ends_cleanly),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* httpc: an HTTP/1.1 client on libcurl's multi socket interface, driven by
 * the caller's epoll loop; see httpc.h. libcurl forbids multi calls from
 * inside its callbacks, so what our callers do from there waits: a request
 * started goes on c->pending, one cancelled is marked and goes on c->doomed,
 * and both lists are worked off in after_curl() once libcurl has returned. */
#define _GNU_SOURCE
#include "httpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include <curl/curl.h>

#define DEFAULT_CONNECT_MS 2000L
#define DEFAULT_MAX_BODY ((size_t)256 * 1024 * 1024)
#define MAX_CONNECTS 64L

enum hdr { H_CONTENT_TYPE, H_ALLOW, H_X_INDEX, H_X_NODE, H_WWW_AUTH, H_COUNT };

static const char *const hdr_names[H_COUNT] = {
	[H_CONTENT_TYPE] = "Content-Type",
	[H_ALLOW] = "Allow",
	[H_X_INDEX] = "X-Rollcall-Index",
	[H_X_NODE] = "X-Rollcall-Node",
	[H_WWW_AUTH] = "WWW-Authenticate",
};

/* A socket libcurl asked us to watch. Once libcurl lets go of it, it is
 * retired, not freed: an event for it may still sit in the loop's current
 * batch from epoll_wait, so it lives until the next httpc_timeout(). */
struct sock {
	int tag; /* first: the loop reads it through epoll's data.ptr */
	curl_socket_t fd; /* CURL_SOCKET_BAD once retired */
	struct sock *prev, *next;
};

enum req_state { REQ_PENDING, REQ_ACTIVE, REQ_ENDING };

struct httpc_req {
	struct httpc *c;
	CURL *easy;
	struct curl_slist *headers;
	bool (*on_line)(void *ctx, const char *line, size_t len);
	void (*on_done)(void *ctx, const struct httpc_result *res);
	void *ctx;
	size_t max_body;
	char *buf; /* the body, or a stream's unfinished line; NUL-terminated */
	size_t len, cap;
	char *hdr[H_COUNT]; /* the last header block's values */
	const char *fail;   /* our own reason to end it ("too large", ...) */
	enum req_state state;
	bool in_multi, ended, cancelled, doomed;
	struct httpc_req *prev, *next; /* c->reqs: every request not yet freed */
	struct httpc_req *queue;       /* on c->pending or c->doomed */
	char errbuf[CURL_ERROR_SIZE];
};

struct httpc {
	CURLM *multi;
	int epfd, tag;
	int in_curl;          /* inside curl_multi_socket_action() */
	int64_t deadline_us;  /* libcurl's timer, monotonic; -1: none */
	size_t active;
	struct httpc_req *reqs;
	struct httpc_req *pending, *doomed;
	struct sock *socks, *retired;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- request lists --- */

static void queue_push(struct httpc_req **head, struct httpc_req *r)
{
	struct httpc_req **p = head;

	while (*p)
		p = &(*p)->queue;
	r->queue = NULL;
	*p = r;
}

static void queue_drop(struct httpc_req **head, struct httpc_req *r)
{
	struct httpc_req **p = head;

	while (*p && *p != r)
		p = &(*p)->queue;
	if (*p)
		*p = r->queue;
	r->queue = NULL;
}

static void req_link(struct httpc *c, struct httpc_req *r)
{
	r->prev = NULL;
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
}

static void req_unlink(struct httpc *c, struct httpc_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

/* The request counts as ended for httpc_active() from here on. */
static void req_end(struct httpc *c, struct httpc_req *r)
{
	if (!r->ended) {
		r->ended = true;
		c->active--;
	}
}

/* Frees r, which libcurl no longer knows. */
static void req_free(struct httpc *c, struct httpc_req *r)
{
	int i;

	if (r->doomed)
		queue_drop(&c->doomed, r);
	if (r->state == REQ_PENDING)
		queue_drop(&c->pending, r);
	req_unlink(c, r);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->buf);
	for (i = 0; i < H_COUNT; i++)
		free(r->hdr[i]);
	free(r);
}

static void req_detach(struct httpc *c, struct httpc_req *r)
{
	if (r->in_multi) {
		curl_multi_remove_handle(c->multi, r->easy);
		r->in_multi = false;
	}
}

static void doom(struct httpc *c, struct httpc_req *r)
{
	if (!r->doomed) {
		r->doomed = true;
		queue_push(&c->doomed, r);
	}
}

/* --- sockets --- */

static void sock_retire(struct httpc *c, struct sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->fd = CURL_SOCKET_BAD;
	s->prev = NULL;
	s->next = c->retired;
	c->retired = s;
}

static void free_socks(struct sock *s)
{
	while (s) {
		struct sock *next = s->next;
		free(s);
		s = next;
	}
}

/* A socket we cannot watch would hang its request: end that one instead. */
static void sock_failed(struct httpc *c, CURL *easy, int err)
{
	char *p = NULL;
	struct httpc_req *r;

	if (!easy || curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK || !p)
		return; /* libcurl's own handle, closing a cached connection */
	r = (struct httpc_req *)(void *)p;
	if (!r->fail)
		r->fail = err == ENOMEM ? "out of memory" : "cannot watch the socket";
	doom(c, r);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct httpc *c = userp;
	struct sock *s = socketp;
	struct epoll_event ev = { 0 };
	bool fresh = false;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL);
			sock_retire(c, s);
		}
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			sock_failed(c, easy, ENOMEM);
			return 0;
		}
		s->tag = c->tag;
		s->fd = fd;
		fresh = true;
	}
	ev.data.ptr = s;
	if (epoll_ctl(c->epfd, fresh ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0 &&
	    !(fresh && errno == EEXIST && epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
		int err = errno;
		if (fresh)
			free(s);
		sock_failed(c, easy, err);
		return 0;
	}
	if (fresh) {
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	}
	return 0;
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
	struct httpc *c = userp;

	(void)multi;
	c->deadline_us = ms < 0 ? -1 : now_us() + (int64_t)ms * 1000;
	return 0;
}

/* --- what libcurl hands over --- */

static bool buf_append(struct httpc_req *r, const char *p, size_t n)
{
	if (r->cap - r->len <= n) {
		size_t cap = r->cap ? r->cap : 256;
		char *b;
		while (cap - r->len <= n) {
			if (cap > SIZE_MAX / 2)
				return false;
			cap *= 2;
		}
		b = realloc(r->buf, cap);
		if (!b)
			return false;
		r->buf = b;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	r->buf[r->len] = '\0';
	return true;
}

/* Hands one line to the caller; false when the request is to stop. */
static bool deliver(struct httpc *c, struct httpc_req *r)
{
	bool keep = r->on_line(r->ctx, r->len ? r->buf : "", r->len);

	r->len = 0;
	if (!keep && !r->cancelled)
		httpc_cancel(c, r);
	return keep && !r->cancelled;
}

static bool stream(struct httpc_req *r, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (take > r->max_body - r->len) {
			r->fail = "too large";
			return false;
		}
		if (!buf_append(r, p, take)) {
			r->fail = "out of memory";
			return false;
		}
		if (!nl)
			return true;
		if (!deliver(r->c, r))
			return false;
		p += take + 1;
		n -= take + 1;
	}
	return true;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *userp)
{
	struct httpc_req *r = userp;
	size_t n = size * nmemb;

	if (r->cancelled || r->fail)
		return 0;
	if (r->on_line)
		return stream(r, p, n) ? n : 0;
	if (n > r->max_body - r->len) {
		r->fail = "too large";
		return 0;
	}
	if (!buf_append(r, p, n)) {
		r->fail = "out of memory";
		return 0;
	}
	return n;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Every header line of every block (interim 1xx answers, redirects) comes
 * through here; a status line starts a new block and forgets the last. */
static size_t on_header(char *p, size_t size, size_t nmemb, void *userp)
{
	struct httpc_req *r = userp;
	size_t n = size * nmemb, name_len;
	const char *colon, *v, *end;
	int i;

	if (r->cancelled || r->fail)
		return 0;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		for (i = 0; i < H_COUNT; i++) {
			free(r->hdr[i]);
			r->hdr[i] = NULL;
		}
		return n;
	}
	colon = memchr(p, ':', n);
	if (!colon)
		return n;
	name_len = (size_t)(colon - p);
	for (i = 0; i < H_COUNT; i++) {
		if (strlen(hdr_names[i]) == name_len && strncasecmp(p, hdr_names[i], name_len) == 0)
			break;
	}
	if (i == H_COUNT)
		return n;
	v = colon + 1;
	end = p + n;
	while (v < end && is_blank(*v))
		v++;
	while (end > v && is_blank(end[-1]))
		end--;
	free(r->hdr[i]);
	r->hdr[i] = malloc((size_t)(end - v) + 1);
	if (!r->hdr[i]) {
		r->fail = "out of memory";
		return 0;
	}
	memcpy(r->hdr[i], v, (size_t)(end - v));
	r->hdr[i][end - v] = '\0';
	return n;
}

/* --- the end of a request --- */

/* r has ended (code is libcurl's word, r->fail ours): tells the caller and
 * frees r. Runs outside libcurl, so the callbacks may do anything. */
static void finish(struct httpc *c, struct httpc_req *r, CURLcode code)
{
	struct httpc_result res = { 0 };
	long status = 0;

	req_end(c, r);
	r->state = REQ_ENDING; /* a cancel from here on only marks r */
	req_detach(c, r);
	if (r->doomed) {
		queue_drop(&c->doomed, r);
		r->doomed = false;
	}
	/* the last line of a whole answer needs no '\n' */
	if (!r->fail && code == CURLE_OK && r->on_line && r->len && !deliver(c, r)) {
		req_free(c, r); /* cancelled there */
		return;
	}
	if (r->fail) {
		res.error = r->fail;
	} else if (code != CURLE_OK) {
		res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
		res.timed_out = code == CURLE_OPERATION_TIMEDOUT;
	} else {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		res.status = (int)status;
		if (status < 100 || status > 999) {
			res.status = 0;
			res.error = "no HTTP status";
		}
	}
	if (!res.error && !r->on_line && r->len) {
		res.body = r->buf;
		res.body_len = r->len;
	} else {
		res.body = "";
	}
	res.content_type = r->hdr[H_CONTENT_TYPE];
	res.allow = r->hdr[H_ALLOW];
	res.x_index = r->hdr[H_X_INDEX];
	res.x_node = r->hdr[H_X_NODE];
	res.www_authenticate = r->hdr[H_WWW_AUTH];
	if (r->on_done && !r->cancelled)
		r->on_done(r->ctx, &res);
	req_free(c, r);
}

/* Works off what piled up while libcurl ran: finished transfers, requests
 * cancelled or failed from inside its callbacks, requests started there. */
static void after_curl(struct httpc *c)
{
	struct httpc_req *r;
	CURLMsg *m;
	int left;

	if (c->in_curl)
		return;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		char *p = NULL;
		CURLcode code = m->data.result;

		if (m->msg != CURLMSG_DONE ||
		    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p) != CURLE_OK || !p)
			continue;
		r = (struct httpc_req *)(void *)p;
		if (r->cancelled) {
			req_detach(c, r);
			req_free(c, r);
		} else {
			finish(c, r, code);
		}
	}
	while ((r = c->doomed)) {
		queue_drop(&c->doomed, r);
		r->doomed = false;
		if (r->cancelled) {
			req_detach(c, r);
			req_free(c, r);
		} else {
			finish(c, r, CURLE_OK); /* r->fail says why */
		}
	}
	while ((r = c->pending)) {
		queue_drop(&c->pending, r);
		r->state = REQ_ACTIVE;
		if (curl_multi_add_handle(c->multi, r->easy) == CURLM_OK) {
			r->in_multi = true;
		} else {
			r->fail = "out of memory";
			finish(c, r, CURLE_OK);
		}
	}
}

/* --- the API --- */

struct httpc *httpc_new(int epfd, int tag)
{
	struct httpc *c;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->epfd = epfd;
	c->tag = tag;
	c->deadline_us = -1;
	c->multi = curl_multi_init();
	if (!c->multi ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, MAX_CONNECTS) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING) != CURLM_OK)
		goto fail;
	return c;
fail:
	if (c && c->multi)
		curl_multi_cleanup(c->multi);
	free(c);
	curl_global_cleanup();
	return NULL;
}

void httpc_free(struct httpc *c)
{
	struct sock *s;

	if (!c)
		return;
	c->pending = c->doomed = NULL;
	while (c->reqs) {
		struct httpc_req *r = c->reqs;
		req_detach(c, r);
		r->doomed = false;
		r->state = REQ_ACTIVE;
		req_free(c, r);
	}
	curl_multi_cleanup(c->multi); /* closes the cached connections */
	for (s = c->socks; s; s = s->next)
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	free_socks(c->socks);
	free_socks(c->retired);
	free(c);
	curl_global_cleanup();
}

#define SET(opt, val)                                              \
	do {                                                       \
		if (curl_easy_setopt(e, opt, val) != CURLE_OK)     \
			return false;                              \
	} while (0)

static bool add_header(struct httpc_req *r, const char *line)
{
	struct curl_slist *l = curl_slist_append(r->headers, line);

	if (!l)
		return false;
	r->headers = l;
	return true;
}

static bool setup(struct httpc_req *r, const struct httpc_opts *o)
{
	CURL *e = r->easy;
	const char *m = o->method ? o->method : "GET";
	size_t i;

	SET(CURLOPT_URL, o->url);
	SET(CURLOPT_PRIVATE, r);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms ? (long)o->connect_timeout_ms : DEFAULT_CONNECT_MS);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, r);
	if (!add_header(r, "Expect:")) /* no 100-continue round trip */
		return false;
	for (i = 0; o->headers && o->headers[i]; i++) {
		if (!add_header(r, o->headers[i]))
			return false;
	}
	SET(CURLOPT_HTTPHEADER, r->headers);
	if (strcmp(m, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
		return true;
	}
	if (o->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0) {
		/* Content-Length: 0 when there is no body, which PUT and POST need */
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(o->body ? o->body_len : 0));
		SET(CURLOPT_COPYPOSTFIELDS, o->body ? o->body : "");
	}
	if (strcmp(m, "GET") != 0 || o->body)
		SET(CURLOPT_CUSTOMREQUEST, m);
	return true;
}

#undef SET

struct httpc_req *httpc_start(struct httpc *c, const struct httpc_opts *o)
{
	struct httpc_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = c;
	r->on_line = o->on_line;
	r->on_done = o->on_done;
	r->ctx = o->ctx;
	r->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
	r->easy = curl_easy_init();
	if (!r->easy || !setup(r, o))
		goto fail;
	if (c->in_curl) {
		r->state = REQ_PENDING;
		queue_push(&c->pending, r);
	} else {
		if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK)
			goto fail;
		r->state = REQ_ACTIVE;
		r->in_multi = true;
	}
	req_link(c, r);
	c->active++;
	return r;
fail:
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r);
	return NULL;
}

void httpc_cancel(struct httpc *c, struct httpc_req *r)
{
	if (!r || r->cancelled)
		return;
	r->cancelled = true;
	req_end(c, r);
	if (r->state == REQ_ENDING)
		return; /* inside finish(), which frees it */
	if (r->state == REQ_PENDING) {
		req_free(c, r); /* libcurl never saw it */
		return;
	}
	if (c->in_curl) {
		doom(c, r); /* on_write refuses its data meanwhile */
		return;
	}
	req_detach(c, r);
	req_free(c, r);
}

void httpc_on_event(struct httpc *c, void *ptr, uint32_t events)
{
	struct sock *s = ptr;
	int flags = 0, running;

	if (s->fd == CURL_SOCKET_BAD)
		return; /* retired earlier in this batch of events */
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & EPOLLERR)
		flags |= CURL_CSELECT_ERR;
	c->in_curl++;
	curl_multi_socket_action(c->multi, s->fd, flags, &running);
	c->in_curl--;
	after_curl(c);
}

long httpc_timeout(struct httpc *c)
{
	int64_t left;

	/* The loop asks before each epoll_wait: no event of the last batch
	 * can still point at a retired socket. */
	free_socks(c->retired);
	c->retired = NULL;
	if (c->deadline_us < 0)
		return -1;
	left = c->deadline_us - now_us();
	return left <= 0 ? 0 : (long)((left + 999) / 1000);
}

void httpc_run_timers(struct httpc *c)
{
	int running;

	c->in_curl++;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	c->in_curl--;
	after_curl(c);
}

size_t httpc_active(const struct httpc *c)
{
	return c->active;
}

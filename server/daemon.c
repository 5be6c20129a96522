/* daemon: libmicrohttpd glue and the event loop; see daemon.h.
 *
 * A request's life: the URI-log callback keeps the raw target (MHD would
 * unescape it) in a struct conn_req; the access handler collects the body,
 * counting it against --max-body; then router_dispatch() runs the handler.
 * A handler that parks a waiter gets its connection suspended; the waiter's
 * wake callback resumes it and the handler runs again with req.wake set.
 * While suspended, MHD does not read the socket, so we watch its fd for
 * EPOLLRDHUP ourselves and drop the request when the client goes away. */
#define _GNU_SOURCE
#include "daemon.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../cluster/cluster.h"
#include "reply.h"
#include "router.h"
#include "uri.h"

/* A declared body this far over --max-body is refused before it is read,
 * and the connection closed; a body less over is read, dropped and refused
 * with the connection kept. */
#define BODY_SLACK (1024 * 1024)
#define EXPIRY_BUDGET 1000 /* expiries and deadlines run per loop turn */
#define SHUTDOWN_GRACE_MS 1000
#define POOL_BYTES (7 * 1024)
#define STREAM_BLOCK 256 /* bytes asked of a streamed answer at a time (MHD keeps a buffer this big per stream) */

enum tag { TAG_MHD = 1, TAG_SIGNAL, TAG_REQ, TAG_CLUSTER, TAG_LISTEN, TAG_LINGER };

/* The connections one libmicrohttpd daemon (a shard) holds at most.
 *
 * Why shards: libmicrohttpd 0.9.75 walks every suspended connection of a
 * daemon whenever one of them is resumed. With one daemon, waking one
 * parked request (a receive, an await, a call, an event stream) cost a
 * walk over all the parked ones: 10,000 long-polls made every message ten
 * times dearer. So the loop accepts connections itself and hands each to a
 * shard with room (MHD_add_connection); a resume walks its own shard's
 * parked connections only, at most SHARD_CONNECTIONS, however many are
 * parked in all. libmicrohttpd still parses and answers every request:
 * keep-alive, pipelining, half-close, streams and the limits are its. */
#define SHARD_CONNECTIONS 128

struct shard {
	int tag; /* TAG_MHD; first, so an epoll event can tell what it points at */
	struct loop *loop;
	struct MHD_Daemon *mhd;
	size_t conns;          /* its open connections */
	bool due;              /* on the loop's list of shards to run this turn */
	bool roomy;            /* on the loop's list of shards with room */
	uint64_t next;         /* when its own timeouts want it run; UINT64_MAX: never */
	struct shard *next_due, *next_roomy;
};

struct loop {
	struct app *app;
	int epfd, lfd;
	int tag_signal, tag_listen; /* epoll data points at these */
	struct shard **shards;
	size_t nshards;
	struct shard *due;     /* shards to run before the loop sleeps: events, a resume, a new connection */
	struct shard *roomy;   /* shards with room for another connection (a stack) */
	size_t connections, max_connections;
	uint64_t accept_paused_until; /* out of descriptors: the listening socket is unwatched until then */
	size_t live_requests;
	struct conn_req *parked;   /* the suspended requests (shutdown ends those still there) */
	struct conn_state *heads, *heads_tail; /* awaiting a request head, by deadline */
	struct closing *lingers;  /* sockets closing after an error answer (see below) */
	size_t nlingers;
};

/* A client connection, from accept to close. While it has no complete
 * request head (just accepted, or between keep-alive requests) it sits on
 * the loop's head list with a deadline: a client that trickles its request
 * (slowloris) is cut off there, however often it sends a byte, while a
 * request that waits (a long-poll, a stream) has its head and is left be. */
struct conn_state {
	struct loop *loop;
	int fd;
	uint64_t deadline;
	bool listed;
	struct conn_state *prev, *next;
};

struct conn_req {
	int tag; /* TAG_REQ; first, so an epoll event can tell what it points at */
	struct loop *loop;
	struct shard *shard;
	struct MHD_Connection *conn;
	char *target; /* raw request target: path?query */
	char *body;
	size_t body_len, body_cap;
	bool started, too_large, nomem, suspended, watching, client_gone;
	bool parked_stream;   /* suspended as a stream waiting for its next event */
	struct conn_req *pprev, *pnext; /* in the loop's list of parked requests, while suspended */
	bool waited;          /* was suspended at some point: not counted as latency */
	bool bad_target;      /* a NUL byte in the request target */
	const char *method;   /* as sent; MHD keeps it for the request's life */
	struct timespec t0;   /* when the request arrived */
	int fd;
	struct http_request req;
};

#define container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

uint64_t daemon_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The time a request sees, rounded up: deadlines it sets (leases, waits,
 * calls) are never earlier than the whole ttl or timeout, while the loop
 * checks them with the time rounded down. So nothing ends early. */
static uint64_t request_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ((uint64_t)ts.tv_nsec + 999999) / 1000000;
}

void daemon_random(void *ctx, void *buf, size_t len)
{
	unsigned char *p = buf;

	(void)ctx;
	while (len) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("rollcall: getrandom");
			abort(); /* ids and tokens must be unguessable; no fallback */
		}
		p += n;
		len -= (size_t)n;
	}
}

/* --- shards --- */

/* sh must run before the loop sleeps (MHD_run). This MHD build has no
 * wake-up channel in external-epoll mode: a resumed connection waits
 * until its daemon runs again. */
static void shard_due(struct shard *sh)
{
	if (sh->due)
		return;
	sh->due = true;
	sh->next_due = sh->loop->due;
	sh->loop->due = sh;
}

static void shard_roomy(struct shard *sh)
{
	if (sh->roomy || sh->conns >= SHARD_CONNECTIONS)
		return;
	sh->roomy = true;
	sh->next_roomy = sh->loop->roomy;
	sh->loop->roomy = sh;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size,
				 void **con_cls);
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe);
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe);

/* A new shard, on the loop's epoll and its list with room; NULL when
 * libmicrohttpd cannot start one. */
static struct shard *shard_new(struct loop *l)
{
	const struct config *cfg = l->app->cfg;
	struct shard *sh = calloc(1, sizeof(*sh)), **grown;
	const union MHD_DaemonInfo *info;
	struct epoll_event ev;

	grown = sh ? realloc(l->shards, (l->nshards + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(sh);
		return NULL;
	}
	l->shards = grown;
	sh->tag = TAG_MHD;
	sh->loop = l;
	sh->next = UINT64_MAX;
	sh->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET,
				   0, NULL, NULL, on_access, sh,
				   MHD_OPTION_URI_LOG_CALLBACK, on_uri, sh,
				   MHD_OPTION_NOTIFY_COMPLETED, on_completed, sh,
				   MHD_OPTION_NOTIFY_CONNECTION, on_connection, sh,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)SHARD_CONNECTIONS,
				   /* suspended connections (long-polls, idle streams) do not time out */
				   MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout,
				   /* Each connection's pool: the request head must fit (keys
				    * and query texts are at most 512 bytes, 1.5 KiB encoded),
				    * and a stream touches all of it. */
				   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)POOL_BYTES,
				   MHD_OPTION_END);
	info = sh->mhd ? MHD_get_daemon_info(sh->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	ev.events = EPOLLIN;
	ev.data.ptr = &sh->tag;
	if (!info || epoll_ctl(l->epfd, EPOLL_CTL_ADD, info->epoll_fd, &ev)) {
		if (sh->mhd)
			MHD_stop_daemon(sh->mhd);
		free(sh);
		return NULL;
	}
	l->shards[l->nshards++] = sh;
	shard_roomy(sh);
	return sh;
}

/* The listening socket is readable: each new connection goes to a shard
 * with room (a new one when none has); over --max-connections, it is
 * closed at once, as libmicrohttpd does at its limit. */
#define ACCEPT_PAUSE_MS 100

static void accept_ready(struct loop *l)
{
	int i;

	for (i = 0; i < 256; i++) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(l->lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct shard *sh;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* out of descriptors: the socket stays readable, so stop
				 * watching it a moment rather than spin */
				epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->lfd, NULL);
				l->accept_paused_until = daemon_now_ms() + ACCEPT_PAUSE_MS;
			}
			return;
		}
		if (l->connections >= l->max_connections) {
			close(fd);
			continue;
		}
		sh = l->roomy ? l->roomy : shard_new(l);
		if (!sh) {
			close(fd);
			continue;
		}
		/* on failure MHD has closed fd */
		if (MHD_add_connection(sh->mhd, fd, (struct sockaddr *)&sa, len) == MHD_YES)
			shard_due(sh);
	}
}

/* --- suspended requests --- */

static void unwatch(struct conn_req *r)
{
	if (r->watching) {
		epoll_ctl(r->loop->epfd, EPOLL_CTL_DEL, r->fd, NULL);
		r->watching = false;
	}
}

/* Counts r parked (+1) or not any more (-1), by kind for the stats. */
static void park_count(struct conn_req *r, int d)
{
	struct metrics *m = r->loop->app->metrics;
	struct loop *l = r->loop;

	if (d > 0) {
		r->pprev = NULL;
		r->pnext = l->parked;
		if (l->parked)
			l->parked->pprev = r;
		l->parked = r;
	} else {
		if (r->pprev)
			r->pprev->pnext = r->pnext;
		else
			l->parked = r->pnext;
		if (r->pnext)
			r->pnext->pprev = r->pprev;
		r->pprev = r->pnext = NULL;
	}
	if (d > 0)
		r->parked_stream = r->req.stream != NULL;
	if (!m)
		return;
	m->parked += (uint64_t)(int64_t)d;
	if (r->parked_stream)
		m->streams_parked += (uint64_t)(int64_t)d;
}

static void resume(struct conn_req *r)
{
	unwatch(r);
	if (r->suspended) {
		r->suspended = false;
		park_count(r, -1);
		shard_due(r->shard);
		MHD_resume_connection(r->conn);
	}
}

/* The store's wake callback: the waiter is already detached. */
static void on_wake(struct store_waiter *w, enum store_wake why)
{
	struct conn_req *r = container_of(w, struct conn_req, req.waiter);

	r->req.wake = why;
	resume(r);
}

static void suspend(struct conn_req *r)
{
	const union MHD_ConnectionInfo *ci;

	MHD_suspend_connection(r->conn);
	r->suspended = true;
	r->waited = true;
	park_count(r, 1);
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci) {
		struct epoll_event ev = { .events = EPOLLRDHUP, .data.ptr = r };
		r->fd = ci->connect_fd;
		r->watching = epoll_ctl(r->loop->epfd, EPOLL_CTL_ADD, r->fd, &ev) == 0;
	}
}

static void client_gone(struct conn_req *r)
{
	store_waiter_cancel(r->loop->app->store, &r->req.waiter);
	r->client_gone = true;
	resume(r);
}

/* --- connections awaiting a request head --- */

static void head_unlist(struct loop *l, struct conn_state *cs)
{
	if (!cs || !cs->listed)
		return;
	if (cs->prev)
		cs->prev->next = cs->next;
	else
		l->heads = cs->next;
	if (cs->next)
		cs->next->prev = cs->prev;
	else
		l->heads_tail = cs->prev;
	cs->prev = cs->next = NULL;
	cs->listed = false;
}

/* Every deadline is now + the same timeout, so appending keeps the list
 * in deadline order. */
static void head_list(struct loop *l, struct conn_state *cs)
{
	head_unlist(l, cs);
	cs->deadline = daemon_now_ms() + (uint64_t)l->app->cfg->idle_timeout * 1000;
	cs->prev = l->heads_tail;
	cs->next = NULL;
	if (l->heads_tail)
		l->heads_tail->next = cs;
	else
		l->heads = cs;
	l->heads_tail = cs;
	cs->listed = true;
}

/* Cuts off the connections past their deadline: MHD sees the socket shut
 * down on its next read and closes it. */
static void head_expire(struct loop *l, uint64_t now)
{
	while (l->heads && l->heads->deadline <= now) {
		struct conn_state *cs = l->heads;
		head_unlist(l, cs);
		shutdown(cs->fd, SHUT_RDWR);
	}
}

static struct conn_state *conn_state_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct shard *sh = cls;
	struct loop *l = sh->loop;
	struct conn_state *cs = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		sh->conns++;
		l->connections++;
		if (sh->conns >= SHARD_CONNECTIONS && l->roomy == sh) { /* full: new connections go elsewhere */
			l->roomy = sh->next_roomy;
			sh->roomy = false;
		}
	} else {
		sh->conns--;
		l->connections--;
		shard_roomy(sh);
	}
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		cs = calloc(1, sizeof(*cs));
		if (!cs || !ci) {
			free(cs);
			return; /* no deadline for this one; MHD's idle timeout still applies */
		}
		cs->fd = ci->connect_fd;
		cs->loop = l;
		*socket_context = cs;
		head_list(l, cs);
	} else if (cs) {
		head_unlist(l, cs);
		free(cs);
		*socket_context = NULL;
	}
}

/* --- libmicrohttpd callbacks --- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct shard *sh = cls;
	struct loop *l = sh->loop;
	struct conn_req *r = calloc(1, sizeof(*r));
	char *q;

	if (!r)
		return NULL;
	/* MHD parses the request line in place: the version follows the
	 * target's end. Anything else there means a NUL byte inside the
	 * target, which a C string would silently cut short. */
	r->bad_target = strncmp(uri + strlen(uri) + 1, "HTTP/", 5) != 0;
	r->target = strdup(uri);
	if (!r->target) {
		free(r);
		return NULL;
	}
	r->tag = TAG_REQ;
	r->loop = l;
	r->shard = sh;
	r->conn = conn;
	r->fd = -1;
	r->req.app = l->app;
	r->req.route = SIZE_MAX;
	r->req.waiter.wake = on_wake;
	r->req.waiter.timer.idx = TIMER_IDLE;
	r->req.path = r->target;
	q = strchr(r->target, '?');
	if (q) {
		r->req.path_len = (size_t)(q - r->target);
		r->req.query = q + 1;
		r->req.query_len = strlen(q + 1);
	} else {
		r->req.path_len = strlen(r->target);
	}
	l->live_requests++;
	return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct loop *l = ((struct shard *)cls)->loop;
	struct conn_req *r = *con_cls;

	if (!r)
		return;
	store_waiter_cancel(l->app->store, &r->req.waiter);
	if (r->req.cl_op)
		cluster_request_done(&r->req);
	if (r->req.cleanup)
		r->req.cleanup(&r->req);
	if (r->req.stream) {
		r->req.stream->free(&r->req);
		if (l->app->metrics)
			l->app->metrics->streams_open--;
	}
	unwatch(r);
	if (r->suspended)
		park_count(r, -1);
	l->live_requests--;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) { /* now it awaits its next request */
		struct conn_state *cs = conn_state_of(conn);
		if (cs)
			head_list(l, cs);
	}
	free(r->body);
	free(r->target);
	free(r);
	*con_cls = NULL;
}

/* MHD asks a streamed answer for more. Nothing ready: suspend until the
 * stream's waiter wakes (MHD calls again after the resume). */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct conn_req *r = cls;
	bool wait = false;
	size_t n;

	(void)pos;
	if (r->client_gone || !r->req.stream)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	r->req.now = request_now_ms();
	n = r->req.stream->read(&r->req, buf, max, &wait);
	r->req.wake = 0;
	if (n)
		return (ssize_t)n;
	if (!wait)
		return MHD_CONTENT_READER_END_OF_STREAM;
	suspend(r);
	return 0;
}

/* Appends src[0..n) to out[*k..cap - 1) with control bytes shown as '?',
 * so a log line stays one line. */
static void log_put(char *out, size_t *k, size_t cap, const char *src, size_t n)
{
	size_t i;

	for (i = 0; i < n && *k < cap - 1; i++)
		out[(*k)++] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
}

/* The target for a log line: the path as sent, then each query parameter,
 * with the value of any whose decoded name is access_token masked (a token
 * is not for logs, however it is spelled). */
static void log_target(const char *target, char *out, size_t cap)
{
	const char *q = strchr(target, '?'), *p;
	size_t k = 0;

	log_put(out, &k, cap, target, q ? (size_t)(q - target) + 1 : strlen(target));
	for (p = q ? q + 1 : NULL; p && *p; ) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p), nlen, dlen;
		const char *eq = memchr(p, '=', plen);
		char name[16];

		nlen = eq ? (size_t)(eq - p) : plen;
		if (eq && uri_decode(p, nlen, true, name, sizeof(name), &dlen) && dlen == 12 &&
		    !memcmp(name, "access_token", 12)) {
			log_put(out, &k, cap, p, nlen + 1);
			log_put(out, &k, cap, "***", 3);
		} else {
			log_put(out, &k, cap, p, plen);
		}
		if (!amp)
			break;
		log_put(out, &k, cap, "&", 1);
		p = amp + 1;
	}
	out[k] = '\0';
}

/* An access log line: client, method, target, status, body bytes,
 * milliseconds since the request arrived. */
static void log_request(struct conn_req *r, const struct http_reply *rep)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char addr[INET6_ADDRSTRLEN] = "-", target[256];
	struct timespec t1;

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, sizeof(addr));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr, sizeof(addr));
	}
	log_target(r->target, target, sizeof(target));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "rollcall: access: %s %s %s %d %zu %.3fms\n", addr, r->method ? r->method : "-", target,
		rep->status, rep->stream ? (size_t)0 : rep->body_len,
		(double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6);
}

/* --- libmicrohttpd's own error answers ---
 * libmicrohttpd answers some requests itself, before any handler runs: a
 * head over its memory (431), a target too long (414), a Content-Length
 * that is not a number (400) or too large (413), an HTTP version it does not
 * know (505), a malformed line (400). Its bodies are HTML, and 0.9.75
 * writes the head of a Content-Length error twice. It queues each through
 * its public MHD_queue_response(), which this program defines too: the
 * dynamic linker binds the library's own calls to this one (the binary
 * exports it: see the Makefile), which hands the server's answers on
 * (send_reply marks them). An answer of libmicrohttpd's own becomes api.md's
 * JSON error, written on a duplicate of the socket, which then closes
 * lingering: its written side shut, what the client still sends read and
 * dropped until it closes or LINGER_MS pass, so that the client reads the
 * answer instead of a reset. libmicrohttpd is told the queueing failed and
 * closes its side without writing anything. */

#define LINGER_MS 5000
#define LINGER_MAX 64 /* sockets lingering at once; more close at once (counted in FD_RESERVE) */

struct closing {
	int tag; /* TAG_LINGER; first, so an epoll event can tell what it points at */
	struct loop *loop;
	int fd;
	char out[640];
	size_t len, sent;
	uint64_t deadline;
	struct closing *prev, *next;
};

static bool own_answer; /* send_reply is queueing an answer of the server's */

static void linger_end(struct closing *lg)
{
	struct loop *l = lg->loop;

	if (lg->prev)
		lg->prev->next = lg->next;
	else
		l->lingers = lg->next;
	if (lg->next)
		lg->next->prev = lg->prev;
	l->nlingers--;
	/* Out of the epoll set first: closing our duplicate alone would not
	 * take it out while libmicrohttpd still has the socket open, and its
	 * events would come for a freed entry. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, lg->fd, NULL);
	close(lg->fd);
	free(lg);
}

/* The socket can take more of the answer, or has something to drop. */
static void linger_event(struct closing *lg, uint32_t events)
{
	char buf[16384];
	ssize_t n;

	while (lg->sent < lg->len) {
		n = send(lg->fd, lg->out + lg->sent, lg->len - lg->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return; /* EPOLLOUT brings us back */
			linger_end(lg);
			return;
		}
		lg->sent += (size_t)n;
		if (lg->sent == lg->len) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &lg->tag };
			shutdown(lg->fd, SHUT_WR);
			epoll_ctl(lg->loop->epfd, EPOLL_CTL_MOD, lg->fd, &ev);
		}
	}
	for (;;) {
		n = recv(lg->fd, buf, sizeof(buf), 0);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !(events & (EPOLLHUP | EPOLLERR)))
			return;
		linger_end(lg); /* the client closed, or the socket failed */
		return;
	}
}

static void linger_expire(struct loop *l, uint64_t now)
{
	struct closing *lg = l->lingers, *next;

	for (; lg; lg = next) {
		next = lg->next;
		if (lg->deadline <= now)
			linger_end(lg);
	}
}

/* What libmicrohttpd's own answer with status means, in api.md's terms. */
static enum api_error mhd_error(struct MHD_Connection *conn, unsigned status, const char **msg)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

	*msg = NULL;
	switch (status) {
	case MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE:
		return ERR_HEADER_TOO_LARGE;
	case MHD_HTTP_URI_TOO_LONG:
		return ERR_URI_TOO_LONG;
	case MHD_HTTP_CONTENT_TOO_LARGE:
		*msg = "Content-Length is larger than any body this server takes.";
		return ERR_PAYLOAD_TOO_LARGE;
	case MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED:
		return ERR_HTTP_VERSION;
	case MHD_HTTP_INTERNAL_SERVER_ERROR:
		return ERR_INTERNAL;
	default:
		if (cl && (!*cl || strspn(cl, "0123456789") != strlen(cl)))
			*msg = "Content-Length must be a decimal number.";
		return ERR_BAD_REQUEST;
	}
}

/* Writes api.md's JSON error for libmicrohttpd's own answer (status) to
 * the client of conn, and closes that socket lingering. */
static void mhd_error_answer(struct MHD_Connection *conn, unsigned status)
{
	struct conn_state *cs = conn_state_of(conn);
	struct loop *l = cs ? cs->loop : NULL;
	struct http_reply rep = { 0 };
	struct closing *lg;
	struct epoll_event ev;
	enum api_error e;
	const char *msg;
	char date[40];
	struct tm tm;
	time_t now;
	int n;

	if (!l || l->nlingers >= LINGER_MAX || !(lg = calloc(1, sizeof(*lg))))
		return; /* libmicrohttpd closes the connection unanswered */
	e = mhd_error(conn, status, &msg);
	reply_error(&rep, e, msg);
	now = time(NULL);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
	n = snprintf(lg->out, sizeof(lg->out),
		     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json; charset=utf-8\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n%.*s",
		     rep.status, MHD_get_reason_phrase_for((unsigned)rep.status), date, rep.body_len,
		     l->app->cluster ? "X-Rollcall-Node: " : "", l->app->cluster ? cluster_node(l->app->cluster) : "",
		     l->app->cluster ? "\r\n" : "", (int)rep.body_len, rep.body ? rep.body : "");
	if (l->app->metrics)
		metrics_record(l->app->metrics, METRICS_ROUTES - 1, rep.status, 0, 0);
	http_reply_clear(&rep);
	lg->fd = n > 0 && (size_t)n < sizeof(lg->out) ? fcntl(cs->fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (lg->fd < 0) {
		free(lg);
		return;
	}
	lg->tag = TAG_LINGER;
	lg->loop = l;
	lg->len = (size_t)n;
	lg->deadline = daemon_now_ms() + LINGER_MS;
	lg->next = l->lingers;
	if (l->lingers)
		l->lingers->prev = lg;
	l->lingers = lg;
	l->nlingers++;
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	ev.data.ptr = &lg->tag;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, lg->fd, &ev)) {
		linger_end(lg);
		return;
	}
	linger_event(lg, 0);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
				   struct MHD_Response *response)
{
	static enum MHD_Result (*real)(struct MHD_Connection *, unsigned int, struct MHD_Response *);

	if (!real) {
		*(void **)&real = dlsym(RTLD_NEXT, "MHD_queue_response");
		if (!real)
			return MHD_NO;
	}
	if (own_answer || status_code < 400)
		return real(connection, status_code, response);
	mhd_error_answer(connection, status_code);
	return MHD_NO;
}

static enum MHD_Result send_reply(struct conn_req *r, struct http_reply *rep)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char idx[24];

	if (rep->stream) {
		r->req.stream = rep->stream; /* on_completed frees its state */
		if (r->loop->app->metrics)
			r->loop->app->metrics->streams_open++; /* on_completed takes it back */
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, r, NULL);
	} else if (rep->body && rep->body_static) {
		resp = MHD_create_response_from_buffer(rep->body_len, rep->body, MHD_RESPMEM_PERSISTENT);
	} else if (rep->body) {
		resp = MHD_create_response_from_buffer(rep->body_len, rep->body, MHD_RESPMEM_MUST_FREE);
		if (resp)
			rep->body = NULL; /* MHD frees it now */
	} else {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp) {
		http_reply_clear(rep);
		return MHD_NO;
	}
	if (rep->body_len || (rep->status != 204 && rep->status != 304))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					rep->content_type ? rep->content_type : "application/json; charset=utf-8");
	/* Every /v1 answer carries the index, those made before any handler
	 * ran (413, 503 out of memory) too. */
	if (!rep->with_index && r->req.path_len >= 3 && !memcmp(r->req.path, "/v1", 3)) {
		rep->with_index = true;
		rep->index = store_index(r->loop->app->store);
	}
	if (rep->with_index) {
		snprintf(idx, sizeof(idx), "%llu", (unsigned long long)rep->index);
		MHD_add_response_header(resp, "X-Rollcall-Index", idx);
	}
	if (r->loop->app->cluster)
		MHD_add_response_header(resp, "X-Rollcall-Node", rep->node ? rep->node : cluster_node(r->loop->app->cluster));
	if (rep->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
	if (rep->cache_control)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, rep->cache_control);
	if (rep->etag)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, rep->etag);
	if (rep->www_authenticate)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, rep->www_authenticate);
	if (rep->close || r->loop->app->shutting_down)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (r->loop->app->metrics) {
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_record(r->loop->app->metrics, r->req.route, rep->status, r->waited,
			       (double)(t1.tv_sec - r->t0.tv_sec) + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e9);
	}
	if (r->loop->app->cfg->log_requests)
		log_request(r, rep);
	own_answer = true;
	ret = MHD_queue_response(r->conn, (unsigned)rep->status, resp);
	own_answer = false;
	MHD_destroy_response(resp);
	http_reply_clear(rep);
	return ret;
}

static enum MHD_Result send_error(struct conn_req *r, enum api_error e, const char *msg, bool close)
{
	struct http_reply rep = { 0 };

	reply_error(&rep, e, msg);
	rep.close = close;
	return send_reply(r, &rep);
}

static bool body_append(struct conn_req *r, const char *data, size_t n)
{
	if (r->body_len + n > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 1024;
		char *nb;
		while (cap < r->body_len + n)
			cap *= 2;
		nb = realloc(r->body, cap);
		if (!nb)
			return false;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	return true;
}

/* A NUL byte inside a header's name or value would cut it short as a C
 * string (a token "T\0junk" read as "T"). MHD 0.9.75 parses the head in
 * place, ending each name and value with a NUL where ':' or the line end
 * was: so the byte after a clean string's NUL is another NUL, a blank, or
 * where the next string starts. Anything else is the rest of a string that
 * held a NUL. */
struct nul_scan {
	const char *prev_end; /* the NUL after the previous header's value */
	bool found;
};

static bool clean_end(const char *end, const char *next)
{
	return end[1] == '\0' || end[1] == ' ' || end[1] == '\t' || end + 1 == next;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				   const char *value, size_t value_size)
{
	struct nul_scan *ns = cls;

	(void)kind;
	(void)key_size;
	(void)value_size;
	if (ns->prev_end && !clean_end(ns->prev_end, key))
		ns->found = true;
	if (value && !clean_end(key + strlen(key), value))
		ns->found = true;
	ns->prev_end = value ? value + strlen(value) : key + strlen(key);
	return ns->found ? MHD_NO : MHD_YES;
}

/* RFC 9112's framing rules that libmicrohttpd 0.9.75 does not apply: it
 * takes the first of two Content-Length headers whatever the second says,
 * and reads a body by Transfer-Encoding when Content-Length is there too
 * (behind a proxy that reads the other one, a request smuggled in). */
struct framing {
	const char *cl;     /* the first Content-Length */
	int ncl, nte;
	bool cl_differ;     /* two Content-Length values differ */
	bool te_chunked;    /* the (one) Transfer-Encoding is exactly chunked */
};

static enum MHD_Result scan_framing(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				    const char *value, size_t value_size)
{
	struct framing *f = cls;

	(void)kind;
	(void)value_size;
	if (!value)
		return MHD_YES;
	if (key_size == 14 && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
		if (f->ncl++ && strcmp(f->cl, value))
			f->cl_differ = true;
		if (!f->cl)
			f->cl = value;
	} else if (key_size == 17 && !strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		f->nte++;
		f->te_chunked = !strcasecmp(value, "chunked");
	}
	return MHD_YES;
}

/* The framing fault of the request's head, or ERR_COUNT when there is none. */
static enum api_error framing_fault(struct MHD_Connection *conn, const char **msg)
{
	struct framing f = { 0 };

	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_framing, &f);
	if (f.cl_differ) {
		*msg = "Two Content-Length headers with different values.";
		return ERR_BAD_REQUEST;
	}
	if (f.nte && f.ncl) {
		*msg = "A request may have Transfer-Encoding or Content-Length, not both.";
		return ERR_BAD_REQUEST;
	}
	if (f.nte > 1 || (f.nte && !f.te_chunked))
		return ERR_NOT_IMPLEMENTED;
	return ERR_COUNT;
}

static bool headers_hold_nul(struct MHD_Connection *conn)
{
	struct nul_scan ns = { NULL, false };

	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_header, &ns);
	if (!ns.found && ns.prev_end && !clean_end(ns.prev_end, NULL))
		ns.found = true;
	return ns.found;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct loop *l = ((struct shard *)cls)->loop;
	struct conn_req *r = *con_cls;
	const struct config *cfg = l->app->cfg;
	struct http_reply rep = { 0 };

	(void)url;
	(void)version;
	if (!r)
		return MHD_NO; /* out of memory in on_uri: drop the connection */
	if (!r->started) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		const char *why = NULL;
		enum api_error fault = framing_fault(conn, &why);
		r->started = true;
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		r->req.method = router_method(method);
		r->method = method;
		r->req.token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Session-Token");
		r->req.accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
		r->req.last_event_id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
		r->req.if_none_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
		r->req.authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		r->req.forward_secret = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Rollcall-Forward");
		if (fault != ERR_COUNT) /* answered, and the connection closed: its body cannot be told apart */
			return send_error(r, fault, why, true);
		if (r->bad_target || headers_hold_nul(conn))
			return send_error(r, ERR_BAD_REQUEST, "The request holds a NUL byte in its target or a header.", true);
		if (cl && strtoull(cl, NULL, 10) > cfg->max_body + BODY_SLACK)
			return send_error(r, ERR_PAYLOAD_TOO_LARGE, "The body is over --max-body bytes.", true);
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->body_len + *upload_data_size > cfg->max_body) {
			r->too_large = true; /* read on and drop the rest */
		} else if (!r->too_large && !r->nomem && !body_append(r, upload_data, *upload_data_size)) {
			r->nomem = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* The whole request is in (a body trickled in slowly counts against
	 * the same deadline as the head); a waiting request has no deadline. */
	head_unlist(l, conn_state_of(conn));
	if (r->client_gone)
		return MHD_NO;
	if (r->too_large)
		return send_error(r, ERR_PAYLOAD_TOO_LARGE, "The body is over --max-body bytes.", false);
	if (r->nomem)
		return send_error(r, ERR_NO_MEMORY, NULL, false);
	r->req.body = r->body ? r->body : "";
	r->req.body_len = r->body_len;
	r->req.now = request_now_ms();
	router_dispatch(&r->req, &rep);
	if (rep.suspend) {
		http_reply_clear(&rep);
		suspend(r);
		return MHD_YES;
	}
	return send_reply(r, &rep);
}

/* --- the loop --- */

/* The listening socket on --listen (IPv4 or IPv6, which then takes IPv6
 * only); its port in *port (the real one for port 0). -1 with a message
 * when it cannot be made. */
static int listen_socket(const struct config *cfg, unsigned *port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, cfg->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)cfg->port);
		len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, cfg->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)cfg->port);
		len = sizeof(*in6);
	} else {
		fprintf(stderr, "rollcall: bad listen address %s\n", cfg->host);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 1024) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len)) {
		fprintf(stderr, "rollcall: cannot listen on %s:%u: %s\n", cfg->host, cfg->port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
	return fd;
}

/* Descriptors kept for what is not a client connection: the listening
 * socket, epoll, signals, logs; in a cluster, connections to etcd and to
 * the other nodes. Each shard takes one more (its epoll). */
#define FD_RESERVE (32 + LINGER_MAX)
#define FD_RESERVE_CLUSTER 256

/* Raises the open-file limit to the hard limit, says how many client
 * connections it leaves room for, and lowers *max_connections to that
 * when it is more, with a line saying so. */
static void fit_fd_limit(const struct config *cfg, size_t *max_connections)
{
	struct rlimit rl;
	unsigned long long room, reserve = FD_RESERVE + (cfg->etcd ? FD_RESERVE_CLUSTER : 0);

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY) {
		fprintf(stderr, "rollcall: open files: no limit; up to %zu connections (--max-connections)\n",
			*max_connections);
		return;
	}
	room = rl.rlim_cur > reserve ? (rl.rlim_cur - reserve) * SHARD_CONNECTIONS / (SHARD_CONNECTIONS + 1) : 0;
	if (room < 1)
		room = 1;
	fprintf(stderr, "rollcall: open files: limit %llu (hard limit %llu), room for %llu connections\n",
		(unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, room);
	if (*max_connections > room) {
		fprintf(stderr, "rollcall: --max-connections %zu is more than the open-file limit leaves room for: lowered to %llu\n",
			*max_connections, room);
		*max_connections = (size_t)room;
	}
}

static int setup_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void begin_shutdown(struct loop *l)
{
	if (l->app->shutting_down)
		return;
	l->app->shutting_down = true;
	if (l->lfd >= 0) { /* stop accepting */
		close(l->lfd);
		l->lfd = -1;
	}
	store_wake_all(l->app->store); /* every pending wait gets its answer */
	if (l->app->cluster)
		cluster_leave(l->app->cluster, daemon_now_ms());
}

int daemon_run(struct app *app)
{
	const struct config *cfg = app->cfg;
	struct loop l = { .app = app, .lfd = -1, .tag_signal = TAG_SIGNAL, .tag_listen = TAG_LISTEN };
	struct epoll_event ev;
	int sfd, rc = 1, exit_rc = 0;
	unsigned port = 0;
	uint64_t stop_by = 0;
	size_t i;

	l.max_connections = cfg->max_connections;
	fit_fd_limit(cfg, &l.max_connections);
	sfd = setup_signals();
	l.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || l.epfd < 0) {
		perror("rollcall: signals/epoll");
		return 1;
	}
	l.lfd = listen_socket(cfg, &port);
	if (l.lfd < 0)
		goto out;
	ev.events = EPOLLIN;
	ev.data.ptr = &l.tag_listen;
	epoll_ctl(l.epfd, EPOLL_CTL_ADD, l.lfd, &ev);
	ev.data.ptr = &l.tag_signal;
	epoll_ctl(l.epfd, EPOLL_CTL_ADD, sfd, &ev);
	if (!shard_new(&l)) { /* the first shard: one is always there */
		fprintf(stderr, "rollcall: cannot start the HTTP daemon\n");
		goto out;
	}
	if (cfg->port == 0) /* port 0: the node's name and address take the real one */
		config_bound_port((struct config *)cfg, port);
	if (cfg->etcd) {
		app->cluster = cluster_new(app, l.epfd, TAG_CLUSTER);
		if (!app->cluster) {
			fprintf(stderr, "rollcall: cannot start the cluster client\n");
			goto out;
		}
	}
	fprintf(stderr, "rollcall: listening on %s:%u\n", cfg->host, port);
	fflush(stderr);

	for (;;) {
		struct epoll_event evs[64];
		uint64_t now = daemon_now_ms(), next;
		long long timeout = -1;
		int n, k;

		if (store_tick(app->store, now, EXPIRY_BUDGET) == EXPIRY_BUDGET) {
			timeout = 0; /* more is due: serve requests, then go on */
		} else {
			next = store_next_deadline(app->store);
			if (next != UINT64_MAX)
				timeout = next > now ? (long long)(next - now) : 0;
		}
		for (i = 0; i < l.nshards; i++) { /* the shards' own timeouts (idle connections) */
			struct shard *sh = l.shards[i];
			if (sh->next == UINT64_MAX)
				continue;
			if (sh->next <= now) {
				shard_due(sh);
			} else if (timeout < 0 || (long long)(sh->next - now) < timeout) {
				timeout = (long long)(sh->next - now);
			}
		}
		head_expire(&l, now);
		linger_expire(&l, now);
		if (l.accept_paused_until) {
			if (now >= l.accept_paused_until && l.lfd >= 0) {
				ev.events = EPOLLIN;
				ev.data.ptr = &l.tag_listen;
				epoll_ctl(l.epfd, EPOLL_CTL_ADD, l.lfd, &ev);
				l.accept_paused_until = 0;
			} else if (timeout < 0 || (long long)(l.accept_paused_until - now) < timeout) {
				timeout = l.accept_paused_until > now ? (long long)(l.accept_paused_until - now) : 0;
			}
		}
		if (l.lingers && (timeout < 0 || timeout > 1000))
			timeout = 1000; /* lingering sockets are checked each second at least */
		if (l.heads) {
			long long h = l.heads->deadline > now ? (long long)(l.heads->deadline - now) : 0;
			if (timeout < 0 || h < timeout)
				timeout = h;
		}
		if (app->cluster) {
			long ct = cluster_timeout(app->cluster, now);
			if (ct >= 0 && (timeout < 0 || ct < timeout))
				timeout = ct;
		}
		if (l.due)
			timeout = 0;
		if (app->shutting_down) {
			if ((l.live_requests == 0 && !l.parked &&
			     (!app->cluster || cluster_leave(app->cluster, now))) || now >= stop_by)
				break;
			if (timeout < 0 || timeout > 50)
				timeout = 50;
		}
		if (timeout > 60000)
			timeout = 60000;
		n = epoll_wait(l.epfd, evs, 64, (int)timeout);
		if (n < 0 && errno != EINTR) {
			perror("rollcall: epoll_wait");
			goto out;
		}
		for (k = 0; k < n; k++) {
			int *tag = evs[k].data.ptr;
			if (*tag == TAG_MHD) {
				shard_due(container_of(tag, struct shard, tag));
			} else if (*tag == TAG_LISTEN) {
				accept_ready(&l);
			} else if (*tag == TAG_LINGER) {
				linger_event(container_of(tag, struct closing, tag), evs[k].events);
			} else if (*tag == TAG_SIGNAL) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si))
					;
				if (!app->shutting_down)
					stop_by = daemon_now_ms() + SHUTDOWN_GRACE_MS;
				begin_shutdown(&l);
			} else if (*tag == TAG_REQ) {
				client_gone((struct conn_req *)(void *)tag);
			} else if (*tag == TAG_CLUSTER) {
				cluster_on_event(app->cluster, tag, evs[k].events);
			}
		}
		/* before serving anything: a node paused past its standing ends
		 * its sessions here first */
		if (app->cluster && cluster_timeout(app->cluster, daemon_now_ms()) == 0)
			cluster_tick(app->cluster, daemon_now_ms());
		if (app->cluster && cluster_taken_over(app->cluster) && !app->shutting_down) {
			fprintf(stderr, "rollcall: another node took the name %s: exiting\n", cfg->node);
			exit_rc = 1;
			stop_by = daemon_now_ms() + SHUTDOWN_GRACE_MS;
			begin_shutdown(&l);
		}
		/* The shards with something to do; one whose requests resume
		 * others' (a send waking receives) puts their shards on the list,
		 * and they run in this same turn. */
		while (l.due) {
			struct shard *sh = l.due;
			MHD_UNSIGNED_LONG_LONG to;
			l.due = sh->next_due;
			sh->due = false;
			MHD_run(sh->mhd);
			sh->next = MHD_get_timeout(sh->mhd, &to) == MHD_YES ? daemon_now_ms() + to : UINT64_MAX;
		}
	}
	rc = exit_rc;
out:
	/* Requests still parked at the end of the grace (a write etcd has not
	 * answered) end as if their clients had gone, and each shard runs once
	 * more to close them: libmicrohttpd refuses to stop a daemon that has
	 * suspended connections. */
	while (l.parked)
		client_gone(l.parked);
	for (i = 0; i < l.nshards; i++)
		MHD_run(l.shards[i]->mhd);
	/* requests end first: what they hold in the cluster goes with them */
	for (i = 0; i < l.nshards; i++) {
		MHD_stop_daemon(l.shards[i]->mhd);
		free(l.shards[i]);
	}
	free(l.shards);
	while (l.lingers)
		linger_end(l.lingers);
	if (l.lfd >= 0)
		close(l.lfd);
	if (app->cluster) {
		cluster_free(app->cluster);
		app->cluster = NULL;
	}
	close(l.epfd);
	close(sfd);
	return rc;
}

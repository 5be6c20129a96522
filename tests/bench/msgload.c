/* msgload: load tool for rollcall's messages (POST /v1/send and the
 * long-poll receive GET /v1/sessions/{id}/messages), event streams
 * (GET /v1/events as Server-Sent Events) and calls (POST /v1/call and
 * POST /v1/replies/{id}).
 *
 * Plain sockets and epoll, one thread, 127.0.0.1 only. Builds with
 *     cc -O2 -Wall -Wextra -Werror -o msgload msgload.c
 *
 * The message modes (latency, maxrate, memory) first create --waiters
 * sessions (POST /v1/sessions {"ttl":3600})
 * and registers a name per session (PUT /v1/names/<prefix><i>) over a few
 * pipelined setup connections, then gives each session its own keep-alive
 * connection that long-polls its mailbox
 *     GET /v1/sessions/{id}/messages?after=<last seq>&wait=<s>
 * with X-Session-Token, re-polling at once with the new `after` when answered.
 * Messages go to the names round-robin (message n to <prefix><n mod waiters>)
 * over --senders keep-alive connections, pipelined up to --pipeline deep:
 *     POST /v1/send {"to":{"name":"<prefix><i>"},"body":{"t":<ns>,"n":<n>}}
 * where t is CLOCK_MONOTONIC in ns when the request is written; the receiving
 * side takes latency = its own CLOCK_MONOTONIC - t (same machine, same clock).
 *
 * Modes:
 *   latency  open loop: --rate messages/s for --seconds s, then a drain.
 *   maxrate  closed loop: as fast as the server goes with at most --window
 *            messages sent but not yet received; counts over --seconds s after
 *            --warmup s.
 *   memory   VmRSS of --pid (the server) before the waiters' connections and
 *            with all of them parked in a long-poll (wait=--wait, default 120),
 *            then one message to every name, each of which must be received.
 *   streams  (no sessions, no names) VmRSS of --pid before and with --streams
 *            GET /v1/events (Accept: text/event-stream) open, each on its own
 *            keep-alive connection, read (chunked body decoded, SSE blocks
 *            split) and discarded; the first block of each must be
 *            "retry: 1000". Prints "msgload: READY" and holds the streams
 *            idle until SIGUSR1 (or --hold s), so that the caller can measure
 *            something else meanwhile; then makes one change (POST
 *            /v1/sessions) and counts the streams whose first event after it
 *            is that session_created, and how long each took.
 *   calls    --responders sessions join the group --group (PUT
 *            /v1/groups/G) and long-poll their mailboxes (max=1000); each
 *            message is a call, answered at once with POST /v1/replies/
 *            <reply_to> {"body": <the message's body>} over the responder's
 *            own pipelined reply connection. --callers connections each
 *            make one call at a time:
 *                POST /v1/call {"to":{"group":G,"pick":"round_robin"},
 *                               "body":{"c":<caller>,"k":<n>},"timeout_ms":T}
 *            and check that the answer is 200 with their own body. Closed
 *            loop (a caller calls again once answered; counted over
 *            --seconds after --warmup), or, with --rate, open loop (call n
 *            due at n/rate, made by a caller with none in flight; the round
 *            trip counts from when it is made). Then what is in flight
 *            finishes and GET /v1/stats gives calls.pending (must be 0),
 *            answered, timed_out, receiver_gone and caller_gone.
 *
 * Counts: sent = answered 202 with "delivered":1; received = distinct messages
 * seen by a waiter; lost = sent but never received by the end of the drain;
 * duplicates = a message seen again (modes latency, maxrate, memory). The
 * last line of output is
 *     RESULT mode=... key=value ...
 * for scripts. Exit status: 0 measured and clean; 1 measured but with lost,
 * duplicate or failed requests (see the ERROR lines); 2 usage; 3 could not
 * measure (setup failed, connection refused, the time limit, ...).
 *
 * --recv-port P2 (a cluster): the receiving side (setup, sessions, names,
 * waiters, responders) talks to the node on P2, so that its sessions are
 * homed there, while senders and callers talk to the node on --port: every
 * message and call crosses from one node to the other. --pid is then the
 * receiving node's.
 *
 * --pid lets the tool watch the server: CPU time during the run, VmRSS, and
 * "settled" (its CPU time has stopped moving and no socket of its port has
 * unread input in /proc/net/tcp), which is how a batch of long-polls is known
 * to be parked before the clock starts or RSS is read. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ options --- */

enum mode { M_LATENCY, M_MAXRATE, M_MEMORY, M_STREAMS, M_CALLS };

static struct {
	enum mode mode;
	int port;
	int recv_port;     /* 0: port; else the receiving side (setup, waiters, repliers) talks to this one */
	int waiters;
	double rate;
	double seconds;
	double warmup;
	int senders;
	int pipeline;
	long window;
	int wait_s;
	int pid;
	const char *prefix;
	double timeout;
	int setup_conns;
	int quiet;
	int streams;       /* streams mode: event streams held open */
	double hold;       /* streams mode: longest wait for SIGUSR1 */
	int callers;       /* calls mode: caller connections */
	int responders;    /* calls mode: responder sessions */
	const char *group; /* calls mode: the responders' group */
	int call_timeout_ms;
	bool rate_given;   /* calls mode: open loop at --rate */
} opt = {
	.mode = M_LATENCY,
	.waiters = 1000,
	.rate = 2000,
	.seconds = 10,
	.warmup = 1,
	.senders = 4,
	.pipeline = 32,
	.window = 0,
	.wait_s = 0,
	.pid = 0,
	.prefix = "lp-",
	.timeout = 300,
	.setup_conns = 8,
	.streams = 1000,
	.hold = 300,
	.callers = 1000,
	.responders = 16,
	.group = "bench-calls",
	.call_timeout_ms = 5000,
};

static const char *const mode_names[] = { "latency", "maxrate", "memory", "streams", "calls" }; /* enum mode */

static const char *mode_name(void)
{
	return mode_names[opt.mode];
}

/* ------------------------------------------------------------- helpers --- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t deadline_ns; /* the whole run must end by then */

static void fatal(const char *fmt, ...)
{
	va_list ap;

	fprintf(stdout, "msgload: FATAL: ");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fprintf(stdout, "\nRESULT mode=%s measured=0\n", mode_name());
	fflush(stdout);
	exit(3);
}

static void on_alarm(int sig)
{
	static const char msg[] = "msgload: FATAL: hard time limit reached\n";

	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(3);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		fatal("out of memory");
	return p;
}

/* "%.*s" arguments: at most the first 200 bytes of a body, for messages */
#define CLIP(len, b) (int)((len) > 200 ? 200 : (len)), (b)

/* errors worth showing, the first few of each kind */
static int errors_total;
static void note_error(const char *fmt, ...)
{
	va_list ap;

	errors_total++;
	if (errors_total > 20)
		return;
	fprintf(stdout, "msgload: ERROR: ");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* ------------------------------------------------ server observation --- */

static long clk_tck;

/* utime + stime of the server in clock ticks; -1 when unknown. */
static long long server_cpu_ticks(void)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;
	int i;

	if (opt.pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", opt.pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	/* after ")": state is field 3; utime is 14, stime 15 */
	for (i = 3; i < 14; i++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	if (sscanf(p, " %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static long server_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (opt.pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", opt.pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static bool server_alive(void)
{
	return opt.pid <= 0 || kill(opt.pid, 0) == 0 || errno == EPERM;
}

/* Sockets of the server's port (local port == opt.port, ESTABLISHED) in
 * /proc/net/tcp: how many, and how many have unread input. -1 when the file
 * cannot be read. */
static int server_sockets(long *established, long *unread)
{
	char line[512];
	FILE *f = fopen("/proc/net/tcp", "r");

	*established = *unread = 0;
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, rport, st, txq, rxq;
		if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %x:%x", &lport, &rport, &st, &txq,
			   &rxq) != 5)
			continue;
		if ((int)lport != (opt.recv_port ? opt.recv_port : opt.port) || st != 1)
			continue;
		(*established)++;
		if (rxq)
			(*unread)++;
	}
	fclose(f);
	return 0;
}

/* ---------------------------------------------------------- connections --- */

enum kind { K_SETUP, K_SENDER, K_WAITER, K_STREAM, K_CALLER, K_REPLIER, K_ONEOFF };

static const char *const kind_name[] = { "setup", "sender", "waiter", "event stream", "caller", "replier", "one-off" };

struct conn {
	int fd;
	enum kind kind;
	int id; /* waiter index for K_WAITER */
	bool connecting, open, dirty, epout;
	char *out;
	size_t olen, ooff, ocap;
	char *in;
	size_t ilen, icap;
	uint64_t *tags; /* FIFO, one per request written and not answered */
	size_t tcap, thead, tcount;
};

struct waiter {
	char id[17];
	char token[33];
	uint64_t after;
	struct conn *c;
	bool polling;
	uint64_t answers;
};

static int epfd;
static int tfd; /* pacing timer, in epfd with data.ptr NULL */
static struct sockaddr_in server, server_recv;
static struct conn **dirty;
static size_t ndirty, dirty_cap;
static int connecting_now;
static long conns_open, conn_failures;

static struct waiter *W;
static struct conn **setup_c;
static struct conn **send_c;
static int nsend_c;

static void conn_epoll(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	bool want_out = c->connecting || c->ooff < c->olen;

	if (want_out)
		ev.events |= EPOLLOUT;
	if (want_out != c->epout) {
		c->epout = want_out;
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

static struct conn *conn_new(enum kind kind, int id)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	int one = 1;

	if (!c)
		fatal("out of memory");
	c->kind = kind;
	c->id = id;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		fatal("socket: %s (open connections %ld; RLIMIT_NOFILE too low?)", strerror(errno), conns_open);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	const struct sockaddr_in *to = kind == K_SETUP || kind == K_WAITER || kind == K_REPLIER ? &server_recv : &server;
	if (connect(c->fd, (const struct sockaddr *)to, sizeof(*to)) == 0) {
		c->open = true;
	} else if (errno == EINPROGRESS) {
		c->connecting = true;
		connecting_now++;
	} else {
		fatal("connect to 127.0.0.1:%d: %s", ntohs(to->sin_port), strerror(errno));
	}
	conns_open++;
	ev.events = EPOLLIN | EPOLLRDHUP | (c->connecting ? EPOLLOUT : 0);
	ev.data.ptr = c;
	c->epout = c->connecting;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev))
		fatal("epoll_ctl: %s", strerror(errno));
	return c;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		conns_open--;
		if (c->connecting)
			connecting_now--;
	}
	c->open = c->connecting = false;
}

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	conn_close(c);
	free(c->out);
	free(c->in);
	free(c->tags);
	free(c);
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	if (ndirty == dirty_cap) {
		dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
		dirty = xrealloc(dirty, dirty_cap * sizeof(*dirty));
	}
	dirty[ndirty++] = c;
	c->dirty = true;
}

/* Appends a request to c's output and its tag to the FIFO. */
static void conn_request(struct conn *c, uint64_t tag, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	for (;;) {
		size_t room = c->ocap - c->olen;
		va_start(ap, fmt);
		n = vsnprintf(c->out + c->olen, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatal("vsnprintf");
		if ((size_t)n < room)
			break;
		c->ocap = c->ocap ? c->ocap * 2 : 512;
		while (c->ocap - c->olen <= (size_t)n)
			c->ocap *= 2;
		c->out = xrealloc(c->out, c->ocap);
	}
	c->olen += (size_t)n;
	if (c->tcount == c->tcap) {
		size_t i, ncap = c->tcap ? c->tcap * 2 : 4;
		uint64_t *nt = xrealloc(NULL, ncap * sizeof(*nt));
		for (i = 0; i < c->tcount; i++)
			nt[i] = c->tags[(c->thead + i) % c->tcap];
		free(c->tags);
		c->tags = nt;
		c->tcap = ncap;
		c->thead = 0;
	}
	c->tags[(c->thead + c->tcount) % c->tcap] = tag;
	c->tcount++;
	mark_dirty(c);
}

static void conn_failed(struct conn *c, const char *what)
{
	conn_failures++;
	note_error("%s connection %d %s (%s; %zu requests unanswered)", kind_name[c->kind], c->id, what,
		   errno ? strerror(errno) : "closed", c->tcount);
	if (c->kind == K_WAITER)
		W[c->id].polling = false;
	conn_close(c);
}

static void conn_flush(struct conn *c)
{
	while (c->open && c->ooff < c->olen) {
		ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
		if (n > 0) {
			c->ooff += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			conn_failed(c, "write failed");
			return;
		}
	}
	if (c->fd >= 0)
		conn_epoll(c);
}

static void flush_dirty(void)
{
	size_t i;

	for (i = 0; i < ndirty; i++) {
		dirty[i]->dirty = false;
		if (dirty[i]->open)
			conn_flush(dirty[i]);
	}
	ndirty = 0;
}

/* --------------------------------------------------------- HTTP parsing --- */

static bool header_value(const char *h, size_t hlen, const char *name, const char **v, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = h, *end = h + hlen;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *s = p + nl + 1;
			while (s < eol && (*s == ' ' || *s == '\t'))
				s++;
			*v = s;
			*vlen = (size_t)(eol - s);
			return true;
		}
		p = eol + 2;
	}
	return false;
}

/* One whole response at buf: 1 with status, body and the bytes it takes;
 * 0 when more is needed; -1 when it cannot be parsed. */
static int parse_response(const char *buf, size_t len, int *status, const char **body, size_t *blen,
			  size_t *used, bool *close_after)
{
	const char *hend = memmem(buf, len, "\r\n\r\n", 4), *v;
	size_t hlen, vlen, cl = 0;

	if (!hend)
		return len > 65536 ? -1 : 0;
	hlen = (size_t)(hend - buf);
	if (hlen < 12 || memcmp(buf, "HTTP/1.", 7) || !isdigit((unsigned char)buf[9]))
		return -1;
	*status = atoi(buf + 9);
	if (header_value(buf, hlen, "Transfer-Encoding", &v, &vlen))
		return -1; /* rollcall answers with Content-Length */
	if (header_value(buf, hlen, "Content-Length", &v, &vlen))
		cl = strtoul(v, NULL, 10);
	else if (*status != 204 && *status != 304)
		return -1;
	*close_after = header_value(buf, hlen, "Connection", &v, &vlen) && vlen >= 5 && !strncasecmp(v, "close", 5);
	if (len < hlen + 4 + cl)
		return 0;
	*body = hend + 4;
	*blen = cl;
	*used = hlen + 4 + cl;
	return 1;
}

/* The number after "key" (then blanks, ':', blanks) at or after *p, before
 * end; moves *p past it. */
static bool json_uint(const char **p, const char *end, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);
	const char *q = *p;

	for (;;) {
		const char *k = memmem(q, (size_t)(end - q), key, kl);
		const char *s;
		if (!k)
			return false;
		s = k + kl;
		while (s < end && isspace((unsigned char)*s))
			s++;
		if (s < end && *s == ':') {
			s++;
			while (s < end && isspace((unsigned char)*s))
				s++;
			if (s < end && isdigit((unsigned char)*s)) {
				uint64_t v = 0;
				while (s < end && isdigit((unsigned char)*s))
					v = v * 10 + (uint64_t)(*s++ - '0');
				*out = v;
				*p = s;
				return true;
			}
		}
		q = k + kl;
	}
}

/* The hex string after "key": copies at most cap-1 characters. */
static bool json_str(const char *b, size_t blen, const char *key, char *out, size_t cap)
{
	char pat[64];
	const char *k, *s, *end = b + blen;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	k = memmem(b, blen, pat, strlen(pat));
	if (!k)
		return false;
	s = k + strlen(pat);
	while (s < end && (isspace((unsigned char)*s) || *s == ':'))
		s++;
	if (s >= end || *s != '"')
		return false;
	s++;
	while (s < end && *s != '"' && n + 1 < cap)
		out[n++] = *s++;
	out[n] = 0;
	return s < end && *s == '"';
}

/* --------------------------------------------------------- bookkeeping --- */

#define MS_WRITTEN 1
#define MS_ACKED 2
#define MS_RECEIVED 4

static uint8_t *mstate; /* per message n */
static uint64_t mcap;
static uint64_t issued;           /* send requests written */
static uint64_t acked, send_errors, send_answers;
static uint64_t received, duplicates, unknown_msgs, poll_answers, poll_errors, early_answers;
static uint64_t *lat; /* ns, one per message received, in arrival order */
static uint64_t nlat, latcap;
static uint64_t win_start, win_end; /* measurement window for maxrate */
static uint64_t win_received, win_acked;
static uint64_t win_nlat0; /* latencies recorded before the window opened */
static bool sending_stopped;
static bool expect_answers = true; /* memory mode: false while RSS is measured */
static uint64_t setup_done, setup_errors;
static double rq_server_ms = -1, rq_client_ms = -1; /* ms runnable but not running */
static bool poll_on_connect = true; /* memory mode opens them idle first */

static void lat_add(uint64_t ns)
{
	if (nlat == latcap) {
		latcap = latcap ? latcap * 2 : 65536;
		lat = xrealloc(lat, latcap * sizeof(*lat));
	}
	lat[nlat++] = ns;
}

static void mstate_grow(uint64_t n)
{
	if (n < mcap)
		return;
	uint64_t ncap = mcap ? mcap : 65536;
	while (ncap <= n)
		ncap *= 2;
	mstate = xrealloc(mstate, ncap);
	memset(mstate + mcap, 0, ncap - mcap);
	mcap = ncap;
}

static void poll_now(struct waiter *w)
{
	conn_request(w->c, 0, "GET /v1/sessions/%s/messages?after=%" PRIu64 "&wait=%d%s HTTP/1.1\r\n"
			      "Host: 127.0.0.1\r\nX-Session-Token: %s\r\n\r\n",
		     w->id, w->after, opt.wait_s, opt.mode == M_CALLS ? "&max=1000" : "", w->token);
	w->polling = true;
}

static void send_message(struct conn *c, uint64_t n)
{
	char body[160];
	int len;

	mstate_grow(n);
	len = snprintf(body, sizeof(body), "{\"to\":{\"name\":\"%s%" PRIu64 "\"},\"body\":{\"t\":%" PRIu64
				       ",\"n\":%" PRIu64 "}}",
		       opt.prefix, n % (uint64_t)opt.waiters, now_ns(), n);
	conn_request(c, n, "POST /v1/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			   "Content-Length: %d\r\n\r\n%s",
		     len, body);
	mstate[n] |= MS_WRITTEN;
	issued++;
}

/* The messages of a waiter's answered poll: counted, and their latency. */
static void take_messages(struct waiter *w, const char *body, size_t blen, uint64_t t)
{
	const char *p = body, *end = body + blen;
	uint64_t seq, ts, n;

	while (json_uint(&p, end, "\"seq\"", &seq)) {
		if (!json_uint(&p, end, "\"t\"", &ts) || !json_uint(&p, end, "\"n\"", &n)) {
			note_error("message without t or n in: %.*s", CLIP(blen, body));
			poll_errors++;
			break;
		}
		if (seq > w->after)
			w->after = seq;
		if (n >= mcap || !(mstate[n] & MS_WRITTEN)) {
			unknown_msgs++;
			continue;
		}
		if (mstate[n] & MS_RECEIVED) {
			duplicates++;
			continue;
		}
		mstate[n] |= MS_RECEIVED;
		received++;
		if (t >= win_start && t < win_end)
			win_received++;
		lat_add(t > ts ? t - ts : 0);
	}
}

static void take_calls(struct waiter *w, const char *body, size_t blen);

/* A waiter's long-poll answered (in calls mode, a responder's): its messages
 * taken, and the mailbox polled again. */
static void on_waiter_answer(struct waiter *w, int status, const char *body, size_t blen, uint64_t t)
{
	bool calls = opt.mode == M_CALLS;

	w->polling = false;
	w->answers++;
	poll_answers++;
	if (!expect_answers)
		early_answers++;
	if (status != 200) {
		poll_errors++;
		note_error("poll of %s %s answered %d: %.*s (this %s stops)", calls ? "responder" : "session", w->id,
			   status, CLIP(blen, body), calls ? "responder" : "waiter");
		return; /* no hot loop of errors: its messages will count as lost */
	}
	if (calls)
		take_calls(w, body, blen);
	else
		take_messages(w, body, blen, t);
	if (w->c->open)
		poll_now(w);
}

static void on_send_answer(uint64_t n, int status, const char *body, size_t blen, uint64_t t)
{
	const char *p = body, *end = body + blen;
	uint64_t d = 0;

	send_answers++;
	if (status == 202 && json_uint(&p, end, "\"delivered\"", &d) && d == 1) {
		mstate[n] |= MS_ACKED;
		acked++;
		if (t >= win_start && t < win_end)
			win_acked++;
	} else {
		send_errors++;
		note_error("send of message %" PRIu64 " answered %d: %.*s", n, status, CLIP(blen, body));
	}
}

#define OP_SESSION (1ull << 40)
#define OP_NAME (2ull << 40)
#define OP_MASK (0xffull << 40)

static void on_setup_answer(uint64_t tag, int status, const char *body, size_t blen)
{
	uint64_t i = tag & ~OP_MASK;
	struct waiter *w = &W[i];

	if ((tag & OP_MASK) == OP_SESSION) {
		if (status != 201 || !json_str(body, blen, "id", w->id, sizeof(w->id)) ||
		    !json_str(body, blen, "token", w->token, sizeof(w->token)) || strlen(w->id) != 16 ||
		    strlen(w->token) != 32) {
			setup_errors++;
			note_error("POST /v1/sessions answered %d: %.*s", status, CLIP(blen, body));
			return;
		}
	} else if (status != 201) {
		setup_errors++;
		if (opt.mode == M_CALLS)
			note_error("PUT /v1/groups/%s (session %" PRIu64 ") answered %d: %.*s", opt.group, i, status,
				   CLIP(blen, body));
		else
			note_error("PUT /v1/names/%s%" PRIu64 " answered %d: %.*s", opt.prefix, i, status,
				   CLIP(blen, body));
		return;
	}
	setup_done++;
}

/* ---------------------------------------------------- one-off requests --- */

static bool oneoff_done;
static int oneoff_status;
static char oneoff_body[65536];
static size_t oneoff_blen;

static void on_oneoff_answer(int status, const char *body, size_t blen)
{
	oneoff_status = status;
	oneoff_blen = blen < sizeof(oneoff_body) - 1 ? blen : sizeof(oneoff_body) - 1;
	memcpy(oneoff_body, body, oneoff_blen);
	oneoff_body[oneoff_blen] = 0;
	oneoff_done = true;
}

static void loop_once(int timeout_ms);

/* One request on a connection of its own, the loop running meanwhile (the
 * other connections are served too); its answer in oneoff_body. The status,
 * or -1 when there was no answer within 10 s. */
static int oneoff(const char *method, const char *path, const char *token, const char *body)
{
	struct conn *c = conn_new(K_ONEOFF, 0);
	uint64_t t0 = now_ns();
	char th[80] = "";

	if (token)
		snprintf(th, sizeof(th), "X-Session-Token: %s\r\n", token);
	oneoff_done = false;
	oneoff_status = -1;
	oneoff_blen = 0;
	oneoff_body[0] = 0;
	conn_request(c, 0,
		     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     method, path, th, body ? strlen(body) : (size_t)0, body ? body : "");
	while (!oneoff_done && c->fd >= 0 && now_ns() - t0 < 10000000000ull)
		loop_once(5);
	conn_free(c);
	return oneoff_done ? oneoff_status : -1;
}

/* GET /v1/stats: the numbers this tool reports. False when it failed. */
struct stats {
	uint64_t streams_open, event_watchers, events;
	uint64_t calls_pending, calls_answered, calls_timed_out, calls_receiver_gone, calls_caller_gone;
};

static bool get_stats(struct stats *s)
{
	const char *p, *end, *calls;

	memset(s, 0, sizeof(*s));
	if (oneoff("GET", "/v1/stats", NULL, NULL) != 200) {
		note_error("GET /v1/stats answered %d: %.200s", oneoff_status, oneoff_body);
		return false;
	}
	end = oneoff_body + oneoff_blen;
	p = oneoff_body;
	if (!json_uint(&p, end, "\"event_watchers\"", &s->event_watchers))
		goto bad;
	p = oneoff_body;
	if (!json_uint(&p, end, "\"streams_open\"", &s->streams_open))
		goto bad;
	p = oneoff_body;
	if (!json_uint(&p, end, "\"events\"", &s->events))
		goto bad;
	calls = memmem(oneoff_body, oneoff_blen, "\"calls\"", 7);
	if (!calls)
		goto bad;
	p = calls;
	if (!json_uint(&p, end, "\"pending\"", &s->calls_pending) ||
	    !json_uint(&p, end, "\"answered\"", &s->calls_answered) ||
	    !json_uint(&p, end, "\"timed_out\"", &s->calls_timed_out) ||
	    !json_uint(&p, end, "\"receiver_gone\"", &s->calls_receiver_gone) ||
	    !json_uint(&p, end, "\"caller_gone\"", &s->calls_caller_gone))
		goto bad;
	return true;
bad:
	note_error("GET /v1/stats: a field is missing in %.300s", oneoff_body);
	return false;
}

/* ------------------------------------------------------- event streams --- */

/* One GET /v1/events (Accept: text/event-stream) held open: its chunked
 * body is decoded, split into SSE blocks (a blank line ends one), and
 * discarded. The first block must be "retry: 1000"; comments (": ...") are
 * keep-alives; every other block is an event. */
struct stream {
	struct conn *c;
	bool head;         /* the response head was read and was right */
	bool chunked;      /* else the body runs until the connection closes */
	bool retry_ok;     /* the first block was "retry: 1000" */
	size_t chunk_left; /* data bytes left in this chunk; 0: a size line comes next */
	bool need_crlf;    /* the CRLF after a chunk's data */
	char *sse;
	size_t slen, scap;
	uint64_t blocks, comments, events;
	bool got_probe;    /* the first event after the probe was armed */
	uint64_t probe_ns; /* its arrival, after the probe's request was queued */
	char probe_sess[17];
	char probe_type[32];
};

static struct stream *S;
static bool probe_armed;
static uint64_t probe_t0;
static uint64_t stream_errors, unexpected_events;

static void stream_fail(struct conn *c, const char *why)
{
	stream_errors++;
	errno = 0;
	conn_failed(c, why);
}

static void stream_block(struct stream *st, const char *b, size_t len, uint64_t t)
{
	const char *ev, *data, *e;

	st->blocks++;
	if (st->blocks == 1) {
		st->retry_ok = len == 11 && !memcmp(b, "retry: 1000", 11);
		if (!st->retry_ok) {
			note_error("event stream %d: the first block is not \"retry: 1000\": %.*s", (int)(st - S),
				   (int)(len > 100 ? 100 : len), b);
			stream_errors++;
		}
		return;
	}
	if (len && b[0] == ':') {
		st->comments++;
		return;
	}
	st->events++;
	if (!probe_armed || st->got_probe) {
		unexpected_events++;
		return;
	}
	st->got_probe = true;
	st->probe_ns = t - probe_t0;
	ev = memmem(b, len, "event: ", 7);
	if (ev) {
		size_t n = 0;
		ev += 7;
		e = memchr(ev, '\n', (size_t)(b + len - ev));
		if (!e)
			e = b + len;
		while (ev + n < e && n + 1 < sizeof(st->probe_type)) {
			st->probe_type[n] = ev[n];
			n++;
		}
		st->probe_type[n] = 0;
	}
	data = memmem(b, len, "data: ", 6);
	if (data)
		json_str(data, (size_t)(b + len - data), "session", st->probe_sess, sizeof(st->probe_sess));
}

static void stream_consume(struct conn *c, uint64_t t)
{
	struct stream *st = &S[c->id];
	size_t off = 0;

	if (!st->head) {
		const char *hend = memmem(c->in, c->ilen, "\r\n\r\n", 4), *v;
		size_t hlen, vlen;
		if (!hend) {
			if (c->ilen > 65536)
				stream_fail(c, "sent a response head over 64 KiB");
			return;
		}
		hlen = (size_t)(hend - c->in);
		if (hlen < 12 || memcmp(c->in, "HTTP/1.", 7) || atoi(c->in + 9) != 200) {
			note_error("event stream %d answered: %.*s", c->id, CLIP(hlen, c->in));
			stream_fail(c, "was not answered 200");
			return;
		}
		if (!header_value(c->in, hlen, "Content-Type", &v, &vlen) || vlen < 17 ||
		    strncasecmp(v, "text/event-stream", 17)) {
			stream_fail(c, "was answered without Content-Type: text/event-stream");
			return;
		}
		st->chunked = header_value(c->in, hlen, "Transfer-Encoding", &v, &vlen) && vlen >= 7 &&
			      !strncasecmp(v, "chunked", 7);
		st->head = true;
		off = hlen + 4;
	}
	while (off < c->ilen) {
		size_t n;
		if (!st->chunked) {
			n = c->ilen - off;
		} else if (st->need_crlf) {
			if (c->ilen - off < 2)
				break;
			if (memcmp(c->in + off, "\r\n", 2)) {
				stream_fail(c, "sent a chunk without its CRLF");
				return;
			}
			off += 2;
			st->need_crlf = false;
			continue;
		} else if (st->chunk_left == 0) {
			const char *eol = memmem(c->in + off, c->ilen - off, "\r\n", 2);
			char *e;
			unsigned long size;
			if (!eol) {
				if (c->ilen - off > 64) {
					stream_fail(c, "sent a bad chunk size line");
					return;
				}
				break;
			}
			size = strtoul(c->in + off, &e, 16);
			if (e == c->in + off || (e != eol && *e != ';')) {
				stream_fail(c, "sent a bad chunk size line");
				return;
			}
			off = (size_t)(eol - c->in) + 2;
			if (size == 0) {
				stream_fail(c, "ended the stream (last chunk)");
				return;
			}
			st->chunk_left = size;
			continue;
		} else {
			n = c->ilen - off < st->chunk_left ? c->ilen - off : st->chunk_left;
			st->chunk_left -= n;
			if (!st->chunk_left)
				st->need_crlf = true;
		}
		if (st->scap - st->slen < n) {
			while (st->scap - st->slen < n)
				st->scap = st->scap ? st->scap * 2 : 256;
			st->sse = xrealloc(st->sse, st->scap);
		}
		memcpy(st->sse + st->slen, c->in + off, n);
		st->slen += n;
		off += n;
	}
	if (off) {
		memmove(c->in, c->in + off, c->ilen - off);
		c->ilen -= off;
	}
	/* whole blocks */
	size_t boff = 0;
	for (;;) {
		const char *e = memmem(st->sse + boff, st->slen - boff, "\n\n", 2);
		if (!e)
			break;
		stream_block(st, st->sse + boff, (size_t)(e - (st->sse + boff)), t);
		boff = (size_t)(e - st->sse) + 2;
	}
	if (boff) {
		memmove(st->sse, st->sse + boff, st->slen - boff);
		st->slen -= boff;
	}
	if (st->slen > 1 << 20)
		stream_fail(c, "sent a block over 1 MiB");
}

/* --------------------------------------------------------------- calls --- */

struct caller {
	struct conn *c;
	uint64_t k;      /* this caller's calls so far */
	uint64_t t_sent; /* when the call in flight was queued */
	bool busy, stopped;
};

static struct caller *CL;
static struct conn **RC; /* one reply connection per responder */
static int *idle_callers, nidle; /* open loop: callers with no call in flight */
static uint64_t calls_issued, calls_answered, calls_in_window, call_errors, call_mismatches;
static uint64_t replies_sent, replies_ok, reply_errors, call_msgs, call_msg_errors;

static void issue_call(int i)
{
	struct caller *cl = &CL[i];
	char body[256];
	int len;

	len = snprintf(body, sizeof(body),
		       "{\"to\":{\"group\":\"%s\",\"pick\":\"round_robin\"},\"body\":{\"c\":%d,\"k\":%" PRIu64
		       "},\"timeout_ms\":%d}",
		       opt.group, i, cl->k, opt.call_timeout_ms);
	conn_request(cl->c, cl->k, "POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
				   "Content-Length: %d\r\n\r\n%s",
		     len, body);
	cl->t_sent = now_ns();
	cl->busy = true;
	calls_issued++;
}

static void on_caller_answer(struct conn *c, int status, const char *body, size_t blen, uint64_t t)
{
	struct caller *cl = &CL[c->id];
	const char *p = body, *end = body + blen;
	uint64_t ci, k;

	cl->busy = false;
	if (status != 200) {
		call_errors++;
		note_error("call %d/%" PRIu64 " answered %d: %.*s (this caller stops)", c->id, cl->k, status,
			   CLIP(blen, body));
		cl->stopped = true;
		return;
	}
	if (!json_uint(&p, end, "\"c\"", &ci) || !json_uint(&p, end, "\"k\"", &k) || ci != (uint64_t)c->id ||
	    k != cl->k || !memmem(body, blen, "\"from\"", 6)) {
		call_mismatches++;
		note_error("call %d/%" PRIu64 " got an answer that is not its own request echoed: %.*s", c->id, cl->k,
			   CLIP(blen, body));
	} else {
		calls_answered++;
		if (t >= win_start && t < win_end) {
			calls_in_window++;
			lat_add(t - cl->t_sent);
		}
	}
	cl->k++;
	if (opt.rate_given) {
		if (!cl->stopped)
			idle_callers[nidle++] = c->id;
	} else if (!sending_stopped && !cl->stopped) {
		issue_call(c->id);
	}
}

/* The end of the JSON value at s (an object, array, string or scalar),
 * or NULL when it does not end before end. */
static const char *json_value_end(const char *s, const char *end)
{
	int depth = 0;
	bool str = false;

	if (s >= end)
		return NULL;
	if (*s != '{' && *s != '[' && *s != '"') {
		while (s < end && *s != ',' && *s != '}' && *s != ']' && !isspace((unsigned char)*s))
			s++;
		return s;
	}
	for (; s < end; s++) {
		if (str) {
			if (*s == '\\')
				s++;
			else if (*s == '"') {
				str = false;
				if (!depth)
					return s + 1;
			}
		} else if (*s == '"') {
			str = true;
		} else if (*s == '{' || *s == '[') {
			depth++;
		} else if (*s == '}' || *s == ']') {
			if (--depth == 0)
				return s + 1;
		}
	}
	return NULL;
}

/* A responder's mailbox answered: every message is a call; its body goes
 * back at once as the reply (pipelined on the responder's reply
 * connection). */
static void take_calls(struct waiter *w, const char *body, size_t blen)
{
	const char *p = body, *end = body + blen;
	int i = (int)(w - W);
	uint64_t seq;

	while (json_uint(&p, end, "\"seq\"", &seq)) {
		const char *k = memmem(p, (size_t)(end - p), "\"body\"", 6), *v0, *v1;
		char id[40];
		if (seq > w->after)
			w->after = seq;
		call_msgs++;
		if (!k) {
			call_msg_errors++;
			break;
		}
		v0 = k + 6;
		while (v0 < end && (isspace((unsigned char)*v0) || *v0 == ':'))
			v0++;
		v1 = json_value_end(v0, end);
		if (!v1 || !json_str(v1, (size_t)(end - v1), "reply_to", id, sizeof(id)) || strlen(id) != 32) {
			call_msg_errors++;
			note_error("responder %s: a message without a body or a 32-hex reply_to: %.*s", w->id,
				   CLIP(blen, body));
			break;
		}
		p = v1;
		if (RC[i]->fd < 0)
			continue;
		conn_request(RC[i], 0,
			     "POST /v1/replies/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session-Token: %s\r\n"
			     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"body\":%.*s}",
			     id, w->token, (int)(v1 - v0) + 9, (int)(v1 - v0), v0);
		replies_sent++;
	}
}

static void on_replier_answer(uint64_t tag, int status, const char *body, size_t blen)
{
	(void)tag;
	if (status == 204) {
		replies_ok++;
		return;
	}
	reply_errors++;
	note_error("POST /v1/replies answered %d: %.*s", status, CLIP(blen, body));
}

static void conn_readable(struct conn *c)
{
	for (;;) {
		ssize_t n;
		if (c->icap - c->ilen < 4096) {
			c->icap = c->icap ? c->icap * 2 : 8192;
			c->in = xrealloc(c->in, c->icap);
		}
		n = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, 0);
		if (n > 0) {
			c->ilen += (size_t)n;
			if ((size_t)n < c->icap - c->ilen + (size_t)n)
				break; /* short read: drained for now */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		errno = n == 0 ? 0 : errno;
		conn_failed(c, n == 0 ? "closed by the server" : "read failed");
		return;
	}
	uint64_t t = now_ns();
	size_t off = 0;
	if (c->kind == K_STREAM) {
		stream_consume(c, t);
		return;
	}
	while (off < c->ilen) {
		int status = 0;
		const char *body = NULL;
		size_t blen = 0, used = 0;
		bool close_after = false;
		int r = parse_response(c->in + off, c->ilen - off, &status, &body, &blen, &used, &close_after);
		if (r == 0)
			break;
		if (r < 0 || c->tcount == 0) {
			errno = 0;
			conn_failed(c, r < 0 ? "sent an answer that msgload cannot parse" : "sent an unasked-for answer");
			return;
		}
		uint64_t tag = c->tags[c->thead];
		c->thead = (c->thead + 1) % c->tcap;
		c->tcount--;
		if (c->kind == K_WAITER)
			on_waiter_answer(&W[c->id], status, body, blen, t);
		else if (c->kind == K_SENDER)
			on_send_answer(tag, status, body, blen, t);
		else if (c->kind == K_CALLER)
			on_caller_answer(c, status, body, blen, t);
		else if (c->kind == K_REPLIER)
			on_replier_answer(tag, status, body, blen);
		else if (c->kind == K_ONEOFF)
			on_oneoff_answer(status, body, blen);
		else
			on_setup_answer(tag, status, body, blen);
		off += used;
		if (close_after) {
			errno = 0;
			conn_failed(c, "was closed by the server (Connection: close)");
			return;
		}
		if (c->fd < 0)
			return;
	}
	if (off) {
		memmove(c->in, c->in + off, c->ilen - off);
		c->ilen -= off;
	}
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (c->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t sl = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
		c->connecting = false;
		connecting_now--;
		if (err) {
			errno = err;
			conn_failed(c, "could not connect");
			return;
		}
		c->open = true;
		if (c->kind == K_WAITER && poll_on_connect && !W[c->id].polling)
			poll_now(&W[c->id]);
		mark_dirty(c);
	}
	if (c->open && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		conn_readable(c);
	if (c->open && (ev & EPOLLOUT))
		mark_dirty(c);
}

/* One turn of the loop: writes what is queued, waits up to timeout_ms for
 * events, handles them, writes again. */
static void loop_once(int timeout_ms)
{
	struct epoll_event evs[256];
	int n, i;

	flush_dirty();
	n = epoll_wait(epfd, evs, 256, timeout_ms);
	if (n < 0 && errno != EINTR)
		fatal("epoll_wait: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		if (evs[i].data.ptr) {
			conn_event(evs[i].data.ptr, evs[i].events);
		} else {
			uint64_t x;
			if (read(tfd, &x, sizeof(x)) < 0) {
				/* not yet expired: nothing to read */
			}
		}
	}
	flush_dirty();
	if (now_ns() > deadline_ns)
		fatal("time limit of %.0f s reached (--timeout)", opt.timeout);
}

/* --------------------------------------------------------------- phases --- */

static void check_alive(const char *when)
{
	if (!server_alive())
		fatal("the server (pid %d) is gone %s", opt.pid, when);
}

/* Creates the sessions and their names over pipelined setup connections. */
static void setup(void)
{
	int nc = opt.setup_conns, i, stage;
	uint64_t t0 = now_ns();

	setup_c = xrealloc(NULL, (size_t)nc * sizeof(*setup_c));
	for (i = 0; i < nc; i++)
		setup_c[i] = conn_new(K_SETUP, i);
	for (stage = 0; stage < 2; stage++) {
		uint64_t next = 0, want = (uint64_t)opt.waiters;
		setup_done = 0;
		while (setup_done + setup_errors < want) {
			for (i = 0; i < nc && next < want; i++) {
				struct conn *c = setup_c[i];
				if (c->fd < 0)
					fatal("a setup connection failed");
				if (c->connecting)
					continue;
				while (c->tcount < 64 && next < want) {
					struct waiter *w = &W[next];
					if (stage == 0)
						conn_request(c, OP_SESSION | next,
							     "POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
							     "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n"
							     "{\"ttl\":3600}");
					else if (opt.mode == M_CALLS)
						conn_request(c, OP_NAME | next,
							     "PUT /v1/groups/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
							     "X-Session-Token: %s\r\nContent-Length: 0\r\n\r\n",
							     opt.group, w->token);
					else
						conn_request(c, OP_NAME | next,
							     "PUT /v1/names/%s%" PRIu64 " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
							     "X-Session-Token: %s\r\nContent-Length: 0\r\n\r\n",
							     opt.prefix, next, w->token);
					next++;
				}
			}
			loop_once(10);
			if (setup_errors)
				fatal("setup failed: %" PRIu64 " of the %s requests got wrong answers (above)", setup_errors,
				      stage == 0 ? "POST /v1/sessions" : "PUT /v1/names");
		}
	}
	for (i = 0; i < nc; i++)
		conn_free(setup_c[i]);
	free(setup_c);
	if (opt.mode == M_CALLS)
		printf("msgload: setup: %d sessions (ttl 3600) in group %s in %.2f s\n", opt.waiters, opt.group,
		       (double)(now_ns() - t0) / 1e9);
	else
		printf("msgload: setup: %d sessions (ttl 3600) with names %s0..%s%d in %.2f s\n", opt.waiters,
		       opt.prefix, opt.prefix, opt.waiters - 1, (double)(now_ns() - t0) / 1e9);
	fflush(stdout);
}

/* Opens n connections of a kind, at most 256 connecting at a time; first(i, c)
 * keeps connection i and queues its first request, if any. */
static void open_conns(enum kind kind, int n, void (*first)(int i, struct conn *c))
{
	int i = 0;

	while (i < n || connecting_now) {
		while (i < n && connecting_now < 256) {
			first(i, conn_new(kind, i));
			i++;
		}
		loop_once(10);
		if (conn_failures)
			fatal("%ld connections failed while opening the %s connections", conn_failures, kind_name[kind]);
	}
}

/* A waiter sends its first poll as soon as it is connected (when
 * poll_on_connect). */
static void waiter_first(int i, struct conn *c)
{
	W[i].c = c;
	if (c->open && poll_on_connect)
		poll_now(&W[i]);
}

static void open_waiters(void)
{
	open_conns(K_WAITER, opt.waiters, waiter_first);
}

static void sender_first(int i, struct conn *c)
{
	send_c[i] = c;
}

static void open_senders(void)
{
	nsend_c = opt.senders;
	send_c = xrealloc(NULL, (size_t)nsend_c * sizeof(*send_c));
	open_conns(K_SENDER, nsend_c, sender_first);
}

static bool all_flushed(void)
{
	int i;

	for (i = 0; i < opt.waiters; i++)
		if (W[i].c && W[i].c->open && W[i].c->ooff < W[i].c->olen)
			return false;
	return true;
}

/* Runs the loop until every waiter's poll is written and the server has
 * settled: its CPU time unchanged over 3 checks 100 ms apart and no unread
 * input on its sockets (so each poll has been read and parked). Without
 * --pid, waits 1 s. Returns a description of how it was established. */
static const char *settle(double max_s)
{
	uint64_t t0 = now_ns(), next = t0;
	long long last = -2;
	int still = 0;
	long est = 0, unread = 0;

	if (opt.pid <= 0) {
		while (now_ns() - t0 < 1000000000ull)
			loop_once(50);
		return "waited 1 s (no --pid)";
	}
	for (;;) {
		loop_once(20);
		if (now_ns() < next)
			continue;
		next = now_ns() + 100000000ull;
		check_alive("while the polls were being parked");
		long long cpu = server_cpu_ticks();
		int sk = server_sockets(&est, &unread);
		bool quiet = cpu == last && (sk < 0 || unread == 0) && all_flushed() && !connecting_now;
		last = cpu;
		still = quiet ? still + 1 : 0;
		if (still >= 3)
			return sk < 0 ? "server CPU idle for 300 ms (no /proc/net/tcp)"
				      : "server CPU idle for 300 ms, no unread input on its sockets";
		if ((double)(now_ns() - t0) / 1e9 > max_s)
			fatal("the server did not settle within %.0f s (%ld sockets, %ld with unread input)", max_s,
			      est, unread);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(double p)
{
	uint64_t i;

	if (!nlat)
		return -1;
	i = (uint64_t)(p / 100.0 * (double)nlat);
	if (i >= nlat)
		i = nlat - 1;
	return (double)lat[i] / 1e6;
}

/* Percentiles of the latencies (sorted here), in ms; -1 when there are none. */
struct pcts {
	double p50, p90, p99, p999, max;
};

static struct pcts lat_pcts(void)
{
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	return (struct pcts){ pct_ms(50), pct_ms(90), pct_ms(99), pct_ms(99.9),
			      nlat ? (double)lat[nlat - 1] / 1e6 : -1 };
}

static double client_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* The sender connection with the fewest requests in flight, if under the
 * pipeline depth. */
static struct conn *free_sender(void)
{
	static int rr;
	struct conn *best = NULL;
	int i;

	for (i = 0; i < nsend_c; i++) {
		struct conn *c = send_c[(rr + i) % nsend_c];
		if (c->open && c->tcount < (size_t)opt.pipeline && (!best || c->tcount < best->tcount))
			best = c;
	}
	rr++;
	return best;
}

/* Requests written and not answered on the open connections of cs[0..n). */
static size_t in_flight(struct conn **cs, int n)
{
	size_t sum = 0;
	int i;

	for (i = 0; i < n; i++)
		if (cs[i]->fd >= 0)
			sum += cs[i]->tcount;
	return sum;
}

/* After the sending stops: until every send is answered and every
 * acknowledged message received, or drain_s passes. */
static double drain(double drain_s)
{
	uint64_t t0 = now_ns();

	sending_stopped = true;
	while ((double)(now_ns() - t0) / 1e9 < drain_s) {
		if (in_flight(send_c, nsend_c) == 0 && received >= acked)
			break;
		loop_once(10);
	}
	return (double)(now_ns() - t0) / 1e9;
}

static uint64_t count_lost(void)
{
	uint64_t n, lost = 0;

	for (n = 0; n < issued; n++)
		if ((mstate[n] & MS_ACKED) && !(mstate[n] & MS_RECEIVED))
			lost++;
	return lost;
}

static int report(double secs_sent, double drain_s, double cpu_server, double cpu_client)
{
	uint64_t lost = count_lost();
	struct pcts q = lat_pcts();
	int rc;

	double rate_sent, rate_recv;
	if (opt.mode == M_MAXRATE) {
		rate_sent = (double)win_acked / opt.seconds;
		rate_recv = (double)win_received / opt.seconds;
	} else {
		rate_sent = (double)acked / secs_sent;
		rate_recv = (double)received / secs_sent;
	}
	printf("msgload: messages: written %" PRIu64 ", sent (202 delivered 1) %" PRIu64 ", received %" PRIu64
	       ", lost %" PRIu64 ", duplicates %" PRIu64 ", send errors %" PRIu64 ", poll errors %" PRIu64
	       ", unknown %" PRIu64 ", connection failures %ld\n",
	       issued, acked, received, lost, duplicates, send_errors, poll_errors, unknown_msgs, conn_failures);
	printf("msgload: rate: sent %.0f/s, received %.0f/s (%s); drain %.2f s; poll answers %" PRIu64
	       " (%.2f messages each)\n",
	       rate_sent, rate_recv,
	       opt.mode == M_MAXRATE ? "in the measured window" : "over the sending period", drain_s, poll_answers,
	       poll_answers ? (double)received / (double)poll_answers : 0.0);
	printf("msgload: latency send->receive (%" PRIu64 " messages): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, "
	       "p99.9 %.3f ms, max %.3f ms\n",
	       nlat, q.p50, q.p90, q.p99, q.p999, q.max);
	if (cpu_server >= 0)
		printf("msgload: CPU while sending: server %.0f%%, msgload %.0f%% (of one core); time spent runnable "
		       "but waiting for a CPU (schedstat): server %.1f ms, msgload %.1f ms\n",
		       cpu_server * 100, cpu_client * 100, rq_server_ms, rq_client_ms);
	else
		printf("msgload: CPU while sending: msgload %.0f%% of one core (server unknown: no --pid)\n",
		       cpu_client * 100);
	rc = (lost || duplicates || send_errors || poll_errors || unknown_msgs || conn_failures) ? 1 : 0;
	/* the server's CPU per message: its CPU time over the period measured,
	 * by the messages sent in it */
	double secs = opt.mode == M_MAXRATE ? opt.seconds : secs_sent;
	double msgs = opt.mode == M_MAXRATE ? (double)win_received : (double)acked;
	double us_per_msg = cpu_server >= 0 && msgs > 0 ? cpu_server * secs / msgs * 1e6 : -1;
	if (us_per_msg >= 0)
		printf("msgload: server CPU per message: %.1f us\n", us_per_msg);
	printf("RESULT mode=%s measured=1 clean=%d waiters=%d senders=%d target_rate=%.0f window=%ld written=%" PRIu64
	       " sent=%" PRIu64 " received=%" PRIu64 " lost=%" PRIu64 " duplicates=%" PRIu64 " send_errors=%" PRIu64
	       " poll_errors=%" PRIu64 " conn_failures=%ld rate_sent=%.0f rate_received=%.0f p50_ms=%.3f p99_ms=%.3f"
	       " max_ms=%.3f msgs_per_answer=%.2f cpu_server=%.0f cpu_client=%.0f send_s=%.2f drain_s=%.2f"
	       " server_cpu_wait_ms=%.0f client_cpu_wait_ms=%.0f server_us_per_msg=%.1f\n",
	       mode_name(), !rc, opt.waiters, opt.senders, opt.mode == M_LATENCY ? opt.rate : 0,
	       opt.mode == M_MAXRATE ? opt.window : 0, issued, acked, received, lost, duplicates, send_errors,
	       poll_errors, conn_failures, rate_sent, rate_recv, q.p50, q.p99, q.max,
	       poll_answers ? (double)received / (double)poll_answers : 0.0, cpu_server * 100, cpu_client * 100,
	       secs_sent, drain_s, rq_server_ms, rq_client_ms, us_per_msg);
	return rc;
}

/* CPU of the server and msgload between two points, as fractions of a core. */
struct cpu_mark {
	uint64_t t;
	long long server;
	double client;
	long long server_rq, client_rq; /* ns spent runnable but waiting for a CPU; -1 unknown */
};

/* The second field of /proc/PID/schedstat: time spent waiting on a run
 * queue, in ns. */
static long long runqueue_wait_ns(const char *path)
{
	unsigned long long run, wait;
	FILE *f = fopen(path, "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "%llu %llu", &run, &wait);
	fclose(f);
	return n == 2 ? (long long)wait : -1;
}

static struct cpu_mark cpu_mark(void)
{
	char path[64];
	struct cpu_mark m = { now_ns(), server_cpu_ticks(), client_cpu_s(), -1, -1 };

	if (opt.pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/schedstat", opt.pid);
		m.server_rq = runqueue_wait_ns(path);
	}
	m.client_rq = runqueue_wait_ns("/proc/self/schedstat");
	return m;
}


static void cpu_between(struct cpu_mark a, struct cpu_mark b, double *server, double *client)
{
	double dt = (double)(b.t - a.t) / 1e9;

	*server = (a.server >= 0 && b.server >= 0 && dt > 0) ? (double)(b.server - a.server) / (double)clk_tck / dt
							      : -1;
	*client = dt > 0 ? (b.client - a.client) / dt : 0;
	rq_server_ms = a.server_rq >= 0 && b.server_rq >= 0 ? (double)(b.server_rq - a.server_rq) / 1e6 : -1;
	rq_client_ms = a.client_rq >= 0 && b.client_rq >= 0 ? (double)(b.client_rq - a.client_rq) / 1e6 : -1;
}

/* Open loop: item n (a message, a call) of total is due at t0 + n / --rate;
 * max_lag is the most an item went out behind its time. */
struct pace {
	uint64_t t0, total, max_lag;
};

static uint64_t pace_at(const struct pace *p, uint64_t n)
{
	return p->t0 + (uint64_t)((double)n * 1e9 / opt.rate);
}

/* How many items are due by now. */
static uint64_t pace_due(const struct pace *p, uint64_t now)
{
	uint64_t due = (uint64_t)((double)(now - p->t0) * opt.rate / 1e9) + 1;

	return due > p->total ? p->total : due;
}

/* Item n goes out now. */
static void pace_lag(struct pace *p, uint64_t now, uint64_t n)
{
	uint64_t lag = now - pace_at(p, n);

	if ((int64_t)lag > 0 && lag > p->max_lag)
		p->max_lag = lag;
}

/* One turn of the loop, sleeping until item next is due if it is not yet
 * (timerfd: ns precision). */
static void pace_wait(const struct pace *p, uint64_t next)
{
	uint64_t t = pace_at(p, next);

	if (next < p->total && t > now_ns()) {
		struct itimerspec its = { .it_value = { .tv_sec = (time_t)(t / 1000000000u),
							.tv_nsec = (long)(t % 1000000000u) } };
		timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		loop_once(-1);
	} else {
		loop_once(0);
	}
}

/* Closed loop: the measured window opens --warmup s after t0 and lasts
 * --seconds s. */
static void window_set(uint64_t t0)
{
	win_start = t0 + (uint64_t)(opt.warmup * 1e9);
	win_end = win_start + (uint64_t)(opt.seconds * 1e9);
}

/* At each turn of a closed loop: when the window opens, the CPU mark in *m0
 * (m0->t is 0 until then) and the latencies so far in win_nlat0. False once
 * the window has ended. */
static bool window_turn(struct cpu_mark *m0)
{
	uint64_t now = now_ns();

	if (!m0->t && now >= win_start) {
		*m0 = cpu_mark();
		win_nlat0 = nlat;
	}
	return now < win_end;
}

static int run_latency(void)
{
	struct pace pc = { 0, (uint64_t)(opt.rate * opt.seconds + 0.5), 0 };
	uint64_t behind = 0, tend;
	double cs, cc;

	printf("msgload: latency: %d waiters (wait=%d), %.0f messages/s for %.1f s over %d sender connections "
	       "(pipeline <= %d)\n",
	       opt.waiters, opt.wait_s, opt.rate, opt.seconds, opt.senders, opt.pipeline);
	fflush(stdout);
	pc.t0 = now_ns();
	struct cpu_mark m0 = cpu_mark();
	while (issued < pc.total) {
		uint64_t now = now_ns(), due = pace_due(&pc, now);
		bool full = false;
		while (issued < due) {
			struct conn *c = free_sender();
			if (!c) {
				full = true;
				break;
			}
			pace_lag(&pc, now, issued);
			send_message(c, issued);
		}
		if (full) {
			/* every sender slot is taken: wait for an answer */
			behind++;
			loop_once(1);
			continue;
		}
		pace_wait(&pc, issued);
	}
	tend = now_ns();
	struct cpu_mark m1 = cpu_mark();
	cpu_between(m0, m1, &cs, &cc);
	double sent_s = (double)(tend - pc.t0) / 1e9;
	double dr = drain(10);
	printf("msgload: sending took %.2f s for %" PRIu64 " messages (schedule %.2f s); most behind schedule "
	       "%.3f ms; all sender slots busy %" PRIu64 " times\n",
	       sent_s, pc.total, opt.seconds, (double)pc.max_lag / 1e6, behind);
	check_alive("after the run");
	return report(sent_s, dr, cs, cc);
}

static int run_maxrate(void)
{
	double cs, cc;

	printf("msgload: maxrate: %d waiters (wait=%d), as fast as possible with at most %ld messages in flight, "
	       "%d sender connections (pipeline <= %d), %.1f s warm-up then %.1f s measured\n",
	       opt.waiters, opt.wait_s, opt.window, opt.senders, opt.pipeline, opt.warmup, opt.seconds);
	fflush(stdout);
	window_set(now_ns());
	struct cpu_mark m0 = { 0, -1, 0, -1, -1 }, m1;
	while (window_turn(&m0)) {
		while ((long)(issued - received - send_errors) < opt.window) {
			struct conn *c = free_sender();
			if (!c)
				break;
			send_message(c, issued);
		}
		loop_once(1);
	}
	m1 = cpu_mark();
	cpu_between(m0, m1, &cs, &cc);
	/* latencies of the measured window only */
	uint64_t nwin = nlat - win_nlat0;
	memmove(lat, lat + win_nlat0, nwin * sizeof(*lat));
	nlat = nwin;
	double dr = drain(10);
	nlat = nwin; /* drained messages' latency is not part of the window */
	check_alive("after the run");
	return report(opt.seconds, dr, cs, cc);
}

static int run_memory(void)
{
	long before, mid, after, est = 0, unread = 0;
	const char *how;
	uint64_t t0;
	int rc, i;

	if (opt.pid <= 0)
		fatal("memory mode needs --pid of the server");
	how = settle(30);
	before = server_rss_kb();
	printf("msgload: memory: server VmRSS %ld kB with %d sessions and names, no waiter connection (%s)\n", before,
	       opt.waiters, how);
	/* The connections first, idle, then a long-poll on each: the two
	 * steps of the cost. */
	expect_answers = false;
	poll_on_connect = false;
	t0 = now_ns();
	open_waiters();
	how = settle(60);
	mid = server_rss_kb();
	server_sockets(&est, &unread);
	printf("msgload: memory: %d idle keep-alive connections open in %.2f s (%s; %ld server sockets); server "
	       "VmRSS %ld kB\n",
	       opt.waiters, (double)(now_ns() - t0) / 1e9, how, est, mid);
	t0 = now_ns();
	for (i = 0; i < opt.waiters; i++)
		if (W[i].c->open)
			poll_now(&W[i]);
	how = settle(60);
	after = server_rss_kb();
	server_sockets(&est, &unread);
	printf("msgload: memory: %d long-polls (wait=%d) parked in %.2f s (%s; %ld server sockets); server VmRSS %ld "
	       "kB\n",
	       opt.waiters, opt.wait_s, (double)(now_ns() - t0) / 1e9, how, est, after);
	if (early_answers)
		note_error("%" PRIu64 " long-polls were answered before any message was sent", early_answers);
	expect_answers = true;
	/* Check that they were pending: one message to every name. */
	open_senders();
	uint64_t total = (uint64_t)opt.waiters;
	t0 = now_ns();
	while (issued < total) {
		struct conn *c;
		while (issued < total && (c = free_sender()))
			send_message(c, issued);
		loop_once(1);
	}
	drain(60);
	uint64_t lost = count_lost();
	uint64_t answered = 0;
	for (i = 0; i < opt.waiters; i++)
		answered += W[i].answers ? 1 : 0;
	double check_s = (double)(now_ns() - t0) / 1e9;
	printf("msgload: memory: check: %" PRIu64 " messages sent, %" PRIu64 " received by %" PRIu64
	       " waiters in %.2f s (%.0f/s), lost %" PRIu64 ", duplicates %" PRIu64 ", early answers %" PRIu64 "\n",
	       acked, received, answered, check_s, (double)received / check_s, lost, duplicates, early_answers);
	rc = (lost || duplicates || send_errors || poll_errors || early_answers || conn_failures || unknown_msgs ||
	      received != total || before < 0 || mid < 0 || after < 0)
		     ? 1
		     : 0;
	double per = (double)(after - before) * 1024.0 / opt.waiters;
	double per_conn = (double)(mid - before) * 1024.0 / opt.waiters;
	double per_req = (double)(after - mid) * 1024.0 / opt.waiters;
	printf("msgload: memory: %.0f bytes of server VmRSS per pending long-poll with its connection "
	       "(%.0f the idle connection, %.0f the parked request)\n",
	       per, per_conn, per_req);
	printf("RESULT mode=memory measured=1 clean=%d waiters=%d rss_before_kb=%ld rss_conns_kb=%ld rss_after_kb=%ld "
	       "per_poll_bytes=%.0f per_conn_bytes=%.0f per_request_bytes=%.0f sent=%" PRIu64 " received=%" PRIu64
	       " lost=%" PRIu64 " duplicates=%" PRIu64 " early_answers=%" PRIu64 " send_errors=%" PRIu64
	       " poll_errors=%" PRIu64 " conn_failures=%ld check_rate=%.0f\n",
	       !rc, opt.waiters, before, mid, after, per, per_conn, per_req, acked, received, lost, duplicates,
	       early_answers, send_errors, poll_errors, conn_failures, (double)received / check_s);
	return rc;
}

static volatile sig_atomic_t go_signal;

static void on_usr1(int sig)
{
	(void)sig;
	go_signal = 1;
}

static void stream_first(int i, struct conn *c)
{
	S[i].c = c;
	conn_request(c, 0, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
}

/* The streams still open; with ready, only those whose first block was
 * "retry: 1000". */
static int streams_open(bool ready)
{
	int i, n = 0;

	for (i = 0; i < opt.streams; i++)
		n += S[i].c->fd >= 0 && (!ready || S[i].retry_ok);
	return n;
}

/* Streams: the cost of --streams idle event streams, and that one change
 * reaches them all. VmRSS before them, with them open and idle; then READY
 * and the streams are held (read and discarded) until SIGUSR1 or --hold s,
 * while the caller measures something else; then one registry change
 * (POST /v1/sessions) and how long it takes to reach each stream. */
static int run_streams(void)
{
	long before, open_kb, held_kb;
	struct stats s0, s1, s2;
	uint64_t t0, *fan;
	int i, ready, alive, reached = 0, wrong = 0, nfan = 0;
	bool stats_ok;
	const char *how;
	char probe_id[17] = "";
	struct sigaction sa;
	double open_s, hold_s;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1; /* no SA_RESTART: epoll_wait returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	S = calloc((size_t)opt.streams, sizeof(*S));
	if (!S)
		fatal("out of memory");
	how = settle(30);
	before = server_rss_kb();
	stats_ok = get_stats(&s0);
	printf("msgload: streams: server VmRSS %ld kB before any stream (%s); streams_open %" PRIu64 "\n", before,
	       how, s0.streams_open);
	t0 = now_ns();
	open_conns(K_STREAM, opt.streams, stream_first);
	while (streams_open(true) + (opt.streams - streams_open(false)) < opt.streams && now_ns() - t0 < 30000000000ull)
		loop_once(10);
	open_s = (double)(now_ns() - t0) / 1e9;
	how = settle(60);
	open_kb = server_rss_kb();
	stats_ok = get_stats(&s1) && stats_ok;
	ready = streams_open(true);
	printf("msgload: streams: %d of %d streams open with \"retry: 1000\" first in %.2f s (%s); server VmRSS %ld "
	       "kB (+%ld kB, %.0f bytes per stream); stats: streams_open %" PRIu64 ", event_watchers %" PRIu64 "\n",
	       ready, opt.streams, open_s, how, open_kb, open_kb - before,
	       (double)(open_kb - before) * 1024.0 / (ready ? ready : 1), s1.streams_open, s1.event_watchers);
	printf("msgload: READY %d streams open and idle; holding them until SIGUSR1 (at most %.0f s)\n", ready,
	       opt.hold);
	t0 = now_ns();
	while (!go_signal && (double)(now_ns() - t0) / 1e9 < opt.hold) {
		loop_once(100);
		check_alive("while the streams were held");
	}
	hold_s = (double)(now_ns() - t0) / 1e9;
	held_kb = server_rss_kb();
	alive = streams_open(false);
	printf("msgload: streams: held %.1f s (%s); %d still open; server VmRSS %ld kB; %" PRIu64
	       " events arrived meanwhile (expected none)\n",
	       hold_s, go_signal ? "SIGUSR1" : "--hold reached", alive, held_kb, unexpected_events);
	/* One change, which every stream must see. */
	probe_armed = true;
	probe_t0 = now_ns();
	if (oneoff("POST", "/v1/sessions", NULL, "{\"ttl\":60,\"label\":\"msgload-probe\"}") != 201 ||
	    !json_str(oneoff_body, oneoff_blen, "id", probe_id, sizeof(probe_id)))
		note_error("the probe POST /v1/sessions answered %d: %.200s", oneoff_status, oneoff_body);
	t0 = now_ns();
	for (;;) {
		int got = 0;
		for (i = 0; i < opt.streams; i++)
			got += S[i].got_probe || S[i].c->fd < 0;
		if (got == opt.streams || now_ns() - t0 > 10000000000ull)
			break;
		loop_once(5);
	}
	/* a moment for anything unexpected after it */
	t0 = now_ns();
	while (now_ns() - t0 < 200000000ull)
		loop_once(20);
	fan = xrealloc(NULL, (size_t)opt.streams * sizeof(*fan));
	for (i = 0; i < opt.streams; i++) {
		if (!S[i].got_probe)
			continue;
		if (strcmp(S[i].probe_sess, probe_id) || strcmp(S[i].probe_type, "session_created")) {
			wrong++;
			if (wrong <= 3)
				note_error("stream %d: the first event after the probe is %s of session %s, not "
					   "session_created of %s",
					   i, S[i].probe_type, S[i].probe_sess, probe_id);
			continue;
		}
		reached++;
		fan[nfan++] = S[i].probe_ns;
	}
	qsort(fan, (size_t)nfan, sizeof(*fan), cmp_u64);
	double f50 = nfan ? (double)fan[nfan / 2] / 1e6 : -1, fmax = nfan ? (double)fan[nfan - 1] / 1e6 : -1;
	stats_ok = get_stats(&s2) && stats_ok;
	alive = streams_open(false);
	printf("msgload: streams: one change (session_created %s) reached %d of %d streams (%d another event); "
	       "after the POST was queued: p50 %.2f ms, last %.2f ms; %d streams open; stats: streams_open %" PRIu64
	       "\n",
	       probe_id, reached, opt.streams, wrong, f50, fmax, alive, s2.streams_open);
	free(fan);
	int rc = (ready != opt.streams || reached != opt.streams || alive != opt.streams || stream_errors ||
		  unexpected_events || wrong || conn_failures || !stats_ok || before < 0 || open_kb < 0 ||
		  s1.streams_open < (uint64_t)opt.streams)
			 ? 1
			 : 0;
	printf("RESULT mode=streams measured=1 clean=%d streams=%d ready=%d open_s=%.2f rss_before_kb=%ld "
	       "rss_open_kb=%ld rss_held_kb=%ld delta_kb=%ld per_stream_bytes=%.0f streams_open_stat=%" PRIu64
	       " held_s=%.1f signalled=%d unexpected_events=%" PRIu64 " reached=%d wrong=%d fanout_p50_ms=%.2f"
	       " fanout_max_ms=%.2f alive=%d stream_errors=%" PRIu64 " conn_failures=%ld\n",
	       !rc, opt.streams, ready, open_s, before, open_kb, held_kb, open_kb - before,
	       (double)(open_kb - before) * 1024.0 / (ready ? ready : 1), s1.streams_open, hold_s, (int)go_signal,
	       unexpected_events, reached, wrong, f50, fmax, alive, stream_errors, conn_failures);
	for (i = 0; i < opt.streams; i++) {
		conn_free(S[i].c);
		free(S[i].sse);
	}
	free(S);
	return rc;
}

static struct conn **caller_c; /* CL[i].c */

static void caller_first(int i, struct conn *c)
{
	CL[i].c = caller_c[i] = c;
}

static void replier_first(int i, struct conn *c)
{
	RC[i] = c;
}

/* Calls: --callers connections, each with one POST /v1/call in flight at a
 * time to the group of --responders sessions (pick round_robin); each
 * responder long-polls its mailbox and replies at once, echoing the body,
 * and each caller checks that the answer is its own request. Counted over
 * --seconds after --warmup; then the calls in flight are let finish, and
 * /v1/stats must show none pending. */
static int run_calls(void)
{
	struct stats st;
	uint64_t t0;
	double cs = -1, cc = 0, dr;
	bool stats_ok;
	int i, rc;
	const char *how;

	CL = calloc((size_t)opt.callers, sizeof(*CL));
	caller_c = calloc((size_t)opt.callers, sizeof(*caller_c));
	RC = calloc((size_t)opt.responders, sizeof(*RC));
	if (!CL || !caller_c || !RC)
		fatal("out of memory");
	setup();
	open_conns(K_REPLIER, opt.responders, replier_first);
	open_waiters();
	open_conns(K_CALLER, opt.callers, caller_first);
	how = settle(30);
	printf("msgload: calls: %d responders polling (wait=%d, max=1000) with a reply connection each, %d caller "
	       "connections open (%s)\n",
	       opt.responders, opt.wait_s, opt.callers, how);
	if (poll_answers)
		note_error("%" PRIu64 " responder polls were answered before any call", poll_answers);
	printf("msgload: calls: %d callers, each with at most one call in flight: POST /v1/call {\"to\":{\"group\":"
	       "\"%s\",\"pick\":\"round_robin\"},\"body\":{\"c\":i,\"k\":n},\"timeout_ms\":%d}; ",
	       opt.callers, opt.group, opt.call_timeout_ms);
	if (opt.rate_given)
		printf("open loop: %.0f calls/s for %.1f s\n", opt.rate, opt.seconds);
	else
		printf("closed loop (a caller calls again once answered): %.1f s warm-up then %.1f s measured\n",
		       opt.warmup, opt.seconds);
	window_set(now_ns());
	struct cpu_mark m0 = { 0, -1, 0, -1, -1 }, m1;
	struct pace pc = { 0, 0, 0 };
	uint64_t behind = 0;
	double send_s = 0;
	if (opt.rate_given) {
		/* Open loop: call n is due at t0 + n / rate, made by an idle
		 * caller; the round trip counts from when it is made. A server
		 * that cannot keep up gets until 1.5 times the schedule. */
		pc.total = (uint64_t)(opt.rate * opt.seconds + 0.5);
		uint64_t give_up = (uint64_t)(opt.seconds * 1.5e9);
		idle_callers = xrealloc(NULL, (size_t)opt.callers * sizeof(*idle_callers));
		for (i = opt.callers - 1; i >= 0; i--)
			if (CL[i].c->open)
				idle_callers[nidle++] = i;
		pc.t0 = now_ns();
		win_start = pc.t0;
		win_end = UINT64_MAX;
		m0 = cpu_mark();
		while (calls_issued < pc.total) {
			uint64_t now = now_ns();
			if (now - pc.t0 > give_up)
				break;
			uint64_t due = pace_due(&pc, now);
			while (calls_issued < due && nidle) {
				pace_lag(&pc, now, calls_issued);
				issue_call(idle_callers[--nidle]);
			}
			if (calls_issued < due) {
				behind++; /* every caller has a call in flight */
				loop_once(1);
				continue;
			}
			pace_wait(&pc, calls_issued);
		}
		send_s = (double)(now_ns() - pc.t0) / 1e9;
	} else {
		for (i = 0; i < opt.callers; i++)
			if (CL[i].c->open)
				issue_call(i);
		while (window_turn(&m0))
			loop_once(1);
	}
	m1 = cpu_mark();
	cpu_between(m0, m1, &cs, &cc);
	/* Let what is in flight finish: calls, then replies. */
	sending_stopped = true;
	t0 = now_ns();
	while ((in_flight(caller_c, opt.callers) || in_flight(RC, opt.responders)) &&
	       (double)(now_ns() - t0) / 1e9 < (double)opt.call_timeout_ms / 1000 + 5)
		loop_once(10);
	dr = (double)(now_ns() - t0) / 1e9;
	size_t left = in_flight(caller_c, opt.callers), rleft = in_flight(RC, opt.responders);
	check_alive("after the calls");
	stats_ok = get_stats(&st);

	struct pcts q = lat_pcts();
	double rate = opt.rate_given ? (double)calls_in_window / send_s : (double)calls_in_window / opt.seconds;
	/* the server's CPU per call, whatever share of a CPU it got */
	double win_s = opt.rate_given ? send_s : opt.seconds;
	double us_per_call = cs >= 0 && calls_in_window ? cs * win_s * 1e6 / (double)calls_in_window : -1;
	if (opt.rate_given)
		printf("msgload: calls: open loop: %" PRIu64 " of %" PRIu64 " calls made in %.2f s (schedule %.2f s at "
		       "%.0f/s; most behind schedule %.3f ms; every caller busy %" PRIu64 " times), %" PRIu64
		       " answered: %.0f calls/s; round trip p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, "
		       "max %.3f ms\n",
		       calls_issued, pc.total, send_s, opt.seconds, opt.rate, (double)pc.max_lag / 1e6, behind,
		       calls_in_window, rate, q.p50, q.p90, q.p99, q.p999, q.max);
	else
		printf("msgload: calls: %" PRIu64 " answered in the %.1f s window: %.0f calls/s; round trip p50 %.3f "
		       "ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (closed loop: the mean round trip "
		       "is %d callers / the rate)\n",
		       calls_in_window, opt.seconds, rate, q.p50, q.p90, q.p99, q.p999, q.max, opt.callers);
	printf("msgload: calls: in all %" PRIu64 " made, %" PRIu64 " answered with their own body, %" PRIu64
	       " errors, %" PRIu64 " wrong answers; responders got %" PRIu64 " calls in %" PRIu64
	       " polls (%.1f each), %" PRIu64 " replies sent, %" PRIu64 " answered 204, %" PRIu64
	       " errors; drain %.2f s, %zu calls and %zu replies still in flight\n",
	       calls_issued, calls_answered, call_errors, call_mismatches, call_msgs, poll_answers,
	       poll_answers ? (double)call_msgs / (double)poll_answers : 0.0, replies_sent, replies_ok, reply_errors,
	       dr, left, rleft);
	if (stats_ok)
		printf("msgload: calls: /v1/stats: calls pending %" PRIu64 ", answered %" PRIu64 ", timed_out %" PRIu64
		       ", receiver_gone %" PRIu64 ", caller_gone %" PRIu64 "\n",
		       st.calls_pending, st.calls_answered, st.calls_timed_out, st.calls_receiver_gone,
		       st.calls_caller_gone);
	if (cs >= 0)
		printf("msgload: CPU in the window: server %.0f%%, msgload %.0f%% (of one core); time spent runnable "
		       "but waiting for a CPU (schedstat): server %.1f ms, msgload %.1f ms; server CPU per call %.1f us "
		       "(one core all its own: %.0f calls/s)\n",
		       cs * 100, cc * 100, rq_server_ms, rq_client_ms, us_per_call,
		       us_per_call > 0 ? 1e6 / us_per_call : 0.0);
	rc = (call_errors || call_mismatches || reply_errors || poll_errors || call_msg_errors || conn_failures ||
	      left || rleft || !stats_ok || st.calls_pending || st.calls_timed_out || st.calls_receiver_gone ||
	      st.calls_caller_gone || calls_answered != calls_issued)
		     ? 1
		     : 0;
	printf("RESULT mode=calls measured=1 clean=%d open_loop=%d target_rate=%.0f scheduled=%" PRIu64
	       " send_s=%.2f max_lag_ms=%.3f server_us_per_call=%.1f"
	       " callers=%d responders=%d calls=%" PRIu64 " rate=%.0f p50_ms=%.3f"
	       " p90_ms=%.3f p99_ms=%.3f max_ms=%.3f made=%" PRIu64 " answered=%" PRIu64 " errors=%" PRIu64
	       " wrong=%" PRIu64 " reply_errors=%" PRIu64 " poll_errors=%" PRIu64 " conn_failures=%ld"
	       " left_in_flight=%zu stats_ok=%d pending=%" PRIu64 " stat_answered=%" PRIu64 " timed_out=%" PRIu64
	       " receiver_gone=%" PRIu64 " caller_gone=%" PRIu64 " calls_per_poll=%.1f cpu_server=%.0f"
	       " cpu_client=%.0f server_cpu_wait_ms=%.0f client_cpu_wait_ms=%.0f\n",
	       !rc, (int)opt.rate_given, opt.rate_given ? opt.rate : 0.0, pc.total, send_s, (double)pc.max_lag / 1e6,
	       us_per_call, opt.callers,
	       opt.responders, calls_in_window, rate, q.p50, q.p90, q.p99, q.max, calls_issued,
	       calls_answered, call_errors, call_mismatches, reply_errors, poll_errors, conn_failures, left,
	       stats_ok, st.calls_pending, st.calls_answered, st.calls_timed_out, st.calls_receiver_gone,
	       st.calls_caller_gone, poll_answers ? (double)call_msgs / (double)poll_answers : 0.0, cs * 100,
	       cc * 100, rq_server_ms, rq_client_ms);
	for (i = 0; i < opt.callers; i++)
		conn_free(CL[i].c);
	for (i = 0; i < opt.responders; i++)
		conn_free(RC[i]);
	free(CL);
	free(caller_c);
	free(RC);
	free(idle_callers);
	return rc;
}

/* ----------------------------------------------------------------- main --- */

static void usage(void)
{
	fprintf(stderr,
		"usage: msgload --port P [--recv-port P2] [--mode latency|maxrate|memory|streams|calls] [--waiters N]\n"
		"               [--rate R] [--seconds S] [--warmup S] [--senders K] [--pipeline D]\n"
		"               [--window W] [--wait S] [--pid SERVER_PID] [--prefix lp-] [--timeout S]\n"
		"               [--streams N] [--hold S]                          (streams)\n"
		"               [--callers N] [--responders R] [--group G] [--call-timeout MS]  (calls)\n");
	exit(2);
}

static double num_arg(const char *flag, const char *v, double lo, double hi)
{
	char *end;
	double d;

	if (!v)
		usage();
	d = strtod(v, &end);
	if (*end || d < lo || d > hi) {
		fprintf(stderr, "msgload: %s %s: expected a number from %g to %g\n", flag, v, lo, hi);
		exit(2);
	}
	return d;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	int i, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(f, "--mode") && v) {
			size_t m = 0;
			while (m < sizeof(mode_names) / sizeof(*mode_names) && strcmp(v, mode_names[m]))
				m++;
			if (m == sizeof(mode_names) / sizeof(*mode_names))
				usage();
			opt.mode = (enum mode)m;
		} else if (!strcmp(f, "--port")) {
			opt.port = (int)num_arg(f, v, 1, 65535);
		} else if (!strcmp(f, "--recv-port")) {
			opt.recv_port = (int)num_arg(f, v, 1, 65535);
		} else if (!strcmp(f, "--waiters")) {
			opt.waiters = (int)num_arg(f, v, 1, 1000000);
		} else if (!strcmp(f, "--rate")) {
			opt.rate = num_arg(f, v, 1, 10000000);
			opt.rate_given = true;
		} else if (!strcmp(f, "--seconds")) {
			opt.seconds = num_arg(f, v, 0.1, 3600);
		} else if (!strcmp(f, "--warmup")) {
			opt.warmup = num_arg(f, v, 0, 3600);
		} else if (!strcmp(f, "--senders")) {
			opt.senders = (int)num_arg(f, v, 1, 1000);
		} else if (!strcmp(f, "--pipeline")) {
			opt.pipeline = (int)num_arg(f, v, 1, 100000);
		} else if (!strcmp(f, "--window")) {
			opt.window = (long)num_arg(f, v, 1, 1e9);
		} else if (!strcmp(f, "--wait")) {
			opt.wait_s = (int)num_arg(f, v, 0, 300);
		} else if (!strcmp(f, "--pid")) {
			opt.pid = (int)num_arg(f, v, 1, 1e9);
		} else if (!strcmp(f, "--prefix") && v) {
			opt.prefix = v;
		} else if (!strcmp(f, "--timeout")) {
			opt.timeout = num_arg(f, v, 1, 86400);
		} else if (!strcmp(f, "--streams")) {
			opt.streams = (int)num_arg(f, v, 1, 1000000);
		} else if (!strcmp(f, "--hold")) {
			opt.hold = num_arg(f, v, 0, 86400);
		} else if (!strcmp(f, "--callers")) {
			opt.callers = (int)num_arg(f, v, 1, 1000000);
		} else if (!strcmp(f, "--responders")) {
			opt.responders = (int)num_arg(f, v, 1, 10000);
		} else if (!strcmp(f, "--group") && v) {
			opt.group = v;
		} else if (!strcmp(f, "--call-timeout")) {
			opt.call_timeout_ms = (int)num_arg(f, v, 1, 300000);
		} else {
			usage();
		}
		i++;
	}
	if (!opt.port)
		usage();
	if (!opt.wait_s)
		opt.wait_s = opt.mode == M_MEMORY ? 120 : 30;
	if (!opt.window)
		opt.window = 2L * opt.waiters;
	if (strlen(opt.prefix) > 100 || strlen(opt.group) > 100 || strpbrk(opt.group, "\"\\/?%# "))
		usage();
	if (opt.mode == M_CALLS)
		opt.waiters = opt.responders; /* the responders are the waiters */
	clk_tck = sysconf(_SC_CLK_TCK);
	deadline_ns = now_ns() + (uint64_t)(opt.timeout * 1e9);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)opt.timeout + 30);
	signal(SIGPIPE, SIG_IGN);

	/* One descriptor per waiter, plus senders, setup and a few spare. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t need = (rlim_t)opt.waiters + (rlim_t)opt.senders + (rlim_t)opt.setup_conns + 16;
	if (opt.mode == M_STREAMS)
		need += (rlim_t)opt.streams;
	if (opt.mode == M_CALLS)
		need += (rlim_t)opt.callers + (rlim_t)opt.responders;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		fatal("RLIMIT_NOFILE is %llu (hard limit %llu) but %llu descriptors are needed",
		      (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, (unsigned long long)need);

	memset(&server, 0, sizeof(server));
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)opt.port);
	server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_recv = server;
	if (opt.recv_port)
		server_recv.sin_port = htons((uint16_t)opt.recv_port);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		fatal("epoll_create1: %s", strerror(errno));
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0)
		fatal("timerfd_create: %s", strerror(errno));
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &ev);
	}
	W = calloc((size_t)opt.waiters, sizeof(*W));
	if (!W)
		fatal("out of memory");
	win_end = UINT64_MAX;

	if (opt.mode == M_STREAMS) {
		rc = run_streams();
	} else if (opt.mode == M_CALLS) {
		rc = run_calls();
	} else {
		setup();
		if (opt.mode == M_MEMORY) {
			rc = run_memory();
		} else {
			open_senders();
			open_waiters();
			const char *how = settle(30);
			printf("msgload: %d long-polls parked (%s)\n", opt.waiters, how);
			if (poll_answers)
				note_error("%" PRIu64 " long-polls were answered before any message was sent",
					   poll_answers);
			rc = opt.mode == M_LATENCY ? run_latency() : run_maxrate();
		}
	}
	for (i = 0; i < opt.waiters; i++)
		if (W[i].c)
			conn_free(W[i].c);
	for (i = 0; i < nsend_c; i++)
		conn_free(send_c[i]);
	return rc;
}

/* fake_server.h: a scripted HTTP/1.1 server in threads of a unit test (one
 * thread per connection) on 127.0.0.1, for tests of our HTTP clients, and one
 * turn of the epoll loop that drives the client. The test says how a
 * connection is served and keeps what it records, under srv.mu.
 * Include after <cmocka.h>, with _GNU_SOURCE defined; one server per test file. */
#ifndef FAKE_SERVER_H
#define FAKE_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../cluster/httpc.h"

#define FAKE_MAX_CONNS 512

static struct fake_server {
	int lfd, port;
	pthread_t acceptor;
	pthread_mutex_t mu; /* guards this and what the test records */
	pthread_cond_t cv;  /* for connections that wait; broadcast at stop */
	int accepts, nconns;
	int fds[FAKE_MAX_CONNS];
	pthread_t threads[FAKE_MAX_CONNS];
	bool stopping;
	void (*serve)(int fd); /* serves one connection until it is to end */
} srv;

/* Sends all n bytes; false when the peer is gone. */
static bool send_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		s += k;
		n -= (size_t)k;
	}
	return true;
}

/* Reads a request head byte by byte (never past it); 0 when the client left. */
static size_t read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t k = recv(fd, buf + n, 1, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return 0;
		n++;
		buf[n] = '\0';
		if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
			return n;
	}
	return 0;
}

/* Reads the body the head announces by Content-Length (none: empty) into a
 * NUL-terminated buffer the caller frees; NULL when memory runs out or the
 * client leaves before its end. */
static char *read_body(int fd, const char *head, size_t *len)
{
	const char *cl = strcasestr(head, "\r\nContent-Length:");
	size_t n = cl ? strtoul(cl + 17, NULL, 10) : 0, got = 0;
	char *body = malloc(n + 1);

	if (!body)
		return NULL;
	while (got < n) {
		ssize_t k = recv(fd, body + got, n - got, 0);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got < n) {
		free(body);
		return NULL;
	}
	body[n] = '\0';
	*len = n;
	return body;
}

/* Waits until the client goes away (or the server stops). */
static void wait_gone(int fd)
{
	char b[256];

	for (;;) {
		ssize_t k = recv(fd, b, sizeof(b), 0);
		if (k == 0 || (k < 0 && errno != EINTR))
			return;
	}
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;

	srv.serve(fd);
	shutdown(fd, SHUT_RDWR); /* closed by server_stop, after the join */
	return NULL;
}

static void *accept_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(srv.lfd, NULL, NULL), one = 1;
		bool stopping;

		pthread_mutex_lock(&srv.mu);
		stopping = srv.stopping;
		pthread_mutex_unlock(&srv.mu);
		if (fd < 0) {
			if (errno == EINTR && !stopping)
				continue;
			return NULL;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&srv.mu);
		if (srv.stopping || srv.nconns == FAKE_MAX_CONNS ||
		    pthread_create(&srv.threads[srv.nconns], NULL, conn_main, (void *)(intptr_t)fd) != 0) {
			close(fd);
		} else {
			srv.fds[srv.nconns++] = fd;
			srv.accepts++;
		}
		pthread_mutex_unlock(&srv.mu);
	}
}

/* A socket bound to 127.0.0.1 on a free port; listening or not. */
static int bound_socket(bool listening, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening)
		assert_int_equal(listen(fd, 1024), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Starts srv on a free port (srv.port), each connection served by serve in
 * its own thread. */
static void server_start(void (*serve)(int fd))
{
	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.mu, NULL);
	pthread_cond_init(&srv.cv, NULL);
	srv.serve = serve;
	srv.lfd = bound_socket(true, &srv.port);
	assert_int_equal(pthread_create(&srv.acceptor, NULL, accept_main, NULL), 0);
}

/* Stops accepting, cuts every connection and joins its thread. */
static void server_stop(void)
{
	int i;

	pthread_mutex_lock(&srv.mu);
	srv.stopping = true;
	pthread_cond_broadcast(&srv.cv);
	pthread_mutex_unlock(&srv.mu);
	shutdown(srv.lfd, SHUT_RDWR); /* wakes accept() */
	pthread_join(srv.acceptor, NULL);
	pthread_mutex_lock(&srv.mu);
	for (i = 0; i < srv.nconns; i++)
		shutdown(srv.fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&srv.mu);
	for (i = 0; i < srv.nconns; i++) {
		pthread_join(srv.threads[i], NULL);
		close(srv.fds[i]);
	}
	close(srv.lfd);
	pthread_cond_destroy(&srv.cv);
	pthread_mutex_destroy(&srv.mu);
}

/* *p, read under srv.mu. */
static int read_locked(const int *p)
{
	int n;

	pthread_mutex_lock(&srv.mu);
	n = *p;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

/* How many connections were accepted since the start. */
static int server_accepts(void)
{
	return read_locked(&srv.accepts);
}

/* --- the client side --- */

/* Starts srv, each connection served by serve, and a client for it: *c on a
 * new epoll fd *epfd, with events tagged tag. */
static void fake_start(void (*serve)(int fd), int tag, int *epfd, struct httpc **c)
{
	server_start(serve);
	*epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(*epfd >= 0);
	*c = httpc_new(*epfd, tag);
	assert_non_null(*c);
}

/* Frees client c and its epoll fd, then stops srv. */
static void fake_stop(int epfd, struct httpc *c)
{
	httpc_free(c);
	close(epfd);
	server_stop();
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One turn of the daemon's loop for client c: at most max_ms of waiting (less
 * when c's next timer is sooner), its events, then its timers when due. Every
 * event must carry tag: c is the only user of epfd. */
static void loop_turn(struct httpc *c, int epfd, int tag, int max_ms)
{
	struct epoll_event evs[64];
	long t = httpc_timeout(c);
	int n, i;

	if (t < 0 || t > max_ms)
		t = max_ms;
	n = epoll_wait(epfd, evs, 64, (int)t);
	for (i = 0; i < n; i++) {
		assert_int_equal(*(int *)evs[i].data.ptr, tag);
		httpc_on_event(c, evs[i].data.ptr, evs[i].events);
	}
	if (httpc_timeout(c) == 0)
		httpc_run_timers(c);
}

#endif

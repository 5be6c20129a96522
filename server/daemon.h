/* daemon: the event loop. libmicrohttpd runs in epoll mode with no thread
 * of its own; one loop drives it, the store's timers (leases, wait
 * deadlines) and the signals, so the store is touched by one thread only. */
#ifndef ROLLCALL_DAEMON_H
#define ROLLCALL_DAEMON_H

#include "request.h"

/* Serves app until SIGTERM or SIGINT, then answers every pending wait and
 * returns 0; returns 1 when the server cannot start (message on stderr). */
int daemon_run(struct app *app);

/* Milliseconds on the monotonic clock. */
uint64_t daemon_now_ms(void);

/* Fills buf with len bytes from getrandom(2); the store's random source. */
void daemon_random(void *ctx, void *buf, size_t len);

#endif

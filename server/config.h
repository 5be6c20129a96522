/* config: the server's settings, from the command line. */
#ifndef ROLLCALL_CONFIG_H
#define ROLLCALL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define ROLLCALL_VERSION "0.1.0"

struct config {
	char host[64];        /* IPv4 or IPv6 literal */
	unsigned port;        /* 0: any free port */
	unsigned default_ttl; /* seconds */
	unsigned max_ttl;     /* seconds */
	size_t max_body;      /* bytes of a request body */
	size_t max_value;     /* bytes of a serialized value */
	size_t max_sessions;
	size_t max_keys_per_session; /* names + props + group memberships per session */
	size_t max_queue;   /* messages per mailbox */
	size_t max_waiters; /* pending long-polls, server-wide */
	size_t event_buffer; /* events kept for watchers that resume */
	size_t max_connections;
	unsigned idle_timeout;  /* seconds a connection may sit idle (not waiting) */
	const char *auth_token; /* every /v1 request and /metrics needs it, or NULL */
	const char *read_token; /* reads and the event stream only, or NULL */
	bool log_requests;      /* an access log line per request on stderr */
	/* cluster mode (api.md, Cluster): etcd client URLs, or NULL */
	const char *etcd;       /* "URL[,URL...]" as given */
	char node[65];          /* this node's name: --node, else HOST:PORT of --listen */
	bool node_given;
	char advertise[300];    /* how other nodes reach this one: --advertise, else http://HOST:PORT */
	bool advertise_given;
	char etcd_prefix[257];  /* keys in etcd start with it; default /rollcall/ */
	unsigned node_ttl;      /* seconds a node may go unheard (3..300) */
};

/* The defaults of api.md. */
void config_defaults(struct config *c);

enum config_rc { CONFIG_RUN = 0, CONFIG_EXIT_OK, CONFIG_EXIT_USAGE };

/* The listen port once bound (--listen ...:0 picks one): the default node
 * name and --advertise URL take it. */
void config_bound_port(struct config *c, unsigned port);

/* Reads argv into c. --help and --version print to out and give
 * CONFIG_EXIT_OK; a bad flag or value prints one line to err and gives
 * CONFIG_EXIT_USAGE. */
enum config_rc config_parse(struct config *c, int argc, char **argv, FILE *out, FILE *err);

#endif

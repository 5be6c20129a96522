/* config: command-line flags; see config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->host, "127.0.0.1");
	c->port = 7070;
	c->default_ttl = 15;
	c->max_ttl = 3600;
	c->max_body = 1024 * 1024;
	c->max_value = 64 * 1024;
	c->max_sessions = 1000000;
	c->max_keys_per_session = 10000;
	c->max_queue = 10000;
	c->max_waiters = 50000;
	c->event_buffer = 65536;
	c->idle_timeout = 60;
	c->max_connections = 10000;
	strcpy(c->etcd_prefix, "/rollcall/");
	c->node_ttl = 10;
}

static const char usage[] =
	"usage: rollcall [flags]\n"
	"  --listen HOST:PORT     address to serve on (default 127.0.0.1:7070; port 0 picks a free one)\n"
	"  --default-ttl S        lease of a session created without ttl (default 15)\n"
	"  --max-ttl S            largest ttl a session may ask for (default 3600)\n"
	"  --max-body BYTES       largest request body (default 1048576)\n"
	"  --max-value BYTES      largest serialized value (default 65536)\n"
	"  --max-sessions N       most live sessions (default 1000000)\n"
	"  --max-keys-per-session N  most names, properties and group memberships\n"
	"                         one session may hold (default 10000)\n"
	"  --max-queue N          most messages waiting in one mailbox (default 10000)\n"
	"  --max-waiters N        most waiting requests server-wide: awaits, receives,\n"
	"                         event long-polls and streams, calls (default 50000)\n"
	"  --event-buffer N       recent events kept for watchers to resume from (default 65536)\n"
	"  --max-connections N    most open client connections (default 10000)\n"
	"  --idle-timeout S       close a connection idle this long; waiting long-polls\n"
	"                         and streams are not idle (default 60)\n"
	"  --auth-token T         every /v1 request and /metrics needs\n"
	"                         Authorization: Bearer T (or $ROLLCALL_AUTH_TOKEN)\n"
	"  --read-token R         a token for reads and the event stream only\n"
	"                         (or $ROLLCALL_READ_TOKEN; needs --auth-token)\n"
	"  --log-requests         an access log line per request on stderr\n"
	"  --etcd URL[,URL...]    cluster mode: etcd v3 client URLs (no discovery)\n"
	"  --node NAME            this node's name, unique in the cluster: 1 to 64 of\n"
	"                         [A-Za-z0-9._:-] (default the --listen address)\n"
	"  --advertise URL        how other nodes reach this one (default http://LISTEN)\n"
	"  --etcd-prefix P        keys in etcd start with P (default /rollcall/)\n"
	"  --node-ttl S           a node unheard this long is dropped with its\n"
	"                         sessions, 3 to 300 (default 10)\n"
	"  --help                 this text\n"
	"  --version              the version\n";

/* A decimal integer in [lo, hi], digits only. */
static int parse_num(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_listen(struct config *c, const char *s)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl;
	unsigned long long port;
	unsigned char buf[16];

	if (!colon || parse_num(colon + 1, 0, 65535, &port))
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') { /* [::1]:7070 */
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(c->host))
		return -1;
	memcpy(c->host, h, hl);
	c->host[hl] = '\0';
	if (inet_pton(AF_INET, c->host, buf) != 1 && inet_pton(AF_INET6, c->host, buf) != 1)
		return -1;
	c->port = (unsigned)port;
	return 0;
}

void config_bound_port(struct config *c, unsigned port)
{
	c->port = port;
	if (!c->node_given)
		snprintf(c->node, sizeof(c->node), strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host, port);
	if (!c->advertise_given)
		snprintf(c->advertise, sizeof(c->advertise), strchr(c->host, ':') ? "http://[%s]:%u" : "http://%s:%u",
			 c->host, port);
}

/* A node name: 1 to 64 of [A-Za-z0-9._:-]. */
static bool node_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
		      s[n] == '.' || s[n] == '_' || s[n] == ':' || s[n] == '-'))
			return false;
	return n >= 1 && n <= 64;
}

/* "http://" or "https://" then at least a host, no space or control byte. */
static bool url_ok(const char *s, size_t max)
{
	size_t n, skip;

	if (!s)
		return false;
	skip = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
	if (!skip || !s[skip])
		return false;
	for (n = 0; s[n]; n++)
		if (s[n] <= ' ' || s[n] > '~')
			return false;
	return n < max;
}

/* Comma-separated etcd client URLs, each an http(s) URL. */
static bool etcd_ok(const char *s)
{
	char buf[300];
	const char *p = s;

	if (!s || !*s)
		return false;
	while (p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n >= sizeof(buf))
			return false;
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (!url_ok(buf, sizeof(buf)))
			return false;
		p = comma ? comma + 1 : NULL;
	}
	return true;
}

/* A token: 1 to 200 visible ASCII characters (it travels in a header). */
static bool token_ok(const char *t)
{
	size_t n = 0;

	if (!t)
		return false;
	for (; t[n]; n++)
		if (t[n] <= ' ' || t[n] > '~')
			return false;
	return n >= 1 && n <= 200;
}

enum config_rc config_parse(struct config *c, int argc, char **argv, FILE *out, FILE *err)
{
	bool default_ttl_given = false;
	int i;

	for (i = 1; i < argc; i++) {
		const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long long v;
		int bad = 0;

		if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
			fputs(usage, out);
			return CONFIG_EXIT_OK;
		}
		if (!strcmp(flag, "--version")) {
			fprintf(out, "rollcall %s\n", ROLLCALL_VERSION);
			return CONFIG_EXIT_OK;
		}
		if (!strcmp(flag, "--log-requests")) {
			c->log_requests = true;
			continue; /* takes no value */
		}
		if (!strcmp(flag, "--listen")) {
			bad = !val || parse_listen(c, val);
		} else if (!strcmp(flag, "--default-ttl")) {
			bad = parse_num(val, 1, 86400 * 365, &v);
			c->default_ttl = (unsigned)v;
			default_ttl_given = true;
		} else if (!strcmp(flag, "--max-ttl")) {
			bad = parse_num(val, 1, 86400 * 365, &v);
			c->max_ttl = (unsigned)v;
		} else if (!strcmp(flag, "--max-body")) {
			bad = parse_num(val, 1, SIZE_MAX / 4, &v);
			c->max_body = (size_t)v;
		} else if (!strcmp(flag, "--max-value")) {
			bad = parse_num(val, 1, SIZE_MAX / 4, &v);
			c->max_value = (size_t)v;
		} else if (!strcmp(flag, "--max-sessions")) {
			bad = parse_num(val, 1, SIZE_MAX / 4, &v);
			c->max_sessions = (size_t)v;
		} else if (!strcmp(flag, "--max-keys-per-session")) {
			bad = parse_num(val, 1, SIZE_MAX / 4, &v);
			c->max_keys_per_session = (size_t)v;
		} else if (!strcmp(flag, "--max-queue")) {
			bad = parse_num(val, 1, SIZE_MAX / 4, &v);
			c->max_queue = (size_t)v;
		} else if (!strcmp(flag, "--max-waiters")) {
			bad = parse_num(val, 1, SIZE_MAX / 4, &v);
			c->max_waiters = (size_t)v;
		} else if (!strcmp(flag, "--event-buffer")) {
			bad = parse_num(val, 1, 1u << 26, &v);
			c->event_buffer = (size_t)v;
		} else if (!strcmp(flag, "--idle-timeout")) {
			bad = parse_num(val, 1, 86400, &v);
			c->idle_timeout = (unsigned)v;
		} else if (!strcmp(flag, "--auth-token")) {
			bad = !token_ok(val);
			c->auth_token = val;
		} else if (!strcmp(flag, "--read-token")) {
			bad = !token_ok(val);
			c->read_token = val;
		} else if (!strcmp(flag, "--etcd")) {
			bad = !etcd_ok(val);
			c->etcd = val;
		} else if (!strcmp(flag, "--node")) {
			bad = !node_ok(val);
			if (!bad) {
				strcpy(c->node, val);
				c->node_given = true;
			}
		} else if (!strcmp(flag, "--advertise")) {
			bad = !url_ok(val, sizeof(c->advertise));
			if (!bad) {
				strcpy(c->advertise, val);
				c->advertise_given = true;
			}
		} else if (!strcmp(flag, "--etcd-prefix")) {
			bad = !val || !*val || strlen(val) >= sizeof(c->etcd_prefix);
			if (!bad)
				strcpy(c->etcd_prefix, val);
		} else if (!strcmp(flag, "--node-ttl")) {
			bad = parse_num(val, 3, 300, &v);
			c->node_ttl = (unsigned)v;
		} else if (!strcmp(flag, "--max-connections")) {
			bad = parse_num(val, 1, 1000000, &v);
			c->max_connections = (size_t)v;
		} else {
			fprintf(err, "rollcall: unknown flag '%s' (see --help)\n", flag);
			return CONFIG_EXIT_USAGE;
		}
		if (bad) {
			if (val)
				fprintf(err, "rollcall: bad value '%s' for %s (see --help)\n", val, flag);
			else
				fprintf(err, "rollcall: %s needs a value (see --help)\n", flag);
			return CONFIG_EXIT_USAGE;
		}
		i++;
	}
	if (!c->auth_token && getenv("ROLLCALL_AUTH_TOKEN") && *getenv("ROLLCALL_AUTH_TOKEN"))
		c->auth_token = getenv("ROLLCALL_AUTH_TOKEN");
	if (!c->read_token && getenv("ROLLCALL_READ_TOKEN") && *getenv("ROLLCALL_READ_TOKEN"))
		c->read_token = getenv("ROLLCALL_READ_TOKEN");
	if ((c->auth_token && !token_ok(c->auth_token)) || (c->read_token && !token_ok(c->read_token))) {
		fprintf(err, "rollcall: a token is 1 to 200 printable characters without spaces\n");
		return CONFIG_EXIT_USAGE;
	}
	if (c->read_token && !c->auth_token) {
		fprintf(err, "rollcall: --read-token needs --auth-token\n");
		return CONFIG_EXIT_USAGE;
	}
	if (c->read_token && !strcmp(c->read_token, c->auth_token)) {
		fprintf(err, "rollcall: --read-token must differ from --auth-token\n");
		return CONFIG_EXIT_USAGE;
	}
	/* --max-ttl 10 alone lowers the default with it; only an explicit
	 * --default-ttl over --max-ttl is a contradiction. */
	if (!default_ttl_given && c->default_ttl > c->max_ttl)
		c->default_ttl = c->max_ttl;
	if (c->default_ttl > c->max_ttl) {
		fprintf(err, "rollcall: --default-ttl %u is over --max-ttl %u\n", c->default_ttl, c->max_ttl);
		return CONFIG_EXIT_USAGE;
	}
	config_bound_port(c, c->port);
	return CONFIG_RUN;
}

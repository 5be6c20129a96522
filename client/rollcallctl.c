/* rollcallctl: rollcall from the command line, on librollcall.
 *
 *   rollcallctl [--url URL] [--auth-token T] [--json] COMMAND ARGS...
 *
 * --url defaults to $ROLLCALL_URL, else http://127.0.0.1:7070; --auth-token
 * to $ROLLCALL_AUTH_TOKEN. Output is for people (aligned columns, relative
 * times) unless --json: then one JSON object per line. Exit status: see
 * rc_exit_code() in rollcall.h (0 done, 1 not found or empty, 2 usage or
 * refused as bad, 3 conflict, 4 unreachable or unable to serve, 5 a
 * deadline reached); an error's message goes to stderr. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rollcall.h"

#define EXIT_USAGE 2

static const char usage_text[] =
	"usage: rollcallctl [--url URL] [--auth-token T] [--json] COMMAND ...\n"
	"  lookup NAME [--wait S]               a name's holder and value\n"
	"  ls names|props|groups|sessions|nodes [--prefix P]\n"
	"  members GROUP [--pick random|round_robin|hash [--hash-key K]]\n"
	"  send TARGET JSON                      TARGET: name:N, session:ID, prop:K, group:G[:PICK]\n"
	"  call TARGET JSON [--timeout MS]       wait for the reply, print its body\n"
	"  stats\n"
	"  recv [--reply CMD]                    as $ROLLCALL_SESSION/$ROLLCALL_TOKEN (or the session in\n"
	"                                        $ROLLCALL_SESSION_FILE): print each message as a JSON line;\n"
	"                                        --reply: run CMD for each call, body on stdin, reply its stdout\n"
	"  run [--name N]... [--prop K[=JSON]]... [--group G[=JSON]]... [--value JSON] [--ttl S]\n"
	"      [--label L] [--wait-name S] [--on-lost=reregister|exit] -- CMD ARGS...\n"
	"                                        hold a session (and names) while CMD runs\n"
	"  watch [--prefix P]                    follow changes; resumes after a dropped connection,\n"
	"                                        lists again after a reset\n"
	"exit status: 0 done, 1 not found or empty, 2 usage or refused as bad, 3 conflict,\n"
	"4 unreachable or unable to serve, 5 a deadline reached\n";

static bool json_out;

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "rollcallctl: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

/* The result's exit status, its error on stderr. */
static int finish(const struct rc_result *r)
{
	int code = rc_exit_code(r);

	if (code && r->error[0])
		fprintf(stderr, "rollcallctl: %s: %s\n", r->error, r->message);
	return code;
}

static void print_json(const cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;

	printf("%s\n", s ? s : "null");
	free(s);
}

/* A JSON value as text for a column ("-" for none). */
static char *value_text(const cJSON *v)
{
	return v ? cJSON_PrintUnformatted(v) : strdup("-");
}

/* "in 12 s", "3 min ago", ... for milliseconds from now (negative: past). */
static void relative(long long ms, char *out, size_t n)
{
	long long s = (ms < 0 ? -ms : ms) / 1000;
	const char *unit = "s";

	if (s >= 86400) {
		s /= 86400;
		unit = "d";
	} else if (s >= 3600) {
		s /= 3600;
		unit = "h";
	} else if (s >= 60) {
		s /= 60;
		unit = "min";
	}
	snprintf(out, n, ms < 0 ? "%lld %s ago" : "in %lld %s", s, unit);
}

/* One cell of a table: padded to width, or ending the line. */
static void cell(const char *s, size_t width, bool last)
{
	if (last)
		printf("%s\n", s);
	else
		printf("%-*s  ", (int)width, s);
}

/* Prints rows of cols columns (cells malloc'd, freed here), aligned. */
static void table(char **cells, size_t rows, size_t cols, const char *const *head)
{
	size_t w[8] = { 0 }, i, j;

	for (j = 0; j < cols; j++)
		w[j] = strlen(head[j]);
	for (i = 0; i < rows; i++)
		for (j = 0; j < cols; j++)
			if (strlen(cells[i * cols + j]) > w[j])
				w[j] = strlen(cells[i * cols + j]);
	for (j = 0; j < cols; j++)
		cell(head[j], w[j], j + 1 == cols);
	for (i = 0; i < rows; i++)
		for (j = 0; j < cols; j++) {
			cell(cells[i * cols + j], w[j], j + 1 == cols);
			free(cells[i * cols + j]);
		}
	free(cells);
}

static char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	return value_text(v);
}

static int cmd_lookup(struct rc *c, int argc, char **argv)
{
	struct rc_result r = { 0 };
	unsigned wait = 0;
	int code;

	if (argc == 3 && !strcmp(argv[1], "--wait"))
		wait = (unsigned)strtoul(argv[2], NULL, 10);
	else if (argc != 1)
		return usage("lookup NAME [--wait S]");
	rc_lookup(c, argv[0], wait, &r);
	code = finish(&r);
	if (!code) {
		if (json_out) {
			print_json(r.json);
		} else {
			const char *const head[] = { "NAME", "SESSION", "VALUE" };
			char **cells = malloc(3 * sizeof(*cells));
			if (cells) {
				cells[0] = str_of(r.json, "key");
				cells[1] = str_of(r.json, "session");
				cells[2] = value_text(cJSON_GetObjectItemCaseSensitive(r.json, "value"));
				table(cells, 1, 3, head);
			}
		}
	}
	rc_result_clear(&r);
	return code;
}

static int cmd_ls(struct rc *c, int argc, char **argv)
{
	static const char *const kinds[] = { "names", "props", "groups", "sessions", "nodes" };
	struct rc_result r = { 0 };
	const char *prefix = NULL;
	const cJSON *items, *it;
	size_t k, rows = 0, cols;
	char **cells;
	int code;

	if (argc < 1)
		return usage("ls names|props|groups|sessions|nodes [--prefix P]");
	for (k = 0; k < 5 && strcmp(argv[0], kinds[k]); k++)
		;
	if (k == 5)
		return usage("ls: names, props, groups, sessions or nodes");
	if (argc == 3 && !strcmp(argv[1], "--prefix") && k < 3)
		prefix = argv[2];
	else if (argc != 1)
		return usage("ls KIND [--prefix P] (--prefix for names, props and groups)");
	rc_list(c, kinds[k], prefix, &r);
	code = finish(&r);
	items = cJSON_GetObjectItemCaseSensitive(r.json, kinds[k]);
	if (!code && !cJSON_IsArray(items)) {
		fprintf(stderr, "rollcallctl: the server's answer has no %s list\n", kinds[k]);
		code = 4;
	}
	if (code) {
		rc_result_clear(&r);
		return code;
	}
	if (json_out) {
		cJSON_ArrayForEach(it, items)
			print_json(it);
	} else {
		static const char *const heads[5][4] = {
			{ "NAME", "SESSION", "VALUE" },
			{ "PROPERTY", "HOLDERS" },
			{ "GROUP", "MEMBERS" },
			{ "SESSION", "LABEL", "EXPIRES", "NODE" },
			{ "NODE", "URL", "SESSIONS", "SINCE" },
		};
		static const size_t ncols[5] = { 3, 2, 2, 4, 4 };
		cols = ncols[k];
		cells = malloc(((size_t)cJSON_GetArraySize(items) + 1) * cols * sizeof(*cells));
		if (!cells) {
			rc_result_clear(&r);
			return 4;
		}
		cJSON_ArrayForEach(it, items) {
			char **row = cells + rows * cols, when[32];
			const cJSON *e;
			switch (k) {
			case 0:
				row[0] = str_of(it, "key");
				row[1] = str_of(it, "session");
				row[2] = value_text(cJSON_GetObjectItemCaseSensitive(it, "value"));
				break;
			case 1:
				row[0] = str_of(it, "key");
				row[1] = str_of(it, "holders");
				break;
			case 2:
				row[0] = str_of(it, "group");
				row[1] = str_of(it, "members");
				break;
			case 3:
				row[0] = str_of(it, "id");
				row[1] = str_of(it, "label");
				e = cJSON_GetObjectItemCaseSensitive(it, "expires_in_ms");
				if (cJSON_IsNumber(e))
					relative((long long)e->valuedouble, when, sizeof(when));
				else
					snprintf(when, sizeof(when), "-");
				row[2] = strdup(when);
				row[3] = cJSON_GetObjectItemCaseSensitive(it, "node") ? str_of(it, "node") : strdup("-");
				break;
			default:
				row[0] = str_of(it, "node");
				row[1] = str_of(it, "url");
				row[2] = str_of(it, "sessions");
				row[3] = str_of(it, "since");
				break;
			}
			rows++;
		}
		table(cells, rows, cols, heads[k]);
	}
	rc_result_clear(&r);
	return rows || json_out ? 0 : 1; /* empty: 1 */
}

static int cmd_members(struct rc *c, int argc, char **argv)
{
	struct rc_result r = { 0 };
	const char *pick = NULL, *hash_key = NULL;
	const cJSON *list, *m;
	int i, code;

	if (argc < 1)
		return usage("members GROUP [--pick random|round_robin|hash [--hash-key K]]");
	for (i = 1; i < argc; i += 2) {
		if (i + 1 >= argc)
			return usage("members: a flag without its value");
		if (!strcmp(argv[i], "--pick"))
			pick = argv[i + 1];
		else if (!strcmp(argv[i], "--hash-key"))
			hash_key = argv[i + 1];
		else
			return usage("members GROUP [--pick random|round_robin|hash [--hash-key K]]");
	}
	rc_members(c, argv[0], pick, hash_key, &r);
	code = finish(&r);
	if (code) {
		rc_result_clear(&r);
		return code;
	}
	list = pick ? NULL : cJSON_GetObjectItemCaseSensitive(r.json, "members");
	if (json_out) {
		if (pick)
			print_json(cJSON_GetObjectItemCaseSensitive(r.json, "member"));
		else
			cJSON_ArrayForEach(m, list)
				print_json(m);
	} else {
		const char *const head[] = { "SESSION", "VALUE" };
		size_t rows = 0, n = pick ? 1 : (size_t)cJSON_GetArraySize(list);
		char **cells = malloc((n + 1) * 2 * sizeof(*cells));
		if (cells) {
			if (pick) {
				m = cJSON_GetObjectItemCaseSensitive(r.json, "member");
				cells[0] = str_of(m, "session");
				cells[1] = value_text(cJSON_GetObjectItemCaseSensitive(m, "value"));
				rows = 1;
			} else {
				cJSON_ArrayForEach(m, list) {
					cells[rows * 2] = str_of(m, "session");
					cells[rows * 2 + 1] = value_text(cJSON_GetObjectItemCaseSensitive(m, "value"));
					rows++;
				}
			}
			table(cells, rows, 2, head);
		}
	}
	code = !pick && !cJSON_GetArraySize(list) ? 1 : 0; /* no member: 1 */
	rc_result_clear(&r);
	return code;
}

/* A JSON argument, checked: 2 with a message when it is not JSON. */
static bool json_arg(const char *s)
{
	cJSON *j = cJSON_Parse(s);
	bool ok = j != NULL;

	cJSON_Delete(j);
	if (!ok)
		fprintf(stderr, "rollcallctl: not JSON: %s (a string is written \"...\", quotes included)\n", s);
	return ok;
}

static int cmd_send_call(struct rc *c, bool call, int argc, char **argv)
{
	struct rc_result r = { 0 };
	unsigned timeout = 0;
	char err[200], *target;
	int code;

	if (call && argc == 4 && !strcmp(argv[2], "--timeout"))
		timeout = (unsigned)strtoul(argv[3], NULL, 10);
	else if (argc != 2)
		return usage(call ? "call TARGET JSON [--timeout MS]" : "send TARGET JSON");
	target = rc_target(argv[0], err, sizeof(err));
	if (!target)
		return usage(err);
	if (!json_arg(argv[1])) {
		free(target);
		return EXIT_USAGE;
	}
	if (call)
		rc_call(c, NULL, target, argv[1], timeout, &r);
	else
		rc_send(c, NULL, target, argv[1], &r);
	free(target);
	code = finish(&r);
	if (!code) {
		if (json_out)
			print_json(r.json);
		else if (call)
			print_json(cJSON_GetObjectItemCaseSensitive(r.json, "body"));
		else
			printf("delivered %d\n", cJSON_GetObjectItemCaseSensitive(r.json, "delivered")
							? (int)cJSON_GetObjectItemCaseSensitive(r.json, "delivered")->valuedouble
							: 0);
	}
	rc_result_clear(&r);
	return code;
}

static int cmd_stats(struct rc *c, int argc)
{
	struct rc_result r = { 0 };
	int code;

	if (argc != 0)
		return usage("stats takes no argument");
	rc_stats(c, &r);
	code = finish(&r);
	if (!code) {
		if (json_out) {
			print_json(r.json);
		} else {
			static const char *const keys[] = { "sessions", "names", "props", "group_members",
							    "queued_messages", "streams_open", "expirations", "events" };
			size_t i;
			for (i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
				const cJSON *v = cJSON_GetObjectItemCaseSensitive(r.json, keys[i]);
				if (cJSON_IsNumber(v))
					printf("%-16s %.0f\n", keys[i], v->valuedouble);
			}
		}
	}
	rc_result_clear(&r);
	return code;
}

/* --- recv: a session's mailbox --- */

/* The session to act as: $ROLLCALL_SESSION_FILE's "ID TOKEN" when set (it
 * follows a `run` that registered again), else $ROLLCALL_SESSION and
 * $ROLLCALL_TOKEN. False with a message when there is none. */
static bool current_session(struct rc_session *s)
{
	const char *file = getenv("ROLLCALL_SESSION_FILE"), *id, *tok;
	char line[128];
	FILE *f;

	memset(s, 0, sizeof(*s));
	if (file && *file && (f = fopen(file, "r"))) {
		bool ok = fgets(line, sizeof(line), f) && sscanf(line, "%16s %32s", s->id, s->token) == 2;
		fclose(f);
		if (ok)
			return true;
	}
	id = getenv("ROLLCALL_SESSION");
	tok = getenv("ROLLCALL_TOKEN");
	if (!id || !tok || strlen(id) >= sizeof(s->id) || strlen(tok) >= sizeof(s->token)) {
		fprintf(stderr, "rollcallctl: recv needs $ROLLCALL_SESSION and $ROLLCALL_TOKEN (as `rollcallctl run` sets)\n");
		return false;
	}
	strcpy(s->id, id);
	strcpy(s->token, tok);
	return true;
}

/* Runs cmd with body on its stdin; its stdout (JSON, or else sent as a
 * JSON string), malloc'd, or NULL when it could not run. */
static char *run_reply(const char *cmd, const char *body)
{
	int in[2], out[2];
	pid_t pid;
	char *buf = NULL, *json;
	size_t len = 0, cap = 0;
	ssize_t n;
	cJSON *parsed, *str;

	if (pipe(in) || pipe(out))
		return NULL;
	pid = fork();
	if (pid < 0)
		return NULL;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	signal(SIGPIPE, SIG_IGN);
	if (write(in[1], body, strlen(body)) < 0) { /* the command may not read it */
	}
	close(in[1]);
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *p = realloc(buf, cap = cap ? cap * 2 : 8192);
			if (!p)
				break;
			buf = p;
		}
		n = read(out[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(out[0]);
	waitpid(pid, NULL, 0);
	if (!buf)
		return strdup("null");
	buf[len] = '\0';
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	parsed = cJSON_Parse(buf);
	if (parsed) {
		cJSON_Delete(parsed);
		return buf;
	}
	str = cJSON_CreateString(buf); /* not JSON: it goes as a string */
	free(buf);
	json = str ? cJSON_PrintUnformatted(str) : NULL;
	cJSON_Delete(str);
	return json;
}

static int cmd_recv(struct rc *c, int argc, char **argv)
{
	const char *reply_cmd = NULL;
	struct rc_session s, last = { 0 };
	struct rc_result r = { 0 };
	uint64_t after = 0;
	unsigned failures = 0;

	if (argc == 2 && !strcmp(argv[0], "--reply"))
		reply_cmd = argv[1];
	else if (argc != 0)
		return usage("recv [--reply CMD]");
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		const cJSON *msgs, *m;
		if (!current_session(&s))
			return EXIT_USAGE;
		if (strcmp(s.id, last.id)) { /* a new session (registered again): its own numbering */
			after = 0;
			last = s;
		}
		rc_receive(c, &s, after, 25, &r);
		if (r.status == 200) {
			failures = 0;
			msgs = cJSON_GetObjectItemCaseSensitive(r.json, "messages");
			cJSON_ArrayForEach(m, msgs) {
				const cJSON *seq = cJSON_GetObjectItemCaseSensitive(m, "seq");
				const cJSON *rt = cJSON_GetObjectItemCaseSensitive(m, "reply_to");
				if (reply_cmd && cJSON_IsString(rt)) {
					char *body = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(m, "body"));
					char *answer = body ? run_reply(reply_cmd, body) : NULL;
					struct rc_result rr = { 0 };
					if (answer)
						rc_reply(c, &s, rt->valuestring, answer, &rr);
					if (rr.status != 204 && rr.error[0])
						fprintf(stderr, "rollcallctl: reply: %s: %s\n", rr.error, rr.message);
					rc_result_clear(&rr);
					free(body);
					free(answer);
				} else {
					print_json(m);
				}
				if (cJSON_IsNumber(seq))
					after = (uint64_t)seq->valuedouble; /* acknowledged by the next receive */
			}
		} else if (r.status == 404 && !getenv("ROLLCALL_SESSION_FILE")) {
			return finish(&r); /* the session is gone */
		} else {
			/* unreachable, or the session was replaced: try again soon */
			struct timespec ts = { 0, 200000000L };
			if (++failures == 1 && r.error[0])
				fprintf(stderr, "rollcallctl: recv: %s: %s (trying again)\n", r.error, r.message);
			nanosleep(&ts, NULL);
		}
		rc_result_clear(&r);
	}
}

/* --- run: hold a session while a command runs --- */

struct entry {
	const char *kind; /* names, props, groups */
	char *key;
	const char *value; /* JSON or NULL */
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Writes "ID TOKEN" to path (through a temporary file and a rename, so a
 * reader never sees half of it). */
static bool write_session_file(const char *path, const struct rc_session *s)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return false;
	fprintf(f, "%s %s\n", s->id, s->token);
	if (fclose(f))
		return false;
	return rename(tmp, path) == 0;
}

/* A session with every entry registered. Names taken: waits up to wait_s
 * (-1: not at all) for them. 0 done, else an exit status (message given). */
static int take_session(struct rc *c, unsigned ttl, const char *label, const struct entry *e, size_t n, long wait_s,
			struct rc_session *s)
{
	struct rc_result r = { 0 };
	uint64_t until = wait_s >= 0 ? now_ms() + (uint64_t)wait_s * 1000 : 0;
	size_t i;
	int code;

	if (rc_session_create(c, ttl, label, s, &r) != 201) {
		code = finish(&r);
		rc_result_clear(&r);
		return code ? code : 4;
	}
	rc_result_clear(&r);
	for (i = 0; i < n; i++) {
		for (;;) {
			int st = rc_register(c, s, e[i].kind, e[i].key, e[i].value, &r);
			if (st == 200 || st == 201)
				break;
			if (st == 409 && wait_s >= 0 && !got_signal) {
				uint64_t now = now_ms();
				struct rc_result w = { 0 };
				if (wait_s > 0 && now >= until) {
					fprintf(stderr, "rollcallctl: %s is still taken after --wait-name %ld s\n", e[i].key,
						wait_s);
					rc_result_clear(&r);
					rc_session_delete(c, s, &w);
					rc_result_clear(&w);
					return 5;
				}
				/* wait for the holder to go (a heartbeat meanwhile keeps ours) */
				rc_session_heartbeat(c, s, &w);
				rc_result_clear(&w);
				sleep_ms(250);
				continue;
			}
			code = finish(&r);
			rc_result_clear(&r);
			rc_session_delete(c, s, &r);
			rc_result_clear(&r);
			return code ? code : 4;
		}
		rc_result_clear(&r);
	}
	return 0;
}

/* run, with its entries in e (n of them, filled here; the caller frees
 * their keys whatever this returns). */
static int run_with(struct rc *c, const char *url, int argc, char **argv, struct entry *e, size_t *np)
{
	size_t n = 0, i;
	unsigned ttl = 15;
	const char *label = NULL, *value = NULL;
	long wait_s = -1;
	bool on_lost_exit = false;
	char path[4096];
	struct rc_session s;
	struct rc_result r = { 0 };
	int a, code, status = 0;
	pid_t child;
	uint64_t next_beat;
	struct sigaction sa;

	for (a = 0; a < argc && strcmp(argv[a], "--"); a++) {
		const char *f = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
		if (!strcmp(f, "--on-lost=exit") || !strcmp(f, "--on-lost=reregister")) {
			on_lost_exit = !strcmp(f, "--on-lost=exit");
			continue;
		}
		if (!v || !strcmp(v, "--"))
			return usage("run: a flag without its value");
		a++;
		if (!strcmp(f, "--ttl")) {
			ttl = (unsigned)strtoul(v, NULL, 10);
		} else if (!strcmp(f, "--label")) {
			label = v;
		} else if (!strcmp(f, "--value")) {
			if (!json_arg(v))
				return EXIT_USAGE;
			value = v;
		} else if (!strcmp(f, "--wait-name")) {
			wait_s = strtol(v, NULL, 10);
		} else if ((!strcmp(f, "--name") || !strcmp(f, "--prop") || !strcmp(f, "--group")) && n < 256) {
			char *eq = f[2] == 'n' ? NULL : strchr(v, '=');
			e[n].kind = f[2] == 'n' ? "names" : f[2] == 'p' ? "props" : "groups";
			e[n].key = eq ? strndup(v, (size_t)(eq - v)) : strdup(v);
			e[n].value = eq ? eq + 1 : NULL;
			*np = ++n;
			if (!e[n - 1].key || (e[n - 1].value && !json_arg(e[n - 1].value)))
				return EXIT_USAGE;
		} else {
			return usage("run: unknown flag");
		}
	}
	if (a + 1 >= argc)
		return usage("run ... -- CMD ARGS...");
	for (i = 0; i < n; i++)
		if (!strcmp(e[i].kind, "names") && !e[i].value)
			e[i].value = value;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	code = take_session(c, ttl, label, e, n, wait_s, &s);
	if (code || got_signal)
		return code ? code : 128 + got_signal;
	snprintf(path, sizeof(path), "%s/rollcall-session-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		 (int)getpid());
	if (!write_session_file(path, &s)) {
		fprintf(stderr, "rollcallctl: cannot write %s: %s\n", path, strerror(errno));
		rc_session_delete(c, &s, &r);
		rc_result_clear(&r);
		return 4;
	}
	child = fork();
	if (child < 0) {
		perror("rollcallctl: fork");
		return 4;
	}
	if (child == 0) {
		setenv("ROLLCALL_URL", url, 1);
		setenv("ROLLCALL_SESSION", s.id, 1);
		setenv("ROLLCALL_TOKEN", s.token, 1);
		setenv("ROLLCALL_SESSION_FILE", path, 1);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[a + 1], argv + a + 1);
		fprintf(stderr, "rollcallctl: %s: %s\n", argv[a + 1], strerror(errno));
		_exit(127);
	}
	next_beat = now_ms() + ttl * 1000 / 3;
	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);
		if (w == child)
			break;
		if (got_signal) { /* passed on to the command; its end ends us */
			kill(child, got_signal);
			got_signal = 0;
		}
		if (now_ms() >= next_beat) {
			int st = rc_session_heartbeat(c, &s, &r);
			rc_result_clear(&r);
			next_beat = now_ms() + ttl * 1000 / 3;
			if (st == 404) { /* the lease was lost (expired, or the server restarted) */
				if (on_lost_exit) {
					fprintf(stderr, "rollcallctl: the session's lease was lost: stopping the command\n");
					kill(child, SIGTERM);
					waitpid(child, &status, 0);
					unlink(path);
					return 4;
				}
				fprintf(stderr, "rollcallctl: the session's lease was lost: registering again\n");
				if (take_session(c, ttl, label, e, n, wait_s < 0 ? 0 : wait_s, &s) == 0) {
					write_session_file(path, &s);
					setenv("ROLLCALL_SESSION", s.id, 1);
				} else {
					next_beat = now_ms() + 1000; /* try again in a second */
				}
			}
		}
		sleep_ms(50);
	}
	rc_session_delete(c, &s, &r);
	rc_result_clear(&r);
	unlink(path);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

static int cmd_run(struct rc *c, const char *url, int argc, char **argv)
{
	struct entry e[256];
	size_t n = 0, i;
	int code = run_with(c, url, argc, argv, e, &n);

	for (i = 0; i < n; i++)
		free(e[i].key);
	return code;
}

/* --- watch: follow the registry's changes --- */

struct watch {
	int64_t last;    /* the last index seen: a reconnection resumes after it; -1 none yet */
	bool relist;     /* a reset came: list again before following on */
};

static void print_event(const char *type, const cJSON *data)
{
	const cJSON *idx = cJSON_GetObjectItemCaseSensitive(data, "index");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(data, "key");
	const cJSON *group = cJSON_GetObjectItemCaseSensitive(data, "group");
	const cJSON *sess = cJSON_GetObjectItemCaseSensitive(data, "session");
	const cJSON *val = cJSON_GetObjectItemCaseSensitive(data, "value");
	char *v;

	if (json_out) {
		print_json(data);
		return;
	}
	v = val ? cJSON_PrintUnformatted(val) : NULL;
	printf("%-8.0f %-18s %-24s %-16s %s\n", cJSON_IsNumber(idx) ? idx->valuedouble : 0.0, type,
	       cJSON_IsString(key) ? key->valuestring : cJSON_IsString(group) ? group->valuestring : "-",
	       cJSON_IsString(sess) ? sess->valuestring : "-", v ? v : "");
	free(v);
}

static bool on_watch_event(void *ctx, const char *type, const cJSON *data)
{
	struct watch *w = ctx;
	const cJSON *idx = cJSON_GetObjectItemCaseSensitive(data, "index");

	print_event(type, data);
	if (cJSON_IsNumber(idx))
		w->last = (int64_t)idx->valuedouble;
	if (!strcmp(type, "reset")) { /* the server lost our place: list what is there now */
		w->relist = true;
		return false;
	}
	return true;
}

/* After a reset: the names under prefix as they are now, as "listed"
 * lines (the events that follow apply to them). */
static int relist(struct rc *c, const char *prefix)
{
	struct rc_result r = { 0 };
	const cJSON *it;

	rc_list(c, "names", prefix, &r);
	if (r.status != 200) {
		int code = finish(&r);
		rc_result_clear(&r);
		return code ? code : 4;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "names")) {
		cJSON *line = cJSON_Duplicate(it, true);
		if (line) {
			cJSON_AddStringToObject(line, "type", "listed");
			print_event("listed", line);
			cJSON_Delete(line);
		}
	}
	rc_result_clear(&r);
	return 0;
}

static int cmd_watch(struct rc *c, int argc, char **argv)
{
	const char *prefix = NULL;
	struct watch w = { .last = -1 };
	struct rc_result r = { 0 };
	bool said = false;

	if (argc == 2 && !strcmp(argv[0], "--prefix"))
		prefix = argv[1];
	else if (argc != 0)
		return usage("watch [--prefix P]");
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		rc_events(c, prefix, w.last, on_watch_event, &w, &r);
		if (r.status == 401 || r.status == 403)
			return finish(&r);
		if (w.relist) {
			w.relist = false;
			if (relist(c, prefix) == 0)
				continue; /* on from the reset's index */
		}
		if (!said) {
			fprintf(stderr, "rollcallctl: watch: the stream ended (%s); reconnecting\n",
				r.error[0] ? r.message : "closed");
			said = true;
		}
		rc_result_clear(&r);
		sleep_ms(500);
	}
}

int main(int argc, char **argv)
{
	const char *url = getenv("ROLLCALL_URL"), *token = getenv("ROLLCALL_AUTH_TOKEN");
	struct rc *c;
	int i = 1, code;

	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--json")) {
			json_out = true;
		} else if (!strcmp(argv[i], "--url") && i + 1 < argc) {
			url = argv[++i];
		} else if (!strcmp(argv[i], "--auth-token") && i + 1 < argc) {
			token = argv[++i];
		} else if (!strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			return usage("unknown flag, or a flag without its value");
		}
	}
	if (i >= argc)
		return usage(NULL);
	if (!url || !*url)
		url = "http://127.0.0.1:7070";
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return usage("--url must start with http:// or https://");
	c = rc_new(url, token && *token ? token : NULL);
	if (!c) {
		fprintf(stderr, "rollcallctl: out of memory\n");
		return 4;
	}
	if (!strcmp(argv[i], "lookup"))
		code = cmd_lookup(c, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "ls"))
		code = cmd_ls(c, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "members"))
		code = cmd_members(c, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "send"))
		code = cmd_send_call(c, false, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "call"))
		code = cmd_send_call(c, true, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "stats"))
		code = cmd_stats(c, argc - i - 1);
	else if (!strcmp(argv[i], "recv"))
		code = cmd_recv(c, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "watch"))
		code = cmd_watch(c, argc - i - 1, argv + i + 1);
	else if (!strcmp(argv[i], "run"))
		code = cmd_run(c, url, argc - i - 1, argv + i + 1);
	else
		code = usage("unknown command");
	rc_free(c);
	return code;
}

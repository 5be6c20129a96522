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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	else
		code = usage("unknown command");
	rc_free(c);
	return code;
}

/* ui: the dashboard. GET / is handlers/ui/index.html and GET /ui/<file> the
 * rest, served from copies built into the binary, with their content type
 * and an ETag so that a browser revalidates cheaply (304). */
#include "handlers.h"

#include <stdio.h>
#include <string.h>

#include "../server/reply.h"
#include "ui_assets.h"

static const struct {
	const char *ext, *type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
};

static const char *type_of(const char *name)
{
	size_t n = strlen(name), i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t e = strlen(types[i].ext);
		if (n > e && !strcmp(name + n - e, types[i].ext))
			return types[i].type;
	}
	return "application/octet-stream";
}

/* Each asset's ETag: a hash of its bytes, made once. */
static char etags[64][24];

static const char *etag_of(size_t i)
{
	if (i >= sizeof(etags) / sizeof(etags[0]))
		return NULL;
	if (!etags[i][0])
		snprintf(etags[i], sizeof(etags[i]), "\"%016llx\"",
			 (unsigned long long)hmap_siphash(0x726f6c6c, 0x63616c6c, ui_assets[i].data, ui_assets[i].len));
	return etags[i];
}

static void serve(struct http_request *req, struct http_reply *rep, const char *name, size_t nlen)
{
	size_t i;

	for (i = 0; ui_assets[i].name; i++) {
		if (strlen(ui_assets[i].name) != nlen || memcmp(ui_assets[i].name, name, nlen))
			continue;
		rep->etag = etag_of(i);
		rep->cache_control = "no-cache"; /* keep it, but ask each time: 304 while unchanged */
		rep->content_type = type_of(ui_assets[i].name);
		if (rep->etag && req->if_none_match && strstr(req->if_none_match, rep->etag)) {
			reply_empty(rep, 304);
			return;
		}
		rep->status = 200;
		rep->body = (char *)ui_assets[i].data;
		rep->body_len = ui_assets[i].len;
		rep->body_static = true;
		return;
	}
	reply_error(rep, ERR_NOT_FOUND, "No such file.");
}

void ui_index(struct http_request *req, struct http_reply *rep)
{
	serve(req, rep, "index.html", 10);
}

void ui_file(struct http_request *req, struct http_reply *rep)
{
	serve(req, rep, req->param, req->param_len);
}

/* props: properties, gproc's non-unique registrations: any number of
 * sessions hold the same key, each with its own value. */
#include "handlers.h"

#include "../cluster/cluster.h"
#include "../server/reply.h"

void props_put(struct http_request *req, struct http_reply *rep)
{
	struct put_args a;
	struct store_entry *e;
	enum store_rc rc;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_put(req, rep, &a))
		goto out;
	if (req->app->cluster) {
		cluster_entry_put(req, rep, false, a.key, a.klen, a.value, a.vlen);
		goto out;
	}
	rc = store_prop_set(req->app->store, req->caller, a.key, a.klen, a.value, a.vlen, &e);
	if (rc == STORE_OK || rc == STORE_CREATED) {
		jw_entry_put(&a.w, e, "key");
		reply_jw(rep, rc == STORE_CREATED ? 201 : 200, &a.w);
	} else {
		reply_store_error(rep, rc);
	}
out:
	put_args_free(&a);
}

void props_get(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	struct jw w = { 0 };
	size_t klen;

	if (!need_key(req, rep, key, &klen))
		return;
	jw_lit(&w, "{");
	jw_field(&w, "key", key, klen);
	jw_lit(&w, ",\"holders\":");
	jw_entries(&w, store_prop_get(req->app->store, key, klen));
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
}

void props_delete(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	enum store_rc rc;
	size_t klen;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_key(req, rep, key, &klen) || !need_caller(req, rep))
		return;
	if (req->app->cluster) {
		cluster_entry_delete(req, rep, false, key, klen);
		return;
	}
	rc = store_prop_remove(req->app->store, req->caller, key, klen);
	if (rc != STORE_OK)
		reply_store_error(rep, rc);
	else
		reply_empty(rep, 204);
}

void props_list(struct http_request *req, struct http_reply *rep)
{
	struct store_key *page[LIST_LIMIT_MAX];
	struct list_args a;
	size_t n;
	bool more;

	if (!need_list(req, rep, &a))
		return;
	n = store_prop_page(req->app->store, a.prefix, a.plen, a.has_after ? a.after : NULL, a.alen,
			    a.limit, page, &more);
	reply_keys(rep, "props", page, n, more, "key", "holders");
}

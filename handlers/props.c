/* props: properties, gproc's non-unique registrations: any number of
 * sessions hold the same key, each with its own value. */
#include "handlers.h"

#include "../server/reply.h"

void props_put(struct http_request *req, struct http_reply *rep)
{
	struct put_args a;
	struct store_entry *e;
	enum store_rc rc;

	if (!need_put(req, rep, &a))
		goto out;
	rc = store_prop_set(req->app->store, req->caller, a.key, a.klen, a.value, a.vlen, &e);
	if (rc == STORE_OK || rc == STORE_CREATED)
		reply_json(rep, rc == STORE_CREATED ? 201 : 200, entry_put_json(e, "key"));
	else
		reply_store_error(rep, rc);
out:
	json_body_free(&a.body);
}

void props_get(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	size_t klen;
	struct store_key *k;
	cJSON *o, *arr;

	if (!need_key(req, rep, key, &klen))
		return;
	k = store_prop_get(req->app->store, key, klen);
	o = cJSON_CreateObject();
	arr = entries_json(k);
	if (!o || !arr || !cJSON_AddStringToObject(o, "key", key) || !cJSON_AddItemToObject(o, "holders", arr)) {
		cJSON_Delete(arr);
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
}

void props_delete(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	enum store_rc rc;
	size_t klen;

	if (!need_key(req, rep, key, &klen) || !need_caller(req, rep))
		return;
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
	reply_page(rep, "props", keys_json(page, n, "key", "holders"), more, n ? page[n - 1]->key : NULL);
}

/* names: unique names: register, look up (and await), unregister, list. */
#include "handlers.h"

#include <string.h>

#include "../server/reply.h"

/* {"key", "session", "value"} of an entry. */
static cJSON *name_json(const struct store_name *n)
{
	cJSON *o = cJSON_CreateObject();

	if (o && cJSON_AddStringToObject(o, "key", n->key) &&
	    cJSON_AddStringToObject(o, "session", n->owner->id) &&
	    cJSON_AddRawToObject(o, "value", n->value))
		return o;
	cJSON_Delete(o);
	return NULL;
}

void names_put(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	const struct json_member *v;
	struct json_body b = { 0 };
	struct store_name *n;
	enum store_rc rc;
	size_t klen;

	if (!need_key(req, rep, key, &klen) || !need_caller(req, rep) || !need_body(req, rep, &b))
		goto out;
	v = json_body_member(&b, "value");
	if (v && v->vlen > req->app->cfg->max_value) {
		reply_error(rep, ERR_PAYLOAD_TOO_LARGE, "The value is over --max-value bytes.");
		goto out;
	}
	rc = store_name_register(req->app->store, req->caller, key, klen,
				 v ? v->value : "null", v ? v->vlen : 4, &n);
	if (rc == STORE_E_NAME_TAKEN) {
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddStringToObject(o, "error", reply_error_code(ERR_NAME_TAKEN)) ||
		    !cJSON_AddStringToObject(o, "message", "Another session holds this name; owner is its id.") ||
		    !cJSON_AddStringToObject(o, "owner", n->owner->id)) {
			cJSON_Delete(o);
			o = NULL;
		}
		reply_json(rep, reply_error_status(ERR_NAME_TAKEN), o);
		goto out;
	}
	if (rc != STORE_OK && rc != STORE_CREATED) {
		reply_store_error(rep, rc);
		goto out;
	}
	reply_json(rep, rc == STORE_CREATED ? 201 : 200, name_json(n));
out:
	json_body_free(&b);
}

void names_get(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	struct store_name *n;
	enum store_rc rc;
	unsigned wait;
	size_t klen;

	if (!need_key(req, rep, key, &klen) || !query_wait(req, rep, &wait))
		return;
	n = store_name_get(req->app->store, key, klen);
	if (n) {
		reply_json(rep, 200, name_json(n));
		return;
	}
	switch (req->wake) {
	case STORE_WAKE_SHUTDOWN:
		reply_error(rep, ERR_SHUTTING_DOWN, NULL);
		return;
	case STORE_WAKE_TIMEOUT:
		break;
	case STORE_WAKE_FIRED:
		/* Registered and gone again before we answered: wait out the rest. */
		if (req->now < req->waiter.timer.deadline) {
			rc = store_name_await(req->app->store, key, klen, req->waiter.timer.deadline, &req->waiter);
			if (rc != STORE_OK)
				break;
			rep->suspend = true;
			return;
		}
		break;
	default:
		if (wait == 0)
			break;
		rc = store_name_await(req->app->store, key, klen, req->now + (uint64_t)wait * 1000, &req->waiter);
		if (rc != STORE_OK) {
			reply_store_error(rep, rc);
			return;
		}
		rep->suspend = true;
		return;
	}
	reply_error(rep, ERR_NAME_NOT_FOUND, NULL);
}

void names_delete(struct http_request *req, struct http_reply *rep)
{
	char key[STORE_KEY_MAX + 1];
	enum store_rc rc;
	size_t klen;

	if (!need_key(req, rep, key, &klen) || !need_caller(req, rep))
		return;
	rc = store_name_delete(req->app->store, req->caller, key, klen);
	if (rc != STORE_OK)
		reply_store_error(rep, rc);
	else
		reply_empty(rep, 204);
}

void names_list(struct http_request *req, struct http_reply *rep)
{
	struct store_name *page[LIST_LIMIT_MAX];
	char prefix[STORE_KEY_MAX + 1], after[STORE_KEY_MAX + 1];
	size_t limit, plen, alen, n, i;
	bool has_prefix, has_after, more;
	cJSON *o, *arr;

	if (!query_limit(req, rep, &limit) ||
	    !query_text(req, rep, "prefix", prefix, &plen, &has_prefix) ||
	    !query_text(req, rep, "after", after, &alen, &has_after))
		return;
	n = store_name_page(req->app->store, prefix, plen, has_after ? after : NULL, alen, limit, page, &more);
	o = cJSON_CreateObject();
	arr = o ? cJSON_AddArrayToObject(o, "names") : NULL;
	for (i = 0; arr && i < n; i++) {
		cJSON *e = name_json(page[i]);
		if (!e || !cJSON_AddItemToArray(arr, e)) {
			cJSON_Delete(e);
			arr = NULL;
		}
	}
	if (!arr || !(more && n ? cJSON_AddStringToObject(o, "next", page[n - 1]->key)
				: cJSON_AddNullToObject(o, "next"))) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
}

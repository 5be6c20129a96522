/* names: unique names: register, look up (and await), unregister, list. */
#include "handlers.h"

#include <string.h>

#include "../cluster/cluster.h"
#include "../server/reply.h"

/* {"key", "session", "value"} of a name. */
static void jw_name(struct jw *w, const struct store_name *n)
{
	jw_lit(w, "{");
	jw_field(w, "key", n->key, n->klen);
	jw_lit(w, ",");
	jw_field(w, "session", n->owner->id, STORE_ID_LEN);
	jw_lit(w, ",\"value\":");
	jw_raw(w, n->value, n->vlen);
	jw_lit(w, "}");
}

static void reply_name(struct http_reply *rep, int status, const struct store_name *n)
{
	struct jw w = { 0 };

	jw_name(&w, n);
	reply_jw(rep, status, &w);
}

void names_put(struct http_request *req, struct http_reply *rep)
{
	struct put_args a;
	struct store_name *n;
	enum store_rc rc;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_put(req, rep, &a))
		goto out;
	if (req->app->cluster) {
		cluster_name_put(req, rep, a.key, a.klen, a.value, a.vlen);
		goto out;
	}
	rc = store_name_register(req->app->store, req->caller, a.key, a.klen, a.value, a.vlen, &n);
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
	jw_name(&a.w, n);
	reply_jw(rep, rc == STORE_CREATED ? 201 : 200, &a.w);
out:
	put_args_free(&a);
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
		reply_name(rep, 200, n);
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

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_key(req, rep, key, &klen) || !need_caller(req, rep))
		return;
	if (req->app->cluster) {
		cluster_name_delete(req, rep, key, klen);
		return;
	}
	rc = store_name_delete(req->app->store, req->caller, key, klen);
	if (rc != STORE_OK)
		reply_store_error(rep, rc);
	else
		reply_empty(rep, 204);
}

void names_list(struct http_request *req, struct http_reply *rep)
{
	struct store_name *page[LIST_LIMIT_MAX];
	struct list_args a;
	struct jw w = { 0 };
	size_t n, i;
	bool more;

	if (!need_list(req, rep, &a))
		return;
	n = store_name_page(req->app->store, a.prefix, a.plen, a.has_after ? a.after : NULL, a.alen,
			    a.limit, page, &more);
	jw_page_open(&w, "names");
	for (i = 0; i < n; i++) {
		if (i)
			jw_lit(&w, ",");
		jw_name(&w, page[i]);
	}
	jw_page_close(&w, more, n ? page[n - 1]->key : NULL, n ? page[n - 1]->klen : 0);
	reply_jw(rep, 200, &w);
}

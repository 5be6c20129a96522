/* groups: sets of member sessions that peers discover, and that a sender
 * picks one member of (random, round robin, or rendezvous hash). */
#include "handlers.h"

#include <string.h>

#include "../cluster/cluster.h"
#include "../server/reply.h"

void groups_put(struct http_request *req, struct http_reply *rep)
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
		cluster_entry_put(req, rep, true, a.key, a.klen, a.value, a.vlen);
		goto out;
	}
	rc = store_group_join(req->app->store, req->caller, a.key, a.klen, a.value, a.vlen, &e);
	if (rc == STORE_OK || rc == STORE_CREATED) {
		jw_entry_put(&a.w, e, "group");
		reply_jw(rep, rc == STORE_CREATED ? 201 : 200, &a.w);
	} else {
		reply_store_error(rep, rc);
	}
out:
	put_args_free(&a);
}

/* ?pick=random|round_robin|hash (&hash_key=K): *present false when there
 * is no pick; 400 bad_request for another strategy or hash without a key. */
static bool query_pick(struct http_request *req, struct http_reply *rep, bool *present,
		       enum store_pick *how, char *hk, size_t *hklen)
{
	char v[STORE_KEY_MAX + 1];
	size_t n;
	bool has_hk;

	if (!query_text(req, rep, "pick", v, &n, present))
		return false;
	if (!*present)
		return true;
	if (!need_pick(rep, v, how) || !query_text(req, rep, "hash_key", hk, hklen, &has_hk))
		return false;
	if (*how == STORE_PICK_HASH && !has_hk) {
		reply_error(rep, ERR_BAD_REQUEST, "pick=hash needs a hash_key.");
		return false;
	}
	return true;
}

void groups_get(struct http_request *req, struct http_reply *rep)
{
	char group[STORE_KEY_MAX + 1], hk[STORE_KEY_MAX + 1];
	size_t glen, hklen = 0;
	enum store_pick how = STORE_PICK_RANDOM;
	struct store_entry *e = NULL;
	struct jw w = { 0 };
	enum store_rc rc;
	bool pick;

	if (!need_key(req, rep, group, &glen) || !query_pick(req, rep, &pick, &how, hk, &hklen))
		return;
	if (pick) {
		rc = store_group_pick(req->app->store, group, glen, how, hk, hklen, &e);
		if (rc != STORE_OK) {
			reply_store_error(rep, rc);
			return;
		}
	}
	jw_lit(&w, "{");
	jw_field(&w, "group", group, glen);
	if (pick) {
		jw_lit(&w, ",\"member\":");
		jw_entry(&w, e);
	} else {
		jw_lit(&w, ",\"members\":");
		jw_entries(&w, store_group_get(req->app->store, group, glen));
	}
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
}

void groups_delete(struct http_request *req, struct http_reply *rep)
{
	char group[STORE_KEY_MAX + 1];
	enum store_rc rc;
	size_t glen;

	if (req->cl_op) {
		cluster_answer(req, rep);
		return;
	}
	if (!need_key(req, rep, group, &glen) || !need_caller(req, rep))
		return;
	if (req->app->cluster) {
		cluster_entry_delete(req, rep, true, group, glen);
		return;
	}
	rc = store_group_leave(req->app->store, req->caller, group, glen);
	if (rc != STORE_OK)
		reply_store_error(rep, rc);
	else
		reply_empty(rep, 204);
}

void groups_list(struct http_request *req, struct http_reply *rep)
{
	struct store_key *page[LIST_LIMIT_MAX];
	struct list_args a;
	size_t n;
	bool more;

	if (!need_list(req, rep, &a))
		return;
	n = store_group_page(req->app->store, a.prefix, a.plen, a.has_after ? a.after : NULL, a.alen,
			     a.limit, page, &more);
	reply_keys(rep, "groups", page, n, more, "group", "members");
}

/* calls: request and reply by name (GenServer.call over HTTP). The caller's
 * request waits suspended until the receiver replies, its timeout, or the
 * receiver's session ends; a caller that goes away cancels its call. */
#include "handlers.h"

#include <math.h>
#include <string.h>

#include "../cluster/cluster.h"
#include "../server/reply.h"

#define CALL_TIMEOUT_DEFAULT_MS 5000
#define CALL_TIMEOUT_MAX_MS 300000

static void free_call(struct http_request *req)
{
	store_call_free(req->state);
	req->state = NULL;
}

/* The answer of a call that has ended, by why its caller woke. */
static void call_answer(struct http_request *req, struct http_reply *rep)
{
	const struct store_call *c = req->state;
	struct jw w = { 0 };

	switch (req->wake) {
	case STORE_WAKE_FIRED:
		jw_lit(&w, "{\"body\":");
		jw_raw(&w, c->reply, c->rlen);
		jw_lit(&w, ",");
		jw_field(&w, "from", c->from, STORE_ID_LEN);
		jw_lit(&w, "}");
		reply_jw(rep, 200, &w);
		break;
	case STORE_WAKE_TIMEOUT:
		reply_error(rep, ERR_CALL_TIMEOUT, NULL);
		break;
	case STORE_WAKE_GONE:
		reply_error(rep, ERR_RECEIVER_GONE, NULL);
		break;
	default:
		reply_error(rep, ERR_SHUTTING_DOWN, NULL);
		break;
	}
}

/* "timeout_ms": 1 to 300000, default 5000: 400 bad_request otherwise. */
static bool body_timeout(const struct json_body *b, struct http_reply *rep, uint64_t *ms)
{
	const cJSON *t = json_body_get(b, "timeout_ms");
	double d;

	*ms = CALL_TIMEOUT_DEFAULT_MS;
	if (!t)
		return true;
	d = cJSON_IsNumber(t) ? t->valuedouble : -1;
	if (!isfinite(d) || d < 1 || d > CALL_TIMEOUT_MAX_MS || d != floor(d)) {
		reply_error(rep, ERR_BAD_REQUEST, "timeout_ms must be a whole number from 1 to 300000.");
		return false;
	}
	*ms = (uint64_t)d;
	return true;
}

/* A call to a session homed on another node (a cluster): parked here, its
 * message sent to the receiver's home, its reply forwarded back by id. */
static void call_elsewhere(struct http_request *req, struct http_reply *rep, const struct json_body *b,
			   const struct target *t, struct store_session *to, struct store_entry *rr, uint64_t ms)
{
	struct store *st = req->app->store;
	const struct json_member *body = json_body_member(b, "body"), *tm = json_body_member(b, "to");
	struct store_payload *p = NULL;
	struct store_call *c;
	enum store_rc rc;

	rc = store_call_park(st, to, req->now + ms, &req->waiter, &c);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		if (rr) /* the server failed, not the member: it keeps its turn */
			store_group_unpick(rr);
		return;
	}
	req->state = c;
	req->cleanup = free_call;
	p = store_payload_new(req->caller ? req->caller->id : NULL, tm->value, tm->vlen, body ? body->value : "null",
			      body ? body->vlen : 4);
	if (p)
		memcpy(p->reply_to, c->id, STORE_CALL_ID_LEN + 1);
	if (p && cluster_call_to(req, rep, to, p, c, rr ? t->key : NULL, t->klen)) {
		rep->suspend = true;
	} else {
		if (!p) {
			reply_store_error(rep, STORE_E_NOMEM);
			if (rr)
				store_group_unpick(rr);
		}
		store_waiter_cancel(st, &req->waiter);
	}
	store_payload_unref(p);
}

void calls_start(struct http_request *req, struct http_reply *rep)
{
	struct json_body b = { 0 };
	const struct json_member *body;
	struct store_session *to;
	struct store_entry *rr;
	struct store_call *c;
	struct target t;
	enum store_rc rc;
	uint64_t ms;

	if (req->wake) { /* resumed: the call has ended */
		if (req->app->cluster && cluster_call_failed(req, rep))
			return; /* its message could not reach the receiver's home, or that home was lost */
		call_answer(req, rep);
		return;
	}
	if (!need_message(req, rep, &b, &t, &body) || !body_timeout(&b, rep, &ms))
		goto out;
	if (t.kind == T_PROP || (t.kind == T_GROUP && !t.pick)) {
		reply_error(rep, ERR_BAD_REQUEST, "A call has one receiver: a name, a session, or a group with pick.");
		goto out;
	}
	if (!target_single(req, rep, &t, &to, &rr))
		goto out;
	if (to->remote) { /* the call waits here; its message goes to the receiver's home */
		call_elsewhere(req, rep, &b, &t, to, rr, ms);
		goto out;
	}
	rc = store_call_start(req->app->store, to, req->caller ? req->caller->id : NULL,
			      json_body_member(&b, "to")->value, json_body_member(&b, "to")->vlen,
			      body ? body->value : "null", body ? body->vlen : 4, req->now + ms, &req->waiter, &c);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		if (rr && rc != STORE_E_MAILBOX_FULL) /* the server failed, not the member: it keeps its turn */
			store_group_unpick(rr);
		goto out;
	}
	req->state = c;
	req->cleanup = free_call;
	rep->suspend = true;
out:
	json_body_free(&b);
}

void calls_reply(struct http_request *req, struct http_reply *rep)
{
	struct json_body b = { 0 };
	const struct json_member *body;
	enum store_rc rc;

	if (req->cl_op) { /* a reply sent to the caller's node has been answered */
		cluster_answer(req, rep);
		return;
	}
	if (!req->token) {
		reply_error(rep, ERR_MISSING_TOKEN, NULL);
		return;
	}
	if (!need_body(req, rep, &b))
		goto out;
	body = json_body_member(&b, "body");
	if (body && body->vlen > req->app->cfg->max_value) {
		reply_error(rep, ERR_PAYLOAD_TOO_LARGE, "The body is over --max-value bytes.");
		goto out;
	}
	/* a call held by another node: the reply goes there */
	if (req->app->cluster &&
	    cluster_reply_elsewhere(req, rep, body ? body->value : "null", body ? body->vlen : 4))
		goto out;
	rc = store_call_reply(req->app->store, req->param, req->param_len, req->caller,
			      body ? body->value : "null", body ? body->vlen : 4);
	if (rc == STORE_E_NOT_RECEIVER)
		reply_error(rep, ERR_BAD_TOKEN, "This token is not the called session's.");
	else if (rc != STORE_OK)
		reply_store_error(rep, rc);
	else
		reply_empty(rep, 204);
out:
	json_body_free(&b);
}

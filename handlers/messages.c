/* messages: send-to-name (gproc's send) and the long-poll receive of a
 * session's mailbox. A target is a name, a session, every holder of a
 * property, every member of a group, or one picked member. */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

#include "../cluster/cluster.h"
#include "../cluster/mail.h"
#include "../server/reply.h"
#include "../server/uri.h"

/* A string member of the target object, checked as a key: 400 invalid_key. */
static bool target_key(const cJSON *v, struct http_reply *rep, const char **key, size_t *klen)
{
	size_t n;

	if (!cJSON_IsString(v)) {
		reply_error(rep, ERR_BAD_REQUEST, "The target's key must be a string.");
		return false;
	}
	n = strlen(v->valuestring);
	if (n < 1 || n > STORE_KEY_MAX || !uri_text_ok(v->valuestring, n)) {
		reply_error(rep, ERR_INVALID_KEY, NULL);
		return false;
	}
	*key = v->valuestring;
	*klen = n;
	return true;
}

/* Reads "to": exactly one of name, session, prop, group (with an optional
 * pick and hash_key for a group). 400 bad_request or invalid_key. */
bool need_target(const struct json_body *b, struct http_reply *rep, struct target *t)
{
	static const char *const kinds[] = { "name", "session", "prop", "group" };
	const struct json_member *raw = json_body_member(b, "to");
	const cJSON *to = json_body_get(b, "to"), *v = NULL, *pick, *hk;
	int i, found = 0;

	memset(t, 0, sizeof(*t));
	if (!cJSON_IsObject(to)) {
		reply_error(rep, ERR_BAD_REQUEST, "to must be an object: {\"name\"}, {\"session\"}, {\"prop\"} or {\"group\"}.");
		return false;
	}
	for (i = 0; i < 4; i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(to, kinds[i]);
		if (x) {
			found++;
			t->kind = (enum target_kind)i;
			v = x;
		}
	}
	if (found != 1) {
		reply_error(rep, ERR_BAD_REQUEST, "to must name exactly one of name, session, prop or group.");
		return false;
	}
	if (json_has_escaped_nul(raw->value, raw->vlen)) {
		reply_error(rep, ERR_INVALID_KEY, NULL);
		return false;
	}
	if (!target_key(v, rep, &t->key, &t->klen))
		return false;
	pick = cJSON_GetObjectItemCaseSensitive(to, "pick");
	hk = cJSON_GetObjectItemCaseSensitive(to, "hash_key");
	if (!pick && !hk)
		return true;
	if (t->kind != T_GROUP || !cJSON_IsString(pick)) {
		reply_error(rep, ERR_BAD_REQUEST, "pick is a string, and only for a group target.");
		return false;
	}
	t->pick = true;
	if (!need_pick(rep, pick->valuestring, &t->how))
		return false;
	if (t->how == STORE_PICK_HASH) {
		if (!cJSON_IsString(hk)) {
			reply_error(rep, ERR_BAD_REQUEST, "pick hash needs a string hash_key.");
			return false;
		}
		t->hash_key = hk->valuestring;
		t->hklen = strlen(hk->valuestring);
	}
	return true;
}

/* Delivers p to every entry of k, all or nothing, and writes the answer
 * into w: {"delivered": n, "full": [ids]}. Room for all of it is made
 * before anything is delivered. False when memory ran out (answered 503). */
static bool broadcast(struct http_request *req, struct http_reply *rep, const struct store_key *k,
		      struct store_payload *p, struct jw *w)
{
	size_t n = k ? k->n : 0, i = 0, nl = 0, nr = 0, delivered = 0;
	struct store_session **to = malloc((n ? n : 1) * sizeof(*to));
	bool *full = malloc(n ? n : 1), ok = false, first = true;
	const struct store_entry *e;
	struct jw ids = { 0 }; /* the full ones' ids, quoted, comma-separated */

	if (!to || !full || !need_room(rep, w, 64 + n * (STORE_ID_LEN + 3)) || !jw_grow(&ids, n * (STORE_ID_LEN + 3)))
		goto out;
	/* this node's receivers first, then those homed elsewhere (a cluster) */
	for (e = k ? k->head : NULL; e; e = e->k_next)
		if (!e->session->remote)
			to[nl++] = e->session;
	for (e = k ? k->head : NULL; e; e = e->k_next)
		if (e->session->remote)
			to[nl + nr++] = e->session;
	if (store_mailbox_push_all(req->app->store, to, nl, p, full, &delivered) != STORE_OK)
		goto out;
	for (i = 0; i < nl; i++) {
		if (!full[i])
			continue;
		if (!first)
			jw_lit(&ids, ",");
		first = false;
		jw_str(&ids, to[i]->id, STORE_ID_LEN);
	}
	if (req->app->cluster) {
		/* one forward per node that homes receivers; it answers for all */
		cluster_fanout(req, rep, to + nl, nr, p, delivered, ids.buf, ids.len);
		ok = true;
		goto out;
	}
	jw_lit(w, "{\"delivered\":");
	jw_u64(w, delivered);
	jw_lit(w, ",\"full\":[");
	jw_raw(w, ids.buf ? ids.buf : "", ids.len);
	jw_lit(w, "]}");
	ok = true;
out:
	if (!ok && rep->status != 503)
		reply_error(rep, ERR_NO_MEMORY, NULL);
	free(ids.buf);
	free(to);
	free(full);
	return ok;
}

/* One message item of a batch from another node: {"from", "to", "body",
 * "receivers": [ids homed here], "reply_to"?}. Its result goes into w:
 * {"delivered", "full": [ids], "gone": [ids]}. False when memory ran out. */
static bool deliver_message(struct http_request *req, const struct json_body *b, struct jw *w)
{
	const struct json_member *to = json_body_member(b, "to"), *body = json_body_member(b, "body");
	const cJSON *from = json_body_get(b, "from"), *rcv = json_body_get(b, "receivers");
	const cJSON *rt = json_body_get(b, "reply_to"), *id;
	size_t cap = (size_t)cJSON_GetArraySize(rcv) + 1, n = 0, i, delivered = 0;
	struct store_session **ss = malloc(cap * sizeof(*ss));
	bool *full = malloc(cap), first = true, ok = false;
	struct store_payload *p = NULL;
	struct jw gone = { 0 };

	if (!ss || !full)
		goto out;
	p = store_payload_new(cJSON_IsString(from) && strlen(from->valuestring) == STORE_ID_LEN ? from->valuestring : NULL,
			      to->value, to->vlen, body->value, body->vlen);
	if (!p)
		goto out;
	if (cJSON_IsString(rt) && strlen(rt->valuestring) == STORE_CALL_ID_LEN)
		memcpy(p->reply_to, rt->valuestring, STORE_CALL_ID_LEN + 1);
	cJSON_ArrayForEach(id, rcv) {
		struct store_session *s = cJSON_IsString(id) ? store_session_find(req->app->store, req->now, id->valuestring,
										     strlen(id->valuestring)) : NULL;
		if (s && !s->remote) {
			ss[n++] = s;
		} else if (cJSON_IsString(id) && strlen(id->valuestring) == STORE_ID_LEN) { /* it ended meanwhile */
			if (gone.len)
				jw_lit(&gone, ",");
			jw_str(&gone, id->valuestring, STORE_ID_LEN);
		}
	}
	if (store_mailbox_push_all(req->app->store, ss, n, p, full, &delivered) != STORE_OK || gone.oom)
		goto out;
	jw_lit(w, "{\"delivered\":");
	jw_u64(w, delivered);
	jw_lit(w, ",\"full\":[");
	for (i = 0; i < n; i++) {
		if (!full[i])
			continue;
		if (!first)
			jw_lit(w, ",");
		first = false;
		jw_str(w, ss[i]->id, STORE_ID_LEN);
	}
	jw_lit(w, "],\"gone\":[");
	jw_raw(w, gone.buf ? gone.buf : "", gone.len);
	jw_lit(w, "]}");
	ok = true;
out:
	free(gone.buf);
	free(ss);
	free(full);
	store_payload_unref(p);
	return ok;
}

/* A reply item: {"reply": call id, "by": replier's id, "body"}; result
 * {"status": 204} or {"error": code}. False when memory ran out. */
static bool deliver_reply(struct http_request *req, const struct json_body *b, struct jw *w)
{
	const cJSON *id = json_body_get(b, "reply"), *by = json_body_get(b, "by");
	const struct json_member *body = json_body_member(b, "body");
	struct store_session *s = cJSON_IsString(by) ? store_session_find(req->app->store, req->now, by->valuestring,
									    strlen(by->valuestring)) : NULL;
	enum store_rc rc;

	rc = store_call_reply(req->app->store, id->valuestring, strlen(id->valuestring), s,
			      body ? body->value : "null", body ? body->vlen : 4);
	if (rc == STORE_E_NOMEM)
		return false;
	if (rc == STORE_OK)
		jw_lit(w, "{\"status\":204}");
	else if (rc == STORE_E_NOT_RECEIVER)
		jw_lit(w, "{\"error\":\"bad_token\"}");
	else
		jw_lit(w, "{\"error\":\"call_not_found\"}");
	return true;
}

/* POST /internal/deliver, from another node only (its secret): a batch of
 * items for the sessions homed here (cluster/mail.h), a JSON array; the
 * answer is 200 with an array of results, one per item, in order. Items
 * are taken in order: per sender and receiver, messages keep their order. */
void messages_deliver(struct http_request *req, struct http_reply *rep)
{
	struct json_span *items = NULL;
	struct jw w = { 0 };
	const char *why = NULL;
	long n, i;

	if (!cluster_from_node(req)) {
		reply_error(rep, ERR_NOT_FOUND, NULL);
		return;
	}
	items = malloc(MAIL_MAX_ITEMS * sizeof(*items));
	if (!items)
		goto nomem;
	n = json_array_split(req->body ? req->body : "", req->body_len, items, MAIL_MAX_ITEMS, &why);
	if (n < 0) {
		reply_error(rep, ERR_BAD_REQUEST, why);
		goto out;
	}
	jw_lit(&w, "[");
	for (i = 0; i < n; i++) {
		struct json_body b = { 0 };
		const cJSON *reply, *touch, *rcv;
		bool ok = true;
		if (i)
			jw_lit(&w, ",");
		enum json_body_rc rc = json_body_parse(items[i].p, items[i].n, &b, &why);
		if (rc == JSON_BODY_NOMEM) {
			ok = false;
		} else if (rc != JSON_BODY_OK) {
			jw_lit(&w, "{\"error\":\"bad_request\"}");
		} else if (cJSON_IsString(reply = json_body_get(&b, "reply"))) {
			ok = deliver_reply(req, &b, &w);
		} else if (cJSON_IsString(touch = json_body_get(&b, "touch"))) {
			/* a sign of life of a session homed here, seen by another node */
			struct store_session *s = store_session_find(req->app->store, req->now, touch->valuestring,
								      strlen(touch->valuestring));
			if (s && !s->remote)
				store_session_heartbeat(req->app->store, req->now, s, 0);
			jw_lit(&w, "{\"status\":204}");
		} else if (json_body_member(&b, "to") && json_body_member(&b, "body") &&
			   cJSON_IsArray(rcv = json_body_get(&b, "receivers"))) {
			ok = deliver_message(req, &b, &w);
		} else {
			jw_lit(&w, "{\"error\":\"bad_request\"}");
		}
		json_body_free(&b);
		if (!ok)
			goto nomem;
	}
	jw_lit(&w, "]");
	if (w.oom)
		goto nomem;
	reply_jw(rep, 200, &w);
	goto out;
nomem:
	reply_error(rep, ERR_NO_MEMORY, NULL);
out:
	free(w.buf);
	free(items);
}

bool target_single(struct http_request *req, struct http_reply *rep, const struct target *t,
		   struct store_session **to, struct store_entry **rr)
{
	struct store *st = req->app->store;
	struct store_entry *e;
	struct store_name *n;
	enum store_rc rc;

	*to = NULL;
	*rr = NULL;
	switch (t->kind) {
	case T_NAME:
		n = store_name_get(st, t->key, t->klen);
		if (!n) {
			reply_error(rep, ERR_NAME_NOT_FOUND, NULL);
			return false;
		}
		*to = n->owner;
		break;
	case T_SESSION:
		*to = store_session_find(st, req->now, t->key, t->klen);
		if (!*to) {
			reply_error(rep, ERR_SESSION_NOT_FOUND, NULL);
			return false;
		}
		break;
	case T_GROUP:
		if (!t->pick)
			break;
		rc = store_group_pick(st, t->key, t->klen, t->how, t->hash_key, t->hklen, &e);
		if (rc != STORE_OK) {
			reply_store_error(rep, rc);
			return false;
		}
		*to = e->session;
		if (t->how == STORE_PICK_ROUND_ROBIN)
			*rr = e;
		break;
	case T_PROP:
		break;
	}
	return true;
}

bool need_message(struct http_request *req, struct http_reply *rep, struct json_body *b, struct target *t,
		  const struct json_member **body)
{
	if (req->token && !req->caller) {
		reply_error(rep, ERR_BAD_TOKEN, NULL);
		return false;
	}
	if (!need_body(req, rep, b) || !need_target(b, rep, t))
		return false;
	*body = json_body_member(b, "body");
	if (*body && (*body)->vlen > req->app->cfg->max_value) {
		reply_error(rep, ERR_PAYLOAD_TOO_LARGE, "The body is over --max-value bytes.");
		return false;
	}
	return true;
}

void messages_send(struct http_request *req, struct http_reply *rep)
{
	struct store *st = req->app->store;
	struct json_body b = { 0 };
	const struct json_member *body;
	struct store_session *to = NULL;
	struct store_payload *p = NULL;
	struct store_entry *rr = NULL;
	struct target t;
	enum store_rc rc;
	struct jw w = { 0 };

	if (req->cl_op) { /* a broadcast's forwards have answered */
		cluster_answer(req, rep);
		return;
	}
	/* One receiver, found first, so that a missing one is a 404. */
	if (!need_message(req, rep, &b, &t, &body) || !target_single(req, rep, &t, &to, &rr))
		goto out;
	p = store_payload_new(req->caller ? req->caller->id : NULL, json_body_member(&b, "to")->value,
			      json_body_member(&b, "to")->vlen, body ? body->value : "null", body ? body->vlen : 4);
	if (!p)
		goto fail;
	if (!to) {
		if (broadcast(req, rep, t.kind == T_PROP ? store_prop_get(st, t.key, t.klen)
							 : store_group_get(st, t.key, t.klen), p, &w) && !rep->suspend &&
		    !req->app->cluster)
			reply_jw(rep, 202, &w);
		goto out;
	}
	if (to->remote) { /* its home has its mailbox: the send goes there */
		cluster_send_to(req, rep, to, p, rr ? t.key : NULL, t.klen);
		goto out;
	}
	if (!jw_grow(&w, 32))
		goto fail;
	rc = store_mailbox_push(st, to, p);
	if (rc != STORE_OK) {
		reply_store_error(rep, rc);
		if (rc == STORE_E_MAILBOX_FULL)
			goto out; /* a full member loses its turn: the next send goes on */
		goto undo;
	}
	jw_lit(&w, "{\"delivered\":1}");
	reply_jw(rep, 202, &w);
	goto out;
fail:
	reply_store_error(rep, STORE_E_NOMEM);
undo:
	if (rr) /* the server failed, not the member: it keeps its turn */
		store_group_unpick(rr);
out:
	free(w.buf);
	store_payload_unref(p);
	json_body_free(&b);
}

/* {"messages": [up to max after the acknowledged ones], "last_seq"}. */
static void reply_messages(struct http_reply *rep, const struct store_session *s, size_t max)
{
	const struct store_msg *m;
	struct jw w = { 0 };
	size_t n = 0;

	jw_lit(&w, "{\"messages\":[");
	for (m = s->mq_head; m && n < max; m = m->next, n++) {
		jw_lit(&w, n ? ",{\"seq\":" : "{\"seq\":");
		jw_u64(&w, m->seq);
		jw_lit(&w, ",\"from\":");
		if (m->p->from[0])
			jw_str(&w, m->p->from, STORE_ID_LEN);
		else
			jw_lit(&w, "null");
		jw_lit(&w, ",\"to\":");
		jw_raw(&w, m->p->to, m->p->tolen);
		jw_lit(&w, ",\"body\":");
		jw_raw(&w, m->p->body, m->p->blen);
		if (m->p->reply_to[0]) {
			jw_lit(&w, ",");
			jw_field(&w, "reply_to", m->p->reply_to, STORE_CALL_ID_LEN);
		}
		jw_lit(&w, "}");
	}
	jw_lit(&w, "],\"last_seq\":");
	jw_u64(&w, s->last_seq);
	jw_lit(&w, "}");
	reply_jw(rep, 200, &w);
}

void messages_receive(struct http_request *req, struct http_reply *rep)
{
	struct store_session *s;
	uint64_t after, deadline;
	unsigned wait;
	size_t max;
	enum store_rc rc;

	/* A session that ended while this receive waited is a 404 here. */
	if (!need_own_session(req, rep, &s) || !query_uint(req, rep, "after", 0, &after) ||
	    !query_wait(req, rep, &wait) || !query_max(req, rep, &max))
		return;
	/* An after past the last seq given out would swallow messages not yet
	 * sent when this receive wakes: only what was given out is acknowledged,
	 * and a woken receive goes on from where it began. */
	if (req->wake)
		after = req->saved;
	else if (after > s->last_seq)
		after = s->last_seq;
	req->saved = after;
	store_mailbox_ack(req->app->store, s, after);
	switch (req->wake) {
	case STORE_WAKE_SHUTDOWN:
		reply_error(rep, ERR_SHUTTING_DOWN, NULL);
		return;
	case STORE_WAKE_REPLACED: /* a newer receive took over: this one ends empty */
		max = 0;
		break;
	case STORE_WAKE_TIMEOUT:
		break;
	case STORE_WAKE_FIRED:
	case STORE_WAKE_GONE:
	default:
		if (s->mq_head || wait == 0)
			break;
		/* Nothing yet: wait, or after a wake-up whose message another
		 * receive already acknowledged, wait out the rest. */
		deadline = req->wake ? req->waiter.timer.deadline : req->now + (uint64_t)wait * 1000;
		if (deadline <= req->now)
			break;
		rc = store_receive_wait(req->app->store, s, deadline, &req->waiter);
		if (rc != STORE_OK) {
			reply_store_error(rep, rc);
			return;
		}
		rep->suspend = true;
		return;
	}
	reply_messages(rep, s, max);
}

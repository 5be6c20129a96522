/* ops: operational endpoints (health now; metrics and stats later). */
#include "handlers.h"

#include "../server/reply.h"

void ops_healthz(struct http_request *req, struct http_reply *rep)
{
	cJSON *o = cJSON_CreateObject();

	(void)req;
	if (o && !cJSON_AddStringToObject(o, "status", "ok")) {
		cJSON_Delete(o);
		o = NULL;
	}
	reply_json(rep, 200, o);
}

-- wrk script: POST /v1/sessions/<id>/heartbeat with the session token and an
-- empty body (Content-Length: 0). The path comes from the URL given to wrk.
-- Environment: ROLLCALL_TOKEN (the session token).

local token = os.getenv("ROLLCALL_TOKEN")
if not token or token == "" then
   error("ROLLCALL_TOKEN is not set")
end

wrk.method = "POST"
wrk.body = ""
wrk.headers["X-Session-Token"] = token

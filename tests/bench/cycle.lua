-- wrk script: PUT then DELETE of a fresh key under the URL's path (a name
-- for /v1/names/cycle, a group membership for /v1/groups/cycle), pipelined
-- on one connection.
--
-- request() returns the two requests as one pipelined batch, so wrk sends
-- them together on the same connection and the server answers them in order:
-- the DELETE always finds the key its own PUT just made (no race with
-- other connections). wrk counts each of the two answers in Requests/sec; its
-- latency figures are per batch, i.e. per PUT+DELETE cycle.
--
-- Keys are <path>-<thread>-<n>, unique per request() call, so no two
-- connections ever touch the same key.
-- Environment: ROLLCALL_TOKEN (the session token).

local token = os.getenv("ROLLCALL_TOKEN")
if not token or token == "" then
   error("ROLLCALL_TOKEN is not set")
end

local threads = 0
function setup(thread)
   thread:set("tid", threads)
   threads = threads + 1
end

local n = 0
local body = '{"value":{"host":"10.0.0.2","port":80}}'

function request()
   n = n + 1
   local path = wrk.path .. "-" .. tostring(tid or 0) .. "-" .. n
   local put = wrk.format("PUT", path,
      { ["X-Session-Token"] = token, ["Content-Type"] = "application/json" },
      body)
   local del = wrk.format("DELETE", path, { ["X-Session-Token"] = token }, nil)
   return put .. del
end

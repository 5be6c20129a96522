-- wrk script: PUT then DELETE of a fresh name, pipelined on one connection.
--
-- request() returns the two requests as one pipelined batch, so wrk sends
-- them together on the same connection and the server answers them in order:
-- the DELETE always finds the name its own PUT just registered (no race with
-- other connections). wrk counts each of the two answers in Requests/sec; its
-- latency figures are per batch, i.e. per PUT+DELETE cycle.
--
-- Names are cycle-<thread>-<n>, unique per request() call, so no two
-- connections ever touch the same name.
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
   local path = "/v1/names/cycle-" .. tostring(tid or 0) .. "-" .. n
   local put = wrk.format("PUT", path,
      { ["X-Session-Token"] = token, ["Content-Type"] = "application/json" },
      body)
   local del = wrk.format("DELETE", path, { ["X-Session-Token"] = token }, nil)
   return put .. del
end

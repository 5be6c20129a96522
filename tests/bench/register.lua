-- wrk script (make bench-cluster): registers a new name with every request,
-- PUT <path>-<n> {"value":{"n":<n>}}, where <path> is the URL's path (e.g.
-- /v1/names/reg), with the token of one of the sessions in turn.
-- Every answer should be 201; wrk counts any other as non-2xx (a 409 or 503
-- is one), and done() prints how many of each status came back.
-- Environment: ROLLCALL_TOKENS (session tokens, comma separated).

local list = os.getenv("ROLLCALL_TOKENS")
if not list or list == "" then
   error("ROLLCALL_TOKENS is not set")
end
local tokens = {}
for t in string.gmatch(list, "[^,]+") do
   tokens[#tokens + 1] = t
end

local threads = {}
function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local n = 0
statuses = {}

function request()
   n = n + 1
   local tok = tokens[(n % #tokens) + 1]
   return wrk.format("PUT", wrk.path .. "-" .. tostring(tid or 0) .. "-" .. n,
      { ["X-Session-Token"] = tok, ["Content-Type"] = "application/json" },
      '{"value":{"n":' .. n .. '}}')
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses")
      for k, v in pairs(s or {}) do
         total[k] = (total[k] or 0) + v
      end
   end
   local keys = {}
   for k in pairs(total) do keys[#keys + 1] = k end
   table.sort(keys)
   for _, k in ipairs(keys) do
      io.write(string.format("status %d: %d\n", k, total[k]))
   end
end

-- wrk script (make bench-cluster): the transaction rollcall's cluster mode
-- sends to etcd to register a name, sent straight to etcd's JSON gateway
-- (POST /v3/kv/txn, keys and values in base64), a new key with every request:
--   compare: <P>s/<session> CREATE > 0          (the session still exists)
--            <P>n/<node> CREATE == <node rev>   (the node's incarnation)
--            <P>k/<key> CREATE == 0             (the name is free)
--   success: put <P>k/<key> {"s":"<session>","v":{"n":<n>}}
--   failure: range <P>k/<key>                   (who holds it)
-- done() prints "txn succeeded N" and "txn failed N": an answer is a success
-- only when it is 200 and says "succeeded":true.
-- Environment: TXN_PREFIX (<P>), TXN_SESSION, TXN_NODE, TXN_NODE_REV, TXN_RUN
-- (a word making the keys of this run unique).

local function env(name)
   local v = os.getenv(name)
   if not v or v == "" then
      error(name .. " is not set")
   end
   return v
end

local prefix, session, node = env("TXN_PREFIX"), env("TXN_SESSION"), env("TXN_NODE")
local node_rev, run = env("TXN_NODE_REV"), env("TXN_RUN")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = string.byte(s, i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = string.sub(b64chars, c1 + 1, c1 + 1) .. string.sub(b64chars, c2 + 1, c2 + 1) ..
         (b and string.sub(b64chars, c3 + 1, c3 + 1) or "=") ..
         (c and string.sub(b64chars, c4 + 1, c4 + 1) or "=")
   end
   return table.concat(out)
end

local skey = b64(prefix .. "s/" .. session)
local nkey = b64(prefix .. "n/" .. node)

local threads = {}
function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local n = 0
ok = 0
bad = 0
first_bad = nil

function request()
   n = n + 1
   local key = b64(prefix .. "k/" .. run .. "-" .. tostring(tid or 0) .. "-" .. n)
   local value = b64('{"s":"' .. session .. '","v":{"n":' .. n .. '}}')
   local body = '{"compare":[' ..
      '{"key":"' .. skey .. '","target":"CREATE","result":"GREATER","create_revision":"0"},' ..
      '{"key":"' .. nkey .. '","target":"CREATE","result":"EQUAL","create_revision":"' .. node_rev .. '"},' ..
      '{"key":"' .. key .. '","target":"CREATE","result":"EQUAL","create_revision":"0"}],' ..
      '"success":[{"request_put":{"key":"' .. key .. '","value":"' .. value .. '"}}],' ..
      '"failure":[{"request_range":{"key":"' .. key .. '"}}]}'
   return wrk.format("POST", "/v3/kv/txn", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
   if status == 200 and string.find(body, '"succeeded":true', 1, true) then
      ok = ok + 1
   else
      bad = bad + 1
      if not first_bad then
         first_bad = status .. " " .. string.sub(body, 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local o, b = 0, 0
   for _, t in ipairs(threads) do
      o = o + (t:get("ok") or 0)
      b = b + (t:get("bad") or 0)
      local f = t:get("first_bad")
      if f then
         io.write("first failed answer: " .. f .. "\n")
      end
   end
   io.write(string.format("txn succeeded %d\ntxn failed %d\n", o, b))
end

-- wrk script: durable status changes. Request i suspends (even rounds) or activates (odd
-- rounds) token i mod N of the N ids in $IDS_FILE, all active at the start, each with a fresh
-- idempotency key ($KEY_PREFIX-i, i in 12 digits) in the body. A token's previous change was N
-- requests earlier, long answered, so every request is a valid transition (2xx) at up to N
-- connections.
--
-- The heads (request line and headers, Content-Length included: every body has the same
-- length) are built once, in init; a request is its head and its body, one concatenation.
-- Building each with wrk.format cost the client CPU on the two cores the server runs on
-- (bench/show.lua says how much).
local prefix = os.getenv("KEY_PREFIX")
local heads = {}  -- heads[2 * k - 1]: suspend token k; heads[2 * k]: activate token k
local n = 0

local function body(key)
  return '{"idempotency_key":"' .. prefix .. "-" .. key .. '"}'
end

init = function(args)
  local auth = "Bearer " .. os.getenv("TOKEN")
  local host = wrk.port and (wrk.host .. ":" .. wrk.port) or wrk.host
  local length = tostring(#body(string.format("%012d", 0)))
  for line in io.lines(os.getenv("IDS_FILE")) do
    n = n + 1
    for _, action in ipairs({"suspend", "activate"}) do
      heads[#heads + 1] = "POST /api/v1/api_token/" .. line .. "/" .. action .. " HTTP/1.1\r\n" ..
        "Host: " .. host .. "\r\n" ..
        "Authorization: " .. auth .. "\r\n" ..
        "Content-Type: application/json\r\n" ..
        "Content-Length: " .. length .. "\r\n\r\n"
    end
  end
end

-- wrk calls request() once in its first thread before the run, to check what it returns
-- (script_verify_request in wrk.c), and never sends that request. Counted, it skipped the
-- suspend of the first token, whose activate a round later was the one 409 of every run.
local threads = 0
function setup(thread)  -- in wrk's main Lua state, once per thread, before that check
  thread:set("first_thread", threads == 0)
  threads = threads + 1
end
local checked = false

local i = -1
request = function()
  if first_thread and not checked then
    checked = true  -- the check's call: what request 0 will be, without counting it
    return heads[1] .. body("check-000000")
  end
  i = i + 1
  local round = math.floor(i / n) % 2  -- 0: suspend, 1: activate
  return heads[2 * (i % n) + 1 + round] .. body(string.format("%012d", i))
end

-- A non-2xx answer is a finding: show the first few (wrk itself only counts them).
local shown = 0
response = function(status, headers, body)
  if status >= 300 and shown < 5 then
    shown = shown + 1
    io.stderr:write("suspend/activate: " .. status .. " " .. body .. "\n")
  end
end

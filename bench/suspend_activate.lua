-- wrk script: durable status changes. Request i suspends (even rounds) or activates (odd
-- rounds) token i mod N of the N ids in $IDS_FILE, all active at the start, each with a fresh
-- idempotency key ($KEY_PREFIX-i) in the body. A token's previous change was N requests
-- earlier, long answered, so every request is a valid transition (2xx) at up to N connections.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local headers = {["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
                 ["Content-Type"] = "application/json"}
local prefix = os.getenv("KEY_PREFIX")

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
    return wrk.format("POST", "/api/v1/api_token/" .. ids[1] .. "/suspend", headers,
                      '{"idempotency_key":"' .. prefix .. '-check"}')
  end
  i = i + 1
  local n = #ids
  local action = (math.floor(i / n) % 2 == 0) and "suspend" or "activate"
  local body = '{"idempotency_key":"' .. prefix .. "-" .. i .. '"}'
  return wrk.format("POST", "/api/v1/api_token/" .. ids[(i % n) + 1] .. "/" .. action, headers, body)
end

-- A non-2xx answer is a finding: show the first few (wrk itself only counts them).
local shown = 0
response = function(status, headers, body)
  if status >= 300 and shown < 5 then
    shown = shown + 1
    io.stderr:write("suspend/activate: " .. status .. " " .. body .. "\n")
  end
end

-- wrk script: GET /api/v1/api_token/{id} (authenticate, then show) round-robin over the token
-- ids in $IDS_FILE (one per line), with the token from $TOKEN.
--
-- The requests are built once, in init: building each in `request` (wrk.format, string
-- concatenation in Lua) cost wrk ~1.2 CPU-s more per 5 s than a static request, on the same
-- two cores the server runs on, so the show figure measured the client's Lua as much as the
-- server. Now a request costs wrk one table look-up more than nginx's static one.
local requests = {}
local i = 0
init = function(args)
  local auth = "Bearer " .. os.getenv("TOKEN")
  for line in io.lines(os.getenv("IDS_FILE")) do
    requests[#requests + 1] =
      wrk.format("GET", "/api/v1/api_token/" .. line, {["Authorization"] = auth})
  end
end
request = function()
  i = i + 1
  return requests[(i % #requests) + 1]
end

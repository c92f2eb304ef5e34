-- wrk script: GET /api/v1/api_token/{id} (authenticate, then show) round-robin over the token
-- ids in $IDS_FILE (one per line), with the token from $TOKEN.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local auth = "Bearer " .. os.getenv("TOKEN")
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/api_token/" .. ids[(i % #ids) + 1], {["Authorization"] = auth})
end

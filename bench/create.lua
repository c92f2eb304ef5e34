-- wrk script: POST /api/v1/api_token with the token from $TOKEN.
wrk.method = "POST"
wrk.body = '{"details":{"token_scope":"account"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

-- A non-2xx answer is a finding: show the first few (wrk itself only counts them).
local shown = 0
response = function(status, headers, body)
  if status >= 300 and shown < 5 then
    shown = shown + 1
    io.stderr:write("create: " .. status .. " " .. body .. "\n")
  end
end

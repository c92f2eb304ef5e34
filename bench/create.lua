-- wrk script: POST /api/v1/api_token with the token from $TOKEN.
wrk.method = "POST"
wrk.body = '{"details":{"token_scope":"account"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

-- wrk script: GET /api/v1/ping with the token from $TOKEN.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

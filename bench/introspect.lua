-- wrk script: POST /api/v1/introspect, what a gateway asks on every call it does not answer from
-- its cache: the gateway's credential from $GATEWAY, the token to check from $TOKEN,
-- form-encoded as RFC 7662 says.
wrk.method = "POST"
wrk.body = "token=" .. os.getenv("TOKEN")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GATEWAY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

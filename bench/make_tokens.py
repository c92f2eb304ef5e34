#!/usr/bin/env python3
"""Creates N account-scoped tokens through the API (one keep-alive connection) and prints
their ids, one per line: the working set of scripts/bench-http's show and suspend/activate runs.

usage: make_tokens.py PORT TOKEN N"""
import http.client
import json
import sys

port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
for _ in range(n):
    conn.request("POST", "/api/v1/api_token", body='{"details":{"token_scope":"account"}}',
                 headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        sys.exit(f"make_tokens: create answered {response.status}: {body[:200]!r}")
    print(json.loads(body)["details"]["id"])

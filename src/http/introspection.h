// Token introspection for gateways (RFC 7662; SPEC.md "v1.1 additions"): the request's one
// parameter, the answer's body and how long a gateway may cache it.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/http/authenticate.h"
#include "src/http/http_types.h"
#include "tokenledger/error.h"
#include "tokenledger/time.h"

namespace tokenledger::http {

// The longest `max-age` an introspection answer carries: the bound on how long after a
// suspension a gateway's cache may still let the token through.
inline constexpr Micros kMaxIntrospectionCache = 3600 * kMicrosPerSecond;

// What an introspection call asks for.
struct IntrospectionRequest {
  std::string token;
  // Gateways that act on the status alone (nginx's auth_request) pass
  // `?inactive_status=401` (or 403): an inactive answer then has that status, body unchanged.
  // Otherwise 200, as RFC 7662 says.
  int inactive_status = 200;
};

// The token to introspect: `token=…` form-encoded (RFC 7662 §2.1; also without a
// Content-Type), or `{"token":"…"}` when the Content-Type is JSON. Other parameters
// (token_type_hint) are ignored. Fails with bad_request (malformed body, another Content-Type,
// a repeated parameter), required_value (no or an empty token) or invalid_value (not a
// string). `query`: the target's query string (only `inactive_status` is known; invalid_value
// unless 401 or 403).
Result<IntrospectionRequest> ParseIntrospectionRequest(const HttpRequest& request,
                                                       std::string_view query = {});

// The answer: {"active":true,"sub","jti","token_type":"api","scope","account_id",
// "environment_id","agent_id","exp","iat"} for a token that would authenticate, else exactly
// {"active":false}.
std::string IntrospectionBody(const std::optional<Authenticator::Introspected>& found);

// The headers of an active answer, for gateways that read headers only (nginx's
// auth_request_set): X-Token-Id, X-Token-Account-Id, X-Token-Scope and, for a token with an
// environment, X-Token-Environment-Id, for a token with an agent, X-Token-Agent-Id. None for
// an inactive one.
std::vector<std::pair<std::string, std::string>> IntrospectionHeaders(
    const std::optional<Authenticator::Introspected>& found);

// `Cache-Control` of an answer at `now`: `max-age=N` with N the whole seconds of `bound`, and
// for an active token no later than its signed expiry (`exp`, the stored one rounded down to a
// second); `no-store` when N is 0.
// REQUIRES: 0 <= bound <= kMaxIntrospectionCache.
std::string IntrospectionCacheControl(const std::optional<Authenticator::Introspected>& found,
                                      Micros bound, Micros now);

}  // namespace tokenledger::http

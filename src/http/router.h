// The route table: {method, pattern, handler, auth}. Patterns are slash-separated segments;
// `{name}` captures one segment. A path that matches some pattern but not with this method
// resolves to MethodNotAllowed with the methods that would match (for the `Allow` header).
// HEAD resolves to the GET route of a path (RFC 9110 9.3.2), so `Allow` lists HEAD wherever
// it lists GET; the server leaves the body out of the answer.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tokenledger::http {

// What a route needs of its caller: nothing, or a token whose scope may make this kind of
// call (which scope may what is decided in one place: reach.h, CheckScopeAllows).
enum class Auth { kNone, kPing, kReadTokens, kWriteTokens, kIntrospect };

template <typename Handler>
struct Route {
  std::string_view method;
  std::string_view pattern;  // also the `route` label in logs and metrics
  Handler handler;
  Auth auth;
};

template <typename Handler>
struct RouteMatch {
  const Route<Handler>* route;
  std::vector<std::string_view> params;  // captured segments, in pattern order
};
struct MethodNotAllowed {
  std::string allow;  // "GET, POST"
};
struct NoRoute {};

std::vector<std::string_view> SplitPath(std::string_view path);
// Matches `segments` against `pattern`; fills `params` on success.
bool MatchPattern(std::string_view pattern, const std::vector<std::string_view>& segments,
                  std::vector<std::string_view>& params);

template <typename Handler>
std::variant<RouteMatch<Handler>, MethodNotAllowed, NoRoute> Resolve(
    const std::vector<Route<Handler>>& routes, std::string_view method, std::string_view path) {
  const auto segments = SplitPath(path);
  std::string allow;
  std::vector<std::string_view> params;
  params.reserve(2);
  for (const auto& route : routes) {
    params.clear();
    if (!MatchPattern(route.pattern, segments, params)) continue;
    if (route.method == method || (method == "HEAD" && route.method == "GET"))
      return RouteMatch<Handler>{&route, std::move(params)};
    const auto add = [&allow](std::string_view m) {
      if (allow.find(m) != std::string::npos) return;
      if (!allow.empty()) allow += ", ";
      allow += m;
    };
    add(route.method);
    if (route.method == "GET") add("HEAD");
  }
  if (!allow.empty()) return MethodNotAllowed{allow};
  return NoRoute{};
}

// Query string `a=1&b=x%20y` into ordered pairs, percent-decoded ('+' is a space).
// Returns false on malformed percent-encoding.
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out);

}  // namespace tokenledger::http

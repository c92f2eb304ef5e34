// The route table: {method, pattern, handler, auth}. Patterns are slash-separated segments;
// `{name}` captures one segment. A path that matches some pattern but not with this method
// resolves to MethodNotAllowed with the methods that would match (for the `Allow` header).
// HEAD resolves to the GET route of a path (RFC 9110 9.3.2), so `Allow` lists HEAD wherever
// it lists GET; the server leaves the body out of the answer.
#pragma once

#include <array>
#include <cassert>
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

// Captured segments, in pattern order: at most kMaxParams, kept in place (no allocation).
class Params {
 public:
  static constexpr std::size_t kMaxParams = 4;
  // REQUIRES: size() < kMaxParams.
  void push_back(std::string_view v) {
    assert(count_ < kMaxParams);
    items_[count_++] = v;
  }
  void clear() { count_ = 0; }
  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  std::string_view operator[](std::size_t i) const {
    assert(i < count_);
    return items_[i];
  }
  const std::string_view* begin() const { return items_.data(); }
  const std::string_view* end() const { return items_.data() + count_; }

 private:
  std::array<std::string_view, kMaxParams> items_;
  std::size_t count_ = 0;
};

template <typename Handler>
struct RouteMatch {
  const Route<Handler>* route;
  Params params;
};
struct MethodNotAllowed {
  std::string allow;  // "GET, POST"
};
struct NoRoute {};

// A path cut at its slashes, in place: "/a/b" is {"a", "b"}, "/" is {""}, "" (or a path not
// starting with '/') has no segments. A path of more than kMaxSegments segments is
// `too_long` and matches no route.
struct PathSegments {
  static constexpr std::size_t kMaxSegments = 8;
  std::array<std::string_view, kMaxSegments> items;
  std::size_t count = 0;
  bool too_long = false;
};
PathSegments SplitPath(std::string_view path);

// The route table, its patterns cut into segments once (a `{name}` segment captures one
// non-empty segment). Resolve runs for every request: it compares segment counts before
// segments, and allocates only for a MethodNotAllowed answer.
template <typename Handler>
class Router {
 public:
  // REQUIRES: every pattern starts with '/', has at most PathSegments::kMaxSegments segments
  // and fewer than Params::kMaxParams captures.
  explicit Router(std::vector<Route<Handler>> routes) : routes_(std::move(routes)) {
    for (const auto& route : routes_) {
      const PathSegments p = SplitPath(route.pattern);
      assert(!p.too_long && p.count > 0);
      Compiled c;
      c.count = p.count;
      [[maybe_unused]] std::size_t captures = 0;
      for (std::size_t i = 0; i < p.count; ++i) {
        c.segments[i] = p.items[i];
        c.captures[i] = p.items[i].size() > 1 && p.items[i].front() == '{';
        captures += c.captures[i];
      }
      assert(captures < Params::kMaxParams);
      compiled_.push_back(c);
    }
  }

  std::variant<RouteMatch<Handler>, MethodNotAllowed, NoRoute> Resolve(
      std::string_view method, std::string_view path) const {
    const PathSegments segments = SplitPath(path);
    if (segments.too_long || segments.count == 0) return NoRoute{};
    std::string allow;
    Params params;
    for (std::size_t r = 0; r < routes_.size(); ++r) {
      if (!Match(compiled_[r], segments, params)) continue;
      const Route<Handler>& route = routes_[r];
      if (route.method == method || (method == "HEAD" && route.method == "GET"))
        return RouteMatch<Handler>{&route, params};
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

 private:
  struct Compiled {
    std::array<std::string_view, PathSegments::kMaxSegments> segments;
    std::array<bool, PathSegments::kMaxSegments> captures{};
    std::size_t count = 0;
  };
  // Fills `params` (cleared first) when `segments` match `c`.
  static bool Match(const Compiled& c, const PathSegments& segments, Params& params) {
    if (c.count != segments.count) return false;
    params.clear();
    for (std::size_t i = 0; i < c.count; ++i) {
      const std::string_view s = segments.items[i];
      if (c.captures[i]) {
        if (s.empty()) return false;
        params.push_back(s);
      } else if (s != c.segments[i]) {
        return false;
      }
    }
    return true;
  }

  std::vector<Route<Handler>> routes_;
  std::vector<Compiled> compiled_;
};

// Query string `a=1&b=x%20y` into ordered pairs, percent-decoded ('+' is a space).
// Returns false on malformed percent-encoding.
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out);

}  // namespace tokenledger::http

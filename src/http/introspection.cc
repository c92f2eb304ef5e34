#include "src/http/introspection.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cassert>
#include <vector>

#include "src/http/json_views.h"
#include "src/http/router.h"

namespace tokenledger::http {
namespace json = boost::json;
namespace {

Error Bad(ErrorCode code, std::string message, std::string field = {}) {
  return Error{code, std::move(message), std::move(field)};
}

// The media type of a Content-Type value, lowercased, without parameters.
std::string MediaType(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  while (!content_type.empty() && content_type.front() == ' ') content_type.remove_prefix(1);
  std::string out(content_type);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Result<std::string> Required(std::optional<std::string> token) {
  if (!token || token->empty()) return Bad(ErrorCode::kRequiredValue, "token is required", "token");
  return std::move(*token);
}

std::int64_t UnixSeconds(Micros t) {
  // Floor: a time before the epoch (never for a token, but defined) rounds down too.
  return t >= 0 ? t / kMicrosPerSecond : -((-t + kMicrosPerSecond - 1) / kMicrosPerSecond);
}

Result<std::string> ParseToken(const HttpRequest& request) {
  const std::string type = MediaType(request.content_type);
  if (type == "application/json") {
    boost::system::error_code ec;
    json::value v = json::parse(request.body, ec);
    if (ec || !v.is_object())
      return Bad(ErrorCode::kBadRequest, "the body must be a JSON object {\"token\":\"...\"}");
    const json::value* token = v.get_object().if_contains("token");
    if (!token || token->is_null()) return Required(std::nullopt);
    if (!token->is_string())
      return Bad(ErrorCode::kInvalidValue, "token must be a string", "token");
    return Required(std::string(token->get_string()));
  }
  if (!type.empty() && type != "application/x-www-form-urlencoded") {
    return Bad(ErrorCode::kBadRequest,
               "the body must be form-encoded (token=...) or JSON ({\"token\":\"...\"})");
  }
  std::vector<std::pair<std::string, std::string>> params;
  if (!ParseQuery(request.body, params))
    return Bad(ErrorCode::kBadRequest, "the form-encoded body is malformed");
  std::optional<std::string> token;
  for (auto& [name, value] : params) {
    if (name != "token") continue;
    // RFC 7662 §2.1 via RFC 6749 §3.1: a parameter must not be sent more than once.
    if (token) return Bad(ErrorCode::kBadRequest, "the token parameter is repeated");
    token = std::move(value);
  }
  return Required(std::move(token));
}

}  // namespace

Result<IntrospectionRequest> ParseIntrospectionRequest(const HttpRequest& request,
                                                       std::string_view query) {
  IntrospectionRequest out;
  std::vector<std::pair<std::string, std::string>> query_params;
  if (!ParseQuery(query, query_params))
    return Bad(ErrorCode::kBadRequest, "malformed query string");
  for (const auto& [name, value] : query_params) {
    if (name != "inactive_status")
      return Bad(ErrorCode::kBadRequest, "unknown query parameter '" + name + "'");
    if (value != "401" && value != "403") {
      return Bad(ErrorCode::kInvalidValue, "inactive_status must be 401 or 403", "inactive_status");
    }
    out.inactive_status = value == "401" ? 401 : 403;
  }
  auto token = ParseToken(request);
  if (!token) return token.error();
  out.token = std::move(*token);
  return out;
}

std::string IntrospectionBody(const std::optional<Authenticator::Introspected>& found) {
  if (!found) return R"({"active":false})";
  // Written directly (every value is an id, a scope name or a number: nothing to escape), in
  // the order a JSON object of these keys serializes; a gateway's every cache miss asks this.
  const Caller& c = found->caller;
  std::string out;
  out.reserve(320);
  out += R"({"active":true,"sub":")";
  c.token_id.AppendText(out);
  out += R"(","jti":")";
  c.token_id.AppendText(out);
  out += R"(","token_type":"api","scope":")";
  out += events::ScopeName(c.scope);
  out += R"(","account_id":")";
  c.account_id.AppendText(out);
  out += R"(","environment_id":)";
  AppendIdOrNull(out, c.environment_id);
  out += R"(,"agent_id":)";
  AppendIdOrNull(out, c.agent_id);
  out += R"(,"exp":)";
  out += std::to_string(UnixSeconds(found->expires_at));
  out += R"(,"iat":)";
  out += std::to_string(UnixSeconds(found->issued_at));
  out += '}';
  return out;
}

std::vector<std::pair<std::string, std::string>> IntrospectionHeaders(
    const std::optional<Authenticator::Introspected>& found) {
  if (!found) return {};
  const Caller& c = found->caller;
  std::vector<std::pair<std::string, std::string>> headers = {
      {"X-Token-Id", c.token_id.ToString()},
      {"X-Token-Account-Id", c.account_id.ToString()},
      {"X-Token-Scope", std::string(events::ScopeName(c.scope))}};
  if (c.environment_id)
    headers.emplace_back("X-Token-Environment-Id", c.environment_id->ToString());
  if (c.agent_id) headers.emplace_back("X-Token-Agent-Id", c.agent_id->ToString());
  return headers;
}

std::string IntrospectionCacheControl(const std::optional<Authenticator::Introspected>& found,
                                      Micros bound, Micros now) {
  assert(bound >= 0 && bound <= kMaxIntrospectionCache);
  Micros age = bound;
  // The token stops authenticating at its signed `exp`, the stored expiry in whole seconds
  // rounded down: no later than that.
  if (found) {
    const Micros signed_expiry = UnixSeconds(found->expires_at) * kMicrosPerSecond;
    age = std::min(age, std::max<Micros>(0, signed_expiry - now));
  }
  const std::int64_t seconds = age / kMicrosPerSecond;
  if (seconds <= 0) return "no-store";
  return "max-age=" + std::to_string(seconds);
}

}  // namespace tokenledger::http

#include "src/http/write_requests.h"

#include <boost/json.hpp>

#include "src/http/idempotency.h"

namespace tokenledger::http {
namespace json = boost::json;
namespace {

Error Err(ErrorCode code, std::string message, std::string field = {}) {
  return Error{code, std::move(message), std::move(field)};
}

Result<json::value> ParseJsonBody(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return Err(ErrorCode::kBadRequest, "request body is not valid JSON");
  return v;
}

bool IsBlank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// An id field of `d`: nullopt when absent or null; invalid_value when not an id string.
Result<std::optional<Id>> OptionalId(const json::object& d, std::string_view field) {
  const json::value* v = d.if_contains(field);
  if (!v || v->is_null()) return std::optional<Id>();
  std::optional<Id> id = v->is_string() ? Id::Parse(v->get_string()) : std::nullopt;
  if (!id)
    return Err(ErrorCode::kInvalidValue, std::string(field) + " is not a valid id",
               std::string(field));
  return id;
}

}  // namespace

Result<CreateRequest> ParseCreateRequest(const HttpRequest& request, const Id& caller_account) {
  auto parsed = ParseJsonBody(request.body);
  if (!parsed) return parsed.error();
  if (!parsed->is_object())
    return Err(ErrorCode::kBadRequest, "request body must be a JSON object");
  const json::object& body = parsed->get_object();
  for (const auto& [k, v] : body) {
    if (k != "details" && k != "idempotency_key") {
      return Err(ErrorCode::kBadRequest, "unexpected field '" + std::string(k) + "'");
    }
  }
  auto body_key = BodyKey(body);
  if (!body_key) return body_key.error();
  auto key = ResolveKey(request, *body_key);
  if (!key) return key.error();

  const json::value* details_value = body.if_contains("details");
  if (!details_value || details_value->is_null()) {
    return Err(ErrorCode::kRequiredValue, "details is required", "details");
  }
  if (!details_value->is_object()) {
    return Err(ErrorCode::kInvalidValue, "details must be an object", "details");
  }
  const json::object& d = details_value->get_object();
  for (const auto& [k, v] : d) {
    if (k != "token_scope" && k != "account_id" && k != "environment_id" && k != "expires_at" &&
        k != "agent_id" && k != "agent_deployment_id") {
      return Err(ErrorCode::kBadRequest, "unexpected field 'details." + std::string(k) + "'");
    }
  }
  CreateRequest r;
  r.key = std::move(*key);
  core::CreateToken& c = r.command;
  const json::value* scope = d.if_contains("token_scope");
  if (!scope || scope->is_null())
    return Err(ErrorCode::kRequiredValue, "token_scope is required", "token_scope");
  const auto parsed_scope =
      scope->is_string() ? events::ParseScope(scope->get_string()) : std::nullopt;
  if (!parsed_scope) {
    return Err(ErrorCode::kInvalidValue,
               "token_scope must be 'account', 'environment' or 'agent_deployment'", "token_scope");
  }
  if (*parsed_scope == events::TokenScope::kIntrospection) {
    return Err(ErrorCode::kInvalidValue,
               "introspection tokens are minted by an operator (tokenledger mint), not created "
               "through the API",
               "token_scope");
  }
  c.scope = *parsed_scope;
  auto account = OptionalId(d, "account_id");
  if (!account) return account.error();
  auto environment = OptionalId(d, "environment_id");
  if (!environment) return environment.error();
  auto agent = OptionalId(d, "agent_id");
  if (!agent) return agent.error();
  auto deployment = OptionalId(d, "agent_deployment_id");
  if (!deployment) return deployment.error();
  c.account_id = account->value_or(caller_account);
  c.environment_id = *environment;
  c.agent_id = *agent;
  c.agent_deployment_id = *deployment;
  if (const json::value* exp = d.if_contains("expires_at"); exp && !exp->is_null()) {
    const auto t = exp->is_string() ? ParseRfc3339(exp->get_string()) : std::nullopt;
    if (!t)
      return Err(ErrorCode::kInvalidValue, "expires_at must be an RFC 3339 time", "expires_at");
    c.expires_at = *t;
  }
  return r;
}

Result<std::optional<std::string>> ParseActionRequest(const HttpRequest& request) {
  std::optional<std::string> body_key;
  if (!IsBlank(request.body)) {
    auto parsed = ParseJsonBody(request.body);
    if (!parsed) return parsed.error();
    if (parsed->is_object()) {
      for (const auto& [k, v] : parsed->get_object()) {
        if (k != "idempotency_key") {
          return Err(ErrorCode::kBadRequest, "unexpected field '" + std::string(k) + "'");
        }
      }
      auto k = BodyKey(parsed->get_object());
      if (!k) return k.error();
      body_key = std::move(*k);
    } else if (!parsed->is_null()) {
      return Err(ErrorCode::kBadRequest,
                 "the body must be empty, null, {} or {\"idempotency_key\": ...}");
    }
  }
  return ResolveKey(request, std::move(body_key));
}

}  // namespace tokenledger::http

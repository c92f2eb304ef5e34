#include "src/http/idempotency.h"

#include <boost/json.hpp>
#include <cassert>

#include "src/http/errors.h"
#include "src/http/json_views.h"

namespace tokenledger::http {
namespace json = boost::json;
namespace {

Error KeyError(std::string message) {
  return Error{ErrorCode::kInvalidValue, std::move(message), "idempotency_key"};
}

// A format-1 recorded outcome is "SSS\n<body>": the HTTP status and the exact body.
HttpResponse LoadResponse(std::string_view stored) {
  HttpResponse r;
  r.status = std::stoi(std::string(stored.substr(0, 3)));
  r.body = std::string(stored.substr(4));
  return r;
}

// A write's answer from its typed outcome (kApplied or kRejected), the same for a fresh
// answer and a replay, so a replay is byte-identical to the first answer.
HttpResponse RenderOutcome(const store::CommandResult& r, store::Outcome outcome,
                           const JwtFn& jwt) {
  assert(outcome == store::Outcome::kApplied || outcome == store::Outcome::kRejected);
  if (outcome == store::Outcome::kRejected) {
    return ErrorResponse(Error{r.rejection.code, r.rejection.message, r.rejection.field});
  }
  if (!r.after && !r.before) {
    // An applied command without events (a use) has no row to show; no API write is one.
    return ErrorResponse(ErrorCode::kUnexpected, "the write's outcome has no token to show");
  }
  // A create answers with the token's JWT. Its secret is never recorded: it is signed again
  // from the claims, which follow from the token's state (same claims, same bytes).
  if (!jwt) return TokenDetailsResponse(r.ShownRow());
  auto token = jwt(r.after->state);
  if (!token) return ErrorResponse(token.error());  // a replay after its key was retired
  return TokenDetailsResponse(r.ShownRow(), *token);
}

}  // namespace

Status ValidateIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKey) {
    return KeyError("idempotency_key must be 1 to 255 characters");
  }
  for (char c : key) {
    if (c < 0x20 || c > 0x7e) return KeyError("idempotency_key must be printable ASCII");
  }
  return Status::Ok();
}

Result<std::optional<std::string>> BodyKey(const json::object& body) {
  const json::value* v = body.if_contains("idempotency_key");
  if (!v || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return KeyError("idempotency_key must be a string");
  std::string key(v->get_string());
  if (Status s = ValidateIdempotencyKey(key); !s) return s.error();
  return std::optional<std::string>(std::move(key));
}

Result<std::optional<std::string>> ResolveKey(const HttpRequest& req,
                                              std::optional<std::string> body_key) {
  if (!req.has_idempotency_key) return body_key;
  if (req.repeated_idempotency_key) return KeyError("the Idempotency-Key header is repeated");
  if (Status s = ValidateIdempotencyKey(req.idempotency_key); !s) return s.error();
  if (body_key && *body_key != req.idempotency_key) {
    return KeyError("Idempotency-Key header and body idempotency_key differ");
  }
  return std::optional<std::string>(req.idempotency_key);
}

std::string Fingerprint(std::string_view method, std::string_view route,
                        const std::vector<std::string_view>& params,
                        std::string_view canonical_body) {
  std::string f;
  f.append(method).append("\n").append(route).append("\n");
  for (auto p : params) f.append(p).append("/");
  f.append("\n").append(canonical_body);
  return f;
}

std::string CanonicalCreate(const core::CreateToken& c) {
  return std::string(events::ScopeName(c.scope)) + "|" + c.account_id.ToString() + "|" +
         (c.environment_id ? c.environment_id->ToString() : "") + "|" +
         (c.expires_at ? std::to_string(*c.expires_at) : "") +
         // Appended only when present, so a create without them (every create before the
         // agent_deployment scope) keeps its fingerprint and its stored replays.
         (c.agent_id ? "|agent:" + c.agent_id->ToString() : "") +
         (c.agent_deployment_id ? "|deployment:" + c.agent_deployment_id->ToString() : "");
}

HttpResponse RenderWrite(const store::CommandResult& r, const JwtFn& jwt) {
  switch (r.outcome) {
    case store::Outcome::kApplied:
    case store::Outcome::kRejected:
      return RenderOutcome(r, r.outcome, jwt);
    case store::Outcome::kReplayed: {
      HttpResponse response = r.legacy_response.empty() ? RenderOutcome(r, r.replayed, jwt)
                                                        : LegacyReplay(r.legacy_response, jwt);
      response.headers.emplace_back("Idempotent-Replayed", "true");
      return response;
    }
    case store::Outcome::kKeyConflict:
      return ErrorResponse(ErrorCode::kIdempotencyKeyAlreadyUsed,
                           "the idempotency key was already used for a different request");
    case store::Outcome::kOverloaded:
    case store::Outcome::kUnavailable:
      return ErrorResponse(ErrorCode::kUnavailable, r.rejection.message);
  }
  return ErrorResponse(ErrorCode::kUnexpected, "unknown write outcome");
}

HttpResponse LegacyReplay(std::string_view stored, const JwtFn& jwt) {
  HttpResponse response = LoadResponse(stored);
  const std::size_t at = response.body.find(kTokenPlaceholder);
  if (jwt && response.status == 200 && at != std::string::npos) {
    const json::value body = json::parse(response.body);
    const json::object& d = body.at("details").as_object();
    core::TokenState s;
    s.id = *Id::Parse(d.at("id").as_string());
    s.account_id = *Id::Parse(d.at("account_id").as_string());
    if (!d.at("environment_id").is_null()) {
      s.environment_id = Id::Parse(d.at("environment_id").as_string());
    }
    s.inserted_at = *ParseRfc3339(d.at("inserted_at").as_string());
    s.expires_at = *ParseRfc3339(d.at("expires_at").as_string());
    auto token = jwt(s);
    if (!token) return ErrorResponse(token.error());
    response.body.replace(at, kTokenPlaceholder.size(), *token);
  }
  return response;
}

}  // namespace tokenledger::http

#include "src/http/api.h"

#include <boost/json.hpp>
#include <chrono>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/http/errors.h"
#include "src/http/json_views.h"
#include "tokenledger/log.h"

namespace tokenledger::http {
namespace json = boost::json;

namespace {

// Where a created token's JWT went in a response recorded before typed records (format 1 of
// the idempotency record): signed again from the recorded details when it is replayed.
constexpr std::string_view kTokenPlaceholder = "@@api_token_jwt@@";
constexpr std::size_t kMaxIdempotencyKey = 255;

Error Err(ErrorCode code, std::string message, std::string field = {}) {
  return Error{code, std::move(message), std::move(field)};
}

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == ':'))
      return false;
  }
  return true;
}

std::string NewRequestId() {
  thread_local IdGenerator generator;
  return generator.Generate().ToString();
}

Status ValidateIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKey) {
    return Err(ErrorCode::kInvalidValue, "idempotency_key must be 1 to 255 characters",
               "idempotency_key");
  }
  for (char c : key) {
    if (c < 0x20 || c > 0x7e) {
      return Err(ErrorCode::kInvalidValue, "idempotency_key must be printable ASCII",
                 "idempotency_key");
    }
  }
  return Status::Ok();
}

// Reads `idempotency_key` from a body object (null or absent: none).
Result<std::optional<std::string>> BodyKey(const json::object& body) {
  const json::value* v = body.if_contains("idempotency_key");
  if (!v || v->is_null()) return std::optional<std::string>();
  if (!v->is_string())
    return Err(ErrorCode::kInvalidValue, "idempotency_key must be a string", "idempotency_key");
  std::string key(v->get_string());
  if (Status s = ValidateIdempotencyKey(key); !s) return s.error();
  return std::optional<std::string>(std::move(key));
}

// The key of a write: from the body, or the Idempotency-Key header, the same if both.
Result<std::optional<std::string>> ResolveKey(const HttpRequest& req,
                                              std::optional<std::string> body_key) {
  if (!req.has_idempotency_key) return body_key;
  if (req.repeated_idempotency_key) {
    return Err(ErrorCode::kInvalidValue, "the Idempotency-Key header is repeated",
               "idempotency_key");
  }
  if (Status s = ValidateIdempotencyKey(req.idempotency_key); !s) return s.error();
  if (body_key && *body_key != req.idempotency_key) {
    return Err(ErrorCode::kInvalidValue, "Idempotency-Key header and body idempotency_key differ",
               "idempotency_key");
  }
  return std::optional<std::string>(req.idempotency_key);
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

Result<Id> ParseIdParam(std::string_view text, std::string_view field) {
  auto id = Id::Parse(text);
  if (!id)
    return Err(ErrorCode::kInvalidValue, std::string(field) + " is not a valid id",
               std::string(field));
  return *id;
}

Result<std::uint64_t> ParseUint(const std::string& text, std::string_view field) {
  if (text.empty() || text.size() > 18 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return Err(ErrorCode::kInvalidValue, std::string(field) + " must be a non-negative integer",
               std::string(field));
  }
  return std::stoull(text);
}

HttpResponse Success(json::object body) {
  HttpResponse r;
  r.body = json::serialize(body);
  return r;
}

// A format-1 recorded outcome is "SSS\n<body>": the HTTP status and the exact body.
HttpResponse LoadResponse(std::string_view stored) {
  HttpResponse r;
  r.status = std::stoi(std::string(stored.substr(0, 3)));
  r.body = std::string(stored.substr(4));
  return r;
}

std::string Fingerprint(const std::string& method, std::string_view route,
                        const std::vector<std::string_view>& params,
                        const std::string& canonical_body) {
  std::string f = method + "\n" + std::string(route) + "\n";
  for (auto p : params) f.append(p).append("/");
  f += "\n" + canonical_body;
  return f;
}

}  // namespace

struct Api::Call {
  std::shared_ptr<HttpRequest> req;
  Responder respond;
  std::string request_id;
  std::string_view route = "unmatched";
  std::string_view path;
  std::string_view query;
  std::vector<std::string_view> params;
  Caller caller;
  Micros now = 0;
  std::chrono::steady_clock::time_point start;
  std::atomic<bool> answered{false};
  HttpMetrics* metrics = nullptr;

  void Respond(HttpResponse response) {
    if (answered.exchange(true)) return;
    response.headers.emplace_back("X-Request-Id", request_id);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics->Observe(route, req->method, response.status, seconds);
    Log(response.status >= 500 ? LogLevel::kError : LogLevel::kInfo, "request",
        {{"request_id", request_id},
         {"method", req->method},
         {"route", route},
         {"status", static_cast<long long>(response.status)},
         {"latency_ms", seconds * 1e3},
         {"remote", req->remote}});
    respond(std::move(response));
  }
  void Fail(const Error& e) { Respond(ErrorResponse(e)); }
  // Runs `work` on the connection's I/O thread (inline where the server gives no way there).
  void Post(std::function<void()> work) const {
    if (req->post) {
      req->post(std::move(work));
    } else {
      work();
    }
  }
};

Api::Api(store::LedgerStore& store, const auth::JwtSigner& signer, ApiOptions options,
         HttpMetrics& metrics)
    : store_(store),
      signer_(signer),
      options_(options),
      metrics_(metrics),
      slow_reads_(options.slow_read_threads, options.max_queued_slow_reads) {
  routes_ = {
      {"GET", "/api/v1/ping", &Api::Ping, Auth::kToken},
      {"POST", "/api/v1/api_token", &Api::CreateToken, Auth::kToken},
      {"GET", "/api/v1/api_token", &Api::ListTokens, Auth::kToken},
      {"GET", "/api/v1/api_token/{id}", &Api::ShowToken, Auth::kToken},
      {"DELETE", "/api/v1/api_token/{id}", &Api::Delete, Auth::kToken},
      {"GET", "/api/v1/api_token/{id}/events", &Api::TokenEvents, Auth::kToken},
      {"POST", "/api/v1/api_token/{id}/suspend", &Api::Suspend, Auth::kToken},
      {"POST", "/api/v1/api_token/{id}/activate", &Api::Activate, Auth::kToken},
      {"POST", "/api/v1/api_token/{id}/revoke", &Api::Revoke, Auth::kToken},
      {"GET", "/api/v1/openapi.json", &Api::OpenApi, Auth::kNone},
      {"GET", "/healthz", &Api::Healthz, Auth::kNone},
      {"GET", "/readyz", &Api::Readyz, Auth::kNone},
      {"GET", "/metrics", &Api::MetricsText, Auth::kNone},
  };
}

void Api::Handle(std::shared_ptr<HttpRequest> request, Responder respond) {
  auto call = std::make_shared<Call>();
  call->start = std::chrono::steady_clock::now();
  call->now = NowMicros();
  call->req = std::move(request);
  call->respond = std::move(respond);
  call->metrics = &metrics_;
  call->request_id = ValidRequestId(call->req->request_id) ? call->req->request_id : NewRequestId();
  const std::string_view target = call->req->target;
  const std::size_t q = target.find('?');
  call->path = target.substr(0, q);
  call->query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  try {
    auto resolved = Resolve(routes_, call->req->method, call->path);
    if (auto* not_allowed = std::get_if<MethodNotAllowed>(&resolved)) {
      HttpResponse r = ErrorResponse(
          ErrorCode::kMethodNotAllowed,
          "method " + call->req->method + " is not allowed here; allowed: " + not_allowed->allow);
      r.headers.emplace_back("Allow", not_allowed->allow);
      return call->Respond(std::move(r));
    }
    auto* match = std::get_if<RouteMatch<Handler>>(&resolved);
    const bool metrics_route = match && match->route->pattern == "/metrics";
    const bool probe_route = match && (metrics_route || match->route->pattern == "/healthz" ||
                                       match->route->pattern == "/readyz");
    if (!match || (call->req->listener == Listener::kMetrics && !probe_route) ||
        (call->req->listener == Listener::kApi && metrics_route &&
         options_.metrics_on_separate_listener)) {
      return call->Fail(Err(ErrorCode::kNotFound,
                            "no route for " + call->req->method + " " + std::string(call->path)));
    }
    call->route = match->route->pattern;
    call->params = match->params;
    if (match->route->auth == Auth::kToken) {
      auto caller = Authenticate(*call->req, call->now);
      if (!caller) return call->Fail(caller.error());
      call->caller = *caller;
    }
    (this->*(match->route->handler))(call);
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "unexpected exception",
        {{"request_id", call->request_id}, {"what", e.what()}});
    call->Fail(Err(ErrorCode::kUnexpected, "internal error; request id " + call->request_id));
  }
}

// ---------------------------------------------------------------------------------------
// Authentication

Result<Caller> Api::Authenticate(const HttpRequest& req, Micros now) {
  if (!req.has_authorization)
    return Err(ErrorCode::kNotAuthenticated, "the Authorization header is missing");
  if (req.repeated_authorization) {
    // Which one would count is a guess a proxy in front might make differently: refuse.
    return Err(ErrorCode::kBadRequest, "the Authorization header is repeated");
  }
  std::string_view header = req.authorization;
  constexpr std::string_view kBearer = "bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return Err(ErrorCode::kBadAuthToken, "the Authorization header must be 'Bearer <token>'");
  }
  auto claims = signer_.Verify(header.substr(kBearer.size()));
  if (!claims) return claims.error();
  auto row = store_.GetToken(claims->token_id);
  if (!row) return row.error();
  if (!*row) return Err(ErrorCode::kBadAuthToken, "the token is unknown or was deleted");
  const core::TokenState& s = (*row)->state;
  if (s.account_id != claims->account_id || s.environment_id != claims->environment_id) {
    return Err(ErrorCode::kBadAuthToken, "the token's claims do not match the token");
  }
  if (s.status != core::TokenStatus::kActive) {
    return Err(ErrorCode::kBadAuthToken, "the token is " + std::string(core::StatusName(s.status)));
  }
  if (Status expiry = auth::CheckNotExpired(*claims, s.expires_at, now); !expiry)
    return expiry.error();
  MaybeRecordUse(**row, now, req.post);
  return Caller{s.id, s.account_id, s.scope, s.environment_id, s.created_by_admin_user_id};
}

void Api::MaybeRecordUse(const projections::TokenRow& row, Micros now, const PostFn& post) {
  const Micros granularity = options_.policy.last_used_granularity;
  if (row.state.last_used_at && now - *row.state.last_used_at < granularity) return;
  {
    std::lock_guard lock(uses_mu_);
    auto [it, inserted] = recent_uses_.try_emplace(row.state.id, now);
    if (!inserted) {
      if (now - it->second < granularity) return;
      it->second = now;
    }
    if (recent_uses_.size() > 65536)
      std::erase_if(recent_uses_, [&](const auto& e) { return now - e.second >= granularity; });
  }
  // Fire and forget: the request never waits for this write.
  store::CommandRequest req;
  req.command = core::RecordUse{row.state.id, now};
  req.request_id = "last-used";
  req.actor.token_id = row.state.id;
  store_.Submit(std::move(req), [post](store::CommandResult r) {
    if (r.outcome == store::Outcome::kApplied || r.outcome == store::Outcome::kRejected) return;
    // Logged off the store's writer thread, like every answer.
    auto log = [reason = std::move(r.rejection.message)] {
      Log(LogLevel::kWarn, "recording last_used_at failed", {{"reason", reason}});
    };
    if (post) {
      post(std::move(log));
    } else {
      log();
    }
  });
}

std::string Api::TokenJwt(const core::TokenState& s) const {
  return signer_.Sign(
      auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id));
}

// ---------------------------------------------------------------------------------------
// Writes

namespace {

// A write's answer from its typed outcome (kApplied or kRejected), the same for a fresh
// answer and a replay, so a replay is byte-identical to the first answer.
HttpResponse RenderWrite(const store::CommandResult& r, store::Outcome outcome,
                         const std::function<std::string(const core::TokenState&)>& jwt) {
  if (outcome == store::Outcome::kRejected) {
    return ErrorResponse(Error{r.rejection.code, r.rejection.message, r.rejection.field});
  }
  json::object body{{"status", "success"}, {"details", TokenDetailsJson(r.ShownRow())}};
  // A create answers with the token's JWT. Its secret is never recorded: it is signed again
  // from the claims, which follow from the token's state (same claims, same bytes).
  if (jwt) body["token"] = jwt(r.after->state);
  return Success(std::move(body));
}

// A replay of a record written before typed records: its recorded status and body, with the
// JWT of a create signed again from the recorded details.
HttpResponse LegacyReplay(std::string_view stored,
                          const std::function<std::string(const core::TokenState&)>& jwt) {
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
    response.body.replace(at, kTokenPlaceholder.size(), jwt(s));
  }
  return response;
}

}  // namespace

void Api::SubmitWrite(const std::shared_ptr<Call>& call, core::Command command,
                      std::optional<std::string> key, std::string canonical_body) {
  const bool is_create = std::holds_alternative<core::CreateToken>(command);
  store::CommandRequest req;
  req.command = std::move(command);
  req.request_id = call->request_id;
  req.actor = events::Actor{call->caller.token_id, call->caller.admin_user_id};
  if (key) {
    const std::string fingerprint =
        Fingerprint(call->req->method, call->route, call->params, canonical_body);
    req.idempotency =
        store::IdempotencyInfo{call->caller.account_id, *key, events::Sha256(fingerprint)};
  }
  store_.Submit(std::move(req), [this, call, is_create](store::CommandResult r) {
    // This runs on the store's writer thread: it only hands the outcome over. Rendering, JWT
    // signing and logging run on the connection's I/O thread.
    call->Post([this, call, is_create, r = std::move(r)] { AnswerWrite(call, r, is_create); });
  });
}

void Api::AnswerWrite(const std::shared_ptr<Call>& call, const store::CommandResult& r,
                      bool is_create) {
  std::function<std::string(const core::TokenState&)> jwt;
  if (is_create) jwt = [this](const core::TokenState& s) { return TokenJwt(s); };
  try {
    switch (r.outcome) {
      case store::Outcome::kApplied:
      case store::Outcome::kRejected:
        return call->Respond(RenderWrite(r, r.outcome, jwt));
      case store::Outcome::kReplayed: {
        HttpResponse response = r.legacy_response.empty() ? RenderWrite(r, r.replayed, jwt)
                                                          : LegacyReplay(r.legacy_response, jwt);
        response.headers.emplace_back("Idempotent-Replayed", "true");
        return call->Respond(std::move(response));
      }
      case store::Outcome::kKeyConflict:
        return call->Fail(Err(ErrorCode::kIdempotencyKeyAlreadyUsed,
                              "the idempotency key was already used for a different request"));
      case store::Outcome::kOverloaded:
      case store::Outcome::kUnavailable:
        return call->Fail(Err(ErrorCode::kUnavailable, r.rejection.message));
    }
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "unexpected exception",
        {{"request_id", call->request_id}, {"what", e.what()}});
    call->Fail(Err(ErrorCode::kUnexpected, "internal error; request id " + call->request_id));
  }
}

void Api::CreateToken(const std::shared_ptr<Call>& call) {
  const Caller& caller = call->caller;
  if (caller.scope != events::TokenScope::kAccount) {
    return call->Fail(Err(ErrorCode::kNotPermitted, "environment tokens cannot create tokens"));
  }
  auto parsed = ParseJsonBody(call->req->body);
  if (!parsed) return call->Fail(parsed.error());
  if (!parsed->is_object())
    return call->Fail(Err(ErrorCode::kBadRequest, "request body must be a JSON object"));
  const json::object& body = parsed->get_object();
  for (const auto& [k, v] : body) {
    if (k != "details" && k != "idempotency_key") {
      return call->Fail(Err(ErrorCode::kBadRequest, "unexpected field '" + std::string(k) + "'"));
    }
  }
  auto body_key = BodyKey(body);
  if (!body_key) return call->Fail(body_key.error());
  auto key = ResolveKey(*call->req, *body_key);
  if (!key) return call->Fail(key.error());

  const json::value* details_value = body.if_contains("details");
  if (!details_value || details_value->is_null()) {
    return call->Fail(Err(ErrorCode::kRequiredValue, "details is required", "details"));
  }
  if (!details_value->is_object()) {
    return call->Fail(Err(ErrorCode::kInvalidValue, "details must be an object", "details"));
  }
  const json::object& d = details_value->get_object();
  for (const auto& [k, v] : d) {
    if (k != "token_scope" && k != "account_id" && k != "environment_id" && k != "expires_at") {
      return call->Fail(
          Err(ErrorCode::kBadRequest, "unexpected field 'details." + std::string(k) + "'"));
    }
  }
  core::CreateToken c;
  const json::value* scope = d.if_contains("token_scope");
  if (!scope || scope->is_null())
    return call->Fail(Err(ErrorCode::kRequiredValue, "token_scope is required", "token_scope"));
  const auto parsed_scope =
      scope->is_string() ? events::ParseScope(scope->get_string()) : std::nullopt;
  if (!parsed_scope) {
    return call->Fail(Err(ErrorCode::kInvalidValue,
                          "token_scope must be 'account' or 'environment'", "token_scope"));
  }
  c.scope = *parsed_scope;
  auto optional_id = [&](std::string_view field) -> Result<std::optional<Id>> {
    const json::value* v = d.if_contains(field);
    if (!v || v->is_null()) return std::optional<Id>();
    std::optional<Id> id = v->is_string() ? Id::Parse(v->get_string()) : std::nullopt;
    if (!id)
      return Err(ErrorCode::kInvalidValue, std::string(field) + " is not a valid id",
                 std::string(field));
    return id;
  };
  auto account = optional_id("account_id");
  if (!account) return call->Fail(account.error());
  auto environment = optional_id("environment_id");
  if (!environment) return call->Fail(environment.error());
  c.account_id = account->value_or(caller.account_id);
  c.environment_id = *environment;
  if (const json::value* exp = d.if_contains("expires_at"); exp && !exp->is_null()) {
    const auto t = exp->is_string() ? ParseRfc3339(exp->get_string()) : std::nullopt;
    if (!t)
      return call->Fail(
          Err(ErrorCode::kInvalidValue, "expires_at must be an RFC 3339 time", "expires_at"));
    c.expires_at = *t;
  }
  if (c.account_id != caller.account_id) {
    return call->Fail(
        Err(ErrorCode::kNotPermitted, "the token may not manage another account's tokens"));
  }
  // The decider checks these again at commit time; checking here answers without a queue trip.
  core::DecideContext ctx{.now = call->now, .new_token_id = {}, .policy = options_.policy};
  const core::Decision precheck = core::Decide(c, core::TokenState{}, ctx);
  if (const auto* rejection = std::get_if<core::Rejection>(&precheck)) {
    return call->Fail(Error{rejection->code, rejection->message, rejection->field});
  }
  c.created_by_admin_user_id = caller.admin_user_id;
  const std::string canonical = std::string(events::ScopeName(c.scope)) + "|" +
                                c.account_id.ToString() + "|" +
                                (c.environment_id ? c.environment_id->ToString() : "") + "|" +
                                (c.expires_at ? std::to_string(*c.expires_at) : "");
  SubmitWrite(call, std::move(c), std::move(*key), canonical);
}

void Api::Action(const std::shared_ptr<Call>& call, core::Command command) {
  if (call->caller.scope != events::TokenScope::kAccount) {
    return call->Fail(Err(ErrorCode::kNotPermitted, "environment tokens cannot change tokens"));
  }
  std::optional<std::string> body_key;
  if (!IsBlank(call->req->body)) {
    auto parsed = ParseJsonBody(call->req->body);
    if (!parsed) return call->Fail(parsed.error());
    if (parsed->is_object()) {
      for (const auto& [k, v] : parsed->get_object()) {
        if (k != "idempotency_key") {
          return call->Fail(
              Err(ErrorCode::kBadRequest, "unexpected field '" + std::string(k) + "'"));
        }
      }
      auto k = BodyKey(parsed->get_object());
      if (!k) return call->Fail(k.error());
      body_key = std::move(*k);
    } else if (!parsed->is_null()) {
      return call->Fail(Err(ErrorCode::kBadRequest,
                            "the body must be empty, null, {} or {\"idempotency_key\": ...}"));
    }
  }
  auto key = ResolveKey(*call->req, std::move(body_key));
  if (!key) return call->Fail(key.error());
  SubmitWrite(call, std::move(command), std::move(*key), "");
}

#define TOKENLEDGER_ACTION(Name, Command)                         \
  void Api::Name(const std::shared_ptr<Call>& call) {             \
    auto id = ParseIdParam(call->params[0], "api_token_id");      \
    if (!id) return call->Fail(id.error());                       \
    /* the decider refuses other accounts' tokens as not found */ \
    Action(call, core::Command{*id, call->caller.account_id});    \
  }
TOKENLEDGER_ACTION(Suspend, SuspendToken)
TOKENLEDGER_ACTION(Activate, ActivateToken)
TOKENLEDGER_ACTION(Revoke, RevokeToken)
TOKENLEDGER_ACTION(Delete, DeleteToken)
#undef TOKENLEDGER_ACTION

// ---------------------------------------------------------------------------------------
// Reads

namespace {

using Query = std::vector<std::pair<std::string, std::string>>;

// Parses the query and refuses keys outside `allowed` and repeated keys (bad_request).
Result<Query> ParseAllowedQuery(std::string_view raw,
                                std::initializer_list<std::string_view> allowed) {
  Query q;
  if (!ParseQuery(raw, q)) return Err(ErrorCode::kBadRequest, "malformed query string");
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (std::find(allowed.begin(), allowed.end(), q[i].first) == allowed.end()) {
      return Err(ErrorCode::kBadRequest, "unknown query parameter '" + q[i].first + "'");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (q[j].first == q[i].first)
        return Err(ErrorCode::kBadRequest, "query parameter '" + q[i].first + "' is repeated");
    }
  }
  return q;
}

const std::string* Get(const Query& q, std::string_view key) {
  for (const auto& [k, v] : q)
    if (k == key) return &v;
  return nullptr;
}

struct PageParams {
  std::uint64_t offset = 0;
  std::uint32_t size = 25;
};

Result<PageParams> ParsePage(const Query& q, const ApiOptions& options) {
  PageParams p{0, options.default_page_size};
  if (const auto* v = Get(q, "pagination[offset]")) {
    auto n = ParseUint(*v, "pagination[offset]");
    if (!n) return n.error();
    p.offset = *n;
  }
  if (const auto* v = Get(q, "pagination[page_size]")) {
    auto n = ParseUint(*v, "pagination[page_size]");
    if (!n || *n < 1 || *n > options.max_page_size) {
      return Err(ErrorCode::kInvalidValue,
                 "pagination[page_size] must be an integer from 1 to " +
                     std::to_string(options.max_page_size),
                 "pagination[page_size]");
    }
    p.size = static_cast<std::uint32_t>(*n);
  }
  return p;
}

}  // namespace

void Api::ListTokens(const std::shared_ptr<Call>& call) {
  auto q = ParseAllowedQuery(
      call->query, {"account_id", "pagination[offset]", "pagination[page_size]",
                    "pagination[snapshot]", "sorting[field]", "sorting[direction]", "sorting",
                    "status", "token_scope", "environment_id", "idempotency_key"});
  if (!q) return call->Fail(q.error());
  auto page = ParsePage(*q, options_);
  if (!page) return call->Fail(page.error());
  const Caller& caller = call->caller;
  store::ListQuery lq;
  lq.account_id = caller.account_id;
  lq.offset = page->offset;
  lq.page_size = page->size;
  if (const auto* v = Get(*q, "account_id")) {
    auto id = ParseIdParam(*v, "account_id");
    if (!id) return call->Fail(id.error());
    if (*id != caller.account_id)
      return call->Fail(
          Err(ErrorCode::kNotPermitted, "the token may not list another account's tokens"));
  }
  if (const auto* v = Get(*q, "pagination[snapshot]")) {
    auto n = ParseUint(*v, "pagination[snapshot]");
    if (!n) return call->Fail(n.error());
    lq.snapshot_seq = *n;
  }
  std::string field = "inserted_at", direction = "desc";
  const auto* short_form = Get(*q, "sorting");
  if (short_form && (Get(*q, "sorting[field]") || Get(*q, "sorting[direction]"))) {
    return call->Fail(Err(ErrorCode::kBadRequest,
                          "use either sorting=[-]field or sorting[field]/sorting[direction]"));
  }
  if (short_form) {
    direction = !short_form->empty() && short_form->front() == '-' ? "desc" : "asc";
    field = direction == "desc" ? short_form->substr(1) : *short_form;
  }
  if (const auto* v = Get(*q, "sorting[field]")) field = *v;
  if (const auto* v = Get(*q, "sorting[direction]")) direction = *v;
  const auto sort = projections::ParseSortField(field);
  if (!sort) {
    return call->Fail(Err(ErrorCode::kInvalidValue,
                          "sorting field must be one of inserted_at, id, status, expires_at, "
                          "last_used_at, updated_at",
                          "sorting[field]"));
  }
  if (direction != "asc" && direction != "desc") {
    return call->Fail(Err(ErrorCode::kInvalidValue, "sorting direction must be asc or desc",
                          "sorting[direction]"));
  }
  lq.sort = *sort;
  lq.descending = direction == "desc";
  if (const auto* v = Get(*q, "status")) {
    lq.status = core::ParseStatus(*v);
    if (!lq.status)
      return call->Fail(
          Err(ErrorCode::kInvalidValue, "status must be active, suspended or revoked", "status"));
  }
  if (const auto* v = Get(*q, "token_scope")) {
    lq.scope = events::ParseScope(*v);
    if (!lq.scope)
      return call->Fail(Err(ErrorCode::kInvalidValue, "token_scope must be account or environment",
                            "token_scope"));
  }
  if (const auto* v = Get(*q, "environment_id")) {
    auto id = ParseIdParam(*v, "environment_id");
    if (!id) return call->Fail(id.error());
    lq.environment_id = *id;
  }
  if (caller.scope == events::TokenScope::kEnvironment) {
    if (lq.environment_id && lq.environment_id != caller.environment_id) {
      return call->Fail(
          Err(ErrorCode::kNotPermitted, "the token may only list its own environment's tokens"));
    }
    lq.environment_id = caller.environment_id;
  }
  // O(page) for first pages, O(offset) for deep ones (docs/LEDGER.md): off the I/O threads.
  OffIoThread(call, [this, call, lq, field, direction] {
    auto result = store_.ListTokens(lq);
    if (!result) return call->Fail(result.error());
    json::array summaries;
    summaries.reserve(result->rows.size());
    for (const auto& row : result->rows) summaries.push_back(TokenSummaryJson(row.state));
    json::object pagination =
        PaginationJson(result->item_count, lq.offset, lq.page_size, result->rows.size());
    pagination["snapshot"] = result->snapshot_seq;
    call->Respond(Success({{"status", "success"},
                           {"summaries", std::move(summaries)},
                           {"pagination", std::move(pagination)},
                           {"sorting", json::object{{"field", field}, {"direction", direction}}}}));
  });
}

void Api::OffIoThread(const std::shared_ptr<Call>& call, std::function<void()> read) {
  const bool queued = slow_reads_.TrySubmit([call, read = std::move(read)] {
    try {
      read();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "unexpected exception",
          {{"request_id", call->request_id}, {"what", e.what()}});
      call->Fail(Err(ErrorCode::kUnexpected, "internal error; request id " + call->request_id));
    }
  });
  if (!queued) {
    HttpResponse r = ErrorResponse(
        Err(ErrorCode::kUnavailable, "too many list requests in progress; retry shortly"));
    r.headers.emplace_back("Retry-After", "1");
    call->Respond(std::move(r));
  }
}

namespace {

// Whether a token of `account` (and `environment`) is in the caller's reach: its own account,
// and for an environment token its own environment. Outside it a token is "not found".
bool InReach(const Caller& c, const Id& account, const std::optional<Id>& environment) {
  return account == c.account_id &&
         (c.scope != events::TokenScope::kEnvironment || environment == c.environment_id);
}

}  // namespace

std::optional<projections::TokenRow> Api::TokenInReach(const std::shared_ptr<Call>& call,
                                                       const Id& id) {
  auto row = store_.GetToken(id);
  if (!row) {
    call->Fail(row.error());
    return std::nullopt;
  }
  if (!*row || !InReach(call->caller, (*row)->state.account_id, (*row)->state.environment_id)) {
    call->Fail(Err(ErrorCode::kNotFound, "api_token " + id.ToString() + " not found"));
    return std::nullopt;
  }
  return std::move(*row);
}

void Api::ShowToken(const std::shared_ptr<Call>& call) {
  auto id = ParseIdParam(call->params[0], "api_token_id");
  if (!id) return call->Fail(id.error());
  auto q = ParseAllowedQuery(call->query, {"as_of", "idempotency_key"});
  if (!q) return call->Fail(q.error());
  if (const auto* as_of = Get(*q, "as_of")) {
    const auto t = ParseRfc3339(*as_of);
    if (!t)
      return call->Fail(Err(ErrorCode::kInvalidValue, "as_of must be an RFC 3339 time", "as_of"));
    // A fold over the token's whole history: off the I/O threads.
    return OffIoThread(call, [this, call, id = *id, t = *t, as_of = std::string(*as_of)] {
      auto past = store_.GetTokenAsOf(id, t);
      if (!past) return call->Fail(past.error());
      if (!*past ||
          !InReach(call->caller, (*past)->state.account_id, (*past)->state.environment_id)) {
        return call->Fail(
            Err(ErrorCode::kNotFound, "api_token " + id.ToString() + " not found at " + as_of));
      }
      call->Respond(Success({{"status", "success"}, {"details", TokenDetailsJson(**past)}}));
    });
  }
  auto row = TokenInReach(call, *id);
  if (!row) return;
  call->Respond(Success({{"status", "success"}, {"details", TokenDetailsJson(*row)}}));
}

void Api::TokenEvents(const std::shared_ptr<Call>& call) {
  auto id = ParseIdParam(call->params[0], "api_token_id");
  if (!id) return call->Fail(id.error());
  auto q = ParseAllowedQuery(call->query,
                             {"pagination[offset]", "pagination[page_size]", "idempotency_key"});
  if (!q) return call->Fail(q.error());
  auto page = ParsePage(*q, options_);
  if (!page) return call->Fail(page.error());
  // The history outlives the token: ownership comes from its TokenCreated, not the row. The
  // first page already holds it; a later page needs one more read.
  auto events = store_.ListEvents(*id, page->offset, page->size);
  if (!events) return call->Fail(events.error());
  std::optional<store::EventPage> first;
  if (page->offset > 0) {
    auto head = store_.ListEvents(*id, 0, 1);
    if (!head) return call->Fail(head.error());
    first = std::move(*head);
  }
  const store::EventPage& owner_page = first ? *first : *events;
  const auto* created = owner_page.events.empty()
                            ? nullptr
                            : std::get_if<events::TokenCreated>(&owner_page.events[0].data);
  if (!created || !InReach(call->caller, created->account_id, created->environment_id)) {
    return call->Fail(Err(ErrorCode::kNotFound, "api_token " + id->ToString() + " not found"));
  }
  json::array list;
  for (const auto& e : events->events) list.push_back(events::EventToApiJson(e));
  call->Respond(Success({{"status", "success"},
                         {"events", std::move(list)},
                         {"pagination", PaginationJson(events->item_count, page->offset, page->size,
                                                       events->events.size())}}));
}

void Api::Ping(const std::shared_ptr<Call>& call) {
  call->Respond(Success({{"status", "success"}, {"details", json::object{{"token_type", "api"}}}}));
}

void Api::Healthz(const std::shared_ptr<Call>& call) { call->Respond(Success({{"status", "ok"}})); }

void Api::Readyz(const std::shared_ptr<Call>& call) {
  if (const store::StoreHealth health = store_.Health(); !health.ok) {
    return call->Fail(
        Err(ErrorCode::kUnavailable,
            "the ledger cannot write since " + FormatRfc3339(health.since) + ": " + health.reason));
  }
  if (!store_.ProjectionsCurrent()) {
    return call->Fail(
        Err(ErrorCode::kUnavailable, "projections are not at the current schema version"));
  }
  call->Respond(Success({{"status", "ready"}, {"last_seq", store_.LastSeq()}}));
}

void Api::MetricsText(const std::shared_ptr<Call>& call) {
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.Render(store_);
  call->Respond(std::move(r));
}

void Api::OpenApi(const std::shared_ptr<Call>& call) {
  HttpResponse r;
  r.body = OpenApiDocument();
  call->Respond(std::move(r));
}

}  // namespace tokenledger::http

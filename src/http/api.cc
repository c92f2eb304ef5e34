#include "src/http/api.h"

#include <boost/json.hpp>
#include <chrono>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/http/errors.h"
#include "src/http/idempotency.h"
#include "src/http/introspection.h"
#include "src/http/json_views.h"
#include "src/http/list_query.h"
#include "src/http/write_requests.h"
#include "tokenledger/log.h"

namespace tokenledger::http {
namespace json = boost::json;

namespace {

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

}  // namespace

struct Api::Call {
  std::shared_ptr<HttpRequest> req;
  Responder respond;
  std::string request_id;
  std::string_view route = "unmatched";
  std::string_view path;
  std::string_view query;
  Params params;
  Caller caller;
  Micros now = 0;
  std::chrono::steady_clock::time_point start;
  std::atomic<bool> answered{false};
  HttpMetrics* metrics = nullptr;

  void Respond(HttpResponse response) {
    if (answered.exchange(true)) return;
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
    // Nothing reads the call's id after its answer: moved, not copied.
    response.request_id = std::move(request_id);
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

Api::Api(store::LedgerStore& store, const auth::KeyRing& keys, ApiOptions options,
         HttpMetrics& metrics)
    : store_(store),
      keys_(keys),
      options_(options),
      metrics_(metrics),
      page_limits_{options.default_page_size, options.max_page_size},
      authenticator_(store, keys, options.policy.last_used_granularity, options.verified_tokens),
      router_({
          {"GET", "/api/v1/ping", &Api::Ping, Auth::kPing},
          {"POST", "/api/v1/api_token", &Api::CreateToken, Auth::kWriteTokens},
          {"GET", "/api/v1/api_token", &Api::ListTokens, Auth::kReadTokens},
          {"GET", "/api/v1/api_token/{id}", &Api::ShowToken, Auth::kReadTokens},
          {"DELETE", "/api/v1/api_token/{id}", &Api::Delete, Auth::kWriteTokens},
          {"GET", "/api/v1/api_token/{id}/events", &Api::TokenEvents, Auth::kReadTokens},
          {"POST", "/api/v1/api_token/{id}/suspend", &Api::Suspend, Auth::kWriteTokens},
          {"POST", "/api/v1/api_token/{id}/activate", &Api::Activate, Auth::kWriteTokens},
          {"POST", "/api/v1/api_token/{id}/revoke", &Api::Revoke, Auth::kWriteTokens},
          {"POST", "/api/v1/introspect", &Api::Introspect, Auth::kIntrospect},
          {"GET", "/api/v1/openapi.json", &Api::OpenApi, Auth::kNone},
          {"GET", "/healthz", &Api::Healthz, Auth::kNone},
          {"GET", "/readyz", &Api::Readyz, Auth::kNone},
          {"GET", "/metrics", &Api::MetricsText, Auth::kNone},
      }),
      slow_reads_(options.slow_read_threads, options.max_queued_slow_reads) {}

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
    auto resolved = router_.Resolve(call->req->method, call->path);
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
    if (match->route->auth != Auth::kNone) {
      auto caller = authenticator_.Authenticate(*call->req, call->now);
      if (!caller) return call->Fail(caller.error());
      if (Status allowed = CheckScopeAllows(*caller, match->route->auth); !allowed)
        return call->Fail(allowed.error());
      call->caller = *caller;
    }
    (this->*(match->route->handler))(call);
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "unexpected exception",
        {{"request_id", call->request_id}, {"what", e.what()}});
    call->Fail(Err(ErrorCode::kUnexpected, "internal error; request id " + call->request_id));
  }
}

// Signed with the key recorded at creation, so a replay gives the same bytes across rotations.
Result<std::string> Api::TokenJwt(const core::TokenState& s) const {
  return keys_.Sign(
      auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id),
      s.signing_kid);
}

// ---------------------------------------------------------------------------------------
// Writes

void Api::SubmitWrite(const std::shared_ptr<Call>& call, core::Command command,
                      std::optional<std::string> key, std::string canonical_body) {
  const bool is_create = std::holds_alternative<core::CreateToken>(command);
  store::CommandRequest req;
  req.command = std::move(command);
  req.request_id = call->request_id;
  req.actor = events::Actor{call->caller.token_id, call->caller.admin_user_id};
  if (key) {
    const std::string fingerprint = Fingerprint(
        call->req->method, call->route,
        std::vector<std::string_view>(call->params.begin(), call->params.end()), canonical_body);
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
  JwtFn jwt;
  if (is_create) jwt = [this](const core::TokenState& s) { return TokenJwt(s); };
  try {
    call->Respond(RenderWrite(r, jwt));
  } catch (const std::exception& e) {
    Log(LogLevel::kError, "unexpected exception",
        {{"request_id", call->request_id}, {"what", e.what()}});
    call->Fail(Err(ErrorCode::kUnexpected, "internal error; request id " + call->request_id));
  }
}

void Api::CreateToken(const std::shared_ptr<Call>& call) {
  const Caller& caller = call->caller;
  auto parsed = ParseCreateRequest(*call->req, caller.account_id);
  if (!parsed) return call->Fail(parsed.error());
  core::CreateToken& c = parsed->command;
  if (!InReach(caller, c.account_id, c.environment_id)) {
    return call->Fail(
        Err(ErrorCode::kNotPermitted, "the token may not manage another account's tokens"));
  }
  // The decider checks these again at commit time; checking here answers without a queue trip.
  const core::DecideContext ctx{.now = call->now, .policy = options_.policy};
  if (const std::optional<core::Rejection> invalid = core::ValidateCreate(c, ctx)) {
    return call->Fail(Error{invalid->code, invalid->message, invalid->field});
  }
  c.created_by_admin_user_id = caller.admin_user_id;
  c.signing_kid = keys_.active_kid();
  std::string canonical = CanonicalCreate(c);
  SubmitWrite(call, std::move(c), std::move(parsed->key), std::move(canonical));
}

void Api::Introspect(const std::shared_ptr<Call>& call) {
  auto request = ParseIntrospectionRequest(*call->req, call->query);
  if (!request) return call->Fail(request.error());
  auto found = authenticator_.Introspect(call->caller, request->token, call->now, call->req->post);
  if (!found) return call->Fail(found.error());
  HttpResponse r;
  if (!*found) r.status = request->inactive_status;
  r.body = IntrospectionBody(*found);
  r.headers = IntrospectionHeaders(*found);
  r.headers.emplace_back(
      "Cache-Control", IntrospectionCacheControl(*found, options_.introspection_cache, call->now));
  call->Respond(std::move(r));
}

void Api::Action(const std::shared_ptr<Call>& call, core::Command command) {
  auto key = ParseActionRequest(*call->req);
  if (!key) return call->Fail(key.error());
  SubmitWrite(call, std::move(command), std::move(*key), "");
}

// Only the token's account is passed: the decider refuses other accounts' tokens as not
// found (the account half of InReach; environment tokens never get here, see reach.h).
#define TOKENLEDGER_ACTION(Name, Command)                      \
  void Api::Name(const std::shared_ptr<Call>& call) {          \
    auto id = ParseIdParam(call->params[0], "api_token_id");   \
    if (!id) return call->Fail(id.error());                    \
    Action(call, core::Command{*id, call->caller.account_id}); \
  }
TOKENLEDGER_ACTION(Suspend, SuspendToken)
TOKENLEDGER_ACTION(Activate, ActivateToken)
TOKENLEDGER_ACTION(Revoke, RevokeToken)
TOKENLEDGER_ACTION(Delete, DeleteToken)
#undef TOKENLEDGER_ACTION

// ---------------------------------------------------------------------------------------
// Reads

void Api::ListTokens(const std::shared_ptr<Call>& call) {
  auto parsed = ParseListRequest(call->query, call->caller, page_limits_);
  if (!parsed) return call->Fail(parsed.error());
  // O(page) for first pages, O(offset) for deep ones (docs/LEDGER.md): off the I/O threads.
  OffIoThread(call, [this, call, list = std::move(*parsed)] {
    const store::ListQuery& lq = list.query;
    auto result = store_.ListTokens(lq);
    if (!result) return call->Fail(result.error());
    json::object pagination =
        PaginationJson(result->item_count, lq.offset, lq.page_size, result->rows.size());
    pagination["snapshot"] = result->snapshot_seq;
    HttpResponse r;
    r.body.reserve(64 + 400 * result->rows.size());
    r.body = R"({"status":"success","summaries":[)";
    for (std::size_t i = 0; i < result->rows.size(); ++i) {
      if (i > 0) r.body += ',';
      AppendTokenSummaryJson(result->rows[i].state, r.body);
    }
    r.body += R"(],"pagination":)";
    r.body += json::serialize(pagination);
    r.body += R"(,"sorting":)";
    r.body += json::serialize(json::object{{"field", list.field}, {"direction", list.direction}});
    r.body += '}';
    call->Respond(std::move(r));
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
  if (!queued) {  // a 503: ErrorResponse adds its Retry-After
    call->Fail(Err(ErrorCode::kUnavailable, "too many list requests in progress; retry shortly"));
  }
}

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
      call->Respond(TokenDetailsResponse(**past));
    });
  }
  auto row = TokenInReach(call, *id);
  if (!row) return;
  call->Respond(TokenDetailsResponse(*row));
}

void Api::TokenEvents(const std::shared_ptr<Call>& call) {
  auto id = ParseIdParam(call->params[0], "api_token_id");
  if (!id) return call->Fail(id.error());
  auto q = ParseAllowedQuery(call->query,
                             {"pagination[offset]", "pagination[page_size]", "idempotency_key"});
  if (!q) return call->Fail(q.error());
  auto page = ParsePage(*q, page_limits_);
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
  call->Respond(
      SuccessResponse({{"status", "success"},
                       {"events", std::move(list)},
                       {"pagination", PaginationJson(events->item_count, page->offset, page->size,
                                                     events->events.size())}}));
}

void Api::Ping(const std::shared_ptr<Call>& call) {
  // Every authenticated client's health check: a constant, not a JSON document built each time.
  HttpResponse r;
  r.body = R"({"status":"success","details":{"token_type":"api"}})";
  call->Respond(std::move(r));
}

void Api::Healthz(const std::shared_ptr<Call>& call) {
  call->Respond(SuccessResponse({{"status", "ok"}}));
}

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
  call->Respond(SuccessResponse({{"status", "ready"}, {"last_seq", store_.LastSeq()}}));
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

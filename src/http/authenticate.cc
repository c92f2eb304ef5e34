#include "src/http/authenticate.h"

#include <algorithm>
#include <cassert>
#include <cctype>

#include "tokenledger/log.h"

namespace tokenledger::http {
namespace {

Error BadAuthToken(std::string message) {
  return Error{ErrorCode::kBadAuthToken, std::move(message), {}};
}

}  // namespace

Result<std::string_view> BearerToken(const HttpRequest& req) {
  if (!req.has_authorization)
    return Error{ErrorCode::kNotAuthenticated, "the Authorization header is missing", {}};
  if (req.repeated_authorization) {
    // Which one would count is a guess a proxy in front might make differently: refuse.
    return Error{ErrorCode::kBadRequest, "the Authorization header is repeated", {}};
  }
  std::string_view header = req.authorization;
  constexpr std::string_view kBearer = "bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return BadAuthToken("the Authorization header must be 'Bearer <token>'");
  }
  return header.substr(kBearer.size());
}

Result<Caller> AdmitCaller(const auth::Claims& claims, const projections::TokenRow* row,
                           Micros now) {
  if (!row) return BadAuthToken("the token is unknown or was deleted");
  const core::TokenState& s = row->state;
  if (s.account_id != claims.account_id || s.environment_id != claims.environment_id ||
      s.signing_kid != claims.kid) {
    return BadAuthToken("the token's claims do not match the token");
  }
  if (s.status != core::TokenStatus::kActive) {
    return BadAuthToken("the token is " + std::string(core::StatusName(s.status)));
  }
  if (Status expiry = auth::CheckNotExpired(claims, s.expires_at, now); !expiry)
    return expiry.error();
  return Caller{s.id,      s.account_id, s.scope, s.environment_id, s.created_by_admin_user_id,
                s.agent_id};
}

LastUseLimiter::LastUseLimiter(Micros granularity) : granularity_(granularity) {
  assert(granularity >= 0);
}

bool LastUseLimiter::Admit(const Id& token, const std::optional<Micros>& last_used_at, Micros now) {
  if (last_used_at && now - *last_used_at < granularity_) return false;
  std::lock_guard lock(mu_);
  auto [it, inserted] = recent_uses_.try_emplace(token, now);
  if (!inserted) {
    if (now - it->second < granularity_) return false;
    it->second = now;
  }
  if (recent_uses_.size() > kMaxEntries)
    std::erase_if(recent_uses_, [&](const auto& e) { return now - e.second >= granularity_; });
  return true;
}

std::size_t LastUseLimiter::size() const {
  std::lock_guard lock(mu_);
  return recent_uses_.size();
}

Authenticator::Authenticator(store::LedgerStore& store, const auth::KeyRing& keys,
                             Micros last_used_granularity, std::size_t verified_tokens)
    : store_(store), verified_(keys, verified_tokens), uses_(last_used_granularity) {}

Result<std::pair<Caller, projections::TokenRow>> Authenticator::Admit(std::string_view jwt,
                                                                      Micros now) {
  auto claims = verified_.Verify(jwt);
  if (!claims) return claims.error();
  auto row = store_.GetToken(claims->token_id);
  if (!row) return row.error();
  auto caller = AdmitCaller(*claims, row->has_value() ? &**row : nullptr, now);
  if (!caller) return caller.error();
  return std::pair{std::move(*caller), std::move(**row)};
}

void Authenticator::NoteUse(const projections::TokenRow& row, Micros now, const PostFn& post) {
  if (uses_.Admit(row.state.id, row.state.last_used_at, now)) RecordUse(row.state.id, now, post);
}

Result<Caller> Authenticator::Authenticate(const HttpRequest& req, Micros now) {
  auto token = BearerToken(req);
  if (!token) return token.error();
  auto admitted = Admit(*token, now);
  if (!admitted) return admitted.error();
  NoteUse(admitted->second, now, req.post);
  return std::move(admitted->first);
}

Result<std::optional<Authenticator::Introspected>> Authenticator::Introspect(const Caller& asker,
                                                                             std::string_view jwt,
                                                                             Micros now,
                                                                             const PostFn& post) {
  auto admitted = Admit(jwt, now);
  if (!admitted) {
    // Every refusal of the token itself is "inactive"; only the store's failure is an error.
    if (admitted.error().code == ErrorCode::kBadAuthToken) return std::optional<Introspected>();
    return admitted.error();
  }
  const auto& [caller, row] = *admitted;
  if (caller.scope == events::TokenScope::kIntrospection) return std::optional<Introspected>();
  if (!MayIntrospect(asker, caller.token_id)) return std::optional<Introspected>();
  NoteUse(row, now, post);  // an active answer is a use, as an authentication is
  return std::optional<Introspected>(
      Introspected{caller, row.state.inserted_at, row.state.expires_at});
}

void Authenticator::RecordUse(const Id& token, Micros now, const PostFn& post) {
  // Fire and forget: the request never waits for this write.
  store::CommandRequest req;
  req.command = core::RecordUse{token, now};
  req.request_id = "last-used";
  req.actor.token_id = token;
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

}  // namespace tokenledger::http

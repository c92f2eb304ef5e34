#include "src/core/decider.h"

#include <cassert>

namespace tokenledger::core {
namespace {

using events::EventData;

Rejection Reject(ErrorCode code, std::string message, std::string field = {}) {
  return Rejection{code, std::move(message), std::move(field)};
}

Rejection NotFound(const Id& id) {
  return Reject(ErrorCode::kNotFound, "api_token " + id.ToString() + " not found");
}

// The expiry a create gets: its own, or the default lifetime from now.
Micros CreateExpiry(const CreateToken& c, const DecideContext& ctx) {
  return c.expires_at ? *c.expires_at : ctx.now + ctx.policy.default_lifetime;
}

Decision DecideCreate(const CreateToken& c, const TokenState& state, const DecideContext& ctx) {
  if (state.exists) {
    // Only possible if an id collides: 80 random bits make that a bug, not a user error.
    return Reject(ErrorCode::kUnexpected, "token id already exists");
  }
  if (std::optional<Rejection> invalid = ValidateCreate(c, ctx)) return std::move(*invalid);
  const Micros expires_at = CreateExpiry(c, ctx);
  return std::vector<EventData>{events::TokenCreated{
      .account_id = c.account_id,
      .environment_id = c.environment_id,
      .scope = c.scope,
      .expires_at = expires_at,
      .created_by_admin_user_id = c.created_by_admin_user_id,
      .agent_id = c.agent_id,
      .agent_deployment_id = c.agent_deployment_id,
      .signing_kid = c.signing_kid,
  }};
}

// The four lifecycle actions share one shape: visible token, action available, one event.
// A token of another account is "not found": its existence is not revealed. This is the
// account half of the HTTP layer's reach rule (http::InReach in src/http/reach.h), asked here
// because a write is decided against the token's current state, which only the committer
// reads. The decider knows only the account: the command carries no environment, and the
// environment half never applies to writes because environment tokens may not change tokens
// (the HTTP handler refuses them before a command is built).
template <typename Event, typename Command>
Decision DecideAction(const Command& c, const TokenState& state, bool AvailableActions::*allowed,
                      std::string_view verb) {
  if (!state.Visible() || (c.account_id && state.account_id != *c.account_id)) {
    return NotFound(c.token_id);
  }
  if (!(ActionsFor(state.status).*allowed)) {
    return Reject(ErrorCode::kInvalidAction, "cannot " + std::string(verb) + " a token that is " +
                                                 std::string(StatusName(state.status)));
  }
  return std::vector<EventData>{Event{}};
}

Decision DecideRecordUse(const RecordUse& c, const TokenState& state, const DecideContext& ctx) {
  if (!state.Visible()) return NotFound(c.token_id);
  if (!DecideUse(state, c.used_at, ctx.policy).audited) return std::vector<EventData>{};
  return std::vector<EventData>{events::TokenUsed{c.used_at}};
}

}  // namespace

std::optional<Rejection> ValidateCreate(const CreateToken& c, const DecideContext& ctx) {
  const bool has_environment = events::ScopeHasEnvironment(c.scope);
  if (has_environment && !c.environment_id) {
    return Reject(
        ErrorCode::kRequiredValue,
        "environment_id is required for " + std::string(events::ScopeName(c.scope)) + " scope",
        "environment_id");
  }
  if (!has_environment && c.environment_id) {
    return Reject(
        ErrorCode::kInvalidValue,
        "environment_id must be null for " + std::string(events::ScopeName(c.scope)) + " scope",
        "environment_id");
  }
  const bool has_agent = events::ScopeHasAgent(c.scope);
  if (has_agent && !c.agent_id) {
    return Reject(ErrorCode::kRequiredValue,
                  "agent_id is required for " + std::string(events::ScopeName(c.scope)) + " scope",
                  "agent_id");
  }
  if (!has_agent && c.agent_id) {
    return Reject(ErrorCode::kInvalidValue,
                  "agent_id must be null for " + std::string(events::ScopeName(c.scope)) + " scope",
                  "agent_id");
  }
  if (!has_agent && c.agent_deployment_id) {
    return Reject(ErrorCode::kInvalidValue,
                  "agent_deployment_id must be null for " +
                      std::string(events::ScopeName(c.scope)) + " scope",
                  "agent_deployment_id");
  }
  if (c.expires_at && *c.expires_at <= ctx.now) {
    return Reject(ErrorCode::kInvalidValue, "expires_at must be in the future", "expires_at");
  }
  if (ctx.policy.max_lifetime > 0 && CreateExpiry(c, ctx) > ctx.now + ctx.policy.max_lifetime) {
    return Reject(ErrorCode::kInvalidValue, "expires_at is past the maximum token lifetime",
                  "expires_at");
  }
  return std::nullopt;
}

UseEffect DecideUse(const TokenState& state, Micros used_at, const TokenPolicy& policy) {
  assert(state.Visible());
  UseEffect effect;
  if (state.last_used_at && used_at < *state.last_used_at + policy.last_used_granularity) {
    return effect;  // recorded recently enough
  }
  effect.moves_last_used = true;
  const Micros interval = policy.usage_audit_interval;
  effect.audited =
      interval > 0 && (!state.last_used_at || used_at / interval != *state.last_used_at / interval);
  return effect;
}

Decision Decide(const Command& command, const TokenState& state, const DecideContext& ctx) {
  if (const auto* c = std::get_if<CreateToken>(&command)) return DecideCreate(*c, state, ctx);
  if (const auto* c = std::get_if<SuspendToken>(&command))
    return DecideAction<events::TokenSuspended>(*c, state, &AvailableActions::suspend, "suspend");
  if (const auto* c = std::get_if<ActivateToken>(&command))
    return DecideAction<events::TokenActivated>(*c, state, &AvailableActions::activate, "activate");
  if (const auto* c = std::get_if<RevokeToken>(&command))
    return DecideAction<events::TokenRevoked>(*c, state, &AvailableActions::revoke, "revoke");
  if (const auto* c = std::get_if<DeleteToken>(&command))
    return DecideAction<events::TokenDeleted>(*c, state, &AvailableActions::del, "delete");
  if (const auto* c = std::get_if<ChangeKeyRing>(&command)) {
    // Checked by the tool against the ring's history (CheckKeyRingChange) under exclusive
    // access; here it only becomes the key ring stream's next event.
    return std::visit([](const auto& change) { return std::vector<EventData>{change}; }, c->change);
  }
  return DecideRecordUse(std::get<RecordUse>(command), state, ctx);
}

TokenState Evolve(TokenState s, const events::EventEnvelope& e) {
  s.version = e.stream_version;
  std::visit(
      [&](const auto& data) {
        using T = std::decay_t<decltype(data)>;
        if constexpr (std::is_same_v<T, events::TokenCreated>) {
          s.exists = true;
          s.id = e.stream;
          s.account_id = data.account_id;
          s.environment_id = data.environment_id;
          s.scope = data.scope;
          s.status = TokenStatus::kActive;
          s.created_by_admin_user_id = data.created_by_admin_user_id;
          s.agent_id = data.agent_id;
          s.agent_deployment_id = data.agent_deployment_id;
          s.signing_kid = data.signing_kid;
          s.expires_at = data.expires_at;
          s.inserted_at = e.at;
          s.updated_at = e.at;
        } else if constexpr (std::is_same_v<T, events::TokenSuspended>) {
          s.status = TokenStatus::kSuspended;
          s.updated_at = e.at;
        } else if constexpr (std::is_same_v<T, events::TokenActivated>) {
          s.status = TokenStatus::kActive;
          s.updated_at = e.at;
        } else if constexpr (std::is_same_v<T, events::TokenRevoked>) {
          s.status = TokenStatus::kRevoked;
          s.updated_at = e.at;
        } else if constexpr (std::is_same_v<T, events::TokenDeleted>) {
          s.deleted = true;
          s.updated_at = e.at;
        } else if constexpr (std::is_same_v<T, events::TokenUsed>) {
          s.last_used_at = data.used_at;  // a use is not a state change: updated_at stays
        }
      },
      e.data);
  return s;
}

}  // namespace tokenledger::core

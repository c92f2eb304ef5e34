#include "src/http/reach.h"

#include <cassert>

namespace tokenledger::http {
namespace {

// The two halves of reach. An environment token always has an environment (the decider
// refuses to create one without), so an environment caller never matches a token without one.
bool AccountInReach(const Caller& c, const Id& account) { return account == c.account_id; }

bool EnvironmentInReach(const Caller& c, const std::optional<Id>& environment) {
  return c.scope != events::TokenScope::kEnvironment || environment == c.environment_id;
}

}  // namespace

Status CheckScopeAllows(const Caller& caller, Auth need) {
  using events::TokenScope;
  std::string_view refusal;
  switch (caller.scope) {
    case TokenScope::kAccount:
      if (need == Auth::kIntrospect)
        refusal = "only introspection and agent_deployment tokens may introspect";
      break;
    case TokenScope::kEnvironment:
      if (need == Auth::kWriteTokens) {
        refusal = "environment tokens may not create or change tokens";
      } else if (need == Auth::kIntrospect) {
        refusal = "only introspection and agent_deployment tokens may introspect";
      }
      break;
    case TokenScope::kIntrospection:
      if (need != Auth::kIntrospect)
        refusal = "introspection tokens may only call POST /api/v1/introspect";
      break;
    case TokenScope::kAgentDeployment:
      if (need != Auth::kPing && need != Auth::kIntrospect)
        refusal = "agent_deployment tokens may only ping and introspect themselves";
      break;
  }
  if (refusal.empty()) return Status::Ok();
  return Error{ErrorCode::kNotPermitted, std::string(refusal), {}};
}

bool MayIntrospect(const Caller& caller, const Id& token) {
  assert(CheckScopeAllows(caller, Auth::kIntrospect));
  return caller.scope == events::TokenScope::kIntrospection || token == caller.token_id;
}

bool InReach(const Caller& caller, const Id& account, const std::optional<Id>& environment) {
  return AccountInReach(caller, account) && EnvironmentInReach(caller, environment);
}

Status CheckListAccount(const Caller& caller, const Id& account) {
  if (!AccountInReach(caller, account)) {
    return Error{ErrorCode::kNotPermitted, "the token may not list another account's tokens", {}};
  }
  return Status::Ok();
}

Status NarrowListToReach(const Caller& caller, store::ListQuery& query) {
  if (query.environment_id && !EnvironmentInReach(caller, query.environment_id)) {
    return Error{
        ErrorCode::kNotPermitted, "the token may only list its own environment's tokens", {}};
  }
  query.account_id = caller.account_id;
  if (caller.scope == events::TokenScope::kEnvironment)
    query.environment_id = caller.environment_id;
  return Status::Ok();
}

}  // namespace tokenledger::http

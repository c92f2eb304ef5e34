// Who is calling, what its scope allows, and which tokens are in its reach: the one place
// that answers "may this caller make this kind of call?" and "may this caller see tokens of
// this account and environment?".
//
// Scopes (SPEC.md): an account token may ping, read and write its account's tokens; an
// environment token may ping and read (its environment's tokens); an introspection token may
// only introspect (tokens of any account: a gateway's credential); an agent_deployment token
// may ping and introspect itself. Anything else is not_permitted.
//
// Reach: a token is in a caller's reach when it belongs to the caller's account and, for an
// environment token, to the caller's environment. Outside it a token is "not found" (its
// existence is not revealed) when it is named by id, and a list that asks for it is refused
// (not_permitted). Every HTTP read goes through InReach (show, show as_of, events) or the list
// functions below, which ask its two halves separately because they answer differently.
//
// Writes are the exception, by design: a lifecycle action is decided against the token's
// current state, which only the committer reads, so the decider asks the account half itself
// (core::Decide refuses another account's token as not found; see DecideAction in
// src/core/decider.cc). It knows only the account because the environment half never applies
// to writes: only account tokens may write (CheckScopeAllows refuses the others before a
// handler runs). A create names its account, and InReach decides whether it may.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <optional>

#include "events/events.h"
#include "src/http/router.h"
#include "src/store/ledger_store.h"
#include "tokenledger/error.h"
#include "tokenledger/id.h"

namespace tokenledger::http {

// Who is calling: the token that authenticated the request.
struct Caller {
  Id token_id;
  Id account_id;
  events::TokenScope scope = events::TokenScope::kAccount;
  std::optional<Id> environment_id;  // set for (and only for) scopes with an environment
  std::optional<Id> admin_user_id;
  std::optional<Id> agent_id;  // set for (and only for) agent_deployment scope
};

// Whether the caller's scope allows a call that needs `need` (not kNone): OK, or
// not_permitted saying what the scope may not do.
Status CheckScopeAllows(const Caller& caller, Auth need);

// Whether the caller may learn through introspection whether `token` is active. REQUIRES: the
// caller's scope allows Auth::kIntrospect. An introspection token may ask about any token, an
// agent_deployment token only about itself (RFC 7662 §4: about any other it learns
// `{"active":false}`, as for an invalid one).
bool MayIntrospect(const Caller& caller, const Id& token);

// Whether a token of `account` and `environment` is in the caller's reach: its own account,
// and for an environment token also its own environment.
bool InReach(const Caller& caller, const Id& account, const std::optional<Id>& environment);

// A list's explicit `account_id` parameter: OK for the caller's own account, otherwise
// not_permitted ("the token may not list another account's tokens").
Status CheckListAccount(const Caller& caller, const Id& account);

// Narrows `query` to the caller's reach: sets its account to the caller's and, for an
// environment token, its environment to the caller's. Fails with not_permitted ("the token
// may only list its own environment's tokens"), leaving `query` unchanged, when `query`
// already filters on an environment out of the caller's reach.
Status NarrowListToReach(const Caller& caller, store::ListQuery& query);

}  // namespace tokenledger::http

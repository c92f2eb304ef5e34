// The decider: the whole business logic of the token lifecycle, as two pure functions.
//
//   Decide(command, state, context) -> events to append, or a rejection
//   Evolve(state, event)            -> the next state
//
// No I/O, no clock, no randomness, no exceptions: time and new ids come in through the
// context, so replaying the same events always yields the same state.
// Thread-safety: pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "events/events.h"
#include "src/core/commands.h"
#include "src/core/token_state.h"
#include "tokenledger/error.h"
#include "tokenledger/options.h"

namespace tokenledger::core {

struct DecideContext {
  Micros now = 0;
  Id new_token_id;  // the id a CreateToken gets
  TokenPolicy policy;
};

struct Rejection {
  ErrorCode code = ErrorCode::kUnexpected;
  std::string message;
  std::string field;  // the offending field, for the error envelope's `errors`
  friend bool operator==(const Rejection&, const Rejection&) = default;
};

// Events to append (possibly none: a RecordUse that DecideUse does not audit appends nothing).
using Decision = std::variant<std::vector<events::EventData>, Rejection>;

// What a use at `used_at` does to a token: whether `last_used_at` moves (once per
// policy.last_used_granularity), and whether that move is audited, i.e. appended to the ledger
// as a TokenUsed event (the first use in each policy.usage_audit_interval). A move that is not
// audited is a usage record kept beside the ledger (see docs/LEDGER.md, "Usage records").
struct UseEffect {
  bool moves_last_used = false;
  bool audited = false;
  friend bool operator==(const UseEffect&, const UseEffect&) = default;
};
// REQUIRES: state.Visible().
UseEffect DecideUse(const TokenState& state, Micros used_at, const TokenPolicy& policy);

// The stateless checks of a create, the one place they live: an environment or agent token
// needs an environment, the other scopes have none; an agent token needs an agent_id, the
// others have neither agent_id nor agent_deployment_id; and the expiry
// (context.policy.default_lifetime from context.now when absent) is in the future and within
// context.policy.max_lifetime. Returns the rejection Decide would give for `create`, or nullopt if
// none of them refuses it. Uses context.now and context.policy only. Decide calls it for every
// create; callers outside the committer (the HTTP handler's precheck, `tokenledger mint`) call it
// to refuse a create before queueing it.
std::optional<Rejection> ValidateCreate(const CreateToken& create, const DecideContext& context);

// `state` is the target token's current state (default-constructed when it does not exist;
// for CreateToken, the state of context.new_token_id).
Decision Decide(const Command& command, const TokenState& state, const DecideContext& context);

// Folds one event into the state. `stream`, `at` and `stream_version` come from the envelope.
TokenState Evolve(TokenState state, const events::EventEnvelope& event);

}  // namespace tokenledger::core

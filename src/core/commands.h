// Commands: what a caller asks the ledger to do to one token.
//
// Thread-safety: value types.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "events/events.h"
#include "tokenledger/id.h"
#include "tokenledger/time.h"

namespace tokenledger::core {

// The new token's id comes from DecideContext::new_token_id, not from the command, so a
// replayed or retried command never fixes an id in advance.
struct CreateToken {
  Id account_id;
  std::optional<Id> environment_id;
  events::TokenScope scope = events::TokenScope::kAccount;
  std::optional<Micros> expires_at;  // nullopt: now + the default lifetime
  std::optional<Id> created_by_admin_user_id;
  std::optional<Id> agent_id;             // required for agent_deployment scope, else null
  std::optional<Id> agent_deployment_id;  // agent_deployment scope only, optional
  // Set by the service, never by a client: the `kid` of the key that will sign the token (the
  // key ring's active key when the command is built); nullopt: the original key, no `kid`.
  std::optional<std::string> signing_kid;
};
struct SuspendToken {
  Id token_id;
  std::optional<Id> account_id;  // the caller's account: another account's token is not found
};
struct ActivateToken {
  Id token_id;
  std::optional<Id> account_id;  // the caller's account: another account's token is not found
};
struct RevokeToken {
  Id token_id;
  std::optional<Id> account_id;  // the caller's account: another account's token is not found
};
struct DeleteToken {
  Id token_id;
  std::optional<Id> account_id;  // the caller's account: another account's token is not found
};
// A successful authentication at `used_at`; recorded at most once per granularity.
struct RecordUse {
  Id token_id;
  Micros used_at = 0;
};

// A change of the key ring (tokenledger keys rotate|retire), appended to the key ring's stream.
// Built only by the operator tool, with exclusive access to the ledger, after
// core::CheckKeyRingChange (key_ring.h) accepted it against the ring's history.
struct ChangeKeyRing {
  std::variant<events::SigningKeyRotated, events::SigningKeyRetired> change;
};

using Command = std::variant<CreateToken, SuspendToken, ActivateToken, RevokeToken, DeleteToken,
                             RecordUse, ChangeKeyRing>;

// The stream a command acts on: the token's, events::kKeyRingStream for ChangeKeyRing; nullopt
// for CreateToken (its id is assigned at decision time).
std::optional<Id> CommandTarget(const Command& command);

// "create", "suspend", ... for logs and metrics.
std::string_view CommandName(const Command& command);

}  // namespace tokenledger::core

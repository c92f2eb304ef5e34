// The state of one token as the decider sees it, and the actions its status allows.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/events.h"
#include "tokenledger/id.h"
#include "tokenledger/time.h"

namespace tokenledger::core {

using events::TokenScope;

// Status tags are stored in projection rows and list index keys: never renumber.
enum class TokenStatus : std::uint8_t { kActive = 1, kSuspended = 2, kRevoked = 3 };

std::string_view StatusName(TokenStatus status);
std::optional<TokenStatus> ParseStatus(std::string_view name);

struct AvailableActions {
  bool activate = false;
  bool del = false;  // "delete"
  bool revoke = false;
  bool suspend = false;
  friend bool operator==(const AvailableActions&, const AvailableActions&) = default;
};

// The table of SPEC.md, "State machine".
AvailableActions ActionsFor(TokenStatus status);

struct TokenState {
  bool exists = false;   // a TokenCreated has been folded
  bool deleted = false;  // a TokenDeleted has been folded (no read shows the token)
  Id id;
  Id account_id;
  std::optional<Id> environment_id;
  TokenScope scope = TokenScope::kAccount;
  TokenStatus status = TokenStatus::kActive;
  std::optional<Id> created_by_admin_user_id;
  std::optional<Id> agent_id;              // agent_deployment scope only
  std::optional<Id> agent_deployment_id;   // agent_deployment scope only, when given
  std::optional<std::string> signing_kid;  // null: the original key (see TokenCreated)
  Micros expires_at = 0;
  Micros inserted_at = 0;
  Micros updated_at = 0;
  std::optional<Micros> last_used_at;
  std::uint64_t version = 0;  // stream version of the last folded event

  bool Visible() const { return exists && !deleted; }
  friend bool operator==(const TokenState&, const TokenState&) = default;
};

}  // namespace tokenledger::core

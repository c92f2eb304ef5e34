#include "src/core/token_state.h"

namespace tokenledger::core {

std::string_view StatusName(TokenStatus status) {
  switch (status) {
    case TokenStatus::kActive:
      return "active";
    case TokenStatus::kSuspended:
      return "suspended";
    case TokenStatus::kRevoked:
      return "revoked";
  }
  return "active";
}

std::optional<TokenStatus> ParseStatus(std::string_view name) {
  if (name == "active") return TokenStatus::kActive;
  if (name == "suspended") return TokenStatus::kSuspended;
  if (name == "revoked") return TokenStatus::kRevoked;
  return std::nullopt;
}

AvailableActions ActionsFor(TokenStatus status) {
  switch (status) {
    case TokenStatus::kActive:
      return {.activate = false, .del = false, .revoke = true, .suspend = true};
    case TokenStatus::kSuspended:
      return {.activate = true, .del = false, .revoke = true, .suspend = false};
    case TokenStatus::kRevoked:
      return {.activate = false, .del = true, .revoke = false, .suspend = false};
  }
  return {};
}

}  // namespace tokenledger::core

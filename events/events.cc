#include "events/events.h"

namespace tokenledger::events {

std::string_view ScopeName(TokenScope scope) {
  switch (scope) {
    case TokenScope::kEnvironment:
      return "environment";
    case TokenScope::kIntrospection:
      return "introspection";
    case TokenScope::kAccount:
      break;
  }
  return "account";
}

std::optional<TokenScope> ParseScope(std::string_view name) {
  if (name == "account") return TokenScope::kAccount;
  if (name == "environment") return TokenScope::kEnvironment;
  if (name == "introspection") return TokenScope::kIntrospection;
  return std::nullopt;
}

std::string_view TypeName(const EventData& data) {
  struct Visitor {
    std::string_view operator()(const TokenCreated&) const { return "TokenCreated"; }
    std::string_view operator()(const TokenSuspended&) const { return "TokenSuspended"; }
    std::string_view operator()(const TokenActivated&) const { return "TokenActivated"; }
    std::string_view operator()(const TokenRevoked&) const { return "TokenRevoked"; }
    std::string_view operator()(const TokenDeleted&) const { return "TokenDeleted"; }
    std::string_view operator()(const TokenUsed&) const { return "TokenUsed"; }
  };
  return std::visit(Visitor{}, data);
}

std::uint32_t CurrentSchemaVersion(std::string_view) {
  // Every type is at its first version. Bump one here together with an upcaster.
  return 1;
}

}  // namespace tokenledger::events

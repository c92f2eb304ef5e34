#include "events/events.h"

namespace tokenledger::events {

std::string_view ScopeName(TokenScope scope) {
  switch (scope) {
    case TokenScope::kEnvironment:
      return "environment";
    case TokenScope::kIntrospection:
      return "introspection";
    case TokenScope::kAgentDeployment:
      return "agent_deployment";
    case TokenScope::kAccount:
      break;
  }
  return "account";
}

std::optional<TokenScope> ParseScope(std::string_view name) {
  if (name == "account") return TokenScope::kAccount;
  if (name == "environment") return TokenScope::kEnvironment;
  if (name == "introspection") return TokenScope::kIntrospection;
  if (name == "agent_deployment") return TokenScope::kAgentDeployment;
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
    std::string_view operator()(const SigningKeyRotated&) const { return "SigningKeyRotated"; }
    std::string_view operator()(const SigningKeyRetired&) const { return "SigningKeyRetired"; }
  };
  return std::visit(Visitor{}, data);
}

bool IsKeyRingEvent(const EventData& data) {
  return std::holds_alternative<SigningKeyRotated>(data) ||
         std::holds_alternative<SigningKeyRetired>(data);
}

bool InItsStream(const Id& stream, const EventData& data) {
  return (stream == kKeyRingStream) == IsKeyRingEvent(data);
}

std::uint32_t CurrentSchemaVersion(std::string_view type_name) {
  // Bump a type's version here together with an upcaster (event_codec.cc, DefaultUpcasters).
  if (type_name == "TokenCreated") return 2;
  return 1;
}

}  // namespace tokenledger::events

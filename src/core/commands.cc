#include "src/core/commands.h"

namespace tokenledger::core {

std::optional<Id> CommandTarget(const Command& command) {
  struct Visitor {
    std::optional<Id> operator()(const CreateToken&) const { return std::nullopt; }
    std::optional<Id> operator()(const SuspendToken& c) const { return c.token_id; }
    std::optional<Id> operator()(const ActivateToken& c) const { return c.token_id; }
    std::optional<Id> operator()(const RevokeToken& c) const { return c.token_id; }
    std::optional<Id> operator()(const DeleteToken& c) const { return c.token_id; }
    std::optional<Id> operator()(const RecordUse& c) const { return c.token_id; }
    std::optional<Id> operator()(const ChangeKeyRing&) const { return events::kKeyRingStream; }
  };
  return std::visit(Visitor{}, command);
}

std::string_view CommandName(const Command& command) {
  static constexpr std::string_view kNames[] = {"create", "suspend",    "activate",       "revoke",
                                                "delete", "record_use", "change_key_ring"};
  static_assert(std::size(kNames) == std::variant_size_v<Command>);
  return kNames[command.index()];
}

}  // namespace tokenledger::core

// The key ring's history, folded from its stream (events::kKeyRingStream), and the rules of a
// change to it. The ledger is the ring's record of which key signs and which keys are retired;
// the key material lives only in the signing key file (src/auth/key_ring.h).
//
//   original key  the ledger's first key: the one in the key file before any rotation. Tokens
//                 created before the key ring (no `kid`) verify with it while it is not retired.
//   active key    signs every new token: the last rotation's, else the original.
//   retired key   verifies nothing any more; its material is erased from the key file.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "events/events.h"
#include "src/core/decider.h"

namespace tokenledger::core {

struct KeyRingHistory {
  // The original key's kid, once a rotation has named it (its previous_kid); before that the
  // original is whatever key the file holds first.
  std::optional<std::string> original_kid;
  std::optional<std::string> active_kid;  // nullopt: no rotation yet (the original signs)
  std::set<std::string> retired;
  std::vector<events::EventEnvelope> changes;  // every key ring event, oldest first
  friend bool operator==(const KeyRingHistory&, const KeyRingHistory&) = default;
};

// Folds one key ring event. REQUIRES: its data is a SigningKeyRotated or SigningKeyRetired.
void EvolveKeyRing(KeyRingHistory& history, const events::EventEnvelope& event);

// Whether a kid is one `tokenledger keys` would write: 1 to 64 of [A-Za-z0-9_-] (it goes into
// JWT headers and key file lines unescaped).
bool ValidKid(std::string_view kid);

// The rules of a change, given the history and the kids whose material the key file holds:
//   rotate  to a valid kid that the file holds, that is not active, not retired, and not a
//           kid the ring has used before (a kid is never reused)
//   retire  a kid the ring knows (in the file, or named by the history), that is not the
//           active key and not already retired
// Returns the rejection (invalid_action, or not_found for an unknown kid), or nullopt.
std::optional<Rejection> CheckKeyRingChange(const KeyRingHistory& history,
                                            const std::vector<std::string>& file_kids,
                                            const ChangeKeyRing& change);

// The kid that signs new tokens: the history's active key, else the file's first.
// REQUIRES: !file_kids.empty() || history.active_kid.
std::string ActiveKid(const KeyRingHistory& history, const std::vector<std::string>& file_kids);
// The original key's kid: named by the history, else the file's first (nullopt: empty file).
std::optional<std::string> OriginalKid(const KeyRingHistory& history,
                                       const std::vector<std::string>& file_kids);

}  // namespace tokenledger::core

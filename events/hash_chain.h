// The hash chain: each stored event body contains the previous event's hash, and its own
// hash is SHA-256 over the exact stored body bytes. Changing any byte of any event, or
// removing or reordering events, breaks the chain at that point.
//
// Thread-safety: pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/events.h"

namespace tokenledger::events {

inline constexpr Hash kGenesisHash{};  // prev_hash of the first event

Hash Sha256(std::string_view bytes);
// Lowercase hex of any bytes (two digits a byte).
std::string BytesToHex(std::string_view bytes);
std::string HashToHex(const Hash& hash);
std::optional<Hash> HashFromHex(std::string_view hex);

}  // namespace tokenledger::events

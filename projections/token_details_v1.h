// Version 1 of the token-details row encoding, kept so that tests can produce a ledger exactly
// as the version-1 release left it and prove that `tokenledger rebuild` migrates it. Never used
// by the server.
#pragma once

#include <string>

#include "projections/token_details.h"

namespace tokenledger::projections::v1 {

inline constexpr std::uint32_t kVersion = 1;

// The row as release 1 wrote it: the v2 fields (status_changed_at, revoked_at) do not exist.
// Deliberately a frozen copy, not shared with the current encoder, which keeps evolving.
std::string EncodeTokenRow(const TokenRow& row);

}  // namespace tokenledger::projections::v1

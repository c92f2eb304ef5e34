// The token-details projection: one row per visible token, holding every field of
// ApiToken_Details, folded from the ledger. It is a cache: the store updates it in the same
// batch as the events, and it can be thrown away and rebuilt from the ledger at any time.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/events.h"
#include "src/core/token_state.h"
#include "tokenledger/error.h"

namespace tokenledger::projections {

// Name and schema version of a projection, stored in the ledger's meta. Bump the version
// whenever the stored row shape or its meaning changes; the store then refuses to serve the
// old rows until they are rebuilt.
struct ProjectionInfo {
  std::string_view name;
  std::uint32_t version;
};

// Version history (never reuse a number):
//   1  the token's state and created_seq
//   2  adds status_changed_at and revoked_at (shown in details)
//   3  adds agent_id, agent_deployment_id and signing_kid (TokenCreated schema version 2)
//   4  the same fields in a binary encoding (token_details.cc), not JSON: a quarter of the
//      bytes, and reading a row copies fields instead of parsing
inline constexpr ProjectionInfo kTokenDetails{"token_details", 4};

struct TokenRow {
  core::TokenState state;
  std::uint64_t created_seq = 0;     // seq of TokenCreated (list snapshots filter on it)
  Micros status_changed_at = 0;      // v2: creation, or the last suspend/activate/revoke
  std::optional<Micros> revoked_at;  // v2: when it was revoked
  friend bool operator==(const TokenRow&, const TokenRow&) = default;
};

// Folds one event into the row of its stream. `row` is nullopt before TokenCreated. After
// TokenDeleted the row's state is deleted and the store removes the row.
void ApplyEvent(std::optional<TokenRow>& row, const events::EventEnvelope& event);

// Folds a usage record (kept beside the ledger, see DecideUse) into a row: a visible row's
// last_used_at becomes the later of the two. Rows of absent or deleted tokens are left alone.
void ApplyUse(std::optional<TokenRow>& row, Micros used_at);

// The stored row. One encoding per row: equal rows give equal bytes, and every bytes that
// decode are the encoding of the row they decode to.
std::string EncodeTokenRow(const TokenRow& row);
// The same bytes into `out` (cleared first; its capacity is reused): for the bulk tools.
void EncodeTokenRowInto(const TokenRow& row, std::string& out);
// Fails with kUnexpected if the bytes are not a row of the current schema version (also
// truncated, with bytes left over, or a signing_kid that is not UTF-8).
Result<TokenRow> DecodeTokenRow(std::string_view bytes);
// The row as one line of JSON, for people (verify's findings, test failures); never stored.
std::string DescribeTokenRow(const TokenRow& row);

}  // namespace tokenledger::projections

// The account list index: for each visible token and each sortable field, one key
//
//   account_id (20 bytes) | field tag (1) | sort value (8, order-preserving) | token_id (20)
//
// (the `id` field has no sort value: the token id is the value), so that one account's
// tokens, ordered by any field with ties broken by id, are one contiguous key range read
// forwards (asc) or backwards (desc). The entry's value carries what list filters need
// (status, scope, environment, created_seq), so filtering never reads the rows.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "projections/token_details.h"

namespace tokenledger::projections {

inline constexpr ProjectionInfo kTokenListIndex{"token_list_index", 1};

// Field tags are part of the stored keys: never renumber.
enum class SortField : std::uint8_t {
  kInsertedAt = 1,
  kId = 2,
  kStatus = 3,
  kExpiresAt = 4,
  kLastUsedAt = 5,
  kUpdatedAt = 6,
};
inline constexpr SortField kAllSortFields[] = {SortField::kInsertedAt, SortField::kId,
                                               SortField::kStatus,     SortField::kExpiresAt,
                                               SortField::kLastUsedAt, SortField::kUpdatedAt};

std::string_view SortFieldName(SortField field);
std::optional<SortField> ParseSortField(std::string_view name);

struct ListIndexEntry {
  std::string key;
  std::string value;
  friend bool operator==(const ListIndexEntry&, const ListIndexEntry&) = default;
};

// All index entries of a row, one per sort field, in kAllSortFields order.
std::vector<ListIndexEntry> ListIndexEntries(const TokenRow& row);

// The key prefix of one account's entries for one field.
std::string ListIndexPrefix(const Id& account_id, SortField field);

struct ListIndexValue {
  Id token_id;
  core::TokenStatus status = core::TokenStatus::kActive;
  events::TokenScope scope = events::TokenScope::kAccount;
  std::optional<Id> environment_id;
  std::uint64_t created_seq = 0;
};

// Decodes an entry; nullopt if it is not a well-formed entry.
std::optional<ListIndexValue> DecodeListIndexEntry(std::string_view key, std::string_view value);

}  // namespace tokenledger::projections

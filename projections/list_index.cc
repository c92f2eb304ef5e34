#include "projections/list_index.h"

#include <cstring>

namespace tokenledger::projections {
namespace {

constexpr std::size_t kValueBytes = 1 + 1 + Id::kBytes + 8;

void AppendU64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}

std::uint64_t ReadU64(std::string_view s) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  return v;
}

// Order-preserving encoding of a signed time: flip the sign bit. 0 stays free for "null",
// which then sorts before every time (first ascending, last descending).
std::uint64_t SortableTime(Micros t) { return static_cast<std::uint64_t>(t) ^ (1ull << 63); }

std::uint64_t SortValue(const core::TokenState& s, SortField field) {
  switch (field) {
    case SortField::kInsertedAt:
      return SortableTime(s.inserted_at);
    case SortField::kStatus:
      return static_cast<std::uint64_t>(s.status);  // active < suspended < revoked
    case SortField::kExpiresAt:
      return SortableTime(s.expires_at);
    case SortField::kLastUsedAt:
      return s.last_used_at ? SortableTime(*s.last_used_at) : 0;
    case SortField::kUpdatedAt:
      return SortableTime(s.updated_at);
    case SortField::kId:
      break;
  }
  return 0;
}

}  // namespace

std::string_view SortFieldName(SortField field) {
  switch (field) {
    case SortField::kInsertedAt:
      return "inserted_at";
    case SortField::kId:
      return "id";
    case SortField::kStatus:
      return "status";
    case SortField::kExpiresAt:
      return "expires_at";
    case SortField::kLastUsedAt:
      return "last_used_at";
    case SortField::kUpdatedAt:
      return "updated_at";
  }
  return "inserted_at";
}

std::optional<SortField> ParseSortField(std::string_view name) {
  for (SortField f : kAllSortFields)
    if (SortFieldName(f) == name) return f;
  return std::nullopt;
}

std::string ListIndexPrefix(const Id& account_id, SortField field) {
  std::string p(account_id.Bytes());
  p.push_back(static_cast<char>(field));
  return p;
}

std::vector<ListIndexEntry> ListIndexEntries(const TokenRow& row) {
  const core::TokenState& s = row.state;
  std::string value;
  value.reserve(kValueBytes);
  value.push_back(static_cast<char>(s.status));
  value.push_back(static_cast<char>(s.scope));
  value.append(s.environment_id ? s.environment_id->Bytes() : Id().Bytes());
  AppendU64(value, row.created_seq);

  std::vector<ListIndexEntry> entries;
  entries.reserve(std::size(kAllSortFields));
  for (SortField f : kAllSortFields) {
    std::string key = ListIndexPrefix(s.account_id, f);
    if (f != SortField::kId) AppendU64(key, SortValue(s, f));
    key.append(s.id.Bytes());
    entries.push_back({std::move(key), value});
  }
  return entries;
}

std::optional<ListIndexValue> DecodeListIndexEntry(std::string_view key, std::string_view value) {
  if (key.size() < Id::kBytes + 1 + Id::kBytes || value.size() != kValueBytes) return std::nullopt;
  ListIndexValue v;
  v.token_id = *Id::FromBytes(key.substr(key.size() - Id::kBytes));
  const auto status = static_cast<std::uint8_t>(value[0]);
  const auto scope = static_cast<std::uint8_t>(value[1]);
  if (status < 1 || status > 3 || scope < 1 || scope > 2) return std::nullopt;
  v.status = static_cast<core::TokenStatus>(status);
  v.scope = static_cast<events::TokenScope>(scope);
  const Id env = *Id::FromBytes(value.substr(2, Id::kBytes));
  if (!env.IsZero()) v.environment_id = env;
  v.created_seq = ReadU64(value.substr(2 + Id::kBytes));
  return v;
}

}  // namespace tokenledger::projections

#include "src/store/keys.h"

#include <cassert>
#include <cstring>

namespace tokenledger::store {

std::string EncodeU64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * (7 - i)));
  return out;
}

std::uint64_t DecodeU64(std::string_view bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(bytes[i]);
  return v;
}

std::string EventKey(std::uint64_t seq) { return EncodeU64(seq); }

std::string StreamPrefix(const Id& token) { return std::string(token.Bytes()); }

std::string StreamKey(const Id& token, std::uint64_t version) {
  return StreamPrefix(token) + EncodeU64(version);
}

std::string IdempotencyKey(const Id& account, std::string_view key) {
  std::string out(1, kIdempotencyRecordTag);
  out.append(account.Bytes());
  out.append(key);
  return out;
}

std::string IdempotencyExpiryKey(Micros created_at, const Id& account, std::string_view key) {
  std::string out(1, kIdempotencyExpiryTag);
  out.append(EncodeU64(static_cast<std::uint64_t>(created_at)));
  out.append(account.Bytes());
  out.append(key);
  return out;
}

// created_at (8) | fingerprint (32) | first_seq (8 BE) | event_count (4 BE) | outcome, where
// outcome is
//   format 2:  0x02 | 'A' | has_last_used (1) | last_used_at (8 BE, if has_last_used)
//              0x02 | 'R' | code (1: invalid_action, 2: not_found) | field length (1) | field
//                   | message
//   format 1:  "SSS\n<body>" (an HTTP status and body; starts with a digit, never 0x02)
namespace {

constexpr std::size_t kRecordHeader = 8 + 32 + 8 + 4;
constexpr char kRecordFormat2 = 0x02;
// Recorded rejection codes, as stored: never renumber.
constexpr std::uint8_t kStoredInvalidAction = 1;
constexpr std::uint8_t kStoredNotFound = 2;

}  // namespace

std::string EncodeIdempotencyRecord(const IdempotencyRecord& r) {
  assert(r.legacy_response.empty() && "format 1 records are read, never written");
  std::string out = EncodeU64(static_cast<std::uint64_t>(r.created_at));
  out.append(reinterpret_cast<const char*>(r.fingerprint.data()), r.fingerprint.size());
  out.append(EncodeU64(r.first_seq));
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(r.event_count >> (8 * i)));
  out.push_back(kRecordFormat2);
  if (r.applied) {
    out.push_back('A');
    out.push_back(r.last_used_at ? 1 : 0);
    if (r.last_used_at) out.append(EncodeU64(static_cast<std::uint64_t>(*r.last_used_at)));
  } else {
    assert(IsRecordedRejection(r.rejection.code) && r.rejection.field.size() <= 255);
    out.push_back('R');
    out.push_back(static_cast<char>(
        r.rejection.code == ErrorCode::kInvalidAction ? kStoredInvalidAction : kStoredNotFound));
    out.push_back(static_cast<char>(r.rejection.field.size()));
    out.append(r.rejection.field);
    out.append(r.rejection.message);
  }
  return out;
}

std::optional<IdempotencyRecord> DecodeIdempotencyRecord(std::string_view b) {
  if (b.size() <= kRecordHeader) return std::nullopt;
  IdempotencyRecord r;
  r.created_at = static_cast<Micros>(DecodeU64(b));
  std::memcpy(r.fingerprint.data(), b.data() + 8, 32);
  r.first_seq = DecodeU64(b.substr(40));
  for (int i = 0; i < 4; ++i)
    r.event_count = (r.event_count << 8) | static_cast<std::uint8_t>(b[48 + i]);
  std::string_view rest = b.substr(kRecordHeader);
  if (rest[0] != kRecordFormat2) {
    if (rest.size() < 4 || rest[3] != '\n') return std::nullopt;
    r.legacy_response.assign(rest);
    r.applied = rest[0] == '2';
    return r;
  }
  rest.remove_prefix(1);
  if (rest.empty()) return std::nullopt;
  const char outcome = rest[0];
  rest.remove_prefix(1);
  if (outcome == 'A') {
    if (rest.empty()) return std::nullopt;
    if (rest[0] == 1) {
      if (rest.size() != 9) return std::nullopt;
      r.last_used_at = static_cast<Micros>(DecodeU64(rest.substr(1)));
    } else if (rest[0] != 0 || rest.size() != 1) {
      return std::nullopt;
    }
    return r;
  }
  if (outcome != 'R' || rest.size() < 2) return std::nullopt;
  r.applied = false;
  const auto code = static_cast<std::uint8_t>(rest[0]);
  if (code == kStoredInvalidAction) {
    r.rejection.code = ErrorCode::kInvalidAction;
  } else if (code == kStoredNotFound) {
    r.rejection.code = ErrorCode::kNotFound;
  } else {
    return std::nullopt;
  }
  const std::size_t field_size = static_cast<std::uint8_t>(rest[1]);
  rest.remove_prefix(2);
  if (rest.size() < field_size) return std::nullopt;
  r.rejection.field.assign(rest.substr(0, field_size));
  r.rejection.message.assign(rest.substr(field_size));
  return r;
}

}  // namespace tokenledger::store

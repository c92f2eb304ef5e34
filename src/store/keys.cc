#include "src/store/keys.h"

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

// created_at (8) | fingerprint (32) | first_seq (8) | event_count (4) | response
std::string EncodeIdempotencyRecord(const IdempotencyRecord& r) {
  std::string out = EncodeU64(static_cast<std::uint64_t>(r.created_at));
  out.append(reinterpret_cast<const char*>(r.fingerprint.data()), r.fingerprint.size());
  out.append(EncodeU64(r.first_seq));
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(r.event_count >> (8 * i)));
  out.append(r.response);
  return out;
}

std::optional<IdempotencyRecord> DecodeIdempotencyRecord(std::string_view b) {
  constexpr std::size_t kHeader = 8 + 32 + 8 + 4;
  if (b.size() < kHeader) return std::nullopt;
  IdempotencyRecord r;
  r.created_at = static_cast<Micros>(DecodeU64(b));
  std::memcpy(r.fingerprint.data(), b.data() + 8, 32);
  r.first_seq = DecodeU64(b.substr(40));
  for (int i = 0; i < 4; ++i)
    r.event_count = (r.event_count << 8) | static_cast<std::uint8_t>(b[48 + i]);
  r.response.assign(b.substr(kHeader));
  return r;
}

}  // namespace tokenledger::store

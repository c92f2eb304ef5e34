#include "events/hash_chain.h"

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <cstdlib>

namespace tokenledger::events {

Hash Sha256(std::string_view bytes) {
  // The algorithm fetched once and a context per thread, reused: EVP_Digest with EVP_sha256()
  // fetches the implementation and allocates a context on every call, in OpenSSL 3 about as
  // much as hashing a 600-byte event itself (micro_bench: BM_Sha256StoredBody).
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Owned {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Owned() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Owned owned;
  Hash out{};
  unsigned int len = 0;
  if (!md || !owned.ctx || EVP_DigestInit_ex(owned.ctx, md, nullptr) != 1 ||
      EVP_DigestUpdate(owned.ctx, bytes.data(), bytes.size()) != 1 ||
      EVP_DigestFinal_ex(owned.ctx, out.data(), &len) != 1 || len != out.size()) {
    std::abort();  // OpenSSL cannot fail on SHA-256 unless the library itself is broken
  }
  return out;
}

std::string BytesToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[b >> 4];
    out[2 * i + 1] = kHex[b & 15];
  }
  return out;
}

std::string HashToHex(const Hash& hash) {
  return BytesToHex({reinterpret_cast<const char*>(hash.data()), hash.size()});
}

// Through a table, branch-free per digit: every event's prev_hash is decoded by the event
// codec, and an import decodes two hashes per line (with branches per digit, 3% of its CPU).
std::optional<Hash> HashFromHex(std::string_view hex) {
  static constexpr auto kNibble = [] {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (int c = '0'; c <= '9'; ++c)
      t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c)
      t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
    return t;
  }();
  Hash out{};
  if (hex.size() != 2 * out.size()) return std::nullopt;
  int bad = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = kNibble[static_cast<unsigned char>(hex[2 * i])];
    const int lo = kNibble[static_cast<unsigned char>(hex[2 * i + 1])];
    bad |= hi | lo;  // negative if either is not a digit
    out[i] = static_cast<std::uint8_t>(hi << 4 | (lo & 15));
  }
  if (bad < 0) return std::nullopt;
  return out;
}

}  // namespace tokenledger::events

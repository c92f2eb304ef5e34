// Tokens that verified, kept so that the next request presenting the same bytes skips their
// verification.
//
// Under one key ring (immutable: src/auth/key_ring.h) a token's bytes decide its verification,
// so a token seen before needs neither the base64 decoding, nor the HMAC, nor the parsing of
// its claims again (about 1 µs of an authenticated request's 12–15 µs of CPU on the project's
// machine: docs/PERFORMANCE.md). Only tokens that verified are kept. A presented token is
// compared with the kept one whole and in constant time, so a token that
// differs anywhere, its signature included, is verified afresh, and the time the comparison
// takes tells nothing of the kept bytes. What may change about a token that verifies (its
// row: status, expiry, deletion; the ledger's record of retired keys is the ring's, fixed for
// the process) is not kept here: callers check the row on every request (http::AdmitCaller).
//
// Direct-mapped: a hash of the bytes picks a token's slot, and a newer token takes the slot
// of the one before. Memory: at most about capacity x (kMaxTokenBytes-bounded token + ~150 B);
// our tokens are ~250 bytes, so ~450 B a slot with its claims.
//
// Thread-safety: Verify may run on any number of threads at once (kShards locks).
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "src/auth/key_ring.h"

namespace tokenledger::auth {

class VerifiedTokens {
 public:
  static constexpr std::size_t kShards = 16;
  // Longer tokens are verified every time and never kept (ours are ~250 bytes).
  static constexpr std::size_t kMaxTokenBytes = 1024;

  // Keeps at most `capacity` tokens (rounded up to a multiple of kShards); 0 keeps none.
  // REQUIRES: `ring` outlives this object.
  VerifiedTokens(const KeyRing& ring, std::size_t capacity);

  VerifiedTokens(const VerifiedTokens&) = delete;
  VerifiedTokens& operator=(const VerifiedTokens&) = delete;

  // The same answer as ring.Verify(token).
  Result<Claims> Verify(std::string_view token);

  // Tokens kept now (for tests).
  std::size_t size() const;

 private:
  struct Slot {
    std::string token;  // empty: unused
    Claims claims;
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::vector<Slot> slots;  // guarded by mu
  };

  const KeyRing& ring_;
  const std::size_t slots_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace tokenledger::auth

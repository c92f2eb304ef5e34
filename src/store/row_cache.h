// A bounded cache of token rows for the point reads every authenticated request makes (the
// caller's row, and a show's target row): one lock and a copy instead of a RocksDB look-up
// and a JSON decode.
//
// Coherence: a writer makes its change visible in RocksDB and then calls Invalidate for every
// token it changed, before it answers. A reader takes the shard's generation with its miss
// (Lookup), reads RocksDB, and Inserts only if no invalidation of that shard came in between.
// So a stale row can be inserted only before the invalidation that removes it, and after a
// write is acknowledged no read returns what it replaced.
//
// Direct-mapped (a token's slot is fixed by its id; a colliding token replaces it), split into
// shards that each have a mutex and a generation. Thread-safety: every method may be called
// from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "projections/token_details.h"
#include "tokenledger/id.h"

namespace tokenledger::store {

class RowCache {
 public:
  // Up to `capacity` rows (rounded up to a multiple of the shard count); 0 disables the cache
  // (every Lookup misses, Insert does nothing).
  explicit RowCache(std::size_t capacity);

  // On a hit, sets *row (nullopt: the token has no visible row) and returns true. On a miss,
  // sets *generation, which the Insert of what the caller then reads must carry.
  bool Lookup(const Id& id, std::optional<projections::TokenRow>* row,
              std::uint64_t* generation) const;
  // Caches `row` as what `id` reads, unless the shard was invalidated since `generation`.
  void Insert(const Id& id, const std::optional<projections::TokenRow>& row,
              std::uint64_t generation);
  // REQUIRES: called after the change of `id` is visible in the store, before it is answered.
  void Invalidate(const Id& id);
  // Forgets everything (a reopen, a projection switch).
  void Clear();

  std::size_t capacity() const { return slots_per_shard_ * kShards; }

 private:
  static constexpr std::size_t kShards = 64;
  struct Slot {
    bool used = false;
    Id id;
    std::optional<projections::TokenRow> row;
  };
  struct Shard {
    mutable std::mutex mu;
    std::uint64_t generation = 0;  // guarded by mu; bumped by every invalidation
    std::vector<Slot> slots;       // guarded by mu
  };
  // The shard and the slot within it.
  std::pair<Shard*, Slot*> Locate(const Id& id) const;

  std::size_t slots_per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace tokenledger::store

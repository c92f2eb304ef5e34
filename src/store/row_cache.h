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
// Two-way set-associative (a token may sit in either slot of the set its id picks; a third
// token of that set replaces the one used least recently), split into shards that each have a
// mutex and a generation. Thread-safety: every method may be called
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
  // Up to `capacity` rows (rounded up to a multiple of 128); 0 disables the cache
  // (every Lookup misses, Insert does nothing).
  explicit RowCache(std::size_t capacity);

  // On a hit, sets *row (nullopt: the token has no visible row) and returns true. On a miss,
  // sets *generation, which the Insert of what the caller then reads must carry.
  // Not const: a hit marks its slot as recently used.
  bool Lookup(const Id& id, std::optional<projections::TokenRow>* row, std::uint64_t* generation);
  // Caches `row` as what `id` reads, unless the shard was invalidated since `generation`.
  void Insert(const Id& id, const std::optional<projections::TokenRow>& row,
              std::uint64_t generation);
  // REQUIRES: called after the change of `id` is visible in the store, before it is answered.
  void Invalidate(const Id& id);
  // Forgets everything (a reopen, a projection switch).
  void Clear();

  std::size_t capacity() const { return sets_per_shard_ * kWays * kShards; }

 private:
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kWays = 2;
  struct Slot {
    bool used = false;
    std::uint64_t last_use = 0;  // the shard's clock at its last hit or insert
    Id id;
    std::optional<projections::TokenRow> row;
  };
  struct Shard {
    std::mutex mu;
    std::uint64_t generation = 0;  // guarded by mu; bumped by every invalidation
    std::uint64_t clock = 0;       // guarded by mu; ticks on every hit and insert
    std::vector<Slot> slots;       // guarded by mu; sets of kWays consecutive slots
  };
  // The shard and the first slot of the set `id` may sit in.
  std::pair<Shard*, Slot*> Locate(const Id& id);
  // The slot of `id` in its set, or nullptr. REQUIRES: the shard's mutex is held.
  static Slot* Find(Slot* set, const Id& id);

  std::size_t sets_per_shard_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace tokenledger::store

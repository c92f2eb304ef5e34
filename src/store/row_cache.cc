#include "src/store/row_cache.h"

#include <cstring>

namespace tokenledger::store {

RowCache::RowCache(std::size_t capacity)
    : slots_per_shard_((capacity + kShards - 1) / kShards),
      shards_(std::make_unique<Shard[]>(kShards)) {
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].slots.resize(slots_per_shard_);
}

std::pair<RowCache::Shard*, RowCache::Slot*> RowCache::Locate(const Id& id) const {
  // An id ends in 10 random bytes (its start is a time, shared by ids made together).
  std::uint64_t tail;
  std::memcpy(&tail, id.Raw().data() + Id::kBytes - sizeof tail, sizeof tail);
  const std::uint64_t h = tail * 0x9E3779B97F4A7C15ull;
  Shard* shard = &shards_[h >> 58];  // the top 6 bits: kShards = 64
  static_assert(kShards == 64);
  return {shard, &shard->slots[(h & 0x03FFFFFFFFFFFFFFull) % slots_per_shard_]};
}

bool RowCache::Lookup(const Id& id, std::optional<projections::TokenRow>* row,
                      std::uint64_t* generation) const {
  if (slots_per_shard_ == 0) return false;
  auto [shard, slot] = Locate(id);
  std::lock_guard lock(shard->mu);
  if (slot->used && slot->id == id) {
    *row = slot->row;
    return true;
  }
  *generation = shard->generation;
  return false;
}

void RowCache::Insert(const Id& id, const std::optional<projections::TokenRow>& row,
                      std::uint64_t generation) {
  if (slots_per_shard_ == 0) return;
  auto [shard, slot] = Locate(id);
  std::lock_guard lock(shard->mu);
  if (shard->generation != generation) return;  // invalidated meanwhile: `row` may be stale
  slot->used = true;
  slot->id = id;
  slot->row = row;
}

void RowCache::Invalidate(const Id& id) {
  if (slots_per_shard_ == 0) return;
  auto [shard, slot] = Locate(id);
  std::lock_guard lock(shard->mu);
  ++shard->generation;
  if (slot->used && slot->id == id) {
    slot->used = false;
    slot->row.reset();
  }
}

void RowCache::Clear() {
  for (std::size_t i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    ++shard.generation;
    for (Slot& slot : shard.slots) {
      slot.used = false;
      slot.row.reset();
    }
  }
}

}  // namespace tokenledger::store

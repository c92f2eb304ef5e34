#include "src/store/row_cache.h"

#include <cstring>

namespace tokenledger::store {

RowCache::RowCache(std::size_t capacity)
    : sets_per_shard_((capacity + kShards * kWays - 1) / (kShards * kWays)),
      shards_(std::make_unique<Shard[]>(kShards)) {
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].slots.resize(sets_per_shard_ * kWays);
}

std::pair<RowCache::Shard*, RowCache::Slot*> RowCache::Locate(const Id& id) {
  // An id ends in 10 random bytes (its start is a time, shared by ids made together).
  std::uint64_t tail;
  std::memcpy(&tail, id.Raw().data() + Id::kBytes - sizeof tail, sizeof tail);
  const std::uint64_t h = tail * 0x9E3779B97F4A7C15ull;
  static_assert(kShards == 64);
  Shard* shard = &shards_[h >> 58];  // the top 6 bits pick the shard, the rest the set
  const std::size_t set = (h & 0x03FFFFFFFFFFFFFFull) % sets_per_shard_;
  return {shard, &shard->slots[set * kWays]};
}

RowCache::Slot* RowCache::Find(Slot* set, const Id& id) {
  for (std::size_t i = 0; i < kWays; ++i) {
    if (set[i].used && set[i].id == id) return &set[i];
  }
  return nullptr;
}

bool RowCache::Lookup(const Id& id, std::optional<projections::TokenRow>* row,
                      std::uint64_t* generation) {
  if (sets_per_shard_ == 0) return false;
  auto [shard, set] = Locate(id);
  std::lock_guard lock(shard->mu);
  if (Slot* slot = Find(set, id)) {
    slot->last_use = ++shard->clock;
    *row = slot->row;
    return true;
  }
  *generation = shard->generation;
  return false;
}

void RowCache::Insert(const Id& id, const std::optional<projections::TokenRow>& row,
                      std::uint64_t generation) {
  if (sets_per_shard_ == 0) return;
  auto [shard, set] = Locate(id);
  std::lock_guard lock(shard->mu);
  if (shard->generation != generation) return;  // invalidated meanwhile: `row` may be stale
  Slot* slot = Find(set, id);
  if (!slot) {  // a free slot, else the least recently used
    slot = &set[0];
    for (std::size_t i = 0; i < kWays && slot->used; ++i) {
      if (!set[i].used || set[i].last_use < slot->last_use) slot = &set[i];
    }
  }
  slot->used = true;
  slot->last_use = ++shard->clock;
  slot->id = id;
  slot->row = row;
}

void RowCache::Invalidate(const Id& id) {
  if (sets_per_shard_ == 0) return;
  auto [shard, set] = Locate(id);
  std::lock_guard lock(shard->mu);
  ++shard->generation;
  if (Slot* slot = Find(set, id)) {
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

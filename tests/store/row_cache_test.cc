// RowCache: hits and misses, invalidation, the generation check that keeps a read that raced
// a write from caching what the write replaced, and that property under threads.
#include "src/store/row_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace tokenledger::store {
namespace {

projections::TokenRow RowAt(const Id& id, std::uint64_t version) {
  projections::TokenRow row;
  row.state.exists = true;
  row.state.id = id;
  row.state.version = version;
  return row;
}

// What GetToken does: a hit, or a miss whose read (a row at `version`) is then inserted.
// Returns whether it hit.
bool ReadThrough(RowCache& cache, const Id& id, std::uint64_t version) {
  std::optional<projections::TokenRow> row;
  std::uint64_t generation = 0;
  if (cache.Lookup(id, &row, &generation)) return true;
  cache.Insert(id, RowAt(id, version), generation);
  return false;
}

// Whether `id` is cached; its row into *row if given.
bool Cached(RowCache& cache, const Id& id, std::optional<projections::TokenRow>* row = nullptr) {
  std::optional<projections::TokenRow> ignored;
  std::uint64_t generation = 0;
  return cache.Lookup(id, row ? row : &ignored, &generation);
}

TEST(RowCacheTest, MissThenHitThenInvalidated) {
  RowCache cache(1024);
  IdGenerator ids;
  const Id id = ids.Generate();
  ASSERT_FALSE(ReadThrough(cache, id, 1));
  std::optional<projections::TokenRow> row;
  ASSERT_TRUE(Cached(cache, id, &row));
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state.version, 1u);
  cache.Invalidate(id);
  EXPECT_FALSE(Cached(cache, id));
}

TEST(RowCacheTest, AnAbsentRowIsCachedAsAbsent) {
  RowCache cache(1024);
  IdGenerator ids;
  const Id id = ids.Generate();
  std::optional<projections::TokenRow> row = RowAt(id, 9);
  std::uint64_t generation = 0;
  ASSERT_FALSE(cache.Lookup(id, &row, &generation));
  cache.Insert(id, std::nullopt, generation);
  ASSERT_TRUE(cache.Lookup(id, &row, &generation));
  EXPECT_FALSE(row);
}

TEST(RowCacheTest, AReadThatRacedAnInvalidationIsNotCached) {
  RowCache cache(1024);
  IdGenerator ids;
  const Id id = ids.Generate();
  std::optional<projections::TokenRow> row;
  std::uint64_t generation = 0;
  ASSERT_FALSE(cache.Lookup(id, &row, &generation));
  // The reader read version 1 from the store; meanwhile a writer made version 2 visible and
  // invalidated. The reader's insert must not land.
  cache.Invalidate(id);
  cache.Insert(id, RowAt(id, 1), generation);
  EXPECT_FALSE(cache.Lookup(id, &row, &generation));
}

TEST(RowCacheTest, ClearForgetsEverythingAndRefusesInsertsBegunBefore) {
  RowCache cache(1024);
  IdGenerator ids;
  std::vector<Id> tokens;
  for (int i = 0; i < 100; ++i) tokens.push_back(ids.Generate());
  for (const Id& id : tokens) ASSERT_FALSE(ReadThrough(cache, id, 1));
  const Id late = ids.Generate();
  std::optional<projections::TokenRow> row;
  std::uint64_t late_generation = 0;
  ASSERT_FALSE(cache.Lookup(late, &row, &late_generation));
  cache.Clear();
  cache.Insert(late, RowAt(late, 1), late_generation);
  for (const Id& id : tokens) EXPECT_FALSE(Cached(cache, id));
  EXPECT_FALSE(Cached(cache, late));
}

TEST(RowCacheTest, ZeroCapacityAlwaysMisses) {
  RowCache cache(0);
  IdGenerator ids;
  const Id id = ids.Generate();
  ASSERT_FALSE(ReadThrough(cache, id, 1));
  EXPECT_FALSE(Cached(cache, id));
  cache.Invalidate(id);
  cache.Clear();
}

TEST(RowCacheTest, ABoundedCacheKeepsAtMostItsCapacity) {
  RowCache cache(128);
  EXPECT_EQ(cache.capacity(), 128u);
  IdGenerator ids;
  std::vector<Id> tokens;
  for (int i = 0; i < 1000; ++i) tokens.push_back(ids.Generate());
  for (const Id& id : tokens) ReadThrough(cache, id, 1);
  std::size_t hits = 0;
  for (const Id& id : tokens) {
    std::optional<projections::TokenRow> row;
    if (Cached(cache, id, &row)) {
      ++hits;
      ASSERT_TRUE(row);
      EXPECT_EQ(row->state.id, id);  // a colliding token replaced it, never answered for it
    }
  }
  EXPECT_GT(hits, 0u);
  EXPECT_LE(hits, cache.capacity());
}

// A writer bumps each token's version in a "store" (a map under a lock, standing in for
// RocksDB) and then invalidates, as the committer does; readers read through the cache as
// GetToken does. After the writer's step for a token is done ("acknowledged"), no read that
// starts later may return an older version.
TEST(RowCacheTest, NoReadAfterAnAcknowledgedWriteSeesWhatItReplaced) {
  RowCache cache(64);  // small: collisions and evictions are part of the run
  IdGenerator ids;
  std::vector<Id> tokens;
  for (int i = 0; i < 32; ++i) tokens.push_back(ids.Generate());
  std::shared_mutex store_mu;
  std::map<Id, std::uint64_t> store;
  std::vector<std::atomic<std::uint64_t>> acknowledged(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    store[tokens[i]] = 0;
    acknowledged[i] = 0;
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> stale{0}, reads{0};
  auto reader = [&](unsigned seed) {
    std::uint64_t x = seed;
    while (!stop.load()) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const std::size_t i = (x >> 33) % tokens.size();
      const std::uint64_t floor = acknowledged[i].load();
      std::optional<projections::TokenRow> row;
      std::uint64_t generation = 0;
      if (!cache.Lookup(tokens[i], &row, &generation)) {
        std::uint64_t version;
        {
          std::shared_lock lock(store_mu);
          version = store[tokens[i]];
        }
        row = RowAt(tokens[i], version);
        cache.Insert(tokens[i], row, generation);
      }
      if (row->state.version < floor) stale.fetch_add(1);
      reads.fetch_add(1);
    }
  };
  std::vector<std::thread> readers;
  for (unsigned t = 0; t < 3; ++t) readers.emplace_back(reader, t + 1);
  // The writes overlap the reads: they start once the readers run, and go on until both
  // enough writes and enough reads are done (on a loaded machine the threads start late).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (reads.load() == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
  for (std::uint64_t step = 1;
       (step <= 200000 || reads.load() < 500000) && std::chrono::steady_clock::now() < give_up;
       ++step) {
    const std::size_t i = step % tokens.size();
    std::uint64_t version;
    {
      std::unique_lock lock(store_mu);
      version = ++store[tokens[i]];
    }
    cache.Invalidate(tokens[i]);
    acknowledged[i].store(version);
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(stale.load(), 0u) << "of " << reads.load() << " reads";
  EXPECT_GT(reads.load(), 1000u);
}

}  // namespace
}  // namespace tokenledger::store

// TokenSort: entries come back in key order per tag, through in-memory chunks, many runs and
// their merges level by level; events round-trip through Add and Decode.
#include "src/store/token_sort.h"

#include <gtest/gtest.h>

#include "src/store/bulk_buffer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <vector>

namespace tokenledger::store {
namespace {

std::vector<std::pair<std::string, std::string>> ReadAll(TokenSort& sort, char tag) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = sort.NewIterator(tag);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    EXPECT_EQ(it->key()[0], tag);
    out.emplace_back(TokenSort::RawKey(it->key()).ToString(), it->value().ToString());
  }
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

// Keys with a long shared prefix (as list index keys share their account), varied lengths,
// bytes above 0x7f, and keys that are prefixes of others.
std::vector<std::pair<std::string, std::string>> RandomEntries(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::pair<std::string, std::string>> entries;
  const std::string shared(20, '\x9c');
  for (std::size_t i = 0; i < n; ++i) {
    std::string key = shared;
    const std::size_t len = rng() % 40;
    for (std::size_t j = 0; j < len; ++j)
      key.push_back(static_cast<char>(rng() % 4 == 0 ? 0xff - rng() % 3 : rng() % 3));
    key += std::to_string(i);  // unique
    entries.emplace_back(key, std::string(rng() % 30, static_cast<char>('a' + i % 26)));
  }
  return entries;
}

// The run files in the sort's directory.
std::size_t RunFiles(const TokenSort& sort) {
  std::size_t n = 0;
  for (const auto& f : std::filesystem::directory_iterator(sort.Dir()))
    n += f.path().filename().string().starts_with("run-");
  return n;
}

void ExpectSorted(std::size_t chunk_bytes, std::size_t n,
                  std::size_t max_runs = kTokenSortMaxRuns) {
  SCOPED_TRACE("chunk " + std::to_string(chunk_bytes) + ", " + std::to_string(n) +
               " entries, merges of " + std::to_string(max_runs));
  auto sort = TokenSort::Create("", chunk_bytes, max_runs);
  ASSERT_TRUE(sort);
  auto entries = RandomEntries(n, static_cast<unsigned>(n));
  for (const auto& [k, v] : entries) ASSERT_TRUE((*sort)->AddRaw('l', k, v));
  ASSERT_TRUE((*sort)->Finish());
  std::sort(entries.begin(), entries.end());
  {
    auto it = (*sort)->NewIterator('l');
    // The final merge reads at most max_runs files at once.
    EXPECT_LE(RunFiles(**sort), max_runs);
  }
  EXPECT_EQ(ReadAll(**sort, 'l'), entries);
  EXPECT_TRUE(ReadAll(**sort, 'x').empty());
}

// The bulk paths' buffers: small blocks from operator new, large ones mapped in whole huge
// pages; growing, swapping and giving back keep the bytes (ASan checks the small path, and
// every block in its own stage).
TEST(BulkBufferTest, LargeBuffersGrowSwapAndKeepTheirBytes) {
  BulkBuffer small("abc");
  BulkBuffer large;
  large.reserve(3 * kHugePageBytes + 17);  // not a whole number of huge pages
  EXPECT_GE(large.capacity(), 3 * kHugePageBytes + 17);
  for (std::size_t i = 0; i < 3 * kHugePageBytes + 17; ++i)
    large.push_back(static_cast<char>(i * 7));
  large.append(kHugePageBytes, 'z');  // beyond the reservation: a larger block, bytes copied
  ASSERT_EQ(large.size(), 4 * kHugePageBytes + 17);
  for (std::size_t i = 0; i < 3 * kHugePageBytes + 17; i += 4093)
    ASSERT_EQ(large[i], static_cast<char>(i * 7)) << i;
  EXPECT_EQ(large.back(), 'z');
  large.swap(small);
  EXPECT_EQ(large, "abc");
  EXPECT_EQ(small.size(), 4 * kHugePageBytes + 17);
  small.clear();
  EXPECT_GE(small.capacity(), 4 * kHugePageBytes + 17);  // kept for reuse
  std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>> words(kHugePageBytes);
  words.back() = 42;
  EXPECT_EQ(words.back(), 42u);
  EXPECT_EQ(words.front(), 0u);  // value-initialised, as std::vector promises
}

TEST(TokenSortTest, EntriesComeBackInKeyOrder) {
  ExpectSorted(kTokenSortChunkBytes, 0);
  ExpectSorted(kTokenSortChunkBytes, 1);
  ExpectSorted(kTokenSortChunkBytes, 5000);   // one chunk, iterated in memory
  ExpectSorted(kTokenSortChunkBytes, 60000);  // radix passes on large groups at every depth
  ExpectSorted(64u << 10, 5000);              // a few runs on disk
  ExpectSorted(4u << 10, 20000);              // past kTokenSortMaxRuns: runs merged first
}

// Runs are merged level by level (max_runs runs of one level into one of the next), and when
// the levels together hold more than max_runs files, the lowest are merged before the final
// merge. Few runs a merge, so that many levels fill, and totals that leave the levels full to
// different depths.
TEST(TokenSortTest, RunsMergeLevelByLevelAndTheFinalMergeReadsAtMostMaxRuns) {
  for (std::size_t max_runs : {2u, 3u, 5u}) {
    for (std::size_t n : {700u, 2900u, 9100u}) ExpectSorted(4u << 10, n, max_runs);
  }
}

// Records of a few hundred bytes to more than a chunk's share: a chunk spills before a record
// that would not leave room for its refs, and a record larger than the whole share is a chunk
// of its own. Nothing is lost or reordered on either path.
TEST(TokenSortTest, LongRecordsAndARecordLargerThanAChunk) {
  constexpr std::size_t kChunkBytes = 3 * (8u << 10);  // 8 KiB a chunk
  auto sort = TokenSort::Create("", kChunkBytes);
  ASSERT_TRUE(sort);
  std::mt19937 rng(11);
  std::vector<std::pair<std::string, std::string>> entries;
  for (std::size_t i = 0; i < 400; ++i) {
    const std::size_t value_bytes = i == 200 ? 20000 : 200 + rng() % 1800;
    entries.emplace_back("key-" + std::to_string(rng()) + "-" + std::to_string(i),
                         std::string(value_bytes, static_cast<char>('a' + i % 26)));
  }
  for (const auto& [k, v] : entries) ASSERT_TRUE((*sort)->AddRaw('l', k, v));
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(ReadAll(**sort, 'l'), entries);
}

TEST(TokenSortTest, PrefixesAndZeroBytesSortFirst) {
  for (std::size_t chunk : {std::size_t{1} << 20, std::size_t{512}}) {
    auto sort = TokenSort::Create("", chunk);
    ASSERT_TRUE(sort);
    std::vector<std::pair<std::string, std::string>> entries;
    const std::string base(21, 'p');
    for (const std::string& tail :
         {std::string(""), std::string(1, '\0'), std::string(2, '\0'), std::string(8, '\0'),
          std::string(9, '\0'), std::string(7, '\0') + "a", std::string(8, '\0') + "a",
          std::string("a"), std::string(16, 'a'), std::string(17, 'a'), std::string(15, 'a'),
          std::string(1, '\xff'), std::string(24, '\xff')}) {
      for (int copy = 0; copy < 20; ++copy) entries.emplace_back(base + tail, std::to_string(copy));
    }
    std::shuffle(entries.begin(), entries.end(), std::mt19937(7));
    for (const auto& [k, v] : entries) ASSERT_TRUE((*sort)->AddRaw('l', k, v));
    auto got = ReadAll(**sort, 'l');
    std::vector<std::string> keys, want;
    for (const auto& [k, v] : got) keys.push_back(k);
    for (const auto& [k, v] : entries) want.push_back(k);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(keys, want);  // equal keys all kept
  }
}

TEST(TokenSortTest, TagsAreSeparateAndEventsRoundTrip) {
  auto sort = TokenSort::Create("", 8u << 10);
  ASSERT_TRUE(sort);
  TokenSort& s = **sort;
  const Id a = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
  const Id b = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
  const Id env = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");
  ASSERT_TRUE(s.AddRaw('i', "k2", "two"));
  ASSERT_TRUE(s.AddRaw('i', "k1", "one"));
  ASSERT_TRUE(s.Finish());
  std::vector<events::EventEnvelope> added;
  // Iterating 'i' while adding events, as verify does.
  auto idem = s.NewIterator('i');
  idem->SeekToFirst();
  for (std::uint64_t seq = 1; seq <= 3000; ++seq) {
    events::EventEnvelope e;
    e.seq = seq;
    e.stream = seq % 2 ? a : b;
    e.stream_version = (seq + 1) / 2;
    e.at = static_cast<Micros>(seq * 1000);
    if (e.stream_version == 1 && seq % 2) {
      e.data = events::TokenCreated{b, env, events::TokenScope::kEnvironment, 77, a};
    } else if (e.stream_version == 1) {  // every field of schema version 2 set
      e.data = events::TokenCreated{.account_id = b,
                                    .environment_id = env,
                                    .scope = events::TokenScope::kAgentDeployment,
                                    .expires_at = 77,
                                    .agent_id = a,
                                    .agent_deployment_id = env,
                                    .signing_kid = std::string("k-\0-7", 5)};
    } else if (seq % 5 == 0) {
      e.data = events::TokenUsed{static_cast<Micros>(seq)};
    } else {
      e.data = events::TokenSuspended{};
    }
    added.push_back(e);
    ASSERT_TRUE(s.Add(e));
  }
  ASSERT_TRUE(idem->Valid());
  EXPECT_EQ(TokenSort::RawKey(idem->key()).ToString(), "k1");
  idem->Next();
  EXPECT_EQ(idem->value().ToString(), "two");
  idem->Next();
  EXPECT_FALSE(idem->Valid());
  ASSERT_TRUE(s.Finish());
  EXPECT_EQ(s.Count(), 3000u);
  std::sort(added.begin(), added.end(), [](const auto& x, const auto& y) {
    return std::tie(x.stream, x.stream_version) < std::tie(y.stream, y.stream_version);
  });
  auto it = s.NewIterator();
  std::size_t i = 0;
  // Entries of another tag added while the events are iterated, as rebuild's fold adds list
  // index entries: they spill into the chunk buffers the events used, kept for them.
  std::vector<std::pair<std::string, std::string>> listed;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++i) {
    for (int copy = 0; copy < 3; ++copy) {
      listed.emplace_back(std::to_string((i * 7919 + copy) % 1000) + "-" + std::to_string(i) + "-" +
                              std::to_string(copy),
                          std::string(40, static_cast<char>('a' + copy)));
      ASSERT_TRUE(s.AddRaw('l', listed.back().first, listed.back().second));
    }
    events::EventEnvelope e;
    ASSERT_TRUE(TokenSort::Decode(it->key(), it->value(), &e));
    ASSERT_LT(i, added.size());
    EXPECT_EQ(e.seq, added[i].seq);
    EXPECT_EQ(e.stream, added[i].stream);
    EXPECT_EQ(e.stream_version, added[i].stream_version);
    EXPECT_EQ(e.at, added[i].at);
    EXPECT_EQ(e.data, added[i].data);
  }
  EXPECT_TRUE(it->status().ok());
  EXPECT_EQ(i, added.size());
  ASSERT_TRUE(s.Finish());
  s.ReleaseBuffers();  // nothing more is added: the chunks go, the runs stay readable
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(ReadAll(s, 'l'), listed);
}

// A run file damaged on disk (a record pointing past the previous key, a record cut short, a
// header cut short at the end) fails the iteration instead of ending it quietly: the rebuild or
// verify reading it then fails rather than miss entries.
TEST(TokenSortTest, ADamagedRunFailsTheIteration) {
  for (const char* damage : {"bad shared prefix", "record cut short", "header cut short"}) {
    SCOPED_TRACE(damage);
    auto sort = TokenSort::Create("", 30u << 10);  // 10 KiB chunks: several runs on disk
    ASSERT_TRUE(sort);
    for (int i = 0; i < 3000; ++i)
      ASSERT_TRUE((*sort)->AddRaw('l', "key-" + std::to_string(i * 7919 % 3000), "value"));
    ASSERT_TRUE((*sort)->Finish());
    std::string run;
    for (const auto& f : std::filesystem::directory_iterator((*sort)->Dir())) run = f.path();
    ASSERT_FALSE(run.empty());
    const std::string what = damage;
    if (what == "bad shared prefix") {  // the first record shares 5 bytes with no key
      std::FILE* f = std::fopen(run.c_str(), "r+b");
      ASSERT_NE(f, nullptr);
      const std::uint32_t five = 5;
      ASSERT_EQ(std::fwrite(&five, 4, 1, f), 1u);
      std::fclose(f);
    } else if (what == "record cut short") {
      std::filesystem::resize_file(run, std::filesystem::file_size(run) - 3);
    } else {
      std::FILE* f = std::fopen(run.c_str(), "ab");
      ASSERT_NE(f, nullptr);
      ASSERT_EQ(std::fwrite("\0\0\0\0\0", 5, 1, f), 1u);  // 5 of a header's 12 bytes
      std::fclose(f);
    }
    auto it = (*sort)->NewIterator('l');
    std::size_t read = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++read;
    EXPECT_FALSE(it->status().ok()) << read << " entries read";
  }
}

}  // namespace
}  // namespace tokenledger::store

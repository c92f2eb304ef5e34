// Our memtable (src/store/skiplist_memtable.h) against RocksDB's own skiplist: the same writes
// go into two real databases, one with each, and every way of reading them back (Get,
// forward and backward scans, Seek, SeekForPrev, older snapshots; in the memtable, after a
// flush, after a reopen that replays the log) must give the same answers. Readers running
// beside the writer see a sorted list that only grows.
#include "src/store/skiplist_memtable.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/slice_transform.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/store/store_test_util.h"

namespace tokenledger::store {
namespace {

// Keys like the list index's: a long shared prefix, a few ranges, varied tails.
std::string KeyOf(std::uint32_t n) {
  std::string key(20, '\x9c');
  key.push_back(static_cast<char>('a' + n % 5));  // the "range"
  key += std::to_string(n * 2654435761u % 100000);
  return key;
}

// The first byte after the shared prefix: the insert hints' range.
class RangePrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "TestRangePrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), std::min<std::size_t>(key.size(), 21)};
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= 21; }
};

struct Db {
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::Options options;
  std::string path;

  Db(const std::string& dir, bool ours) : path(dir) {
    options.create_if_missing = true;
    options.allow_concurrent_memtable_write = false;
    options.write_buffer_size = 256u << 20;  // everything stays in the memtable until Flush
    if (ours) {
      options.memtable_factory = NewSkipListMemTableFactory();
    } else {
      options.memtable_factory = std::make_shared<rocksdb::SkipListFactory>();
    }
    options.memtable_insert_with_hint_prefix_extractor = std::make_shared<RangePrefix>();
    Open();
  }
  void Open() {
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(options, path, &raw);
    ASSERT_TRUE(s.ok()) << s.ToString();
    db.reset(raw);
  }
  void Reopen() {
    db.reset();
    Open();
  }
};

// Everything a read can see of `db` at `snapshot`, as text: both scans, and seeks, gets and
// seeks-for-prev at `targets`.
std::string Reads(rocksdb::DB* db, const rocksdb::Snapshot* snapshot,
                  const std::vector<std::string>& targets) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::string out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  for (it->SeekToFirst(); it->Valid(); it->Next())
    out += it->key().ToString() + "=" + it->value().ToString() + "\n";
  out += "--\n";
  for (it->SeekToLast(); it->Valid(); it->Prev())
    out += it->key().ToString() + "=" + it->value().ToString() + "\n";
  out += "--\n";
  for (const std::string& t : targets) {
    it->Seek(t);
    out += it->Valid() ? it->key().ToString() : std::string("(end)");
    it->SeekForPrev(t);
    // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict on `"literal" + string`.
    out += ' ';
    out += it->Valid() ? it->key().ToString() : std::string("(begin)");
    std::string value;
    const rocksdb::Status s = db->Get(ro, t, &value);
    out += ' ';
    out += s.ok() ? value : s.ToString();
    out += '\n';
  }
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

TEST(SkipListMemTableTest, AnswersAsRocksDbsOwnSkipListInEveryWayOfReading) {
  testing::TempDir dir;
  Db ours(dir.path() + "/ours", true), theirs(dir.path() + "/theirs", false);
  std::mt19937 rng(7);
  std::vector<std::string> targets;
  for (int i = 0; i < 400; ++i) targets.push_back(KeyOf(rng() % 3000));
  targets.push_back("");
  targets.push_back(std::string(20, '\x9c'));
  targets.push_back(std::string(30, '\xff'));

  std::vector<const rocksdb::Snapshot*> snaps_ours, snaps_theirs;
  for (int op = 0; op < 30000; ++op) {
    const std::string key = KeyOf(rng() % 2000);
    rocksdb::WriteBatch batch;
    if (rng() % 4 == 0) {
      batch.Delete(key);
    } else {
      batch.Put(key, std::to_string(op));
    }
    if (rng() % 8 == 0) batch.Put(KeyOf(rng() % 2000), "b" + std::to_string(op));  // 2 in a batch
    ASSERT_TRUE(ours.db->Write({}, &batch).ok());
    ASSERT_TRUE(theirs.db->Write({}, &batch).ok());
    if (op % 10000 == 9999) {
      snaps_ours.push_back(ours.db->GetSnapshot());
      snaps_theirs.push_back(theirs.db->GetSnapshot());
    }
  }
  std::string entries;
  ASSERT_TRUE(ours.db->GetProperty("rocksdb.num-entries-active-mem-table", &entries));
  EXPECT_GT(std::stoul(entries), 30000u) << "the writes are in the memtable";

  const std::string now = Reads(ours.db.get(), nullptr, targets);
  EXPECT_EQ(now, Reads(theirs.db.get(), nullptr, targets));
  for (std::size_t i = 0; i < snaps_ours.size(); ++i) {
    SCOPED_TRACE("snapshot " + std::to_string(i));
    EXPECT_EQ(Reads(ours.db.get(), snaps_ours[i], targets),
              Reads(theirs.db.get(), snaps_theirs[i], targets));
    ours.db->ReleaseSnapshot(snaps_ours[i]);
    theirs.db->ReleaseSnapshot(snaps_theirs[i]);
  }

  // Replayed from the write-ahead log into a fresh memtable.
  ours.Reopen();
  EXPECT_EQ(Reads(ours.db.get(), nullptr, targets), now);
  // Flushed: the SST file is written from the memtable's iterator.
  ASSERT_TRUE(ours.db->Flush({}).ok());
  EXPECT_EQ(Reads(ours.db.get(), nullptr, targets), now);
}

TEST(SkipListMemTableTest, ReadersBesideTheWriterSeeASortedListThatOnlyGrows) {
  testing::TempDir dir;
  Db db(dir.path() + "/db", true);
  constexpr std::uint32_t kKeys = 60000;
  std::vector<std::uint32_t> order(kKeys);
  for (std::uint32_t i = 0; i < kKeys; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  auto key = [](std::uint32_t n) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "k%08u", n);
    return std::string(buf);
  };
  std::atomic<std::uint32_t> acknowledged{0};  // order[0..acknowledged) are written
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  auto reader = [&](unsigned seed) {
    std::mt19937 rng(seed);
    while (!done.load()) {
      const std::uint32_t before = acknowledged.load();
      std::unique_ptr<rocksdb::Iterator> it(db.db->NewIterator({}));
      std::string last;
      std::uint32_t seen = 0;
      const bool forward = rng() % 2 == 0;
      for (forward ? it->SeekToFirst() : it->SeekToLast(); it->Valid();
           forward ? it->Next() : it->Prev()) {
        const std::string k = it->key().ToString();
        if (seen > 0 && (forward ? k <= last : k >= last)) ++failures;
        last = k;
        ++seen;
      }
      if (seen < before) ++failures;
      if (before > 0) {
        std::string value;
        if (!db.db->Get({}, key(order[rng() % before]), &value).ok()) ++failures;
      }
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  for (std::uint32_t i = 0; i < kKeys; i += 100) {
    rocksdb::WriteBatch batch;
    for (std::uint32_t j = i; j < i + 100; ++j) batch.Put(key(order[j]), "v");
    ASSERT_TRUE(db.db->Write({}, &batch).ok());
    acknowledged.store(i + 100);
  }
  done.store(true);
  r1.join();
  r2.join();
  EXPECT_EQ(failures.load(), 0);
}

// Iterators made on one thread and destroyed on another, and threads that end holding
// cached iterator memory (the memtable's iterators come from a per-thread cache).
TEST(SkipListMemTableTest, IteratorsMayEndOnAnotherThread) {
  testing::TempDir dir;
  Db db(dir.path() + "/db", true);
  ASSERT_TRUE(db.db->Put({}, "a", "1").ok());
  for (int round = 0; round < 20; ++round) {
    std::vector<std::unique_ptr<rocksdb::Iterator>> made(40);
    std::thread maker([&] {
      for (auto& it : made) {
        it.reset(db.db->NewIterator({}));
        it->SeekToFirst();
      }
      std::unique_ptr<rocksdb::Iterator> own(db.db->NewIterator({}));  // ends here
    });
    maker.join();
    for (auto& it : made) {
      ASSERT_TRUE(it->Valid());
      EXPECT_EQ(it->key().ToString(), "a");
      it.reset();
    }
  }
}

}  // namespace
}  // namespace tokenledger::store

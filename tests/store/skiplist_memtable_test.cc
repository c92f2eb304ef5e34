// Our memtable (src/store/skiplist_memtable.h) against RocksDB's own skiplist: the same writes
// (puts, deletes, merges folded by max_successive_merges; keys in and out of the insert hints'
// ranges, some growing a range at its end, some longer than 127 bytes) go into two real
// databases, one with each, and every way of reading them back (Get, MultiGet, forward and
// backward scans, Seek, SeekForPrev, older snapshots; in one memtable, across several
// memtables and files, after a reopen that replays the log into a memtable, after a flush)
// must give the same answers. Readers running beside the writer see a sorted list that only
// grows, while it grows at the ends of hinted ranges and in the middle.
#include "src/store/skiplist_memtable.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/slice_transform.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/store/store_test_util.h"

namespace tokenledger::store {
namespace {

// Keys like the list index's: a long shared prefix, a few ranges, varied tails; one range of
// keys longer than 127 bytes (their memtable entries start with a 2-byte length).
std::string KeyOf(std::uint32_t n) {
  std::string key(20, '\x9c');
  key.push_back(static_cast<char>('a' + n % 5));  // the "range"
  if (n % 5 == 4) key.append(130, 'L');
  key += std::to_string(n * 2654435761u % 100000);
  return key;
}

// A key at the end of range `range` (past every KeyOf key of it): appends to a hinted range.
std::string AppendKeyOf(int range, std::uint32_t n) {
  std::string key(20, '\x9c');
  key.push_back(static_cast<char>('a' + range));
  char tail[16];
  std::snprintf(tail, sizeof(tail), "~%010u", n);  // '~' sorts after the digits
  return key + tail;
}

// Merge operands are 8-byte counts, added (as the store's list counters are).
class AddCounts : public rocksdb::AssociativeMergeOperator {
 public:
  const char* Name() const override { return "TestAddCounts"; }
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* out, rocksdb::Logger*) const override {
    std::uint64_t a = 0, b = 0;
    if (existing != nullptr && existing->size() == 8) std::memcpy(&a, existing->data(), 8);
    if (value.size() == 8) std::memcpy(&b, value.data(), 8);
    a += b;
    out->assign(reinterpret_cast<const char*>(&a), 8);
    return true;
  }
};

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

  // `write_buffer`: 256 MiB keeps everything in one memtable until Flush; 64 KiB spreads the
  // writes over several memtables, immutable ones waiting for their flush, and files.
  Db(const std::string& dir, bool ours, std::size_t write_buffer = 256u << 20) : path(dir) {
    options.create_if_missing = true;
    options.allow_concurrent_memtable_write = false;
    options.write_buffer_size = write_buffer;
    options.max_write_buffer_number = 4;
    options.merge_operator = std::make_shared<AddCounts>();
    options.max_successive_merges = 3;  // the store's counters fold their operands too
    // A reopen replays the log into a memtable and leaves it there (RocksDB 7.8 would
    // otherwise flush it during recovery).
    options.avoid_flush_during_recovery = true;
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
  const std::vector<rocksdb::Slice> keys(targets.begin(), targets.end());
  std::vector<std::string> values;
  const std::vector<rocksdb::Status> found = db->MultiGet(ro, keys, &values);
  for (std::size_t i = 0; i < found.size(); ++i) {
    out += found[i].ok() ? values[i] : found[i].ToString();
    out += '\n';
  }
  return out;
}

void ExpectSameAnswers(std::size_t write_buffer) {
  SCOPED_TRACE("write buffer " + std::to_string(write_buffer));
  testing::TempDir dir;
  Db ours(dir.path() + "/ours", true, write_buffer);
  Db theirs(dir.path() + "/theirs", false, write_buffer);
  std::mt19937 rng(7);
  std::vector<std::string> targets;
  for (int i = 0; i < 400; ++i) targets.push_back(KeyOf(rng() % 3000));
  for (int i = 0; i < 40; ++i) targets.push_back(AppendKeyOf(i % 5, rng() % 12000));
  targets.push_back("");
  targets.push_back(std::string(20, '\x9c'));
  targets.push_back(std::string(30, '\xff'));

  std::vector<const rocksdb::Snapshot*> snaps_ours, snaps_theirs;
  std::uint32_t appended = 0;
  for (int op = 0; op < 30000; ++op) {
    rocksdb::WriteBatch batch;
    const std::uint32_t dice = rng() % 16;
    if (dice < 3) {
      batch.Delete(KeyOf(rng() % 2000));
    } else if (dice < 6) {
      const std::uint64_t one = 1;
      batch.Merge(KeyOf(rng() % 200), rocksdb::Slice(reinterpret_cast<const char*>(&one), 8));
    } else if (dice < 10) {
      // The next key of a range that grows at its end: the insert hint's short path.
      batch.Put(AppendKeyOf(static_cast<int>(appended % 5), appended), "a" + std::to_string(op));
      ++appended;
    } else {
      batch.Put(KeyOf(rng() % 2000), std::to_string(op));
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
  if (write_buffer > (64u << 20)) {
    EXPECT_GT(std::stoul(entries), 30000u) << "the writes are in the memtable";
  } else {
    // Every level's files: a compaction may already have moved level 0's down.
    std::string bytes;
    ASSERT_TRUE(ours.db->GetProperty("rocksdb.total-sst-files-size", &bytes));
    EXPECT_GT(std::stoul(bytes), 0u) << "the writes went through several memtables into files";
  }

  const std::string now = Reads(ours.db.get(), nullptr, targets);
  EXPECT_EQ(now, Reads(theirs.db.get(), nullptr, targets));
  for (std::size_t i = 0; i < snaps_ours.size(); ++i) {
    SCOPED_TRACE("snapshot " + std::to_string(i));
    EXPECT_EQ(Reads(ours.db.get(), snaps_ours[i], targets),
              Reads(theirs.db.get(), snaps_theirs[i], targets));
    ours.db->ReleaseSnapshot(snaps_ours[i]);
    theirs.db->ReleaseSnapshot(snaps_theirs[i]);
  }

  // Replayed from the write-ahead log into a fresh memtable, and read from it.
  ours.Reopen();
  ASSERT_TRUE(ours.db->GetProperty("rocksdb.num-entries-active-mem-table", &entries));
  EXPECT_GT(std::stoul(entries), 0u) << "the replayed log is in the memtable";
  EXPECT_EQ(Reads(ours.db.get(), nullptr, targets), now);
  // Flushed: the SST file is written from the memtable's iterator.
  ASSERT_TRUE(ours.db->Flush({}).ok());
  EXPECT_EQ(Reads(ours.db.get(), nullptr, targets), now);
}

TEST(SkipListMemTableTest, AnswersAsRocksDbsOwnSkipListInEveryWayOfReading) {
  ExpectSameAnswers(256u << 20);  // one memtable holds everything
  ExpectSameAnswers(64u << 10);   // several memtables and files
}

TEST(SkipListMemTableTest, ReadersBesideTheWriterSeeASortedListThatOnlyGrows) {
  testing::TempDir dir;
  Db db(dir.path() + "/db", true);
  constexpr std::uint32_t kKeys = 60000;
  // Appended keys in increasing order, the others shuffled in among them.
  std::vector<std::uint32_t> odd;
  for (std::uint32_t i = 1; i < kKeys; i += 2) odd.push_back(i);
  std::shuffle(odd.begin(), odd.end(), std::mt19937(3));
  std::vector<std::uint32_t> order;
  for (std::uint32_t i = 0; i < kKeys / 2; ++i) {
    order.push_back(2 * i);
    order.push_back(odd[i]);
  }
  // Even numbers grow two hinted ranges at their ends (the hint's short path); odd ones land
  // anywhere in a third.
  auto key = [](std::uint32_t n) {
    if (n % 2 == 0) return AppendKeyOf(static_cast<int>(n % 4 / 2), n);
    return std::string(20, '\x9c') + "c" + std::to_string(n * 2654435761u % 1000003) + "." +
           std::to_string(n);
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

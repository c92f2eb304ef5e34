// rocksdb_scan: the reference for the bulk tools in scripts/bench-scale. Reads every entry of
// every column family of a (stopped) tokenledger data directory once, through RocksDB's own
// iterator with the read options the tools use for full scans (no block cache fill, 2 MiB
// readahead), on N threads: nothing decoded, hashed, sorted or written. `tokenledger verify`
// reads all of it too (and then hashes the events and folds the tokens), and rebuild and import
// write as many entries as this reads, so what this takes on the same data and the same cores
// is a floor under them: the part of their time that is RocksDB's, not ours.
//
// With --write-to DIR each range, once read (into memory), is also written into an SST file of
// its own there, by RocksDB's SstFileWriter with LZ4 blocks and a two-level index like the
// store's families, and the writing is timed apart from the reading: the floor under import
// (which writes every family this way, from entries it never read from RocksDB) and rebuild
// (which reads the events and writes the rows, the stream index and the list index).
//
// The work is cut into key ranges at the SST files' first keys and shared out: each thread
// takes the next range, so two threads finish together however unequal the families are.
//
// Prints one line per family (entries, key and value bytes, CPU seconds and nanoseconds per
// entry of reading it, and of writing it), then the wall time of the whole run and the CPU
// seconds of all reading and of all writing.
//
// usage: rocksdb_scan --dir DIR [--threads 2] [--write-to DIR]
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

int Usage() {
  std::fprintf(stderr, "usage: rocksdb_scan --dir DIR [--threads 2] [--write-to DIR]\n");
  return 2;
}

// The list index's counters are merge operands (little-endian int64 deltas, summed): a
// directory a server wrote may still hold unmerged ones, which an iterator must merge.
class AddInt64 : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    std::int64_t sum = Decode(value);
    if (existing) sum += Decode(*existing);
    new_value->assign(reinterpret_cast<const char*>(&sum), sizeof sum);
    return true;
  }
  const char* Name() const override { return "tokenledger.list_count_add"; }

 private:
  static std::int64_t Decode(const rocksdb::Slice& s) {
    std::int64_t v = 0;
    if (s.size() == sizeof v) std::memcpy(&v, s.data(), sizeof v);
    return v;
  }
};

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Range {
  std::size_t family = 0;
  std::string lower, upper;  // empty: unbounded
};

struct Tally {
  std::atomic<std::uint64_t> entries{0}, bytes{0}, read_ns{0}, write_ns{0};
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir, write_to;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir") {
      dir = argv[i + 1];
    } else if (flag == "--write-to") {
      write_to = argv[i + 1];
    } else if (flag == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else {
      return Usage();
    }
  }
  if (dir.empty() || argc % 2 == 0 || threads < 1) return Usage();

  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names);
  if (!s.ok()) {
    std::fprintf(stderr, "rocksdb_scan: %s\n", s.ToString().c_str());
    return 1;
  }
  rocksdb::ColumnFamilyOptions family_options;
  family_options.merge_operator = std::make_shared<AddInt64>();
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& name : names) families.emplace_back(name, family_options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir, families, &handles, &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "rocksdb_scan: %s\n", s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  // Cuts at every live file's first key: ranges of at most one file's size per level.
  std::map<std::string, std::size_t> family_index;
  for (std::size_t i = 0; i < names.size(); ++i) family_index[names[i]] = i;
  std::vector<std::vector<std::string>> cuts(names.size());
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  for (const auto& f : files) cuts[family_index.at(f.column_family_name)].push_back(f.smallestkey);
  std::vector<Range> ranges;
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::sort(cuts[i].begin(), cuts[i].end());
    cuts[i].erase(std::unique(cuts[i].begin(), cuts[i].end()), cuts[i].end());
    std::string lower;
    for (const auto& cut : cuts[i]) {
      if (cut.empty() || cut == lower) continue;
      ranges.push_back({i, lower, cut});
      lower = cut;
    }
    ranges.push_back({i, lower, {}});
  }

  rocksdb::Options write_options;
  write_options.compression = rocksdb::kLZ4Compression;
  rocksdb::BlockBasedTableOptions table;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.metadata_block_size = 4096;
  table.format_version = 5;
  write_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<Tally> tallies(names.size());
  std::atomic<std::size_t> next{0};
  std::atomic<int> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> readers;
  for (int t = 0; t < threads; ++t) {
    readers.emplace_back([&] {
      std::string buffer;  // a range's keys and values, when writing
      std::vector<std::size_t> sizes;
      for (std::size_t r; (r = next.fetch_add(1)) < ranges.size();) {
        const Range& range = ranges[r];
        const double cpu0 = ThreadCpuSeconds();
        rocksdb::ReadOptions ro;
        ro.fill_cache = false;
        ro.readahead_size = 2u << 20;
        ro.adaptive_readahead = true;
        rocksdb::Slice lower(range.lower), upper(range.upper);
        if (!range.lower.empty()) ro.iterate_lower_bound = &lower;
        if (!range.upper.empty()) ro.iterate_upper_bound = &upper;
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, handles[range.family]));
        // Writing: the range is read into memory first, so that reading and writing are timed
        // apart (rebuild and import write what they never read from RocksDB).
        const bool writing = !write_to.empty();
        buffer.clear();
        sizes.clear();
        std::uint64_t entries = 0, bytes = 0;
        for (it->SeekToFirst(); it->Valid(); it->Next()) {
          ++entries;
          bytes += it->key().size() + it->value().size();
          if (writing) {
            buffer.append(it->key().data(), it->key().size());
            buffer.append(it->value().data(), it->value().size());
            sizes.push_back(it->key().size());
            sizes.push_back(it->value().size());
          }
        }
        const double cpu1 = ThreadCpuSeconds();
        rocksdb::Status ws;
        if (writing && entries > 0 && it->status().ok()) {
          rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), write_options);
          ws = writer.Open(write_to + "/" + std::to_string(r) + ".sst");
          std::size_t at = 0;
          for (std::size_t i = 0; ws.ok() && i < sizes.size(); i += 2) {
            const rocksdb::Slice key(buffer.data() + at, sizes[i]);
            const rocksdb::Slice value(buffer.data() + at + sizes[i], sizes[i + 1]);
            at += sizes[i] + sizes[i + 1];
            ws = writer.Put(key, value);
          }
          if (ws.ok()) ws = writer.Finish();
        }
        for (const rocksdb::Status& st : {it->status(), ws}) {
          if (st.ok()) continue;
          std::fprintf(stderr, "rocksdb_scan: %s: %s\n", names[range.family].c_str(),
                       st.ToString().c_str());
          failures.fetch_add(1);
        }
        Tally& tally = tallies[range.family];
        tally.entries += entries;
        tally.bytes += bytes;
        tally.read_ns += static_cast<std::uint64_t>((cpu1 - cpu0) * 1e9);
        tally.write_ns += static_cast<std::uint64_t>((ThreadCpuSeconds() - cpu1) * 1e9);
      }
    });
  }
  for (auto& r : readers) r.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::uint64_t entries = 0;
  double read = 0, written = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const Tally& t = tallies[i];
    if (t.entries == 0) continue;
    entries += t.entries;
    read += static_cast<double>(t.read_ns) * 1e-9;
    written += static_cast<double>(t.write_ns) * 1e-9;
    const double n = static_cast<double>(t.entries);
    std::printf("%s: %llu entries, %.1f MiB, read %.2f s CPU (%.0f ns/entry)", names[i].c_str(),
                static_cast<unsigned long long>(t.entries),
                static_cast<double>(t.bytes) / (1 << 20), static_cast<double>(t.read_ns) * 1e-9,
                static_cast<double>(t.read_ns) / n);
    if (!write_to.empty()) {
      std::printf(", written %.2f s CPU (%.0f ns/entry)", static_cast<double>(t.write_ns) * 1e-9,
                  static_cast<double>(t.write_ns) / n);
    }
    std::printf("\n");
  }
  std::printf("all: %llu entries in %zu ranges on %d threads: %.2f s wall, read %.2f s CPU",
              static_cast<unsigned long long>(entries), ranges.size(), threads, elapsed, read);
  if (!write_to.empty()) std::printf(", written %.2f s CPU", written);
  std::printf("\n");
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  return failures.load() == 0 ? 0 : 1;
}

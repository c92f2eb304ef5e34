// rocksdb_sync_put: the reference for durable writes in scripts/bench-http. N writer threads,
// each in a loop of one synced Put (WriteOptions::sync: fsync before it returns) of a
// VALUE_BYTES value under a fresh key, into a fresh RocksDB at default options beside
// tokenledgerd's data on the same disk. RocksDB's own group commit lets concurrent writers
// share an fsync, so this is what the disk allows N waiting clients, with no request
// parsing, no deciding and no hashing: the ceiling a durable write path is measured against.
//
// With --keys K each write is one WriteBatch of K puts under fresh keys spread over the key
// space, sharing VALUE_BYTES: the shape of a tokenledger command (a status change writes 24
// keys and ~2,100 bytes: docs/LEDGER.md), so that what RocksDB itself costs for that write set
// on this disk and these cores can be set beside the one-put loop.
//
// Prints one line: writes/s, p50 and p99 latency in ms, and the number of failed writes.
//
// usage: rocksdb_sync_put --dir DIR [--threads 64] [--seconds 10] [--value-bytes 600] [--keys 1]
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: rocksdb_sync_put --dir DIR [--threads 64] [--seconds 10] "
               "[--value-bytes 600] [--keys 1]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int threads = 64;
  double seconds = 10;
  std::size_t value_bytes = 600;
  int keys = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir") {
      dir = argv[i + 1];
    } else if (flag == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else if (flag == "--seconds") {
      seconds = std::atof(argv[i + 1]);
    } else if (flag == "--keys") {
      keys = std::atoi(argv[i + 1]);
    } else if (flag == "--value-bytes") {
      value_bytes = static_cast<std::size_t>(std::atoll(argv[i + 1]));
    } else {
      return Usage();
    }
  }
  if (dir.empty() || argc % 2 == 0 || threads < 1 || seconds <= 0 || keys < 1) return Usage();

  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "rocksdb_sync_put: %s\n", s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::atomic<long> failures{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::vector<std::thread> writers;
  const auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      const std::string value(value_bytes / static_cast<std::size_t>(keys), 'v');
      auto& mine = latencies[static_cast<std::size_t>(t)];
      std::uint64_t spread = static_cast<std::uint64_t>(t) * 0x9e3779b97f4a7c15u;
      rocksdb::WriteBatch batch;
      for (long n = 0;; ++n) {
        const auto t0 = std::chrono::steady_clock::now();
        if (t0 >= deadline) break;
        char key[48];
        rocksdb::Status put;
        if (keys == 1) {
          const int len = std::snprintf(key, sizeof key, "%04d-%012ld", t, n);
          put = db->Put(wo, rocksdb::Slice(key, static_cast<std::size_t>(len)), value);
        } else {
          // Keys that land all over the memtable, as a command's list entries do.
          batch.Clear();
          for (int k = 0; k < keys; ++k) {
            spread = spread * 6364136223846793005u + 1442695040888963407u;
            const int len = std::snprintf(key, sizeof key, "%016llx-%04d-%012ld",
                                          static_cast<unsigned long long>(spread), t, n);
            batch.Put(rocksdb::Slice(key, static_cast<std::size_t>(len)), value);
          }
          put = db->Write(wo, &batch);
        }
        if (!put.ok()) failures.fetch_add(1);
        mine.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    });
  }
  for (auto& w : writers) w.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  if (all.empty()) return 1;
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all[std::min(all.size() - 1, std::size_t(p * all.size()))]; };
  std::printf("%.0f writes/s p50 %.2fms p99 %.2fms failures %ld\n", all.size() / elapsed, pct(0.50),
              pct(0.99), failures.load());
  return 0;
}

// SST writers for the bulk paths (rebuild, import): entries in key order go straight into
// SST files, which are then ingested into an empty family (IngestExternalFile): no memtable,
// no WAL, no flush or compaction. Internal to src/store.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "src/store/bulk_buffer.h"

namespace tokenledger::store {

// Files being built at once, beside the thread that produces the entries.
inline constexpr std::size_t kSstFilesInFlight = 2;

// Writes entries, in strictly increasing key order, into SST files of one family: each file
// holds at most `file_bytes` of entries (kRebuildSstFileBytes; before compression) and is built
// and compressed on a thread of its own while the next one fills, at most kSstFilesInFlight
// at once. Building blocks and compressing them costs more than producing the entries (the
// rebuild's fold, the sort's merge): with one background writer, the rebuild's thread waited
// for it 2.3 s of 11.9 s at 1M events, with the second core half idle.
// The files hold consecutive key ranges and are ingested together (files(), in key order).
// Memory: kSstFilesInFlight + 1 buffers of `file_bytes` (BulkBuffer), and each file's index until
// it is finished (RocksDB's table builder keeps it: one file for a whole family made rebuild's
// memory grow with the ledger).
// Thread-safety: one producing thread.
class ParallelSstWriter {
 public:
  ParallelSstWriter(const rocksdb::Options& options, rocksdb::ColumnFamilyHandle* family,
                    std::string path_prefix, std::uint64_t file_bytes);
  ~ParallelSstWriter();  // waits for the files in flight (their errors are dropped)
  ParallelSstWriter(const ParallelSstWriter&) = delete;
  ParallelSstWriter& operator=(const ParallelSstWriter&) = delete;

  // REQUIRES: keys strictly increasing across calls. Fails with the error of a file written
  // earlier, if any (the entry is then dropped).
  rocksdb::Status Put(std::string_view key, std::string_view value);
  // Writes what is buffered and waits for every file. Then files() is complete.
  rocksdb::Status Finish();
  // The files written, in key order (none if nothing was put).
  const std::vector<std::string>& files() const { return files_; }
  // Ingests the files into the writer's family of `db` (moved where the file system allows,
  // else copied); nothing if there are none. REQUIRES: Finish() succeeded.
  rocksdb::Status IngestInto(rocksdb::DB* db) const;

 private:
  struct File {
    BulkBuffer entries;  // [u32 key size][u32 value size][key][value]...
    std::thread thread;
    rocksdb::Status status;
  };
  // Hands the buffered entries to a new file's thread, after the oldest of kSstFilesInFlight
  // is done.
  rocksdb::Status StartFile();
  // Waits for the oldest file in flight; keeps its buffer for reuse.
  rocksdb::Status Reap();

  rocksdb::Options options_;
  rocksdb::ColumnFamilyHandle* family_;
  std::string prefix_;
  std::uint64_t file_bytes_;
  BulkBuffer filling_;
  BulkBuffer spare_;  // a reaped file's buffer, reused for the next one to fill
  std::deque<std::unique_ptr<File>> in_flight_;
  std::vector<std::string> files_;
  rocksdb::Status status_;  // the first error of a finished file
};

}  // namespace tokenledger::store

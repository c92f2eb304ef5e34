// SST writers for the bulk paths (rebuild, import): entries in key order go straight into
// SST files, which are then ingested into an empty family (IngestExternalFile): no memtable,
// no WAL, no flush or compaction. Internal to src/store.
#pragma once

#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tokenledger::store {

// An SST file writer that starts a new file every `file_bytes` (kRebuildSstFileBytes):
// RocksDB's table builder keeps a file's whole index (and filter) in memory until the file is
// finished, so one file per family made rebuild's memory grow with the ledger (10M events:
// ~430 MB). The files hold consecutive key ranges and are ingested together.
class RollingSstWriter {
 public:
  RollingSstWriter(const rocksdb::Options& options, rocksdb::ColumnFamilyHandle* family,
                   std::string path_prefix, std::uint64_t file_bytes)
      : options_(options),
        family_(family),
        prefix_(std::move(path_prefix)),
        file_bytes_(file_bytes) {}

  // REQUIRES: keys in strictly increasing order across calls.
  rocksdb::Status Put(const rocksdb::Slice& key, const rocksdb::Slice& value) {
    if (writer_ && writer_->FileSize() >= file_bytes_) {
      rocksdb::Status s = writer_->Finish();
      writer_.reset();
      if (!s.ok()) return s;
    }
    if (!writer_) {
      writer_ = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options_, family_);
      files_.push_back(prefix_ + "-" + std::to_string(files_.size()) + ".sst");
      rocksdb::Status s = writer_->Open(files_.back());
      if (!s.ok()) return s;
    }
    return writer_->Put(key, value);
  }
  // Finishes the last file. The files to ingest, in key order (none if nothing was written).
  rocksdb::Status Finish() {
    if (!writer_) return rocksdb::Status::OK();
    rocksdb::Status s = writer_->Finish();
    writer_.reset();
    return s;
  }
  const std::vector<std::string>& files() const { return files_; }

 private:
  rocksdb::Options options_;
  rocksdb::ColumnFamilyHandle* family_;
  std::string prefix_;
  std::uint64_t file_bytes_;
  std::unique_ptr<rocksdb::SstFileWriter> writer_;
  std::vector<std::string> files_;
};

// Feeds an SstFileWriter from a second thread: building blocks and compressing them (ZSTD, the
// families' bottommost compression, where an ingested file lands) was half of rebuild's CPU,
// beside the fold or the merge that produce the entries. Entries are handed over in batches of
// kRebuildBatchBytes; memory: two batches (one filling, one being written), plus one entry
// larger than that.
inline constexpr std::size_t kRebuildBatchBytes = 4u << 20;

class BackgroundSstWriter {
 public:
  explicit BackgroundSstWriter(RollingSstWriter* writer) : writer_(writer) {
    filling_.reserve(kRebuildBatchBytes + 4096);
  }
  ~BackgroundSstWriter() {
    if (thread_.joinable()) thread_.join();
  }
  // The error of an earlier batch, if any (the entry is then dropped).
  rocksdb::Status Put(std::string_view key, std::string_view value) {
    const auto k = static_cast<std::uint32_t>(key.size()),
               v = static_cast<std::uint32_t>(value.size());
    char header[8];
    std::memcpy(header, &k, 4);
    std::memcpy(header + 4, &v, 4);
    filling_.append(header, 8);
    filling_.append(key);
    filling_.append(value);
    if (filling_.size() < kRebuildBatchBytes) return rocksdb::Status::OK();
    return Hand();
  }
  // Writes what is left and waits for it.
  rocksdb::Status Flush() {
    rocksdb::Status s = Hand();
    if (thread_.joinable()) thread_.join();
    return s.ok() ? status_ : s;
  }

 private:
  rocksdb::Status Hand() {
    if (thread_.joinable()) thread_.join();
    if (!status_.ok()) return status_;
    filling_.swap(writing_);
    filling_.clear();
    thread_ = std::thread([this] {
      const char* p = writing_.data();
      const char* const end = p + writing_.size();
      while (p < end && status_.ok()) {
        std::uint32_t k, v;
        std::memcpy(&k, p, 4);
        std::memcpy(&v, p + 4, 4);
        status_ = writer_->Put(rocksdb::Slice(p + 8, k), rocksdb::Slice(p + 8 + k, v));
        p += 8 + std::size_t{k} + v;
      }
    });
    return rocksdb::Status::OK();
  }

  RollingSstWriter* writer_;
  std::string filling_, writing_;
  std::thread thread_;
  rocksdb::Status status_;  // of the batches written so far (read after a join)
};

}  // namespace tokenledger::store

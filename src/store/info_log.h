// RocksDB's info log (<data_dir>/LOG), written by the store rather than by RocksDB.
//
// Why not RocksDB's own: its EnvLogger appends through a WritableFileWriter and ignores the
// errors, but a writer that once failed (ENOSPC on a full disk) trips
// `assert(sync_without_flush_called_)` on its next append in a RocksDB built with
// assertions (Debian's is): the first log line after a failed write aborted the process.
// This logger writes each line with write(2), drops lines it cannot write and never fails.
// It also lets the store choose when the LOG is rotated: only after the store holds the data
// directory's lock, so a refused second opener never renames the running server's LOG.
#pragma once

#include <rocksdb/env.h>

#include <atomic>
#include <cstdarg>
#include <memory>
#include <mutex>
#include <string>

namespace tokenledger::store {

class InfoLog : public rocksdb::Logger {
 public:
  // Renames an existing <dir>/LOG to LOG.old.<micros>, deletes the oldest LOG.old.* beyond
  // `keep_old`, and opens a new LOG. Never fails: if the file cannot be opened (a full or
  // read-only disk) lines are dropped.
  static std::shared_ptr<InfoLog> Open(const std::string& dir, std::size_t keep_old);
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;
  // Lines that could not be written (counted, never reported to RocksDB).
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 protected:
  rocksdb::Status CloseImpl() override;

 private:
  explicit InfoLog(int fd) : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL), fd_(fd) {}
  std::mutex mu_;
  int fd_;  // guarded by mu_; -1: closed or never opened
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace tokenledger::store

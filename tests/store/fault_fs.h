// Test-only: a RocksDB FileSystem over the real one whose writes, syncs, closes, file creations
// and reads fail on command (an IOError, or NoSpace as a full disk gives). Toggled atomically
// from the test while the store runs; files opened before a toggle obey it too.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>

namespace tokenledger::store::testing {

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  // What fails while set. kNoSpace makes the error look like ENOSPC (retryable, subcode
  // kNoSpace); kIo is a plain EIO-like IOError.
  enum class Kind { kIo, kNoSpace };

  FaultFs() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "TokenledgerFaultFs"; }

  std::atomic<bool> fail_append{false};  // Append / PositionedAppend / Flush of writable files
  std::atomic<bool> fail_sync{false};    // Sync / Fsync / RangeSync of writable files
  std::atomic<bool> fail_close{false};   // Close of writable files
  std::atomic<bool> fail_create{false};  // NewWritableFile / ReopenWritableFile / ReuseWritableFile
  std::atomic<bool> fail_read{false};    // reads of random-access and sequential files
  std::atomic<Kind> kind{Kind::kIo};
  // Every Sync / Fsync first sleeps this long (so that a pipeline of batches builds up).
  std::atomic<int> sync_delay_ms{0};
  // When > 0: counts syncs down, and the one that brings it to 0 sets fail_sync.
  std::atomic<int> fail_sync_after{0};
  std::atomic<std::uint64_t> injected{0};  // how many operations were failed

  void FailWrites(bool on) {  // append + sync + close + create
    fail_append = on;
    fail_sync = on;
    fail_close = on;
    fail_create = on;
  }
  void Clear() {
    FailWrites(false);
    fail_read = false;
  }

  rocksdb::IOStatus Injected(const char* what);
  // Applies sync_delay_ms and fail_sync_after; whether this sync fails.
  bool SyncFails();

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
};

// An Env whose file system is `fs` (for StoreHooks::env).
std::shared_ptr<rocksdb::Env> FaultEnv(const std::shared_ptr<FaultFs>& fs);

}  // namespace tokenledger::store::testing

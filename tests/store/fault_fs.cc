#include "tests/store/fault_fs.h"

#include <chrono>
#include <thread>

namespace tokenledger::store::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile>&& t, FaultFs* fs)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(t)), fs_(fs) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    if (fs_->fail_append) return fs_->Injected("append");
    return target()->Append(data, o, dbg);
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    if (fs_->fail_append) return fs_->Injected("append");
    return target()->Append(data, o, info, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    if (fs_->fail_append) return fs_->Injected("append");
    return target()->PositionedAppend(data, offset, o, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    if (fs_->fail_append) return fs_->Injected("append");
    return target()->PositionedAppend(data, offset, o, info, dbg);
  }
  IOStatus Flush(const IOOptions& o, IODebugContext* dbg) override {
    if (fs_->fail_append) return fs_->Injected("flush");
    return target()->Flush(o, dbg);
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    if (fs_->SyncFails()) return fs_->Injected("sync");
    return target()->Sync(o, dbg);
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    if (fs_->SyncFails()) return fs_->Injected("fsync");
    return target()->Fsync(o, dbg);
  }
  IOStatus RangeSync(uint64_t offset, uint64_t n, const IOOptions& o,
                     IODebugContext* dbg) override {
    if (fs_->fail_sync) return fs_->Injected("range sync");
    return target()->RangeSync(offset, n, o, dbg);
  }
  IOStatus Close(const IOOptions& o, IODebugContext* dbg) override {
    if (fs_->fail_close) {
      target()->Close(o, dbg).PermitUncheckedError();  // never leak the descriptor
      return fs_->Injected("close");
    }
    return target()->Close(o, dbg);
  }

 private:
  FaultFs* fs_;
};

class FaultRandomAccessFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile>&& t, FaultFs* fs)
      : rocksdb::FSRandomAccessFileOwnerWrapper(std::move(t)), fs_(fs) {}
  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    if (fs_->fail_read) return fs_->Injected("read");
    return target()->Read(offset, n, o, result, scratch, dbg);
  }
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t n, const IOOptions& o,
                     IODebugContext* dbg) override {
    if (fs_->fail_read) return fs_->Injected("read");
    return target()->MultiRead(reqs, n, o, dbg);
  }

 private:
  FaultFs* fs_;
};

class FaultSequentialFile : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  FaultSequentialFile(std::unique_ptr<rocksdb::FSSequentialFile>&& t, FaultFs* fs)
      : rocksdb::FSSequentialFileOwnerWrapper(std::move(t)), fs_(fs) {}
  IOStatus Read(size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) override {
    if (fs_->fail_read) return fs_->Injected("read");
    return target()->Read(n, o, result, scratch, dbg);
  }
  IOStatus PositionedRead(uint64_t offset, size_t n, const IOOptions& o, Slice* result,
                          char* scratch, IODebugContext* dbg) override {
    if (fs_->fail_read) return fs_->Injected("read");
    return target()->PositionedRead(offset, n, o, result, scratch, dbg);
  }

 private:
  FaultFs* fs_;
};

}  // namespace

bool FaultFs::SyncFails() {
  if (const int delay = sync_delay_ms.load(); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  int left = fail_sync_after.load();
  while (left > 0 && !fail_sync_after.compare_exchange_weak(left, left - 1)) {
  }
  if (left == 1) fail_sync = true;
  return fail_sync;
}

IOStatus FaultFs::Injected(const char* what) {
  injected.fetch_add(1);
  const std::string msg = std::string("injected fault: ") + what;
  if (kind.load() == Kind::kNoSpace) {
    IOStatus s = IOStatus::NoSpace(msg, "No space left on device");
    s.SetRetryable(true);
    return s;
  }
  return IOStatus::IOError(msg, "Input/output error");
}

IOStatus FaultFs::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                  std::unique_ptr<rocksdb::FSWritableFile>* r,
                                  IODebugContext* dbg) {
  if (fail_create) return Injected("create");
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(f, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(file), this);
  return s;
}

IOStatus FaultFs::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                     std::unique_ptr<rocksdb::FSWritableFile>* r,
                                     IODebugContext* dbg) {
  if (fail_create) return Injected("create");
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(f, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(file), this);
  return s;
}

IOStatus FaultFs::ReuseWritableFile(const std::string& f, const std::string& old,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    IODebugContext* dbg) {
  if (fail_create) return Injected("create");
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReuseWritableFile(f, old, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(file), this);
  return s;
}

IOStatus FaultFs::NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                      IODebugContext* dbg) {
  if (fail_read) return Injected("open for reading");
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  IOStatus s = target()->NewRandomAccessFile(f, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultRandomAccessFile>(std::move(file), this);
  return s;
}

IOStatus FaultFs::NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                    IODebugContext* dbg) {
  if (fail_read) return Injected("open for reading");
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  IOStatus s = target()->NewSequentialFile(f, o, &file, dbg);
  if (s.ok()) *r = std::make_unique<FaultSequentialFile>(std::move(file), this);
  return s;
}

std::shared_ptr<rocksdb::Env> FaultEnv(const std::shared_ptr<FaultFs>& fs) {
  return std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs));
}

}  // namespace tokenledger::store::testing

// Degraded mode and recovery after a failed write.
//
// A failed write (a full disk, an fsync error) puts RocksDB into a background-error state in
// which it refuses every write, and may leave some or all of the failed batch in its WAL. So
// the committer stops deciding on top of its in-memory head: the store turns degraded, every
// command is refused at once with kUnavailable (no disk touched), reads keep answering from
// what is committed, and every recovery_interval (doubling up to max_recovery_interval) the
// committer tries to recover:
//   1. probe: write, sync and delete a small file in the data directory (through the same
//      Env, so an injected fault shows too); a disk still failing stops here, untouched;
//   2. close and reopen the DB in place (under db_mu exclusively; readers wait for it).
//      Not DB::Resume(): when every memtable is empty (e.g. the first write after an open
//      failed) Resume() does not switch to a new WAL, and the next write appends to the WAL
//      writer that failed, which aborts in a RocksDB built with assertions (read from 7.8's
//      FlushMemTable, not reproduced); and Resume()
//      refuses the errors RocksDB calls fatal (any plain I/O error on the WAL) anyway.
//      RocksDB's own automatic recovery is off for the same reason (see Open).
//      The reopen replays the WAL: if the failed batch reached it whole (the write succeeded,
//      the fsync failed) it is now part of the ledger. Its commands were answered 503: "not
//      acknowledged", not "not done"; an idempotent retry gets the recorded outcome;
//   3. re-read the head (seq, hash, time) from the stored chain head, so the next batch
//      continues the chain exactly as stored: no gap, no fork.
// Recovery runs on the committer thread while no batch is in flight; Degrade also on the
// writer thread (a failed commit), so the health and schedule fields are under health_mu.
#include <cstdio>

#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

constexpr char kProbeFile[] = "tokenledger.probe";
constexpr std::size_t kProbeBytes = 4096;

}  // namespace

void LedgerStore::Impl::Degrade(const rocksdb::Status& s, std::string_view what) {
  {
    std::lock_guard lock(health_mu);
    if (degraded.load()) return;
    metrics.degraded.store(1, std::memory_order_relaxed);  // seen by whoever sees the health
    health.ok = false;
    health.reason = "storage error while " + std::string(what) + ": " + s.ToString();
    health.since = NowMicros();
    recovery_backoff = options.recovery_interval;
    next_recovery = std::chrono::steady_clock::now() + std::chrono::microseconds(recovery_backoff);
    degraded.store(true, std::memory_order_release);
  }
  {
    std::lock_guard lock(mu);  // so the committer is waiting, or will see `degraded`
  }
  cv.notify_all();  // the committer may be sleeping on a longer timeout: schedule the recovery
  std::fprintf(stderr, "tokenledger: storage degraded, refusing writes until it recovers: %s\n",
               s.ToString().c_str());
}

std::string LedgerStore::Impl::DegradedMessage() const {
  std::lock_guard lock(health_mu);
  return "the ledger cannot write now (" + health.reason + "); retry later";
}

bool LedgerStore::Impl::RecoveryDue() const {
  std::lock_guard lock(health_mu);
  return std::chrono::steady_clock::now() >= next_recovery;
}

std::chrono::steady_clock::duration LedgerStore::Impl::UntilRecovery() const {
  std::lock_guard lock(health_mu);
  return next_recovery - std::chrono::steady_clock::now();
}

void LedgerStore::Impl::FailDegraded(std::vector<Pending>& batch) {
  const std::string message = DegradedMessage();
  for (auto& p : batch) {
    CommandResult r;
    r.outcome = Outcome::kUnavailable;
    r.rejection = core::Rejection{ErrorCode::kUnavailable, message, {}};
    p.done(std::move(r));
  }
}

rocksdb::Status LedgerStore::Impl::ProbeDisk() {
  rocksdb::Env* env = db_options.env;
  const std::string path = options.data_dir + "/" + kProbeFile;
  std::unique_ptr<rocksdb::WritableFile> file;
  rocksdb::Status s = env->NewWritableFile(path, &file, rocksdb::EnvOptions());
  if (s.ok()) s = file->Append(std::string(kProbeBytes, '\0'));
  if (s.ok()) s = file->Sync();
  if (file) {
    rocksdb::Status c = file->Close();
    if (s.ok()) s = c;
  }
  env->DeleteFile(path).PermitUncheckedError();
  return s;
}

rocksdb::Status LedgerStore::Impl::Reopen() {
  std::unique_lock lock(db_mu);  // waits for the readers in flight; new ones wait for us
  CloseDb();
  rocksdb::Status s = OpenDb();
  if (!s.ok()) {
    CloseDb();
    return s;
  }
  details = Handle(projection_meta.details_cf);
  list = Handle(projection_meta.list_cf);
  row_cache->Clear();  // what the reopened store holds may differ from what was read before
  if (!details || !list) {
    CloseDb();
    return rocksdb::Status::Corruption("projection column families named in meta are missing");
  }
  return s;
}

void LedgerStore::Impl::TryRecover() {
  rocksdb::Status s = ProbeDisk();
  if (s.ok()) s = Reopen();
  std::string head_error;
  if (s.ok()) {
    OpenFailure failure;
    head_error = LoadHead(&failure);
  }
  if (!s.ok() || !head_error.empty()) {
    metrics.recovery_failures.fetch_add(1, std::memory_order_relaxed);
    Micros backoff;
    {
      std::lock_guard lock(health_mu);
      backoff = recovery_backoff = std::min(recovery_backoff * 2, options.max_recovery_interval);
      next_recovery = std::chrono::steady_clock::now() + std::chrono::microseconds(backoff);
    }
    std::fprintf(stderr, "tokenledger: storage recovery failed (next try in %lld ms): %s\n",
                 static_cast<long long>(backoff / 1000),
                 s.ok() ? head_error.c_str() : s.ToString().c_str());
    return;
  }
  MarkHealthy();
}

void LedgerStore::Impl::MarkHealthy() {
  // The flag, the counters and the health change together under health_mu, as Degrade sets
  // them: whoever sees the store healthy (/readyz, Health()) also sees writes accepted and the
  // recovery counted. With the health reset first, a write in between was refused with an
  // empty reason (FaultTest saw it under load).
  metrics.recoveries.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(health_mu);
    metrics.degraded.store(0, std::memory_order_relaxed);
    degraded.store(false, std::memory_order_release);
    health = StoreHealth{};
  }
  std::fprintf(stderr, "tokenledger: storage recovered; writes resume at seq %llu\n",
               static_cast<unsigned long long>(head_seq + 1));
}

}  // namespace tokenledger::store

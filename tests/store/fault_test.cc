// Storage faults injected under a running store (tests/store/fault_fs.h): failed syncs and
// writes, a failing open, failing reads, and a second opener of the data directory.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "src/store/keys.h"
#include "tests/store/fault_fs.h"
#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

using namespace std::chrono_literals;

class FaultTest : public StoreTest {
 protected:
  FaultTest() {
    options_.recovery_interval = 20 * 1000;  // 20 ms
    options_.max_recovery_interval = 100 * 1000;
  }
  void OpenWithFaults() {
    auto opened = LedgerStore::Open(options_, OpenMode::kServe, FaultHooks());
    ASSERT_TRUE(opened.store) << opened.message;
    store_ = std::move(opened.store);
  }
  StoreHooks FaultHooks() {
    StoreHooks hooks = Hooks();
    hooks.env = env_;
    return hooks;
  }
  bool WaitHealthy(std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (store_->Health().ok) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  std::vector<std::uint64_t> StoredSeqs() {
    std::vector<std::uint64_t> seqs;
    EXPECT_TRUE(store_
                    ->ScanEvents(1,
                                 [&](const events::EventEnvelope& e) {
                                   seqs.push_back(e.seq);
                                   return true;
                                 })
                    .ok());
    return seqs;
  }
  std::uint64_t TokenCount() {
    ListQuery q;
    q.account_id = account_;
    auto page = store_->ListTokens(q);
    EXPECT_TRUE(page) << page.error().message;
    return page ? page->item_count : 0;
  }
  // Seqs 1..n without a gap or duplicate, the head at n, the chain and projections verified.
  void ExpectConsistent() {
    const auto seqs = StoredSeqs();
    for (std::size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i + 1) << "gap or duplicate";
    EXPECT_EQ(store_->LastSeq(), seqs.size());
    auto report = store_->Verify();
    ASSERT_TRUE(report) << report.error().message;
    for (const auto& f : report->findings) ADD_FAILURE() << f.kind << ": " << f.message;
  }
  // Submits `n` creates at once (they share a batch or follow it) and waits for all.
  std::vector<CommandResult> CreateMany(int n) {
    std::vector<std::future<CommandResult>> futures;
    for (int i = 0; i < n; ++i) {
      core::CreateToken c;
      c.account_id = account_;
      c.scope = events::TokenScope::kAccount;
      CommandRequest req;
      req.command = c;
      req.request_id = "req-fault-" + std::to_string(i);
      futures.push_back(store_->Submit(std::move(req)));
    }
    std::vector<CommandResult> out;
    for (auto& f : futures) out.push_back(f.get());
    return out;
  }

  std::shared_ptr<FaultFs> fs_ = std::make_shared<FaultFs>();
  std::shared_ptr<rocksdb::Env> env_ = FaultEnv(fs_);
  Id account_ = ids_.Generate();
};

// The batch whose fsync failed, and everything submitted after it while the disk fails, is
// refused; reads keep answering; when the disk is back the store recovers in place and the
// chain continues from exactly what is stored.
TEST_F(FaultTest, FailedSyncRefusesTheBatchAndRecoversInPlace) {
  OpenWithFaults();
  const Id first = Create(account_);
  ASSERT_EQ(store_->LastSeq(), 1u);

  fs_->fail_sync = true;
  for (const auto& r : CreateMany(8)) {
    EXPECT_EQ(r.outcome, Outcome::kUnavailable);
    EXPECT_EQ(r.rejection.code, ErrorCode::kUnavailable);
    EXPECT_TRUE(r.events.empty());
  }
  StoreHealth health = store_->Health();
  EXPECT_FALSE(health.ok);
  EXPECT_NE(health.reason.find("injected fault"), std::string::npos) << health.reason;
  EXPECT_GT(health.since, 0);
  EXPECT_EQ(store_->Metrics().degraded.load(), 1u);

  // Nothing of the failed batch is visible; committed data still reads.
  EXPECT_EQ(store_->LastSeq(), 1u);
  EXPECT_EQ(StoredSeqs(), std::vector<std::uint64_t>{1});
  EXPECT_EQ(TokenCount(), 1u);
  EXPECT_EQ(Row(first).state.id, first);

  // While degraded a command is refused at once, without touching the disk.
  const auto injected = fs_->injected.load();
  const auto t0 = std::chrono::steady_clock::now();
  core::CreateToken c;
  c.account_id = account_;
  c.scope = events::TokenScope::kAccount;
  CommandResult refused = Run(c);
  EXPECT_EQ(refused.outcome, Outcome::kUnavailable);
  EXPECT_NE(refused.rejection.message.find("injected fault"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);
  std::this_thread::sleep_for(150ms);  // a few recovery attempts, all failing their probe
  EXPECT_FALSE(store_->Health().ok);
  EXPECT_GT(fs_->injected.load(), injected) << "recovery probes the disk";
  EXPECT_GT(store_->Metrics().recovery_failures.load(), 0u);

  fs_->Clear();
  ASSERT_TRUE(WaitHealthy()) << store_->Health().reason;
  EXPECT_EQ(store_->Metrics().degraded.load(), 0u);
  EXPECT_GE(store_->Metrics().recoveries.load(), 1u);

  // The failed batch (the first of the 8 commands, or more of them if they were queued
  // together; the rest were refused at once) was written but not synced: the reopen replayed
  // it. The in-memory head follows the stored chain head, whatever it is.
  const std::uint64_t head = store_->LastSeq();
  EXPECT_GE(head, 1u);
  EXPECT_LE(head, 9u);
  EXPECT_EQ(TokenCount(), head);
  const Id next = Create(account_);
  EXPECT_EQ(store_->LastSeq(), head + 1);
  EXPECT_EQ(Row(next).state.version, 1u);
  ExpectConsistent();

  Reopen();  // what is stored matches what the recovered store said
  EXPECT_EQ(store_->LastSeq(), head + 1);
  ExpectConsistent();
}

// A write that fails before anything reaches the file (ENOSPC on append) leaves nothing of
// the batch behind after the recovery.
TEST_F(FaultTest, FailedAppendOnAFullDiskLeavesNothingBehind) {
  OpenWithFaults();
  Create(account_);
  fs_->kind = FaultFs::Kind::kNoSpace;
  fs_->fail_append = true;
  fs_->fail_sync = true;
  for (const auto& r : CreateMany(4)) EXPECT_EQ(r.outcome, Outcome::kUnavailable);
  EXPECT_NE(store_->Health().reason.find("No space left on device"), std::string::npos)
      << store_->Health().reason;
  fs_->Clear();
  ASSERT_TRUE(WaitHealthy()) << store_->Health().reason;
  EXPECT_EQ(store_->LastSeq(), 1u);
  EXPECT_EQ(TokenCount(), 1u);
  Create(account_);
  EXPECT_EQ(store_->LastSeq(), 2u);
  ExpectConsistent();
}

// Degraded and recovered twice in a row, with writes between: the chain stays whole.
TEST_F(FaultTest, RepeatedFaultsKeepTheChainWhole) {
  OpenWithFaults();
  for (int round = 0; round < 3; ++round) {
    Create(account_);
    fs_->fail_sync = true;
    CreateMany(3);
    fs_->Clear();
    ASSERT_TRUE(WaitHealthy()) << store_->Health().reason;
  }
  Create(account_);
  ExpectConsistent();
}

// A sync fails while the next batch is already decided on top of it (the committer decides
// batch N+1 while batch N syncs): that batch fails too, unwritten. Every acknowledged command
// is stored and replays as it was answered; nothing unacknowledged is visible; the chain
// continues without a gap after the recovery.
TEST_F(FaultTest, ASyncFailingInTheMiddleOfAPipelineFailsWhatWasDecidedOnTopOfIt) {
  OpenWithFaults();
  const Id token = Create(account_);
  fs_->sync_delay_ms = 20;  // each sync takes 20 ms, so the committer decides ahead of it
  fs_->fail_sync_after = 4;
  struct Sent {
    std::string key;
    std::future<CommandResult> result;
  };
  std::vector<Sent> sent;
  // At least 400 commands, and on until a batch was discarded: which sync fails is counted,
  // not timed, so on a loaded machine (or a slow build) more of them may come first.
  for (int i = 0; i < 4000; ++i) {
    if (i >= 400 && store_->Metrics().batches_discarded.load() > 0) break;
    CommandRequest req;
    if (i % 3 == 0) {
      core::CreateToken c;
      c.account_id = account_;
      c.scope = events::TokenScope::kAccount;
      req.command = c;
    } else if (i % 3 == 1) {
      req.command = core::SuspendToken{token};  // decided on the row the batch before left
    } else {
      req.command = core::ActivateToken{token};
    }
    req.request_id = "req-pipe-" + std::to_string(i);
    const std::string key = "pipe-" + std::to_string(i);
    req.idempotency = Idem(account_, key, key);
    sent.push_back({key, store_->Submit(std::move(req))});
    std::this_thread::sleep_for(500us);
  }
  std::vector<std::pair<std::string, CommandResult>> acknowledged;
  int unavailable = 0;
  for (auto& s : sent) {
    CommandResult r = s.result.get();
    if (r.outcome == Outcome::kUnavailable) {
      ++unavailable;
      EXPECT_TRUE(r.events.empty());
    } else {
      acknowledged.emplace_back(s.key, std::move(r));
    }
  }
  EXPECT_GT(store_->Metrics().batches_discarded.load(), 0u)
      << "a batch was decided on top of the failed one";
  EXPECT_GT(unavailable, 0);
  ASSERT_GT(acknowledged.size(), 3u) << "batches before the failure were acknowledged";

  fs_->sync_delay_ms = 0;
  fs_->Clear();
  ASSERT_TRUE(WaitHealthy()) << store_->Health().reason;
  for (const auto& [key, r] : acknowledged) {
    for (const auto& e : r.events) {
      std::optional<events::EventEnvelope> found;
      ASSERT_TRUE(store_->ScanEvents(e.seq, [&](const events::EventEnvelope& stored) {
        found = stored;
        return false;
      }));
      ASSERT_TRUE(found && found->seq == e.seq) << "acknowledged event " << e.seq << " is lost";
      EXPECT_EQ(found->hash, e.hash);
    }
    // A retry gets the acknowledged outcome, read back from what is stored.
    const CommandResult replay = Run(core::RecordUse{token, 0}, Idem(account_, key, key));
    EXPECT_EQ(replay.outcome, Outcome::kReplayed) << key;
    EXPECT_EQ(OutcomeText(replay), OutcomeText(r)) << key;
  }
  Create(account_);
  ExpectConsistent();
}

// Commands keep arriving while every sync takes 10 ms: when a write returns, the writer finds
// the next batch decided and takes it itself (no hand-over by the committer). Every command is
// applied on the row the one before left, in order, and the chain has no gap.
TEST_F(FaultTest, TheWriterTakesTheOpenBatchWhenItsWriteReturns) {
  OpenWithFaults();
  const Id token = Create(account_);
  fs_->sync_delay_ms = 10;
  std::vector<std::future<CommandResult>> results;
  for (int i = 0; i < 200; ++i) {
    if (i % 2 == 0) {
      results.push_back(store_->Submit(CommandRequest{.command = core::SuspendToken{token}}));
    } else {
      results.push_back(store_->Submit(CommandRequest{.command = core::ActivateToken{token}}));
    }
    std::this_thread::sleep_for(500us);
  }
  for (std::size_t i = 0; i < results.size(); ++i) {
    const CommandResult r = results[i].get();
    ASSERT_EQ(r.outcome, Outcome::kApplied) << i << ": " << OutcomeText(r);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].stream_version, i + 2) << "decided on the row the command before left";
  }
  EXPECT_GT(store_->Metrics().batches_taken_by_writer.load(), 0u);
  fs_->sync_delay_ms = 0;
  EXPECT_EQ(Row(token).state.status, core::TokenStatus::kActive);
  ExpectConsistent();
}

TEST_F(FaultTest, AnOpenThatFailsSaysSoAndALaterOpenSucceeds) {
  OpenWithFaults();
  Create(account_);
  Close();
  fs_->FailWrites(true);
  auto failed = LedgerStore::Open(options_, OpenMode::kServe, FaultHooks());
  EXPECT_FALSE(failed.store);
  EXPECT_EQ(failed.failure, OpenFailure::kIo);
  EXPECT_NE(failed.message.find("injected fault"), std::string::npos) << failed.message;
  fs_->Clear();
  OpenWithFaults();
  EXPECT_EQ(store_->LastSeq(), 1u);
  Create(account_);
  ExpectConsistent();
}

TEST_F(FaultTest, AReadFaultIsAnErrorNotACrash) {
  OpenWithFaults();
  const Id token = Create(account_);
  Close();
  OpenWithFaults();  // the open flushes the WAL into a table file: reads now come from disk
  fs_->fail_read = true;
  auto row = store_->GetToken(token);
  auto page = store_->ListEvents(token, 0, 10);
  fs_->Clear();
  EXPECT_FALSE(row && page) << "some read must have gone to the (failing) disk";
  if (!row) {
    EXPECT_EQ(row.error().code, ErrorCode::kUnavailable);
  }
  EXPECT_TRUE(store_->Health().ok) << "a read fault does not stop writes";
  EXPECT_EQ(Row(token).state.id, token);  // reads work again once the disk does
  Create(account_);
  ExpectConsistent();
}

// A second opener is refused before RocksDB touches anything: the running store's LOG is not
// renamed (it used to be: RocksDB rotates its LOG before it takes its LOCK).
TEST_F(FaultTest, ASecondOpenerIsRefusedAndLeavesTheLogAlone) {
  Open();
  Create(account_);
  const std::string log = options_.data_dir + "/LOG";
  struct stat before {};
  ASSERT_EQ(::stat(log.c_str(), &before), 0);
  auto count_old = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(options_.data_dir))
      n += e.path().filename().string().rfind("LOG.old", 0) == 0;
    return n;
  };
  const int old_before = count_old();
  for (OpenMode mode : {OpenMode::kServe, OpenMode::kMaintenance}) {
    auto second = LedgerStore::Open(options_, mode, Hooks());
    EXPECT_FALSE(second.store);
    EXPECT_EQ(second.failure, OpenFailure::kInUse);
    EXPECT_NE(second.message.find("already in use"), std::string::npos) << second.message;
  }
  {
    auto reader = LedgerStore::Open(options_, OpenMode::kReadOnly, Hooks());
    ASSERT_TRUE(reader.store) << reader.message;
    EXPECT_EQ(reader.store->LastSeq(), 1u);
  }
  struct stat after {};
  ASSERT_EQ(::stat(log.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the running store's LOG was renamed";
  EXPECT_GE(after.st_size, before.st_size);
  EXPECT_EQ(count_old(), old_before);
  Create(account_);  // the first store is unharmed
}

}  // namespace
}  // namespace tokenledger::store::testing

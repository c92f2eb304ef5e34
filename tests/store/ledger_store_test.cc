// The store's contract: writes, reads, restart, exclusivity, batching, back-pressure.
#include <latch>
#include <thread>

#include "events/hash_chain.h"
#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

class LedgerStoreTest : public StoreTest {
 protected:
  void SetUp() override { Open(); }
  const Id account_ = ids_.Generate();
};

TEST_F(LedgerStoreTest, CreateWritesOneEventAndTheRow) {
  ASSERT_EQ(store_->LastSeq(), 0u);
  const Id token = Create(account_);
  EXPECT_EQ(store_->LastSeq(), 1u);
  EXPECT_EQ(token.Partition(), account_.Partition()) << "tokens take their account's partition";
  const auto row = Row(token);
  EXPECT_EQ(row.state.account_id, account_);
  EXPECT_EQ(row.state.status, core::TokenStatus::kActive);
  EXPECT_EQ(row.state.inserted_at, kStart);
  EXPECT_EQ(row.state.expires_at, kStart + 365 * kMicrosPerDay);
  EXPECT_EQ(row.created_seq, 1u);
  auto page = store_->ListEvents(token, 0, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].request_id, "req-test");
  EXPECT_EQ(page->events[0].prev_hash, events::kGenesisHash);
  EXPECT_EQ(events::TypeName(page->events[0].data), "TokenCreated");
}

TEST_F(LedgerStoreTest, LifecycleAndRefusalsWriteNothing) {
  const Id token = Create(account_);
  now_ += kMicrosPerSecond;
  EXPECT_EQ(Run(core::SuspendToken{token}).outcome, Outcome::kApplied);
  EXPECT_EQ(Row(token).state.status, core::TokenStatus::kSuspended);
  EXPECT_EQ(Row(token).state.updated_at, kStart + kMicrosPerSecond);

  const auto before = store_->LastSeq();
  auto refused = Run(core::SuspendToken{token});
  EXPECT_EQ(refused.outcome, Outcome::kRejected);
  EXPECT_EQ(refused.rejection.code, ErrorCode::kInvalidAction);
  EXPECT_EQ(Run(core::DeleteToken{token}).rejection.code, ErrorCode::kInvalidAction);
  EXPECT_EQ(store_->LastSeq(), before) << "a refusal appends nothing";

  EXPECT_EQ(Run(core::ActivateToken{token}).outcome, Outcome::kApplied);
  EXPECT_EQ(Run(core::RevokeToken{token}).outcome, Outcome::kApplied);
  auto deleted = Run(core::DeleteToken{token});
  ASSERT_EQ(deleted.outcome, Outcome::kApplied);
  ASSERT_TRUE(deleted.before);
  EXPECT_EQ(deleted.before->state.status, core::TokenStatus::kRevoked);
  auto gone = store_->GetToken(token);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone) << "deleted tokens are gone from every read";
  EXPECT_EQ(Run(core::RevokeToken{token}).rejection.code, ErrorCode::kNotFound);
  // ... but their history stays.
  auto history = store_->ListEvents(token, 0, 100);
  ASSERT_TRUE(history);
  EXPECT_EQ(history->item_count, 5u);
  auto owner = store_->StreamAccount(token);
  ASSERT_TRUE(owner);
  EXPECT_EQ(*owner, account_);
}

TEST_F(LedgerStoreTest, UnknownTokenIsNotFound) {
  EXPECT_EQ(Run(core::SuspendToken{ids_.Generate()}).rejection.code, ErrorCode::kNotFound);
  auto row = store_->GetToken(ids_.Generate());
  ASSERT_TRUE(row);
  EXPECT_FALSE(*row);
  auto owner = store_->StreamAccount(ids_.Generate());
  ASSERT_TRUE(owner);
  EXPECT_FALSE(*owner);
  EXPECT_EQ(store_->LastSeq(), 0u);
}

TEST_F(LedgerStoreTest, ReopenServesTheSameState) {
  const Id a = Create(account_);
  const Id b = Create(account_);
  ASSERT_EQ(Run(core::RevokeToken{b}).outcome, Outcome::kApplied);
  const auto row_a = Row(a), row_b = Row(b);
  Reopen();
  EXPECT_EQ(store_->LastSeq(), 3u);
  EXPECT_EQ(Row(a), row_a);
  EXPECT_EQ(Row(b), row_b);
  // The chain continues where it stopped.
  ASSERT_EQ(Run(core::DeleteToken{b}).outcome, Outcome::kApplied);
  auto report = store_->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty()) << report->findings[0].message;
  EXPECT_EQ(report->events_checked, 4u);
}

TEST_F(LedgerStoreTest, SecondOpenOfTheSameDirectoryIsRefused) {
  auto second = LedgerStore::Open(options_, OpenMode::kServe, Hooks());
  EXPECT_FALSE(second.store);
  EXPECT_EQ(second.failure, OpenFailure::kInUse);
  EXPECT_NE(second.message.find("already in use"), std::string::npos) << second.message;
}

TEST_F(LedgerStoreTest, EventTimesNeverGoBackwards) {
  const Id token = Create(account_);
  now_ -= kMicrosPerHour;  // the system clock steps back
  ASSERT_EQ(Run(core::SuspendToken{token}).outcome, Outcome::kApplied);
  auto page = store_->ListEvents(token, 0, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->events.size(), 2u);
  EXPECT_GE(page->events[1].at, page->events[0].at);
}

TEST_F(LedgerStoreTest, AsOfShowsTheTokenAtThatTime) {
  const Id token = Create(account_);  // at kStart
  now_ = kStart + 10 * kMicrosPerSecond;
  ASSERT_EQ(Run(core::SuspendToken{token}).outcome, Outcome::kApplied);
  now_ = kStart + 20 * kMicrosPerSecond;
  ASSERT_EQ(Run(core::RevokeToken{token}).outcome, Outcome::kApplied);
  now_ = kStart + 30 * kMicrosPerSecond;
  ASSERT_EQ(Run(core::DeleteToken{token}).outcome, Outcome::kApplied);

  auto as_of = [&](Micros t) {
    auto r = store_->GetTokenAsOf(token, t);
    EXPECT_TRUE(r);
    return r ? *r : std::nullopt;
  };
  EXPECT_FALSE(as_of(kStart - 1)) << "did not exist yet";
  EXPECT_EQ(as_of(kStart)->state.status, core::TokenStatus::kActive);
  EXPECT_EQ(as_of(kStart + 15 * kMicrosPerSecond)->state.status, core::TokenStatus::kSuspended);
  EXPECT_EQ(as_of(kStart + 15 * kMicrosPerSecond)->state.updated_at,
            kStart + 10 * kMicrosPerSecond);
  EXPECT_EQ(as_of(kStart + 29 * kMicrosPerSecond)->state.status, core::TokenStatus::kRevoked);
  EXPECT_FALSE(as_of(kStart + 30 * kMicrosPerSecond)) << "already deleted";
}

TEST_F(LedgerStoreTest, EventHistoryPages) {
  const Id token = Create(account_);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(Run(core::SuspendToken{token}).outcome, Outcome::kApplied);
    ASSERT_EQ(Run(core::ActivateToken{token}).outcome, Outcome::kApplied);
  }
  auto page = store_->ListEvents(token, 3, 4);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->item_count, 9u);
  ASSERT_EQ(page->events.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(page->events[i].stream_version, 4 + i);
  page = store_->ListEvents(token, 8, 4);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->events.size(), 1u);
  page = store_->ListEvents(token, 50, 4);
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->events.empty());
  EXPECT_EQ(page->item_count, 9u);
}

TEST_F(LedgerStoreTest, RecordUseMovesLastUsedAtOncePerGranularity) {
  const Id token = Create(account_);
  ASSERT_EQ(Run(core::RecordUse{token, kStart + 5}).events.size(), 1u) << "first use: audited";
  EXPECT_EQ(Run(core::RecordUse{token, kStart + 6}).events.size(), 0u);
  EXPECT_EQ(Row(token).state.last_used_at, kStart + 5);
  EXPECT_EQ(Row(token).state.updated_at, kStart);
  auto later = Run(core::RecordUse{token, kStart + 5 + kMicrosPerMinute});
  EXPECT_EQ(later.outcome, Outcome::kApplied);
  EXPECT_EQ(later.events.size(), 0u) << "same day: a usage record, not an event";
  EXPECT_EQ(Row(token).state.last_used_at, kStart + 5 + kMicrosPerMinute);
}

// A token used every minute for three days: last_used_at follows every minute, the ledger
// gains one TokenUsed a day, and the rows stay what the ledger plus the usage records say.
TEST_F(LedgerStoreTest, UsesEnterTheLedgerOncePerAuditInterval) {
  options_.sync = false;  // 4,320 commits; durability is tested elsewhere
  Reopen();
  const Id token = Create(account_);
  const Id idle = Create(account_);
  const std::uint64_t before = store_->LastSeq();
  constexpr int kMinutes = 3 * 24 * 60;
  Micros t = kStart + 30 * kMicrosPerSecond;
  for (int i = 0; i < kMinutes; ++i, t += kMicrosPerMinute) {
    ASSERT_EQ(Run(core::RecordUse{token, t}).outcome, Outcome::kApplied);
    ASSERT_EQ(Row(token).state.last_used_at, t);
  }
  EXPECT_EQ(store_->LastSeq() - before, 3u) << "one audited use per UTC day";
  auto history = store_->ListEvents(token, 0, 100);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->events.size(), 4u);
  for (int day = 0; day < 3; ++day) {
    const auto& e = history->events[1 + day];
    ASSERT_TRUE(std::holds_alternative<events::TokenUsed>(e.data));
    EXPECT_EQ(std::get<events::TokenUsed>(e.data).used_at,
              kStart + day * kMicrosPerDay + 30 * kMicrosPerSecond)
        << "the first use of day " << day;
  }
  EXPECT_FALSE(Row(idle).state.last_used_at);

  auto check = [&] {
    auto report = store_->Verify();
    ASSERT_TRUE(report) << report.error().message;
    for (const auto& f : report->findings) ADD_FAILURE() << f.kind << ": " << f.message;
    EXPECT_EQ(Row(token).state.last_used_at, t - kMicrosPerMinute);
  };
  check();
  Reopen();
  check();
  ASSERT_TRUE(store_->RebuildProjections()) << "usage records are folded into rebuilt rows";
  check();
  auto page = store_->ListTokens(
      ListQuery{.account_id = account_, .sort = projections::SortField::kLastUsedAt});
  ASSERT_TRUE(page);
  ASSERT_EQ(page->rows.size(), 2u);
  EXPECT_EQ(page->item_count, 2u) << "the rebuilt counters";
  EXPECT_EQ(page->rows[0].state.id, token) << "the list index follows the usage records";

  // Deleting the token drops its usage record with it.
  ASSERT_EQ(Run(core::RevokeToken{token}).outcome, Outcome::kApplied);
  ASSERT_EQ(Run(core::DeleteToken{token}).outcome, Outcome::kApplied);
  auto report = store_->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

TEST_F(LedgerStoreTest, UsageAuditIntervalZeroKeepsUsesOutOfTheLedger) {
  options_.policy.usage_audit_interval = 0;
  Reopen();
  const Id token = Create(account_);
  const std::uint64_t before = store_->LastSeq();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(Run(core::RecordUse{token, kStart + i * kMicrosPerDay}).events.size(), 0u);
  EXPECT_EQ(store_->LastSeq(), before);
  EXPECT_EQ(Row(token).state.last_used_at, kStart + 4 * kMicrosPerDay);
}

// Holds the committer inside a callback so that the queue fills deterministically.
class CommitterGate {
 public:
  explicit CommitterGate(LedgerStore& store, const Id& token) {
    CommandRequest req;
    req.command = core::RecordUse{token, 0};
    store.Submit(std::move(req), [this](CommandResult) {
      entered_.count_down();
      release_.wait();
    });
    entered_.wait();
  }
  void Release() { release_.count_down(); }

 private:
  std::latch entered_{1};
  std::latch release_{1};
};

TEST_F(LedgerStoreTest, QueuedCommandsAreDecidedInOrderInOneBatch) {
  const Id token = Create(account_);
  const Id other = Create(account_);
  const auto batches_before = store_->Metrics().batches.load();
  CommitterGate gate(*store_, other);
  std::vector<std::future<CommandResult>> results;
  auto submit = [&](core::Command c) {
    CommandRequest req;
    req.command = c;
    results.push_back(store_->Submit(std::move(req)));
  };
  submit(core::SuspendToken{token});
  submit(core::ActivateToken{token});
  submit(core::RevokeToken{token});
  submit(core::RevokeToken{token});  // sees the revoke queued just before it
  submit(core::DeleteToken{token});
  // The writer is held: the committer takes all five into its open batch meanwhile (once the
  // queue is empty they are all in it, and it goes to the writer whole when it is free).
  while (store_->QueueDepth() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  gate.Release();
  std::vector<CommandResult> r;
  for (auto& f : results) r.push_back(f.get());
  EXPECT_EQ(r[0].outcome, Outcome::kApplied);
  EXPECT_EQ(r[1].outcome, Outcome::kApplied);
  EXPECT_EQ(r[2].outcome, Outcome::kApplied);
  EXPECT_EQ(r[3].rejection.code, ErrorCode::kInvalidAction);
  EXPECT_EQ(r[4].outcome, Outcome::kApplied);
  EXPECT_EQ(r[4].events[0].stream_version, 5u);
  // The gate's own batch, then all five in one batch (one write, one fsync).
  EXPECT_EQ(store_->Metrics().batches.load(), batches_before + 2);
  auto report = store_->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

// Backpressure: with the writer held, the pipeline holds one batch being written, one waiting
// and one open (max_batch_size 1 here, so one command each), then the queue fills, then a
// submit is refused at once.
TEST_F(LedgerStoreTest, FullQueueIsRefusedAtOnce) {
  Close();
  options_.max_queue_depth = 4;
  options_.max_batch_size = 1;
  Open();
  const Id token = Create(account_);
  CommitterGate gate(*store_, token);  // the writer answers it, and waits there
  std::vector<std::future<CommandResult>> queued;
  auto use = [&] { queued.push_back(store_->Submit(CommandRequest{core::RecordUse{token, 0}})); };
  for (int i = 0; i < 2; ++i) {  // one waits for the writer, one in the committer's hands
    use();
    while (store_->QueueDepth() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 4; ++i) use();
  auto refused = store_->Submit(CommandRequest{core::SuspendToken{token}});
  ASSERT_EQ(refused.wait_for(std::chrono::seconds(0)), std::future_status::ready)
      << "an overloaded submit must not wait";
  EXPECT_EQ(refused.get().outcome, Outcome::kOverloaded);
  EXPECT_EQ(store_->Metrics().overloaded.load(), 1u);
  gate.Release();
  for (auto& f : queued) EXPECT_EQ(f.get().outcome, Outcome::kApplied);
  EXPECT_EQ(Row(token).state.status, core::TokenStatus::kActive)
      << "the refused suspend wrote nothing";
}

TEST_F(LedgerStoreTest, CloseFinishesQueuedCommands) {
  const Id token = Create(account_);
  std::vector<std::future<CommandResult>> pending;
  CommitterGate gate(*store_, token);
  for (int i = 0; i < 20; ++i)
    pending.push_back(store_->Submit(CommandRequest{core::SuspendToken{token}}));
  gate.Release();
  Close();  // returns only when all 20 are decided and written
  int applied = 0;
  for (auto& f : pending) applied += f.get().outcome == Outcome::kApplied;
  EXPECT_EQ(applied, 1);
  Open();
  EXPECT_EQ(Row(token).state.status, core::TokenStatus::kSuspended);
}

}  // namespace
}  // namespace tokenledger::store::testing

namespace tokenledger::store::testing {
namespace {

TEST(LedgerStoreOptionsTest, NonsenseOptionsAreRefused) {
  TempDir dir;
  StoreOptions options;
  options.data_dir = dir.path();
  options.max_batch_size = 0;
  auto opened = LedgerStore::Open(options);
  EXPECT_FALSE(opened.store);
  EXPECT_EQ(opened.failure, OpenFailure::kBadOptions);
  options.max_batch_size = 1;
  options.policy.max_lifetime = kMicrosPerDay;  // below the 365-day default lifetime
  EXPECT_EQ(LedgerStore::Open(options).failure, OpenFailure::kBadOptions);
}

}  // namespace
}  // namespace tokenledger::store::testing

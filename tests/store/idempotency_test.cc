// Idempotency: replay, conflict, scope, recorded rejections, concurrency, restarts, TTL.
#include <thread>

#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

class IdempotencyTest : public StoreTest {
 protected:
  void SetUp() override { Open(); }
  CommandResult Create(const std::string& key, std::string_view request = "create") {
    return Run(core::CreateToken{account_}, Idem(account_, key, request));
  }
  const Id account_ = ids_.Generate();
};

TEST_F(IdempotencyTest, ReplayReturnsTheSameBytesAndWritesNothing) {
  auto first = Create("key-1");
  ASSERT_EQ(first.outcome, Outcome::kApplied);
  EXPECT_FALSE(first.response.empty());
  EXPECT_EQ(first.events[0].idempotency_key, "key-1");
  const auto seq = store_->LastSeq();
  auto again = Create("key-1");
  EXPECT_EQ(again.outcome, Outcome::kReplayed);
  EXPECT_EQ(again.response, first.response);
  EXPECT_TRUE(again.events.empty());
  EXPECT_EQ(store_->LastSeq(), seq);
}

TEST_F(IdempotencyTest, DifferentRequestWithTheSameKeyConflicts) {
  ASSERT_EQ(Create("key-1").outcome, Outcome::kApplied);
  const auto seq = store_->LastSeq();
  auto conflict = Create("key-1", "create with another body");
  EXPECT_EQ(conflict.outcome, Outcome::kKeyConflict);
  EXPECT_EQ(conflict.rejection.code, ErrorCode::kIdempotencyKeyAlreadyUsed);
  EXPECT_EQ(store_->LastSeq(), seq);
}

TEST_F(IdempotencyTest, KeysAreScopedToTheAccount) {
  ASSERT_EQ(Create("shared").outcome, Outcome::kApplied);
  const Id other = ids_.Generate();
  auto r = Run(core::CreateToken{other}, Idem(other, "shared", "create"));
  EXPECT_EQ(r.outcome, Outcome::kApplied);
  EXPECT_EQ(store_->LastSeq(), 2u);
}

TEST_F(IdempotencyTest, DecisionsAreRecordedValidationFailuresAreNot) {
  const Id token = Run(core::CreateToken{account_}).after->state.id;
  // invalid_action is a decision: recorded and replayed even after the state changes.
  auto refused = Run(core::ActivateToken{token}, Idem(account_, "act", "activate"));
  ASSERT_EQ(refused.outcome, Outcome::kRejected);
  ASSERT_EQ(refused.rejection.code, ErrorCode::kInvalidAction);
  ASSERT_EQ(Run(core::SuspendToken{token}).outcome, Outcome::kApplied);
  auto replay = Run(core::ActivateToken{token}, Idem(account_, "act", "activate"));
  EXPECT_EQ(replay.outcome, Outcome::kReplayed);
  EXPECT_EQ(replay.response, refused.response);
  EXPECT_EQ(Row(token).state.status, core::TokenStatus::kSuspended);

  // not_found is a decision too.
  const Id missing = ids_.Generate();
  auto nf = Run(core::RevokeToken{missing}, Idem(account_, "nf", "revoke missing"));
  EXPECT_EQ(nf.rejection.code, ErrorCode::kNotFound);
  EXPECT_EQ(Run(core::RevokeToken{missing}, Idem(account_, "nf", "revoke missing")).outcome,
            Outcome::kReplayed);

  // A validation failure records nothing: the client fixes the request and retries the key.
  core::CreateToken bad{account_, std::nullopt, events::TokenScope::kEnvironment};
  auto invalid = Run(bad, Idem(account_, "fixme", "bad create"));
  EXPECT_EQ(invalid.rejection.code, ErrorCode::kRequiredValue);
  EXPECT_TRUE(invalid.response.empty());
  auto fixed = Run(core::CreateToken{account_}, Idem(account_, "fixme", "good create"));
  EXPECT_EQ(fixed.outcome, Outcome::kApplied);
}

TEST_F(IdempotencyTest, SixteenThreadsWithOneKeyMakeOneEvent) {
  const auto seq = store_->LastSeq();
  std::vector<CommandResult> results(16);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < 16) std::this_thread::yield();
      results[i] = Create("race");
    });
  }
  for (auto& t : threads) t.join();
  int applied = 0, replayed = 0;
  for (const auto& r : results) {
    applied += r.outcome == Outcome::kApplied;
    replayed += r.outcome == Outcome::kReplayed;
    EXPECT_EQ(r.response, results[0].response) << "every caller gets the one outcome";
  }
  EXPECT_EQ(applied, 1);
  EXPECT_EQ(replayed, 15);
  EXPECT_EQ(store_->LastSeq(), seq + 1);
}

TEST_F(IdempotencyTest, ReplaySurvivesARestart) {
  auto first = Create("durable");
  ASSERT_EQ(first.outcome, Outcome::kApplied);
  Reopen();
  auto again = Create("durable");
  EXPECT_EQ(again.outcome, Outcome::kReplayed);
  EXPECT_EQ(again.response, first.response);
  EXPECT_EQ(Create("durable", "other").outcome, Outcome::kKeyConflict);
}

TEST_F(IdempotencyTest, ExpiredKeysArePurgedAndThenReusable) {
  auto first = Create("old");
  ASSERT_EQ(first.outcome, Outcome::kApplied);
  ASSERT_EQ(Create("fresh").outcome, Outcome::kApplied);
  now_ += options_.idempotency_ttl - 1;
  EXPECT_EQ(Create("old").outcome, Outcome::kReplayed) << "still inside the TTL";
  now_ += 1;
  ASSERT_EQ(Create("young").outcome, Outcome::kApplied);  // written now: not yet expired
  store_->PurgeExpiredIdempotency().get();                // the periodic purge may have run already
  EXPECT_EQ(store_->Metrics().idempotency_purged.load(), 2u) << "old and fresh expired, young kept";
  EXPECT_EQ(store_->PurgeExpiredIdempotency().get(), 0u);
  EXPECT_EQ(Create("young").outcome, Outcome::kReplayed);
  auto reused = Create("old", "a different request");
  EXPECT_EQ(reused.outcome, Outcome::kApplied) << "after the TTL the key is free again";
  EXPECT_NE(reused.response, first.response);
  auto report = store_->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

TEST_F(IdempotencyTest, AKeyReusedAfterExpiryIsNotPurgedByItsOldEntry) {
  ASSERT_EQ(Create("k").outcome, Outcome::kApplied);
  now_ += options_.idempotency_ttl;
  auto reused = Create("k", "second");  // expired but not yet purged: reused in place
  ASSERT_EQ(reused.outcome, Outcome::kApplied);
  store_->PurgeExpiredIdempotency().get();  // the periodic purge may have run already
  EXPECT_EQ(store_->Metrics().idempotency_purged.load(), 1u) << "only the first's expiry entry";
  EXPECT_EQ(Create("k", "second").outcome, Outcome::kReplayed);
}

TEST_F(IdempotencyTest, CommitterPurgesPeriodicallyWithoutBeingAsked) {
  Close();
  options_.idempotency_purge_interval = 1;  // every wake-up
  options_.idempotency_ttl = kMicrosPerSecond;
  Open();
  ASSERT_EQ(Create("a").outcome, Outcome::kApplied);
  now_ += 2 * kMicrosPerSecond;
  // Any later batch wakes the committer, which then purges one bounded step.
  ASSERT_EQ(Create("b").outcome, Outcome::kApplied);
  for (int i = 0; i < 200 && store_->Metrics().idempotency_purged.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(store_->Metrics().idempotency_purged.load(), 1u);
}

}  // namespace
}  // namespace tokenledger::store::testing

// Idempotency: replay, conflict, scope, recorded rejections, concurrency, restarts, TTL.
#include <thread>

#include "src/store/keys.h"
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
  EXPECT_FALSE(OutcomeText(first).empty());
  EXPECT_EQ(first.events[0].idempotency_key, "key-1");
  const auto seq = store_->LastSeq();
  auto again = Create("key-1");
  EXPECT_EQ(again.outcome, Outcome::kReplayed);
  EXPECT_EQ(again.replayed, Outcome::kApplied);
  EXPECT_EQ(OutcomeText(again), OutcomeText(first)) << "the same row and events, read back";
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
  EXPECT_EQ(replay.replayed, Outcome::kRejected);
  EXPECT_EQ(OutcomeText(replay), OutcomeText(refused));
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
  EXPECT_EQ(Run(bad, Idem(account_, "fixme", "bad create")).outcome, Outcome::kRejected)
      << "decided again, not replayed";
  auto fixed = Run(core::CreateToken{account_}, Idem(account_, "fixme", "good create"));
  EXPECT_EQ(fixed.outcome, Outcome::kApplied);
}

// A delete answers with the token as it was last visible, and so does its replay; the row's
// last_used_at (kept in usage records, not events) is the one the first answer showed.
TEST_F(IdempotencyTest, AReplayShowsTheRowOfTheFirstAnswer) {
  const Id token = Run(core::CreateToken{account_}).after->state.id;
  ASSERT_EQ(Run(core::RecordUse{token, kStart + 5 * kMicrosPerSecond}).outcome, Outcome::kApplied);
  auto suspended = Run(core::SuspendToken{token}, Idem(account_, "s", "suspend"));
  ASSERT_EQ(suspended.outcome, Outcome::kApplied);
  ASSERT_TRUE(suspended.after->state.last_used_at);
  ASSERT_EQ(Run(core::RevokeToken{token}).outcome, Outcome::kApplied);
  auto deleted = Run(core::DeleteToken{token}, Idem(account_, "d", "delete"));
  ASSERT_EQ(deleted.outcome, Outcome::kApplied) << deleted.rejection.message;
  EXPECT_EQ(deleted.ShownRow().state.status, core::TokenStatus::kRevoked);
  Reopen();
  auto suspend_again = Run(core::SuspendToken{token}, Idem(account_, "s", "suspend"));
  EXPECT_EQ(OutcomeText(suspend_again), OutcomeText(suspended));
  EXPECT_EQ(suspend_again.ShownRow().state.last_used_at, suspended.after->state.last_used_at);
  auto delete_again = Run(core::DeleteToken{token}, Idem(account_, "d", "delete"));
  EXPECT_EQ(delete_again.outcome, Outcome::kReplayed);
  EXPECT_EQ(OutcomeText(delete_again), OutcomeText(deleted));
  EXPECT_FALSE(delete_again.ShownRow().state.deleted);
}

// Records written before typed records (format 1: the rendered HTTP answer) keep replaying
// until they expire.
TEST_F(IdempotencyTest, AFormatOneRecordStillReplays) {
  ASSERT_EQ(Create("old-ok").outcome, Outcome::kApplied);
  ASSERT_EQ(Create("old-refused").outcome, Outcome::kApplied);
  Close();
  const std::string ok_answer = "200\n{\"status\":\"success\",\"token\":\"@@api_token_jwt@@\"}";
  const std::string refused_answer = "409\n{\"code\":\"invalid_action\"}";
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, RawFamilies& families) {
    for (const auto& [key, answer] : {std::pair{std::string("old-ok"), ok_answer},
                                      std::pair{std::string("old-refused"), refused_answer}}) {
      std::string value;
      const std::string record_key = IdempotencyKey(account_, key);
      ASSERT_TRUE(db->Get({}, families["idempotency"], record_key, &value).ok());
      value.resize(8 + 32 + 8 + 4);  // the header is the same in both formats
      value += answer;
      ASSERT_TRUE(db->Put({}, families["idempotency"], record_key, value).ok());
    }
  });
  Open();
  auto ok = Create("old-ok");
  EXPECT_EQ(ok.outcome, Outcome::kReplayed);
  EXPECT_EQ(ok.replayed, Outcome::kApplied);
  EXPECT_EQ(ok.legacy_response, ok_answer);
  auto refused = Create("old-refused");
  EXPECT_EQ(refused.replayed, Outcome::kRejected);
  EXPECT_EQ(refused.legacy_response, refused_answer);
}

TEST(IdempotencyRecordCodecTest, TypedRecordsRoundTripAndMalformedOnesAreRefused) {
  IdempotencyRecord applied;
  applied.created_at = 123;
  applied.fingerprint[0] = 7;
  applied.first_seq = 42;
  applied.event_count = 2;
  applied.last_used_at = 99;
  IdempotencyRecord refused = applied;
  refused.applied = false;
  refused.last_used_at.reset();
  refused.first_seq = 0;
  refused.event_count = 0;
  refused.rejection = {ErrorCode::kInvalidAction, "cannot activate a token that is active",
                       "status"};
  for (const IdempotencyRecord& r : {applied, refused}) {
    const std::string bytes = EncodeIdempotencyRecord(r);
    auto back = DecodeIdempotencyRecord(bytes);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->created_at, r.created_at);
    EXPECT_EQ(back->fingerprint, r.fingerprint);
    EXPECT_EQ(back->first_seq, r.first_seq);
    EXPECT_EQ(back->event_count, r.event_count);
    EXPECT_EQ(back->applied, r.applied);
    EXPECT_EQ(back->rejection, r.rejection);
    EXPECT_EQ(back->last_used_at, r.last_used_at);
    EXPECT_TRUE(back->legacy_response.empty());
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      if (r.applied || cut < 8 + 32 + 8 + 4 + 4 + r.rejection.field.size()) {
        EXPECT_FALSE(DecodeIdempotencyRecord(bytes.substr(0, cut))) << cut;
      }
    }
  }
  std::string bad_code = EncodeIdempotencyRecord(refused);
  bad_code[8 + 32 + 8 + 4 + 2] = 9;
  EXPECT_FALSE(DecodeIdempotencyRecord(bad_code));
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
    EXPECT_EQ(OutcomeText(r), OutcomeText(results[0])) << "every caller gets the one outcome";
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
  EXPECT_EQ(OutcomeText(again), OutcomeText(first));
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
  EXPECT_NE(OutcomeText(reused), OutcomeText(first));
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

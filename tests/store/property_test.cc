// Property test: thousands of random commands (seeded, reproducible) over many tokens and
// accounts; afterwards the inline projections equal a rebuild from the ledger, the hash chain
// verifies, and stream versions have no gaps. Set TOKENLEDGER_SEED to reproduce a failure.
#include <cstdlib>
#include <map>
#include <random>

#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

constexpr int kCommands = 10'000;
constexpr int kAccounts = 12;
constexpr int kInFlight = 64;

class PropertyTest : public StoreTest {};

std::uint64_t Seed() {
  const char* env = std::getenv("TOKENLEDGER_SEED");
  return env ? std::strtoull(env, nullptr, 10) : 20261128;
}

TEST_F(PropertyTest, RandomCommandsKeepEveryInvariant) {
  const std::uint64_t seed = Seed();
  SCOPED_TRACE("TOKENLEDGER_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::uint8_t counter = 0;
  std::uint64_t id_clock = 1'700'000'000'000;
  IdGenerator ids([&] { return ++id_clock; },
                  [&](std::uint8_t* out, std::size_t n) {
                    for (std::size_t i = 0; i < n; ++i)
                      out[i] = static_cast<std::uint8_t>(rng() ^ counter++);
                  });
  std::vector<Id> accounts;
  for (int i = 0; i < kAccounts; ++i) accounts.push_back(ids.Generate());
  Open();

  std::vector<Id> tokens;                 // every token ever created
  std::map<Id, core::TokenStatus> model;  // visible tokens, by the applied outcomes
  std::map<Id, Id> owner;
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  int applied = 0, rejected = 0, replayed = 0, conflicts = 0;

  for (int done = 0; done < kCommands;) {
    std::vector<std::future<CommandResult>> batch;
    std::vector<core::Command> commands;
    for (int i = 0; i < kInFlight && done < kCommands; ++i, ++done) {
      const auto roll = pick(100);
      core::Command c;
      if (tokens.empty() || roll < 25) {
        core::CreateToken create{accounts[pick(accounts.size())]};
        if (pick(3) == 0) {
          create.scope = events::TokenScope::kEnvironment;
          create.environment_id = accounts[pick(accounts.size())];
        }
        if (pick(2) == 0)
          create.expires_at = now_.load() + static_cast<Micros>(1 + pick(1000)) * kMicrosPerDay;
        c = create;
      } else {
        const Id t = pick(20) == 0 ? ids.Generate() : tokens[pick(tokens.size())];
        if (roll < 40)
          c = core::SuspendToken{t};
        else if (roll < 55)
          c = core::ActivateToken{t};
        else if (roll < 70)
          c = core::RevokeToken{t};
        else if (roll < 85)
          c = core::DeleteToken{t};
        else
          c = core::RecordUse{t, now_.load() + static_cast<Micros>(pick(120)) * kMicrosPerSecond};
      }
      CommandRequest req;
      req.command = c;
      req.request_id = "prop-" + std::to_string(done);
      if (pick(5) == 0) {
        // A small key space per account, so replays and conflicts happen.
        const Id& account = accounts[pick(accounts.size())];
        req.idempotency = Idem(account, std::string("k").append(std::to_string(pick(40))),
                               std::to_string(c.index()) + std::to_string(pick(2)));
      }
      commands.push_back(c);
      batch.push_back(store_->Submit(std::move(req)));
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      CommandResult r = batch[i].get();
      ASSERT_NE(r.outcome, Outcome::kUnavailable) << r.rejection.message;
      ASSERT_NE(r.outcome, Outcome::kOverloaded);
      applied += r.outcome == Outcome::kApplied;
      rejected += r.outcome == Outcome::kRejected;
      replayed += r.outcome == Outcome::kReplayed;
      conflicts += r.outcome == Outcome::kKeyConflict;
      if (r.outcome != Outcome::kApplied || !r.after) continue;
      const auto& s = r.after->state;
      if (std::holds_alternative<core::CreateToken>(commands[i])) {
        tokens.push_back(s.id);
        owner[s.id] = s.account_id;
      }
      if (s.Visible())
        model[s.id] = s.status;
      else
        model.erase(s.id);
    }
    now_ += static_cast<Micros>(pick(90)) * kMicrosPerSecond;
  }
  EXPECT_GT(applied, kCommands / 3);
  EXPECT_GT(rejected, 100);
  EXPECT_GT(replayed + conflicts, 50);

  // Reads agree with the outcomes the writers were given.
  for (const Id& t : tokens) {
    auto row = store_->GetToken(t);
    ASSERT_TRUE(row);
    auto it = model.find(t);
    ASSERT_EQ(row->has_value(), it != model.end()) << t.ToString();
    if (it != model.end()) {
      EXPECT_EQ((*row)->state.status, it->second);
    }
  }

  // Stream versions have no gaps.
  for (const Id& t : tokens) {
    auto page = store_->ListEvents(t, 0, 100000);
    ASSERT_TRUE(page);
    ASSERT_EQ(page->events.size(), page->item_count);
    for (std::size_t v = 0; v < page->events.size(); ++v)
      ASSERT_EQ(page->events[v].stream_version, v + 1);
  }

  // The chain verifies and the inline projections equal a fresh fold.
  auto report = store_->Verify();
  ASSERT_TRUE(report) << report.error().message;
  for (const auto& f : report->findings)
    ADD_FAILURE() << f.kind << " seq " << f.seq << ": " << f.message;
  EXPECT_EQ(report->events_checked, store_->LastSeq());
  EXPECT_EQ(report->tokens_checked, model.size());

  // Rebuilding from the ledger alone produces the same rows and list pages.
  auto snapshot = [&] {
    std::vector<std::optional<projections::TokenRow>> rows;
    for (const Id& t : tokens) rows.push_back(*store_->GetToken(t));
    std::vector<projections::TokenRow> lists;
    for (const Id& a : accounts) {
      for (auto field : projections::kAllSortFields) {
        auto page = store_->ListTokens({.account_id = a, .sort = field, .page_size = 100000});
        lists.insert(lists.end(), page->rows.begin(), page->rows.end());
      }
    }
    return std::make_pair(rows, lists);
  };
  const auto before = snapshot();
  ASSERT_TRUE(store_->RebuildProjections());
  EXPECT_TRUE(before == snapshot());
  report = store_->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

}  // namespace
}  // namespace tokenledger::store::testing

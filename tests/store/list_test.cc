// Listing: every sort field and direction, ties, filters, pagination edges, snapshots.
#include <algorithm>
#include <limits>
#include <set>

#include "src/store/store_impl.h"
#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

using projections::SortField;

constexpr std::int64_t kNull = std::numeric_limits<std::int64_t>::min();  // null sorts first

class ListTest : public StoreTest {
 protected:
  void SetUp() override {
    Open();
    // 14 visible tokens of account_ with varied fields, ties on every time field, two
    // environments, two introspection tokens; plus a deleted one and another account's
    // tokens, which never show.
    for (int i = 0; i < 14; ++i) {
      if (i % 3 != 0) now_ += kMicrosPerSecond;  // groups of equal inserted_at
      core::CreateToken c{account_};
      if (i % 4 == 1) {
        c.scope = events::TokenScope::kEnvironment;
        c.environment_id = i % 8 == 1 ? env1_ : env2_;
      } else if (i % 8 == 3) {
        c.scope = events::TokenScope::kIntrospection;
      }
      c.expires_at = kStart + (30 + i % 5) * kMicrosPerDay;
      auto r = Run(c);
      ASSERT_EQ(r.outcome, Outcome::kApplied);
      tokens_.push_back(r.after->state.id);
    }
    for (int i = 0; i < 14; ++i) {
      const Id t = tokens_[i];
      if (i % 5 == 2) {
        ASSERT_EQ(Run(core::SuspendToken{t}).outcome, Outcome::kApplied);
      }
      if (i % 5 == 4) {
        ASSERT_EQ(Run(core::RevokeToken{t}).outcome, Outcome::kApplied);
      }
      if (i % 2 == 0) {
        ASSERT_EQ(Run(core::RecordUse{t, kStart + (i % 6) * kMicrosPerSecond}).outcome,
                  Outcome::kApplied);
      }
      if (i % 7 == 0) now_ += kMicrosPerSecond;
    }
    const Id gone = Create(account_);
    ASSERT_EQ(Run(core::RevokeToken{gone}).outcome, Outcome::kApplied);
    ASSERT_EQ(Run(core::DeleteToken{gone}).outcome, Outcome::kApplied);
    Create(other_account_);
    Create(other_account_);
  }

  std::vector<projections::TokenRow> Expected(SortField field, bool desc) {
    std::vector<projections::TokenRow> rows;
    for (const Id& t : tokens_) rows.push_back(Row(t));
    auto key = [field](const projections::TokenRow& r) -> std::pair<std::int64_t, Id> {
      const auto& s = r.state;
      switch (field) {
        case SortField::kInsertedAt:
          return {s.inserted_at, s.id};
        case SortField::kId:
          return {0, s.id};
        case SortField::kStatus:
          return {static_cast<int>(s.status), s.id};
        case SortField::kExpiresAt:
          return {s.expires_at, s.id};
        case SortField::kLastUsedAt:
          return {s.last_used_at.value_or(kNull), s.id};
        case SortField::kUpdatedAt:
          return {s.updated_at, s.id};
      }
      return {0, s.id};
    };
    std::sort(rows.begin(), rows.end(),
              [&](const auto& a, const auto& b) { return key(a) < key(b); });
    if (desc) std::reverse(rows.begin(), rows.end());
    return rows;
  }

  ListPage Page(ListQuery q) {
    auto page = store_->ListTokens(q);
    EXPECT_TRUE(page) << page.error().message;
    return page ? *page : ListPage{};
  }

  std::vector<projections::TokenRow> All(ListQuery q, std::uint32_t page_size) {
    q.page_size = page_size;
    std::vector<projections::TokenRow> all;
    for (q.offset = 0;; q.offset += page_size) {
      ListPage page = Page(q);
      all.insert(all.end(), page.rows.begin(), page.rows.end());
      if (page.rows.size() < page_size) break;
    }
    return all;
  }

  const Id account_ = ids_.Generate();
  const Id other_account_ = ids_.Generate();
  const Id env1_ = ids_.Generate();
  const Id env2_ = ids_.Generate();
  std::vector<Id> tokens_;
};

TEST_F(ListTest, EverySortFieldAndDirectionWithTiesBrokenById) {
  for (SortField field : projections::kAllSortFields) {
    for (bool desc : {false, true}) {
      SCOPED_TRACE(std::string(projections::SortFieldName(field)) + (desc ? " desc" : " asc"));
      const auto expected = Expected(field, desc);
      for (std::uint32_t page_size : {1u, 3u, 100u}) {
        ListQuery q{.account_id = account_, .sort = field, .descending = desc};
        EXPECT_EQ(All(q, page_size), expected) << "page_size " << page_size;
      }
    }
  }
}

TEST_F(ListTest, PaginationEdges) {
  ListQuery q{.account_id = account_, .page_size = 5};
  ListPage first = Page(q);
  EXPECT_EQ(first.item_count, 14u);
  EXPECT_EQ(first.rows.size(), 5u);
  q.offset = 10;
  ListPage last = Page(q);
  EXPECT_EQ(last.rows.size(), 4u) << "last page is partial";
  EXPECT_EQ(last.item_count, 14u);
  q.offset = 14;
  EXPECT_TRUE(Page(q).rows.empty()) << "offset at the end";
  q.offset = 1000;
  ListPage past = Page(q);
  EXPECT_TRUE(past.rows.empty()) << "offset past the end";
  EXPECT_EQ(past.item_count, 14u);
  q.offset = 13;
  q.page_size = 100;
  EXPECT_EQ(Page(q).rows.size(), 1u);

  ListPage empty = Page(ListQuery{.account_id = ids_.Generate()});
  EXPECT_EQ(empty.item_count, 0u);
  EXPECT_TRUE(empty.rows.empty());
}

TEST_F(ListTest, Filters) {
  auto count = [&](ListQuery q) { return Page(q).item_count; };
  const auto rows = Expected(SortField::kId, false);
  auto expect = [&](auto pred) {
    return static_cast<std::uint64_t>(std::count_if(rows.begin(), rows.end(), pred));
  };
  EXPECT_EQ(count({.account_id = account_, .status = core::TokenStatus::kSuspended}),
            expect([](auto& r) { return r.state.status == core::TokenStatus::kSuspended; }));
  EXPECT_EQ(count({.account_id = account_, .status = core::TokenStatus::kRevoked}),
            expect([](auto& r) { return r.state.status == core::TokenStatus::kRevoked; }));
  EXPECT_EQ(count({.account_id = account_, .scope = events::TokenScope::kEnvironment}), 4u);
  EXPECT_EQ(count({.account_id = account_, .scope = events::TokenScope::kAccount}), 8u);
  EXPECT_EQ(count({.account_id = account_, .scope = events::TokenScope::kIntrospection}), 2u);
  for (const auto& r : Page({.account_id = account_, .scope = events::TokenScope::kAccount}).rows)
    EXPECT_EQ(r.state.scope, events::TokenScope::kAccount);
  EXPECT_EQ(count({.account_id = account_, .environment_id = env1_}), 2u);
  EXPECT_EQ(count({.account_id = account_, .environment_id = env2_}), 2u);
  ListPage env_page = Page({.account_id = account_, .environment_id = env1_});
  for (const auto& r : env_page.rows) EXPECT_EQ(r.state.environment_id, env1_);
  EXPECT_EQ(
      count(
          {.account_id = account_, .scope = events::TokenScope::kAccount, .environment_id = env1_}),
      0u);
  EXPECT_EQ(count({.account_id = other_account_}), 2u);
}

// A batch moves each counter once, by the sum of its commands' changes: commands submitted
// together (they share batches) whose changes cancel out or add up leave every count equal to
// the number of tokens in that state, and the verifier finds the counters right.
TEST_F(ListTest, CountsOfChangesDecidedTogetherAddUp) {
  auto submit = [&](core::Command c) {
    CommandRequest req;
    req.command = std::move(c);
    req.request_id = "req-together";
    return store_->Submit(std::move(req));
  };
  std::vector<std::future<CommandResult>> pending;
  for (int round = 0; round < 25; ++round) {
    for (const Id& t : tokens_) {
      pending.push_back(submit(core::SuspendToken{t}));  // revoked ones are refused
      if (round % 2 == 0) pending.push_back(submit(core::ActivateToken{t}));
    }
    if (round % 5 == 0) pending.push_back(submit(core::CreateToken{account_}));
  }
  int applied = 0;
  for (auto& f : pending) applied += f.get().outcome == Outcome::kApplied;
  EXPECT_GT(applied, 100);
  const auto rows = Expected(SortField::kId, false);  // tokens_: the 5 created are not in it
  for (auto status :
       {core::TokenStatus::kActive, core::TokenStatus::kSuspended, core::TokenStatus::kRevoked}) {
    const auto listed = Page({.account_id = account_, .status = status, .page_size = 1000});
    const auto in_status = static_cast<std::uint64_t>(std::count_if(
        rows.begin(), rows.end(), [&](const auto& r) { return r.state.status == status; }));
    EXPECT_EQ(listed.item_count, listed.rows.size()) << static_cast<int>(status);
    EXPECT_EQ(listed.item_count, in_status + (status == core::TokenStatus::kActive ? 5 : 0))
        << static_cast<int>(status);
  }
  EXPECT_EQ(Page({.account_id = account_}).item_count, tokens_.size() + 5);
  auto report = store_->Verify();
  ASSERT_TRUE(report) << report.error().message;
  for (const auto& f : report->findings) ADD_FAILURE() << f.kind << ": " << f.message;
}

// A batch's list index changes: its entries in key order, two changes of one key in the order
// they were made; then one merge operand per counter that moved, in key order.
TEST(ListIndexChangesTest, EntriesInKeyOrderThenOneOperandPerCounterThatMoved) {
  ListIndexChanges changes;  // nullptr below: the default family of a bare WriteBatch
  changes.Put(nullptr, "b", "1");
  changes.Count(nullptr, "nb", 1);
  changes.Delete(nullptr, "c");
  changes.Delete(nullptr, "a");
  changes.Count(nullptr, "na", 1);
  changes.Put(nullptr, "a", "2");  // the same key again: after its delete
  changes.Count(nullptr, "nb", 1);
  changes.Delete(nullptr, "b");  // after its put
  changes.Count(nullptr, "nc", 1);
  changes.Count(nullptr, "nc", -1);
  changes.Count(nullptr, "na", -3);
  struct Seen : rocksdb::WriteBatch::Handler {
    std::vector<std::string> ops;
    rocksdb::Status PutCF(std::uint32_t, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      ops.push_back("put " + key.ToString() + "=" + value.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(std::uint32_t, const rocksdb::Slice& key) override {
      ops.push_back("delete " + key.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status MergeCF(std::uint32_t, const rocksdb::Slice& key,
                            const rocksdb::Slice& value) override {
      ops.push_back(
          "merge " + key.ToString() + " " +
          std::to_string(projections::DecodeListCount(value.ToStringView()).value_or(999)));
      return rocksdb::Status::OK();
    }
  };
  rocksdb::WriteBatch batch;
  changes.WriteTo(batch);
  Seen seen;
  ASSERT_TRUE(batch.Iterate(&seen).ok());
  const std::vector<std::string> expected{"delete a", "put a=2",     "put b=1",   "delete b",
                                          "delete c", "merge na -2", "merge nb 2"};
  EXPECT_EQ(seen.ops, expected);  // "nc" moved by 0: no operand
  rocksdb::WriteBatch again;
  changes.WriteTo(again);
  EXPECT_EQ(again.Count(), 0u) << "WriteTo forgets what it wrote";
}

// Every filter combination, sort field and direction, against a brute force over the rows:
// the same tokens in the same order, and item_count from the counters equal to their number.
TEST_F(ListTest, EveryFilterSortAndDirectionMatchesTheBruteForce) {
  using S = core::TokenStatus;
  using C = events::TokenScope;
  for (std::optional<S> status : {std::optional<S>(), std::optional<S>(S::kActive),
                                  std::optional<S>(S::kSuspended), std::optional<S>(S::kRevoked)}) {
    for (std::optional<C> scope :
         {std::optional<C>(), std::optional<C>(C::kAccount), std::optional<C>(C::kEnvironment),
          std::optional<C>(C::kIntrospection)}) {
      for (std::optional<Id> env : {std::optional<Id>(), std::optional<Id>(env1_)}) {
        for (SortField field : projections::kAllSortFields) {
          for (bool desc : {false, true}) {
            SCOPED_TRACE(::testing::Message()
                         << "status " << (status ? int(*status) : 0) << " scope "
                         << (scope ? int(*scope) : 0) << " env " << bool(env) << " sort "
                         << projections::SortFieldName(field) << (desc ? " desc" : " asc"));
            std::vector<projections::TokenRow> expected;
            for (const auto& r : Expected(field, desc)) {
              const auto& st = r.state;
              if ((!status || st.status == *status) && (!scope || st.scope == *scope) &&
                  (!env || st.environment_id == env)) {
                expected.push_back(r);
              }
            }
            ListQuery q{.account_id = account_,
                        .status = status,
                        .scope = scope,
                        .environment_id = env,
                        .sort = field,
                        .descending = desc};
            EXPECT_EQ(All(q, 3), expected);
            EXPECT_EQ(Page(q).item_count, expected.size());
          }
        }
      }
    }
  }
}

// The fixture's ledger (introspection tokens included, which only the status and scope
// partitions hold) verifies clean, and a rebuild gives the same lists and counts.
TEST_F(ListTest, VerifyAndRebuildAgreeWithTheWrittenIndex) {
  auto report = store_->Verify();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->findings.empty()) << report->findings[0].message;
  using C = events::TokenScope;
  std::vector<ListQuery> queries;
  for (std::optional<C> scope :
       {std::optional<C>(), std::optional<C>(C::kAccount), std::optional<C>(C::kEnvironment),
        std::optional<C>(C::kIntrospection)}) {
    queries.push_back({.account_id = account_, .scope = scope});
    queries.push_back(
        {.account_id = account_, .status = core::TokenStatus::kActive, .scope = scope});
  }
  std::vector<std::pair<std::vector<projections::TokenRow>, std::uint64_t>> before;
  for (const auto& q : queries) before.emplace_back(All(q, 4), Page(q).item_count);
  Close();
  Open(OpenMode::kMaintenance);
  ASSERT_TRUE(store_->RebuildProjections());
  report = store_->Verify();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->findings.empty()) << report->findings[0].message;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    EXPECT_EQ(All(queries[i], 4), before[i].first) << i;
    EXPECT_EQ(Page(queries[i]).item_count, before[i].second) << i;
  }
}

// With a snapshot, item_count counts the matching tokens created at or before it, in their
// current state: tokens created later are subtracted, also when created in the same
// microsecond as older ones.
TEST_F(ListTest, SnapshotCountsWithFilters) {
  auto count = [&](ListQuery q) { return Page(q).item_count; };
  ListQuery active{.account_id = account_, .status = core::TokenStatus::kActive};
  ListQuery env{.account_id = account_, .environment_id = env1_};
  const std::uint64_t active_before = count(active), env_before = count(env);
  active.snapshot_seq = env.snapshot_seq = Page(active).snapshot_seq;
  for (int i = 0; i < 5; ++i) {  // the clock does not move: same inserted_at as the last
    core::CreateToken c{account_};
    if (i % 2) {
      c.scope = events::TokenScope::kEnvironment;
      c.environment_id = env1_;
    }
    ASSERT_EQ(Run(c).outcome, Outcome::kApplied);
  }
  EXPECT_EQ(count(active), active_before);
  EXPECT_EQ(count(env), env_before);
  // A token existing at the snapshot that changes status moves between the counts.
  ASSERT_EQ(Run(core::SuspendToken{tokens_[0]}).outcome, Outcome::kApplied);
  EXPECT_EQ(count(active), active_before - 1);
  active.snapshot_seq.reset();
  EXPECT_EQ(count(active), active_before - 1 + 5);
}

TEST_F(ListTest, SnapshotPagingSeesEachExistingTokenExactlyOnce) {
  for (SortField field : {SortField::kInsertedAt, SortField::kId, SortField::kExpiresAt}) {
    for (bool desc : {true, false}) {
      std::set<Id> existing;
      for (const auto& r : All({.account_id = account_}, 100)) existing.insert(r.state.id);
      ListQuery q{.account_id = account_, .sort = field, .descending = desc, .page_size = 4};
      ListPage page = Page(q);
      q.snapshot_seq = page.snapshot_seq;
      std::multiset<Id> seen;
      for (const auto& r : page.rows) seen.insert(r.state.id);
      while (page.rows.size() == q.page_size) {
        // New tokens arrive between pages, sorting before and after the cursor.
        core::CreateToken c{account_};
        c.expires_at = kStart + 31 * kMicrosPerDay + 1;
        ASSERT_EQ(Run(c).outcome, Outcome::kApplied);
        q.offset += q.page_size;
        page = Page(q);
        EXPECT_EQ(page.item_count, existing.size());
        for (const auto& r : page.rows) seen.insert(r.state.id);
      }
      EXPECT_EQ(std::set<Id>(seen.begin(), seen.end()), existing);
      EXPECT_EQ(seen.size(), existing.size()) << "no token twice";
    }
  }
}

}  // namespace
}  // namespace tokenledger::store::testing

#include "projections/list_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace tokenledger::projections {
namespace {

const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

TokenRow Row(std::uint8_t n, Micros inserted, std::optional<Micros> used,
             core::TokenStatus status) {
  TokenRow r;
  std::array<std::uint8_t, 10> random{};
  random[9] = n;
  r.state.exists = true;
  r.state.id = Id::FromParts(1'700'000'000'000, kAccount.Partition(), random);
  r.state.account_id = kAccount;
  r.state.status = status;
  r.state.inserted_at = inserted;
  r.state.updated_at = inserted;
  r.state.expires_at = inserted + 1000;
  r.state.last_used_at = used;
  r.created_seq = n;
  return r;
}

// What orders `r` in an unfiltered list by `f`, as the store reads it: its key in one of the
// status partitions' ranges, compared whole when they are concatenated, else after the prefix.
std::string SortKeyFor(const TokenRow& r, SortField f) {
  const ListPlan plan = PlanList(kAccount, {});
  for (const std::string& prefix : ListRangePrefixes(plan, f)) {
    for (const auto& e : ListIndexEntrySet(r)) {
      if (!e.Key().starts_with(prefix)) continue;
      return std::string(ListRangesConcatenate(plan, f) ? e.Key() : e.Key().substr(prefix.size()));
    }
  }
  return {};
}

TEST(ListIndexTest, EntriesPerPartitionUnderTheAccountPrefix) {
  const TokenRow r = Row(1, 100, std::nullopt, core::TokenStatus::kActive);
  const ListIndexEntrySet entries(r);
  // by status (5: `status` is `id` there) + by environment (6).
  ASSERT_EQ(entries.size(), 11u);
  for (const auto& e : entries) {
    EXPECT_TRUE(e.Key().starts_with(kAccount.Bytes()));
    EXPECT_FALSE(IsListCountKey(e.Key()));
    auto v = DecodeListIndexEntry(e.Key(), e.Value());
    ASSERT_TRUE(v);
    EXPECT_EQ(v->token_id, r.state.id);
    EXPECT_EQ(v->created_seq, 1u);
    EXPECT_FALSE(v->environment_id);
  }
  TokenRow env = r;
  env.state.scope = events::TokenScope::kEnvironment;
  env.state.environment_id = kEnv;
  EXPECT_EQ(ListIndexEntrySet(env).size(), 17u) << "plus the environment-scope partition";
}

// The range prefix (the memtable's insert hints): what ListRangePrefixes reads, the key up to
// its sort value; nothing for counters.
TEST(ListIndexTest, AnEntrysRangeIsWhatAListOfItsPartitionAndFieldReads) {
  TokenRow r = Row(3, 100, 200, core::TokenStatus::kSuspended);
  r.state.scope = events::TokenScope::kEnvironment;
  r.state.environment_id = kEnv;
  std::set<std::string> ranges;
  for (const auto& e : ListIndexEntrySet(r)) {
    const std::size_t n = ListRangeLength(e.Key());
    ASSERT_GT(n, 0u);
    const std::string range(e.Key().substr(0, n));
    const auto field = static_cast<SortField>(range.back());
    bool listed = false;
    for (const ListFilter& f :
         {ListFilter{r.state.status, {}, {}}, ListFilter{{}, {}, r.state.environment_id},
          ListFilter{{}, r.state.scope, {}}}) {
      for (const std::string& prefix : ListRangePrefixes(PlanList(kAccount, f), field))
        listed = listed || prefix == range;
    }
    EXPECT_TRUE(listed) << "an entry's range is one a list reads";
    ranges.insert(range);
  }
  EXPECT_EQ(ranges.size(), ListIndexEntrySet(r).size()) << "one entry per range";
  for (const std::string& counter : ListCountKeys(r)) EXPECT_EQ(ListRangeLength(counter), 0u);
  EXPECT_EQ(ListRangeLength(kAccount.Bytes()), 0u);
  EXPECT_EQ(ListRangeLength(std::string(kAccount.Bytes()) + "s"), 0u) << "too short";
}

// The stored layout, byte for byte, written out by hand from the header's description: the
// entry set builds keys in fixed buffers, and a slip there would change what is on disk.
TEST(ListIndexTest, EntryBytesFollowTheDocumentedLayout) {
  TokenRow r = Row(7, 100, std::nullopt, core::TokenStatus::kSuspended);
  r.state.scope = events::TokenScope::kEnvironment;
  r.state.environment_id = kEnv;
  auto u64 = [](std::uint64_t v) {
    std::string out;
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
    return out;
  };
  const std::string account(kAccount.Bytes()), id(r.state.id.Bytes()), env(kEnv.Bytes());
  const std::string seq = u64(7);
  const std::string status(1, static_cast<char>(core::TokenStatus::kSuspended));
  const std::string scope(1, static_cast<char>(events::TokenScope::kEnvironment));
  const std::string inserted = u64(static_cast<std::uint64_t>(r.state.inserted_at) ^ (1ull << 63));
  const std::string expected[][2] = {
      {account + "s" + status + "\x01" + inserted + id, seq + scope + env},
      {account + "s" + status + "\x02" + id, seq + scope + env},
      {account + "e" + env + "\x03" + u64(2) + id, seq + scope},  // v4: scope in 'e' values
      {account + "c" + scope + "\x02" + id, seq},
  };
  const ListIndexEntrySet set(r);
  ASSERT_EQ(set.size(), 17u);
  for (const auto& e : set) EXPECT_NE(e.Key()[20], 'a') << "no all-tokens partition since v3";
  for (const auto& [key, value] : expected) {
    bool found = false;
    for (const auto& e : set) found |= e.Key() == key && e.Value() == value;
    EXPECT_TRUE(found) << "no entry with key of " << key.size() << " bytes";
  }
}

TEST(ListIndexTest, KeysSortLikeTheirValuesThenById) {
  // Negative, zero and positive times; ties broken by id.
  std::vector<TokenRow> rows = {Row(3, 5, 7, core::TokenStatus::kRevoked),
                                Row(1, -5, std::nullopt, core::TokenStatus::kActive),
                                Row(2, 5, -3, core::TokenStatus::kSuspended),
                                Row(4, 0, 0, core::TokenStatus::kActive)};
  auto order = [&](SortField f) {
    std::vector<std::string> keys;
    for (auto& r : rows) keys.push_back(SortKeyFor(r, f));
    std::vector<std::size_t> idx(rows.size());
    for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](auto a, auto b) { return keys[a] < keys[b]; });
    std::vector<int> ns;
    for (auto i : idx) ns.push_back(rows[i].state.id.Raw()[19]);
    return ns;
  };
  EXPECT_EQ(order(SortField::kInsertedAt), (std::vector<int>{1, 4, 2, 3}));
  EXPECT_EQ(order(SortField::kId), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(order(SortField::kStatus),
            (std::vector<int>{1, 4, 2, 3}));  // active, suspended, revoked
  EXPECT_EQ(order(SortField::kLastUsedAt), (std::vector<int>{1, 2, 4, 3}));  // null first
}

TEST(ListIndexTest, StatusPartitionCarriesTheFixedFilterAttributes) {
  TokenRow r = Row(9, 1, std::nullopt, core::TokenStatus::kSuspended);
  r.state.scope = events::TokenScope::kEnvironment;
  r.state.environment_id = kEnv;
  const ListPlan plan = PlanList(kAccount, {.status = core::TokenStatus::kSuspended});
  ASSERT_EQ(ListRangePrefixes(plan, SortField::kExpiresAt).size(), 1u);
  const std::string prefix = ListRangePrefixes(plan, SortField::kExpiresAt)[0];
  int found = 0;
  for (const auto& e : ListIndexEntrySet(r)) {
    if (!e.Key().starts_with(prefix)) continue;
    ++found;
    auto v = DecodeListIndexEntry(e.Key(), e.Value());
    ASSERT_TRUE(v);
    EXPECT_EQ(v->scope, events::TokenScope::kEnvironment);
    EXPECT_EQ(v->environment_id, kEnv);
    EXPECT_FALSE(DecodeListIndexEntry(e.Key(), "short"));
  }
  EXPECT_EQ(found, 1);
}

// Every filter combination: the plan's partition holds exactly the matching tokens (after
// Matches), and its counter is one each matching token adds to.
TEST(ListIndexTest, PlansFindExactlyTheMatchesAndTheirCounter) {
  std::vector<TokenRow> rows;
  std::uint8_t n = 0;
  for (auto status :
       {core::TokenStatus::kActive, core::TokenStatus::kSuspended, core::TokenStatus::kRevoked}) {
    for (int kind = 0; kind < 6; ++kind) {
      ++n;
      TokenRow r = Row(n, n, std::nullopt, status);
      if (kind == 1 || kind == 2) {
        r.state.scope = events::TokenScope::kEnvironment;
        r.state.environment_id = kind == 1 ? kEnv : kAccount;  // two environments
      } else if (kind == 3) {
        r.state.scope = events::TokenScope::kIntrospection;  // no environment, not account
      } else if (kind == 4 || kind == 5) {  // agents, sharing the environments above
        r.state.scope = events::TokenScope::kAgentDeployment;
        r.state.environment_id = kind == 4 ? kEnv : kAccount;
        r.state.agent_id = kAccount;
      }
      rows.push_back(r);
    }
  }
  using S = core::TokenStatus;
  using C = events::TokenScope;
  for (std::optional<S> status :
       {std::optional<S>(), std::optional<S>(S::kActive), std::optional<S>(S::kRevoked)}) {
    for (std::optional<C> scope :
         {std::optional<C>(), std::optional<C>(C::kAccount), std::optional<C>(C::kEnvironment),
          std::optional<C>(C::kIntrospection), std::optional<C>(C::kAgentDeployment)}) {
      for (std::optional<Id> env : {std::optional<Id>(), std::optional<Id>(kEnv)}) {
        const ListFilter filter{status, scope, env};
        const ListPlan plan = PlanList(kAccount, filter);
        std::set<Id> expected, found;
        std::int64_t counted = 0;
        for (const auto& r : rows) {
          const auto& s = r.state;
          if ((!status || s.status == *status) && (!scope || s.scope == *scope) &&
              (!env || s.environment_id == env)) {
            expected.insert(s.id);
          }
          for (const auto& k : ListCountKeys(r)) counted += k == plan.count_key;
          if (plan.empty) continue;
          for (const std::string& prefix : ListRangePrefixes(plan, SortField::kUpdatedAt)) {
            for (const auto& e : ListIndexEntrySet(r)) {
              if (!e.Key().starts_with(prefix)) continue;
              auto v = DecodeListIndexEntry(e.Key(), e.Value());
              ASSERT_TRUE(v);
              if (Matches(plan, *v)) {
                EXPECT_TRUE(found.insert(v->token_id).second)
                    << "a token in two of the plan's partitions";
              }
            }
          }
        }
        SCOPED_TRACE(::testing::Message() << "status " << (status ? int(*status) : 0) << " scope "
                                          << (scope ? int(*scope) : 0) << " env " << bool(env));
        EXPECT_EQ(found, expected);
        if (!plan.empty) {
          EXPECT_EQ(counted, static_cast<std::int64_t>(expected.size()));
        }
        EXPECT_EQ(plan.empty,
                  expected.empty() && scope && !events::ScopeHasEnvironment(*scope) && env);
      }
    }
  }
}

// ListRecount counts runs of one subject at once: over the entries of many tokens of every
// kind in key order (as verify and rebuild read them), it gives what ListCountKeys gives each
// row, summed, and a Flush into another map starts that map afresh.
TEST(ListIndexTest, ARecountInKeyOrderSumsEveryRowsCounters) {
  const Id other_env = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h2");
  std::vector<std::pair<std::string, std::string>> entries;
  ListRecount::Counts want;
  for (std::uint8_t n = 1; n <= 60; ++n) {
    TokenRow r = Row(n, 100 + n, std::nullopt,
                     static_cast<core::TokenStatus>(1 + n % 3));  // runs broken by status too
    if (n % 4 == 1) {
      r.state.scope = events::TokenScope::kEnvironment;
      r.state.environment_id = n % 8 == 1 ? kEnv : other_env;
    } else if (n % 4 == 2) {
      r.state.scope = events::TokenScope::kIntrospection;
    } else if (n % 4 == 3) {
      r.state.scope = events::TokenScope::kAgentDeployment;
      r.state.environment_id = kEnv;
      r.state.agent_id = kAccount;
    }
    for (const auto& e : ListIndexEntrySet(r)) entries.emplace_back(e.Key(), e.Value());
    for (const auto& k : ListCountKeys(r)) ++want[k];
  }
  std::sort(entries.begin(), entries.end());
  ListRecount recount;
  ListRecount::Counts got, elsewhere;
  for (const auto& [key, value] : entries) recount.Add(key, value, got);
  recount.Flush(got);
  EXPECT_EQ(got, want);
  recount.Flush(elsewhere);
  EXPECT_TRUE(elsewhere.empty()) << "a flush empties the run";
  std::size_t counting = 0;
  for (const auto& [key, value] : entries) counting += ListCountRowOfEntry(key, value).has_value();
  EXPECT_EQ(counting, 60u) << "one counting entry per token";
}

// Verify and rebuild recount the counters from the stored entries alone: for every kind of
// token, exactly one of its entries stands for exactly the counters it adds one to.
TEST(ListIndexTest, TheCountersOfEveryKindOfTokenCanBeRecountedFromItsEntries) {
  for (int kind = 0; kind < 4; ++kind) {
    for (auto status :
         {core::TokenStatus::kActive, core::TokenStatus::kSuspended, core::TokenStatus::kRevoked}) {
      TokenRow r = Row(1, 100, 150, status);
      if (kind == 1) {
        r.state.scope = events::TokenScope::kEnvironment;
        r.state.environment_id = kEnv;
      } else if (kind == 2) {
        r.state.scope = events::TokenScope::kIntrospection;
      } else if (kind == 3) {
        r.state.scope = events::TokenScope::kAgentDeployment;
        r.state.environment_id = kEnv;
        r.state.agent_id = kAccount;
      }
      std::multiset<std::string> recounted;
      for (const auto& e : ListIndexEntrySet(r)) {
        if (auto counted = ListCountRowOfEntry(e.Key(), e.Value())) {
          for (auto& k : ListCountKeys(*counted)) recounted.insert(k);
        }
      }
      const auto keys = ListCountKeys(r);
      EXPECT_EQ(recounted, std::multiset<std::string>(keys.begin(), keys.end()))
          << "kind " << kind << " status " << int(status);
    }
  }
  TokenRow introspection = Row(1, 100, std::nullopt, core::TokenStatus::kActive);
  introspection.state.scope = events::TokenScope::kIntrospection;
  EXPECT_EQ(ListIndexEntrySet(introspection).size(), 11u) << "by status (5) + by scope (6)";
  EXPECT_EQ(ListCountKeys(introspection).size(), 4u) << "no environment counters";
  TokenRow agent = Row(1, 100, std::nullopt, core::TokenStatus::kActive);
  agent.state.scope = events::TokenScope::kAgentDeployment;
  agent.state.environment_id = kEnv;
  EXPECT_EQ(ListIndexEntrySet(agent).size(), 17u) << "by status, environment and scope";
  EXPECT_EQ(ListCountKeys(agent).size(), 8u) << "scope + environment counters too";
  // An 'e' entry whose scope does not fit its environment is malformed.
  for (const auto& e : ListIndexEntrySet(agent)) {
    if (e.Key()[20] != 'e') continue;
    std::string value(e.Value());
    value.back() = static_cast<char>(events::TokenScope::kAccount);  // account, nonzero env
    EXPECT_FALSE(DecodeListIndexEntry(e.Key(), value));
    value.back() = static_cast<char>(events::TokenScope::kIntrospection);
    EXPECT_FALSE(DecodeListIndexEntry(e.Key(), value));
    EXPECT_FALSE(DecodeListIndexEntry(e.Key(), value.substr(0, 8))) << "v3's 8-byte value";
  }
}

TEST(ListIndexTest, CountsRoundTrip) {
  for (std::int64_t n : {std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, std::int64_t{1} << 40})
    EXPECT_EQ(DecodeListCount(EncodeListCount(n)), n);
  EXPECT_FALSE(DecodeListCount("1234567"));
}

TEST(ListIndexTest, SortFieldNames) {
  for (SortField f : kAllSortFields) EXPECT_EQ(ParseSortField(SortFieldName(f)), f);
  EXPECT_FALSE(ParseSortField("name"));
}

}  // namespace
}  // namespace tokenledger::projections

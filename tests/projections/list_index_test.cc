#include "projections/list_index.h"

#include <gtest/gtest.h>

#include <algorithm>

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

std::string KeyFor(const TokenRow& r, SortField f) {
  for (auto& e : ListIndexEntries(r))
    if (e.key.compare(0, 21, ListIndexPrefix(kAccount, f)) == 0) return e.key;
  return {};
}

TEST(ListIndexTest, OneEntryPerSortFieldUnderTheAccountPrefix) {
  const TokenRow r = Row(1, 100, std::nullopt, core::TokenStatus::kActive);
  const auto entries = ListIndexEntries(r);
  ASSERT_EQ(entries.size(), std::size(kAllSortFields));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].key.compare(0, 21, ListIndexPrefix(kAccount, kAllSortFields[i])), 0);
    auto v = DecodeListIndexEntry(entries[i].key, entries[i].value);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->token_id, r.state.id);
    EXPECT_EQ(v->status, core::TokenStatus::kActive);
    EXPECT_EQ(v->created_seq, 1u);
    EXPECT_FALSE(v->environment_id);
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
    for (auto& r : rows) keys.push_back(KeyFor(r, f));
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

TEST(ListIndexTest, CarriesFilterAttributes) {
  TokenRow r = Row(9, 1, std::nullopt, core::TokenStatus::kSuspended);
  r.state.scope = events::TokenScope::kEnvironment;
  r.state.environment_id = kEnv;
  const auto e = ListIndexEntries(r)[0];
  auto v = DecodeListIndexEntry(e.key, e.value);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->scope, events::TokenScope::kEnvironment);
  EXPECT_EQ(v->environment_id, kEnv);
  EXPECT_EQ(v->status, core::TokenStatus::kSuspended);
  EXPECT_FALSE(DecodeListIndexEntry(e.key, "short"));
}

TEST(ListIndexTest, SortFieldNames) {
  for (SortField f : kAllSortFields) EXPECT_EQ(ParseSortField(SortFieldName(f)), f);
  EXPECT_FALSE(ParseSortField("name"));
}

}  // namespace
}  // namespace tokenledger::projections

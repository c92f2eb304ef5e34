#include "projections/token_details.h"

#include "projections/token_details_v1.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <limits>

namespace tokenledger::projections {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

events::EventEnvelope At(std::uint64_t seq, std::uint64_t version, Micros at, events::EventData d) {
  events::EventEnvelope e;
  e.seq = seq;
  e.stream = kToken;
  e.stream_version = version;
  e.at = at;
  e.data = std::move(d);
  return e;
}

TEST(TokenDetailsTest, FoldsEventsIntoARow) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(7, 1, 100,
                     events::TokenCreated{kAccount, kEnv, events::TokenScope::kEnvironment, 999,
                                          std::nullopt}));
  ASSERT_TRUE(row);
  EXPECT_EQ(row->created_seq, 7u);
  EXPECT_TRUE(row->state.Visible());
  ApplyEvent(row, At(9, 2, 200, events::TokenSuspended{}));
  EXPECT_EQ(row->created_seq, 7u);
  EXPECT_EQ(row->state.status, core::TokenStatus::kSuspended);
  EXPECT_EQ(row->state.updated_at, 200);
  EXPECT_EQ(row->state.version, 2u);
}

TEST(TokenDetailsTest, RowCodecRoundTrips) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(7, 1, 100,
                     events::TokenCreated{kAccount, kEnv, events::TokenScope::kEnvironment, 999,
                                          kAccount}));
  ApplyEvent(row, At(8, 2, 150, events::TokenUsed{140}));
  auto decoded = DecodeTokenRow(EncodeTokenRow(*row));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, *row);

  std::optional<TokenRow> plain;
  ApplyEvent(plain, At(1, 1, 100,
                       events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount,
                                            999, std::nullopt}));
  decoded = DecodeTokenRow(EncodeTokenRow(*plain));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, *plain);
}

TEST(TokenDetailsTest, RejectsOtherVersionsAndGarbage) {
  EXPECT_FALSE(DecodeTokenRow(""));
  EXPECT_FALSE(DecodeTokenRow("nope"));
  EXPECT_FALSE(DecodeTokenRow("{}"));
  std::optional<TokenRow> row;
  ApplyEvent(row, At(1, 1, 100,
                     events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount, 999,
                                          std::nullopt}));
  const std::string good = EncodeTokenRow(*row);
  ASSERT_TRUE(DecodeTokenRow(good));
  auto with = [&](std::size_t at, char c) {
    std::string bytes = good;
    bytes[at] = c;
    return bytes;
  };
  EXPECT_FALSE(DecodeTokenRow(with(0, 9))) << "another schema version";
  EXPECT_FALSE(DecodeTokenRow(with(1, static_cast<char>(0x80)))) << "an unknown field";
  EXPECT_FALSE(DecodeTokenRow(with(2, 0))) << "scope 0";
  EXPECT_FALSE(DecodeTokenRow(with(2, 5))) << "scope 5";
  EXPECT_FALSE(DecodeTokenRow(with(3, 0))) << "status 0";
  EXPECT_FALSE(DecodeTokenRow(with(3, 4))) << "status 4";
  // Every prefix is truncated, and a byte more is left over: never half-read.
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_FALSE(DecodeTokenRow(good.substr(0, n))) << n;
  EXPECT_FALSE(DecodeTokenRow(good + '\0'));
  // A field marked present but missing (the environment) is truncation too.
  EXPECT_FALSE(DecodeTokenRow(with(1, 1)));
  // A kid that is not UTF-8 (no event's JSON string holds one).
  TokenRow with_kid = *row;
  with_kid.state.signing_kid = "key\xad";
  EXPECT_FALSE(DecodeTokenRow(EncodeTokenRow(with_kid)));
  with_kid.state.signing_kid = "k\xc3\xa9y";
  EXPECT_TRUE(DecodeTokenRow(EncodeTokenRow(with_kid)));
  // A row as releases 1 to 3 wrote it (JSON) is refused too: it must be rebuilt.
  EXPECT_FALSE(DecodeTokenRow(v1::EncodeTokenRow(*row)));
  EXPECT_FALSE(DecodeTokenRow(DescribeTokenRow(*row)));
}

TEST(TokenDetailsTest, Version2RecordsStatusChangesAndRevocation) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(1, 1, 100,
                     events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount, 999,
                                          std::nullopt}));
  EXPECT_EQ(row->status_changed_at, 100);
  EXPECT_FALSE(row->revoked_at);
  ApplyEvent(row, At(2, 2, 150, events::TokenUsed{140}));
  EXPECT_EQ(row->status_changed_at, 100) << "a use is not a status change";
  ApplyEvent(row, At(3, 3, 200, events::TokenSuspended{}));
  EXPECT_EQ(row->status_changed_at, 200);
  ApplyEvent(row, At(4, 4, 300, events::TokenRevoked{}));
  EXPECT_EQ(row->status_changed_at, 300);
  EXPECT_EQ(row->revoked_at, 300);
  auto decoded = DecodeTokenRow(EncodeTokenRow(*row));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, *row);
}

// Every field survives, at its extremes too, and equal rows are equal bytes (verify compares
// bytes first): the encoding into a reused buffer is the same as a fresh one.
TEST(TokenDetailsTest, EveryFieldRoundTripsAtItsExtremes) {
  std::vector<TokenRow> rows;
  std::optional<TokenRow> row;
  ApplyEvent(row, At(7, 1, 100,
                     events::TokenCreated{kAccount, kEnv, events::TokenScope::kEnvironment, 999,
                                          kAccount}));
  rows.push_back(*row);
  ApplyEvent(row, At(8, 2, 150, events::TokenUsed{140}));
  ApplyEvent(row, At(9, 3, 160, events::TokenSuspended{}));
  rows.push_back(*row);
  ApplyEvent(row, At(10, 4, 170, events::TokenRevoked{}));
  rows.push_back(*row);
  TokenRow extreme = *row;
  extreme.state.expires_at = std::numeric_limits<Micros>::min();
  extreme.state.inserted_at = std::numeric_limits<Micros>::max();
  extreme.state.updated_at = -1;
  extreme.state.last_used_at = 0;
  extreme.state.version = std::numeric_limits<std::uint64_t>::max();
  extreme.created_seq = std::numeric_limits<std::uint64_t>::max();
  extreme.status_changed_at = std::numeric_limits<Micros>::min();
  extreme.revoked_at = std::numeric_limits<Micros>::max();
  rows.push_back(extreme);
  TokenRow agent = *row;
  agent.state.scope = events::TokenScope::kAgentDeployment;
  agent.state.agent_id = kAccount;
  agent.state.agent_deployment_id = agent.state.id;
  agent.state.signing_kid = std::string("k\"\\\x01\xc3\xa9\0", 7);
  rows.push_back(agent);
  TokenRow empty_kid = agent;
  empty_kid.state.signing_kid = "";
  rows.push_back(empty_kid);
  TokenRow plain;
  rows.push_back(plain);  // all ids zero, no optionals
  std::string reused = "left over";
  for (const TokenRow& r : rows) {
    EncodeTokenRowInto(r, reused);
    EXPECT_EQ(reused, EncodeTokenRow(r));
    auto decoded = DecodeTokenRow(reused);
    ASSERT_TRUE(decoded) << decoded.error().message;
    TokenRow expected = r;
    expected.state.exists = true;
    EXPECT_EQ(*decoded, expected) << DescribeTokenRow(r);
    EXPECT_EQ(EncodeTokenRow(*decoded), reused);
  }
  EXPECT_NE(EncodeTokenRow(agent), EncodeTokenRow(empty_kid)) << "an empty kid is not a null one";
  EXPECT_LT(EncodeTokenRow(rows[0]).size(), 150u) << "a row is ~100 bytes, not ~470 of JSON";
}

// What a verify finding shows of a row: JSON a person can read.
TEST(TokenDetailsTest, DescribeShowsTheFieldsAsJson) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(7, 1, 100,
                     events::TokenCreated{kAccount, kEnv, events::TokenScope::kEnvironment, 999,
                                          std::nullopt}));
  const boost::json::value v = boost::json::parse(DescribeTokenRow(*row));
  EXPECT_EQ(v.at("id").as_string(), kToken.ToString());
  EXPECT_EQ(v.at("environment_id").as_string(), kEnv.ToString());
  EXPECT_EQ(v.at("token_scope").as_string(), "environment");
  EXPECT_EQ(v.at("status").as_string(), "active");
  EXPECT_TRUE(v.at("revoked_at").is_null());
  EXPECT_EQ(v.at("created_seq").as_int64(), 7);
}

}  // namespace
}  // namespace tokenledger::projections

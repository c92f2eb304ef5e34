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
  EXPECT_FALSE(DecodeTokenRow("nope"));
  EXPECT_FALSE(DecodeTokenRow("{}"));
  std::optional<TokenRow> row;
  ApplyEvent(row, At(1, 1, 100,
                     events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount, 999,
                                          std::nullopt}));
  std::string bytes = EncodeTokenRow(*row);
  const std::string current = "\"v\":" + std::to_string(kTokenDetails.version);
  bytes.replace(bytes.find(current), current.size(), "\"v\":9");
  EXPECT_FALSE(DecodeTokenRow(bytes));
  // A row as release 1 wrote it is refused too: it must be rebuilt, never half-read.
  EXPECT_FALSE(DecodeTokenRow(v1::EncodeTokenRow(*row)));
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

// The encoding as it was first written, through Boost.JSON's DOM: the hand-written encoder
// must give exactly these bytes (rows already stored compare equal, and verify compares bytes).
std::string ReferenceEncoding(const TokenRow& row) {
  namespace json = boost::json;
  auto opt_id = [](const std::optional<Id>& id) {
    return id ? json::value(id->ToString()) : json::value(nullptr);
  };
  auto opt_micros = [](const std::optional<Micros>& t) {
    return t ? json::value(*t) : json::value(nullptr);
  };
  const core::TokenState& s = row.state;
  json::object o;
  o["v"] = kTokenDetails.version;
  o["id"] = s.id.ToString();
  o["account_id"] = s.account_id.ToString();
  o["environment_id"] = opt_id(s.environment_id);
  o["token_scope"] = events::ScopeName(s.scope);
  o["status"] = core::StatusName(s.status);
  o["created_by_admin_user_id"] = opt_id(s.created_by_admin_user_id);
  o["agent_id"] = opt_id(s.agent_id);
  o["agent_deployment_id"] = opt_id(s.agent_deployment_id);
  o["signing_kid"] = s.signing_kid ? json::value(*s.signing_kid) : json::value(nullptr);
  o["expires_at"] = s.expires_at;
  o["inserted_at"] = s.inserted_at;
  o["updated_at"] = s.updated_at;
  o["last_used_at"] = opt_micros(s.last_used_at);
  o["version"] = s.version;
  o["created_seq"] = row.created_seq;
  o["status_changed_at"] = row.status_changed_at;
  o["revoked_at"] = opt_micros(row.revoked_at);
  return json::serialize(o);
}

TEST(TokenDetailsTest, EncodingIsTheBoostJsonOne) {
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
  agent.state.signing_kid = "k\"\\\x01\xc3\xa9";  // escaped as json::serialize escapes
  rows.push_back(agent);
  TokenRow plain;
  rows.push_back(plain);  // all ids zero, no optionals
  std::string reused = "left over";
  for (const TokenRow& r : rows) {
    EXPECT_EQ(EncodeTokenRow(r), ReferenceEncoding(r));
    EncodeTokenRowInto(r, reused);
    EXPECT_EQ(reused, ReferenceEncoding(r));
    auto decoded = DecodeTokenRow(reused);
    ASSERT_TRUE(decoded) << decoded.error().message;
    TokenRow expected = r;
    expected.state.exists = true;
    EXPECT_EQ(*decoded, expected);
  }
}

}  // namespace
}  // namespace tokenledger::projections

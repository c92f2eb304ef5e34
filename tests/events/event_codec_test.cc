#include "events/event_codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

#include "events/hash_chain.h"

namespace tokenledger::events {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kAdmin = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

EventEnvelope Envelope(EventData data) {
  EventEnvelope e;
  e.seq = 42;
  e.stream = kToken;
  e.stream_version = 3;
  e.schema_version = CurrentSchemaVersion(TypeName(data));
  e.at = 1'704'067'200'123'456;
  e.actor = {kToken, kAdmin};
  e.request_id = "req-1";
  e.idempotency_key = "key \"quoted\" \\ /";
  e.data = std::move(data);
  e.prev_hash = Sha256("previous");
  return e;
}

std::vector<EventData> EveryType() {
  return {TokenCreated{kAccount, kEnv, TokenScope::kEnvironment, 1'735'689'600'000'000, kAdmin},
          TokenCreated{kAccount, std::nullopt, TokenScope::kAccount, 1'735'689'600'000'000,
                       std::nullopt},
          TokenSuspended{},
          TokenActivated{},
          TokenRevoked{},
          TokenDeleted{},
          TokenUsed{1'704'067'260'000'000}};
}

TEST(EventCodecTest, EncodeDecodeEncodeIsIdenticalForEveryType) {
  for (const EventData& data : EveryType()) {
    EventEnvelope e = Envelope(data);
    const std::string stored = EncodeStoredEvent(e);
    auto decoded = DecodeStoredEvent(stored);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(*decoded, e) << TypeName(data);
    EventEnvelope again = *decoded;
    EXPECT_EQ(EncodeStoredEvent(again), stored) << TypeName(data);
    EXPECT_TRUE(StoredHashMatches(stored));
  }
}

TEST(EventCodecTest, NullsAndAbsentKeyRoundTrip) {
  EventEnvelope e = Envelope(TokenSuspended{});
  e.actor = {};
  e.idempotency_key.reset();
  const std::string body = EncodeEventBody(e);
  EXPECT_NE(body.find("\"idempotency_key\":null"), std::string::npos);
  EXPECT_NE(body.find("\"actor\":{\"token_id\":null,\"admin_user_id\":null}"), std::string::npos);
  auto decoded = DecodeEventBody(body);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->actor, Actor{});
  EXPECT_FALSE(decoded->idempotency_key);
}

TEST(EventCodecTest, ApiJsonHasTheContractKeys) {
  EventEnvelope e = Envelope(TokenUsed{1'704'067'260'000'000});
  EncodeStoredEvent(e);
  const auto o = EventToApiJson(e);
  for (const char* key : {"seq", "stream_version", "type", "schema_version", "at", "actor",
                          "request_id", "idempotency_key", "data", "hash"}) {
    EXPECT_TRUE(o.contains(key)) << key;
  }
  EXPECT_EQ(o.at("type").as_string(), "TokenUsed");
  EXPECT_EQ(o.at("data").at("used_at").as_string(), "2024-01-01T00:01:00.000000Z");
  EXPECT_EQ(o.at("hash").as_string(), HashToHex(e.hash));
}

TEST(EventCodecTest, RejectsCorruptBodies) {
  EventEnvelope e =
      Envelope(TokenCreated{kAccount, std::nullopt, TokenScope::kAccount, 1, std::nullopt});
  const std::string body = EncodeEventBody(e);
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string b = body;
    b.replace(b.find(from), from.size(), to);
    return b;
  };
  EXPECT_FALSE(DecodeEventBody("not json"));
  EXPECT_FALSE(DecodeEventBody("[]"));
  EXPECT_FALSE(DecodeEventBody(replace("\"TokenCreated\"", "\"TokenExploded\"")));
  EXPECT_FALSE(
      DecodeEventBody(replace("\"token_scope\":\"account\"", "\"token_scope\":\"galaxy\"")));
  EXPECT_FALSE(DecodeEventBody(replace("\"seq\":42", "\"seq\":-1")));
  EXPECT_FALSE(DecodeEventBody(replace(kAccount.ToString(), "not-an-id")));
  auto newer = DecodeEventBody(replace("\"schema_version\":1", "\"schema_version\":7"));
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message.find("newer release"), std::string::npos);
  EXPECT_FALSE(DecodeStoredEvent("short"));
}

TEST(EventCodecTest, TamperedStoredEventFailsTheHashCheck) {
  EventEnvelope e = Envelope(TokenRevoked{});
  std::string stored = EncodeStoredEvent(e);
  EXPECT_TRUE(StoredHashMatches(stored));
  stored[stored.size() - 5] ^= 1;
  EXPECT_FALSE(StoredHashMatches(stored));
}

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(TOKENLEDGER_FIXTURES_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// The fixture is TokenCreated in the pre-release schema version 0 shape: `account`,
// `environment`, `scope` and `expires_at_unix` (seconds). The upcaster maps it to version 1.
TEST(EventCodecTest, UpcasterTurnsTheOldFixtureIntoTheCurrentVersion) {
  const std::string fixture = ReadFixture("token_created_v0.json");
  ASSERT_FALSE(fixture.empty());
  auto without = DecodeEventBody(fixture);
  ASSERT_FALSE(without);
  EXPECT_NE(without.error().message.find("no upcaster"), std::string::npos);

  UpcasterRegistry registry;
  registry.Register("TokenCreated", 0, [](boost::json::object d) -> Result<boost::json::object> {
    boost::json::object up;
    up["account_id"] = d.at("account");
    up["environment_id"] = d.at("environment");
    up["token_scope"] = d.at("scope");
    up["expires_at"] =
        FormatRfc3339(d.at("expires_at_unix").to_number<Micros>() * kMicrosPerSecond);
    up["created_by_admin_user_id"] = nullptr;
    return up;
  });
  auto decoded = DecodeEventBody(fixture, registry);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->schema_version, 1u);
  const auto& created = std::get<TokenCreated>(decoded->data);
  EXPECT_EQ(created.account_id, kAccount);
  EXPECT_EQ(created.scope, TokenScope::kAccount);
  EXPECT_EQ(created.expires_at, *ParseRfc3339("2025-01-01T00:00:00Z"));
  EXPECT_FALSE(created.environment_id);
  // Re-encoded, it is a current-version event that decodes without any upcaster.
  auto current = DecodeEventBody(EncodeEventBody(*decoded));
  ASSERT_TRUE(current);
  EXPECT_EQ(current->data, decoded->data);
}

}  // namespace
}  // namespace tokenledger::events

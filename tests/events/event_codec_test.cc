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
          TokenCreated{kAccount, kEnv, TokenScope::kAgentDeployment, 1'735'689'600'000'000,
                       std::nullopt, kAdmin, kToken, "kid-\u00e9\"\\"},
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

// A cluster node stores the body its deciding node encoded, stamped with seq and link: the
// stamp must give exactly the body this release would encode for the same event.
TEST(EventCodecTest, AStampedBodyIsTheBodyOfTheStampedEvent) {
  for (const EventData& data : EveryType()) {
    EventEnvelope e = Envelope(data);
    EventEnvelope unstamped = e;
    unstamped.seq = 0;
    unstamped.prev_hash = {};
    auto stamped = StampEventBody(EncodeEventBody(unstamped), e.seq, e.prev_hash);
    ASSERT_TRUE(stamped) << TypeName(data);
    EXPECT_EQ(*stamped, EncodeEventBody(e)) << TypeName(data);
  }
  // Only a body with seq 0 and an all-zero link is stamped.
  EventEnvelope e = Envelope(TokenSuspended{});
  EXPECT_FALSE(StampEventBody(EncodeEventBody(e), 1, {}));
  e.seq = 0;
  EXPECT_FALSE(StampEventBody(EncodeEventBody(e), 1, {}));  // prev_hash is not zero
  EXPECT_FALSE(StampEventBody("", 1, {}));
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
  auto newer = DecodeEventBody(replace("\"schema_version\":2", "\"schema_version\":7"));
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
  // Then the production step 1 -> 2.
  registry.Register("TokenCreated", 1, [](boost::json::object d) {
    return DefaultUpcasters().Upcast("TokenCreated", 1, std::move(d));
  });
  auto decoded = DecodeEventBody(fixture, registry);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->schema_version, 2u);
  const auto& created = std::get<TokenCreated>(decoded->data);
  EXPECT_EQ(created.account_id, kAccount);
  EXPECT_EQ(created.scope, TokenScope::kAccount);
  EXPECT_EQ(created.expires_at, *ParseRfc3339("2025-01-01T00:00:00Z"));
  EXPECT_FALSE(created.environment_id);
  EXPECT_FALSE(created.agent_id);
  EXPECT_FALSE(created.signing_kid);
  // Re-encoded, it is a current-version event that decodes without any upcaster.
  auto current = DecodeEventBody(EncodeEventBody(*decoded));
  ASSERT_TRUE(current);
  EXPECT_EQ(current->data, decoded->data);
}

// A TokenCreated exactly as release 1 stored it (schema version 1: no agent, no kid) decodes
// through the production upcaster with those fields null (the bytes on disk never change).
TEST(EventCodecTest, TokenCreatedVersionOneDecodesWithNoAgentAndTheOriginalKey) {
  EventEnvelope e = Envelope(
      TokenCreated{kAccount, kEnv, TokenScope::kEnvironment, 1'735'689'600'000'000, kAdmin});
  std::string body = EncodeEventBody(e);
  for (const std::string field :
       {",\"agent_id\":null", ",\"agent_deployment_id\":null", ",\"signing_kid\":null"}) {
    body.erase(body.find(field), field.size());
  }
  body.replace(body.find("\"schema_version\":2"), 18, "\"schema_version\":1");
  auto decoded = DecodeEventBody(body);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->schema_version, 2u);
  EXPECT_EQ(decoded->data, e.data);
  // A version-1 body with a version-2 field is corrupt, not silently overwritten.
  std::string mixed = body;
  mixed.replace(mixed.find("}", mixed.find("created_by_admin_user_id")), 1, ",\"agent_id\":null}");
  EXPECT_FALSE(DecodeEventBody(mixed));

  // Version 2 carries the three fields.
  e.data = TokenCreated{.account_id = kAccount,
                        .environment_id = kEnv,
                        .scope = TokenScope::kAgentDeployment,
                        .expires_at = 1'735'689'600'000'000,
                        .agent_id = kAdmin,
                        .agent_deployment_id = kToken,
                        .signing_kid = "k-2026\"x"};
  auto again = DecodeEventBody(EncodeEventBody(e));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->data, e.data);
}

// ---------------------------------------------------------------------------------------
// The fast path (DecodeCanonicalEventBody) against the general path (Boost.JSON).

// Decodes `body` on both paths: when the fast one accepts, it must give what the general one
// gives; `expect_fast` says whether it must accept (canonical) or must leave it to the other.
void ExpectSameOnBothPaths(const std::string& body, bool expect_fast) {
  SCOPED_TRACE(body);
  EventEnvelope fast;
  fast.request_id = "left over from an earlier event, longer than any small-string buffer";
  fast.idempotency_key = "stale";
  fast.hash = Sha256("stale");
  const bool accepted = DecodeCanonicalEventBody(body, &fast);
  EXPECT_EQ(accepted, expect_fast);
  auto general = DecodeEventBodyGeneric(body);
  if (accepted) {
    ASSERT_TRUE(general) << general.error().message;
    EXPECT_EQ(fast, *general);
  }
  // The public entry point agrees with the general path whichever path it takes.
  auto decoded = DecodeEventBody(body);
  ASSERT_EQ(static_cast<bool>(decoded), static_cast<bool>(general));
  if (decoded) {
    EXPECT_EQ(*decoded, *general);
  } else {
    EXPECT_EQ(decoded.error().message, general.error().message);
  }
}

TEST(EventCodecFastPathTest, EveryTypeAndEdgeCaseDecodesAsTheGeneralPath) {
  std::vector<EventEnvelope> events;
  for (const EventData& data : EveryType()) {
    events.push_back(Envelope(data));
    EventEnvelope nulls = Envelope(data);
    nulls.actor = {};
    nulls.idempotency_key.reset();
    nulls.request_id.clear();
    nulls.seq = 1;
    nulls.stream_version = 1;
    nulls.prev_hash = kGenesisHash;
    events.push_back(nulls);
    EventEnvelope odd = Envelope(data);
    odd.seq = 9'999'999'999'999'999'999u;  // 19 digits: the longest the fast path reads
    odd.stream_version = 0;
    odd.at = *ParseRfc3339("0001-01-01T00:00:00Z");
    odd.actor = {std::nullopt, kAdmin};
    // Every escape json::serialize writes, non-ASCII UTF-8 of 2, 3 and 4 bytes, DEL.
    odd.request_id = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    odd.idempotency_key = std::string("nul\0inside", 10);
    events.push_back(odd);
  }
  for (EventEnvelope& e : events) {
    const std::string body = EncodeEventBody(e);
    ExpectSameOnBothPaths(body, true);
    EventEnvelope fast;
    ASSERT_TRUE(DecodeCanonicalEventBody(body, &fast));
    EXPECT_EQ(fast, e);
    // Through the stored record: the stored hash comes along.
    EventEnvelope stored_event = e;
    const std::string stored = EncodeStoredEvent(stored_event);
    EventEnvelope into;
    ASSERT_TRUE(DecodeStoredEventInto(stored, &into));
    EXPECT_EQ(into, stored_event);
  }
}

// What EncodeEventBody wrote before it wrote directly: a json::object of the keys in order,
// serialized. Every body in every ledger was written so, and its hash covers those bytes.
std::string ObjectEncoding(const EventEnvelope& e) {
  namespace json = boost::json;
  const auto opt_id = [](const std::optional<Id>& id) {
    return id ? json::value(id->ToString()) : json::value(nullptr);
  };
  json::object o;
  o["seq"] = e.seq;
  o["stream"] = e.stream.ToString();
  o["stream_version"] = e.stream_version;
  o["type"] = TypeName(e.data);
  o["schema_version"] = e.schema_version;
  o["at"] = FormatRfc3339(e.at);
  o["actor"] = json::object{{"token_id", opt_id(e.actor.token_id)},
                            {"admin_user_id", opt_id(e.actor.admin_user_id)}};
  o["request_id"] = e.request_id;
  o["idempotency_key"] = e.idempotency_key ? json::value(*e.idempotency_key) : json::value(nullptr);
  o["data"] = EventDataToJson(e.data);
  o["prev_hash"] = HashToHex(e.prev_hash);
  return json::serialize(o);
}

TEST(EventCodecTest, TheDirectEncodingIsTheJsonObjectsByteForByte) {
  std::vector<EventData> types = EveryType();
  types.push_back(SigningKeyRotated{"0123456789abcdef", std::nullopt, "ops@host"});
  types.push_back(SigningKeyRotated{"fedcba9876543210", "0123456789abcdef", "o\"p\n"});
  types.push_back(SigningKeyRetired{"0123456789abcdef", 0, "ops@host"});
  types.push_back(SigningKeyRetired{"k", ~std::uint64_t{0}, ""});
  // Every byte value, alone and inside a run, in each free-text field.
  std::vector<std::string> texts = {"", "plain", "q\"b\\s/\b\f\n\r\t\x7f caf\xc3\xa9"};
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    texts.push_back(std::string(1, c));
    texts.push_back("ab" + std::string(1, c) + "cd" + std::string(2, c));
  }
  std::size_t compared = 0;
  for (const EventData& data : types) {
    EventEnvelope e = Envelope(data);
    ASSERT_EQ(EncodeEventBody(e), ObjectEncoding(e));
    e.seq = ~std::uint64_t{0};
    e.stream_version = 0;
    e.schema_version = ~std::uint32_t{0};
    e.at = *ParseRfc3339("9999-12-31T23:59:59.999999Z");
    e.actor = {std::nullopt, kAdmin};
    e.idempotency_key.reset();
    ASSERT_EQ(EncodeEventBody(e), ObjectEncoding(e));
    for (const std::string& text : texts) {
      e.request_id = text;
      e.idempotency_key = text;
      if (auto* created = std::get_if<TokenCreated>(&e.data)) created->signing_kid = text;
      if (auto* rotated = std::get_if<SigningKeyRotated>(&e.data)) rotated->by = text;
      if (auto* retired = std::get_if<SigningKeyRetired>(&e.data)) retired->kid = text;
      ASSERT_EQ(EncodeEventBody(e), ObjectEncoding(e)) << "text of " << text.size() << " bytes";
      ++compared;
    }
  }
  EXPECT_GT(compared, 5000u);
}

TEST(EventCodecFastPathTest, NonCanonicalBytesGoToTheGeneralPath) {
  EventEnvelope e = Envelope(
      TokenCreated{kAccount, kEnv, TokenScope::kEnvironment, 1'735'689'600'000'000, kAdmin});
  const std::string body = EncodeEventBody(e);
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string b = body;
    const auto at = b.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) b.replace(at, from.size(), to);
    return b;
  };
  const std::string v0 = ReadFixture("token_created_v0.json");
  for (const std::string& other : {
           // Valid JSON, same event, not the canonical bytes: decoded by the general path.
           body + " ",
           " " + body,
           replace("{\"seq\":42,", "{ \"seq\":42,"),
           replace("\"seq\":42,\"stream\":\"" + kToken.ToString() + "\"",
                   "\"stream\":\"" + kToken.ToString() + "\",\"seq\":42"),
           replace("\"seq\":42", "\"seq\":4.2e1"),
           replace("\"seq\":42", "\"seq\":-0"),
           replace("\"seq\":42", "\"seq\":18446744073709551615"),
           replace("\"request_id\":\"req-1\"", "\"request_id\":\"\\ud83d\\ude00\""),
           replace("\"type\":\"TokenCreated\"", "\"type\":\"Token\\u0043reated\""),
           replace("\"token_scope\":\"environment\"", "\"token_scope\":\"environ\\u006dent\""),
           replace("},\"request_id\"", ",\"extra\":1},\"request_id\""),
           replace(",\"prev_hash\"", ",\"extra\":null,\"prev_hash\""),
           replace("\"signing_kid\":null}", "\"signing_kid\":null,\"x\":[]}"),
           // Invalid: the general path names what is wrong.
           replace("\"seq\":42", "\"seq\":042"),
           replace("\"req-1\"", "\"req\x01\""),
           replace("\"req-1\"", "\"req\xc3\""),
           replace("\"req-1\"", "\"req\xed\xa0\x80\""),      // a UTF-8-encoded surrogate
           replace("\"req-1\"", "\"req\xc0\xaf\""),          // overlong
           replace("\"req-1\"", "\"req\xf4\x90\x80\x80\""),  // above U+10FFFF
           replace("\"req-1\"", "\"req\\x\""),
           replace("\"req-1\"", "\"req\\ud800\""),
           replace("\"schema_version\":2", "\"schema_version\":0"),
           replace("\"schema_version\":2", "\"schema_version\":1"),  // v1 with v2 fields
           replace("\"schema_version\":2", "\"schema_version\":3"),
           replace("\"TokenCreated\"", "\"TokenExploded\""),
           replace("\"environment\"", "\"galaxy\""),
           replace(kAccount.ToString(), kAccount.ToString().substr(1) + "Z"),
           replace("\"at\":\"2024", "\"at\":\"2024 "),
           body.substr(0, body.size() - 1),
           body + "}",
           v0,
       }) {
    ExpectSameOnBothPaths(other, false);
  }
  // Not the bytes EncodeEventBody writes, yet within what the fast path reads: BMP escapes and
  // time offsets (ParseRfc3339 is the same function on both paths).
  for (const std::string& also : {
           replace("\"request_id\":\"req-1\"", "\"request_id\":\"\\u0072eq-\\u00e9\\u20AC\""),
           replace("\"at\":\"2024-01-01T00:00:00.123456Z\"",
                   "\"at\":\"2024-01-01T01:00:00.123456+01:00\""),
       }) {
    ExpectSameOnBothPaths(also, true);
  }
  // A canonical TokenSuspended with something in its data: the general path ignores it.
  EventEnvelope s = Envelope(TokenSuspended{});
  const std::string suspended = EncodeEventBody(s);
  std::string with_data = suspended;
  with_data.replace(with_data.find("\"data\":{}"), 9, "\"data\":{\"why\":\"x\"}");
  ExpectSameOnBothPaths(with_data, false);
  ExpectSameOnBothPaths(suspended, true);
}

}  // namespace
}  // namespace tokenledger::events

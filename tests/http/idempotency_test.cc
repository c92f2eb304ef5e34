// Keys, fingerprints and a write's answer: the exact bytes answered, fresh and replayed.
#include "src/http/idempotency.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "src/http/json_views.h"
#include "tests/http/outcome.h"

namespace tokenledger::http {
namespace {
namespace json = boost::json;

const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");
const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
constexpr Micros kT0 = 1'704'067'200'000'000;  // 2024-01-01

using http::testing::Outcome;

std::string Header(const HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

projections::TokenRow Row() {
  core::TokenState s;
  s.exists = true;
  s.id = kToken;
  s.account_id = kAccount;
  s.environment_id = kEnv;
  s.scope = events::TokenScope::kEnvironment;
  s.inserted_at = kT0;
  s.updated_at = kT0;
  s.expires_at = kT0 + 30 * kMicrosPerDay;
  s.version = 1;
  return projections::TokenRow{s, 1, kT0, std::nullopt};
}

std::string FakeJwt(const core::TokenState& s) {
  std::string out = "jwt-of-";
  return out.append(s.id.ToString()).append("-").append(std::to_string(s.expires_at));
}

TEST(IdempotencyKeyTest, PrintableAsciiUpTo255) {
  EXPECT_TRUE(ValidateIdempotencyKey("k"));
  EXPECT_TRUE(ValidateIdempotencyKey(std::string(255, '~')));
  EXPECT_EQ(Outcome(ValidateIdempotencyKey("")),
            "invalid_value|idempotency_key|idempotency_key must be 1 to 255 characters");
  EXPECT_EQ(Outcome(ValidateIdempotencyKey(std::string(256, 'a'))),
            "invalid_value|idempotency_key|idempotency_key must be 1 to 255 characters");
  EXPECT_EQ(Outcome(ValidateIdempotencyKey("a\tb")),
            "invalid_value|idempotency_key|idempotency_key must be printable ASCII");
  EXPECT_EQ(Outcome(ValidateIdempotencyKey("caf\xc3\xa9")),
            "invalid_value|idempotency_key|idempotency_key must be printable ASCII");
}

TEST(IdempotencyKeyTest, FromTheBodyOrTheHeaderTheSameIfBoth) {
  auto key = BodyKey(json::parse(R"({"idempotency_key":"k1"})").as_object());
  ASSERT_TRUE(key);
  EXPECT_EQ(*key, "k1");
  EXPECT_EQ(*BodyKey(json::parse(R"({"idempotency_key":null})").as_object()), std::nullopt);
  EXPECT_EQ(*BodyKey(json::object{}), std::nullopt);
  EXPECT_EQ(Outcome(BodyKey(json::parse(R"({"idempotency_key":1})").as_object())),
            "invalid_value|idempotency_key|idempotency_key must be a string");
  EXPECT_EQ(Outcome(BodyKey(json::parse(R"({"idempotency_key":""})").as_object())),
            "invalid_value|idempotency_key|idempotency_key must be 1 to 255 characters");

  HttpRequest req;
  EXPECT_EQ(*ResolveKey(req, std::nullopt), std::nullopt);
  EXPECT_EQ(*ResolveKey(req, "body"), "body");
  req.has_idempotency_key = true;
  req.idempotency_key = "head";
  EXPECT_EQ(*ResolveKey(req, std::nullopt), "head");
  EXPECT_EQ(*ResolveKey(req, "head"), "head");
  EXPECT_EQ(Outcome(ResolveKey(req, "body")),
            "invalid_value|idempotency_key|Idempotency-Key header and body idempotency_key "
            "differ");
  req.idempotency_key = "";
  EXPECT_EQ(Outcome(ResolveKey(req, std::nullopt)),
            "invalid_value|idempotency_key|idempotency_key must be 1 to 255 characters");
  req.idempotency_key = "head";
  req.repeated_idempotency_key = true;
  EXPECT_EQ(Outcome(ResolveKey(req, "head")),
            "invalid_value|idempotency_key|the Idempotency-Key header is repeated");
}

TEST(FingerprintTest, BindsMethodRouteParamsAndBody) {
  // The stored fingerprint is the SHA-256 of these bytes: they must never change.
  EXPECT_EQ(Fingerprint("POST", "/api/v1/api_token/{id}/suspend", {"abc"}, ""),
            "POST\n/api/v1/api_token/{id}/suspend\nabc/\n");
  EXPECT_EQ(Fingerprint("POST", "/api/v1/api_token", {}, "account|x||"),
            "POST\n/api/v1/api_token\n\naccount|x||");
  EXPECT_NE(Fingerprint("POST", "/r/{id}", {"a"}, ""), Fingerprint("DELETE", "/r/{id}", {"a"}, ""));

  core::CreateToken c{kAccount, std::nullopt, events::TokenScope::kAccount, std::nullopt, kToken};
  EXPECT_EQ(CanonicalCreate(c), "account|" + kAccount.ToString() + "||");
  c = {kAccount, kEnv, events::TokenScope::kEnvironment, kT0, std::nullopt};
  EXPECT_EQ(CanonicalCreate(c), "environment|" + kAccount.ToString() + "|" + kEnv.ToString() + "|" +
                                    std::to_string(kT0));
}

json::value TokenDetailsJson(const projections::TokenRow& row) {
  std::string text;
  AppendTokenDetailsJson(row, text);
  return json::parse(text);
}

TEST(RenderWriteTest, AppliedAndRejected) {
  store::CommandResult r;
  r.outcome = store::Outcome::kApplied;
  r.after = Row();
  HttpResponse applied = RenderWrite(r, nullptr);
  EXPECT_EQ(applied.status, 200);
  EXPECT_EQ(applied.body, json::serialize(json::object{{"status", "success"},
                                                       {"details", TokenDetailsJson(*r.after)}}));
  EXPECT_TRUE(applied.headers.empty());
  // A create also answers the token's JWT.
  HttpResponse created = RenderWrite(r, FakeJwt);
  EXPECT_EQ(json::parse(created.body).at("token").as_string(), FakeJwt(r.after->state));

  // A delete shows the token as it last was visible.
  r.before = Row();
  r.after->state.deleted = true;
  EXPECT_EQ(json::parse(RenderWrite(r, nullptr).body).at("details"), TokenDetailsJson(*r.before));

  store::CommandResult rejected;
  rejected.outcome = store::Outcome::kRejected;
  rejected.rejection = {ErrorCode::kInvalidAction, "cannot suspend a token that is revoked", ""};
  HttpResponse refused = RenderWrite(rejected, nullptr);
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(
      refused.body,
      R"({"status":"error","code":"invalid_action","message":"cannot suspend a token that is revoked"})");
}

TEST(RenderWriteTest, AReplayIsTheFirstAnswerMarkedReplayed) {
  store::CommandResult first;
  first.outcome = store::Outcome::kApplied;
  first.after = Row();
  store::CommandResult replay = first;
  replay.outcome = store::Outcome::kReplayed;
  replay.replayed = store::Outcome::kApplied;
  const HttpResponse fresh = RenderWrite(first, FakeJwt);
  const HttpResponse again = RenderWrite(replay, FakeJwt);
  EXPECT_EQ(again.status, fresh.status);
  EXPECT_EQ(again.body, fresh.body);
  EXPECT_EQ(Header(again, "Idempotent-Replayed"), "true");

  store::CommandResult rejected;
  rejected.outcome = store::Outcome::kReplayed;
  rejected.replayed = store::Outcome::kRejected;
  rejected.rejection = {ErrorCode::kNotFound, "api_token x not found", ""};
  const HttpResponse r = RenderWrite(rejected, nullptr);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Header(r, "Idempotent-Replayed"), "true");
}

TEST(RenderWriteTest, ConflictsAndUnavailable) {
  store::CommandResult r;
  r.outcome = store::Outcome::kKeyConflict;
  HttpResponse conflict = RenderWrite(r, nullptr);
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(
      conflict.body,
      R"({"status":"error","code":"idempotency_key_already_used","message":"the idempotency key was already used for a different request"})");
  for (auto outcome : {store::Outcome::kOverloaded, store::Outcome::kUnavailable}) {
    r.outcome = outcome;
    r.rejection.message = "the write queue is full";
    HttpResponse busy = RenderWrite(r, nullptr);
    EXPECT_EQ(busy.status, 503);
    EXPECT_EQ(busy.body,
              R"({"status":"error","code":"unknown","message":"the write queue is full"})");
    EXPECT_EQ(Header(busy, "Retry-After"), "1");
  }
}

TEST(RenderWriteTest, LegacyRecordsReplayTheirBytesWithTheJwtSignedAgain) {
  const projections::TokenRow row = Row();
  const std::string body = json::serialize(json::object{
      {"status", "success"}, {"details", TokenDetailsJson(row)}, {"token", kTokenPlaceholder}});
  store::CommandResult r;
  r.outcome = store::Outcome::kReplayed;
  r.legacy_response = "200\n" + body;
  HttpResponse replayed = RenderWrite(r, FakeJwt);
  EXPECT_EQ(replayed.status, 200);
  std::string expected = body;
  expected.replace(expected.find(kTokenPlaceholder), kTokenPlaceholder.size(), FakeJwt(row.state));
  EXPECT_EQ(replayed.body, expected);
  EXPECT_EQ(Header(replayed, "Idempotent-Replayed"), "true");

  // Not a create (no JWT to sign), or not a success: the recorded bytes as they are.
  EXPECT_EQ(LegacyReplay("200\n" + body, nullptr).body, body);
  const HttpResponse refused = LegacyReplay("409\n{\"status\":\"error\"}", FakeJwt);
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.body, "{\"status\":\"error\"}");
}

}  // namespace
}  // namespace tokenledger::http

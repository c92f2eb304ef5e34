// The bodies of writes: what a create and an action accept, and each refusal's exact words.
#include "src/http/write_requests.h"
#include "tests/http/outcome.h"

#include <gtest/gtest.h>

namespace tokenledger::http {
namespace {

const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kOther = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

using http::testing::Outcome;

HttpRequest Body(std::string body) {
  HttpRequest r;
  r.method = "POST";
  r.body = std::move(body);
  return r;
}

Result<CreateRequest> Create(std::string body) {
  return ParseCreateRequest(Body(std::move(body)), kAccount);
}

TEST(CreateRequestTest, Parses) {
  auto r = Create(R"({"details":{"token_scope":"account"}})");
  ASSERT_TRUE(r) << Outcome(r);
  EXPECT_EQ(r->command.account_id, kAccount) << "the caller's account when absent";
  EXPECT_EQ(r->command.scope, events::TokenScope::kAccount);
  EXPECT_FALSE(r->command.environment_id);
  EXPECT_FALSE(r->command.expires_at);
  EXPECT_FALSE(r->command.created_by_admin_user_id);
  EXPECT_FALSE(r->key);

  r = Create(R"({"idempotency_key":"k","details":{"token_scope":"environment","account_id":")" +
             kOther.ToString() + R"(","environment_id":")" + kEnv.ToString() +
             R"(","expires_at":"2030-01-01T00:00:00Z"}})");
  ASSERT_TRUE(r) << Outcome(r);
  EXPECT_EQ(r->command.account_id, kOther) << "reach is the handler's check, not the parser's";
  EXPECT_EQ(r->command.environment_id, kEnv);
  EXPECT_EQ(r->command.scope, events::TokenScope::kEnvironment);
  EXPECT_EQ(r->command.expires_at, ParseRfc3339("2030-01-01T00:00:00Z"));
  EXPECT_EQ(r->key, "k");

  r = Create(R"({"details":{"token_scope":"account","account_id":null,"environment_id":null,)"
             R"("expires_at":null},"idempotency_key":null})");
  ASSERT_TRUE(r) << Outcome(r);
  EXPECT_EQ(r->command.account_id, kAccount);

  HttpRequest header = Body(R"({"details":{"token_scope":"account"}})");
  header.has_idempotency_key = true;
  header.idempotency_key = "h";
  r = ParseCreateRequest(header, kAccount);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->key, "h");
}

TEST(CreateRequestTest, RefusalsInOrder) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "bad_request||request body is not valid JSON"},
      {"{", "bad_request||request body is not valid JSON"},
      {"[]", "bad_request||request body must be a JSON object"},
      {R"({"detail":{}})", "bad_request||unexpected field 'detail'"},
      {R"({"idempotency_key":5,"details":null})",
       "invalid_value|idempotency_key|idempotency_key must be a string"},
      {R"({})", "required_value|details|details is required"},
      {R"({"details":null})", "required_value|details|details is required"},
      {R"({"details":"x"})", "invalid_value|details|details must be an object"},
      {R"({"details":{"scope":"account"}})", "bad_request||unexpected field 'details.scope'"},
      {R"({"details":{}})", "required_value|token_scope|token_scope is required"},
      {R"({"details":{"token_scope":1}})",
       "invalid_value|token_scope|token_scope must be 'account', 'environment' or "
       "'agent_deployment'"},
      {R"({"details":{"token_scope":"root"}})",
       "invalid_value|token_scope|token_scope must be 'account', 'environment' or "
       "'agent_deployment'"},
      {R"({"details":{"token_scope":"account","account_id":"x","environment_id":"y"}})",
       "invalid_value|account_id|account_id is not a valid id"},
      {R"({"details":{"token_scope":"account","environment_id":7}})",
       "invalid_value|environment_id|environment_id is not a valid id"},
      {R"({"details":{"token_scope":"account","expires_at":"tomorrow"}})",
       "invalid_value|expires_at|expires_at must be an RFC 3339 time"},
      {R"({"details":{"token_scope":"account","expires_at":1}})",
       "invalid_value|expires_at|expires_at must be an RFC 3339 time"},
      {R"({"details":{"token_scope":"agent_deployment","agent_id":"agent-1"}})",
       "invalid_value|agent_id|agent_id is not a valid id"},
      {R"({"details":{"token_scope":"agent_deployment","agent_deployment_id":false}})",
       "invalid_value|agent_deployment_id|agent_deployment_id is not a valid id"},
      {R"({"details":{"token_scope":"agent_deployment","agent":null}})",
       "bad_request||unexpected field 'details.agent'"},
      // The create's own rules are core::ValidateCreate's, after this parse.
      {R"({"details":{"token_scope":"environment"}})", "ok"},
      {R"({"details":{"token_scope":"agent_deployment"}})", "ok"},
  };
  for (const auto& [body, expected] : cases) EXPECT_EQ(Outcome(Create(body)), expected) << body;

  HttpRequest differ = Body(R"({"idempotency_key":"a","details":{"token_scope":"nope"}})");
  differ.has_idempotency_key = true;
  // Not `= "b"`: GCC 12 at -O3 reports a false -Wrestrict on that assignment (bug 105329).
  differ.idempotency_key = std::string(1, 'b');
  EXPECT_EQ(Outcome(ParseCreateRequest(differ, kAccount)),
            "invalid_value|idempotency_key|Idempotency-Key header and body idempotency_key differ")
      << "the key is checked before details";
}

TEST(ActionRequestTest, EmptyNullObjectOrKeyOnly) {
  for (const char* ok : {"", " \r\n\t", "null", "{}", R"({"idempotency_key":null})"}) {
    auto r = ParseActionRequest(Body(ok));
    ASSERT_TRUE(r) << ok << ": " << Outcome(r);
    EXPECT_FALSE(*r) << ok;
  }
  auto r = ParseActionRequest(Body(R"({"idempotency_key":"k"})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "k");
  HttpRequest header = Body("");
  header.has_idempotency_key = true;
  header.idempotency_key = "h";
  r = ParseActionRequest(header);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "h");

  EXPECT_EQ(Outcome(ParseActionRequest(Body("{"))), "bad_request||request body is not valid JSON");
  EXPECT_EQ(Outcome(ParseActionRequest(Body(R"({"reason":"x"})"))),
            "bad_request||unexpected field 'reason'");
  EXPECT_EQ(Outcome(ParseActionRequest(Body("[]"))),
            "bad_request||the body must be empty, null, {} or {\"idempotency_key\": ...}");
  EXPECT_EQ(Outcome(ParseActionRequest(Body(R"({"idempotency_key":""})"))),
            "invalid_value|idempotency_key|idempotency_key must be 1 to 255 characters");
}

}  // namespace
}  // namespace tokenledger::http

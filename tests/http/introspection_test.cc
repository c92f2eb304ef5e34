// Who may call what (CheckScopeAllows), and the pieces of an introspection call: its one
// parameter, its answer and how long a gateway may cache it.
#include "src/http/introspection.h"

#include <gtest/gtest.h>

#include "src/http/reach.h"
#include "tests/http/outcome.h"

namespace tokenledger::http {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

using http::testing::Outcome;

TEST(ScopeTest, EachScopeMayMakeItsCallsAndNoOther) {
  using S = events::TokenScope;
  struct Case {
    S scope;
    Auth need;
    std::string outcome;
  };
  const std::string introspection_only =
      "not_permitted||introspection tokens may only call POST /api/v1/introspect";
  const std::string no_introspect =
      "not_permitted||only introspection and agent_deployment tokens may introspect";
  const std::string agent_only =
      "not_permitted||agent_deployment tokens may only ping and introspect themselves";
  for (const Case& c : std::vector<Case>{
           {S::kAccount, Auth::kPing, "ok"},
           {S::kAccount, Auth::kReadTokens, "ok"},
           {S::kAccount, Auth::kWriteTokens, "ok"},
           {S::kAccount, Auth::kIntrospect, no_introspect},
           {S::kEnvironment, Auth::kPing, "ok"},
           {S::kEnvironment, Auth::kReadTokens, "ok"},
           {S::kEnvironment, Auth::kWriteTokens,
            "not_permitted||environment tokens may not create or change tokens"},
           {S::kEnvironment, Auth::kIntrospect, no_introspect},
           {S::kIntrospection, Auth::kPing, introspection_only},
           {S::kIntrospection, Auth::kReadTokens, introspection_only},
           {S::kIntrospection, Auth::kWriteTokens, introspection_only},
           {S::kIntrospection, Auth::kIntrospect, "ok"},
           {S::kAgentDeployment, Auth::kPing, "ok"},
           {S::kAgentDeployment, Auth::kReadTokens, agent_only},
           {S::kAgentDeployment, Auth::kWriteTokens, agent_only},
           {S::kAgentDeployment, Auth::kIntrospect, "ok"},
       }) {
    Caller caller{kToken, kAccount, c.scope, std::nullopt, std::nullopt};
    if (events::ScopeHasEnvironment(c.scope)) caller.environment_id = kEnv;
    EXPECT_EQ(Outcome(CheckScopeAllows(caller, c.need)), c.outcome)
        << events::ScopeName(c.scope) << " " << static_cast<int>(c.need);
  }
}

std::string Token(const HttpRequest& request) {
  auto r = ParseIntrospectionRequest(request);
  return r ? r->token : "refused: " + r.error().message;
}

HttpRequest Body(std::string body, std::string content_type = {}) {
  HttpRequest r;
  r.method = "POST";
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

TEST(IntrospectionTest, TheTokenComesFromAFormOrAJsonBody) {
  EXPECT_EQ(Token(Body("token=a.b.c")), "a.b.c");
  EXPECT_EQ(Token(Body("token_type_hint=x&token=a.b.c", "application/x-www-form-urlencoded")),
            "a.b.c");
  EXPECT_EQ(Token(Body("token=a%2Eb", "Application/X-WWW-Form-Urlencoded; charset=UTF-8")), "a.b");
  EXPECT_EQ(Token(Body(R"({"token":"a.b.c","x":1})", "application/json")), "a.b.c");
  const std::string required = "required_value|token|token is required";
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body(""))), required);
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body("token="))), required);
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body("other=1"))), required);
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body(R"({"token":null})", "application/json"))),
            required);
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body(R"({"token":""})", "application/json"))),
            required);
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body(R"({"token":1})", "application/json"))),
            "invalid_value|token|token must be a string");
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body("token=a&token=b"))),
            "bad_request||the token parameter is repeated");
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body("token=%4"))),
            "bad_request||the form-encoded body is malformed");
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body("[]", "application/json"))),
            R"(bad_request||the body must be a JSON object {"token":"..."})");
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(Body("token=a", "text/plain"))),
            R"(bad_request||the body must be form-encoded (token=...) or JSON ({"token":"..."}))");
}

TEST(IntrospectionTest, AGatewayMayAskForAnInactiveStatus) {
  const HttpRequest form = Body("token=a.b.c");
  EXPECT_EQ(ParseIntrospectionRequest(form)->inactive_status, 200);
  EXPECT_EQ(ParseIntrospectionRequest(form, "inactive_status=401")->inactive_status, 401);
  EXPECT_EQ(ParseIntrospectionRequest(form, "inactive_status=403")->inactive_status, 403);
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(form, "inactive_status=500")),
            "invalid_value|inactive_status|inactive_status must be 401 or 403");
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(form, "token=x")),
            "bad_request||unknown query parameter 'token'");
  EXPECT_EQ(Outcome(ParseIntrospectionRequest(form, "%")), "bad_request||malformed query string");
}

Authenticator::Introspected Found(std::optional<Id> environment, Micros expires_at) {
  Caller c{kToken, kAccount,
           environment ? events::TokenScope::kEnvironment : events::TokenScope::kAccount,
           environment, std::nullopt};
  return {c, 1'700'000'000'123'456, expires_at};
}

TEST(IntrospectionTest, TheAnswerHasEveryFieldOrOnlyActiveFalse) {
  EXPECT_EQ(IntrospectionBody(std::nullopt), R"({"active":false})");
  std::string want = R"({"active":true,"sub":")";
  want.append(kToken.ToString())
      .append(R"(","jti":")")
      .append(kToken.ToString())
      .append(R"(","token_type":"api","scope":"environment","account_id":")")
      .append(kAccount.ToString())
      .append(R"(","environment_id":")")
      .append(kEnv.ToString())
      .append(R"(","agent_id":null,"exp":1800000000,"iat":1700000000})");
  EXPECT_EQ(IntrospectionBody(Found(kEnv, 1'800'000'000'999'999)), want);
  // An agent_deployment token names its agent; an account token has no environment.
  Authenticator::Introspected agent = Found(kEnv, 1'800'000'000'000'000);
  agent.caller.scope = events::TokenScope::kAgentDeployment;
  agent.caller.agent_id = kAccount;
  EXPECT_NE(IntrospectionBody(agent).find(R"("scope":"agent_deployment")"), std::string::npos);
  EXPECT_NE(IntrospectionBody(agent).find(R"(,"agent_id":")" + kAccount.ToString() + R"(","exp")"),
            std::string::npos)
      << IntrospectionBody(agent);
  EXPECT_NE(IntrospectionBody(Found(std::nullopt, 0)).find(R"("environment_id":null,)"),
            std::string::npos);
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(IntrospectionHeaders(Found(kEnv, 0)),
            (Headers{{"X-Token-Id", kToken.ToString()},
                     {"X-Token-Account-Id", kAccount.ToString()},
                     {"X-Token-Scope", "environment"},
                     {"X-Token-Environment-Id", kEnv.ToString()}}));
  EXPECT_EQ(IntrospectionHeaders(Found(std::nullopt, 0)).size(), 3u);
  EXPECT_TRUE(IntrospectionHeaders(std::nullopt).empty());
}

TEST(IntrospectionTest, AGatewayCachesForTheBoundButNeverPastTheExpiry) {
  const Micros now = 1'750'000'000'000'000;
  const Micros s = kMicrosPerSecond;
  EXPECT_EQ(IntrospectionCacheControl(std::nullopt, 5 * s, now), "max-age=5");
  EXPECT_EQ(IntrospectionCacheControl(std::nullopt, 0, now), "no-store");
  EXPECT_EQ(IntrospectionCacheControl(std::nullopt, s / 2, now), "no-store") << "whole seconds";
  EXPECT_EQ(IntrospectionCacheControl(Found(std::nullopt, now + 3600 * s), 5 * s, now),
            "max-age=5");
  EXPECT_EQ(IntrospectionCacheControl(Found(std::nullopt, now + 3 * s + 1), 5 * s, now),
            "max-age=3");
  EXPECT_EQ(IntrospectionCacheControl(Found(std::nullopt, now + s / 2), 5 * s, now), "no-store");
  // Never past the signed `exp` (whole seconds, rounded down), even when the stored expiry is
  // later within its second.
  const Micros at = 1'750'000'000'600'000;  // x.6 s
  EXPECT_EQ(
      IntrospectionCacheControl(Found(std::nullopt, at - 600'000 + 3 * s + 700'000), 5 * s, at),
      "max-age=2");
  EXPECT_EQ(
      IntrospectionCacheControl(Found(std::nullopt, now + 3600 * s), kMaxIntrospectionCache, now),
      "max-age=3600");
}

}  // namespace
}  // namespace tokenledger::http

// Token introspection (RFC 7662; SPEC.md "v1.1 additions") against the real server.
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;

constexpr std::string_view kInactive = R"({"active":false})";

class IntrospectTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    gateway_ = SeedGateway();
    env_ = ids_.Generate();
    env_token_ = Seed(account_, env_);
  }
  // POST /api/v1/introspect by `caller` with `body` of `content_type` (no header if empty).
  Response Introspect(const std::string& body, const std::string& content_type,
                      const std::string& caller) {
    if (content_type.empty()) {
      auto r = client_->Raw(
          "POST /api/v1/introspect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "Authorization: Bearer " +
          caller + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
      return r.empty() ? Response{} : r[0];
    }
    return client_->Request(
        "POST", "/api/v1/introspect", body,
        {{"Authorization", "Bearer " + caller}, {"Content-Type", content_type}});
  }
  Response Introspect(const std::string& jwt) {
    return Introspect("token=" + jwt, "application/x-www-form-urlencoded", gateway_.jwt);
  }
  Seeded gateway_, env_token_;
  Id env_;
};

TEST_F(IntrospectTest, AnActiveTokenIsDescribedAndTheAnswerMayBeCachedForTheBound) {
  StartServer();
  const auto shown = Call("GET", "/api/v1/api_token/" + main_.token_id.ToString(), main_.jwt);
  ASSERT_EQ(shown.status, 200);
  const json::value body = shown.Json();
  const json::value& d = body.at("details");
  Response r = Introspect(main_.jwt);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("cache-control"), "max-age=5");
  EXPECT_EQ(r.Header("content-type"), "application/json; charset=utf-8");
  const auto expires = ParseRfc3339(JsonString(d.at("expires_at")));
  const auto inserted = ParseRfc3339(JsonString(d.at("inserted_at")));
  ASSERT_TRUE(expires && inserted);
  // Every field, in the order of SPEC.md.
  EXPECT_EQ(r.body, R"({"active":true,"sub":")" + main_.token_id.ToString() + R"(","jti":")" +
                        main_.token_id.ToString() +
                        R"(","token_type":"api","scope":"account","account_id":")" +
                        account_.ToString() + R"(","environment_id":null,"agent_id":null,"exp":)" +
                        std::to_string(*expires / kMicrosPerSecond) +
                        ",\"iat\":" + std::to_string(*inserted / kMicrosPerSecond) + "}");
  // JSON is accepted too (and form parameters other than `token` are ignored).
  Response as_json = Introspect(R"({"token":")" + env_token_.jwt + R"("})",
                                "application/json; charset=utf-8", gateway_.jwt);
  ASSERT_EQ(as_json.status, 200) << as_json.body;
  const auto j = as_json.Json();
  EXPECT_EQ(j.at("active"), json::value(true));
  EXPECT_EQ(j.at("scope"), "environment");
  EXPECT_EQ(j.at("environment_id"), env_.ToString());
  Response hinted = Introspect("token_type_hint=access_token&token=" + main_.jwt, "", gateway_.jwt);
  EXPECT_EQ(hinted.Json().at("active"), json::value(true));
  // For gateways that read the status and headers only (nginx's auth_request).
  EXPECT_EQ(r.Header("x-token-id"), main_.token_id.ToString());
  EXPECT_EQ(r.Header("x-token-account-id"), account_.ToString());
  EXPECT_EQ(r.Header("x-token-scope"), "account");
  EXPECT_EQ(r.Header("x-token-environment-id"), "");
  EXPECT_EQ(as_json.Header("x-token-environment-id"), env_.ToString());
  auto gateway_call = [&](const std::string& jwt) {
    return client_->Request("POST", "/api/v1/introspect?inactive_status=401", "token=" + jwt,
                            {{"Authorization", "Bearer " + gateway_.jwt},
                             {"Content-Type", "application/x-www-form-urlencoded"}});
  };
  EXPECT_EQ(gateway_call(main_.jwt).status, 200);
  Response refused = gateway_call("garbage");
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(refused.body, kInactive);
  EXPECT_EQ(refused.Header("x-token-id"), "");
}

TEST_F(IntrospectTest, EveryKindOfTokenThatWouldNotAuthenticateIsOnlyInactive) {
  StartServer();
  const auto created = CreateViaApi(main_.jwt);
  const std::string id = JsonString(created.at("details").at("id"));
  const std::string jwt = JsonString(created.at("token"));
  std::string forged = jwt;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  auto claims = signer_->Verify(jwt);
  ASSERT_TRUE(claims);
  auth::Claims unknown = *claims;
  unknown.token_id = ids_.Generate();
  for (const std::string& bad :
       {forged, std::string("garbage"), std::string("a.b.c"), signer_->Sign(unknown),
        gateway_.jwt /* a gateway's credential is not an API token */}) {
    Response r = Introspect(bad);
    EXPECT_EQ(r.status, 200) << bad;
    EXPECT_EQ(r.body, kInactive) << bad;
    EXPECT_EQ(r.Header("cache-control"), "max-age=5");
  }
  EXPECT_EQ(Introspect(jwt).Json().at("active"), json::value(true));
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt).status, 200);
  EXPECT_EQ(Introspect(jwt).body, kInactive) << "suspended: inactive on the very next request";
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/activate", main_.jwt).status, 200);
  EXPECT_EQ(Introspect(jwt).Json().at("active"), json::value(true));
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/revoke", main_.jwt).status, 200);
  EXPECT_EQ(Introspect(jwt).body, kInactive);
  ASSERT_EQ(Call("DELETE", "/api/v1/api_token/" + id, main_.jwt).status, 200);
  EXPECT_EQ(Introspect(jwt).body, kInactive);
  // Expiry: active until then, and the cache bound never outlives it. Made just before the
  // check, on a whole second (the signed `exp` is whole seconds), 3 s ahead.
  const Micros soon = (NowMicros() / kMicrosPerSecond + 3) * kMicrosPerSecond;
  const auto short_lived_token = CreateViaApi(
      main_.jwt, R"({"token_scope":"account","expires_at":")" + FormatRfc3339(soon) + R"("})");
  const Seeded short_lived{account_, Id(), JsonString(short_lived_token.at("token"))};
  Response before = Introspect(short_lived.jwt);
  EXPECT_EQ(before.Json().at("active"), json::value(true));
  const std::string cache = before.Header("cache-control");
  EXPECT_TRUE(cache == "max-age=2" || cache == "max-age=1" || cache == "no-store") << cache;
  std::this_thread::sleep_for(std::chrono::microseconds(soon - NowMicros() + 100 * 1000));
  EXPECT_EQ(Introspect(short_lived.jwt).body, kInactive);
}

TEST_F(IntrospectTest, OnlyIntrospectionTokensIntrospectAndTheyDoNothingElse) {
  StartServer();
  for (const std::string& caller : {main_.jwt, env_token_.jwt}) {
    Response r = Introspect("token=" + main_.jwt, "", caller);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.Json().at("code"), "not_permitted");
  }
  EXPECT_EQ(Call("POST", "/api/v1/introspect", "", "token=x").Json().at("code"),
            "not_authenticated");
  const std::string token_path = "/api/v1/api_token/" + main_.token_id.ToString();
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/ping"},
                                                        {"GET", "/api/v1/api_token"},
                                                        {"GET", token_path},
                                                        {"GET", token_path + "/events"},
                                                        {"POST", "/api/v1/api_token"},
                                                        {"POST", token_path + "/suspend"},
                                                        {"DELETE", token_path}}) {
    Response r = Call(method, target, gateway_.jwt, method == "GET" ? "" : "{}");
    EXPECT_EQ(r.status, 403) << method << " " << target;
    EXPECT_EQ(r.Json().at("code"), "not_permitted") << method << " " << target;
    EXPECT_EQ(JsonString(r.Json().at("message")),
              "introspection tokens may only call POST /api/v1/introspect");
  }
  // And the API never makes one.
  Response made = Call("POST", "/api/v1/api_token", main_.jwt,
                       R"({"details":{"token_scope":"introspection"}})");
  EXPECT_EQ(made.status, 400);
  EXPECT_EQ(made.Json().at("code"), "invalid_value");
  EXPECT_EQ(made.Json().at("errors").at("token_scope"),
            "introspection tokens are minted by an operator (tokenledger mint), not created "
            "through the API");
  EXPECT_EQ(Introspect(main_.jwt).Json().at("active"), json::value(true));
}

TEST_F(IntrospectTest, MalformedCallsAreRefusedWithTheirField) {
  StartServer();
  auto code = [](const Response& r) { return JsonString(r.Json().at("code")); };
  Response none = Introspect("", "application/x-www-form-urlencoded", gateway_.jwt);
  EXPECT_EQ(none.status, 400);
  EXPECT_EQ(code(none), "required_value");
  EXPECT_EQ(none.Json().at("errors").at("token"), "token is required");
  EXPECT_EQ(code(Introspect("token=", "", gateway_.jwt)), "required_value");
  EXPECT_EQ(code(Introspect("{}", "application/json", gateway_.jwt)), "required_value");
  EXPECT_EQ(code(Introspect(R"({"token":7})", "application/json", gateway_.jwt)), "invalid_value");
  EXPECT_EQ(code(Introspect("token=a&token=b", "", gateway_.jwt)), "bad_request");
  EXPECT_EQ(code(Introspect("token=%zz", "", gateway_.jwt)), "bad_request");
  EXPECT_EQ(code(Introspect("[1]", "application/json", gateway_.jwt)), "bad_request");
  EXPECT_EQ(code(Introspect("token=x", "text/plain", gateway_.jwt)), "bad_request");
  Response get = Call("GET", "/api/v1/introspect", gateway_.jwt);
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.Header("allow"), "POST");
}

TEST_F(IntrospectTest, AnActiveAnswerRecordsAUseOfTheIntrospectedToken) {
  const Seeded unused = Seed(account_);
  StartServer();
  const std::string path = "/api/v1/api_token/" + unused.token_id.ToString();
  EXPECT_TRUE(Call("GET", path, main_.jwt).Json().at("details").at("last_used_at").is_null());
  ASSERT_EQ(Introspect(unused.jwt).Json().at("active"), json::value(true));
  // Recorded off the request path: wait for it.
  json::value last_used;
  for (int i = 0;
       i < 200 &&
       (last_used = Call("GET", path, main_.jwt).Json().at("details").at("last_used_at")).is_null();
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(last_used.is_null());
}

TEST_F(IntrospectTest, TheCacheBoundIsConfigurableAndZeroMeansNoStore) {
  StartServer({"--introspection-cache", "0"});
  EXPECT_EQ(Introspect(main_.jwt).Header("cache-control"), "no-store");
  EXPECT_EQ(Introspect("garbage").Header("cache-control"), "no-store");
  StopServer();
  StartServer({"--introspection-cache", "90s"});
  EXPECT_EQ(Introspect(main_.jwt).Header("cache-control"), "max-age=90");
  StopServer();
  ServerProcess refused(data_dir_, {"--introspection-cache", "2h"});
  EXPECT_FALSE(refused.Start(false));
  EXPECT_NE(refused.Stderr().find("introspection-cache"), std::string::npos) << refused.Stderr();
}

}  // namespace
}  // namespace tokenledger::e2e

// The API over HTTP against the real server: success shapes field by field, the lifecycle,
// every error code, limits, routing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>

#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;

const std::regex kIdRe("^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$");
const std::regex kTimeRe(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$)");

class ApiTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    StartServer();
  }

  void ExpectDetails(const json::object& d, std::string_view status) {
    EXPECT_EQ(d.size(), 16u) << json::serialize(d);
    EXPECT_TRUE(d.at("agent_id").is_null()) << "null unless agent_deployment scope";
    EXPECT_TRUE(d.at("agent_deployment_id").is_null());
    EXPECT_TRUE(std::regex_match(JsonString(d.at("id")), kIdRe));
    EXPECT_EQ(d.at("type"), "api_token");
    EXPECT_EQ(d.at("account_id"), account_.ToString());
    EXPECT_EQ(d.at("status"), status);
    for (const char* t : {"expires_at", "inserted_at", "updated_at", "status_changed_at"}) {
      EXPECT_TRUE(std::regex_match(JsonString(d.at(t)), kTimeRe)) << t << " " << d.at(t);
    }
    const auto& actions = d.at("available_actions").as_object();
    EXPECT_EQ(actions.size(), 4u);
    EXPECT_EQ(actions.at("suspend").as_bool(), status == "active");
    EXPECT_EQ(actions.at("activate").as_bool(), status == "suspended");
    EXPECT_EQ(actions.at("revoke").as_bool(), status != "revoked");
    EXPECT_EQ(actions.at("delete").as_bool(), status == "revoked");
  }

  Response Action(const std::string& id, const std::string& action, const std::string& body = "") {
    return Call("POST", "/api/v1/api_token/" + id + "/" + action, main_.jwt, body);
  }
};

TEST_F(ApiTest, PingHealthzReadyz) {
  Response r = Call("GET", "/api/v1/ping", main_.jwt);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"success","details":{"token_type":"api"}})");
  EXPECT_EQ(r.Header("Content-Type"), "application/json; charset=utf-8");
  EXPECT_TRUE(std::regex_match(r.Header("X-Request-Id"), kIdRe));
  EXPECT_EQ(Call("GET", "/healthz", "").body, R"({"status":"ok"})");
  Response ready = Call("GET", "/readyz", "");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.Json().at("status"), "ready");
}

TEST_F(ApiTest, CreateShowsEveryFieldAndTheTokenOnce) {
  const auto before = NowMicros();
  Response r =
      Call("POST", "/api/v1/api_token", main_.jwt, R"({"details":{"token_scope":"account"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::object body = r.Json().as_object();
  EXPECT_EQ(body.size(), 3u);
  EXPECT_EQ(body.at("status"), "success");
  const json::object& d = body.at("details").as_object();
  ExpectDetails(d, "active");
  EXPECT_TRUE(d.at("environment_id").is_null());
  EXPECT_TRUE(d.at("created_by_admin_user_id").is_null());
  EXPECT_TRUE(d.at("last_used_at").is_null());
  EXPECT_EQ(d.at("token_scope"), "account");
  EXPECT_EQ(d.at("inserted_at"), d.at("updated_at"));
  const Id id = *Id::Parse(JsonString(d.at("id")));
  EXPECT_EQ(id.Partition(), account_.Partition()) << "a token takes its account's partition";
  const Micros expires = *ParseRfc3339(JsonString(d.at("expires_at")));
  EXPECT_GE(expires, before + 365 * kMicrosPerDay);
  EXPECT_LE(expires, NowMicros() + 365 * kMicrosPerDay);

  // The new token works, and its JWT carries the contract's claims.
  const std::string jwt = JsonString(body.at("token"));
  auto claims = signer_->Verify(jwt);
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->token_id, id);
  EXPECT_EQ(claims->account_id, account_);
  EXPECT_FALSE(claims->environment_id);
  EXPECT_EQ(claims->expires_at, expires / kMicrosPerSecond);
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 200);

  // Shown once: show has no token.
  Response show = Call("GET", "/api/v1/api_token/" + id.ToString(), main_.jwt);
  ASSERT_EQ(show.status, 200);
  const json::object shown = show.Json().as_object();
  EXPECT_EQ(shown.size(), 2u);
  EXPECT_FALSE(shown.contains("token"));
  ExpectDetails(shown.at("details").as_object(), "active");
}

TEST_F(ApiTest, CreateEnvironmentTokenWithExpiryNormalisedToUtc) {
  const Id env = ids_.Generate();
  Response r = Call(
      "POST", "/api/v1/api_token", main_.jwt,
      R"({"details":{"token_scope":"environment","environment_id":")" + env.ToString() +
          R"(","expires_at":"2099-01-01T02:00:00+02:00","account_id":null},"idempotency_key":null})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto d = r.Json().at("details").as_object();
  EXPECT_EQ(d.at("environment_id"), env.ToString());
  EXPECT_EQ(d.at("token_scope"), "environment");
  EXPECT_EQ(d.at("expires_at"), "2099-01-01T00:00:00.000000Z");
  auto claims = signer_->Verify(JsonString(r.Json().at("token")));
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->environment_id, env);
}

TEST_F(ApiTest, WholeLifecycle) {
  const json::object created = CreateViaApi(main_.jwt);
  const std::string id = JsonString(created.at("details").at("id"));
  const std::string jwt = JsonString(created.at("token"));
  std::string updated = JsonString(created.at("details").at("updated_at"));
  auto step = [&](const std::string& action, const std::string& status) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    Response r = Action(id, action);
    EXPECT_EQ(r.status, 200) << action << ": " << r.body;
    const auto d = r.Json().at("details").as_object();
    ExpectDetails(d, status);
    EXPECT_GT(JsonString(d.at("updated_at")), updated) << "updated_at moves on " << action;
    updated = JsonString(d.at("updated_at"));
    // Every action the status does not allow is invalid_action and changes nothing.
    for (const std::string other : {"suspend", "activate", "revoke"}) {
      if (d.at("available_actions").at(other).as_bool()) continue;
      Response refused = Action(id, other);
      EXPECT_EQ(refused.status, 409) << other << " on " << status;
      EXPECT_EQ(refused.Json().at("code"), "invalid_action");
    }
    if (!d.at("available_actions").at("delete").as_bool()) {
      Response refused = Call("DELETE", "/api/v1/api_token/" + id, main_.jwt);
      EXPECT_EQ(refused.status, 409);
      EXPECT_EQ(refused.Json().at("code"), "invalid_action");
    }
    Response shown = Call("GET", "/api/v1/api_token/" + id, main_.jwt);
    EXPECT_EQ(shown.Json().at("details").at("status"), status);
    EXPECT_EQ(JsonString(shown.Json().at("details").at("updated_at")), updated);
    EXPECT_EQ(JsonString(shown.Json().at("details").at("status_changed_at")), updated)
        << "v2 projection";
    EXPECT_EQ(shown.Json().at("details").at("revoked_at").is_null(), status != "revoked");
  };
  step("suspend", "suspended");
  Response denied = Call("GET", "/api/v1/ping", jwt);
  EXPECT_EQ(denied.status, 401) << "a suspended token cannot authenticate";
  EXPECT_EQ(denied.Json().at("code"), "bad_authtoken");
  step("activate", "active");
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 200);
  step("revoke", "revoked");
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 401);

  Response deleted = Call("DELETE", "/api/v1/api_token/" + id, main_.jwt);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  ExpectDetails(deleted.Json().at("details").as_object(), "revoked");  // as it was when deleted
  Response gone = Call("GET", "/api/v1/api_token/" + id, main_.jwt);
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.Json().at("code"), "not_found");
  EXPECT_EQ(Action(id, "revoke").status, 404);
  EXPECT_EQ(Call("DELETE", "/api/v1/api_token/" + id, main_.jwt).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 401);

  // The history outlives the token.
  Response history = Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt);
  ASSERT_EQ(history.status, 200) << history.body;
  const auto events = history.Json().at("events").as_array();
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(JsonString(e.at("type")));
  // The use is recorded off the request path but queued before the next request's write.
  EXPECT_EQ(types, (std::vector<std::string>{"TokenCreated", "TokenSuspended", "TokenActivated",
                                             "TokenUsed", "TokenRevoked", "TokenDeleted"}));
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i].as_object();
    EXPECT_EQ(e.size(), 10u);
    EXPECT_EQ(e.at("stream_version").to_number<std::size_t>(), i + 1);
    EXPECT_EQ(e.at("schema_version"), e.at("type") == "TokenCreated" ? 2 : 1);
    EXPECT_EQ(JsonString(e.at("hash")).size(), 64u);
    if (e.at("type") != "TokenUsed") {
      EXPECT_EQ(e.at("actor").at("token_id"), main_.token_id.ToString());
    }
  }
  const auto p = history.Json().at("pagination").as_object();
  EXPECT_EQ(p.at("item_count"), 6);
}

TEST_F(ApiTest, ListShapePaginationAndSorting) {
  for (int i = 0; i < 6; ++i) CreateViaApi(main_.jwt);  // 7 tokens with main_
  Response r = Call("GET", "/api/v1/api_token?pagination%5Bpage_size%5D=3&pagination%5Boffset%5D=3",
                    main_.jwt);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = r.Json().as_object();
  EXPECT_EQ(body.size(), 4u);
  const auto& rows = body.at("summaries").as_array();
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& row : rows) {
    EXPECT_EQ(row.as_object().size(), 13u);
    EXPECT_FALSE(row.as_object().contains("available_actions")) << "summaries have no actions";
  }
  const auto& p = body.at("pagination").as_object();
  EXPECT_EQ(p.at("item_count"), 7);
  EXPECT_EQ(p.at("item_start"), 4);
  EXPECT_EQ(p.at("item_end"), 6);
  EXPECT_EQ(p.at("page_count"), 3);
  EXPECT_EQ(p.at("page_index"), 2);
  EXPECT_EQ(p.at("page_offset"), 3);
  EXPECT_EQ(p.at("page_size"), 3);
  EXPECT_EQ(p.at("next_page_offset"), 6);
  EXPECT_EQ(p.at("previous_page_offset"), 0);
  EXPECT_EQ(body.at("sorting"), json::parse(R"({"field":"inserted_at","direction":"desc"})"));

  Response last =
      Call("GET", "/api/v1/api_token?pagination[page_size]=3&pagination[offset]=6", main_.jwt);
  EXPECT_TRUE(last.Json().at("pagination").at("next_page_offset").is_null());
  EXPECT_EQ(last.Json().at("summaries").as_array().size(), 1u);
  Response first = Call("GET", "/api/v1/api_token?pagination[page_size]=3", main_.jwt);
  EXPECT_TRUE(first.Json().at("pagination").at("previous_page_offset").is_null());
  Response past = Call("GET", "/api/v1/api_token?pagination[offset]=50", main_.jwt);
  EXPECT_EQ(past.Json().at("pagination").at("item_start"), 0);
  EXPECT_EQ(past.Json().at("pagination").at("item_end"), 0);

  // Default order is newest first; the short and long sorting forms agree.
  auto ids = [&](const std::string& query) {
    std::vector<std::string> out;
    Response page = Call("GET", "/api/v1/api_token?pagination[page_size]=100&" + query, main_.jwt);
    EXPECT_EQ(page.status, 200) << query << ": " << page.body;
    const json::value body = page.Json();
    for (const auto& s : body.at("summaries").as_array()) out.push_back(JsonString(s.at("id")));
    return out;
  };
  auto asc = ids("sorting=id");
  EXPECT_TRUE(std::is_sorted(asc.begin(), asc.end()));
  EXPECT_EQ(ids("sorting[field]=id&sorting[direction]=asc"), asc);
  auto desc = ids("sorting=-id");
  std::reverse(desc.begin(), desc.end());
  EXPECT_EQ(desc, asc);
  EXPECT_EQ(ids(""), ids("sorting=-inserted_at"));
  for (const char* f : {"status", "expires_at", "last_used_at", "updated_at"}) {
    EXPECT_EQ(ids(std::string("sorting=") + f).size(), 7u);
  }
  EXPECT_EQ(ids("status=revoked").size(), 0u);
  EXPECT_EQ(ids("token_scope=account").size(), 7u);
  EXPECT_EQ(Call("GET", "/api/v1/api_token?pagination[page_size]=1", main_.jwt)
                .Json()
                .at("summaries")
                .as_array()
                .size(),
            1u);
  EXPECT_EQ(Call("GET", "/api/v1/api_token?pagination[page_size]=100", main_.jwt).status, 200);
}

TEST_F(ApiTest, EveryErrorCodeWithItsStatus) {
  auto expect = [&](const Response& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto body = r.Json().as_object();
    EXPECT_EQ(body.at("status"), "error");
    EXPECT_EQ(body.at("code"), code) << r.body;
    EXPECT_FALSE(JsonString(body.at("message")).empty());
    EXPECT_FALSE(r.Header("X-Request-Id").empty());
  };
  const std::string create = "/api/v1/api_token";
  // bad_request: malformed JSON, wrong shapes, unknown query keys.
  expect(Call("POST", create, main_.jwt, "{not json"), 400, "bad_request");
  expect(Call("POST", create, main_.jwt, "[]"), 400, "bad_request");
  expect(Call("POST", create, main_.jwt, R"({"details":{"token_scope":"account"},"extra":1})"), 400,
         "bad_request");
  expect(Call("GET", create + "?colour=blue", main_.jwt), 400, "bad_request");
  expect(Call("GET", create + "?sorting=id&sorting[field]=id", main_.jwt), 400, "bad_request");
  const std::string id = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  expect(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt, "[1]"), 400,
         "bad_request");
  expect(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt, R"({"reason":"x"})"), 400,
         "bad_request");
  expect(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt, "\"x\""), 400,
         "bad_request");
  // invalid_value: wrong types and formats, bad ids anywhere.
  Response bad_scope = Call("POST", create, main_.jwt, R"({"details":{"token_scope":"galaxy"}})");
  expect(bad_scope, 400, "invalid_value");
  EXPECT_TRUE(bad_scope.Json().at("errors").as_object().contains("token_scope"));
  expect(Call("POST", create, main_.jwt, R"({"details":{"token_scope":7}})"), 400, "invalid_value");
  expect(Call("POST", create, main_.jwt,
              R"({"details":{"token_scope":"account","expires_at":"tomorrow"}})"),
         400, "invalid_value");
  expect(Call("POST", create, main_.jwt,
              R"({"details":{"token_scope":"account","expires_at":"2001-01-01T00:00:00Z"}})"),
         400, "invalid_value");
  expect(Call("POST", create, main_.jwt,
              R"({"details":{"token_scope":"account","account_id":"nope"}})"),
         400, "invalid_value");
  expect(Call("POST", create, main_.jwt,
              R"({"details":{"token_scope":"account","environment_id":")" +
                  ids_.Generate().ToString() + "\"}}"),
         400, "invalid_value");
  expect(Call("GET", "/api/v1/api_token/NOT-AN-ID", main_.jwt), 400, "invalid_value");
  expect(Call("GET", "/api/v1/api_token/813xrzp12g3nqk8n7f8f9jbg8d18q7tm", main_.jwt), 400,
         "invalid_value");
  expect(Call("POST", "/api/v1/api_token/zz/revoke", main_.jwt), 400, "invalid_value");
  expect(Call("DELETE", "/api/v1/api_token/ZZ", main_.jwt), 400, "invalid_value");
  expect(Call("GET", "/api/v1/api_token/x/events", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?pagination[page_size]=0", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?pagination[page_size]=101", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?pagination[offset]=-1", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?sorting[field]=name", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?sorting[direction]=up", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?status=expired", main_.jwt), 400, "invalid_value");
  expect(Call("GET", create + "?account_id=bad", main_.jwt), 400, "invalid_value");
  expect(Call("GET", "/api/v1/api_token/" + id + "?as_of=yesterday", main_.jwt), 400,
         "invalid_value");
  // required_value
  expect(Call("POST", create, main_.jwt, R"({"details":{}})"), 400, "required_value");
  expect(Call("POST", create, main_.jwt, R"({})"), 400, "required_value");
  expect(Call("POST", create, main_.jwt, R"({"details":{"token_scope":"environment"}})"), 400,
         "required_value");
  // not_authenticated / bad_authtoken
  expect(Call("GET", "/api/v1/ping", ""), 401, "not_authenticated");
  expect(Call("GET", "/api/v1/ping", "garbage"), 401, "bad_authtoken");
  // not_permitted: another account
  expect(Call("GET", create + "?account_id=" + ids_.Generate().ToString(), main_.jwt), 403,
         "not_permitted");
  expect(Call("POST", create, main_.jwt,
              R"({"details":{"token_scope":"account","account_id":")" + ids_.Generate().ToString() +
                  "\"}}"),
         403, "not_permitted");
  // not_found: unknown token, unknown route
  expect(Call("GET", "/api/v1/api_token/" + ids_.Generate().ToString(), main_.jwt), 404,
         "not_found");
  expect(Call("POST", "/api/v1/api_token/" + ids_.Generate().ToString() + "/suspend", main_.jwt),
         404, "not_found");
  expect(Call("GET", "/api/v1/nothing", main_.jwt), 404, "not_found");
  expect(Call("GET", "/", ""), 404, "not_found");
  // 405 with Allow
  Response wrong = Call("PUT", "/api/v1/api_token/" + id, main_.jwt);
  expect(wrong, 405, "bad_request");
  EXPECT_EQ(wrong.Header("Allow"), "GET, HEAD, DELETE");
  EXPECT_EQ(Call("PATCH", "/api/v1/ping", main_.jwt).Header("Allow"), "GET, HEAD");
  // invalid_action
  expect(Call("POST", "/api/v1/api_token/" + id + "/activate", main_.jwt), 409, "invalid_action");
  // idempotency_key_already_used
  EXPECT_EQ(
      Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt, R"({"idempotency_key":"k1"})")
          .status,
      200);
  expect(
      Call("POST", "/api/v1/api_token/" + id + "/revoke", main_.jwt, R"({"idempotency_key":"k1"})"),
      409, "idempotency_key_already_used");
}

TEST_F(ApiTest, LimitsAnswerBeforeClosing) {
  // 413: a body over 64 KiB, refused from its Content-Length.
  const std::string big(70 * 1024, 'x');
  Response large = Call("POST", "/api/v1/api_token", main_.jwt, big);
  EXPECT_EQ(large.status, 413);
  EXPECT_EQ(large.Json().at("code"), "bad_request");
  // 431: headers over 8 KiB.
  HttpClient raw(server_->port());
  auto r = raw.Raw("GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') +
                   "\r\n\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 431);
  // 414: a long URL.
  HttpClient raw2(server_->port());
  r = raw2.Raw("GET /api/v1/api_token?" + std::string(5000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 414);
  EXPECT_TRUE(std::regex_match(r[0].Header("X-Request-Id"), kIdRe))
      << "refusals carry a request id too: '" << r[0].Header("X-Request-Id") << "'\n"
      << r[0].raw;
  // Malformed HTTP gets a 400, not a silent close.
  HttpClient raw3(server_->port());
  r = raw3.Raw("GARBAGE\r\n\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  HttpClient raw4(server_->port());
  r = raw4.Raw("POST /api/v1/api_token HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  // The server is still fine.
  EXPECT_EQ(Call("GET", "/api/v1/ping", main_.jwt).status, 200);
}

// A body refused from its Content-Length while the client is still sending it: after the
// answer the server reads and drops what keeps coming, for a while (a lingering close, as
// nginx's), instead of closing on unread bytes, which makes the kernel send a reset that can
// destroy the 413 in the client's receive buffer before the client reads it.
TEST_F(ApiTest, ARefusedBodyStillBeingSentGetsItsAnswer) {
  const int fd = ConnectLoopback(server_->port(), 10);
  ASSERT_GE(fd, 0);
  const std::size_t declared = 8 << 20;  // within the server's 16 MiB, 2 s linger
  const std::string head =
      "POST /api/v1/api_token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + main_.jwt +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(declared) +
      "\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  // Keep sending the body, well past what the socket buffers hold, after the answer is out.
  const std::string chunk(64 * 1024, 'x');
  std::size_t sent = 0;
  while (sent < declared) {
    const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server stopped reading
    sent += static_cast<std::size_t>(n);
    if (sent >= (1u << 20)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string received;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) received.append(buf, n);
  const int recv_errno = errno;
  ::close(fd);
  EXPECT_EQ(sent, declared) << "the server reads (and drops) the body after refusing it";
  EXPECT_TRUE(received.starts_with("HTTP/1.1 413 "))
      << "received " << received.size() << " bytes, recv errno " << recv_errno << ": "
      << received.substr(0, 200);
  EXPECT_EQ(Call("GET", "/api/v1/ping", main_.jwt).status, 200);
}

TEST_F(ApiTest, KeepAliveAndPipelining) {
  HttpClient raw(server_->port());
  const std::string ping =
      "GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + main_.jwt + "\r\n\r\n";
  const std::string health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  auto r = raw.Raw(ping + health + ping, 3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[1].body, R"({"status":"ok"})");
  EXPECT_EQ(r[2].status, 200);
  EXPECT_TRUE(raw.Connected());
  auto again = raw.Raw(health);
  ASSERT_EQ(again.size(), 1u) << "the connection is kept alive";
}

TEST_F(ApiTest, RequestIdIsEchoedOrMinted) {
  Response r = Call("GET", "/healthz", "", "", {{"X-Request-Id", "client-abc.123"}});
  EXPECT_EQ(r.Header("X-Request-Id"), "client-abc.123");
  r = Call("GET", "/healthz", "", "", {{"X-Request-Id", "bad id with spaces"}});
  EXPECT_TRUE(std::regex_match(r.Header("X-Request-Id"), kIdRe));
  // The request id of a write is recorded in its event.
  Response created =
      Call("POST", "/api/v1/api_token", main_.jwt, R"({"details":{"token_scope":"account"}})",
           {{"X-Request-Id", "trace-42"}});
  const std::string id = JsonString(created.Json().at("details").at("id"));
  Response events = Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt);
  EXPECT_EQ(events.Json().at("events").at(0).at("request_id"), "trace-42");
}

TEST_F(ApiTest, AsOfShowsThePast) {
  const std::string id = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string between = FormatRfc3339(NowMicros());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/revoke", main_.jwt).status, 200);
  ASSERT_EQ(Call("DELETE", "/api/v1/api_token/" + id, main_.jwt).status, 200);
  Response past = Call("GET", "/api/v1/api_token/" + id + "?as_of=" + between, main_.jwt);
  ASSERT_EQ(past.status, 200) << past.body;
  EXPECT_EQ(past.Json().at("details").at("status"), "active");
  EXPECT_EQ(
      Call("GET", "/api/v1/api_token/" + id + "?as_of=2001-01-01T00:00:00Z", main_.jwt).status,
      404);
  EXPECT_EQ(
      Call("GET", "/api/v1/api_token/" + id + "?as_of=" + FormatRfc3339(NowMicros()), main_.jwt)
          .status,
      404);
}

TEST_F(ApiTest, MetricsAndOpenApiNeedNoToken) {
  Call("GET", "/api/v1/ping", main_.jwt);
  Response m = Call("GET", "/metrics", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* name :
       {"tokenledger_http_requests_total{route=\"/api/v1/ping\",method=\"GET\",status=\"200\"}",
        "tokenledger_http_request_duration_seconds_bucket", "tokenledger_commit_batch_size_bucket",
        "tokenledger_commit_sync_seconds_bucket", "tokenledger_events_appended_total",
        "tokenledger_commit_queue_depth"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
  Response doc = Call("GET", "/api/v1/openapi.json", "");
  EXPECT_EQ(doc.status, 200);
  EXPECT_EQ(doc.Json().at("openapi"), "3.1.0");
}

// `top -H` and `perf report --sort comm` tell the stages apart: every long-lived thread has a
// name, and the main thread (I/O loop 0) keeps the process's, so `pgrep tokenledgerd` works.
TEST_F(ApiTest, ThreadsAreNamedByWhatTheyDo) {
  StopServer();
  StartServer({"--threads", "3"});
  ASSERT_EQ(Call("GET", "/api/v1/ping", main_.jwt).status, 200);  // the log writer has started
  const std::string tasks = "/proc/" + std::to_string(server_->pid()) + "/task";
  std::multiset<std::string> names;
  DIR* dir = opendir(tasks.c_str());
  ASSERT_NE(dir, nullptr);
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(tasks + "/" + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  closedir(dir);
  std::string all;
  for (const auto& n : names) all += n + " ";
  for (const char* name :
       {"tl-io-1", "tl-io-2", "tl-committer", "tl-writer", "tl-log", "tl-read"}) {
    EXPECT_GE(names.count(name), 1u) << name << " not among: " << all;
  }
  std::ifstream main_comm(tasks + "/" + std::to_string(server_->pid()) + "/comm");
  std::string main_name;
  std::getline(main_comm, main_name);
  EXPECT_EQ(main_name, "tokenledgerd") << "the main thread keeps the process's name";
}

}  // namespace
}  // namespace tokenledger::e2e

// Idempotency over HTTP, restarts, graceful shutdown under load, paging while tokens are
// created, and the first start on an empty data directory.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;

class DurabilityTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    StartServer();
  }
  std::size_t EventCount(const std::string& id) {
    return Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt)
        .Json()
        .at("pagination")
        .at("item_count")
        .to_number<std::size_t>();
  }
  std::size_t TokenCount() {
    return Call("GET", "/api/v1/api_token", main_.jwt)
        .Json()
        .at("pagination")
        .at("item_count")
        .to_number<std::size_t>();
  }
};

TEST_F(DurabilityTest, CreateReplayIsByteIdenticalAcrossARestart) {
  const std::string body = R"({"details":{"token_scope":"account"},"idempotency_key":"create-1"})";
  Response first = Call("POST", "/api/v1/api_token", main_.jwt, body);
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.Header("Idempotent-Replayed"), "");
  const std::size_t tokens = TokenCount();
  Response again = Call("POST", "/api/v1/api_token", main_.jwt, body);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, first.body) << "byte for byte, the token included";
  EXPECT_EQ(again.Header("Idempotent-Replayed"), "true");
  RestartServer();
  Response after_restart = Call("POST", "/api/v1/api_token", main_.jwt, body);
  EXPECT_EQ(after_restart.status, 200);
  EXPECT_EQ(after_restart.body, first.body);
  EXPECT_EQ(after_restart.Header("Idempotent-Replayed"), "true");
  // The header form is the same key; an equivalent body (explicit nulls) is the same request.
  Response header_form =
      Call("POST", "/api/v1/api_token", main_.jwt,
           R"({"details":{"token_scope":"account","account_id":null,"expires_at":null}})",
           {{"Idempotency-Key", "create-1"}});
  EXPECT_EQ(header_form.body, first.body);
  EXPECT_EQ(TokenCount(), tokens) << "nothing new was written";
}

TEST_F(DurabilityTest, ActionReplayConflictAndKeyRules) {
  const std::string id = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  const std::string suspend = "/api/v1/api_token/" + id + "/suspend";
  Response first = Call("POST", suspend, main_.jwt, "", {{"Idempotency-Key", "s-1"}});
  ASSERT_EQ(first.status, 200);
  const std::size_t events = EventCount(id);
  // Empty body, null, {} and {"idempotency_key": ...} are the same request.
  for (const std::string body : {"", "null", "{}", R"({"idempotency_key":"s-1"})"}) {
    Response r = Call("POST", suspend, main_.jwt, body, {{"Idempotency-Key", "s-1"}});
    EXPECT_EQ(r.status, 200) << body;
    EXPECT_EQ(r.body, first.body) << body;
    EXPECT_EQ(r.Header("Idempotent-Replayed"), "true");
  }
  EXPECT_EQ(EventCount(id), events);
  // A recorded refusal replays too.
  Response refused = Call("POST", suspend, main_.jwt, R"({"idempotency_key":"s-2"})");
  EXPECT_EQ(refused.status, 409);
  Response refused_again = Call("POST", suspend, main_.jwt, R"({"idempotency_key":"s-2"})");
  EXPECT_EQ(refused_again.status, 409);
  EXPECT_EQ(refused_again.body, refused.body);
  EXPECT_EQ(refused_again.Header("Idempotent-Replayed"), "true");
  // Same key, another request: 409, nothing written.
  Response conflict = Call("POST", "/api/v1/api_token/" + id + "/revoke", main_.jwt,
                           R"({"idempotency_key":"s-1"})");
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(conflict.Json().at("code"), "idempotency_key_already_used");
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + id, main_.jwt).Json().at("details").at("status"),
            "suspended");
  // Header and body keys that differ, and malformed keys, are invalid values.
  EXPECT_EQ(
      Call("POST", suspend, main_.jwt, R"({"idempotency_key":"a"})", {{"Idempotency-Key", "b"}})
          .status,
      400);
  EXPECT_EQ(Call("POST", suspend, main_.jwt, R"({"idempotency_key":""})").status, 400);
  EXPECT_EQ(Call("POST", suspend, main_.jwt, R"({"idempotency_key":7})").status, 400);
  EXPECT_EQ(
      Call("POST", suspend, main_.jwt, R"({"idempotency_key":")" + std::string(256, 'k') + "\"}")
          .status,
      400);
  EXPECT_EQ(Call("POST", suspend, main_.jwt, R"({"idempotency_key":"tab\there"})").status, 400);
  // A validation failure records nothing: fixing the request keeps the key usable.
  EXPECT_EQ(
      Call("POST", "/api/v1/api_token", main_.jwt, R"({"details":{},"idempotency_key":"fix"})")
          .status,
      400);
  EXPECT_EQ(Call("POST", "/api/v1/api_token", main_.jwt,
                 R"({"details":{"token_scope":"account"},"idempotency_key":"fix"})")
                .status,
            200);
  // GET ignores idempotency_key.
  EXPECT_EQ(Call("GET", "/api/v1/api_token?idempotency_key=whatever", main_.jwt).status, 200);
}

TEST_F(DurabilityTest, ConcurrentDuplicatesOverSeparateConnectionsMakeOneEvent) {
  const std::size_t before = TokenCount();
  const unsigned short port = server_->port();
  std::vector<std::string> bodies(12);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      HttpClient c(port);
      ready.fetch_add(1);
      while (ready.load() < 12) std::this_thread::yield();
      bodies[i] = c.Request("POST", "/api/v1/api_token",
                            R"({"details":{"token_scope":"account"},"idempotency_key":"race"})",
                            {{"Authorization", "Bearer " + main_.jwt}})
                      .body;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& b : bodies) EXPECT_EQ(b, bodies[0]);
  EXPECT_EQ(TokenCount(), before + 1);
}

TEST_F(DurabilityTest, RestartServesEverythingAsItWas) {
  for (int i = 0; i < 5; ++i) CreateViaApi(main_.jwt);
  const std::string id = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/revoke", main_.jwt).status, 200);
  const std::string list =
      Call("GET", "/api/v1/api_token?pagination[page_size]=100&sorting=id", main_.jwt).body;
  const std::string events = Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt).body;
  RestartServer();
  EXPECT_EQ(Call("GET", "/api/v1/api_token?pagination[page_size]=100&sorting=id", main_.jwt).body,
            list);
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt).body, events);
  EXPECT_EQ(Call("DELETE", "/api/v1/api_token/" + id, main_.jwt).status, 200);
}

// Writers create tokens until the server goes away; returns the ids of every 200 they got.
std::vector<std::string> BurstUntilStopped(unsigned short port, const std::string& jwt,
                                           const std::function<void()>& stop_server) {
  std::mutex mu;
  std::vector<std::string> acknowledged;
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w) {
    writers.emplace_back([&] {
      HttpClient c(port);
      for (;;) {
        auto r =
            c.Raw("POST /api/v1/api_token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + jwt +
                  "\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n"
                  R"({"details":{"token_scope":"account"}})");
        if (r.empty()) break;  // the server went away
        if (r[0].status == 200) {
          std::lock_guard lock(mu);
          acknowledged.push_back(JsonString(r[0].Json().at("details").at("id")));
        }
        if (!c.Connected()) break;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop_server();
  for (auto& t : writers) t.join();
  return acknowledged;
}

TEST_F(DurabilityTest, SigtermDuringABurstLosesNoAcknowledgedWrite) {
  const auto acknowledged = BurstUntilStopped(server_->port(), main_.jwt, [&] {
    EXPECT_EQ(StopServer(SIGTERM), 0) << "graceful shutdown exits 0";
  });
  ASSERT_GT(acknowledged.size(), 10u);
  StartServer();
  for (const auto& id : acknowledged) {
    EXPECT_EQ(Call("GET", "/api/v1/api_token/" + id, main_.jwt).status, 200)
        << "acknowledged " << id << " is missing";
  }
}

TEST_F(DurabilityTest, SigkillDuringABurstLosesNoAcknowledgedWrite) {
  const auto acknowledged = BurstUntilStopped(
      server_->port(), main_.jwt, [&] { EXPECT_EQ(StopServer(SIGKILL), 128 + SIGKILL); });
  ASSERT_GT(acknowledged.size(), 10u);
  StartServer();
  for (const auto& id : acknowledged) {
    EXPECT_EQ(Call("GET", "/api/v1/api_token/" + id, main_.jwt).status, 200)
        << "acknowledged " << id << " is missing after a crash";
  }
  StopServer();
  // Nothing is half-applied: the chain, the streams and the projections agree.
  StoreOptions options;
  options.data_dir = data_dir_;
  auto opened = store::LedgerStore::Open(options, store::OpenMode::kReadOnly);
  ASSERT_TRUE(opened.store) << opened.message;
  auto report = opened.store->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty()) << report->findings[0].message;
}

TEST_F(DurabilityTest, PagingWhileTokensAreCreatedSeesEachExistingTokenOnce) {
  for (int i = 0; i < 23; ++i) CreateViaApi(main_.jwt);
  std::set<std::string> existing;
  const json::value all =
      Call("GET", "/api/v1/api_token?pagination[page_size]=100", main_.jwt).Json();
  for (const auto& s : all.at("summaries").as_array()) {
    existing.insert(JsonString(s.at("id")));
  }
  std::atomic<bool> stop{false};
  std::thread creator([&] {
    HttpClient c(server_->port());
    while (!stop) {
      c.Request("POST", "/api/v1/api_token", R"({"details":{"token_scope":"account"}})",
                {{"Authorization", "Bearer " + main_.jwt}});
    }
  });
  std::multiset<std::string> seen;
  std::string target = "/api/v1/api_token?pagination[page_size]=4";
  json::value page = Call("GET", target, main_.jwt).Json();
  const std::string snapshot =
      "&pagination[snapshot]=" + JsonString(page.at("pagination").at("snapshot"));
  for (;;) {
    for (const auto& s : page.at("summaries").as_array()) seen.insert(JsonString(s.at("id")));
    const auto& next = page.at("pagination").at("next_page_offset");
    if (next.is_null()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    page = Call("GET", target + snapshot + "&pagination[offset]=" + JsonString(next), main_.jwt)
               .Json();
  }
  stop = true;
  creator.join();
  // Every token present at the start appears exactly once; tokens created before the first
  // page's snapshot may appear too, but nothing appears twice.
  for (const auto& id : existing) EXPECT_EQ(seen.count(id), 1u) << id;
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size())
      << "no token seen twice";
  EXPECT_GT(TokenCount(), existing.size()) << "tokens were created meanwhile";
}

TEST(FirstStartTest, EmptyDataDirectoryGetsATokenAndACurlCommand) {
  store::testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  ServerProcess server(data);
  ASSERT_TRUE(server.Start());
  const std::string out = server.Stdout();
  const auto curl = out.find("curl -s -H 'Authorization: Bearer ");
  ASSERT_NE(curl, std::string::npos) << out;
  const auto jwt_start = curl + std::string("curl -s -H 'Authorization: Bearer ").size();
  const std::string jwt = out.substr(jwt_start, out.find('\'', jwt_start) - jwt_start);
  EXPECT_NE(out.find("/api/v1/ping"), std::string::npos);
  HttpClient client(server.port());
  Response r = client.Request("GET", "/api/v1/ping", "", {{"Authorization", "Bearer " + jwt}});
  EXPECT_EQ(r.status, 200) << r.body;
  // The key was created 0600; the token is not in the logs.
  struct stat st {};
  ASSERT_EQ(::stat((data + "/signing.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(server.Stderr().find(jwt), std::string::npos) << "the secret must not be logged";
  EXPECT_EQ(server.Stop(), 0);
  // The second start prints no new token.
  ServerProcess again(data);
  ASSERT_TRUE(again.Start());
  EXPECT_EQ(again.Stdout().find("curl"), std::string::npos);
  EXPECT_EQ(again.Stop(), 0);
}

TEST(ServerStartTest, RefusesAKeyFileReadableByOthersAndASecondInstance) {
  store::testing::TempDir dir;
  const std::string key = dir.path() + "/key";
  const int fd = ::open(key.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, std::string(64, 'a').data(), 64), 64);
  ::close(fd);
  ::chmod(key.c_str(), 0644);
  ServerProcess loose(dir.path() + "/data", {"--signing-key-file", key});
  EXPECT_FALSE(loose.Start(/*expect_success=*/false));
  EXPECT_NE(loose.Stderr().find("chmod 600"), std::string::npos) << loose.Stderr();

  ServerProcess first(dir.path() + "/data2");
  ASSERT_TRUE(first.Start());
  ServerProcess second(dir.path() + "/data2");
  EXPECT_FALSE(second.Start(/*expect_success=*/false));
  EXPECT_NE(second.Stderr().find("already in use"), std::string::npos) << second.Stderr();
  EXPECT_EQ(first.Stop(), 0);
}

TEST(ServerFlagsTest, HelpVersionAndBadFlags) {
  auto run = [](const std::string& args) {
    std::string out;
    std::FILE* p = ::popen((std::string(TOKENLEDGERD_PATH) + " " + args + " 2>&1").c_str(), "r");
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int status = ::pclose(p);
    return std::make_pair(WEXITSTATUS(status), out);
  };
  auto [help_rc, help] = run("--help");
  EXPECT_EQ(help_rc, 0);
  EXPECT_NE(help.find("--listen HOST:PORT"), std::string::npos);
  EXPECT_NE(help.find("TOKENLEDGER_DATA_DIR"), std::string::npos);
  auto [version_rc, version] = run("--version");
  EXPECT_EQ(version_rc, 0);
  EXPECT_EQ(version.rfind("tokenledgerd ", 0), 0u);
  auto [bad_rc, bad] = run("--no-such-flag");
  EXPECT_EQ(bad_rc, 2);
  EXPECT_NE(bad.find("--no-such-flag"), std::string::npos);
  EXPECT_EQ(run("--listen nonsense --data-dir /tmp/tokenledger-never-created").first, 2);
  EXPECT_FALSE(std::filesystem::exists("/tmp/tokenledger-never-created"))
      << "refused before touching disk";
}

class ListenerTest : public E2ETest {};

TEST_F(ListenerTest, ConnectionsOverTheLimitGet503) {
  StartServer({"--max-connections", "2"});
  HttpClient a(server_->port()), b(server_->port());
  ASSERT_EQ(a.Request("GET", "/healthz").status, 200);
  ASSERT_EQ(b.Request("GET", "/healthz").status, 200);
  HttpClient c(server_->port());
  auto refused = c.Raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].status, 503);
  EXPECT_EQ(refused[0].Json().at("code"), "unknown");
  EXPECT_EQ(refused[0].Header("Retry-After"), "1");
  a.Close();
  // Once a connection closes, a new one is served again.
  for (int i = 0; i < 100; ++i) {
    HttpClient d(server_->port());
    if (d.Request("GET", "/healthz").status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "a freed connection slot was never reused";
}

TEST_F(ListenerTest, MetricsOnASeparateAddress) {
  StartServer({"--metrics-listen", "127.0.0.1:0"});
  ASSERT_NE(server_->metrics_port(), 0);
  EXPECT_EQ(Call("GET", "/metrics", "").status, 404) << "not exposed with the API";
  HttpClient metrics(server_->metrics_port());
  Response m = metrics.Request("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("tokenledger_http_requests_total"), std::string::npos);
  EXPECT_EQ(metrics.Request("GET", "/healthz").status, 200);
  EXPECT_EQ(
      metrics.Request("GET", "/api/v1/ping", "", {{"Authorization", "Bearer " + main_.jwt}}).status,
      404)
      << "the API is not exposed on the metrics address";
}

}  // namespace
}  // namespace tokenledger::e2e

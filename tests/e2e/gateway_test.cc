// The real nginx in front of a tiny upstream, configured with the shipped example
// (contrib/nginx/tokenledger-gateway.conf, only its five SET values replaced), asking the real
// tokenledgerd through introspection: what gets through, what is refused, and how soon a
// suspension reaches the gateway through its cache.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {

constexpr Micros kCacheBound = 2 * kMicrosPerSecond;  // the server's --introspection-cache

unsigned short FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "no free port";
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces the one occurrence of `from` (the example must still hold it: else it drifted).
void ReplaceOnce(std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "the example no longer holds '" << from << "'";
  ASSERT_EQ(text.find(from, at + 1), std::string::npos) << "'" << from << "' is there twice";
  text.replace(at, from.size(), to);
}

// nginx in the foreground (master and worker), under `dir`.
class Nginx {
 public:
  ~Nginx() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // Starts it with `conf` and waits until `port` accepts connections.
  void Start(const std::string& dir, const std::string& conf, unsigned short port) {
    const std::string path = dir + "/nginx.conf";
    std::ofstream(path) << conf;
    std::string binary = "/usr/sbin/nginx";
    ASSERT_EQ(::access(binary.c_str(), X_OK), 0)
        << "nginx is not installed (scripts/setup installs nginx-light)";
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string log = dir + "/stderr.log";
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::execl(binary.c_str(), "nginx", "-p", dir.c_str(), "-c", path.c_str(), "-e",
              (dir + "/error.log").c_str(), "-g", "daemon off;", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      const int fd = ConnectLoopback(port, 1);
      if (fd >= 0) {
        ::close(fd);
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "nginx exited: " << Slurp(dir + "/stderr.log") << Slurp(dir + "/error.log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "nginx does not listen: " << Slurp(dir + "/error.log");
  }

 private:
  pid_t pid_ = -1;
};

class GatewayTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    gateway_ = SeedGateway();
    env_ = ids_.Generate();
    env_token_ = Seed(account_, env_);
    StartServer({"--introspection-cache", "2s"});

    const std::string nginx_dir = dir_.path() + "/nginx";
    ::mkdir(nginx_dir.c_str(), 0700);
    gateway_port_ = FreePort();
    const unsigned short upstream_port = FreePort();
    std::string example = Slurp(TOKENLEDGER_SOURCE_DIR "/contrib/nginx/tokenledger-gateway.conf");
    ASSERT_FALSE(example.empty());
    ReplaceOnce(example, "server 127.0.0.1:8080;",
                "server 127.0.0.1:" + std::to_string(server_->port()) + ";");
    ReplaceOnce(example, "server 127.0.0.1:9000;",
                "server 127.0.0.1:" + std::to_string(upstream_port) + ";");
    ReplaceOnce(example, "/run/nginx-tokenledger-cache", nginx_dir + "/cache");
    ReplaceOnce(example, "listen 8000;", "listen 127.0.0.1:" + std::to_string(gateway_port_) + ";");
    ReplaceOnce(example, "GATEWAY_INTROSPECTION_TOKEN", gateway_.jwt);
    std::ofstream(nginx_dir + "/tokenledger-gateway.conf") << example;
    // The tiny upstream answers with what the gateway told it.
    const std::string conf =
        (::geteuid() == 0 ? "user root;\n" : "") + std::string("pid ") + nginx_dir +
        "/nginx.pid;\nworker_processes 1;\nevents { worker_connections 256; }\nhttp {\n"
        "  access_log " +
        nginx_dir + "/access.log;\n  client_body_temp_path " + nginx_dir +
        "/body;\n  proxy_temp_path " + nginx_dir + "/proxy;\n  fastcgi_temp_path " + nginx_dir +
        "/fastcgi;\n  uwsgi_temp_path " + nginx_dir + "/uwsgi;\n  scgi_temp_path " + nginx_dir +
        "/scgi;\n  include " + nginx_dir +
        "/tokenledger-gateway.conf;\n  server {\n    listen 127.0.0.1:" +
        std::to_string(upstream_port) +
        ";\n    location / { return 200 \"account=$http_x_account_id "
        "token=$http_x_token_id scope=$http_x_token_scope "
        "environment=$http_x_token_environment_id agent=$http_x_token_agent_id\\n\"; }\n  "
        "}\n}\n";
    nginx_.Start(nginx_dir, conf, gateway_port_);
    gateway_client_ = std::make_unique<HttpClient>(gateway_port_);
  }

  Response ThroughGateway(const std::string& authorization,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (!authorization.empty()) headers.emplace_back("Authorization", authorization);
    return gateway_client_->Request("GET", "/orders/42", "", headers);
  }
  Response WithToken(const std::string& jwt) { return ThroughGateway("Bearer " + jwt); }
  std::string Reached(const Seeded& token, const std::string& scope = "account",
                      const std::string& environment = "", const std::string& agent = "") {
    return "account=" + token.account_id.ToString() + " token=" + token.token_id.ToString() +
           " scope=" + scope + " environment=" + environment + " agent=" + agent + "\n";
  }

  Seeded gateway_, env_token_;
  Id env_;
  unsigned short gateway_port_ = 0;
  Nginx nginx_;
  std::unique_ptr<HttpClient> gateway_client_;
};

TEST_F(GatewayTest, AnActiveTokenReachesTheUpstreamWithItsAccount) {
  Response r = WithToken(main_.jwt);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, Reached(main_));
  EXPECT_EQ(ThroughGateway("bearer " + main_.jwt).status, 200) << "the scheme in any case";
  // An environment token's scope and environment go along: the application must hold it to
  // that environment.
  EXPECT_EQ(WithToken(env_token_.jwt).body, Reached(env_token_, "environment", env_.ToString()));
  // What the client claims is replaced by what the ledger says, or dropped where the ledger
  // says nothing (an account token has no environment).
  Response spoofed = ThroughGateway("Bearer " + main_.jwt, {{"X-Account-Id", "someone-else"},
                                                            {"X-Token-Id", "forged"},
                                                            {"X-Token-Scope", "admin"},
                                                            {"X-Token-Environment-Id", "prod"},
                                                            {"X-Token-Agent-Id", "agent-007"}});
  EXPECT_EQ(spoofed.body, Reached(main_));
  // An agent_deployment token: its environment and its agent.
  const Id agent = ids_.Generate();
  const auto created =
      CreateViaApi(main_.jwt, R"({"token_scope":"agent_deployment","environment_id":")" +
                                  env_.ToString() + R"(","agent_id":")" + agent.ToString() + "\"}");
  Seeded agent_token;
  agent_token.account_id = account_;
  agent_token.token_id = *Id::Parse(JsonString(created.at("details").at("id")));
  EXPECT_EQ(WithToken(JsonString(created.at("token"))).body,
            Reached(agent_token, "agent_deployment", env_.ToString(), agent.ToString()));
}

TEST_F(GatewayTest, RefusalsAreNotCachedAndTheGatewayFailsClosedWithoutTheLedger) {
  const auto c = CreateViaApi(main_.jwt);
  const std::string id = JsonString(c.at("details").at("id"));
  const std::string jwt = JsonString(c.at("token"));
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt).status, 200);
  EXPECT_EQ(WithToken(jwt).status, 401);
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/activate", main_.jwt).status, 200);
  EXPECT_EQ(WithToken(jwt).status, 200) << "a cached refusal would still say 401";
  StopServer();
  Response down = WithToken(main_.jwt);  // never asked before: not in the cache
  EXPECT_EQ(down.status, 500) << down.body;
}

TEST_F(GatewayTest, EveryOtherTokenIsRefusedByNginxWith401) {
  auto created = [&] {
    const auto c = CreateViaApi(main_.jwt);
    return std::pair{JsonString(c.at("details").at("id")), JsonString(c.at("token"))};
  };
  const auto [suspended_id, suspended] = created();
  const auto [revoked_id, revoked] = created();
  const auto [deleted_id, deleted] = created();
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + suspended_id + "/suspend", main_.jwt).status, 200);
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + revoked_id + "/revoke", main_.jwt).status, 200);
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + deleted_id + "/revoke", main_.jwt).status, 200);
  ASSERT_EQ(Call("DELETE", "/api/v1/api_token/" + deleted_id, main_.jwt).status, 200);
  std::string forged = main_.jwt;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  auto claims = signer_->Verify(main_.jwt);
  ASSERT_TRUE(claims);
  auth::Claims unknown = *claims;
  unknown.token_id = ids_.Generate();
  for (const auto& [what, authorization] : std::vector<std::pair<std::string, std::string>>{
           {"suspended", "Bearer " + suspended},
           {"revoked", "Bearer " + revoked},
           {"deleted", "Bearer " + deleted},
           {"forged", "Bearer " + forged},
           {"unknown", "Bearer " + signer_->Sign(unknown)},
           {"garbage", "Bearer garbage"},
           {"the gateway's own credential", "Bearer " + gateway_.jwt},
           {"not a bearer token", "Basic dXNlcjpwYXNz"},
           {"no token", ""}}) {
    Response r = ThroughGateway(authorization);
    EXPECT_EQ(r.status, 401) << what << ": " << r.body;
  }
  // Expired: through until its expiry (made just now, on a whole second, 3 s ahead: the
  // signed `exp` is whole seconds), refused after it although its answer was cached.
  const Micros soon = (NowMicros() / kMicrosPerSecond + 3) * kMicrosPerSecond;
  const std::string short_lived =
      JsonString(CreateViaApi(main_.jwt, R"({"token_scope":"account","expires_at":")" +
                                             FormatRfc3339(soon) + R"("})")
                     .at("token"));
  EXPECT_EQ(WithToken(short_lived).status, 200);
  std::this_thread::sleep_for(std::chrono::microseconds(soon - NowMicros() + 100'000));
  EXPECT_EQ(WithToken(short_lived).status, 401) << "the cache never outlives the expiry";
}

TEST_F(GatewayTest, ASuspensionThroughTheApiReachesTheGatewayWithinTheCacheBound) {
  const auto c = CreateViaApi(main_.jwt);
  const std::string id = JsonString(c.at("details").at("id"));
  const std::string jwt = JsonString(c.at("token"));
  ASSERT_EQ(WithToken(jwt).status, 200);  // now cached by the gateway
  const auto cached_at = std::chrono::steady_clock::now();
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt).status, 200);
  const auto suspended_at = std::chrono::steady_clock::now();
  const int right_after = WithToken(jwt).status;
  if (std::chrono::steady_clock::now() - cached_at < std::chrono::milliseconds(1500)) {
    EXPECT_EQ(right_after, 200) << "served from the gateway's cache (the answer said max-age=2)";
  }
  int status = right_after;
  while (status == 200 &&
         std::chrono::steady_clock::now() - suspended_at < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = WithToken(jwt).status;
  }
  const auto took = std::chrono::steady_clock::now() - suspended_at;
  EXPECT_EQ(status, 401);
  // nginx keeps a cached answer's lifetime in whole seconds of its clock: up to one more.
  EXPECT_LE(took, std::chrono::microseconds(kCacheBound) + std::chrono::milliseconds(1500))
      << "refused after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
      << " ms";
}

}  // namespace
}  // namespace tokenledger::e2e

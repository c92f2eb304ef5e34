// End-to-end harness: the real tokenledgerd on a free loopback port with a temporary data
// directory, a raw HTTP/1.1 client over a real socket, and seeding of accounts and tokens
// through the real ledger (as the operator's mint does) before the server starts.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "src/auth/jwt.h"
#include "src/store/ledger_store.h"
#include "tests/store/store_test_util.h"

// Lets tests write EXPECT_EQ(json_value, some_std_string). Test-only convenience.
namespace boost::json {
template <typename S>
requires(std::is_same_v<S, std::string> || std::is_same_v<S, std::string_view>) inline bool
operator==(const value& v, const S& s) {
  return v.is_string() && v.get_string() == s;
}
}  // namespace boost::json

namespace tokenledger::e2e {

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string raw;  // status line, headers and body as received

  boost::json::value Json() const;
  std::string Header(const std::string& name) const;
};

// One keep-alive connection; reconnects when the server closed it.
class HttpClient {
 public:
  explicit HttpClient(unsigned short port) : port_(port) {}
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Bodies are sent as JSON unless `headers` give a Content-Type.
  Response Request(const std::string& method, const std::string& target,
                   const std::string& body = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Sends bytes as they are and reads `responses` responses (empty on failure). With
  // `head`, the responses answer HEAD requests: no body is read, whatever Content-Length says.
  std::vector<Response> Raw(const std::string& bytes, int responses = 1, bool head = false);
  // Sends bytes as they are and reads every response until the server closes the connection
  // or sends nothing for `wait_ms`. `closed` tells which; `Leftover()` holds bytes that did
  // not parse as a response.
  std::vector<Response> RawUntilClose(const std::string& bytes, bool* closed, int wait_ms = 3000);
  const std::string& Leftover() const { return buffer_; }
  bool Connected() const { return fd_ >= 0; }
  void Close();

 private:
  bool Connect();
  // Reads one response; nullopt when the connection ends first or the bytes are not a
  // response (`eof` then tells whether the peer closed the connection).
  std::optional<Response> ReadResponse(bool head = false, bool* eof = nullptr);

  unsigned short port_;
  int fd_ = -1;
  std::string buffer_;
  bool keep_closed_ = false;  // keep the socket open after a Connection: close response
};

struct Seeded {
  Id account_id;
  Id token_id;
  std::string jwt;
};

// A tokenledgerd process. Stop() sends SIGTERM and returns the exit status.
class ServerProcess {
 public:
  ServerProcess(std::string data_dir, std::vector<std::string> extra_args = {});
  ~ServerProcess();
  // Waits until it logs "listening". With expect_success=false, an early exit is not a test
  // failure (for tests of refused starts).
  bool Start(bool expect_success = true);
  int Stop(int signal = 15);
  void Kill();
  unsigned short port() const { return port_; }
  unsigned short metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  // The process has not exited (reaps it if it has; then pid() is -1).
  bool Alive();
  std::string Stdout() const;
  // What the server wrote to stderr (with UseStderrPipe: what Start read from the pipe).
  std::string Stderr() const;

  // Call before Start: the server's stderr becomes a pipe whose read end the test holds
  // (as a log shipper would), instead of a file. Start reads it up to the "listening" line;
  // after that nothing reads it unless the test does, through stderr_pipe().
  void UseStderrPipe() { stderr_pipe_ = true; }
  int stderr_pipe() const { return err_pipe_; }  // the read end; -1 when closed or unused
  void CloseStderrPipe();

 private:
  void ReadStderrPipe();  // reads what is available now, without blocking

  std::string data_dir_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
  unsigned short metrics_port_ = 0;
  std::string out_path_, err_path_;
  bool stderr_pipe_ = false;
  int err_pipe_ = -1;
  std::string err_read_;  // read from err_pipe_ so far
};

class E2ETest : public ::testing::Test {
 protected:
  E2ETest();
  ~E2ETest() override;
  void SetUp() override;

  // Seeds a token through the real ledger while the server is stopped. Its scope: `scope`,
  // else environment with an environment, else account.
  Seeded Seed(const Id& account, std::optional<Id> environment = std::nullopt,
              std::optional<Micros> expires_at = std::nullopt,
              std::optional<Id> admin = std::nullopt,
              std::optional<events::TokenScope> scope = std::nullopt);
  // Seeds a gateway's credential: an introspection token of a fresh account.
  Seeded SeedGateway() {
    return Seed(ids_.Generate(), std::nullopt, std::nullopt, std::nullopt,
                events::TokenScope::kIntrospection);
  }
  void StartServer(std::vector<std::string> extra_args = {});
  int StopServer(int signal = 15);
  void RestartServer();

  Response Call(const std::string& method, const std::string& target, const std::string& jwt,
                const std::string& body = "",
                std::vector<std::pair<std::string, std::string>> headers = {});
  // Creates an account-scoped token (or environment-scoped) through the API; returns details.
  boost::json::object CreateViaApi(
      const std::string& jwt, const std::string& details_json = R"({"token_scope":"account"})");

  store::testing::TempDir dir_;
  std::string data_dir_;
  auth::SigningKey key_{};
  std::unique_ptr<auth::JwtSigner> signer_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
  IdGenerator ids_;
  Id account_ = ids_.Generate();
  Seeded main_;  // an account-scoped token of account_
};

std::string JsonString(const boost::json::value& v);

// A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY and `timeout_s` on receives
// and sends; -1 if it cannot connect.
int ConnectLoopback(unsigned short port, int timeout_s);

}  // namespace tokenledger::e2e

// The HTTP request path from raw bytes to the handler's answer: the real http::Server (its
// request parser, limits, keep-alive, chunked bodies, 100-continue), the router, the query grammar,
// the JSON bodies and every handler, with a real LedgerStore behind it. All of it runs in this
// process (one I/O thread, the store's committer), so all of it is coverage-instrumented.
//
// Set up once in LLVMFuzzerInitialize: a fresh ledger in a temporary directory, an account with
// an account-scoped token (the caller), an environment-scoped token and a target token, and the
// server on 127.0.0.1 port 0 on a background thread. Per input, the placeholders below are
// replaced, the bytes are written to a new connection, the write side is shut down, and
// everything the server answers is read until it closes:
//
//   @TOKEN@     the account token's JWT          @ENVTOKEN@  the environment token's JWT
//   @ID@        the target token's id            @ACCOUNT@   the account id
//   @ENV@       the environment token's environment id
//
// The callers' own tokens are never named by a placeholder, so inputs cannot revoke them. The
// target token is replaced by a fresh active one whenever an input suspended, revoked or
// deleted it, so later inputs reach its handlers again.
//
// Invariants (a violation aborts, so libFuzzer records the input): the output is a sequence of
// complete HTTP responses (HTTP/1.1, or HTTP/1.0 answering an HTTP/1.0 request), nothing else;
// no status is 5xx other than 503; the server closes the connection within a few seconds.
//
// HTTP_FUZZ_PRINT=1 prints every exchange (useful when running single inputs).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "src/auth/jwt.h"
#include "src/http/api.h"
#include "src/http/metrics.h"
#include "src/http/request_parser.h"
#include "src/http/server.h"
#include "src/store/ledger_store.h"
#include "tokenledger/log.h"

namespace {

using namespace tokenledger;
namespace bhttp = boost::beast::http;

constexpr auth::SigningKey kKey = {7,  6,  5,  4,  3,  2,  1,  0,  9,  8,  7,  6,  5,  4,  3,  2,
                                   11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26};

struct Harness {
  std::string dir;
  std::unique_ptr<store::LedgerStore> store;
  auth::JwtSigner signer{kKey};  // the original key, no kid: how the harness's tokens are made
  auth::KeyRing keys = auth::KeyRing::Single(kKey);
  http::HttpMetrics metrics;
  std::unique_ptr<http::Api> api;
  std::unique_ptr<http::Server> server;
  std::thread io;
  unsigned short port = 0;

  Id account;
  Id environment;
  std::string token_jwt;
  std::string env_token_jwt;
  Id target;
  std::string target_text;
};

// Reachable from a global for the whole run (so LeakSanitizer never sees it as a leak);
// torn down by an atexit handler.
Harness* g_harness = nullptr;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "http_fuzz: %s\n", what.c_str());
  std::abort();
}

core::TokenState CreateToken(Harness& h, std::optional<Id> environment) {
  core::CreateToken c;
  c.account_id = h.account;
  if (environment) {
    c.scope = events::TokenScope::kEnvironment;
    c.environment_id = environment;
  }
  store::CommandRequest req;
  req.command = c;
  req.request_id = "http-fuzz-setup";
  store::CommandResult r = h.store->Submit(std::move(req)).get();
  if (r.outcome != store::Outcome::kApplied || !r.after) Die("cannot create a token");
  return r.after->state;
}

// A fresh active target token whenever the last input changed the current one.
void RefreshTarget(Harness& h) {
  auto row = h.store->GetToken(h.target);
  if (!row) Die("reading the target token failed: " + row.error().message);
  if (*row && (*row)->state.status == core::TokenStatus::kActive) return;
  h.target = CreateToken(h, std::nullopt).id;
  h.target_text = h.target.ToString();
}

void TearDown() {
  Harness* h = g_harness;
  if (!h) return;
  h->server->Shutdown();
  if (h->io.joinable()) h->io.join();
  // As tokenledgerd does: slow reads finish, then the ledger (it answers queued writes into
  // the stopped server).
  h->api->StopSlowReads();
  h->store.reset();
  h->api.reset();
  h->server.reset();
  std::error_code ec;
  std::filesystem::remove_all(h->dir, ec);
  g_harness = nullptr;
  delete h;
}

void SetUp() {
  SetLogLevel(LogLevel::kError);  // one log line per request would drown libFuzzer's output
  auto* h = new Harness;
  g_harness = h;
  std::random_device rd;
  h->dir = (std::filesystem::temp_directory_path() /
            ("tokenledger-http-fuzz-" + std::to_string(::getpid()) + "-" + std::to_string(rd())))
               .string();
  StoreOptions so;
  so.data_dir = h->dir;
  so.sync = false;  // nothing here needs durability
  auto opened = store::LedgerStore::Open(so);
  if (!opened.store) Die("cannot open the ledger: " + opened.message);
  h->store = std::move(opened.store);

  IdGenerator ids;
  h->account = ids.Generate();
  h->environment = ids.Generate();
  h->token_jwt = h->signer.Sign([&] {
    const core::TokenState s = CreateToken(*h, std::nullopt);
    return auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id);
  }());
  const core::TokenState env = CreateToken(*h, h->environment);
  h->env_token_jwt = h->signer.Sign(auth::MakeClaims(env.id, env.inserted_at, env.expires_at,
                                                     env.account_id, env.environment_id));
  h->target = CreateToken(*h, std::nullopt).id;
  h->target_text = h->target.ToString();

  http::ApiOptions api_options;
  api_options.policy = so.policy;
  h->api = std::make_unique<http::Api>(*h->store, h->keys, api_options, h->metrics);
  ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.threads = 1;
  server_options.read_timeout = 200 * 1000;  // partial requests end quickly
  server_options.shutdown_grace = kMicrosPerSecond;
  http::Api* api = h->api.get();
  // The server watches SIGINT/SIGTERM (Asio's signal_set installs its handlers when it is
  // built); keep libFuzzer's, so ^C and -max_total_time still end the run the usual way.
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, nullptr, &old_int);
  sigaction(SIGTERM, nullptr, &old_term);
  h->server = std::make_unique<http::Server>(
      server_options,
      [api](std::shared_ptr<http::HttpRequest> request, http::Responder respond) {
        api->Handle(std::move(request), std::move(respond));
      },
      h->metrics);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (Status s = h->server->Listen(); !s) Die("cannot listen: " + s.error().message);
  h->port = h->server->ApiPort();
  h->io = std::thread([h] { h->server->Run(); });
  std::atexit(TearDown);
}

void ReplaceAll(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

std::string Printable(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n\n    ";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

[[noreturn]] void Finding(const std::string& what, std::string_view request,
                          std::string_view response) {
  std::fprintf(stderr, "http_fuzz: %s\n  request:\n    %s\n  response:\n    %s\n", what.c_str(),
               Printable(request).c_str(), Printable(response).c_str());
  std::abort();
}

// Sends the request bytes on a new connection and returns everything the server wrote, and
// whether the server ended with a clean close (false: reset).
std::pair<std::string, bool> Exchange(unsigned short port, std::string_view request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    // libFuzzer's -timeout alarm (SIGALRM, installed without SA_RESTART) can interrupt the
    // handshake; the connection then completes in the background, so wait for it.
    if (errno != EINTR) Die(std::string("cannot connect to the server: ") + std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    while (::poll(&p, 1, 5000) < 0 && errno == EINTR) {
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (!(p.revents & POLLOUT) || err != 0)
      Die(std::string("cannot connect to the server: ") + std::strerror(err ? err : ETIMEDOUT));
  }
  timeval tv{5, 0};  // far beyond the server's read timeout: a longer wait is a hang
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool clean = true;
  for (std::size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // the server stopped reading (it refused the request and closed)
    }
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string response;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      response.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ::close(fd);
      Finding("the server did not close the connection within 5 s", request, response);
    }
    clean = false;  // ECONNRESET: it closed with unread request bytes
    break;
  }
  ::close(fd);
  return {response, clean};
}

// For each request in `input`, in order, whether its answer has no body: it is an answer to
// HEAD (RFC 9110 9.3.2). Read as the server reads: a request whose header was read is known
// by its method even when its body is then refused.
std::vector<bool> HeadFlags(std::string_view input) {
  const ServerOptions limits;
  std::vector<bool> flags;
  while (!input.empty()) {
    http::HttpRequest request;
    http::RequestParser::Reset(request);
    http::RequestParser parser(request, limits.max_header_bytes, limits.max_body_bytes);
    boost::system::error_code ec;
    std::size_t used = 0;
    while (!parser.Done() && used < input.size()) {
      used += parser.Put(boost::asio::buffer(input.data() + used, input.size() - used), ec);
      if (ec) break;  // need_more at the input's end, or an error: it is answered and closed
    }
    flags.push_back(parser.HeaderDone() && parser.IsHead());
    if (!parser.Done()) break;  // answered (or not) and the connection closes
    input.remove_prefix(used);
  }
  return flags;
}

// Every response must be complete HTTP; no 5xx but 503.
void CheckResponses(std::string_view request, std::string_view output, bool clean) {
  std::string_view rest = output;
  const std::vector<bool> head = HeadFlags(request);
  for (std::size_t index = 0; !rest.empty(); ++index) {
    if (!rest.starts_with("HTTP/1.1 ") && !rest.starts_with("HTTP/1.0 "))
      Finding("a response does not start with an HTTP/1.x status line", request, output);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.skip(index < head.size() && head[index]);  // an answer to HEAD has no body
    parser.eager(true);
    parser.body_limit(64 << 20);
    boost::system::error_code ec;
    std::size_t used = 0;
    while (!ec && !parser.is_done() && used < rest.size()) {
      const std::size_t n =
          parser.put(boost::asio::buffer(rest.data() + used, rest.size() - used), ec);
      used += n;
      if (ec == bhttp::error::need_more) {
        ec = {};  // the output ends inside this response
        break;
      }
      if (n == 0 && !ec) break;
    }
    if (!parser.is_done() && !ec && parser.is_header_done() && !parser.chunked() &&
        !parser.content_length()) {
      // A body delimited by the close of the connection (never written by our server).
      parser.put_eof(ec);
      used = rest.size();
    }
    if (ec || !parser.is_done()) {
      if (!clean) return;  // the reset may have cut the last response short
      Finding("the output is not a sequence of complete HTTP responses (" +
                  (ec ? ec.message() : std::string("incomplete")) + ")",
              request, output);
    }
    const auto& res = parser.get();
    const unsigned status = res.result_int();
    if (res.version() == 10 && request.find("HTTP/1.0") == std::string_view::npos)
      Finding("an HTTP/1.0 response to a request without HTTP/1.0", request, output);
    if (status >= 500 && status != 503)
      Finding("status " + std::to_string(status) + " (a 5xx other than 503 is a bug)", request,
              output);
    rest.remove_prefix(used);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  SetUp();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness& h = *g_harness;
  std::string request(reinterpret_cast<const char*>(data), size);
  ReplaceAll(request, "@TOKEN@", h.token_jwt);
  ReplaceAll(request, "@ENVTOKEN@", h.env_token_jwt);
  ReplaceAll(request, "@ID@", h.target_text);
  ReplaceAll(request, "@ACCOUNT@", h.account.ToString());
  ReplaceAll(request, "@ENV@", h.environment.ToString());
  const auto [output, clean] = Exchange(h.port, request);
  static const bool print = std::getenv("HTTP_FUZZ_PRINT") != nullptr;
  if (print) {
    std::fprintf(stderr, "request:\n    %s\nresponse:\n    %s\n", Printable(request).c_str(),
                 Printable(output).c_str());
  }
  CheckResponses(request, output, clean);
  RefreshTarget(h);
  return 0;
}

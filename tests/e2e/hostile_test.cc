// Hostile volume: more than 100,000 malformed or hostile requests (framing garbage, smuggling
// attempts, slow clients, bad JSON, forged JWTs, bad ids and query values, idempotency abuse,
// odd methods) from four seeded attacker threads, with slow-client waves and a normal
// keep-alive client beside them, against the real tokenledgerd.
//
// Core guarantees (HostileTest.VolumeKeepsServerHealthy):
//   - no response with a status >= 500 except the documented overload 503 ("... retry shortly");
//   - the server never dies, and logs no error-level line;
//   - the normal client's requests all succeed, and its p99 latency stays <= kNormalP99Ms
//     (250 ms: a fairness bound that holds on a shared 2-core machine under this attack, not a
//     benchmark figure; docs/SOAK.md lists the measured values);
//   - slow clients are cut by the read timeout (1 s here), slowloris included;
//   - after the attack, open sockets return to the baseline (+2), all fds to baseline (+16,
//     for SST/WAL files RocksDB may open meanwhile) and RSS to baseline + 64 MiB (the memtable
//     absorbs the attack's writes: up to 64 MiB by RocksDB's default write buffer);
//   - `tokenledger verify` is clean after a graceful stop.
// HostileTest.EachAttackGetsItsRfcAnswer sends every attack variant once and checks its
// individual answer (RFC 9112 framing rules, SPEC error statuses).
//
// Seeded: the seed is printed; TOKENLEDGER_SEED=<n> reproduces a run. TOKENLEDGER_HOSTILE_REQUESTS
// changes the volume (default 100000).
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
using Clock = std::chrono::steady_clock;

// Under AddressSanitizer (scripts/test --sanitize) the server runs several times slower and
// keeps freed memory in quarantine (256 MiB by default), so the sanitizer run sends a fifth of
// the volume, leaves RSS unchecked (LeakSanitizer checks leaks at exit) and allows for the
// slowdown in p99: it is there to find
// memory errors on the request path. The full volume and the real bounds hold in the normal
// build, which CI runs first.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
constexpr double kNormalP99Ms = kSanitized ? 1000 : 250;
constexpr long kRssMarginKiB = 64 * 1024;  // not checked under ASan: quarantine, not leaks
constexpr int kSocketMargin = 2;
constexpr int kFdMargin = 16;
constexpr int kWorkers = 4;
constexpr int kSlowWave = 50;
constexpr int kSlowloris = 4;
constexpr auto kReadTimeout = std::chrono::seconds(1);
constexpr auto kAttackBudget = std::chrono::seconds(150);

std::uint64_t TestSeed() {
  const char* env = std::getenv("TOKENLEDGER_SEED");
  return env ? std::strtoull(env, nullptr, 10) : 20261128;
}

std::uint64_t Volume() {
  const char* env = std::getenv("TOKENLEDGER_HOSTILE_REQUESTS");
  return env ? std::strtoull(env, nullptr, 10) : kSanitized ? 20000 : 100000;
}

// ------------------------------------------------------------------------------------------
// Raw sockets

// Closes with a reset: no TIME_WAIT, so tens of thousands of short connections do not run out
// of ephemeral ports.
void Abort(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

struct Answer {
  int status = 0;
  bool close = false;  // Connection: close
  std::string body;
};

// Takes one response off the front of `buf`; false if it is not complete (or not a response,
// then `bad` is set). A response to HEAD has no content whatever its Content-Length says.
bool TakeResponse(std::string& buf, bool head, Answer* out, bool* bad) {
  const std::size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  if (buf.compare(0, 7, "HTTP/1.") != 0 || buf.size() < 12) {
    *bad = true;
    return false;
  }
  out->status = std::atoi(buf.c_str() + 9);
  std::string head_text = buf.substr(0, end);
  for (auto& c : head_text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::size_t length = 0;
  if (auto p = head_text.find("\r\ncontent-length:"); p != std::string::npos)
    length = std::strtoul(head_text.c_str() + p + 17, nullptr, 10);
  out->close = head_text.find("\r\nconnection: close") != std::string::npos;
  if (head) length = 0;
  if (buf.size() < end + 4 + length) return false;
  out->body = buf.substr(end + 4, length);
  buf.erase(0, end + 4 + length);
  return true;
}

struct Exchange {
  std::vector<Answer> answers;
  bool connect_failed = false;
  bool closed = false;          // the server closed the connection
  std::size_t stray_bytes = 0;  // bytes after the last response (e.g. a body on a HEAD answer)
};

// A fresh connection: sends, half-closes, reads everything until the server closes.
Exchange SendFresh(unsigned short port, const std::string& bytes, bool head) {
  Exchange x;
  const int fd = ConnectLoopback(port, 5);
  if (fd < 0) {
    x.connect_failed = true;
    return x;
  }
  SendAll(fd, bytes);  // the server may refuse and close before reading it all
  ::shutdown(fd, SHUT_WR);
  std::string buf;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      x.closed = n == 0 || errno == ECONNRESET;
      break;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  Abort(fd);
  Answer a;
  bool bad = false;
  while (TakeResponse(buf, head, &a, &bad)) x.answers.push_back(std::move(a));
  x.stray_bytes = buf.size();
  return x;
}

// A kept-alive connection (reconnects after the server closed it).
class KeepAlive {
 public:
  explicit KeepAlive(unsigned short port) : port_(port) {}
  ~KeepAlive() { Close(); }
  void Close() {
    if (fd_ >= 0) Abort(fd_);
    fd_ = -1;
    buf_.clear();
  }
  Exchange Send(const std::string& bytes, int responses) {
    Exchange x;
    if (fd_ < 0 && (fd_ = ConnectLoopback(port_, 5)) < 0) {
      x.connect_failed = true;
      return x;
    }
    if (!SendAll(fd_, bytes)) {
      // Closed by the server while idle (read timeout): one retry on a new connection.
      Close();
      if ((fd_ = ConnectLoopback(port_, 5)) < 0 || !SendAll(fd_, bytes)) {
        x.connect_failed = true;
        Close();
        return x;
      }
    }
    char chunk[16384];
    while (static_cast<int>(x.answers.size()) < responses) {
      Answer a;
      bool bad = false;
      if (TakeResponse(buf_, false, &a, &bad)) {
        const bool close = a.close;
        x.answers.push_back(std::move(a));
        if (close) break;
        continue;
      }
      if (bad) break;
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        x.closed = true;
        break;
      }
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
    if (x.closed || x.answers.empty() || x.answers.back().close ||
        static_cast<int>(x.answers.size()) < responses) {
      x.closed = true;
      Close();
    }
    return x;
  }

 private:
  unsigned short port_;
  int fd_ = -1;
  std::string buf_;
};

// ------------------------------------------------------------------------------------------
// The attacks

std::string HsToken(const auth::SigningKey& key, const std::string& header,
                    const std::string& payload) {
  std::string input = auth::Base64UrlEncode(header) + "." + auth::Base64UrlEncode(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + auth::Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), len));
}

struct Context {
  std::string jwt;       // the main (account-scoped, active) token
  std::string main_id;   // its id
  std::string account;   // its account
  std::string other_id;  // a token of another account
  auth::SigningKey key{};
};

// One request to send and what a correct server answers.
struct Attack {
  std::string bytes;
  bool fresh = false;  // own connection, half-closed after sending (framing attacks)
  bool head = false;
  int responses = 1;        // responses a keep-alive attack waits for
  std::vector<int> expect;  // acceptable statuses of the first answer; empty = anything but 5xx
  int exact_answers = -1;   // the number of answers, if it is known (smuggling: 1)
  bool no_stray = false;    // nothing after the last answer (HEAD: no body)
};

class Generator {
 public:
  Generator(const Context& ctx, std::uint64_t seed) : ctx_(ctx), rng_(seed) {}

  std::uint64_t Below(std::uint64_t n) { return rng_() % n; }
  std::string Random(std::size_t n, bool printable) {
    std::string s(n, ' ');
    for (auto& c : s) c = static_cast<char>(printable ? 33 + Below(94) : Below(256));
    return s;
  }
  std::string RandomId() {
    static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    std::string s(32, '0');
    s[0] = static_cast<char>('0' + Below(8));
    for (std::size_t i = 1; i < s.size(); ++i) s[i] = kAlphabet[Below(32)];
    return s;
  }

  // An HTTP/1.1 request with the main token unless `auth` is given (empty: none).
  std::string Request(const std::string& method, const std::string& target,
                      const std::string& body = "", const std::string& extra_headers = "",
                      std::optional<std::string> auth = std::nullopt) {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    const std::string token = auth ? *auth : ctx_.jwt;
    if (!token.empty()) r += "Authorization: Bearer " + token + "\r\n";
    r += extra_headers;
    if (!body.empty() || method == "POST")
      r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
    return r + "\r\n" + body;
  }
  std::string Ping() { return Request("GET", "/api/v1/ping"); }

  const Context& ctx() const { return ctx_; }

 private:
  const Context& ctx_;
  std::mt19937_64 rng_;
};

struct Kind {
  const char* name;
  int variants;
  std::function<Attack(Generator&, int)> make;
};

Attack Fresh(std::string bytes, std::vector<int> expect = {}) {
  Attack a;
  a.bytes = std::move(bytes);
  a.fresh = true;
  a.expect = std::move(expect);
  return a;
}

Attack Kept(std::string bytes, std::vector<int> expect) {
  Attack a;
  a.bytes = std::move(bytes);
  a.expect = std::move(expect);
  return a;
}

// A smuggling attempt: the attack's bytes followed by a pipelined request that must not be
// answered (RFC 9112 6.3: answer 400 and close the connection).
Attack Smuggle(Generator& g, const std::string& head_and_body, std::vector<int> expect = {400}) {
  Attack a = Fresh(head_and_body + g.Request("GET", "/api/v1/api_token/" + g.ctx().main_id),
                   std::move(expect));
  a.exact_answers = 1;
  return a;
}

const std::vector<Kind>& Kinds() {
  static const std::vector<Kind> kinds = {
      // (1) framing garbage
      {"random_bytes", 2,
       [](Generator& g, int v) { return Fresh(g.Random(1 + g.Below(2000), v == 0)); }},
      {"bad_request_line", 6,
       [](Generator& g, int v) {
         static const char* lines[] = {
             "GET /api/v1/ping\r\n",           "GET\r\n",
             "G@T /api/v1/ping HTTP/1.1\r\n",  "GET /api/v1/ping HTTP/1.1 extra\r\n",
             "GET  /api/v1/ping HTTP/1.1\r\n", "GET /api/v1/ping\tHTTP/1.1\r\n"};
         (void)g;
         return Fresh(std::string(lines[v]) + "Host: 127.0.0.1\r\n\r\n", {400});
       }},
      {"bad_version", 5,
       [](Generator& g, int v) {
         static const char* versions[] = {"HTTPS/1.1", "HTTP/1.1x", "HTTP/11", "http/1.1",
                                          "HTTP/1."};
         (void)g;
         return Fresh(std::string("GET /api/v1/ping ") + versions[v] + "\r\nHost: x\r\n\r\n",
                      {400});
       }},
      {"header_folding", 1,
       [](Generator& g, int) {
         // RFC 9112 5.2: obs-fold is refused with 400 or replaced by a space.
         return Fresh(g.Request("GET", "/api/v1/ping", "", "X-Folded: a\r\n  b\r\n"), {400, 200});
       }},
      {"nul_in_header", 2,
       [](Generator& g, int v) {
         return Fresh(
             g.Request("GET", "/api/v1/ping", "",
                       v == 0 ? std::string("X-A: a\0b\r\n", 10) : std::string("X-\0A: b\r\n", 9)),
             {400});
       }},
      {"header_count", 1,
       [](Generator& g, int) {
         std::string many;
         for (int i = 0; i < 2000; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
         return Fresh(g.Request("GET", "/api/v1/ping", "", many), {431});
       }},
      {"header_size", 2,
       [](Generator& g, int v) {
         return Fresh(g.Request("GET", "/api/v1/ping", "",
                                v == 0 ? "X-Big: " + std::string(9000, 'a') + "\r\n"
                                       : "X-Big1: " + std::string(5000, 'a') +
                                             "\r\nX-Big2: " + std::string(5000, 'a') + "\r\n"),
                      {431});
       }},
      {"oversized_body", 2,
       [](Generator& g, int v) {
         if (v == 0) {
           return Fresh(g.Request("POST", "/api/v1/api_token", std::string(70000, '{')), {413});
         }
         std::string chunked =
             g.Request("GET", "/api/v1/api_token", "", "Transfer-Encoding: chunked\r\n");
         chunked.replace(0, 3, "POST");
         for (int i = 0; i < 20; ++i) chunked += "1000\r\n" + std::string(4096, ' ') + "\r\n";
         return Fresh(chunked + "0\r\n\r\n", {413});
       }},
      {"content_length_mismatch", 2,
       [](Generator& g, int v) {
         const std::string body = R"({"details":{}})";
         const std::string cl = "Content-Length: " + std::to_string(body.size());
         std::string r = g.Request("POST", "/api/v1/api_token", body);
         if (v == 0) {
           // Declares more than it sends, then half-closes: the body never completes.
           r.replace(r.find(cl), cl.size(), "Content-Length: 99");
           return Fresh(r, {400});
         }
         // Declares less: the rest is a garbage second request.
         r.replace(r.find(cl), cl.size(), "Content-Length: 5");
         return Fresh(r);
       }},
      {"bad_content_length", 5,
       [](Generator& g, int v) {
         static const char* values[] = {"abc", "-1", "1e3", "99999999999999999999999", "0x10"};
         return Fresh(g.Request("POST", "/api/v1/api_token/" + g.RandomId() + "/suspend", "",
                                std::string("Content-Length: ") + values[v] + "\r\n"),
                      {400, 413});
       }},
      {"bad_chunk", 5,
       [](Generator& g, int v) {
         static const char* bodies[] = {"zz\r\n{}\r\n0\r\n\r\n", "-1\r\n{}\r\n0\r\n\r\n",
                                        "ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
                                        "2\r\n{}0\r\n\r\n", "2;\x01\r\n{}\r\n0\r\n\r\n"};
         return Fresh(g.Request("POST", "/api/v1/api_token/" + g.RandomId() + "/suspend", "",
                                "Transfer-Encoding: chunked\r\n") +
                          bodies[v],
                      {400, 413});
       }},
      // (2) smuggling attempts
      {"te_and_cl", 2,
       [](Generator& g, int v) {
         // RFC 9112 6.1: may be refused, or read as chunked, but the connection must close.
         const std::string body = "0\r\n\r\n";
         std::string r = "POST /api/v1/api_token/" + g.RandomId() +
                         "/suspend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + g.ctx().jwt +
                         "\r\n";
         r += v == 0 ? "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
                     : "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n";
         return Smuggle(g, r + "\r\n" + body, {400, 404});
       }},
      {"te_not_chunked", 7,
       [](Generator& g, int v) {
         static const char* codings[] = {"gzip",
                                         "identity",
                                         "xchunked",
                                         "chunked, identity",
                                         "",
                                         "chunked, gzip",
                                         "chunked\r\nTransfer-Encoding: gzip"};
         std::string r = "POST /api/v1/api_token/" + g.RandomId() +
                         "/suspend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + g.ctx().jwt +
                         "\r\nTransfer-Encoding: " + codings[v] + "\r\n\r\n0\r\n\r\n";
         return Smuggle(g, r);
       }},
      {"te_obfuscated", 2,
       [](Generator& g, int v) {
         static const char* headers[] = {"Transfer-Encoding : chunked",
                                         "Transfer-Encoding\t: chunked"};
         std::string r = "POST /api/v1/api_token/" + g.RandomId() +
                         "/suspend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + g.ctx().jwt +
                         "\r\n" + headers[v] + "\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
         return Smuggle(g, r);
       }},
      {"duplicate_content_length", 2,
       [](Generator& g, int v) {
         std::string r = "POST /api/v1/api_token/" + g.RandomId() +
                         "/suspend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + g.ctx().jwt +
                         "\r\n";
         r += v == 0 ? "Content-Length: 2\r\nContent-Length: 3\r\n" : "Content-Length: 2, 3\r\n";
         return Smuggle(g, r + "\r\n{} ");
       }},
      {"pipelined_after_body", 1,
       [](Generator& g, int) {
         // Valid framing: both are answered, in order, on the same connection.
         Attack a = Kept(
             g.Request("POST", "/api/v1/api_token/" + g.RandomId() + "/suspend", "{}") + g.Ping(),
             {404});
         a.responses = 2;
         a.exact_answers = 2;
         return a;
       }},
      // methods and hosts
      {"head", 2,
       [](Generator& g, int v) {
         Attack a = Fresh(g.Request("HEAD", v == 0 ? "/api/v1/ping" : "/healthz"));
         a.head = true;
         a.no_stray = true;  // RFC 9110 9.3.2: no content in a response to HEAD
         a.exact_answers = 1;
         return a;
       }},
      {"odd_methods", 5,
       [](Generator& g, int v) {
         static const char* methods[] = {"OPTIONS", "FOO", "PUT", "TRACE", "PATCH"};
         return Kept(g.Request(methods[v], "/api/v1/ping"), {405, 400});
       }},
      {"connect", 1,
       [](Generator& g, int) {
         (void)g;
         return Fresh("CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
                      {400, 404, 405});
       }},
      {"missing_host", 2,
       [](Generator& g, int v) {
         std::string r = g.Ping();
         r.erase(r.find("Host: 127.0.0.1\r\n"), 17);
         if (v == 1) r.replace(r.find("HTTP/1.1"), 8, "HTTP/1.0");  // 1.0 needs no Host
         return Fresh(r, {v == 0 ? 400 : 200});
       }},
      {"unknown_route", 3,
       [](Generator& g, int v) {
         static const char* targets[] = {"/", "/api/v2/ping", "/api/v1/api_token/x/y/z"};
         return Kept(g.Request("GET", targets[v]), {404, 400});
       }},
      // (4) bad JSON and bodies
      {"bad_json", 10,
       [](Generator& g, int v) {
         static const char* bodies[] = {"{",
                                        "[",
                                        "nul",
                                        R"({"details":)",
                                        "\xff\xfe",
                                        R"({"details":{"token_scope":"account"}}x)",
                                        R"({"details":{"token_scope":"account"},"details":{}})",
                                        "1e999",
                                        "\"s\"",
                                        R"({"details":{"token_scope":"acc\u0000ount"}})"};
         return Kept(g.Request("POST", "/api/v1/api_token", bodies[v]), {400});
       }},
      {"wrong_types", 8,
       [](Generator& g, int v) {
         static const char* bodies[] = {
             R"({"details":[]})",
             R"({"details":{"token_scope":1}})",
             R"({"details":{"token_scope":"galaxy"}})",
             R"({"details":{"token_scope":"account","expires_at":123}})",
             R"({"details":{"token_scope":"account","expires_at":"yesterday"}})",
             R"({"details":{"token_scope":"account"},"idempotency_key":5})",
             R"({"details":{"token_scope":"environment"}})",
             R"({"details":{"token_scope":"account","account_id":"nope"}})"};
         return Kept(g.Request("POST", "/api/v1/api_token", bodies[v]), {400});
       }},
      {"deep_nesting", 3,
       [](Generator& g, int v) {
         std::string body;
         if (v == 0) body = std::string(10000, '[');
         if (v == 1) body = std::string(5000, '[') + std::string(5000, ']');
         if (v == 2) {
           for (int i = 0; i < 3000; ++i) body += R"({"a":)";
           body += "1" + std::string(3000, '}');
         }
         return Kept(g.Request("POST", "/api/v1/api_token", body), {400});
       }},
      {"huge_string", 2,
       [](Generator& g, int v) {
         const std::string s(v == 0 ? 60000 : 70000, 'x');
         return Kept(
             g.Request("POST", "/api/v1/api_token", R"({"details":{"token_scope":")" + s + "\"}}"),
             {v == 0 ? 400 : 413});
       }},
      {"unknown_fields", 3,
       [](Generator& g, int v) {
         if (v == 0)
           return Kept(g.Request("POST", "/api/v1/api_token",
                                 R"({"details":{"token_scope":"account"},"x":1})"),
                       {400});
         if (v == 1)
           return Kept(g.Request("POST", "/api/v1/api_token",
                                 R"({"details":{"token_scope":"account","admin":true}})"),
                       {400});
         return Kept(g.Request("POST", "/api/v1/api_token/" + g.RandomId() + "/revoke",
                               R"({"reason":"x"})"),
                     {400});
       }},
      // (5) forged and malformed JWTs
      {"forged_jwt", 20,
       [](Generator& g, int v) {
         const Context& c = g.ctx();
         const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
         const std::string hs = R"({"alg":"HS256","typ":"JWT"})";
         auto claims = [&](const std::string& jti, long long exp) {
           return R"({"jti":")" + jti + R"(","iat":)" + std::to_string(now - 60) + R"(,"exp":)" +
                  std::to_string(exp) + R"(,"_":{"a":")" + c.account + "\"}}";
         };
         const std::string good_claims = claims(c.main_id, now + 86400 * 300);
         const std::string sig = c.jwt.substr(c.jwt.rfind('.'));
         std::string token;
         switch (v) {
           case 0:  // alg none, no signature
             token = auth::Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." +
                     auth::Base64UrlEncode(good_claims) + ".";
             break;
           case 1:  // alg RS256, signed with the HMAC key as if it were a public key
             token = HsToken(c.key, R"({"alg":"RS256","typ":"JWT"})", good_claims);
             break;
           case 2:
             token = HsToken(c.key, R"({"alg":"HS512","typ":"JWT"})", good_claims);
             break;
           case 3: {  // wrong signature
             token = c.jwt;
             char& last = token[token.size() - 2];
             last = last == 'A' ? 'B' : 'A';
             break;
           }
           case 4:
             token = c.jwt.substr(0, c.jwt.size() - 1 - g.Below(20));
             break;
           case 5:
             token = c.jwt;
             token[10] = '*';
             break;
           case 6:
             token = c.jwt + std::string(4000, 'A');
             break;
           case 7:  // signed with the real key, expired by its exp claim
             token = HsToken(c.key, hs, claims(c.main_id, now - 3600));
             break;
           case 8:  // signed with the real key, a token id that does not exist
             token = HsToken(c.key, hs, claims(g.RandomId(), now + 86400));
             break;
           case 9:  // signed, jti of the wrong type
             token = HsToken(
                 c.key, hs, R"({"jti":7,"iat":1,"exp":9999999999,"_":{"a":")" + c.account + "\"}}");
             break;
           case 10:  // signed, no claims object
             token = HsToken(c.key, hs, "[1,2,3]");
             break;
           case 11:  // signed, not JSON
             token = HsToken(c.key, hs, "\x01\x02garbage");
             break;
           case 12:  // signed, the main token's id under another account
             token =
                 HsToken(c.key, hs,
                         R"({"jti":")" + c.main_id + R"(","iat":1,"exp":9999999999,"_":{"a":")" +
                             g.RandomId() + "\"}}");
             break;
           case 13:  // signed, exp of the wrong type
             token = HsToken(c.key, hs,
                             R"({"jti":")" + c.main_id + R"(","iat":1,"exp":"never","_":{"a":")" +
                                 c.account + "\"}}");
             break;
           case 14:
             token = c.jwt + ".x";
             break;
           case 15:
             token = "..";
             break;
           case 16:
             token = sig.substr(1) + "." + c.jwt;
             break;
           case 17:  // header says HS256 but is not JSON
             token = auth::Base64UrlEncode("HS256") + c.jwt.substr(c.jwt.find('.'));
             break;
           case 18:
             return Kept(g.Request("GET", "/api/v1/ping", "", "Authorization: Basic YTpi\r\n", ""),
                         {401});
           default:
             return Kept(g.Request("GET", "/api/v1/ping", "", "Authorization: Bearer\r\n", ""),
                         {401});
         }
         return Kept(
             g.Request("GET", g.Below(2) ? "/api/v1/ping" : "/api/v1/api_token", "", "", token),
             {401});
       }},
      {"duplicate_authorization", 2,
       [](Generator& g, int v) {
         // Two credentials: which one counts is ambiguous; refused (400).
         const std::string other = v == 0 ? g.ctx().jwt : "forged.token.here";
         return Kept(
             g.Request("GET", "/api/v1/ping", "", "Authorization: Bearer " + other + "\r\n"),
             {400});
       }},
      // (6) bad ids and query values
      {"bad_id", 10,
       [](Generator& g, int v) {
         std::string id;
         switch (v) {
           case 0:
             id = "x";
             break;
           case 1:
             id = g.RandomId().substr(0, 31);
             break;
           case 2:
             id = g.RandomId() + "a";
             break;
           case 3: {
             id = g.RandomId();  // never the main token's: a write must not hit it
             for (auto& ch : id) ch = static_cast<char>(std::toupper(ch));
             break;
           }
           case 4:
             id = "%00";
             break;
           case 5:
             id = "..%2F..%2Fetc";
             break;
           case 6:
             id = std::string(1000, 'z');
             break;
           case 7:
             id = "%zz";
             break;
           case 8:
             id = g.RandomId();
             break;  // well-formed, nobody's
           default:
             id = g.ctx().other_id;
             break;  // another account's
         }
         static const char* forms[] = {"GET", "POST-suspend", "DELETE", "GET-events"};
         const std::string form = forms[g.Below(4)];
         std::string r;
         if (form == "GET") r = g.Request("GET", "/api/v1/api_token/" + id);
         if (form == "POST-suspend") r = g.Request("POST", "/api/v1/api_token/" + id + "/suspend");
         if (form == "DELETE") r = g.Request("DELETE", "/api/v1/api_token/" + id);
         if (form == "GET-events") r = g.Request("GET", "/api/v1/api_token/" + id + "/events");
         return Kept(r, v >= 8 ? std::vector<int>{404} : std::vector<int>{400, 404});
       }},
      {"bad_query", 16,
       [](Generator& g, int v) {
         static const char* queries[] = {"pagination[page_size]=-1",
                                         "pagination[page_size]=0",
                                         "pagination[page_size]=99999999999999999999",
                                         "pagination[page_size]=abc",
                                         "pagination[offset]=-5",
                                         "sorting=colour",
                                         "sorting=-",
                                         "status=bogus",
                                         "status=active&status=revoked",
                                         "%zz=1",
                                         "pagination[page_size]=%",
                                         "pagination[snapshot]=garbage",
                                         "pagination[=1",
                                         "token_scope=%00",
                                         "x=1"};
         if (v < 15)
           return Kept(g.Request("GET", std::string("/api/v1/api_token?") + queries[v]), {400});
         // A URL over the limit (4 KiB): 414.
         return Kept(g.Request("GET", "/api/v1/api_token?x=" + std::string(5000, 'a')), {414});
       }},
      {"bad_as_of", 2,
       [](Generator& g, int v) {
         return Kept(g.Request("GET", "/api/v1/api_token/" + g.ctx().main_id +
                                          (v == 0 ? "?as_of=yesterday" : "?as_of=9999-99-99")),
                     {400});
       }},
      // (7) idempotency abuse
      {"idempotency_race", 4,
       [](Generator& g, int v) {
         // A few keys shared by every attacker, each sent with different bodies at once:
         // one fingerprint wins per key, the others get 409.
         const std::string key = "race-" + std::to_string(g.Below(8));
         const std::string expires =
             v == 0 ? "null" : "\"2030-0" + std::to_string(v) + "-01T00:00:00Z\"";
         return Kept(g.Request("POST", "/api/v1/api_token",
                               R"({"details":{"token_scope":"account","expires_at":)" + expires +
                                   R"(},"idempotency_key":")" + key + "\"}"),
                     {200, 409});
       }},
      {"idempotency_bad_key", 6,
       [](Generator& g, int v) {
         const std::string target = "/api/v1/api_token/" + g.RandomId() + "/suspend";
         switch (v) {
           case 0:
             return Kept(
                 g.Request("POST", target, "",
                           "Idempotency-Key: " + std::string(256 + g.Below(200), 'k') + "\r\n"),
                 {400});
           case 1:
             return Kept(g.Request("POST", target, R"({"idempotency_key":"a\u0001b"})"), {400});
           case 2:
             return Kept(g.Request("POST", target, "", "Idempotency-Key: caf\xc3\xa9\r\n"), {400});
           case 3:
             return Kept(g.Request("POST", target, R"({"idempotency_key":""})"), {400});
           case 4:
             return Kept(
                 g.Request("POST", target, R"({"idempotency_key":"a"})", "Idempotency-Key: b\r\n"),
                 {400});
           default:
             return Kept(
                 g.Request("POST", target, "", "Idempotency-Key: one\r\nIdempotency-Key: two\r\n"),
                 {400});
         }
       }},
      {"idempotency_many_keys", 2,
       [](Generator& g, int v) {
         const std::string key = "many-" + g.RandomId();
         if (v == 0)  // a recorded not_found decision under a fresh key
           return Kept(g.Request("POST", "/api/v1/api_token/" + g.RandomId() + "/suspend", "",
                                 "Idempotency-Key: " + key + "\r\n"),
                       {404});
         return Kept(
             g.Request("POST", "/api/v1/api_token",
                       R"({"details":{"token_scope":"account"},"idempotency_key":")" + key + "\"}"),
             {200});
       }},
  };
  return kinds;
}

// Weights: mostly valid framing on kept-alive connections (cheap, high volume), a good share of
// fresh-connection framing attacks, few writes that really create tokens.
int Weight(const Kind& k) {
  const std::string name = k.name;
  if (name == "idempotency_many_keys") return 2;
  if (name == "header_count" || name == "oversized_body" || name == "deep_nesting" ||
      name == "huge_string")
    return 2;
  if (name == "forged_jwt" || name == "bad_id" || name == "bad_query" || name == "bad_json" ||
      name == "wrong_types")
    return 12;
  return 5;
}

// Whether an answer is what a correct server gives; the reason if not.
std::string Mismatch(const Attack& a, const Exchange& x) {
  if (a.exact_answers >= 0 && static_cast<int>(x.answers.size()) != a.exact_answers)
    return std::to_string(x.answers.size()) + " answers, expected " +
           std::to_string(a.exact_answers);
  if (!a.expect.empty()) {
    if (x.answers.empty()) return "no answer";
    if (std::find(a.expect.begin(), a.expect.end(), x.answers[0].status) == a.expect.end())
      return "status " + std::to_string(x.answers[0].status);
  }
  if (a.no_stray && x.stray_bytes > 0)
    return std::to_string(x.stray_bytes) + " bytes after the response";
  return "";
}

bool DocumentedOverload(const Answer& a) {
  return a.status == 503 && a.body.find("retry shortly") != std::string::npos;
}

// ------------------------------------------------------------------------------------------
// The process

long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

// Open fds of the process, and how many of them are sockets.
std::pair<int, int> Fds(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return {-1, -1};
  int all = 0, sockets = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ++all;
    char target[256];
    const ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n > 0 && std::string_view(target, static_cast<std::size_t>(n)).rfind("socket:", 0) == 0)
      ++sockets;
  }
  ::closedir(d);
  return {all, sockets};
}

class HostileTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    const Seeded other = Seed(ids_.Generate());
    StartServer({"--read-timeout", "1s"});
    ctx_.jwt = main_.jwt;
    ctx_.main_id = main_.token_id.ToString();
    ctx_.account = account_.ToString();
    ctx_.other_id = other.token_id.ToString();
    ctx_.key = key_;
  }

  Exchange Send(const Attack& a, KeepAlive& conn) {
    return a.fresh ? SendFresh(server_->port(), a.bytes, a.head) : conn.Send(a.bytes, a.responses);
  }

  int ErrorLogLines() {
    std::istringstream err(server_->Stderr());
    std::string line;
    int n = 0;
    while (std::getline(err, line)) {
      if (line.find("\"level\":\"error\"") != std::string::npos) {
        if (n < 5) ADD_FAILURE() << "server logged: " << line;
        ++n;
      }
    }
    return n;
  }

  Context ctx_;
};

TEST_F(HostileTest, EachAttackGetsItsRfcAnswer) {
  Generator g(ctx_, TestSeed());
  KeepAlive conn(server_->port());
  int failures = 0;
  for (const Kind& k : Kinds()) {
    for (int v = 0; v < k.variants; ++v) {
      Attack a = k.make(g, v);
      conn.Close();  // each probe on its own connection, so one cannot spoil the next
      const Exchange x = Send(a, conn);
      const std::string why = Mismatch(a, x);
      for (const Answer& ans : x.answers)
        EXPECT_TRUE(ans.status < 500 || DocumentedOverload(ans))
            << k.name << "#" << v << ": " << ans.status << " " << ans.body;
      if (!why.empty()) {
        ++failures;
        ADD_FAILURE() << k.name << "#" << v << ": " << why
                      << (x.answers.empty() ? "" : " — " + x.answers[0].body.substr(0, 200));
      }
      ASSERT_TRUE(server_->Alive()) << "died at " << k.name << "#" << v;
    }
  }
  std::printf("conformance: %d mismatching variants\n", failures);
  EXPECT_EQ(ErrorLogLines(), 0);
}

TEST_F(HostileTest, VolumeKeepsServerHealthy) {
  const std::uint64_t seed = TestSeed();
  const std::uint64_t volume = Volume();
  std::printf("TOKENLEDGER_SEED=%llu, %llu hostile requests\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(volume));
  SCOPED_TRACE("TOKENLEDGER_SEED=" + std::to_string(seed));
  const pid_t pid = server_->pid();
  const unsigned short port = server_->port();

  std::vector<const Kind*> table;  // weighted
  for (const Kind& k : Kinds())
    for (int i = 0; i < Weight(k); ++i) table.push_back(&k);

  // Warm-up: every variant once and some normal traffic, so the baseline includes what a
  // first request of each kind allocates (thread caches, block cache, parser tables).
  {
    Generator g(ctx_, seed ^ 0x5eed);
    KeepAlive conn(port);
    for (const Kind& k : Kinds())
      for (int v = 0; v < k.variants; ++v) Send(k.make(g, v), conn);
    for (int i = 0; i < 200; ++i) Call("GET", "/api/v1/api_token/" + ctx_.main_id, main_.jwt);
    client_->Close();
  }
  std::this_thread::sleep_for(kReadTimeout + std::chrono::milliseconds(500));
  const long rss_base = RssKiB(pid);
  const auto [fds_base, sockets_base] = Fds(pid);

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> sent{0}, no_answer{0}, connect_failures{0};
  std::array<std::atomic<std::uint64_t>, 600> statuses{};
  std::mutex mu;
  std::vector<std::string> server_errors;  // 5xx other than the documented overload
  std::map<std::string, std::uint64_t> mismatches;

  auto record_5xx = [&](const char* kind, const Answer& a) {
    std::lock_guard lock(mu);
    if (server_errors.size() < 10)
      server_errors.push_back(std::string(kind) + ": " + std::to_string(a.status) + " " +
                              a.body.substr(0, 200));
    else
      server_errors.push_back("");
  };

  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      Generator g(ctx_, seed * 1000003 + static_cast<std::uint64_t>(w));
      KeepAlive conn(port);
      std::map<std::string, std::uint64_t> local_mismatches;
      while (sent.fetch_add(1) < volume && Clock::now() - start < kAttackBudget) {
        const Kind& k = *table[g.Below(table.size())];
        const int v = static_cast<int>(g.Below(static_cast<std::uint64_t>(k.variants)));
        const Attack a = k.make(g, v);
        const Exchange x = Send(a, conn);
        if (x.connect_failed) ++connect_failures;
        if (x.answers.empty()) ++no_answer;
        for (const Answer& ans : x.answers) {
          ++statuses[static_cast<std::size_t>(std::clamp(ans.status, 0, 599))];
          if (ans.status >= 500 && !DocumentedOverload(ans)) record_5xx(k.name, ans);
        }
        if (const std::string why = Mismatch(a, x); !why.empty())
          ++local_mismatches[std::string(k.name) + "#" + std::to_string(v) + ": " + why];
      }
      std::lock_guard lock(mu);
      for (auto& [m, n] : local_mismatches) mismatches[m] += n;
    });
  }

  // Slow clients: waves of 50 connections that stall in the middle of their headers, and a
  // few slowloris connections sending a byte every 100 ms; the read timeout must cut them all.
  std::atomic<std::uint64_t> slow_closed{0}, slow_not_closed{0};
  double slow_max_s = 0;
  std::thread slow([&] {
    const std::string partial = "GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    const std::string loris =
        "GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + std::string(400, 'p') +
        "\r\n\r\n";
    while (!done) {
      struct Slow {
        int fd;
        bool loris;
        std::size_t pos = 0;
        bool closed = false;
      };
      std::vector<Slow> conns;
      for (int i = 0; i < kSlowWave + kSlowloris; ++i) {
        const int fd = ConnectLoopback(port, 5);
        if (fd < 0) continue;
        const bool is_loris = i >= kSlowWave;
        if (!is_loris) SendAll(fd, partial);
        conns.push_back({fd, is_loris});
      }
      const auto wave_start = Clock::now();
      std::size_t open = conns.size();
      while (open > 0 && Clock::now() - wave_start < kReadTimeout + std::chrono::seconds(5)) {
        for (auto& c : conns) {
          if (c.closed) continue;
          if (c.loris && c.pos < loris.size()) {
            if (::send(c.fd, loris.data() + c.pos, 1, MSG_NOSIGNAL) == 1) ++c.pos;
          }
          pollfd p{c.fd, POLLIN, 0};
          if (::poll(&p, 1, 0) > 0) {
            char buf[4096];
            const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) {
              c.closed = true;
              --open;
              ++slow_closed;
              Abort(c.fd);
              slow_max_s = std::max(
                  slow_max_s, std::chrono::duration<double>(Clock::now() - wave_start).count());
            }
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      for (auto& c : conns) {
        if (!c.closed) {
          ++slow_not_closed;
          Abort(c.fd);
        }
      }
    }
  });

  // The normal client: valid requests on one kept-alive connection, timed.
  std::vector<double> latencies_ms;
  std::vector<std::string> normal_failures;
  std::thread normal([&] {
    HttpClient client(port);
    const std::vector<std::pair<std::string, std::string>> auth = {
        {"Authorization", "Bearer " + main_.jwt}};
    int n = 0;
    std::string id = ctx_.main_id;
    while (!done) {
      std::string method = "GET", target, body;
      switch (n % 7) {
        case 0:
          target = "/api/v1/ping";
          break;
        case 1:
          target = "/api/v1/api_token/" + ctx_.main_id;
          break;
        case 2:
          method = "POST";
          target = "/api/v1/api_token";
          body = R"({"details":{"token_scope":"account"},"idempotency_key":"normal-)" +
                 std::to_string(n) + "\"}";
          break;
        case 3:
          target = "/api/v1/api_token/" + id;
          break;
        case 4:
          method = "POST";
          target = "/api/v1/api_token/" + id + "/suspend";
          break;
        case 5:
          method = "POST";
          target = "/api/v1/api_token/" + id + "/activate";
          break;
        default:
          target = "/api/v1/api_token?pagination[page_size]=5&sorting=-inserted_at";
          break;
      }
      const auto t0 = Clock::now();
      const Response r = client.Request(method, target, body, auth);
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      const bool overload = r.status == 503 && r.body.find("retry shortly") != std::string::npos;
      if ((r.status < 200 || r.status > 299) && !overload && normal_failures.size() < 10)
        normal_failures.push_back(method + " " + target + ": " + std::to_string(r.status) + " " +
                                  r.body);
      if (n % 7 == 2 && r.status == 200) {
        boost::system::error_code ec;
        const auto v = boost::json::parse(r.body, ec);
        if (!ec) id = JsonString(v.at("details").at("id"));
      }
      ++n;
    }
  });

  for (auto& t : workers) t.join();
  const double attack_s = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  normal.join();
  slow.join();
  const bool alive_after_attack = server_->Alive();

  // Settle: idle connections are closed (ours are), RSS and fds return to the baseline.
  long rss_after = 0;
  int fds_after = 0, sockets_after = 0;
  for (int i = 0; i < 60; ++i) {
    rss_after = RssKiB(pid);
    std::tie(fds_after, sockets_after) = Fds(pid);
    if ((kSanitized || rss_after <= rss_base + kRssMarginKiB) &&
        fds_after <= fds_base + kFdMargin && sockets_after <= sockets_base + kSocketMargin)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }

  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    return latencies_ms.empty()
               ? 0.0
               : latencies_ms[std::min(latencies_ms.size() - 1,
                                       static_cast<std::size_t>(p * latencies_ms.size()))];
  };
  const std::uint64_t total = std::min(sent.load(), volume);
  std::printf("hostile: %llu requests in %.1f s (%.0f/s), no answer %llu, connect failures %llu\n",
              static_cast<unsigned long long>(total), attack_s, total / attack_s,
              static_cast<unsigned long long>(no_answer.load()),
              static_cast<unsigned long long>(connect_failures.load()));
  std::printf("statuses:");
  for (std::size_t s = 0; s < statuses.size(); ++s)
    if (statuses[s])
      std::printf(" %zu=%llu", s, static_cast<unsigned long long>(statuses[s].load()));
  std::printf("\nnormal client: %zu requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms (bound %.0f)\n",
              latencies_ms.size(), pct(0.5), pct(0.99),
              latencies_ms.empty() ? 0.0 : latencies_ms.back(), kNormalP99Ms);
  std::printf("slow clients: %llu cut, %llu not cut, slowest cut after %.2f s\n",
              static_cast<unsigned long long>(slow_closed.load()),
              static_cast<unsigned long long>(slow_not_closed.load()), slow_max_s);
  std::printf("RSS %ld -> %ld KiB (margin %ld), fds %d -> %d, sockets %d -> %d\n", rss_base,
              rss_after, kRssMarginKiB, fds_base, fds_after, sockets_base, sockets_after);
  std::printf(
      "answers differing from the RFC/SPEC answer (EachAttackGetsItsRfcAnswer checks them):\n");
  for (auto& [m, n] : mismatches)
    std::printf("  %6llu  %s\n", static_cast<unsigned long long>(n), m.c_str());

  EXPECT_TRUE(alive_after_attack) << "tokenledgerd died during the attack";
  EXPECT_GE(total, volume) << "the attack did not finish within " << kAttackBudget.count() << " s";
  EXPECT_TRUE(server_errors.empty())
      << server_errors.size()
      << " 5xx answers, first: " << (server_errors.empty() ? "" : server_errors[0]);
  EXPECT_TRUE(normal_failures.empty())
      << normal_failures.size()
      << " normal requests failed, first: " << (normal_failures.empty() ? "" : normal_failures[0]);
  EXPECT_GE(latencies_ms.size(), 100u);
  EXPECT_LE(pct(0.99), kNormalP99Ms);
  EXPECT_EQ(slow_not_closed.load(), 0u);
  EXPECT_GT(slow_closed.load(), 0u);
  if (!kSanitized) {
    EXPECT_LE(rss_after, rss_base + kRssMarginKiB);
  }
  EXPECT_LE(fds_after, fds_base + kFdMargin);
  EXPECT_LE(sockets_after, sockets_base + kSocketMargin);
  if (!alive_after_attack) return;
  EXPECT_EQ(ErrorLogLines(), 0);

  EXPECT_EQ(StopServer(), 0);
  const std::string out = dir_.path() + "/verify.out";
  const std::string cmd =
      std::string(TOKENLEDGER_CLI_PATH) + " verify --data-dir " + data_dir_ + " >" + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(rc, 0) << text.str();
}

}  // namespace
}  // namespace tokenledger::e2e

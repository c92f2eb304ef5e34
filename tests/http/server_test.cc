// The HTTP server with a handler of the test's own, over a real loopback socket: what the
// server does whatever the handler does.
#include "src/http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace tokenledger::http {
namespace {

class ServerTest : public ::testing::Test {
 protected:
  void Start(RequestHandler handler) {
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.threads = 2;
    server_ = std::make_unique<Server>(options, std::move(handler), metrics_);
    ASSERT_TRUE(server_->Listen());
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
    if (server_) server_->Shutdown();
    if (thread_.joinable()) thread_.join();
  }

  // Sends `request` on one kept-alive connection and reads one response (head and body).
  std::string Exchange(const std::string& request) {
    if (fd_ < 0) {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      timeval tv{10, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(server_->ApiPort());
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
    }
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size()))
      return "";
    std::string got;
    for (;;) {
      const std::size_t end = got.find("\r\n\r\n");
      if (end != std::string::npos) {
        const std::size_t cl = got.find("Content-Length: ");
        const std::size_t body = cl == std::string::npos ? 0 : std::stoul(got.substr(cl + 16));
        if (got.size() >= end + 4 + body) return got.substr(0, end + 4 + body);
      }
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return got;
      got.append(buf, static_cast<std::size_t>(n));
    }
  }

  HttpMetrics metrics_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int fd_ = -1;
};

// `--threads 0` leaves a core to the store's threads, RocksDB's and the kernel's network work.
TEST(DefaultIoThreadsTest, OnePerCoreLessOneAndAtLeastOne) {
  EXPECT_EQ(DefaultIoThreads(0), 1u);  // hardware_concurrency() may not know
  EXPECT_EQ(DefaultIoThreads(1), 1u);
  EXPECT_EQ(DefaultIoThreads(2), 1u);
  EXPECT_EQ(DefaultIoThreads(3), 2u);
  EXPECT_EQ(DefaultIoThreads(64), 63u);
  EXPECT_GE(UsableCores(), 1u);
  EXPECT_LE(UsableCores(), std::max(1u, std::thread::hardware_concurrency()));
}

TEST_F(ServerTest, ThreadsZeroRunsTheDefaultNumberOfLoops) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.threads = 0;
  Server server(
      options, [](std::shared_ptr<HttpRequest>, Responder) {}, metrics_);
  EXPECT_EQ(server.IoThreads(), DefaultIoThreads(UsableCores()));
  options.threads = 3;
  Server three(
      options, [](std::shared_ptr<HttpRequest>, Responder) {}, metrics_);
  EXPECT_EQ(three.IoThreads(), 3u);
}

TEST_F(ServerTest, AHandlerThatDropsItsResponderStillGetsItsRequestAnswered) {
  ASSERT_NO_FATAL_FAILURE(Start([](std::shared_ptr<HttpRequest> req, Responder respond) {
    if (req->target == "/drop") return;  // a bug: no answer, and the Responder is gone
    if (req->target == "/late-drop") {   // the same, from another thread later
      std::thread([r = std::move(respond)] {}).detach();
      return;
    }
    HttpResponse r;
    r.body = R"({"status":"ok"})";
    respond(std::move(r));
  }));
  for (const char* target : {"/drop", "/late-drop"}) {
    const std::string dropped =
        Exchange("GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(dropped.rfind("HTTP/1.1 500 ", 0), 0u) << target << ": " << dropped;
    EXPECT_NE(dropped.find("the request was not answered"), std::string::npos) << dropped;
    // The connection is in step and kept: the next request on it is answered.
    const std::string next = Exchange("GET /fine HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(next.rfind("HTTP/1.1 200 ", 0), 0u) << next;
  }
}

TEST_F(ServerTest, OnlyTheFirstAnswerCounts) {
  ASSERT_NO_FATAL_FAILURE(Start([](std::shared_ptr<HttpRequest>, Responder respond) {
    HttpResponse first;
    first.body = "first";
    HttpResponse second;
    second.status = 404;
    second.body = "second";
    respond(std::move(first));
    respond(std::move(second));
  }));
  for (int i = 0; i < 3; ++i) {
    const std::string r = Exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 200 ", 0), 0u) << r;
    EXPECT_EQ(r.substr(r.size() - 5), "first") << r;
  }
}

// What the handler is given of a request: the first of each header it reads, whether
// Authorization and Idempotency-Key were repeated, field names in any case, and the body
// whether it came with a length, in chunks, or after a 100 Continue.
TEST_F(ServerTest, TheHandlerGetsTheFieldsItReadsAndTheWholeBody) {
  ASSERT_NO_FATAL_FAILURE(Start([](std::shared_ptr<HttpRequest> req, Responder respond) {
    HttpResponse r;
    r.body = req->method + " " + req->target + "|auth=" + req->authorization +
             (req->has_authorization ? "+" : "-") + (req->repeated_authorization ? "R" : "") +
             "|key=" + req->idempotency_key + (req->has_idempotency_key ? "+" : "-") +
             (req->repeated_idempotency_key ? "R" : "") + "|rid=" + req->request_id +
             "|ct=" + req->content_type + "|body=" + req->body;
    respond(std::move(r));
  }));
  auto body_of = [](const std::string& response) {
    return response.substr(response.find("\r\n\r\n") + 4);
  };
  EXPECT_EQ(body_of(Exchange("POST /a?q=1 HTTP/1.1\r\nHost: t\r\nauthorization: Bearer x\r\n"
                             "IDEMPOTENCY-KEY: k1\r\nidempotency-key: k2\r\nx-request-id: r1\r\n"
                             "X-Request-Id: r2\r\nContent-Type: a/b\r\ncontent-type: c/d\r\n"
                             "Content-Length: 5\r\n\r\nhello")),
            "POST /a?q=1|auth=Bearer x+|key=k1+R|rid=r1|ct=a/b|body=hello");
  EXPECT_EQ(body_of(Exchange("GET /b HTTP/1.1\r\nHost: t\r\nAuthorization: A\r\n"
                             "Authorization: B\r\n\r\n")),
            "GET /b|auth=A+R|key=-|rid=|ct=|body=")
      << "nothing of the request before is left";
  EXPECT_EQ(body_of(Exchange("PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")),
            "PUT /c|auth=-|key=-|rid=|ct=|body=abcde");
  // 100-continue: the interim answer comes before the body is sent.
  const std::string interim =
      Exchange("POST /d HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_EQ(interim.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << interim;
  EXPECT_EQ(body_of(Exchange("xyz")), "POST /d|auth=-|key=-|rid=|ct=|body=xyz");
}

}  // namespace
}  // namespace tokenledger::http

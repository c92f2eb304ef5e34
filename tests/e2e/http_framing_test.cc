// Hostile HTTP framing against the real server, byte for byte over a real socket: request
// smuggling through Transfer-Encoding/Content-Length, HEAD (never a body), Host, and repeated
// headers that would otherwise be resolved silently.
#include <cstdio>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {

class HttpFramingTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    StartServer();
  }

  // Sends `bytes` on a fresh connection; expects exactly one 400 bad_request and the
  // connection closed, so that nothing after the refused request is ever answered.
  void ExpectRefusedAndClosed(const std::string& bytes) {
    HttpClient raw(server_->port());
    bool closed = false;
    const auto responses = raw.RawUntilClose(bytes, &closed);
    ASSERT_EQ(responses.size(), 1u) << bytes;
    EXPECT_EQ(responses[0].status, 400) << bytes;
    EXPECT_EQ(responses[0].Json().at("code"), "bad_request") << bytes;
    EXPECT_EQ(responses[0].Header("Connection"), "close") << bytes;
    EXPECT_TRUE(closed) << "the connection stays open after: " << bytes;
    EXPECT_EQ(raw.Leftover(), "") << bytes;
  }

  std::string Bearer() const { return "Authorization: Bearer " + main_.jwt + "\r\n"; }
};

const std::string kNext = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";

TEST_F(HttpFramingTest, TransferEncodingNotEndingInChunkedIsRefused) {
  // RFC 9112 6.3: the body length cannot be determined, so the bytes after the header must not
  // be read as the next request.
  for (const char* te : {"gzip", "identity", "xchunked", "chunked, identity", "", "chunked, gzip",
                         "gzip, chunked"}) {
    ExpectRefusedAndClosed("POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " +
                           std::string(te) + "\r\n\r\n" + kNext);
  }
  // Split over two fields, the last coding is what counts.
  ExpectRefusedAndClosed(
      "POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: gzip\r\n\r\n" +
      kNext);
}

TEST_F(HttpFramingTest, TransferEncodingWithContentLengthIsRefused) {
  // Either order, and whatever the coding: the two framings disagree.
  ExpectRefusedAndClosed(
      "POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Content-Length: 5\r\n\r\n0\r\n\r\n" +
      kNext);
  ExpectRefusedAndClosed(
      "POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
      kNext);
  ExpectRefusedAndClosed(
      "POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
      "Content-Length: " +
      std::to_string(kNext.size()) + "\r\n\r\n" + kNext + kNext);
  // Differing Content-Length values.
  ExpectRefusedAndClosed(
      "POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: " +
      std::to_string(kNext.size()) + "\r\n\r\n" + kNext);
  ExpectRefusedAndClosed("POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0, " +
                         std::to_string(kNext.size()) + "\r\n\r\n" + kNext);
}

TEST_F(HttpFramingTest, TransferEncodingOnHttp10IsRefused) {
  ExpectRefusedAndClosed(
      "POST /api/v1/ping HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + kNext);
}

TEST_F(HttpFramingTest, ChunkedRequestsStillWork) {
  auto chunk = [](const std::string& data) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx", data.size());
    return size + ("\r\n" + data + "\r\n");
  };
  HttpClient raw(server_->port());
  const auto r = raw.Raw(
      "POST /api/v1/api_token HTTP/1.1\r\nHost: x\r\n" + Bearer() +
          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
          chunk(R"({"details")") + chunk(R"(:{"token_scope":"account"}})") + "0\r\n\r\n" + kNext,
      2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status, 200) << r[0].body;
  EXPECT_EQ(r[1].status, 200) << r[1].body;
  EXPECT_EQ(r[1].Json().at("status"), "ready");
}

TEST_F(HttpFramingTest, HeadIsGetWithoutTheBody) {
  const Response get = client_->Request("GET", "/healthz");
  ASSERT_EQ(get.status, 200);
  ASSERT_FALSE(get.body.empty());
  // HEAD and a GET behind it on the same keep-alive connection: the HEAD answer must end at
  // its header, or the GET's answer would not parse.
  HttpClient raw(server_->port());
  auto r = raw.Raw("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 1, /*head=*/true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].Header("Content-Length"), std::to_string(get.body.size()));
  EXPECT_EQ(r[0].Header("Content-Type"), get.Header("Content-Type"));
  EXPECT_FALSE(r[0].Header("X-Request-Id").empty());
  EXPECT_NE(r[0].Header("Connection"), "close");
  auto next = raw.Raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  ASSERT_EQ(next.size(), 1u) << "the HEAD answer carried a body: " << raw.Leftover();
  EXPECT_EQ(next[0].status, 200);
  EXPECT_EQ(next[0].body, get.body);

  // An authenticated GET route: the same status and length as GET, no body.
  const Response ping = Call("GET", "/api/v1/ping", main_.jwt);
  ASSERT_EQ(ping.status, 200);
  r = raw.Raw("HEAD /api/v1/ping HTTP/1.1\r\nHost: x\r\n" + Bearer() + "\r\n", 1, true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].Header("Content-Length"), std::to_string(ping.body.size()));
  // Errors to HEAD have no body either: 401 without a token, 404, and 405 where no GET exists.
  r = raw.Raw("HEAD /api/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n", 1, true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 401);
  EXPECT_NE(r[0].Header("Content-Length"), "0");
  r = raw.Raw("HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 1, true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 404);
  const std::string suspend = "/api/v1/api_token/" + main_.token_id.ToString() + "/suspend";
  r = raw.Raw("HEAD " + suspend + " HTTP/1.1\r\nHost: x\r\n" + Bearer() + "\r\n", 1, true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 405);
  EXPECT_EQ(r[0].Header("Allow"), "POST");
  next = raw.Raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  ASSERT_EQ(next.size(), 1u) << "a HEAD answer carried a body: " << raw.Leftover();
  EXPECT_EQ(next[0].status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + main_.token_id.ToString(), main_.jwt)
                .Json()
                .at("details")
                .at("status"),
            "active")
      << "HEAD never ran the POST";
}

TEST_F(HttpFramingTest, AllowListsHeadWhereverGetIs) {
  const std::string token = "/api/v1/api_token/" + main_.token_id.ToString();
  EXPECT_EQ(Call("PUT", token, main_.jwt).Header("Allow"), "GET, HEAD, DELETE");
  EXPECT_EQ(Call("DELETE", "/healthz", "").Header("Allow"), "GET, HEAD");
  EXPECT_EQ(Call("PUT", token + "/revoke", main_.jwt).Header("Allow"), "POST");
}

TEST_F(HttpFramingTest, HostIsRequiredOnceInHttp11) {
  ExpectRefusedAndClosed("GET /healthz HTTP/1.1\r\n\r\n" + kNext);
  ExpectRefusedAndClosed("GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + kNext);
  ExpectRefusedAndClosed("GET /healthz HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n");
  // HTTP/1.0 has no Host requirement.
  HttpClient raw(server_->port());
  bool closed = false;
  const auto r = raw.RawUntilClose("GET /healthz HTTP/1.0\r\n\r\n", &closed);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_TRUE(closed);
}

TEST_F(HttpFramingTest, RepeatedAuthorizationIsRefused) {
  HttpClient raw(server_->port());
  auto r = raw.Raw("GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n" + Bearer() + Bearer() + "\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  EXPECT_EQ(r[0].Json().at("code"), "bad_request");
  r = raw.Raw("GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer garbage\r\n" +
              Bearer() + "\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  EXPECT_EQ(r[0].Json().at("code"), "bad_request");
}

TEST_F(HttpFramingTest, RepeatedIdempotencyKeyIsRefused) {
  const std::string suspend = "/api/v1/api_token/" + main_.token_id.ToString() + "/suspend";
  for (const char* second : {"k2", "k1"}) {
    HttpClient raw(server_->port());
    auto r = raw.Raw("POST " + suspend + " HTTP/1.1\r\nHost: x\r\n" + Bearer() +
                     "Idempotency-Key: k1\r\nIdempotency-Key: " + second +
                     "\r\nContent-Length: 0\r\n\r\n");
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 400) << second;
    EXPECT_EQ(r[0].Json().at("code"), "invalid_value");
    EXPECT_TRUE(r[0].Json().at("errors").as_object().contains("idempotency_key"));
  }
  // Nothing was written: the token is still active and the keys are still free.
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + main_.token_id.ToString(), main_.jwt)
                .Json()
                .at("details")
                .at("status"),
            "active");
  EXPECT_EQ(Call("POST", suspend, main_.jwt, "", {{"Idempotency-Key", "k2"}}).status, 200);
}

}  // namespace
}  // namespace tokenledger::e2e

// The request parser against what it replaced: Beast's basic_parser. Where both accept a
// request they must frame it alike (the same bytes are the request: a difference is
// smuggling) and read the same method, target, body and fields; where Beast refuses, ours
// must refuse too. Inputs are valid requests with random mutations, fed whole and in pieces.
#include "src/http/request_parser.h"

#include "tests/http/parser_comparison.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tokenledger::http {
namespace {

using parser_comparison::Beasts;
using parser_comparison::Difference;
using parser_comparison::Ours;
using parser_comparison::Parsed;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

const std::vector<std::string>& ValidRequests() {
  static const std::vector<std::string> requests = {
      "GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc.def-ghi_jk\r\n\r\n",
      "GET /api/v1/api_token/013xrzp12g3nqk8n7f8f9jbg8d18q7tm?as_of=2024-01-01T00:00:00Z "
      "HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nauthorization:Bearer x\r\nX-Request-Id: r-1 \r\n"
      "Connection: keep-alive, Upgrade\r\n\r\n",
      "POST /api/v1/api_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Idempotency-Key: k1\r\nContent-Length: 14\r\n\r\n{\"details\":{}}",
      "POST /api/v1/introspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      "Expect: 100-continue\r\n\r\n5;name=value\r\ntoken\r\n3\r\n=ab\r\n0\r\nX-Trailer: t\r\n\r\n",
      "DELETE /api/v1/api_token/x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n"
      "\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n"
      "Connection: close\r\n\r\nabc",
      "HEAD /api/v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
      "Authorization: Bearer b\r\nX-Obs: \xc3\xa9t\xe9\t!\r\n\r\n",
  };
  return requests;
}

void ExpectSameRequest(const Parsed& a, const Parsed& b, const std::string& input) {
  EXPECT_EQ(Difference(a, b), "") << input;
}

TEST(RequestParserTest, ReadsWhatBeastReadsFromValidRequests) {
  const std::string next = "GET /next HTTP/1.1\r\nHost: y\r\n\r\n";
  for (const std::string& request : ValidRequests()) {
    const std::string input = request + next;  // a pipelined request after it is not taken
    const Parsed beasts = Beasts(input);
    ASSERT_TRUE(beasts.ok) << beasts.error << "\n" << request;
    for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, input.size()}) {
      const Parsed ours = Ours(input, step);
      ASSERT_TRUE(ours.ok) << ours.error << "\n" << request;
      EXPECT_EQ(ours.consumed, request.size()) << request;
      ExpectSameRequest(ours, beasts, request);
      EXPECT_EQ(ours.keep_alive, beasts.keep_alive) << request;
    }
  }
}

TEST(RequestParserTest, RefusesWhatTheServerMustNotRead) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"", "nothing (Put is given an empty buffer)"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", "obs-fold"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n", "bare LF in a value"},
      {"GET /a HTTP/1.1\nHost: x\r\n\r\n", "bare LF after the request line"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", "bare CR"},
      {std::string("GET /a HTTP/1.1\r\nHost: x\r\nX-A: a") + '\0' + "b\r\n\r\n", "NUL in a value"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", "DEL in a value"},
      {"GET /a HTTP/1.1\r\nHost : x\r\n\r\n", "space before the colon"},
      {"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", "obs-text in the target"},
      {"GET /a HTTP/1.2\r\nHost: x\r\n\r\n", "HTTP/1.2"},
      {"\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", "an empty line first"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na", "a Content-Length list"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
       "Content-Lengths that differ"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", "a signed length"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "00000000000000001\r\na\r\n0\r\n\r\n",
       "17 hex digits"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n",
       "white space after a chunk size"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
       "chunk data longer than its size"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1\r\na\r\n0\r\nX-T : t\r\n\r\n",
       "a malformed trailer"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1\r\na\r\n0\r\nContent-Length: 3\r\n\r\n",
       "a length in the trailers"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 257\r\n\r\n", "a body over the limit"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "100\r\n" +
           std::string(256, 'a') + "\r\n1\r\na\r\n0\r\n\r\n",
       "chunks over the limit"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: " + std::string(1024, 'a') + "\r\n\r\n",
       "a header over the limit"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nConnection: a b\r\n\r\n", "Connection not a token list"},
      {"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "Host repeated"},
      {"GET /a HTTP/1.1\r\n\r\n", "no Host in HTTP/1.1"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       "a coding besides chunked"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
       "0\r\n\r\n",
       "Transfer-Encoding and Content-Length"},
      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc", "a body cut short"},
  };
  for (const auto& [input, why] : refused) {
    for (std::size_t step : {std::size_t{1}, std::size_t{3}, input.size()}) {
      EXPECT_FALSE(Ours(input, step).ok) << why << " (step " << step << ")";
    }
  }
  // Lines ended by LF alone are refused as soon as one is seen, not when the client gives up.
  for (const std::string input :
       {"GET /a HTTP/1.1\nHost: x\n\n", "GET /a HTTP/1.1\r\nHost: x\n\n"}) {
    EXPECT_EQ(Ours(input, input.size()).error,
              beast::error_code(bhttp::error::bad_line_ending).message())
        << input;
  }
}

// A random mutation of a valid request: bytes replaced, inserted, deleted or lines repeated,
// with the bytes that matter to HTTP's grammar more likely than others.
std::string Mutate(std::string s, std::mt19937_64& rng) {
  static const std::string kInteresting = {'\r', '\n', '\t', ' ',    ':',   ';', ',',
                                           '=',  '"',  '0',  'f',    'F',   '-', 'a',
                                           'Z',  '\0', 127,  '\x80', '\xff'};
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  auto byte = [&] {
    return pick(4) == 0 ? static_cast<char>(pick(256)) : kInteresting[pick(kInteresting.size())];
  };
  const std::size_t edits = 1 + pick(3);
  for (std::size_t e = 0; e < edits && !s.empty(); ++e) {
    const std::size_t at = pick(s.size());
    switch (pick(5)) {
      case 0:
        s[at] = byte();
        break;
      case 1:
        s.insert(at, 1, byte());
        break;
      case 2:
        s.erase(at, 1 + pick(3));
        break;
      case 3: {  // repeat the line `at` is in
        const std::size_t start =
            s.rfind('\n', at) == std::string::npos ? 0 : s.rfind('\n', at) + 1;
        const std::size_t end = s.find('\n', at);
        if (end != std::string::npos) s.insert(start, s.substr(start, end + 1 - start));
        break;
      }
      default:  // a header line from another request
        const std::string& other = ValidRequests()[pick(ValidRequests().size())];
        const std::size_t from = other.find("\r\n") + 2;
        const std::size_t to = other.find("\r\n", from);
        const std::size_t line = s.find("\r\n");
        if (line != std::string::npos && to != std::string::npos)
          s.insert(line + 2, other.substr(from, to + 2 - from));
        break;
    }
  }
  return s;
}

TEST(RequestParserTest, MutatedRequestsAreReadAsBeastReadsThemOrRefused) {
  std::mt19937_64 rng(20261201);
  const std::string next = "GET /next HTTP/1.1\r\nHost: y\r\n\r\n";
  std::size_t both_accept = 0, we_refuse_more = 0;
  for (int i = 0; i < 60000; ++i) {
    const std::string& base = ValidRequests()[static_cast<std::size_t>(i) % ValidRequests().size()];
    const std::string input = Mutate(base, rng) + next;
    const Parsed whole = Ours(input, input.size());
    const Parsed pieces = Ours(input, 1 + static_cast<std::size_t>(rng() % 9));
    // Reads split anywhere give the same answer.
    ASSERT_EQ(whole.ok, pieces.ok) << whole.error << " / " << pieces.error << "\n" << input;
    if (whole.ok) ExpectSameRequest(whole, pieces, input);
    const Parsed beasts = Beasts(input);
    if (!whole.ok) {
      we_refuse_more += beasts.ok;
      continue;
    }
    ASSERT_TRUE(beasts.ok) << "accepted here, refused by Beast: " << beasts.error << "\n" << input;
    ++both_accept;
    ExpectSameRequest(whole, beasts, input);
    // HTTP/1.0 with both `close` and `keep-alive` is closed here, kept alive by Beast.
    if (whole.keep_alive) {
      EXPECT_TRUE(beasts.keep_alive) << input;
    }
  }
  std::printf("both accept %zu, only Beast accepts %zu\n", both_accept, we_refuse_more);
  // The mutations exercise both sides: many stay valid, many are refused.
  EXPECT_GT(both_accept, 5000u);
  EXPECT_GT(we_refuse_more, 0u);
}

}  // namespace
}  // namespace tokenledger::http

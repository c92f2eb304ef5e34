// Reads one request with tokenledger's RequestParser and with Beast's basic_parser (what it
// replaced), for comparing the two: request_parser_test and the request_parser fuzz target.
#pragma once

#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "src/http/request_parser.h"

namespace tokenledger::http::parser_comparison {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

inline constexpr std::size_t kHeaderLimit = 1024;
inline constexpr std::uint64_t kBodyLimit = 256;

struct Parsed {
  bool ok = false;     // a whole request, framing accepted
  std::string error;   // why not
  bool limit = false;  // refused for a limit (header_limit or body_limit)
  std::size_t consumed = 0;
  std::string method, target, body, authorization, idempotency_key, request_id, content_type;
  bool repeated_authorization = false;
  bool keep_alive = false;
  unsigned version = 0;
  bool expects_continue = false;
};

// Ours, given the bytes `step` at a time (as reads deliver them), the unconsumed rest
// presented again with more, as the server does.
inline Parsed Ours(std::string_view bytes, std::size_t step) {
  Parsed out;
  HttpRequest r;
  RequestParser::Reset(r);
  RequestParser parser(r, kHeaderLimit, kBodyLimit);
  std::string pending;
  std::size_t fed = 0;
  beast::error_code ec;
  for (;;) {
    const std::size_t n = std::min(step, bytes.size() - fed);
    pending.append(bytes.substr(fed, n));
    fed += n;
    const std::size_t used = parser.Put(boost::asio::buffer(pending), ec);
    out.consumed += used;
    pending.erase(0, used);
    if (ec && ec != bhttp::error::need_more) {
      out.error = ec.message();
      out.limit = ec == bhttp::error::header_limit || ec == bhttp::error::body_limit;
      return out;
    }
    if (!ec && parser.Done()) break;
    if (ec && fed == bytes.size()) {
      out.error = "partial message";
      return out;
    }
  }
  if (auto problem = FramingProblem(parser)) {
    out.error = *problem;
    return out;
  }
  out.ok = true;
  out.method = r.method;
  out.target = r.target;
  out.body = r.body;
  out.authorization = r.authorization;
  out.repeated_authorization = r.repeated_authorization;
  out.idempotency_key = r.idempotency_key;
  out.request_id = r.request_id;
  out.content_type = r.content_type;
  out.keep_alive = parser.KeepAlive();
  out.version = parser.Version();
  out.expects_continue = parser.ExpectsContinue();
  return out;
}

inline std::string First(const bhttp::request<bhttp::string_body>& m, std::string_view name) {
  const auto it = m.find(name);
  return it == m.end() ? std::string() : std::string(it->value());
}

// Beast's parser, given all of `bytes`. The kept fields are read when the header is done:
// Beast's message also collects the trailers' fields, which the server never reads.
inline Parsed Beasts(std::string_view bytes) {
  Parsed out;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kHeaderLimit));
  parser.body_limit(kBodyLimit);
  parser.eager(false);  // stops when the header is done
  beast::error_code ec;
  bool header_read = false;
  while (!parser.is_done()) {
    const std::size_t used = parser.put(
        boost::asio::buffer(bytes.data() + out.consumed, bytes.size() - out.consumed), ec);
    out.consumed += used;
    if (!ec && parser.is_header_done() && !header_read) {
      header_read = true;
      const auto& m = parser.get();
      out.method = std::string(m.method_string());
      out.target = std::string(m.target());
      out.authorization = First(m, "Authorization");
      out.repeated_authorization = m.count(bhttp::field::authorization) > 1;
      out.idempotency_key = First(m, "Idempotency-Key");
      out.request_id = First(m, "X-Request-Id");
      out.content_type = First(m, "Content-Type");
      out.version = m.version();
      const auto expect = m.find(bhttp::field::expect);
      out.expects_continue = expect != m.end() && beast::iequals(expect->value(), "100-continue");
      parser.eager(true);
      continue;
    }
    if (ec == bhttp::error::need_more || (!ec && used == 0)) {
      if (out.consumed == bytes.size() || used == 0) {
        out.error = "partial message";
        return out;
      }
      continue;
    }
    if (ec) {
      out.error = ec.message();
      out.limit = ec == bhttp::error::header_limit || ec == bhttp::error::body_limit;
      return out;
    }
  }
  out.ok = true;
  out.body = parser.get().body();
  out.keep_alive = parser.keep_alive();
  return out;
}

// The first field in which two reads of a request differ ("" if none): the bytes that are
// the request, the method, target, body, the fields the server keeps, the version.
inline std::string Difference(const Parsed& a, const Parsed& b) {
  if (a.consumed != b.consumed) return "consumed";
  if (a.method != b.method) return "method";
  if (a.target != b.target) return "target";
  if (a.body != b.body) return "body";
  if (a.authorization != b.authorization) return "authorization";
  if (a.repeated_authorization != b.repeated_authorization) return "repeated_authorization";
  if (a.idempotency_key != b.idempotency_key) return "idempotency_key";
  if (a.request_id != b.request_id) return "request_id";
  if (a.content_type != b.content_type) return "content_type";
  if (a.version != b.version) return "version";
  if (a.expects_continue != b.expects_continue) return "expects_continue";
  return "";
}

}  // namespace tokenledger::http::parser_comparison

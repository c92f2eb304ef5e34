// The request parser of the HTTP server, and the framing it refuses.
//
// RequestParser is Beast's basic_parser keeping of a request only what the server reads,
// straight into the (reused) HttpRequest: its method, target and body, the first
// Authorization, Idempotency-Key, X-Request-Id and Content-Type (and whether the first two
// are repeated), and what the framing checks need (Host and Content-Length counts, the
// Transfer-Encoding values, Expect). Beast's own request_parser keeps every field in a tree
// of allocated nodes and was searched for each of these; this keeps no allocation per request
// once the HttpRequest's strings have grown. One per request, as every Beast parser.
//
// Included by server.cc only (with request_parser.cc, the translation units that include
// Beast). Thread-safety: one thread.
#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "src/http/http_types.h"

namespace tokenledger::http {

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  // REQUIRES: `into` outlives the parser, and Reset(into) was called before.
  explicit RequestParser(HttpRequest& into) : r_(into) {}

  // Clears what a parser fills in `r` (its connection's fields stay).
  static void Reset(HttpRequest& r);

  boost::beast::http::verb method() const { return method_; }
  unsigned version() const { return version_; }
  std::size_t hosts() const { return hosts_; }
  std::size_t content_length_fields() const { return content_lengths_; }
  const std::vector<std::string>& transfer_encodings() const { return transfer_encodings_; }
  bool expects_continue() const { return expects_continue_; }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target,
                       int version, error_code&) override;
  void on_response_impl(int, string_view, int, error_code& ec) override;
  void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value,
                     error_code&) override;
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override;
  std::size_t on_body_impl(string_view body, error_code&) override;
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override;
  void on_finish_impl(error_code&) override {}

  HttpRequest& r_;
  boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
  unsigned version_ = 11;
  std::size_t hosts_ = 0;
  std::size_t content_lengths_ = 0;
  std::vector<std::string> transfer_encodings_;
  bool seen_expect_ = false;
  bool expects_continue_ = false;
  bool seen_content_type_ = false;
  bool seen_request_id_ = false;
};

// Framing Beast accepts but we refuse (RFC 9112 3.2, 6.1, 6.3): why, or nothing. REQUIRES:
// the parser has the whole header.
std::optional<std::string> FramingProblem(const RequestParser& parser);

}  // namespace tokenledger::http

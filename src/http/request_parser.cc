#include "src/http/request_parser.h"

namespace tokenledger::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

void RequestParser::Reset(HttpRequest& r) {
  r.method.clear();
  r.target.clear();
  r.body.clear();
  r.authorization.clear();
  r.has_authorization = r.repeated_authorization = false;
  r.idempotency_key.clear();
  r.has_idempotency_key = r.repeated_idempotency_key = false;
  r.content_type.clear();
  r.request_id.clear();
}

void RequestParser::on_request_impl(bhttp::verb method, string_view method_str, string_view target,
                                    int version, error_code&) {
  method_ = method;
  version_ = static_cast<unsigned>(version);
  r_.method.assign(method_str.data(), method_str.size());
  r_.target.assign(target.data(), target.size());
}

void RequestParser::on_response_impl(int, string_view, int, error_code& ec) {
  ec = bhttp::error::bad_method;  // never called: this parses requests
}

void RequestParser::on_field_impl(bhttp::field name, string_view name_string, string_view value,
                                  error_code&) {
  const std::string_view v(value.data(), value.size());
  switch (name) {
    case bhttp::field::host:
      ++hosts_;
      return;
    case bhttp::field::content_length:
      ++content_lengths_;
      return;
    case bhttp::field::transfer_encoding:
      transfer_encodings_.emplace_back(v);
      return;
    case bhttp::field::expect:
      if (!seen_expect_) expects_continue_ = beast::iequals(value, "100-continue");
      seen_expect_ = true;
      return;
    case bhttp::field::content_type:
      if (!seen_content_type_) r_.content_type.assign(v);
      seen_content_type_ = true;
      return;
    case bhttp::field::authorization:
      if (r_.has_authorization) {
        r_.repeated_authorization = true;
      } else {
        r_.has_authorization = true;
        r_.authorization.assign(v);
      }
      return;
    default:
      break;
  }
  if (beast::iequals(name_string, "Idempotency-Key")) {
    if (r_.has_idempotency_key) {
      r_.repeated_idempotency_key = true;
    } else {
      r_.has_idempotency_key = true;
      r_.idempotency_key.assign(v);
    }
  } else if (beast::iequals(name_string, "X-Request-Id")) {
    if (!seen_request_id_) r_.request_id.assign(v);
    seen_request_id_ = true;
  }
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) {
  // basic_parser has refused a length over body_limit before this.
  if (length) r_.body.reserve(static_cast<std::size_t>(*length));
}

std::size_t RequestParser::on_body_impl(string_view body, error_code&) {
  r_.body.append(body.data(), body.size());
  return body.size();
}

std::size_t RequestParser::on_chunk_body_impl(std::uint64_t, string_view body, error_code&) {
  r_.body.append(body.data(), body.size());
  return body.size();
}

// Beast already refuses Content-Length values that differ, and Transfer-Encoding after
// Content-Length or after `chunked`; it ignores a Transfer-Encoding that does not end in
// `chunked` and reads no body, so the body would be read as the next request (smuggling). With
// no proxy in front of us the safe answer to any ambiguous length is to refuse and close.
std::optional<std::string> FramingProblem(const RequestParser& parser) {
  const std::size_t hosts = parser.hosts();
  if (hosts > 1) return "the Host header is repeated";
  if (hosts == 0 && parser.version() >= 11) return "an HTTP/1.1 request needs a Host header";
  if (parser.transfer_encodings().empty()) return std::nullopt;
  if (parser.version() < 11) return "Transfer-Encoding is not allowed in HTTP/1.0";
  if (parser.content_length_fields() > 0)
    return "a request may not have both Transfer-Encoding and Content-Length";
  // Only `chunked` alone: no other coding is decoded, and the last one must be chunked.
  std::size_t codings = 0;
  bool chunked = false;
  for (const std::string& value : parser.transfer_encodings()) {
    for (const auto coding : bhttp::token_list{value}) {
      ++codings;
      chunked = beast::iequals(coding, "chunked");
    }
  }
  if (codings != 1 || !chunked || !parser.chunked())
    return "Transfer-Encoding must be exactly 'chunked'";
  return std::nullopt;
}

}  // namespace tokenledger::http

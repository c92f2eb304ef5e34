// The request parser of the HTTP server (RFC 9112), and the framing it refuses.
//
// RequestParser reads one request from the bytes a connection received, straight into the
// (reused) HttpRequest, keeping only what the server reads: the method, target and body, the
// first Authorization, Idempotency-Key, X-Request-Id and Content-Type (and whether the first
// two are repeated), and what the framing checks need (Host and Content-Length counts, the
// Transfer-Encoding values, Expect, Connection). It replaced Beast's basic_parser, which
// checked a header a byte at a time through a table (~2.5k instructions of a ~18k-instruction
// ping, most of them on the token in Authorization): field values are checked eight bytes at a
// time here.
//
// What it accepts: a request line of `token SP visible-ASCII SP HTTP/1.0|HTTP/1.1 CRLF`; fields
// `token ":" OWS value OWS CRLF` with no CTL in the value other than HTAB; CRLF line endings
// only; no obs-fold (RFC 9112 5.2 allows refusing it); Connection a list of tokens;
// Content-Length a single decimal number (repeats must agree); chunk sizes of at most 16 hex
// digits, chunk extensions of RFC 9112 7.1.1's grammar (then ignored); trailers parsed as
// fields and ignored (but a length or a coding there is refused, `Connection: close`
// honoured). That is as strict as Beast's parser or stricter, never looser:
// tests/http/request_parser_test.cc and the request_parser fuzz target compare the two, and
// wherever both accept, they frame and read the same.
//
// Errors are Beast's http::error codes (the server maps them to answers, and their messages
// name what was wrong): need_more, header_limit, body_limit, partial_message and the bad_*.
//
// One per request. Thread-safety: one thread.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/http/http_types.h"

namespace tokenledger::http {

class RequestParser {
 public:
  // REQUIRES: `into` outlives the parser, and Reset(into) was called before.
  RequestParser(HttpRequest& into, std::size_t header_limit, std::uint64_t body_limit)
      : r_(into), header_limit_(header_limit), body_limit_(body_limit) {}

  // Clears what a parser fills in `r` (its connection's fields stay).
  static void Reset(HttpRequest& r);

  // Parses from `bytes` (what was received and not yet consumed) and returns how many it
  // consumed; the caller presents the rest again, with more, at the next call. Stops with
  // success where the header ends (so the caller can look at it before reading a body) and
  // where the request ends; `ec` is need_more when it ran out of bytes first, else an error.
  // REQUIRES: no error before.
  std::size_t Put(boost::asio::const_buffer bytes, boost::beast::error_code& ec);
  // The connection ended: partial_message, as a request cannot end at the connection's end.
  // REQUIRES: GotSome().
  static void PutEof(boost::beast::error_code& ec);

  bool GotSome() const { return got_some_; }
  bool HeaderDone() const { return state_ > State::kFields; }
  bool Done() const { return state_ == State::kDone; }

  // REQUIRES (all below): HeaderDone().
  unsigned Version() const { return version_; }  // 10 or 11
  bool IsHead() const { return r_.method == "HEAD"; }
  // HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
  bool KeepAlive() const;
  std::optional<std::uint64_t> ContentLength() const { return content_length_; }
  bool Chunked() const { return chunked_; }
  std::size_t Hosts() const { return hosts_; }
  std::size_t ContentLengthFields() const { return content_length_fields_; }
  const std::vector<std::string>& TransferEncodings() const { return transfer_encodings_; }
  bool ExpectsContinue() const { return expects_continue_; }

 private:
  enum class State {
    kStartLine,
    kFields,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailers,
    kDone
  };
  using error_code = boost::beast::error_code;

  // Each parses one complete line [p, eol) (eol at its CR; REQUIRES: eol[0..1] is CRLF).
  void StartLine(const char* p, const char* eol, error_code& ec);
  void Field(const char* p, const char* eol, bool trailer, error_code& ec);
  void ChunkSize(const char* p, const char* eol, error_code& ec);
  // What follows the header: the body's state, or done.
  void EndOfHeader(error_code& ec);

  HttpRequest& r_;
  const std::size_t header_limit_;
  const std::uint64_t body_limit_;
  State state_ = State::kStartLine;
  bool got_some_ = false;
  std::size_t header_bytes_ = 0;  // of the header (or the trailers) consumed so far
  std::uint64_t body_bytes_ = 0;  // of the body so far (chunked: declared chunk sizes)
  std::uint64_t remaining_ = 0;   // of the Content-Length body, or of the current chunk
  unsigned version_ = 11;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  std::size_t hosts_ = 0;
  std::size_t content_length_fields_ = 0;
  std::vector<std::string> transfer_encodings_;
  bool seen_expect_ = false;
  bool expects_continue_ = false;
  bool seen_content_type_ = false;
  bool seen_request_id_ = false;
};

// Framing the parser reads but we refuse (RFC 9112 3.2, 6.1, 6.3): why, or nothing. REQUIRES:
// the parser has the whole header.
std::optional<std::string> FramingProblem(const RequestParser& parser);

}  // namespace tokenledger::http

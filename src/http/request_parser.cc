#include "src/http/request_parser.h"

#include <algorithm>
#include <array>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <cassert>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string_view>

namespace tokenledger::http {
namespace {

namespace bhttp = boost::beast::http;

// The longest chunk-size line (size and extensions) read before it is refused.
constexpr std::size_t kMaxChunkSizeLine = 4096;
// Hex digits of a chunk size: 16 fill 64 bits.
constexpr std::size_t kMaxChunkSizeDigits = 16;
// Decimal digits of a Content-Length: 19 cannot overflow 64 bits.
constexpr std::size_t kMaxContentLengthDigits = 19;

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
// "_" / "`" / "|" / "~" / DIGIT / ALPHA.
constexpr std::array<bool, 256> kTokenChar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool IsToken(unsigned char c) { return kTokenChar[c]; }
bool IsOws(char c) { return c == ' ' || c == '\t'; }

// The first byte of [p, end) outside [lo, hi] (unsigned), or end. Sixteen bytes at a time
// (SSE2 is in every x86-64), one at a time elsewhere: the Authorization of every request is
// ~300 bytes, its target ~70.
// REQUIRES: 0 < lo <= hi < 0xFF.
const char* FindOutside(const char* p, const char* end, unsigned char lo, unsigned char hi) {
  assert(lo > 0 && lo <= hi && hi < 0xFF);
#if defined(__SSE2__)
  const __m128i below = _mm_set1_epi8(static_cast<char>(lo - 1));
  const __m128i above = _mm_set1_epi8(static_cast<char>(hi + 1));
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(x, below), x);   // x <= lo - 1
    const __m128i high = _mm_cmpeq_epi8(_mm_max_epu8(x, above), x);  // x >= hi + 1
    const int mask = _mm_movemask_epi8(_mm_or_si128(low, high));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  for (; p < end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c < lo || c > hi) return p;
  }
  return end;
}

// Whether [p, end) holds only field-value bytes: HTAB, SP, VCHAR and obs-text, no other CTL
// and no DEL (RFC 9110 5.5).
bool IsFieldValue(const char* p, const char* end) {
  for (;;) {
    p = FindOutside(p, end, 0x20, 0x7E);
    if (p == end) return true;
    const auto c = static_cast<unsigned char>(*p);
    if (c != '\t' && c < 0x80) return false;
    ++p;
  }
}

// RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
// chunk-ext-name = token, chunk-ext-val = token / quoted-string. REQUIRES: p < end.
bool IsChunkExtensions(const char* p, const char* end) {
  const auto skip_bws = [&p, end] {
    while (p < end && IsOws(*p)) ++p;
  };
  const auto skip_token = [&p, end] {
    const char* start = p;
    while (p < end && IsToken(static_cast<unsigned char>(*p))) ++p;
    return p != start;
  };
  for (;;) {
    skip_bws();
    if (p == end || *p != ';') return false;
    ++p;
    skip_bws();
    if (!skip_token()) return false;  // the name
    if (p == end) return true;
    skip_bws();
    if (p == end) return false;  // white space at the end
    if (*p == ';') continue;     // the next extension, without a value
    if (*p != '=') return false;
    ++p;
    skip_bws();
    if (p < end && *p == '"') {  // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
      for (++p;; ++p) {
        if (p == end) return false;
        auto c = static_cast<unsigned char>(*p);
        if (c == '"') break;
        if (c == '\\') {  // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
          if (++p == end) return false;
          c = static_cast<unsigned char>(*p);
          if (c != '\t' && (c < 0x20 || c == 0x7F)) return false;
          continue;
        }
        // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
        if (c != '\t' && (c < 0x20 || c == 0x7F)) return false;
      }
      ++p;
    } else if (!skip_token()) {
      return false;
    }
    if (p == end) return true;
  }
}

bool IEquals(std::string_view a, std::string_view b) { return boost::beast::iequals(a, b); }

std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && IsOws(v.front())) v.remove_prefix(1);
  while (!v.empty() && IsOws(v.back())) v.remove_suffix(1);
  return v;
}

// Calls `each` with every element of a comma-separated list, OWS trimmed (empty ones too).
template <typename Each>
void ForEachListElement(std::string_view list, Each each) {
  for (;;) {
    const std::size_t comma = list.find(',');
    each(TrimOws(list.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// 1*DIGIT within kMaxContentLengthDigits, or nothing.
std::optional<std::uint64_t> ParseDecimal(std::string_view v) {
  if (v.empty() || v.size() > kMaxContentLengthDigits) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

// A field that must not repeat (the handler refuses it if it did): its first value, and
// whether another came.
void KeepFirst(std::string_view v, std::string& first, bool& seen, bool& repeated) {
  if (seen) {
    repeated = true;
  } else {
    seen = true;
    first.assign(v);
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

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

bool RequestParser::KeepAlive() const {
  if (connection_close_) return false;
  return version_ >= 11 || connection_keep_alive_;
}

void RequestParser::PutEof(error_code& ec) { ec = bhttp::error::partial_message; }

std::size_t RequestParser::Put(boost::asio::const_buffer bytes, error_code& ec) {
  const char* const begin = static_cast<const char*>(bytes.data());
  const char* const end = begin + bytes.size();
  const char* p = begin;
  if (p != end) got_some_ = true;
  ec = {};
  for (;;) {
    const auto available = static_cast<std::size_t>(end - p);
    switch (state_) {
      case State::kStartLine:
      case State::kFields:
      case State::kTrailers:
      case State::kChunkSize: {
        const bool header = state_ != State::kChunkSize;
        const auto* cr =
            available == 0 ? nullptr : static_cast<const char*>(std::memchr(p, '\r', available));
        if (cr == nullptr || cr + 1 == end) {  // the line is not complete yet
          const bool bare_lf =
              available > 0 &&
              std::memchr(p, '\n', static_cast<std::size_t>((cr ? cr : end) - p)) != nullptr;
          if (bare_lf) {  // a client ending lines with LF alone: refused now, not at the timeout
            ec = bhttp::error::bad_line_ending;
          } else if (header && header_bytes_ + available >= header_limit_) {
            ec = bhttp::error::header_limit;
          } else if (!header && available > kMaxChunkSizeLine) {
            ec = bhttp::error::bad_chunk_extension;
          } else {
            ec = bhttp::error::need_more;
          }
          return static_cast<std::size_t>(p - begin);
        }
        if (cr[1] != '\n') {
          ec = bhttp::error::bad_line_ending;
          return static_cast<std::size_t>(p - begin);
        }
        const char* next = cr + 2;
        const auto line = static_cast<std::size_t>(next - p);
        if (header) {
          if (header_bytes_ + line > header_limit_) {
            ec = bhttp::error::header_limit;
            return static_cast<std::size_t>(p - begin);
          }
          header_bytes_ += line;
        } else if (line > kMaxChunkSizeLine) {
          ec = bhttp::error::bad_chunk_extension;
          return static_cast<std::size_t>(p - begin);
        }
        const bool empty = cr == p;
        if (state_ == State::kStartLine) {
          StartLine(p, cr, ec);
        } else if (state_ == State::kChunkSize) {
          ChunkSize(p, cr, ec);
        } else if (empty && state_ == State::kFields) {
          EndOfHeader(ec);
        } else if (empty) {  // the end of the trailers
          state_ = State::kDone;
        } else {
          Field(p, cr, state_ == State::kTrailers, ec);
        }
        if (ec) return static_cast<std::size_t>(p - begin);
        p = next;
        // An empty line ends the header (the caller looks at it before any body is read) or
        // the trailers (the request).
        if (empty) return static_cast<std::size_t>(p - begin);
        break;
      }
      case State::kBody:
      case State::kChunkData: {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, available));
        r_.body.append(p, n);
        p += n;
        remaining_ -= n;
        if (remaining_ > 0) {
          ec = bhttp::error::need_more;
          return static_cast<std::size_t>(p - begin);
        }
        state_ = state_ == State::kBody ? State::kDone : State::kChunkEnd;
        break;
      }
      case State::kChunkEnd:
        if (available < 2) {
          ec = bhttp::error::need_more;
          return static_cast<std::size_t>(p - begin);
        }
        if (p[0] != '\r' || p[1] != '\n') {
          ec = bhttp::error::bad_chunk;
          return static_cast<std::size_t>(p - begin);
        }
        p += 2;
        state_ = State::kChunkSize;
        break;
      case State::kDone:
        return static_cast<std::size_t>(p - begin);
    }
  }
}

void RequestParser::StartLine(const char* p, const char* eol, error_code& ec) {
  // request-line = method SP request-target SP HTTP-version
  const char* method = p;
  while (p < eol && IsToken(static_cast<unsigned char>(*p))) ++p;
  if (p == method || p == eol || *p != ' ') {
    ec = bhttp::error::bad_method;
    return;
  }
  const char* method_end = p++;
  const char* target = p;
  p = FindOutside(p, eol, 0x21, 0x7E);  // visible ASCII
  if (p == target || p == eol || *p != ' ') {
    ec = bhttp::error::bad_target;
    return;
  }
  const char* target_end = p++;
  const std::string_view version(p, static_cast<std::size_t>(eol - p));
  if (version == "HTTP/1.1") {
    version_ = 11;
  } else if (version == "HTTP/1.0") {
    version_ = 10;
  } else {
    ec = bhttp::error::bad_version;
    return;
  }
  r_.method.assign(method, method_end);
  r_.target.assign(target, target_end);
  state_ = State::kFields;
}

void RequestParser::Field(const char* p, const char* eol, bool trailer, error_code& ec) {
  // field-line = field-name ":" OWS field-value OWS
  if (IsOws(*p)) {  // obs-fold (or a field line starting with white space): refused
    ec = bhttp::error::bad_obs_fold;
    return;
  }
  const char* name_begin = p;
  while (p < eol && IsToken(static_cast<unsigned char>(*p))) ++p;
  if (p == name_begin || p == eol || *p != ':') {
    ec = bhttp::error::bad_field;
    return;
  }
  const std::string_view name(name_begin, static_cast<std::size_t>(p - name_begin));
  ++p;
  if (!IsFieldValue(p, eol)) {
    ec = bhttp::error::bad_value;
    return;
  }
  // Trailers are checked, not kept, but for what changes framing or the connection: a length
  // or a coding there is refused (RFC 9110 6.5.1), a `Connection: close` honoured.
  if (trailer && !IEquals(name, "Connection") && !IEquals(name, "Content-Length") &&
      !IEquals(name, "Transfer-Encoding")) {
    return;
  }
  const std::string_view v = TrimOws(std::string_view(p, static_cast<std::size_t>(eol - p)));

  switch (name.size()) {
    case 4:
      if (IEquals(name, "Host")) ++hosts_;
      return;
    case 6:
      if (IEquals(name, "Expect")) {
        if (!seen_expect_) expects_continue_ = IEquals(v, "100-continue");
        seen_expect_ = true;
      }
      return;
    case 10:
      if (IEquals(name, "Connection")) {
        bool tokens = true;
        ForEachListElement(v, [this, &tokens](std::string_view option) {
          for (char c : option) tokens = tokens && IsToken(static_cast<unsigned char>(c));
          if (IEquals(option, "close")) connection_close_ = true;
          if (IEquals(option, "keep-alive")) connection_keep_alive_ = true;
        });
        if (!tokens) ec = bhttp::error::bad_value;  // RFC 9110 7.6.1: a list of tokens
      }
      return;
    case 12:
      if (IEquals(name, "Content-Type")) {
        if (!seen_content_type_) r_.content_type.assign(v);
        seen_content_type_ = true;
      } else if (IEquals(name, "X-Request-Id")) {
        if (!seen_request_id_) r_.request_id.assign(v);
        seen_request_id_ = true;
      }
      return;
    case 13:
      if (IEquals(name, "Authorization"))
        KeepFirst(v, r_.authorization, r_.has_authorization, r_.repeated_authorization);
      return;
    case 14:
      if (IEquals(name, "Content-Length")) {
        const auto n = ParseDecimal(v);
        if (!n || trailer) {
          ec = bhttp::error::bad_content_length;
          return;
        }
        if (content_length_ && *content_length_ != *n) {
          ec = bhttp::error::multiple_content_length;
          return;
        }
        content_length_ = n;
        ++content_length_fields_;
      }
      return;
    case 15:
      if (IEquals(name, "Idempotency-Key"))
        KeepFirst(v, r_.idempotency_key, r_.has_idempotency_key, r_.repeated_idempotency_key);
      return;
    case 17:
      if (IEquals(name, "Transfer-Encoding")) {
        if (trailer) {
          ec = bhttp::error::bad_transfer_encoding;
          return;
        }
        transfer_encodings_.emplace_back(v);
        // The message is chunked when the last coding of the last field is (FramingProblem
        // refuses every other combination).
        std::string_view last;
        ForEachListElement(v, [&last](std::string_view coding) { last = coding; });
        chunked_ = IEquals(last, "chunked");
      }
      return;
    default:
      return;
  }
}

void RequestParser::EndOfHeader(error_code& ec) {
  if (chunked_) {
    header_bytes_ = 0;  // the trailers get a header's limit of their own
    state_ = State::kChunkSize;
  } else if (content_length_ && *content_length_ > 0) {
    if (*content_length_ > body_limit_) {
      ec = bhttp::error::body_limit;
      return;
    }
    r_.body.reserve(static_cast<std::size_t>(*content_length_));
    remaining_ = *content_length_;
    state_ = State::kBody;
  } else {
    state_ = State::kDone;
  }
}

void RequestParser::ChunkSize(const char* p, const char* eol, error_code& ec) {
  // chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
  std::uint64_t size = 0;
  const char* digits = p;
  for (int v; p < eol && (v = HexValue(*p)) >= 0; ++p) {
    if (static_cast<std::size_t>(p - digits) == kMaxChunkSizeDigits) {
      ec = bhttp::error::bad_chunk;
      return;
    }
    size = size * 16 + static_cast<std::uint64_t>(v);
  }
  if (p == digits) {
    ec = bhttp::error::bad_chunk;
    return;
  }
  if (p < eol && !IsChunkExtensions(p, eol)) {  // checked, then ignored
    ec = bhttp::error::bad_chunk_extension;
    return;
  }
  if (size == 0) {
    state_ = State::kTrailers;
    return;
  }
  if (size > body_limit_ - body_bytes_) {
    ec = bhttp::error::body_limit;
    return;
  }
  body_bytes_ += size;
  remaining_ = size;
  state_ = State::kChunkData;
}

// The parser refuses conflicting Content-Length values; it reads any Transfer-Encoding. A
// Transfer-Encoding that does not end in `chunked` would leave the body to be read as the next
// request (smuggling). With no proxy in front of us the safe answer to any ambiguous length is
// to refuse and close.
std::optional<std::string> FramingProblem(const RequestParser& parser) {
  const std::size_t hosts = parser.Hosts();
  if (hosts > 1) return "the Host header is repeated";
  if (hosts == 0 && parser.Version() >= 11) return "an HTTP/1.1 request needs a Host header";
  if (parser.TransferEncodings().empty()) return std::nullopt;
  if (parser.Version() < 11) return "Transfer-Encoding is not allowed in HTTP/1.0";
  if (parser.ContentLengthFields() > 0)
    return "a request may not have both Transfer-Encoding and Content-Length";
  // Only `chunked` alone: no other coding is decoded, and the last one must be chunked.
  std::size_t codings = 0;
  bool chunked = false;
  for (const std::string& value : parser.TransferEncodings()) {
    ForEachListElement(value, [&](std::string_view coding) {
      if (coding.empty()) return;
      ++codings;
      chunked = IEquals(coding, "chunked");
    });
  }
  if (codings != 1 || !chunked || !parser.Chunked())
    return "Transfer-Encoding must be exactly 'chunked'";
  return std::nullopt;
}

}  // namespace tokenledger::http

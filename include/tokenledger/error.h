// Error codes of the wire contract (SPEC.md, "Errors") and the result type used by core and
// store. Errors are values below the HTTP edge; the HTTP layer maps a code to a status with
// one table.
//
// Thread-safety: value types only.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tokenledger {

enum class ErrorCode {
  kBadRequest,                 // 400 malformed JSON, wrong shape, unknown query shape
  kInvalidValue,               // 400 wrong type or format
  kRequiredValue,              // 400 required field missing
  kNotAuthenticated,           // 401 no Authorization header
  kBadAuthToken,               // 401 token not usable
  kNotPermitted,               // 403 scope does not allow it
  kNotFound,                   // 404
  kMethodNotAllowed,           // 405, wire code bad_request
  kInvalidAction,              // 409 action not in available_actions
  kIdempotencyKeyAlreadyUsed,  // 409 key used for a different request
  kPayloadTooLarge,            // 413, wire code bad_request
  kUriTooLong,                 // 414 request URL over the limit, wire code bad_request
  kHeadersTooLarge,            // 431 request headers over the limit, wire code bad_request
  kUnexpected,                 // 500 a bug
  kUnavailable,                // 503 storage unavailable or overloaded, wire code unknown
};

// The `code` string of the error envelope.
std::string_view WireCode(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kUnexpected;
  std::string message;
  // Optional field name for the envelope's `errors` object (empty when none).
  std::string field;
};

// A value or an Error. Deliberately small: C++20 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result of an operation that returns nothing.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  static Status Ok() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace tokenledger

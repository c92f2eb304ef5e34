#include "src/http/errors.h"

#include <boost/json.hpp>

namespace tokenledger::http {

int HttpStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
    case ErrorCode::kInvalidValue:
    case ErrorCode::kRequiredValue:
      return 400;
    case ErrorCode::kNotAuthenticated:
    case ErrorCode::kBadAuthToken:
      return 401;
    case ErrorCode::kNotPermitted:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kMethodNotAllowed:
      return 405;
    case ErrorCode::kInvalidAction:
    case ErrorCode::kIdempotencyKeyAlreadyUsed:
      return 409;
    case ErrorCode::kPayloadTooLarge:
      return 413;
    case ErrorCode::kUriTooLong:
      return 414;
    case ErrorCode::kHeadersTooLarge:
      return 431;
    case ErrorCode::kUnexpected:
      return 500;
    case ErrorCode::kUnavailable:
      return 503;
  }
  return 500;
}

std::string ErrorBody(const Error& error) {
  boost::json::object o{
      {"status", "error"}, {"code", WireCode(error.code)}, {"message", error.message}};
  if (!error.field.empty()) o["errors"] = boost::json::object{{error.field, error.message}};
  return boost::json::serialize(o);
}

HttpResponse ErrorResponse(const Error& error) {
  HttpResponse r;
  r.status = HttpStatus(error.code);
  r.body = ErrorBody(error);
  if (r.status == 503)
    r.headers.emplace_back("Retry-After", "1");  // overload and storage errors pass
  return r;
}

}  // namespace tokenledger::http

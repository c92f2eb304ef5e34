#include "tokenledger/error.h"

namespace tokenledger {

std::string_view WireCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadRequest:
    case ErrorCode::kMethodNotAllowed:
    case ErrorCode::kPayloadTooLarge:
    case ErrorCode::kUriTooLong:
    case ErrorCode::kHeadersTooLarge:
      return "bad_request";
    case ErrorCode::kInvalidValue:
      return "invalid_value";
    case ErrorCode::kRequiredValue:
      return "required_value";
    case ErrorCode::kNotAuthenticated:
      return "not_authenticated";
    case ErrorCode::kBadAuthToken:
      return "bad_authtoken";
    case ErrorCode::kNotPermitted:
      return "not_permitted";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kInvalidAction:
      return "invalid_action";
    case ErrorCode::kIdempotencyKeyAlreadyUsed:
      return "idempotency_key_already_used";
    case ErrorCode::kUnexpected:
      return "unexpected";
    case ErrorCode::kUnavailable:
      return "unknown";
  }
  return "unexpected";
}

}  // namespace tokenledger

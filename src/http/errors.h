// The one table from error codes to HTTP statuses, and the error envelope
// {"status":"error","code":..,"message":..[,"errors":{field: message}]}.
//
// Nothing else maps a code to a status: every error answer, from the handlers and from the
// server's refusals of unreadable requests alike, is built by ErrorResponse. (A replay of an
// idempotency record of format 1 sends the status it recorded, which this table produced.)
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "src/http/http_types.h"
#include "tokenledger/error.h"

namespace tokenledger::http {

// The HTTP status of `code` (500 for a value outside the enum).
int HttpStatus(ErrorCode code);
// The JSON envelope of `error`; `errors` is present only when error.field is not empty.
std::string ErrorBody(const Error& error);
// HttpStatus and ErrorBody together; a 503 also gets `Retry-After: 1`.
HttpResponse ErrorResponse(const Error& error);
inline HttpResponse ErrorResponse(ErrorCode code, std::string message, std::string field = {}) {
  return ErrorResponse(Error{code, std::move(message), std::move(field)});
}

}  // namespace tokenledger::http

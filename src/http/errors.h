// The one table from error codes to HTTP statuses, and the error envelope
// {"status":"error","code":..,"message":..[,"errors":{field: message}]}.
#pragma once

#include <string>

#include "src/http/http_types.h"
#include "tokenledger/error.h"

namespace tokenledger::http {

int HttpStatus(ErrorCode code);
std::string ErrorBody(const Error& error);
HttpResponse ErrorResponse(const Error& error);
inline HttpResponse ErrorResponse(ErrorCode code, std::string message, std::string field = {}) {
  return ErrorResponse(Error{code, std::move(message), std::move(field)});
}

}  // namespace tokenledger::http

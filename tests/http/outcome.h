// Test helper for the HTTP units: a Result or Status as one comparable string.
#pragma once

#include <string>

#include "tokenledger/error.h"

namespace tokenledger::http::testing {

// "ok", or "code|field|message". R: a Result<T> or a Status.
template <typename R>
std::string Outcome(const R& r) {
  if (r) return "ok";
  // Appends only: GCC 12 at -O3 reports a false -Wrestrict on `std::string + "literal"` chains
  // (GCC bug 105329), which stops the Release build under -Werror.
  std::string out(WireCode(r.error().code));
  return out.append("|").append(r.error().field).append("|").append(r.error().message);
}

}  // namespace tokenledger::http::testing

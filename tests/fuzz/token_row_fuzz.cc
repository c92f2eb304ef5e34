// The token-details row codec on arbitrary bytes: what the store reads back from its rows
// family (DecodeTokenRow). It must never crash or read past the input, and it must be
// canonical: every accepted input is exactly the encoding of the row it decodes to (verify
// compares rows by their bytes first), and that row describes itself as JSON.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "projections/token_details.h"

namespace {

using namespace tokenledger;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "token_row_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto row = projections::DecodeTokenRow(input);
  if (!row) return 0;
  if (!row->state.Visible()) Fail("a decoded row is not a visible token's");
  if (projections::EncodeTokenRow(*row) != input) Fail("an accepted row is not canonical");
  boost::system::error_code ec;
  const boost::json::value described = boost::json::parse(projections::DescribeTokenRow(*row), ec);
  if (ec || !described.is_object()) Fail("a row's description is not a JSON object");
  return 0;
}

// The request parser beside Beast's basic_parser (what it replaced), on any bytes: no crash or
// undefined behaviour (ASan, UBSan); the same answer whether the bytes come at once or in
// pieces (the input's first byte picks their size); and wherever ours accepts a request,
// Beast's accepts it too and reads the same bytes as the request, with the same method,
// target, body and fields. A violation aborts, so libFuzzer keeps the input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tests/http/parser_comparison.h"

namespace {

using namespace tokenledger::http::parser_comparison;

[[noreturn]] void Finding(const char* what, std::string_view input) {
  std::fprintf(stderr, "request_parser_fuzz: %s\ninput (%zu bytes): %.*s\n", what, input.size(),
               static_cast<int>(input.size()), input.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t step = 1 + data[0] % 16;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Parsed whole = Ours(input, input.size() + 1);
  const Parsed pieces = Ours(input, step);
  if (whole.ok != pieces.ok) Finding("read whole and in pieces, one accepts", input);
  if (whole.ok && !Difference(whole, pieces).empty())
    Finding(("read whole and in pieces, they differ in " + Difference(whole, pieces)).c_str(),
            input);
  if (!whole.ok) return 0;
  const Parsed beasts = Beasts(input);
  if (!beasts.ok) Finding(("accepted here, refused by Beast: " + beasts.error).c_str(), input);
  const std::string difference = Difference(whole, beasts);
  if (!difference.empty()) Finding(("Beast reads it otherwise: " + difference).c_str(), input);
  if (whole.keep_alive && !beasts.keep_alive) Finding("kept alive here, closed by Beast", input);
  return 0;
}

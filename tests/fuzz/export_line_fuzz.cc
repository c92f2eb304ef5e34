// The line reader of `tokenledger import` (ParseExportLine), on an arbitrary file split into
// lines as import splits it (std::getline). Every accepted line must format back to exactly
// itself, and its record then goes through what AppendVerbatim does first (hash check and
// DecodeStoredEvent). In the other direction, any record formats to a line that reads back to
// the same record.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/event_codec.h"
#include "tools/tokenledger/export_format.h"

namespace {

using namespace tokenledger;

[[noreturn]] void Fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "export_line_fuzz: %s\n  input: %.*s\n", what,
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void ReadLine(std::string_view line) {
  if (line.empty()) return;  // import skips empty lines
  auto record = cli::ParseExportLine(line);
  if (!record) return;
  if (record->size() <= sizeof(events::Hash)) Fail("accepted a line with an empty body", line);
  if (cli::FormatExportLine(*record) != std::string(line) + "\n")
    Fail("an accepted line does not format back to itself", line);
  if (events::StoredHashMatches(*record)) {
    if (auto e = events::DecodeStoredEvent(*record)) {
      if (!std::equal(e->hash.begin(), e->hash.end(),
                      reinterpret_cast<const std::uint8_t*>(record->data())))
        Fail("a decoded record does not carry its stored hash", line);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // std::getline: lines end at '\n'; a last line without one still counts.
  for (std::size_t start = 0; start < input.size();) {
    const std::size_t nl = input.find('\n', start);
    const std::size_t end = nl == std::string_view::npos ? input.size() : nl;
    ReadLine(input.substr(start, end - start));
    start = end + 1;
  }
  // Writer -> reader: any record with a non-empty body survives export -> import.
  if (size > sizeof(events::Hash)) {
    std::string line = cli::FormatExportLine(input);
    if (line.back() != '\n') Fail("a formatted line does not end with a newline", input);
    line.pop_back();
    auto back = cli::ParseExportLine(line);
    if (!back || *back != input) Fail("a formatted record does not read back", input);
  }
  return 0;
}

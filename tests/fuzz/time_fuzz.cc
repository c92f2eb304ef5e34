// ParseRfc3339 on arbitrary text. Every accepted time lies in years 0001-9999, formats to the
// canonical `YYYY-MM-DDTHH:MM:SS.ffffffZ` form, and that form parses back to the same instant
// (and formats to itself). The first 8 bytes, read as a number, also drive Format -> Parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "tokenledger/time.h"

namespace {

using tokenledger::Micros;

// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
constexpr Micros kMin = -62135596800LL * 1'000'000;
constexpr Micros kMax = 253402300800LL * 1'000'000 - 1;

void CheckCanonical(Micros t) {
  const std::string text = tokenledger::FormatRfc3339(t);
  if (text.size() != 27 || text[10] != 'T' || text[19] != '.' || text[26] != 'Z') std::abort();
  const auto back = tokenledger::ParseRfc3339(text);
  if (!back || *back != t) std::abort();
  if (tokenledger::FormatRfc3339(*back) != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto t = tokenledger::ParseRfc3339(text)) {
    if (*t < kMin || *t > kMax) std::abort();
    CheckCanonical(*t);
  }
  if (size >= sizeof(Micros)) {
    Micros raw = 0;
    std::memcpy(&raw, data, sizeof raw);
    // Map any 64-bit value into the supported range (FormatRfc3339 REQUIRES years 0000-9999).
    const auto span = static_cast<std::uint64_t>(kMax - kMin) + 1;
    CheckCanonical(kMin + static_cast<Micros>(static_cast<std::uint64_t>(raw) % span));
  }
  return 0;
}

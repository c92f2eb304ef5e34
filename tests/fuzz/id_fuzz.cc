// Id::Parse on arbitrary text. An accepted id must print back to exactly the same text (the
// text form is canonical: no case folding, no aliases), and parse again to the same id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tokenledger/id.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tokenledger::Id;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto id = Id::Parse(text);
  if (id) {
    const std::string printed = id->ToString();
    if (printed != text) std::abort();  // two texts for one id
    const auto again = Id::Parse(printed);
    if (!again || *again != *id) std::abort();
    // The accessors only look at the bytes; the bytes round trip through FromBytes.
    const auto from_bytes = Id::FromBytes(id->Bytes());
    if (!from_bytes || *from_bytes != *id) std::abort();
    if ((id->UnixMillis() >> 46) != 0) std::abort();  // the text starts 0-7: 46-bit time
  }
  // Raw 20-byte keys: FromBytes accepts exactly 20 bytes; ids with a valid first character
  // print to text that parses back to them.
  if (const auto raw = Id::FromBytes(text)) {
    const std::string printed = raw->ToString();
    const auto parsed = Id::Parse(printed);
    if (parsed.has_value() != (printed[0] <= '7')) std::abort();
    if (parsed && *parsed != *raw) std::abort();
  }
  return 0;
}

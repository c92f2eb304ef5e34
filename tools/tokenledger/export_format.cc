#include "tools/tokenledger/export_format.h"

#include <algorithm>

#include "events/event_codec.h"
#include "events/hash_chain.h"

namespace tokenledger::cli {
namespace {

constexpr std::string_view kLinePrefix = "{\"hash\":\"";
constexpr std::string_view kLineMiddle = "\",\"event\":";
constexpr std::size_t kHexLength = 2 * sizeof(events::Hash);
constexpr std::size_t kBodyAt = kLinePrefix.size() + kHexLength + kLineMiddle.size();

}  // namespace

std::string FormatExportLine(std::string_view record) {
  events::Hash hash{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(record.data()), hash.size(), hash.begin());
  std::string line(kLinePrefix);
  line += events::HashToHex(hash);
  line += kLineMiddle;
  line += events::StoredBody(record);
  line += "}\n";
  return line;
}

std::optional<std::string> ParseExportLine(std::string_view line) {
  if (line.size() <= kBodyAt + 1 || !line.starts_with(kLinePrefix) ||
      line.substr(kLinePrefix.size() + kHexLength, kLineMiddle.size()) != kLineMiddle ||
      line.back() != '}') {
    return std::nullopt;
  }
  const auto hash = events::HashFromHex(line.substr(kLinePrefix.size(), kHexLength));
  if (!hash) return std::nullopt;
  std::string record(reinterpret_cast<const char*>(hash->data()), hash->size());
  record.append(line.substr(kBodyAt, line.size() - kBodyAt - 1));
  return record;
}

}  // namespace tokenledger::cli

#include "tools/tokenledger/export_format.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
  std::string record;
  if (!AppendExportRecord(line, record)) return std::nullopt;
  return record;
}

bool AppendExportRecord(std::string_view line, std::string& out) {
  if (line.size() <= kBodyAt + 1 || !line.starts_with(kLinePrefix) ||
      line.substr(kLinePrefix.size() + kHexLength, kLineMiddle.size()) != kLineMiddle ||
      line.back() != '}') {
    return false;
  }
  const auto hash = events::HashFromHex(line.substr(kLinePrefix.size(), kHexLength));
  if (!hash) return false;
  out.append(reinterpret_cast<const char*>(hash->data()), hash->size());
  out.append(line.substr(kBodyAt, line.size() - kBodyAt - 1));
  return true;
}

bool LineReader::Next(std::string_view* line) {
  std::size_t scanned = begin_;  // no '\n' in buffer_[begin_, scanned)
  for (;;) {
    if (const void* nl = std::memchr(buffer_.data() + scanned, '\n', end_ - scanned)) {
      const std::size_t at =
          static_cast<std::size_t>(static_cast<const char*>(nl) - buffer_.data());
      *line = std::string_view(buffer_.data() + begin_, at - begin_);
      begin_ = at + 1;
      return true;
    }
    scanned = end_;
    if (eof_ || error_) {
      if (begin_ == end_) return false;
      *line = std::string_view(buffer_.data() + begin_, end_ - begin_);  // no final '\n'
      begin_ = end_;
      return true;
    }
    // Room for more: move the partial line to the front, or grow for a line longer than the
    // buffer.
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      scanned -= begin_;
      begin_ = 0;
    }
    if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
    const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = errno;
    } else if (n == 0) {
      eof_ = true;
    } else {
      end_ += static_cast<std::size_t>(n);
    }
  }
}

}  // namespace tokenledger::cli

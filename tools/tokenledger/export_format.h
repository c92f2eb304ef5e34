// The export format: JSON Lines, one stored event per line, written by `tokenledger export` and
// read back by `tokenledger import`:
//
//   {"hash":"<64 lowercase hex digits>","event":<the stored body, byte for byte>}
//
// The body is embedded exactly as stored (not re-encoded), so export -> import -> export is
// byte-identical and the hash chain still matches after an import.
//
// Thread-safety: the functions are pure and thread-safe; a LineReader is used by one thread
// at a time.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger::cli {

// The line for one stored record (32 hash bytes, then the body), with its trailing '\n'.
// REQUIRES: record.size() >= 32.
std::string FormatExportLine(std::string_view record);

// Reads one line (without its '\n') back into the stored record: 32 hash bytes, then the body.
// Returns nullopt unless the line is the exact prefix `{"hash":"`, 64 lowercase hex digits,
// `","event":`, a non-empty body and a final `}` (no '\r', no surrounding whitespace). The body
// is not looked at here; the importer checks hashes, links and events.
// Guarantee: for every accepted line, FormatExportLine(*ParseExportLine(line)) == line + "\n".
std::optional<std::string> ParseExportLine(std::string_view line);
// The same, appending the record to `out` (left as it was when the line is refused): a bulk
// reader keeps many records in one buffer instead of one allocation each.
bool AppendExportRecord(std::string_view line, std::string& out);

// Reads the lines of a file descriptor (an export: a file or a pipe) through one buffer of
// kLineReaderBufferBytes, grown only for a longer line. std::getline on std::cin went through
// stdio one character at a time: 60% of an import's CPU when the export came on stdin.
inline constexpr std::size_t kLineReaderBufferBytes = 1u << 20;
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd), buffer_(kLineReaderBufferBytes, '\0') {}
  // The next line, without its '\n' (the last line may lack one), valid until the next call.
  // False at the end of the input or on a read error (then error() is its errno).
  bool Next(std::string_view* line);
  int error() const { return error_; }

 private:
  int fd_;
  std::string buffer_;
  std::size_t begin_ = 0, end_ = 0;  // the unread bytes: buffer_[begin_, end_)
  bool eof_ = false;
  int error_ = 0;
};

}  // namespace tokenledger::cli

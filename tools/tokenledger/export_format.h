// The export format: JSON Lines, one stored event per line, written by `tokenledger export` and
// read back by `tokenledger import`:
//
//   {"hash":"<64 lowercase hex digits>","event":<the stored body, byte for byte>}
//
// The body is embedded exactly as stored (not re-encoded), so export -> import -> export is
// byte-identical and the hash chain still matches after an import.
//
// Thread-safety: pure functions, thread-safe.
#pragma once

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

}  // namespace tokenledger::cli

// Time: every instant is a count of microseconds since the Unix epoch, UTC (`Micros`).
//
// The wire form is RFC 3339 in UTC with exactly six fractional digits,
// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so that all timestamps have one shape and sort as text.
// Inputs accept any RFC 3339 offset and fraction length and are normalised to UTC.
// Thread-safety: all functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tokenledger {

using Micros = std::int64_t;

constexpr Micros kMicrosPerSecond = 1'000'000;
constexpr Micros kMicrosPerMinute = 60 * kMicrosPerSecond;
constexpr Micros kMicrosPerHour = 60 * kMicrosPerMinute;
constexpr Micros kMicrosPerDay = 24 * kMicrosPerHour;

// Formats as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. REQUIRES: the year is within 0000-9999.
std::string FormatRfc3339(Micros t);

// The length of FormatRfc3339's text.
constexpr std::size_t kRfc3339Length = 27;

// Writes the same text as FormatRfc3339(t) to out[0, kRfc3339Length) (no terminating NUL),
// without allocating or calling printf: for the log, which formats the time of every line.
// Remembers the date and time of the last second it formatted, per thread, so successive
// calls within one second only format the fraction. REQUIRES: as FormatRfc3339.
void FormatRfc3339To(Micros t, char* out);

// Parses RFC 3339 (`T` or `t` separator, `Z`/`z` or `+HH:MM`/`-HH:MM`, 0-9 fraction digits;
// digits past microseconds are truncated). Returns nullopt for anything else, including
// out-of-range fields (month 13, Feb 30, hour 24) and results outside years 0001-9999.
std::optional<Micros> ParseRfc3339(std::string_view text);

// The system clock now, in microseconds.
Micros NowMicros();

}  // namespace tokenledger

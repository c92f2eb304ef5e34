// Structured logging: one JSON object per line on stderr, written with one write(2) so lines
// from different threads never interleave. Never log a token, a signing key or a request body.
//
// Thread-safety: all functions are thread-safe; SetLogLevel is meant for start-up.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tokenledger {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

bool ParseLogLevel(std::string_view name, LogLevel* out);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

using LogValue = std::variant<std::string_view, long long, double, bool>;
using LogField = std::pair<std::string_view, LogValue>;

// {"ts":"...","level":"info","msg":"...", fields...}
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

}  // namespace tokenledger

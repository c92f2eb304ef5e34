// Structured logging: one JSON object per line, on stderr by default. Never log a token, a
// signing key or a request body.
//
// Two modes. Before StartLogWriter (early start-up, the operator CLI, tests) and after
// StopLogWriter, Log writes each line synchronously with one write(2) to stderr, as a plain
// tool should. Between them (the server), Log formats the line on the caller's thread into a
// thread-local buffer and appends it to that thread's bounded in-memory buffer (its own
// mutex, so threads never wait on each other to log); one background thread takes every
// thread's lines once a millisecond under load and writes them to the output in one write.
// Lines of one thread stay in order; lines of different threads logged within the same
// millisecond may come out of order (each carries its time). A caller never waits for the output:
// when the buffer is full the line is dropped, and when the output fails (EPIPE after the reader
// went away, EIO, ...) the lines are lost; both are counted (GetLogStats, /metrics). Only the
// writer thread ever blocks on a stalled output. Lines never interleave through the writer;
// in synchronous mode each line is one write(2), as it always was.
//
// The process should ignore SIGPIPE (the server does, in main), or a log reader that goes away
// kills it with the next line.
//
// Thread-safety: all functions are thread-safe; SetLogLevel, StartLogWriter and StopLogWriter
// are meant for start-up and shutdown.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// {"ts":"...","level":"info","msg":"...", fields...} and a newline. Strings are JSON-escaped
// (quote, backslash, control characters; other bytes pass through), doubles have exactly
// three decimals. Never blocks on the output once the writer is started (see above).
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

struct LogWriterOptions {
  // Where the writer thread writes. The caller keeps it open until StopLogWriter returns.
  // Default: STDERR_FILENO (2).
  int fd = 2;
  // Bytes of formatted lines held while the writer is busy, all threads' buffers together; a
  // line that does not fit is dropped and counted. Memory use is up to twice this (the
  // buffers filling, one chunk writing), and a thread's buffer keeps at most 256 KiB between
  // bursts. Default: 4 MiB (~20,000 request lines).
  std::size_t buffer_bytes = std::size_t{4} << 20;
  // How long StopLogWriter waits for the buffered lines to be written. Lines still unwritten
  // then are counted as write errors and the writer thread is left to finish on its own.
  // Default: 2 s.
  std::chrono::milliseconds stop_timeout{2000};
};

// Starts the background writer (a no-op if it runs already). Also registers StopLogWriter to
// run at exit, so lines buffered before a `return` from main or exit() are written.
void StartLogWriter(const LogWriterOptions& options = {});

// Writes what is buffered (waiting at most stop_timeout) and stops the writer; Log is
// synchronous on stderr again afterwards. A no-op if the writer is not running.
void StopLogWriter();

// Counters since the process started, over both modes.
struct LogStats {
  std::uint64_t lines_written = 0;
  std::uint64_t lines_dropped_full = 0;         // the buffer was full
  std::uint64_t lines_dropped_write_error = 0;  // write(2) failed, or not written by stop
  std::uint64_t bytes_written = 0;
};
LogStats GetLogStats();

}  // namespace tokenledger

#include "tokenledger/log.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>

#include "tokenledger/time.h"

namespace tokenledger {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

constexpr std::string_view kLevelNames[] = {"debug", "info", "warn", "error"};

// Process-wide counters (LogStats).
std::atomic<std::uint64_t> g_lines_written{0};
std::atomic<std::uint64_t> g_dropped_full{0};
std::atomic<std::uint64_t> g_dropped_write_error{0};
std::atomic<std::uint64_t> g_bytes_written{0};

// ---- Formatting: no printf, no allocation once the thread's buffer has grown. ----

// For each byte: 0 if it is copied as is, else the character after the backslash ('u' for
// \u00XX). Bytes >= 0x80 (UTF-8) and 0x7f pass through, as before.
constexpr std::array<char, 256> kEscape = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['"'] = '"';
  t['\\'] = '\\';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}();
constexpr char kHex[] = "0123456789abcdef";

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  std::size_t run = 0;  // start of the bytes not yet copied
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const char e = kEscape[c];
    if (e == 0) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    if (e == 'u') {
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out.append(u, sizeof u);
    } else {
      const char b[2] = {'\\', e};
      out.append(b, sizeof b);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void AppendInt(std::string& out, long long v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// As printf("%.3f") (std::to_chars with a precision is specified so), without the locale.
void AppendDouble(std::string& out, double v) {
  char buf[400];  // the longest: -1.8e308 with three decimals, 314 characters
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
  out.append(buf, r.ec == std::errc{} ? r.ptr : buf);
}

void FormatLine(std::string& line, LogLevel level, std::string_view msg,
                std::initializer_list<LogField> fields) {
  line.clear();
  char ts[kRfc3339Length];
  FormatRfc3339To(NowMicros(), ts);
  line += "{\"ts\":\"";
  line.append(ts, sizeof ts);
  line += "\",\"level\":\"";
  line += kLevelNames[static_cast<int>(level)];
  line += "\",\"msg\":";
  AppendJsonString(line, msg);
  for (const auto& [key, value] : fields) {
    line += ',';
    AppendJsonString(line, key);
    line += ':';
    if (const auto* s = std::get_if<std::string_view>(&value)) {
      AppendJsonString(line, *s);
    } else if (const auto* i = std::get_if<long long>(&value)) {
      AppendInt(line, *i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      AppendDouble(line, *d);
    } else {
      line += std::get<bool>(value) ? "true" : "false";
    }
  }
  line += "}\n";
}

// ---- Output ----

// Writes all of data, retrying partial writes and EINTR. Returns the bytes written: fewer
// than data.size() when write(2) failed (EPIPE, EAGAIN, EIO, EBADF, ...).
std::size_t WriteAll(int fd, std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

// Writes `lines` whole lines and counts them. Returns false if the output failed (the lines
// not fully written are counted as lost).
bool WriteLines(int fd, std::string_view data, std::uint64_t lines) {
  const std::size_t done = WriteAll(fd, data);
  g_bytes_written.fetch_add(done, std::memory_order_relaxed);
  if (done == data.size()) {
    g_lines_written.fetch_add(lines, std::memory_order_relaxed);
    return true;
  }
  const auto whole =
      static_cast<std::uint64_t>(std::count(data.begin(), data.begin() + done, '\n'));
  g_lines_written.fetch_add(whole, std::memory_order_relaxed);
  g_dropped_write_error.fetch_add(lines - whole, std::memory_order_relaxed);
  return false;
}

// The background writer's state. One per process, created on first use and never destroyed,
// so a writer thread left behind by a timed-out stop, or a Log call during exit, never sees
// it gone.
struct Writer {
  std::mutex mu;
  std::condition_variable wake;  // the writer thread waits for lines or stop
  std::condition_variable idle;  // StopLogWriter waits for the writer thread to finish

  // All guarded by mu.
  bool running = false;         // Log hands lines to the writer thread
  bool stop = false;            // StopLogWriter asked the writer thread to finish
  bool exited = true;           // the writer thread of `generation` has finished
  bool writer_waiting = false;  // the writer thread sleeps on `wake`: notify it
  std::uint64_t generation = 0;
  std::string pending;  // whole lines waiting for the writer thread; at most `capacity`
  std::uint64_t pending_lines = 0;
  std::size_t capacity = 0;
  std::chrono::milliseconds stop_timeout{0};
  std::thread thread;
};

Writer& TheWriter() {
  static Writer* const writer = new Writer;
  return *writer;
}

void WriterLoop(Writer* w, std::uint64_t generation, int fd, std::size_t capacity) {
  std::string chunk;
  chunk.reserve(capacity);
  bool cut = false;  // a failed write may have left a partial line in the output
  std::unique_lock lock(w->mu);
  for (;;) {
    if (w->generation != generation) return;  // abandoned by a timed-out StopLogWriter
    if (w->pending.empty()) {
      if (w->stop) break;
      w->writer_waiting = true;
      w->wake.wait(lock);
      w->writer_waiting = false;
      continue;
    }
    chunk.swap(w->pending);  // O(1): producers fill the other buffer meanwhile
    const std::uint64_t lines = std::exchange(w->pending_lines, 0);
    lock.unlock();
    if (cut && WriteAll(fd, "\n") == 1) cut = false;  // end the cut line before new ones
    if (!WriteLines(fd, chunk, lines)) cut = true;
    chunk.clear();
    lock.lock();
  }
  w->running = false;  // from here Log writes synchronously: nothing is left stranded
  w->exited = true;
  w->idle.notify_all();
}

void StopAtExit() { StopLogWriter(); }

}  // namespace

bool ParseLogLevel(std::string_view name, LogLevel* out) {
  for (int i = 0; i < 4; ++i) {
    if (kLevelNames[i] == name) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  thread_local std::string line;
  FormatLine(line, level, msg, fields);

  Writer& w = TheWriter();
  std::unique_lock lock(w.mu);
  if (!w.running) {
    lock.unlock();
    WriteLines(STDERR_FILENO, line, 1);
  } else if (w.pending.size() + line.size() > w.capacity) {
    lock.unlock();
    g_dropped_full.fetch_add(1, std::memory_order_relaxed);
  } else {
    w.pending.append(line);  // within the reserved capacity: no allocation under the lock
    ++w.pending_lines;
    const bool notify = std::exchange(w.writer_waiting, false);  // one wake-up per idle spell
    lock.unlock();
    if (notify) w.wake.notify_one();
  }
  if (line.capacity() > (std::size_t{64} << 10)) std::string().swap(line);  // after a huge line
}

void StartLogWriter(const LogWriterOptions& options) {
  Writer& w = TheWriter();
  {
    std::lock_guard lock(w.mu);
    if (w.running) return;
    w.capacity = options.buffer_bytes;
    w.stop_timeout = options.stop_timeout;
    std::string fresh;
    fresh.reserve(w.capacity);
    w.pending.swap(fresh);
    w.pending_lines = 0;
    w.stop = false;
    w.exited = false;
    w.writer_waiting = false;
    ++w.generation;
    try {
      w.thread = std::thread(WriterLoop, &w, w.generation, options.fd, w.capacity);
    } catch (const std::system_error&) {
      w.exited = true;
      return;  // no thread: Log stays synchronous
    }
    w.running = true;
  }
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(StopAtExit); });
}

void StopLogWriter() {
  Writer& w = TheWriter();
  std::unique_lock lock(w.mu);
  if (w.exited) return;
  w.stop = true;
  w.wake.notify_one();
  const bool finished = w.idle.wait_for(lock, w.stop_timeout, [&] { return w.exited; });
  std::thread thread = std::move(w.thread);
  if (!finished) {
    // The writer thread is blocked on a stalled output. Leave it: it returns when its write
    // does (and counts that chunk then); what it has not taken is lost.
    ++w.generation;
    g_dropped_write_error.fetch_add(w.pending_lines, std::memory_order_relaxed);
    w.pending.clear();
    w.pending_lines = 0;
    w.running = false;
    w.exited = true;
  }
  lock.unlock();
  if (!thread.joinable()) return;  // a concurrent StopLogWriter took it
  if (finished) {
    thread.join();
  } else {
    thread.detach();
  }
}

LogStats GetLogStats() {
  return {g_lines_written.load(std::memory_order_relaxed),
          g_dropped_full.load(std::memory_order_relaxed),
          g_dropped_write_error.load(std::memory_order_relaxed),
          g_bytes_written.load(std::memory_order_relaxed)};
}

}  // namespace tokenledger

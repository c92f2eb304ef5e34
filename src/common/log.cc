#include "tokenledger/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "tokenledger/thread_name.h"
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

// The formatters write through a cursor into space FormatLine made sure of: no capacity
// check, no call into std::string per piece.
char* Put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// The bytes a PutJsonString may write past its string's end (a 16-byte block is stored whole):
// FormatLine leaves this much room after everything it counts.
constexpr std::size_t kOverStore = 16;

#if defined(__SSE2__)
// One bit per byte of `x` that needs an escape (below 0x20, '"' or '\\': kEscape). Bytes >=
// 0x80 never do. (Where there is no SSE2, PutJsonString goes a byte at a time.)
unsigned EscapeMask(__m128i x) {
  const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1F)), x);  // <= 0x1F
  const __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
  return static_cast<unsigned>(
      _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))));
}
#endif

// At most 2 + 6 * s.size() characters, plus up to kOverStore bytes of scratch after them. No
// calls: a request line has ~11 of these strings, most of them keys and ids of 2-32 clean
// characters, so sixteen bytes at a time are checked and copied as one block (a short tail is
// first copied into a block of harmless bytes), and only a byte that needs it is escaped.
char* PutJsonString(char* p, std::string_view s) {
  *p++ = '"';
  const char* in = s.data();
  const char* const end = in + s.size();
  while (in < end) {
#if defined(__SSE2__)
    const auto n = static_cast<std::size_t>(std::min<std::ptrdiff_t>(end - in, 16));
    __m128i x;
    if (n == 16) {
      x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in));
    } else {
      alignas(16) char block[16];
      std::memset(block, 'a', sizeof block);
      std::memcpy(block, in, n);
      x = _mm_load_si128(reinterpret_cast<const __m128i*>(block));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), x);
    const unsigned mask = EscapeMask(x);
    if (mask == 0) {
      p += n;
      in += n;
      continue;
    }
    const auto clean = static_cast<std::size_t>(__builtin_ctz(mask));  // < n
    p += clean;
    in += clean;
#endif
    const auto c = static_cast<unsigned char>(*in++);
    const char e = kEscape[c];
    if (e == 0) {
      *p++ = static_cast<char>(c);
      continue;
    }
    *p++ = '\\';
    *p++ = e;
    if (e == 'u') {
      *p++ = '0';
      *p++ = '0';
      *p++ = kHex[c >> 4];
      *p++ = kHex[c & 15];
    }
  }
  *p++ = '"';
  return p;
}

constexpr std::size_t kMaxInt = 20;  // -9223372036854775808
// -1.8e308 with three decimals is 314 characters.
constexpr std::size_t kMaxDouble = 320;

std::size_t MaxLength(std::string_view msg, std::initializer_list<LogField> fields) {
  std::size_t n = 64 + kOverStore + kRfc3339Length + 2 + 6 * msg.size();
  for (const auto& [key, value] : fields) {
    n += 2 + 2 + 6 * key.size();
    if (const auto* s = std::get_if<std::string_view>(&value)) {
      n += 2 + 6 * s->size();
    } else {
      n += std::holds_alternative<double>(value) ? kMaxDouble : kMaxInt;
    }
  }
  return n;
}

// Formats one line (with its newline) into `buffer`, which only grows, and returns it.
std::string_view FormatLine(std::string& buffer, LogLevel level, std::string_view msg,
                            std::initializer_list<LogField> fields) {
  const std::size_t max = MaxLength(msg, fields);
  if (buffer.size() < max) buffer.resize(max);
  char* const begin = buffer.data();
  char* p = begin;
  p = Put(p, "{\"ts\":\"");
  FormatRfc3339To(NowMicros(), p);
  p += kRfc3339Length;
  p = Put(p, "\",\"level\":\"");
  p = Put(p, kLevelNames[static_cast<int>(level)]);
  p = Put(p, "\",\"msg\":");
  p = PutJsonString(p, msg);
  for (const auto& [key, value] : fields) {
    *p++ = ',';
    p = PutJsonString(p, key);
    *p++ = ':';
    if (const auto* s = std::get_if<std::string_view>(&value)) {
      p = PutJsonString(p, *s);
    } else if (const auto* i = std::get_if<long long>(&value)) {
      p = std::to_chars(p, p + kMaxInt, *i).ptr;
    } else if (const auto* d = std::get_if<double>(&value)) {
      // As printf("%.3f") (to_chars with a precision is specified so), without the locale.
      const auto r = std::to_chars(p, p + kMaxDouble, *d, std::chars_format::fixed, 3);
      if (r.ec == std::errc{}) p = r.ptr;
    } else {
      p = Put(p, std::get<bool>(value) ? "true" : "false");
    }
  }
  p = Put(p, "}\n");
  return {begin, static_cast<std::size_t>(p - begin)};
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

// The lines one thread has logged and the writer thread has not yet taken. Each logging
// thread appends to its own under its own mutex, which only the writer thread's take
// contends for: the I/O threads never wait on each other to log.
struct ThreadLines {
  std::mutex mu;
  std::string lines;        // guarded by mu; whole lines, at most the writer's capacity
  std::uint64_t count = 0;  // guarded by mu
};

// The background writer's state. One per process, created on first use and never destroyed,
// so a writer thread left behind by a timed-out stop, or a Log call during exit, never sees
// it gone.
struct Writer {
  std::mutex mu;
  std::condition_variable wake;  // the writer thread waits for lines or stop
  std::condition_variable idle;  // StopLogWriter waits for the writer thread to finish

  // Read without mu by Log; written under mu.
  std::atomic<bool> running{false};         // Log hands lines to the writer thread
  std::atomic<bool> writer_waiting{false};  // the writer thread sleeps on `wake`
  std::atomic<std::size_t> capacity{0};     // bytes all threads' buffers may hold together
  std::atomic<std::size_t> buffered{0};     // bytes in them now (reserved before appending)

  // All guarded by mu.
  bool stop = false;   // StopLogWriter asked the writer thread to finish
  bool exited = true;  // the writer thread of `generation` has finished
  std::uint64_t generation = 0;
  std::vector<std::shared_ptr<ThreadLines>> threads;  // every thread that has logged
  std::chrono::milliseconds stop_timeout{0};
  std::thread thread;
};

// After a write, how long the writer thread lets more lines gather before it takes them
// again: under load one write(2) per millisecond, not one per line, and no wake-up per line.
constexpr std::chrono::milliseconds kLinger{1};
// A thread's buffer keeps at most this much memory between bursts.
constexpr std::size_t kThreadBufferKeep = std::size_t{256} << 10;
// When the output is a regular file, the writer starts the kernel's write-back of what it wrote
// every this many bytes (sync_file_range, asynchronous), as RocksDB's bytes_per_sync does for
// its files. Left to the kernel, a busy server's log piles up hundreds of megabytes of dirty
// pages that are written back all at once after 30 s (dirty_expire_centisecs); on ext4 the
// ledger's fdatasyncs then wait behind them: creates' p99 went from 9 ms to 185 ms, single
// syncs took 100-500 ms (docs/PERFORMANCE.md, 2026-12-02, fifth).
constexpr std::size_t kLogWritebackBytes = std::size_t{1} << 20;

Writer& TheWriter() {
  static Writer* const writer = new Writer;
  return *writer;
}

// Moves every thread's lines into `chunk`. REQUIRES: w.mu held. Returns the line count.
std::uint64_t TakeLines(Writer& w, std::string& chunk) {
  std::uint64_t lines = 0;
  const std::size_t before = chunk.size();
  for (std::size_t i = 0; i < w.threads.size();) {
    ThreadLines& t = *w.threads[i];
    {
      std::lock_guard lock(t.mu);
      chunk.append(t.lines);
      lines += std::exchange(t.count, 0);
      t.lines.clear();
      // After a burst, give the memory back (Log reserves 64 KiB again).
      if (t.lines.capacity() > kThreadBufferKeep) std::string().swap(t.lines);
    }
    // A thread that has exited (only this registry holds its buffer) and left nothing.
    if (w.threads[i].use_count() == 1 && t.lines.empty()) {
      w.threads[i] = std::move(w.threads.back());
      w.threads.pop_back();
    } else {
      ++i;
    }
  }
  w.buffered.fetch_sub(chunk.size() - before, std::memory_order_relaxed);
  return lines;
}

// Serializes what is written to the output outside the writer's chunks: synchronous lines,
// and the last lines at a stop, so a thread's lines keep their order and never interleave.
std::mutex& OutputMutex() {
  static std::mutex* const mu = new std::mutex;
  return *mu;
}

// Starts the write-back of a regular file's dirty pages once `unsynced` reaches
// kLogWritebackBytes. Never waits for the disk (unless its queue is full).
void StartWriteBack(int fd, bool regular_file, std::size_t& unsynced) {
  if (!regular_file || unsynced < kLogWritebackBytes) return;
  ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);  // a failure costs only the smoothing
  unsynced = 0;
}

void WriterLoop(Writer* w, std::uint64_t generation, int fd) {
  NameThisThread("tl-log");
  std::string chunk;
  bool cut = false;  // a failed write may have left a partial line in the output
  struct stat st {};
  const bool regular_file = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  std::size_t unsynced = 0;  // bytes written since the last StartWriteBack
  std::unique_lock lock(w->mu);
  for (;;) {
    if (w->generation != generation) return;  // abandoned by a timed-out StopLogWriter
    chunk.clear();
    std::uint64_t lines = TakeLines(*w, chunk);
    if (lines == 0) {
      if (w->stop) break;
      // Log notifies (under mu) when it sees this flag after appending. It is set under mu
      // before this second look, so a line appended after the look finds it set.
      w->writer_waiting = true;
      lines = TakeLines(*w, chunk);
      if (lines == 0) {
        w->wake.wait(lock);
        w->writer_waiting = false;
        if (!w->stop) w->wake.wait_for(lock, kLinger);  // let the first lines gather
        continue;
      }
      w->writer_waiting = false;
    }
    lock.unlock();
    if (cut && WriteAll(fd, "\n") == 1) cut = false;  // end the cut line before new ones
    if (!WriteLines(fd, chunk, lines)) cut = true;
    unsynced += chunk.size();
    StartWriteBack(fd, regular_file, unsynced);
    lock.lock();
    if (w->generation == generation && !w->stop) w->wake.wait_for(lock, kLinger);
  }
  // From here Log writes synchronously. A line a thread appended after its buffer was taken
  // below is seen by that thread (it checks `running` after appending) and written by it,
  // under the output mutex, so after this last chunk. The write runs without mu: a stalled
  // output must not hold up StopLogWriter's bounded wait.
  lock.unlock();
  {
    std::lock_guard output(OutputMutex());
    lock.lock();
    if (w->generation != generation) return;
    w->running = false;
    chunk.clear();
    const std::uint64_t lines = TakeLines(*w, chunk);
    lock.unlock();
    if (lines > 0) {
      if (cut) WriteAll(fd, "\n");
      WriteLines(fd, chunk, lines);
    }
  }
  lock.lock();
  if (w->generation != generation) return;  // abandoned meanwhile: that stop counted for us
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
  thread_local std::string buffer;
  const std::string_view line = FormatLine(buffer, level, msg, fields);

  Writer& w = TheWriter();
  if (!w.running.load(std::memory_order_acquire)) {
    std::lock_guard output(OutputMutex());
    WriteLines(STDERR_FILENO, line, 1);
  } else {
    thread_local std::shared_ptr<ThreadLines> mine;
    if (!mine) {
      mine = std::make_shared<ThreadLines>();
      std::lock_guard lock(w.mu);
      w.threads.push_back(mine);
    }
    // The bytes are reserved in the shared budget first; the writer gives them back as it takes.
    const std::size_t capacity = w.capacity.load(std::memory_order_relaxed);
    const bool kept =
        w.buffered.fetch_add(line.size(), std::memory_order_relaxed) + line.size() <= capacity;
    if (!kept) {
      w.buffered.fetch_sub(line.size(), std::memory_order_relaxed);
      g_dropped_full.fetch_add(1, std::memory_order_relaxed);
    } else {
      {
        std::lock_guard lock(mine->mu);
        if (mine->lines.capacity() == 0)
          mine->lines.reserve(std::min(capacity, kThreadBufferKeep / 4));
        mine->lines.append(line);
        ++mine->count;
      }
      if (w.writer_waiting.load(std::memory_order_acquire)) {
        std::lock_guard lock(w.mu);
        w.wake.notify_one();
      }
    }
    if (kept && !w.running.load(std::memory_order_acquire)) {
      // The writer stopped meanwhile and may have taken its last look before this line:
      // write what is still here, as in synchronous mode (after the writer's last chunk).
      std::lock_guard output(OutputMutex());
      std::string left;
      std::uint64_t n = 0;
      {
        std::lock_guard lock(mine->mu);
        left.swap(mine->lines);
        n = std::exchange(mine->count, 0);
      }
      w.buffered.fetch_sub(left.size(), std::memory_order_relaxed);
      if (n > 0) WriteLines(STDERR_FILENO, left, n);
    }
  }
  if (buffer.size() > (std::size_t{64} << 10)) std::string().swap(buffer);  // after a huge line
}

void StartLogWriter(const LogWriterOptions& options) {
  Writer& w = TheWriter();
  {
    std::lock_guard lock(w.mu);
    if (w.running) return;
    w.capacity = options.buffer_bytes;
    w.stop_timeout = options.stop_timeout;
    w.stop = false;
    w.exited = false;
    w.writer_waiting = false;
    ++w.generation;
    try {
      w.thread = std::thread(WriterLoop, &w, w.generation, options.fd);
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
    w.running = false;
    std::string lost;
    g_dropped_write_error.fetch_add(TakeLines(w, lost), std::memory_order_relaxed);
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

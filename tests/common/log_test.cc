// The request log: its line format, and that a caller never blocks on nor dies of its output
// (a reader that went away, a reader that stalls), with every line counted as written or
// dropped. Watchdogs bound the waits; no assertion depends on timing.
#include "tokenledger/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tokenledger/time.h"

namespace tokenledger {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    CloseRead();
    CloseWrite();
  }
  void CloseRead() {
    if (r >= 0) ::close(r);
    r = -1;
  }
  void CloseWrite() {
    if (w >= 0) ::close(w);
    w = -1;
  }
  // Everything until EOF (the write end closed) or 30 s without data.
  std::string ReadToEnd() const {
    std::string out;
    char buf[65536];
    for (;;) {
      pollfd p{r, POLLIN, 0};
      if (::poll(&p, 1, 30'000) != 1) return out;
      const ssize_t n = ::read(r, buf, sizeof buf);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
};

// Runs fn on its own thread and waits for it at most `limit`; a hang fails the whole test
// binary at once (the thread cannot be taken back).
void MustReturnWithin(std::chrono::seconds limit, std::function<void()> fn, const char* what) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> returned = done->get_future();
  std::thread([fn = std::move(fn), done] {
    fn();
    done->set_value();
  }).detach();
  if (returned.wait_for(limit) != std::future_status::ready) {
    std::fprintf(stderr, "FAILED: %s did not return within %llds\n", what,
                 static_cast<long long>(limit.count()));
    std::abort();
  }
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The lines logged by fn through the background writer into a pipe.
std::vector<std::string> Capture(const std::function<void()>& fn) {
  Pipe pipe;
  LogWriterOptions options;
  options.fd = pipe.w;
  StartLogWriter(options);
  std::string out;
  std::thread reader([&] { out = pipe.ReadToEnd(); });
  fn();
  StopLogWriter();
  pipe.CloseWrite();
  reader.join();
  return Lines(out);
}

LogStats Delta(const LogStats& before) {
  const LogStats now = GetLogStats();
  return {now.lines_written - before.lines_written,
          now.lines_dropped_full - before.lines_dropped_full,
          now.lines_dropped_write_error - before.lines_dropped_write_error,
          now.bytes_written - before.bytes_written};
}

void LogEverything() {
  Log(LogLevel::kWarn,
      "quote \" backslash \\ nl \n cr \r tab \t ctl \x01\x1f del \x7f utf8 \xc3\xa9",
      {{"s", std::string_view("a\"b")},
       {"k\x02y", std::string_view("")},
       {"pos", 42LL},
       {"neg", -7LL},
       {"min", LLONG_MIN},
       {"d", 1.5},
       {"round", 12345.6789},
       {"tiny_neg", -0.0004},
       {"neg_d", -2.25},
       {"t", true},
       {"f", false}});
}

constexpr std::string_view kEverythingAfterTs =
    R"(","level":"warn","msg":"quote \" backslash \\ nl \n cr \r tab \t ctl \u0001\u001f )"
    "del \x7f utf8 \xc3\xa9"
    R"(","s":"a\"b","k\u0002y":"","pos":42,"neg":-7,"min":-9223372036854775808,"d":1.500,)"
    R"("round":12345.679,"tiny_neg":-0.000,"neg_d":-2.250,"t":true,"f":false})";

void ExpectEverythingLine(const std::string& line) {
  // {"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ","level":...
  const std::string_view prefix = R"({"ts":")";
  ASSERT_GT(line.size(), prefix.size() + kRfc3339Length) << line;
  EXPECT_EQ(line.substr(0, prefix.size()), prefix);
  const std::string ts = line.substr(prefix.size(), kRfc3339Length);
  const auto parsed = ParseRfc3339(ts);
  ASSERT_TRUE(parsed) << ts;
  EXPECT_EQ(FormatRfc3339(*parsed), ts);
  EXPECT_LT(std::llabs(*parsed - NowMicros()), 60 * kMicrosPerSecond);
  EXPECT_EQ(line.substr(prefix.size() + kRfc3339Length), kEverythingAfterTs);

  boost::system::error_code ec;
  const json::value v = json::parse(line, ec);
  ASSERT_FALSE(ec) << line;
  const json::object& o = v.as_object();
  EXPECT_EQ(o.at("msg").as_string(),
            "quote \" backslash \\ nl \n cr \r tab \t ctl \x01\x1f del \x7f utf8 \xc3\xa9");
  EXPECT_EQ(o.at("k\x02y").as_string(), "");
  EXPECT_EQ(o.at("min").as_int64(), LLONG_MIN);
  EXPECT_EQ(o.at("round").as_double(), 12345.679);
  EXPECT_TRUE(o.at("t").as_bool());
}

TEST(LogTest, LineFormatThroughTheWriter) {
  const auto lines = Capture([] {
    LogEverything();
    Log(LogLevel::kInfo, "plain");
  });
  ASSERT_EQ(lines.size(), 2u);
  ExpectEverythingLine(lines[0]);
  EXPECT_EQ(lines[1].substr(lines[1].find("\",\"level")), R"(","level":"info","msg":"plain"})");
}

// Every byte value at every place of a value, around and inside the eight-byte blocks the
// formatter checks a word at a time, comes out escaped exactly when JSON needs it.
TEST(LogTest, EveryByteIsEscapedWherePutWhateverItsPlace) {
  constexpr std::size_t kLength = 19;  // two eight-byte blocks and a tail
  std::vector<std::string> expected;
  const auto lines = Capture([&] {
    for (int b = 0; b < 256; ++b) {
      for (std::size_t at = 0; at < kLength; ++at) {
        std::string value(kLength, 'a');
        value[at] = static_cast<char>(b);
        Log(LogLevel::kInfo, "byte", {{"v", std::string_view(value)}});
        std::string escaped;
        const auto c = static_cast<unsigned char>(b);
        if (c == '"' || c == '\\') {
          escaped = std::string("\\") + static_cast<char>(c);
        } else if (c == '\n') {
          escaped = "\\n";
        } else if (c == '\r') {
          escaped = "\\r";
        } else if (c == '\t') {
          escaped = "\\t";
        } else if (c < 0x20) {
          constexpr char kHex[] = "0123456789abcdef";
          escaped = std::string("\\u00") + kHex[c >> 4] + kHex[c & 15];
        } else {
          escaped = std::string(1, static_cast<char>(c));
        }
        expected.push_back(R"("v":")" + std::string(at, 'a') + escaped +
                           std::string(kLength - at - 1, 'a') + "\"}");
      }
    }
  });
  ASSERT_EQ(lines.size(), expected.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const std::size_t v = line.find(R"("v":")");
    ASSERT_NE(v, std::string::npos) << line;
    ASSERT_EQ(line.substr(v), expected[i]) << "byte " << i / kLength << " at " << i % kLength;
  }
}

TEST(LogTest, SynchronousOnStderrWithoutAWriter) {
  // The CLI and early start-up: no thread, the line is on stderr when Log returns.
  Pipe pipe;
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ::dup2(pipe.w, STDERR_FILENO);
  const LogStats before = GetLogStats();
  LogEverything();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  pipe.CloseWrite();
  const auto lines = Lines(pipe.ReadToEnd());
  ASSERT_EQ(lines.size(), 1u);
  ExpectEverythingLine(lines[0]);
  const LogStats d = Delta(before);
  EXPECT_EQ(d.lines_written, 1u);
  EXPECT_EQ(d.bytes_written, lines[0].size() + 1);
}

TEST(LogTest, LevelBelowTheThresholdIsNotWritten) {
  const auto lines = Capture([] {
    SetLogLevel(LogLevel::kWarn);
    Log(LogLevel::kInfo, "hidden");
    Log(LogLevel::kError, "shown");
    SetLogLevel(LogLevel::kInfo);
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(R"("level":"error","msg":"shown")"), std::string::npos);
}

TEST(LogTest, ReaderGoneCountsLostLinesAndKeepsRunning) {
  ::signal(SIGPIPE, SIG_IGN);  // as main does; otherwise EPIPE comes with a fatal SIGPIPE
  Pipe pipe;
  pipe.CloseRead();
  LogWriterOptions options;
  options.fd = pipe.w;
  StartLogWriter(options);
  const LogStats before = GetLogStats();
  constexpr int kLines = 1000;
  MustReturnWithin(
      30s,
      [] {
        for (int i = 0; i < kLines; ++i)
          Log(LogLevel::kInfo, "request", {{"i", static_cast<long long>(i)}});
      },
      "Log to a closed pipe");
  MustReturnWithin(
      30s, [] { StopLogWriter(); }, "StopLogWriter");
  const LogStats d = Delta(before);
  EXPECT_EQ(d.lines_written, 0u);
  EXPECT_GT(d.lines_dropped_write_error, 0u);
  EXPECT_EQ(d.lines_dropped_write_error + d.lines_dropped_full, std::uint64_t{kLines});
}

TEST(LogTest, StalledReaderNeverBlocksCallers) {
  Pipe pipe;
  LogWriterOptions options;
  options.fd = pipe.w;
  options.buffer_bytes = 64 << 10;
  StartLogWriter(options);
  const LogStats before = GetLogStats();
  constexpr int kThreads = 2, kPerThread = 50'000;
  // Nobody reads: the pipe fills, the writer thread blocks, the buffer fills; callers return.
  MustReturnWithin(
      30s,
      [] {
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([t] {
            for (int i = 0; i < kPerThread; ++i) {
              Log(LogLevel::kInfo, "request",
                  {{"thread", static_cast<long long>(t)}, {"i", static_cast<long long>(i)}});
            }
          });
        }
        for (auto& th : threads) th.join();
      },
      "Log to a stalled pipe");
  EXPECT_GT(Delta(before).lines_dropped_full, 0u);

  // The reader comes back: what was kept is written, intact, and every line is accounted for.
  std::string out;
  std::thread reader([&] { out = pipe.ReadToEnd(); });
  MustReturnWithin(
      30s, [] { StopLogWriter(); }, "StopLogWriter");
  pipe.CloseWrite();
  reader.join();
  const LogStats d = Delta(before);
  EXPECT_EQ(d.lines_dropped_write_error, 0u);
  EXPECT_EQ(d.lines_written + d.lines_dropped_full, std::uint64_t{kThreads * kPerThread});
  EXPECT_EQ(d.bytes_written, out.size());
  const auto lines = Lines(out);
  EXPECT_EQ(lines.size(), d.lines_written);
  for (const auto& line : lines) {
    boost::system::error_code ec;
    json::parse(line, ec);
    ASSERT_FALSE(ec) << line;
  }
}

TEST(LogTest, ConcurrentLinesArriveWholeAndAll) {
  constexpr int kThreads = 4, kPerThread = 5'000;
  const LogStats before = GetLogStats();
  const auto lines = Capture([] {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([t] {
        for (int i = 0; i < kPerThread; ++i) {
          const std::string pad(static_cast<std::size_t>(i % 200), 'x');
          Log(LogLevel::kInfo, "request",
              {{"thread", static_cast<long long>(t)},
               {"i", static_cast<long long>(i)},
               {"pad", pad}});
        }
      });
    }
    for (auto& th : threads) th.join();
  });
  const LogStats d = Delta(before);
  EXPECT_EQ(d.lines_dropped_full + d.lines_dropped_write_error, 0u);
  ASSERT_EQ(lines.size(), std::size_t{kThreads * kPerThread});
  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  for (const auto& line : lines) {
    boost::system::error_code ec;
    const json::value v = json::parse(line, ec);
    ASSERT_FALSE(ec) << line;
    const json::object& o = v.as_object();
    const std::int64_t i = o.at("i").as_int64();
    ASSERT_EQ(o.at("pad").as_string().size(), static_cast<std::size_t>(i % 200)) << line;
    seen.emplace(o.at("thread").as_int64(), i);
  }
  EXPECT_EQ(seen.size(), std::size_t{kThreads * kPerThread});
}

TEST(LogTest, StopIsBoundedWhenTheOutputStalls) {
  ::signal(SIGPIPE, SIG_IGN);
  Pipe pipe;
  LogWriterOptions options;
  options.fd = pipe.w;
  options.stop_timeout = 200ms;
  StartLogWriter(options);
  const LogStats before = GetLogStats();
  constexpr int kLines = 3000;  // ~200 KB: more than the pipe holds
  const std::string pad(100, 'x');
  for (int i = 0; i < kLines; ++i) Log(LogLevel::kInfo, "request", {{"pad", pad}});
  MustReturnWithin(
      30s, [] { StopLogWriter(); }, "StopLogWriter on a stalled pipe");

  // The writer thread left behind is still blocked; when the reader goes away its write
  // fails and it counts that chunk. Then every line is accounted for.
  pipe.CloseRead();
  LogStats d;
  for (int i = 0; i < 3000; ++i) {
    d = Delta(before);
    if (d.lines_written + d.lines_dropped_full + d.lines_dropped_write_error == kLines) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(d.lines_written + d.lines_dropped_full + d.lines_dropped_write_error,
            std::uint64_t{kLines});
  EXPECT_GT(d.lines_dropped_write_error, 0u);

  // A new writer starts cleanly beside the old one.
  const auto lines = Capture([] { Log(LogLevel::kInfo, "again"); });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(R"("msg":"again")"), std::string::npos);
}

}  // namespace
}  // namespace tokenledger

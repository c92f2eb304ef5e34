// The request log as an operator's log shipper fails it: the reader of the server's stderr
// goes away (the next write gets EPIPE / SIGPIPE), or stalls (the pipe fills at ~64 KiB).
// Either way the server must keep answering, never die, and count what it could not write.
#include <poll.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;

// The value of one sample line `name value` in a Prometheus exposition; -1 if absent.
double MetricValue(const std::string& exposition, const std::string& name) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ' ') {
      return std::stod(line.substr(name.size() + 1));
    }
  }
  return -1;
}

class LogOutputTest : public E2ETest {
 protected:
  void StartWithStderrPipe() {
    server_ = std::make_unique<ServerProcess>(data_dir_);
    server_->UseStderrPipe();
    ASSERT_TRUE(server_->Start());
    client_ = std::make_unique<HttpClient>(server_->port());
  }
};

TEST_F(LogOutputTest, ServerSurvivesItsLogReaderGoingAway) {
  ASSERT_NO_FATAL_FAILURE(StartWithStderrPipe());
  server_->CloseStderrPipe();  // the log shipper died
  for (int i = 0; i < 1000; ++i) {
    // Before the fix the first request's log line killed the server with SIGPIPE.
    ASSERT_EQ(Call("GET", "/api/v1/ping", main_.jwt).status, 200) << "request " << i;
  }
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  const Response m = Call("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_GT(MetricValue(m.body, R"(tokenledger_log_lines_dropped_total{reason="write_error"})"), 0)
      << m.body;
  EXPECT_EQ(StopServer(), 0) << "the server must exit normally, not by a signal";
}

TEST_F(LogOutputTest, StalledLogReaderBlocksNoRequest) {
  ASSERT_NO_FATAL_FAILURE(StartWithStderrPipe());
  // Nobody reads the pipe: it fills after ~64 KiB (~300 request lines). Before the fix every
  // I/O thread then blocked in write(2) and requests timed out (the client waits 10 s).
  constexpr int kRequests = 2000;
  int healthz = 0;
  for (int i = 0; i < kRequests; ++i) {
    if (i % 100 == 99) {
      ASSERT_EQ(Call("GET", "/healthz", "").status, 200) << "healthz after " << i;
      ++healthz;
    } else {
      ASSERT_EQ(Call("GET", "/api/v1/ping", main_.jwt).status, 200) << "request " << i;
    }
  }

  // The shipper comes back: drain the pipe until the server has stopped and closed it.
  const int fd = server_->stderr_pipe();
  std::string out;
  std::thread reader([&] {
    char buf[65536];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 30'000) != 1) return;  // watchdog
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return;
      out.append(buf, static_cast<std::size_t>(n));
    }
  });
  // Not StopServer(): it closes the pipe's read end, which the reader may still be draining
  // after the server has exited (up to the pipe's 64 KiB), and the tail would be lost.
  client_.reset();
  EXPECT_EQ(server_->Stop(), 0);
  reader.join();
  server_.reset();

  // Every line intact JSON; every request logged (2,000 lines fit the buffer: none dropped);
  // the last line, written at shutdown, is not lost.
  std::istringstream in(out);
  std::string line, last_msg;
  int pings = 0, probes = 0, lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    ASSERT_FALSE(ec) << "line " << lines << " is not JSON: " << line;
    ASSERT_TRUE(v.is_object()) << line;
    const json::object& o = v.as_object();
    ASSERT_TRUE(o.contains("ts") && o.contains("level") && o.contains("msg")) << line;
    last_msg = JsonString(o.at("msg"));
    if (last_msg == "request" && o.contains("route")) {
      if (o.at("route") == std::string("/api/v1/ping")) ++pings;
      if (o.at("route") == std::string("/healthz")) ++probes;
    }
  }
  EXPECT_FALSE(out.empty() || out.back() != '\n') << "the last line is cut";
  EXPECT_EQ(pings, kRequests - healthz);
  EXPECT_EQ(probes, healthz);
  EXPECT_EQ(last_msg, "stopped");
}

}  // namespace
}  // namespace tokenledger::e2e

// The HTTP/1.1 server: Boost.Beast with C++20 coroutines on N I/O threads, one event loop each
// (a connection stays on one loop from accept to close). Keep-alive and
// pipelined requests (read one at a time, bounded by the read buffer), a timeout before every
// read, limits on header, body and URL size and on open connections, 100-continue, and a
// graceful shutdown: stop accepting, let in-flight requests finish, close idle connections.
//
// It is the only translation unit that includes Beast's HTTP and Asio's networking (the
// request parser, request_parser.h, takes only Beast's error codes and iequals); handlers see
// http_types.h.
// Thread-safety: Shutdown() may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/http/http_types.h"
#include "src/http/metrics.h"
#include "tokenledger/error.h"
#include "tokenledger/options.h"

namespace tokenledger::http {

class Server {
 public:
  Server(const ServerOptions& options, RequestHandler handler, HttpMetrics& metrics);
  ~Server();

  // Binds the API listener (and the metrics listener, if configured). Fails with a message
  // naming the address. On success, ApiPort()/MetricsPort() give the bound ports.
  Status Listen();
  unsigned short ApiPort() const;
  unsigned short MetricsPort() const;
  // The number of I/O threads (event loops) Run() runs: options.threads, or
  // DefaultIoThreads(UsableCores()) when it is 0.
  unsigned IoThreads() const;

  // Runs the I/O threads until a shutdown (Shutdown(), SIGINT or SIGTERM) has drained every
  // connection. Returns when all I/O threads have stopped.
  void Run();
  void Shutdown();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The I/O threads of `--threads 0`: one per core less one, at least one. Under load the store's
// committer and writer, the request log's writer, RocksDB's flushes and the kernel's network
// work take about a core between them; an event loop sharing a core with them is preempted for
// whole time slices, and every connection it holds waits that long (docs/DECISIONS.md, "The
// HTTP server's threads").
unsigned DefaultIoThreads(unsigned cores);
// The cores this process may run on (its CPU affinity: `taskset`, a container's cpuset), or all
// of them if that cannot be read. A CPU quota (cgroup cpu.max) is not seen: set --threads there.
unsigned UsableCores();

// Splits "host:port" ("[::1]:80" for IPv6). Returns false if malformed.
bool SplitHostPort(const std::string& address, std::string* host, unsigned short* port);

}  // namespace tokenledger::http

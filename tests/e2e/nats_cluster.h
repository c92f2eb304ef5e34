// Cluster-mode harness: a real three-server NATS JetStream cluster on free loopback ports,
// each server with its own configuration file and store directory under a temporary
// directory, which can be killed with SIGKILL and restarted with the same configuration and
// store (as an operator's supervisor would).
#pragma once

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tokenledger::e2e {

// A GET on a NATS monitoring port, as HTTP/1.0 (no chunked encoding; the server closes the
// connection after the body). The body, or nullopt when nothing answered with a 200.
std::optional<std::string> MonitorGet(unsigned short port, const std::string& path);

// Ports that are free now, distinct, and outside the kernel's ephemeral range (so that an
// outgoing connection cannot take one while a killed server is down).
std::vector<unsigned short> PickFreePorts(int n);

class NatsCluster {
 public:
  // Servers live in `dir` (created by the caller): dir/nN.conf, dir/nN/ (store), dir/nN.log.
  explicit NatsCluster(std::string dir, int size = 3);
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  // Starts every server and waits until each is healthy with a JetStream meta leader.
  bool Start(std::chrono::seconds timeout = std::chrono::seconds(30));
  void Kill(int i);  // SIGKILL, reaped
  // Starts server i again with the same configuration and store directory.
  bool Restart(int i);
  // Every running server answers /healthz ok and knows a meta leader.
  bool Healthy(int i);
  bool WaitHealthy(std::chrono::seconds timeout);

  int size() const { return static_cast<int>(servers_.size()); }
  bool running(int i) const { return servers_[i].pid > 0; }
  // Appended, not "n" + to_string: GCC 12 at -O3 warns (-Wrestrict, falsely) on the latter.
  std::string name(int i) const { return std::string("n").append(std::to_string(i + 1)); }
  int IndexOf(const std::string& server_name) const;
  std::string ClientUrl(int i) const;
  std::string ClientUrls() const;  // every server's, comma-separated
  unsigned short monitor_port(int i) const { return servers_[i].http_port; }
  std::string Log(int i) const;

  // Server i's /jsz as JSON (with stream details when `streams`).
  std::optional<boost::json::value> Jsz(int i, bool streams = false);
  // The stream as server i sees it: its leader's name and its last sequence (nullopt when
  // server i does not hold the stream or did not answer).
  struct StreamView {
    std::string leader;
    std::uint64_t last_seq = 0;
    std::uint64_t messages = 0;
  };
  std::optional<StreamView> Stream(int i, const std::string& stream);

 private:
  struct Server {
    unsigned short client_port = 0, cluster_port = 0, http_port = 0;
    std::string conf, store, log;
    pid_t pid = -1;
  };
  void WriteConfig(int i);
  bool Spawn(int i);

  std::string dir_;
  std::vector<Server> servers_;
};

}  // namespace tokenledger::e2e

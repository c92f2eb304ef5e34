// Request metrics and the Prometheus text exposition (format 0.0.4) of everything the server
// reports: requests by route/method/status, latency histograms by route, and the ledger's
// commit counters.
//
// Thread-safety: Observe and Render may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "src/store/ledger_store.h"

namespace tokenledger::http {

class HttpMetrics {
 public:
  static constexpr std::array<double, 12> kLatencyBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                          0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

  void Observe(std::string_view route, std::string_view method, int status, double seconds);
  void ConnectionOpened() { connections_.fetch_add(1, std::memory_order_relaxed); }
  void ConnectionClosed() { connections_.fetch_sub(1, std::memory_order_relaxed); }
  void ConnectionRefused() { refused_.fetch_add(1, std::memory_order_relaxed); }
  long long Connections() const { return connections_.load(std::memory_order_relaxed); }

  std::string Render(const store::LedgerStore& store) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kLatencyBuckets.size() + 1> buckets{};
    double sum = 0;
    std::uint64_t count = 0;
  };
  // Observe counts into the shard of its thread, so the I/O threads do not contend for one
  // lock per request; Render sums the shards.
  struct Shard {
    mutable std::mutex mu;
    // Transparent comparators: Observe looks up by string_view, allocating only a new key.
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t, std::less<>>
        requests;                                           // guarded by mu
    std::map<std::string, Histogram, std::less<>> latency;  // guarded by mu
    // The counters of recent label sets, so a repeated one skips both maps' look-ups: a
    // direct-mapped table whose views point into the maps' keys (map nodes never move).
    struct Recent {
      std::string_view route, method;
      int status = -1;
      std::uint64_t* count = nullptr;
      Histogram* histogram = nullptr;
    };
    std::array<Recent, 16> recent;  // guarded by mu
  };
  static constexpr std::size_t kShards = 8;
  std::array<Shard, kShards> shards_;
  std::atomic<long long> connections_{0};
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace tokenledger::http

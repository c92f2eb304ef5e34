#include "src/http/metrics.h"

#include <algorithm>

#include <cstdio>

#include "tokenledger/log.h"

namespace tokenledger::http {
namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void Header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

template <std::size_t N, typename Counts>
void Buckets(std::string& out, const std::string& name, const std::string& labels,
             const std::array<double, N>& bounds, const Counts& counts, double sum,
             std::uint64_t count) {
  std::uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < N; ++i) {
    cumulative += counts[i];
    out += name + "_bucket{" + labels + sep + "le=\"" + Num(bounds[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(count) + "\n";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + Num(sum) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count) + "\n";
}

}  // namespace

void HttpMetrics::Observe(std::string_view route, std::string_view method, int status,
                          double seconds) {
  // Clients choose the method: a label per made-up method would grow /metrics without bound.
  static constexpr std::string_view kKnownMethods[] = {"GET",    "HEAD",  "POST",    "PUT",
                                                       "DELETE", "PATCH", "OPTIONS", "?"};
  if (std::find(std::begin(kKnownMethods), std::end(kKnownMethods), method) ==
      std::end(kKnownMethods)) {
    method = "other";
  }
  static std::atomic<std::size_t> next_shard{0};
  thread_local const std::size_t my_shard = next_shard.fetch_add(1) % kShards;
  Shard& shard = shards_[my_shard];
  std::lock_guard lock(shard.mu);
  Shard::Recent& recent =
      shard.recent[(route.size() * 31 + method.size() * 7 + static_cast<std::size_t>(status)) %
                   shard.recent.size()];
  if (recent.count == nullptr || recent.status != status || recent.route != route ||
      recent.method != method) {
    const std::tuple<std::string_view, std::string_view, int> key{route, method, status};
    auto count = shard.requests.find(key);
    if (count == shard.requests.end()) {
      count = shard.requests.emplace(std::tuple{std::string(route), std::string(method), status}, 0)
                  .first;
    }
    auto histogram = shard.latency.find(route);
    if (histogram == shard.latency.end())
      histogram = shard.latency.emplace(std::string(route), Histogram{}).first;
    recent = {std::get<0>(count->first), std::get<1>(count->first), status, &count->second,
              &histogram->second};
  }
  ++*recent.count;
  Histogram& h = *recent.histogram;
  std::size_t i = 0;
  while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i]) ++i;
  ++h.buckets[i];
  h.sum += seconds;
  ++h.count;
}

std::string HttpMetrics::Render(const store::LedgerStore& store) const {
  std::string out;
  {
    // The shards summed.
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests;
    std::map<std::string, Histogram> latency;
    for (const Shard& shard : shards_) {
      std::lock_guard lock(shard.mu);
      for (const auto& [key, n] : shard.requests) requests[key] += n;
      for (const auto& [route, h] : shard.latency) {
        Histogram& sum = latency[route];
        for (std::size_t i = 0; i < h.buckets.size(); ++i) sum.buckets[i] += h.buckets[i];
        sum.sum += h.sum;
        sum.count += h.count;
      }
    }
    Header(out, "tokenledger_http_requests_total", "counter",
           "HTTP requests by route, method and status.");
    for (const auto& [key, n] : requests) {
      const auto& [route, method, status] = key;
      out += "tokenledger_http_requests_total{route=\"" + route + "\",method=\"" + method +
             "\",status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
    Header(out, "tokenledger_http_request_duration_seconds", "histogram",
           "Request latency by route.");
    for (const auto& [route, h] : latency) {
      Buckets(out, "tokenledger_http_request_duration_seconds", "route=\"" + route + "\"",
              kLatencyBuckets, h.buckets, h.sum, h.count);
    }
  }
  Header(out, "tokenledger_http_connections", "gauge", "Open HTTP connections.");
  out += "tokenledger_http_connections " + std::to_string(connections_.load()) + "\n";
  Header(out, "tokenledger_http_connections_refused_total", "counter",
         "Connections refused over the limit.");
  out += "tokenledger_http_connections_refused_total " + std::to_string(refused_.load()) + "\n";

  const LogStats log = GetLogStats();
  Header(out, "tokenledger_log_lines_written_total", "counter", "Log lines written.");
  out += "tokenledger_log_lines_written_total " + std::to_string(log.lines_written) + "\n";
  Header(out, "tokenledger_log_lines_dropped_total", "counter",
         "Log lines lost: the log buffer was full (the output is slow or stalled), or writing "
         "failed (the reader went away).");
  out += "tokenledger_log_lines_dropped_total{reason=\"buffer_full\"} " +
         std::to_string(log.lines_dropped_full) + "\n";
  out += "tokenledger_log_lines_dropped_total{reason=\"write_error\"} " +
         std::to_string(log.lines_dropped_write_error) + "\n";

  const store::StoreMetrics& m = store.Metrics();
  auto metric = [&](const char* type, const char* name, const char* help, std::uint64_t v) {
    Header(out, name, type, help);
    out += std::string(name) + " " + std::to_string(v) + "\n";
  };
  auto counter = [&](const char* name, const char* help, std::uint64_t v) {
    metric("counter", name, help, v);
  };
  auto gauge = [&](const char* name, const char* help, std::uint64_t v) {
    metric("gauge", name, help, v);
  };
  counter("tokenledger_commit_batches_total", "Commit batches written (one fsync each).",
          m.batches.load());
  counter("tokenledger_commands_total", "Commands decided by the committer.", m.commands.load());
  counter("tokenledger_events_appended_total", "Events appended to the ledger.",
          m.events_appended.load());
  counter("tokenledger_commands_overloaded_total", "Commands refused because the queue was full.",
          m.overloaded.load());
  counter("tokenledger_commit_failures_total", "Commit batches that failed to write.",
          m.write_failures.load());
  counter("tokenledger_keys_written_total",
          "Keys (puts, deletes, merges) in committed write batches.", m.keys_written.load());
  counter("tokenledger_bytes_written_total",
          "Bytes of committed write batches (what the write-ahead log syncs).",
          m.bytes_written.load());
  counter("tokenledger_batches_discarded_total",
          "Batches decided on top of a batch whose write failed, so failed unwritten.",
          m.batches_discarded.load());
  counter("tokenledger_batches_taken_by_writer_total",
          "Batches the writer took itself when its previous write returned (the others waited "
          "for the committer to hand them over).",
          m.batches_taken_by_writer.load());
  counter("tokenledger_idempotency_purged_total", "Expired idempotency records deleted.",
          m.idempotency_purged.load());
  counter("tokenledger_store_recoveries_total",
          "Recoveries of the store from a failed write (degraded back to ok).",
          m.recoveries.load());
  counter("tokenledger_store_recovery_failures_total",
          "Recovery attempts that found the storage still failing.", m.recovery_failures.load());
  gauge("tokenledger_store_degraded",
        "1 while a failed write keeps the store refusing writes (see /readyz), else 0.",
        m.degraded.load());
  gauge("tokenledger_commit_queue_depth", "Commands waiting for the committer.",
        store.QueueDepth());
  gauge("tokenledger_ledger_last_seq", "Sequence number of the last committed event.",
        store.LastSeq());
  if (store.ClusterMode()) {
    gauge("tokenledger_cluster_connected", "1 while this node is connected to NATS, else 0.",
          m.cluster_connected.load());
    gauge("tokenledger_cluster_applied_seq",
          "Stream sequence of the last JetStream message this node has applied.",
          m.cluster_applied_seq.load());
    gauge("tokenledger_cluster_lag",
          "JetStream messages stored but not yet applied by this node (as last asked).",
          m.cluster_lag.load());
    counter("tokenledger_cluster_messages_applied_total",
            "JetStream messages applied to this node's projections.",
            m.cluster_messages_applied.load());
    counter("tokenledger_cluster_publish_retries_total",
            "Commands decided again: another node wrote the token first, or a duplicate "
            "idempotency key.",
            m.cluster_publish_retries.load());
    counter("tokenledger_cluster_publish_failures_total",
            "Commands answered 503: JetStream did not store them, or not in time.",
            m.cluster_publish_failures.load());
  }

  std::array<std::uint64_t, store::StoreMetrics::kBatchBuckets.size() + 1> batch{};
  std::uint64_t batch_count = 0;
  for (std::size_t i = 0; i < batch.size(); ++i)
    batch_count += batch[i] = m.batch_size_buckets[i].load();
  Header(out, "tokenledger_commit_batch_size", "histogram", "Commands per commit batch.");
  Buckets(out, "tokenledger_commit_batch_size", "", store::StoreMetrics::kBatchBuckets, batch,
          static_cast<double>(m.batch_size_sum.load()), batch_count);
  std::array<std::uint64_t, store::StoreMetrics::kSyncBucketsSeconds.size() + 1> sync{};
  std::uint64_t sync_count = 0;
  for (std::size_t i = 0; i < sync.size(); ++i) sync_count += sync[i] = m.sync_buckets[i].load();
  Header(out, "tokenledger_commit_sync_seconds", "histogram", "Time to write and fsync one batch.");
  Buckets(out, "tokenledger_commit_sync_seconds", "", store::StoreMetrics::kSyncBucketsSeconds,
          sync, static_cast<double>(m.sync_micros_sum.load()) / 1e6, sync_count);
  return out;
}

}  // namespace tokenledger::http

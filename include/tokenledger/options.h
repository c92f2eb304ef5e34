// Options of the ledger: every limit the store and the decider enforce, with its default
// written next to it. The server and the operator tools fill these from flags.
#pragma once

#include <cstddef>
#include <string>

#include "tokenledger/time.h"

namespace tokenledger {

// Rules of the token lifecycle that depend on configuration (passed to the decider).
struct TokenPolicy {
  // Lifetime of a token created without `expires_at`. Default: 365 days.
  Micros default_lifetime = 365 * kMicrosPerDay;
  // Longest allowed lifetime; 0 turns the check off. Default: 0 (off).
  Micros max_lifetime = 0;
  // `last_used_at` moves at most once per this interval per token. Default: 60 s.
  Micros last_used_granularity = kMicrosPerMinute;
  // A use enters the audited history (a `TokenUsed` event) at most once per token per this
  // interval: the first use in each interval, counted from the Unix epoch (so by default the
  // first use of each UTC day). Every other move of `last_used_at` is kept in the usage
  // records beside the ledger, not in it, so uses do not grow the ledger with traffic. 0: no
  // use is audited. Default: 24 h.
  Micros usage_audit_interval = kMicrosPerDay;
};

// Cluster mode: the log of record is a NATS JetStream stream shared by every node (see
// docs/LEDGER.md, "Cluster mode"); the local RocksDB keeps the projections.
struct ClusterOptions {
  // NATS server URLs, comma-separated ("nats://HOST:PORT,..."); empty: single-node mode, the
  // log of record is the local RocksDB. Default: empty.
  std::string urls;
  // The JetStream stream (created by the first node if missing; subjects
  // "tokenledger.<stream>.<token id>"). Default: TOKENLEDGER.
  std::string stream = "TOKENLEDGER";
  // Replicas of the stream when a node creates it (JetStream allows 1 to 5). Default: 3.
  int replicas = 3;
  // Times a node decides a command again after JetStream answered that the token changed since
  // it decided (another node wrote it first); past this the request gets 503. Default: 16.
  int max_retries = 16;
  // How long a node waits for JetStream to store a message before answering 503 (the write
  // may still happen: a retry with the same idempotency key gets its outcome). Default: 5 s.
  Micros publish_timeout = 5 * kMicrosPerSecond;
  // JetStream's message-id de-duplication window for idempotency keys; beyond it, duplicates
  // are still caught when applied (docs/LEDGER.md). Default: 2 min.
  Micros duplicate_window = 2 * kMicrosPerMinute;
  // A node is ready (/readyz 200) while its projection is at most this many messages behind
  // the stream. Default: 1000.
  std::uint64_t max_ready_lag = 1000;
};

struct StoreOptions {
  // Directory holding the RocksDB files and the lock. Created if missing. Default: ./data.
  std::string data_dir = "./data";
  // fsync every commit batch before acknowledging it. Turning it off loses acknowledged
  // writes on power loss; it exists for benchmarks only. Default: true.
  bool sync = true;
  // Commands waiting for the committer; a submit beyond this is refused at once as
  // overloaded. (Past the queue, at most three batches are in the pipeline: one being
  // written, one waiting for the writer, one being decided.) Default: 16384.
  std::size_t max_queue_depth = 16384;
  // Commands decided and written in one batch (one fsync). Default: 512.
  std::size_t max_batch_size = 512;
  // How long an idempotency record is honoured; after it the key may be reused and the
  // record is purged. Default: 24 h.
  Micros idempotency_ttl = 24 * kMicrosPerHour;
  // Expired idempotency records deleted per purge step (kept small so purging never holds
  // up writes). Default: 1024.
  std::size_t idempotency_purge_batch = 1024;
  // How often the committer looks for expired idempotency records. Default: 60 s.
  Micros idempotency_purge_interval = kMicrosPerMinute;
  // Size of the RocksDB block cache shared by all column families (data, index and filter
  // blocks). Default: 64 MiB.
  std::size_t block_cache_bytes = 64u << 20;
  // Token rows kept decoded in memory for the point reads of authentication and show
  // (src/store/row_cache.h), ~300 bytes each; 0 turns the cache off. Default: 65536 (~20 MiB).
  std::size_t row_cache_entries = 65536;
  // Memory for RocksDB's memtables, all column families together; each family's memtable
  // is flushed at half of it. Default: 64 MiB.
  std::size_t memtable_bytes = 64u << 20;
  // Write-ahead log kept before the families holding its oldest file are flushed: bounds what
  // a start replays (~0.5 s per 64 MiB here). Default: 64 MiB.
  std::size_t max_wal_bytes = 64u << 20;
  // After a failed write the store is degraded: it refuses writes at once and tries to
  // recover (probe the disk, then RocksDB Resume() or a reopen) this long after the failure.
  // Default: 1 s.
  Micros recovery_interval = kMicrosPerSecond;
  // Each failed recovery attempt doubles the wait before the next, up to this. Default: 5 s.
  Micros max_recovery_interval = 5 * kMicrosPerSecond;
  TokenPolicy policy;
  ClusterOptions cluster;
};

// The HTTP server's limits and listeners.
struct ServerOptions {
  // Address of the API, HOST:PORT; port 0 picks a free port (logged). Default: 127.0.0.1:8080.
  std::string listen = "127.0.0.1:8080";
  // Separate address for /metrics (then not served on `listen`); empty: same. Default: empty.
  std::string metrics_listen;
  // I/O threads; 0 means one per core less one, at least one (http::DefaultIoThreads). Default: 0.
  unsigned threads = 0;
  // Request line + headers. Default: 8 KiB (431 beyond).
  std::size_t max_header_bytes = 8 * 1024;
  // Request body. Default: 64 KiB (413 beyond).
  std::size_t max_body_bytes = 64 * 1024;
  // Request target (path + query). Default: 4 KiB (414 beyond).
  std::size_t max_url_bytes = 4 * 1024;
  // Open connections; more are answered 503 and closed. Default: 1024.
  std::size_t max_connections = 1024;
  // Time allowed for each read (a request, or the wait for the next one on a kept-alive
  // connection). Default: 30 s.
  Micros read_timeout = 30 * kMicrosPerSecond;
  // On SIGTERM/SIGINT, how long in-flight requests may take before connections are cut.
  // Default: 10 s.
  Micros shutdown_grace = 10 * kMicrosPerSecond;
};

}  // namespace tokenledger

// LedgerStore: the event-sourced token ledger on RocksDB.
//
// Writes: Submit() queues a command. The committer thread decides queued commands against
// the current state (including commands decided before them but not yet durable) into one
// batch: events, stream index, idempotency records, projection rows, list index and chain
// head in ONE WriteBatch. The writer thread writes it with sync=true, and only then are its
// callbacks called; meanwhile the committer decides the next batch (docs/LEDGER.md, "Write
// path"). A full queue is refused at once (Outcome::kOverloaded); Submit never blocks on disk.
//
// Reads: consistent RocksDB snapshots, callable from any number of threads at once.
//
// Thread-safety: every public method is thread-safe. Callbacks run on the writer thread (or
// the committer's, for commands failed without a write): they must be quick, and must not
// wait for the store (Submit(...).get(), PurgeExpiredIdempotency().get(), or destroying the
// store), which waits for the callbacks' batch to leave the writer.
#pragma once

#include <array>
#include <atomic>
#include <cassert>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "events/events.h"
#include "projections/list_index.h"
#include "projections/token_details.h"
#include "src/core/commands.h"
#include "src/core/decider.h"
#include "tokenledger/error.h"
#include "tokenledger/options.h"

namespace rocksdb {
class Env;  // test-only injection point (StoreHooks::env); only src/store includes RocksDB
}

namespace tokenledger::store {

struct IdempotencyInfo {
  Id account_id;                               // keys are scoped to the caller's account
  std::string key;                             // 1-255 printable ASCII (validated by the caller)
  std::array<std::uint8_t, 32> fingerprint{};  // SHA-256 of the canonical request
};

enum class Outcome {
  kApplied,      // decided: events (possibly none) are durable
  kRejected,     // the decider refused; `rejection` says why (recorded if idempotent and
                 // IsRecordedRejection)
  kReplayed,     // same key, same fingerprint: the first request's outcome (`replayed`), rows,
                 // events and rejection, as it got them (rows only if it appended events)
  kKeyConflict,  // same key, different fingerprint: nothing written
  kOverloaded,   // the queue is full: nothing written, retry later
  kUnavailable,  // the write failed or the store is closing: nothing acknowledged
};

// The outcome of one command, typed: the HTTP layer renders it (the store renders nothing).
struct CommandResult {
  Outcome outcome = Outcome::kUnavailable;
  Outcome replayed = Outcome::kApplied;         // kReplayed: kApplied or kRejected
  core::Rejection rejection;                    // kRejected; message for other failures
  std::optional<projections::TokenRow> before;  // target before the command (if it existed)
  std::optional<projections::TokenRow> after;   // target after (state.deleted after delete)
  std::vector<events::EventEnvelope> events;
  // kReplayed of a record written before typed records (format 1): the HTTP answer as it was
  // rendered then, "SSS\n<body>"; rows and events are not filled. Empty otherwise.
  std::string legacy_response;

  // The row an answer shows: the token after the command, or as it last was visible if the
  // command deleted it. REQUIRES: an applied (or replayed applied) outcome.
  const projections::TokenRow& ShownRow() const {
    assert(after || before);
    return after && !after->state.deleted ? *after : *before;
  }
};

using CommandCallback = std::function<void(CommandResult)>;

struct CommandRequest {
  core::Command command;
  std::string request_id;
  events::Actor actor;
  std::optional<IdempotencyInfo> idempotency;
  // Refused (kRejected, invalid_action) unless the ledger has no event yet: the first start's
  // token, which in cluster mode only the first node to reach an empty stream creates.
  bool only_into_empty_ledger = false;
};

struct ListQuery {
  Id account_id;
  std::optional<core::TokenStatus> status;
  std::optional<events::TokenScope> scope;
  std::optional<Id> environment_id;
  projections::SortField sort = projections::SortField::kInsertedAt;
  bool descending = true;
  std::uint64_t offset = 0;
  std::uint32_t page_size = 25;
  // Only tokens created at or before this sequence number (a stable view for paging while
  // tokens are created). nullopt: the current sequence number, returned in the page.
  std::optional<std::uint64_t> snapshot_seq;
};

struct ListPage {
  std::vector<projections::TokenRow> rows;
  std::uint64_t item_count = 0;
  std::uint64_t snapshot_seq = 0;
};

struct EventPage {
  std::vector<events::EventEnvelope> events;
  std::uint64_t item_count = 0;
};

enum class OpenMode {
  kServe,        // refuse to open if the stored projection versions differ from the code's
  kMaintenance,  // open anyway, exclusively (rebuild, mint, import); Submit is available
  kReadOnly,     // a RocksDB secondary instance beside a running server: reads only, never
                 // blocks the server; CatchUp() sees its newer writes
};

enum class OpenFailure { kNone, kInUse, kProjectionVersionMismatch, kCorrupt, kIo, kBadOptions };

// Injected for deterministic tests; defaults are the system clock and IdGenerator.
struct StoreHooks {
  std::function<Micros()> clock;
  std::function<Id(const Id& account_id)> new_token_id;
  // TEST-ONLY: the RocksDB Env (and through it the FileSystem) the store uses, e.g. one that
  // injects I/O faults (tests/store/fault_fs.h). Null: RocksDB's default. Never set in
  // production code.
  std::shared_ptr<rocksdb::Env> env;
};

// Whether the store can write. Degraded after a failed write (a full disk, an fsync error):
// writes are refused at once with kUnavailable, reads keep answering from committed data,
// and the committer tries to recover every StoreOptions::recovery_interval (backing off).
struct StoreHealth {
  bool ok = true;
  std::string reason;  // degraded: the storage error that caused it
  Micros since = 0;    // degraded: when (system clock)
};

// Counters for /metrics; read with relaxed loads.
struct StoreMetrics {
  static constexpr std::array<double, 8> kBatchBuckets{1, 2, 4, 8, 16, 64, 256, 1024};
  static constexpr std::array<double, 10> kSyncBucketsSeconds{0.0005, 0.001, 0.002, 0.005, 0.01,
                                                              0.02,   0.05,  0.1,   0.5,   1.0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> commands{0};
  std::atomic<std::uint64_t> events_appended{0};
  // Keys (puts, deletes, merges) and bytes of the committed WriteBatches (what the WAL syncs).
  std::atomic<std::uint64_t> keys_written{0};
  std::atomic<std::uint64_t> bytes_written{0};
  std::atomic<std::uint64_t> overloaded{0};
  std::atomic<std::uint64_t> write_failures{0};
  // Batches decided on top of a batch whose write failed, so failed unwritten.
  std::atomic<std::uint64_t> batches_discarded{0};
  // Batches the writer took from the committer the moment its previous write returned.
  std::atomic<std::uint64_t> batches_taken_by_writer{0};
  std::atomic<std::uint64_t> idempotency_purged{0};
  std::atomic<std::uint64_t> degraded{0};  // gauge: 1 while the store refuses writes
  std::atomic<std::uint64_t> recoveries{0};
  std::atomic<std::uint64_t> recovery_failures{0};
  std::array<std::atomic<std::uint64_t>, kBatchBuckets.size() + 1> batch_size_buckets{};
  std::atomic<std::uint64_t> batch_size_sum{0};
  std::array<std::atomic<std::uint64_t>, kSyncBucketsSeconds.size() + 1> sync_buckets{};
  std::atomic<std::uint64_t> sync_micros_sum{0};
  // Cluster mode only (zero otherwise).
  std::atomic<std::uint64_t> cluster_connected{0};    // gauge: 1 while connected to NATS
  std::atomic<std::uint64_t> cluster_applied_seq{0};  // gauge: last stream message applied
  std::atomic<std::uint64_t> cluster_lag{0};          // gauge: stream messages not yet applied
  std::atomic<std::uint64_t> cluster_messages_applied{0};
  // Commands decided again: another node wrote the token first, or a duplicate key.
  std::atomic<std::uint64_t> cluster_publish_retries{0};
  // Commands answered 503 because JetStream did not store them (or not in time).
  std::atomic<std::uint64_t> cluster_publish_failures{0};
};

struct VerifyFinding {
  std::string kind;  // "chain", "stream", "projection", "index", "idempotency", "meta", "usage"
  std::uint64_t seq = 0;  // 0 when not about one event
  std::optional<Id> token;
  std::string expected;
  std::string found;
  std::string message;
};

struct VerifyReport {
  std::uint64_t events_checked = 0;
  std::uint64_t tokens_checked = 0;
  std::vector<VerifyFinding> findings;
};

// Progress of a long operation (rebuild, verify), reported between chunks.
struct RebuildProgress {
  std::uint64_t events_done = 0;
  std::uint64_t events_total = 0;
  std::string_view phase;            // "sort" (reading the ledger) or "fold" (in token order), ...
  std::string_view unit = "events";  // what done and total count ("ranges" in verify's scan)
};

struct VerifyOptions {
  // Parent directory of the temporary sort database (see TokenSort); empty: the system's
  // temporary directory. Default: empty.
  std::string temp_dir;
  // Called every few thousand events (from the calling thread only). Default: none.
  std::function<void(const RebuildProgress&)> progress;
  // How many key ranges of about equal size the list index is scanned in, shared out between
  // the scan threads: more balance them finer and cost a seek and a task each. Default: 16.
  int list_parts = 16;
};

// The entries (before compression) of each SST file the bulk paths write (rebuild, import):
// files are built in parallel, each from a buffer of this size (ParallelSstWriter).
inline constexpr std::uint64_t kRebuildSstFileBytes = 16u << 20;

class LedgerStore {
 public:
  struct Opened;
  // Opens (creating if needed) the ledger in options.data_dir and starts the committer.
  static Opened Open(const StoreOptions& options, OpenMode mode = OpenMode::kServe,
                     StoreHooks hooks = {});

  // Stops accepting, lets the committer finish every queued command, closes the DB.
  ~LedgerStore();
  LedgerStore(const LedgerStore&) = delete;
  LedgerStore& operator=(const LedgerStore&) = delete;

  // Queues a command; `done` is called exactly once (on a store thread, or inline for
  // kOverloaded / kUnavailable).
  void Submit(CommandRequest request, CommandCallback done);
  std::future<CommandResult> Submit(CommandRequest request);

  // A visible token's row, or nullopt (never existed, or deleted).
  Result<std::optional<projections::TokenRow>> GetToken(const Id& token_id) const;
  Result<ListPage> ListTokens(const ListQuery& query) const;
  // A token's events, oldest first (deleted tokens too). item_count = stream length.
  Result<EventPage> ListEvents(const Id& token_id, std::uint64_t offset, std::uint32_t limit) const;
  // The account a stream (token) belongs to, from its TokenCreated; nullopt if no stream.
  Result<std::optional<Id>> StreamAccount(const Id& token_id) const;
  // The token as a show at time `t` would have returned it; nullopt if it did not exist yet
  // or was already deleted then.
  Result<std::optional<projections::TokenRow>> GetTokenAsOf(const Id& token_id, Micros t) const;

  // Every stored event in sequence order from `from_seq`; `visit` returns false to stop.
  Status ScanEvents(std::uint64_t from_seq,
                    const std::function<bool(const events::EventEnvelope&)>& visit) const;

  // Every visible token's row, in token id order; `visit` returns false to stop.
  Status ScanTokens(const std::function<bool(const projections::TokenRow&)>& visit) const;

  // kReadOnly: catches up with the server's writes since the open or the last CatchUp.
  Status CatchUp();

  // kMaintenance: appends stored event records (hash + body, exactly as exported) after
  // checking that each one's hash matches its body, that it links to the chain head, and that
  // seq and stream versions continue without gaps. All or nothing per call. Projections are
  // not touched: call RebuildProjections afterwards.
  Status AppendVerbatim(std::span<const std::string_view> records);

  // kMaintenance, on an empty ledger: marks the ledger as being imported (meta
  // `import_in_progress`, one synced write) and switches AppendVerbatim to bulk mode: WAL off,
  // no per-stream look-ups (stream versions are checked by the RebuildProjections that import
  // runs before FinishImport), and each appended event also goes into a temporary sort by
  // token under `temp_dir` (empty: the system's), which that rebuild folds instead of reading
  // the ledger again. The events themselves go into SST files beside the sort, ingested when
  // the rebuild starts (until then they cannot be read), and their stream index entries are
  // written by that rebuild's fold. A crash before FinishImport leaves a directory that
  // Open(kServe) refuses: with the WAL off, nothing in it is trusted.
  Status BeginImport(const std::string& temp_dir = "");
  // Flushes every column family, then deletes the marker in one synced write.
  // REQUIRES: RebuildProjections ran after the last AppendVerbatim (else kUnexpected).
  Status FinishImport();

  // The stored record (hash + body) of each event from `from_seq`, in order.
  Status ScanStoredEvents(
      std::uint64_t from_seq,
      const std::function<bool(std::uint64_t seq, std::string_view record)>& visit) const;

  std::uint64_t LastSeq() const;
  // The hash of the last event (all zero for an empty ledger): in cluster mode equal on every
  // node that has applied the same messages.
  events::Hash ChainHead() const;
  // Whether the log of record is a JetStream stream (StoreOptions::cluster.urls).
  bool ClusterMode() const;
  // The cluster stream this store is a node of (meta `cluster`), or nullopt for a single-node
  // ledger. Such a store takes no Submit unless opened in cluster mode.
  std::optional<std::string> ClusterStream() const;
  // RocksDB's estimate of the bytes compaction still has to rewrite ("compaction debt"),
  // summed over the column families; nullopt while the storage is being recovered.
  std::optional<std::uint64_t> PendingCompactionBytes() const;
  std::size_t QueueDepth() const;
  // True when the stored projection versions equal the code's and they are at the head.
  bool ProjectionsCurrent() const;
  const StoreMetrics& Metrics() const;
  StoreHealth Health() const;

  // Deletes expired idempotency records now (the committer also does this periodically);
  // returns how many were purged. Runs on the committer thread between batches.
  std::future<std::uint64_t> PurgeExpiredIdempotency();

  // Recomputes the hash chain, stream versions, projection rows, list index entries and
  // idempotency record pointers from the ledger alone and reports every difference.
  // Streams: the chain in seq order, then everything per token through an external sort
  // (TokenSort), merge-joined with the stream index, usage records and token rows in token
  // order; the list index by an order-independent digest, pinpointed by a second pass only
  // on a mismatch. Memory: bounded by kTokenSortMemoryBytes plus one token's events.
  Result<VerifyReport> Verify(const VerifyOptions& options = {}) const;

  // Rebuilds both projections from the ledger into new column families beside the current
  // ones (bulk writes, WAL off, external sort by token: see TokenSort), flushes them, then
  // switches to them in one atomic synced write and drops the old. An interrupted rebuild
  // starts over (its partial families are dropped); the old projections stay in use until
  // the switch. REQUIRES: nothing is submitted while it runs (operator tools open the store
  // exclusively in kMaintenance mode). `chunk_events` tokens are written per batch (and
  // progress reported); `temp_dir` as in VerifyOptions. The new families are written as SST
  // files of about `sst_file_bytes` each (the table builder holds one file's index in memory;
  // tests pass a small size to exercise many files).
  Status RebuildProjections(const std::function<void(const RebuildProgress&)>& progress = {},
                            std::uint64_t chunk_events = 4096, const std::string& temp_dir = {},
                            std::uint64_t sst_file_bytes = kRebuildSstFileBytes);

  struct Impl;

 private:
  explicit LedgerStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct LedgerStore::Opened {
  std::unique_ptr<LedgerStore> store;
  OpenFailure failure = OpenFailure::kNone;
  std::string message;
};

}  // namespace tokenledger::store

// Internals of LedgerStore shared by its .cc files. Only src/store includes RocksDB.
#pragma once

#include <rocksdb/db.h>

#include <cassert>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <thread>
#include <unordered_map>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/store/keys.h"
#include "src/store/ledger_store.h"
#include "src/store/row_cache.h"
#include "src/store/sst_writer.h"
#include "src/store/token_sort.h"

namespace tokenledger::store {

Error StorageError(const rocksdb::Status& s, std::string_view what);

// Which column families hold the projections now, and at which versions (meta "projections").
struct ProjectionMeta {
  std::uint32_t details_version = 0;
  std::string details_cf;
  std::uint32_t list_version = 0;
  std::string list_cf;
  std::uint64_t generation = 0;
};
std::string EncodeProjectionMeta(const ProjectionMeta& m);
std::optional<ProjectionMeta> DecodeProjectionMeta(std::string_view json);
std::string ProjectionCfName(std::string_view projection, std::uint32_t version,
                             std::uint64_t generation);

// The list index changes of one write batch, added to it at the hand-off (WriteTo) rather than
// as each command is decided:
// - counters (projections::ListCountKeys): summed per counter, one merge operand per counter
//   that moved, not one per token change. Each operand costs a memtable insert and, with
//   max_successive_merges, a look-up of the operands before it (and a Get once there are 8):
//   six per status change, one by one, were about a third of the writer's memtable work.
// - entries: puts and deletes in key order, so that the memtable inserts each next to the one
//   before (a range's entries one after the other; with the insert hints of the list family,
//   MakeListCfOptions) instead of descending its skiplist from the top for each. The order is
//   stable: two changes of one key (a token changed twice in one batch) keep theirs.
// One thread at a time.
class ListIndexChanges {
 public:
  // REQUIRES (each): every call for one batch names the same list family.
  void Put(rocksdb::ColumnFamilyHandle* list, std::string_view key, std::string_view value) {
    AddEntry(list, key, value, true);
  }
  void Delete(rocksdb::ColumnFamilyHandle* list, std::string_view key) {
    AddEntry(list, key, {}, false);
  }
  void Count(rocksdb::ColumnFamilyHandle* list, const std::string& key, std::int64_t delta) {
    Use(list);
    deltas_[key] += delta;
  }
  // Adds to `batch` the entries in key order, then one merge operand per counter whose sum is
  // not 0, in key order, into the family the calls named, and forgets them.
  void WriteTo(rocksdb::WriteBatch& batch);

 private:
  struct Entry {
    std::uint32_t at;  // in bytes_: the key, then the value
    std::uint32_t key_bytes, value_bytes;
    bool put;
  };
  void Use(rocksdb::ColumnFamilyHandle* list) {
    assert(list_ == nullptr || list_ == list);
    list_ = list;
  }
  void AddEntry(rocksdb::ColumnFamilyHandle* list, std::string_view key, std::string_view value,
                bool put);

  rocksdb::ColumnFamilyHandle* list_ = nullptr;
  std::map<std::string, std::int64_t> deltas_;
  std::string bytes_;  // every entry's key and value, one allocation for the batch
  std::vector<Entry> entries_;
};

// Adds to `batch` what turns the stored projection of one token from `before` into `after`
// (nullopt or a deleted state: no row): the row at once, the list index's entries and counters
// to `list_changes` (written with the batch by ListIndexChanges::WriteTo). Index entries that
// did not change are not rewritten.
void WriteProjectionChange(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* details,
                           rocksdb::ColumnFamilyHandle* list,
                           const std::optional<projections::TokenRow>& before,
                           const std::optional<projections::TokenRow>& after,
                           ListIndexChanges& list_changes);

// The list counters' merge operator (projections::ListCountKeys): operands and values are
// int64 little-endian and add up; a missing or malformed value counts as 0 (Verify reports
// malformed counters). Every opener of the ledger's families must set it.
std::shared_ptr<rocksdb::MergeOperator> NewListCountMergeOperator();

// Read options of a full scan by a tool: read ahead, and keep the block cache for the server.
inline rocksdb::ReadOptions FullScanReadOptions() {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = 2u << 20;
  ro.adaptive_readahead = true;
  return ro;
}

struct ReleaseSnapshot {
  rocksdb::DB* db;
  void operator()(const rocksdb::Snapshot* s) const {
    if (s) db->ReleaseSnapshot(s);
  }
};
using SnapshotPtr = std::unique_ptr<const rocksdb::Snapshot, ReleaseSnapshot>;

// How many decided batches may wait for or be in their synced write at once. The committer
// keeps one batch open, deciding into it every command that arrives while the writer syncs
// the previous one, and hands it over when the writer is free: so one fsync serves every
// command that arrived during the last one. (What it decides on top of an unsynced batch
// fails with it if that write fails.)
inline constexpr std::size_t kMaxBatchesInFlight = 2;

// A decided event of `req` on `target` (seq, prev_hash and hash unset).
events::EventEnvelope NewEvent(const CommandRequest& req, const Id& target,
                               std::uint64_t stream_version, Micros at, events::EventData data);

class ClusterLog;  // cluster.cc: the log of record on NATS JetStream (cluster mode)

struct LedgerStore::Impl {
  struct Pending {
    CommandRequest request;
    CommandCallback done;
  };

  // A batch the committer decided, handed to the writer thread with its WriteBatch.
  struct DecidedBatch {
    std::uint64_t number = 0;  // decide order, from 1
    std::uint64_t epoch = 0;   // the pipeline epoch it was decided in (see pipe_epoch)
    std::vector<Pending> commands;
    std::vector<CommandResult> results;
    // For each kReplayed result of a typed record: the record, whose rows and events are
    // read back once this batch (and so the record's own) is durable.
    std::vector<std::optional<IdempotencyRecord>> replays;
    rocksdb::WriteBatch wb;
    ListIndexChanges list_changes;  // into wb at the hand-off
    std::uint64_t first_seq = 0;    // the seq its first event has (if it appends any)
    std::uint64_t seq = 0;          // the head after this batch
    events::Hash hash{};
    Micros at = 0;
    std::uint64_t appended = 0;
    std::vector<Id> changed_rows;  // tokens whose row the batch writes (row cache invalidation)
  };
  // A decided but maybe not yet durable value, and the batch that decided it.
  template <typename T>
  struct Undurable {
    T value;
    std::uint64_t batch = 0;
  };

  StoreOptions options;
  StoreHooks hooks;
  OpenMode mode = OpenMode::kServe;

  // `db` and the family handles are replaced only by a reopen during recovery (committer
  // thread, holding db_mu exclusively, with the write pipeline idle) and by a rebuild's switch
  // of the projection families (with nothing submitted). Every other thread holds db_mu shared
  // while it uses them (ReadLock()) and must expect `db` to be null after a reopen that failed.
  mutable std::shared_mutex db_mu;
  rocksdb::DBOptions db_options;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // all open families, owned
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* streams = nullptr;
  rocksdb::ColumnFamilyHandle* idempotency = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* usage = nullptr;  // null only in kReadOnly over an old ledger
  rocksdb::ColumnFamilyHandle* details = nullptr;
  rocksdb::ColumnFamilyHandle* list = nullptr;
  rocksdb::ColumnFamilyOptions cf_options;              // families read by key
  rocksdb::ColumnFamilyOptions events_cf_options;       // `events`
  rocksdb::ColumnFamilyOptions idempotency_cf_options;  // `idempotency`
  rocksdb::ColumnFamilyOptions list_cf_options;         // `token_list_index.*`
  // The options a family of this name is opened or created with.
  const rocksdb::ColumnFamilyOptions& CfOptionsFor(std::string_view name) const;
  ProjectionMeta projection_meta;
  std::atomic<bool> projections_match{false};
  // Rows for GetToken. Every writer of `details` invalidates what it changed once its write is
  // visible, before it answers; a reopen or a projection switch clears it.
  std::unique_ptr<RowCache> row_cache = std::make_unique<RowCache>(0);

  // The durable head. Written by the writer thread under pipe_mu, and while the pipeline is
  // idle by Open, recovery and the maintenance writes (AppendVerbatim).
  std::uint64_t head_seq = 0;
  events::Hash head_hash{};
  Micros last_at = 0;

  // Decide side: the committer thread only. The head as decided (ahead of the durable one by
  // the batches in flight), and what those batches decided, so that the next batch sees it
  // before it is readable from the DB. Entries of durable batches are pruned.
  std::uint64_t decided_seq = 0;
  events::Hash decided_hash{};
  Micros decided_at = 0;
  std::uint64_t decided_batches = 0;
  std::uint64_t decide_epoch = 0;
  std::unordered_map<Id, Undurable<std::optional<projections::TokenRow>>, IdHash> undurable_rows;
  std::unordered_map<std::string, Undurable<IdempotencyRecord>> undurable_records;
  Micros next_purge_at = 0;

  // The pipeline between the committer (decides) and the writer (syncs, then answers).
  std::mutex pipe_mu;
  std::condition_variable pipe_cv;
  std::deque<std::unique_ptr<DecidedBatch>> pipe_batches;  // guarded by pipe_mu
  bool pipe_writing = false;                               // guarded by pipe_mu
  bool pipe_stop = false;                                  // guarded by pipe_mu
  // Bumped by a failed write: batches decided in an older epoch were decided on top of it and
  // fail without being written.
  std::uint64_t pipe_epoch = 0;  // guarded by pipe_mu
  std::atomic<std::uint64_t> durable_batches{0};
  // True while the writer has nothing to write: set true by the writer under `mu` and
  // `pipe_mu`, false by HandOff under `pipe_mu` (the committer waits on it under `mu`).
  std::atomic<bool> writer_idle{true};
  // The open batch, which the committer decides into. When its write returns, the writer takes
  // it itself if the committer is not deciding into it at that moment (TakeOpenBatch), so the
  // next fsync starts without waiting for the committer thread to be woken and scheduled.
  // Lock order: open_mu, then pipe_mu.
  std::mutex open_mu;
  std::unique_ptr<DecidedBatch> open_batch;   // guarded by open_mu
  std::atomic<std::size_t> open_commands{0};  // open_batch's commands (0: none), for waits
  std::thread writer;
  rocksdb::WriteOptions write_options;
  bool bulk_import = false;  // between BeginImport and FinishImport (see AppendVerbatim)
  // During an import, the appended events sorted by token as they are loaded: the rebuild that
  // follows folds them without reading and decoding the ledger a second time.
  std::unique_ptr<TokenSort> import_sort;
  // During an import, the appended events go straight into SST files in import_sort's
  // directory (they arrive in seq order, the events family's key order), ingested by
  // IngestImportedEvents; their stream index entries are left to the rebuild's fold, which
  // meets them in key order (`import_streams_pending`). No memtable, no flush, no compaction:
  // those were most of the load's time.
  std::unique_ptr<ParallelSstWriter> import_events;
  bool import_streams_pending = false;
  // Ingests the events written so far by a bulk import into the events family (nothing if
  // none), so that they can be read. Called by RebuildProjections and FinishImport.
  Status IngestImportedEvents();

  std::atomic<std::uint64_t> committed_seq{0};
  StoreMetrics metrics;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Pending> queue;                                // guarded by mu
  std::vector<std::promise<std::uint64_t>> purge_requests;  // guarded by mu
  bool stopping = false;                                    // guarded by mu
  std::thread committer;

  // Cluster mode (options.cluster.urls set): the log of record is JetStream; the committer
  // thread proposes (ClusterLog::ProposerLoop) and no writer thread runs. Null otherwise.
  std::unique_ptr<ClusterLog> cluster;
  // The stream this store is a node of (meta `cluster`), empty for a single-node ledger. Without
  // `cluster` (a tool), Submit refuses on such a store: a write of its own would fork it.
  std::string cluster_stream;

  std::string secondary_path;  // kReadOnly: the secondary instance's private directory
  int lock_fd = -1;            // kServe/kMaintenance: flock on <data_dir>/tokenledger.lock

  // Health. `degraded` is read by Submit without the queue lock; the rest under health_mu.
  std::atomic<bool> degraded{false};
  mutable std::mutex health_mu;
  StoreHealth health;  // guarded by health_mu
  // Recovery schedule, guarded by health_mu.
  std::chrono::steady_clock::time_point next_recovery{};
  Micros recovery_backoff = 0;

  ~Impl();
  rocksdb::ColumnFamilyHandle* Handle(std::string_view name) const;

  // Opens RocksDB with every existing family (plus the base ones) and sets the base family
  // pointers; used by Open and by a reopen during recovery.
  rocksdb::Status OpenDb();
  void CloseDb();
  // Reads the chain head from meta and the last event's time into the committer's head
  // (head_seq, head_hash, last_at, committed_seq). Returns an error message, empty if fine.
  std::string LoadHead(OpenFailure* failure);

  // Readers hold this while they use `db` or a family handle.
  std::shared_lock<std::shared_mutex> ReadLock() const { return std::shared_lock(db_mu); }
  // What readers answer when a failed reopen left no database open.
  static Error Closed();

  // Degraded mode and recovery (committer thread). See docs/LEDGER.md, "Fault model".
  void Degrade(const rocksdb::Status& s, std::string_view what);
  bool RecoveryDue() const;
  std::chrono::steady_clock::duration UntilRecovery() const;
  void TryRecover();
  rocksdb::Status ProbeDisk();
  rocksdb::Status Reopen();
  void MarkHealthy();
  std::string DegradedMessage() const;
  void FailDegraded(std::vector<Pending>& batch);

  void CommitterLoop();
  // A new (open) batch on top of the decided head.
  std::unique_ptr<DecidedBatch> NewBatch();
  // Decides `commands` on top of the decided head, moving them into `batch` (not written).
  void Decide(DecidedBatch& batch, std::span<Pending> commands);
  // Hands a decided batch to the writer (waiting while kMaxBatchesInFlight are), or fails it
  // if a write failed since it was decided.
  void HandOff(std::unique_ptr<DecidedBatch> batch);
  // Puts what a batch writes only once its last command is decided (the list index changes,
  // the chain head) into its WriteBatch. Called once, by whoever hands the batch over.
  void Seal(DecidedBatch& batch);
  // The committer's side of the open batch: takes it out of open_batch (null if none).
  std::unique_ptr<DecidedBatch> TakeOpenForHandOff();
  // The writer's side, after a successful write: the open batch, sealed, if the committer is
  // not deciding into it, no older batch waits and it was decided in the current epoch; null
  // otherwise (the committer then hands it over when it sees the writer idle).
  std::unique_ptr<DecidedBatch> TakeOpenBatch();
  // Fails every command of a batch decided on top of a failed write, unwritten.
  void Discard(DecidedBatch& batch);
  // Waits until no batch is in flight (before recovery, purges and shutdown).
  void WaitPipelineIdle();
  void WriterLoop();
  // Writes one batch synced, then answers its commands. True if the write succeeded.
  bool WriteBatch(DecidedBatch& batch);
  // The three writes every applied command shares, in single-node and cluster mode alike.
  // Appends `e` (seq, stream and stream version set) on top of `hash`: its record and stream
  // index entry; sets e.prev_hash and e.hash, moves `hash`, and folds `e` into `row`.
  void AppendEvent(rocksdb::WriteBatch& wb, events::EventEnvelope& e, events::Hash& hash,
                   std::optional<projections::TokenRow>& row);
  // Writes what a command changed of its token besides events: a use (`used_at`: folded into
  // `row`, usage record), and the projection change from `before` to `row`. Returns whether the
  // projection changed (events were `appended`, or a use).
  bool WriteTokenChange(rocksdb::WriteBatch& wb, ListIndexChanges& list_changes, const Id& target,
                        const std::optional<projections::TokenRow>& before,
                        std::optional<projections::TokenRow>& row, std::optional<Micros> used_at,
                        bool appended);
  // Writes the idempotency record (and its expiry entry) of a decided command `r` and returns
  // it. REQUIRES: r is kApplied, or kRejected with IsRecordedRejection.
  IdempotencyRecord WriteIdempotencyRecord(rocksdb::WriteBatch& wb, const IdempotencyInfo& info,
                                           Micros at, std::uint64_t first_seq,
                                           const CommandResult& r);
  // The answer a live idempotency record gives a request with `fingerprint`, into `r`: its
  // recorded outcome (kReplayed), or kKeyConflict for another request. Returns whether the
  // replay still needs its rows and events (FillReplayed, once the record's events are durable).
  static bool RecordOutcome(IdempotencyRecord& record, const Fingerprint& fingerprint,
                            CommandResult& r);
  // Fills a replayed result's rows and events from the ledger. REQUIRES: the record's events
  // are durable.
  Status FillReplayed(const IdempotencyRecord& record, CommandResult& r);
  // Deletes up to `limit` expired idempotency records; returns how many.
  std::uint64_t PurgeStep(Micros now, std::size_t limit);

  // The number of events in `stream` (its last stream version; 0 for none), from the stream
  // index. For the key ring's stream, which has no row to carry its version.
  Result<std::uint64_t> StreamLength(const rocksdb::ReadOptions& ro, const Id& stream) const;
  Result<std::optional<projections::TokenRow>> ReadRow(const rocksdb::ReadOptions& ro,
                                                       const Id& token) const;
  // The row a command on `target` is decided against: ReadRow, and for the key ring's stream
  // (which has no row) an invisible one carrying the stream's version.
  Result<std::optional<projections::TokenRow>> ReadDecisionRow(const rocksdb::ReadOptions& ro,
                                                               const Id& target) const;
  Result<std::optional<events::EventEnvelope>> ReadEvent(const rocksdb::ReadOptions& ro,
                                                         std::uint64_t seq) const;
  // A stream's events from `offset` (at most `limit`), read in one snapshot; item_count is
  // the stream's length. REQUIRES: db open (callers hold ReadLock, or are a store thread).
  Result<EventPage> ReadStream(const Id& token, std::uint64_t offset, std::uint32_t limit) const;
  Micros Now() const { return hooks.clock(); }
  // A snapshot for multi-key reads. A secondary (kReadOnly) has none, and needs none: its
  // view changes only when CatchUp() is called.
  SnapshotPtr Snapshot() const {
    rocksdb::DB* d = db.get();
    return SnapshotPtr(mode == OpenMode::kReadOnly ? nullptr : d->GetSnapshot(),
                       ReleaseSnapshot{d});
  }
};

}  // namespace tokenledger::store

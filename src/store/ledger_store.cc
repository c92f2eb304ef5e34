// Open, close and the small shared helpers of LedgerStore.
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>
#include <filesystem>

#include "src/store/cluster.h"
#include "src/store/info_log.h"
#include "src/store/skiplist_memtable.h"
#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace json = boost::json;

Error StorageError(const rocksdb::Status& s, std::string_view what) {
  return Error{ErrorCode::kUnavailable,
               "storage error while " + std::string(what) + ": " + s.ToString(),
               {}};
}

std::string EncodeProjectionMeta(const ProjectionMeta& m) {
  json::object o;
  o["token_details"] = json::object{{"version", m.details_version}, {"cf", m.details_cf}};
  o["token_list_index"] = json::object{{"version", m.list_version}, {"cf", m.list_cf}};
  o["generation"] = m.generation;
  return json::serialize(o);
}

std::optional<ProjectionMeta> DecodeProjectionMeta(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return std::nullopt;
  try {
    ProjectionMeta m;
    const auto& d = v.at("token_details");
    const auto& l = v.at("token_list_index");
    m.details_version = d.at("version").to_number<std::uint32_t>();
    m.details_cf = std::string(d.at("cf").as_string());
    m.list_version = l.at("version").to_number<std::uint32_t>();
    m.list_cf = std::string(l.at("cf").as_string());
    m.generation = v.at("generation").to_number<std::uint64_t>();
    return m;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string ProjectionCfName(std::string_view projection, std::uint32_t version,
                             std::uint64_t generation) {
  return std::string(projection) + ".v" + std::to_string(version) + ".g" +
         std::to_string(generation);
}

void WriteProjectionChange(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* details,
                           rocksdb::ColumnFamilyHandle* list,
                           const std::optional<projections::TokenRow>& before,
                           const std::optional<projections::TokenRow>& after,
                           ListIndexChanges& list_changes) {
  const bool had = before && before->state.Visible();
  const bool has = after && after->state.Visible();
  if (!had && !has) return;  // e.g. created and deleted within one rebuild chunk
  const Id& id = has ? after->state.id : before->state.id;
  if (has) {
    batch.Put(details, id.Bytes(), projections::EncodeTokenRow(*after));
  } else if (had) {
    batch.Delete(details, id.Bytes());
  }
  std::optional<projections::ListIndexEntrySet> old_entries, new_entries;
  if (had) old_entries.emplace(*before);
  if (has) new_entries.emplace(*after);
  const std::size_t old_n = had ? old_entries->size() : 0, new_n = has ? new_entries->size() : 0;
  // A token's scope and environment never change, so both sets hold the same partitions and
  // fields in the same order: compare pairwise.
  for (std::size_t i = 0; i < std::max(old_n, new_n); ++i) {
    const auto* o = i < old_n ? &(*old_entries)[i] : nullptr;
    const auto* n = i < new_n ? &(*new_entries)[i] : nullptr;
    if (o && (!n || o->Key() != n->Key())) list_changes.Delete(list, o->Key());
    if (n && (!o || o->Key() != n->Key() || o->Value() != n->Value()))
      list_changes.Put(list, n->Key(), n->Value());
  }
  // -1 for every counter the token was in, +1 for every one it is in: `list_changes` sums
  // them, so a counter it stays in nets 0 and gets no operand.
  if (had) {
    for (const auto& k : projections::ListCountKeys(*before)) list_changes.Count(list, k, -1);
  }
  if (has) {
    for (const auto& k : projections::ListCountKeys(*after)) list_changes.Count(list, k, 1);
  }
}

void ListIndexChanges::AddEntry(rocksdb::ColumnFamilyHandle* list, std::string_view key,
                                std::string_view value, bool put) {
  Use(list);
  assert(bytes_.size() + key.size() + value.size() <= UINT32_MAX);
  entries_.push_back({static_cast<std::uint32_t>(bytes_.size()),
                      static_cast<std::uint32_t>(key.size()),
                      static_cast<std::uint32_t>(value.size()), put});
  bytes_.append(key);
  bytes_.append(value);
}

void ListIndexChanges::WriteTo(rocksdb::WriteBatch& batch) {
  const std::string_view bytes = bytes_;
  auto key = [&](const Entry& e) { return bytes.substr(e.at, e.key_bytes); };
  std::stable_sort(entries_.begin(), entries_.end(),
                   [&](const Entry& a, const Entry& b) { return key(a) < key(b); });
  for (const Entry& e : entries_) {
    const rocksdb::Slice k(bytes.data() + e.at, e.key_bytes);
    if (e.put) {
      batch.Put(list_, k, rocksdb::Slice(bytes.data() + e.at + e.key_bytes, e.value_bytes));
    } else {
      batch.Delete(list_, k);
    }
  }
  entries_.clear();
  bytes_.clear();
  for (const auto& [key, delta] : deltas_) {
    if (delta != 0) batch.Merge(list_, key, projections::EncodeListCount(delta));
  }
  deltas_.clear();
  list_ = nullptr;
}

namespace {

class AddCountOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    std::int64_t sum = projections::DecodeListCount(value.ToStringView()).value_or(0);
    if (existing) sum += projections::DecodeListCount(existing->ToStringView()).value_or(0);
    *new_value = projections::EncodeListCount(sum);
    return true;
  }
  const char* Name() const override { return "tokenledger.list_count_add"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewListCountMergeOperator() {
  return std::make_shared<AddCountOperator>();
}

LedgerStore::Impl::~Impl() {
  // An import that did not finish (it failed, or was stopped) may still be building SST files
  // on threads that use the events family's handle: they are joined before the handles go.
  // Closing the DB first let such a thread use a destroyed handle (an import refused in its
  // third batch died of SIGSEGV, once in a CI run).
  import_events.reset();
  import_sort.reset();
  CloseDb();
  if (!secondary_path.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(secondary_path, ec);
  }
  if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
}

void LedgerStore::Impl::CloseDb() {
  if (db) {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    db->Close().PermitUncheckedError();
    db.reset();
  }
  handles.clear();
  events = streams = idempotency = meta = usage = details = list = nullptr;
}

Error LedgerStore::Impl::Closed() {
  return Error{ErrorCode::kUnavailable,
               "the ledger's storage is being recovered after a storage error; retry shortly",
               {}};
}

rocksdb::Status LedgerStore::Impl::OpenDb() {
  // Open every family that exists. A fresh ledger gets its projection families in Open, once
  // meta says it is fresh: judging by which families exist would go wrong after a kill in the
  // middle of the very first open, when only some of them were created.
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db_options, options.data_dir, &names).ok()) names.clear();
  for (const char* base : {rocksdb::kDefaultColumnFamilyName.c_str(), kEventsCf, kStreamsCf,
                           kIdempotencyCf, kMetaCf}) {
    if (std::find(names.begin(), names.end(), base) == names.end()) names.emplace_back(base);
  }
  // Ledgers written before usage records have no `usage` family; a secondary cannot create
  // it, and reads such a ledger as one without usage records.
  if (mode != OpenMode::kReadOnly &&
      std::find(names.begin(), names.end(), kUsageCf) == names.end()) {
    names.emplace_back(kUsageCf);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, CfOptionsFor(n));

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (mode == OpenMode::kReadOnly) {
    rocksdb::Options secondary(db_options, cf_options);
    secondary.max_open_files = -1;  // required for secondaries
    secondary.create_if_missing = false;
    s = rocksdb::DB::OpenAsSecondary(secondary, options.data_dir, secondary_path, descriptors,
                                     &handles, &raw);
  } else {
    s = rocksdb::DB::Open(rocksdb::Options(db_options, cf_options), options.data_dir, descriptors,
                          &handles, &raw);
  }
  if (!s.ok()) return s;
  db.reset(raw);
  events = Handle(kEventsCf);
  streams = Handle(kStreamsCf);
  idempotency = Handle(kIdempotencyCf);
  meta = Handle(kMetaCf);
  usage = Handle(kUsageCf);
  return s;
}

std::string LedgerStore::Impl::LoadHead(OpenFailure* failure) {
  *failure = OpenFailure::kCorrupt;
  std::string value;
  rocksdb::ReadOptions ro;
  rocksdb::Status s = db->Get(ro, meta, kMetaChainHead, &value);
  if (!s.ok() && !s.IsNotFound()) {
    *failure = OpenFailure::kIo;
    return StorageError(s, "reading the chain head").message;
  }
  if (!s.ok() || value.size() != 40) return "ledger meta 'chain_head' is missing or malformed";
  const std::uint64_t seq = DecodeU64(value);
  events::Hash hash{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(value.data()) + 8, 32, hash.begin());
  Micros at = 0;
  // The head and the last event are written in one batch; anything else is damage.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, events));
  it->SeekToLast();
  const std::uint64_t last = it->Valid() ? DecodeU64(it->key().ToStringView()) : 0;
  if (!it->status().ok()) {
    *failure = OpenFailure::kIo;
    return StorageError(it->status(), "reading the last event").message;
  }
  if (last != seq) {
    return "chain head says seq " + std::to_string(seq) + " but the last stored event is seq " +
           std::to_string(last);
  }
  if (it->Valid()) {
    auto last_event = events::DecodeStoredEvent(it->value().ToStringView());
    if (!last_event) return "last event: " + last_event.error().message;
    at = last_event->at;
  }
  head_seq = seq;
  head_hash = hash;
  last_at = std::max(last_at, at);  // event times never go backwards, even across a recovery
  committed_seq.store(seq, std::memory_order_release);
  *failure = OpenFailure::kNone;
  return {};
}

const rocksdb::ColumnFamilyOptions& LedgerStore::Impl::CfOptionsFor(std::string_view name) const {
  if (name == kEventsCf) return events_cf_options;
  if (name == kIdempotencyCf) return idempotency_cf_options;
  if (name.starts_with(projections::kTokenListIndex.name)) return list_cf_options;
  return cf_options;
}

rocksdb::ColumnFamilyHandle* LedgerStore::Impl::Handle(std::string_view name) const {
  for (auto* h : handles)
    if (h->GetName() == name) return h;
  return nullptr;
}

namespace {

LedgerStore::Opened Fail(OpenFailure failure, std::string message) {
  return LedgerStore::Opened{nullptr, failure, std::move(message)};
}

// Turns off RocksDB's own recovery from a background error (its SstFileManager polling for
// free space after ENOSPC): the store recovers by itself, by a reopen (recovery.cc), and the
// DB must not change state under it.
class NoAutoRecovery : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "TokenledgerNoAutoRecovery"; }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }
};

// Index and filter blocks live in the block cache, so the cache bounds them too. They are
// partitioned (a small top level, pinned, over 4 KiB partitions cached like data blocks): a
// whole-file filter of a large SST (a rebuild's or import's ingested file, or the last level)
// is megabytes, larger than a cache shard, so it was read and checksummed again on every
// look-up (the profile of a list page at a million tokens: 80% of its time).
rocksdb::BlockBasedTableOptions TableOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                             bool bloom_filter) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  if (bloom_filter) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = bloom_filter;
  table.metadata_block_size = 4096;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_top_level_index_and_filter = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.format_version = 5;
  return table;
}

// Level-0 files that start a compaction into the next level (RocksDB's default: 4). Each such
// compaction rewrites the overlapping part of that level, so waiting for twice the files
// rewrites it half as often. Measured (docs/PERFORMANCE.md, 2026-12-02, fourth): under
// sustained creates and status changes, compaction's CPU fell from 18.9-23.1 s to
// 10.8-11.4 s of a 60-second run, with list pages and shows after it as fast as before (point
// reads check the extra files' pinned filters; range reads merge a few more iterators).
// Writes slow down at 20 level-0 files (RocksDB's default), far above this.
constexpr int kLevel0CompactionTrigger = 8;

// The options of the families read by key: rows, streams, idempotency, usage, meta.
// REQUIRES: options validated by Open.
rocksdb::ColumnFamilyOptions MakeCfOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           const StoreOptions& options) {
  rocksdb::ColumnFamilyOptions cf;
  // Point lookups (rows, stream heads, idempotency records) dominate: a bloom filter saves a
  // disk read for every miss.
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(TableOptions(cache, true)));
  cf.merge_operator = NewListCountMergeOperator();  // list counters only
  // A counter is merged on every create: fold the operands at write time once a few pile up
  // in the memtable, so reading a counter never applies thousands of them.
  cf.max_successive_merges = 8;
  cf.write_buffer_size = options.memtable_bytes / 2;
  // Our skiplist, not RocksDB's: Debian's RocksDB checks its skiplist's order with assertions
  // on every step of every insert (src/store/skiplist_memtable.h).
  cf.memtable_factory = NewSkipListMemTableFactory();
  // LZ4 at every level, the last too. The bulk tools read whole families (verify, rebuild,
  // export, replay: the events; verify: the rows and the list index) and write them (rebuild,
  // import), and ZSTD's decompression was their largest single cost: at 1M events, LZ4 at the
  // last level made replay 1.7x and export 1.3x faster, rebuild 10-25% and verify ~10%, for
  // 17% more disk (428 -> 500 MB, 500 B/event against an export of ~600).
  cf.compression = rocksdb::kLZ4Compression;
  cf.bottommost_compression = rocksdb::kLZ4Compression;
  // Levels sized from the last one: ~10% space overhead for obsolete versions, not ~2x.
  cf.level_compaction_dynamic_level_bytes = true;
  cf.level0_file_num_compaction_trigger = kLevel0CompactionTrigger;
  return cf;
}

// The whole family as one range for the memtable's insert hints: for a family whose keys are
// only ever appended in key order (the events, by seq).
class WholeFamilyRange : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "TokenledgerWholeFamily"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return {key.data(), 0}; }
  bool InDomain(const rocksdb::Slice& /*key*/) const override { return true; }
};

// `events`: appended in key order, read by range scans and by seq from the stream index
// (always hits), never overwritten. No filter (it would only cost memory); larger blocks
// compress JSON better.
rocksdb::ColumnFamilyOptions MakeEventsCfOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                                 const StoreOptions& options) {
  rocksdb::ColumnFamilyOptions cf = MakeCfOptions(cache, options);
  rocksdb::BlockBasedTableOptions table = TableOptions(cache, false);
  table.block_size = 16 * 1024;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.merge_operator.reset();
  // Every event goes after the last one: the whole family is one range for the memtable's
  // insert hint (see ListRangePrefix below), so an event is linked next to its predecessor.
  cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<WholeFamilyRange>();
  return cf;
}

// The idempotency records' purge order (`t` | created_at | ...) grows at its end, like the
// events: one range for the memtable's insert hint. The records themselves (`k` | account |
// key) land anywhere and take no hint.
class IdempotencyExpiryRange : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "TokenledgerIdempotencyExpiry"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return {key.data(), 1}; }
  bool InDomain(const rocksdb::Slice& key) const override {
    return !key.empty() && key[0] == kIdempotencyExpiryTag;
  }
};

// `idempotency`: read by key like the rows, its purge order appended in time order.
rocksdb::ColumnFamilyOptions MakeIdempotencyCfOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                                      const StoreOptions& options) {
  rocksdb::ColumnFamilyOptions cf = MakeCfOptions(cache, options);
  cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<IdempotencyExpiryRange>();
  return cf;
}

// The list index's ranges (account | partition | field), for the memtable's insert hints:
// RocksDB keeps one slot per range, and our skiplist keeps there the node last inserted in the
// range; an entry that goes right after it (a create's `id`, `inserted_at` and `updated_at`
// entries, a status change's `updated_at` entries: the ends of their ranges) is linked there
// without a search from the top (src/store/skiplist_memtable.cc). Measured with the hints:
// ~11% fewer instructions per create, none more per status change (docs/PERFORMANCE.md).
// The price: RocksDB's map of slots, one entry per range a memtable holds.
class ListRangePrefix : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "TokenledgerListRange"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), projections::ListRangeLength(key.ToStringView())};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return projections::ListRangeLength(key.ToStringView()) != 0;
  }
};

// The list index's level sizes. Every level-0 file of the list index spans all of its ranges,
// so a level-0 compaction rewrites the whole of the level below it. At RocksDB's default base
// level (256 MiB) that is the last level until the family passes 256 MiB: each compaction of
// 8 level-0 files (~48 MiB) rewrote the whole family, and compaction's CPU per write grew with
// the ledger (2.9 us a create at 211 MiB of data, 20.5 at 879 MiB). A base level about one
// level-0 compaction's input bounds that rewrite: the memtable budget (8 flushes of half the
// budget each, ~5x smaller after LZ4; 64 MiB by default). Files a few times smaller than the
// base level let it move down a file at a time, over the few files of the last level it
// overlaps (docs/LEDGER.md).
constexpr std::uint64_t kListFilesInBaseLevel = 8;

// The list index: read by range scans, which a whole-key filter never helps; its ~20 keys per
// token would make the filter the largest thing in the cache. Counters are found through the
// index like any key.
rocksdb::ColumnFamilyOptions MakeListCfOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                               const StoreOptions& options) {
  rocksdb::ColumnFamilyOptions cf = MakeCfOptions(cache, options);
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(TableOptions(cache, false)));
  // Only for the memtable (not a read-side prefix extractor: reads need total order, and our
  // memtable refuses one). RocksDB ignores it for concurrent memtable writes, which the DB
  // options turn off.
  cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<ListRangePrefix>();
  cf.max_bytes_for_level_base = options.memtable_bytes;
  cf.target_file_size_base = options.memtable_bytes / kListFilesInBaseLevel;
  return cf;
}

}  // namespace

LedgerStore::LedgerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LedgerStore::Opened LedgerStore::Open(const StoreOptions& options, OpenMode mode,
                                      StoreHooks hooks) {
  if (options.max_batch_size == 0 || options.max_queue_depth == 0 || options.idempotency_ttl <= 0 ||
      options.block_cache_bytes == 0 || options.memtable_bytes == 0 || options.max_wal_bytes == 0 ||
      options.recovery_interval <= 0 || options.max_recovery_interval < options.recovery_interval ||
      options.idempotency_purge_batch == 0 || options.idempotency_purge_interval <= 0 ||
      options.policy.default_lifetime <= 0 || options.policy.max_lifetime < 0 ||
      (options.policy.max_lifetime > 0 &&
       options.policy.default_lifetime > options.policy.max_lifetime)) {
    return Fail(OpenFailure::kBadOptions,
                "invalid store options: batch size, queue depth, TTLs and lifetimes must be "
                "positive, and the default token lifetime may not exceed the maximum");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->mode = mode;
  // Only a serving store sees every write to its rows; a tool's read-only view may follow
  // another process's writes, so it reads through.
  if (mode == OpenMode::kServe)
    impl->row_cache = std::make_unique<RowCache>(options.row_cache_entries);
  if (!hooks.clock) hooks.clock = NowMicros;
  if (!hooks.new_token_id) {
    auto gen = std::make_shared<IdGenerator>();  // only the committer thread calls it
    hooks.new_token_id = [gen](const Id& account) { return gen->GenerateRelated(account); };
  }
  impl->hooks = std::move(hooks);
  impl->write_options.sync = options.sync;

  std::error_code ec;
  if (mode == OpenMode::kReadOnly) {
    if (!std::filesystem::exists(std::filesystem::path(options.data_dir) / "CURRENT", ec)) {
      return Fail(OpenFailure::kIo, "no ledger in '" + options.data_dir + "'");
    }
  } else {
    std::filesystem::create_directories(options.data_dir, ec);
  }
  if (ec) {
    return Fail(OpenFailure::kIo,
                "cannot create data directory '" + options.data_dir + "': " + ec.message());
  }

  // Exclusive openers take the store's own lock before RocksDB touches anything: RocksDB
  // rotates its info LOG before it takes its LOCK, so a refused second opener used to rename
  // the running server's LOG.
  if (mode != OpenMode::kReadOnly) {
    const std::string lock_path = (std::filesystem::path(options.data_dir) / kLockFile).string();
    impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (impl->lock_fd < 0) {
      return Fail(OpenFailure::kIo,
                  "cannot open lock file '" + lock_path + "': " + std::strerror(errno));
    }
    if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Fail(OpenFailure::kInUse, "data directory '" + options.data_dir +
                                             "' is already in use by another process");
      }
      return Fail(OpenFailure::kIo,
                  "cannot lock '" + lock_path + "': " + std::string(std::strerror(errno)));
    }
  }

  rocksdb::DBOptions& db_options = impl->db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;
  // RocksDB uses the list family's insert hints (MakeListCfOptions) only without concurrent
  // memtable writes. They parallelise only the batches of one write group, and the commits
  // come from one thread (the committer's writer, or the cluster applier); the occasional
  // purge or maintenance write in the same group is inserted after them by the group's
  // leader. Measured: -8-12% server CPU per write, +10-15% writes/s (docs/PERFORMANCE.md).
  db_options.allow_concurrent_memtable_write = false;
  if (impl->hooks.env) db_options.env = impl->hooks.env.get();
  // After a failed write the store recovers by itself (recovery.cc); RocksDB's automatic
  // resume (retryable errors, and ENOSPC via its SstFileManager) stays off.
  db_options.max_bgerror_resume_count = 0;
  db_options.listeners.push_back(std::make_shared<NoAutoRecovery>());
  // The store writes RocksDB's info LOG itself (see info_log.h); a secondary keeps RocksDB's
  // own, in its private directory.
  if (mode != OpenMode::kReadOnly) {
    db_options.info_log = InfoLog::Open(options.data_dir, db_options.keep_log_file_num);
  }
  // Memory and start-up bounds: the memtables of all families share one budget, and the
  // write-ahead log is kept below max_wal_bytes by flushing the families that hold its oldest
  // file, so a start replays at most that much log.
  db_options.db_write_buffer_size = options.memtable_bytes;
  db_options.max_total_wal_size = options.max_wal_bytes;
  // Flushes and compactions start the write-back of their table files every 1 MiB instead of
  // leaving tens of megabytes dirty for one fsync at the end, which the commits' fdatasyncs
  // of the log then queue behind (the request log's write-back does the same, log.cc).
  db_options.bytes_per_sync = std::uint64_t{1} << 20;
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  impl->cf_options = MakeCfOptions(cache, options);
  impl->events_cf_options = MakeEventsCfOptions(cache, options);
  impl->idempotency_cf_options = MakeIdempotencyCfOptions(cache, options);
  impl->list_cf_options = MakeListCfOptions(cache, options);

  ProjectionMeta initial{
      projections::kTokenDetails.version,
      ProjectionCfName(projections::kTokenDetails.name, projections::kTokenDetails.version, 1),
      projections::kTokenListIndex.version,
      ProjectionCfName(projections::kTokenListIndex.name, projections::kTokenListIndex.version, 1),
      1};

  rocksdb::Status s;
  if (mode == OpenMode::kReadOnly) {
    // A secondary instance: its own directory for its info log, the primary's files read-only.
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "tokenledger-secondary-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      return Fail(OpenFailure::kIo, "cannot create a temporary directory");
    impl->secondary_path = tmpl;
  }
  s = impl->OpenDb();
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Fail(OpenFailure::kInUse,
                  "data directory '" + options.data_dir + "' is already in use by another process");
    }
    return Fail(s.IsCorruption() ? OpenFailure::kCorrupt : OpenFailure::kIo,
                "cannot open ledger in '" + options.data_dir + "': " + s.ToString());
  }

  // Meta: format, projections, chain head. A fresh ledger gets them in one synced write.
  std::string value;
  rocksdb::ReadOptions ro;
  s = impl->db->Get(ro, impl->meta, kMetaFormat, &value);
  if (s.IsNotFound() && mode == OpenMode::kReadOnly) {
    return Fail(OpenFailure::kCorrupt,
                "the ledger in '" + options.data_dir + "' is not initialised yet");
  }
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(ro, impl->events));
    it->SeekToFirst();
    if (it->Valid()) return Fail(OpenFailure::kCorrupt, "ledger has events but no meta");
    for (const std::string& name : {initial.details_cf, initial.list_cf}) {
      if (impl->Handle(name)) continue;  // left by an interrupted first open: empty, reuse it
      rocksdb::ColumnFamilyHandle* h = nullptr;
      s = impl->db->CreateColumnFamily(impl->CfOptionsFor(name), name, &h);
      if (!s.ok())
        return Fail(OpenFailure::kIo, StorageError(s, "creating projection families").message);
      impl->handles.push_back(h);
    }
    rocksdb::WriteBatch wb;
    wb.Put(impl->meta, kMetaFormat, kLedgerFormat);
    wb.Put(impl->meta, kMetaProjections, EncodeProjectionMeta(initial));
    wb.Put(impl->meta, kMetaChainHead, EncodeU64(0) + std::string(32, '\0'));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = impl->db->Write(wo, &wb);
    if (!s.ok()) return Fail(OpenFailure::kIo, StorageError(s, "initialising meta").message);
    value = kLedgerFormat;
  } else if (!s.ok()) {
    return Fail(OpenFailure::kIo, StorageError(s, "reading meta").message);
  }
  if (value != kLedgerFormat) {
    return Fail(OpenFailure::kCorrupt,
                "ledger format '" + value + "' is not supported by this release");
  }

  // An import that never finished (killed, crashed) leaves a partial ledger: never serve it.
  if (mode == OpenMode::kServe &&
      (impl->db->Get(ro, impl->meta, kMetaImport, &value).ok() ||
       std::filesystem::exists(std::filesystem::path(options.data_dir) / kImportMarkerFile, ec))) {
    return Fail(OpenFailure::kCorrupt,
                "the ledger in '" + options.data_dir +
                    "' is an unfinished import (meta import_in_progress): it may hold only part "
                    "of the export; delete the directory and run `tokenledger import` again");
  }

  s = impl->db->Get(ro, impl->meta, kMetaProjections, &value);
  std::optional<ProjectionMeta> pm;
  if (s.ok()) pm = DecodeProjectionMeta(value);
  if (!pm) return Fail(OpenFailure::kCorrupt, "ledger meta 'projections' is missing or malformed");
  impl->projection_meta = *pm;
  impl->details = impl->Handle(pm->details_cf);
  impl->list = impl->Handle(pm->list_cf);
  if (!impl->details || !impl->list) {
    return Fail(OpenFailure::kCorrupt, "projection column families named in meta are missing");
  }
  const bool match = pm->details_version == projections::kTokenDetails.version &&
                     pm->list_version == projections::kTokenListIndex.version;
  impl->projections_match = match;
  if (!match && mode == OpenMode::kServe) {
    return Fail(OpenFailure::kProjectionVersionMismatch,
                "stored projections are token_details v" + std::to_string(pm->details_version) +
                    " and token_list_index v" + std::to_string(pm->list_version) +
                    ", this release needs v" + std::to_string(projections::kTokenDetails.version) +
                    " and v" + std::to_string(projections::kTokenListIndex.version) +
                    ": run `tokenledger rebuild --data-dir " + options.data_dir +
                    "` (or start the server with --rebuild-projections)");
  }

  OpenFailure head_failure;
  if (std::string message = impl->LoadHead(&head_failure); !message.empty()) {
    return Fail(head_failure, message);
  }
  impl->next_purge_at = impl->Now() + options.idempotency_purge_interval;

  // A cluster node's store holds the stream's messages applied, nothing of its own: it serves
  // only as a node of that stream (tools may read it, and rebuild its projections).
  const bool is_cluster_store = impl->db->Get(ro, impl->meta, kMetaCluster, &value).ok();
  const std::string cluster_stream = is_cluster_store ? value : std::string();
  const bool cluster_mode = !options.cluster.urls.empty();
  if (cluster_mode && mode != OpenMode::kServe) {
    return Fail(OpenFailure::kBadOptions,
                "cluster mode opens a store to serve only (rebuild it before joining)");
  }
  if (cluster_mode && !is_cluster_store) {
    if (impl->head_seq != 0) {
      return Fail(OpenFailure::kBadOptions,
                  "the ledger in '" + options.data_dir +
                      "' is a single-node ledger; a cluster node starts from an empty data "
                      "directory (move a ledger into a cluster with `tokenledger export` and "
                      "`tokenledger cluster-publish`)");
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = impl->db->Put(wo, impl->meta, kMetaCluster, options.cluster.stream);
    if (!s.ok()) return Fail(OpenFailure::kIo, StorageError(s, "marking a cluster node").message);
  } else if (cluster_mode && cluster_stream != options.cluster.stream) {
    return Fail(OpenFailure::kBadOptions, "the data directory '" + options.data_dir +
                                              "' belongs to the cluster stream '" + cluster_stream +
                                              "', not '" + options.cluster.stream + "'");
  } else if (!cluster_mode && is_cluster_store && mode == OpenMode::kServe) {
    return Fail(OpenFailure::kBadOptions, "the data directory '" + options.data_dir +
                                              "' is a node of the cluster stream '" +
                                              cluster_stream + "': start it with --cluster");
  }
  impl->cluster_stream = cluster_mode ? options.cluster.stream : cluster_stream;

  Impl* p = impl.get();
  if (cluster_mode) {
    auto cluster = ClusterLog::Start(*impl);
    if (!cluster) return Fail(OpenFailure::kIo, cluster.error().message);
    impl->cluster = std::move(*cluster);
    impl->committer = std::thread([p] { p->cluster->ProposerLoop(); });
  } else if (mode != OpenMode::kReadOnly) {
    impl->writer = std::thread([p] { p->WriterLoop(); });
    impl->committer = std::thread([p] { p->CommitterLoop(); });  // joins the writer
  }
  return Opened{
      std::unique_ptr<LedgerStore>(new LedgerStore(std::move(impl))), OpenFailure::kNone, {}};
}

LedgerStore::~LedgerStore() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->committer.joinable()) impl_->committer.join();
  impl_->cluster.reset();  // stops the applier before the DB closes
}

std::uint64_t LedgerStore::LastSeq() const { return impl_->committed_seq.load(); }

std::optional<std::uint64_t> LedgerStore::PendingCompactionBytes() const {
  auto db_lock = impl_->ReadLock();
  if (!impl_->db) return std::nullopt;
  std::uint64_t total = 0;
  for (auto* h : impl_->handles) {
    std::uint64_t v = 0;
    if (impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &v))
      total += v;
  }
  return total;
}

std::size_t LedgerStore::QueueDepth() const {
  std::lock_guard lock(impl_->mu);
  return impl_->queue.size();
}

bool LedgerStore::ProjectionsCurrent() const { return impl_->projections_match.load(); }

const StoreMetrics& LedgerStore::Metrics() const { return impl_->metrics; }

StoreHealth LedgerStore::Health() const {
  if (impl_->cluster) {
    if (StoreHealth h = impl_->cluster->Health(); !h.ok) return h;
  }
  std::lock_guard lock(impl_->health_mu);
  return impl_->health;
}

bool LedgerStore::ClusterMode() const { return impl_->cluster != nullptr; }

std::optional<std::string> LedgerStore::ClusterStream() const {
  if (impl_->cluster_stream.empty()) return std::nullopt;
  return impl_->cluster_stream;
}

events::Hash LedgerStore::ChainHead() const {
  std::lock_guard lock(impl_->pipe_mu);
  return impl_->head_hash;
}

}  // namespace tokenledger::store

// Open, close and the small shared helpers of LedgerStore.
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include <stdlib.h>
#include <boost/json.hpp>
#include <filesystem>

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
                           const std::optional<projections::TokenRow>& after) {
  const bool had = before && before->state.Visible();
  const bool has = after && after->state.Visible();
  if (!had && !has) return;  // e.g. created and deleted within one rebuild chunk
  std::vector<projections::ListIndexEntry> old_entries, new_entries;
  if (had) old_entries = projections::ListIndexEntries(*before);
  if (has) new_entries = projections::ListIndexEntries(*after);
  const Id& id = has ? after->state.id : before->state.id;
  if (has) {
    batch.Put(details, id.Bytes(), projections::EncodeTokenRow(*after));
  } else if (had) {
    batch.Delete(details, id.Bytes());
  }
  // Both lists hold one entry per sort field in the same order, so compare pairwise.
  for (std::size_t i = 0; i < std::max(old_entries.size(), new_entries.size()); ++i) {
    const auto* o = i < old_entries.size() ? &old_entries[i] : nullptr;
    const auto* n = i < new_entries.size() ? &new_entries[i] : nullptr;
    if (o && (!n || o->key != n->key)) batch.Delete(list, o->key);
    if (n && (!o || o->key != n->key || o->value != n->value)) batch.Put(list, n->key, n->value);
  }
}

LedgerStore::Impl::~Impl() {
  if (db) {
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    handles.clear();
    db->Close().PermitUncheckedError();
    db.reset();
  }
  if (!secondary_path.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(secondary_path, ec);
  }
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

rocksdb::ColumnFamilyOptions MakeCfOptions(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Point lookups (rows, stream heads, idempotency records) dominate: a bloom filter saves a
  // disk read for every miss.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kNoCompression;
  return cf;
}

}  // namespace

LedgerStore::LedgerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LedgerStore::Opened LedgerStore::Open(const StoreOptions& options, OpenMode mode,
                                      StoreHooks hooks) {
  if (options.max_batch_size == 0 || options.max_queue_depth == 0 || options.idempotency_ttl <= 0 ||
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

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  impl->cf_options = MakeCfOptions(cache);

  // Open every family that exists. A fresh ledger gets its projection families below, once
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
  ProjectionMeta initial{
      projections::kTokenDetails.version,
      ProjectionCfName(projections::kTokenDetails.name, projections::kTokenDetails.version, 1),
      projections::kTokenListIndex.version,
      ProjectionCfName(projections::kTokenListIndex.name, projections::kTokenListIndex.version, 1),
      1};
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, impl->cf_options);

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (mode == OpenMode::kReadOnly) {
    // A secondary instance: its own directory for its info log, the primary's files read-only.
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "tokenledger-secondary-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      return Fail(OpenFailure::kIo, "cannot create a temporary directory");
    impl->secondary_path = tmpl;
    rocksdb::Options secondary(db_options, impl->cf_options);
    secondary.max_open_files = -1;  // required for secondaries
    secondary.create_if_missing = false;
    s = rocksdb::DB::OpenAsSecondary(secondary, options.data_dir, impl->secondary_path, descriptors,
                                     &impl->handles, &raw);
  } else {
    s = rocksdb::DB::Open(rocksdb::Options(db_options, impl->cf_options), options.data_dir,
                          descriptors, &impl->handles, &raw);
  }
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Fail(OpenFailure::kInUse,
                  "data directory '" + options.data_dir + "' is already in use by another process");
    }
    return Fail(s.IsCorruption() ? OpenFailure::kCorrupt : OpenFailure::kIo,
                "cannot open ledger in '" + options.data_dir + "': " + s.ToString());
  }
  impl->db.reset(raw);
  impl->events = impl->Handle(kEventsCf);
  impl->streams = impl->Handle(kStreamsCf);
  impl->idempotency = impl->Handle(kIdempotencyCf);
  impl->meta = impl->Handle(kMetaCf);
  impl->usage = impl->Handle(kUsageCf);

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
      s = impl->db->CreateColumnFamily(impl->cf_options, name, &h);
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

  s = impl->db->Get(ro, impl->meta, kMetaChainHead, &value);
  if (!s.ok() || value.size() != 40) {
    return Fail(OpenFailure::kCorrupt, "ledger meta 'chain_head' is missing or malformed");
  }
  impl->head_seq = DecodeU64(value);
  std::copy_n(reinterpret_cast<const std::uint8_t*>(value.data()) + 8, 32, impl->head_hash.begin());
  // The head and the last event are written in one batch; anything else is damage.
  {
    std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(ro, impl->events));
    it->SeekToLast();
    const std::uint64_t last = it->Valid() ? DecodeU64(it->key().ToStringView()) : 0;
    if (!it->status().ok()) return Fail(OpenFailure::kIo, it->status().ToString());
    if (last != impl->head_seq) {
      return Fail(OpenFailure::kCorrupt, "chain head says seq " + std::to_string(impl->head_seq) +
                                             " but the last stored event is seq " +
                                             std::to_string(last));
    }
    if (it->Valid()) {
      auto last_event = events::DecodeStoredEvent(it->value().ToStringView());
      if (!last_event) {
        return Fail(OpenFailure::kCorrupt, "last event: " + last_event.error().message);
      }
      impl->last_at = last_event->at;
    }
  }
  impl->committed_seq = impl->head_seq;
  impl->next_purge_at = impl->Now() + options.idempotency_purge_interval;

  Impl* p = impl.get();
  if (mode != OpenMode::kReadOnly) impl->committer = std::thread([p] { p->CommitterLoop(); });
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
}

std::uint64_t LedgerStore::LastSeq() const { return impl_->committed_seq.load(); }

std::size_t LedgerStore::QueueDepth() const {
  std::lock_guard lock(impl_->mu);
  return impl_->queue.size();
}

bool LedgerStore::ProjectionsCurrent() const { return impl_->projections_match.load(); }

const StoreMetrics& LedgerStore::Metrics() const { return impl_->metrics; }

}  // namespace tokenledger::store

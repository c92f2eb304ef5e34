// Operator-side store operations: catching up a read-only instance, appending exported
// records verbatim (import), and raw scans for export and stats.
#include <unordered_map>

#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

Error ImportError(std::uint64_t seq, const std::string& what) {
  return Error{ErrorCode::kInvalidValue, "event " + std::to_string(seq) + ": " + what, {}};
}

}  // namespace

Status LedgerStore::CatchUp() {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  Impl& m = *impl_;
  if (m.mode != OpenMode::kReadOnly) return Status::Ok();  // a primary is always current
  rocksdb::Status s = m.db->TryCatchUpWithPrimary();
  if (!s.ok()) return StorageError(s, "catching up with the server");
  std::string head;
  s = m.db->Get(rocksdb::ReadOptions(), m.meta, kMetaChainHead, &head);
  if (s.ok() && head.size() == 40) m.committed_seq = DecodeU64(head);
  return Status::Ok();
}

Status LedgerStore::AppendVerbatim(std::span<const std::string_view> records) {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  Impl& m = *impl_;
  if (m.mode == OpenMode::kReadOnly) {
    return Error{ErrorCode::kUnavailable, "the ledger is open read-only", {}};
  }
  // Outside the pipeline: nothing of the committer may be in flight (a Submit's callback
  // runs before its batch has left the writer), and the head changes under pipe_mu.
  m.WaitPipelineIdle();
  rocksdb::WriteBatch wb;
  std::uint64_t seq = m.head_seq;
  events::Hash hash = m.head_hash;
  Micros last_at = m.last_at;
  std::unordered_map<Id, std::uint64_t, IdHash> versions;
  events::EventEnvelope event;  // reused: its strings keep their capacity
  events::EventEnvelope* const e = &event;
  // A bulk import writes the events as SST files (store_impl.h), as long as its sort is there
  // to hold them (it is consumed by the rebuild: appends after that take the memtable path).
  if (m.bulk_import && m.import_sort && !m.import_events) {
    m.import_events = std::make_unique<ParallelSstWriter>(
        rocksdb::Options(m.db_options, m.events_cf_options), m.events,
        m.import_sort->Dir() + "/events", kRebuildSstFileBytes);
    m.import_streams_pending = true;
  }
  ParallelSstWriter* const sst = m.bulk_import ? m.import_events.get() : nullptr;
  for (const std::string_view record : records) {
    const std::uint64_t expected = seq + 1;
    if (!events::StoredHashMatches(record))
      return ImportError(expected, "its hash does not match its body");
    if (Status ds = events::DecodeStoredEventInto(record, e); !ds)
      return ImportError(expected, ds.error().message);
    if (e->seq != expected) {
      return ImportError(expected,
                         "has sequence number " + std::to_string(e->seq) + " (gap or reordering)");
    }
    if (e->prev_hash != hash)
      return ImportError(expected, "does not link to the previous event's hash");
    if (!events::InItsStream(e->stream, e->data)) {
      return ImportError(expected, "is a " + std::string(events::TypeName(e->data)) +
                                       " in the stream of " + e->stream.ToString() +
                                       " (key ring events and token events never share one)");
    }
    // Bulk import: no look-up per stream (it would be one per token); the Verify that import
    // runs before FinishImport checks every stream's versions in token order.
    if (!m.bulk_import) {
      auto v = versions.find(e->stream);
      if (v == versions.end()) {
        // The stream's last version on disk: the last key under its prefix.
        std::uint64_t last = 0;
        const std::string lower = StreamPrefix(e->stream);
        const std::string upper = StreamKey(e->stream, ~std::uint64_t{0});
        rocksdb::ReadOptions ro;
        std::unique_ptr<rocksdb::Iterator> it(m.db->NewIterator(ro, m.streams));
        it->SeekForPrev(upper);
        if (it->Valid() && it->key().starts_with(lower))
          last = DecodeU64(it->key().ToStringView().substr(Id::kBytes));
        if (!it->status().ok()) return StorageError(it->status(), "reading a stream");
        v = versions.emplace(e->stream, last).first;
      }
      if (e->stream_version != v->second + 1) {
        return ImportError(expected, "stream version " + std::to_string(e->stream_version) +
                                         " does not follow " + std::to_string(v->second));
      }
      v->second = e->stream_version;
    } else if (e->stream_version == 0) {
      return ImportError(expected, "stream version 0 (versions start at 1)");
    } else if (m.import_sort) {
      if (Status as = m.import_sort->Add(*e); !as) return as;
    }
    if (!sst) {
      wb.Put(m.events, EventKey(e->seq), record);
      wb.Put(m.streams, StreamKey(e->stream, e->stream_version), EncodeU64(e->seq));
    }
    seq = e->seq;
    hash = e->hash;
    last_at = std::max(last_at, e->at);
  }
  if (records.empty()) return Status::Ok();
  if (sst) {
    // Only once the whole batch passed (all or nothing). Seq order is the family's key order.
    std::uint64_t next = m.head_seq;
    for (const std::string_view record : records) {
      if (rocksdb::Status ws = sst->Put(EventKey(++next), record); !ws.ok())
        return StorageError(ws, "writing imported events");
    }
  }
  std::string head = EncodeU64(seq);
  head.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  wb.Put(m.meta, kMetaChainHead, head);
  rocksdb::WriteOptions wo;
  if (m.bulk_import) {
    wo.disableWAL = true;  // a crash before FinishImport leaves a marked, refused directory
  } else {
    wo.sync = m.options.sync;
  }
  rocksdb::Status s = m.db->Write(wo, &wb);
  if (!s.ok()) return StorageError(s, "appending events");
  std::lock_guard lock(m.pipe_mu);
  m.head_seq = seq;
  m.head_hash = hash;
  m.last_at = last_at;
  m.committed_seq = seq;
  return Status::Ok();
}

Status LedgerStore::BeginImport(const std::string& temp_dir) {
  Impl& m = *impl_;
  if (m.mode != OpenMode::kMaintenance) {
    return Error{ErrorCode::kUnavailable, "import needs the ledger open exclusively", {}};
  }
  if (m.head_seq != 0) {
    return Error{ErrorCode::kInvalidValue, "import needs an empty ledger", {}};
  }
  auto sort = TokenSort::Create(temp_dir);
  if (!sort) return sort.error();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = m.db->Put(wo, m.meta, kMetaImport, "1");
  if (!s.ok()) return StorageError(s, "marking the import");
  m.bulk_import = true;
  m.import_sort = std::move(*sort);
  return Status::Ok();
}

Status LedgerStore::Impl::IngestImportedEvents() {
  if (!import_events) return Status::Ok();
  rocksdb::Status s = import_events->Finish();
  if (!s.ok()) {
    import_events.reset();
    return StorageError(s, "writing imported events");
  }
  s = import_events->IngestInto(db.get());
  import_events.reset();
  if (!s.ok()) return StorageError(s, "ingesting imported events");
  return Status::Ok();
}

Status LedgerStore::FinishImport() {
  Impl& m = *impl_;
  if (!m.bulk_import) return Error{ErrorCode::kUnexpected, "no import in progress", {}};
  if (m.import_streams_pending) {
    return Error{ErrorCode::kUnexpected,
                 "the imported events' stream index is written by RebuildProjections: run it "
                 "before FinishImport",
                 {}};
  }
  if (Status is = m.IngestImportedEvents(); !is) return is;
  // Everything written with the WAL off reaches SST files before the marker goes.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  rocksdb::Status s = m.db->Flush(fo, m.handles);
  if (!s.ok()) return StorageError(s, "flushing the imported ledger");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = m.db->Delete(wo, m.meta, kMetaImport);
  if (!s.ok()) return StorageError(s, "finishing the import");
  m.bulk_import = false;
  m.import_sort.reset();
  return Status::Ok();
}

Status LedgerStore::ScanStoredEvents(
    std::uint64_t from_seq,
    const std::function<bool(std::uint64_t, std::string_view)>& visit) const {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(FullScanReadOptions(), impl_->events));
  for (it->Seek(EventKey(from_seq)); it->Valid(); it->Next()) {
    if (!visit(DecodeU64(it->key().ToStringView()), it->value().ToStringView())) break;
  }
  if (!it->status().ok()) return StorageError(it->status(), "scanning events");
  return Status::Ok();
}

Status LedgerStore::ScanTokens(
    const std::function<bool(const projections::TokenRow&)>& visit) const {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->details));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto row = projections::DecodeTokenRow(it->value().ToStringView());
    if (!row) return row.error();
    if (!visit(*row)) break;
  }
  if (!it->status().ok()) return StorageError(it->status(), "scanning tokens");
  return Status::Ok();
}

}  // namespace tokenledger::store

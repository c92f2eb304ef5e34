// Rebuild: fold the whole ledger into new projection column families beside the current
// ones, then switch meta to them in one atomic write. Progress is checkpointed in meta with
// each chunk, so a killed rebuild resumes where it stopped; the old projections stay intact
// and in use until the switch.
#include <boost/json.hpp>
#include <unordered_map>

#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace json = boost::json;
namespace {

struct RebuildState {
  std::uint64_t generation = 0;
  std::string details_cf;
  std::string list_cf;
  std::uint64_t seq = 0;  // last event folded into the new families
};

std::string EncodeRebuildState(const RebuildState& r) {
  return json::serialize(json::object{{"generation", r.generation},
                                      {"details_cf", r.details_cf},
                                      {"list_cf", r.list_cf},
                                      {"seq", r.seq}});
}

std::optional<RebuildState> DecodeRebuildState(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return std::nullopt;
  try {
    return RebuildState{
        v.at("generation").to_number<std::uint64_t>(), std::string(v.at("details_cf").as_string()),
        std::string(v.at("list_cf").as_string()), v.at("seq").to_number<std::uint64_t>()};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool IsBaseCf(std::string_view name) {
  return name == rocksdb::kDefaultColumnFamilyName || name == kEventsCf || name == kStreamsCf ||
         name == kIdempotencyCf || name == kMetaCf || name == kUsageCf;
}

}  // namespace

Status LedgerStore::RebuildProjections(const std::function<void(const RebuildProgress&)>& progress,
                                       std::uint64_t chunk_events) {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  if (chunk_events == 0) chunk_events = 1;
  Impl& m = *impl_;
  rocksdb::DB* db = m.db.get();
  rocksdb::Status s;

  // Resume a rebuild whose families still exist, else start over with fresh ones.
  std::optional<RebuildState> state;
  std::string value;
  if (db->Get(rocksdb::ReadOptions(), m.meta, kMetaRebuild, &value).ok()) {
    state = DecodeRebuildState(value);
    if (state && (!m.Handle(state->details_cf) || !m.Handle(state->list_cf))) state.reset();
  }
  // Drop leftovers that are neither in use nor being resumed (an abandoned rebuild).
  for (std::size_t i = 0; i < m.handles.size();) {
    auto* h = m.handles[i];
    const std::string name = h->GetName();
    const bool keep = IsBaseCf(name) || h == m.details || h == m.list ||
                      (state && (name == state->details_cf || name == state->list_cf));
    if (keep) {
      ++i;
      continue;
    }
    s = db->DropColumnFamily(h);
    if (!s.ok()) return StorageError(s, "dropping an abandoned projection family");
    db->DestroyColumnFamilyHandle(h);
    m.handles.erase(m.handles.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (!state) {
    state.emplace();
    state->generation = m.projection_meta.generation + 1;
    state->details_cf = ProjectionCfName(projections::kTokenDetails.name,
                                         projections::kTokenDetails.version, state->generation);
    state->list_cf = ProjectionCfName(projections::kTokenListIndex.name,
                                      projections::kTokenListIndex.version, state->generation);
    for (const std::string& name : {state->details_cf, state->list_cf}) {
      rocksdb::ColumnFamilyHandle* h = nullptr;
      s = db->CreateColumnFamily(m.cf_options, name, &h);
      if (!s.ok()) return StorageError(s, "creating a projection family");
      m.handles.push_back(h);
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, m.meta, kMetaRebuild, EncodeRebuildState(*state));
    if (!s.ok()) return StorageError(s, "recording the rebuild");
  }
  rocksdb::ColumnFamilyHandle* new_details = m.Handle(state->details_cf);
  rocksdb::ColumnFamilyHandle* new_list = m.Handle(state->list_cf);

  // Fold in chunks: each chunk's rows, index entries and checkpoint are one atomic batch.
  RebuildProgress p{state->seq, m.committed_seq.load()};
  struct Touched {
    std::optional<projections::TokenRow> original;  // as stored in the new families
    std::optional<projections::TokenRow> current;
  };
  std::unordered_map<Id, Touched, IdHash> touched;
  auto flush = [&]() -> Status {
    rocksdb::WriteBatch wb;
    for (auto& [id, t] : touched)
      WriteProjectionChange(wb, new_details, new_list, t.original, t.current);
    wb.Put(m.meta, kMetaRebuild, EncodeRebuildState(*state));
    rocksdb::Status ws = db->Write(rocksdb::WriteOptions(), &wb);
    if (!ws.ok()) return StorageError(ws, "writing rebuilt projections");
    touched.clear();
    if (progress) progress(p);
    return Status::Ok();
  };
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), m.events));
  rocksdb::ReadOptions ro;
  for (it->Seek(EventKey(state->seq + 1)); it->Valid(); it->Next()) {
    auto e = events::DecodeStoredEvent(it->value().ToStringView());
    if (!e)
      return Error{
          ErrorCode::kUnexpected,
          "event " + std::to_string(DecodeU64(it->key().ToStringView())) + ": " + e.error().message,
          {}};
    auto t = touched.find(e->stream);
    if (t == touched.end()) {
      std::string row_bytes;
      Touched fresh;
      s = db->Get(ro, new_details, e->stream.Bytes(), &row_bytes);
      if (s.ok()) {
        auto row = projections::DecodeTokenRow(row_bytes);
        if (!row) return row.error();
        fresh.original = fresh.current = std::move(*row);
      } else if (!s.IsNotFound()) {
        return StorageError(s, "reading a rebuilt row");
      }
      t = touched.emplace(e->stream, std::move(fresh)).first;
    }
    projections::ApplyEvent(t->second.current, *e);
    state->seq = e->seq;
    p.events_done = e->seq;
    if (p.events_done > p.events_total) p.events_total = p.events_done;
    if (state->seq % chunk_events == 0) {
      if (Status fs = flush(); !fs) return fs;
    }
  }
  if (!it->status().ok()) return StorageError(it->status(), "reading events");
  it.reset();
  if (Status fs = flush(); !fs) return fs;

  // Usage records live beside the ledger: fold them into the rebuilt rows. Taking the later
  // time makes this pass idempotent, so a rebuild killed here simply runs it again.
  std::unique_ptr<rocksdb::Iterator> uses(db->NewIterator(ro, m.usage));
  std::size_t pending = 0;
  for (uses->SeekToFirst(); uses->Valid(); uses->Next()) {
    auto id = Id::FromBytes(uses->key().ToStringView());
    if (!id || uses->value().size() != 8) continue;  // Verify reports malformed records
    std::string row_bytes;
    s = db->Get(ro, new_details, id->Bytes(), &row_bytes);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return StorageError(s, "reading a rebuilt row");
    auto row = projections::DecodeTokenRow(row_bytes);
    if (!row) return row.error();
    Touched t{*row, *row};
    projections::ApplyUse(t.current, static_cast<Micros>(DecodeU64(uses->value().ToStringView())));
    if (t.current == t.original) continue;
    touched.emplace(*id, std::move(t));
    if (++pending % chunk_events == 0) {
      if (Status fs = flush(); !fs) return fs;
    }
  }
  if (!uses->status().ok()) return StorageError(uses->status(), "reading usage records");
  uses.reset();
  if (Status fs = flush(); !fs) return fs;

  // The switch: one synced write makes the new families the projections.
  ProjectionMeta next{projections::kTokenDetails.version, state->details_cf,
                      projections::kTokenListIndex.version, state->list_cf, state->generation};
  rocksdb::WriteBatch wb;
  wb.Put(m.meta, kMetaProjections, EncodeProjectionMeta(next));
  wb.Delete(m.meta, kMetaRebuild);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &wb);
  if (!s.ok()) return StorageError(s, "switching to the rebuilt projections");
  rocksdb::ColumnFamilyHandle* old_details = m.details;
  rocksdb::ColumnFamilyHandle* old_list = m.list;
  m.details = new_details;
  m.list = new_list;
  m.projection_meta = next;
  m.projections_match = true;
  for (auto* old : {old_details, old_list}) {
    s = db->DropColumnFamily(old);
    if (!s.ok()) return StorageError(s, "dropping the old projection family");
    db->DestroyColumnFamilyHandle(old);
    m.handles.erase(std::find(m.handles.begin(), m.handles.end(), old));
  }
  return Status::Ok();
}

}  // namespace tokenledger::store

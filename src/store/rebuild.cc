// Rebuild: fold the whole ledger into new projection column families beside the current
// ones, then switch meta to them in one atomic synced write. Two streaming passes: the events
// in seq order into an external sort by token (TokenSort; an import sorts them while loading
// instead), then the sorted events token by token, each token folded on its own with its usage
// record (both in token order); rows and list index entries (sorted again) go into SST files,
// built and compressed on threads of their own (ParallelSstWriter), which are ingested into the
// new, empty families. Memory is bounded by the sort's buffers (kTokenSortMemoryBytes) and,
// per family being written, kSstFilesInFlight + 1 buffers of kRebuildSstFileBytes, not by the
// ledger. Within an import (between BeginImport and
// FinishImport) the fold also checks every stream's versions, which the bulk append skips. A
// killed rebuild starts over (meta "rebuild" names its families, which the next run drops); the
// old projections stay intact and in use until the switch.
#include <boost/json.hpp>
#include <cassert>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>

#include "src/store/sst_writer.h"
#include "src/store/store_impl.h"
#include "src/store/token_sort.h"

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

// Pass 1's batches: decoding the stored events (their JSON) is most of reading the ledger
// into the sort, so it runs on a second thread a batch at a time, while this one reads the
// next batch from RocksDB and adds the one decoded before to the sort. A batch ends at
// kDecodeBatchEvents events or once it holds kDecodeBatchBytes (whichever comes first). Memory:
// two batches of stored events (at most kDecodeBatchBytes + one event each) and two of their
// sort records (smaller: the folded fields only).
constexpr std::size_t kDecodeBatchEvents = 8192;
constexpr std::size_t kDecodeBatchBytes = 4u << 20;

struct StoredBatch {
  std::string bytes;                // the stored events, one after the other
  std::vector<std::size_t> ends;    // where each ends in `bytes`
  std::vector<std::uint64_t> seqs;  // each one's seq (its key)
};

struct EncodedBatch {
  std::string records;          // TokenSort::EncodeEvent's
  events::EventEnvelope event;  // reused: its strings keep their capacity
};

Status DecodeBatch(const StoredBatch& in, EncodedBatch& out) {
  out.records.clear();
  std::size_t begin = 0;
  for (std::size_t i = 0; i < in.ends.size(); ++i) {
    const std::string_view stored(in.bytes.data() + begin, in.ends[i] - begin);
    begin = in.ends[i];
    if (Status ds = events::DecodeStoredEventInto(stored, &out.event); !ds) {
      return Error{ErrorCode::kUnexpected,
                   "event " + std::to_string(in.seqs[i]) + ": " + ds.error().message,
                   {}};
    }
    TokenSort::EncodeEvent(out.event, out.records);
  }
  return Status::Ok();
}

// Every event of the ledger into `sort`, in seq order; `p` counts those decoded (a batch is
// added to the sort while the next one is decoded).
Status SortEventsByToken(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events_cf, TokenSort& sort,
                         const std::function<void(const RebuildProgress&)>& progress,
                         RebuildProgress& p) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(FullScanReadOptions(), events_cf));
  auto read = [&](StoredBatch& b) {
    b.bytes.clear();
    b.ends.clear();
    b.seqs.clear();
    for (; it->Valid() && b.ends.size() < kDecodeBatchEvents && b.bytes.size() < kDecodeBatchBytes;
         it->Next()) {
      b.bytes.append(it->value().data(), it->value().size());
      b.ends.push_back(b.bytes.size());
      b.seqs.push_back(DecodeU64(it->key().ToStringView()));
    }
  };
  StoredBatch stored[2];
  EncodedBatch encoded[2];
  it->SeekToFirst();
  read(stored[0]);
  std::size_t cur = 0;
  bool added_all = true;  // encoded[cur ^ 1] holds nothing not yet added
  while (!stored[cur].ends.empty()) {
    // Declared after the batches, so that any return waits for it before they go.
    std::future<Status> decoding =
        std::async(std::launch::async, DecodeBatch, std::cref(stored[cur]), std::ref(encoded[cur]));
    Status added = added_all ? Status::Ok() : sort.AddEncoded(encoded[cur ^ 1].records);
    if (added) read(stored[cur ^ 1]);
    Status decoded = decoding.get();
    if (!added) return added;
    if (!decoded) return decoded;
    if (!it->status().ok()) return StorageError(it->status(), "reading events");
    p.events_done += stored[cur].ends.size();
    if (progress) progress(p);
    added_all = false;
    cur ^= 1;
  }
  if (!it->status().ok()) return StorageError(it->status(), "reading events");
  if (!added_all) return sort.AddEncoded(encoded[cur ^ 1].records);
  return Status::Ok();
}

bool IsBaseCf(std::string_view name) {
  return name == rocksdb::kDefaultColumnFamilyName || name == kEventsCf || name == kStreamsCf ||
         name == kIdempotencyCf || name == kMetaCf || name == kUsageCf;
}

}  // namespace

Status LedgerStore::RebuildProjections(const std::function<void(const RebuildProgress&)>& progress,
                                       std::uint64_t chunk_events, const std::string& temp_dir,
                                       std::uint64_t sst_file_bytes) {
  assert(sst_file_bytes > 0);
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  if (chunk_events == 0) chunk_events = 1;
  Impl& m = *impl_;
  rocksdb::DB* db = m.db.get();
  if (Status is = m.IngestImportedEvents(); !is) return is;
  rocksdb::Status s;

  // An earlier rebuild that did not switch is abandoned: its families were written with the
  // WAL off, so whatever they hold is not trusted. Its generation is not reused.
  std::uint64_t generation = m.projection_meta.generation + 1;
  std::string value;
  if (db->Get(rocksdb::ReadOptions(), m.meta, kMetaRebuild, &value).ok()) {
    if (auto old = DecodeRebuildState(value))
      generation = std::max(generation, old->generation + 1);
  }
  for (std::size_t i = 0; i < m.handles.size();) {
    auto* h = m.handles[i];
    if (IsBaseCf(h->GetName()) || h == m.details || h == m.list) {
      ++i;
      continue;
    }
    s = db->DropColumnFamily(h);
    if (!s.ok()) return StorageError(s, "dropping an abandoned projection family");
    db->DestroyColumnFamilyHandle(h);
    m.handles.erase(m.handles.begin() + static_cast<std::ptrdiff_t>(i));
  }
  RebuildState state;
  state.generation = generation;
  state.details_cf = ProjectionCfName(projections::kTokenDetails.name,
                                      projections::kTokenDetails.version, generation);
  state.list_cf = ProjectionCfName(projections::kTokenListIndex.name,
                                   projections::kTokenListIndex.version, generation);
  {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, m.meta, kMetaRebuild, EncodeRebuildState(state));
    if (!s.ok()) return StorageError(s, "recording the rebuild");
  }
  for (const std::string& name : {state.details_cf, state.list_cf}) {
    rocksdb::ColumnFamilyHandle* h = nullptr;
    s = db->CreateColumnFamily(m.CfOptionsFor(name), name, &h);
    if (!s.ok()) return StorageError(s, "creating a projection family");
    m.handles.push_back(h);
  }
  rocksdb::ColumnFamilyHandle* new_details = m.Handle(state.details_cf);
  rocksdb::ColumnFamilyHandle* new_list = m.Handle(state.list_cf);

  // Pass 1: the ledger in seq order into the sort, unless an import sorted it while loading
  // (every event appended since BeginImport, hence the whole ledger).
  const std::uint64_t total = m.committed_seq.load();
  RebuildProgress p{0, total, "sort"};
  std::unique_ptr<TokenSort> sort_owner;
  if (m.import_sort && m.import_sort->Count() == total) {
    sort_owner = std::move(m.import_sort);
    p.events_done = total;
  } else {
    auto sorted = TokenSort::Create(temp_dir);
    if (!sorted) return sorted.error();
    sort_owner = std::move(*sorted);
  }
  m.import_sort.reset();  // read once: a second rebuild reads the ledger
  TokenSort& sort = *sort_owner;
  if (p.events_done == 0) {
    if (Status ss = SortEventsByToken(db, m.events, sort, progress, p); !ss) return ss;
  }
  if (Status fs = sort.Finish(); !fs) return fs;
  if (progress) progress(p);

  // Pass 2: token by token, with the usage records (beside the ledger, also in token order).
  // Rows come out in token order and go straight into an SST file; list index entries go
  // back into the sort and come out in key order into a second one. Both files are then
  // ingested into the new (empty) families: no memtable, no WAL, no compaction.
  p = RebuildProgress{0, sort.Count(), "fold"};
  const rocksdb::Options sst_options(rocksdb::DBOptions(), m.cf_options);
  ParallelSstWriter details_out(sst_options, new_details, sort.Dir() + "/details", sst_file_bytes);
  // An import's stream index (AppendVerbatim left it to this fold, which meets its entries in
  // key order: token, then stream version).
  const bool write_streams = m.import_streams_pending;
  ParallelSstWriter streams_out(sst_options, m.streams, sort.Dir() + "/streams", sst_file_bytes);
  std::uint64_t list_written = 0;
  std::unique_ptr<rocksdb::Iterator> uses(db->NewIterator(FullScanReadOptions(), m.usage));
  uses->SeekToFirst();
  std::optional<projections::TokenRow> row;
  auto finish_token = [&](const Id& token) -> Status {
    const rocksdb::Slice id(token.Bytes().data(), token.Bytes().size());
    while (uses->Valid() && uses->key().compare(id) < 0) uses->Next();
    if (uses->Valid() && uses->key() == id && uses->value().size() == 8)
      projections::ApplyUse(row, static_cast<Micros>(DecodeU64(uses->value().ToStringView())));
    if (row && row->state.Visible()) {
      rocksdb::Status ws = details_out.Put(id.ToStringView(), projections::EncodeTokenRow(*row));
      if (!ws.ok()) return StorageError(ws, "writing rebuilt rows");
      for (const auto& entry : projections::ListIndexEntrySet(*row)) {
        if (Status as = sort.AddRaw('l', entry.Key(), entry.Value()); !as) return as;
        ++list_written;
      }
    }
    row.reset();
    return Status::Ok();
  };
  {
    std::unique_ptr<rocksdb::Iterator> it = sort.NewIterator();
    events::EventEnvelope e;
    std::optional<Id> current;
    std::uint64_t last_version = 0, last_seq = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!TokenSort::Decode(it->key(), it->value(), &e))
        return Error{ErrorCode::kUnexpected, "malformed entry in the temporary sort", {}};
      if (current && *current != e.stream) {
        if (Status fs = finish_token(*current); !fs) return fs;
      }
      if (current != e.stream) last_version = last_seq = 0;
      // A bulk import appended without a look-up per stream: its streams are checked here, in
      // token order, as verify would (versions from 1 without gaps, in sequence order).
      if (m.bulk_import && (e.stream_version != last_version + 1 || e.seq < last_seq)) {
        return Error{ErrorCode::kInvalidValue,
                     "event " + std::to_string(e.seq) + ": stream version " +
                         std::to_string(e.stream_version) + " of token " + e.stream.ToString() +
                         " does not follow " + std::to_string(last_version),
                     {}};
      }
      last_version = e.stream_version;
      last_seq = e.seq;
      current = e.stream;
      if (write_streams) {
        // Strictly increasing keys: versions were just checked to follow one another.
        s = streams_out.Put(StreamKey(e.stream, e.stream_version), EncodeU64(e.seq));
        if (!s.ok()) return StorageError(s, "writing the imported stream index");
      }
      projections::ApplyEvent(row, e);
      if (++p.events_done % chunk_events == 0 && progress) progress(p);
    }
    if (!it->status().ok()) return StorageError(it->status(), "reading the temporary sort");
    if (current) {
      if (Status fs = finish_token(*current); !fs) return fs;
    }
  }
  if (!uses->status().ok()) return StorageError(uses->status(), "reading usage records");
  uses.reset();
  s = details_out.Finish();
  if (!s.ok()) return StorageError(s, "writing rebuilt rows");
  if (write_streams) {
    s = streams_out.Finish();
    if (s.ok()) s = streams_out.IngestInto(db);
    if (!s.ok()) return StorageError(s, "writing the imported stream index");
    m.import_streams_pending = false;
  }
  if (Status fs = sort.Finish(); !fs) return fs;
  sort.ReleaseBuffers();  // everything is added: the list index's SST buffers come next
  if (progress) progress(p);
  const rocksdb::Options list_sst_options(rocksdb::DBOptions(), m.list_cf_options);
  ParallelSstWriter list_out(list_sst_options, new_list, sort.Dir() + "/list", sst_file_bytes);
  {
    p = RebuildProgress{0, list_written, "index"};
    // The counters: an account's entries that give its counts (ListCountRowOfEntry) sort
    // before its counters, so they are counted on the way and written at their place in key
    // order (each entry counted before the keys below it are written: a run that a key does
    // not extend is added to the counts first). Memory: one account's filter combinations.
    projections::ListRecount::Counts counts;
    projections::ListRecount recount;
    auto write_counts = [&](std::string_view before) -> rocksdb::Status {
      while (!counts.empty() && (before.empty() || counts.begin()->first < before)) {
        rocksdb::Status ws = list_out.Put(counts.begin()->first,
                                          projections::EncodeListCount(counts.begin()->second));
        if (!ws.ok()) return ws;
        counts.erase(counts.begin());
      }
      return rocksdb::Status::OK();
    };
    std::unique_ptr<rocksdb::Iterator> it = sort.NewIterator('l');
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const rocksdb::Slice key = TokenSort::RawKey(it->key());
      recount.Add(key.ToStringView(), it->value().ToStringView(), counts);
      s = write_counts(key.ToStringView());
      if (s.ok()) s = list_out.Put(key.ToStringView(), it->value().ToStringView());
      if (!s.ok()) return StorageError(s, "writing the rebuilt list index");
      if (++p.events_done % chunk_events == 0 && progress) progress(p);
    }
    if (!it->status().ok()) return StorageError(it->status(), "reading the temporary sort");
    recount.Flush(counts);
    s = write_counts({});
    if (s.ok()) s = list_out.Finish();
    if (!s.ok()) return StorageError(s, "writing the rebuilt list index");
  }
  for (const ParallelSstWriter* writer : {&details_out, &list_out}) {
    s = writer->IngestInto(db);  // none if no token is visible
    if (!s.ok()) return StorageError(s, "ingesting a rebuilt projection file");
  }
  if (progress) progress(p);

  // The switch: one synced write makes the new families the projections.
  ProjectionMeta next{projections::kTokenDetails.version, state.details_cf,
                      projections::kTokenListIndex.version, state.list_cf, state.generation};
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
  m.row_cache->Clear();
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

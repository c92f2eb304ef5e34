// The read side: point reads, list pages, event histories, as-of folds. Every multi-key read
// uses one snapshot, so it sees one committed state.
#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

// Upper bound for keys starting with `prefix`: the prefix with its last byte incremented.
// REQUIRES: the last byte of prefix is not 0xff (true for every prefix used here, which end
// in a field tag or an id byte we bound another way).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty())
    prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

}  // namespace

Result<std::optional<projections::TokenRow>> LedgerStore::Impl::ReadRow(
    const rocksdb::ReadOptions& ro, const Id& token) const {
  std::string value;
  rocksdb::Status s = db->Get(ro, details, token.Bytes(), &value);
  if (s.IsNotFound()) return std::optional<projections::TokenRow>();
  if (!s.ok()) return StorageError(s, "reading a token");
  auto row = projections::DecodeTokenRow(value);
  if (!row) return row.error();
  return std::optional<projections::TokenRow>(std::move(*row));
}

Result<std::optional<events::EventEnvelope>> LedgerStore::Impl::ReadEvent(
    const rocksdb::ReadOptions& ro, std::uint64_t seq) const {
  std::string value;
  rocksdb::Status s = db->Get(ro, events, EventKey(seq), &value);
  if (s.IsNotFound()) return std::optional<events::EventEnvelope>();
  if (!s.ok()) return StorageError(s, "reading an event");
  auto e = events::DecodeStoredEvent(value);
  if (!e) return e.error();
  return std::optional<events::EventEnvelope>(std::move(*e));
}

Result<std::optional<projections::TokenRow>> LedgerStore::GetToken(const Id& token_id) const {
  return impl_->ReadRow(rocksdb::ReadOptions(), token_id);
}

Result<ListPage> LedgerStore::ListTokens(const ListQuery& q) const {
  rocksdb::DB* db = impl_->db.get();
  SnapshotPtr snapshot = impl_->Snapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();

  ListPage page;
  if (q.snapshot_seq) {
    page.snapshot_seq = *q.snapshot_seq;
  } else {
    std::string head;
    rocksdb::Status s = db->Get(ro, impl_->meta, kMetaChainHead, &head);
    if (!s.ok() || head.size() < 8) return StorageError(s, "reading the chain head");
    page.snapshot_seq = DecodeU64(head);
  }

  const std::string lower = projections::ListIndexPrefix(q.account_id, q.sort);
  const std::string upper = PrefixEnd(lower);
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, impl_->list));
  std::vector<Id> ids;
  ids.reserve(q.page_size);
  // The count needs every match, so the whole range is read; the page is the slice of it.
  for (q.descending ? it->SeekToLast() : it->SeekToFirst(); it->Valid();
       q.descending ? it->Prev() : it->Next()) {
    auto v =
        projections::DecodeListIndexEntry(it->key().ToStringView(), it->value().ToStringView());
    if (!v) return Error{ErrorCode::kUnexpected, "malformed list index entry", {}};
    if (v->created_seq > page.snapshot_seq) continue;
    if (q.status && v->status != *q.status) continue;
    if (q.scope && v->scope != *q.scope) continue;
    if (q.environment_id && v->environment_id != q.environment_id) continue;
    if (page.item_count >= q.offset && ids.size() < q.page_size) ids.push_back(v->token_id);
    ++page.item_count;
  }
  if (!it->status().ok()) return StorageError(it->status(), "listing tokens");
  it.reset();

  if (ids.empty()) return page;
  ro.iterate_lower_bound = nullptr;
  ro.iterate_upper_bound = nullptr;
  std::vector<rocksdb::Slice> keys;
  keys.reserve(ids.size());
  for (const Id& id : ids) keys.emplace_back(id.Bytes().data(), id.Bytes().size());
  std::vector<rocksdb::PinnableSlice> values(ids.size());
  std::vector<rocksdb::Status> statuses(ids.size());
  db->MultiGet(ro, impl_->details, keys.size(), keys.data(), values.data(), statuses.data());
  page.rows.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!statuses[i].ok()) return StorageError(statuses[i], "reading listed tokens");
    auto row = projections::DecodeTokenRow(values[i].ToStringView());
    if (!row) return row.error();
    page.rows.push_back(std::move(*row));
  }
  return page;
}

Result<EventPage> LedgerStore::ListEvents(const Id& token_id, std::uint64_t offset,
                                          std::uint32_t limit) const {
  rocksdb::DB* db = impl_->db.get();
  SnapshotPtr snapshot = impl_->Snapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  const std::string lower = StreamPrefix(token_id);
  const std::string upper = PrefixEnd(lower);
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, impl_->streams));

  EventPage page;
  // Stream versions have no gaps, so the last version is the stream's length.
  it->SeekToLast();
  if (!it->Valid()) {
    if (!it->status().ok()) return StorageError(it->status(), "reading a stream");
    return page;
  }
  page.item_count = DecodeU64(it->key().ToStringView().substr(Id::kBytes));
  std::vector<std::uint64_t> seqs;
  for (it->Seek(StreamKey(token_id, offset + 1)); it->Valid() && seqs.size() < limit; it->Next()) {
    seqs.push_back(DecodeU64(it->value().ToStringView()));
  }
  if (!it->status().ok()) return StorageError(it->status(), "reading a stream");
  it.reset();
  ro.iterate_lower_bound = nullptr;
  ro.iterate_upper_bound = nullptr;
  for (std::uint64_t seq : seqs) {
    auto e = impl_->ReadEvent(ro, seq);
    if (!e) return e.error();
    if (!*e)
      return Error{ErrorCode::kUnexpected,
                   "stream index points at missing event " + std::to_string(seq),
                   {}};
    page.events.push_back(std::move(**e));
  }
  return page;
}

Result<std::optional<Id>> LedgerStore::StreamAccount(const Id& token_id) const {
  rocksdb::ReadOptions ro;
  std::string value;
  rocksdb::Status s = impl_->db->Get(ro, impl_->streams, StreamKey(token_id, 1), &value);
  if (s.IsNotFound()) return std::optional<Id>();
  if (!s.ok()) return StorageError(s, "reading a stream");
  auto e = impl_->ReadEvent(ro, DecodeU64(value));
  if (!e) return e.error();
  const auto* created = *e ? std::get_if<events::TokenCreated>(&(*e)->data) : nullptr;
  if (!created) return Error{ErrorCode::kUnexpected, "stream does not start with TokenCreated", {}};
  return std::optional<Id>(created->account_id);
}

Result<std::optional<projections::TokenRow>> LedgerStore::GetTokenAsOf(const Id& token_id,
                                                                       Micros t) const {
  std::optional<projections::TokenRow> row;
  for (std::uint64_t offset = 0;; offset += 256) {
    auto page = ListEvents(token_id, offset, 256);
    if (!page) return page.error();
    for (const auto& e : page->events) {
      if (e.at > t) return row && row->state.Visible() ? row : std::nullopt;
      projections::ApplyEvent(row, e);
    }
    if (page->events.size() < 256) break;
  }
  return row && row->state.Visible() ? row : std::nullopt;
}

Status LedgerStore::ScanEvents(
    std::uint64_t from_seq, const std::function<bool(const events::EventEnvelope&)>& visit) const {
  rocksdb::ReadOptions ro;  // a full scan: read ahead, keep the block cache for the server
  ro.fill_cache = false;
  ro.readahead_size = 2u << 20;
  ro.adaptive_readahead = true;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  for (it->Seek(EventKey(from_seq)); it->Valid(); it->Next()) {
    auto e = events::DecodeStoredEvent(it->value().ToStringView());
    if (!e) return e.error();
    if (!visit(*e)) break;
  }
  if (!it->status().ok()) return StorageError(it->status(), "scanning events");
  return Status::Ok();
}

}  // namespace tokenledger::store

// The read side: point reads, list pages, event histories, as-of folds. Every multi-key read
// uses one snapshot, so it sees one committed state.
#include <functional>

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

Result<std::uint64_t> LedgerStore::Impl::StreamLength(const rocksdb::ReadOptions& ro,
                                                      const Id& stream) const {
  const std::string lower = StreamPrefix(stream);
  const std::string upper = PrefixEnd(lower);
  rocksdb::ReadOptions bounded = ro;
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  bounded.iterate_lower_bound = &lower_slice;
  bounded.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(bounded, streams));
  it->SeekToLast();  // stream versions have no gaps: the last is the length
  if (!it->Valid()) {
    if (!it->status().ok()) return StorageError(it->status(), "reading a stream");
    return std::uint64_t{0};
  }
  return DecodeU64(it->key().ToStringView().substr(Id::kBytes));
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
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  std::optional<projections::TokenRow> cached;
  std::uint64_t generation = 0;
  if (impl_->row_cache->Lookup(token_id, &cached, &generation)) return cached;
  auto row = impl_->ReadRow(rocksdb::ReadOptions(), token_id);
  if (row) impl_->row_cache->Insert(token_id, *row, generation);
  return row;
}

Result<ListPage> LedgerStore::ListTokens(const ListQuery& q) const {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  rocksdb::DB* db = impl_->db.get();
  SnapshotPtr snapshot = impl_->Snapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();

  ListPage page;
  std::string head;
  rocksdb::Status s = db->Get(ro, impl_->meta, kMetaChainHead, &head);
  if (!s.ok() || head.size() < 8) return StorageError(s, "reading the chain head");
  const std::uint64_t head_seq = DecodeU64(head);
  page.snapshot_seq = q.snapshot_seq.value_or(head_seq);

  const projections::ListPlan plan =
      projections::PlanList(q.account_id, {q.status, q.scope, q.environment_id});
  if (plan.empty) return page;
  // Visits the plan's entries ordered by `field`: one range, or several (one per status
  // partition) concatenated or merged by their keys after the common prefix length.
  auto scan = [&](projections::SortField field, bool descending,
                  const std::function<bool(const projections::ListIndexValue&)>& visit) -> Status {
    const std::vector<std::string> prefixes = projections::ListRangePrefixes(plan, field);
    const std::size_t n = prefixes.size();
    std::vector<std::string> uppers(n);
    std::vector<rocksdb::Slice> lower_slices(n), upper_slices(n);
    std::vector<std::unique_ptr<rocksdb::Iterator>> its(n);
    for (std::size_t i = 0; i < n; ++i) {
      uppers[i] = PrefixEnd(prefixes[i]);
      lower_slices[i] = prefixes[i];
      upper_slices[i] = uppers[i];
      rocksdb::ReadOptions range = ro;
      range.iterate_lower_bound = &lower_slices[i];
      range.iterate_upper_bound = &upper_slices[i];
      its[i].reset(db->NewIterator(range, impl_->list));
      descending ? its[i]->SeekToLast() : its[i]->SeekToFirst();
    }
    const bool concatenate = projections::ListRangesConcatenate(plan, field);
    const std::size_t suffix_at = prefixes[0].size();
    for (;;) {
      rocksdb::Iterator* next = nullptr;
      for (std::size_t j = 0; j < n; ++j) {
        rocksdb::Iterator* it = its[descending && concatenate ? n - 1 - j : j].get();
        if (!it->Valid()) continue;
        if (concatenate) {
          next = it;
          break;
        }
        if (!next) {
          next = it;
          continue;
        }
        const int c = it->key().ToStringView().substr(suffix_at).compare(
            next->key().ToStringView().substr(suffix_at));
        if (descending ? c > 0 : c < 0) next = it;
      }
      if (!next) break;
      auto v = projections::DecodeListIndexEntry(next->key().ToStringView(),
                                                 next->value().ToStringView());
      if (!v) return Error{ErrorCode::kUnexpected, "malformed list index entry", {}};
      if (!visit(*v)) break;
      descending ? next->Prev() : next->Next();
    }
    for (const auto& it : its) {
      if (!it->status().ok()) return StorageError(it->status(), "listing tokens");
    }
    return Status::Ok();
  };

  // item_count: the counter of the current state, less the matches created after the
  // snapshot. Those are the newest by inserted_at (event times follow seq), so they are read
  // from the newest end: O(tokens created since the snapshot), O(1) without a snapshot.
  std::string count_value;
  s = db->Get(ro, impl_->list, plan.count_key, &count_value);
  if (!s.ok() && !s.IsNotFound()) return StorageError(s, "reading a list counter");
  std::int64_t count = s.ok() ? projections::DecodeListCount(count_value).value_or(0) : 0;
  if (page.snapshot_seq < head_seq) {
    std::optional<Micros> older_at;  // inserted_at of the first entry inside the snapshot
    Status st = scan(projections::SortField::kInsertedAt, true, [&](const auto& v) {
      if (v.created_seq <= page.snapshot_seq) {
        if (!older_at) older_at = v.inserted_at;
        return v.inserted_at >= *older_at;  // ties in time may still hide newer tokens
      }
      if (projections::Matches(plan, v)) --count;
      return true;
    });
    if (!st) return st.error();
  }
  page.item_count = static_cast<std::uint64_t>(std::max<std::int64_t>(count, 0));

  // The page: O(offset + page size) entries of the plan's range, in sort order.
  std::vector<Id> ids;
  ids.reserve(q.page_size);
  std::uint64_t skipped = 0;
  if (q.offset < page.item_count && q.page_size > 0) {
    Status st = scan(q.sort, q.descending, [&](const auto& v) {
      if (v.created_seq > page.snapshot_seq || !projections::Matches(plan, v)) return true;
      if (skipped < q.offset) {
        ++skipped;
        return true;
      }
      ids.push_back(v.token_id);
      return ids.size() < q.page_size;
    });
    if (!st) return st.error();
  }

  if (ids.empty()) return page;
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
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  return impl_->ReadStream(token_id, offset, limit);
}

Result<EventPage> LedgerStore::Impl::ReadStream(const Id& token_id, std::uint64_t offset,
                                                std::uint32_t limit) const {
  rocksdb::DB* d = db.get();
  SnapshotPtr snapshot = Snapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  const std::string lower = StreamPrefix(token_id);
  const std::string upper = PrefixEnd(lower);
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(d->NewIterator(ro, streams));

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
    auto e = ReadEvent(ro, seq);
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
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
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
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(FullScanReadOptions(), impl_->events));
  for (it->Seek(EventKey(from_seq)); it->Valid(); it->Next()) {
    auto e = events::DecodeStoredEvent(it->value().ToStringView());
    if (!e) return e.error();
    if (!visit(*e)) break;
  }
  if (!it->status().ok()) return StorageError(it->status(), "scanning events");
  return Status::Ok();
}

}  // namespace tokenledger::store

// Verify: everything derivable from the ledger is derived again and compared, streaming.
//
//   0. Idempotency records -> the sort, keyed by the seq each one points at.
//   1. Events in seq order: the hash chain, merge-joined with those pointers; every event
//      goes into the external sort by token (TokenSort).
//   2. The sort in token order, merge-joined with the stream index, the usage records and the
//      token rows (all three are keyed by token first); each token folded on its own. The list
//      index entries the fold implies are summed into an order-independent digest.
//   3. The stored list index summed the same way (on a second thread, beside passes 0-2: it is
//      the largest family, ~20 entries per token); only if the sums differ, a second fold writes
//      the expected entries into the sort and a merge-join names each difference.
// Memory: the sort's buffers (kTokenSortMemoryBytes) and one token's fold, whatever the size
// of the ledger.
#include <functional>
#include <map>
#include <thread>

#include "src/store/store_impl.h"
#include "src/store/token_sort.h"

namespace tokenledger::store {
namespace {

std::string Hex(std::string_view bytes) {
  events::Hash h{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(bytes.data()), std::min(bytes.size(), h.size()),
              h.begin());
  return events::HashToHex(h);
}

constexpr char kIdempotencyTag = 'i';
constexpr char kListTag = 'l';

// An order-independent digest of a set of (key, value) pairs: two sums of two differently
// mixed 64-bit hashes, and the count. Equal sets give equal digests; a difference goes
// unnoticed with probability ~2^-128.
struct SetDigest {
  std::uint64_t a = 0, b = 0, count = 0;
  void Add(std::string_view key, std::string_view value) {
    const std::size_t hk = std::hash<std::string_view>{}(key);
    const std::size_t hv = std::hash<std::string_view>{}(value);
    a += Mix(hk ^ (hv * 0x9e3779b97f4a7c15ull));
    b += Mix((hk + 0x632be59bd9b4e019ull) * 0xff51afd7ed558ccdull ^ hv);
    ++count;
  }
  static std::uint64_t Mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 29;
    x *= 0xff51afd7ed558ccdull;
    return x ^ (x >> 32);
  }
  bool operator==(const SetDigest&) const = default;
};

rocksdb::Slice IdSlice(const Id& id) { return {id.Bytes().data(), id.Bytes().size()}; }

}  // namespace

Result<VerifyReport> LedgerStore::Verify(const VerifyOptions& options) const {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  const Impl& m = *impl_;
  rocksdb::DB* db = m.db.get();
  SnapshotPtr snapshot = impl_->Snapshot();
  rocksdb::ReadOptions ro = FullScanReadOptions();
  ro.snapshot = snapshot.get();
  VerifyReport report;
  auto add = [&](std::string kind, std::uint64_t seq, std::optional<Id> token, std::string expected,
                 std::string found, std::string message) {
    report.findings.push_back(
        {std::move(kind), seq, token, std::move(expected), std::move(found), std::move(message)});
  };
  // 3, first half, on a second thread from the start (it reads only the stored list index): the
  // stored entries summed into a digest, and the counters recounted from the entries, one
  // account at a time (an account's keys are contiguous), so memory stays bounded by one
  // account's filter combinations. Its findings are reported after the fold's, as before.
  SetDigest found_index;
  std::vector<VerifyFinding> list_findings;
  Status list_scanned = Status::Ok();
  auto scan_list = [&]() -> Status {
    auto list_add = [&](std::string kind, std::uint64_t seq, std::optional<Id> token,
                        std::string expected, std::string found, std::string message) {
      list_findings.push_back(
          {std::move(kind), seq, token, std::move(expected), std::move(found), std::move(message)});
    };
    std::unique_ptr<rocksdb::Iterator> li(db->NewIterator(ro, m.list));
    std::string account;
    std::map<std::string, std::int64_t> stored_counts, recounted;
    auto check_counts = [&] {
      for (const auto& [key, n] : recounted) stored_counts.try_emplace(key, std::int64_t{0});
      for (const auto& [key, n] : stored_counts) {
        auto want = recounted.find(key);
        const std::int64_t expected = want == recounted.end() ? 0 : want->second;
        if (n != expected) {
          list_add("index", 0, Id::FromBytes(key.substr(0, Id::kBytes)), std::to_string(expected),
                   std::to_string(n), "list counter " + Hex(key) + " differs from the index");
        }
      }
      stored_counts.clear();
      recounted.clear();
    };
    for (li->SeekToFirst(); li->Valid(); li->Next()) {
      const std::string_view key = li->key().ToStringView();
      if (key.substr(0, Id::kBytes) != account) {
        check_counts();
        account = std::string(key.substr(0, Id::kBytes));
      }
      if (projections::IsListCountKey(key)) {
        auto n = projections::DecodeListCount(li->value().ToStringView());
        if (!n) {
          list_add("index", 0, {}, "8-byte count", Hex(li->value().ToStringView()),
                   "malformed list counter " + Hex(key));
        }
        stored_counts[std::string(key)] = n.value_or(0);
        continue;
      }
      for (auto& k : projections::ListCountKeysOfEntry(key, li->value().ToStringView()))
        ++recounted[k];
      found_index.Add(key, li->value().ToStringView());
    }
    check_counts();
    if (!li->status().ok()) return StorageError(li->status(), "verifying the list index");
    return Status::Ok();
  };
  std::jthread list_thread;
  if (m.projections_match) list_thread = std::jthread([&] { list_scanned = scan_list(); });

  auto sorted = TokenSort::Create(options.temp_dir);
  if (!sorted) return sorted.error();
  TokenSort& sort = **sorted;

  // 0. Idempotency records point at events: sort the pointers by seq.
  {
    const std::string lower(1, kIdempotencyRecordTag), upper(1, kIdempotencyRecordTag + 1);
    rocksdb::Slice lo(lower), up(upper);
    rocksdb::ReadOptions iro = ro;
    iro.iterate_lower_bound = &lo;
    iro.iterate_upper_bound = &up;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(iro, m.idempotency));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto record = DecodeIdempotencyRecord(it->value().ToStringView());
      const std::string_view key = it->key().ToStringView().substr(1 + Id::kBytes);
      if (!record) {
        add("idempotency", 0, {}, "a decodable record", std::string(key),
            "malformed idempotency record");
        continue;
      }
      for (std::uint64_t s = record->first_seq;
           record->first_seq && s < record->first_seq + record->event_count; ++s) {
        if (Status as = sort.AddRaw(kIdempotencyTag, EventKey(s), key); !as) return as.error();
      }
    }
    if (!it->status().ok()) return StorageError(it->status(), "verifying idempotency records");
    if (Status fs = sort.Finish(); !fs) return fs.error();
  }

  // 1. The chain in seq order, and the idempotency pointers beside it.
  const std::uint64_t total = m.committed_seq.load();
  RebuildProgress progress{0, total, "sort"};
  events::Hash prev = events::kGenesisHash;
  std::uint64_t expected_seq = 1;
  {
    std::unique_ptr<rocksdb::Iterator> idem = sort.NewIterator(kIdempotencyTag);
    idem->SeekToFirst();
    auto idempotency_missing = [&](std::uint64_t s, const std::string& key, std::string found) {
      add("idempotency", s, {}, "event with key '" + key + "'", std::move(found),
          "idempotency record points at an event that does not carry its key");
    };
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, m.events));
    events::EventEnvelope event;  // reused: its strings keep their capacity
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++expected_seq) {
      ++report.events_checked;
      const std::uint64_t seq = DecodeU64(it->key().ToStringView());
      const std::string_view stored = it->value().ToStringView();
      if (seq != expected_seq) {
        add("chain", seq, {}, std::to_string(expected_seq), std::to_string(seq),
            "sequence numbers are not contiguous");
        expected_seq = seq;
      }
      if (!events::StoredHashMatches(stored)) {
        add("chain", seq, {}, events::HashToHex(events::Sha256(events::StoredBody(stored))),
            Hex(stored), "stored hash does not match the event body (event altered)");
      }
      const Status decoded = events::DecodeStoredEventInto(stored, &event);
      events::EventEnvelope* e = decoded ? &event : nullptr;
      // Idempotency pointers at this seq (and at seqs with no event, which sort before it).
      for (; idem->Valid(); idem->Next()) {
        const std::uint64_t s = DecodeU64(TokenSort::RawKey(idem->key()).ToStringView());
        if (s > seq) break;
        const std::string key(idem->value().ToStringView());
        if (s < seq) {
          idempotency_missing(s, key, "missing");
        } else if (!e || e->idempotency_key != key) {
          idempotency_missing(s, key, "another event");
        }
      }
      if (++progress.events_done % 16384 == 0 && options.progress) options.progress(progress);
      if (!e) {
        add("chain", seq, {}, "a decodable event", "", decoded.error().message);
        prev = events::Sha256(events::StoredBody(stored));
        continue;
      }
      if (e->seq != seq) {
        add("chain", seq, e->stream, std::to_string(seq), std::to_string(e->seq),
            "event body names another sequence number");
      }
      if (e->prev_hash != prev) {
        add("chain", seq, e->stream, events::HashToHex(prev), events::HashToHex(e->prev_hash),
            "prev_hash does not link to the previous event");
      }
      prev = e->hash;
      e->seq = seq;  // the sort (and the stream index) are keyed by where the event is stored
      if (Status as = sort.Add(*e); !as) return as.error();
    }
    if (!it->status().ok()) return StorageError(it->status(), "verifying events");
    for (; idem->Valid(); idem->Next()) {
      idempotency_missing(DecodeU64(TokenSort::RawKey(idem->key()).ToStringView()),
                          std::string(idem->value().ToStringView()), "missing");
    }
    if (!idem->status().ok()) return StorageError(idem->status(), "verifying idempotency records");
    if (Status fs = sort.Finish(); !fs) return fs.error();
  }
  if (options.progress) options.progress(progress);
  const std::uint64_t last_seq = expected_seq - 1;
  {
    std::string head;
    rocksdb::Status s = db->Get(ro, m.meta, kMetaChainHead, &head);
    const std::string want =
        EncodeU64(last_seq) + std::string(reinterpret_cast<const char*>(prev.data()), prev.size());
    if (!s.ok() || head != want) {
      add("meta", last_seq, {}, std::to_string(last_seq) + " " + events::HashToHex(prev),
          head.size() == 40 ? std::to_string(DecodeU64(head)) + " " + Hex(head.substr(8))
                            : "missing",
          "chain head does not match the last event");
    }
  }
  const bool check_projections = m.projections_match;
  if (!check_projections) {
    add("meta", 0, {}, "token_details v" + std::to_string(projections::kTokenDetails.version),
        "token_details v" + std::to_string(m.projection_meta.details_version),
        "projections are at another schema version; run `tokenledger rebuild`");
  }

  // 2. Token order: streams, usage records, rows. `fold` runs the token pass; it is run a
  // second time (with `emit` set) only to pinpoint list index differences.
  SetDigest expected_index;
  auto fold = [&](bool first,
                  const std::function<Status(const projections::TokenRow&)>& emit) -> Status {
    std::unique_ptr<rocksdb::Iterator> streams(db->NewIterator(ro, m.streams));
    std::unique_ptr<rocksdb::Iterator> details(check_projections ? db->NewIterator(ro, m.details)
                                                                 : nullptr);
    std::unique_ptr<rocksdb::Iterator> usage(
        check_projections && m.usage ? db->NewIterator(ro, m.usage) : nullptr);
    streams->SeekToFirst();
    if (details) details->SeekToFirst();
    if (usage) usage->SeekToFirst();
    std::uint64_t stray_streams = 0;
    std::optional<projections::TokenRow> row;
    std::string want_row;  // reused: one token's expected row
    RebuildProgress p{0, sort.Count(), first ? "fold" : "index"};

    auto finish_token = [&](const Id& token) -> Status {
      if (!check_projections) return Status::Ok();
      const rocksdb::Slice id = IdSlice(token);
      // Usage records: keyed by token id; ones before this token belong to no token.
      for (; usage && usage->Valid(); usage->Next()) {
        const int c = usage->key().compare(id);
        if (c > 0) break;
        auto uid = Id::FromBytes(usage->key().ToStringView());
        if (!uid || usage->value().size() != 8) {
          if (first)
            add("usage", 0, uid, "token id -> 8-byte time", Hex(usage->key().ToStringView()),
                "malformed usage record");
        } else if (c < 0 || !row || !row->state.Visible()) {
          if (first)
            add("usage", 0, uid, "no record", "a usage record",
                "usage record for a token that does not exist or was deleted");
        } else {
          projections::ApplyUse(row, static_cast<Micros>(DecodeU64(usage->value().ToStringView())));
        }
      }
      const bool visible = row && row->state.Visible();
      if (visible && emit) {
        if (Status es = emit(*row); !es) return es;
      }
      if (!first) return Status::Ok();
      if (visible) {
        ++report.tokens_checked;
        for (const auto& entry : projections::ListIndexEntrySet(*row))
          expected_index.Add(entry.Key(), entry.Value());
      }
      // Rows: keyed by token id too.
      for (; details->Valid(); details->Next()) {
        const int c = details->key().compare(id);
        if (c > 0) break;
        if (c < 0 || !visible) {
          add("projection", 0, Id::FromBytes(details->key().ToStringView()), "no row",
              std::string(details->value().ToStringView()),
              "row for a token that does not exist or was deleted");
          continue;
        }
        projections::EncodeTokenRowInto(*row, want_row);
        if (details->value().ToStringView() != want_row) {
          auto stored = projections::DecodeTokenRow(details->value().ToStringView());
          if (!stored) {
            add("projection", row->state.version, token, "a readable row", "",
                stored.error().message);
          } else if (!(*stored == *row)) {
            add("projection", 0, token, want_row, projections::EncodeTokenRow(*stored),
                "token row differs from the ledger");
          }
        }
        details->Next();
        return Status::Ok();
      }
      if (visible) {
        add("projection", 0, token, projections::EncodeTokenRow(*row), "missing",
            "token row is missing");
      }
      return Status::Ok();
    };

    std::unique_ptr<rocksdb::Iterator> it = sort.NewIterator();
    events::EventEnvelope e;
    std::optional<Id> current;
    std::uint64_t last_version = 0, last_seq_of_token = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!TokenSort::Decode(it->key(), it->value(), &e))
        return Error{ErrorCode::kUnexpected, "malformed entry in the temporary sort", {}};
      if (current != e.stream) {
        if (current) {
          if (Status fs = finish_token(*current); !fs) return fs;
          row.reset();
        }
        current = e.stream;
        last_version = 0;
        last_seq_of_token = 0;
      }
      if (first) {
        if (e.stream_version != last_version + 1) {
          add("stream", e.seq, e.stream, std::to_string(last_version + 1),
              std::to_string(e.stream_version), "stream version gap");
        } else if (e.seq < last_seq_of_token) {
          add("stream", e.seq, e.stream, "seq after " + std::to_string(last_seq_of_token),
              std::to_string(e.seq), "stream versions are out of sequence order");
        }
        // The stream index, merge-joined: every entry must point at exactly this event.
        const std::string want = StreamKey(e.stream, e.stream_version);
        for (; streams->Valid() && streams->key().compare(want) < 0; streams->Next())
          ++stray_streams;
        if (streams->Valid() && streams->key() == want) {
          if (streams->value().size() != 8 || DecodeU64(streams->value().ToStringView()) != e.seq) {
            add("stream", e.seq, e.stream, std::to_string(e.seq),
                streams->value().size() == 8
                    ? std::to_string(DecodeU64(streams->value().ToStringView()))
                    : "malformed",
                "stream index entry does not point at this event");
          }
          streams->Next();
        } else {
          add("stream", e.seq, e.stream, std::to_string(e.seq), "missing",
              "stream index entry does not point at this event");
        }
      }
      last_version = e.stream_version;
      last_seq_of_token = e.seq;
      projections::ApplyEvent(row, e);
      if (++p.events_done % 16384 == 0 && options.progress) options.progress(p);
    }
    if (!it->status().ok()) return StorageError(it->status(), "reading the temporary sort");
    if (current) {
      if (Status fs = finish_token(*current); !fs) return fs;
      row.reset();
    }
    if (!first) return Status::Ok();
    for (; streams->Valid(); streams->Next()) ++stray_streams;
    if (!streams->status().ok()) return StorageError(streams->status(), "verifying streams");
    if (stray_streams) {
      add("stream", 0, {}, std::to_string(report.events_checked),
          std::to_string(report.events_checked + stray_streams),
          "stream index has entries for events that do not exist");
    }
    if (check_projections) {
      for (; usage && usage->Valid(); usage->Next()) {
        auto uid = Id::FromBytes(usage->key().ToStringView());
        if (!uid || usage->value().size() != 8) {
          add("usage", 0, uid, "token id -> 8-byte time", Hex(usage->key().ToStringView()),
              "malformed usage record");
        } else {
          add("usage", 0, uid, "no record", "a usage record",
              "usage record for a token that does not exist or was deleted");
        }
      }
      for (; details->Valid(); details->Next()) {
        add("projection", 0, Id::FromBytes(details->key().ToStringView()), "no row",
            std::string(details->value().ToStringView()),
            "row for a token that does not exist or was deleted");
      }
      if (usage && !usage->status().ok())
        return StorageError(usage->status(), "verifying usage records");
      if (!details->status().ok()) return StorageError(details->status(), "verifying rows");
    }
    if (options.progress) options.progress(p);
    return Status::Ok();
  };
  if (Status fs = fold(true, {}); !fs) return fs.error();
  if (!check_projections) return report;

  // 3. The list index: its digest (scanned above, beside the other passes) against the one
  // the fold computed; a merge-join only when they differ.
  if (list_thread.joinable()) list_thread.join();
  if (!list_scanned) return list_scanned.error();
  for (auto& f : list_findings) report.findings.push_back(std::move(f));
  if (found_index == expected_index) return report;
  Status emitted = fold(false, [&](const projections::TokenRow& row) -> Status {
    for (const auto& entry : projections::ListIndexEntrySet(row)) {
      if (Status as = sort.AddRaw(kListTag, entry.Key(), entry.Value()); !as) return as;
    }
    return Status::Ok();
  });
  if (!emitted) return emitted.error();
  if (Status fs = sort.Finish(); !fs) return fs.error();
  std::unique_ptr<rocksdb::Iterator> want = sort.NewIterator(kListTag);
  std::unique_ptr<rocksdb::Iterator> li(db->NewIterator(ro, m.list));
  want->SeekToFirst();
  li->SeekToFirst();
  auto token_of = [](rocksdb::Slice key, rocksdb::Slice value) {
    auto decoded = projections::DecodeListIndexEntry(key.ToStringView(), value.ToStringView());
    return decoded ? std::optional<Id>(decoded->token_id) : std::nullopt;
  };
  while (want->Valid() || li->Valid()) {
    if (li->Valid() && projections::IsListCountKey(li->key().ToStringView())) {
      li->Next();  // counters were checked above
      continue;
    }
    const rocksdb::Slice wk = want->Valid() ? TokenSort::RawKey(want->key()) : rocksdb::Slice();
    const int c = !want->Valid() ? 1 : !li->Valid() ? -1 : wk.compare(li->key());
    if (c < 0) {
      add("index", 0, token_of(wk, want->value()), Hex(wk.ToStringView()), "missing",
          "list index entry is missing");
      want->Next();
    } else if (c > 0) {
      add("index", 0, token_of(li->key(), li->value()), "no entry", Hex(li->key().ToStringView()),
          "list index entry the ledger does not explain");
      li->Next();
    } else {
      if (want->value() != li->value()) {
        add("index", 0, token_of(li->key(), li->value()), Hex(want->value().ToStringView()),
            Hex(li->value().ToStringView()), "list index entry value differs");
      }
      want->Next();
      li->Next();
    }
  }
  if (!li->status().ok()) return StorageError(li->status(), "verifying the list index");
  return report;
}

}  // namespace tokenledger::store

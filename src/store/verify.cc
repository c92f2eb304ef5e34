// Verify: everything derivable from the ledger is derived again and compared.
#include <map>
#include <unordered_map>

#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

std::string Hex(std::string_view bytes) {
  events::Hash h{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(bytes.data()), std::min(bytes.size(), h.size()),
              h.begin());
  return events::HashToHex(h);
}

}  // namespace

Result<VerifyReport> LedgerStore::Verify() const {
  auto db_lock = impl_->ReadLock();  // a recovery's reopen waits for this read
  if (!impl_->db) return Impl::Closed();
  const Impl& m = *impl_;
  rocksdb::DB* db = m.db.get();
  SnapshotPtr snapshot = impl_->Snapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  VerifyReport report;
  auto add = [&](std::string kind, std::uint64_t seq, std::optional<Id> token, std::string expected,
                 std::string found, std::string message) {
    report.findings.push_back(
        {std::move(kind), seq, token, std::move(expected), std::move(found), std::move(message)});
  };

  // 1. The chain and the streams, folding the projections as we go.
  std::unordered_map<Id, std::optional<projections::TokenRow>, IdHash> rows;
  std::unordered_map<Id, std::uint64_t, IdHash> stream_versions;
  events::Hash prev = events::kGenesisHash;
  std::uint64_t expected_seq = 1;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, m.events));
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
      auto e = events::DecodeStoredEvent(stored);
      if (!e) {
        add("chain", seq, {}, "a decodable event", "", e.error().message);
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
      std::uint64_t& last_version = stream_versions[e->stream];
      if (e->stream_version != last_version + 1) {
        add("stream", seq, e->stream, std::to_string(last_version + 1),
            std::to_string(e->stream_version), "stream version gap");
      }
      last_version = e->stream_version;
      std::string pointer;
      rocksdb::Status s = db->Get(ro, m.streams, StreamKey(e->stream, e->stream_version), &pointer);
      if (!s.ok() || pointer.size() != 8 || DecodeU64(pointer) != seq) {
        add("stream", seq, e->stream, std::to_string(seq),
            s.ok() && pointer.size() == 8 ? std::to_string(DecodeU64(pointer)) : "missing",
            "stream index entry does not point at this event");
      }
      projections::ApplyEvent(rows[e->stream], *e);
    }
    if (!it->status().ok()) return StorageError(it->status(), "verifying events");
  }
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
    std::uint64_t stream_entries = 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, m.streams));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++stream_entries;
    if (stream_entries != report.events_checked) {
      add("stream", 0, {}, std::to_string(report.events_checked), std::to_string(stream_entries),
          "stream index has entries for events that do not exist");
    }
  }

  if (!m.projections_match) {
    add("meta", 0, {}, "token_details v" + std::to_string(projections::kTokenDetails.version),
        "token_details v" + std::to_string(m.projection_meta.details_version),
        "projections are at another schema version; run `tokenledger rebuild`");
    return report;
  }
  // Usage records (beside the ledger) move last_used_at past the last audited use.
  if (m.usage) {  // null: a secondary over a ledger from before usage records
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, m.usage));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto id = Id::FromBytes(it->key().ToStringView());
      auto r = id ? rows.find(*id) : rows.end();
      if (!id || it->value().size() != 8) {
        add("usage", 0, id, "token id -> 8-byte time", Hex(it->key().ToStringView()),
            "malformed usage record");
      } else if (r == rows.end() || !r->second || !r->second->state.Visible()) {
        add("usage", 0, id, "no record", "a usage record",
            "usage record for a token that does not exist or was deleted");
      } else {
        projections::ApplyUse(r->second,
                              static_cast<Micros>(DecodeU64(it->value().ToStringView())));
      }
    }
    if (!it->status().ok()) return StorageError(it->status(), "verifying usage records");
  }

  // 2. Projection rows and list index entries against the fold.
  std::map<std::string, std::string> expected_index;
  std::map<std::string, std::int64_t> expected_counts;
  for (const auto& [id, row] : rows) {
    if (!row || !row->state.Visible()) continue;
    ++report.tokens_checked;
    for (auto& entry : projections::ListIndexEntries(*row))
      expected_index.emplace(entry.key, entry.value);
    for (auto& key : projections::ListCountKeys(*row)) ++expected_counts[key];
    auto stored = m.ReadRow(ro, id);
    if (!stored) {
      add("projection", row->state.version, id, "a readable row", "", stored.error().message);
    } else if (!*stored) {
      add("projection", 0, id, projections::EncodeTokenRow(*row), "missing",
          "token row is missing");
    } else if (!(**stored == *row)) {
      add("projection", 0, id, projections::EncodeTokenRow(*row),
          projections::EncodeTokenRow(**stored), "token row differs from the ledger");
    }
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, m.details));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto id = Id::FromBytes(it->key().ToStringView());
      auto r = id ? rows.find(*id) : rows.end();
      if (r == rows.end() || !r->second || !r->second->state.Visible()) {
        add("projection", 0, id, "no row", std::string(it->value().ToStringView()),
            "row for a token that does not exist or was deleted");
      }
    }
    std::unique_ptr<rocksdb::Iterator> li(db->NewIterator(ro, m.list));
    for (li->SeekToFirst(); li->Valid(); li->Next()) {
      const std::string key(li->key().ToStringView());
      if (projections::IsListCountKey(key)) {
        auto want = expected_counts.find(key);
        const std::int64_t expected = want == expected_counts.end() ? 0 : want->second;
        const auto found = projections::DecodeListCount(li->value().ToStringView());
        if (found != expected) {
          add("index", 0, {}, std::to_string(expected),
              found ? std::to_string(*found) : Hex(li->value().ToStringView()),
              "list counter " + Hex(key) + " differs from the ledger");
        }
        if (want != expected_counts.end()) expected_counts.erase(want);
        continue;
      }
      auto want = expected_index.find(key);
      auto decoded = projections::DecodeListIndexEntry(key, li->value().ToStringView());
      std::optional<Id> token = decoded ? std::optional<Id>(decoded->token_id) : std::nullopt;
      if (want == expected_index.end()) {
        add("index", 0, token, "no entry", Hex(key),
            "list index entry the ledger does not explain");
      } else {
        if (want->second != li->value().ToStringView()) {
          add("index", 0, token, Hex(want->second), Hex(li->value().ToStringView()),
              "list index entry value differs");
        }
        expected_index.erase(want);
      }
    }
    for (const auto& [key, count] : expected_counts) {
      add("index", 0, {}, std::to_string(count), "missing",
          "list counter " + Hex(key) + " is missing");
    }
    for (const auto& [key, value] : expected_index) {
      auto decoded = projections::DecodeListIndexEntry(key, value);
      add("index", 0, decoded ? std::optional<Id>(decoded->token_id) : std::nullopt, Hex(key),
          "missing", "list index entry is missing");
    }
  }

  // 3. Idempotency records point at events that exist and carry their key.
  {
    const std::string lower(1, kIdempotencyRecordTag), upper(1, kIdempotencyRecordTag + 1);
    rocksdb::Slice lo(lower), up(upper);
    rocksdb::ReadOptions iro = ro;
    iro.iterate_lower_bound = &lo;
    iro.iterate_upper_bound = &up;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(iro, m.idempotency));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto record = DecodeIdempotencyRecord(it->value().ToStringView());
      const std::string key(it->key().ToStringView().substr(1 + Id::kBytes));
      if (!record) {
        add("idempotency", 0, {}, "a decodable record", key, "malformed idempotency record");
        continue;
      }
      for (std::uint64_t s = record->first_seq;
           record->first_seq && s < record->first_seq + record->event_count; ++s) {
        auto e = m.ReadEvent(ro, s);
        if (!e || !*e || (*e)->idempotency_key != key) {
          add("idempotency", s, {}, "event with key '" + key + "'",
              e && *e ? "another event" : "missing",
              "idempotency record points at an event that does not carry its key");
        }
      }
    }
  }
  return report;
}

}  // namespace tokenledger::store

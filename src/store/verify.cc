// Verify: everything derivable from the ledger is derived again and compared, streaming.
//
//   0. Idempotency records -> the sort, keyed by the seq each one points at.
//   1. Events in seq order: the hash chain, merge-joined with those pointers; every event
//      goes into the external sort by token (TokenSort).
//   2. The sort in token order, merge-joined with the usage records (they are folded into the
//      rows); each token folded on its own. What the stored families should then hold (stream
//      index entries, token rows as encoded bytes, list index entries) is summed into three
//      order-independent digests (SetDigest).
//   3. The stored stream index, rows and list index summed the same way, and the list
//      counters recounted from the list entries. These scans read nothing the passes above
//      write, so they are tasks: a second thread takes them from the start, beside passes
//      0-2, and this thread joins it once the fold is done, so both cores are busy to the end.
//      The list index (the largest family, ~17 entries per token) is cut into
//      VerifyOptions::list_parts key ranges of about equal size, so the two finish together.
//   Only for a family whose sums differ does a second fold name each difference: the stream
//   index and the rows merge-joined entry by entry as it goes, the list index through the sort
//   and a merge-join (the passes before the digests did that for every run).
// Memory, whatever the size of the ledger: the sort's buffers (kTokenSortMemoryBytes), one
// token's fold, one RocksDB iterator per scan thread (at most kMaxScanThreads), and the list
// counters of at most two accounts per list part (an account's filter combinations).
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <thread>

// Inlined (no call into the shared library): most pairs are 10-100 bytes.
#define XXH_INLINE_ALL
#include <xxhash.h>

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

// A stored row as a finding shows it: as JSON if it decodes, else its bytes in hex.
std::string RowText(std::string_view bytes) {
  if (auto row = projections::DecodeTokenRow(bytes)) return projections::DescribeTokenRow(*row);
  // Appends only: GCC 12 at -O3 reports a false -Wrestrict on `"literal" + std::string`.
  std::string text = "undecodable row ";
  text += events::BytesToHex(bytes);
  return text;
}

constexpr char kIdempotencyTag = 'i';
constexpr char kListTag = 'l';
// Threads scanning the stored families (this one included, once its fold is done).
constexpr unsigned kMaxScanThreads = 4;

// An order-independent digest of a multiset of (key, value) pairs: each pair is hashed to
// 128 bits (XXH3: the key's 64-bit hash seeds the 128-bit hash of the value, so where the key
// ends is part of it), and the two halves' sums and the count are the digest. Equal multisets
// give equal digests; a difference goes unnoticed only if both sums collide: ~2^-64 at worst
// (two different keys whose 64-bit hashes, the seeds, collide, with equal values). XXH3 because
// this runs on every entry of the three largest families, twice (want and found): ~20M pairs at 1M
// events. It replaced a chain of 64-bit multiplies per 8-byte word, 14% of verify's CPU. Not
// cryptographic: it finds damage and bugs, not a forger, who could rewrite rows and index
// consistently anyway (the events are what SHA-256 protects).
struct SetDigest {
  std::uint64_t a = 0, b = 0, count = 0;
  void Add(std::string_view key, std::string_view value) {
    const XXH64_hash_t seed = XXH3_64bits(key.data(), key.size());
    const XXH128_hash_t h = XXH3_128bits_withSeed(value.data(), value.size(), seed);
    a += h.low64;
    b += h.high64;
    ++count;
  }
  void Merge(const SetDigest& o) {
    a += o.a;
    b += o.b;
    count += o.count;
  }
  bool operator==(const SetDigest&) const = default;
};

rocksdb::Slice IdSlice(const Id& id) { return {id.Bytes().data(), id.Bytes().size()}; }

// One account's list counters: as stored, and as recounted from its entries.
struct AccountCounts {
  std::string account;
  std::map<std::string, std::int64_t> stored, recounted;
};

void CheckCounts(AccountCounts& c, std::vector<VerifyFinding>& findings) {
  for (const auto& [key, n] : c.recounted) c.stored.try_emplace(key, std::int64_t{0});
  for (const auto& [key, n] : c.stored) {
    auto want = c.recounted.find(key);
    const std::int64_t expected = want == c.recounted.end() ? 0 : want->second;
    if (n != expected) {
      findings.push_back({"index", 0, Id::FromBytes(key.substr(0, Id::kBytes)),
                          std::to_string(expected), std::to_string(n),
                          "list counter " + Hex(key) + " differs from the index"});
    }
  }
}

// What one scan task found.
struct ScanResult {
  SetDigest digest;
  std::vector<VerifyFinding> findings;
  Status status = Status::Ok();
  // List parts: the counters of the part's first and last accounts, which may go on in the
  // neighbouring parts, so they are checked once all parts are done.
  std::vector<AccountCounts> edges;
};

// Keys that cut `cf` into `parts` ranges of about equal size on disk (fewer if it is small):
// bisections of the 16 key bytes past the first and last keys' common prefix, sized with
// GetApproximateSizes (index blocks only). The cuts only share the work out: the ranges cover
// the whole family whatever they are.
std::vector<std::string> SplitKeys(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                   const rocksdb::ReadOptions& ro, int parts) {
  std::string first, last;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
    it->SeekToFirst();
    if (!it->Valid()) return {};
    first = it->key().ToString();
    it->SeekToLast();
    if (!it->Valid()) return {};
    last = it->key().ToString();
  }
  std::size_t p = 0;
  while (p < first.size() && p < last.size() && first[p] == last[p]) ++p;
  __extension__ typedef unsigned __int128 U128;  // -Wpedantic: a GCC and Clang extension
  auto number = [p](const std::string& key) {
    U128 n = 0;
    for (std::size_t i = 0; i < 16; ++i)
      n = n << 8 | (p + i < key.size() ? static_cast<unsigned char>(key[p + i]) : 0u);
    return n;
  };
  auto key_of = [&](U128 n) {
    std::string k = first.substr(0, p);
    for (int i = 15; i >= 0; --i)
      k.push_back(static_cast<char>(static_cast<std::uint8_t>(n >> (8 * i))));
    return k;
  };
  rocksdb::SizeApproximationOptions so;
  so.include_memtables = true;
  so.include_files = true;
  const std::string end = last + '\0';
  auto size_below = [&](const std::string& key) -> std::uint64_t {
    if (key <= first) return 0;
    rocksdb::Range r(first, key < end ? rocksdb::Slice(key) : rocksdb::Slice(end));
    std::uint64_t size = 0;
    if (!db->GetApproximateSizes(so, cf, &r, 1, &size).ok()) return 0;
    return size;
  };
  const std::uint64_t total = size_below(end);
  std::vector<std::string> cuts;
  if (total == 0) return cuts;
  U128 lo = number(first);
  const U128 hi = number(last);
  for (int i = 1; i < parts; ++i) {
    const std::uint64_t target =
        total / static_cast<std::uint64_t>(parts) * static_cast<std::uint64_t>(i);
    U128 a = lo, b = hi;  // the least n with size_below(key_of(n)) >= target is in [a, b]
    while (a < b) {
      const U128 mid = a + (b - a) / 2;
      if (size_below(key_of(mid)) >= target) {
        b = mid;
      } else {
        a = mid + 1;
      }
    }
    std::string cut = key_of(a);
    if (cut > first && cut <= last && (cuts.empty() || cut > cuts.back())) cuts.push_back(cut);
    lo = a;
  }
  return cuts;
}

// Sums every (key, value) of `cf` in [lower, upper) (empty: unbounded) into `out`.
Status DigestRange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, rocksdb::ReadOptions ro,
                   const std::string& lower, const std::string& upper,
                   const std::atomic<bool>& stop, const char* what, SetDigest& out) {
  rocksdb::Slice lo(lower), up(upper);
  if (!lower.empty()) ro.iterate_lower_bound = &lo;
  if (!upper.empty()) ro.iterate_upper_bound = &up;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  std::uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (++n % 4096 == 0 && stop.load(std::memory_order_relaxed)) return Status::Ok();
    out.Add(it->key().ToStringView(), it->value().ToStringView());
  }
  if (!it->status().ok()) return StorageError(it->status(), what);
  return Status::Ok();
}

// One part of the stored list index: its entries summed, its counters recounted from the
// entries one account at a time (an account's keys are contiguous).
Status ScanListPart(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, rocksdb::ReadOptions ro,
                    const std::string& lower, const std::string& upper,
                    const std::atomic<bool>& stop, ScanResult& out) {
  rocksdb::Slice lo(lower), up(upper);
  if (!lower.empty()) ro.iterate_lower_bound = &lo;
  if (!upper.empty()) ro.iterate_upper_bound = &up;
  std::unique_ptr<rocksdb::Iterator> li(db->NewIterator(ro, cf));
  AccountCounts current;
  projections::ListRecount recount;
  bool first_account = true;
  auto end_account = [&] {
    recount.Flush(current.recounted);
    if (first_account) {
      out.edges.push_back(std::move(current));
      first_account = false;
    } else {
      CheckCounts(current, out.findings);
    }
    current = AccountCounts{};
  };
  std::uint64_t n = 0;
  for (li->SeekToFirst(); li->Valid(); li->Next()) {
    if (++n % 4096 == 0 && stop.load(std::memory_order_relaxed)) return Status::Ok();
    const std::string_view key = li->key().ToStringView();
    const std::string_view value = li->value().ToStringView();
    if (n == 1) {
      current.account = std::string(key.substr(0, Id::kBytes));
    } else if (key.substr(0, Id::kBytes) != current.account) {
      end_account();
      current.account = std::string(key.substr(0, Id::kBytes));
    }
    if (projections::IsListCountKey(key)) {
      auto count = projections::DecodeListCount(value);
      if (!count) {
        out.findings.push_back(
            {"index", 0, {}, "8-byte count", Hex(value), "malformed list counter " + Hex(key)});
      }
      current.stored[std::string(key)] = count.value_or(0);
      continue;
    }
    recount.Add(key, value, current.recounted);
    out.digest.Add(key, value);
  }
  if (!li->status().ok()) return StorageError(li->status(), "verifying the list index");
  recount.Flush(current.recounted);
  if (n > 0) out.edges.push_back(std::move(current));  // the last account (maybe the first too)
  return Status::Ok();
}

// Scan tasks, taken in order by whichever thread is free.
class ScanTasks {
 public:
  void Add(std::function<Status(ScanResult&)> task) {
    tasks_.push_back(std::move(task));
    results_.emplace_back();
  }
  // Runs tasks until none is left (or Stop()); `after_each` (if any) after each it ran.
  void Work(const std::function<void()>& after_each = {}) {
    for (std::size_t i; !stop_.load() && (i = next_.fetch_add(1)) < tasks_.size();) {
      results_[i].status = tasks_[i](results_[i]);
      done_.fetch_add(1);
      if (after_each) after_each();
    }
  }
  std::size_t done() const { return done_.load(); }
  std::size_t size() const { return tasks_.size(); }
  void Stop() { stop_ = true; }
  const std::atomic<bool>& stopping() const { return stop_; }
  std::vector<ScanResult>& results() { return results_; }

 private:
  std::vector<std::function<Status(ScanResult&)>> tasks_;
  std::vector<ScanResult> results_;
  std::atomic<std::size_t> next_{0}, done_{0};
  std::atomic<bool> stop_{false};
};

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
  const bool check_projections = m.projections_match;

  // 3, first half: the stored families summed, on a second thread from the start (they are
  // read by nothing else). Task order is report order: stream index, rows, list parts.
  ScanTasks scans;
  const std::atomic<bool>& stopping = scans.stopping();
  scans.Add([&](ScanResult& r) {
    return DigestRange(db, m.streams, ro, {}, {}, stopping, "verifying streams", r.digest);
  });
  std::size_t list_first = 0, list_end = 0;  // the list parts' results
  if (check_projections) {
    scans.Add([&](ScanResult& r) {
      return DigestRange(db, m.details, ro, {}, {}, stopping, "verifying rows", r.digest);
    });
    std::vector<std::string> cuts = SplitKeys(db, m.list, ro, std::max(1, options.list_parts));
    cuts.insert(cuts.begin(), std::string());
    cuts.push_back(std::string());
    list_first = scans.results().size();
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
      scans.Add([&, lower = cuts[i], upper = cuts[i + 1]](ScanResult& r) {
        return ScanListPart(db, m.list, ro, lower, upper, stopping, r);
      });
    }
    list_end = scans.results().size();
  }
  std::vector<std::jthread> scan_threads;
  // However this function returns (an error, the progress callback throwing), the scans stop.
  struct StopScans {
    ScanTasks& scans;
    std::vector<std::jthread>& threads;
    ~StopScans() {
      scans.Stop();
      threads.clear();  // joins
    }
  } stop_scans{scans, scan_threads};
  const unsigned helpers = std::clamp(std::thread::hardware_concurrency(), 2u, kMaxScanThreads) - 1;
  for (unsigned i = 0; i < helpers; ++i) scan_threads.emplace_back([&] { scans.Work(); });

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
    sort.ReleaseBuffers();  // only a fold that names list differences adds more
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
  if (!check_projections) {
    add("meta", 0, {}, "token_details v" + std::to_string(projections::kTokenDetails.version),
        "token_details v" + std::to_string(m.projection_meta.details_version),
        "projections are at another schema version; run `tokenledger rebuild`");
  }

  // 2. Token order. The first fold checks stream versions and usage records and sums what the
  // stream index, the rows and the list index should hold; a second one runs only to name the
  // differences of a family whose sums differ (`join_streams`, `join_details`: merge-joined
  // entry by entry as the fold goes; `emit_list`: each row's list entries into the sort).
  struct FoldPass {
    bool first = false, join_streams = false, join_details = false;
    std::function<Status(const projections::TokenRow&)> emit_list;
  };
  SetDigest want_streams, want_rows, want_index;
  auto fold = [&](const FoldPass& pass) -> Status {
    const bool first = pass.first;
    std::unique_ptr<rocksdb::Iterator> streams(pass.join_streams ? db->NewIterator(ro, m.streams)
                                                                 : nullptr);
    std::unique_ptr<rocksdb::Iterator> details(pass.join_details ? db->NewIterator(ro, m.details)
                                                                 : nullptr);
    std::unique_ptr<rocksdb::Iterator> usage(
        check_projections && m.usage ? db->NewIterator(ro, m.usage) : nullptr);
    if (streams) streams->SeekToFirst();
    if (details) details->SeekToFirst();
    if (usage) usage->SeekToFirst();
    std::uint64_t stray_streams = 0;
    std::optional<projections::TokenRow> row;
    std::string row_bytes;  // reused: one token's expected row
    RebuildProgress p{0, sort.Count(), first ? "fold" : "pinpoint"};

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
      if (visible && pass.emit_list) {
        if (Status es = pass.emit_list(*row); !es) return es;
      }
      if (visible && (first || details)) projections::EncodeTokenRowInto(*row, row_bytes);
      if (first && visible) {
        ++report.tokens_checked;
        want_rows.Add(token.Bytes(), row_bytes);
        for (const auto& entry : projections::ListIndexEntrySet(*row))
          want_index.Add(entry.Key(), entry.Value());
      }
      if (!details) return Status::Ok();
      // Rows: keyed by token id too.
      for (; details->Valid(); details->Next()) {
        const int c = details->key().compare(id);
        if (c > 0) break;
        if (c < 0 || !visible) {
          add("projection", 0, Id::FromBytes(details->key().ToStringView()), "no row",
              RowText(details->value().ToStringView()),
              "row for a token that does not exist or was deleted");
          continue;
        }
        if (details->value().ToStringView() != row_bytes) {
          auto stored = projections::DecodeTokenRow(details->value().ToStringView());
          if (!stored) {
            add("projection", row->state.version, token, "a readable row", "",
                stored.error().message);
          } else {  // one encoding per row: other bytes are another row
            add("projection", 0, token, projections::DescribeTokenRow(*row),
                projections::DescribeTokenRow(*stored), "token row differs from the ledger");
          }
        }
        details->Next();
        return Status::Ok();
      }
      if (visible) {
        add("projection", 0, token, projections::DescribeTokenRow(*row), "missing",
            "token row is missing");
      }
      return Status::Ok();
    };

    std::unique_ptr<rocksdb::Iterator> it = sort.NewIterator();
    events::EventEnvelope e;
    std::optional<Id> current;
    std::uint64_t last_version = 0, last_seq_of_token = 0;
    char stream_key[Id::kBytes + 8], stream_value[8];
    auto put_u64 = [](char* out, std::uint64_t v) {
      for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
    };
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
      if (first && !events::InItsStream(e.stream, e.data)) {
        add("stream", e.seq, e.stream, "", std::string(events::TypeName(e.data)),
            "event in the wrong stream (key ring events and token events never share one)");
      }
      if (first) {
        if (e.stream_version != last_version + 1) {
          add("stream", e.seq, e.stream, std::to_string(last_version + 1),
              std::to_string(e.stream_version), "stream version gap");
        } else if (e.seq < last_seq_of_token) {
          add("stream", e.seq, e.stream, "seq after " + std::to_string(last_seq_of_token),
              std::to_string(e.seq), "stream versions are out of sequence order");
        }
        // The stream index entry this event should have (StreamKey -> seq).
        std::memcpy(stream_key, e.stream.Bytes().data(), Id::kBytes);
        put_u64(stream_key + Id::kBytes, e.stream_version);
        put_u64(stream_value, e.seq);
        want_streams.Add(std::string_view(stream_key, sizeof(stream_key)),
                         std::string_view(stream_value, sizeof(stream_value)));
      }
      if (streams) {
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
    if (streams) {
      for (; streams->Valid(); streams->Next()) ++stray_streams;
      if (!streams->status().ok()) return StorageError(streams->status(), "verifying streams");
      if (stray_streams) {
        add("stream", 0, {}, std::to_string(report.events_checked),
            std::to_string(report.events_checked + stray_streams),
            "stream index has entries for events that do not exist");
      }
    }
    if (first && usage) {
      for (; usage->Valid(); usage->Next()) {
        auto uid = Id::FromBytes(usage->key().ToStringView());
        if (!uid || usage->value().size() != 8) {
          add("usage", 0, uid, "token id -> 8-byte time", Hex(usage->key().ToStringView()),
              "malformed usage record");
        } else {
          add("usage", 0, uid, "no record", "a usage record",
              "usage record for a token that does not exist or was deleted");
        }
      }
      if (!usage->status().ok()) return StorageError(usage->status(), "verifying usage records");
    }
    if (details) {
      for (; details->Valid(); details->Next()) {
        add("projection", 0, Id::FromBytes(details->key().ToStringView()), "no row",
            RowText(details->value().ToStringView()),
            "row for a token that does not exist or was deleted");
      }
      if (!details->status().ok()) return StorageError(details->status(), "verifying rows");
    }
    if (options.progress) options.progress(p);
    return Status::Ok();
  };
  if (Status fs = fold({.first = true}); !fs) return fs.error();

  // 3, second half: this thread takes the scans that are left, then the sums are compared.
  // Progress in scan tasks (the stored families' key ranges), also while the helper
  // finishes the last ones.
  auto scan_progress = [&] {
    if (options.progress) options.progress({scans.done(), scans.size(), "scan", "ranges"});
  };
  scan_progress();
  scans.Work(scan_progress);
  while (scans.done() < scans.size() && !stopping.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    scan_progress();
  }
  scan_threads.clear();  // joins
  std::vector<ScanResult>& found = scans.results();
  for (const ScanResult& r : found) {
    if (!r.status) return r.status.error();
  }
  SetDigest found_index;
  std::vector<AccountCounts> edges;  // the list parts' edge accounts, merged by account
  for (std::size_t i = list_first; i < list_end; ++i) {
    found_index.Merge(found[i].digest);
    for (AccountCounts& c : found[i].edges) {
      if (!edges.empty() && edges.back().account == c.account) {
        for (const auto& [k, n] : c.stored) edges.back().stored[k] = n;
        for (const auto& [k, n] : c.recounted) edges.back().recounted[k] += n;
      } else {
        edges.push_back(std::move(c));
      }
    }
  }
  std::vector<VerifyFinding> list_findings;
  for (std::size_t i = list_first; i < list_end; ++i) {
    for (auto& f : found[i].findings) list_findings.push_back(std::move(f));
  }
  for (AccountCounts& c : edges) CheckCounts(c, list_findings);

  FoldPass pinpoint;
  pinpoint.join_streams = !(found[0].digest == want_streams);
  pinpoint.join_details = check_projections && !(found[1].digest == want_rows);
  const bool list_differs = check_projections && !(found_index == want_index);
  if (list_differs) {
    pinpoint.emit_list = [&](const projections::TokenRow& row) -> Status {
      for (const auto& entry : projections::ListIndexEntrySet(row)) {
        if (Status as = sort.AddRaw(kListTag, entry.Key(), entry.Value()); !as) return as;
      }
      return Status::Ok();
    };
  }
  if (pinpoint.join_streams || pinpoint.join_details || list_differs) {
    if (Status fs = fold(pinpoint); !fs) return fs.error();
  }
  for (auto& f : list_findings) report.findings.push_back(std::move(f));
  if (!list_differs) return report;
  if (Status fs = sort.Finish(); !fs) return fs.error();
  sort.ReleaseBuffers();
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
        // The wanted value names the token: the stored one may be what is malformed.
        add("index", 0, token_of(li->key(), want->value()), Hex(want->value().ToStringView()),
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

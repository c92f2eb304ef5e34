// The write path: one committer thread decides queued commands and commits each group of
// them in one synced WriteBatch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <unordered_map>

#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

CommandResult Failed(Outcome outcome, std::string message) {
  CommandResult r;
  r.outcome = outcome;
  r.rejection = core::Rejection{ErrorCode::kUnavailable, std::move(message), {}};
  return r;
}

// Only decisions the ledger made are recorded: a validation failure (invalid_value,
// required_value) records nothing so the client can fix the request and retry with the key.
bool IsRecordedRejection(ErrorCode code) {
  return code == ErrorCode::kInvalidAction || code == ErrorCode::kNotFound;
}

template <std::size_t N>
void Observe(std::array<std::atomic<std::uint64_t>, N + 1>& buckets,
             const std::array<double, N>& bounds, double value) {
  std::size_t i = 0;
  while (i < N && value > bounds[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void LedgerStore::Submit(CommandRequest request, CommandCallback done) {
  {
    std::unique_lock lock(impl_->mu);
    if (impl_->stopping || impl_->mode == OpenMode::kReadOnly) {
      lock.unlock();
      done(Failed(Outcome::kUnavailable, impl_->stopping ? "the ledger is shutting down"
                                                         : "the ledger is open read-only"));
      return;
    }
    if (impl_->degraded.load(std::memory_order_acquire)) {
      lock.unlock();
      done(Failed(Outcome::kUnavailable, impl_->DegradedMessage()));
      return;
    }
    if (impl_->queue.size() >= impl_->options.max_queue_depth) {
      lock.unlock();
      impl_->metrics.overloaded.fetch_add(1, std::memory_order_relaxed);
      done(Failed(Outcome::kOverloaded, "the ledger's write queue is full; retry shortly"));
      return;
    }
    impl_->queue.push_back({std::move(request), std::move(done)});
  }
  impl_->cv.notify_one();
}

std::future<CommandResult> LedgerStore::Submit(CommandRequest request) {
  auto promise = std::make_shared<std::promise<CommandResult>>();
  auto future = promise->get_future();
  Submit(std::move(request), [promise](CommandResult r) { promise->set_value(std::move(r)); });
  return future;
}

std::future<std::uint64_t> LedgerStore::PurgeExpiredIdempotency() {
  std::promise<std::uint64_t> promise;
  auto future = promise.get_future();
  {
    std::lock_guard lock(impl_->mu);
    impl_->purge_requests.push_back(std::move(promise));
  }
  impl_->cv.notify_one();
  return future;
}

void LedgerStore::Impl::CommitterLoop() {
  std::vector<Pending> batch;
  batch.reserve(options.max_batch_size);
  for (;;) {
    std::vector<std::promise<std::uint64_t>> purges;
    {
      std::unique_lock lock(mu);
      // Sleep until the next purge is due (by the injected clock), at least 1 ms and at most
      // 1 s of real time, or until there is work; while degraded, at most until the next
      // recovery attempt.
      auto wait = std::chrono::microseconds(
          std::clamp<Micros>(next_purge_at - Now(), 1000, kMicrosPerSecond));
      if (degraded.load()) {
        wait = std::clamp(std::chrono::duration_cast<std::chrono::microseconds>(UntilRecovery()),
                          std::chrono::microseconds(1000), wait);
      }
      cv.wait_for(lock, wait,
                  [&] { return stopping || !queue.empty() || !purge_requests.empty(); });
      if (stopping && queue.empty() && purge_requests.empty()) break;
      while (!queue.empty() && batch.size() < options.max_batch_size) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      purges.swap(purge_requests);
    }
    if (degraded.load() && RecoveryDue()) TryRecover();
    if (!batch.empty()) {
      if (degraded.load()) {
        FailDegraded(batch);  // no disk touched: refused at once
      } else {
        ProcessBatch(batch);
      }
      batch.clear();
    }
    const Micros now = Now();
    if (degraded.load()) {
      for (auto& p : purges) p.set_value(0);  // purging writes; it waits for the recovery
    } else if (!purges.empty()) {
      std::uint64_t total = 0;
      for (std::uint64_t n; (n = PurgeStep(now, options.idempotency_purge_batch)) > 0;) total += n;
      for (auto& p : purges) p.set_value(total);
    } else if (now >= next_purge_at) {
      // One bounded step between batches; if it filled up, come back soon for the rest.
      const std::uint64_t n = PurgeStep(now, options.idempotency_purge_batch);
      next_purge_at =
          n == options.idempotency_purge_batch ? now : now + options.idempotency_purge_interval;
    }
  }
}

std::uint64_t LedgerStore::Impl::PurgeStep(Micros now, std::size_t limit) {
  const Micros cutoff = now - options.idempotency_ttl;
  if (cutoff <= 0) return 0;
  const std::string lower(1, kIdempotencyExpiryTag);
  // Inclusive: a record is expired once `now - created_at >= ttl`, as lookups judge it.
  const std::string upper = IdempotencyExpiryKey(cutoff + 1, Id(), "");
  rocksdb::ReadOptions ro;
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, idempotency));
  rocksdb::WriteBatch wb;
  std::uint64_t purged = 0;
  for (it->SeekToFirst(); it->Valid() && purged < limit; it->Next()) {
    const std::string_view k = it->key().ToStringView();
    const Micros created = static_cast<Micros>(DecodeU64(k.substr(1)));
    const std::string record_key = std::string(1, kIdempotencyRecordTag).append(k.substr(9));
    wb.Delete(idempotency, it->key());
    // The key may have been reused after it expired: delete the record only if it is this one.
    std::string value;
    if (db->Get(rocksdb::ReadOptions(), idempotency, record_key, &value).ok()) {
      auto record = DecodeIdempotencyRecord(value);
      if (record && record->created_at == created) wb.Delete(idempotency, record_key);
    }
    ++purged;
  }
  if (purged == 0) return 0;
  rocksdb::Status s = db->Write(write_options, &wb);
  if (!s.ok()) {
    std::fprintf(stderr, "tokenledger: idempotency purge failed: %s\n", s.ToString().c_str());
    Degrade(s, "purging expired idempotency records");
    return 0;
  }
  metrics.idempotency_purged.fetch_add(purged, std::memory_order_relaxed);
  return purged;
}

void LedgerStore::Impl::ProcessBatch(std::vector<Pending>& batch) {
  rocksdb::WriteBatch wb;
  rocksdb::ReadOptions ro;
  // What this batch has decided so far, so later commands see earlier ones.
  std::unordered_map<Id, std::optional<projections::TokenRow>, IdHash> rows;
  std::unordered_map<std::string, IdempotencyRecord> records;
  std::uint64_t seq = head_seq;
  events::Hash hash = head_hash;
  Micros at = last_at;
  std::vector<CommandResult> results(batch.size());
  std::uint64_t appended = 0;

  for (std::size_t i = 0; i < batch.size(); ++i) {
    CommandRequest& req = batch[i].request;
    CommandResult& r = results[i];
    // Event times never go backwards, even if the system clock does.
    at = std::max(at, Now());

    std::string record_key;
    if (req.idempotency) {
      record_key = IdempotencyKey(req.idempotency->account_id, req.idempotency->key);
      std::optional<IdempotencyRecord> existing;
      if (auto it = records.find(record_key); it != records.end()) {
        existing = it->second;
      } else {
        std::string value;
        rocksdb::Status s = db->Get(ro, idempotency, record_key, &value);
        if (!s.ok() && !s.IsNotFound()) {
          r = Failed(Outcome::kUnavailable,
                     StorageError(s, "reading an idempotency record").message);
          continue;
        }
        if (s.ok()) existing = DecodeIdempotencyRecord(value);
      }
      if (existing && at - existing->created_at < options.idempotency_ttl) {
        if (existing->fingerprint == req.idempotency->fingerprint) {
          r.outcome = Outcome::kReplayed;
          r.response = existing->response;
        } else {
          r.outcome = Outcome::kKeyConflict;
          r.rejection = {ErrorCode::kIdempotencyKeyAlreadyUsed,
                         "idempotency key was already used for a different request",
                         {}};
        }
        continue;
      }
    }

    core::DecideContext ctx{.now = at, .new_token_id = {}, .policy = options.policy};
    Id target;
    if (const auto* create = std::get_if<core::CreateToken>(&req.command)) {
      target = ctx.new_token_id = hooks.new_token_id(create->account_id);
    } else {
      target = *core::CommandTarget(req.command);
    }
    auto row_it = rows.find(target);
    if (row_it == rows.end()) {
      auto loaded = ReadRow(ro, target);
      if (!loaded) {
        r = Failed(Outcome::kUnavailable, loaded.error().message);
        continue;
      }
      row_it = rows.emplace(target, std::move(*loaded)).first;
    }
    std::optional<projections::TokenRow>& row = row_it->second;
    r.before = row;

    core::Decision decision = core::Decide(req.command, row ? row->state : core::TokenState{}, ctx);
    // A use moves last_used_at through a usage record; only some uses are also events.
    std::optional<Micros> used_at;
    if (const auto* use = std::get_if<core::RecordUse>(&req.command);
        use && row && row->state.Visible() &&
        core::DecideUse(row->state, use->used_at, options.policy).moves_last_used) {
      used_at = use->used_at;
    }
    std::uint64_t first_seq = 0;
    if (auto* rejection = std::get_if<core::Rejection>(&decision)) {
      r.outcome = Outcome::kRejected;
      r.rejection = std::move(*rejection);
      if (!req.idempotency || !IsRecordedRejection(r.rejection.code)) continue;
    } else {
      auto& new_events = std::get<std::vector<events::EventData>>(decision);
      std::uint64_t version = row ? row->state.version : 0;
      for (auto& data : new_events) {
        events::EventEnvelope e;
        e.seq = ++seq;
        e.stream = target;
        e.stream_version = ++version;
        e.schema_version = events::CurrentSchemaVersion(events::TypeName(data));
        e.at = at;
        e.actor = req.actor;
        e.request_id = req.request_id;
        if (req.idempotency) e.idempotency_key = req.idempotency->key;
        e.data = std::move(data);
        e.prev_hash = hash;
        wb.Put(events, EventKey(e.seq), events::EncodeStoredEvent(e));
        wb.Put(streams, StreamKey(target, e.stream_version), EncodeU64(e.seq));
        hash = e.hash;
        if (first_seq == 0) first_seq = e.seq;
        projections::ApplyEvent(row, e);
        r.events.push_back(std::move(e));
      }
      if (used_at) {
        projections::ApplyUse(row, *used_at);
        wb.Put(usage, target.Bytes(), EncodeU64(*used_at));
      }
      if (row && row->state.deleted && r.before && r.before->state.last_used_at) {
        wb.Delete(usage, target.Bytes());  // a deleted token's usage record has no reader
      }
      if (!r.events.empty() || used_at) WriteProjectionChange(wb, details, list, r.before, row);
      appended += r.events.size();
      r.outcome = Outcome::kApplied;
      r.after = row;
    }
    if (req.idempotency) {
      IdempotencyRecord record;
      record.created_at = at;
      record.fingerprint = req.idempotency->fingerprint;
      record.first_seq = first_seq;
      record.event_count = static_cast<std::uint32_t>(r.events.size());
      record.response = req.render(r);
      r.response = record.response;
      wb.Put(idempotency, record_key, EncodeIdempotencyRecord(record));
      wb.Put(idempotency,
             IdempotencyExpiryKey(at, req.idempotency->account_id, req.idempotency->key), "");
      records[record_key] = std::move(record);
    }
  }

  if (seq != head_seq) {
    std::string head = EncodeU64(seq);
    head.append(reinterpret_cast<const char*>(hash.data()), hash.size());
    wb.Put(meta, kMetaChainHead, head);
  }
  bool written = true;
  if (wb.Count() > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    rocksdb::Status s = db->Write(write_options, &wb);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Observe(metrics.sync_buckets, StoreMetrics::kSyncBucketsSeconds, seconds);
    metrics.sync_micros_sum.fetch_add(static_cast<std::uint64_t>(seconds * 1e6),
                                      std::memory_order_relaxed);
    if (!s.ok()) {
      written = false;
      metrics.write_failures.fetch_add(1, std::memory_order_relaxed);
      std::fprintf(stderr, "tokenledger: commit of %zu commands failed: %s\n", batch.size(),
                   s.ToString().c_str());
      const std::string message = StorageError(s, "committing").message;
      for (auto& r : results) r = Failed(Outcome::kUnavailable, message);
      // RocksDB now refuses writes (background error) and its WAL may hold some of this
      // batch: nothing more is decided on top of the in-memory head until a recovery has
      // re-read the head from what is stored.
      Degrade(s, "committing");
    }
  }
  if (written) {
    head_seq = seq;
    head_hash = hash;
    last_at = at;
    committed_seq.store(seq, std::memory_order_release);
    metrics.events_appended.fetch_add(appended, std::memory_order_relaxed);
  }
  metrics.batches.fetch_add(1, std::memory_order_relaxed);
  metrics.commands.fetch_add(batch.size(), std::memory_order_relaxed);
  metrics.batch_size_sum.fetch_add(batch.size(), std::memory_order_relaxed);
  Observe(metrics.batch_size_buckets, StoreMetrics::kBatchBuckets,
          static_cast<double>(batch.size()));

  for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

}  // namespace tokenledger::store

// The write path, a two-stage pipeline:
//   committer thread  takes every queued command (up to max_batch_size), decides them on top
//                     of the decided head and builds one WriteBatch;
//   writer thread     writes that batch with sync=true, then answers its commands.
// So batch N+1 is decided while batch N is being synced, and one fsync serves every command
// that arrived meanwhile. When a write returns, the writer takes the open batch itself (unless
// the committer is deciding into it at that moment): waiting for the committer thread to be
// woken and scheduled to hand it over left the disk idle ~0.4-0.6 ms a batch
// (docs/PERFORMANCE.md). A command is answered only after its own batch is durable; the
// DB shows a batch only once its write returned, so nothing undurable is ever read. If a
// write fails, every batch decided on top of it fails too, unwritten (pipe_epoch), and the
// store degrades (recovery.cc) before anything more is decided.
#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <unordered_map>

#include "src/store/store_impl.h"
#include "tokenledger/thread_name.h"

namespace tokenledger::store {
namespace {

CommandResult Failed(Outcome outcome, std::string message) {
  CommandResult r;
  r.outcome = outcome;
  r.rejection = core::Rejection{ErrorCode::kUnavailable, std::move(message), {}};
  return r;
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
    if (!impl_->cluster_stream.empty() && !impl_->cluster) {
      lock.unlock();
      done(Failed(Outcome::kUnavailable,
                  "this ledger is a cluster node's store: write through a node of the cluster"));
      return;
    }
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
  NameThisThread("tl-committer");
  std::vector<Pending> batch;
  batch.reserve(options.max_batch_size);
  // The open batch (open_batch) takes every command that arrives while the writer syncs the
  // previous one, and goes to the writer as soon as the writer is free (or it is full): the
  // writer takes it itself when its write returns, or this thread hands it over.
  auto hand_off_open = [&] {
    if (auto open = TakeOpenForHandOff()) HandOff(std::move(open));
  };
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
      const bool was_degraded = degraded.load();  // a failed write (writer thread) wakes us
      // Stopping with an open batch waits for the writer like any other open batch.
      cv.wait_for(lock, wait, [&] {
        const bool open = open_commands.load() > 0;
        return (stopping && !open) || !queue.empty() || !purge_requests.empty() ||
               degraded.load() != was_degraded || (open && writer_idle.load());
      });
      if (stopping && queue.empty() && purge_requests.empty() && open_commands.load() == 0) break;
      // The writer may take the open batch meanwhile: the room is then larger, never smaller.
      const std::size_t room = options.max_batch_size - open_commands.load();
      while (!queue.empty() && batch.size() < room) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      purges.swap(purge_requests);
    }
    if (degraded.load() && RecoveryDue()) {
      hand_off_open();     // decided before the failure: it fails with it, or is written
      WaitPipelineIdle();  // the reopen replaces `db` under the writer
      TryRecover();
    }
    if (!batch.empty()) {
      if (degraded.load()) {
        FailDegraded(batch);  // no disk touched: refused at once
      } else {
        // One command at a time under open_mu, so that the writer, when its write returns,
        // rarely finds the open batch in the middle of a decision (it takes what is decided).
        for (Pending& p : batch) {
          std::unique_ptr<DecidedBatch> full;
          {
            std::lock_guard open_lock(open_mu);
            if (!open_batch) open_batch = NewBatch();
            Decide(*open_batch, std::span(&p, 1));
            open_commands.store(open_batch->commands.size());
            if (open_batch->commands.size() >= options.max_batch_size) {
              full = std::move(open_batch);
              open_commands.store(0);
            }
          }
          if (full) HandOff(std::move(full));  // waits for the writer if two are in flight
        }
      }
      batch.clear();
    }
    // To the writer when it is free (and did not take it itself when its write returned).
    if (open_commands.load() > 0 && writer_idle.load()) hand_off_open();
    const Micros now = Now();
    if (degraded.load()) {
      for (auto& p : purges) p.set_value(0);  // purging writes; it waits for the recovery
    } else if (!purges.empty()) {
      hand_off_open();
      WaitPipelineIdle();  // a purge must not delete a record an undurable batch rewrites
      std::uint64_t total = 0;
      for (std::uint64_t n; (n = PurgeStep(now, options.idempotency_purge_batch)) > 0;) total += n;
      for (auto& p : purges) p.set_value(total);
    } else if (now >= next_purge_at) {
      // One bounded step between batches; if it filled up, come back soon for the rest.
      hand_off_open();
      WaitPipelineIdle();
      const std::uint64_t n = PurgeStep(now, options.idempotency_purge_batch);
      next_purge_at =
          n == options.idempotency_purge_batch ? now : now + options.idempotency_purge_interval;
    }
  }
  WaitPipelineIdle();
  {
    std::lock_guard lock(pipe_mu);
    pipe_stop = true;
  }
  pipe_cv.notify_all();
  if (writer.joinable()) writer.join();
}

void LedgerStore::Impl::WaitPipelineIdle() {
  std::unique_lock lock(pipe_mu);
  pipe_cv.wait(lock, [&] { return pipe_batches.empty() && !pipe_writing; });
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
    if (db->Get(rocksdb::ReadOptions(), idempotency, record_key, &value).ok() &&
        value.size() >= 8 && static_cast<Micros>(DecodeU64(value)) == created) {
      wb.Delete(idempotency, record_key);  // created_at leads every record format
    }
    ++purged;
  }
  if (purged == 0) return 0;
  rocksdb::Status s = db->Write(write_options, &wb);
  if (!s.ok()) {
    std::fprintf(stderr, "tokenledger: idempotency purge failed: %s\n", s.ToString().c_str());
    // In cluster mode the applier owns the writes and finds a failing disk itself (and its
    // recovery is re-applying); degrading here would refuse writes with no one to recover.
    if (!cluster) Degrade(s, "purging expired idempotency records");
    return 0;
  }
  metrics.idempotency_purged.fetch_add(purged, std::memory_order_relaxed);
  return purged;
}

Result<std::optional<projections::TokenRow>> LedgerStore::Impl::ReadDecisionRow(
    const rocksdb::ReadOptions& ro, const Id& target) const {
  auto loaded = ReadRow(ro, target);
  if (!loaded || target != events::kKeyRingStream) return loaded;
  // No token, so no row: an invisible one carries the stream's version (never written).
  auto length = StreamLength(ro, target);
  if (!length) return length.error();
  if (*length > 0) {
    loaded->emplace();
    (*loaded)->state.version = *length;
  }
  return loaded;
}

events::EventEnvelope NewEvent(const CommandRequest& req, const Id& target,
                               std::uint64_t stream_version, Micros at, events::EventData data) {
  events::EventEnvelope e;
  e.stream = target;
  e.stream_version = stream_version;
  e.schema_version = events::CurrentSchemaVersion(events::TypeName(data));
  e.at = at;
  e.actor = req.actor;
  e.request_id = req.request_id;
  if (req.idempotency) e.idempotency_key = req.idempotency->key;
  e.data = std::move(data);
  return e;
}

void LedgerStore::Impl::AppendEvent(rocksdb::WriteBatch& wb, events::EventEnvelope& e,
                                    events::Hash& hash, std::optional<projections::TokenRow>& row) {
  e.prev_hash = hash;
  wb.Put(events, EventKey(e.seq), events::EncodeStoredEvent(e));
  wb.Put(streams, StreamKey(e.stream, e.stream_version), EncodeU64(e.seq));
  hash = e.hash;
  projections::ApplyEvent(row, e);
}

bool LedgerStore::Impl::WriteTokenChange(rocksdb::WriteBatch& wb, ListIndexChanges& list_changes,
                                         const Id& target,
                                         const std::optional<projections::TokenRow>& before,
                                         std::optional<projections::TokenRow>& row,
                                         std::optional<Micros> used_at, bool appended) {
  if (used_at) {
    projections::ApplyUse(row, *used_at);
    wb.Put(usage, target.Bytes(), EncodeU64(*used_at));
  }
  if (row && row->state.deleted && before && before->state.last_used_at) {
    wb.Delete(usage, target.Bytes());  // a deleted token's usage record has no reader
  }
  if (!appended && !used_at) return false;
  WriteProjectionChange(wb, details, list, before, row, list_changes);
  return true;
}

IdempotencyRecord LedgerStore::Impl::WriteIdempotencyRecord(rocksdb::WriteBatch& wb,
                                                            const IdempotencyInfo& info, Micros at,
                                                            std::uint64_t first_seq,
                                                            const CommandResult& r) {
  IdempotencyRecord record;
  record.created_at = at;
  record.fingerprint = info.fingerprint;
  record.first_seq = first_seq;
  record.event_count = static_cast<std::uint32_t>(r.events.size());
  record.applied = r.outcome == Outcome::kApplied;
  if (record.applied) {
    // A replay folds the events back into the rows (an applied command without events,
    // a use, replays without rows); usage records are not events.
    if (!r.events.empty()) record.last_used_at = r.ShownRow().state.last_used_at;
  } else {
    record.rejection = r.rejection;
  }
  wb.Put(idempotency, IdempotencyKey(info.account_id, info.key), EncodeIdempotencyRecord(record));
  wb.Put(idempotency, IdempotencyExpiryKey(at, info.account_id, info.key), "");
  return record;
}

bool LedgerStore::Impl::RecordOutcome(IdempotencyRecord& record, const Fingerprint& fingerprint,
                                      CommandResult& r) {
  if (record.fingerprint != fingerprint) {
    r.outcome = Outcome::kKeyConflict;
    r.rejection = {ErrorCode::kIdempotencyKeyAlreadyUsed,
                   "idempotency key was already used for a different request",
                   {}};
    return false;
  }
  r.outcome = Outcome::kReplayed;
  r.replayed = record.applied ? Outcome::kApplied : Outcome::kRejected;
  r.rejection = record.rejection;
  r.legacy_response = std::move(record.legacy_response);
  return record.applied && r.legacy_response.empty() && record.event_count > 0;
}

std::unique_ptr<LedgerStore::Impl::DecidedBatch> LedgerStore::Impl::NewBatch() {
  auto b = std::make_unique<DecidedBatch>();
  {
    std::lock_guard lock(pipe_mu);
    if (pipe_batches.empty() && !pipe_writing && !degraded.load()) {
      // Nothing in flight: the durable head is the decided one (also after a recovery or
      // maintenance writes), and everything decided is readable from the DB. Not while
      // degraded: a write failed after the committer last looked, the head is not re-read
      // yet, and this batch keeps the old epoch, so HandOff fails it unwritten.
      decided_seq = head_seq;
      decided_hash = head_hash;
      decided_at = std::max(decided_at, last_at);
      decide_epoch = pipe_epoch;
      undurable_rows.clear();
      undurable_records.clear();
    }
    b->epoch = decide_epoch;
  }
  const std::uint64_t durable = durable_batches.load(std::memory_order_acquire);
  std::erase_if(undurable_rows, [&](const auto& e) { return e.second.batch <= durable; });
  std::erase_if(undurable_records, [&](const auto& e) { return e.second.batch <= durable; });
  b->number = ++decided_batches;
  b->first_seq = decided_seq + 1;
  return b;
}

void LedgerStore::Impl::Decide(DecidedBatch& b, std::span<Pending> commands) {
  const std::size_t begin = b.commands.size();
  for (auto& p : commands) b.commands.push_back(std::move(p));
  b.results.resize(b.commands.size());
  b.replays.resize(b.commands.size());
  rocksdb::WriteBatch& wb = b.wb;
  rocksdb::ReadOptions ro;
  std::uint64_t seq = decided_seq;
  events::Hash hash = decided_hash;
  Micros at = decided_at;

  for (std::size_t i = begin; i < b.commands.size(); ++i) {
    CommandRequest& req = b.commands[i].request;
    CommandResult& r = b.results[i];
    // Event times never go backwards, even if the system clock does.
    at = std::max(at, Now());

    std::string record_key;
    if (req.idempotency) {
      record_key = IdempotencyKey(req.idempotency->account_id, req.idempotency->key);
      std::optional<IdempotencyRecord> existing;
      if (auto it = undurable_records.find(record_key); it != undurable_records.end()) {
        existing = it->second.value;
      } else {
        std::string value;
        rocksdb::Status s = db->Get(ro, idempotency, record_key, &value);
        if (!s.ok() && !s.IsNotFound()) {
          r = Failed(Outcome::kUnavailable,
                     StorageError(s, "reading an idempotency record").message);
          continue;
        }
        if (s.ok()) {
          existing = DecodeIdempotencyRecord(value);
          if (!existing) {  // deciding again could make a second outcome for the key
            r = Failed(Outcome::kUnavailable,
                       "the idempotency record of this key is unreadable; see the server log");
            std::fprintf(stderr, "tokenledger: unreadable idempotency record (%zu bytes)\n",
                         value.size());
            continue;
          }
        }
      }
      if (existing && at - existing->created_at < options.idempotency_ttl) {
        if (RecordOutcome(*existing, req.idempotency->fingerprint, r)) {
          b.replays[i] = std::move(existing);
        }
        continue;
      }
    }

    if (req.only_into_empty_ledger && seq != 0) {
      r.outcome = Outcome::kRejected;
      r.rejection = {ErrorCode::kInvalidAction, "the ledger is not empty", {}};
      continue;
    }
    core::DecideContext ctx{.now = at, .new_token_id = {}, .policy = options.policy};
    Id target;
    if (const auto* create = std::get_if<core::CreateToken>(&req.command)) {
      target = ctx.new_token_id = hooks.new_token_id(create->account_id);
    } else {
      target = *core::CommandTarget(req.command);
    }
    auto row_it = undurable_rows.find(target);
    if (row_it == undurable_rows.end()) {
      auto loaded = ReadDecisionRow(ro, target);
      if (!loaded) {
        r = Failed(Outcome::kUnavailable, loaded.error().message);
        continue;
      }
      row_it = undurable_rows
                   .emplace(target,
                            Undurable<std::optional<projections::TokenRow>>{std::move(*loaded), 0})
                   .first;
    }
    std::optional<projections::TokenRow>& row = row_it->second.value;
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
        events::EventEnvelope e = NewEvent(req, target, ++version, at, std::move(data));
        e.seq = ++seq;
        AppendEvent(wb, e, hash, row);
        if (first_seq == 0) first_seq = e.seq;
        r.events.push_back(std::move(e));
      }
      if (WriteTokenChange(wb, b.list_changes, target, r.before, row, used_at, !r.events.empty())) {
        row_it->second.batch = b.number;
        b.changed_rows.push_back(target);
      }
      b.appended += r.events.size();
      r.outcome = Outcome::kApplied;
      r.after = row;
    }
    if (req.idempotency) {
      undurable_records[record_key] = {
          WriteIdempotencyRecord(wb, *req.idempotency, at, first_seq, r), b.number};
    }
  }

  decided_seq = b.seq = seq;
  decided_hash = b.hash = hash;
  decided_at = b.at = at;
}

void LedgerStore::Impl::Seal(DecidedBatch& b) {
  b.list_changes.WriteTo(b.wb);
  if (b.seq >= b.first_seq) {  // events appended: the chain head moves with them
    std::string head = EncodeU64(b.seq);
    head.append(reinterpret_cast<const char*>(b.hash.data()), b.hash.size());
    b.wb.Put(meta, kMetaChainHead, head);
  }
}

std::unique_ptr<LedgerStore::Impl::DecidedBatch> LedgerStore::Impl::TakeOpenForHandOff() {
  std::lock_guard open_lock(open_mu);
  open_commands.store(0);
  return std::move(open_batch);
}

std::unique_ptr<LedgerStore::Impl::DecidedBatch> LedgerStore::Impl::TakeOpenBatch() {
  std::unique_lock open_lock(open_mu, std::try_to_lock);
  if (!open_lock.owns_lock() || !open_batch) return nullptr;  // being decided into, or none
  {
    std::lock_guard pipe_lock(pipe_mu);
    // A full batch handed over before it is older and goes first; a batch of an older epoch
    // fails at the committer's hand-off.
    if (!pipe_batches.empty() || open_batch->epoch != pipe_epoch) return nullptr;
  }
  std::unique_ptr<DecidedBatch> b = std::move(open_batch);
  open_commands.store(0);
  open_lock.unlock();
  Seal(*b);
  metrics.batches_taken_by_writer.fetch_add(1, std::memory_order_relaxed);
  return b;
}

void LedgerStore::Impl::HandOff(std::unique_ptr<DecidedBatch> batch) {
  Seal(*batch);
  {
    std::unique_lock lock(pipe_mu);
    pipe_cv.wait(
        lock, [&] { return pipe_batches.size() + (pipe_writing ? 1 : 0) < kMaxBatchesInFlight; });
    if (batch->epoch == pipe_epoch) {
      writer_idle.store(false);
      pipe_batches.push_back(std::move(batch));
      pipe_cv.notify_all();
      return;
    }
  }
  // A write failed after this batch was decided on top of it: it fails too, unwritten. The
  // next batch starts from the durable head (NewBatch).
  Discard(*batch);
}

void LedgerStore::Impl::Discard(DecidedBatch& batch) {
  metrics.batches_discarded.fetch_add(1, std::memory_order_relaxed);
  const std::string message = DegradedMessage();
  for (auto& p : batch.commands) p.done(Failed(Outcome::kUnavailable, message));
}

void LedgerStore::Impl::WriterLoop() {
  NameThisThread("tl-writer");
  std::unique_ptr<DecidedBatch> batch;
  for (;;) {
    if (!batch) {
      std::unique_lock lock(pipe_mu);
      pipe_cv.wait(lock, [&] { return pipe_stop || !pipe_batches.empty(); });
      if (pipe_batches.empty()) return;
      batch = std::move(pipe_batches.front());
      pipe_batches.pop_front();
      pipe_writing = true;
    }
    // pipe_writing stays true from one batch to the open one taken after it: to the committer's
    // NewBatch the pipeline is never idle in between.
    batch = WriteBatch(*batch) ? TakeOpenBatch() : nullptr;
    if (batch) continue;
    {
      // Under both locks (mu, then pipe_mu: the only order they nest in), so the committer is
      // either waiting or sees the flag, and a HandOff cannot slip between the check and the
      // store and be overwritten.
      std::lock_guard lock(mu);
      std::lock_guard pipe_lock(pipe_mu);
      pipe_writing = false;
      writer_idle.store(pipe_batches.empty());
    }
    pipe_cv.notify_all();
    cv.notify_all();  // the committer's open batch may go now
  }
}

bool LedgerStore::Impl::WriteBatch(DecidedBatch& b) {
  const std::size_t n = b.commands.size();
  rocksdb::Status s;
  if (b.wb.Count() > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    s = db->Write(write_options, &b.wb);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Observe(metrics.sync_buckets, StoreMetrics::kSyncBucketsSeconds, seconds);
    metrics.sync_micros_sum.fetch_add(static_cast<std::uint64_t>(seconds * 1e6),
                                      std::memory_order_relaxed);
  }
  // Before any answer; after a failed write too, which may have left part of it visible.
  for (const Id& token : b.changed_rows) row_cache->Invalidate(token);
  std::vector<std::unique_ptr<DecidedBatch>> doomed;  // decided on top of a failed write
  if (s.ok()) {
    std::lock_guard lock(pipe_mu);
    head_seq = b.seq;
    head_hash = b.hash;
    last_at = b.at;
    committed_seq.store(b.seq, std::memory_order_release);
    durable_batches.store(b.number, std::memory_order_release);
  } else {
    metrics.write_failures.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stderr, "tokenledger: commit of %zu commands failed: %s\n", n,
                 s.ToString().c_str());
    const std::string message = StorageError(s, "committing").message;
    for (auto& r : b.results) r = Failed(Outcome::kUnavailable, message);
    // RocksDB now refuses writes (background error) and its WAL may hold some of this batch:
    // nothing more is decided on top of the in-memory head until a recovery has re-read the
    // head from what is stored.
    Degrade(s, "committing");
    std::lock_guard lock(pipe_mu);
    ++pipe_epoch;
    while (!pipe_batches.empty()) {
      doomed.push_back(std::move(pipe_batches.front()));
      pipe_batches.pop_front();
    }
  }
  if (s.ok()) {
    metrics.events_appended.fetch_add(b.appended, std::memory_order_relaxed);
    metrics.keys_written.fetch_add(b.wb.Count(), std::memory_order_relaxed);
    metrics.bytes_written.fetch_add(b.wb.GetDataSize(), std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      if (!b.replays[i]) continue;
      if (Status st = FillReplayed(*b.replays[i], b.results[i]); !st) {
        b.results[i] = Failed(Outcome::kUnavailable, st.error().message);
      }
    }
  }
  metrics.batches.fetch_add(1, std::memory_order_relaxed);
  metrics.commands.fetch_add(n, std::memory_order_relaxed);
  metrics.batch_size_sum.fetch_add(n, std::memory_order_relaxed);
  Observe(metrics.batch_size_buckets, StoreMetrics::kBatchBuckets, static_cast<double>(n));

  for (std::size_t i = 0; i < n; ++i) b.commands[i].done(std::move(b.results[i]));
  for (auto& d : doomed) Discard(*d);
  return s.ok();
}

Status LedgerStore::Impl::FillReplayed(const IdempotencyRecord& record, CommandResult& r) {
  rocksdb::ReadOptions ro;
  auto first = ReadEvent(ro, record.first_seq);
  if (!first) return first.error();
  if (!*first) {
    return Error{ErrorCode::kUnexpected,
                 "idempotency record points at missing event " + std::to_string(record.first_seq),
                 {}};
  }
  const std::uint64_t first_version = (*first)->stream_version;
  const std::uint64_t last_version = first_version + record.event_count - 1;
  auto stream = ReadStream((*first)->stream, 0, static_cast<std::uint32_t>(last_version));
  if (!stream) return stream.error();
  if (stream->events.size() != last_version) {
    return Error{
        ErrorCode::kUnexpected, "a replayed request's stream is shorter than its record", {}};
  }
  std::optional<projections::TokenRow> row;
  for (auto& e : stream->events) {
    if (e.stream_version == first_version) r.before = row;
    projections::ApplyEvent(row, e);
    if (e.stream_version >= first_version) r.events.push_back(std::move(e));
  }
  r.after = std::move(row);
  for (auto* shown : {&r.before, &r.after}) {
    if (*shown) (*shown)->state.last_used_at = record.last_used_at;
  }
  return Status::Ok();
}

}  // namespace tokenledger::store

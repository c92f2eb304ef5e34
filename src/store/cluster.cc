// Cluster mode: proposals to JetStream, applied in stream order (see cluster.h).
#include "src/store/cluster.h"

#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "src/store/jetstream.h"
#include "src/store/proposal.h"
#include "src/store/store_impl.h"
#include "tokenledger/log.h"
#include "tokenledger/thread_name.h"

namespace tokenledger::store {
namespace {

using Clock = std::chrono::steady_clock;

// Messages applied in one local write, at most.
constexpr int kMaxApplyBatch = 512;
// How often the applier asks JetStream for the stream's last sequence (lag, readiness), and
// how long it may see no message while behind before it subscribes again.
constexpr auto kStreamInfoInterval = std::chrono::milliseconds(250);
constexpr auto kStalledConsumer = std::chrono::seconds(2);
// Stream information older than this means JetStream is not answering: not ready.
constexpr auto kStreamInfoStale = std::chrono::seconds(3);
// Idempotency records are purged this much later than their TTL in cluster mode: every node
// must agree on which records exist when it applies a message decided by another node's
// clock, so the purge leaves a margin for clock skew between nodes.
constexpr Micros kPurgeClockMargin = 10 * kMicrosPerMinute;

CommandResult Unavailable(std::string message) {
  CommandResult r;
  r.outcome = Outcome::kUnavailable;
  r.rejection = core::Rejection{ErrorCode::kUnavailable, std::move(message), {}};
  return r;
}

std::string SubjectKey(const Id& token) {
  return std::string(kMetaClusterSubjectPrefix).append(token.Bytes());
}

std::string RandomNodeId() {
  std::random_device rd;
  std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

struct ClusterLog::State {
  LedgerStore::Impl& impl;
  const ClusterOptions& opts;
  std::string subject_prefix;  // "tokenledger.<stream>."
  std::string node_id = RandomNodeId();
  std::uint64_t proposals = 0;  // committer thread only

  natsOptions* nopts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;  // applier thread only

  // A command between its publish and its answer. Its target is busy meanwhile.
  struct InFlight {
    LedgerStore::Impl::Pending pending;
    Id target;
    std::uint64_t expected_subject_seq = 0;
    int attempt = 0;
    Clock::time_point deadline;
  };
  // Work for the proposer: a new command, or one to decide again (attempt > 0) that still
  // holds its target.
  struct Work {
    LedgerStore::Impl::Pending pending;
    int attempt = 0;
    std::optional<Id> held;
  };

  mutable std::mutex mu;
  std::unordered_map<std::string, InFlight> in_flight;                     // by proposal id
  std::unordered_map<Id, std::deque<Work>, IdHash> busy;                   // target -> parked
  std::unordered_map<Id, std::vector<std::string>, IdHash> subject_waits;  // retry when it moves
  std::multimap<std::uint64_t, std::string> seq_waits;  // retry once applied reaches the seq
  std::deque<Work> retries;                             // guarded by impl.mu (with the queue)

  std::atomic<std::uint64_t> applied{0};      // last applied stream sequence
  std::atomic<std::uint64_t> stream_last{0};  // the stream's last sequence, as last asked
  std::atomic<bool> connected{false};
  std::atomic<bool> stop{false};
  std::atomic<bool> stopping{false};  // the store is closing: commands still queued fail
  std::string apply_error;  // applier thread: why the last batch failed; empty once one works
  // Applier thread: the stream's last sequence when this node (re)connected; ready only once
  // it has applied that far. Reset by a disconnection.
  std::optional<std::uint64_t> catch_up_target;
  mutable std::mutex health_mu;
  std::string not_ready = "connecting to JetStream";  // guarded by health_mu
  Micros not_ready_since = 0;                         // guarded by health_mu
  std::thread applier;
  std::mutex closed_mu;
  std::condition_variable closed_cv;
  bool closed = false;  // guarded by closed_mu

  State(LedgerStore::Impl& i) : impl(i), opts(i.options.cluster) {
    subject_prefix = SubjectPrefix(opts);
    not_ready_since = impl.Now();
  }

  void SetNotReady(std::string why) {
    std::lock_guard lock(health_mu);
    if (not_ready != why && !why.empty()) {
      Log(LogLevel::kWarn, "cluster node not ready", {{"reason", why}});
    } else if (why.empty() && !not_ready.empty()) {
      Log(LogLevel::kInfo, "cluster node ready",
          {{"applied_seq", static_cast<long long>(applied.load())}});
    }
    if (not_ready.empty() && !why.empty()) not_ready_since = impl.Now();
    not_ready = std::move(why);
  }

  std::uint64_t ReadSubjectSeq(const Id& token,
                               const rocksdb::ReadOptions& ro = rocksdb::ReadOptions()) const {
    std::string value;
    rocksdb::Status s = impl.db->Get(ro, impl.meta, SubjectKey(token), &value);
    return s.ok() && value.size() >= 8 ? DecodeU64(value) : 0;
  }

  // ---- connection and stream ----

  static void OnDisconnected(natsConnection*, void* closure) {
    auto* st = static_cast<State*>(closure);
    st->connected.store(false);
    st->impl.metrics.cluster_connected.store(0);
  }
  static void OnClosed(natsConnection*, void* closure) {
    auto* st = static_cast<State*>(closure);
    std::lock_guard lock(st->closed_mu);
    st->closed = true;
    st->closed_cv.notify_all();
  }
  // Closes the connection and waits until the client has called its last callback: after
  // that no NATS thread touches this State (natsConnection_Close queues the disconnected and
  // closed callbacks; the ack handler runs on the connection's threads too).
  void CloseConnection() {
    if (!nc) return;
    natsConnection_Close(nc);
    std::unique_lock lock(closed_mu);
    closed_cv.wait_for(lock, std::chrono::seconds(10), [&] { return closed; });
  }
  static void OnReconnected(natsConnection*, void* closure) {
    auto* st = static_cast<State*>(closure);
    st->connected.store(true);
    st->impl.metrics.cluster_connected.store(1);
  }

  Status Connect() {
    natsStatus s = natsOptions_Create(&nopts);
    const std::vector<std::string> urls = SplitUrls(opts.urls);
    std::vector<const char*> raw;
    for (auto& u : urls) raw.push_back(u.c_str());
    if (s == NATS_OK) s = natsOptions_SetServers(nopts, raw.data(), static_cast<int>(raw.size()));
    if (s == NATS_OK) s = natsOptions_SetName(nopts, ("tokenledgerd " + node_id).c_str());
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nopts, -1);  // forever
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(nopts, 250);
    if (s == NATS_OK) s = natsOptions_SetTimeout(nopts, 2000);
    if (s == NATS_OK) s = natsOptions_SetPingInterval(nopts, 1000);
    if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(nopts, 2);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(nopts, OnDisconnected, this);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(nopts, OnReconnected, this);
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(nopts, true, OnReconnected, this);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(nopts, OnClosed, this);
    if (s != NATS_OK) return Error{ErrorCode::kUnavailable, NatsError(s, "NATS options"), {}};
    s = natsConnection_Connect(&nc, nopts);
    if (s == NATS_OK) {
      connected.store(true);
      impl.metrics.cluster_connected.store(1);
    } else if (s != NATS_NOT_YET_CONNECTED) {
      return Error{ErrorCode::kUnavailable, NatsError(s, "connecting to NATS"), {}};
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = kMaxPendingPublishes;
    jo.PublishAsync.AckHandler = OnAck;
    jo.PublishAsync.AckHandlerClosure = this;
    s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK) return Error{ErrorCode::kUnavailable, NatsError(s, "JetStream context"), {}};
    return Status::Ok();
  }

  // Creates the stream if it does not exist; ok if it does.
  bool EnsureStream() {
    if (Status s = CreateStream(js, opts, impl.options.idempotency_ttl); !s) {
      SetNotReady(s.error().message);
      return false;
    }
    return true;
  }

  bool Subscribe() {
    if (sub) {
      natsSubscription_Destroy(sub);
      sub = nullptr;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = opts.stream.c_str();
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = applied.load() + 1;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string wildcard = subject_prefix + ">";
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = kJetStreamApiWaitMs;  // a new meta leader may take seconds: try again soon
    natsStatus s = js_SubscribeSync(&sub, js, wildcard.c_str(), &jo, &so, &jerr);
    if (s != NATS_OK) {
      sub = nullptr;
      SetNotReady(NatsError(s, "subscribing to JetStream stream " + opts.stream));
      return false;
    }
    return true;
  }

  // ---- proposer (committer thread) ----

  // Frees `target` for the next command that waited for it.
  void Release(const Id& target) {
    std::deque<Work> parked;
    {
      std::lock_guard lock(mu);
      auto it = busy.find(target);
      if (it == busy.end()) return;
      parked.swap(it->second);
      busy.erase(it);
    }
    if (parked.empty()) return;
    {
      std::lock_guard lock(impl.mu);
      for (auto& w : parked) retries.push_back(std::move(w));
    }
    impl.cv.notify_all();
  }

  // Decides one command and publishes it, or answers it at once (a replay, or a rejection no
  // key records).
  void Propose(Work w) {
    CommandRequest& req = w.pending.request;
    // The answer first, then the token: the proposer stops only once every token is free, so
    // no callback is still running when the store closes.
    auto finish = [&](CommandResult r) {
      w.pending.done(std::move(r));
      if (w.held) Release(*w.held);
    };
    if (stopping.load()) return finish(Unavailable("the ledger is shutting down"));
    if (!connected.load()) {
      impl.metrics.cluster_publish_failures.fetch_add(1, std::memory_order_relaxed);
      return finish(Unavailable("the cluster's JetStream is unreachable from this node"));
    }
    const Micros at = impl.Now();
    // One snapshot for the record, the row and the subject's sequence: a batch applied between
    // two of those reads would make a decision on a state that never was.
    SnapshotPtr snapshot = impl.Snapshot();
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot.get();
    // A key this node has already applied: its outcome, with no message.
    if (req.idempotency) {
      std::string value;
      rocksdb::Status s =
          impl.db->Get(ro, impl.idempotency,
                       IdempotencyKey(req.idempotency->account_id, req.idempotency->key), &value);
      if (!s.ok() && !s.IsNotFound()) {
        return finish(Unavailable(StorageError(s, "reading an idempotency record").message));
      }
      if (s.ok()) {
        std::optional<IdempotencyRecord> rec = DecodeIdempotencyRecord(value);
        if (!rec) return finish(Unavailable("the idempotency record of this key is unreadable"));
        if (at - rec->created_at < impl.options.idempotency_ttl) {
          return finish(FromRecord(std::move(*rec), req.idempotency->fingerprint));
        }
      }
    }
    core::DecideContext ctx{.now = at, .new_token_id = {}, .policy = impl.options.policy};
    Id target;
    if (const auto* create = std::get_if<core::CreateToken>(&req.command)) {
      target = ctx.new_token_id = impl.hooks.new_token_id(create->account_id);
    } else {
      target = *core::CommandTarget(req.command);
    }
    if (w.held && *w.held != target) {
      Release(*w.held);
      w.held.reset();
    }
    if (!w.held) {
      std::lock_guard lock(mu);
      auto [it, inserted] = busy.try_emplace(target);
      if (!inserted) {  // a command of this node on the same token is in flight: after it
        it->second.push_back(std::move(w));
        return;
      }
      w.held = target;
    }
    auto loaded = impl.ReadDecisionRow(ro, target);
    if (!loaded) return finish(Unavailable(loaded.error().message));
    std::optional<projections::TokenRow>& row = *loaded;
    const std::uint64_t subject_seq = ReadSubjectSeq(target, ro);

    Proposal p;
    p.stream = target;
    p.version = row ? row->state.version : 0;
    p.subject_seq = subject_seq;
    p.at = at;
    p.idempotency = req.idempotency;
    core::Decision decision = core::Decide(req.command, row ? row->state : core::TokenState{}, ctx);
    if (auto* rejection = std::get_if<core::Rejection>(&decision)) {
      if (!req.idempotency || !IsRecordedRejection(rejection->code)) {
        CommandResult r;
        r.outcome = Outcome::kRejected;
        r.rejection = std::move(*rejection);
        r.before = row;
        return finish(std::move(r));
      }
      p.applied = false;
      p.rejection = std::move(*rejection);
    } else {
      std::uint64_t version = p.version;
      for (auto& data : std::get<std::vector<events::EventData>>(decision)) {
        p.events.push_back(NewEvent(req, target, ++version, at, std::move(data)));
      }
      if (const auto* use = std::get_if<core::RecordUse>(&req.command);
          use && row && row->state.Visible() &&
          core::DecideUse(row->state, use->used_at, impl.options.policy).moves_last_used) {
        p.used_at = use->used_at;
      }
      if (p.events.empty() && !p.used_at && !req.idempotency) {  // nothing to write
        CommandResult r;
        r.outcome = Outcome::kApplied;
        r.before = row;
        r.after = row;
        return finish(std::move(r));
      }
    }
    if (req.only_into_empty_ledger && (impl.committed_seq.load() != 0 || applied.load() != 0)) {
      CommandResult r;
      r.outcome = Outcome::kRejected;
      r.rejection = {ErrorCode::kInvalidAction, "the ledger is not empty", {}};
      return finish(std::move(r));
    }
    p.id = node_id + "-" + std::to_string(++proposals);
    const std::string body = EncodeProposal(p);
    const std::string subject = subject_prefix + target.ToString();

    natsMsg* msg = nullptr;
    natsStatus s =
        natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    const std::string expected = std::to_string(subject_seq);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, kProposalHeader, p.id.c_str());
    if (s == NATS_OK) {
      s = natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", expected.c_str());
    }
    if (s == NATS_OK && req.only_into_empty_ledger) {
      s = natsMsgHeader_Set(msg, "Nats-Expected-Last-Sequence", "0");
    }
    std::string msg_id;
    // Only on a first attempt: a decision made again (its first message was refused, or stored
    // and skipped at apply) must not be dropped as a duplicate of that one. The apply's record
    // check holds keys beyond the de-duplication anyway.
    if (s == NATS_OK && req.idempotency && w.attempt == 0) {
      // One account's key is one message id: JetStream drops a second publish of it within
      // its de-duplication window, wherever it was sent from.
      msg_id = req.idempotency->account_id.ToString() + "/" + req.idempotency->key;
      s = natsMsgHeader_Set(msg, "Nats-Msg-Id", msg_id.c_str());
    }
    if (s != NATS_OK) {
      if (msg) natsMsg_Destroy(msg);
      return finish(Unavailable(NatsError(s, "building a cluster message")));
    }
    {
      std::lock_guard lock(mu);
      InFlight f{std::move(w.pending), target, subject_seq, w.attempt,
                 Clock::now() + std::chrono::microseconds(opts.publish_timeout)};
      in_flight.emplace(p.id, std::move(f));
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = opts.publish_timeout / 1000;
    s = js_PublishMsgAsync(js, &msg, &po);
    if (s != NATS_OK) {
      if (msg) natsMsg_Destroy(msg);
      impl.metrics.cluster_publish_failures.fetch_add(1, std::memory_order_relaxed);
      Finish(p.id, Unavailable(NatsError(s, "publishing to JetStream")));
    }
  }

  // The answer a stored record gives a request with `fingerprint`. REQUIRES: the record's
  // events are applied.
  CommandResult FromRecord(IdempotencyRecord rec, const Fingerprint& fingerprint) {
    CommandResult r;
    if (LedgerStore::Impl::RecordOutcome(rec, fingerprint, r)) {
      if (Status st = impl.FillReplayed(rec, r); !st) return Unavailable(st.error().message);
    }
    return r;
  }

  // Takes a proposal out of flight; returns its entry (nullopt if already answered).
  std::optional<InFlight> Take(const std::string& id) {
    std::lock_guard lock(mu);
    auto it = in_flight.find(id);
    if (it == in_flight.end()) return std::nullopt;
    InFlight f = std::move(it->second);
    in_flight.erase(it);
    return f;
  }

  // Answers a proposal in flight (if it still is) and frees its token.
  void Finish(const std::string& id, CommandResult r) {
    if (auto f = Take(id)) {
      f->pending.done(std::move(r));
      Release(f->target);
    }
  }

  // Decides the proposal's command again (still holding its target), or gives up.
  void Retry(const std::string& id) {
    auto f = Take(id);
    if (!f) return;
    impl.metrics.cluster_publish_retries.fetch_add(1, std::memory_order_relaxed);
    if (f->attempt + 1 > opts.max_retries) {
      f->pending.done(Unavailable(
          "the token kept changing on other nodes while this request was decided; retry"));
      Release(f->target);
      return;
    }
    {
      std::lock_guard lock(impl.mu);
      retries.push_back(Work{std::move(f->pending), f->attempt + 1, f->target});
    }
    impl.cv.notify_all();
  }

  // JetStream's answer to a publish (a NATS thread).
  static void OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* st = static_cast<State*>(closure);
    const char* pid = nullptr;
    if (natsMsgHeader_Get(msg, kProposalHeader, &pid) == NATS_OK && pid) {
      st->OnPublished(pid, pa, pae);
    }
    natsMsg_Destroy(msg);
  }

  void OnPublished(const std::string& id, jsPubAck* pa, jsPubAckErr* pae) {
    if (pa && !pa->Duplicate) return;  // stored: answered once this node has applied it
    if (pa) {
      // A duplicate of an idempotency key stored at pa->Sequence: answered from the record
      // once this node has applied that message.
      std::unique_lock lock(mu);
      auto it = in_flight.find(id);
      if (it == in_flight.end()) return;
      if (applied.load() < pa->Sequence) {
        seq_waits.emplace(pa->Sequence, id);
        return;
      }
      lock.unlock();
      return Retry(id);
    }
    if (pae && pae->ErrCode == JSStreamWrongLastSequenceErr) {
      std::unique_lock lock(mu);
      auto it = in_flight.find(id);
      if (it == in_flight.end()) return;
      if (it->second.pending.request.only_into_empty_ledger) {
        lock.unlock();
        CommandResult r;
        r.outcome = Outcome::kRejected;
        r.rejection = {ErrorCode::kInvalidAction, "the ledger is not empty", {}};
        return Finish(id, std::move(r));
      }
      // Another node wrote the token after what this node decided on: decide again once this
      // node has applied that write. (The applier checks the waits after its write, and this
      // reads after taking the lock: one of the two sees the other.)
      const Id target = it->second.target;
      if (ReadSubjectSeq(target) <= it->second.expected_subject_seq) {
        subject_waits[target].push_back(id);
        return;
      }
      lock.unlock();
      return Retry(id);
    }
    impl.metrics.cluster_publish_failures.fetch_add(1, std::memory_order_relaxed);
    std::string why = "JetStream did not store the write";
    if (pae) {
      why += std::string(": ") + (pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
    }
    Finish(id, Unavailable(why + "; it may still be applied: retry with the same idempotency key"));
  }

  // Answers 503 to proposals JetStream has not answered in time.
  void ExpireInFlight() {
    std::vector<std::string> late;
    const auto now = Clock::now();
    {
      std::lock_guard lock(mu);
      for (auto& [id, f] : in_flight) {
        if (now >= f.deadline + std::chrono::seconds(1)) late.push_back(id);
      }
    }
    for (auto& id : late) {
      impl.metrics.cluster_publish_failures.fetch_add(1, std::memory_order_relaxed);
      Finish(id, Unavailable("no answer from the cluster in time; the write may still be "
                             "applied: retry with the same idempotency key"));
    }
  }

  void ProposerLoop() {
    NameThisThread("tl-proposer");
    for (;;) {
      std::vector<Work> work;
      bool closing = false;
      {
        std::unique_lock lock(impl.mu);
        impl.cv.wait_for(lock, std::chrono::milliseconds(100),
                         [&] { return impl.stopping || !impl.queue.empty() || !retries.empty(); });
        closing = impl.stopping;
        stopping.store(closing);
        // Purging is the applier's in cluster mode (by the stream's time): a caller asking now
        // is answered at once.
        for (auto& pr : impl.purge_requests) pr.set_value(0);
        impl.purge_requests.clear();
        while (!retries.empty()) {
          work.push_back(std::move(retries.front()));
          retries.pop_front();
        }
        while (!impl.queue.empty()) {
          work.push_back(Work{std::move(impl.queue.front()), 0, std::nullopt});
          impl.queue.pop_front();
        }
      }
      for (auto& w : work) Propose(std::move(w));
      ExpireInFlight();
      if (closing) {
        std::lock_guard lock(mu);
        std::lock_guard qlock(impl.mu);
        if (in_flight.empty() && impl.queue.empty() && retries.empty() && busy.empty()) break;
      }
    }
  }

  // ---- applier ----

  struct BatchState {
    rocksdb::WriteBatch wb;
    ListIndexChanges list_changes;  // into wb before the write
    std::unordered_map<Id, std::optional<projections::TokenRow>, IdHash> rows;
    std::unordered_map<std::string, IdempotencyRecord> records;
    std::uint64_t seq = 0;
    events::Hash hash{};
    Micros last_at = 0;
    std::uint64_t events = 0;
    std::vector<std::pair<std::string, CommandResult>> answers;  // this node's proposals
    std::vector<std::pair<std::string, Fingerprint>> replays;    // answered from the record
    std::vector<std::string> retries;                            // decided on a stale state
    std::unordered_set<Id, IdHash> subjects;
    std::unordered_map<Id, std::uint64_t, IdHash> subject_seqs;  // written by this batch
  };

  std::uint64_t SubjectSeqIn(const BatchState& b, const Id& token) const {
    if (auto it = b.subject_seqs.find(token); it != b.subject_seqs.end()) return it->second;
    return ReadSubjectSeq(token);
  }

  Result<std::optional<projections::TokenRow>*> Row(BatchState& b, const Id& token) {
    auto it = b.rows.find(token);
    if (it == b.rows.end()) {
      auto loaded = impl.ReadDecisionRow(rocksdb::ReadOptions(), token);
      if (!loaded) return loaded.error();
      it = b.rows.emplace(token, std::move(*loaded)).first;
    }
    return &it->second;
  }

  // Applies one message into the batch. An error (a storage error, or a message of a newer
  // format) fails the whole batch: nothing of it is written, the node is not ready, and the
  // applier starts over from its last applied message.
  Status ApplyMessage(BatchState& b, std::uint64_t stream_seq, const Id& subject_token,
                      std::string_view data) {
    // Whatever this message does, the subject's last sequence is now its own (JetStream's
    // view, which the next proposal on the token expects). Read before, written after.
    const std::uint64_t subject_before = SubjectSeqIn(b, subject_token);
    b.subjects.insert(subject_token);
    b.subject_seqs[subject_token] = stream_seq;
    b.wb.Put(impl.meta, SubjectKey(subject_token), EncodeU64(stream_seq));
    auto decoded = DecodeProposal(data);
    if (!decoded && decoded.error().code == ErrorCode::kUnavailable) return decoded.error();
    if (!decoded) {
      // Deterministic on every node: the message is skipped everywhere, and logged.
      Log(LogLevel::kError, "cluster message skipped",
          {{"stream_seq", static_cast<long long>(stream_seq)},
           {"reason", decoded.error().message}});
      return Status::Ok();
    }
    Proposal& p = *decoded;
    if (!p.verbatim.empty()) return ApplyVerbatim(b, stream_seq, p.verbatim);
    auto row_ptr = Row(b, p.stream);
    if (!row_ptr) return row_ptr.error();
    std::optional<projections::TokenRow>& row = **row_ptr;

    CommandResult r;
    r.before = row;
    // A record's time and its expiry are judged by the stream, never by this node's clock: the
    // proposal's time, but not before the last event applied (a proposal can reach the stream
    // late). Purged records (older than that, less the TTL and a margin) then always count as
    // expired, on every node, whenever each purged.
    const Micros at = std::max(p.at, b.last_at);
    std::string record_key;
    if (p.idempotency) {
      record_key = IdempotencyKey(p.idempotency->account_id, p.idempotency->key);
      std::optional<IdempotencyRecord> existing;
      if (auto it = b.records.find(record_key); it != b.records.end()) {
        existing = it->second;
      } else {
        std::string value;
        rocksdb::Status s =
            impl.db->Get(rocksdb::ReadOptions(), impl.idempotency, record_key, &value);
        if (!s.ok() && !s.IsNotFound()) return StorageError(s, "reading an idempotency record");
        if (s.ok()) existing = DecodeIdempotencyRecord(value);
      }
      if (existing && at - existing->created_at < impl.options.idempotency_ttl) {
        // The key's first message decided it; this one appends nothing, on every node.
        b.replays.emplace_back(p.id, p.idempotency->fingerprint);
        return Status::Ok();
      }
    }
    if ((row ? row->state.version : 0) != p.version || subject_before != p.subject_seq ||
        p.stream != subject_token) {
      // Decided on a state this message does not follow (JetStream's sequence check makes this
      // rare): nothing applied, on every node; its node decides again.
      b.retries.push_back(p.id);
      return Status::Ok();
    }
    std::uint64_t first_seq = 0;
    if (!p.applied) {
      r.outcome = Outcome::kRejected;
      r.rejection = p.rejection;
    } else {
      for (std::size_t i = 0; i < p.events.size(); ++i) {
        events::EventEnvelope& e = p.events[i];
        // The body as its node encoded it (checked when decoded), stamped with seq and link.
        std::optional<std::string> body = events::StampEventBody(p.bodies[i], b.seq + 1, b.hash);
        assert(body);
        e.seq = b.seq + 1;
        AppendRecord(b, *body, e, row);
        if (first_seq == 0) first_seq = e.seq;
        r.events.push_back(std::move(e));
      }
      impl.WriteTokenChange(b.wb, b.list_changes, p.stream, r.before, row, p.used_at,
                            !r.events.empty());
      r.outcome = Outcome::kApplied;
      r.after = row;
    }
    if (p.idempotency) {
      b.records[record_key] = impl.WriteIdempotencyRecord(b.wb, *p.idempotency, at, first_seq, r);
    }
    b.answers.emplace_back(p.id, std::move(r));
    return Status::Ok();
  }

  // Appends one event whose stored body is `body` (e: that event, decoded, seq set) on top of
  // the batch's head: the record (hash + body), its stream index entry, the head, and the row.
  void AppendRecord(BatchState& b, std::string_view body, events::EventEnvelope& e,
                    std::optional<projections::TokenRow>& row) {
    assert(e.seq == b.seq + 1);
    e.prev_hash = b.hash;
    e.hash = events::Sha256(body);
    std::string record(reinterpret_cast<const char*>(e.hash.data()), e.hash.size());
    record.append(body);
    b.wb.Put(impl.events, EventKey(e.seq), record);
    b.wb.Put(impl.streams, StreamKey(e.stream, e.stream_version), EncodeU64(e.seq));
    b.seq = e.seq;
    b.hash = e.hash;
    b.last_at = std::max(b.last_at, e.at);
    ++b.events;
    projections::ApplyEvent(row, e);
  }

  // A record moved from a single-node ledger: appended exactly as exported, if it continues
  // the chain and its stream; otherwise skipped (and logged) on every node alike.
  Status ApplyVerbatim(BatchState& b, std::uint64_t stream_seq, const std::string& record) {
    auto skip = [&](std::string why) {
      Log(LogLevel::kError, "moved record skipped",
          {{"stream_seq", static_cast<long long>(stream_seq)}, {"reason", why}});
      return Status::Ok();
    };
    if (!events::StoredHashMatches(record)) return skip("its hash does not match its body");
    auto e = events::DecodeStoredEvent(record);
    if (!e) {  // another release's event: stop before it, as for a proposal's
      return Error{ErrorCode::kUnavailable,
                   "a moved record this release cannot read: " + e.error().message,
                   {}};
    }
    if (e->seq != b.seq + 1 || e->prev_hash != b.hash)
      return skip("it does not continue the chain");
    auto row_ptr = Row(b, e->stream);
    if (!row_ptr) return row_ptr.error();
    std::optional<projections::TokenRow>& row = **row_ptr;
    if ((row ? row->state.version : 0) + 1 != e->stream_version) {
      return skip("it does not continue its stream");
    }
    const std::optional<projections::TokenRow> before = row;
    AppendRecord(b, std::string(events::StoredBody(record)), *e, row);
    impl.WriteTokenChange(b.wb, b.list_changes, e->stream, before, row, std::nullopt, true);
    return Status::Ok();
  }

  // Applies `msgs` (consecutive, from applied + 1) in one local write, then answers this
  // node's proposals among them. Returns false on a storage error (nothing applied).
  bool ApplyBatch(std::vector<natsMsg*>& msgs) {
    BatchState b;
    {
      std::lock_guard lock(impl.pipe_mu);
      b.seq = impl.head_seq;
      b.hash = impl.head_hash;
      b.last_at = impl.last_at;
    }
    const std::uint64_t from_seq = b.seq;
    std::uint64_t last = applied.load();
    for (natsMsg* m : msgs) {
      jsMsgMetaData* md = nullptr;
      if (natsMsg_GetMetaData(&md, m) != NATS_OK || !md) continue;
      const std::uint64_t sseq = md->Sequence.Stream;
      jsMsgMetaData_Destroy(md);
      if (sseq <= last) continue;   // delivered again after a consumer reset
      if (sseq != last + 1) break;  // a gap: subscribe again from last + 1
      std::string_view subject = natsMsg_GetSubject(m);
      std::optional<Id> token;
      if (subject.substr(0, subject_prefix.size()) == subject_prefix) {
        token = Id::Parse(subject.substr(subject_prefix.size()));
      }
      if (token) {
        Status st =
            ApplyMessage(b, sseq, *token,
                         std::string_view(natsMsg_GetData(m),
                                          static_cast<std::size_t>(natsMsg_GetDataLength(m))));
        if (!st) {
          Log(LogLevel::kError, "cluster apply failed", {{"reason", st.error().message}});
          apply_error =
              "cannot apply stream message " + std::to_string(sseq) + ": " + st.error().message;
          SetNotReady(apply_error);
          return false;
        }
      }
      last = sseq;
    }
    if (last == applied.load()) return true;
    b.list_changes.WriteTo(b.wb);
    b.wb.Put(impl.meta, kMetaClusterApplied, EncodeU64(last));
    if (b.seq != from_seq) {
      std::string head = EncodeU64(b.seq);
      head.append(reinterpret_cast<const char*>(b.hash.data()), b.hash.size());
      b.wb.Put(impl.meta, kMetaChainHead, head);
    }
    rocksdb::WriteOptions wo;
    wo.sync = false;  // JetStream is the log of record; see the header
    rocksdb::Status s = impl.db->Write(wo, &b.wb);
    // Visible now (or maybe in part, if the write failed): forget the cached rows of every
    // token this batch looked at (a superset of those it changed) before the new head is
    // published and before any of them is answered.
    for (const auto& [token, row] : b.rows) impl.row_cache->Invalidate(token);
    if (!s.ok()) {
      impl.metrics.write_failures.fetch_add(1, std::memory_order_relaxed);
      apply_error = StorageError(s, "applying cluster messages").message;
      SetNotReady(apply_error);
      return false;
    }
    {
      std::lock_guard lock(impl.pipe_mu);
      impl.head_seq = b.seq;
      impl.head_hash = b.hash;
      impl.last_at = b.last_at;
      impl.committed_seq.store(b.seq, std::memory_order_release);
    }
    impl.metrics.events_appended.fetch_add(b.events, std::memory_order_relaxed);
    impl.metrics.keys_written.fetch_add(b.wb.Count(), std::memory_order_relaxed);
    impl.metrics.bytes_written.fetch_add(b.wb.GetDataSize(), std::memory_order_relaxed);
    impl.metrics.batches.fetch_add(1, std::memory_order_relaxed);
    impl.metrics.cluster_messages_applied.fetch_add(last - applied.load(),
                                                    std::memory_order_relaxed);
    applied.store(last);
    apply_error.clear();
    impl.metrics.cluster_applied_seq.store(last, std::memory_order_relaxed);
    const std::uint64_t known = stream_last.load();
    impl.metrics.cluster_lag.store(known > last ? known - last : 0, std::memory_order_relaxed);

    // This node's proposals among them (others are not in flight here: Finish ignores them).
    for (auto& [id, r] : b.answers) Finish(id, std::move(r));
    for (auto& [id, fingerprint] : b.replays) {
      std::optional<InFlight> f = Take(id);
      if (!f) continue;
      std::string value;
      const auto& info = *f->pending.request.idempotency;
      CommandResult r = Unavailable("the idempotency record vanished");
      if (impl.db
              ->Get(rocksdb::ReadOptions(), impl.idempotency,
                    IdempotencyKey(info.account_id, info.key), &value)
              .ok()) {
        if (auto rec = DecodeIdempotencyRecord(value)) r = FromRecord(std::move(*rec), fingerprint);
      }
      f->pending.done(std::move(r));
      Release(f->target);
    }
    for (auto& id : b.retries) Retry(id);
    // Proposals waiting for this node to catch up.
    std::vector<std::string> wake;
    {
      std::lock_guard lock(mu);
      for (const Id& t : b.subjects) {
        auto it = subject_waits.find(t);
        if (it == subject_waits.end()) continue;
        for (auto& id : it->second) wake.push_back(id);
        subject_waits.erase(it);
      }
      while (!seq_waits.empty() && seq_waits.begin()->first <= last) {
        wake.push_back(seq_waits.begin()->second);
        seq_waits.erase(seq_waits.begin());
      }
    }
    for (auto& id : wake) Retry(id);
    return true;
  }

  void RefreshStreamInfo(Clock::time_point& last_info) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = kJetStreamApiWaitMs;
    natsStatus s = js_GetStreamInfo(&si, js, opts.stream.c_str(), &jo, &jerr);
    if (s != NATS_OK || !si) {
      if (Clock::now() - last_info > kStreamInfoStale) {
        catch_up_target.reset();  // back: catch up again with what the stream then holds
        SetNotReady(NatsError(s, "asking JetStream for stream " + opts.stream));
      }
      return;
    }
    stream_last.store(si->State.LastSeq);
    jsStreamInfo_Destroy(si);
    last_info = Clock::now();
    const std::uint64_t a = applied.load();
    const std::uint64_t lag = stream_last.load() > a ? stream_last.load() - a : 0;
    impl.metrics.cluster_lag.store(lag, std::memory_order_relaxed);
    // Caught up means: has applied everything the stream held when this node (re)connected.
    // Only after that does the max_ready_lag tolerance apply (to a busy moment, not to a
    // restart that is still far behind).
    if (!connected.load()) {
      catch_up_target.reset();
    } else if (!catch_up_target) {
      catch_up_target = stream_last.load();
    }
    const bool caught_up = catch_up_target && a >= *catch_up_target;
    if (!apply_error.empty()) {
      SetNotReady(apply_error);
    } else if (!connected.load()) {
      SetNotReady("disconnected from JetStream");
    } else if (!caught_up) {
      SetNotReady("catching up with the cluster: " + std::to_string(*catch_up_target - a) +
                  " messages behind");
    } else if (lag > opts.max_ready_lag) {
      SetNotReady("catching up with the cluster: " + std::to_string(lag) + " messages behind");
    } else {
      SetNotReady("");
    }
  }

  void ApplierLoop() {
    bool setup = false;
    auto last_info = Clock::time_point();
    auto last_msg = Clock::now();
    auto next_info = Clock::now();
    Micros next_purge = impl.Now() + impl.options.idempotency_purge_interval;
    std::vector<natsMsg*> msgs;
    while (!stop.load()) {
      if (!setup) {
        setup = EnsureStream() && Subscribe();
        if (!setup) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
          continue;
        }
        last_msg = Clock::now();
      }
      if (Clock::now() >= next_info) {
        RefreshStreamInfo(last_info);
        next_info = Clock::now() + kStreamInfoInterval;
        if (stream_last.load() > applied.load() && Clock::now() - last_msg > kStalledConsumer) {
          Log(LogLevel::kWarn, "cluster consumer stalled; subscribing again",
              {{"applied_seq", static_cast<long long>(applied.load())}});
          setup = Subscribe();
          last_msg = Clock::now();
          continue;
        }
      }
      natsMsg* m = nullptr;
      natsStatus s = natsSubscription_NextMsg(&m, sub, 50);
      if (s == NATS_TIMEOUT) continue;
      if (s != NATS_OK) {
        if (s != NATS_SLOW_CONSUMER) setup = false;
        continue;
      }
      last_msg = Clock::now();
      msgs.push_back(m);
      while (msgs.size() < static_cast<std::size_t>(kMaxApplyBatch)) {
        int pending = 0;
        if (natsSubscription_GetPending(sub, &pending, nullptr) != NATS_OK || pending <= 0) break;
        if (natsSubscription_NextMsg(&m, sub, 10) != NATS_OK) break;
        msgs.push_back(m);
      }
      const std::uint64_t before = applied.load();
      const bool ok = ApplyBatch(msgs);
      for (natsMsg* x : msgs) natsMsg_Destroy(x);
      msgs.clear();
      if (!ok || applied.load() == before) {
        // A storage error, or a gap: start again from the last applied message.
        if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(500));
        setup = Subscribe();
      }
      const Micros now = impl.Now();
      if (now >= next_purge) {
        next_purge = now + impl.options.idempotency_purge_interval;
        impl.PurgeStep(impl.last_at - kPurgeClockMargin, impl.options.idempotency_purge_batch);
      }
    }
    if (sub) natsSubscription_Destroy(sub);
    sub = nullptr;
  }
};

ClusterLog::ClusterLog(std::unique_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<ClusterLog>> ClusterLog::Start(LedgerStore::Impl& impl) {
  auto st = std::make_unique<State>(impl);
  std::string value;
  if (impl.db->Get(rocksdb::ReadOptions(), impl.meta, kMetaClusterApplied, &value).ok() &&
      value.size() >= 8) {
    st->applied.store(DecodeU64(value));
  }
  impl.metrics.cluster_applied_seq.store(st->applied.load());
  if (Status s = st->Connect(); !s) {
    st->CloseConnection();
    if (st->js) jsCtx_Destroy(st->js);
    if (st->nc) natsConnection_Destroy(st->nc);
    if (st->nopts) natsOptions_Destroy(st->nopts);
    return s.error();
  }
  State* p = st.get();
  st->applier = std::thread([p] {
    NameThisThread("tl-applier");
    p->ApplierLoop();
  });
  return std::unique_ptr<ClusterLog>(new ClusterLog(std::move(st)));
}

ClusterLog::~ClusterLog() {
  state_->stop.store(true);
  if (state_->applier.joinable()) state_->applier.join();
  state_->CloseConnection();  // no callback runs after this
  if (state_->js) jsCtx_Destroy(state_->js);
  if (state_->nc) natsConnection_Destroy(state_->nc);
  if (state_->nopts) natsOptions_Destroy(state_->nopts);
}

void ClusterLog::ProposerLoop() { state_->ProposerLoop(); }

StoreHealth ClusterLog::Health() const {
  StoreHealth h;
  std::lock_guard lock(state_->health_mu);
  if (!state_->not_ready.empty()) {
    h.ok = false;
    h.reason = state_->not_ready;
    h.since = state_->not_ready_since;
  }
  return h;
}

}  // namespace tokenledger::store

// ClusterPublisher (cluster_publisher.h): an export into an empty cluster stream.
#include "src/store/cluster_publisher.h"

#include <mutex>

#include "events/event_codec.h"
#include "src/store/jetstream.h"
#include "src/store/proposal.h"

namespace tokenledger::store {

struct ClusterPublisher::State {
  ClusterOptions opts;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::uint64_t published = 0;
  std::mutex mu;
  std::string first_error;  // guarded by mu

  // Also on Connect's failure paths, before there is a ClusterPublisher to own this.
  ~State() {
    if (nc) natsConnection_Close(nc);  // no ack handler runs after this returns
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
  }

  static void OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* st = static_cast<State*>(closure);
    if (!pa || pae) {
      std::lock_guard lock(st->mu);
      if (st->first_error.empty()) {
        const char* id = nullptr;
        natsMsgHeader_Get(msg, kProposalHeader, &id);
        st->first_error =
            std::string("JetStream refused record ") + (id ? id : "?") + ": " +
            (pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(pae ? pae->Err : NATS_ERR));
      }
    }
    natsMsg_Destroy(msg);
  }
  Status Failed() {
    std::lock_guard lock(mu);
    if (first_error.empty()) return Status::Ok();
    return Error{ErrorCode::kUnavailable, first_error, {}};
  }
};

ClusterPublisher::ClusterPublisher(std::unique_ptr<State> state) : state_(std::move(state)) {}

ClusterPublisher::~ClusterPublisher() = default;

Result<std::unique_ptr<ClusterPublisher>> ClusterPublisher::Connect(const ClusterOptions& options,
                                                                    Micros idempotency_ttl) {
  auto st = std::make_unique<State>();
  st->opts = options;
  natsOptions* no = nullptr;
  natsStatus s = natsOptions_Create(&no);
  const std::vector<std::string> urls = SplitUrls(options.urls);
  std::vector<const char*> raw;
  for (auto& u : urls) raw.push_back(u.c_str());
  if (s == NATS_OK) s = natsOptions_SetServers(no, raw.data(), static_cast<int>(raw.size()));
  if (s == NATS_OK) s = natsOptions_SetName(no, "tokenledger cluster-publish");
  if (s == NATS_OK) s = natsConnection_Connect(&st->nc, no);
  if (no) natsOptions_Destroy(no);
  if (s != NATS_OK) return Error{ErrorCode::kUnavailable, NatsError(s, "connecting to NATS"), {}};
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = kMaxPendingPublishes;
  jo.PublishAsync.AckHandler = State::OnAck;
  jo.PublishAsync.AckHandlerClosure = st.get();
  s = natsConnection_JetStream(&st->js, st->nc, &jo);
  if (s != NATS_OK) return Error{ErrorCode::kUnavailable, NatsError(s, "JetStream context"), {}};
  if (Status c = CreateStream(st->js, options, idempotency_ttl); !c) return c.error();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_GetStreamInfo(&si, st->js, options.stream.c_str(), nullptr, &jerr);
  if (s != NATS_OK || !si) {
    return Error{ErrorCode::kUnavailable, NatsError(s, "asking for stream " + options.stream), {}};
  }
  const std::uint64_t messages = si->State.Msgs;
  const std::uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  if (messages != 0 || last != 0) {
    return Error{ErrorCode::kInvalidValue,
                 "stream " + options.stream + " is not empty (" + std::to_string(last) +
                     " messages): a ledger moves into an empty stream only; start the nodes "
                     "with --no-first-token, or only after the move",
                 {}};
  }
  return std::unique_ptr<ClusterPublisher>(new ClusterPublisher(std::move(st)));
}

Status ClusterPublisher::Publish(const std::string& record) {
  if (Status f = state_->Failed(); !f) return f;
  auto e = events::DecodeStoredEvent(record);
  if (!e) return e.error();
  if (e->seq != state_->published + 1) {
    return Error{ErrorCode::kInvalidValue,
                 "record " + std::to_string(e->seq) + " out of order: expected seq " +
                     std::to_string(state_->published + 1),
                 {}};
  }
  Proposal p;
  p.id = "publish-" + std::to_string(e->seq);
  p.verbatim = record;
  const std::string body = EncodeProposal(p);
  const std::string subject = SubjectPrefix(state_->opts) + e->stream.ToString();
  const std::string expected = std::to_string(state_->published);
  natsMsg* msg = nullptr;
  natsStatus s =
      natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, kProposalHeader, p.id.c_str());
  // Each record expects the one before it as the stream's last: nothing interleaves.
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Expected-Last-Sequence", expected.c_str());
  if (s == NATS_OK) s = js_PublishMsgAsync(state_->js, &msg, nullptr);
  if (msg) natsMsg_Destroy(msg);
  if (s != NATS_OK) {
    return Error{ErrorCode::kUnavailable, NatsError(s, "publishing record " + p.id), {}};
  }
  ++state_->published;
  return Status::Ok();
}

Status ClusterPublisher::Finish() {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60'000;
  natsStatus s = js_PublishAsyncComplete(state_->js, &po);
  if (Status f = state_->Failed(); !f) return f;
  if (s != NATS_OK) {
    return Error{
        ErrorCode::kUnavailable, NatsError(s, "waiting for JetStream to store the records"), {}};
  }
  return Status::Ok();
}

std::uint64_t ClusterPublisher::Published() const { return state_->published; }

}  // namespace tokenledger::store

#include "src/store/jetstream.h"

namespace tokenledger::store {
namespace {

constexpr char kDescriptionPrefix[] = "tokenledger ledger; idempotency_ttl_us=";

std::string StreamDescription(Micros idempotency_ttl) {
  return kDescriptionPrefix + std::to_string(idempotency_ttl);
}

}  // namespace

std::string NatsError(natsStatus s, std::string_view what) {
  const char* last = nats_GetLastError(nullptr);
  std::string m = std::string(what) + ": " + natsStatus_GetText(s);
  if (last && *last) m += std::string(" (") + last + ")";
  return m;
}

std::string SubjectPrefix(const ClusterOptions& opts) { return "tokenledger." + opts.stream + "."; }

Status CreateStream(jsCtx* js, const ClusterOptions& opts, Micros idempotency_ttl) {
  std::string wildcard = SubjectPrefix(opts) + ">";
  const char* subjects[] = {wildcard.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = opts.stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = opts.replicas;
  cfg.Duplicates = opts.duplicate_window * 1000;  // nanoseconds
  const std::string description = StreamDescription(idempotency_ttl);
  cfg.Description = description.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = kJetStreamApiWaitMs;
  natsStatus s = js_AddStream(&si, js, &cfg, &jo, &jerr);
  if (si) jsStreamInfo_Destroy(si);
  si = nullptr;
  if (s != NATS_OK && jerr != JSStreamNameExistErr) {
    return Error{
        ErrorCode::kUnavailable, NatsError(s, "creating JetStream stream " + opts.stream), {}};
  }
  // Whether a key replays is decided by every node alike only if all judge its expiry with one
  // TTL: the stream carries the TTL it was created with, and a node with another refuses it.
  s = js_GetStreamInfo(&si, js, opts.stream.c_str(), &jo, &jerr);
  if (s != NATS_OK || !si) {
    return Error{
        ErrorCode::kUnavailable, NatsError(s, "asking JetStream for stream " + opts.stream), {}};
  }
  const std::string found = si->Config && si->Config->Description ? si->Config->Description : "";
  jsStreamInfo_Destroy(si);
  if (found != description && found.rfind(kDescriptionPrefix, 0) == 0) {
    return Error{ErrorCode::kInvalidValue,
                 "stream " + opts.stream +
                     " was created by nodes with another --idempotency-ttl ('" + found +
                     "'); every node of a cluster must use the same",
                 {}};
  }
  return Status::Ok();
}

std::vector<std::string> SplitUrls(const std::string& urls) {
  std::vector<std::string> out;
  for (std::size_t b = 0; b <= urls.size();) {
    std::size_t e = urls.find(',', b);
    if (e == std::string::npos) e = urls.size();
    if (e > b) out.push_back(urls.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

}  // namespace tokenledger::store

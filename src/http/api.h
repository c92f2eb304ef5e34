// The HTTP API of SPEC.md: the route table and every handler.
//
// The handlers are thin: they parse with the units beside this one (write_requests.h,
// list_query.h), check scope and reach (reach.h), call the store and render (json_views.h,
// idempotency.h for writes, errors.h for every error). Authentication is authenticate.h.
//
// Handle() is the server's RequestHandler. Reads run on the calling I/O thread; writes are
// submitted to the ledger's committer, whose callback hands the typed outcome back to the
// connection's I/O thread (HttpRequest::post) to be rendered, so no I/O thread waits on disk
// writes and the committer renders nothing. Every response carries X-Request-Id and is logged as
// one JSON line.
//
// Thread-safety: Handle may be called from any number of threads at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/auth/key_ring.h"
#include "src/http/authenticate.h"
#include "src/http/http_types.h"
#include "src/http/list_query.h"
#include "src/http/metrics.h"
#include "src/http/reach.h"
#include "src/http/read_pool.h"
#include "src/http/router.h"
#include "src/store/ledger_store.h"
#include "tokenledger/options.h"

namespace tokenledger::http {

struct ApiOptions {
  TokenPolicy policy;
  bool metrics_on_separate_listener = false;
  // Page size bounds of SPEC.md. Default: 25, at most 100.
  std::uint32_t default_page_size = 25;
  std::uint32_t max_page_size = 100;
  // Threads for reads whose cost grows with their input (lists, as_of), off the I/O
  // threads. Default: 1.
  unsigned slow_read_threads = 1;
  // Such reads waiting for a thread; more are answered 503 at once. Default: 64.
  std::size_t max_queued_slow_reads = 64;
  // How long a gateway may cache an introspection answer (Cache-Control max-age; 0:
  // no-store): a suspended token may get through a caching gateway this long. Default: 5 s.
  Micros introspection_cache = 5 * kMicrosPerSecond;
  // Tokens kept verified (auth::VerifiedTokens, ~450 B each; 0: none). Default: 32768.
  std::size_t verified_tokens = 32768;
};

class Api {
 public:
  Api(store::LedgerStore& store, const auth::KeyRing& keys, ApiOptions options,
      HttpMetrics& metrics);

  void Handle(std::shared_ptr<HttpRequest> request, Responder respond);

  // The JWT of a token: its claims follow from its state, so it can be produced again.
  Result<std::string> TokenJwt(const core::TokenState& state) const;
  // The kid of the key that signs new tokens (CreateToken::signing_kid).
  const std::string& ActiveKid() const { return keys_.active_kid(); }

  // Finishes the reads running or queued off the I/O threads and refuses new ones.
  // REQUIRES: called before the store is closed.
  void StopSlowReads() { slow_reads_.Stop(); }

  struct Call;
  using Handler = void (Api::*)(const std::shared_ptr<Call>&);

 private:
  void Ping(const std::shared_ptr<Call>& call);
  void CreateToken(const std::shared_ptr<Call>& call);
  void ListTokens(const std::shared_ptr<Call>& call);
  void ShowToken(const std::shared_ptr<Call>& call);
  void TokenEvents(const std::shared_ptr<Call>& call);
  void Suspend(const std::shared_ptr<Call>& call);
  void Activate(const std::shared_ptr<Call>& call);
  void Revoke(const std::shared_ptr<Call>& call);
  void Delete(const std::shared_ptr<Call>& call);
  void Healthz(const std::shared_ptr<Call>& call);
  void Readyz(const std::shared_ptr<Call>& call);
  void MetricsText(const std::shared_ptr<Call>& call);
  void OpenApi(const std::shared_ptr<Call>& call);
  void Introspect(const std::shared_ptr<Call>& call);

  void Action(const std::shared_ptr<Call>& call, core::Command command);
  // Runs `read` on the slow-read pool (ReadPool); answers 503 if its queue is full.
  void OffIoThread(const std::shared_ptr<Call>& call, std::function<void()> read);
  // Submits a write; its outcome is answered by AnswerWrite on the connection's I/O thread.
  void SubmitWrite(const std::shared_ptr<Call>& call, core::Command command,
                   std::optional<std::string> key, std::string canonical_body);
  void AnswerWrite(const std::shared_ptr<Call>& call, const store::CommandResult& result,
                   bool is_create);
  // Loads a visible token the caller may see, or answers 404 / the error and returns nullopt.
  std::optional<projections::TokenRow> TokenInReach(const std::shared_ptr<Call>& call,
                                                    const Id& id);

  store::LedgerStore& store_;
  const auth::KeyRing& keys_;
  ApiOptions options_;
  HttpMetrics& metrics_;
  const PageLimits page_limits_;
  Authenticator authenticator_;
  const Router<Handler> router_;
  ReadPool slow_reads_;
};

// The OpenAPI 3.1 document describing this API.
const std::string& OpenApiDocument();

}  // namespace tokenledger::http

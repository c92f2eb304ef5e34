// tokenledgerd: options, wiring, signals, first-start bootstrap. Nothing else.
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "src/app/config.h"
#include "src/app/signing_keys.h"
#include "src/http/api.h"
#include "src/http/server.h"
#include "src/store/ledger_store.h"
#include "tokenledger/version.h"

extern char** environ;

namespace tokenledger {
namespace {

// On an empty ledger: an account and an account-scoped token for it, shown once.
int Bootstrap(store::LedgerStore& store, const http::Api& api, const app::Config& config,
              unsigned short port) {
  const Id account = IdGenerator().Generate();
  store::CommandRequest req;
  req.command = core::CreateToken{.account_id = account, .signing_kid = api.ActiveKid()};
  req.request_id = "first-start";
  req.only_into_empty_ledger = true;  // in cluster mode, only the first node to get there
  // Keyed, so that a retry after an unanswered attempt that was stored gets that token back.
  req.idempotency = store::IdempotencyInfo{account, "first-start", {}};
  store::CommandResult r = store.Submit(req).get();
  // A stream created a moment ago may have no leader yet ("no responders"): a cluster node
  // tries again for a while rather than giving up its first start.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (store.ClusterMode() && r.outcome == store::Outcome::kUnavailable &&
         std::chrono::steady_clock::now() < deadline) {
    Log(LogLevel::kInfo, "first start: the cluster is not taking writes yet; trying again",
        {{"reason", r.rejection.message}});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    r = store.Submit(req).get();
  }
  if (r.outcome == store::Outcome::kReplayed && r.replayed == store::Outcome::kApplied && r.after) {
    r.outcome = store::Outcome::kApplied;  // this node's own earlier attempt made it
  }
  if (r.outcome == store::Outcome::kRejected && store.ClusterMode()) {
    Log(LogLevel::kInfo, "first start: the cluster's ledger is not empty; no token created");
    return 0;
  }
  if (r.outcome != store::Outcome::kApplied) {
    Log(LogLevel::kError, "first start: could not create the first token",
        {{"reason", r.rejection.message}});
    return 1;
  }
  const std::string jwt = api.TokenJwt(r.after->state).value();  // its key was just active
  std::string host = "127.0.0.1";
  unsigned short ignored_port = 0;
  http::SplitHostPort(config.server.listen, &host, &ignored_port);
  if (host == "0.0.0.0" || host == "::") host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  // With SIGPIPE ignored, a stdout nobody reads any more only sets cout's failbit (the token
  // is then lost: mint another). A stdout that is not read blocks here, once, at first start.
  std::cout << "\ntokenledger: first start. Created account " << account.ToString()
            << "\nand an account-scoped API token for it. The token is shown only this once:\n\n  "
            << jwt << "\n\nTry it:\n\n  curl -s -H 'Authorization: Bearer " << jwt << "' http://"
            << host << ":" << port << "/api/v1/ping\n\n"
            << std::flush;
  Log(LogLevel::kInfo, "first start: created account and token",
      {{"account_id", account.ToString()}, {"token_id", r.after->state.id.ToString()}});
  return 0;
}

int Main(int argc, char** argv) {
  // A reader of stderr or stdout that goes away must cost lines, not the process: without
  // this the next write to its pipe kills us with SIGPIPE. (Asio sends with MSG_NOSIGNAL.)
  ::signal(SIGPIPE, SIG_IGN);
  app::Config config;
  std::string error;
  if (!app::ParseConfig(std::vector<std::string>(argv + 1, argv + argc), environ, &config,
                        &error)) {
    std::fprintf(stderr, "tokenledgerd: %s\n", error.c_str());
    return 2;
  }
  if (config.show_help) {
    std::cout << app::HelpText();
    return 0;
  }
  if (config.show_version) {
    std::cout << "tokenledgerd " << Version() << " (commit " << Commit() << ")\n";
    return 0;
  }
  SetLogLevel(config.log_level);
  // From here on no request waits for its log line; lines still buffered when Main returns
  // (or exit is called) are written by the writer's exit hook.
  StartLogWriter();
  if (!config.store.sync) {
    Log(LogLevel::kWarn,
        "--no-sync: commits are not fsynced; acknowledged writes can be lost on a crash. "
        "For benchmarks only.");
  }

  // A cluster node's rebuild runs before the node joins: its applier would write beside it.
  if (config.rebuild_projections && !config.store.cluster.urls.empty()) {
    StoreOptions local = config.store;
    local.cluster.urls.clear();
    auto maintenance = store::LedgerStore::Open(local, store::OpenMode::kMaintenance);
    if (maintenance.store && !maintenance.store->ProjectionsCurrent()) {
      Log(LogLevel::kInfo, "rebuilding projections from the ledger before joining the cluster");
      if (Status s = maintenance.store->RebuildProjections(); !s) {
        Log(LogLevel::kError, "projection rebuild failed", {{"reason", s.error().message}});
        return 1;
      }
    }
    config.rebuild_projections = false;  // done (or not needed); the open below reports
  }
  auto opened = store::LedgerStore::Open(config.store, config.rebuild_projections
                                                           ? store::OpenMode::kMaintenance
                                                           : store::OpenMode::kServe);
  if (!opened.store) {
    Log(LogLevel::kError, "cannot open the ledger", {{"reason", opened.message}});
    std::fprintf(stderr, "tokenledgerd: %s\n", opened.message.c_str());
    return opened.failure == store::OpenFailure::kInUse ? 2 : 1;
  }
  std::unique_ptr<store::LedgerStore> ledger = std::move(opened.store);
  if (!ledger->ProjectionsCurrent()) {
    Log(LogLevel::kInfo, "rebuilding projections from the ledger",
        {{"events", static_cast<long long>(ledger->LastSeq())}});
    // Under systemd, each progress report extends the start timeout: a rebuild of a large
    // ledger takes minutes, and being killed for it would only start it over.
    auto extend =
        [last = std::chrono::steady_clock::time_point()](const store::RebuildProgress& p) mutable {
          const auto now = std::chrono::steady_clock::now();
          if (now - last < std::chrono::seconds(5)) return;
          last = now;
          sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=rebuilding projections: %s %llu/%llu",
                     60'000'000ull, std::string(p.phase).c_str(),
                     static_cast<unsigned long long>(p.events_done),
                     static_cast<unsigned long long>(p.events_total));
        };
    if (Status s = ledger->RebuildProjections(extend); !s) {
      Log(LogLevel::kError, "projection rebuild failed", {{"reason", s.error().message}});
      return 1;
    }
    Log(LogLevel::kInfo, "projections rebuilt");
  }

  // The default key file is created on the first start; an explicit one must exist.
  auto keys =
      app::OpenKeyRing(*ledger, app::KeyFilePath(config.store.data_dir, config.signing_key_file),
                       /*create_if_missing=*/config.signing_key_file.empty());
  if (!keys) {
    Log(LogLevel::kError, "signing key unusable", {{"reason", keys.error().message}});
    std::fprintf(stderr, "tokenledgerd: %s\n", keys.error().message.c_str());
    return 1;
  }
  Log(LogLevel::kInfo, "signing key ring",
      {{"active_kid", keys->ring.active_kid()},
       {"key_file_keys", std::to_string(keys->file_keys.size())}});

  http::HttpMetrics metrics;
  http::ApiOptions api_options;
  api_options.policy = config.store.policy;
  api_options.metrics_on_separate_listener = !config.server.metrics_listen.empty();
  api_options.introspection_cache = config.introspection_cache;
  api_options.verified_tokens = config.verified_tokens;
  auto api = std::make_unique<http::Api>(*ledger, keys->ring, api_options, metrics);
  http::Api* api_ptr = api.get();
  auto server = std::make_unique<http::Server>(
      config.server,
      [api_ptr](std::shared_ptr<http::HttpRequest> request, http::Responder respond) {
        api_ptr->Handle(std::move(request), std::move(respond));
      },
      metrics);
  if (Status s = server->Listen(); !s) {
    Log(LogLevel::kError, "cannot listen", {{"reason", s.error().message}});
    std::fprintf(stderr, "tokenledgerd: %s\n", s.error().message.c_str());
    return 1;
  }
  if (ledger->ClusterMode() && config.first_token) {
    // Whether the ledger is empty is known once this node has caught up with the stream.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!ledger->Health().ok && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!ledger->Health().ok) {
      Log(LogLevel::kWarn, "first start: not caught up with the cluster; no token created",
          {{"reason", ledger->Health().reason}});
    }
  }
  if (ledger->LastSeq() == 0 && config.first_token && ledger->Health().ok) {
    if (int rc = Bootstrap(*ledger, *api, config, server->ApiPort()); rc != 0) return rc;
  }
  Log(LogLevel::kInfo, "listening",
      {{"address", config.server.listen},
       {"port", static_cast<long long>(server->ApiPort())},
       {"metrics_port", static_cast<long long>(server->MetricsPort())},
       {"io_threads", static_cast<long long>(server->IoThreads())},
       {"data_dir", config.store.data_dir},
       {"last_seq", static_cast<long long>(ledger->LastSeq())},
       {"version", std::string(Version())},
       {"commit", std::string(Commit())}});
  // Under systemd (Type=notify): started once the ledger is open and the sockets listen.
  // Without NOTIFY_SOCKET these do nothing.
  sd_notify(0, "READY=1");
  server->Run();
  sd_notify(0, "STOPPING=1");
  api->StopSlowReads();  // reads still on the slow-read pool finish before the store closes
  // The ledger first: closing it finishes every queued write and answers it (into the
  // stopped server, which must still exist), then the API and the server.
  ledger.reset();
  api.reset();
  server.reset();
  Log(LogLevel::kInfo, "stopped");
  StopLogWriter();  // writes what is buffered, waiting at most 2 s
  return 0;
}

}  // namespace
}  // namespace tokenledger

int main(int argc, char** argv) { return tokenledger::Main(argc, argv); }

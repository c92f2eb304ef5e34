// make_ledger: builds a ledger of N events directly through the store (no HTTP), for the scale
// measurements of scripts/bench-scale. One account; tokens are created one after another, and
// of every 20 tokens two are later suspended and one revoked (10% and 5%, each about a thousand
// tokens after its creation), so N events hold about N / 1.15 tokens, as in docs/PERFORMANCE.md.
//
// The records are encoded here and go the importer's way (BeginImport, AppendVerbatim in
// batches with the WAL off, RebuildProjections, FinishImport): the result is a ledger like any
// other, verified clean.
//
// usage: make_ledger --data-dir DIR --events N [--account ID]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/store/ledger_store.h"

namespace tokenledger {
namespace {

int Usage() {
  std::fprintf(stderr, "usage: make_ledger --data-dir DIR --events N [--account ID]\n");
  return 2;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Main(int argc, char** argv) {
  std::string data_dir;
  std::uint64_t n = 0;
  std::optional<Id> account;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--data-dir") {
      data_dir = argv[i + 1];
    } else if (flag == "--events") {
      n = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--account") {
      account = Id::Parse(argv[i + 1]);
      if (!account) return Usage();
    } else {
      return Usage();
    }
  }
  if (data_dir.empty() || n == 0 || argc % 2 == 0) return Usage();
  IdGenerator ids;
  if (!account) account = ids.Generate();

  StoreOptions options;
  options.data_dir = data_dir;
  auto opened = store::LedgerStore::Open(options, store::OpenMode::kMaintenance);
  if (!opened.store) {
    std::fprintf(stderr, "make_ledger: %s\n", opened.message.c_str());
    return 1;
  }
  store::LedgerStore& ledger = *opened.store;
  if (ledger.LastSeq() != 0) {
    std::fprintf(stderr, "make_ledger: '%s' already holds a ledger\n", data_dir.c_str());
    return 1;
  }
  auto check = [](const Status& s) {
    if (!s) {
      std::fprintf(stderr, "make_ledger: %s\n", s.error().message.c_str());
      std::exit(1);
    }
  };
  check(ledger.BeginImport());
  const auto start = std::chrono::steady_clock::now();
  const Micros t0 = *ParseRfc3339("2024-01-01T00:00:00Z");
  constexpr std::size_t kLag = 1000;  // suspensions and revocations trail creation by this
  std::vector<Id> recent(kLag + 1);   // ring of the last created token ids
  std::uint64_t seq = 0, created = 0;
  events::Hash prev = events::kGenesisHash;
  std::vector<std::string> batch;
  auto flush = [&] {
    const std::vector<std::string_view> views(batch.begin(), batch.end());
    check(ledger.AppendVerbatim(views));
    batch.clear();
  };
  auto append = [&](const Id& token, std::uint64_t version, events::EventData data) {
    // Built with its data, not assigned it: assigning over the default TokenCreated makes
    // GCC 12 at -O3 report a false -Wfree-nonheap-object (as bug 105329's -Wrestrict).
    events::EventEnvelope e{
        .seq = ++seq, .stream = token, .stream_version = version, .data = std::move(data)};
    e.schema_version = events::CurrentSchemaVersion(events::TypeName(e.data));
    e.at = t0 + static_cast<Micros>(seq) * 1000;
    e.request_id = "make-ledger-" + std::to_string(seq);
    e.prev_hash = prev;
    batch.push_back(events::EncodeStoredEvent(e));
    prev = e.hash;
    if (batch.size() == 16384) flush();
  };
  while (seq < n) {
    const Id token = ids.GenerateRelated(*account);
    events::TokenCreated c;
    c.account_id = *account;
    c.expires_at = t0 + static_cast<Micros>(seq) * 1000 + 365 * kMicrosPerDay;
    append(token, 1, c);
    recent[created % recent.size()] = token;
    if (created >= kLag) {
      const std::uint64_t k = created - kLag;
      const Id& old = recent[k % recent.size()];
      if (k % 10 == 0 && seq < n) append(old, 2, events::TokenSuspended{});
      if (k % 20 == 5 && seq < n) append(old, 2, events::TokenRevoked{});
    }
    ++created;
  }
  if (!batch.empty()) flush();
  const double written = Seconds(start);
  check(ledger.RebuildProjections());
  check(ledger.FinishImport());
  std::fprintf(stderr,
               "make_ledger: %llu events, %llu tokens of account %s in %s: appended in %.1f s, "
               "projections built in %.1f s\n",
               static_cast<unsigned long long>(seq), static_cast<unsigned long long>(created),
               account->ToString().c_str(), data_dir.c_str(), written, Seconds(start) - written);
  return 0;
}

}  // namespace
}  // namespace tokenledger

int main(int argc, char** argv) { return tokenledger::Main(argc, argv); }

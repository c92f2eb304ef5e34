// `tokenledger stats`: events by type, tokens by status and scope, size on disk.

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/core/decider.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
namespace json = boost::json;
int Stats(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  Opened opened = OpenReadOnly(data_dir);
  if (!opened.store) return opened.exit_code;
  std::map<std::string, std::uint64_t> by_type, by_status, by_scope;
  std::uint64_t events = 0, tokens = 0;
  Progress bar("stats", opened.store->LastSeq(), flags.Has("quiet"));
  Status s = opened.store->ScanEvents(1, [&](const events::EventEnvelope& e) {
    ++by_type[std::string(events::TypeName(e.data))];
    ++events;
    bar.Update(e.seq);
    return true;
  });
  bar.Done();
  if (s) {
    s = opened.store->ScanTokens([&](const projections::TokenRow& row) {
      ++by_status[std::string(core::StatusName(row.state.status))];
      ++by_scope[std::string(events::ScopeName(row.state.scope))];
      ++tokens;
      return true;
    });
  }
  if (!s) {
    std::fprintf(stderr, "tokenledger stats: %s\n", s.error().message.c_str());
    return kFinding;
  }
  std::uintmax_t bytes = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir, ec)) {
    if (entry.is_regular_file(ec)) bytes += entry.file_size(ec);
  }
  const std::optional<std::uint64_t> pending = opened.store->PendingCompactionBytes();
  if (flags.Get("format", "table") == "json") {
    json::object o{{"last_seq", opened.store->LastSeq()},
                   {"chain_head", events::HashToHex(opened.store->ChainHead())},
                   {"events", events},
                   {"tokens", tokens},
                   {"disk_bytes", static_cast<std::uint64_t>(bytes)}};
    if (pending) o["pending_compaction_bytes"] = *pending;
    json::object t, st, sc;
    for (auto& [k, v] : by_type) t[k] = v;
    for (auto& [k, v] : by_status) st[k] = v;
    for (auto& [k, v] : by_scope) sc[k] = v;
    o["events_by_type"] = t;
    o["tokens_by_status"] = st;
    o["tokens_by_scope"] = sc;
    std::printf("%s\n", json::serialize(o).c_str());
    return kOk;
  }
  std::printf("last seq        %llu\n", static_cast<unsigned long long>(opened.store->LastSeq()));
  std::printf("chain head      %s\n", events::HashToHex(opened.store->ChainHead()).c_str());
  std::printf("events          %llu\n", static_cast<unsigned long long>(events));
  for (auto& [k, v] : by_type)
    std::printf("  %-14s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  std::printf("tokens          %llu (deleted tokens not counted)\n",
              static_cast<unsigned long long>(tokens));
  for (auto& [k, v] : by_status)
    std::printf("  %-14s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  for (auto& [k, v] : by_scope)
    std::printf("  %-14s %llu\n", (k + " scope").c_str(), static_cast<unsigned long long>(v));
  std::printf("on disk         %.1f MiB (%ju bytes)\n", static_cast<double>(bytes) / (1 << 20),
              bytes);
  if (pending)
    std::printf("compaction debt %llu bytes (RocksDB's estimate of pending compaction)\n",
                static_cast<unsigned long long>(*pending));
  return kOk;
}

}  // namespace tokenledger::cli

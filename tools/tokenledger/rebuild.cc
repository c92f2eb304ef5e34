// `tokenledger rebuild`: new projections from the ledger, switched to atomically.

#include <chrono>
#include <cstdio>

#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
int Rebuild(const Flags& flags) {
  auto chunk = NumberFlag(flags, "chunk-events");
  if (!chunk || *chunk == 0) return kUsage;
  StopOnSignals();
  Opened opened = OpenExclusive(flags.Get("data-dir"), "rebuild");
  if (!opened.store) return opened.exit_code;
  const auto start = std::chrono::steady_clock::now();
  const std::uint64_t total = opened.store->LastSeq();
  Progress bar("rebuild", total, flags.Has("quiet"));
  Status s = Status::Ok();
  try {
    s = opened.store->RebuildProjections(StepsOf(bar), *chunk, flags.Get("temp-dir"));
  } catch (const Interrupted&) {
    bar.Done();
    std::fprintf(stderr,
                 "tokenledger rebuild: interrupted by a signal; the projections in use are "
                 "unchanged, and the next rebuild starts over\n");
    return kInterrupted;
  }
  TimePhase("end");
  bar.Done();
  if (!s) {
    std::fprintf(stderr, "tokenledger rebuild: %s\n", s.error().message.c_str());
    return kFinding;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rebuilt projections %s v%u and %s v%u from %llu events in %.2f s\n",
              std::string(projections::kTokenDetails.name).c_str(),
              projections::kTokenDetails.version,
              std::string(projections::kTokenListIndex.name).c_str(),
              projections::kTokenListIndex.version, static_cast<unsigned long long>(total), secs);
  return kOk;
}

}  // namespace tokenledger::cli

// `tokenledger verify`: the chain, streams, projections and idempotency records checked.

#include <cstdio>

#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
int Verify(const Flags& flags) {
  StopOnSignals();  // before the read-only open's private directory exists
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  Progress bar("verify", opened.store->LastSeq(), flags.Has("quiet"));
  store::VerifyOptions options;
  options.temp_dir = flags.Get("temp-dir");
  options.progress = StepsOf(bar);
  Result<store::VerifyReport> report = Error{ErrorCode::kUnexpected, "not run", {}};
  try {
    report = opened.store->Verify(options);
  } catch (const Interrupted&) {
    bar.Done();
    std::fprintf(stderr, "tokenledger verify: interrupted by a signal; nothing was verified\n");
    return kInterrupted;
  }
  TimePhase("end");
  bar.Done();
  if (!report) {
    std::fprintf(stderr, "tokenledger verify: %s\n", report.error().message.c_str());
    return kFinding;
  }
  for (const auto& f : report->findings) {
    std::printf("FINDING %s", f.kind.c_str());
    if (f.seq) std::printf(" seq=%llu", static_cast<unsigned long long>(f.seq));
    if (f.token) std::printf(" token=%s", f.token->ToString().c_str());
    std::printf(": %s\n  expected: %s\n  found:    %s\n", f.message.c_str(), f.expected.c_str(),
                f.found.c_str());
  }
  std::printf("verified %llu events and %llu tokens: %zu finding%s\n",
              static_cast<unsigned long long>(report->events_checked),
              static_cast<unsigned long long>(report->tokens_checked), report->findings.size(),
              report->findings.size() == 1 ? "" : "s");
  return report->findings.empty() ? kOk : kFinding;
}

}  // namespace tokenledger::cli

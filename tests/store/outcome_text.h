// A command's typed outcome as text: what an idempotency replay must reproduce exactly (its
// decision, rejection, events and the row an answer shows), so tests can compare a first
// answer with its replays, also across a crash.
#pragma once

#include <string>

#include "projections/token_details.h"
#include "src/store/ledger_store.h"

namespace tokenledger::store {

// Empty for outcomes that record nothing (conflicts, overload, failures).
inline std::string OutcomeText(const CommandResult& r) {
  const Outcome o = r.outcome == Outcome::kReplayed ? r.replayed : r.outcome;
  if (o != Outcome::kApplied && o != Outcome::kRejected) return {};
  // Appends only: GCC 12 at -O3 reports a false -Wrestrict on `"literal" + std::string`
  // (GCC bug 105329), which stops the Release build under -Werror.
  std::string out = o == Outcome::kApplied ? "applied " : "rejected:";
  if (o == Outcome::kApplied) {
    if (!r.events.empty()) out.append(projections::DescribeTokenRow(r.ShownRow()));
  } else {
    out.append(WireCode(r.rejection.code)).append(":").append(r.rejection.message);
  }
  for (const auto& e : r.events) out.append(" seq=").append(std::to_string(e.seq));
  return out;
}

}  // namespace tokenledger::store

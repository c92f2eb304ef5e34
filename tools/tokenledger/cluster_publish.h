// `tokenledger cluster-publish`: moves a single-node ledger (its export) into a cluster's
// JetStream stream, so that every node holds it with the same ids, times and hashes.
#pragma once

#include "tools/tokenledger/cli.h"

namespace tokenledger::cli {

// Exit codes as cli.h.
int ClusterPublish(const Flags& flags);

}  // namespace tokenledger::cli

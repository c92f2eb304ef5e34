// The subcommands of `tokenledger`, each in its own file (keys.h and cluster_publish.h declare
// theirs); AllCommands (cli.h, commands.cc) gives their names, help and flags. Each returns an
// exit code of cli.h.
#pragma once

#include "tools/tokenledger/cli.h"

namespace tokenledger::cli {

int Replay(const Flags& flags);   // replay.cc: beside a running server
int Rebuild(const Flags& flags);  // rebuild.cc: exclusive
int Verify(const Flags& flags);   // verify.cc: beside a running server
int Mint(const Flags& flags);     // mint.cc: exclusive
int Export(const Flags& flags);   // export.cc: beside a running server
int Import(const Flags& flags);   // import.cc: into an empty directory
int Stats(const Flags& flags);    // stats.cc: beside a running server

}  // namespace tokenledger::cli

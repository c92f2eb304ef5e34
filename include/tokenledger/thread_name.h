// Thread names: every long-lived thread names itself, so that `top -H`, `perf report --sort
// comm` and /proc/PID/task/*/comm say which stage of the server is busy (tl-io-0,
// tl-committer, tl-writer, ...).
// Thread-safety: names only the calling thread.
#pragma once

namespace tokenledger {

// Linux keeps at most 15 bytes of a name; a longer one is cut. Best effort: a failure is
// ignored, as a thread works the same without a name.
void NameThisThread(const char* name);

}  // namespace tokenledger

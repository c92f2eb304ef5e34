#include "tools/tokenledger/interrupt.h"

#include <signal.h>

#include <atomic>
#include <cstdio>

namespace tokenledger::cli {
namespace {

std::atomic<int> g_signal{0};
void OnSignal(int signal) { g_signal = signal; }

}  // namespace

void StopOnSignals() {
  struct sigaction action {};
  action.sa_handler = OnSignal;
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

bool Stopped() { return g_signal != 0; }

void ThrowIfStopped() {
  if (Stopped()) throw Interrupted{};
}

void EndByInterruptingSignal() {
  const int signal = g_signal;
  if (signal == 0) return;
  std::fflush(nullptr);
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

}  // namespace tokenledger::cli

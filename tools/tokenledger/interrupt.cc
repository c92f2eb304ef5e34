#include "tools/tokenledger/interrupt.h"

#include <signal.h>

#include <atomic>

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

int InterruptingSignal() { return g_signal; }

}  // namespace tokenledger::cli

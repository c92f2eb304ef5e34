// Interrupt: how a long `tokenledger` command stops on SIGINT or SIGTERM — between two of its
// steps, not where it stands. The handler only records the signal; the command's progress
// callback calls ThrowIfStopped() (or its scan callback returns !Stopped()), so the command
// unwinds through its destructors, which remove what it made: the temporary sort's directory
// (up to about the ledger's size), a partial export, a partial import's directory. The command
// says so and returns kInterrupted (cli.h); main() then ends the process by the same signal
// once the store is closed (exit status 130, 143), so a shell sees an interruption, not a
// failure. The handler resets itself: a second signal kills at once (leaving what a SIGKILL
// leaves). Thread-safety: Stopped() from any thread; the rest from the main thread.
#pragma once

namespace tokenledger::cli {

// Thrown by ThrowIfStopped(); caught by the command that called StopOnSignals().
struct Interrupted {};

// Installs the handlers. REQUIRES: called before the command makes anything a signal should
// remove (a temporary directory, a partial file).
void StopOnSignals();
// Whether SIGINT or SIGTERM arrived since StopOnSignals().
bool Stopped();
void ThrowIfStopped();
// Ends the process by the signal that stopped the command, as that signal would have (its
// default action), once the command has cleaned up and closed everything. Returns only if no
// signal stopped it.
void EndByInterruptingSignal();

}  // namespace tokenledger::cli

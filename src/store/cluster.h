// ClusterLog: the log of record on NATS JetStream, for a LedgerStore in cluster mode.
//
// Write side (the committer thread runs ProposerLoop): each queued command is decided against
// this node's local state, exactly as single-node mode decides it, and published as one
// Proposal to the token's subject with `Nats-Expected-Last-Subject-Sequence` = the sequence of
// the last message on that subject this node has applied. JetStream stores it on a quorum or
// answers "wrong last sequence" (another node wrote the token first): then the node waits
// until it has applied that write and decides again, at most ClusterOptions::max_retries times.
// A command is answered when this node has applied its message (read-your-writes), with the
// outcome the apply produced. At most one command per token is in flight from a node; later
// ones wait for it (they would only fail the sequence check).
//
// Read side (the applier thread): an ordered consumer delivers the stream in order from the
// message after the last applied one; each batch of messages is applied to RocksDB in one
// write (events with seq and hash assigned in stream order, stream index, projections,
// idempotency records, usage, chain head, the last applied sequence and each touched subject's
// sequence), so every node holds the same rows and the same chain. The local write is not
// synced: JetStream holds the log, and after a crash the node re-applies from its last
// applied sequence (RocksDB recovers a consistent prefix).
//
// Idempotency keys: the message id is the account and key, so JetStream drops a duplicate
// within its window and the duplicate's sender answers from the record once applied; beyond
// the window the apply itself finds the record and appends nothing. Either way every node
// decides a key's outcome from the same message: the first in stream order.
//
// Thread-safety: the store's threads only (committer, applier, NATS callbacks) call it.
#pragma once

#include <memory>

#include "src/store/ledger_store.h"

namespace tokenledger::store {

class ClusterLog {
 public:
  // Connects (in the background if no server answers yet), creates the stream if missing and
  // starts the applier. REQUIRES: impl is open in kServe or kMaintenance mode and outlives it.
  static Result<std::unique_ptr<ClusterLog>> Start(LedgerStore::Impl& impl);
  // Stops the applier and closes the connection. REQUIRES: ProposerLoop has returned.
  ~ClusterLog();

  // The committer thread's loop in cluster mode; returns once the store is stopping and every
  // command in flight has been answered (or has timed out).
  void ProposerLoop();

  // Ok while connected and caught up (lag within max_ready_lag); why not, otherwise.
  StoreHealth Health() const;

  struct State;

 private:
  explicit ClusterLog(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tokenledger::store

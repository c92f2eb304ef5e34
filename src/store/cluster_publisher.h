// ClusterPublisher: moves a single-node ledger into a cluster. Publishes stored event records
// (hash + body, as `tokenledger export` wrote them) to an empty cluster stream, one message
// each on its token's subject, in order, each expecting the stream's previous sequence: so
// nothing can interleave, and every node appends the records verbatim (same seq, ids, times
// and hashes: the chain head after the move equals the exported ledger's).
//
// Thread-safety: one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "tokenledger/error.h"
#include "tokenledger/options.h"

namespace tokenledger::store {

class ClusterPublisher {
 public:
  // Connects to options.urls and creates the stream if missing. Fails (kInvalidValue) if the
  // stream holds any message: a move goes into an empty stream only (start the nodes with
  // --no-first-token, or after the move).
  // The stream is created with `idempotency_ttl` (the nodes' --idempotency-ttl, which must be
  // the same on every node) if it is missing.
  static Result<std::unique_ptr<ClusterPublisher>> Connect(const ClusterOptions& options,
                                                           Micros idempotency_ttl);
  ~ClusterPublisher();

  // Publishes the next record (asynchronously; at most a few thousand in flight). Fails once
  // JetStream has refused an earlier one. REQUIRES: records in seq order from 1.
  Status Publish(const std::string& record);
  // Waits until JetStream has stored every published record; the first failure if any.
  Status Finish();
  std::uint64_t Published() const;

  struct State;

 private:
  explicit ClusterPublisher(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace tokenledger::store

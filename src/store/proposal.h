// Proposal: one decided command as a cluster node publishes it to the JetStream stream (the
// log of record in cluster mode), and its JSON codec. One command is one message, whatever
// number of events it carries.
//
// A proposal carries what the proposing node decided against its local state at the token's
// stream version `version`: the events (without seq and prev_hash: every node assigns those
// in stream order, so every node computes the same hash chain), or the rejection an
// idempotency key records, or only a use. Every node applies it in stream order; see
// docs/LEDGER.md, "Cluster mode".
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/events.h"
#include "src/core/decider.h"
#include "src/store/ledger_store.h"
#include "tokenledger/error.h"

namespace tokenledger::store {

// The message format's version, written in every message ("v"); a node refuses (stops
// applying at) a message of a newer format than it knows.
inline constexpr std::uint32_t kProposalFormat = 1;

struct Proposal {
  std::string id;             // unique per proposal: the proposing node's id and a counter
  Id stream;                  // the token (the message's subject)
  std::uint64_t version = 0;  // the stream version it was decided on (0: no stream yet)
  // The stream sequence of the last message on the token's subject when it was decided (what
  // it was published expecting); the apply checks it too, whatever JetStream checked.
  std::uint64_t subject_seq = 0;
  Micros at = 0;  // when it was decided: its events' time, its record's time
  std::optional<IdempotencyInfo> idempotency;
  bool applied = true;            // false: a recorded rejection (REQUIRES idempotency)
  core::Rejection rejection;      // !applied; REQUIRES: IsRecordedRejection(rejection.code)
  std::optional<Micros> used_at;  // a use that moves the token's last_used_at
  // The events, in order, seq and prev_hash zero. REQUIRES: every one's stream is `stream`,
  // their stream versions follow `version`. Encoded as bodies (EncodeEventBody, seq 0, zero
  // prev_hash), which every node stores as they are, stamped with seq and prev_hash
  // (events::StampEventBody): so a node of another release stores the same bytes.
  std::vector<events::EventEnvelope> events;
  // Decoded messages only: the bodies as sent, index for index with `events`.
  std::vector<std::string> bodies;
  // A record moved from a single-node ledger (`tokenledger cluster-publish`): hash + body as
  // exported, appended as it is. Then the fields above but id, stream and version are unset.
  std::string verbatim;
};

std::string EncodeProposal(const Proposal& p);
// Fails naming what is wrong: kUnexpected for a malformed message (every node skips it
// alike), kUnavailable for a newer format (this node cannot apply it: it must stop there until
// upgraded, or it would fork from the nodes that can).
Result<Proposal> DecodeProposal(std::string_view bytes);

}  // namespace tokenledger::store

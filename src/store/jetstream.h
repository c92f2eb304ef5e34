// The JetStream side shared by a cluster node (cluster.cc) and the publisher that moves a
// ledger into a cluster (cluster_publisher.cc): the stream's subjects and configuration, and
// the NATS client's error text. Only src/store includes NATS.
#pragma once

#include <nats/nats.h>

#include <string>
#include <string_view>
#include <vector>

#include "tokenledger/error.h"
#include "tokenledger/options.h"

namespace tokenledger::store {

// The header naming the proposal a message carries (its ack handler finds it by this).
inline constexpr char kProposalHeader[] = "Tokenledger-Proposal";
// Async publishes in flight per connection before a publish waits (JetStream's flow control).
inline constexpr int kMaxPendingPublishes = 4096;
// How long a JetStream API request (create the stream, create the consumer) may wait before the
// caller tries again: while JetStream elects a new meta leader they time out, and the client's
// default (5 s) would add to the outage.
inline constexpr int kJetStreamApiWaitMs = 1000;

// "what: the NATS status text (the client's last error)".
std::string NatsError(natsStatus s, std::string_view what);
// "tokenledger.<stream>.": a token's subject is this and its id.
std::string SubjectPrefix(const ClusterOptions& opts);
// Creates the stream (file storage, the configured replicas and de-duplication window, the
// idempotency TTL in its description) if it does not exist. Fails (kInvalidValue) if it exists
// with another TTL, kUnavailable if JetStream does not answer.
Status CreateStream(jsCtx* js, const ClusterOptions& opts, Micros idempotency_ttl);
// The URLs of ClusterOptions::urls, split at commas.
std::vector<std::string> SplitUrls(const std::string& urls);

}  // namespace tokenledger::store

// The on-disk layout of the ledger: column family names, key encodings and the idempotency
// record format. Internal to src/store.
//
// Column families:
//   events        seq (8 BE)                          -> stored event (hash + JSON body)
//   streams       token_id (20) | version (8 BE)       -> seq (8 BE)
//   idempotency   'k' | account_id (20) | key          -> IdempotencyRecord
//                 't' | created_at (8 BE) | account_id (20) | key -> "" (purge order)
//   meta          text keys (kMeta*)                   -> values described there
//   usage         token_id (20)                        -> last use (8 BE micros): usage records
//                 beside the ledger, not part of the hash chain (see DecideUse)
//   token_details projection rows, token_id (20)       -> projections::EncodeTokenRow
//   list index    projections::ListIndexEntrySet
// The two projection families carry their version and generation in their name, and meta
// says which ones are in use, so a rebuild can build new ones beside them and switch in one
// atomic write.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "src/core/decider.h"
#include "tokenledger/id.h"
#include "tokenledger/time.h"

namespace tokenledger::store {

inline constexpr char kEventsCf[] = "events";
inline constexpr char kStreamsCf[] = "streams";
inline constexpr char kIdempotencyCf[] = "idempotency";
inline constexpr char kMetaCf[] = "meta";
inline constexpr char kUsageCf[] = "usage";

// meta keys
inline constexpr char kMetaFormat[] = "format";              // "1"
inline constexpr char kMetaChainHead[] = "chain_head";       // seq (8 BE) | hash (32)
inline constexpr char kMetaProjections[] = "projections";    // JSON, see ProjectionMeta
inline constexpr char kMetaRebuild[] = "rebuild";            // JSON, a rebuild in progress
inline constexpr char kMetaImport[] = "import_in_progress";  // "1": an unfinished import
// Cluster mode (cluster.cc). A ledger that was ever a cluster node's names its stream, and is
// refused by a single-node start (and by a node of another stream).
inline constexpr char kMetaCluster[] = "cluster";                 // the stream's name
inline constexpr char kMetaClusterApplied[] = "cluster_applied";  // u64: last applied message
// + token id (20): u64, the stream sequence of the last message on that token's subject (what
// the next proposal on it expects; messages that append nothing count too).
inline constexpr char kMetaClusterSubjectPrefix[] = "cluster_subject/";
// A file in the data directory, created by `tokenledger import` before the ledger itself (so
// no kill leaves a servable directory, not even during the first open) and removed after
// FinishImport. Open(kServe) refuses a directory with either marker.
inline constexpr char kImportMarkerFile[] = "IMPORT_IN_PROGRESS";
inline constexpr char kLedgerFormat[] = "1";
// The store's own lock file in the data directory (flock, taken before RocksDB opens).
inline constexpr char kLockFile[] = "tokenledger.lock";

std::string EncodeU64(std::uint64_t v);
std::uint64_t DecodeU64(std::string_view bytes);  // REQUIRES: bytes.size() >= 8

std::string EventKey(std::uint64_t seq);
std::string StreamKey(const Id& token, std::uint64_t version);
std::string StreamPrefix(const Id& token);

using Fingerprint = std::array<std::uint8_t, 32>;

// Only decisions the ledger made are recorded for an idempotency key: a validation failure
// (invalid_value, required_value) records nothing so the client can fix the request and retry
// with the same key.
inline bool IsRecordedRejection(ErrorCode code) {
  return code == ErrorCode::kInvalidAction || code == ErrorCode::kNotFound;
}

// What a request with an idempotency key got, typed: enough to answer a retry as the first
// request was answered. The token's row is not stored: it is the fold of the token's events
// up to the request's last one (they never change), with `last_used_at` as it was then
// (usage records are not events).
struct IdempotencyRecord {
  Micros created_at = 0;
  Fingerprint fingerprint{};
  std::uint64_t first_seq = 0;  // first event written by the request (0: none)
  std::uint32_t event_count = 0;
  bool applied = true;                 // false: `rejection` was recorded
  core::Rejection rejection;           // !applied; REQUIRES: IsRecordedRejection(code)
  std::optional<Micros> last_used_at;  // applied: the token's last_used_at after the request
  // A record written before format 2: the HTTP answer as rendered then ("SSS\n<body>"). Read
  // only, until the last such record expires; empty for every record written now.
  std::string legacy_response;
};

std::string IdempotencyKey(const Id& account, std::string_view key);
std::string IdempotencyExpiryKey(Micros created_at, const Id& account, std::string_view key);
inline constexpr char kIdempotencyRecordTag = 'k';
inline constexpr char kIdempotencyExpiryTag = 't';

std::string EncodeIdempotencyRecord(const IdempotencyRecord& record);
std::optional<IdempotencyRecord> DecodeIdempotencyRecord(std::string_view bytes);

}  // namespace tokenledger::store

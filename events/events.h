// The ledger's event types and the envelope every stored event carries.
//
// Event data are plain structs with no behaviour, so the pure core can use them without
// seeing any codec. Type names and schema versions are written to disk: never rename or
// renumber a type, never reuse a version. A change of shape gets a new schema version and an
// upcaster (event_codec.h) from the old one.
//
// Thread-safety: value types only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "tokenledger/id.h"
#include "tokenledger/time.h"

namespace tokenledger::events {

// Stored in events (by name) and in list index keys (by value): never renumber.
//   account        everything on its account's tokens
//   environment    ping, list and show its environment's tokens
//   introspection  only POST /api/v1/introspect (a gateway's credential); minted by an
//                  operator, never created through the API
//   agent_deployment  an agent deployed in an environment (the platform's SDK creates these):
//                  ping, and introspect itself; always has an agent_id
enum class TokenScope : std::uint8_t {
  kAccount = 1,
  kEnvironment = 2,
  kIntrospection = 3,
  kAgentDeployment = 4,
};
// Whether tokens of `scope` belong to an environment (environment_id required, else null).
constexpr bool ScopeHasEnvironment(TokenScope scope) {
  return scope == TokenScope::kEnvironment || scope == TokenScope::kAgentDeployment;
}
// Whether tokens of `scope` belong to an agent (agent_id required, else null; an
// agent_deployment_id only with one).
constexpr bool ScopeHasAgent(TokenScope scope) { return scope == TokenScope::kAgentDeployment; }

std::string_view ScopeName(TokenScope scope);
std::optional<TokenScope> ParseScope(std::string_view name);

// Schema versions: 1 the fields up to created_by_admin_user_id; 2 adds agent_id,
// agent_deployment_id and signing_kid (null in every version-1 event, see the upcaster).
struct TokenCreated {
  Id account_id;
  std::optional<Id> environment_id;
  TokenScope scope = TokenScope::kAccount;
  Micros expires_at = 0;
  std::optional<Id> created_by_admin_user_id;
  std::optional<Id> agent_id;             // v2: agent_deployment scope only
  std::optional<Id> agent_deployment_id;  // v2: agent_deployment scope only, when given
  // v2: the `kid` of the key that signed the token (never the key), so a replayed create
  // re-signs with the same key. Null: the ledger's original key, with no `kid` in the JWT
  // header (every token created before the key ring).
  std::optional<std::string> signing_kid;
  friend bool operator==(const TokenCreated&, const TokenCreated&) = default;
};
struct TokenSuspended {
  friend bool operator==(const TokenSuspended&, const TokenSuspended&) = default;
};
struct TokenActivated {
  friend bool operator==(const TokenActivated&, const TokenActivated&) = default;
};
struct TokenRevoked {
  friend bool operator==(const TokenRevoked&, const TokenRevoked&) = default;
};
struct TokenDeleted {
  friend bool operator==(const TokenDeleted&, const TokenDeleted&) = default;
};
// A successful authentication with the token (moves last_used_at; not a state change).
struct TokenUsed {
  Micros used_at = 0;
  friend bool operator==(const TokenUsed&, const TokenUsed&) = default;
};

// The key ring's events (tokenledger keys rotate|retire) belong to its own stream,
// kKeyRingStream, never to a token's: the audit history of the signing keys. They name keys by
// `kid` only; a key itself is never in the ledger.
//   by: who ran the command (the operator's login on the machine, `user@host`)
struct SigningKeyRotated {
  std::string kid;                          // the new active key
  std::optional<std::string> previous_kid;  // the key it replaces (null: none was named)
  std::string by;
  friend bool operator==(const SigningKeyRotated&, const SigningKeyRotated&) = default;
};
struct SigningKeyRetired {
  std::string kid;
  std::uint64_t active_tokens = 0;  // active tokens it had signed (non-zero: --force)
  std::string by;
  friend bool operator==(const SigningKeyRetired&, const SigningKeyRetired&) = default;
};

// The key ring's stream: the all-zero id, which no token ever has (IdGenerator never makes it).
inline const Id kKeyRingStream{};

using EventData = std::variant<TokenCreated, TokenSuspended, TokenActivated, TokenRevoked,
                               TokenDeleted, TokenUsed, SigningKeyRotated, SigningKeyRetired>;

// Whether `data` is a key ring event (else a token's).
bool IsKeyRingEvent(const EventData& data);
// Whether an event is in the stream its type belongs to: key ring events in kKeyRingStream,
// token events in any other. Import refuses, and verify reports, an event that is not.
bool InItsStream(const Id& stream, const EventData& data);

// The type name written to disk ("TokenCreated", ...).
std::string_view TypeName(const EventData& data);
// The schema version this code writes for the type of `data`.
std::uint32_t CurrentSchemaVersion(std::string_view type_name);

using Hash = std::array<std::uint8_t, 32>;

struct Actor {
  std::optional<Id> token_id;
  std::optional<Id> admin_user_id;
  friend bool operator==(const Actor&, const Actor&) = default;
};

struct EventEnvelope {
  std::uint64_t seq = 0;             // global sequence number, from 1, no gaps
  Id stream;                         // the token id
  std::uint64_t stream_version = 0;  // version within the stream, from 1, no gaps
  std::uint32_t schema_version = 0;  // schema version of `data` as stored
  Micros at = 0;                     // commit time
  Actor actor;
  std::string request_id;
  std::optional<std::string> idempotency_key;
  EventData data;
  Hash prev_hash{};  // hash of event seq-1 (all zero for seq 1)
  Hash hash{};       // SHA-256 of this event's stored body (which includes prev_hash)
  friend bool operator==(const EventEnvelope&, const EventEnvelope&) = default;
};

}  // namespace tokenledger::events

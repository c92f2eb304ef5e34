// JSON codec of the event envelope (Boost.JSON), the stored record format and the upcaster
// registry.
//
// Stored record: 32 bytes of SHA-256 hash, then the canonical JSON body. The body has a fixed
// key order and includes `prev_hash`; the hash is over the body bytes exactly as stored, so
// verification never depends on re-encoding (old events are upcast when decoded, but their
// stored bytes never change).
//
// Thread-safety: all functions are thread-safe. UpcasterRegistry is immutable once built;
// registering while another thread decodes is not allowed.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "events/events.h"
#include "tokenledger/error.h"

namespace tokenledger::events {

// Lifts the `data` object of one event type from one schema version to the next.
class UpcasterRegistry {
 public:
  using Upcaster = std::function<Result<boost::json::object>(boost::json::object data)>;

  // Registers the step from `from_version` to `from_version + 1` for `type`.
  void Register(std::string type, std::uint32_t from_version, Upcaster upcaster);

  // Applies the steps from `version` up to CurrentSchemaVersion(type). Fails if a step is
  // missing or the version is newer than this code knows (written by a newer release).
  Result<boost::json::object> Upcast(std::string_view type, std::uint32_t version,
                                     boost::json::object data) const;

 private:
  std::map<std::pair<std::string, std::uint32_t>, Upcaster, std::less<>> steps_;
};

// The registry holding every production upcaster: TokenCreated 1 -> 2.
const UpcasterRegistry& DefaultUpcasters();

// The canonical body (everything but `hash`).
std::string EncodeEventBody(const EventEnvelope& event);

// Encodes the record to store and sets `event.hash` to the hash of its body.
std::string EncodeStoredEvent(EventEnvelope& event);

// A body encoded before its seq and prev_hash were known (seq 0, an all-zero prev_hash: the
// first and last keys of the layout), with both filled in and every other byte as it was. A
// cluster node stores the body exactly as the node that decided it encoded it, whatever its
// own release would encode (docs/LEDGER.md, "Cluster mode"). Nullopt if `body` is not such a
// body.
std::optional<std::string> StampEventBody(std::string_view body, std::uint64_t seq,
                                          const Hash& prev_hash);

// Decodes a body, upcasting its data to the current schema version. `hash` is left zero.
// Fails with kUnexpected (corrupt or unknown data) naming what is wrong.
Result<EventEnvelope> DecodeEventBody(std::string_view body,
                                      const UpcasterRegistry& upcasters = DefaultUpcasters());

// Decodes a stored record; `hash` is the stored one (not recomputed: see VerifyStoredEvent).
Result<EventEnvelope> DecodeStoredEvent(std::string_view stored,
                                        const UpcasterRegistry& upcasters = DefaultUpcasters());

// DecodeStoredEvent into `*out`, reusing its strings' capacity: for loops over many events.
// On failure `*out` is unspecified.
Status DecodeStoredEventInto(std::string_view stored, EventEnvelope* out,
                             const UpcasterRegistry& upcasters = DefaultUpcasters());

// The two paths under DecodeEventBody, exposed for tests, the fuzzer and the benchmark.
//
// Fast path: a hand-written parser of exactly the layout EncodeEventBody writes (its key order,
// no whitespace, data at the current schema version, numbers without sign/fraction/exponent,
// strings with the escapes json::serialize writes or any other BMP escape). No DOM; the only
// allocations are the strings of the output. Returns false for anything else, leaving `*out`
// unspecified; it never rejects: DecodeEventBody then decodes the same bytes on the general
// path, which decides. Guarantee (tested, fuzzed): when it returns true, `*out` equals what the
// general path returns for the same bytes, with any upcaster registry.
bool DecodeCanonicalEventBody(std::string_view body, EventEnvelope* out);
// General path: Boost.JSON DOM, any key order, upcasters for older schema versions.
Result<EventEnvelope> DecodeEventBodyGeneric(
    std::string_view body, const UpcasterRegistry& upcasters = DefaultUpcasters());

// The length of the well-formed multi-byte UTF-8 sequence `at` starts with (Unicode table 3-7:
// no overlong forms, no surrogates, nothing above U+10FFFF); 0 if it does not start with one
// (an ASCII byte included).
std::size_t Utf8SequenceLength(std::string_view at);
// Whether `text` is well-formed UTF-8 throughout: what every JSON string of an event holds.
bool IsWellFormedUtf8(std::string_view text);

// The body part of a stored record, and whether its stored hash matches it.
std::string_view StoredBody(std::string_view stored);
bool StoredHashMatches(std::string_view stored);

// The event as the API shows it: {"seq","stream_version","type","schema_version","at",
// "actor":{"token_id","admin_user_id"},"request_id","idempotency_key","data","hash"}.
boost::json::object EventToApiJson(const EventEnvelope& event);

// The `data` object of an event, as stored at its current schema version.
boost::json::object EventDataToJson(const EventData& data);

}  // namespace tokenledger::events

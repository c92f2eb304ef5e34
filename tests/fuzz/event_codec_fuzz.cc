// The event codec on arbitrary stored bytes: DecodeStoredEvent (32 hash bytes, then the body)
// and DecodeEventBody, through the production upcasters and through a registry that adds a
// schema-version-0 TokenCreated upcaster (the pre-release shape of
// tests/events/fixtures/token_created_v0.json) in front of the production steps, so that
// upcasting sees arbitrary data objects.
//
// Every accepted event must re-encode to a current-version body that decodes, without any
// upcaster, to the same event; that encoding must be canonical (re-encoding gives the same
// bytes) and its stored record must carry a matching hash.
//
// The fast path (DecodeCanonicalEventBody) must never disagree with the general one
// (DecodeEventBodyGeneric): whatever it accepts decodes on the general path, with or without
// the v0 upcaster, to the same event.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/event_codec.h"

namespace {

namespace json = boost::json;
using namespace tokenledger;
using namespace tokenledger::events;

Error Bad(std::string message) { return Error{ErrorCode::kUnexpected, std::move(message), {}}; }

// v0 TokenCreated: {"account","environment","scope","expires_at_unix"} -> v1. Written to refuse
// anything malformed with an error (never to throw), as production upcasters must.
Result<json::object> TokenCreatedV0(json::object d) {
  json::object up;
  for (const char* key : {"account", "environment", "scope", "expires_at_unix"}) {
    if (!d.contains(key)) return Bad(std::string("v0 field '") + key + "' is missing");
  }
  up["account_id"] = d["account"];
  up["environment_id"] = d["environment"];
  up["token_scope"] = d["scope"];
  const json::value& unix = d["expires_at_unix"];
  // Years 0001-9999 in seconds.
  constexpr std::int64_t kMinSeconds = -62135596800LL, kMaxSeconds = 253402300799LL;
  if (!unix.is_int64() || unix.get_int64() < kMinSeconds || unix.get_int64() > kMaxSeconds)
    return Bad("v0 field 'expires_at_unix' is out of range");
  up["expires_at"] = FormatRfc3339(unix.get_int64() * kMicrosPerSecond);
  up["created_by_admin_user_id"] = nullptr;
  return up;
}

// TokenCreated 0 -> 1 in front of the production steps. It must hold those too (the harness
// checks that it accepts everything the production registry accepts, identically), so step
// 1 -> 2 is DefaultUpcasters() itself. That lifts 1 to the current version: exactly step
// 1 -> 2 while TokenCreated is at version 2 (a version 3 means revisiting this).
const UpcasterRegistry& WithV0() {
  static const UpcasterRegistry registry = [] {
    UpcasterRegistry r;
    r.Register("TokenCreated", 0, TokenCreatedV0);
    r.Register("TokenCreated", 1, [](json::object d) {
      return DefaultUpcasters().Upcast("TokenCreated", 1, std::move(d));
    });
    return r;
  }();
  return registry;
}

[[noreturn]] void Fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "event_codec_fuzz: %s\n  input: %.*s\n", what,
               static_cast<int>(input.size()), input.data());
  std::abort();
}

void CheckAccepted(const EventEnvelope& decoded, std::string_view input) {
  if (decoded.schema_version != CurrentSchemaVersion(TypeName(decoded.data)))
    Fail("a decoded event is not at the current schema version", input);
  EventEnvelope e = decoded;
  e.hash = {};
  const std::string body = EncodeEventBody(e);
  auto again = DecodeEventBody(body, UpcasterRegistry{});
  if (!again) Fail("a re-encoded event does not decode", body);
  if (!(*again == e)) Fail("a re-encoded event decodes to a different event", body);
  if (EncodeEventBody(*again) != body) Fail("the event encoding is not canonical", body);
  // The stored record: hash over the body, decodes with that hash.
  EventEnvelope stored_event = e;
  const std::string stored = EncodeStoredEvent(stored_event);
  if (!StoredHashMatches(stored) || StoredBody(stored) != body)
    Fail("an encoded record's hash does not match", body);
  auto from_stored = DecodeStoredEvent(stored);
  if (!from_stored || !(*from_stored == stored_event))
    Fail("an encoded record decodes to a different event", body);
  // The API view is built from the same fields and must not throw.
  (void)json::serialize(EventToApiJson(e));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Fast path == general path for every input the fast path accepts.
  EventEnvelope fast;
  if (DecodeCanonicalEventBody(input, &fast)) {
    auto general = DecodeEventBodyGeneric(input);
    if (!general) Fail("the fast path accepts what the general path rejects", input);
    if (!(*general == fast)) Fail("the fast and general paths decode differently", input);
    auto general_v0 = DecodeEventBodyGeneric(input, WithV0());
    if (!general_v0 || !(*general_v0 == fast))
      Fail("the fast path differs from the general path with an upcaster", input);
  }
  // The whole input as a body, through the production upcasters and through v0 -> v1 -> ...
  auto plain = DecodeEventBody(input);
  if (plain) CheckAccepted(*plain, input);
  auto upcast = DecodeEventBody(input, WithV0());
  if (upcast) CheckAccepted(*upcast, input);
  // The production registry accepts a subset of what the v0 registry accepts, with the same
  // result (an upcaster only adds versions it can lift).
  if (plain && !(upcast && *upcast == *plain)) Fail("adding an upcaster changed a decode", input);
  // The whole input as a stored record (hash, then body).
  (void)StoredHashMatches(input);
  auto stored = DecodeStoredEvent(input, WithV0());
  if (stored) {
    if (!std::equal(stored->hash.begin(), stored->hash.end(),
                    reinterpret_cast<const std::uint8_t*>(input.data())))
      Fail("a decoded record does not carry its stored hash", input);
    CheckAccepted(*stored, input);
  }
  return 0;
}

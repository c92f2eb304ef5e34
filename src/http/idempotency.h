// Idempotency at the HTTP edge (SPEC.md, "Idempotency"): the client's key, the fingerprint of
// the request it names, and a write's answer, the same bytes whether fresh or replayed.
//
// A write's key comes from the body's `idempotency_key` or the Idempotency-Key header (the
// same if both). The store keeps, per (account, key), the fingerprint and the typed outcome;
// a retry with the same fingerprint is answered from it (Idempotent-Replayed: true) and one
// with another fingerprint is refused. RenderWrite turns any outcome into the answer, so a
// replay renders exactly as the first answer did.
//
// Thread-safety: pure functions of their arguments (a JwtFn must be safe to call where
// RenderWrite is called).
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/commands.h"
#include "src/core/token_state.h"
#include "src/http/http_types.h"
#include "src/store/ledger_store.h"
#include "tokenledger/error.h"

namespace tokenledger::http {

// The longest key accepted, in bytes.
inline constexpr std::size_t kMaxIdempotencyKey = 255;

// OK if `key` is 1 to kMaxIdempotencyKey printable ASCII characters; invalid_value on
// `idempotency_key` otherwise.
Status ValidateIdempotencyKey(std::string_view key);

// The `idempotency_key` of a body object: nullopt when absent or null. Fails with
// invalid_value if it is not a string or not a valid key.
Result<std::optional<std::string>> BodyKey(const boost::json::object& body);

// The key of a write: the Idempotency-Key header of `request` or `body_key` (from BodyKey), or
// nullopt if neither. Fails with invalid_value if the header is repeated or invalid, or if
// both are present and differ.
Result<std::optional<std::string>> ResolveKey(const HttpRequest& request,
                                              std::optional<std::string> body_key);

// What a key is bound to: method, route pattern, path parameters and the request's canonical
// body, so the same key on another request is a conflict. The store keeps its SHA-256.
std::string Fingerprint(std::string_view method, std::string_view route,
                        const std::vector<std::string_view>& params,
                        std::string_view canonical_body);

// The canonical body of a create: scope, account, environment and expiry instant, so requests
// that differ only in spelling (`"account_id": null` or the caller's own id, two forms of the
// same instant) are the same request.
std::string CanonicalCreate(const core::CreateToken& create);

// Signs a token's JWT from its state (its claims and key follow from it). Set for creates
// only. Fails (invalid_action) when the key that signed the token has been retired.
using JwtFn = std::function<Result<std::string>(const core::TokenState&)>;

// The answer to a write: applied → 200 with the token's details (and `token`, the JWT, when
// `jwt` is set); rejected → the rejection's error; replayed → the first answer, rendered the
// same way (or, for a record of format 1, its recorded bytes through LegacyReplay), with
// `Idempotent-Replayed: true`; key conflict → 409 idempotency_key_already_used; overloaded or
// unavailable → 503. REQUIRES: an applied outcome (or a replayed applied one of a typed record)
// has a row to show (`result.after` or `result.before`). May throw on a malformed legacy record.
HttpResponse RenderWrite(const store::CommandResult& result, const JwtFn& jwt);

// The answer recorded in a format-1 idempotency record, "SSS\n<body>": its status and exact
// body, with the placeholder of a create's JWT (the secret was never recorded) replaced by
// `jwt` of the token the recorded details describe. Throws if `stored` is malformed.
HttpResponse LegacyReplay(std::string_view stored, const JwtFn& jwt);

// Where a created token's JWT went in a format-1 record.
inline constexpr std::string_view kTokenPlaceholder = "@@api_token_jwt@@";

}  // namespace tokenledger::http

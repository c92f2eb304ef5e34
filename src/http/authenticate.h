// Authentication of API requests: `Authorization: Bearer <JWT>` to a Caller, and the
// rate limiter that keeps a busy token from submitting a RecordUse on every request.
//
// A request authenticates when its one Authorization header is `Bearer <token>` (the scheme
// in any case), the JWT verifies under the key its header names (auth::KeyRing::Verify), its
// token is visible in the ledger, matches the claims' account, environment and key (`kid`, as
// recorded when it was created), is active, and neither its signed nor
// its stored expiry has passed (auth::CheckNotExpired). Every refusal is an Error safe to show:
// not_authenticated (no header), bad_request (repeated header) or bad_authtoken.
//
// Thread-safety: the free functions are pure. LastUseLimiter and Authenticator may be used
// from any number of threads at once.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "src/auth/key_ring.h"
#include "src/auth/verified_tokens.h"
#include "src/http/http_types.h"
#include "src/http/reach.h"
#include "src/store/ledger_store.h"
#include "tokenledger/error.h"
#include "tokenledger/id.h"
#include "tokenledger/time.h"

namespace tokenledger::http {

// The token of `request`'s Authorization header, a view into request.authorization. Fails
// with not_authenticated if the header is missing, bad_request if it is repeated (which one
// counts is a guess a proxy in front might make differently) and bad_authtoken if it is not
// `Bearer <token>` with a non-empty token.
Result<std::string_view> BearerToken(const HttpRequest& request);

// Whether verified `claims` authenticate as the token whose row is `row` (null: unknown or
// deleted) at `now`: the row matches the claims' account and environment, is active and has
// not expired. Returns the caller, or bad_authtoken.
Result<Caller> AdmitCaller(const auth::Claims& claims, const projections::TokenRow* row,
                           Micros now);

// Lets at most one use of a token per `granularity` through to be recorded (RecordUse), from
// this process: a use is let through when neither the token's stored last_used_at nor a use
// this limiter let through earlier is within `granularity` of it. Remembers at most about
// kMaxEntries tokens: past that, entries older than `granularity` are dropped.
class LastUseLimiter {
 public:
  static constexpr std::size_t kMaxEntries = 65536;

  // REQUIRES: granularity >= 0.
  explicit LastUseLimiter(Micros granularity);

  // Whether the use of `token` at `now` is to be recorded; if so, it counts as the token's
  // latest recorded use from now on. `last_used_at` is the token's stored one.
  bool Admit(const Id& token, const std::optional<Micros>& last_used_at, Micros now);

  // Tokens remembered (for tests).
  std::size_t size() const;

 private:
  const Micros granularity_;
  mutable std::mutex mu_;
  std::unordered_map<Id, Micros, IdHash> recent_uses_;  // guarded by mu_
};

// Authenticates requests against a ledger, and records the uses LastUseLimiter lets through
// (fire and forget: a request never waits for that write; a failure is logged).
class Authenticator {
 public:
  // Keeps up to `verified_tokens` tokens verified (auth::VerifiedTokens; 0: none).
  // REQUIRES: `store` and `keys` outlive this object.
  Authenticator(store::LedgerStore& store, const auth::KeyRing& keys, Micros last_used_granularity,
                std::size_t verified_tokens);

  // The caller of `request` at `now`, or why it may not authenticate (see the top of this
  // file), or the store's error reading the token. A use's failure to record is logged
  // through request.post (inline if empty), off the store's writer thread.
  Result<Caller> Authenticate(const HttpRequest& request, Micros now);

  // What introspection tells about a token that would authenticate.
  struct Introspected {
    Caller caller;
    Micros issued_at = 0;   // the token's inserted_at
    Micros expires_at = 0;  // its stored expiry
  };
  // RFC 7662: whether `jwt` would authenticate right now (as Authenticate, without the
  // header), then recording its use like an authentication. nullopt when it would not, for
  // whatever reason (never said), for introspection tokens (a gateway's credential is not an
  // API token a gateway should let through) and for tokens `asker` may not introspect
  // (MayIntrospect: nothing about them is said, and no use is recorded). Fails only with the
  // store's error.
  Result<std::optional<Introspected>> Introspect(const Caller& asker, std::string_view jwt,
                                                 Micros now, const PostFn& post);

 private:
  // The caller `jwt` authenticates as, and its row.
  Result<std::pair<Caller, projections::TokenRow>> Admit(std::string_view jwt, Micros now);
  // Records the use of `row`'s token at `now` if LastUseLimiter lets it through.
  void NoteUse(const projections::TokenRow& row, Micros now, const PostFn& post);
  void RecordUse(const Id& token, Micros now, const PostFn& post);

  store::LedgerStore& store_;
  auth::VerifiedTokens verified_;
  LastUseLimiter uses_;
};

}  // namespace tokenledger::http

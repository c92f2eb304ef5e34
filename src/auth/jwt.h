// HS256 JSON Web Tokens: the bearer secrets handed to API clients.
//
// Only HS256 tokens are accepted (`{"alg":"HS256","typ":"JWT"}`, with a `kid` naming the key
// ring's key that signed it): any other `alg` (including `none`) is refused before the
// signature is looked at, and the signature is compared in constant time. Claims: `jti` (token id),
// `iat`, `exp` (its expires_at, seconds) and
// `_: {"a": account_id, "e": environment_id}` (`e` only for scopes with an environment:
// environment and agent_deployment; a JWT does not say its scope, the ledger does).
//
// Thread-safety: JwtSigner is immutable after construction and safe to share.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tokenledger/error.h"
#include "tokenledger/id.h"

namespace tokenledger::auth {

using SigningKey = std::array<std::uint8_t, 32>;

struct Claims {
  Id token_id;                       // jti
  std::int64_t issued_at = 0;        // iat, Unix seconds
  std::int64_t expires_at = 0;       // exp, Unix seconds
  Id account_id;                     // _.a
  std::optional<Id> environment_id;  // _.e
  // The header's `kid` (Verify sets it; Sign writes the signer's own, never this one).
  std::optional<std::string> kid;
  friend bool operator==(const Claims&, const Claims&) = default;
};

// The claims of a token: times in whole seconds (exp rounds down, so a token never outlives
// its expires_at).
Claims MakeClaims(const Id& token_id, std::int64_t inserted_at_micros,
                  std::int64_t expires_at_micros, const Id& account_id,
                  const std::optional<Id>& environment_id);

// HMAC-SHA256 under one key (RFC 2104) with the key's two padded blocks absorbed once: a MAC
// copies the two prepared digest states. OpenSSL 3's one-shot HMAC() fetches the algorithm and
// schedules the key on every call: most of a ~6 µs token verification (micro_bench).
// Thread-safety: immutable after construction; Mac may run on any number of threads at once.
class HmacSha256 {
 public:
  explicit HmacSha256(const SigningKey& key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;
  std::array<std::uint8_t, 32> Mac(std::string_view data) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One key: signs with a header carrying `kid` (none when nullopt: the tokens of before the key
// ring), and verifies signatures under that key whatever `kid` a token names (a KeyRing picks
// the signer by kid first).
class JwtSigner {
 public:
  // REQUIRES: !kid || a valid kid (1 to 64 of [A-Za-z0-9_-]).
  explicit JwtSigner(const SigningKey& key, std::optional<std::string> kid = std::nullopt);

  // Deterministic: the same claims and key always give the same token.
  std::string Sign(const Claims& claims) const;

  // Checks shape, header, signature and claim types (not expiry: the caller passes the
  // claims and the token's stored expiry to CheckNotExpired), and sets claims.kid from the
  // header. Fails with kBadAuthToken and a message safe to show.
  Result<Claims> Verify(std::string_view token) const;

  const std::optional<std::string>& kid() const { return kid_; }
  // The base64url header this signer writes.
  const std::string& header() const { return header_; }

 private:
  std::shared_ptr<const HmacSha256> hmac_;  // shared: a JwtSigner is cheap to copy
  std::optional<std::string> kid_;
  std::string header_;
};

// The `kid` of a token's header (nullopt: none), with the header checked as Verify checks it
// (alg HS256, typ JWT if present, kid a string if present). Fails with kBadAuthToken.
Result<std::optional<std::string>> ReadJwtKid(std::string_view token);

// The one expiry rule of authentication: a token has expired at `now` (Unix microseconds)
// once its signed `exp` (whole seconds) or its stored expiry has been reached, whichever comes
// first. A signed `exp` in the past refuses the token whatever the stored expiry says, and a
// later signed `exp` never extends the stored one. Fails with kBadAuthToken.
Status CheckNotExpired(const Claims& claims, std::int64_t stored_expires_at_micros,
                       std::int64_t now_micros);

std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);
// The same into `out` (its capacity reused); false where Base64UrlDecode gives nullopt.
bool Base64UrlDecodeInto(std::string_view text, std::string& out);

}  // namespace tokenledger::auth

// The key ring: the keys that sign and verify tokens, each named by a `kid` in the JWT header.
//
// One active key signs new tokens; every other key still in the key file verifies the tokens it
// signed. Tokens without a `kid` (issued before the key ring) verify with the original key
// while it is in the ring. A retired key is not in the ring: its tokens are refused
// (bad_authtoken), whatever else they say. Which key is active, original or retired is the
// ledger's record (src/core/key_ring.h); the key material is the key file's
// (src/auth/signing_key.h). This class puts the two together.
//
// Thread-safety: immutable after construction; Sign and Verify may run on any number of threads.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "src/auth/jwt.h"
#include "tokenledger/error.h"

namespace tokenledger::auth {

// A key's kid: 16 hex digits of SHA-256("tokenledger signing key id\n" || key). Derived, so the
// key file needs no names and every reader of it agrees; it reveals nothing of the key.
std::string KeyIdOf(const SigningKey& key);

class KeyRing {
 public:
  // `file_keys`: the key file's keys (oldest first); `active_kid`: the one that signs;
  // `original_kid`: the one tokens without kid verify with (nullopt: none); `retired`: kids
  // never to verify again, even if their material is still in the file (a retire interrupted
  // before it erased the material). Fails (kUnexpected, for the operator) when the active key is
  // not in the file or is retired.
  static Result<KeyRing> Make(const std::vector<SigningKey>& file_keys,
                              const std::string& active_kid,
                              const std::optional<std::string>& original_kid,
                              const std::set<std::string>& retired);
  // A ring of one key, active and original: a ledger before any rotation, and tests.
  static KeyRing Single(const SigningKey& key);

  const std::string& active_kid() const { return active_kid_; }

  // Signs with the key named `kid`; nullopt: the original key, without a `kid` header (a token
  // created before the key ring, signed again for an idempotent replay). Fails with
  // kInvalidAction when that key is no longer in the ring (retired).
  Result<std::string> Sign(const Claims& claims, const std::optional<std::string>& kid) const;

  // Verifies with the key the header names (JwtSigner::Verify). Fails with kBadAuthToken when
  // that key is retired or unknown, or the token does not verify.
  Result<Claims> Verify(std::string_view token) const;

 private:
  KeyRing() = default;
  const JwtSigner* Find(const std::optional<std::string>& kid) const;

  std::vector<JwtSigner> signers_;           // one per key in the ring, with its kid
  std::optional<JwtSigner> original_plain_;  // the original key, writing no kid
  std::set<std::string> retired_;
  std::string active_kid_;
};

}  // namespace tokenledger::auth

#include "src/auth/key_ring.h"

#include <openssl/sha.h>

namespace tokenledger::auth {
namespace {

Error Bad(std::string message) { return Error{ErrorCode::kBadAuthToken, std::move(message), {}}; }

}  // namespace

std::string KeyIdOf(const SigningKey& key) {
  static constexpr std::string_view kDomain = "tokenledger signing key id\n";
  std::string input(kDomain);
  input.append(reinterpret_cast<const char*>(key.data()), key.size());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string kid;
  for (int i = 0; i < 8; ++i) {
    kid += kHex[digest[i] >> 4];
    kid += kHex[digest[i] & 15];
  }
  return kid;
}

Result<KeyRing> KeyRing::Make(const std::vector<SigningKey>& file_keys,
                              const std::string& active_kid,
                              const std::optional<std::string>& original_kid,
                              const std::set<std::string>& retired) {
  KeyRing ring;
  ring.retired_ = retired;
  ring.active_kid_ = active_kid;
  for (const SigningKey& key : file_keys) {
    std::string kid = KeyIdOf(key);
    if (retired.count(kid)) continue;
    if (kid == original_kid) ring.original_plain_.emplace(key);
    ring.signers_.emplace_back(key, std::move(kid));
  }
  if (retired.count(active_kid)) {
    return Error{ErrorCode::kUnexpected,
                 "the ledger's active signing key " + active_kid +
                     " is also retired: the ledger is inconsistent",
                 {}};
  }
  if (!ring.Find(active_kid)) {
    return Error{ErrorCode::kUnexpected,
                 "the signing key file lacks the ledger's active key " + active_kid +
                     " (tokenledger keys list): restore the key file from a backup",
                 {}};
  }
  return ring;
}

KeyRing KeyRing::Single(const SigningKey& key) {
  auto ring = Make({key}, KeyIdOf(key), KeyIdOf(key), {});
  return std::move(*ring);  // one key, active and original: cannot fail
}

const JwtSigner* KeyRing::Find(const std::optional<std::string>& kid) const {
  if (!kid) return original_plain_ ? &*original_plain_ : nullptr;
  for (const JwtSigner& s : signers_)
    if (s.kid() == kid) return &s;
  return nullptr;
}

Result<std::string> KeyRing::Sign(const Claims& claims,
                                  const std::optional<std::string>& kid) const {
  const JwtSigner* signer = Find(kid);
  if (!signer) {
    return Error{ErrorCode::kInvalidAction,
                 "the key that signed this token (" + kid.value_or("the original key") +
                     ") has been retired: the token no longer authenticates and its secret "
                     "cannot be shown again",
                 {}};
  }
  return signer->Sign(claims);
}

Result<Claims> KeyRing::Verify(std::string_view token) const {
  // The headers this ring writes are compared as they are; any other is decoded for its kid.
  const JwtSigner* signer = nullptr;
  const std::string_view header = token.substr(0, token.find('.'));
  for (const JwtSigner& s : signers_) {
    if (s.header() == header) {
      signer = &s;
      break;
    }
  }
  if (!signer) {
    auto kid = ReadJwtKid(token);
    if (!kid) return kid.error();
    signer = Find(*kid);
    if (!signer) {
      if (!*kid) return Bad("token signing key has been retired");
      return Bad(retired_.count(**kid) ? "token signing key has been retired"
                                       : "token signing key is unknown");
    }
  }
  return signer->Verify(token);
}

}  // namespace tokenledger::auth

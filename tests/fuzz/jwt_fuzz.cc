// The JWT verifier with a fixed key. The first byte picks what the rest of the input is:
//
//   0: a token as received in `Authorization: Bearer <token>`, verified as is. Without the key
//      the fuzzer cannot forge a signature, so this covers the shape, base64url, header and
//      signature checks.
//   1: `<header JSON>\n<payload JSON>`: the harness base64url-encodes both and signs them with
//      the key, so the header and claim parsers see arbitrary JSON behind a valid signature.
//   2: raw claims (ids, times, scope), signed with JwtSigner::Sign; the token must verify back
//      to exactly those claims, and changing any one of its characters must make it fail.
//
// Any accepted token's claims, signed again, must verify back to the same claims (with the
// header's `kid`, which Verify reports in Claims::kid, when a signer can write that kid), and
// ReadJwtKid must read the kid Verify reported. The key ring of the one key (KeyRing::Single)
// must agree with the signer: it accepts exactly the tokens the signer accepts whose header
// names no kid or that key's kid, with the same claims, and refuses everything the signer
// refuses.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "src/auth/jwt.h"
#include "src/auth/key_ring.h"

namespace {

using tokenledger::Id;
using tokenledger::auth::Base64UrlDecode;
using tokenledger::auth::Base64UrlEncode;
using tokenledger::auth::Claims;
using tokenledger::auth::JwtSigner;
using tokenledger::auth::KeyIdOf;
using tokenledger::auth::KeyRing;
using tokenledger::auth::ReadJwtKid;
using tokenledger::auth::SigningKey;

constexpr SigningKey kKey = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                             17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

const JwtSigner& Signer() {
  static const JwtSigner signer(kKey);
  return signer;
}

const KeyRing& Ring() {
  static const KeyRing ring = KeyRing::Single(kKey);
  return ring;
}

const std::string& KeyId() {
  static const std::string kid = KeyIdOf(kKey);
  return kid;
}

// What JwtSigner's constructor REQUIRES of a kid: 1 to 64 of [A-Za-z0-9_-].
bool SignableKid(std::string_view kid) {
  if (kid.empty() || kid.size() > 64) return false;
  for (char c : kid) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

[[noreturn]] void Fail(const char* what, std::string_view token) {
  std::fprintf(stderr, "jwt_fuzz: %s\n  token: %.*s\n", what, static_cast<int>(token.size()),
               token.data());
  std::abort();
}

std::string SignRaw(std::string_view signing_input) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kKey.data(), static_cast<int>(kKey.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &len);
  return std::string(signing_input) + "." +
         Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

// The verifier's answer for an accepted token must survive a sign/verify round trip. Sign
// writes the signer's own kid, never claims.kid: the round trip goes through a signer naming
// the header's kid, or through the plain one (no kid) when no signer could write that kid.
void CheckAccepted(const Claims& claims, std::string_view token) {
  if (token.size() > 4096) Fail("accepted a token longer than 4096 bytes", token);
  auto kid = ReadJwtKid(token);
  if (!kid || *kid != claims.kid) Fail("ReadJwtKid disagrees with the kid Verify reports", token);
  Claims expected = claims;
  if (expected.kid && !SignableKid(*expected.kid)) expected.kid.reset();
  const JwtSigner signer(kKey, expected.kid);
  const std::string again = signer.Sign(claims);
  auto back = signer.Verify(again);
  if (!back || *back != expected) Fail("re-signed claims do not verify to the same claims", token);
}

void VerifyAny(std::string_view token) {
  auto claims = Signer().Verify(token);
  auto ring = Ring().Verify(token);
  if (!claims) {
    if (ring) Fail("the key ring accepts a token its only key refuses", token);
    return;
  }
  CheckAccepted(*claims, token);
  const bool ring_accepts = !claims->kid || *claims->kid == KeyId();
  if (ring_accepts != static_cast<bool>(ring))
    Fail(ring_accepts ? "the key ring refuses a token of its key"
                      : "the key ring accepts a token naming another kid",
         token);
  if (ring && *ring != *claims) Fail("the key ring and the signer read different claims", token);
}

// Reads an id from 20 bytes, clearing the top two bits so its text starts with 0-7 (what every
// id the service produces looks like).
Id TakeId(const std::uint8_t*& p) {
  std::array<std::uint8_t, Id::kBytes> b{};
  std::memcpy(b.data(), p, b.size());
  p += b.size();
  b[0] &= 0x3f;
  return Id(b);
}

std::int64_t TakeInt(const std::uint8_t*& p) {
  std::int64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}

void SignedClaims(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kNeed = 3 * Id::kBytes + 2 * sizeof(std::int64_t) + 3;
  if (size < kNeed) return;
  const std::uint8_t* p = data;
  Claims c;
  c.token_id = TakeId(p);
  c.account_id = TakeId(p);
  const Id env = TakeId(p);
  c.issued_at = TakeInt(p);
  c.expires_at = TakeInt(p);
  if (*p++ & 1) c.environment_id = env;
  const std::string token = Signer().Sign(c);
  auto back = Signer().Verify(token);
  if (!back) Fail("a signed token does not verify", token);
  if (*back != c) Fail("a signed token verifies to different claims", token);
  // The ring signs without a kid exactly as the plain signer does, and with its key's kid a
  // token that it verifies back to the claims and that kid.
  auto plain = Ring().Sign(c, std::nullopt);
  if (!plain || *plain != token) Fail("the key ring signs without kid differently", token);
  auto named = Ring().Sign(c, KeyId());
  if (!named) Fail("the key ring cannot sign with its own kid", token);
  Claims with_kid = c;
  with_kid.kid = KeyId();
  auto named_back = Ring().Verify(*named);
  if (!named_back || *named_back != with_kid)
    Fail("a token the key ring signed with its kid does not verify back", *named);
  // Change one character (position and replacement from the input): it must not verify.
  const std::size_t pos = (std::size_t{p[0]} << 8 | p[1]) % token.size();
  const std::size_t rest = size - kNeed;
  char replacement = rest > 0 ? static_cast<char>(p[2]) : 'A';
  if (replacement == token[pos]) replacement = token[pos] == 'A' ? 'B' : 'A';
  std::string tampered = token;
  tampered[pos] = replacement;
  if (Signer().Verify(tampered)) Fail("a token with a changed character verifies", tampered);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      VerifyAny(rest);
      break;
    case 1: {
      const std::size_t nl = rest.find('\n');
      if (nl == std::string_view::npos) return 0;
      const std::string token =
          SignRaw(Base64UrlEncode(rest.substr(0, nl)) + "." + Base64UrlEncode(rest.substr(nl + 1)));
      VerifyAny(token);
      break;
    }
    case 2:
      SignedClaims(data + 1, size - 1);
      break;
  }
  // Base64url: decoding is strict (one encoding per byte string), so decode(x) == y implies
  // encode(y) == x.
  if (auto decoded = Base64UrlDecode(rest)) {
    if (Base64UrlEncode(*decoded) != rest) Fail("base64url decode is not canonical", rest);
  }
  return 0;
}

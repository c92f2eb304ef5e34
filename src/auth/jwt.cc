#include "src/auth/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <boost/json.hpp>
#include <charconv>
#include <cstdlib>
#include <tuple>

namespace tokenledger::auth {
namespace json = boost::json;
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// base64url of {"alg":"HS256","typ":"JWT"}: the only header we write.
constexpr std::string_view kHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

Error Bad(std::string message) { return Error{ErrorCode::kBadAuthToken, std::move(message), {}}; }

// SHA-256, fetched once (an implicit fetch on every digest init is what makes OpenSSL 3's
// one-shot calls slow). Never freed: it lives as long as the process.
const EVP_MD* Sha256Md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!md) std::abort();  // OpenSSL without SHA-256: nothing here can work
  return md;
}

// A digest context per thread, reused (one allocation per thread, not per MAC).
EVP_MD_CTX* ThreadContext() {
  struct Owned {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Owned() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Owned owned;
  if (!owned.ctx) std::abort();
  return owned.ctx;
}

std::optional<Id> ClaimId(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return Id::Parse(v->get_string());
}

std::optional<std::int64_t> ClaimInt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= INT64_MAX)
    return static_cast<std::int64_t>(v->get_uint64());
  return std::nullopt;
}

// The claims of a payload exactly as Sign writes it (`{"jti":"…","iat":N,"exp":N,"_":{"a":"…"}}`,
// with `,"e":"…"` in the scope when there is an environment), read without building a JSON
// document: every token this service issued has this shape. Anything else (other spacing,
// order, escapes or fields) returns nullopt and is read by the JSON parser, which gives the
// same claims for this shape.
std::optional<Claims> ReadOwnPayload(std::string_view p) {
  auto literal = [&p](std::string_view text) {
    if (!p.starts_with(text)) return false;
    p.remove_prefix(text.size());
    return true;
  };
  auto id = [&p]() -> std::optional<Id> {
    if (p.size() < Id::kTextLength + 1 || p[Id::kTextLength] != '"') return std::nullopt;
    auto parsed = Id::Parse(p.substr(0, Id::kTextLength));
    p.remove_prefix(Id::kTextLength + 1);
    return parsed;
  };
  auto integer = [&p]() -> std::optional<std::int64_t> {
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    const std::size_t n = static_cast<std::size_t>(end - p.data());
    // JSON's grammar: no leading zeros (and from_chars takes no '+').
    if (ec != std::errc() || n == 0 || (p[0] == '0' && n > 1) ||
        (p[0] == '-' && (n == 1 || (p[1] == '0' && n > 2)))) {
      return std::nullopt;
    }
    p.remove_prefix(n);
    return value;
  };
  Claims c;
  if (!literal(R"({"jti":")")) return std::nullopt;
  auto jti = id();
  if (!jti || !literal(R"(,"iat":)")) return std::nullopt;
  auto iat = integer();
  if (!iat || !literal(R"(,"exp":)")) return std::nullopt;
  auto exp = integer();
  if (!exp || !literal(R"(,"_":{"a":")")) return std::nullopt;
  auto account = id();
  if (!account) return std::nullopt;
  if (literal(R"(,"e":")")) {
    c.environment_id = id();
    if (!c.environment_id) return std::nullopt;
  }
  if (p != "}}") return std::nullopt;
  c.token_id = *jti;
  c.issued_at = *iat;
  c.expires_at = *exp;
  c.account_id = *account;
  return c;
}

}  // namespace

struct HmacSha256::State {
  EVP_MD_CTX* inner = nullptr;  // SHA-256 after (key ^ ipad)
  EVP_MD_CTX* outer = nullptr;  // SHA-256 after (key ^ opad)
  ~State() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
};

HmacSha256::HmacSha256(const SigningKey& key) : state_(std::make_unique<State>()) {
  static_assert(std::tuple_size_v<SigningKey> <= 64, "a key longer than SHA-256's block");
  unsigned char ipad[64], opad[64];
  for (std::size_t i = 0; i < 64; ++i) {
    const unsigned char k = i < key.size() ? key[i] : 0;
    ipad[i] = k ^ 0x36;
    opad[i] = k ^ 0x5c;
  }
  state_->inner = EVP_MD_CTX_new();
  state_->outer = EVP_MD_CTX_new();
  if (!state_->inner || !state_->outer ||
      EVP_DigestInit_ex(state_->inner, Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(state_->inner, ipad, sizeof ipad) != 1 ||
      EVP_DigestInit_ex(state_->outer, Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(state_->outer, opad, sizeof opad) != 1) {
    std::abort();  // only on memory exhaustion or a broken OpenSSL
  }
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
}

HmacSha256::~HmacSha256() = default;

std::array<std::uint8_t, 32> HmacSha256::Mac(std::string_view data) const {
  std::array<std::uint8_t, 32> mac{};
  unsigned char inner_hash[32];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = ThreadContext();
  if (EVP_MD_CTX_copy_ex(ctx, state_->inner) != 1 ||
      EVP_DigestUpdate(ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, inner_hash, &len) != 1 ||
      EVP_MD_CTX_copy_ex(ctx, state_->outer) != 1 ||
      EVP_DigestUpdate(ctx, inner_hash, sizeof inner_hash) != 1 ||
      EVP_DigestFinal_ex(ctx, mac.data(), &len) != 1) {
    std::abort();  // only on memory exhaustion or a broken OpenSSL
  }
  return mac;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t n =
        (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    const std::uint32_t n = std::uint8_t(in[i]) << 16;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == in.size()) {
    const std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view in) {
  std::string out;
  if (!Base64UrlDecodeInto(in, out)) return std::nullopt;
  return out;
}

bool Base64UrlDecodeInto(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;
  // 0-63 for the url-safe alphabet, 64 for everything else (no padding, no '+' or '/').
  static constexpr auto kValue = [] {
    std::array<std::uint8_t, 256> t{};
    t.fill(64);
    for (int i = 0; i < 64; ++i)
      t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
    return t;
  }();
  // Written through a pointer into a string sized once: push_back per byte was a third of a
  // token verification.
  out.resize(in.size() * 3 / 4);
  char* o = out.data();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const std::uint8_t v = kValue[static_cast<unsigned char>(c)];
    if (v == 64) return false;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero, so every token has exactly one encoding.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
  out.resize(static_cast<std::size_t>(o - out.data()));
  return true;
}

Claims MakeClaims(const Id& token_id, std::int64_t inserted_at_micros,
                  std::int64_t expires_at_micros, const Id& account_id,
                  const std::optional<Id>& environment_id) {
  constexpr std::int64_t kMicrosPerSecond = 1'000'000;
  return Claims{token_id, inserted_at_micros / kMicrosPerSecond,
                expires_at_micros / kMicrosPerSecond, account_id, environment_id};
}

Status CheckNotExpired(const Claims& claims, std::int64_t stored_expires_at_micros,
                       std::int64_t now_micros) {
  constexpr std::int64_t kMicrosPerSecond = 1'000'000;
  // now >= exp, compared in seconds so that a huge `exp` cannot overflow.
  const bool signed_expired = now_micros / kMicrosPerSecond >= claims.expires_at;
  if (signed_expired || now_micros >= stored_expires_at_micros) return Bad("the token has expired");
  return Status::Ok();
}

// The header's fields, checked: alg HS256, typ JWT when present, kid a string when present.
// `header` is the base64url part before the first dot.
static Result<std::optional<std::string>> HeaderKid(std::string_view header) {
  if (header == kHeader) return std::optional<std::string>();
  boost::system::error_code ec;
  const auto header_json = Base64UrlDecode(header);
  if (!header_json) return Bad("token header is not base64url");
  const json::value parsed = json::parse(*header_json, ec);
  if (ec || !parsed.is_object()) return Bad("token header is not a JSON object");
  const json::object& h = parsed.get_object();
  const json::value* alg = h.if_contains("alg");
  if (!alg || !alg->is_string() || alg->get_string() != "HS256") {
    return Bad("token algorithm is not HS256");
  }
  const json::value* typ = h.if_contains("typ");
  if (typ && (!typ->is_string() || typ->get_string() != "JWT")) return Bad("token type is not JWT");
  const json::value* kid = h.if_contains("kid");
  if (!kid) return std::optional<std::string>();
  if (!kid->is_string()) return Bad("token kid is not a string");
  return std::optional<std::string>(std::string(kid->get_string()));
}

JwtSigner::JwtSigner(const SigningKey& key, std::optional<std::string> kid)
    : hmac_(std::make_shared<const HmacSha256>(key)), kid_(std::move(kid)) {
  if (kid_) {
    // The kid's characters need no JSON escaping (REQUIRES).
    header_ = Base64UrlEncode(R"({"alg":"HS256","typ":"JWT","kid":")" + *kid_ + "\"}");
  } else {
    header_ = kHeader;
  }
}

Result<std::optional<std::string>> ReadJwtKid(std::string_view token) {
  const auto dot = token.find('.');
  if (dot == std::string_view::npos) return Bad("token is not a JWT");
  return HeaderKid(token.substr(0, dot));
}

std::string JwtSigner::Sign(const Claims& c) const {
  json::object scope{{"a", c.account_id.ToString()}};
  if (c.environment_id) scope["e"] = c.environment_id->ToString();
  json::object payload{{"jti", c.token_id.ToString()},
                       {"iat", c.issued_at},
                       {"exp", c.expires_at},
                       {"_", std::move(scope)}};
  std::string token(header_);
  token += '.';
  token += Base64UrlEncode(json::serialize(payload));
  const auto mac = hmac_->Mac(token);
  token += '.';
  token += Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
  return token;
}

Result<Claims> JwtSigner::Verify(std::string_view token) const {
  if (token.size() > 4096) return Bad("token is too long");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Bad("token is not a JWT");
  }
  boost::system::error_code ec;
  // The header this signer writes is checked as it is; any other is decoded and read.
  std::optional<std::string> kid;
  if (token.substr(0, dot1) == header_) {
    kid = kid_;
  } else {
    auto read = HeaderKid(token.substr(0, dot1));
    if (!read) return read.error();
    kid = std::move(*read);
  }

  // Decoded into buffers of the thread's, reused: no allocation per verification.
  thread_local std::string signature, payload_buffer;
  const auto expected = hmac_->Mac(token.substr(0, dot2));
  if (!Base64UrlDecodeInto(token.substr(dot2 + 1), signature) ||
      signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return Bad("token signature is invalid");
  }

  if (!Base64UrlDecodeInto(token.substr(dot1 + 1, dot2 - dot1 - 1), payload_buffer))
    return Bad("token payload is not base64url");
  if (auto own = ReadOwnPayload(payload_buffer)) {
    own->kid = std::move(kid);
    return std::move(*own);
  }
  const json::value payload = json::parse(payload_buffer, ec);
  if (ec || !payload.is_object()) return Bad("token payload is not a JSON object");
  const json::object& p = payload.get_object();
  Claims claims;
  const auto jti = ClaimId(p, "jti");
  const auto iat = ClaimInt(p, "iat");
  const auto exp = ClaimInt(p, "exp");
  const json::value* scope = p.if_contains("_");
  if (!jti || !iat || !exp || !scope || !scope->is_object())
    return Bad("token claims are malformed");
  const auto account = ClaimId(scope->get_object(), "a");
  if (!account) return Bad("token claims are malformed");
  claims.token_id = *jti;
  claims.issued_at = *iat;
  claims.expires_at = *exp;
  claims.account_id = *account;
  claims.kid = std::move(kid);
  if (scope->get_object().contains("e")) {
    claims.environment_id = ClaimId(scope->get_object(), "e");
    if (!claims.environment_id) return Bad("token claims are malformed");
  }
  return claims;
}

}  // namespace tokenledger::auth

#include "src/auth/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>

namespace tokenledger::auth {
namespace json = boost::json;
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// base64url of {"alg":"HS256","typ":"JWT"}: the only header we write.
constexpr std::string_view kHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

Error Bad(std::string message) { return Error{ErrorCode::kBadAuthToken, std::move(message), {}}; }

std::array<std::uint8_t, 32> Hmac(const SigningKey& key, std::string_view data) {
  std::array<std::uint8_t, 32> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return mac;
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

}  // namespace

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
  if (in.size() % 4 == 1) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;  // no padding, no standard-alphabet characters
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, so every token has exactly one encoding.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
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

std::string JwtSigner::Sign(const Claims& c) const {
  json::object scope{{"a", c.account_id.ToString()}};
  if (c.environment_id) scope["e"] = c.environment_id->ToString();
  json::object payload{{"jti", c.token_id.ToString()},
                       {"iat", c.issued_at},
                       {"exp", c.expires_at},
                       {"_", std::move(scope)}};
  std::string token(kHeader);
  token += '.';
  token += Base64UrlEncode(json::serialize(payload));
  const auto mac = Hmac(key_, token);
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
  const auto header_json = Base64UrlDecode(token.substr(0, dot1));
  if (!header_json) return Bad("token header is not base64url");
  boost::system::error_code ec;
  const json::value header = json::parse(*header_json, ec);
  if (ec || !header.is_object()) return Bad("token header is not a JSON object");
  const json::value* alg = header.get_object().if_contains("alg");
  if (!alg || !alg->is_string() || alg->get_string() != "HS256") {
    return Bad("token algorithm is not HS256");
  }
  const json::value* typ = header.get_object().if_contains("typ");
  if (typ && (!typ->is_string() || typ->get_string() != "JWT")) return Bad("token type is not JWT");

  const auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  const auto expected = Hmac(key_, token.substr(0, dot2));
  if (!signature || signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return Bad("token signature is invalid");
  }

  const auto payload_json = Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_json) return Bad("token payload is not base64url");
  const json::value payload = json::parse(*payload_json, ec);
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
  if (scope->get_object().contains("e")) {
    claims.environment_id = ClaimId(scope->get_object(), "e");
    if (!claims.environment_id) return Bad("token claims are malformed");
  }
  return claims;
}

}  // namespace tokenledger::auth

#include "src/auth/jwt.h"

#include <gtest/gtest.h>

namespace tokenledger::auth {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

SigningKey Key(std::uint8_t fill) {
  SigningKey k;
  k.fill(fill);
  return k;
}

TEST(Base64UrlTest, RoundTripsAndIsStrict) {
  for (const std::string& s : std::vector<std::string>{
           "", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\xff\xfe\x00\x01", 4)}) {
    EXPECT_EQ(Base64UrlDecode(Base64UrlEncode(s)), s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("a"));     // impossible length
  EXPECT_FALSE(Base64UrlDecode("ab=="));  // no padding
  EXPECT_FALSE(Base64UrlDecode("a+b/"));  // standard alphabet refused
  EXPECT_FALSE(Base64UrlDecode("Zh"));    // non-zero trailing bits: not canonical
}

TEST(JwtTest, SignVerifyRoundTrip) {
  JwtSigner signer(Key(1));
  Claims c{kToken, 1'700'000'000, 1'800'000'000, kAccount, kEnv};
  const std::string token = signer.Sign(c);
  EXPECT_EQ(token.rfind("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 0), 0u);
  auto verified = signer.Verify(token);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(*verified, c);
  EXPECT_EQ(signer.Sign(c), token) << "deterministic";
  c.environment_id.reset();
  auto account_scope = signer.Verify(signer.Sign(c));
  ASSERT_TRUE(account_scope);
  EXPECT_FALSE(account_scope->environment_id);
  // The payload carries the contract's claims.
  const std::string payload =
      *Base64UrlDecode(token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1));
  EXPECT_EQ(payload, R"({"jti":")" + kToken.ToString() +
                         R"(","iat":1700000000,"exp":1800000000,"_":{"a":")" + kAccount.ToString() +
                         R"(","e":")" + kEnv.ToString() + R"("}})");
}

TEST(JwtTest, RefusesEverythingElse) {
  JwtSigner signer(Key(1));
  const std::string good = signer.Sign(Claims{kToken, 1, 2, kAccount, std::nullopt});
  const auto dot1 = good.find('.'), dot2 = good.rfind('.');
  const std::string header = good.substr(0, dot1), payload = good.substr(dot1 + 1, dot2 - dot1 - 1),
                    sig = good.substr(dot2 + 1);
  auto refused = [&](const std::string& token) {
    auto r = signer.Verify(token);
    return !r && r.error().code == ErrorCode::kBadAuthToken;
  };
  EXPECT_TRUE(refused(""));
  EXPECT_TRUE(refused("abc"));
  EXPECT_TRUE(refused(good + ".x"));
  EXPECT_TRUE(refused(header + "." + payload + "."));
  EXPECT_TRUE(refused(JwtSigner(Key(2)).Sign(Claims{kToken, 1, 2, kAccount, std::nullopt})));
  for (const char* h :
       {R"({"alg":"none","typ":"JWT"})", R"({"alg":"none"})", R"({"alg":"HS512","typ":"JWT"})",
        R"({"alg":"RS256"})", R"({"typ":"JWT"})", R"({"alg":"HS256","typ":"JWS"})", "[]", "nope"}) {
    EXPECT_TRUE(refused(Base64UrlEncode(h) + "." + payload + "." + sig)) << h;
  }
  // A changed payload under the old signature.
  const std::string other =
      Base64UrlEncode(R"({"jti":")" + kToken.ToString() +
                      R"(","iat":1,"exp":9999999999,"_":{"a":")" + kAccount.ToString() + R"("}})");
  EXPECT_TRUE(refused(header + "." + other + "." + sig));
  std::string truncated_sig = header + "." + payload + "." + sig.substr(0, sig.size() - 2);
  EXPECT_TRUE(refused(truncated_sig));
  EXPECT_TRUE(refused(std::string(5000, 'a')));
}

// Verify reads the payload Sign writes without a JSON document, and any other payload with the
// JSON parser: both must give the same claims, and refuse the same malformed ones.
TEST(JwtTest, PayloadsOfAnyShapeReadTheSameClaims) {
  const SigningKey key = Key(1);
  JwtSigner signer(key);
  HmacSha256 hmac(key);
  auto sign_payload = [&](const std::string& payload) {
    std::string token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + Base64UrlEncode(payload);
    const auto mac = hmac.Mac(token);
    return token + "." +
           Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
  };
  const std::string t = kToken.ToString(), a = kAccount.ToString(), e = kEnv.ToString();
  const Claims with_env{kToken, 1'700'000'000, 1'800'000'000, kAccount, kEnv};
  const Claims without_env{kToken, -5, 0, kAccount, std::nullopt};
  const std::vector<std::pair<std::string, Claims>> same = {
      // As Sign writes them (the direct reader).
      {R"({"jti":")" + t + R"(","iat":1700000000,"exp":1800000000,"_":{"a":")" + a + R"(","e":")" +
           e + R"("}})",
       with_env},
      {R"({"jti":")" + t + R"(","iat":-5,"exp":0,"_":{"a":")" + a + R"("}})", without_env},
      // Other spacing, order and extra fields (the JSON parser).
      {R"({ "jti" : ")" + t + R"(", "iat": 1700000000, "exp": 1800000000, "_": {"e":")" + e +
           R"(","a":")" + a + R"("}})",
       with_env},
      {R"({"exp":0,"iat":-5,"x":1,"jti":")" + t + R"(","_":{"a":")" + a + R"("}})", without_env},
  };
  for (const auto& [payload, claims] : same) {
    auto verified = signer.Verify(sign_payload(payload));
    ASSERT_TRUE(verified) << payload << ": " << verified.error().message;
    EXPECT_EQ(*verified, claims) << payload;
  }
  for (const std::string& payload : {
           R"({"jti":")" + t + R"(","iat":01,"exp":2,"_":{"a":")" + a + R"("}})",
           R"({"jti":")" + t + R"(","iat":1,"exp":2,"_":{"a":")" + a + R"("}}x)",
           R"({"jti":")" + t + R"(","iat":1,"exp":99999999999999999999,"_":{"a":")" + a + R"("}})",
           R"({"jti":")" + t.substr(1) + R"(","iat":1,"exp":2,"_":{"a":")" + a + R"("}})",
           R"({"jti":")" + t + R"(","iat":1,"exp":2,"_":{"a":")" + a + R"(","e":"x"}})",
           R"({"jti":")" + t + R"(","iat":1,"exp":2,"_":{}})",
           R"({"jti":")" + t + R"(","iat":1.5,"exp":2,"_":{"a":")" + a + R"("}})",
       }) {
    auto verified = signer.Verify(sign_payload(payload));
    EXPECT_FALSE(verified) << payload;
  }
}

TEST(JwtTest, ExpiryIsTheEarlierOfSignedAndStored) {
  constexpr std::int64_t kSecond = 1'000'000;
  // Signed exp 1'800'000'000 s; stored expiry varies.
  JwtSigner signer(Key(1));
  auto claims = signer.Verify(
      signer.Sign(Claims{kToken, 1'700'000'000, 1'800'000'000, kAccount, std::nullopt}));
  ASSERT_TRUE(claims);
  const std::int64_t exp = 1'800'000'000 * kSecond;
  auto expired = [&](std::int64_t stored, std::int64_t now) {
    Status s = CheckNotExpired(*claims, stored, now);
    if (!s) {
      EXPECT_EQ(s.error().code, ErrorCode::kBadAuthToken);
    }
    return !s;
  };
  // Both ahead: fine.
  EXPECT_FALSE(expired(exp + 500'000, exp - 1));
  // The signed exp has passed, the stored expiry has not: expired, whatever the stored says.
  EXPECT_TRUE(expired(exp + 3600 * kSecond, exp));
  EXPECT_TRUE(expired(exp + 3600 * kSecond, exp + 1));
  EXPECT_TRUE(expired(INT64_MAX, exp + kSecond));
  // The stored expiry has passed, the signed exp has not: expired too.
  EXPECT_TRUE(expired(exp - kSecond, exp - kSecond));
  EXPECT_TRUE(expired(exp - kSecond, exp - 1));
  // The instant itself counts as expired for both.
  EXPECT_TRUE(expired(exp - 10, exp - 10));
}

}  // namespace
}  // namespace tokenledger::auth

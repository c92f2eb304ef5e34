// The key ring (src/auth/key_ring.h): which key signs, which verify, and what a retired or
// unknown key's token gets.
#include "src/auth/key_ring.h"

#include <gtest/gtest.h>

namespace tokenledger::auth {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");

SigningKey Key(std::uint8_t seed) {
  SigningKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

const Claims kClaims{kToken, 1'700'000'000, 1'900'000'000, kAccount, std::nullopt};

std::string Outcome(const Result<Claims>& r) {
  return r ? "ok kid=" + r->kid.value_or("none") : r.error().message;
}

TEST(KeyRingTest, AKidIsDerivedFromTheKeyAndRevealsNothingOfIt) {
  EXPECT_EQ(KeyIdOf(Key(1)), KeyIdOf(Key(1)));
  EXPECT_NE(KeyIdOf(Key(1)), KeyIdOf(Key(2)));
  EXPECT_EQ(KeyIdOf(Key(1)).size(), 16u);
  EXPECT_EQ(KeyIdOf(Key(1)).find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(KeyRingTest, TheActiveKeySignsWithItsKidAndTheOriginalVerifiesTokensWithout) {
  const KeyRing ring = KeyRing::Single(Key(1));
  const std::string kid = KeyIdOf(Key(1));
  EXPECT_EQ(ring.active_kid(), kid);
  auto with_kid = ring.Sign(kClaims, kid);
  ASSERT_TRUE(with_kid);
  auto kid_read = ReadJwtKid(*with_kid);
  ASSERT_TRUE(kid_read);
  EXPECT_EQ(*kid_read, kid) << "the header names the key";
  EXPECT_EQ(Outcome(ring.Verify(*with_kid)), "ok kid=" + kid);
  // A token of before the key ring: no kid, signed by the original key, byte for byte what
  // a JwtSigner without a kid writes.
  auto without = ring.Sign(kClaims, std::nullopt);
  ASSERT_TRUE(without);
  EXPECT_EQ(*without, JwtSigner(Key(1)).Sign(kClaims));
  EXPECT_EQ(Outcome(ring.Verify(*without)), "ok kid=none");
  // The same claims under another key, or a kid the ring does not have.
  EXPECT_EQ(Outcome(ring.Verify(JwtSigner(Key(2)).Sign(kClaims))), "token signature is invalid");
  EXPECT_EQ(Outcome(ring.Verify(JwtSigner(Key(2), KeyIdOf(Key(2))).Sign(kClaims))),
            "token signing key is unknown");
  // A kid naming the ring's key, on a token signed by another key.
  EXPECT_EQ(Outcome(ring.Verify(JwtSigner(Key(2), kid).Sign(kClaims))),
            "token signature is invalid");
}

TEST(KeyRingTest, AfterARotationBothVerifyAndTheNewOneSigns) {
  const std::string k1 = KeyIdOf(Key(1)), k2 = KeyIdOf(Key(2));
  auto ring = KeyRing::Make({Key(1), Key(2)}, k2, k1, {});
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_EQ(ring->active_kid(), k2);
  for (const std::optional<std::string>& kid :
       {std::optional<std::string>(), std::optional(k1), std::optional(k2)}) {
    auto token = ring->Sign(kClaims, kid);
    ASSERT_TRUE(token);
    EXPECT_EQ(Outcome(ring->Verify(*token)), "ok kid=" + kid.value_or("none"));
  }
}

TEST(KeyRingTest, ARetiredKeyVerifiesNothingEvenIfItsMaterialRemains) {
  const std::string k1 = KeyIdOf(Key(1)), k2 = KeyIdOf(Key(2));
  const std::string old_token = JwtSigner(Key(1), k1).Sign(kClaims);
  const std::string original_token = JwtSigner(Key(1)).Sign(kClaims);
  // The material still in the file (a retire stopped before erasing it) changes nothing.
  for (const auto& file : {std::vector<SigningKey>{Key(1), Key(2)}, std::vector{Key(2)}}) {
    auto ring = KeyRing::Make(file, k2, k1, {k1});
    ASSERT_TRUE(ring) << ring.error().message;
    EXPECT_EQ(Outcome(ring->Verify(old_token)), "token signing key has been retired");
    EXPECT_EQ(Outcome(ring->Verify(original_token)), "token signing key has been retired");
    auto replay = ring->Sign(kClaims, k1);
    ASSERT_FALSE(replay);
    EXPECT_EQ(replay.error().code, ErrorCode::kInvalidAction);
    EXPECT_NE(replay.error().message.find("retired"), std::string::npos);
    EXPECT_TRUE(ring->Verify(*ring->Sign(kClaims, k2)));
  }
}

TEST(KeyRingTest, ARingWhoseActiveKeyIsMissingOrRetiredIsRefused) {
  const std::string k1 = KeyIdOf(Key(1)), k2 = KeyIdOf(Key(2));
  auto missing = KeyRing::Make({Key(1)}, k2, k1, {});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("lacks the ledger's active key " + k2), std::string::npos);
  EXPECT_FALSE(KeyRing::Make({Key(1), Key(2)}, k2, k1, {k2}));
}

TEST(KeyRingTest, HeadersAreCheckedBeforeAnyKeyIsChosen) {
  const KeyRing ring = KeyRing::Single(Key(1));
  auto forge = [](const std::string& header_json) {
    return Base64UrlEncode(header_json) + "." + Base64UrlEncode("{}") + ".sig";
  };
  EXPECT_EQ(Outcome(ring.Verify(forge(R"({"alg":"none","kid":"x"})"))),
            "token algorithm is not HS256");
  EXPECT_EQ(Outcome(ring.Verify(forge(R"({"alg":"HS256","kid":7})"))), "token kid is not a string");
  EXPECT_EQ(Outcome(ring.Verify("garbage")), "token is not a JWT");
}

}  // namespace
}  // namespace tokenledger::auth

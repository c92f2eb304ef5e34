// The cache of verified tokens (src/auth/verified_tokens.h): the same answers as the key ring,
// whatever was kept before.
#include "src/auth/verified_tokens.h"

#include <gtest/gtest.h>

namespace tokenledger::auth {
namespace {

const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");

SigningKey Key(std::uint8_t seed) {
  SigningKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

Claims ClaimsOf(int n) {
  IdGenerator ids;
  return Claims{ids.Generate(), 1'700'000'000 + n, 1'900'000'000, kAccount, std::nullopt};
}

std::string Outcome(const Result<Claims>& r) {
  return r ? "ok " + r->token_id.ToString() + " kid=" + r->kid.value_or("none") : r.error().message;
}

TEST(VerifiedTokensTest, AnswersAsTheRingDoesTheFirstTimeAndEveryTimeAfter) {
  const KeyRing ring = KeyRing::Single(Key(1));
  VerifiedTokens cache(ring, 64);
  const Claims claims = ClaimsOf(1);
  const std::string jwt = *ring.Sign(claims, ring.active_kid());
  for (int i = 0; i < 3; ++i) {
    auto got = cache.Verify(jwt);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(*got, *ring.Verify(jwt)) << "claims and kid as the ring gives them";
    EXPECT_EQ(got->token_id, claims.token_id);
  }
  EXPECT_EQ(cache.size(), 1u);
}

TEST(VerifiedTokensTest, ATokenDifferingAnywhereFromAKeptOneIsVerifiedAfreshAndNotKept) {
  const KeyRing ring = KeyRing::Single(Key(1));
  VerifiedTokens cache(ring, 64);
  const std::string jwt = *ring.Sign(ClaimsOf(1), ring.active_kid());
  ASSERT_TRUE(cache.Verify(jwt));
  ASSERT_EQ(cache.size(), 1u);
  // Every single-character change: in the header, the claims and the signature.
  for (std::size_t i = 0; i < jwt.size(); ++i) {
    std::string forged = jwt;
    forged[i] = forged[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(Outcome(cache.Verify(forged)), Outcome(ring.Verify(forged))) << "position " << i;
    EXPECT_FALSE(ring.Verify(forged)) << "position " << i;
  }
  EXPECT_FALSE(cache.Verify(jwt.substr(0, jwt.size() - 1)));
  EXPECT_FALSE(cache.Verify(jwt + "A"));
  EXPECT_FALSE(cache.Verify(""));
  EXPECT_FALSE(cache.Verify(std::string(VerifiedTokens::kMaxTokenBytes + 1, 'a')));
  EXPECT_EQ(cache.size(), 1u) << "only tokens that verified are kept";
  EXPECT_TRUE(cache.Verify(jwt)) << "and the genuine one still verifies";
}

TEST(VerifiedTokensTest, ATokenOfAKeyNotInTheRingIsRefusedThoughAnotherRingsCacheKeptIt) {
  const KeyRing old_ring = KeyRing::Single(Key(1));
  const KeyRing new_ring = KeyRing::Single(Key(2));
  VerifiedTokens old_cache(old_ring, 64);
  VerifiedTokens new_cache(new_ring, 64);
  const std::string jwt = *old_ring.Sign(ClaimsOf(1), old_ring.active_kid());
  ASSERT_TRUE(old_cache.Verify(jwt));
  EXPECT_EQ(Outcome(new_cache.Verify(jwt)), "token signing key is unknown");
  EXPECT_EQ(new_cache.size(), 0u);
}

TEST(VerifiedTokensTest, MoreTokensThanSlotsEvictButEveryAnswerStaysTheRings) {
  const KeyRing ring = KeyRing::Single(Key(1));
  VerifiedTokens cache(ring, VerifiedTokens::kShards);  // one slot per shard
  std::vector<std::pair<std::string, Claims>> tokens;
  for (int i = 0; i < 200; ++i) {
    Claims c = ClaimsOf(i);
    tokens.emplace_back(*ring.Sign(c, ring.active_kid()), c);
  }
  for (int round = 0; round < 2; ++round) {
    for (const auto& [jwt, claims] : tokens) {
      auto got = cache.Verify(jwt);
      ASSERT_TRUE(got);
      EXPECT_EQ(got->token_id, claims.token_id);
      EXPECT_EQ(got->issued_at, claims.issued_at);
    }
  }
  EXPECT_LE(cache.size(), VerifiedTokens::kShards);
  EXPECT_GT(cache.size(), 0u);
}

TEST(VerifiedTokensTest, ACapacityOfZeroKeepsNothing) {
  const KeyRing ring = KeyRing::Single(Key(1));
  VerifiedTokens cache(ring, 0);
  const std::string jwt = *ring.Sign(ClaimsOf(1), ring.active_kid());
  EXPECT_TRUE(cache.Verify(jwt));
  EXPECT_TRUE(cache.Verify(jwt));
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace tokenledger::auth

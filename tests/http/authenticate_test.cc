// Authentication against a real ledger in a temporary directory, and the last-used limiter.
#include "src/http/authenticate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/store/store_test_util.h"

namespace tokenledger::http {
namespace {

using store::testing::kStart;

constexpr auth::SigningKey kKey = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");

template <typename T>
std::string Outcome(const Result<T>& r) {
  if (r) return "ok";
  // Appends only: GCC 12 at -O3 reports a false -Wrestrict on `std::string + "literal"`
  // chains (GCC bug 105329), which stops the Release build under -Werror.
  std::string out(WireCode(r.error().code));
  return out.append("|").append(r.error().message);
}

HttpRequest WithAuthorization(std::string value) {
  HttpRequest r;
  r.has_authorization = true;
  r.authorization = std::move(value);
  return r;
}

TEST(BearerTokenTest, OneBearerHeaderInAnyCase) {
  EXPECT_EQ(*BearerToken(WithAuthorization("Bearer abc")), "abc");
  EXPECT_EQ(*BearerToken(WithAuthorization("bEaReR abc")), "abc");
  EXPECT_EQ(Outcome(BearerToken(HttpRequest{})),
            "not_authenticated|the Authorization header is missing");
  HttpRequest repeated = WithAuthorization("Bearer abc");
  repeated.repeated_authorization = true;
  EXPECT_EQ(Outcome(BearerToken(repeated)), "bad_request|the Authorization header is repeated");
  for (const char* bad : {"", "Bearer ", "Bearer", "Basic abc", "Bearerabc", "Token abc"}) {
    EXPECT_EQ(Outcome(BearerToken(WithAuthorization(bad))),
              "bad_authtoken|the Authorization header must be 'Bearer <token>'")
        << bad;
  }
}

TEST(AdmitCallerTest, ActiveMatchingAndNotExpired) {
  const Id account = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
  const Id env = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");
  const Id admin = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
  projections::TokenRow row;
  core::TokenState& s = row.state;
  s.exists = true;
  s.id = kToken;
  s.account_id = account;
  s.environment_id = env;
  s.scope = events::TokenScope::kEnvironment;
  s.created_by_admin_user_id = admin;
  s.inserted_at = kStart;
  s.expires_at = kStart + kMicrosPerDay;
  const auth::Claims claims =
      auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id);
  const Micros now = kStart + kMicrosPerHour;

  auto caller = AdmitCaller(claims, &row, now);
  ASSERT_TRUE(caller) << Outcome(caller);
  EXPECT_EQ(caller->token_id, kToken);
  EXPECT_EQ(caller->account_id, account);
  EXPECT_EQ(caller->scope, events::TokenScope::kEnvironment);
  EXPECT_EQ(caller->environment_id, env);
  EXPECT_EQ(caller->admin_user_id, admin);

  EXPECT_EQ(Outcome(AdmitCaller(claims, nullptr, now)),
            "bad_authtoken|the token is unknown or was deleted");
  auth::Claims other = claims;
  other.environment_id = std::nullopt;
  EXPECT_EQ(Outcome(AdmitCaller(other, &row, now)),
            "bad_authtoken|the token's claims do not match the token");
  other = claims;
  other.account_id = admin;
  EXPECT_EQ(Outcome(AdmitCaller(other, &row, now)),
            "bad_authtoken|the token's claims do not match the token");
  s.status = core::TokenStatus::kSuspended;
  EXPECT_EQ(Outcome(AdmitCaller(claims, &row, now)), "bad_authtoken|the token is suspended");
  s.status = core::TokenStatus::kActive;
  EXPECT_FALSE(AdmitCaller(claims, &row, s.expires_at)) << "expired at its expires_at";
  EXPECT_EQ(AdmitCaller(claims, &row, s.expires_at).error().code, ErrorCode::kBadAuthToken);
}

TEST(LastUseLimiterTest, OncePerGranularityPerToken) {
  const Micros g = kMicrosPerMinute;
  const Id other = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
  LastUseLimiter limiter(g);
  EXPECT_TRUE(limiter.Admit(kToken, std::nullopt, kStart));
  EXPECT_FALSE(limiter.Admit(kToken, std::nullopt, kStart + g - 1));
  EXPECT_TRUE(limiter.Admit(other, std::nullopt, kStart + 1)) << "per token";
  EXPECT_TRUE(limiter.Admit(kToken, std::nullopt, kStart + g));
  // The stored last_used_at counts too, whatever this limiter remembers.
  LastUseLimiter fresh(g);
  EXPECT_FALSE(fresh.Admit(kToken, kStart, kStart + g - 1));
  EXPECT_EQ(fresh.size(), 0u);
  EXPECT_TRUE(fresh.Admit(kToken, kStart, kStart + g));
}

TEST(LastUseLimiterTest, ForgetsOldEntriesPastItsBound) {
  const Micros g = kMicrosPerMinute;
  LastUseLimiter limiter(g);
  IdGenerator ids;
  for (std::size_t i = 0; i < LastUseLimiter::kMaxEntries; ++i)
    ASSERT_TRUE(limiter.Admit(ids.Generate(), std::nullopt, kStart));
  EXPECT_EQ(limiter.size(), LastUseLimiter::kMaxEntries);
  // One more, a granularity later: every older entry is past it and dropped.
  EXPECT_TRUE(limiter.Admit(kToken, std::nullopt, kStart + g));
  EXPECT_EQ(limiter.size(), 1u);
}

class AuthenticatorTest : public store::testing::StoreTest {
 protected:
  AuthenticatorTest() : signer_(kKey), keys_(auth::KeyRing::Single(kKey)) { Open(); }

  std::string Jwt(const core::TokenState& s) const {
    return signer_.Sign(
        auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id));
  }
  HttpRequest Request(const std::string& jwt) const { return WithAuthorization("Bearer " + jwt); }

  // Waits for the token's stored last_used_at to become `at` (RecordUse is fire and forget).
  bool LastUsedBecomes(const Id& token, Micros at) {
    for (int i = 0; i < 500; ++i) {
      if (Row(token).state.last_used_at == at) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  auth::JwtSigner signer_;  // the original key without a kid: how Create's tokens are signed
  auth::KeyRing keys_;
};

TEST_F(AuthenticatorTest, AuthenticatesAndRecordsUsesOncePerGranularity) {
  const Id account = ids_.Generate(), env = ids_.Generate();
  const Id token = Create(account, env);
  const projections::TokenRow row = Row(token);
  Authenticator authenticator(*store_, keys_, options_.policy.last_used_granularity, 1024);

  const Micros now = kStart + kMicrosPerSecond;
  auto caller = authenticator.Authenticate(Request(Jwt(row.state)), now);
  ASSERT_TRUE(caller) << Outcome(caller);
  EXPECT_EQ(caller->token_id, token);
  EXPECT_EQ(caller->account_id, account);
  EXPECT_EQ(caller->scope, events::TokenScope::kEnvironment);
  EXPECT_EQ(caller->environment_id, env);
  EXPECT_TRUE(LastUsedBecomes(token, now));

  // Within the granularity no use is recorded; after it, the next one is.
  ASSERT_TRUE(authenticator.Authenticate(Request(Jwt(row.state)), now + kMicrosPerSecond));
  const Micros later = now + options_.policy.last_used_granularity;
  ASSERT_TRUE(authenticator.Authenticate(Request(Jwt(row.state)), later));
  EXPECT_TRUE(LastUsedBecomes(token, later));
}

TEST_F(AuthenticatorTest, RefusesWhatMayNotAuthenticate) {
  const Id account = ids_.Generate();
  const Id token = Create(account);
  const projections::TokenRow row = Row(token);
  Authenticator authenticator(*store_, keys_, options_.policy.last_used_granularity, 1024);
  const Micros now = kStart + kMicrosPerSecond;

  EXPECT_EQ(Outcome(authenticator.Authenticate(HttpRequest{}, now)),
            "not_authenticated|the Authorization header is missing");
  EXPECT_EQ(authenticator.Authenticate(Request("not.a.jwt"), now).error().code,
            ErrorCode::kBadAuthToken);
  // Signed with another key.
  auth::SigningKey other_key = kKey;
  other_key[0] ^= 1;
  const std::string forged = auth::JwtSigner(other_key).Sign(auth::MakeClaims(
      row.state.id, row.state.inserted_at, row.state.expires_at, account, std::nullopt));
  EXPECT_EQ(authenticator.Authenticate(Request(forged), now).error().code,
            ErrorCode::kBadAuthToken);
  // Signed by the right key but naming it by kid, while the ledger recorded the token as signed
  // without one: the claims do not match the token.
  const std::string relabelled =
      auth::JwtSigner(kKey, auth::KeyIdOf(kKey))
          .Sign(auth::MakeClaims(row.state.id, row.state.inserted_at, row.state.expires_at, account,
                                 std::nullopt));
  EXPECT_EQ(Outcome(authenticator.Authenticate(Request(relabelled), now)),
            "bad_authtoken|the token's claims do not match the token");
  // A well-signed token the ledger does not know.
  core::TokenState unknown = row.state;
  unknown.id = ids_.Generate();
  EXPECT_EQ(Outcome(authenticator.Authenticate(Request(Jwt(unknown)), now)),
            "bad_authtoken|the token is unknown or was deleted");
  ASSERT_EQ(Run(core::SuspendToken{token, account}).outcome, store::Outcome::kApplied);
  EXPECT_EQ(Outcome(authenticator.Authenticate(Request(Jwt(row.state)), now)),
            "bad_authtoken|the token is suspended");
  ASSERT_EQ(Run(core::ActivateToken{token, account}).outcome, store::Outcome::kApplied);
  EXPECT_TRUE(authenticator.Authenticate(Request(Jwt(row.state)), now));
  EXPECT_EQ(authenticator.Authenticate(Request(Jwt(row.state)), row.state.expires_at).error().code,
            ErrorCode::kBadAuthToken);
}

}  // namespace
}  // namespace tokenledger::http

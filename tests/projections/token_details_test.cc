#include "projections/token_details.h"

#include "projections/token_details_v1.h"

#include <gtest/gtest.h>

namespace tokenledger::projections {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");

events::EventEnvelope At(std::uint64_t seq, std::uint64_t version, Micros at, events::EventData d) {
  events::EventEnvelope e;
  e.seq = seq;
  e.stream = kToken;
  e.stream_version = version;
  e.at = at;
  e.data = std::move(d);
  return e;
}

TEST(TokenDetailsTest, FoldsEventsIntoARow) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(7, 1, 100,
                     events::TokenCreated{kAccount, kEnv, events::TokenScope::kEnvironment, 999,
                                          std::nullopt}));
  ASSERT_TRUE(row);
  EXPECT_EQ(row->created_seq, 7u);
  EXPECT_TRUE(row->state.Visible());
  ApplyEvent(row, At(9, 2, 200, events::TokenSuspended{}));
  EXPECT_EQ(row->created_seq, 7u);
  EXPECT_EQ(row->state.status, core::TokenStatus::kSuspended);
  EXPECT_EQ(row->state.updated_at, 200);
  EXPECT_EQ(row->state.version, 2u);
}

TEST(TokenDetailsTest, RowCodecRoundTrips) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(7, 1, 100,
                     events::TokenCreated{kAccount, kEnv, events::TokenScope::kEnvironment, 999,
                                          kAccount}));
  ApplyEvent(row, At(8, 2, 150, events::TokenUsed{140}));
  auto decoded = DecodeTokenRow(EncodeTokenRow(*row));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, *row);

  std::optional<TokenRow> plain;
  ApplyEvent(plain, At(1, 1, 100,
                       events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount,
                                            999, std::nullopt}));
  decoded = DecodeTokenRow(EncodeTokenRow(*plain));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, *plain);
}

TEST(TokenDetailsTest, RejectsOtherVersionsAndGarbage) {
  EXPECT_FALSE(DecodeTokenRow("nope"));
  EXPECT_FALSE(DecodeTokenRow("{}"));
  std::optional<TokenRow> row;
  ApplyEvent(row, At(1, 1, 100,
                     events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount, 999,
                                          std::nullopt}));
  std::string bytes = EncodeTokenRow(*row);
  const std::string current = "\"v\":" + std::to_string(kTokenDetails.version);
  bytes.replace(bytes.find(current), current.size(), "\"v\":9");
  EXPECT_FALSE(DecodeTokenRow(bytes));
  // A row as release 1 wrote it is refused too: it must be rebuilt, never half-read.
  EXPECT_FALSE(DecodeTokenRow(v1::EncodeTokenRow(*row)));
}

TEST(TokenDetailsTest, Version2RecordsStatusChangesAndRevocation) {
  std::optional<TokenRow> row;
  ApplyEvent(row, At(1, 1, 100,
                     events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount, 999,
                                          std::nullopt}));
  EXPECT_EQ(row->status_changed_at, 100);
  EXPECT_FALSE(row->revoked_at);
  ApplyEvent(row, At(2, 2, 150, events::TokenUsed{140}));
  EXPECT_EQ(row->status_changed_at, 100) << "a use is not a status change";
  ApplyEvent(row, At(3, 3, 200, events::TokenSuspended{}));
  EXPECT_EQ(row->status_changed_at, 200);
  ApplyEvent(row, At(4, 4, 300, events::TokenRevoked{}));
  EXPECT_EQ(row->status_changed_at, 300);
  EXPECT_EQ(row->revoked_at, 300);
  auto decoded = DecodeTokenRow(EncodeTokenRow(*row));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, *row);
}

}  // namespace
}  // namespace tokenledger::projections

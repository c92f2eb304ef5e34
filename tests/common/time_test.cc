#include "tokenledger/time.h"

#include <gtest/gtest.h>

namespace tokenledger {
namespace {

TEST(TimeTest, FormatsWithMicroseconds) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatRfc3339(1'704'067'200'000'000), "2024-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatRfc3339(1'709'210'096'123'456), "2024-02-29T12:34:56.123456Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(TimeTest, ParsesAnyOffsetToUtc) {
  EXPECT_EQ(ParseRfc3339("2024-01-01T00:00:00Z"), 1'704'067'200'000'000);
  EXPECT_EQ(ParseRfc3339("2024-01-01T00:00:00.5Z"), 1'704'067'200'500'000);
  EXPECT_EQ(ParseRfc3339("2024-01-01T02:30:00+02:30"), 1'704'067'200'000'000);
  EXPECT_EQ(ParseRfc3339("2023-12-31T19:00:00-05:00"), 1'704'067'200'000'000);
  EXPECT_EQ(ParseRfc3339("2024-01-01t00:00:00.123456789z"), 1'704'067'200'123'456);
  EXPECT_EQ(ParseRfc3339("2024-02-29T00:00:00Z"), 1'709'164'800'000'000);
}

TEST(TimeTest, RejectsMalformedAndOutOfRange) {
  for (const char* bad :
       {"", "2024-01-01", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00Zjunk",
        "2024-1-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "abcd-01-01T00:00:00Z",
        "2024-01-01T00:00:00.1234567890Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad)) << bad;
  }
}

TEST(TimeTest, RoundTrips) {
  for (Micros t :
       {Micros{0}, Micros{1}, Micros{1'704'067'200'123'456}, Micros{253'402'300'799'999'999}}) {
    EXPECT_EQ(ParseRfc3339(FormatRfc3339(t)), t);
  }
}

}  // namespace
}  // namespace tokenledger

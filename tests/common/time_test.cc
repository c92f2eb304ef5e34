#include "tokenledger/time.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tokenledger {
namespace {

TEST(TimeTest, FormatsWithMicroseconds) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatRfc3339(1'704'067'200'000'000), "2024-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatRfc3339(1'709'210'096'123'456), "2024-02-29T12:34:56.123456Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999999Z");
}

// The log's allocation-free formatter writes what FormatRfc3339 does, also when its per-thread
// cache of the last second is hit, missed, or the clock goes back.
TEST(TimeTest, FormatToMatchesFormat) {
  std::vector<Micros> times = {0,
                               -1,
                               1,
                               999'999,
                               1'000'000,
                               1'709'210'096'123'456,
                               1'709'210'096'999'999,
                               1'709'210'097'000'000,
                               1'709'210'096'000'001,
                               -62'135'596'800'000'000,   // 0001-01-01
                               -62'167'219'200'000'000,   // 0000-01-01
                               253'402'300'799'999'999};  // 9999-12-31T23:59:59.999999
  std::uint64_t x = 88172645463325252ULL;  // xorshift: years 1970-2100 at any microsecond
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    times.push_back(static_cast<Micros>(x % 4'102'444'800'000'000ULL));
    if (i % 3 == 0) times.push_back(times.back() + static_cast<Micros>(x % 3'000'000));
  }
  for (Micros t : times) {
    char out[kRfc3339Length];
    FormatRfc3339To(t, out);
    ASSERT_EQ(std::string(out, sizeof out), FormatRfc3339(t)) << t;
  }
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

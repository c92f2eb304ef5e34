#include "tools/tokenledger/export_format.h"

#include <gtest/gtest.h>

#include "events/hash_chain.h"

namespace tokenledger::cli {
namespace {

const std::string kBody = R"({"seq":1,"type":"TokenSuspended"})";

std::string Record(std::string_view body) {
  const events::Hash h = events::Sha256(body);
  return std::string(reinterpret_cast<const char*>(h.data()), h.size()) + std::string(body);
}

std::string Line(std::string_view body) {
  return R"({"hash":")" + events::HashToHex(events::Sha256(body)) + R"(","event":)" +
         std::string(body) + "}";
}

TEST(ExportFormatTest, FormatsTheHashAsHexAndEmbedsTheBodyVerbatim) {
  EXPECT_EQ(FormatExportLine(Record(kBody)), Line(kBody) + "\n");
}

TEST(ExportFormatTest, ReadsALineBackToTheRecord) {
  auto record = ParseExportLine(Line(kBody));
  ASSERT_TRUE(record);
  EXPECT_EQ(*record, Record(kBody));
  EXPECT_EQ(FormatExportLine(*record), Line(kBody) + "\n");
}

TEST(ExportFormatTest, RefusesAnythingButTheExactShape) {
  const std::string line = Line(kBody);
  const std::string hex = events::HashToHex(events::Sha256(kBody));
  std::string upper = line;
  for (std::size_t i = 9; i < 9 + 64; ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  for (const std::string& bad : {
           std::string(),
           line + "\r",                                          // CRLF files
           " " + line,                                           // leading space
           line + " ",                                           // trailing space
           R"({"hash":")" + hex + R"(","event":})",              // empty body
           R"({"hash": ")" + hex + R"(","event":{}})",           // not the exact prefix
           R"({"hash":")" + hex.substr(1) + R"(","event":{}})",  // 63 digits
           upper.find_first_of("ABCDEF") != std::string::npos ? upper : std::string("x"),
       }) {
    EXPECT_FALSE(ParseExportLine(bad)) << bad;
  }
}

TEST(ExportFormatTest, TheShortestBodyIsOneByte) {
  auto record = ParseExportLine(Line("x"));
  ASSERT_TRUE(record);
  EXPECT_EQ(record->substr(32), "x");
}

}  // namespace
}  // namespace tokenledger::cli

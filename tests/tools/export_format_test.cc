#include "tools/tokenledger/export_format.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>
#include <vector>

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

// Everything written into a pipe (by a writer thread, in pieces of `piece` bytes), read back
// line by line.
std::vector<std::string> ReadThroughPipe(const std::string& input, std::size_t piece,
                                         int* error = nullptr) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    for (std::size_t at = 0; at < input.size(); at += piece) {
      const std::string_view part = std::string_view(input).substr(at, piece);
      for (std::size_t done = 0; done < part.size();) {
        const ssize_t n = ::write(fds[1], part.data() + done, part.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
    }
    ::close(fds[1]);
  });
  LineReader reader(fds[0]);
  std::vector<std::string> lines;
  for (std::string_view line; reader.Next(&line);) lines.emplace_back(line);
  writer.join();
  if (error) *error = reader.error();
  ::close(fds[0]);
  return lines;
}

TEST(LineReaderTest, SplitsLinesWhereverTheReadsEnd) {
  const std::string input = "first\n\nthird line\nno newline at the end";
  const std::vector<std::string> want = {"first", "", "third line", "no newline at the end"};
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}, input.size()})
    EXPECT_EQ(ReadThroughPipe(input, piece), want) << piece << "-byte writes";
  EXPECT_EQ(ReadThroughPipe("one\n", 3), std::vector<std::string>{"one"});
  EXPECT_TRUE(ReadThroughPipe("", 1).empty());
}

TEST(LineReaderTest, ALineLongerThanTheBufferGrowsIt) {
  const std::string long_line(2 * kLineReaderBufferBytes + 123, 'x');
  std::string input = "a\n" + long_line;
  input += "\nb\n";
  int error = -1;
  const auto lines = ReadThroughPipe(input, 65536, &error);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "a");
  EXPECT_EQ(lines[1], long_line);
  EXPECT_EQ(lines[2], "b");
  EXPECT_EQ(error, 0);
}

TEST(LineReaderTest, AReadErrorEndsTheLinesAndIsReported) {
  LineReader reader(-1);  // EBADF
  std::string_view line;
  EXPECT_FALSE(reader.Next(&line));
  EXPECT_EQ(reader.error(), EBADF);
}

}  // namespace
}  // namespace tokenledger::cli

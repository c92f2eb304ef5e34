#include "tokenledger/id.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace tokenledger {
namespace {

const std::regex kIdPattern("^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$");

IdGenerator FixedGenerator(std::uint64_t* clock_ms, std::uint8_t* counter) {
  return IdGenerator([clock_ms] { return *clock_ms; },
                     [counter](std::uint8_t* out, std::size_t n) {
                       for (std::size_t i = 0; i < n; ++i) out[i] = (*counter)++;
                     });
}

TEST(IdTest, SeedExamplesRoundTrip) {
  // Ids from the platform's API page.
  for (const char* text : {"013xrzp12g3nqk8n7f8f9jbg8d18q7tm", "013xrzp12g3nqk8ngskn1wtxgka5b0nf",
                           "013xrzp12g3nqk8nh0qrc2b1jfanmvb9"}) {
    auto id = Id::Parse(text);
    ASSERT_TRUE(id) << text;
    EXPECT_EQ(id->ToString(), text);
  }
  // Same account, same partition and time: the first 16 characters are shared.
  auto token = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
  auto account = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
  EXPECT_EQ(token.Partition(), account.Partition());
  EXPECT_EQ(token.UnixMillis(), account.UnixMillis());
}

TEST(IdTest, PartsAreWhereTheSpecSays) {
  std::array<std::uint8_t, 10> random{};
  random.fill(0xff);
  const Id id = Id::FromParts(0x123456789abcull, 0x3fffffff, random);
  EXPECT_EQ(id.UnixMillis(), 0x123456789abcull);
  EXPECT_EQ(id.Partition(), 0x3fffffffu);
  EXPECT_TRUE(std::regex_match(id.ToString(), kIdPattern));
  EXPECT_EQ(Id::Parse(id.ToString()), id);
  EXPECT_EQ(Id().ToString(), std::string(32, '0'));
  EXPECT_TRUE(Id().IsZero());
}

TEST(IdTest, ParseRejectsAnythingElse) {
  const std::string good = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm";
  EXPECT_TRUE(Id::Parse(good));
  EXPECT_FALSE(Id::Parse(""));
  EXPECT_FALSE(Id::Parse(good.substr(1)));
  EXPECT_FALSE(Id::Parse(good + "0"));
  EXPECT_FALSE(Id::Parse("813xrzp12g3nqk8n7f8f9jbg8d18q7tm"));  // first char above 7
  EXPECT_FALSE(Id::Parse("z13xrzp12g3nqk8n7f8f9jbg8d18q7tm"));
  EXPECT_FALSE(Id::Parse("013XRZP12G3NQK8N7F8F9JBG8D18Q7TM"));  // no case folding
  for (char excluded : {'i', 'l', 'o', 'u', '-', ' ', '\0'}) {
    std::string bad = good;
    bad[5] = excluded;
    EXPECT_FALSE(Id::Parse(bad)) << "char " << int(excluded);
  }
  EXPECT_FALSE(Id::FromBytes("short"));
}

// Parse and WriteText work a group of bytes at a time: every character value at every place,
// and random ids against a bit-at-a-time reference.
TEST(IdTest, EveryCharacterAtEveryPlace) {
  const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  const std::string good = "013xrzp12g3nqk8n7f8f9jbg8d18q7tm";
  for (std::size_t at = 0; at < good.size(); ++at) {
    for (int c = 0; c < 256; ++c) {
      std::string text = good;
      text[at] = static_cast<char>(c);
      const bool valid = alphabet.find(static_cast<char>(c)) != std::string::npos &&
                         (at > 0 || (c >= '0' && c <= '7'));
      const auto id = Id::Parse(text);
      ASSERT_EQ(id.has_value(), valid) << "char " << c << " at " << at;
      if (id) {
        ASSERT_EQ(id->ToString(), text);
      }
    }
  }
}

TEST(IdTest, RandomIdsMatchABitAtATimeReference) {
  const std::string alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  std::uint64_t x = 88172645463325252ULL;
  for (int n = 0; n < 10000; ++n) {
    std::string bytes(Id::kBytes, '\0');
    for (char& b : bytes) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<char>(x);
    }
    bytes[0] = static_cast<char>(bytes[0] & 0x3f);  // a time within 48 bits: text starts 0-7
    std::string expected;
    for (std::size_t bit = 0; bit < Id::kBytes * 8; bit += 5) {
      unsigned v = 0;
      for (std::size_t k = bit; k < bit + 5; ++k)
        v = (v << 1) | ((static_cast<unsigned char>(bytes[k / 8]) >> (7 - k % 8)) & 1);
      expected += alphabet[v];
    }
    const Id id = *Id::FromBytes(bytes);
    ASSERT_EQ(id.ToString(), expected);
    std::string appended = "x";
    id.AppendText(appended);
    ASSERT_EQ(appended, "x" + expected);
    ASSERT_EQ(Id::Parse(expected), id);
  }
}

TEST(IdTest, GeneratorIsDeterministicAndSortsByTime) {
  std::uint64_t now = 1'700'000'000'000;
  std::uint8_t counter = 0;
  IdGenerator gen = FixedGenerator(&now, &counter);
  std::vector<Id> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(gen.Generate());
    now += 1;
  }
  for (std::size_t i = 1; i < ids.size(); ++i) {
    EXPECT_LT(ids[i - 1], ids[i]);
    EXPECT_LT(ids[i - 1].ToString(), ids[i].ToString());  // text sorts like bytes
  }
  for (const Id& id : ids) {
    EXPECT_TRUE(std::regex_match(id.ToString(), kIdPattern));
    EXPECT_LT(id.Partition(), 1u << 30);  // top 2 bits zero
  }
  std::uint64_t now2 = 1'700'000'000'000;
  std::uint8_t counter2 = 0;
  IdGenerator again = FixedGenerator(&now2, &counter2);
  EXPECT_EQ(again.Generate(), ids[0]);
}

TEST(IdTest, RelatedIdsKeepThePartition) {
  IdGenerator gen;
  std::set<std::uint32_t> partitions;
  for (int i = 0; i < 20; ++i) {
    const Id account = gen.Generate();
    partitions.insert(account.Partition());
    const Id token = gen.GenerateRelated(account);
    EXPECT_EQ(token.Partition(), account.Partition());
    EXPECT_NE(token, account);
    EXPECT_TRUE(std::regex_match(token.ToString(), kIdPattern));
  }
  EXPECT_GT(partitions.size(), 15u);  // fresh partitions are random
}

}  // namespace
}  // namespace tokenledger

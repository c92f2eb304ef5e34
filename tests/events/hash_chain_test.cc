#include "events/hash_chain.h"

#include <gtest/gtest.h>

namespace tokenledger::events {
namespace {

TEST(HashChainTest, Sha256KnownVectors) {
  EXPECT_EQ(HashToHex(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HashToHex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HashChainTest, HexRoundTripAndRejects) {
  const Hash h = Sha256("x");
  EXPECT_EQ(HashFromHex(HashToHex(h)), h);
  EXPECT_FALSE(HashFromHex("abc"));
  EXPECT_FALSE(HashFromHex(std::string(64, 'G')));
  EXPECT_FALSE(HashFromHex(std::string(64, 'A')));  // lowercase only, as written
  EXPECT_EQ(HashToHex(kGenesisHash), std::string(64, '0'));
}

}  // namespace
}  // namespace tokenledger::events

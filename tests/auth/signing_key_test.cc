#include "src/auth/signing_key.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace tokenledger::auth {
namespace {

class SigningKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tokenledger-key-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(SigningKeyTest, CreatedOnceWithMode0600ThenReadBack) {
  const std::string path = dir_ + "/signing.key";
  auto created = LoadOrCreateKeyFile(path, true);
  ASSERT_TRUE(created) << created.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = LoadOrCreateKeyFile(path, true);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, *created);
  ASSERT_EQ(created->size(), 1u) << "one key: the original";
  SigningKey zero{};
  EXPECT_NE(created->front(), zero);
}

TEST_F(SigningKeyTest, MissingKeyIsNotCreatedWhenNotAsked) {
  auto r = LoadOrCreateKeyFile(dir_ + "/absent.key", false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("absent.key"), std::string::npos);
}

TEST_F(SigningKeyTest, KeyReadableByOthersIsRefused) {
  const std::string path = dir_ + "/loose.key";
  std::ofstream(path) << std::string(64, 'a');
  ::chmod(path.c_str(), 0644);
  auto r = LoadOrCreateKeyFile(path, false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("0644"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(LoadOrCreateKeyFile(path, false));
}

TEST_F(SigningKeyTest, MalformedKeyIsRefused) {
  const std::string path = dir_ + "/bad.key";
  std::ofstream(path) << "not hex";
  ::chmod(path.c_str(), 0600);
  auto r = LoadOrCreateKeyFile(path, false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("64 hex digits"), std::string::npos);
}

// The key ring's file: one key per line, oldest first; rewritten atomically with mode 0600.
TEST_F(SigningKeyTest, AKeyFileHoldsTheRingInOrderAndIsReplacedAtomically) {
  const std::string path = dir_ + "/ring.key";
  const std::vector<SigningKey> keys = {NewSigningKey(), NewSigningKey(), NewSigningKey()};
  ASSERT_TRUE(WriteKeyFile(path, keys));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = LoadOrCreateKeyFile(path, false);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(*loaded, keys);
  EXPECT_FALSE(std::filesystem::exists(path + ".new"));
  ASSERT_TRUE(WriteKeyFile(path, {keys[2]}));
  EXPECT_EQ(*LoadOrCreateKeyFile(path, false), std::vector<SigningKey>{keys[2]});

  std::ofstream(path, std::ios::app) << "\n";  // blank lines are allowed
  EXPECT_TRUE(LoadOrCreateKeyFile(path, false));
  std::string twice = std::string(64, 'a') + "\n" + std::string(64, 'a') + "\n";
  std::ofstream(path, std::ios::trunc) << twice;
  auto refused = LoadOrCreateKeyFile(path, false);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("same key twice"), std::string::npos);
  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_FALSE(LoadOrCreateKeyFile(path, false)) << "no key at all";
}

}  // namespace
}  // namespace tokenledger::auth

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
  auto created = LoadOrCreateSigningKey(path, true);
  ASSERT_TRUE(created) << created.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = LoadOrCreateSigningKey(path, true);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, *created);
  SigningKey zero{};
  EXPECT_NE(*created, zero);
}

TEST_F(SigningKeyTest, MissingKeyIsNotCreatedWhenNotAsked) {
  auto r = LoadOrCreateSigningKey(dir_ + "/absent.key", false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("absent.key"), std::string::npos);
}

TEST_F(SigningKeyTest, KeyReadableByOthersIsRefused) {
  const std::string path = dir_ + "/loose.key";
  std::ofstream(path) << std::string(64, 'a');
  ::chmod(path.c_str(), 0644);
  auto r = LoadOrCreateSigningKey(path, false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("0644"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(LoadOrCreateSigningKey(path, false));
}

TEST_F(SigningKeyTest, MalformedKeyIsRefused) {
  const std::string path = dir_ + "/bad.key";
  std::ofstream(path) << "not hex";
  ::chmod(path.c_str(), 0600);
  auto r = LoadOrCreateSigningKey(path, false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("64 hex digits"), std::string::npos);
}

}  // namespace
}  // namespace tokenledger::auth

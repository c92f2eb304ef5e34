#include "src/app/config.h"

#include <gtest/gtest.h>

namespace tokenledger::app {
namespace {

bool Parse(std::vector<std::string> args, std::vector<std::string> env, Config* c,
           std::string* error) {
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  return ParseConfig(args, envp.data(), c, error);
}

TEST(ConfigTest, DefaultsMatchTheDocs) {
  Config c;
  std::string error;
  ASSERT_TRUE(Parse({}, {}, &c, &error));
  EXPECT_EQ(c.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.store.data_dir, "./data");
  EXPECT_EQ(c.server.max_header_bytes, 8192u);
  EXPECT_EQ(c.server.max_body_bytes, 65536u);
  EXPECT_EQ(c.store.idempotency_ttl, 24 * kMicrosPerHour);
  EXPECT_EQ(c.store.policy.last_used_granularity, kMicrosPerMinute);
  EXPECT_TRUE(c.store.sync);
  EXPECT_EQ(c.introspection_cache, 5 * kMicrosPerSecond);
  EXPECT_TRUE(c.first_token);
}

TEST(ConfigTest, IntrospectionCacheAndFirstToken) {
  Config c;
  std::string error;
  ASSERT_TRUE(Parse({"--introspection-cache", "0"}, {"TOKENLEDGER_NO_FIRST_TOKEN=1"}, &c, &error))
      << error;
  EXPECT_EQ(c.introspection_cache, 0);
  EXPECT_FALSE(c.first_token);
  ASSERT_TRUE(Parse({"--introspection-cache", "1h"}, {}, &c, &error)) << error;
  EXPECT_EQ(c.introspection_cache, kMicrosPerHour);
  Config refused;
  EXPECT_FALSE(Parse({"--introspection-cache", "61m"}, {}, &refused, &error));
  EXPECT_NE(error.find("introspection-cache"), std::string::npos) << error;
}

TEST(ConfigTest, FlagsWinOverEnvironment) {
  Config c;
  std::string error;
  ASSERT_TRUE(Parse({"--listen", "0.0.0.0:9000", "--idempotency-ttl=2h", "--no-sync"},
                    {"TOKENLEDGER_LISTEN=1.2.3.4:1", "TOKENLEDGER_DATA_DIR=/var/lib/tl",
                     "TOKENLEDGER_LOG_LEVEL=debug", "OTHER=1"},
                    &c, &error))
      << error;
  EXPECT_EQ(c.server.listen, "0.0.0.0:9000");
  EXPECT_EQ(c.store.data_dir, "/var/lib/tl");
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_EQ(c.store.idempotency_ttl, 2 * kMicrosPerHour);
  EXPECT_FALSE(c.store.sync);
}

TEST(ConfigTest, ErrorsNameTheProblem) {
  Config c;
  std::string error;
  EXPECT_FALSE(Parse({"--bogus"}, {}, &c, &error));
  EXPECT_NE(error.find("--bogus"), std::string::npos);
  EXPECT_FALSE(Parse({"--listen"}, {}, &c, &error));
  EXPECT_NE(error.find("needs a value"), std::string::npos);
  EXPECT_FALSE(Parse({"--threads", "many"}, {}, &c, &error));
  EXPECT_FALSE(Parse({"--max-body-bytes", "0"}, {}, &c, &error));
  EXPECT_FALSE(Parse({"--log-level", "loud"}, {}, &c, &error));
  EXPECT_FALSE(Parse({}, {"TOKENLEDGER_THREADS=x"}, &c, &error));
  EXPECT_NE(error.find("TOKENLEDGER_THREADS"), std::string::npos);
  EXPECT_FALSE(Parse({"positional"}, {}, &c, &error));
  EXPECT_FALSE(Parse({"--no-sync=yes"}, {}, &c, &error));
  for (const char* bad :
       {"nonsense", "127.0.0.1", "127.0.0.1:99999", "host.example:80", ":80", "1.2.3.4:"}) {
    EXPECT_FALSE(Parse({"--listen", bad}, {}, &c, &error)) << bad;
  }
  for (const char* good : {"127.0.0.1:0", "0.0.0.0:8080", "[::1]:8080", "localhost:9000"}) {
    EXPECT_TRUE(Parse({"--listen", good}, {}, &c, &error)) << good << ": " << error;
  }
}

TEST(ConfigTest, Durations) {
  Micros m;
  ASSERT_TRUE(ParseDuration("90", &m));
  EXPECT_EQ(m, 90 * kMicrosPerSecond);
  ASSERT_TRUE(ParseDuration("500ms", &m));
  EXPECT_EQ(m, 500'000);
  ASSERT_TRUE(ParseDuration("365d", &m));
  EXPECT_EQ(m, 365 * kMicrosPerDay);
  EXPECT_FALSE(ParseDuration("", &m));
  EXPECT_FALSE(ParseDuration("5 s", &m));
  EXPECT_FALSE(ParseDuration("-5s", &m));
  EXPECT_FALSE(ParseDuration("5w", &m));
}

TEST(ConfigTest, MemoryBoundsTakeBinaryUnits) {
  Config c;
  std::string error;
  ASSERT_TRUE(Parse({"--block-cache", "32MiB", "--memtable-budget=16MiB", "--max-wal", "1GiB",
                     "--usage-audit-interval", "0"},
                    {}, &c, &error))
      << error;
  EXPECT_EQ(c.store.block_cache_bytes, std::size_t{32} << 20);
  EXPECT_EQ(c.store.memtable_bytes, std::size_t{16} << 20);
  EXPECT_EQ(c.store.max_wal_bytes, std::size_t{1} << 30);
  EXPECT_EQ(c.store.policy.usage_audit_interval, 0);
  ASSERT_TRUE(Parse({"--block-cache", "8388608"}, {}, &c, &error)) << error;
  EXPECT_EQ(c.store.block_cache_bytes, std::size_t{8} << 20);
  for (const char* bad : {"", "MiB", "12MB", "1KiB", "-1MiB", "5 MiB"})
    EXPECT_FALSE(Parse({"--block-cache", bad}, {}, &c, &error)) << bad;
}

TEST(ConfigTest, HelpListsEveryOptionWithItsDefault) {
  const std::string help = HelpText();
  for (const char* flag :
       {"--listen", "--data-dir", "--threads", "--signing-key-file", "--max-body-bytes",
        "--idempotency-ttl", "--last-used-granularity", "--log-level", "--metrics-listen",
        "--usage-audit-interval", "--block-cache", "--memtable-budget", "--max-wal"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  EXPECT_NE(help.find("default 127.0.0.1:8080"), std::string::npos);
}

}  // namespace
}  // namespace tokenledger::app

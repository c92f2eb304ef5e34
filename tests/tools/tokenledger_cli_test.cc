// The operator CLI, run as the real `tokenledger` binary against real data directories, beside
// (and without) the real server.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include "projections/token_details_v1.h"
#include "src/store/keys.h"
#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;
using store::testing::Family;
using store::testing::RawFamilies;
using store::testing::WithRawDb;

struct ToolRun {
  int exit_code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CliTest : public E2ETest {
 protected:
  struct Started {
    pid_t pid = -1;
    std::string out, err;
  };
  Started Start(std::vector<std::string> args) {
    static int n = 0;
    Started started{-1, dir_.path() + "/tool" + std::to_string(n) + ".out",
                    dir_.path() + "/tool" + std::to_string(n++) + ".err"};
    args.insert(args.begin(), TOKENLEDGER_CLI_PATH);
    started.pid = ::fork();
    if (started.pid == 0) {
      const int o = ::open(started.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int e = ::open(started.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, STDIN_FILENO);
      ::dup2(o, STDOUT_FILENO);
      ::dup2(e, STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return started;
  }
  ToolRun Wait(const Started& started) {
    int status = 0;
    ::waitpid(started.pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), Slurp(started.out),
            Slurp(started.err)};
  }

  // Runs `tokenledger args...` to completion (or sends it `signal` after `kill_after`).
  ToolRun Tool(std::vector<std::string> args,
               std::optional<std::chrono::milliseconds> kill_after = std::nullopt,
               int signal = SIGKILL) {
    Started started = Start(std::move(args));
    if (kill_after) {
      std::this_thread::sleep_for(*kill_after);
      ::kill(started.pid, signal);
    }
    return Wait(started);
  }

  // Runs `tokenledger args...`, sends it `signal` as soon as `midway()` holds (polled every
  // millisecond; not at all if the tool ends first) and waits for it.
  ToolRun ToolSignalledWhen(std::vector<std::string> args, const std::function<bool()>& midway,
                            int signal) {
    Started started = Start(std::move(args));
    for (;;) {
      siginfo_t info{};
      if (::waitid(P_PID, started.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0)
        break;  // ended by itself
      if (midway()) {
        ::kill(started.pid, signal);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Wait(started);
  }

  std::vector<json::object> Lines(const std::string& text) {
    std::vector<json::object> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line).as_object());
    return out;
  }

  // Creates `n` account-scoped tokens straight through the ledger (the server stopped).
  void CreateThroughTheLedger(int n) {
    StoreOptions options;
    options.data_dir = data_dir_;
    auto opened = store::LedgerStore::Open(options);
    ASSERT_TRUE(opened.store) << opened.message;
    std::vector<std::future<store::CommandResult>> pending;
    for (int i = 0; i < n; ++i) {
      pending.push_back(opened.store->Submit(store::CommandRequest{core::CreateToken{account_}}));
    }
    for (auto& f : pending) ASSERT_EQ(f.get().outcome, store::Outcome::kApplied);
  }

  // Creates tokens through the API and moves some through their lifecycle; returns the ids.
  std::vector<std::string> Activity(int tokens) {
    std::vector<std::string> ids;
    for (int i = 0; i < tokens; ++i) {
      ids.push_back(JsonString(CreateViaApi(main_.jwt).at("details").at("id")));
      if (i % 3 == 1) Call("POST", "/api/v1/api_token/" + ids.back() + "/suspend", main_.jwt);
      if (i % 3 == 2) {
        Call("POST", "/api/v1/api_token/" + ids.back() + "/revoke", main_.jwt);
        Call("DELETE", "/api/v1/api_token/" + ids.back(), main_.jwt);
      }
    }
    return ids;
  }

  std::vector<std::string> Dir() { return {"--data-dir", data_dir_}; }
  std::vector<std::string> Args(std::initializer_list<std::string> args) {
    std::vector<std::string> v(args);
    v.insert(v.end(), {"--data-dir", data_dir_});
    return v;
  }
};

TEST_F(CliTest, ReplayPrintsExactlyTheEventsInOrderWithEachFilter) {
  const Seeded other = Seed(ids_.Generate());
  StartServer();
  const auto ids = Activity(6);
  Call("GET", "/api/v1/ping", other.jwt);
  ToolRun all = Tool(Args({"replay"}));  // the server is running
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const auto events = Lines(all.out);  // stdout is not a terminal: JSON Lines by default
  ASSERT_GT(events.size(), 12u);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].at("seq").to_number<std::size_t>(), i + 1) << "every event, in order";
  }
  // Each token's events are exactly what the API's history shows, hashes included.
  for (const auto& id : ids) {
    ToolRun one = Tool(Args({"replay", "--token", id}));
    const auto api = Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt)
                         .Json()
                         .at("events")
                         .as_array();
    const auto mine = Lines(one.out);
    ASSERT_EQ(mine.size(), api.size()) << id;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      EXPECT_EQ(mine[i].at("token_id"), id);
      for (const char* k :
           {"seq", "stream_version", "type", "at", "hash", "request_id", "actor", "data"}) {
        EXPECT_EQ(mine[i].at(k), api[i].at(k)) << k;
      }
    }
  }
  auto count_if = [&](auto pred) {
    return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), pred));
  };
  auto expect_filter = [&](std::vector<std::string> args, auto pred) {
    args.insert(args.begin(), "replay");
    args.insert(args.end(), {"--data-dir", data_dir_});
    ToolRun r = Tool(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = Lines(r.out);
    std::vector<json::object> want;
    for (const auto& e : events)
      if (pred(e)) want.push_back(e);
    EXPECT_EQ(got, want) << args[1];
  };
  expect_filter({"--type", "TokenCreated"},
                [](const json::object& e) { return e.at("type") == "TokenCreated"; });
  EXPECT_EQ(count_if([](const json::object& e) { return e.at("type") == "TokenDeleted"; }), 2u);
  expect_filter({"--from-seq", "3", "--to-seq", "7"}, [](const json::object& e) {
    const auto s = e.at("seq").to_number<int>();
    return s >= 3 && s <= 7;
  });
  const std::string since = JsonString(events[4].at("at")), until = JsonString(events[9].at("at"));
  expect_filter({"--since", since, "--until", until}, [&](const json::object& e) {
    return JsonString(e.at("at")) >= since && JsonString(e.at("at")) <= until;
  });
  // The other account's token and its use: only with its account.
  expect_filter({"--account", other.account_id.ToString()}, [&](const json::object& e) {
    return e.at("token_id") == other.token_id.ToString();
  });
  expect_filter({"--account", account_.ToString()}, [&](const json::object& e) {
    return e.at("token_id") != other.token_id.ToString();
  });
  // The table format has a header and one row per event.
  ToolRun table = Tool(Args({"replay", "--format", "table"}));
  EXPECT_EQ(table.out.rfind("SEQ", 0), 0u);
  EXPECT_EQ(static_cast<std::size_t>(std::count(table.out.begin(), table.out.end(), '\n')),
            events.size() + 1);
  // Bad usage is exit 2.
  EXPECT_EQ(Tool(Args({"replay", "--type", "TokenExploded"})).exit_code, 2);
  EXPECT_EQ(Tool(Args({"replay", "--token", "nope"})).exit_code, 2);
  EXPECT_EQ(Tool(Args({"replay", "--bogus"})).exit_code, 2);
}

TEST_F(CliTest, ReplayFollowPrintsNewEventsAsTheyAreCommitted) {
  StartServer();
  const std::string out = dir_.path() + "/follow.out";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, STDOUT_FILENO);
    std::string bin = TOKENLEDGER_CLI_PATH, cmd = "replay", flag = "--follow", dd = "--data-dir",
                dir = data_dir_;
    char* argv[] = {bin.data(), cmd.data(), flag.data(), dd.data(), dir.data(), nullptr};
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string id = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seen = Slurp(out).find(id) != std::string::npos;
  }
  EXPECT_TRUE(seen) << "the follower printed the new token's event";
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(CliTest, VerifyNamesATamperedEventAndAMissingRow) {
  StartServer();
  const auto ids = Activity(5);
  ToolRun clean = Tool(Args({"verify"}));  // beside the running server
  EXPECT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  EXPECT_NE(clean.out.find("0 findings"), std::string::npos);
  StopServer();
  WithRawDb(data_dir_, [](rocksdb::DB* db, RawFamilies& cfs) {
    std::string value;
    ASSERT_TRUE(db->Get({}, cfs[store::kEventsCf], store::EventKey(4), &value).ok());
    value[value.size() - 3] ^= 0x01;  // one byte of one stored event
    ASSERT_TRUE(db->Put({}, cfs[store::kEventsCf], store::EventKey(4), value).ok());
  });
  ToolRun tampered = Tool(Args({"verify"}));
  EXPECT_EQ(tampered.exit_code, 1);
  EXPECT_NE(tampered.out.find("FINDING chain seq=4"), std::string::npos) << tampered.out;

  // Repair that byte, then lose a projection row.
  WithRawDb(data_dir_, [&](rocksdb::DB* db, RawFamilies& cfs) {
    std::string value;
    ASSERT_TRUE(db->Get({}, cfs[store::kEventsCf], store::EventKey(4), &value).ok());
    value[value.size() - 3] ^= 0x01;
    ASSERT_TRUE(db->Put({}, cfs[store::kEventsCf], store::EventKey(4), value).ok());
    ASSERT_TRUE(db->Delete({}, Family(cfs, "token_details"), Id::Parse(ids[0])->Bytes()).ok());
  });
  ToolRun missing = Tool(Args({"verify"}));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find("token=" + ids[0]), std::string::npos) << missing.out;
  EXPECT_NE(missing.out.find("token row is missing"), std::string::npos);
  EXPECT_EQ(Tool(Args({"rebuild"})).exit_code, 0);
  EXPECT_EQ(Tool(Args({"verify"})).exit_code, 0);
}

TEST_F(CliTest, RebuildNeedsExclusiveAccessAndEqualsAFreshFold) {
  StartServer();
  Activity(6);
  ToolRun refused = Tool(Args({"rebuild"}));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("stop the server first"), std::string::npos) << refused.err;
  EXPECT_EQ(Tool(Args({"mint", "--account", account_.ToString()})).exit_code, 2);
  const std::string before =
      Call("GET", "/api/v1/api_token?pagination[page_size]=100&sorting=id", main_.jwt).body;
  StopServer();
  ToolRun rebuilt = Tool(Args({"rebuild"}));
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_NE(rebuilt.out.find("rebuilt projections token_details v4"), std::string::npos);
  EXPECT_EQ(Tool(Args({"verify"})).exit_code, 0);
  StartServer();
  EXPECT_EQ(Call("GET", "/api/v1/api_token?pagination[page_size]=100&sorting=id", main_.jwt).body,
            before);
}

TEST_F(CliTest, ARebuildKilledAtRandomAndRunAgainEndsInTheSameState) {
  CreateThroughTheLedger(10000);
  auto rows = [&] {
    std::vector<projections::TokenRow> out;
    StoreOptions options;
    options.data_dir = data_dir_;
    auto opened = store::LedgerStore::Open(options, store::OpenMode::kReadOnly);
    EXPECT_TRUE(opened.store) << opened.message;
    if (opened.store) {
      EXPECT_TRUE(opened.store->ScanTokens([&](const projections::TokenRow& r) {
        out.push_back(r);
        return true;
      }));
    }
    return out;
  };
  const auto before = rows();
  ASSERT_EQ(before.size(), 10001u);
  std::mt19937 rng(11);
  int interrupted = 0;
  for (int round = 0; round < 4; ++round) {
    // Its temporary sort in the test's directory: a SIGKILL leaves it behind.
    ToolRun killed = Tool(Args({"rebuild", "--chunk-events", "50", "--temp-dir", dir_.path()}),
                          std::chrono::milliseconds(20 + rng() % 80));
    EXPECT_TRUE(killed.exit_code == 137 || killed.exit_code == 0) << killed.exit_code << killed.err;
    interrupted += killed.exit_code == 137;
    // Until a rebuild switches, the old projections are intact and in use.
    EXPECT_EQ(Tool(Args({"verify"})).exit_code, 0) << "round " << round;
  }
  EXPECT_GT(interrupted, 0) << "no kill landed in the middle of a rebuild";
  ToolRun rerun = Tool(Args({"rebuild", "--chunk-events", "50"}));
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err;
  ToolRun verified = Tool(Args({"verify"}));
  EXPECT_EQ(verified.exit_code, 0) << verified.out;
  EXPECT_TRUE(rows() == before) << "the rows after the killed and repeated rebuilds differ";
}

// SIGINT and SIGTERM stop a long command between two steps: it says so, leaves nothing behind
// (its temporary sort, a partial export), and ends by the signal; the ledger is as it was.
TEST_F(CliTest, ASignalledToolRemovesWhatItMadeAndChangesNothing) {
  CreateThroughTheLedger(10000);
  const std::string temp = dir_.path() + "/temp";
  std::filesystem::create_directories(temp);
  // Midway: the temporary sort exists (rebuild, verify creates it first thing).
  auto sorting = [&] { return !std::filesystem::is_empty(temp); };
  const std::string exported = dir_.path() + "/export.jsonl";
  auto exporting = [&] { return std::filesystem::exists(exported + ".partial"); };
  struct Case {
    std::vector<std::string> args;
    std::function<bool()> midway;
    const char* says;
  };
  const std::vector<Case> cases = {
      {Args({"rebuild", "--chunk-events", "50", "--temp-dir", temp}), sorting,
       "the projections in use are unchanged"},
      {Args({"verify", "--temp-dir", temp}), sorting, "nothing was verified"},
      {Args({"export", "--output", exported}), exporting, "no file was written"},
  };
  for (const Case& c : cases) {
    int stopped = 0;
    for (int round = 0; round < 6 && stopped < 2; ++round) {
      const int signal = round % 2 ? SIGTERM : SIGINT;
      ToolRun run = ToolSignalledWhen(c.args, c.midway, signal);
      std::filesystem::remove(exported);  // a run that finished first
      if (run.exit_code == 0) continue;   // ended before its next step saw the signal
      ++stopped;
      EXPECT_EQ(run.exit_code, 128 + signal)
          << c.args[0] << ": ended by the signal, cleaned up" << run.err;
      EXPECT_NE(run.err.find("interrupted by a signal"), std::string::npos) << run.err;
      EXPECT_NE(run.err.find(c.says), std::string::npos) << run.err;
      EXPECT_TRUE(std::filesystem::is_empty(temp)) << c.args[0] << " left its temporary sort";
      EXPECT_FALSE(std::filesystem::exists(exported + ".partial")) << "a partial export stayed";
      EXPECT_FALSE(std::filesystem::exists(exported));
    }
    EXPECT_GT(stopped, 0) << c.args[0] << ": no signal landed midway";
  }
  ToolRun verified = Tool(Args({"verify"}));
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_NE(verified.out.find("10001 events and 10001 tokens: 0 findings"), std::string::npos)
      << verified.out;
}

// Leaves the ledger exactly as a release-1 server would have: token-details rows in the v1
// encoding, meta naming v1 families.
void DowngradeProjectionsToV1(const std::string& data_dir) {
  WithRawDb(data_dir, [](rocksdb::DB* db, RawFamilies& cfs) {
    rocksdb::ColumnFamilyHandle* details = Family(cfs, "token_details");
    rocksdb::ColumnFamilyHandle* list = Family(cfs, "token_list_index");
    rocksdb::ColumnFamilyHandle *v1_details = nullptr, *v1_list = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily({}, "token_details.v1.g90", &v1_details).ok());
    ASSERT_TRUE(db->CreateColumnFamily({}, "token_list_index.v1.g90", &v1_list).ok());
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, details));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto row = projections::DecodeTokenRow(it->value().ToStringView());
      ASSERT_TRUE(row);
      ASSERT_TRUE(db->Put({}, v1_details, it->key(), projections::v1::EncodeTokenRow(*row)).ok());
    }
    std::unique_ptr<rocksdb::Iterator> li(db->NewIterator({}, list));
    for (li->SeekToFirst(); li->Valid(); li->Next())
      ASSERT_TRUE(db->Put({}, v1_list, li->key(), li->value()).ok());
    it.reset();
    li.reset();
    ASSERT_TRUE(
        db->Put(
              {}, cfs[store::kMetaCf], store::kMetaProjections,
              R"({"token_details":{"version":1,"cf":"token_details.v1.g90"},)"
              R"("token_list_index":{"version":1,"cf":"token_list_index.v1.g90"},"generation":90})")
            .ok());
    ASSERT_TRUE(db->DropColumnFamily(details).ok());
    ASSERT_TRUE(db->DropColumnFamily(list).ok());
    db->DestroyColumnFamilyHandle(v1_details);
    db->DestroyColumnFamilyHandle(v1_list);
  });
}

TEST_F(CliTest, SchemaChangeFromVersion1IsMigratedByRebuild) {
  StartServer();
  const auto ids = Activity(6);  // ids[2] and ids[5] are revoked and deleted; make one revoked
  const std::string revoked = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  Call("POST", "/api/v1/api_token/" + revoked + "/revoke", main_.jwt);
  StopServer();
  DowngradeProjectionsToV1(data_dir_);

  // The server refuses stale rows and names the command that fixes them.
  ServerProcess refused(data_dir_);
  EXPECT_FALSE(refused.Start(/*expect_success=*/false));
  EXPECT_NE(refused.Stderr().find("tokenledger rebuild"), std::string::npos) << refused.Stderr();
  ToolRun stale = Tool(Args({"verify"}));
  EXPECT_EQ(stale.exit_code, 1);
  EXPECT_NE(stale.out.find("run `tokenledger rebuild`"), std::string::npos) << stale.out;

  ToolRun rebuilt = Tool(Args({"rebuild"}));
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_EQ(Tool(Args({"verify"})).exit_code, 0);

  // Every row equals a fresh fold of the ledger by the v2 code.
  {
    StoreOptions options;
    options.data_dir = data_dir_;
    auto opened = store::LedgerStore::Open(options, store::OpenMode::kReadOnly);
    ASSERT_TRUE(opened.store) << opened.message;
    std::map<Id, std::optional<projections::TokenRow>> fold;
    ASSERT_TRUE(opened.store->ScanEvents(1, [&](const events::EventEnvelope& e) {
      projections::ApplyEvent(fold[e.stream], e);
      return true;
    }));
    std::size_t rows = 0;
    for (const auto& [id, row] : fold) {
      auto stored = opened.store->GetToken(id);
      ASSERT_TRUE(stored);
      if (!row->state.Visible()) {
        EXPECT_FALSE(*stored);
        continue;
      }
      ASSERT_TRUE(*stored) << id.ToString();
      EXPECT_EQ(**stored, *row);
      ++rows;
    }
    EXPECT_EQ(rows, 6u);  // main_, 4 of Activity's, and `revoked`
  }
  StartServer();
  const auto d =
      Call("GET", "/api/v1/api_token/" + revoked, main_.jwt).Json().at("details").as_object();
  EXPECT_FALSE(d.at("revoked_at").is_null()) << "the v2 field is filled from history";
  EXPECT_EQ(d.at("revoked_at"), d.at("status_changed_at"));
  StopServer();

  // The server can also migrate on its own when asked.
  DowngradeProjectionsToV1(data_dir_);
  StartServer({"--rebuild-projections"});
  EXPECT_EQ(Call("GET", "/readyz", "").status, 200);
}

TEST_F(CliTest, ExportImportExportIsIdenticalAndATamperedImportFails) {
  StartServer();
  Activity(5);
  Call("POST", "/api/v1/api_token", main_.jwt,
       R"({"details":{"token_scope":"account"},"idempotency_key":"k"})");
  const std::string first = dir_.path() + "/export1.jsonl";
  ToolRun exported = Tool(Args({"export", "--output", first}));  // beside the running server
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::string copy = dir_.path() + "/copy";
  ToolRun keyless = Tool({"import", "--data-dir", copy, "--input", first});
  EXPECT_EQ(keyless.exit_code, 2) << "import without the signing key is refused";
  EXPECT_NE(keyless.err.find("--signing-key"), std::string::npos) << keyless.err;
  EXPECT_FALSE(std::filesystem::exists(copy));
  const std::string key = data_dir_ + "/signing.key";
  ToolRun imported = Tool({"import", "--data-dir", copy, "--input", first, "--signing-key", key});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const std::string second = dir_.path() + "/export2.jsonl";
  ASSERT_EQ(Tool({"export", "--data-dir", copy, "--output", second}).exit_code, 0);
  EXPECT_EQ(Slurp(second), Slurp(first)) << "export -> import -> export is byte-identical";
  EXPECT_EQ(Tool({"verify", "--data-dir", copy}).exit_code, 0);
  // Import refuses a non-empty directory.
  EXPECT_EQ(Tool({"import", "--data-dir", copy, "--input", first, "--signing-key", key}).exit_code,
            2);

  // One changed character anywhere in the history fails the import, and nothing stays behind.
  std::string text = Slurp(first);
  text[text.find("\"request_id\":\"") + 15] ^= 0x01;
  const std::string bad = dir_.path() + "/bad.jsonl";
  std::ofstream(bad) << text;
  const std::string target = dir_.path() + "/target";
  ToolRun refused = Tool({"import", "--data-dir", target, "--input", bad, "--signing-key", key});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("nothing was imported"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(target));
  // A dropped line breaks the chain too.
  std::string dropped = Slurp(first);
  const auto line2 = dropped.find('\n') + 1;
  dropped.erase(line2, dropped.find('\n', line2) + 1 - line2);
  std::ofstream(bad, std::ios::trunc) << dropped;
  EXPECT_EQ(Tool({"import", "--data-dir", target, "--input", bad, "--signing-key", key}).exit_code,
            1);
}

TEST_F(CliTest, AnImportCarriesTheSigningKeySoExistingTokensAuthenticate) {
  StartServer();
  Activity(3);
  const auto before = Call("GET", "/api/v1/api_token?sorting=id", main_.jwt);
  ASSERT_EQ(before.status, 200);
  const std::string exported = dir_.path() + "/export.jsonl";
  ASSERT_EQ(Tool(Args({"export", "--output", exported})).exit_code, 0);
  StopServer();
  const std::string copy = dir_.path() + "/copy";
  ToolRun imported = Tool({"import", "--data-dir", copy, "--input", exported, "--signing-key",
                           data_dir_ + "/signing.key"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(
      std::filesystem::status(copy + "/signing.key").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  data_dir_ = copy;  // the server now runs on the imported directory
  StartServer();
  const auto after = Call("GET", "/api/v1/api_token?sorting=id", main_.jwt);
  EXPECT_EQ(after.status, 200) << after.body << " (a token minted before the export)";
  EXPECT_EQ(after.body, before.body);
}

// A ledger with a key ring history: the import checks the key file holds the active key (a
// backup from before the last rotation is refused at import, not at the server's first start),
// and --new-signing-key makes a new key active by a rotation.
TEST_F(CliTest, AnImportOfARotatedLedgerNeedsTheKeyFileOfItsLastRotation) {
  const std::string old_keys = dir_.path() + "/keys-before-rotation";
  std::filesystem::copy_file(data_dir_ + "/signing.key", old_keys);
  std::filesystem::permissions(
      old_keys, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ToolRun rotated = Tool(Args({"keys", "rotate"}));
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  StartServer();
  const auto created =
      Call("POST", "/api/v1/api_token", main_.jwt, R"({"details":{"token_scope":"account"}})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string new_token = JsonString(created.Json().at("token"));
  const std::string exported = dir_.path() + "/export.jsonl";
  ASSERT_EQ(Tool(Args({"export", "--output", exported})).exit_code, 0);
  StopServer();

  const std::string stale = dir_.path() + "/stale";
  ToolRun refused =
      Tool({"import", "--data-dir", stale, "--input", exported, "--signing-key", old_keys});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("lacks the ledger's active key"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(stale + "/CURRENT")) << "nothing stays behind";

  const std::string copy = dir_.path() + "/copy";
  ASSERT_EQ(Tool({"import", "--data-dir", copy, "--input", exported, "--signing-key",
                  data_dir_ + "/signing.key"})
                .exit_code,
            0);
  const std::string fresh = dir_.path() + "/fresh";
  ToolRun keyless = Tool({"import", "--data-dir", fresh, "--input", exported, "--new-signing-key"});
  ASSERT_EQ(keyless.exit_code, 0) << keyless.err;
  ToolRun listed = Tool({"keys", "list", "--data-dir", fresh});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("import --new-signing-key"), std::string::npos) << listed.out;

  data_dir_ = copy;
  StartServer();
  EXPECT_EQ(Call("GET", "/api/v1/ping", new_token).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/ping", main_.jwt).status, 200) << "the original key verifies";
  StopServer();
  data_dir_ = fresh;
  StartServer();  // starts: the rotation named a key the file holds
  EXPECT_EQ(Call("GET", "/api/v1/ping", new_token).status, 401);
}

TEST_F(CliTest, AnImportStoppedMidwayIsNeverServedAndASecondImportWorks) {
  store::testing::AppendCreates(data_dir_, account_, 10000);
  const std::string exported = dir_.path() + "/export.jsonl";
  ASSERT_EQ(Tool(Args({"export", "--output", exported})).exit_code, 0);
  const std::string key = data_dir_ + "/signing.key";
  // A whole import first: how long one takes on this machine and build (sanitizers included)
  // sets when the signals land, so they land midway however fast import becomes.
  const std::string fresh = dir_.path() + "/fresh";
  const auto t0 = std::chrono::steady_clock::now();
  ToolRun whole =
      Tool({"import", "--data-dir", fresh, "--input", exported, "--signing-key", key, "--quiet"});
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  EXPECT_EQ(Tool({"verify", "--data-dir", fresh}).exit_code, 0);
  std::mt19937 rng(7);
  int midway = 0, partial = 0;
  for (int round = 0; round < 6; ++round) {
    const int signal = round % 2 ? SIGTERM : SIGKILL;
    const std::string target = dir_.path() + "/target" + std::to_string(round);
    const auto at = took * (10 + static_cast<int>(rng() % 70)) / 100;  // 10-80% of the way
    ToolRun stopped =
        // Its temporary sort in the test's directory: a SIGKILL leaves it behind.
        Tool({"import", "--data-dir", target, "--input", exported, "--signing-key", key, "--quiet",
              "--temp-dir", dir_.path()},
             std::max(at, std::chrono::milliseconds(1)), signal);
    if (stopped.exit_code == 0) continue;  // finished before the signal
    ++midway;
    if (signal == SIGTERM) {
      EXPECT_EQ(stopped.exit_code, 128 + SIGTERM) << stopped.err;
      EXPECT_NE(stopped.err.find("interrupted"), std::string::npos) << stopped.err;
      EXPECT_FALSE(std::filesystem::exists(target)) << "SIGTERM removes the partial directory";
      continue;
    }
    if (!std::filesystem::exists(target)) continue;
    StoreOptions options;
    options.data_dir = target;
    auto served = store::LedgerStore::Open(options, store::OpenMode::kServe);
    if (served.store) {
      // Only if the kill landed after the final synced write: then the import is complete.
      EXPECT_EQ(served.store->LastSeq(), 10001u) << "a partial import was served";
      auto report = served.store->Verify();
      ASSERT_TRUE(report);
      EXPECT_TRUE(report->findings.empty());
      continue;
    }
    ++partial;
    EXPECT_EQ(served.failure, store::OpenFailure::kCorrupt) << served.message;
    EXPECT_NE(served.message.find("unfinished import"), std::string::npos) << served.message;
    // The server says so too, and does not report ready.
    ServerProcess server(target, {});
    EXPECT_FALSE(server.Start(/*expect_success=*/false)) << "the server refused the import";
    EXPECT_NE(server.Stderr().find("unfinished import"), std::string::npos) << server.Stderr();
  }
  EXPECT_GT(midway, 0) << "no signal landed in the middle of an import";
  EXPECT_GT(partial, 0) << "no SIGKILL left a partial import behind";
  // After the stopped ones, a second import into the same path works.
  const std::string again_dir = dir_.path() + "/target1";
  std::filesystem::remove_all(again_dir);
  ToolRun again = Tool(
      {"import", "--data-dir", again_dir, "--input", exported, "--signing-key", key, "--quiet"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Tool({"verify", "--data-dir", again_dir}).exit_code, 0);
}

// Import reads in batches of 16,384 records (kImportBatchRecords; two buffers taking turns): an
// export of several batches comes back byte-identical, and a bad line (named by its line) or a
// tampered event (by its sequence number) in a later batch is found and leaves nothing behind.
TEST_F(CliTest, AnImportOfSeveralBatchesIsExactAndALaterBatchsBadLineIsNamed) {
  store::testing::AppendCreates(data_dir_, account_, 2 * 16384 + 500);
  const std::string exported = dir_.path() + "/export.jsonl";
  ASSERT_EQ(Tool(Args({"export", "--output", exported})).exit_code, 0);
  const std::string key = data_dir_ + "/signing.key";
  const std::string copy = dir_.path() + "/copy";
  ToolRun imported =
      Tool({"import", "--data-dir", copy, "--input", exported, "--signing-key", key, "--quiet"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const std::string again = dir_.path() + "/again.jsonl";
  ASSERT_EQ(Tool({"export", "--data-dir", copy, "--output", again}).exit_code, 0);
  EXPECT_EQ(Slurp(again), Slurp(exported));
  EXPECT_EQ(Tool({"verify", "--data-dir", copy}).exit_code, 0);

  const std::string text = Slurp(exported);
  auto line_start = [&](int line) {  // 1-based
    std::size_t at = 0;
    for (int i = 1; i < line; ++i) at = text.find('\n', at) + 1;
    return at;
  };
  const std::string bad = dir_.path() + "/bad.jsonl";
  const std::string target = dir_.path() + "/target";
  // A line that is not an exported event at all: inside the second batch, and as the first
  // line of it (a batch with no record, only its error).
  for (const int line : {20000, 16385}) {
    std::string broken = text;
    broken[line_start(line)] = '[';
    std::ofstream(bad, std::ios::trunc) << broken;
    ToolRun refused = Tool({"import", "--data-dir", target, "--input", bad, "--signing-key", key});
    EXPECT_EQ(refused.exit_code, 1) << line;
    EXPECT_NE(refused.err.find("line " + std::to_string(line) + " is not an exported event"),
              std::string::npos)
        << refused.err;
    EXPECT_FALSE(std::filesystem::exists(target));
  }
  // An event of the third batch changed by one character: its hash no longer matches.
  std::string tampered = text;
  const std::size_t body = tampered.find("\"request_id\":\"", line_start(2 * 16384 + 100));
  tampered[body + 15] ^= 0x01;
  std::ofstream(bad, std::ios::trunc) << tampered;
  ToolRun refused = Tool({"import", "--data-dir", target, "--input", bad, "--signing-key", key});
  EXPECT_EQ(refused.exit_code, 1);
  // Line N holds event N: the export starts at the first event.
  EXPECT_NE(refused.err.find("event 32868: its hash does not match its body"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("nothing was imported"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST_F(CliTest, NoProgressBarWhenStderrIsNotATerminalAndQuietIsAcceptedEverywhere) {
  StartServer();
  Activity(3);
  StopServer();
  const std::string exported = dir_.path() + "/export.jsonl";
  const std::string copy = dir_.path() + "/copy";
  const std::vector<std::vector<std::string>> runs = {
      Args({"verify"}),
      Args({"rebuild"}),
      Args({"replay", "--format", "json"}),
      Args({"stats"}),
      Args({"export", "--output", exported}),
      {"import", "--data-dir", copy, "--input", exported, "--signing-key",
       data_dir_ + "/signing.key"}};
  for (auto args : runs) {
    ToolRun run = Tool(args);  // stderr is a file here
    EXPECT_EQ(run.exit_code, 0) << args[0] << ": " << run.err;
    EXPECT_EQ(run.err.find('\r'), std::string::npos) << args[0] << " drew a progress bar";
  }
  std::filesystem::remove_all(copy);
  for (auto args : runs) {
    args.push_back("--quiet");
    ToolRun run = Tool(args);
    EXPECT_EQ(run.exit_code, 0) << args[0] << " --quiet: " << run.err;
  }
  EXPECT_NE(Tool({"mint", "--quiet", "--help"}).exit_code, 2);
}

TEST_F(CliTest, ReplayJsonCopiedFromTheStoredBytesEqualsTheDecodedOutput) {
  StartServer();
  Activity(4);
  Call("POST", "/api/v1/api_token", main_.jwt,
       R"({"details":{"token_scope":"account"},"idempotency_key":"k \"quoted\""})");
  ToolRun copied = Tool(Args({"replay", "--format", "json"}));
  // A filter that matches everything takes the decoding path.
  ToolRun decoded = Tool(Args({"replay", "--format", "json", "--since", "1970-01-01T00:00:00Z"}));
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_FALSE(copied.out.empty());
  EXPECT_EQ(copied.out, decoded.out);
}

TEST_F(CliTest, MintedTokenAuthenticatesAndIsAudited) {
  const Id account = ids_.Generate(), admin = ids_.Generate();
  ToolRun minted = Tool(Args({"mint", "--account", account.ToString(), "--admin-user",
                              admin.ToString(), "--expires-at", "2099-01-01T00:00:00Z"}));
  ASSERT_EQ(minted.exit_code, 0) << minted.err;
  std::string jwt = minted.out;
  while (!jwt.empty() && jwt.back() == '\n') jwt.pop_back();
  EXPECT_EQ(jwt.find('\n'), std::string::npos) << "only the JWT on stdout";
  ToolRun env = Tool(Args({"mint", "--account", account.ToString(), "--scope", "environment",
                           "--environment", ids_.Generate().ToString()}));
  EXPECT_EQ(env.exit_code, 0) << env.err;
  // The API's create rules (core::ValidateCreate), refused before the ledger is opened.
  ToolRun no_env = Tool(Args({"mint", "--account", account.ToString(), "--scope", "environment"}));
  EXPECT_EQ(no_env.exit_code, 2);
  EXPECT_NE(no_env.err.find("environment_id is required for environment scope (--environment)"),
            std::string::npos)
      << no_env.err;
  ToolRun past =
      Tool(Args({"mint", "--account", account.ToString(), "--expires-at", "2001-01-01T00:00:00Z"}));
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_NE(past.err.find("expires_at must be in the future (--expires-at)"), std::string::npos)
      << past.err;
  EXPECT_EQ(Tool(Args({"mint"})).exit_code, 2);
  // A gateway's credential: only mint makes one, and it may only introspect.
  ToolRun gateway =
      Tool(Args({"mint", "--account", account.ToString(), "--scope", "introspection"}));
  ASSERT_EQ(gateway.exit_code, 0) << gateway.err;
  EXPECT_NE(gateway.err.find("(introspection scope)"), std::string::npos) << gateway.err;
  std::string gateway_jwt = gateway.out;
  while (!gateway_jwt.empty() && gateway_jwt.back() == '\n') gateway_jwt.pop_back();
  ToolRun gateway_env = Tool(Args({"mint", "--account", account.ToString(), "--scope",
                                   "introspection", "--environment", ids_.Generate().ToString()}));
  EXPECT_EQ(gateway_env.exit_code, 2);
  EXPECT_NE(
      gateway_env.err.find("environment_id must be null for introspection scope (--environment)"),
      std::string::npos)
      << gateway_env.err;
  StartServer();
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/ping", gateway_jwt).status, 403);
  const auto introspected =
      client_->Request("POST", "/api/v1/introspect", "token=" + jwt,
                       {{"Authorization", "Bearer " + gateway_jwt},
                        {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(introspected.status, 200) << introspected.body;
  EXPECT_EQ(introspected.Json().at("active"), json::value(true)) << introspected.body;
  const auto list = Call("GET", "/api/v1/api_token?sorting=inserted_at", jwt).Json();
  const auto& d = list.at("summaries").at(0);
  EXPECT_EQ(d.at("created_by_admin_user_id"), admin.ToString());
  EXPECT_EQ(d.at("expires_at"), "2099-01-01T00:00:00.000000Z");
  ToolRun replay =
      Tool(Args({"replay", "--account", account.ToString(), "--type", "TokenCreated"}));
  const auto events = Lines(replay.out);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].at("actor").at("admin_user_id"), admin.ToString());
  EXPECT_EQ(events[0].at("request_id"), "tokenledger-mint");
}

TEST_F(CliTest, StatsAndHelp) {
  StartServer();
  Activity(3);
  ToolRun stats = Tool(Args({"stats", "--format", "json"}));
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const auto s = json::parse(stats.out).as_object();
  EXPECT_EQ(s.at("tokens"), 3);  // main_ and two of Activity's (one was deleted)
  EXPECT_EQ(s.at("events_by_type").at("TokenDeleted"), 1);
  EXPECT_EQ(s.at("events_by_type").at("TokenCreated"), 4);
  EXPECT_EQ(s.at("tokens_by_status").at("suspended"), 1);
  EXPECT_GT(s.at("disk_bytes").to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(s.at("last_seq"), s.at("events"));
  ToolRun table = Tool(Args({"stats"}));
  EXPECT_NE(table.out.find("last seq"), std::string::npos);
  for (const char* cmd : {"replay", "rebuild", "verify", "mint", "export", "import", "stats"}) {
    ToolRun help = Tool({cmd, "--help"});
    EXPECT_EQ(help.exit_code, 0) << cmd;
    EXPECT_NE(help.out.find("--data-dir"), std::string::npos) << cmd;
  }
  ToolRun usage = Tool({"--help"});
  EXPECT_EQ(usage.exit_code, 0);
  // Every command's name stands apart from its summary, the longest included.
  EXPECT_NE(usage.out.find("  cluster-publish  "), std::string::npos) << usage.out;
  EXPECT_EQ(Tool({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Tool({}).exit_code, 2);
  EXPECT_EQ(Tool({"verify", "--data-dir", dir_.path() + "/nothing-here"}).exit_code, 1);
}

}  // namespace
}  // namespace tokenledger::e2e

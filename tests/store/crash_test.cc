// Crash test: a child process writes and reports each acknowledged write; it is killed with
// SIGKILL at a random moment, ten times over on the same ledger. After each kill the reopened
// ledger holds every acknowledged write, nothing half-applied, and the chain verifies.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <sstream>

#include "events/hash_chain.h"
#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

struct ChildRun {
  std::string output;
  int status = 0;
};

// Runs the writer for `run_for` counted from its first acknowledged write (so that a slow
// start, under the sanitizers or on a loaded machine, never leaves a round with nothing to
// check), then SIGKILLs it and collects everything it printed.
ChildRun RunAndKill(const std::vector<std::string>& args, std::chrono::milliseconds run_for) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildRun run;
  char buf[65536];
  // Until the first acknowledged write: a generous bound, then the kill comes regardless.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool started = false, killed = false;
  for (;;) {
    if (!started && !run.output.empty()) {
      started = true;
      deadline = std::chrono::steady_clock::now() + run_for;
    }
    if (!killed && std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fds[0], POLLIN, 0};
    ::poll(&p, 1, 5);
    if (p.revents & (POLLIN | POLLHUP)) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n > 0) run.output.append(buf, static_cast<std::size_t>(n));
      if (n == 0) break;  // the child is gone and the pipe is drained
    }
  }
  ::close(fds[0]);
  ::waitpid(pid, &run.status, 0);
  return run;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

class CrashTest : public StoreTest {};

TEST_F(CrashTest, EveryAcknowledgedWriteSurvivesSigkill) {
  std::mt19937_64 rng(7);
  const Id account = ids_.Generate();
  std::uint64_t total_events = 0, total_keys = 0;
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(std::string("round ").append(std::to_string(round)));
    const auto run_for = std::chrono::milliseconds(40 + rng() % 260);
    ChildRun run = RunAndKill(
        {CRASH_WRITER_PATH, options_.data_dir, account.ToString(),
         std::string("r").append(std::to_string(round)).append("-"), std::to_string(rng())},
        run_for);
    ASSERT_TRUE(WIFSIGNALED(run.status) && WTERMSIG(run.status) == SIGKILL)
        << "the writer must die by SIGKILL (status " << run.status << ")";

    Open();
    std::istringstream lines(run.output);
    std::string kind;
    while (lines >> kind) {
      if (kind == "E") {
        std::uint64_t seq;
        std::string token, type;
        lines >> seq >> token >> type;
        std::optional<events::EventEnvelope> found;
        ASSERT_TRUE(store_->ScanEvents(seq, [&](const events::EventEnvelope& e) {
          found = e;
          return false;
        }));
        ASSERT_TRUE(found && found->seq == seq) << "acknowledged event " << seq << " is missing";
        EXPECT_EQ(found->stream.ToString(), token);
        EXPECT_EQ(events::TypeName(found->data), type);
        ++total_events;
      } else if (kind == "K") {
        std::string key, hex;
        lines >> key >> hex;
        // The recorded outcome comes back byte for byte (the command itself is not re-decided).
        auto r =
            Run(core::RecordUse{account, 0}, IdempotencyInfo{account, key, events::Sha256(key)});
        EXPECT_EQ(r.outcome, Outcome::kReplayed) << key;
        EXPECT_EQ(OutcomeText(r), Unhex(hex)) << key;
        ++total_keys;
      } else {
        FAIL() << "unexpected line kind " << kind;
      }
    }
    auto report = store_->Verify();
    ASSERT_TRUE(report) << report.error().message;
    for (const auto& f : report->findings)
      ADD_FAILURE() << f.kind << " seq " << f.seq << ": " << f.message;
    Close();
  }
  EXPECT_GT(total_events, 10u) << "the writer must have got writes acknowledged";
  EXPECT_GT(total_keys, 5u);
}

}  // namespace
}  // namespace tokenledger::store::testing

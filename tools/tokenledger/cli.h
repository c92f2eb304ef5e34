// Shared pieces of the `tokenledger` operator CLI: subcommand specs, flag parsing, exit codes
// and opening the ledger the way each command needs it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/store/ledger_store.h"

namespace tokenledger::cli {

// Exit codes, as operators know them from git and etcdctl.
constexpr int kOk = 0;
constexpr int kFinding = 1;  // verify found something, or the command failed
constexpr int kUsage = 2;    // bad usage, or the data directory is in use
// Not an exit code: the command stopped on SIGINT/SIGTERM and removed what it made; main()
// ends the process by that signal once everything is closed (interrupt.h).
constexpr int kInterrupted = -1;

struct FlagSpec {
  std::string name;        // without "--"
  std::string value_name;  // empty: a switch
  std::string help;
  std::string default_value;  // shown in --help; empty: none
};

class Flags {
 public:
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  std::map<std::string, std::string> values_;
};

struct Command {
  std::string name;
  std::string summary;
  std::string description;
  std::vector<FlagSpec> flags;
  std::function<int(const Flags&)> run;
  // The name of the command's one positional argument (stored under that name), if it has one.
  std::string positional = {};
};

// Parses `args` for `command`; on error prints it (and how to get help) and returns nullopt.
std::optional<Flags> ParseFlags(const Command& command, const std::vector<std::string>& args);
std::string CommandHelp(const Command& command);

// Fails (prints, returns nullopt) with an error naming the flag.
std::optional<Id> IdFlag(const Flags& flags, const std::string& name);
std::optional<Micros> TimeFlag(const Flags& flags, const std::string& name);
std::optional<std::uint64_t> NumberFlag(const Flags& flags, const std::string& name);

struct Opened {
  std::unique_ptr<store::LedgerStore> store;
  int exit_code = kOk;  // when store is null
};
// Beside a running server, never blocking it (a RocksDB secondary instance).
Opened OpenReadOnly(const std::string& data_dir);
// Exclusively; if the server (or another tool) holds the directory, says so and exits 2.
Opened OpenExclusive(const std::string& data_dir, const std::string& command);

// A command's --input: the file at `path`, or stdin for "-". Closed (unless stdin) when it goes
// out of scope. If the file cannot be opened it says so ("tokenledger COMMAND: cannot read
// 'PATH'") and ok() is false.
class InputFile {
 public:
  InputFile(const std::string& path, const std::string& command);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  std::uint64_t bytes() const { return bytes_; }  // the file's size; 0 for stdin

 private:
  int fd_;
  std::uint64_t bytes_ = 0;
};

std::vector<Command> AllCommands();

// fsync()s directory `dir`, so the entries created, renamed or removed in it survive a crash:
// 0, or the errno of the failure.
int SyncDirectory(const std::string& dir);

// With TOKENLEDGER_PHASE_TIMES set in the environment, prints to stderr how long each phase of
// a long store operation took (the phase names of RebuildProgress): for profiling, not a
// format anything parses. "end" closes the last phase.
void TimePhase(std::string_view phase);

class Progress;
// The progress callback of a long store operation (rebuild, verify, import's rebuild): stops it
// on a signal (interrupt.h), times its phases, draws `bar`.
std::function<void(const store::RebuildProgress&)> StepsOf(Progress& bar);

}  // namespace tokenledger::cli

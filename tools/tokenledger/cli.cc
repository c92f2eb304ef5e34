#include "tools/tokenledger/cli.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {

std::optional<Flags> ParseFlags(const Command& command, const std::vector<std::string>& args) {
  Flags flags;
  auto fail = [&](const std::string& message) -> std::optional<Flags> {
    std::fprintf(stderr, "tokenledger %s: %s (see `tokenledger %s --help`)\n", command.name.c_str(),
                 message.c_str(), command.name.c_str());
    return std::nullopt;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "-h" || arg == "--help") {
      flags.values_["help"] = "";
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      if (command.positional.empty() || flags.Has(command.positional))
        return fail("unexpected argument '" + arg + "'");
      flags.values_[command.positional] = arg;
      continue;
    }
    arg = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const FlagSpec* spec = nullptr;
    for (const auto& f : command.flags)
      if (f.name == arg) spec = &f;
    if (!spec) return fail("unknown flag '--" + arg + "'");
    if (spec->value_name.empty()) {
      if (inline_value) return fail("flag '--" + arg + "' takes no value");
      flags.values_[arg] = "";
    } else if (inline_value) {
      flags.values_[arg] = *inline_value;
    } else if (i + 1 < args.size()) {
      flags.values_[arg] = args[++i];
    } else {
      return fail("flag '--" + arg + "' needs a value (" + spec->value_name + ")");
    }
  }
  for (const auto& f : command.flags) {
    if (!flags.Has(f.name) && !f.default_value.empty() && !f.value_name.empty())
      flags.values_[f.name] = f.default_value;
  }
  return flags;
}

std::string CommandHelp(const Command& c) {
  std::string out =
      "usage: tokenledger " + c.name + " [FLAGS]\n\n" + c.description + "\n\nFlags:\n";
  for (const auto& f : c.flags) {
    std::string left = "  --" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (left.size() < 28) left.resize(28, ' ');
    out += left + " " + f.help +
           (f.default_value.empty() ? "" : " (default " + f.default_value + ")") + "\n";
  }
  out += "  --help                     show this help\n";
  out +=
      "\nExit codes: 0 success, 1 a finding or a failure, 2 bad usage or the data directory in "
      "use.\n";
  return out;
}

std::optional<Id> IdFlag(const Flags& flags, const std::string& name) {
  auto id = Id::Parse(flags.Get(name));
  if (!id)
    std::fprintf(stderr, "tokenledger: --%s '%s' is not a valid id\n", name.c_str(),
                 flags.Get(name).c_str());
  return id;
}

std::optional<Micros> TimeFlag(const Flags& flags, const std::string& name) {
  auto t = ParseRfc3339(flags.Get(name));
  if (!t)
    std::fprintf(stderr, "tokenledger: --%s '%s' is not an RFC 3339 time\n", name.c_str(),
                 flags.Get(name).c_str());
  return t;
}

std::optional<std::uint64_t> NumberFlag(const Flags& flags, const std::string& name) {
  const std::string v = flags.Get(name);
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
    std::fprintf(stderr, "tokenledger: --%s '%s' is not a non-negative integer\n", name.c_str(),
                 v.c_str());
    return std::nullopt;
  }
  return std::stoull(v);
}

Opened OpenReadOnly(const std::string& data_dir) {
  StoreOptions options;
  options.data_dir = data_dir;
  auto opened = store::LedgerStore::Open(options, store::OpenMode::kReadOnly);
  if (!opened.store) {
    std::fprintf(stderr, "tokenledger: %s\n", opened.message.c_str());
    return {nullptr, kFinding};
  }
  return {std::move(opened.store), kOk};
}

Opened OpenExclusive(const std::string& data_dir, const std::string& command) {
  StoreOptions options;
  options.data_dir = data_dir;
  auto opened = store::LedgerStore::Open(options, store::OpenMode::kMaintenance);
  if (!opened.store) {
    if (opened.failure == store::OpenFailure::kInUse) {
      std::fprintf(
          stderr,
          "tokenledger %s: the data directory '%s' is in use (is tokenledgerd running?); %s needs "
          "exclusive access: stop the server first\n",
          command.c_str(), data_dir.c_str(), command.c_str());
      return {nullptr, kUsage};
    }
    std::fprintf(stderr, "tokenledger %s: %s\n", command.c_str(), opened.message.c_str());
    return {nullptr, kFinding};
  }
  // A cluster node's store is the stream applied: a write of its own would fork it from the
  // other nodes. Rebuilding its projections from its events changes no event.
  if (auto stream = opened.store->ClusterStream(); stream && command != "rebuild") {
    std::fprintf(stderr,
                 "tokenledger %s: '%s' is a node of the cluster stream '%s'; its ledger changes "
                 "only through the cluster (write through a node's API)\n",
                 command.c_str(), data_dir.c_str(), stream->c_str());
    return {nullptr, kUsage};
  }
  return {std::move(opened.store), kOk};
}

InputFile::InputFile(const std::string& path, const std::string& command) : fd_(STDIN_FILENO) {
  if (path == "-") return;
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    std::fprintf(stderr, "tokenledger %s: cannot read '%s'\n", command.c_str(), path.c_str());
    return;
  }
  std::error_code ec;
  bytes_ = std::filesystem::file_size(path, ec);
}

InputFile::~InputFile() {
  if (fd_ >= 0 && fd_ != STDIN_FILENO) ::close(fd_);
}

void TimePhase(std::string_view phase) {
  static const bool wanted = std::getenv("TOKENLEDGER_PHASE_TIMES") != nullptr;
  if (!wanted) return;
  using Clock = std::chrono::steady_clock;
  static std::string current;
  static Clock::time_point since = Clock::now();
  if (phase == current) return;
  const auto now = Clock::now();
  if (!current.empty()) {
    std::fprintf(stderr, "phase %s: %.2f s\n", current.c_str(),
                 std::chrono::duration<double>(now - since).count());
  }
  current = std::string(phase);
  since = now;
}

int SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

std::function<void(const store::RebuildProgress&)> StepsOf(Progress& bar) {
  return [&bar](const store::RebuildProgress& p) {
    ThrowIfStopped();
    TimePhase(p.phase);
    bar.SetUnit(std::string(p.unit));
    bar.Update(p.events_done, p.phase, p.events_total);
  };
}

}  // namespace tokenledger::cli

// tokenledger: the operator CLI. `tokenledger <command> [flags]`; `--help` on each.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tokenledger/version.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/interrupt.h"

namespace {

std::string Usage(const std::vector<tokenledger::cli::Command>& commands) {
  std::string out =
      "usage: tokenledger <command> [flags]\n\nOperator tools for a tokenledger data "
      "directory.\n\nCommands:\n";
  // The summaries start two spaces past the longest name, so no name runs into its summary.
  std::size_t width = 0;
  for (const auto& c : commands) width = std::max(width, c.name.size());
  for (const auto& c : commands) {
    std::string name = "  " + c.name;
    name.resize(2 + width + 2, ' ');
    out += name + c.summary + "\n";
  }
  out +=
      "\n`tokenledger <command> --help` shows a command's flags, `tokenledger --version` the\n"
      "version. Exit codes: 0 success, 1 a finding or a failure, 2 bad usage or the data\n"
      "directory in use.\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const auto commands = tokenledger::cli::AllCommands();
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::printf("tokenledger %.*s (commit %.*s)\n", static_cast<int>(tokenledger::Version().size()),
                tokenledger::Version().data(), static_cast<int>(tokenledger::Commit().size()),
                tokenledger::Commit().data());
    return tokenledger::cli::kOk;
  }
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::fputs(Usage(commands).c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? tokenledger::cli::kUsage : tokenledger::cli::kOk;
  }
  // Two-word commands ("keys list"): the second word is part of the name.
  std::string name = argv[1];
  int first_arg = 2;
  if (argc >= 3 && argv[2][0] != '-') {
    for (const auto& c : commands) {
      if (c.name == name + " " + argv[2]) {
        name = c.name;
        first_arg = 3;
      }
    }
  }
  for (const auto& c : commands) {
    if (c.name != name) continue;
    auto flags =
        tokenledger::cli::ParseFlags(c, std::vector<std::string>(argv + first_arg, argv + argc));
    if (!flags) return tokenledger::cli::kUsage;
    if (flags->Has("help")) {
      std::fputs(tokenledger::cli::CommandHelp(c).c_str(), stdout);
      return tokenledger::cli::kOk;
    }
    const int rc = c.run(*flags);
    if (rc == tokenledger::cli::kInterrupted) {
      tokenledger::cli::EndByInterruptingSignal();  // the command has cleaned up
      return tokenledger::cli::kFinding;            // not reached
    }
    return rc;
  }
  std::fprintf(stderr, "tokenledger: unknown command '%s'\n\n%s", argv[1], Usage(commands).c_str());
  return tokenledger::cli::kUsage;
}

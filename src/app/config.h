// The server's configuration from flags and TOKENLEDGER_* environment variables (a flag wins
// over its variable, a variable over the default). `--help` lists every option with its
// default.
#pragma once

#include <string>
#include <vector>

#include "tokenledger/log.h"
#include "tokenledger/options.h"

namespace tokenledger::app {

struct Config {
  StoreOptions store;
  ServerOptions server;
  std::string signing_key_file;  // empty: <data-dir>/signing.key, created on first start
  LogLevel log_level = LogLevel::kInfo;
  // How long a gateway may cache an introspection answer (0: no-store; at most 1h).
  Micros introspection_cache = 5 * kMicrosPerSecond;
  // Tokens kept verified (http::ApiOptions::verified_tokens). Default: 32768.
  std::size_t verified_tokens = 32768;
  bool rebuild_projections = false;
  // On an empty ledger, create an account and a token and print it once on stdout.
  bool first_token = true;
  bool show_help = false;
  bool show_version = false;
};

// Parses argv (without argv[0]) and the environment. Returns false and sets `error` on an
// unknown flag, a missing value or a malformed value.
bool ParseConfig(const std::vector<std::string>& args, char** environ_vars, Config* config,
                 std::string* error);

std::string HelpText();

// "90s", "15m", "24h", "365d", "500ms", or plain seconds.
bool ParseDuration(const std::string& text, Micros* out);

}  // namespace tokenledger::app

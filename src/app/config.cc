#include "src/app/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>

namespace tokenledger::app {
namespace {

struct Option {
  std::string flag;  // without the leading --
  std::string env;
  std::string value_name;  // empty: a switch
  std::string help;
  std::function<bool(Config&, const std::string&)> apply;
};

// HOST:PORT with an IP address (or localhost) and a port 0-65535; "[::1]:80" for IPv6.
bool ValidListenAddress(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return false;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned char buf[sizeof(in6_addr)];
  return host == "localhost" || ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool ParseSize(const std::string& text, std::size_t* out) {
  if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  *out = std::stoull(text);
  return true;
}

// N bytes, or N with a binary unit: KiB, MiB, GiB.
bool ParseBytes(const std::string& text, std::size_t* out) {
  static const std::pair<std::string_view, std::size_t> kUnits[] = {
      {"KiB", std::size_t{1} << 10}, {"MiB", std::size_t{1} << 20}, {"GiB", std::size_t{1} << 30}};
  for (const auto& [unit, scale] : kUnits) {
    if (text.size() > unit.size() && text.ends_with(unit)) {
      std::size_t n = 0;
      if (!ParseSize(text.substr(0, text.size() - unit.size()), &n) || n > (1u << 20)) return false;
      *out = n * scale;
      return true;
    }
  }
  return ParseSize(text, out);
}

std::vector<Option> Options() {
  auto size = [](std::size_t ServerOptions::*field) {
    return [field](Config& c, const std::string& v) {
      return ParseSize(v, &(c.server.*field)) && c.server.*field > 0;
    };
  };
  auto duration = [](auto getter) {
    return [getter](Config& c, const std::string& v) {
      Micros m;
      if (!ParseDuration(v, &m)) return false;
      getter(c) = m;
      return true;
    };
  };
  return {
      {"listen", "TOKENLEDGER_LISTEN", "HOST:PORT",
       "API address; port 0 picks a free port (default 127.0.0.1:8080)",
       [](Config& c, const std::string& v) {
         c.server.listen = v;
         return ValidListenAddress(v);
       }},
      {"metrics-listen", "TOKENLEDGER_METRICS_LISTEN", "HOST:PORT",
       "serve /metrics on this address instead of the API's (default: the API's)",
       [](Config& c, const std::string& v) {
         c.server.metrics_listen = v;
         return v.empty() || ValidListenAddress(v);
       }},
      {"data-dir", "TOKENLEDGER_DATA_DIR", "DIR",
       "ledger directory, created if missing (default ./data)",
       [](Config& c, const std::string& v) {
         c.store.data_dir = v;
         return !v.empty();
       }},
      {"threads", "TOKENLEDGER_THREADS", "N",
       "I/O threads; 0 = one per core less one, at least one (default 0)",
       [](Config& c, const std::string& v) {
         std::size_t n;
         if (!ParseSize(v, &n) || n > 256) return false;
         c.server.threads = static_cast<unsigned>(n);
         return true;
       }},
      {"signing-key-file", "TOKENLEDGER_SIGNING_KEY_FILE", "PATH",
       "the HS256 key ring: one key of 64 hex digits per line, oldest first, mode 0600 "
       "(default <data-dir>/signing.key, created on first start; `tokenledger keys`)",
       [](Config& c, const std::string& v) {
         c.signing_key_file = v;
         return !v.empty();
       }},
      {"max-header-bytes", "TOKENLEDGER_MAX_HEADER_BYTES", "N",
       "request line + headers limit (default 8192)", size(&ServerOptions::max_header_bytes)},
      {"max-body-bytes", "TOKENLEDGER_MAX_BODY_BYTES", "N",
       "request body limit, 413 beyond (default 65536)", size(&ServerOptions::max_body_bytes)},
      {"max-url-bytes", "TOKENLEDGER_MAX_URL_BYTES", "N",
       "request target limit, 414 beyond (default 4096)", size(&ServerOptions::max_url_bytes)},
      {"max-connections", "TOKENLEDGER_MAX_CONNECTIONS", "N",
       "open connections; more get 503 (default 1024)", size(&ServerOptions::max_connections)},
      {"read-timeout", "TOKENLEDGER_READ_TIMEOUT", "DURATION",
       "time allowed for each read (default 30s)",
       duration([](Config& c) -> Micros& { return c.server.read_timeout; })},
      {"shutdown-grace", "TOKENLEDGER_SHUTDOWN_GRACE", "DURATION",
       "on SIGTERM, time in-flight requests get before connections are cut (default 10s)",
       duration([](Config& c) -> Micros& { return c.server.shutdown_grace; })},
      {"queue-depth", "TOKENLEDGER_QUEUE_DEPTH", "N",
       "writes waiting for the committer; more get 503 (default 16384)",
       [](Config& c, const std::string& v) {
         return ParseSize(v, &c.store.max_queue_depth) && c.store.max_queue_depth > 0;
       }},
      {"batch-size", "TOKENLEDGER_BATCH_SIZE", "N",
       "writes per commit batch, one fsync each (default 512)",
       [](Config& c, const std::string& v) {
         return ParseSize(v, &c.store.max_batch_size) && c.store.max_batch_size > 0;
       }},
      {"block-cache", "TOKENLEDGER_BLOCK_CACHE", "BYTES",
       "RocksDB block cache: data, index and filter blocks (default 64MiB)",
       [](Config& c, const std::string& v) {
         return ParseBytes(v, &c.store.block_cache_bytes) &&
                c.store.block_cache_bytes >= (1u << 20);
       }},
      {"row-cache", "TOKENLEDGER_ROW_CACHE", "N",
       "token rows kept decoded for authentication and show, ~300 B each; 0 = off "
       "(default 65536)",
       [](Config& c, const std::string& v) { return ParseSize(v, &c.store.row_cache_entries); }},
      {"verified-token-cache", "TOKENLEDGER_VERIFIED_TOKEN_CACHE", "N",
       "tokens kept verified, so that their next request skips the signature check, ~450 B "
       "each; 0 = off (default 32768)",
       [](Config& c, const std::string& v) { return ParseSize(v, &c.verified_tokens); }},
      {"memtable-budget", "TOKENLEDGER_MEMTABLE_BUDGET", "BYTES",
       "RocksDB memtables of all families together (default 64MiB)",
       [](Config& c, const std::string& v) {
         return ParseBytes(v, &c.store.memtable_bytes) && c.store.memtable_bytes >= (4u << 20);
       }},
      {"max-wal", "TOKENLEDGER_MAX_WAL", "BYTES",
       "write-ahead log kept before flushing; bounds start-up replay (default 64MiB)",
       [](Config& c, const std::string& v) {
         return ParseBytes(v, &c.store.max_wal_bytes) && c.store.max_wal_bytes >= (1u << 20);
       }},
      {"idempotency-ttl", "TOKENLEDGER_IDEMPOTENCY_TTL", "DURATION",
       "how long idempotency keys are kept (default 24h)",
       duration([](Config& c) -> Micros& { return c.store.idempotency_ttl; })},
      {"last-used-granularity", "TOKENLEDGER_LAST_USED_GRANULARITY", "DURATION",
       "last_used_at moves at most once per this interval per token (default 60s)",
       duration([](Config& c) -> Micros& { return c.store.policy.last_used_granularity; })},
      {"usage-audit-interval", "TOKENLEDGER_USAGE_AUDIT_INTERVAL", "DURATION",
       "a use is appended to the audited history (TokenUsed) at most once per token per this "
       "interval; 0 = never (default 24h)",
       duration([](Config& c) -> Micros& { return c.store.policy.usage_audit_interval; })},
      {"default-token-lifetime", "TOKENLEDGER_DEFAULT_TOKEN_LIFETIME", "DURATION",
       "expiry of tokens created without expires_at (default 365d)",
       duration([](Config& c) -> Micros& { return c.store.policy.default_lifetime; })},
      {"max-token-lifetime", "TOKENLEDGER_MAX_TOKEN_LIFETIME", "DURATION",
       "longest allowed expiry; 0 = off (default 0)",
       duration([](Config& c) -> Micros& { return c.store.policy.max_lifetime; })},
      {"introspection-cache", "TOKENLEDGER_INTROSPECTION_CACHE", "DURATION",
       "how long a gateway may cache an introspection answer (Cache-Control max-age), so how "
       "long a suspended token may still pass a caching gateway; 0 = no-store, at most 1h "
       "(default 5s)",
       [](Config& c, const std::string& v) {
         Micros m;
         if (!ParseDuration(v, &m) || m < 0 || m > kMicrosPerHour) return false;
         c.introspection_cache = m;
         return true;
       }},
      {"cluster", "TOKENLEDGER_CLUSTER", "URLS",
       "cluster mode: NATS servers with JetStream, comma-separated nats://HOST:PORT; the "
       "ledger's log of record is then a replicated JetStream stream (default: off, the "
       "local RocksDB)",
       [](Config& c, const std::string& v) {
         c.store.cluster.urls = v;
         if (v.empty()) return true;
         for (std::size_t b = 0; b <= v.size();) {
           std::size_t e = v.find(',', b);
           if (e == std::string::npos) e = v.size();
           const std::string url = v.substr(b, e - b);
           if (url.rfind("nats://", 0) != 0 || url.size() <= 7) return false;
           b = e + 1;
         }
         return true;
       }},
      {"cluster-stream", "TOKENLEDGER_CLUSTER_STREAM", "NAME",
       "cluster mode: the JetStream stream, created if missing; letters, digits, - and _ "
       "(default TOKENLEDGER)",
       [](Config& c, const std::string& v) {
         c.store.cluster.stream = v;
         return !v.empty() && v.size() <= 64 &&
                std::all_of(v.begin(), v.end(), [](unsigned char ch) {
                  return std::isalnum(ch) || ch == '-' || ch == '_';
                });
       }},
      {"cluster-replicas", "TOKENLEDGER_CLUSTER_REPLICAS", "N",
       "cluster mode: the stream's replicas when this node creates it, 1 to 5 (default 3)",
       [](Config& c, const std::string& v) {
         std::size_t n;
         if (!ParseSize(v, &n) || n < 1 || n > 5) return false;
         c.store.cluster.replicas = static_cast<int>(n);
         return true;
       }},
      {"log-level", "TOKENLEDGER_LOG_LEVEL", "LEVEL", "debug, info, warn or error (default info)",
       [](Config& c, const std::string& v) { return ParseLogLevel(v, &c.log_level); }},
      {"no-sync", "TOKENLEDGER_NO_SYNC", "",
       "BENCHMARKS ONLY: do not fsync commits (acknowledged writes can be lost)",
       [](Config& c, const std::string&) {
         c.store.sync = false;
         return true;
       }},
      {"rebuild-projections", "TOKENLEDGER_REBUILD_PROJECTIONS", "",
       "rebuild projections at start if their stored version differs from this release's",
       [](Config& c, const std::string&) {
         c.rebuild_projections = true;
         return true;
       }},
      {"no-first-token", "TOKENLEDGER_NO_FIRST_TOKEN", "",
       "on an empty ledger, do not create a first account and token (printed once on stdout); "
       "mint one with `tokenledger mint` instead (the packaged service sets this: its stdout "
       "is the journal)",
       [](Config& c, const std::string&) {
         c.first_token = false;
         return true;
       }},
      {"help", "", "", "show this help",
       [](Config& c, const std::string&) {
         c.show_help = true;
         return true;
       }},
      {"version", "", "", "show the version",
       [](Config& c, const std::string&) {
         c.show_version = true;
         return true;
       }},
  };
}

}  // namespace

bool ParseDuration(const std::string& text, Micros* out) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 12) return false;
  const Micros n = std::stoll(text.substr(0, digits));
  const std::string unit = text.substr(digits);
  static const std::map<std::string, Micros> kUnits = {
      {"", kMicrosPerSecond},  {"ms", 1000},          {"s", kMicrosPerSecond},
      {"m", kMicrosPerMinute}, {"h", kMicrosPerHour}, {"d", kMicrosPerDay}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return false;
  *out = n * it->second;
  return true;
}

bool ParseConfig(const std::vector<std::string>& args, char** environ_vars, Config* config,
                 std::string* error) {
  const auto options = Options();
  std::map<std::string, std::string> env;
  for (char** e = environ_vars; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos && kv.rfind("TOKENLEDGER_", 0) == 0)
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& o : options) {
    auto it = o.env.empty() ? env.end() : env.find(o.env);
    if (it == env.end()) continue;
    if (o.value_name.empty() && (it->second.empty() || it->second == "0" || it->second == "false"))
      continue;
    if (!o.apply(*config, it->second)) {
      *error = "invalid value '" + it->second + "' for " + o.env;
      return false;
    }
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + arg + "'";
      return false;
    }
    arg = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const Option* match = nullptr;
    for (const auto& o : options)
      if (o.flag == arg) match = &o;
    if (!match) {
      *error = "unknown flag '--" + arg + "' (see --help)";
      return false;
    }
    std::string value;
    if (!match->value_name.empty()) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        *error = "flag '--" + arg + "' needs a value (" + match->value_name + ")";
        return false;
      }
    } else if (inline_value) {
      *error = "flag '--" + arg + "' takes no value";
      return false;
    }
    if (!match->apply(*config, value)) {
      *error = "invalid value '" + value + "' for --" + arg;
      return false;
    }
  }
  return true;
}

std::string HelpText() {
  std::string out =
      "usage: tokenledgerd [OPTIONS]\n\n"
      "The tokenledger API server. On an empty data directory it creates an account and an\n"
      "account-scoped API token and prints the token once, with a curl command to try it.\n\n"
      "Options (each also read from the environment variable shown):\n";
  for (const auto& o : Options()) {
    std::string left = "  --" + o.flag + (o.value_name.empty() ? "" : " " + o.value_name);
    if (left.size() < 34) left.resize(34, ' ');
    out += left + " " + o.help + (o.env.empty() ? "" : "  [" + o.env + "]") + "\n";
  }
  out += "\nDurations: 500ms, 90s, 15m, 24h, 365d (a plain number is seconds).\n";
  return out;
}

}  // namespace tokenledger::app

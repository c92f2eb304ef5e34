// The subcommands of `tokenledger`.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include <rocksdb/db.h>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/auth/signing_key.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/export_format.h"

namespace tokenledger::cli {
namespace json = boost::json;
namespace {

const FlagSpec kDataDir{"data-dir", "DIR", "the ledger's data directory", "./data"};

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// ---------------------------------------------------------------------------------------
// replay

struct ReplayFilter {
  std::optional<Id> token, account;
  std::optional<std::string> type;
  std::optional<Micros> since, until;
  std::uint64_t from_seq = 1;
  std::optional<std::uint64_t> to_seq;
};

std::string Pad(std::string s, std::size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s;
}

int Replay(const Flags& flags) {
  ReplayFilter f;
  if (flags.Has("token") && !(f.token = IdFlag(flags, "token"))) return kUsage;
  if (flags.Has("account") && !(f.account = IdFlag(flags, "account"))) return kUsage;
  if (flags.Has("type")) {
    f.type = flags.Get("type");
    static const char* kTypes[] = {"TokenCreated", "TokenSuspended", "TokenActivated",
                                   "TokenRevoked", "TokenDeleted",   "TokenUsed"};
    if (std::find(std::begin(kTypes), std::end(kTypes), *f.type) == std::end(kTypes)) {
      std::fprintf(stderr,
                   "tokenledger replay: --type must be one of TokenCreated, TokenSuspended, "
                   "TokenActivated, TokenRevoked, TokenDeleted, TokenUsed\n");
      return kUsage;
    }
  }
  if (flags.Has("since") && !(f.since = TimeFlag(flags, "since"))) return kUsage;
  if (flags.Has("until") && !(f.until = TimeFlag(flags, "until"))) return kUsage;
  if (flags.Has("from-seq")) {
    auto n = NumberFlag(flags, "from-seq");
    if (!n) return kUsage;
    f.from_seq = std::max<std::uint64_t>(*n, 1);
  }
  if (flags.Has("to-seq") && !(f.to_seq = NumberFlag(flags, "to-seq"))) return kUsage;
  std::string format = flags.Get("format", ::isatty(STDOUT_FILENO) ? "table" : "json");
  if (format != "json" && format != "table") {
    std::fprintf(stderr, "tokenledger replay: --format must be json or table\n");
    return kUsage;
  }
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  store::LedgerStore& ledger = *opened.store;

  std::unordered_map<Id, Id, IdHash> accounts;  // stream -> account, learned as we go
  auto account_of = [&](const events::EventEnvelope& e) -> std::optional<Id> {
    if (const auto* c = std::get_if<events::TokenCreated>(&e.data))
      return accounts[e.stream] = c->account_id;
    if (auto it = accounts.find(e.stream); it != accounts.end()) return it->second;
    auto a = ledger.StreamAccount(e.stream);
    if (!a || !*a) return std::nullopt;
    return accounts[e.stream] = **a;
  };
  if (format == "table") {
    std::printf("%s %s %s %s %s %s %s\n", Pad("SEQ", 8).c_str(), Pad("AT", 27).c_str(),
                Pad("TOKEN", 32).c_str(), Pad("TYPE", 14).c_str(), Pad("VER", 4).c_str(),
                Pad("ACTOR", 32).c_str(), "REQUEST");
  }
  std::uint64_t next = f.from_seq;
  bool done = false;
  auto print = [&](const events::EventEnvelope& e) {
    next = e.seq + 1;
    if (f.to_seq && e.seq > *f.to_seq) {
      done = true;
      return false;
    }
    // The account is learned from every TokenCreated, shown or not.
    const auto account = f.account ? account_of(e) : std::nullopt;
    if (f.token && e.stream != *f.token) return true;
    if (f.account && account != f.account) return true;
    if (f.type && events::TypeName(e.data) != *f.type) return true;
    if (f.since && e.at < *f.since) return true;
    if (f.until && e.at > *f.until) return true;
    if (format == "json") {
      json::object o;
      o["seq"] = e.seq;
      o["token_id"] = e.stream.ToString();
      for (auto& [k, v] : events::EventToApiJson(e)) {
        if (k != "seq") o[k] = v;
      }
      std::string line = json::serialize(o);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
    } else {
      std::printf("%s %s %s %s %s %s %s\n", Pad(std::to_string(e.seq), 8).c_str(),
                  Pad(FormatRfc3339(e.at), 27).c_str(), e.stream.ToString().c_str(),
                  Pad(std::string(events::TypeName(e.data)), 14).c_str(),
                  Pad(std::to_string(e.stream_version), 4).c_str(),
                  Pad(e.actor.token_id ? e.actor.token_id->ToString() : "-", 32).c_str(),
                  e.request_id.c_str());
    }
    return true;
  };
  if (Status s = ledger.ScanEvents(next, print); !s) {
    std::fprintf(stderr, "tokenledger replay: %s\n", s.error().message.c_str());
    return kFinding;
  }
  std::fflush(stdout);
  if (!flags.Has("follow")) return kOk;
  ::signal(SIGINT, OnSignal);
  ::signal(SIGTERM, OnSignal);
  while (!done && !g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (Status s = ledger.CatchUp(); !s) {
      std::fprintf(stderr, "tokenledger replay: %s\n", s.error().message.c_str());
      return kFinding;
    }
    if (Status s = ledger.ScanEvents(next, print); !s) {
      std::fprintf(stderr, "tokenledger replay: %s\n", s.error().message.c_str());
      return kFinding;
    }
    std::fflush(stdout);
  }
  return kOk;
}

// ---------------------------------------------------------------------------------------
// rebuild

int Rebuild(const Flags& flags) {
  auto chunk = NumberFlag(flags, "chunk-events");
  if (!chunk || *chunk == 0) return kUsage;
  Opened opened = OpenExclusive(flags.Get("data-dir"), "rebuild");
  if (!opened.store) return opened.exit_code;
  const bool tty = ::isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  auto last_print = start;
  const std::uint64_t total = opened.store->LastSeq();
  auto progress = [&](const store::RebuildProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (!tty || now - last_print < std::chrono::milliseconds(200)) return;
    last_print = now;
    const double secs = std::chrono::duration<double>(now - start).count();
    const double rate = secs > 0 ? static_cast<double>(p.events_done) / secs : 0;
    const double eta =
        rate > 0 ? static_cast<double>(total - std::min(total, p.events_done)) / rate : 0;
    std::fprintf(stderr, "\rrebuilding: %llu / %llu events, %.0f events/s, ETA %.0f s   ",
                 static_cast<unsigned long long>(p.events_done),
                 static_cast<unsigned long long>(total), rate, eta);
  };
  Status s = opened.store->RebuildProjections(progress, *chunk);
  if (tty) std::fprintf(stderr, "\n");
  if (!s) {
    std::fprintf(stderr, "tokenledger rebuild: %s\n", s.error().message.c_str());
    return kFinding;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rebuilt projections %s v%u and %s v%u from %llu events in %.2f s\n",
              std::string(projections::kTokenDetails.name).c_str(),
              projections::kTokenDetails.version,
              std::string(projections::kTokenListIndex.name).c_str(),
              projections::kTokenListIndex.version, static_cast<unsigned long long>(total), secs);
  return kOk;
}

// ---------------------------------------------------------------------------------------
// verify

int Verify(const Flags& flags) {
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  auto report = opened.store->Verify();
  if (!report) {
    std::fprintf(stderr, "tokenledger verify: %s\n", report.error().message.c_str());
    return kFinding;
  }
  for (const auto& f : report->findings) {
    std::printf("FINDING %s", f.kind.c_str());
    if (f.seq) std::printf(" seq=%llu", static_cast<unsigned long long>(f.seq));
    if (f.token) std::printf(" token=%s", f.token->ToString().c_str());
    std::printf(": %s\n  expected: %s\n  found:    %s\n", f.message.c_str(), f.expected.c_str(),
                f.found.c_str());
  }
  std::printf("verified %llu events and %llu tokens: %zu finding%s\n",
              static_cast<unsigned long long>(report->events_checked),
              static_cast<unsigned long long>(report->tokens_checked), report->findings.size(),
              report->findings.size() == 1 ? "" : "s");
  return report->findings.empty() ? kOk : kFinding;
}

// ---------------------------------------------------------------------------------------
// mint

int Mint(const Flags& flags) {
  if (!flags.Has("account")) {
    std::fprintf(stderr, "tokenledger mint: --account is required\n");
    return kUsage;
  }
  core::CreateToken c;
  auto account = IdFlag(flags, "account");
  if (!account) return kUsage;
  c.account_id = *account;
  auto scope = events::ParseScope(flags.Get("scope"));
  if (!scope) {
    std::fprintf(stderr, "tokenledger mint: --scope must be account or environment\n");
    return kUsage;
  }
  c.scope = *scope;
  if (flags.Has("environment") && !(c.environment_id = IdFlag(flags, "environment"))) return kUsage;
  if (c.scope == events::TokenScope::kEnvironment && !c.environment_id) {
    std::fprintf(stderr, "tokenledger mint: --scope environment needs --environment\n");
    return kUsage;
  }
  if (c.scope == events::TokenScope::kAccount && c.environment_id) {
    std::fprintf(stderr, "tokenledger mint: --environment only goes with --scope environment\n");
    return kUsage;
  }
  if (flags.Has("expires-at") && !(c.expires_at = TimeFlag(flags, "expires-at"))) return kUsage;
  if (flags.Has("admin-user") && !(c.created_by_admin_user_id = IdFlag(flags, "admin-user")))
    return kUsage;

  const std::string data_dir = flags.Get("data-dir");
  const bool default_key = !flags.Has("signing-key-file");
  Opened opened = OpenExclusive(data_dir, "mint");
  if (!opened.store) return opened.exit_code;
  auto key = auth::LoadOrCreateSigningKey(
      default_key ? data_dir + "/signing.key" : flags.Get("signing-key-file"), default_key);
  if (!key) {
    std::fprintf(stderr, "tokenledger mint: %s\n", key.error().message.c_str());
    return kFinding;
  }
  store::CommandRequest req;
  req.command = c;
  req.request_id = "tokenledger-mint";
  req.actor.admin_user_id = c.created_by_admin_user_id;
  store::CommandResult r = opened.store->Submit(std::move(req)).get();
  if (r.outcome != store::Outcome::kApplied) {
    std::fprintf(stderr, "tokenledger mint: %s\n", r.rejection.message.c_str());
    return kFinding;
  }
  const core::TokenState& s = r.after->state;
  std::fprintf(
      stderr,
      "minted token %s for account %s (%s scope), expires %s; the token is shown only now:\n",
      s.id.ToString().c_str(), s.account_id.ToString().c_str(),
      std::string(events::ScopeName(s.scope)).c_str(), FormatRfc3339(s.expires_at).c_str());
  std::printf("%s\n", auth::JwtSigner(*key)
                          .Sign(auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id,
                                                 s.environment_id))
                          .c_str());
  return kOk;
}

// ---------------------------------------------------------------------------------------
// export / import: the line format is in export_format.h.

int Export(const Flags& flags) {
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  const std::string output = flags.Get("output", "-");
  const std::string temp = output == "-" ? "" : output + ".partial";
  std::FILE* out = output == "-" ? stdout : std::fopen(temp.c_str(), "wb");
  if (!out) {
    std::fprintf(stderr, "tokenledger export: cannot write '%s'\n", temp.c_str());
    return kFinding;
  }
  std::uint64_t count = 0;
  Status s = opened.store->ScanStoredEvents(1, [&](std::uint64_t, std::string_view record) {
    const std::string line = FormatExportLine(record);
    std::fwrite(line.data(), 1, line.size(), out);
    ++count;
    return true;
  });
  const bool written = std::fflush(out) == 0 && (out == stdout || ::fsync(::fileno(out)) == 0);
  if (out != stdout) std::fclose(out);
  if (!s || !written) {
    std::fprintf(stderr, "tokenledger export: %s\n",
                 s ? "write failed" : s.error().message.c_str());
    if (!temp.empty()) std::filesystem::remove(temp);
    return kFinding;
  }
  if (!temp.empty()) std::filesystem::rename(temp, output);  // a complete file, or none
  std::fprintf(stderr, "exported %llu events\n", static_cast<unsigned long long>(count));
  return kOk;
}

int Import(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  std::error_code ec;
  const bool existed = std::filesystem::exists(data_dir, ec);
  if (existed && !std::filesystem::is_empty(data_dir, ec)) {
    std::fprintf(stderr,
                 "tokenledger import: '%s' is not empty; import needs an empty data directory\n",
                 data_dir.c_str());
    return kUsage;
  }
  const std::string input = flags.Get("input", "-");
  std::ifstream file;
  if (input != "-") {
    file.open(input, std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "tokenledger import: cannot read '%s'\n", input.c_str());
      return kFinding;
    }
  }
  std::istream& in = input == "-" ? std::cin : file;
  int rc = kOk;
  std::string error;
  std::uint64_t count = 0;
  {
    Opened opened = OpenExclusive(data_dir, "import");
    if (!opened.store) return opened.exit_code;
    std::vector<std::string> batch;
    std::string line;
    std::uint64_t line_no = 0;
    auto flush = [&]() {
      if (Status s = opened.store->AppendVerbatim(batch); !s) {
        error = s.error().message;
        return false;
      }
      count += batch.size();
      batch.clear();
      return true;
    };
    while (error.empty() && std::getline(in, line)) {
      ++line_no;
      if (line.empty()) continue;
      auto record = ParseExportLine(line);
      if (!record) {
        error = "line " + std::to_string(line_no) + " is not an exported event";
        break;
      }
      batch.push_back(std::move(*record));
      if (batch.size() == 1024) flush();
    }
    if (error.empty() && !batch.empty()) flush();
    if (error.empty()) {
      if (Status s = opened.store->RebuildProjections(); !s) error = s.error().message;
    }
    if (error.empty()) {
      auto report = opened.store->Verify();
      if (!report) {
        error = report.error().message;
      } else if (!report->findings.empty()) {
        error = "verify after import: " + report->findings[0].message;
      }
    }
  }
  if (!error.empty()) {
    // Nothing half-imported stays behind: the directory was empty before.
    std::filesystem::remove_all(data_dir, ec);
    if (existed) std::filesystem::create_directories(data_dir, ec);
    std::fprintf(stderr, "tokenledger import: %s; nothing was imported\n", error.c_str());
    rc = kFinding;
  } else {
    std::fprintf(stderr, "imported %llu events; chain verified, projections rebuilt\n",
                 static_cast<unsigned long long>(count));
  }
  return rc;
}

// ---------------------------------------------------------------------------------------
// stats

// RocksDB's estimate of the bytes compaction still has to rewrite ("compaction debt"), summed
// over the column families, read through a secondary instance of its own (the store does not
// expose RocksDB properties); nullopt if it cannot be read.
std::optional<std::uint64_t> PendingCompactionBytes(const std::string& data_dir) {
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), data_dir, &names).ok())
    return std::nullopt;
  std::string secondary =
      (std::filesystem::temp_directory_path() / "tokenledger-stats-XXXXXX").string();
  if (!::mkdtemp(secondary.data())) return std::nullopt;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
  rocksdb::Options options;
  options.max_open_files = -1;  // required for secondaries
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  std::optional<std::uint64_t> total;
  if (rocksdb::DB::OpenAsSecondary(options, data_dir, secondary, descriptors, &handles, &db).ok()) {
    total = 0;
    for (auto* h : handles) {
      std::uint64_t v = 0;
      if (db->GetIntProperty(h, rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &v))
        *total += v;
      db->DestroyColumnFamilyHandle(h);
    }
    delete db;
  }
  std::error_code ec;
  std::filesystem::remove_all(secondary, ec);
  return total;
}

int Stats(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  Opened opened = OpenReadOnly(data_dir);
  if (!opened.store) return opened.exit_code;
  std::map<std::string, std::uint64_t> by_type, by_status, by_scope;
  std::uint64_t events = 0, tokens = 0;
  Status s = opened.store->ScanEvents(1, [&](const events::EventEnvelope& e) {
    ++by_type[std::string(events::TypeName(e.data))];
    ++events;
    return true;
  });
  if (s) {
    s = opened.store->ScanTokens([&](const projections::TokenRow& row) {
      ++by_status[std::string(core::StatusName(row.state.status))];
      ++by_scope[std::string(events::ScopeName(row.state.scope))];
      ++tokens;
      return true;
    });
  }
  if (!s) {
    std::fprintf(stderr, "tokenledger stats: %s\n", s.error().message.c_str());
    return kFinding;
  }
  std::uintmax_t bytes = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir, ec)) {
    if (entry.is_regular_file(ec)) bytes += entry.file_size(ec);
  }
  const std::optional<std::uint64_t> pending = PendingCompactionBytes(data_dir);
  if (flags.Get("format", "table") == "json") {
    json::object o{{"last_seq", opened.store->LastSeq()},
                   {"events", events},
                   {"tokens", tokens},
                   {"disk_bytes", static_cast<std::uint64_t>(bytes)}};
    if (pending) o["pending_compaction_bytes"] = *pending;
    json::object t, st, sc;
    for (auto& [k, v] : by_type) t[k] = v;
    for (auto& [k, v] : by_status) st[k] = v;
    for (auto& [k, v] : by_scope) sc[k] = v;
    o["events_by_type"] = t;
    o["tokens_by_status"] = st;
    o["tokens_by_scope"] = sc;
    std::printf("%s\n", json::serialize(o).c_str());
    return kOk;
  }
  std::printf("last seq        %llu\n", static_cast<unsigned long long>(opened.store->LastSeq()));
  std::printf("events          %llu\n", static_cast<unsigned long long>(events));
  for (auto& [k, v] : by_type)
    std::printf("  %-14s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  std::printf("tokens          %llu (deleted tokens not counted)\n",
              static_cast<unsigned long long>(tokens));
  for (auto& [k, v] : by_status)
    std::printf("  %-14s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  for (auto& [k, v] : by_scope)
    std::printf("  %-14s %llu\n", (k + " scope").c_str(), static_cast<unsigned long long>(v));
  std::printf("on disk         %.1f MiB (%ju bytes)\n", static_cast<double>(bytes) / (1 << 20),
              bytes);
  if (pending)
    std::printf("compaction debt %llu bytes (RocksDB's estimate of pending compaction)\n",
                static_cast<unsigned long long>(*pending));
  return kOk;
}

}  // namespace

std::vector<Command> AllCommands() {
  return {
      {"replay",
       "print the audit history",
       "Prints the ledger's events, oldest first: JSON Lines (the default when stdout is not a\n"
       "terminal) or an aligned table. Reads beside a running server without blocking it.",
       {kDataDir,
        {"token", "ID", "only this token's events", ""},
        {"account", "ID", "only this account's tokens' events", ""},
        {"type", "TYPE", "only this event type (TokenCreated, TokenUsed, ...)", ""},
        {"since", "TIME", "only events at or after this RFC 3339 time", ""},
        {"until", "TIME", "only events at or before this RFC 3339 time", ""},
        {"from-seq", "N", "start at this sequence number", ""},
        {"to-seq", "N", "stop after this sequence number", ""},
        {"follow", "", "keep printing new events as they are committed (until SIGINT)", ""},
        {"format", "json|table", "output format (default: table on a terminal, else json)", ""}},
       Replay},
      {"rebuild",
       "rebuild the projections from the ledger",
       "Rebuilds the token-details and list-index projections from the ledger alone, beside the\n"
       "current ones, then switches to them in one atomic step. A killed rebuild resumes when run\n"
       "again; the old projections stay in use until the switch. Needs exclusive access: stop\n"
       "the server first (or start it with --rebuild-projections).",
       {kDataDir, {"chunk-events", "N", "events folded per checkpointed batch", "4096"}},
       Rebuild},
      {"verify",
       "check the hash chain, streams, projections and idempotency records",
       "Recomputes the hash chain, checks stream versions have no gaps, compares every projection\n"
       "row and list-index entry with a fresh fold of the ledger, and checks that idempotency\n"
       "records point at their events. Prints each finding; exits 1 if there is any. Works beside\n"
       "a running server.",
       {kDataDir},
       Verify},
      {"mint",
       "create a token offline and print its JWT once",
       "Appends a real TokenCreated event (audited like any other) for any account, and prints\n"
       "the token's JWT once on stdout. Needs exclusive access: stop the server first.",
       {kDataDir,
        {"account", "ID", "the account (required)", ""},
        {"scope", "account|environment", "token scope", "account"},
        {"environment", "ID", "the environment (environment scope)", ""},
        {"expires-at", "TIME", "expiry, RFC 3339 (default: now + 365 days)", ""},
        {"admin-user", "ID", "admin user recorded as created_by_admin_user_id and as the actor",
         ""},
        {"signing-key-file", "PATH",
         "signing key (default <data-dir>/signing.key, created if missing)", ""}},
       Mint},
      {"export",
       "write every event as JSON Lines",
       "Writes every event, oldest first, one JSON object per line: {\"hash\":..,\"event\":..} "
       "with\n"
       "the stored event exactly as stored. A backup and a migration format; works beside a\n"
       "running server. Idempotency records are not exported (they expire within a day).",
       {kDataDir, {"output", "FILE", "output file, written atomically (default stdout)", ""}},
       Export},
      {"import",
       "load an export into an empty data directory",
       "Reads an export, checks every hash, link, sequence number and stream version, writes the\n"
       "events, rebuilds the projections and verifies. On any failure nothing stays behind.",
       {kDataDir, {"input", "FILE", "input file (default stdin)", ""}},
       Import},
      {"stats",
       "events by type, tokens by status and scope, size on disk",
       "Counts events by type and tokens by status and scope, and shows the last sequence number\n"
       "and the size on disk. Works beside a running server.",
       {kDataDir, {"format", "table|json", "output format", "table"}},
       Stats},
  };
}

}  // namespace tokenledger::cli

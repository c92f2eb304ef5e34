// The subcommands of `tokenledger`.
#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/app/signing_keys.h"
#include "src/auth/signing_key.h"
#include "src/core/decider.h"
#include "src/store/keys.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/cluster_publish.h"
#include "tools/tokenledger/export_format.h"
#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/keys.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
namespace json = boost::json;
namespace {

const FlagSpec kDataDir{"data-dir", "DIR", "the ledger's data directory", "./data"};
const FlagSpec kQuiet{"quiet", "", "no progress bar (it is drawn only when stderr is a terminal)",
                      ""};
const FlagSpec kSigningKeyFile{"signing-key-file", "PATH",
                               "the signing key file (default <data-dir>/signing.key)", ""};
const FlagSpec kTempDir{"temp-dir", "DIR",
                        "where the temporary sort goes (default: $TMPDIR or /tmp); needs about "
                        "the ledger's size free",
                        ""};

// With TOKENLEDGER_PHASE_TIMES set in the environment, prints to stderr how long each phase of
// a long store operation took (the phase names of RebuildProgress): for profiling, not a
// format anything parses.
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

// fsync()s directory `dir`, so the entries created, renamed or removed in it survive a crash:
// 0, or the errno of the failure.
int SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

// The progress callback of a long store operation (rebuild, verify, import's rebuild): stops it
// on a signal (interrupt.h), times its phases, draws `bar`.
std::function<void(const store::RebuildProgress&)> StepsOf(Progress& bar) {
  return [&bar](const store::RebuildProgress& p) {
    ThrowIfStopped();
    TimePhase(p.phase);
    bar.SetUnit(std::string(p.unit));
    bar.Update(p.events_done, p.phase, p.events_total);
  };
}

// ---------------------------------------------------------------------------------------
// replay

struct ReplayFilter {
  std::optional<Id> token, account;
  std::optional<std::string> type;
  std::optional<Micros> since, until;
  std::uint64_t from_seq = 1;
  std::optional<std::uint64_t> to_seq;
};

// The replay JSON line of a stored record, from its bytes: the canonical body with "stream"
// shown as "token_id" and "prev_hash" replaced by the event's own "hash" (the order and
// encoding of every other field are the ones EventToApiJson gives). nullopt when the body is
// not in the canonical shape or its data is at an older schema version (then it is decoded).
std::optional<std::string> ApiLineFromStored(std::string_view record) {
  if (record.size() < sizeof(events::Hash)) return std::nullopt;
  const std::string_view body = events::StoredBody(record);
  constexpr std::string_view kSeq = "{\"seq\":", kStream = ",\"stream\":\"", kType = ",\"type\":\"",
                             kSchema = "\",\"schema_version\":", kPrev = ",\"prev_hash\":\"";
  if (!body.starts_with(kSeq)) return std::nullopt;
  std::size_t p = kSeq.size();
  while (p < body.size() && body[p] >= '0' && body[p] <= '9') ++p;
  if (body.substr(p, kStream.size()) != kStream) return std::nullopt;
  const std::size_t type_at = body.find(kType, p);
  if (type_at == std::string_view::npos) return std::nullopt;
  const std::size_t type_end = body.find('"', type_at + kType.size());
  if (type_end == std::string_view::npos || body.substr(type_end, kSchema.size()) != kSchema)
    return std::nullopt;
  const std::string_view type =
      body.substr(type_at + kType.size(), type_end - type_at - kType.size());
  std::size_t v = type_end + kSchema.size(), v_end = v;
  while (v_end < body.size() && body[v_end] >= '0' && body[v_end] <= '9') ++v_end;
  if (v_end == v || v_end - v > 9 ||
      std::stoul(std::string(body.substr(v, v_end - v))) != events::CurrentSchemaVersion(type))
    return std::nullopt;
  constexpr std::size_t kTail = kPrev.size() + 64 + 2;
  if (body.size() < p + kTail || body.substr(body.size() - kTail, kPrev.size()) != kPrev ||
      !body.ends_with("\"}"))
    return std::nullopt;
  events::Hash hash{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(record.data()), hash.size(), hash.begin());
  std::string line;
  line.reserve(body.size() + 16);
  line.append(body.substr(0, p));
  line.append(",\"token_id\":\"");
  line.append(body.substr(p + kStream.size(), body.size() - kTail - p - kStream.size()));
  line.append(",\"hash\":\"");
  line.append(events::HashToHex(hash));
  line.append("\"}\n");
  return line;
}

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
    static const char* kTypes[] = {"TokenCreated",      "TokenSuspended",   "TokenActivated",
                                   "TokenRevoked",      "TokenDeleted",     "TokenUsed",
                                   "SigningKeyRotated", "SigningKeyRetired"};
    if (std::find(std::begin(kTypes), std::end(kTypes), *f.type) == std::end(kTypes)) {
      std::fprintf(stderr,
                   "tokenledger replay: --type must be one of TokenCreated, TokenSuspended, "
                   "TokenActivated, TokenRevoked, TokenDeleted, TokenUsed, SigningKeyRotated, "
                   "SigningKeyRetired\n");
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
  Progress progress("replay", ledger.LastSeq(), flags.Has("quiet"));
  auto print = [&](const events::EventEnvelope& e) {
    next = e.seq + 1;
    progress.Update(e.seq);
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
  // Without filters, JSON lines are the stored bytes with two fields renamed: no decoding.
  const bool copy_bytes =
      format == "json" && !f.token && !f.account && !f.type && !f.since && !f.until;
  auto print_stored = [&](std::uint64_t seq, std::string_view record) {
    if (f.to_seq && seq > *f.to_seq) {
      done = true;
      return false;
    }
    next = seq + 1;
    progress.Update(seq);
    if (auto line = ApiLineFromStored(record)) {
      std::fwrite(line->data(), 1, line->size(), stdout);
      return true;
    }
    auto e = events::DecodeStoredEvent(record);
    if (!e) return true;  // replay shows what it can; verify names broken events
    return print(*e);
  };
  auto scan = [&]() -> Status {
    return copy_bytes ? ledger.ScanStoredEvents(next, print_stored)
                      : ledger.ScanEvents(next, print);
  };
  if (Status s = scan(); !s) {
    std::fprintf(stderr, "tokenledger replay: %s\n", s.error().message.c_str());
    return kFinding;
  }
  std::fflush(stdout);
  progress.Done();
  if (!flags.Has("follow")) return kOk;
  StopOnSignals();
  while (!done && !Stopped()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (Status s = ledger.CatchUp(); !s) {
      std::fprintf(stderr, "tokenledger replay: %s\n", s.error().message.c_str());
      return kFinding;
    }
    if (Status s = scan(); !s) {
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
  StopOnSignals();
  Opened opened = OpenExclusive(flags.Get("data-dir"), "rebuild");
  if (!opened.store) return opened.exit_code;
  const auto start = std::chrono::steady_clock::now();
  const std::uint64_t total = opened.store->LastSeq();
  Progress bar("rebuild", total, flags.Has("quiet"));
  Status s = Status::Ok();
  try {
    s = opened.store->RebuildProjections(StepsOf(bar), *chunk, flags.Get("temp-dir"));
  } catch (const Interrupted&) {
    bar.Done();
    std::fprintf(stderr,
                 "tokenledger rebuild: interrupted by a signal; the projections in use are "
                 "unchanged, and the next rebuild starts over\n");
    return kInterrupted;
  }
  TimePhase("end");
  bar.Done();
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
  StopOnSignals();  // before the read-only open's private directory exists
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  Progress bar("verify", opened.store->LastSeq(), flags.Has("quiet"));
  store::VerifyOptions options;
  options.temp_dir = flags.Get("temp-dir");
  options.progress = StepsOf(bar);
  Result<store::VerifyReport> report = Error{ErrorCode::kUnexpected, "not run", {}};
  try {
    report = opened.store->Verify(options);
  } catch (const Interrupted&) {
    bar.Done();
    std::fprintf(stderr, "tokenledger verify: interrupted by a signal; nothing was verified\n");
    return kInterrupted;
  }
  TimePhase("end");
  bar.Done();
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
    std::fprintf(stderr,
                 "tokenledger mint: --scope must be account, environment, agent_deployment or "
                 "introspection\n");
    return kUsage;
  }
  c.scope = *scope;
  if (flags.Has("environment") && !(c.environment_id = IdFlag(flags, "environment"))) return kUsage;
  if (flags.Has("agent") && !(c.agent_id = IdFlag(flags, "agent"))) return kUsage;
  if (flags.Has("agent-deployment") && !(c.agent_deployment_id = IdFlag(flags, "agent-deployment")))
    return kUsage;
  if (flags.Has("expires-at") && !(c.expires_at = TimeFlag(flags, "expires-at"))) return kUsage;
  if (flags.Has("admin-user") && !(c.created_by_admin_user_id = IdFlag(flags, "admin-user")))
    return kUsage;
  // The create rules the API applies too (core::ValidateCreate), checked before the ledger is
  // opened: a refusal is a usage error. The policy is the one the store decides with
  // (OpenExclusive opens it with default StoreOptions).
  const core::DecideContext ctx{.now = NowMicros(), .policy = StoreOptions().policy};
  if (const std::optional<core::Rejection> invalid = core::ValidateCreate(c, ctx)) {
    // The flag that sets the refused field, named after the API's message.
    const std::string flag = invalid->field == "environment_id"        ? " (--environment)"
                             : invalid->field == "agent_id"            ? " (--agent)"
                             : invalid->field == "agent_deployment_id" ? " (--agent-deployment)"
                             : invalid->field == "expires_at"          ? " (--expires-at)"
                                                                       : "";
    std::fprintf(stderr, "tokenledger mint: %s%s\n", invalid->message.c_str(), flag.c_str());
    return kUsage;
  }

  const std::string data_dir = flags.Get("data-dir");
  Opened opened = OpenExclusive(data_dir, "mint");
  if (!opened.store) return opened.exit_code;
  auto keys =
      app::OpenKeyRing(*opened.store, app::KeyFilePath(data_dir, flags.Get("signing-key-file")),
                       /*create_if_missing=*/!flags.Has("signing-key-file"));
  if (!keys) {
    std::fprintf(stderr, "tokenledger mint: %s\n", keys.error().message.c_str());
    return kFinding;
  }
  c.signing_kid = keys->ring.active_kid();
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
  auto jwt = keys->ring.Sign(
      auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id),
      s.signing_kid);
  if (!jwt) {  // the key was just read: a bug
    std::fprintf(stderr, "tokenledger mint: %s\n", jwt.error().message.c_str());
    return kFinding;
  }
  std::printf("%s\n", jwt->c_str());
  return kOk;
}

// ---------------------------------------------------------------------------------------
// export / import: the line format is in export_format.h.

int Export(const Flags& flags) {
  const std::string output = flags.Get("output", "-");
  const std::string temp = output == "-" ? "" : output + ".partial";
  // To a file: stopped cleanly, without one. To stdout a signal keeps its default action, so
  // the output ends mid-line (which import refuses) rather than as a shorter, well-formed
  // ledger: the format has no trailer that would tell the two apart.
  if (!temp.empty()) StopOnSignals();
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  std::FILE* out = output == "-" ? stdout : std::fopen(temp.c_str(), "wb");
  if (!out) {
    std::fprintf(stderr, "tokenledger export: cannot write '%s'\n", temp.c_str());
    return kFinding;
  }
  std::uint64_t count = 0;
  static std::vector<char> buffer(1u << 20);  // outlives stdout's last flush
  std::setvbuf(out, buffer.data(), _IOFBF, buffer.size());
  Progress bar("export", opened.store->LastSeq(), flags.Has("quiet"));
  // To a file, the written bytes are sent to the disk every kExportWritebackBytes as the export
  // goes, so the final fsync waits for the last few megabytes, not for the whole file (at 1M
  // events, 600 MB: ~0.4 s of a ~1.8 s export).
  constexpr std::uint64_t kExportWritebackBytes = 16u << 20;
  std::uint64_t written_bytes = 0, sent_bytes = 0;
  Status s = opened.store->ScanStoredEvents(1, [&](std::uint64_t seq, std::string_view record) {
    const std::string line = FormatExportLine(record);
    std::fwrite(line.data(), 1, line.size(), out);
    written_bytes += line.size();
    if (out != stdout && written_bytes - sent_bytes >= kExportWritebackBytes &&
        std::fflush(out) == 0) {
      // Starts the writeback and returns; errors surface at the fsync below.
      ::sync_file_range(::fileno(out), static_cast<off64_t>(sent_bytes),
                        static_cast<off64_t>(written_bytes - sent_bytes), SYNC_FILE_RANGE_WRITE);
      sent_bytes = written_bytes;
    }
    ++count;
    bar.Update(seq);
    return !Stopped();
  });
  bar.Done();
  const bool written = !Stopped() && std::fflush(out) == 0 && !std::ferror(out) &&
                       (out == stdout || ::fsync(::fileno(out)) == 0);
  if (out != stdout) std::fclose(out);
  if (!s || !written) {
    std::fprintf(stderr, "tokenledger export: %s\n",
                 !s          ? s.error().message.c_str()
                 : Stopped() ? "interrupted by a signal; no file was written"
                             : "write failed");
    if (!temp.empty()) std::filesystem::remove(temp);
    return s && Stopped() ? kInterrupted : kFinding;
  }
  if (!temp.empty()) {
    std::error_code ec;
    std::filesystem::rename(temp, output, ec);  // a complete file, or none
    if (ec) {
      std::fprintf(stderr, "tokenledger export: cannot rename '%s' to '%s': %s\n", temp.c_str(),
                   output.c_str(), ec.message().c_str());
      std::filesystem::remove(temp, ec);
      return kFinding;
    }
    // The rename too survives a crash: the directory's entry is synced. (Some file systems
    // cannot sync a directory, EINVAL: nothing more can be done there.)
    const int err = SyncDirectory(std::filesystem::absolute(output).parent_path());
    if (err != 0 && err != EINVAL) {
      std::fprintf(stderr,
                   "tokenledger export: '%s' is complete, but its directory could not be "
                   "synced (%s): a crash now may lose the file's name\n",
                   output.c_str(), std::strerror(err));
      return kFinding;
    }
  }
  std::fprintf(stderr, "exported %llu events\n", static_cast<unsigned long long>(count));
  return kOk;
}

// Copies the signing key file (every key of the ring) into the new data directory (0600,
// fsynced) after checking it is a usable key file, so the tokens minted before the export keep
// authenticating after the import.
Status CopySigningKey(const std::string& from, const std::string& data_dir) {
  auto keys = auth::LoadOrCreateKeyFile(from, /*create_if_missing=*/false);
  if (!keys) return keys.error();
  return auth::WriteKeyFile(data_dir + "/signing.key", *keys);
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
  const bool new_key = flags.Has("new-signing-key");
  if (flags.Has("signing-key") == new_key) {
    std::fprintf(stderr,
                 "tokenledger import: give --signing-key FILE (the exported server's signing key, "
                 "usually <its data-dir>/signing.key): the tokens in the ledger are JWTs signed "
                 "with it, and without it every one of them fails with \"token signature is "
                 "invalid\". Only if that is intended, give --new-signing-key instead.\n");
    return kUsage;
  }
  if (!new_key) {  // fail before anything is written
    if (auto keys = auth::LoadOrCreateKeyFile(flags.Get("signing-key"), false); !keys) {
      std::fprintf(stderr, "tokenledger import: --signing-key: %s\n", keys.error().message.c_str());
      return kUsage;
    }
  }
  const InputFile input(flags.Get("input", "-"), "import");
  if (!input.ok()) return kFinding;
  const std::uint64_t input_bytes = input.bytes();
  LineReader in(input.fd());
  // SIGINT/SIGTERM stop the import between batches; the partial directory is then removed.
  // (SIGKILL or a crash leave it marked import_in_progress: the server refuses to serve it.)
  StopOnSignals();
  int rc = kOk;
  std::string error;
  std::uint64_t count = 0;
  const bool quiet = flags.Has("quiet");
  // The marker file comes first, so that no moment of the import leaves a servable directory.
  const std::string marker = data_dir + "/" + store::kImportMarkerFile;
  {
    std::filesystem::create_directories(data_dir, ec);
    const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    const bool ok = fd >= 0 && ::fsync(fd) == 0 && SyncDirectory(data_dir) == 0;
    if (fd >= 0) ::close(fd);
    if (!ok) {
      std::fprintf(stderr, "tokenledger import: cannot write '%s'\n", marker.c_str());
      if (!existed) std::filesystem::remove_all(data_dir, ec);
      return kFinding;
    }
  }
  try {
    Opened opened = OpenExclusive(data_dir, "import");
    if (!opened.store) {
      std::filesystem::remove_all(data_dir, ec);
      if (existed) std::filesystem::create_directories(data_dir, ec);
      return opened.exit_code;
    }
    store::LedgerStore& ledger = *opened.store;
    if (Status s = ledger.BeginImport(flags.Get("temp-dir")); !s) error = s.error().message;
    if (error.empty() && !new_key) {
      if (Status s = CopySigningKey(flags.Get("signing-key"), data_dir); !s)
        error = s.error().message;
    }
    // The next batch is read and parsed on a second thread while the current one is checked
    // and written (hashes, decoding, the sort by token, RocksDB's memtables).
    struct Batch {
      std::vector<std::string> records;
      std::string error;
    };
    std::uint64_t line_no = 0, bytes = 0;
    Progress bar("import", input_bytes, quiet, "bytes");
    auto read_batch = [&]() {
      Batch b;
      b.records.reserve(16384);
      std::string_view line;
      while (b.records.size() < 16384 && in.Next(&line)) {
        ++line_no;
        bytes += line.size() + 1;
        bar.Update(bytes, "load");
        if (line.empty()) continue;
        auto record = ParseExportLine(line);
        if (!record) {
          b.error = "line " + std::to_string(line_no) + " is not an exported event";
          break;
        }
        b.records.push_back(std::move(*record));
      }
      if (in.error() && b.error.empty())
        b.error = "cannot read the input: " + std::string(std::strerror(in.error()));
      return b;
    };
    TimePhase("load");
    Batch batch = read_batch();
    while (error.empty() && !batch.records.empty()) {
      ThrowIfStopped();
      std::future<Batch> next;
      if (batch.error.empty()) next = std::async(std::launch::async, read_batch);
      if (Status s = ledger.AppendVerbatim(batch.records); !s) {
        error = s.error().message;
      } else {
        count += batch.records.size();
      }
      if (error.empty()) error = batch.error;
      batch = next.valid() ? next.get() : Batch{};
    }
    if (error.empty()) error = batch.error;
    const auto step = StepsOf(bar);
    bar.SetUnit("events");
    if (error.empty()) {
      if (Status s = ledger.RebuildProjections(step, 4096, flags.Get("temp-dir")); !s)
        error = s.error().message;
    }
    // No separate verify pass: the load checked every record's hash, sequence number and link
    // (AppendVerbatim) and decoded it, the rebuild's fold checked every stream's versions, and
    // the projections and the stream index were just derived from those same events.
    // `--verify` runs the full verify as well (a third read of the ledger).
    if (error.empty() && flags.Has("verify")) {
      store::VerifyOptions options;
      options.temp_dir = flags.Get("temp-dir");
      options.progress = step;
      auto report = ledger.Verify(options);
      if (!report) {
        error = report.error().message;
      } else if (!report->findings.empty()) {
        error = "verify after import: " + report->findings[0].message;
      }
    }
    if (error.empty()) {
      ThrowIfStopped();
      TimePhase("finish");
      if (Status s = ledger.FinishImport(); !s) error = s.error().message;
      TimePhase("end");
    }
    // The key ring the server will open: checked now, not at its first start.
    if (error.empty()) error = ImportKeyRing(ledger, data_dir, new_key);
    if (error.empty()) {
      if (::unlink(marker.c_str()) != 0 || SyncDirectory(data_dir) != 0)
        error = "cannot remove '" + marker + "'";
    }
  } catch (const Interrupted&) {
    error = "interrupted by a signal";
  }
  if (!error.empty()) {
    // Nothing half-imported stays behind: the directory was empty before.
    std::filesystem::remove_all(data_dir, ec);
    if (existed) std::filesystem::create_directories(data_dir, ec);
    std::fprintf(stderr, "tokenledger import: %s; nothing was imported\n", error.c_str());
    rc = Stopped() ? kInterrupted : kFinding;
  } else {
    std::fprintf(stderr, "imported %llu events; chain verified, projections rebuilt%s\n",
                 static_cast<unsigned long long>(count),
                 new_key ? "; NO signing key: tokens minted before the export will not "
                           "authenticate"
                         : ", signing key copied");
  }
  return rc;
}

// ---------------------------------------------------------------------------------------
// stats

int Stats(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  Opened opened = OpenReadOnly(data_dir);
  if (!opened.store) return opened.exit_code;
  std::map<std::string, std::uint64_t> by_type, by_status, by_scope;
  std::uint64_t events = 0, tokens = 0;
  Progress bar("stats", opened.store->LastSeq(), flags.Has("quiet"));
  Status s = opened.store->ScanEvents(1, [&](const events::EventEnvelope& e) {
    ++by_type[std::string(events::TypeName(e.data))];
    ++events;
    bar.Update(e.seq);
    return true;
  });
  bar.Done();
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
  const std::optional<std::uint64_t> pending = opened.store->PendingCompactionBytes();
  if (flags.Get("format", "table") == "json") {
    json::object o{{"last_seq", opened.store->LastSeq()},
                   {"chain_head", events::HashToHex(opened.store->ChainHead())},
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
  std::printf("chain head      %s\n", events::HashToHex(opened.store->ChainHead()).c_str());
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
        {"format", "json|table", "output format (default: table on a terminal, else json)", ""},
        kQuiet},
       Replay},
      {"rebuild",
       "rebuild the projections from the ledger",
       "Rebuilds the token-details and list-index projections from the ledger alone, beside the\n"
       "current ones, then switches to them in one atomic step. Streams: the events are sorted by\n"
       "token on disk (--temp-dir), so memory does not grow with the ledger. A killed rebuild\n"
       "starts over when run again; the old projections stay in use until the switch. Needs\n"
       "exclusive access: stop the server first (or start it with --rebuild-projections).",
       {kDataDir,
        {"chunk-events", "N", "events between progress reports", "4096"},
        kTempDir,
        kQuiet},
       Rebuild},
      {"verify",
       "check the hash chain, streams, projections and idempotency records",
       "Recomputes the hash chain, checks stream versions have no gaps, compares every projection\n"
       "row and list-index entry with a fresh fold of the ledger, and checks that idempotency\n"
       "records point at their events. Prints each finding; exits 1 if there is any. Works beside\n"
       "a running server. Streams: memory does not grow with the ledger (the per-token checks\n"
       "sort the events by token on disk, in --temp-dir).",
       {kDataDir, kTempDir, kQuiet},
       Verify},
      {"mint",
       "create a token offline and print its JWT once",
       "Appends a real TokenCreated event (audited like any other) for any account, and prints\n"
       "the token's JWT once on stdout. Needs exclusive access: stop the server first.\n"
       "An introspection token is a gateway's credential: it may only call\n"
       "POST /api/v1/introspect (for tokens of any account), and only this command makes one.",
       {kDataDir,
        {"account", "ID", "the account (required; for introspection, the one that owns it)", ""},
        {"scope", "account|environment|agent_deployment|introspection", "token scope", "account"},
        {"environment", "ID", "the environment (environment and agent_deployment scope)", ""},
        {"agent", "ID", "the agent (agent_deployment scope, required there)", ""},
        {"agent-deployment", "ID", "the agent deployment (agent_deployment scope, optional)", ""},
        {"expires-at", "TIME", "expiry, RFC 3339 (default: now + 365 days)", ""},
        {"admin-user", "ID", "admin user recorded as created_by_admin_user_id and as the actor",
         ""},
        {"signing-key-file", "PATH",
         "signing key (default <data-dir>/signing.key, created if missing)", ""},
        kQuiet},
       Mint},
      {"export",
       "write every event as JSON Lines",
       "Writes every event, oldest first, one JSON object per line: {\"hash\":..,\"event\":..} "
       "with\n"
       "the stored event exactly as stored. A backup and a migration format; works beside a\n"
       "running server. Idempotency records are not exported (they expire within a day).",
       {kDataDir,
        {"output", "FILE", "output file, written atomically (default stdout)", ""},
        kQuiet},
       Export},
      {"import",
       "load an export into an empty data directory",
       "Reads an export, checks every hash, link, sequence number and stream version, writes the\n"
       "events (bulk, WAL off), rebuilds the projections (checking every stream's versions on\n"
       "the way), optionally runs a full verify (--verify), and only then makes the\n"
       "directory servable (one synced write). On a failure, SIGINT or SIGTERM the directory is\n"
       "removed; after SIGKILL or a crash it stays marked import_in_progress and the server\n"
       "refuses it (delete it and import again). The tokens in an export are JWTs signed with the\n"
       "exporting server's key: --signing-key copies that key into the new directory (0600).",
       {kDataDir,
        {"input", "FILE", "input file (default stdin)", ""},
        {"signing-key", "FILE",
         "the exported server's signing key (its <data-dir>/signing.key); required unless "
         "--new-signing-key",
         ""},
        {"new-signing-key", "",
         "import without the key: the server creates a new one and every existing token fails "
         "authentication",
         ""},
        {"verify", "",
         "also run a full verify before finishing (every check is already made on the way; this "
         "re-reads the whole ledger once more)",
         ""},
        kTempDir,
        kQuiet},
       Import},
      {"cluster-publish",
       "move an export into an empty cluster stream",
       "Publishes an export (of a single-node ledger) to a cluster's JetStream stream, one\n"
       "message per event in order, each expecting the previous one as the stream's last, so\n"
       "every node appends the events exactly as exported: same ids, times and hashes (compare\n"
       "`tokenledger stats` chain heads). The stream must be empty: publish before the nodes'\n"
       "first start, or start them with --no-first-token. Give the nodes the exported server's\n"
       "signing key file (--signing-key-file): the tokens are JWTs signed with it.",
       {{"cluster", "URLS", "NATS servers, comma-separated nats://HOST:PORT", ""},
        {"cluster-stream", "NAME", "the stream", "TOKENLEDGER"},
        {"cluster-replicas", "N", "replicas if the stream is created", "3"},
        {"input", "FILE", "input file (default stdin)", ""},
        kQuiet},
       ClusterPublish},
      {"stats",
       "events by type, tokens by status and scope, size on disk",
       "Counts events by type and tokens by status and scope, and shows the last sequence number\n"
       "and the size on disk. Works beside a running server.",
       {kDataDir, {"format", "table|json", "output format", "table"}, kQuiet},
       Stats},
      {"keys list",
       "the signing keys: which signs, which verify, which are retired",
       "Lists every key of the signing key ring by kid: its state (active: signs new tokens;\n"
       "verify: only verifies the tokens it signed; retired: verifies nothing; spare: in the key\n"
       "file but never active, left by an interrupted rotate; missing: named by the ledger but\n"
       "not in the key file), whether it is the original key (the one tokens without a kid\n"
       "verify with), since when and by whom, and how many active tokens it signed. Reads the\n"
       "ledger's record of the ring and the key file; works beside a running server.",
       {kDataDir, kSigningKeyFile},
       KeysList},
      {"keys rotate",
       "make a new signing key the active one",
       "Adds a new random key to the key file and records the rotation in the ledger (who,\n"
       "when, which kid; never the key). New tokens are signed by it from the next server\n"
       "start; every earlier key keeps verifying the tokens it signed until retired. Prints the\n"
       "new kid. Offline: needs exclusive access, stop the server first. Back up the key file\n"
       "afterwards: a ledger whose active key is lost cannot sign tokens.",
       {kDataDir,
        kSigningKeyFile,
        {"admin-user", "ID", "admin user recorded as the event's actor", ""}},
       KeysRotate},
      {"keys retire",
       "retire a signing key: its tokens stop authenticating",
       "usage: tokenledger keys retire KID [--force]\n"
       "Records the retirement in the ledger, then erases the key from the key file. Tokens\n"
       "signed by it answer 401 bad_authtoken from then on. Refused for the active key (rotate\n"
       "first), and, unless --force, while active tokens signed by it remain (it says how\n"
       "many). Offline: needs exclusive access, stop the server first.",
       {kDataDir,
        kSigningKeyFile,
        {"force", "", "retire even though active tokens were signed by the key", ""},
        {"admin-user", "ID", "admin user recorded as the event's actor", ""}},
       KeysRetire,
       "KID"},
  };
}

}  // namespace tokenledger::cli

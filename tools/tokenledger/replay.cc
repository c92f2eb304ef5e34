// `tokenledger replay`: the audit history as JSON Lines or a table, beside a running server.
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>
#include <unordered_map>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
namespace json = boost::json;
namespace {

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

}  // namespace

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

}  // namespace tokenledger::cli

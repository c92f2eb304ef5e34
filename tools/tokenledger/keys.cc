#include "tools/tokenledger/keys.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "src/app/signing_keys.h"
#include "src/auth/signing_key.h"
#include "src/core/key_ring.h"

namespace tokenledger::cli {
namespace {

// Who ran the command, for the ledger's record: the login that invoked sudo, else the user,
// then the machine.
std::string OperatorName() {
  std::string user;
  for (const char* var : {"SUDO_USER", "LOGNAME", "USER"}) {
    if (const char* v = std::getenv(var); v && *v) {
      user = v;
      break;
    }
  }
  if (user.empty()) user = "uid " + std::to_string(::getuid());
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return user + "@" + (host[0] ? host : "localhost");
}

// Active, unexpired tokens per kid of the key that signed them (tokens without a kid under the
// original key's). A scan of every token row: O(tokens), for an operator's command.
Result<std::map<std::string, std::uint64_t>> ActiveTokensByKid(
    const store::LedgerStore& store, const std::optional<std::string>& original_kid) {
  std::map<std::string, std::uint64_t> counts;
  const Micros now = NowMicros();
  Status s = store.ScanTokens([&](const projections::TokenRow& row) {
    const core::TokenState& t = row.state;
    if (t.status == core::TokenStatus::kActive && t.expires_at > now) {
      const std::optional<std::string>& kid = t.signing_kid ? t.signing_kid : original_kid;
      if (kid) ++counts[*kid];
    }
    return true;
  });
  if (!s) return s.error();
  return counts;
}

std::optional<app::OpenedKeyRing> OpenKeys(const store::LedgerStore& store, const Flags& flags,
                                           const char* command) {
  auto keys = app::OpenKeyRing(
      store, app::KeyFilePath(flags.Get("data-dir"), flags.Get("signing-key-file")),
      /*create_if_missing=*/false);
  if (!keys) {
    std::fprintf(stderr, "tokenledger %s: %s\n", command, keys.error().message.c_str());
    return std::nullopt;
  }
  return std::move(*keys);
}

// Appends one key ring change (already checked), durably.
Status AppendKeyRingChange(store::LedgerStore& store, core::ChangeKeyRing change,
                           const Flags& flags) {
  store::CommandRequest req;
  req.command = std::move(change);
  req.request_id = "tokenledger-keys";
  if (flags.Has("admin-user")) req.actor.admin_user_id = IdFlag(flags, "admin-user");
  store::CommandResult r = store.Submit(std::move(req)).get();
  if (r.outcome != store::Outcome::kApplied)
    return Error{ErrorCode::kUnavailable, r.rejection.message, {}};
  return Status::Ok();
}

}  // namespace

int KeysList(const Flags& flags) {
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  auto keys = OpenKeys(*opened.store, flags, "keys list");
  if (!keys) return kFinding;
  const std::optional<std::string> original = core::OriginalKid(keys->history, keys->file_kids);
  auto counts = ActiveTokensByKid(*opened.store, original);
  if (!counts) {
    std::fprintf(stderr, "tokenledger keys list: %s\n", counts.error().message.c_str());
    return kFinding;
  }
  // Every kid the file or the ledger names, in the order they came.
  std::vector<std::string> kids;
  auto add = [&](const std::string& kid) {
    if (std::find(kids.begin(), kids.end(), kid) == kids.end()) kids.push_back(kid);
  };
  if (original) add(*original);
  std::map<std::string, const events::EventEnvelope*> rotated, retired;
  for (const events::EventEnvelope& e : keys->history.changes) {
    if (const auto* r = std::get_if<events::SigningKeyRotated>(&e.data)) {
      if (r->previous_kid) add(*r->previous_kid);
      add(r->kid);
      rotated[r->kid] = &e;
    } else {
      const auto& t = std::get<events::SigningKeyRetired>(e.data);
      add(t.kid);
      retired[t.kid] = &e;
    }
  }
  for (const std::string& kid : keys->file_kids) add(kid);
  std::printf("%-18s %-8s %-9s %-28s %-13s %s\n", "KID", "STATE", "ORIGINAL", "SINCE",
              "ACTIVE_TOKENS", "BY");
  for (const std::string& kid : kids) {
    const bool in_file =
        std::find(keys->file_kids.begin(), keys->file_kids.end(), kid) != keys->file_kids.end();
    std::string state = "verify";
    const events::EventEnvelope* since = rotated.count(kid) ? rotated[kid] : nullptr;
    if (retired.count(kid)) {
      state = "retired";
      since = retired[kid];
    } else if (kid == keys->ring.active_kid()) {
      state = "active";
    } else if (!in_file) {
      state = "missing";  // named by the ledger, not in the key file: its tokens fail
    } else if (!rotated.count(kid) && kid != original) {
      state = "spare";  // in the file, never active: an interrupted rotate
    }
    std::string by = "-";
    if (since) {
      if (const auto* r = std::get_if<events::SigningKeyRotated>(&since->data)) by = r->by;
      if (const auto* t = std::get_if<events::SigningKeyRetired>(&since->data)) by = t->by;
    }
    std::printf("%-18s %-8s %-9s %-28s %-13llu %s\n", kid.c_str(), state.c_str(),
                kid == original ? "yes" : "", since ? FormatRfc3339(since->at).c_str() : "-",
                static_cast<unsigned long long>(counts->count(kid) ? (*counts)[kid] : 0),
                by.c_str());
  }
  return kOk;
}

int KeysRotate(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  if (flags.Has("admin-user") && !IdFlag(flags, "admin-user")) return kUsage;
  Opened opened = OpenExclusive(data_dir, "keys rotate");
  if (!opened.store) return opened.exit_code;
  auto keys = OpenKeys(*opened.store, flags, "keys rotate");
  if (!keys) return kFinding;
  const auth::SigningKey key = auth::NewSigningKey();
  const std::string kid = auth::KeyIdOf(key);
  std::vector<auth::SigningKey> file_keys = keys->file_keys;
  std::vector<std::string> file_kids = keys->file_kids;
  file_keys.push_back(key);
  file_kids.push_back(kid);
  const std::string previous = keys->ring.active_kid();
  core::ChangeKeyRing change{events::SigningKeyRotated{kid, previous, OperatorName()}};
  if (auto refused = core::CheckKeyRingChange(keys->history, file_kids, change)) {
    std::fprintf(stderr, "tokenledger keys rotate: %s\n", refused->message.c_str());
    return kFinding;
  }
  // The key file first: a rotate stopped between the two steps leaves a spare key in the file
  // (listed as such), never a ledger naming a key that exists nowhere.
  const std::string path = app::KeyFilePath(data_dir, flags.Get("signing-key-file"));
  if (Status s = auth::WriteKeyFile(path, file_keys); !s) {
    std::fprintf(stderr, "tokenledger keys rotate: %s\n", s.error().message.c_str());
    return kFinding;
  }
  if (Status s = AppendKeyRingChange(*opened.store, std::move(change), flags); !s) {
    std::fprintf(stderr,
                 "tokenledger keys rotate: the ledger did not record the rotation (%s); key %s "
                 "stays in the key file unused\n",
                 s.error().message.c_str(), kid.c_str());
    return kFinding;
  }
  std::printf("%s\n", kid.c_str());
  std::fprintf(stderr,
               "rotated: key %s signs new tokens from the next server start; %s still verifies "
               "the tokens it signed until `tokenledger keys retire %s`. Back up '%s' now.\n",
               kid.c_str(), previous.c_str(), previous.c_str(), path.c_str());
  return kOk;
}

int KeysRetire(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  const std::string kid = flags.Get("KID");
  if (kid.empty()) {
    std::fprintf(stderr, "tokenledger keys retire: name the key: tokenledger keys retire KID\n");
    return kUsage;
  }
  if (flags.Has("admin-user") && !IdFlag(flags, "admin-user")) return kUsage;
  Opened opened = OpenExclusive(data_dir, "keys retire");
  if (!opened.store) return opened.exit_code;
  auto keys = OpenKeys(*opened.store, flags, "keys retire");
  if (!keys) return kFinding;
  const std::string path = app::KeyFilePath(data_dir, flags.Get("signing-key-file"));
  // The key file without the retired key's material (erased: it never verifies again).
  auto erase = [&]() -> Status {
    std::vector<auth::SigningKey> kept;
    for (std::size_t i = 0; i < keys->file_keys.size(); ++i)
      if (keys->file_kids[i] != kid) kept.push_back(keys->file_keys[i]);
    if (kept.size() == keys->file_keys.size()) return Status::Ok();
    return auth::WriteKeyFile(path, kept);
  };
  if (keys->history.retired.count(kid)) {
    // A retire stopped after the ledger recorded it: finish erasing the material.
    if (Status s = erase(); !s) {
      std::fprintf(stderr, "tokenledger keys retire: %s\n", s.error().message.c_str());
      return kFinding;
    }
    std::fprintf(stderr, "key %s was already retired; its material is not in the key file\n",
                 kid.c_str());
    return kOk;
  }
  const std::optional<std::string> original = core::OriginalKid(keys->history, keys->file_kids);
  auto counts = ActiveTokensByKid(*opened.store, original);
  if (!counts) {
    std::fprintf(stderr, "tokenledger keys retire: %s\n", counts.error().message.c_str());
    return kFinding;
  }
  const std::uint64_t active = counts->count(kid) ? (*counts)[kid] : 0;
  core::ChangeKeyRing change{events::SigningKeyRetired{kid, active, OperatorName()}};
  if (auto refused = core::CheckKeyRingChange(keys->history, keys->file_kids, change)) {
    std::fprintf(stderr, "tokenledger keys retire: %s\n", refused->message.c_str());
    return refused->code == ErrorCode::kNotFound ? kUsage : kFinding;
  }
  if (active > 0 && !flags.Has("force")) {
    std::fprintf(stderr,
                 "tokenledger keys retire: %llu active token(s) were signed by key %s; retired, "
                 "they stop authenticating (401 bad_authtoken). Replace them first, or give "
                 "--force.\n",
                 static_cast<unsigned long long>(active), kid.c_str());
    return kUsage;
  }
  // The ledger first: once it says retired, no server verifies with the key, whatever the
  // file still holds; the file is cleaned up after (or by running this again).
  if (Status s = AppendKeyRingChange(*opened.store, std::move(change), flags); !s) {
    std::fprintf(stderr, "tokenledger keys retire: %s\n", s.error().message.c_str());
    return kFinding;
  }
  if (Status s = erase(); !s) {
    std::fprintf(stderr,
                 "tokenledger keys retire: retired in the ledger, but the key file was not "
                 "rewritten (%s): run the command again to erase the key\n",
                 s.error().message.c_str());
    return kFinding;
  }
  std::fprintf(stderr, "retired key %s (%llu active token(s) it signed no longer authenticate)\n",
               kid.c_str(), static_cast<unsigned long long>(active));
  return kOk;
}

std::string ImportKeyRing(store::LedgerStore& ledger, const std::string& data_dir, bool new_key) {
  const std::string path = data_dir + "/signing.key";
  auto history = app::ReadKeyRingHistory(ledger);
  if (!history) return history.error().message;
  if (new_key && !history->changes.empty()) {
    const auth::SigningKey key = auth::NewSigningKey();
    core::ChangeKeyRing change{
        events::SigningKeyRotated{auth::KeyIdOf(key), history->active_kid,
                                  "tokenledger import --new-signing-key, " + OperatorName()}};
    if (auto refused = core::CheckKeyRingChange(*history, {auth::KeyIdOf(key)}, change))
      return refused->message;
    if (Status s = auth::WriteKeyFile(path, {key}); !s) return s.error().message;
    if (Status s = AppendKeyRingChange(ledger, std::move(change), Flags{}); !s)
      return s.error().message;
  }
  auto ring = app::OpenKeyRing(ledger, path, /*create_if_missing=*/new_key);
  if (!ring) {
    return ring.error().message +
           " (give the key file backed up after the ledger's last `tokenledger keys rotate`)";
  }
  return "";
}

}  // namespace tokenledger::cli

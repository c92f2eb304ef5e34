// Child process for the crash test: opens the ledger and writes until it is killed. After a
// write is acknowledged it prints one line per fact the parent must find after a restart:
//   E <seq> <token id> <event type>          an acknowledged event
//   K <key> <hex of OutcomeText>             an acknowledged idempotent request
// Each line is one write(2) to a pipe, so a kill never leaves half a line.
//
// usage: crash_writer DATA_DIR ACCOUNT_ID KEY_PREFIX SEED
#include <unistd.h>

#include <cstdio>
#include <random>
#include <semaphore>
#include <string>
#include <vector>

#include "events/hash_chain.h"
#include "src/store/ledger_store.h"
#include "tests/store/outcome_text.h"

using namespace tokenledger;

namespace {

void WriteLine(const std::string& line) {
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) std::_Exit(3);
    off += static_cast<std::size_t>(n);
  }
}

std::string Hex(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: crash_writer DATA_DIR ACCOUNT_ID KEY_PREFIX SEED\n");
    return 2;
  }
  StoreOptions options;
  options.data_dir = argv[1];
  const Id account = *Id::Parse(argv[2]);
  const std::string prefix = argv[3];
  std::mt19937_64 rng(std::stoull(argv[4]));
  auto opened = store::LedgerStore::Open(options);
  if (!opened.store) {
    std::fprintf(stderr, "crash_writer: %s\n", opened.message.c_str());
    return 1;
  }
  store::LedgerStore& ledger = *opened.store;

  std::counting_semaphore<64> in_flight(32);
  std::vector<Id> tokens;  // touched by the committer thread only (in callbacks)
  std::mutex tokens_mu;
  for (std::uint64_t n = 0;; ++n) {
    in_flight.acquire();
    store::CommandRequest req;
    std::optional<Id> target;
    {
      std::lock_guard lock(tokens_mu);
      if (!tokens.empty() && rng() % 3 != 0) target = tokens[rng() % tokens.size()];
    }
    switch (target ? rng() % 4 : 4) {
      case 0:
        req.command = core::SuspendToken{*target};
        break;
      case 1:
        req.command = core::ActivateToken{*target};
        break;
      case 2:
        req.command = core::RevokeToken{*target};
        break;
      case 3:
        req.command = core::DeleteToken{*target};
        break;
      default:
        req.command = core::CreateToken{account};
        break;
    }
    req.request_id = "crash-" + std::to_string(n);
    const bool idempotent = n % 2 == 0;
    const std::string key = prefix + std::to_string(n);
    if (idempotent) {
      req.idempotency = store::IdempotencyInfo{account, key, events::Sha256(key)};
    }
    ledger.Submit(std::move(req), [&, idempotent, key](store::CommandResult r) {
      std::string lines;
      for (const auto& e : r.events) {
        lines += "E " + std::to_string(e.seq) + " " + e.stream.ToString() + " " +
                 std::string(events::TypeName(e.data)) + "\n";
        if (std::holds_alternative<events::TokenCreated>(e.data)) {
          std::lock_guard lock(tokens_mu);
          tokens.push_back(e.stream);
        }
      }
      if (idempotent &&
          (r.outcome == store::Outcome::kApplied || r.outcome == store::Outcome::kRejected) &&
          (r.outcome == store::Outcome::kApplied || r.rejection.code == ErrorCode::kInvalidAction ||
           r.rejection.code == ErrorCode::kNotFound)) {  // what a key records
        lines += "K " + key + " " + Hex(store::OutcomeText(r)) + "\n";
      }
      if (!lines.empty()) WriteLine(lines);
      in_flight.release();
    });
  }
}

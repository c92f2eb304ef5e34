#include "src/app/signing_keys.h"

namespace tokenledger::app {

std::string KeyFilePath(const std::string& data_dir, const std::string& key_file_option) {
  return key_file_option.empty() ? data_dir + "/signing.key" : key_file_option;
}

Result<core::KeyRingHistory> ReadKeyRingHistory(const store::LedgerStore& store) {
  core::KeyRingHistory history;
  constexpr std::uint32_t kPage = 1000;
  for (std::uint64_t offset = 0;; offset += kPage) {
    auto page = store.ListEvents(events::kKeyRingStream, offset, kPage);
    if (!page) return page.error();
    for (const events::EventEnvelope& e : page->events) {
      if (!events::IsKeyRingEvent(e.data)) {  // EvolveKeyRing's REQUIRES; verify reports it
        return Error{ErrorCode::kUnexpected,
                     "the key ring's stream holds a " + std::string(events::TypeName(e.data)) +
                         " (seq " + std::to_string(e.seq) +
                         "): the ledger is damaged (tokenledger verify)",
                     {}};
      }
      core::EvolveKeyRing(history, e);
    }
    if (page->events.size() < kPage) return history;
  }
}

Result<OpenedKeyRing> OpenKeyRing(const store::LedgerStore& store, const std::string& key_file,
                                  bool create_if_missing) {
  auto read = ReadKeyRingHistory(store);
  if (!read) return read.error();
  core::KeyRingHistory history = std::move(*read);
  // A ledger that has rotated needs its keys: a new file would sign with a key it never named.
  auto keys = auth::LoadOrCreateKeyFile(key_file, create_if_missing && history.changes.empty());
  if (!keys) return keys.error();
  std::vector<std::string> kids;
  for (const auth::SigningKey& k : *keys) kids.push_back(auth::KeyIdOf(k));
  auto ring = auth::KeyRing::Make(*keys, core::ActiveKid(history, kids),
                                  core::OriginalKid(history, kids), history.retired);
  if (!ring) return ring.error();
  return OpenedKeyRing{std::move(*ring), std::move(history), std::move(*keys), std::move(kids)};
}

}  // namespace tokenledger::app

// Opening a ledger's key ring: the ledger's record of it (its stream, folded by core) with the
// key file's material (auth). The one place the server and the operator tools put the two
// together.
//
// Thread-safety: OpenKeyRing reads the store; call it before serving.
#pragma once

#include <string>
#include <vector>

#include "src/auth/key_ring.h"
#include "src/auth/signing_key.h"
#include "src/core/key_ring.h"
#include "src/store/ledger_store.h"
#include "tokenledger/error.h"

namespace tokenledger::app {

struct OpenedKeyRing {
  auth::KeyRing ring;
  core::KeyRingHistory history;
  std::vector<auth::SigningKey> file_keys;  // the key file's, oldest first
  std::vector<std::string> file_kids;       // their kids, same order
};

// The key ring's history: its stream in `store`, folded. Fails with the store's error, or when
// the stream holds a token's event (a damaged ledger).
Result<core::KeyRingHistory> ReadKeyRingHistory(const store::LedgerStore& store);

// The key ring's history from `store`, the key file at `key_file` (created with one key when
// it is missing, `create_if_missing` is set and the ledger has never rotated a key) and the ring
// they make. Fails with the store's error or a message for the operator.
Result<OpenedKeyRing> OpenKeyRing(const store::LedgerStore& store, const std::string& key_file,
                                  bool create_if_missing);

// `<data_dir>/signing.key` unless an explicit key file is given: the one default.
std::string KeyFilePath(const std::string& data_dir, const std::string& key_file_option);

}  // namespace tokenledger::app

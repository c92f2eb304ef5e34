// `tokenledger keys list|rotate|retire` and the key ring's part of an import: the operator's
// side of the signing key ring (src/core/key_ring.h: the ledger's record of it;
// src/auth/key_ring.h: the key file's material).
#pragma once

#include <string>

#include "src/store/ledger_store.h"
#include "tools/tokenledger/cli.h"

namespace tokenledger::cli {

// `list` runs beside the server; `rotate` and `retire` change both the ledger and the key
// file, and need exclusive access. Exit codes as cli.h.
int KeysList(const Flags& flags);
int KeysRotate(const Flags& flags);
int KeysRetire(const Flags& flags);

// After an import: the key ring must open from the imported ledger and key file, checked now
// rather than at the server's first start. With `new_key` (--new-signing-key) on a ledger that
// has rotated keys, a new key is made active by a rotation (a ledger with a key ring history
// never gets a key file by itself). Returns an error message, or empty.
std::string ImportKeyRing(store::LedgerStore& ledger, const std::string& data_dir, bool new_key);

}  // namespace tokenledger::cli

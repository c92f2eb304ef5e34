// The service's signing key file: the key material of the key ring, one key per line as 64 hex
// digits (32 bytes), oldest first, mode 0600. The file of a ledger from before the key ring
// holds one line: its original key. Which key signs and which are retired is recorded in the
// ledger (src/core/key_ring.h), never here; a key is named by its kid (KeyIdOf).
#pragma once

#include <string>
#include <vector>

#include "src/auth/jwt.h"
#include "tokenledger/error.h"

namespace tokenledger::auth {

// The most keys a file holds: a rotation a day for years stays far below it.
inline constexpr std::size_t kMaxKeysInFile = 4096;

// Reads the keys at `path`, oldest first. If the file does not exist and `create_if_missing`,
// creates it with one key of 32 bytes from the kernel's CSPRNG, mode 0600, fsynced. Fails
// (kUnexpected, with a message for the operator) if the file is readable or writable by group
// or others, is malformed or empty, holds the same key twice, or cannot be read or created.
Result<std::vector<SigningKey>> LoadOrCreateKeyFile(const std::string& path,
                                                    bool create_if_missing);

// Replaces the file at `path` with `keys` atomically (a temporary file in the same directory,
// fsynced, renamed over it, the directory fsynced), mode 0600. REQUIRES: !keys.empty().
Status WriteKeyFile(const std::string& path, const std::vector<SigningKey>& keys);

// A new key from the kernel's CSPRNG.
SigningKey NewSigningKey();

}  // namespace tokenledger::auth

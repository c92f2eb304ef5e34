// The service's signing key file: 32 random bytes, stored as 64 hex digits, mode 0600.
#pragma once

#include <string>

#include "src/auth/jwt.h"
#include "tokenledger/error.h"

namespace tokenledger::auth {

// Reads the key at `path`. If it does not exist and `create_if_missing`, creates it with 32
// bytes from the kernel's CSPRNG, mode 0600, fsynced. Fails (kUnexpected, with a message for
// the operator) if the file is readable or writable by group or others, is malformed, or
// cannot be read or created.
Result<SigningKey> LoadOrCreateSigningKey(const std::string& path, bool create_if_missing);

}  // namespace tokenledger::auth

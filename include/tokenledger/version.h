// The release version (CMake's PROJECT_VERSION) and the commit the binary was built from
// (12 hex digits, "-dirty" with uncommitted changes, "unknown" outside a git checkout), as
// `--version` prints them.
#pragma once

#include <string_view>

namespace tokenledger {

std::string_view Version();
std::string_view Commit();

}  // namespace tokenledger

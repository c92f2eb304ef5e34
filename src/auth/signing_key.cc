#include "src/auth/signing_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tokenledger::auth {
namespace {

Error Fail(std::string message) { return Error{ErrorCode::kUnexpected, std::move(message), {}}; }

std::string Errno() { return std::strerror(errno); }

Result<SigningKey> Create(const std::string& path) {
  SigningKey key{};
  FillSecureRandom(key.data(), key.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (auto b : key) {
    text += kHex[b >> 4];
    text += kHex[b & 15];
  }
  text += '\n';
  // O_EXCL: two processes starting at once never overwrite each other's key.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Fail("cannot create signing key file '" + path + "': " + Errno());
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Fail("cannot write signing key file '" + path + "'");
  }
  return key;
}

}  // namespace

Result<SigningKey> LoadOrCreateSigningKey(const std::string& path, bool create_if_missing) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && create_if_missing) return Create(path);
    return Fail("cannot read signing key file '" + path + "': " + Errno());
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Fail("signing key file '" + path + "' has mode " + mode +
                ": it must not be accessible by group or others (chmod 600 '" + path + "')");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail("cannot open signing key file '" + path + "': " + Errno());
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  SigningKey key{};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bool ok = text.size() == key.size() * 2;
  for (std::size_t i = 0; ok && i < key.size(); ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    key[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (!ok) return Fail("signing key file '" + path + "' must hold 64 hex digits (32 bytes)");
  return key;
}

}  // namespace tokenledger::auth

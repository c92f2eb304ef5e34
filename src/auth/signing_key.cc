#include "src/auth/signing_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace tokenledger::auth {
namespace {

Error Fail(std::string message) { return Error{ErrorCode::kUnexpected, std::move(message), {}}; }

std::string Errno() { return std::strerror(errno); }

std::string Encode(const std::vector<SigningKey>& keys) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  for (const SigningKey& key : keys) {
    for (auto b : key) {
      text += kHex[b >> 4];
      text += kHex[b & 15];
    }
    text += '\n';
  }
  return text;
}

// Writes `text` to a new file at `path` (O_EXCL: two processes creating at once never
// overwrite each other), fsynced; removes it on failure.
Status WriteNew(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Fail("cannot create signing key file '" + path + "': " + Errno());
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Fail("cannot write signing key file '" + path + "'");
  }
  return Status::Ok();
}

std::optional<SigningKey> ParseLine(std::string_view line) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  SigningKey key{};
  if (line.size() != key.size() * 2) return std::nullopt;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const int hi = nibble(line[2 * i]), lo = nibble(line[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    key[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return key;
}

}  // namespace

SigningKey NewSigningKey() {
  SigningKey key{};
  FillSecureRandom(key.data(), key.size());
  return key;
}

Result<std::vector<SigningKey>> LoadOrCreateKeyFile(const std::string& path,
                                                    bool create_if_missing) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && create_if_missing) {
      std::vector<SigningKey> keys{NewSigningKey()};
      if (Status s = WriteNew(path, Encode(keys)); !s) return s.error();
      return keys;
    }
    return Fail("cannot read signing key file '" + path + "': " + Errno());
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Fail("signing key file '" + path + "' has mode " + mode +
                ": it must not be accessible by group or others (chmod 600 '" + path + "')");
  }
  // 65 bytes a key: a bounded read, whatever the file's size.
  constexpr std::size_t kMaxBytes = kMaxKeysInFile * 66;
  if (static_cast<std::size_t>(st.st_size) > kMaxBytes)
    return Fail("signing key file '" + path + "' is too large for a key file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail("cannot open signing key file '" + path + "': " + Errno());
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  std::vector<SigningKey> keys;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + at, end - at);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    at = end + 1;
    if (line.empty()) continue;
    auto key = ParseLine(line);
    if (!key) {
      return Fail("signing key file '" + path +
                  "' must hold one key per line, 64 hex digits (32 bytes) each");
    }
    if (std::find(keys.begin(), keys.end(), *key) != keys.end())
      return Fail("signing key file '" + path + "' holds the same key twice");
    keys.push_back(*key);
  }
  if (keys.empty()) return Fail("signing key file '" + path + "' holds no key");
  return keys;
}

Status WriteKeyFile(const std::string& path, const std::vector<SigningKey>& keys) {
  assert(!keys.empty());
  const std::string temp = path + ".new";
  ::unlink(temp.c_str());  // a leftover of an interrupted write
  if (Status s = WriteNew(temp, Encode(keys)); !s) return s;
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return Fail("cannot replace signing key file '" + path + "': " + Errno());
  }
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = dfd >= 0 && ::fsync(dfd) == 0;
  if (dfd >= 0) ::close(dfd);
  if (!synced) return Fail("cannot sync the directory of signing key file '" + path + "'");
  return Status::Ok();
}

}  // namespace tokenledger::auth

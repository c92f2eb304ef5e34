#include "src/store/info_log.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <vector>

namespace tokenledger::store {
namespace fs = std::filesystem;

std::shared_ptr<InfoLog> InfoLog::Open(const std::string& dir, std::size_t keep_old) {
  std::error_code ec;
  const fs::path log = fs::path(dir) / "LOG";
  if (fs::exists(log, ec)) {
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    const long long micros = static_cast<long long>(tv.tv_sec) * 1000000 + tv.tv_usec;
    fs::rename(log, fs::path(dir) / ("LOG.old." + std::to_string(micros)), ec);
  }
  // Keep the newest `keep_old` rotated logs (their names sort by time).
  std::vector<fs::path> old;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().rfind("LOG.old.", 0) == 0) old.push_back(entry.path());
  }
  std::sort(old.begin(), old.end());
  for (std::size_t i = 0; i + keep_old < old.size(); ++i) fs::remove(old[i], ec);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return std::shared_ptr<InfoLog>(new InfoLog(fd));
}

InfoLog::~InfoLog() { CloseImpl().PermitUncheckedError(); }

rocksdb::Status InfoLog::CloseImpl() {
  std::lock_guard lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return rocksdb::Status::OK();
}

void InfoLog::Logv(const char* format, va_list ap) {
  char buf[4096];
  struct timeval tv {};
  ::gettimeofday(&tv, nullptr);
  const time_t seconds = tv.tv_sec;
  struct tm t {};
  ::localtime_r(&seconds, &t);
  int n = std::snprintf(buf, sizeof buf, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %ld ",
                        t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        static_cast<long>(tv.tv_usec), static_cast<long>(::gettid()));
  va_list copy;
  va_copy(copy, ap);
  const int m = std::vsnprintf(buf + n, sizeof buf - n, format, copy);
  va_end(copy);
  // Longer lines are cut to the buffer; RocksDB's longest (option dumps) fit.
  n = std::min<int>(n + std::max(m, 0), static_cast<int>(sizeof buf) - 1);
  if (n == 0 || buf[n - 1] != '\n') buf[n++] = '\n';
  std::lock_guard lock(mu_);
  if (fd_ < 0 || ::write(fd_, buf, static_cast<std::size_t>(n)) != n) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace tokenledger::store

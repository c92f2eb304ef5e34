#include "tools/tokenledger/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace tokenledger::cli {
namespace {

std::string Human(double v) {
  char buf[32];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.1fG", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  } else if (v >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.0fk", v / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

constexpr auto kRedraw = std::chrono::milliseconds(100);

}  // namespace

bool Progress::Wanted(bool quiet) { return !quiet && ::isatty(STDERR_FILENO); }

Progress::Progress(std::string what, std::uint64_t total, bool quiet, std::string unit)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(Wanted(quiet)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { Done(); }

void Progress::Update(std::uint64_t done, std::string_view phase, std::uint64_t total) {
  if (!enabled_) return;
  if (phase != phase_) {
    phase_ = std::string(phase);
    start_ = last_draw_ = std::chrono::steady_clock::now();  // first draw 100 ms into a phase
    checked_ = 0;
  }
  if (total) total_ = total;
  done_ = done;
  if (done_ - checked_ < 1024 && done_ >= checked_) return;  // the clock every 1024 units
  checked_ = done_;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < kRedraw) return;
  Draw(now);
}

void Progress::Draw(std::chrono::steady_clock::time_point now) {
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
  std::string line = "\r" + what_;
  if (!phase_.empty()) line += " [" + phase_ + "]";
  if (total_) {
    const double frac = std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_));
    const int filled = static_cast<int>(frac * 20);
    line += "  [" + std::string(filled, '#') + std::string(20 - filled, '.') + "]";
    char pct[16];
    std::snprintf(pct, sizeof pct, " %3.0f%%", frac * 100);
    line += pct;
    line += "  " + std::to_string(done_) + "/" + std::to_string(total_) + " " + unit_;
  } else {
    line += "  " + std::to_string(done_) + " " + unit_;
  }
  line += "  " + Human(rate) + "/s";
  if (total_ && rate > 0 && done_ < total_) {
    const double eta = static_cast<double>(total_ - done_) / rate;
    char buf[32];
    if (eta >= 3600) {
      std::snprintf(buf, sizeof buf, "  ETA %.0fh%02.0fm", eta / 3600, std::fmod(eta / 60, 60));
    } else if (eta >= 60) {
      std::snprintf(buf, sizeof buf, "  ETA %.0fm%02.0fs", std::floor(eta / 60),
                    std::fmod(eta, 60));
    } else {
      std::snprintf(buf, sizeof buf, "  ETA %.0fs", eta);
    }
    line += buf;
  }
  line += "\x1b[K";  // clear the rest of the line
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Done() {
  if (drawn_) {
    std::fputs("\r\x1b[K", stderr);
    std::fflush(stderr);
  }
  drawn_ = false;
}

}  // namespace tokenledger::cli

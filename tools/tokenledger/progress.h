// Progress: the one progress bar of every long `tokenledger` run (verify, import, export,
// replay, rebuild, stats). Drawn on stderr only when stderr is a terminal and --quiet is not
// given, redrawn at most every 100 ms, with the rate and the ETA:
//
//   verify [sort]  [##########..........]  48%  553216/1150000 events  512k/s  ETA 1s
//
// Update() is cheap enough to call for every event (a subtraction and, every 1024 units, a
// clock read). Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tokenledger::cli {

class Progress {
 public:
  // `total` 0: unknown (no bar, no ETA). `unit`: "events", "bytes", ...
  Progress(std::string what, std::uint64_t total, bool quiet, std::string unit = "events");
  ~Progress();  // Done()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Whether a bar is drawn: stderr is a terminal and not --quiet.
  static bool Wanted(bool quiet);
  bool enabled() const { return enabled_; }

  // `done` of the total so far; a new `phase` (e.g. "sort", "fold") restarts the rate.
  void Update(std::uint64_t done, std::string_view phase = {}, std::uint64_t total = 0);
  void SetUnit(std::string unit) { unit_ = std::move(unit); }
  // Clears the line. Idempotent.
  void Done();

 private:
  void Draw(std::chrono::steady_clock::time_point now);
  std::string what_, unit_, phase_;
  std::uint64_t total_ = 0, done_ = 0, checked_ = 0;
  bool enabled_ = false, drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace tokenledger::cli

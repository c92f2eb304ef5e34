// ReadPool: a few threads for requests whose cost grows with their input (a list at a deep
// offset, an as_of fold over a long history), so that they never hold an I/O thread. The I/O
// threads keep answering pings, shows and writes while a list walks a million index entries.
//
// The queue is bounded: when it is full, TrySubmit refuses at once and the caller answers
// 503, rather than queueing without bound. Workers run at a lower scheduling priority
// (nice +kWorkerNice) so that on a busy machine the I/O threads win the CPU.
//
// Thread-safety: TrySubmit may be called from any thread; Stop from one thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tokenledger::http {

class ReadPool {
 public:
  static constexpr int kWorkerNice = 10;

  // REQUIRES: threads > 0, max_queued > 0.
  ReadPool(unsigned threads, std::size_t max_queued);
  ~ReadPool();  // Stop()
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // Runs `task` on a worker; false (and `task` is dropped) if max_queued tasks are waiting
  // or the pool is stopped. A task must catch its own exceptions.
  bool TrySubmit(std::function<void()> task);

  // Refuses new tasks, runs the queued ones, joins the workers. Idempotent.
  void Stop();

  std::size_t Queued() const;

 private:
  void Work();

  const std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace tokenledger::http

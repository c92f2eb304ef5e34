#include "src/http/read_pool.h"
#include "tokenledger/thread_name.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cassert>

namespace tokenledger::http {

ReadPool::ReadPool(unsigned threads, std::size_t max_queued) : max_queued_(max_queued) {
  assert(threads > 0 && max_queued > 0);
  workers_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

ReadPool::~ReadPool() { Stop(); }

bool ReadPool::TrySubmit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void ReadPool::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  workers_.clear();
}

std::size_t ReadPool::Queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void ReadPool::Work() {
  NameThisThread("tl-read");
  // Linux: a thread's nice value is per thread (setpriority on its tid). Failing to lower it
  // (a sandbox forbids it) only costs the preference, so the result is ignored.
  [[maybe_unused]] int ignored =
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), kWorkerNice);
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace tokenledger::http

// A persistent pool of worker threads. parallel_for hands out task indices from an atomic counter;
// the calling thread works too, so a pool of n threads starts n-1 workers.
// Decode calls parallel_for hundreds of times per token, each for ~100 us of work, so hand-off must
// cost far less than a condition-variable wake-up: workers spin briefly on a generation counter
// before they sleep, and the caller spins on a pending counter.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wren {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(task, thread) for task in [0, n_tasks); thread in [0, size()). Blocks until all are done.
  // Not reentrant: one parallel_for at a time per pool (the Engine serializes callers).
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  void worker(int thread);
  void run_tasks(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};           // workers still inside the current job
  std::atomic<uint64_t> generation_{0};   // bumps once per job
  std::atomic<bool> stop_{false};
};

}  // namespace wren

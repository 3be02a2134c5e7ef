// A persistent pool of worker threads. parallel_for hands out task indices; the calling thread
// works too, so a pool of n threads starts n-1 workers.
// Decode calls parallel_for hundreds of times per token, each for tens of microseconds of work, so
// hand-off must cost far less than a condition-variable wake-up: idle workers spin briefly on the
// job word before they sleep. A job is finished when its tasks are, not when every worker has
// looked in: a worker that the OS has descheduled (a busy machine) never holds up the caller
// unless it has claimed a task.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wren {

class ThreadPool {
 public:
  // More threads than this is a mistake (a count of cores cannot be larger), not a request to honour:
  // every pool refuses it before starting any thread.
  static constexpr int kMaxThreads = 1024;

  // InvalidArgument above kMaxThreads; WrenError when the OS cannot create the threads (never a
  // half-built pool).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(task, thread) for task in [0, n_tasks); thread in [0, size()). Blocks until all are done;
  // if a task throws, the first exception is rethrown here after every task has finished.
  // Not reentrant: one parallel_for at a time per pool (the Engine serializes callers).
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  using Fn = std::function<void(int64_t, int)>;
  void worker(int thread);
  // Claims and runs tasks of job `job` until none are left or a newer job has started.
  void run_tasks(uint32_t job, int thread);
  // One job of at most kMaxTasks tasks.
  void run_job(int64_t n_tasks, const Fn& fn);
  // Asks the workers to exit and joins them.
  void stop_workers();

  int n_threads_;
  std::vector<std::thread> workers_;
  // The job word: job number (24 bits) | task count (20 bits) | next unclaimed task (20 bits).
  // Claiming a task is a compare-and-swap on the whole word, so a late worker can never take a task
  // of a job that has moved on, nor judge a job by another job's task count.
  std::atomic<uint64_t> state_{0};
  std::atomic<const Fn*> fn_{nullptr};
  std::atomic<int64_t> done_{0};  // tasks of the current job finished
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<int> sleeping_{0};
  std::exception_ptr error_;  // first exception a task threw in the current job (under mu_)
  std::atomic<bool> stop_{false};
};

}  // namespace wren

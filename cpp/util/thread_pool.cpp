#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <system_error>

#include "util/errors.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WREN_CPU_RELAX() _mm_pause()
#else
#define WREN_CPU_RELAX() std::this_thread::yield()
#endif

namespace wren {
namespace {

// How long an idle worker keeps spinning before it sleeps: longer than the gap between two
// matmuls of one forward pass, short enough not to burn a core between requests.
constexpr auto kSpinFor = std::chrono::microseconds(300);
// Pauses between yields while spinning: on an oversubscribed machine, give the core away often.
constexpr int kPausesPerYield = 64;

// Layout of the job word (see thread_pool.h).
constexpr int kTaskBits = 20;
constexpr uint64_t kTaskMask = (uint64_t(1) << kTaskBits) - 1;
constexpr int64_t kMaxTasks = int64_t(1) << kTaskBits;  // exclusive bound of a count; bigger jobs are split
constexpr uint32_t kJobMask = (1u << 24) - 1;

uint32_t job_of(uint64_t state) { return static_cast<uint32_t>(state >> (2 * kTaskBits)) & kJobMask; }
int64_t count_of(uint64_t state) { return static_cast<int64_t>((state >> kTaskBits) & kTaskMask); }
int64_t next_of(uint64_t state) { return static_cast<int64_t>(state & kTaskMask); }
uint64_t make_state(uint32_t job, int64_t count) {
  return (static_cast<uint64_t>(job & kJobMask) << (2 * kTaskBits)) | (static_cast<uint64_t>(count) << kTaskBits);
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  WREN_CHECK(n_threads <= kMaxThreads, InvalidArgument, "n_threads must be <= ", kMaxThreads, ", got ", n_threads);
  try {
    workers_.reserve(static_cast<size_t>(n_threads_));
    for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker(t); });
  } catch (const std::system_error& e) {
    // The OS refused a thread (address-space or process limits): stop the ones already started
    // (a destructor does not run for a half-built object) and say so.
    stop_workers();
    throw WrenError(str_cat("cannot start ", n_threads_, " compute threads (", workers_.size() + 1,
                            " started): ", e.what(), "; use fewer threads (n_threads) or raise the limit"));
  }
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (std::thread& w : workers_) w.join();
  workers_.clear();
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::run_tasks(uint32_t job, int thread) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (job_of(s) != job) return;
    const int64_t first = next_of(s), left = count_of(s) - first;
    if (left <= 0) return;
    // Guided scheduling: claim a share of what is left, so a job costs a few contended
    // compare-and-swaps per thread rather than one per task, and the shares shrink toward the end.
    const int64_t take = std::max<int64_t>(1, left / (2 * n_threads_));
    if (!state_.compare_exchange_weak(s, s + static_cast<uint64_t>(take), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    // The claim succeeded on the current word, and the job cannot finish while these tasks are
    // undone, so fn_ (stored before the word was published) is still this job's.
    const Fn& fn = *fn_.load(std::memory_order_relaxed);
    for (int64_t task = first; task < first + take; ++task) {
      try {
        fn(task, thread);
      } catch (...) {  // rethrown by the caller once every claimed task has finished
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    done_.fetch_add(take, std::memory_order_release);
    s = state_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker(int thread) {
  uint32_t seen = 0;
  for (;;) {
    const auto deadline = std::chrono::steady_clock::now() + kSpinFor;
    int spins = 0;
    uint64_t s;
    while (job_of(s = state_.load(std::memory_order_acquire)) == seen) {
      if (stop_.load(std::memory_order_relaxed)) return;
      WREN_CPU_RELAX();
      if (++spins % kPausesPerYield == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          std::unique_lock<std::mutex> lock(mu_);
          sleeping_.fetch_add(1);
          wake_.wait(lock, [&] { return stop_.load() || job_of(state_.load()) != seen; });
          sleeping_.fetch_sub(1);
        } else {
          std::this_thread::yield();
        }
      }
    }
    seen = job_of(s);
    run_tasks(seen, thread);
  }
}

void ThreadPool::parallel_for(int64_t n_tasks, const Fn& fn) {
  if (n_tasks <= 0) return;
  if (n_threads_ == 1 || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  if (n_tasks < kMaxTasks) return run_job(n_tasks, fn);
  for (int64_t base = 0; base < n_tasks; base += kMaxTasks - 1) {
    const Fn part = [&fn, base](int64_t task, int thread) { fn(base + task, thread); };
    run_job(std::min(kMaxTasks - 1, n_tasks - base), part);
  }
}

void ThreadPool::run_job(int64_t n_tasks, const Fn& fn) {
  const uint32_t job = (job_of(state_.load(std::memory_order_relaxed)) + 1) & kJobMask;
  fn_.store(&fn, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  {
    // Publishing under the lock: a worker about to sleep either sees the new job or is notified.
    std::lock_guard<std::mutex> lock(mu_);
    state_.store(make_state(job, n_tasks), std::memory_order_release);
  }
  if (sleeping_.load() > 0) wake_.notify_all();
  run_tasks(job, 0);
  // Wait for tasks other threads claimed; yield now and then in case they were descheduled.
  for (int spins = 1; done_.load(std::memory_order_acquire) != n_tasks; ++spins) {
    WREN_CPU_RELAX();
    if (spins % kPausesPerYield == 0) std::this_thread::yield();
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(error, error_);
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace wren

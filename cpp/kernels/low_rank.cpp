#include "kernels/low_rank.h"

#include <algorithm>

#include "kernels/kernel_table.h"
#include "util/blas.h"

namespace wren {
namespace {

// Below this many multiply-adds add_low_rank runs on the calling thread: a parallel job's hand-off
// costs more than it saves.
constexpr int64_t kMinMacsToSplit = int64_t(1) << 20;
// Rows of A per h task: a rank-16 term's A is read by four tasks, spread over the threads.
constexpr int64_t kRankPerTask = 4;

}  // namespace

int64_t low_rank_width(const std::vector<LowRankTerm>& terms) {
  int64_t w = 0;
  for (const LowRankTerm& t : terms) w += t.rank;
  return w;
}

void add_low_rank(const std::vector<LowRankTerm>& terms, int64_t rows, int64_t cols, const float* x, int64_t n,
                  float* y, float* h, ThreadPool& pool) {
  if (terms.empty() || n <= 0) return;
  const int64_t width = low_rank_width(terms);
  const int r = static_cast<int>(rows), c = static_cast<int>(cols), w = static_cast<int>(width);
  // Tokens [t0, t0 + m): every term, one after the other.
  auto run = [&](int64_t t0, int64_t m) {
    const int mm = static_cast<int>(m);
    const float* xt = x + t0 * cols;  // (m, cols)
    float* yt = y + t0 * rows;        // (m, rows)
    float* ht = h + t0 * width;       // (m, width): this term's rank columns at an offset
    for (const LowRankTerm& t : terms) {
      const int k = static_cast<int>(t.rank);
      blas::sgemm(true, mm, k, c, 1.0f, xt, c, t.a, c, 0.0f, ht, w);                          // h (m, rank) = x A^T
      blas::sgemm(true, mm, r, k, t.scale, ht, w, t.b, k, 1.0f, yt, r);                       // y += s h B^T
      ht += t.rank;
    }
  };
  const int64_t macs = n * width * (rows + cols);
  const int64_t n_tasks = std::min<int64_t>(n, pool.size());
  if (n_tasks <= 1 || macs < kMinMacsToSplit) return run(0, n);
  const int64_t per_task = (n + n_tasks - 1) / n_tasks;
  pool.parallel_for((n + per_task - 1) / per_task, [&](int64_t task, int) {
    const int64_t t0 = task * per_task;
    run(t0, std::min(per_task, n - t0));
  });
}

int64_t low_rank_h_tasks(const std::vector<LowRankTerm>& terms) {
  int64_t n = 0;
  for (const LowRankTerm& t : terms) n += (t.rank + kRankPerTask - 1) / kRankPerTask;
  return n;
}

void low_rank_h_task(const std::vector<LowRankTerm>& terms, int64_t task, const float* x, int64_t n, int64_t cols,
                     float* h) {
  const DotF32Fn dot = active_kernels().dot_f32;
  const int64_t width = low_rank_width(terms);
  int64_t offset = 0;  // the term's first column in h
  for (const LowRankTerm& t : terms) {
    const int64_t chunks = (t.rank + kRankPerTask - 1) / kRankPerTask;
    if (task < chunks) {
      const int64_t k0 = task * kRankPerTask, k1 = std::min(t.rank, k0 + kRankPerTask);
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t i = 0; i < n; ++i) h[i * width + offset + k] = dot(t.a + k * cols, x + i * cols, cols);
      return;
    }
    task -= chunks;
    offset += t.rank;
  }
}

void add_low_rank_rows(const std::vector<LowRankTerm>& terms, int64_t r0, int64_t r1, const float* h, int64_t t0,
                       int64_t nt, float* y, int64_t ldy) {
  const int64_t width = low_rank_width(terms);
  const RowsDotF32Fn rows_dot = active_kernels().rows_dot_f32;
  for (int64_t i = t0; i < t0 + nt; ++i) {
    float* yi = y + i * ldy;
    const float* hi = h + i * width;
    for (const LowRankTerm& t : terms) {
      // y[r] += s B[r, :] h for r in [r0, r1): B's rows r0.. are one contiguous block, streamed once
      rows_dot(t.b + r0 * t.rank, t.rank, r1 - r0, hi, t.scale, yi + r0);
      hi += t.rank;
    }
  }
}

void add_low_rank_row(const std::vector<LowRankTerm>& terms, int64_t r, int64_t cols, float* row) {
  for (const LowRankTerm& t : terms)
    for (int64_t k = 0; k < t.rank; ++k) {
      const float s = t.scale * t.b[r * t.rank + k];  // s B[r, k]
      const float* a = t.a + k * cols;                // A[k, :]
      for (int64_t j = 0; j < cols; ++j) row[j] += s * a[j];
    }
}

}  // namespace wren

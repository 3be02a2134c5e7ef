#include "kernels/low_rank.h"

#include <algorithm>

#include "util/blas.h"

namespace wren {
namespace {

// Below this many multiply-adds a product's low-rank work runs on the calling thread: a parallel
// job's hand-off costs more than it saves (decode's terms are a few tens of thousands).
constexpr int64_t kMinMacsToSplit = int64_t(1) << 20;

int64_t max_rank(const std::vector<LowRankTerm>& terms) {
  int64_t r = 0;
  for (const LowRankTerm& t : terms) r = std::max(r, t.rank);
  return r;
}

}  // namespace

int64_t low_rank_scratch(const std::vector<LowRankTerm>& terms, int64_t n) { return n * max_rank(terms); }

void add_low_rank(const std::vector<LowRankTerm>& terms, int64_t rows, int64_t cols, const float* x, int64_t n,
                  float* y, float* xa, ThreadPool& pool) {
  if (terms.empty() || n <= 0) return;
  const int64_t stride = max_rank(terms);  // xa floats per token: tasks own disjoint token runs of it
  const int r = static_cast<int>(rows), c = static_cast<int>(cols);
  // Tokens [t0, t0 + m): every term, one after the other.
  auto run = [&](int64_t t0, int64_t m) {
    const float* xt = x + t0 * cols;  // (m, cols)
    float* yt = y + t0 * rows;        // (m, rows)
    float* h = xa + t0 * stride;      // (m, rank) for each term in turn
    for (const LowRankTerm& t : terms) {
      const int k = static_cast<int>(t.rank);
      if (m == 1) {
        blas::sgemv(k, c, 1.0f, t.a, c, xt, 0.0f, h);        // h (rank) = A x
        blas::sgemv(r, k, t.scale, t.b, k, h, 1.0f, yt);     // y (rows) += s B h
      } else {
        const int mm = static_cast<int>(m);
        blas::sgemm(true, mm, k, c, 1.0f, xt, c, t.a, c, 0.0f, h, k);         // h (m, rank) = x A^T
        blas::sgemm(true, mm, r, k, t.scale, h, k, t.b, k, 1.0f, yt, r);      // y (m, rows) += s h B^T
      }
    }
  };
  int64_t macs = 0;
  for (const LowRankTerm& t : terms) macs += t.rank * (rows + cols);
  macs *= n;
  const int64_t n_tasks = std::min<int64_t>(n, pool.size());
  if (n_tasks <= 1 || macs < kMinMacsToSplit) return run(0, n);
  const int64_t per_task = (n + n_tasks - 1) / n_tasks;
  pool.parallel_for((n + per_task - 1) / per_task, [&](int64_t task, int) {
    const int64_t t0 = task * per_task;
    run(t0, std::min(per_task, n - t0));
  });
}

void add_low_rank_row(const std::vector<LowRankTerm>& terms, int64_t r, int64_t cols, float* row) {
  for (const LowRankTerm& t : terms)
    for (int64_t k = 0; k < t.rank; ++k) {
      const float s = t.scale * t.b[r * t.rank + k];  // s B[r, k]
      const float* a = t.a + k * cols;                 // A[k, :]
      for (int64_t j = 0; j < cols; ++j) row[j] += s * a[j];
    }
}

}  // namespace wren

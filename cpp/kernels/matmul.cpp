#include "kernels/matmul.h"

#include <algorithm>

#include "kernels/kernel_table.h"
#include "tensor/quant.h"
#include "util/blas.h"
#include "util/errors.h"

namespace wren {

MatmulScratch::MatmulScratch(int n_threads, int64_t max_cols, int64_t max_batch)
    : max_cols_(max_cols),
      max_batch_(max_batch),
      act_stride_(static_cast<size_t>((max_cols + kQK - 1) / kQK)),
      tile_stride_(static_cast<size_t>(kTileRows * max_cols)),
      act_(new ActQ8[act_stride_]),
      tile_(new float[tile_stride_ * static_cast<size_t>(n_threads)]) {}

namespace {

// Rows are handed to threads in chunks; small enough to balance, large enough to amortize.
constexpr int64_t kRowsPerTask = 16;

void matvec(const QuantMatrix& w, const float* x, float* y, ThreadPool& pool, MatmulScratch& s) {
  const KernelTable& k = active_kernels();
  DotQ8Fn q8 = nullptr;
  DotF32Fn f = nullptr;
  switch (w.dtype) {
    case DType::Q4_0: q8 = k.dot_q4_0; break;
    case DType::Q4_1: q8 = k.dot_q4_1; break;
    case DType::Q8_0: q8 = k.dot_q8_0; break;
    case DType::F32: f = k.dot_f32; break;
    case DType::F16: f = k.dot_f16; break;
    default: break;  // other types: dequantize the row, then a float dot
  }
  const int64_t n_tasks = (w.rows + kRowsPerTask - 1) / kRowsPerTask;
  if (q8) {
    ActQ8* xq = s.act(0);
    quantize_act_q8(x, xq, static_cast<size_t>(w.cols));
    pool.parallel_for(n_tasks, [&](int64_t task, int) {
      const int64_t end = std::min(w.rows, (task + 1) * kRowsPerTask);
      for (int64_t r = task * kRowsPerTask; r < end; ++r) y[r] = q8(w.row(r), xq, w.cols);
    });
  } else if (f) {
    pool.parallel_for(n_tasks, [&](int64_t task, int) {
      const int64_t end = std::min(w.rows, (task + 1) * kRowsPerTask);
      for (int64_t r = task * kRowsPerTask; r < end; ++r) y[r] = f(w.row(r), x, w.cols);
    });
  } else {
    pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
      float* buf = s.tile(thread);
      const int64_t end = std::min(w.rows, (task + 1) * kRowsPerTask);
      for (int64_t r = task * kRowsPerTask; r < end; ++r) {
        dequantize_row(w.dtype, w.row(r), buf, static_cast<size_t>(w.cols));
        y[r] = k.dot_f32(buf, x, w.cols);
      }
    });
  }
}

void matmul_tiled(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool,
                  MatmulScratch& s) {
  const int64_t tr = MatmulScratch::kTileRows;
  const int64_t n_tiles = (w.rows + tr - 1) / tr;
  pool.parallel_for(n_tiles, [&](int64_t t, int thread) {
    const int64_t r0 = t * tr, nr = std::min(tr, w.rows - r0);
    const float* tile;
    if (w.dtype == DType::F32) {
      tile = reinterpret_cast<const float*>(w.row(r0));
    } else {
      float* buf = s.tile(thread);
      for (int64_t r = 0; r < nr; ++r)
        dequantize_row(w.dtype, w.row(r0 + r), buf + r * w.cols, static_cast<size_t>(w.cols));
      tile = buf;
    }
    // y[:, r0:r0+nr] (n x nr) = x (n x cols) * tile^T
    blas::sgemm_nt(static_cast<int>(n), static_cast<int>(nr), static_cast<int>(w.cols), x,
                   static_cast<int>(w.cols), tile, static_cast<int>(w.cols), y + r0, static_cast<int>(w.rows));
  });
}

}  // namespace

void matmul(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, MatmulScratch& s) {
  WREN_CHECK(w.cols <= s.max_cols() && n <= s.max_batch(), InvalidArgument, "matmul: scratch too small");
  if (n == 1)
    matvec(w, x, y, pool, s);
  else
    matmul_tiled(w, x, n, y, pool, s);
}

void dequantize_matrix_row(const QuantMatrix& w, int64_t r, float* out) {
  dequantize_row(w.dtype, w.row(r), out, static_cast<size_t>(w.cols));
}

}  // namespace wren

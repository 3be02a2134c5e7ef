// Matrix products against weights that stay in their file format (quantized or float).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "util/thread_pool.h"

namespace wren {

// A weight matrix viewed in place: `rows` output features, each a row of `cols` inputs.
struct QuantMatrix {
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;  // bytes per row

  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_stride; }
};

// Per-thread work buffers, sized once for the largest matrix and batch (no allocation per call).
class MatmulScratch {
 public:
  MatmulScratch(int n_threads, int64_t max_cols, int64_t max_batch);
  ActQ8* act(int64_t token) { return act_.get() + token * act_stride_; }
  float* tile(int thread) { return tile_.get() + static_cast<size_t>(thread) * tile_stride_; }
  int64_t max_cols() const { return max_cols_; }
  int64_t max_batch() const { return max_batch_; }
  static constexpr int64_t kTileRows = 64;

 private:
  int64_t max_cols_, max_batch_;
  size_t act_stride_, tile_stride_;
  std::unique_ptr<ActQ8[]> act_;
  std::unique_ptr<float[]> tile_;
};

// y (n x w.rows) = x (n x w.cols) * w^T.
// n == 1: matrix x vector on the stored blocks (activation quantized once to 8 bits for the
// quantized types). n > 1: tiles of w are dequantized to F32 and multiplied with BLAS sgemm.
void matmul(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, MatmulScratch& s);

// Row r of w as floats (for embedding lookup).
void dequantize_matrix_row(const QuantMatrix& w, int64_t r, float* out);

}  // namespace wren

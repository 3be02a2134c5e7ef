// Matrix products against weights that stay in their file format (quantized or float).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/low_rank.h"
#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/packed.h"
#include "util/thread_pool.h"

namespace wren {

// A weight matrix: `rows` output features, each a row of `cols` inputs. Either viewed in place in
// the file (data, row_stride), or, for Q4_0/Q4_1/Q8_0, re-laid out at load time (packed). Low-rank
// terms (LoRA adapters, kernels/low_rank.h) are added to every product and row lookup.
struct QuantMatrix {
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;  // file layout (null once packed)
  size_t row_stride = 0;          // bytes per row of the file layout
  PackedMatrix packed;            // packed.data != null: the packed copy is the working one
  std::vector<LowRankTerm> low_rank;  // usually empty; each A (rank, cols), B (rows, rank)

  bool is_packed() const { return packed.data != nullptr; }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_stride; }
};

// Per-thread work buffers, sized once for the largest matrix and batch (no allocation per call).
class MatmulScratch {
 public:
  MatmulScratch(int n_threads, int64_t max_cols, int64_t max_batch);
  ActQ8* act(int64_t token) { return act_.get() + token * static_cast<int64_t>(act_stride_); }
  int64_t act_stride() const { return static_cast<int64_t>(act_stride_); }  // ActQ8 blocks per token
  float* tile(int thread) { return tile_.get() + static_cast<size_t>(thread) * tile_stride_; }
  // n_floats for low-rank terms' x A^T (kernels/low_rank.h); grows when first asked for more, so
  // only the first product of a size allocates, and models without adapters never do.
  float* low_rank(int64_t n_floats);
  int64_t max_cols() const { return max_cols_; }
  int64_t max_batch() const { return max_batch_; }
  static constexpr int64_t kTileRows = 512;  // most weight rows one F32 tile holds (see matmul.cpp)

  // true: quantized weights are dequantized to F32 tiles and multiplied with F32 activations (the
  // reference numerics, for logits inspection); false: activations are quantized to 8 bits and
  // multiplied on the integer blocks (generation; what llama.cpp does).
  bool float_activations = false;
  // Optional: polled by the calling thread between F32 weight tiles (float_activations); when it
  // returns true the product stops and throws Interrupted. For long products (an output head over
  // hundreds of tokens) that Ctrl-C must not wait for.
  const std::function<bool()>* cancel = nullptr;

 private:
  int64_t max_cols_, max_batch_;
  size_t act_stride_, tile_stride_;
  std::unique_ptr<ActQ8[]> act_;
  std::unique_ptr<float[]> tile_;
  std::vector<float> low_rank_;
};

// How matmul multiplies w by n activation rows:
//   kPacked  packed weights: activations quantized once to 8 bits, integer dot products on the
//            blocks (any n; what llama.cpp does), unless s.float_activations;
//   kF16     F16 rows times tokens with the F16 kernel (KernelTable::gemm_f16), n > 1;
//   kMatvec  n == 1 on the stored rows (float dot products, other types dequantized row by row);
//   kTiles   tiles of w dequantized to F32 for BLAS sgemm, each tile serving all n rows;
//   kI8      the codebook formats (tensor/decode_i8.h), few tokens: each row decoded to int8 once,
//            integer dot products with activations quantized to 8 bits (KernelTable::dot_i8).
enum class MatmulPath { kPacked, kF16, kMatvec, kTiles, kI8 };
MatmulPath matmul_path(const QuantMatrix& w, int64_t n, const MatmulScratch& s);

// y (n x w.rows) = x (n x w.cols) * w^T, by matmul_path, plus w's low-rank terms.
void matmul(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, MatmulScratch& s);

// Several products of the same input: ys[i] (n x ws[i]->rows) = x (n x cols) * ws[i]^T, for
// matrices with equal cols (Q, K, V; or gate and up). Packed weights share one quantization of x
// and one parallel job over all their rows; other types run one matmul each.
void matmul_shared_input(std::initializer_list<std::pair<const QuantMatrix*, float*>> products, const float* x,
                         int64_t n, ThreadPool& pool, MatmulScratch& s);

// Rows [r0, r0 + count) (count <= kI8GroupRows) of a codebook-format matrix (tensor/decode_i8.h)
// times n activation vectors, with the kernels of k: y[t * ldy + i] = w[r0 + i] . x_t. From
// kI8RowsMinTokens tokens (where k has gemm_i8_rows), the rows are decoded to int8 in scratch
// (float-aligned, i8_rows_scratch_bytes(w.cols)) for one gemm_i8_rows call; fewer, each row goes
// through k.dot_row(type) where there is one, else it is decoded and multiplied by dot_i8.
constexpr int64_t kI8GroupRows = 16;
// Their scales (a float per 16 columns), the int8 rows, then gemm_i8_rows' work (64-byte aligned).
constexpr int64_t i8_rows_scratch_bytes(int64_t cols) {
  return kI8GroupRows * (cols / 4 + cols) + kI8RowsWorkPerCol * cols + 64;
}
void i8_rows_times_tokens(const KernelTable& k, const QuantMatrix& w, int64_t r0, int64_t count, const ActQ8* x,
                          int64_t x_stride, int64_t n, float* y, int64_t ldy, void* scratch);

// Row r of w as floats, low-rank terms included (for embedding lookup).
void dequantize_matrix_row(const QuantMatrix& w, int64_t r, float* out);

}  // namespace wren

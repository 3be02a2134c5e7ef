// Low-rank terms added to a weight matrix's products at run time: a LoRA adapter applied unmerged,
// as llama.cpp and PEFT do. A matrix W (rows x cols) with terms (A_k, B_k, s_k) multiplies as
//   y = x W^T + sum_k s_k (x A_k^T) B_k^T
// so W stays in its file format (quantized, packed, fast kernels) and each term costs
// rank * (rows + cols) multiply-adds per token, in float32. A and B are owned by whoever read them
// (format/lora_source.h) and must outlive the matrices that point at them.
#pragma once

#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace wren {

struct LowRankTerm {
  const float* a = nullptr;  // (rank, cols), row-major
  const float* b = nullptr;  // (rows, rank), row-major: this matrix's own rows (a slice of a fused tensor's B)
  int64_t rank = 0;
  float scale = 1.0f;
};

// y (n x rows, row-major) += sum over terms of scale * (x A^T) B^T, for x (n x cols). xa: scratch
// of n * (largest rank) floats. Token runs are split across pool's threads when the work pays for it.
void add_low_rank(const std::vector<LowRankTerm>& terms, int64_t rows, int64_t cols, const float* x, int64_t n,
                  float* y, float* xa, ThreadPool& pool);

// row (cols) += sum over terms of scale * B[r, :] A: row r of the update, for table lookups.
void add_low_rank_row(const std::vector<LowRankTerm>& terms, int64_t r, int64_t cols, float* row);

// Floats of scratch add_low_rank needs for n tokens.
int64_t low_rank_scratch(const std::vector<LowRankTerm>& terms, int64_t n);

}  // namespace wren

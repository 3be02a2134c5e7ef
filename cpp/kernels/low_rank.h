// Low-rank terms added to a weight matrix's products at run time: a LoRA adapter applied unmerged,
// as llama.cpp and PEFT do. A matrix W (rows x cols) with terms (A_k, B_k, s_k) multiplies as
//   y = x W^T + sum_k s_k (x A_k^T) B_k^T
// so W stays in its file format (quantized, packed, fast kernels) and each term costs
// rank * (rows + cols) multiply-adds per token, in float32. A and B are owned by whoever read them
// (format/lora_source.h) and must outlive the matrices that point at them.
//
// Two ways to run them (kernels/matmul.cpp picks):
//   - after the product, whole (add_low_rank): BLAS over runs of tokens; prefill, where A and B
//     are read once for many tokens;
//   - inside the product's own parallel jobs (decode): h = x A^T in chunks of A's rows beside the
//     activation quantization (low_rank_h_task), then each row task adds its rows of s h B^T
//     (add_low_rank_rows, KernelTable::rows_dot_f32 over the task's contiguous run of B's rows). A
//     decoded token reads A and B from memory once, like the weights, so splitting them across the
//     threads matters as much as splitting W's rows.
#pragma once

#include <cstdint>
#include <vector>

#include "util/thread_pool.h"

namespace wren {

struct LowRankTerm {
  const float* a = nullptr;  // (rank, cols), row-major
  const float* b = nullptr;  // (rows, rank), row-major: this matrix's rows (of a fused tensor's B, a slice)
  int64_t rank = 0;
  float scale = 1.0f;
};

// Sum of the terms' ranks: the floats of h per token.
int64_t low_rank_width(const std::vector<LowRankTerm>& terms);

// y (n x rows, row-major) += sum over terms of scale * (x A^T) B^T, for x (n x cols). h: scratch
// of n * low_rank_width(terms) floats. Runs of tokens are split across pool's threads when the work
// pays for it.
void add_low_rank(const std::vector<LowRankTerm>& terms, int64_t rows, int64_t cols, const float* x, int64_t n,
                  float* y, float* h, ThreadPool& pool);

// The split form. Tasks of h (n x width, token t at h + t * width, terms side by side) = x A^T:
// low_rank_h_tasks(terms) of them, each a few rows of one term's A for all n tokens.
int64_t low_rank_h_tasks(const std::vector<LowRankTerm>& terms);
void low_rank_h_task(const std::vector<LowRankTerm>& terms, int64_t task, const float* x, int64_t n, int64_t cols,
                     float* h);
// Once every h task has run: y[t * ldy + r] += sum over terms of scale * h_t B[r, :]^T for rows
// [r0, r1) and tokens [t0, t0 + nt).
void add_low_rank_rows(const std::vector<LowRankTerm>& terms, int64_t r0, int64_t r1, const float* h, int64_t t0,
                       int64_t nt, float* y, int64_t ldy);

// row (cols) += sum over terms of scale * B[r, :] A: row r of the update, for table lookups.
void add_low_rank_row(const std::vector<LowRankTerm>& terms, int64_t r, int64_t cols, float* row);

}  // namespace wren

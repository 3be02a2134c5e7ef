// Merging LoRA updates into a base matrix: W + sum of s * B A, computed once, in float32. A quantized
// base matrix is dequantized first, so the result is exact (what PEFT computes on float weights);
// the price is 4 bytes per element of every adapted matrix. For tools that write a merged model; the
// loader does not merge (format/lora_source.h: adapters are applied at run time, kernels/low_rank.h).
#pragma once

#include <cstdint>
#include <vector>

#include "format/lora_adapter.h"
#include "format/tensor_source.h"
#include "util/thread_pool.h"

namespace wren {

// w (n_rows x cols, row-major: rows row0.. of the base matrix) += u.scale * B[row0 .. row0 + n_rows) A
// for each update (each of the base matrix's shape, cols columns).
void add_lora_rows(float* w, int64_t row0, int64_t n_rows, int64_t cols, const std::vector<const LoraUpdate*>& updates);

// The base tensor t (a matrix of t.dim(1) rows x t.dim(0) columns, any weight type we dequantize)
// with the updates added, as float32 (rows x cols). Row blocks run on pool when one is given.
std::vector<float> merge_lora_matrix(const GgufTensor& t, const std::vector<const LoraUpdate*>& updates,
                                     ThreadPool* pool);

}  // namespace wren

// Dequantization of weight rows and quantization of activation vectors.
#pragma once

#include <cstddef>

#include "tensor/blocks.h"
#include "tensor/dtype.h"

namespace wren {

// dst[0..n) = the n elements of a row of type t starting at src (n a multiple of the block size).
void dequantize_row(DType t, const void* src, float* dst, size_t n);

// Quantizes n floats (n a multiple of 32) to n/32 ActQ8 blocks (symmetric, round to nearest). A block
// holding NaN or inf gets NaN scale and sums (its dot products are NaN, as in float arithmetic).
void quantize_act_q8(const float* x, ActQ8* out, size_t n);

}  // namespace wren

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

// The end of every activation quantizer, scalar and SIMD (kernels/avx2, avx512): a block's scale
// and its sums from d and the integer sums of its two halves, one expression for all of them so
// their bits agree. Internal linkage: called from files built with different -m flags.
namespace {
inline void set_act_sums(ActQ8& o, float d, int sum0, int sum1) {
  o.d = d;
  o.sum = d * static_cast<float>(sum0 + sum1);
  o.half[0] = d * static_cast<float>(sum0);
  o.half[1] = d * static_cast<float>(sum1);
  o.isum[0] = sum0;
  o.isum[1] = sum1;
}
}  // namespace

}  // namespace wren

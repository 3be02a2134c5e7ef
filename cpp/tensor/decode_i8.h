// The codebook formats that are not packed for the kernels — the lattice-grid I-quants (IQ1_S, IQ1_M,
// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S), base-3 ternary TQ1_0 (TQ2_0 is packed) and the 4-bit floats
// (MXFP4, NVFP4) — decoded to whole numbers: weight i = scale[i / 16] * q[i], q an int8 and one float
// scale per 16 weights. Every format is exactly that (IQ1's +-1/8 offset becomes q = 8 * grid +- 1
// with the scale divided by 8), and each product is the float32 one gguf-py's dequantizer computes,
// so one decoder per format serves both dequantize_row (tensor/quant.h) and the integer dot products
// of kernels/ (DotI8Fn), which multiply q with 8-bit activations.
//
// |q| <= 127 for every format (IQ3_XXS's grid reaches 62, MXFP4's doubled levels 12), so products with
// activations in [-127, 127] cannot overflow an int16 pair sum.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace wren {

// Decodes the n weights (n a multiple of the type's block size) at src into q[0..n) and
// scale[0..n / 16).
using DecodeI8Fn = void (*)(const void* src, int8_t* q, float* scale, size_t n);

// The decoder of t, or nullptr when t is not one of the formats above.
DecodeI8Fn decode_i8_fn(DType t);

}  // namespace wren

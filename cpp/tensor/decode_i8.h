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
#include <cstring>

#include "tensor/dtype.h"

namespace wren {

// Decodes the n weights (n a multiple of the type's block size) at src into q[0..n) and
// scale[0..n / 16).
using DecodeI8Fn = void (*)(const void* src, int8_t* q, float* scale, size_t n);

// The decoder of t, or nullptr when t is not one of the formats above.
DecodeI8Fn decode_i8_fn(DType t);

namespace {  // internal linkage: also used by kernels built with other -m flags

// 2^(e - 128): the E8M0 scale 2^(e - 127), halved because kFP4Values are doubled. e = 0 and 1 give
// subnormals; e = 255 (NaN in the OCP MX specification) gives 2^127, as gguf-py does.
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// IQ1_M's fp16 d, stored as the top 4 bits of each of its four scale words.
inline uint16_t iq1_m_d_bits(const uint16_t* scales) {
  return static_cast<uint16_t>((scales[0] >> 12) | ((scales[1] >> 8) & 0x00f0) | ((scales[2] >> 4) & 0x0f00) |
                               (scales[3] & 0xf000));
}

}  // namespace

}  // namespace wren

#include "tensor/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/decode_i8.h"
#include "tensor/fp16.h"
#include "tensor/packed.h"
#include "util/errors.h"

namespace wren {

void dequantize_row(DType t, const void* src, float* dst, size_t n) {
  const size_t nb = n / dtype_info(t).block_size;
  // The block formats that are packed for the kernels decode through the packer's own decoder.
  if (packable(t)) return dequantize_file_blocks(t, src, dst, nb);
  // The codebook formats decode to int8 values with a scale per 16, a chunk at a time.
  if (const DecodeI8Fn decode = decode_i8_fn(t)) {
    constexpr size_t kChunk = 4096;  // a multiple of every block size
    int8_t q[kChunk];
    float scale[kChunk / 16];
    const DTypeInfo& info = dtype_info(t);
    const auto* bytes = static_cast<const uint8_t*>(src);
    for (size_t done = 0; done < n; done += kChunk) {
      const size_t m = std::min(kChunk, n - done);
      decode(bytes + done / info.block_size * info.type_size, q, scale, m);
      for (size_t i = 0; i < m; ++i) dst[done + i] = scale[i / 16] * static_cast<float>(q[i]);
    }
    return;
  }
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::F16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(h[i]);
      return;
    }
    case DType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    default:
      throw UnsupportedError(str_cat("tensor type ", dtype_name(t), " is not supported (supported: ",
                                     supported_dtypes(), ")"));
  }
}

void quantize_act_q8(const float* x, ActQ8* out, size_t n) {
  for (size_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0.f;
    bool finite = true;
    for (int j = 0; j < kQK; ++j) {
      amax = std::max(amax, std::fabs(x[j]));
      finite &= std::fabs(x[j]) <= std::numeric_limits<float>::max();  // false for NaN and +-inf
    }
    if (!finite) {
      // NaN or inf (a broken or hostile model file): converting it to an integer would be undefined,
      // and any cast value a made-up finite number. The block's scale and sums become NaN instead, so
      // every dot product with it is NaN -- as the float (exact) path gives for the same activations.
      std::memset(out[b].qs, 0, sizeof(out[b].qs));
      out[b].d = out[b].sum = out[b].half[0] = out[b].half[1] = std::numeric_limits<float>::quiet_NaN();
      out[b].isum[0] = out[b].isum[1] = 0;  // scaled by d (NaN) wherever they are used
      continue;
    }
    const float d = amax / 127.f;
    const float id = d > 0.f ? 1.f / d : 0.f;
    // A block so small that 1/d overflows (amax below ~3.7e-37, d subnormal): x * inf would be inf
    // (NaN for 0), so divide instead; |x / d| <= 127 always.
    const bool divide = id > std::numeric_limits<float>::max();
    // Two simple loops per half (each one vectorizes; a sum indexed by j / 16 kept GCC from it).
    int sum[2];
    for (int h = 0; h < 2; ++h) {
      int s = 0;
      for (int j = 16 * h; j < 16 * h + 16; ++j) {
        // Round half away from zero, inline (no libm call in the per-matmul path).
        const float v = divide ? x[j] / d : x[j] * id;
        const int q = static_cast<int>(v + (v >= 0.f ? 0.5f : -0.5f));
        out[b].qs[j] = static_cast<int8_t>(q);
        s += q;
      }
      sum[h] = s;
    }
    set_act_sums(out[b], d, sum[0], sum[1]);
  }
}

}  // namespace wren

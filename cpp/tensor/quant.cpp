#include "tensor/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/dequant_iq.h"
#include "tensor/fp16.h"
#include "util/errors.h"

namespace wren {
namespace {

void dequant_q4_0(const BlockQ4_0* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>((b[i].qs[j] & 0x0f) - 8) * d;
      y[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const BlockQ4_1* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>(b[i].qs[j] & 0x0f) * d + m;
      y[j + kQK / 2] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

// The 5-bit value of element j (0..31) of a Q5 block: its nibble, and bit j of qh on top.
inline int q5_value(const uint8_t* qs, const uint8_t* qh, int j) {
  const uint32_t high = static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
                        static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
  const int nibble = j < kQK / 2 ? qs[j] & 0x0f : qs[j - kQK / 2] >> 4;
  return nibble | static_cast<int>((high >> j) & 1u) << 4;
}

void dequant_q5_0(const BlockQ5_0* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q5_value(b[i].qs, b[i].qh, j) - 16) * d;
  }
}

void dequant_q5_1(const BlockQ5_1* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q5_value(b[i].qs, b[i].qh, j)) * d + m;
  }
}

void dequant_q8_0(const BlockQ8_0* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

// Q4_K packs 8 six-bit scales and 8 six-bit mins into 12 bytes.
inline void q4k_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q2_K and Q3_K store 2-bit values 4 to a byte: weight 128h + 32s + l of a block is at bits 2s of
// byte 32h + l.
inline int q2_value(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3; }

void dequant_q2_k(const BlockQ2_K* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    for (int sub = 0; sub < kQKK / 16; ++sub) {
      const float dl = d * static_cast<float>(b[i].scales[sub] & 0x0f);
      const float ml = dmin * static_cast<float>(b[i].scales[sub] >> 4);
      for (int l = 0; l < 16; ++l, ++y) *y = dl * static_cast<float>(q2_value(b[i].qs, 16 * sub + l)) - ml;
    }
  }
}

// Sub-block j's 6-bit Q3_K scale: low 4 bits from byte j % 8 (low nibble for j < 8), high 2 bits from
// byte 8 + j % 4 at bits 2 * (j / 4).
inline int q3k_scale(const uint8_t* s, int j) {
  const int low = (s[j % 8] >> (j < 8 ? 0 : 4)) & 0x0f;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | high << 4;
}

void dequant_q3_k(const BlockQ3_K* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int sub = 0; sub < kQKK / 16; ++sub) {
      const float dl = d * static_cast<float>(q3k_scale(b[i].scales, sub) - 32);
      for (int l = 0; l < 16; ++l, ++y) {
        const int e = 16 * sub + l;
        const bool high = (b[i].hmask[e % 32] >> (e / 32)) & 1;  // set: no offset
        *y = dl * static_cast<float>(q2_value(b[i].qs, e) - (high ? 0 : 4));
      }
    }
  }
}

void dequant_q4_k(const BlockQ4_K* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int sub = 0; sub < 8; sub += 2, q += 32) {  // two sub-blocks share 32 bytes of nibbles
      uint8_t sc0, m0, sc1, m1;
      q4k_scale_min(sub, b[i].scales, &sc0, &m0);
      q4k_scale_min(sub + 1, b[i].scales, &sc1, &m1);
      const float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
      for (int l = 0; l < 32; ++l) *y++ = d0 * static_cast<float>(q[l] & 0x0f) - o0;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] >> 4) - o1;
    }
  }
}

void dequant_q5_k(const BlockQ5_K* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    for (int sub = 0; sub < 8; ++sub) {  // sub-blocks 2c, 2c+1 share 32 bytes of nibbles
      uint8_t sc, m;
      q4k_scale_min(sub, b[i].scales, &sc, &m);
      const float dl = d * sc, ml = dmin * m;
      const uint8_t* q = b[i].qs + 32 * (sub / 2);
      for (int l = 0; l < 32; ++l, ++y) {
        const int q5 = ((q[l] >> (4 * (sub % 2))) & 0x0f) | ((b[i].qh[l] >> sub) & 1) << 4;
        *y = dl * static_cast<float>(q5) - ml;
      }
    }
  }
}

void dequant_q6_k(const BlockQ6_K* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, size_t n) {
  const size_t nb = n / dtype_info(t).block_size;
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
    case DType::Q4_0: dequant_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb); return;
    case DType::Q4_1: dequant_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb); return;
    case DType::Q5_0: dequant_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb); return;
    case DType::Q5_1: dequant_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb); return;
    case DType::Q8_0: dequant_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb); return;
    case DType::Q4_K: dequant_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb); return;
    case DType::Q2_K: dequant_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb); return;
    case DType::Q3_K: dequant_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb); return;
    case DType::Q5_K: dequant_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb); return;
    case DType::Q6_K: dequant_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb); return;
    case DType::IQ4_NL: dequant_iq4_nl(static_cast<const BlockIQ4_NL*>(src), dst, nb); return;
    case DType::IQ4_XS: dequant_iq4_xs(static_cast<const BlockIQ4_XS*>(src), dst, nb); return;
    case DType::IQ2_XXS: dequant_iq2_xxs(static_cast<const BlockIQ2_XXS*>(src), dst, nb); return;
    case DType::IQ2_XS: dequant_iq2_xs(static_cast<const BlockIQ2_XS*>(src), dst, nb); return;
    case DType::IQ2_S: dequant_iq2_s(static_cast<const BlockIQ2_S*>(src), dst, nb); return;
    case DType::IQ3_XXS: dequant_iq3_xxs(static_cast<const BlockIQ3_XXS*>(src), dst, nb); return;
    case DType::IQ3_S: dequant_iq3_s(static_cast<const BlockIQ3_S*>(src), dst, nb); return;
    case DType::IQ1_S: dequant_iq1_s(static_cast<const BlockIQ1_S*>(src), dst, nb); return;
    case DType::IQ1_M: dequant_iq1_m(static_cast<const BlockIQ1_M*>(src), dst, nb); return;
    case DType::TQ1_0: dequant_tq1_0(static_cast<const BlockTQ1_0*>(src), dst, nb); return;
    case DType::TQ2_0: dequant_tq2_0(static_cast<const BlockTQ2_0*>(src), dst, nb); return;
    case DType::MXFP4: dequant_mxfp4(static_cast<const BlockMXFP4*>(src), dst, nb); return;
    case DType::NVFP4: dequant_nvfp4(static_cast<const BlockNVFP4*>(src), dst, nb); return;
    default:
      throw UnsupportedError(str_cat("tensor type ", dtype_name(t), " is not supported (supported: ",
                                     supported_dtypes(), ")"));
  }
}

void quantize_act_q8(const float* x, ActQ8* out, size_t n) {
  for (size_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0.f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d > 0.f ? 1.f / d : 0.f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      // Round half away from zero, inline (no libm call in the per-matmul path).
      const float v = x[j] * id;
      const int q = static_cast<int>(v + (v >= 0.f ? 0.5f : -0.5f));
      out[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    out[b].d = d;
    out[b].sum = d * static_cast<float>(sum);
  }
}

}  // namespace wren

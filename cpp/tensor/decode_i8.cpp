#include "tensor/decode_i8.h"

#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/iq_tables.h"

namespace wren {
namespace {

inline uint32_t load_u32(const uint8_t* p) {  // little-endian, as the file stores it
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store8(int8_t* q, uint64_t bytes) { std::memcpy(q, &bytes, sizeof bytes); }

// kSignBytes.v[s]: byte j is 0xff where bit j of s is set.
struct SignBytes {
  uint64_t v[256];
  constexpr SignBytes() : v{} {
    for (int s = 0; s < 256; ++s)
      for (int j = 0; j < 8; ++j)
        if ((s >> j) & 1) v[s] |= uint64_t{0xff} << (8 * j);
  }
};
constexpr SignBytes kSignBytes;

// The 8 magnitudes of a grid entry (each in 1..127) as int8, negated where `signs` has a bit set:
// per byte, -x = (x ^ 0xff) + 1, which cannot carry into the next byte as x >= 1.
inline uint64_t signed8(uint64_t magnitudes, uint8_t signs) {
  const uint64_t m = kSignBytes.v[signs];
  return (magnitudes ^ m) + (m & 0x0101010101010101ull);
}

// IQ1: q = 8 * grid + 1, or 8 * grid - 1 where the entry's delta is negative, for the grid bytes
// int8 -1, 0, +1 (0xff, 0x00, 0x01), 8 bytes at once: 8 * g per byte is (g << 3) masked to the byte's
// own bits, + 1 cannot carry (at most 0xf8 + 1), and 8 * g - 1 = ~(8 * -g), where -g swaps 0xff and
// 0x01 (an xor with 0xfe where bit 0 is set).
// Both are computed and one selected without a branch (the delta signs are random).
inline uint64_t iq1_entry(uint64_t g, bool negative_delta) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh5 = 0xf8f8f8f8f8f8f8f8ull;
  const uint64_t plus = ((g << 3) & kHigh5) + kOnes;
  const uint64_t minus = ~(((g ^ ((g & kOnes) * 0xfe)) << 3) & kHigh5);
  const uint64_t pick_minus = 0 - static_cast<uint64_t>(negative_delta);
  return (plus & ~pick_minus) | (minus & pick_minus);
}

// The IQ2 formats' group scale: d * (0.5 + ls) / 4 (as gguf-py: d * (0.5 + ls) * 0.25).
inline float iq2_scale(float d, unsigned ls) { return d * (0.5f + static_cast<float>(ls)) * 0.25f; }

// IQ2_XS and IQ2_S: 16 groups of 16, ls of group j in nibble j % 2 of byte j / 2.
inline void iq2_group_scales(float d, const uint8_t* scales, float* scale) {
  for (int j = 0; j < kQKK / 16; ++j) scale[j] = iq2_scale(d, (scales[j / 2] >> (4 * (j % 2))) & 0x0f);
}

void decode_iq2_xxs(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ2_XXS*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const uint8_t* idx = b[i].qs + 8 * g;
      const uint32_t w = load_u32(idx + 4);
      scale[2 * g] = scale[2 * g + 1] = iq2_scale(d, w >> 28);
      for (int k = 0; k < 4; ++k)
        store8(q + 32 * g + 8 * k, signed8(kIQ2XXSGrid[idx[k]], kIQ2Signs[(w >> (7 * k)) & 127]));
    }
  }
}

void decode_iq2_xs(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ2_XS*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    iq2_group_scales(d, b[i].scales, scale);
    for (int e = 0; e < kQKK / 8; ++e) {
      const uint16_t v = b[i].qs[e];
      store8(q + 8 * e, signed8(kIQ2XSGrid[v & 511], kIQ2Signs[v >> 9]));
    }
  }
}

void decode_iq2_s(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ2_S*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    iq2_group_scales(d, b[i].scales, scale);
    for (int e = 0; e < kQKK / 8; ++e) {
      const unsigned idx = b[i].qs[e] | ((b[i].qh[e / 4] >> (2 * (e % 4))) & 3u) << 8;
      store8(q + 8 * e, signed8(kIQ2SGrid[idx], b[i].signs[e]));
    }
  }
}

void decode_iq3_xxs(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ3_XXS*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const uint32_t w = load_u32(b[i].sas + 4 * g);
      scale[2 * g] = scale[2 * g + 1] = d * (0.5f + static_cast<float>(w >> 28)) * 0.5f;
      for (int k = 0; k < 4; ++k) {  // 8 weights: grid entries 8g + 2k and 8g + 2k + 1
        const uint64_t entry = kIQ3XXSGrid[b[i].qs[8 * g + 2 * k]] |
                               static_cast<uint64_t>(kIQ3XXSGrid[b[i].qs[8 * g + 2 * k + 1]]) << 32;
        store8(q + 32 * g + 8 * k, signed8(entry, kIQ2Signs[(w >> (7 * k)) & 127]));
      }
    }
  }
}

void decode_iq3_s(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ3_S*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const int ls = (b[i].scales[g / 2] >> (4 * (g % 2))) & 0x0f;
      scale[2 * g] = scale[2 * g + 1] = d * static_cast<float>(1 + 2 * ls);
      for (int k = 0; k < 4; ++k) {  // 8 weights: grid entries 8g + 2k and 8g + 2k + 1
        const int e = 8 * g + 2 * k;
        const unsigned lo = b[i].qs[e] | ((b[i].qh[g] >> (2 * k)) & 1u) << 8;
        const unsigned hi = b[i].qs[e + 1] | ((b[i].qh[g] >> (2 * k + 1)) & 1u) << 8;
        const uint64_t entry = kIQ3SGrid[lo] | static_cast<uint64_t>(kIQ3SGrid[hi]) << 32;
        store8(q + 32 * g + 8 * k, signed8(entry, b[i].signs[4 * g + k]));
      }
    }
  }
}

// IQ1 weights are dl * (grid +- 1/8) = (dl / 8) * (8 * grid +- 1): the same real number, so the same
// float32 product (dl / 8 is exact).
void decode_iq1_s(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ1_S*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const uint16_t qh = b[i].qh[g];
      scale[2 * g] = scale[2 * g + 1] = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1) * 0.125f;
      for (int k = 0; k < 4; ++k) {
        const unsigned idx = b[i].qs[4 * g + k] | ((qh >> (3 * k)) & 7u) << 8;
        store8(q + 32 * g + 8 * k, iq1_entry(kIQ1SGrid[idx], qh & 0x8000));
      }
    }
  }
}

void decode_iq1_m(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockIQ1_M*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const uint16_t* sc = b[i].scales;
    const float d = fp16_to_f32(iq1_m_d_bits(sc));
    for (int s = 0; s < kQKK / 16; ++s)
      scale[s] = d * static_cast<float>(2 * ((sc[s / 4] >> (3 * (s % 4))) & 7) + 1) * 0.125f;
    for (int e = 0; e < kQKK / 8; ++e) {
      const unsigned h = (b[i].qh[e / 2] >> (4 * (e % 2))) & 0x0f;
      store8(q + 8 * e, iq1_entry(kIQ1SGrid[b[i].qs[e] | (h & 7u) << 8], h & 8));
    }
  }
}

// Ternary digit k (0..4) of a TQ1_0 byte v: v holds ceil(256 * n / 243) for the base-3 number n whose
// most significant digit is digit 0, so multiplying by 3^k (mod 256) brings digit k to the top.
inline int tq1_digit(uint8_t v, int k) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t shifted = static_cast<uint8_t>(v * kPow3[k]);
  return (static_cast<int>(shifted) * 3) >> 8;
}

void decode_tq1_0(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockTQ1_0*>(src);
  for (size_t i = 0; i < n / kQKK; ++i, q += kQKK, scale += kQKK / 16) {
    const float d = fp16_to_f32(b[i].d);
    for (int s = 0; s < kQKK / 16; ++s) scale[s] = d;
    for (int k = 0; k < 5; ++k)
      for (int l = 0; l < 32; ++l) q[32 * k + l] = static_cast<int8_t>(tq1_digit(b[i].qs[l], k) - 1);
    for (int k = 0; k < 5; ++k)
      for (int l = 0; l < 16; ++l) q[160 + 16 * k + l] = static_cast<int8_t>(tq1_digit(b[i].qs[32 + l], k) - 1);
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 4; ++l) q[240 + 4 * k + l] = static_cast<int8_t>(tq1_digit(b[i].qh[l], k) - 1);
  }
}

// An unsigned E4M3 scale, halved (kFP4Values are doubled); the byte 0x7f (NaN) counts as 0. Bit 7 is
// not part of the value.
inline float ue4m3_half(uint8_t x) {
  if (x == 0x7f) return 0.f;
  const int exp = (x >> 3) & 0x0f, man = x & 7;
  const float v = exp == 0 ? std::ldexp(static_cast<float>(man), -9)
                           : std::ldexp(static_cast<float>(8 + man), exp - 10);
  return v * 0.5f;
}

void decode_mxfp4(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockMXFP4*>(src);
  for (size_t i = 0; i < n / kQK; ++i, q += kQK, scale += 2) {
    scale[0] = scale[1] = e8m0_half(b[i].e);
    for (int j = 0; j < kQK / 2; ++j) {
      q[j] = kFP4Values[b[i].qs[j] & 0x0f];
      q[j + kQK / 2] = kFP4Values[b[i].qs[j] >> 4];
    }
  }
}

void decode_nvfp4(const void* src, int8_t* q, float* scale, size_t n) {
  const auto* b = static_cast<const BlockNVFP4*>(src);
  for (size_t i = 0; i < n / 64; ++i) {
    for (int s = 0; s < 4; ++s, q += 16) {
      *scale++ = ue4m3_half(b[i].d[s]);
      const uint8_t* v = b[i].qs + 8 * s;
      for (int j = 0; j < 8; ++j) {
        q[j] = kFP4Values[v[j] & 0x0f];
        q[j + 8] = kFP4Values[v[j] >> 4];
      }
    }
  }
}

}  // namespace

DecodeI8Fn decode_i8_fn(DType t) {
  switch (t) {
    case DType::IQ2_XXS: return decode_iq2_xxs;
    case DType::IQ2_XS: return decode_iq2_xs;
    case DType::IQ2_S: return decode_iq2_s;
    case DType::IQ3_XXS: return decode_iq3_xxs;
    case DType::IQ3_S: return decode_iq3_s;
    case DType::IQ1_S: return decode_iq1_s;
    case DType::IQ1_M: return decode_iq1_m;
    case DType::TQ1_0: return decode_tq1_0;
    case DType::MXFP4: return decode_mxfp4;
    case DType::NVFP4: return decode_nvfp4;
    default: return nullptr;
  }
}

}  // namespace wren

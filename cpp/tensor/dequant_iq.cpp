#include "tensor/dequant_iq.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/iq_tables.h"

namespace wren {
namespace {

inline uint32_t load_u32(const uint8_t* p) {  // little-endian, as the file stores it
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// y[0..8) = db * grid weights of one 8-weight entry, negated where `signs` has a bit set.
inline void grid8(float db, uint64_t entry, uint8_t signs, float* y) {
  for (int j = 0; j < 8; ++j)
    y[j] = db * static_cast<float>(grid_byte(entry, j)) * ((signs >> j) & 1 ? -1.f : 1.f);
}

// The IQ2 formats' group scale: d * (0.5 + ls) / 4 (as gguf-py: d * (0.5 + ls) * 0.25).
inline float iq2_scale(float d, unsigned ls) { return d * (0.5f + static_cast<float>(ls)) * 0.25f; }

// y[0..8) = dl * (grid + delta) for one IQ1 entry (grid weights int8 -1, 0, +1).
inline void grid8_iq1(float dl, float delta, uint64_t entry, float* y) {
  for (int j = 0; j < 8; ++j)
    y[j] = dl * (static_cast<float>(static_cast<int8_t>(grid_byte(entry, j))) + delta);
}

constexpr float kIQ1Delta = 0.125f;

}  // namespace

void dequant_iq2_xxs(const BlockIQ2_XXS* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const uint8_t* idx = b[i].qs + 8 * g;
      const uint32_t w = load_u32(idx + 4);
      const float db = iq2_scale(d, w >> 28);
      for (int k = 0; k < 4; ++k, y += 8) grid8(db, kIQ2XXSGrid[idx[k]], kIQ2Signs[(w >> (7 * k)) & 127], y);
    }
  }
}

void dequant_iq2_xs(const BlockIQ2_XS* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQKK / 8; ++e, y += 8) {
      const unsigned ls = (b[i].scales[e / 4] >> (4 * ((e / 2) % 2))) & 0x0f;
      const uint16_t q = b[i].qs[e];
      grid8(iq2_scale(d, ls), kIQ2XSGrid[q & 511], kIQ2Signs[q >> 9], y);
    }
  }
}

void dequant_iq2_s(const BlockIQ2_S* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQKK / 8; ++e, y += 8) {
      const unsigned ls = (b[i].scales[e / 4] >> (4 * ((e / 2) % 2))) & 0x0f;
      const unsigned idx = b[i].qs[e] | ((b[i].qh[e / 4] >> (2 * (e % 4))) & 3u) << 8;
      grid8(iq2_scale(d, ls), kIQ2SGrid[idx], b[i].signs[e], y);
    }
  }
}

void dequant_iq3_xxs(const BlockIQ3_XXS* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const uint32_t w = load_u32(b[i].sas + 4 * g);
      const float db = d * (0.5f + static_cast<float>(w >> 28)) * 0.5f;
      for (int k = 0; k < 4; ++k, y += 8) {  // 8 weights: grid entries 8g + 2k and 8g + 2k + 1
        const uint8_t signs = kIQ2Signs[(w >> (7 * k)) & 127];
        const uint64_t entry = kIQ3XXSGrid[b[i].qs[8 * g + 2 * k]] |
                               static_cast<uint64_t>(kIQ3XXSGrid[b[i].qs[8 * g + 2 * k + 1]]) << 32;
        grid8(db, entry, signs, y);
      }
    }
  }
}

void dequant_iq3_s(const BlockIQ3_S* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const int ls = (b[i].scales[g / 2] >> (4 * (g % 2))) & 0x0f;
      const float db = d * static_cast<float>(1 + 2 * ls);
      for (int k = 0; k < 4; ++k, y += 8) {  // 8 weights: grid entries 8g + 2k and 8g + 2k + 1
        const int e = 8 * g + 2 * k;
        const unsigned lo = b[i].qs[e] | ((b[i].qh[g] >> (2 * k)) & 1u) << 8;
        const unsigned hi = b[i].qs[e + 1] | ((b[i].qh[g] >> (2 * k + 1)) & 1u) << 8;
        const uint64_t entry = kIQ3SGrid[lo] | static_cast<uint64_t>(kIQ3SGrid[hi]) << 32;
        grid8(db, entry, b[i].signs[4 * g + k], y);
      }
    }
  }
}

void dequant_iq1_s(const BlockIQ1_S* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < kQKK / 32; ++g) {
      const uint16_t qh = b[i].qh[g];
      const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -kIQ1Delta : kIQ1Delta;
      for (int k = 0; k < 4; ++k, y += 8) {
        const unsigned idx = b[i].qs[4 * g + k] | ((qh >> (3 * k)) & 7u) << 8;
        grid8_iq1(dl, delta, kIQ1SGrid[idx], y);
      }
    }
  }
}

void dequant_iq1_m(const BlockIQ1_M* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    const uint16_t* sc = b[i].scales;
    const uint16_t dh = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) |
                                              (sc[3] & 0xf000));
    const float d = fp16_to_f32(dh);
    for (int e = 0; e < kQKK / 8; ++e, y += 8) {  // entry e: 8 weights; 2 entries share a scale
      const int s = e / 2;
      const float dl = d * static_cast<float>(2 * ((sc[s / 4] >> (3 * (s % 4))) & 7) + 1);
      const unsigned h = (b[i].qh[e / 2] >> (4 * (e % 2))) & 0x0f;
      const unsigned idx = b[i].qs[e] | (h & 7u) << 8;
      grid8_iq1(dl, h & 8 ? -kIQ1Delta : kIQ1Delta, kIQ1SGrid[idx], y);
    }
  }
}

namespace {

// Ternary digit k (0..4) of a TQ1_0 byte v: v holds ceil(256 * n / 243) for the base-3 number n whose
// most significant digit is digit 0, so multiplying by 3^k (mod 256) brings digit k to the top.
inline int tq1_digit(uint8_t v, int k) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t shifted = static_cast<uint8_t>(v * kPow3[k]);
  return (static_cast<int>(shifted) * 3) >> 8;
}

}  // namespace

void dequant_tq1_0(const BlockTQ1_0* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = fp16_to_f32(b[i].d);
    for (int k = 0; k < 5; ++k)
      for (int l = 0; l < 32; ++l) y[32 * k + l] = d * static_cast<float>(tq1_digit(b[i].qs[l], k) - 1);
    for (int k = 0; k < 5; ++k)
      for (int l = 0; l < 16; ++l) y[160 + 16 * k + l] = d * static_cast<float>(tq1_digit(b[i].qs[32 + l], k) - 1);
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 4; ++l) y[240 + 4 * k + l] = d * static_cast<float>(tq1_digit(b[i].qh[l], k) - 1);
  }
}

void dequant_tq2_0(const BlockTQ2_0* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQKK) {
    const float d = fp16_to_f32(b[i].d);
    for (int h = 0; h < 2; ++h)
      for (int s = 0; s < 4; ++s)
        for (int l = 0; l < 32; ++l)
          y[128 * h + 32 * s + l] = d * static_cast<float>(((b[i].qs[32 * h + l] >> (2 * s)) & 3) - 1);
  }
}

namespace {

// 2^(e - 128): the E8M0 scale 2^(e - 127), halved because kFP4Values are doubled. e = 0 and 1 give
// subnormals; e = 255 (NaN in the OCP MX specification) gives 2^127, as gguf-py does.
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
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

}  // namespace

void dequant_mxfp4(const BlockMXFP4* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i, y += kQK) {
    const float d = e8m0_half(b[i].e);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(kFP4Values[b[i].qs[j] & 0x0f]);
      y[j + kQK / 2] = d * static_cast<float>(kFP4Values[b[i].qs[j] >> 4]);
    }
  }
}

void dequant_nvfp4(const BlockNVFP4* b, float* y, size_t nb) {
  for (size_t i = 0; i < nb; ++i) {
    for (int s = 0; s < 4; ++s, y += 16) {
      const float d = ue4m3_half(b[i].d[s]);
      const uint8_t* q = b[i].qs + 8 * s;
      for (int j = 0; j < 8; ++j) {
        y[j] = d * static_cast<float>(kFP4Values[q[j] & 0x0f]);
        y[j + 8] = d * static_cast<float>(kFP4Values[q[j] >> 4]);
      }
    }
  }
}

}  // namespace wren

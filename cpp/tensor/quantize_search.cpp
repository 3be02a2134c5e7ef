// The search-based quantizers: K-quants (Q2_K..Q6_K) and the non-linear 4-bit formats (IQ4_NL,
// IQ4_XS). Each works in two stages:
//  1. every sub-block (16 or 32 weights) gets the scale s (and, for the offset formats, the offset b)
//     that minimises sum (x - w)^2 over the dequantized weights w = s * level + b: a set of candidate
//     scales around "largest weight on the outermost level" is rounded and then refitted by least
//     squares, and the best fit wins;
//  2. the sub-block scales (and offsets) are quantized against one fp16 super-scale, and every weight
//     is rounded again to the level nearest to it under the scale the decoder will actually use.
// The block bytes are written by small encoders, the inverses of decode_block in packed.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/quantize.h"

namespace wren {
namespace {

constexpr int kMaxGroup = 32;  // weights per sub-block, at most

// Round half away from zero, inline (std::lround is a library call, and this is the inner loop).
// Arguments are clamped to a small range first, so the conversion cannot overflow.
inline int nearest_int(float v) {
  v = std::fmin(std::fmax(v, -1e6f), 1e6f);
  return static_cast<int>(v + (v >= 0.f ? 0.5f : -0.5f));
}
int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Levels lo..hi (integers): the nearest to v.
struct UniformLevels {
  int lo, hi;
  int index(float v) const { return clampi(nearest_int(v), lo, hi) - lo; }
  float value(int i) const { return static_cast<float>(lo + i); }
};

// The 16 levels of IQ4 (sorted): the nearest to v. The midpoints between levels are multiples of
// 1/2, so every half-unit cell [k/2, k/2 + 1/2) has one nearest level (exact ties at a cell's left
// edge go up, which costs no error), and a table of the 512 cells over [-128, 128) answers in one load.
struct Iq4Levels {
  static const uint8_t* table() {
    static const auto t = [] {
      std::array<uint8_t, 512> n{};
      for (int k = 0; k < 512; ++k) {
        const float v = static_cast<float>(k - 256) * 0.5f + 0.25f;
        int best = 0;
        for (int i = 1; i < 16; ++i)
          if (std::fabs(v - static_cast<float>(kIQ4Values[i])) < std::fabs(v - static_cast<float>(kIQ4Values[best])))
            best = i;
        n[static_cast<size_t>(k)] = static_cast<uint8_t>(best);
      }
      return n;
    }();
    return t.data();
  }
  const uint8_t* nearest = table();
  int index(float v) const {
    const float cell = std::floor(v * 2.f);
    const int k = cell < -256.f ? 0 : cell > 255.f ? 511 : static_cast<int>(cell) + 256;
    return nearest[k];
  }
  float value(int i) const { return static_cast<float>(kIQ4Values[i]); }
};

// Stage 1, symmetric formats: x ~ s * value(q). Candidate scales put the largest-magnitude weight
// on (or near, +- n_steps steps) the lowest and the highest level; each candidate's rounding is refitted
// (s = sum x v / sum v^2), and the fit with the least error (the largest (sum x v)^2 / sum v^2) wins.
// Returns s; q gets the level indices.
template <typename Levels>
float fit_scale(const float* x, const float* w, int n, const Levels& lv, float lowest, float highest, float step,
                int n_steps, uint8_t* q) {
  float xm = 0.f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(xm)) xm = x[i];
  if (xm == 0.f) {
    const int zero = lv.index(0.f);
    for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(zero);
    return 0.f;
  }
  float best_s = 0.f, best_score = -1.f;
  uint8_t trial[kMaxGroup];
  auto try_scale = [&](float s) {
    if (s == 0.f || !std::isfinite(s)) return;
    const float inv = 1.f / s;
    float sxv = 0.f, svv = 0.f;
    for (int i = 0; i < n; ++i) {
      trial[i] = static_cast<uint8_t>(lv.index(x[i] * inv));
      const float v = lv.value(trial[i]);
      sxv += w[i] * x[i] * v;
      svv += w[i] * v * v;
    }
    if (svv <= 0.f) return;
    const float score = sxv * sxv / svv;
    if (score > best_score) {
      best_score = score;
      best_s = sxv / svv;
      std::memcpy(q, trial, static_cast<size_t>(n));
    }
  };
  for (int k = -n_steps; k <= n_steps; ++k) {
    try_scale(xm / (lowest + step * static_cast<float>(k)));
    try_scale(xm / (highest + step * static_cast<float>(k)));
  }
  for (int it = 0; it < 2; ++it) try_scale(best_s);  // re-round under the refitted scale
  return best_s;
}

// Stage 1, offset formats: x ~ s * q + b with q in 0..top and b <= 0 (stored as a non-negative
// "min" m = -b). Candidates spread the range [min(x, 0), max(x)] over top +- 1 steps; each rounding
// is refitted by least squares in (s, b) (b clamped to <= 0) and scored by its squared error.
float fit_scale_offset(const float* x, const float* w, int n, int top, float* b_out, uint8_t* q) {
  float lo = 0.f, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (hi <= lo) {  // every weight is the same non-positive value
    for (int i = 0; i < n; ++i) q[i] = 0;
    *b_out = lo;
    return 0.f;
  }
  float best_err = INFINITY, best_s = (hi - lo) / static_cast<float>(top), best_b = lo;
  uint8_t trial[kMaxGroup];
  auto try_fit = [&](float s, float b) {
    if (!(s > 0.f) || !std::isfinite(s)) return;
    const float inv = 1.f / s;
    float sw = 0.f, sq = 0.f, sqq = 0.f, sx = 0.f, sxq = 0.f;  // weighted sums
    for (int i = 0; i < n; ++i) {
      trial[i] = static_cast<uint8_t>(clampi(nearest_int((x[i] - b) * inv), 0, top));
      const float v = trial[i];
      sw += w[i];
      sq += w[i] * v;
      sqq += w[i] * v * v;
      sx += w[i] * x[i];
      sxq += w[i] * x[i] * v;
    }
    const float det = sw * sqq - sq * sq;
    float fs, fb;
    if (det > 0.f) {
      fs = (sw * sxq - sq * sx) / det;
      fb = (sqq * sx - sq * sxq) / det;
    } else {
      fs = s;
      fb = b;
    }
    if (fb > 0.f) {  // the format can only subtract: refit the scale alone with b = 0
      fb = 0.f;
      fs = sqq > 0.f ? sxq / sqq : s;
    }
    if (!(fs > 0.f)) return;
    float err = 0.f;
    for (int i = 0; i < n; ++i) {
      const float d = fs * static_cast<float>(trial[i]) + fb - x[i];
      err += w[i] * d * d;
    }
    if (err < best_err) {
      best_err = err;
      best_s = fs;
      best_b = fb;
      std::memcpy(q, trial, static_cast<size_t>(n));
    }
  };
  for (int k = -10; k <= 10; ++k) try_fit((hi - lo) / (static_cast<float>(top) + 0.1f * static_cast<float>(k)), lo);
  for (int it = 0; it < 2; ++it) try_fit(best_s, best_b);
  *b_out = best_b;
  return best_s;
}

// Stage 2 helpers. A stored fp16 scale, and the float the decoder will read back.
float stored(float v, uint16_t* bits) {
  *bits = f32_to_fp16(v);
  return fp16_to_f32(*bits);
}

// Quantizes non-negative values v[0..n) to integers 0..top against one fp16 scale (the largest value on
// top); writes the integers and returns the scale as stored.
float quantize_unsigned_scales(const float* v, int n, int top, uint16_t* bits, uint8_t* out) {
  float vmax = 0.f;
  for (int j = 0; j < n; ++j) vmax = std::max(vmax, v[j]);
  const float d = stored(vmax / static_cast<float>(top), bits);
  for (int j = 0; j < n; ++j) out[j] = d > 0.f ? static_cast<uint8_t>(clampi(nearest_int(v[j] / d), 0, top)) : 0;
  return d;
}

// Quantizes signed values v[0..n) to integers lo..hi (lo < 0) against one fp16 scale (the largest
// magnitude on lo); writes the integers and returns the scale as stored.
float quantize_signed_scales(const float* v, int n, int lo, int hi, uint16_t* bits, int* out) {
  float vm = 0.f;
  for (int j = 0; j < n; ++j)
    if (std::fabs(v[j]) > std::fabs(vm)) vm = v[j];
  const float d = stored(vm / static_cast<float>(lo), bits);
  for (int j = 0; j < n; ++j) out[j] = d != 0.f ? clampi(nearest_int(v[j] / d), lo, hi) : 0;
  return d;
}

// Re-rounds every weight of a sub-block under its final scale s (and offset b): level indices.
template <typename Levels>
void requantize(const float* x, int n, const Levels& lv, float s, uint8_t* q) {
  if (s == 0.f) {
    const int zero = lv.index(0.f);
    for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(zero);
    return;
  }
  const float inv = 1.f / s;
  for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(lv.index(x[i] * inv));
}

void requantize_offset(const float* x, int n, int top, float s, float b, uint8_t* q) {
  const float inv = s > 0.f ? 1.f / s : 0.f;
  for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(s > 0.f ? clampi(nearest_int((x[i] - b) * inv), 0, top) : 0);
}

// How much each weight's error counts in the scale search: w = x^2 + lambda * mean(x^2) over the
// super-block. Large weights carry more of a layer's output, so their rounding matters more than the
// plain squared error says; lambda keeps the small weights in the fit. The lambdas were picked by
// perplexity of SmolLM2 requantized from F16 (2000 tokens, against llama.cpp's file of the same mix):
// plain squared error made the 3-bit ffn_down of the Q2_K mix 4.7% worse than llama.cpp's, x^2
// weighting 5% better; lambda = 1 elsewhere left every mix at 0.95-0.996x llama.cpp's perplexity.
enum Fmt { kFQ2_K, kFQ3_K, kFQ4_K, kFQ5_K, kFQ6_K, kFIQ4_NL, kFIQ4_XS };
constexpr float kLambda[] = {1.f, 0.f, 1.f, 1.f, 1.f, 1.f, 1.f};

void importance(const float* x, int n, Fmt f, float* w) {
  // Computed on x / max|x| (only ratios matter), so that neither huge nor tiny weights overflow.
  float amax = 0.f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float inv = amax > 0.f ? 1.f / amax : 0.f;
  float s2 = 0.f;
  for (int i = 0; i < n; ++i) {
    w[i] = x[i] * inv * (x[i] * inv);
    s2 += w[i];
  }
  const float floor = kLambda[f] * s2 / static_cast<float>(n) + 1e-20f;
  for (int i = 0; i < n; ++i) w[i] += floor;
}

// The offset K-quants (Q2_K: 16 x 16, 2 bits, 4-bit scales; Q4_K / Q5_K: 8 x 32, 4 / 5 bits, 6-bit
// scales): x = d * sc * q - dmin * m. Fills the integer parameters; u gets q per weight.
void quantize_offset_super(const float* x, Fmt fmt, int sub, int top, int scale_top, uint16_t* d_bits,
                           uint16_t* dmin_bits, uint8_t* sc, uint8_t* m, uint8_t* u) {
  const int n_sub = kQKK / sub;
  float w[kQKK];
  importance(x, kQKK, fmt, w);
  float s[16], mins[16];
  for (int j = 0; j < n_sub; ++j) {
    float b;
    s[j] = fit_scale_offset(x + sub * j, w + sub * j, sub, top, &b, u + sub * j);
    mins[j] = -b;
  }
  const float d = quantize_unsigned_scales(s, n_sub, scale_top, d_bits, sc);
  const float dmin = quantize_unsigned_scales(mins, n_sub, scale_top, dmin_bits, m);
  for (int j = 0; j < n_sub; ++j)
    requantize_offset(x + sub * j, sub, top, d * sc[j], -dmin * m[j], u + sub * j);
}

// The symmetric sub-block formats (Q3_K: levels -4..3, 6-bit scales; Q6_K: -32..31, int8 scales):
// x = d * sc * (u - center). Fills d, the signed scales and u (= level index, so level + center).
void quantize_signed_super(const float* x, Fmt fmt, int center, int scale_lo, int scale_hi, uint16_t* d_bits,
                           int* sc, uint8_t* u) {
  float w[kQKK];
  importance(x, kQKK, fmt, w);
  // 3-bit levels are coarse, and the best scale can sit far from the largest weight's; at 6 bits
  // fewer candidates around it find the same optimum.
  const int n_steps = center <= 4 ? 10 : 5;
  const UniformLevels lv{-center, center - 1};
  float s[16];
  for (int j = 0; j < 16; ++j)
    s[j] = fit_scale(x + 16 * j, w + 16 * j, 16, lv, static_cast<float>(-center), static_cast<float>(center - 1), 0.1f, n_steps,
                     u + 16 * j);
  const float d = quantize_signed_scales(s, 16, scale_lo, scale_hi, d_bits, sc);
  for (int j = 0; j < 16; ++j) requantize(x + 16 * j, 16, lv, d * static_cast<float>(sc[j]), u + 16 * j);
}

// Element 128h + 32s + l in bits 2s..2s+1 of byte 32h + l (Q2_K and Q3_K low bits).
void pack_crumbs(const uint8_t* u, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      unsigned byte = 0;
      for (int s = 0; s < 4; ++s) byte |= (u[128 * h + 32 * s + l] & 3u) << (2 * s);
      qs[32 * h + l] = static_cast<uint8_t>(byte);
    }
}

// Q4_K / Q5_K: 8 six-bit scales and mins in 12 bytes (see k_scale_min in packed.cpp).
void pack_k_scales(const uint8_t* sc, const uint8_t* m, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
  }
}

// Sub-blocks 2p and 2p+1 share 32 bytes: low nibbles, then high nibbles.
void pack_k_nibbles(const uint8_t* u, uint8_t* qs) {
  for (int p = 0; p < 4; ++p)
    for (int l = 0; l < 32; ++l)
      qs[32 * p + l] = static_cast<uint8_t>((u[64 * p + l] & 0x0f) | ((u[64 * p + 32 + l] & 0x0f) << 4));
}

// IQ4 nibbles of one 32-weight block: element j low, element j + 16 high.
void pack_iq4_nibbles(const uint8_t* u, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(u[j] | (u[j + 16] << 4));
}

// Bit `bit` of each of the 256 values into 32 bytes, the layout of Q3_K's hmask and Q5_K's qh: bit i
// of byte l is value 32 i + l's.
void pack_high_bits(const uint8_t* u, int bit, uint8_t* out) {
  std::memset(out, 0, 32);
  for (int i = 0; i < 8; ++i)
    for (int l = 0; l < 32; ++l) out[l] |= static_cast<uint8_t>(((u[32 * i + l] >> bit) & 1) << i);
}

}  // namespace

void quantize_block_q2_k(const float* x, void* dst) {
  BlockQ2_K blk;
  uint8_t sc[16], m[16], u[kQKK];
  quantize_offset_super(x, kFQ2_K, 16, 3, 15, &blk.d, &blk.dmin, sc, m, u);
  for (int j = 0; j < 16; ++j) blk.scales[j] = static_cast<uint8_t>(sc[j] | (m[j] << 4));
  pack_crumbs(u, blk.qs);
  std::memcpy(dst, &blk, sizeof blk);
}

void quantize_block_q3_k(const float* x, void* dst) {
  BlockQ3_K blk;
  int sc[16];
  uint8_t u[kQKK];
  quantize_signed_super(x, kFQ3_K, 4, -32, 31, &blk.d, sc, u);
  std::memset(blk.scales, 0, sizeof blk.scales);
  for (int j = 0; j < 16; ++j) {
    const int v = sc[j] + 32;  // 6 bits
    blk.scales[j % 8] |= static_cast<uint8_t>((v & 0x0f) << (4 * (j / 8)));
    blk.scales[8 + j % 4] |= static_cast<uint8_t>(((v >> 4) & 3) << (2 * (j / 4)));
  }
  pack_crumbs(u, blk.qs);
  pack_high_bits(u, 2, blk.hmask);
  std::memcpy(dst, &blk, sizeof blk);
}

void quantize_block_q4_k(const float* x, void* dst) {
  BlockQ4_K blk;
  uint8_t sc[8], m[8], u[kQKK];
  quantize_offset_super(x, kFQ4_K, 32, 15, 63, &blk.d, &blk.dmin, sc, m, u);
  pack_k_scales(sc, m, blk.scales);
  pack_k_nibbles(u, blk.qs);
  std::memcpy(dst, &blk, sizeof blk);
}

void quantize_block_q5_k(const float* x, void* dst) {
  BlockQ5_K blk;
  uint8_t sc[8], m[8], u[kQKK];
  quantize_offset_super(x, kFQ5_K, 32, 31, 63, &blk.d, &blk.dmin, sc, m, u);
  pack_k_scales(sc, m, blk.scales);
  pack_k_nibbles(u, blk.qs);
  pack_high_bits(u, 4, blk.qh);
  std::memcpy(dst, &blk, sizeof blk);
}

void quantize_block_q6_k(const float* x, void* dst) {
  BlockQ6_K blk;
  int sc[16];
  uint8_t u[kQKK];
  quantize_signed_super(x, kFQ6_K, 32, -128, 127, &blk.d, sc, u);
  for (int j = 0; j < 16; ++j) blk.scales[j] = static_cast<int8_t>(sc[j]);
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = blk.ql + 64 * h;
    uint8_t* qh = blk.qh + 32 * h;
    const uint8_t* v = u + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((v[l] & 0x0f) | ((v[l + 64] & 0x0f) << 4));
      ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0x0f) | ((v[l + 96] & 0x0f) << 4));
      qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) |
                                   ((v[l + 96] >> 4) << 6));
    }
  }
  std::memcpy(dst, &blk, sizeof blk);
}

void quantize_block_iq4_nl(const float* x, void* dst) {
  BlockIQ4_NL blk;
  uint8_t u[kQK];
  const Iq4Levels lv;
  float w[kQK];
  importance(x, kQK, kFIQ4_NL, w);
  const float s = fit_scale(x, w, kQK, lv, -127.f, 113.f, 1.f, 7, u);
  const float d = stored(s, &blk.d);
  requantize(x, kQK, lv, d, u);
  pack_iq4_nibbles(u, blk.qs);
  std::memcpy(dst, &blk, sizeof blk);
}

void quantize_block_iq4_xs(const float* x, void* dst) {
  BlockIQ4_XS blk;
  uint8_t u[kQKK];
  const Iq4Levels lv;
  float s[8];
  float w[kQKK];
  importance(x, kQKK, kFIQ4_XS, w);
  for (int j = 0; j < 8; ++j) s[j] = fit_scale(x + 32 * j, w + 32 * j, 32, lv, -127.f, 113.f, 1.f, 7, u + 32 * j);
  int ls[8];
  const float d = quantize_signed_scales(s, 8, -32, 31, &blk.d, ls);
  blk.scales_h = 0;
  std::memset(blk.scales_l, 0, sizeof blk.scales_l);
  for (int j = 0; j < 8; ++j) {
    requantize(x + 32 * j, 32, lv, d * static_cast<float>(ls[j]), u + 32 * j);
    const int v = ls[j] + 32;
    blk.scales_l[j / 2] |= static_cast<uint8_t>((v & 0x0f) << (4 * (j % 2)));
    blk.scales_h |= static_cast<uint16_t>(((v >> 4) & 3) << (2 * j));
    pack_iq4_nibbles(u + 32 * j, blk.qs + 16 * j);
  }
  std::memcpy(dst, &blk, sizeof blk);
}

}  // namespace wren

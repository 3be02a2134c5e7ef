// AVX2 + FMA + F16C kernels. Compiled with those flags only for this file; chosen at run time.
// Each has a scalar twin in kernels/reference.cpp; tests/python/test_kernels.py compares them.
#include <immintrin.h>

#include "kernels/kernel_table.h"
#include "tensor/fp16.h"

namespace wren {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 32 unsigned 4-bit weights (low nibbles first, then high) laid out in element order.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i lo = _mm_and_si128(packed, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
  return _mm256_set_m128i(hi, lo);
}

// Sum of u8 * s8 products over 32 lanes, as 8 int32 partial sums -> float.
inline __m256 dot_u8_s8(__m256i u, __m256i s) {
  const __m256i p16 = _mm256_maddubs_epi16(u, s);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

float dot_q4_0_avx2(const void* row, const ActQ8* x, int64_t n) {
  const auto* w = static_cast<const BlockQ4_0*>(row);
  __m256 acc = _mm256_setzero_ps();
  float offset = 0.f;  // sum of 8 * d_w * (d_x * sum(q_x)): the "-8" of Q4_0
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float dw = fp16_to_f32(w[b].d);
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[b].d), dot_u8_s8(unpack_nibbles(w[b].qs), qx), acc);
    offset += 8.f * dw * x[b].sum;
  }
  return hsum(acc) - offset;
}

float dot_q4_1_avx2(const void* row, const ActQ8* x, int64_t n) {
  const auto* w = static_cast<const BlockQ4_1*>(row);
  __m256 acc = _mm256_setzero_ps();
  float offset = 0.f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const float scale = fp16_to_f32(w[b].d) * x[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), dot_u8_s8(unpack_nibbles(w[b].qs), qx), acc);
    offset += fp16_to_f32(w[b].m) * x[b].sum;
  }
  return hsum(acc) + offset;
}

float dot_q8_0_avx2(const void* row, const ActQ8* x, int64_t n) {
  const auto* w = static_cast<const BlockQ8_0*>(row);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    // maddubs needs one unsigned operand: move w's sign onto x.
    const __m256 s = dot_u8_s8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_f32(w[b].d) * x[b].d), s, acc);
  }
  return hsum(acc);
}

float dot_f32_avx2(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const float*>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = hsum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

float dot_f16_avx2(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const uint16_t*>(row);
  __m256 a0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 wf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    a0 = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), a0);
  }
  float s = hsum(a0);
  for (; i < n; ++i) s += fp16_to_f32(w[i]) * x[i];
  return s;
}

}  // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t{"avx2", dot_q4_0_avx2, dot_q4_1_avx2, dot_q8_0_avx2, dot_f32_avx2, dot_f16_avx2};
    fill_attention_kernels_avx2(t);
    return t;
  }();
  return &table;
}

}  // namespace wren

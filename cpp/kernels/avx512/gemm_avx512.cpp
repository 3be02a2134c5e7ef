// AVX-512 (F, BW, VL) + VNNI kernels. Compiled with those flags only for this file; chosen at run
// time when CPUID reports them. Scalar twins: kernels/reference.cpp (compared in test_kernels.py).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/f16_blocks.h"
#include "kernels/kernel_table.h"
#include "tensor/fp16.h"

namespace wren {
namespace {

// Four activation bytes (columns 4i..4i+3 of a block) repeated in every 32-bit lane.
inline __m512i broadcast4(const int8_t* qs, int i) {
  int32_t v;
  std::memcpy(&v, qs + 4 * i, 4);
  return _mm512_set1_epi32(v);
}

// The 8 vectors of one tile's quants: vector i holds columns 4i..4i+3 of all 16 rows, unsigned.
template <DType T>
inline void load_quants(const uint8_t* q, __m512i (&wv)[8]) {
  if constexpr (T == DType::Q8_0) {
    for (int i = 0; i < 8; ++i) wv[i] = _mm512_loadu_si512(q + 64 * i);
  } else {
    const __m512i nib = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m512i packed = _mm512_loadu_si512(q + 64 * c);
      wv[c] = _mm512_and_si512(packed, nib);                             // columns 4c..4c+3
      wv[c + 4] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nib);  // columns 16+4c..16+4c+3
    }
  }
}

// Rows of one group (16 lanes) times NT tokens: acc[t] += w . x_t over all block columns.
template <DType T, int NT>
inline void group_times_tokens(const PackedMatrix& w, int64_t g, const ActQ8* x, int64_t x_stride, float* y,
                               int64_t ldy, __mmask16 rows) {
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < w.n_blocks; ++b) {
    const uint8_t* tile = w.tile(g, b);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile)));  // (16)
    __m512 mw;                                                                                      // (16)
    if constexpr (T == DType::Q4_1)
      mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 2 * kPackRows)));
    else
      mw = _mm512_mul_ps(d, _mm512_set1_ps(T == DType::Q4_0 ? -8.f : -128.f));
    __m512i wv[8];
    load_quants<T>(tile + w.scale_bytes, wv);
    for (int t = 0; t < NT; ++t) {
      const ActQ8& xb = x[t * x_stride + b];
      // Two integer accumulators halve the dependency chain of the 8 dot-product steps.
      __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[0], broadcast4(xb.qs, 0));
      __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[1], broadcast4(xb.qs, 1));
      for (int i = 2; i < 8; i += 2) {
        s0 = _mm512_dpbusd_epi32(s0, wv[i], broadcast4(xb.qs, i));
        s1 = _mm512_dpbusd_epi32(s1, wv[i + 1], broadcast4(xb.qs, i + 1));
      }
      const __m512 s = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[t] = _mm512_fmadd_ps(s, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[t]);
      acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xb.sum), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm512_mask_storeu_ps(y + t * ldy + g * kPackRows, rows, acc[t]);
}

template <DType T>
void gemm_packed_t(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                   float* y, int64_t ldy) {
  constexpr int kTokens = 4;  // tokens per pass over a group's weights (unpacked once, used 4 times)
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t valid = std::min<int64_t>(kPackRows, w.rows - g * kPackRows);
    const __mmask16 rows = static_cast<__mmask16>((1u << valid) - 1u);
    int64_t t = 0;
    for (; t + kTokens <= n; t += kTokens)
      group_times_tokens<T, kTokens>(w, g, x + t * x_stride, x_stride, y + t * ldy, ldy, rows);
    for (; t < n; ++t) group_times_tokens<T, 1>(w, g, x + t * x_stride, x_stride, y + t * ldy, ldy, rows);
  }
}

void gemm_packed_avx512(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                        float* y, int64_t ldy) {
  switch (w.dtype) {
    case DType::Q4_0: return gemm_packed_t<DType::Q4_0>(w, g0, g1, x, x_stride, n, y, ldy);
    case DType::Q4_1: return gemm_packed_t<DType::Q4_1>(w, g0, g1, x, x_stride, n, y, ldy);
    default: return gemm_packed_t<DType::Q8_0>(w, g0, g1, x, x_stride, n, y, ldy);
  }
}

float dot_f32_avx512(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const float*>(row);
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

float dot_f16_avx512(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const uint16_t*>(row);
  __m512 a0 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 wf = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)));
    a0 = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + i), a0);
  }
  float s = _mm512_reduce_add_ps(a0);
  for (; i < n; ++i) s += fp16_to_f32(w[i]) * x[i];
  return s;
}

// F16 rows times tokens: R rows x T tokens of accumulators, each converted weight vector serving T
// tokens and each activation vector R rows; the last cols % 16 columns in scalar code (a masked
// step inside the loop would cost the loop its registers).
template <int R, int T>
struct F16Block {
  static void run(const uint16_t* w, int64_t cols, const float* x, float* y, int64_t ldy) {
    __m512 acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16) {
      __m512 wv[R];
      for (int r = 0; r < R; ++r)
        wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * cols + k)));
      for (int t = 0; t < T; ++t) {
        const __m512 xv = _mm512_loadu_ps(x + t * cols + k);
        for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        float s = _mm512_reduce_add_ps(acc[r][t]);
        for (int64_t j = k; j < cols; ++j) s += fp16_to_f32(w[r * cols + j]) * x[t * cols + j];
        y[t * ldy + r] = s;
      }
  }
};

void gemm_f16_avx512(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n, float* y,
                     int64_t ldy) {
  // 4 x 4 accumulators: about 90% of the FMA peak on Zen 4 from 32 tokens up
  f16_rows_times_tokens<F16Block, 4, 4>(w, cols, r0, r1, x, n, y, ldy);
}

}  // namespace

const KernelTable* avx512_kernels() {
  static const KernelTable table = [] {
    KernelTable t{"avx512", gemm_packed_avx512, dot_f32_avx512, dot_f16_avx512, gemm_f16_avx512};
    fill_attention_kernels_avx2(t);    // F16 conversions
    fill_attention_kernels_avx512(t);  // decode attention
    return t;
  }();
  return &table;
}

}  // namespace wren

// AVX2 + FMA + F16C kernels. Compiled with those flags only for this file; chosen at run time.
// Each has a scalar twin in kernels/reference.cpp; tests/python/test_kernels.py compares them.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/f16_blocks.h"
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

// Stores the first `rows` lanes of v (all 8 when rows >= 8, none when rows <= 0): the rows of a
// partial last group are never written.
inline void store_rows(float* dst, __m256 v, int64_t rows) {
  if (rows >= 8) {
    _mm256_storeu_ps(dst, v);
  } else if (rows > 0) {
    float out[8];
    _mm256_storeu_ps(out, v);
    std::memcpy(dst, out, static_cast<size_t>(rows) * sizeof(float));
  }
}

inline __m256i broadcast4(const int8_t* qs, int i) {
  int32_t v;
  std::memcpy(&v, qs + 4 * i, 4);
  return _mm256_set1_epi32(v);
}

// Integer sums of one half tile (8 rows) with one activation block, written without arrays so the
// compiler keeps everything in registers; two accumulators per half shorten the dependency chains.
template <DType T>
inline __m256i half_tile_sums(const uint8_t* q, int h, const int8_t* qs) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (T == DType::Q8_0) {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    for (int i = 0; i < 8; i += 2) {
      const __m256i w0 = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * i + 32 * h)), flip);
      const __m256i w1 =
          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * (i + 1) + 32 * h)), flip);
      const __m256i x0 = broadcast4(qs, i), x1 = broadcast4(qs, i + 1);
      // |x| times w with x's sign: maddubs wants its first operand unsigned.
      s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(x0, x0), _mm256_sign_epi8(w0, x0)), ones));
      s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(x1, x1), _mm256_sign_epi8(w1, x1)), ones));
    }
    return _mm256_add_epi32(s0, s1);
  } else {
    const __m256i nib = _mm256_set1_epi8(0x0f);
    __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * c + 32 * h));
      const __m256i lo = _mm256_and_si256(packed, nib);                        // columns 4c..4c+3
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nib);  // columns 16+4c..
      p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(lo, broadcast4(qs, c)));
      p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(hi, broadcast4(qs, c + 4)));
    }
    return _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones);  // 8 pairs of <= 2*15*127 fit in int16
  }
}

// The offset term mw of rows 8h..8h+7 (see tensor/packed.h), given their scales d. Only the 4-bit
// formats have one here: Q8_0's integer sums are taken over the signed values directly.
template <DType T>
inline __m256 half_offsets(const uint8_t* tile, int h, __m256 d) {
  if constexpr (T == DType::Q4_1)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 2 * kPackRows + 16 * h)));
  else
    return _mm256_mul_ps(d, _mm256_set1_ps(-8.f));
}

// 4-bit weights, rows 8h..8h+7 of group g times NT tokens (prefill). Each 32-byte chunk of the half
// tile is unpacked once and used by all NT tokens; per token one int16 accumulator per block (16
// products of <= 15*127 each fit), so everything stays in the 16 vector registers.
template <DType T, int NT>
inline void half_group_times_tokens_q4(const PackedMatrix& w, int64_t g, int h, const ActQ8* x, int64_t x_stride,
                                       float* y, int64_t ldy, int64_t valid) {
  const __m256i nib = _mm256_set1_epi8(0x0f);
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < w.n_blocks; ++b) {
    const uint8_t* tile = w.tile(g, b);
    const uint8_t* q = tile + w.scale_bytes;
    __m256i p[NT];
    for (int t = 0; t < NT; ++t) p[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * c + 32 * h));
      const __m256i lo = _mm256_and_si256(packed, nib);                        // columns 4c..4c+3
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nib);  // columns 16+4c..
      for (int t = 0; t < NT; ++t) {
        const int8_t* qs = x[t * x_stride + b].qs;
        p[t] = _mm256_add_epi16(p[t], _mm256_maddubs_epi16(lo, broadcast4(qs, c)));
        p[t] = _mm256_add_epi16(p[t], _mm256_maddubs_epi16(hi, broadcast4(qs, c + 4)));
      }
    }
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16 * h)));  // (8)
    const __m256 mw = half_offsets<T>(tile, h, d);
    for (int t = 0; t < NT; ++t) {
      const ActQ8& xb = x[t * x_stride + b];
      const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p[t], _mm256_set1_epi16(1)));
      acc[t] = _mm256_fmadd_ps(s, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[t]);
      acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xb.sum), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(y + t * ldy + g * kPackRows + 8 * h, acc[t], valid - 8 * h);
}

// Rows 8h..8h+7 of group g times NT tokens, any format (Q8_0 prefill, and single leftover tokens).
template <DType T, int NT>
inline void half_group_times_tokens(const PackedMatrix& w, int64_t g, int h, const ActQ8* x, int64_t x_stride,
                                    float* y, int64_t ldy, int64_t valid) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < w.n_blocks; ++b) {
    const uint8_t* tile = w.tile(g, b);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16 * h)));  // (8)
    for (int t = 0; t < NT; ++t) {
      const ActQ8& xb = x[t * x_stride + b];
      const __m256 s = _mm256_cvtepi32_ps(half_tile_sums<T>(tile + w.scale_bytes, h, xb.qs));  // (8)
      acc[t] = _mm256_fmadd_ps(s, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[t]);
      if constexpr (T != DType::Q8_0) acc[t] = _mm256_fmadd_ps(half_offsets<T>(tile, h, d), _mm256_set1_ps(xb.sum), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) store_rows(y + t * ldy + g * kPackRows + 8 * h, acc[t], valid - 8 * h);
}

// Bytes ahead of the tile being read that decode prefetches.
constexpr size_t kPrefetchAhead = 4096;

// One activation vector (decode): both halves of each tile in turn, so the weights stream through
// memory in order and the two halves' accumulators form independent chains.
template <DType T>
inline void group_times_vector(const PackedMatrix& w, int64_t g, const ActQ8* x, float* y, int64_t valid) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();  // rows 0-7, rows 8-15
  for (int64_t b = 0; b < w.n_blocks; ++b) {
    const uint8_t* tile = w.tile(g, b);
    // The packed matrix is one linear stream; ask for it well ahead (prefetches never fault, so
    // running past the end of the matrix is harmless).
    for (size_t off = 0; off < w.tile_bytes; off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(tile + kPrefetchAhead + off), _MM_HINT_T0);
    const ActQ8& xb = x[b];
    const uint8_t* q = tile + w.scale_bytes;
    const __m256 s0 = _mm256_cvtepi32_ps(half_tile_sums<T>(q, 0, xb.qs));
    const __m256 s1 = _mm256_cvtepi32_ps(half_tile_sums<T>(q, 1, xb.qs));
    const __m256 dx = _mm256_set1_ps(xb.d);
    const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile)));
    const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16)));
    acc0 = _mm256_fmadd_ps(s0, _mm256_mul_ps(d0, dx), acc0);
    acc1 = _mm256_fmadd_ps(s1, _mm256_mul_ps(d1, dx), acc1);
    if constexpr (T != DType::Q8_0) {
      const __m256 sx = _mm256_set1_ps(xb.sum);
      acc0 = _mm256_fmadd_ps(half_offsets<T>(tile, 0, d0), sx, acc0);
      acc1 = _mm256_fmadd_ps(half_offsets<T>(tile, 1, d1), sx, acc1);
    }
  }
  store_rows(y + g * kPackRows, acc0, valid);
  store_rows(y + g * kPackRows + 8, acc1, valid - 8);
}

template <DType T>
void gemm_packed_t(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                   float* y, int64_t ldy) {
  constexpr int kTokens = 4;  // tokens per pass over a half group's weights
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t valid = std::min<int64_t>(kPackRows, w.rows - g * kPackRows);
    if (n == 1) {
      group_times_vector<T>(w, g, x, y, valid);
      continue;
    }
    for (int h = 0; h < 2 && 8 * h < valid; ++h) {
      int64_t t = 0;
      for (; t + kTokens <= n; t += kTokens) {
        if constexpr (T == DType::Q8_0)
          half_group_times_tokens<T, kTokens>(w, g, h, x + t * x_stride, x_stride, y + t * ldy, ldy, valid);
        else
          half_group_times_tokens_q4<T, kTokens>(w, g, h, x + t * x_stride, x_stride, y + t * ldy, ldy, valid);
      }
      for (; t < n; ++t) half_group_times_tokens<T, 1>(w, g, h, x + t * x_stride, x_stride, y + t * ldy, ldy, valid);
    }
  }
}

void gemm_packed_avx2(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                      float* y, int64_t ldy) {
  switch (w.dtype) {
    case DType::Q4_0: return gemm_packed_t<DType::Q4_0>(w, g0, g1, x, x_stride, n, y, ldy);
    case DType::Q4_1: return gemm_packed_t<DType::Q4_1>(w, g0, g1, x, x_stride, n, y, ldy);
    default: return gemm_packed_t<DType::Q8_0>(w, g0, g1, x, x_stride, n, y, ldy);
  }
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

// F16 rows times tokens: R rows x T tokens of accumulators, each loaded weight vector serving T
// tokens and each activation vector R rows; the last cols % 8 columns in scalar code. 4 x 2 keeps
// accumulators and weights in 12 of the 16 registers (4 x 3 spills one accumulator a step and
// runs at half speed).
template <int R, int T>
struct F16Block {
  static void run(const uint16_t* w, int64_t cols, const float* x, float* y, int64_t ldy) {
    __m256 acc[R][T];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r)
        wv[r] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * cols + k)));
      for (int t = 0; t < T; ++t) {
        const __m256 xv = _mm256_loadu_ps(x + t * cols + k);
        for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) {
        float s = hsum(acc[r][t]);
        for (int64_t j = k; j < cols; ++j) s += fp16_to_f32(w[r * cols + j]) * x[t * cols + j];
        y[t * ldy + r] = s;
      }
  }
};

void gemm_f16_avx2(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n, float* y,
                   int64_t ldy) {
  f16_rows_times_tokens<F16Block, 4, 2>(w, cols, r0, r1, x, n, y, ldy);
}

}  // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table = [] {
    KernelTable t{"avx2", gemm_packed_avx2, dot_f32_avx2, dot_f16_avx2, gemm_f16_avx2};
    fill_attention_kernels_avx2(t);
    return t;
  }();
  return &table;
}

}  // namespace wren

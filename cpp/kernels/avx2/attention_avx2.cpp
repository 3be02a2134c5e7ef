// AVX2 + FMA + F16C attention kernels over KV cache rows (F16 or F32), and F32 <-> F16 conversion.
// Compiled with those flags only for this file; chosen at run time. Scalar twins live in
// kernels/reference.cpp; tests/python/test_kernels.py compares them.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx2/exp_avx2.h"
#include "kernels/kernel_table.h"
#include "kernels/query_blocks.h"
#include "tensor/fp16.h"

namespace wren {
namespace {

// Keys per pass of the value kernel: their rows stay in L1 while it walks the head dimension.
constexpr int64_t kValueKeyBlock = 64;

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return fp16_to_f32(*p); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void f32_to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

void f16_to_f32_avx2(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load8(x + i));
  for (; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}

// Key rows prefetched ahead of the one being scored.
constexpr int64_t kKeysAhead = 32;

// NQ query heads against each key row: the row is loaded (and converted) once for all of them.
template <typename T, int NQ>
void scores_block(const float* q, int64_t q_stride, const T* k, int64_t kv_stride, int64_t n_keys, int64_t hd,
                  float scale, float* s, int64_t s_stride) {
  const int64_t hd8 = hd & ~int64_t(7);
  for (int64_t j = 0; j < n_keys; ++j) {
    const T* kj = k + j * kv_stride;
    // Key rows are kv_stride apart (one head's slice of each cached position): fetch ahead, the
    // whole slice (hd elements may span several cache lines).
    const char* ahead = reinterpret_cast<const char*>(kj + kKeysAhead * kv_stride);
    for (int64_t b = 0; b < hd * static_cast<int64_t>(sizeof(T)); b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    __m256 acc[NQ];
    for (int a = 0; a < NQ; ++a) acc[a] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd8; d += 8) {
      const __m256 kd = load8(kj + d);
      for (int a = 0; a < NQ; ++a) acc[a] = _mm256_fmadd_ps(kd, _mm256_loadu_ps(q + a * q_stride + d), acc[a]);
    }
    for (int a = 0; a < NQ; ++a) {
      float r = hsum(acc[a]);
      for (int64_t d = hd8; d < hd; ++d) r += q[a * q_stride + d] * load1(kj + d);
      s[a * s_stride + j] = r * scale;
    }
  }
}

template <typename T>
void attn_scores_avx2(const float* q, int64_t q_stride, int64_t n_q, const void* k, int64_t kv_stride,
                      int64_t n_keys, int64_t hd, float scale, float* s, int64_t s_stride) {
  const T* keys = static_cast<const T*>(k);
  for_query_blocks(n_q, [&](auto nq, int64_t a) {
    scores_block<T, decltype(nq)::value>(q + a * q_stride, q_stride, keys, kv_stride, n_keys, hd, scale,
                                         s + a * s_stride, s_stride);
  });
}

// out_a += sum_j p_a[j] * v_j over keys [j0, j1) for NQ query heads, NC*8 columns at d.
template <typename T, int NQ, int NC>
inline void values_tile(const float* p, int64_t p_stride, const T* v, int64_t kv_stride, int64_t j0, int64_t j1,
                        int64_t d, int64_t hd, float* out, int64_t out_stride) {
  __m256 acc[NQ][NC];
  for (int a = 0; a < NQ; ++a)
    for (int c = 0; c < NC; ++c) acc[a][c] = _mm256_loadu_ps(out + a * out_stride + d + 8 * c);
  for (int64_t j = j0; j < j1; ++j) {
    if (d == 0) {  // the whole row of the key ahead (hd elements may span several cache lines)
      const char* ahead = reinterpret_cast<const char*>(v + (j + kKeysAhead) * kv_stride);
      for (int64_t b = 0; b < hd * static_cast<int64_t>(sizeof(T)); b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    }
    __m256 vj[NC];
    for (int c = 0; c < NC; ++c) vj[c] = load8(v + j * kv_stride + d + 8 * c);
    for (int a = 0; a < NQ; ++a) {
      const __m256 pa = _mm256_set1_ps(p[a * p_stride + j]);
      for (int c = 0; c < NC; ++c) acc[a][c] = _mm256_fmadd_ps(pa, vj[c], acc[a][c]);
    }
  }
  for (int a = 0; a < NQ; ++a)
    for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + a * out_stride + d + 8 * c, acc[a][c]);
}

template <typename T, int NQ>
void values_block(const float* p, int64_t p_stride, const T* v, int64_t kv_stride, int64_t n_keys, int64_t hd,
                  float* out, int64_t out_stride) {
  for (int a = 0; a < NQ; ++a) std::fill(out + a * out_stride, out + a * out_stride + hd, 0.f);
  for (int64_t j0 = 0; j0 < n_keys; j0 += kValueKeyBlock) {
    const int64_t j1 = std::min(n_keys, j0 + kValueKeyBlock);
    int64_t d = 0;
    for (; d + 16 <= hd; d += 16) values_tile<T, NQ, 2>(p, p_stride, v, kv_stride, j0, j1, d, hd, out, out_stride);
    for (; d + 8 <= hd; d += 8) values_tile<T, NQ, 1>(p, p_stride, v, kv_stride, j0, j1, d, hd, out, out_stride);
    for (; d < hd; ++d)
      for (int a = 0; a < NQ; ++a) {
        float r = out[a * out_stride + d];
        for (int64_t j = j0; j < j1; ++j) r += p[a * p_stride + j] * load1(v + j * kv_stride + d);
        out[a * out_stride + d] = r;
      }
  }
}

template <typename T>
void attn_values_avx2(const float* p, int64_t p_stride, int64_t n_q, const void* v, int64_t kv_stride,
                      int64_t n_keys, int64_t hd, float* out, int64_t out_stride) {
  const T* values = static_cast<const T*>(v);
  for_query_blocks(n_q, [&](auto nq, int64_t a) {
    values_block<T, decltype(nq)::value>(p + a * p_stride, p_stride, values, kv_stride, n_keys, hd,
                                         out + a * out_stride, out_stride);
  });
}

float exp_sum_avx2(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {  // the last 1-7: masked load and store, masked-off lanes add 0
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), idx);
    const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(m), exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), s)));
    _mm256_maskstore_ps(x + i, m, e);
    acc = _mm256_add_ps(acc, e);
  }
  return hsum(acc);
}

}  // namespace

void fill_attention_kernels_avx2(KernelTable& t) {
  t.f32_to_f16 = f32_to_f16_avx2;
  t.f16_to_f32 = f16_to_f32_avx2;
  t.attn_scores_f16 = attn_scores_avx2<uint16_t>;
  t.attn_scores_f32 = attn_scores_avx2<float>;
  t.attn_values_f16 = attn_values_avx2<uint16_t>;
  t.attn_values_f32 = attn_values_avx2<float>;
  t.exp_sum = exp_sum_avx2;
}

}  // namespace wren

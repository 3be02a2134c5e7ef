// AVX2 kernels of low-rank terms (kernels/low_rank.h). Scalar twins in kernels/reference.cpp.
#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace wren {
namespace {

// y[r] += scale * (b_r . h): eight rows at a time, one accumulator per row over k in steps of 8, then
// the eight accumulators reduced together (two rounds of pairwise adds and a swap of 128-bit
// halves) into one vector of eight row sums; the last k % 8 columns and n_rows % 8 rows in scalar.
void rows_dot_f32_avx2(const float* b, int64_t k, int64_t n_rows, const float* h, float scale, float* y) {
  const int64_t k8 = k / 8 * 8;
  const __m256 s = _mm256_set1_ps(scale);
  int64_t r = 0;
  for (; r + 8 <= n_rows; r += 8) {
    const float* rows = b + r * k;  // (8, k)
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t j = 0; j < k8; j += 8) {
      const __m256 hv = _mm256_loadu_ps(h + j);
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(rows + i * k + j), hv, acc[i]);
    }
    // t: pairs of rows (i, i+1) summed in pairs of lanes; u: rows 0-3 (4-7) summed in fours, per half
    const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    if (k8 < k) {
      alignas(32) float tail[8];
      for (int i = 0; i < 8; ++i) {
        float t = 0.f;
        for (int64_t j = k8; j < k; ++j) t += rows[i * k + j] * h[j];
        tail[i] = t;
      }
      sums = _mm256_add_ps(sums, _mm256_load_ps(tail));
    }
    _mm256_storeu_ps(y + r, _mm256_fmadd_ps(s, sums, _mm256_loadu_ps(y + r)));
  }
  for (; r < n_rows; ++r) {
    float t = 0.f;
    for (int64_t j = 0; j < k; ++j) t += b[r * k + j] * h[j];
    y[r] += scale * t;
  }
}

}  // namespace

void fill_low_rank_kernels_avx2(KernelTable& t) { t.rows_dot_f32 = rows_dot_f32_avx2; }

}  // namespace wren

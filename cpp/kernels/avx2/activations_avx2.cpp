// AVX2 activation kernels: the 8-bit activation blocks every packed product starts from, and
// the gated MLPs' silu(gate) * up and gelu_tanh(gate) * up. Scalar twins: quantize_act_q8 (tensor/quant.cpp) and silu_mul_ref,
// gelu_tanh_mul_ref (kernels/reference.cpp); tests/python/test_kernels.py compares them. Built with -ffp-contract=off
// (cpp/CMakeLists.txt): a multiply fused into the next add would round differently from the twin.
#include <immintrin.h>

#include <limits>

#include "kernels/avx2/exp_avx2.h"
#include "kernels/kernel_table.h"
#include "tensor/quant.h"

namespace wren {
namespace {

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 1)));
}

// Per block of 32: amax, d = amax / 127, q = trunc(x / d +- 0.5) (half away from zero) and the
// integer sums of each half, with the twin's operations in the twin's order, so the bits agree.
void quantize_act_avx2(const float* x, ActQ8* out, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.f), big = _mm256_set1_ps(std::numeric_limits<float>::max());
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    ActQ8& o = out[b];
    __m256 v[4], amax8 = _mm256_setzero_ps();
    int finite = 0xFF;
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      const __m256 a = _mm256_andnot_ps(sign, v[k]);
      finite &= _mm256_movemask_ps(_mm256_cmp_ps(a, big, _CMP_LE_OQ));  // false for NaN and +-inf
      amax8 = _mm256_max_ps(amax8, a);
    }
    if (finite != 0xFF) {  // the twin's handling of a non-finite block
      quantize_act_q8(x, &o, kQK);
      continue;
    }
    const float amax = hmax(amax8);
    const float d = amax / 127.f;
    const float id = d > 0.f ? 1.f / d : 0.f;
    const bool divide = id > std::numeric_limits<float>::max();  // subnormal d: divide, as the twin
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 s = divide ? _mm256_div_ps(v[k], _mm256_set1_ps(d)) : _mm256_mul_ps(v[k], _mm256_set1_ps(id));
      const __m256 nonneg = _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_GE_OQ);
      const __m256 half = _mm256_blendv_ps(_mm256_set1_ps(-0.5f), _mm256_set1_ps(0.5f), nonneg);
      q[k] = _mm256_cvttps_epi32(_mm256_add_ps(s, half));
    }
    // int32 -> int8 (|q| <= 127, no saturation): the packs work per 128-bit lane, the permute
    // puts the four vectors' elements back in order.
    const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    const __m256i q8 = _mm256_permutevar8x32_epi32(q16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs), q8);
    const int sum[2] = {hsum_i32(_mm256_add_epi32(q[0], q[1])), hsum_i32(_mm256_add_epi32(q[2], q[3]))};
    set_act_sums(o, d, sum[0], sum[1]);
  }
}

// exp8 saturates at e^88.3: for g < -88.3 this gives g / 2.2e38 (under 1e-35 in size) instead of
// the twin's -0; both are silu's value to within float's normal range.
inline __m256 silu_times(__m256 g, __m256 u) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.f), e)), u);
}

inline __m256 gelu_tanh_times(__m256 g, __m256 u) {
  const __m256 cube = _mm256_mul_ps(_mm256_mul_ps(g, g), g);
  const __m256 minus_2y =
      _mm256_mul_ps(_mm256_set1_ps(kMinus2Sqrt2OverPi), _mm256_add_ps(g, _mm256_mul_ps(_mm256_set1_ps(kGeluCubic), cube)));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.f), exp8(minus_2y))), u);
}

// gate[i] = Act(gate[i], up[i]) over n floats, the last 1-7 by masked loads and stores.
template <__m256 (*Act)(__m256, __m256)>
void gate_mul_avx2(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(gate + i, Act(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(gate + i, m, Act(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
  }
}

}  // namespace

void fill_activation_kernels_avx2(KernelTable& t) {
  t.quantize_act = quantize_act_avx2;
  t.silu_mul = gate_mul_avx2<silu_times>;
  t.gelu_tanh_mul = gate_mul_avx2<gelu_tanh_times>;
}

}  // namespace wren

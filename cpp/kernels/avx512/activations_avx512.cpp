// AVX-512 activation kernels: the 8-bit activation blocks every packed product starts from, and
// the gated MLPs' silu(gate) * up and gelu_tanh(gate) * up. Scalar twins: quantize_act_q8 (tensor/quant.cpp) and silu_mul_ref,
// gelu_tanh_mul_ref (kernels/reference.cpp); tests/python/test_kernels.py compares them. Built with -ffp-contract=off
// (cpp/CMakeLists.txt): a multiply fused into the next add would round differently from the twin.
#include <immintrin.h>

#include <limits>

#include "kernels/avx512/exp_avx512.h"
#include "kernels/kernel_table.h"
#include "tensor/quant.h"

namespace wren {
namespace {

// Per block of 32: amax, d = amax / 127, q = trunc(x / d +- 0.5) (half away from zero) and the
// integer sums of each half, with the twin's operations in the twin's order, so the bits agree.
void quantize_act_avx512(const float* x, ActQ8* out, int64_t n) {
  const __m512 big = _mm512_set1_ps(std::numeric_limits<float>::max());
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    ActQ8& o = out[b];
    const __m512 v[2] = {_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16)};
    const __m512 a0 = _mm512_abs_ps(v[0]), a1 = _mm512_abs_ps(v[1]);
    // |x| <= max is false for NaN and +-inf: the twin's handling of a non-finite block.
    if ((_mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ)) != 0xFFFF) {
      quantize_act_q8(x, &o, kQK);
      continue;
    }
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    const float d = amax / 127.f;
    const float id = d > 0.f ? 1.f / d : 0.f;
    const bool divide = id > std::numeric_limits<float>::max();  // subnormal d: divide, as the twin
    int sum[2];
    for (int h = 0; h < 2; ++h) {
      const __m512 s = divide ? _mm512_div_ps(v[h], _mm512_set1_ps(d)) : _mm512_mul_ps(v[h], _mm512_set1_ps(id));
      const __mmask16 nonneg = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_GE_OQ);
      const __m512 half = _mm512_mask_blend_ps(nonneg, _mm512_set1_ps(-0.5f), _mm512_set1_ps(0.5f));
      const __m512i q = _mm512_cvttps_epi32(_mm512_add_ps(s, half));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o.qs + 16 * h), _mm512_cvtepi32_epi8(q));
      sum[h] = _mm512_reduce_add_epi32(q);
    }
    set_act_sums(o, d, sum[0], sum[1]);
  }
}

inline __m512 silu_times(__m512 g, __m512 u) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));  // e^-g (inf for g < -88: silu -> -0)
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.f), e)), u);
}

inline __m512 gelu_tanh_times(__m512 g, __m512 u) {
  const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(g, g), g);
  const __m512 minus_2y =
      _mm512_mul_ps(_mm512_set1_ps(kMinus2Sqrt2OverPi), _mm512_add_ps(g, _mm512_mul_ps(_mm512_set1_ps(kGeluCubic), cube)));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.f), exp16(minus_2y))), u);
}

// gate[i] = Act(gate[i], up[i]) over n floats, the last 1-15 masked.
template <__m512 (*Act)(__m512, __m512)>
void gate_mul_avx512(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(gate + i, Act(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(gate + i, m, Act(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace

void fill_activation_kernels_avx512(KernelTable& t) {
  t.quantize_act = quantize_act_avx512;
  t.silu_mul = gate_mul_avx512<silu_times>;
  t.gelu_tanh_mul = gate_mul_avx512<gelu_tanh_times>;
}

}  // namespace wren

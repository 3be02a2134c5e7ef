// The AVX2 e^x of kernels/exp_poly.h, shared by the softmax and activation kernels. Included only
// by files compiled with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include "kernels/exp_poly.h"

namespace wren {
// Internal linkage: each file compiled with these ISA flags keeps its own copy (an inline function
// shared across files built with different -m flags could be linked to the wrong one).
namespace {

// e^x for x <= 88 (kernels/exp_poly.h), 2^n built in the exponent bits. Below -87.33, where 2^n
// leaves the normal range, the result is 0 (the true value is under 1.2e-38). NaN stays NaN.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_set1_ps(88.3f), _mm256_max_ps(lo, x));  // (max, min) keep a NaN x
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(exp_poly::kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::kLn2Lo), r);
  __m256 p = _mm256_set1_ps(exp_poly::kTaylor[0]);
  for (int i = 1; i < exp_poly::kTerms; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly::kTaylor[i]));
  const __m256i two_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(two_n)));
}

}  // namespace
}  // namespace wren

// The AVX-512 e^x of kernels/exp_poly.h, shared by the softmax and activation kernels. Included
// only by files compiled with -mavx512f.
#pragma once

#include <immintrin.h>

#include "kernels/exp_poly.h"

namespace wren {
// Internal linkage: each file compiled with these ISA flags keeps its own copy (an inline function
// shared across files built with different -m flags could be linked to the wrong one).
namespace {

// e^x for x <= 88 (kernels/exp_poly.h), with scalef applying 2^n, which also gives the subnormal
// results and 0 below them. NaN stays NaN.
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.f), x);  // e^-104 is 0 in float; (max, x) keeps a NaN x
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(exp_poly::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::kLn2Lo), r);
  __m512 p = _mm512_set1_ps(exp_poly::kTaylor[0]);
  for (int i = 1; i < exp_poly::kTerms; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly::kTaylor[i]));
  return _mm512_scalef_ps(p, n);
}

}  // namespace
}  // namespace wren

// The exp both SIMD softmax kernels use (exp_sum in kernels/avx2 and kernels/avx512), so the two
// compute the same approximation: e^x = 2^n e^r with n = round(x log2 e) and r = x - n ln 2, ln 2
// split in two parts (the high part has few bits, so n * hi is exact), |r| <= ln2/2, and e^r by its
// Taylor series to r^7, whose remainder there is under 1e-8 relative. Each ISA applies 2^n its own
// way and handles its own range ends.
#pragma once

namespace wren::exp_poly {

constexpr float kLog2e = 1.44269504f;
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = 1.428606765330187e-6f;
// e^r's Taylor coefficients 1/7!, 1/6!, ..., 1/1!, 1/0!, highest first (Horner's rule).
constexpr int kTerms = 8;
constexpr float kTaylor[kTerms] = {1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f};

}  // namespace wren::exp_poly

namespace wren {

// GELU's tanh approximation as a sigmoid: g / 2 (1 + tanh(y)) = g / (1 + e^-2y), with
// y = sqrt(2/pi) (g + kGeluCubic g^3); the kernels compute -2y = kMinus2Sqrt2OverPi (g + kGeluCubic g^3).
constexpr float kGeluCubic = 0.044715f;
constexpr float kMinus2Sqrt2OverPi = -1.5957691216057308f;

}  // namespace wren

// Per-ISA kernel tables. reference.cpp holds the scalar twins (also the fallback on unknown CPUs);
// avx2/ and avx512/ hold SIMD versions of the same signatures. dispatch.cpp picks one at start-up
// from CPUID, or from WRENLM_ISA=generic|avx2|avx512 to force a path.
#pragma once

#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"

namespace wren {

// Dot product of one quantized weight row (n elements) with an activation quantized to ActQ8.
using DotQ8Fn = float (*)(const void* row, const ActQ8* x, int64_t n);
// Dot product of one float-typed weight row (F32/F16/BF16) with a float activation.
using DotF32Fn = float (*)(const void* row, const float* x, int64_t n);
// F32 <-> F16 (round to nearest even) for n elements: KV cache writes and prefill tiles.
using ToF16Fn = void (*)(const float* x, uint16_t* y, int64_t n);
using FromF16Fn = void (*)(const uint16_t* x, float* y, int64_t n);
// Attention over cache rows of one KV head (F16 or F32 elements, row stride kv_stride elements),
// for n_q query heads sharing it (rows q_stride floats apart); each key/value row is read once.
// scores: s[a*s_stride + j] = scale * dot(q_a, k_j), j in [0, n_keys).
using AttnScoresFn = void (*)(const float* q, int64_t q_stride, int64_t n_q, const void* k, int64_t kv_stride,
                              int64_t n_keys, int64_t head_dim, float scale, float* s, int64_t s_stride);
// values: out_a = sum_j p[a*p_stride + j] * v_j (overwrites out_a, rows out_stride floats apart).
using AttnValuesFn = void (*)(const float* p, int64_t p_stride, int64_t n_q, const void* v, int64_t kv_stride,
                              int64_t n_keys, int64_t head_dim, float* out, int64_t out_stride);

struct KernelTable {
  const char* name;
  DotQ8Fn dot_q4_0;
  DotQ8Fn dot_q4_1;
  DotQ8Fn dot_q8_0;
  DotF32Fn dot_f32;
  DotF32Fn dot_f16;
  // KV cache and attention (set by name, see fill_attention_kernels_*; null entries fall back to
  // the scalar twins in dispatch.cpp).
  ToF16Fn f32_to_f16 = nullptr;
  FromF16Fn f16_to_f32 = nullptr;
  AttnScoresFn attn_scores_f16 = nullptr;
  AttnScoresFn attn_scores_f32 = nullptr;
  AttnValuesFn attn_values_f16 = nullptr;
  AttnValuesFn attn_values_f32 = nullptr;
};

const KernelTable& reference_kernels();
const KernelTable* avx2_kernels();    // nullptr when not compiled in
void fill_attention_kernels_avx2(KernelTable& t);  // kernels/avx2/attention_avx2.cpp
const KernelTable& active_kernels();  // chosen once
// Selects a table by name ("generic", "avx2", "avx512"); throws UnsupportedError if the CPU lacks it.
void select_kernels(const char* name);

}  // namespace wren

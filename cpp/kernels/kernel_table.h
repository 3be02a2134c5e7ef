// Per-ISA kernel tables. reference.cpp holds the scalar twins (also the fallback on unknown CPUs);
// avx2/ and avx512/ hold SIMD versions of the same signatures. dispatch.cpp picks one at start-up
// from CPUID, or from WRENLM_ISA=generic|avx2|avx512 to force a path.
#pragma once

#include <cstdint>

#include "tensor/blocks.h"
#include "tensor/dtype.h"
#include "tensor/packed.h"

namespace wren {

// Products of a packed weight matrix (tensor/packed.h) with n activation vectors quantized to ActQ8:
//   y[t * ldy + r] = w[r] . x_t   for the rows r of groups [g0, g1) and tokens t in [0, n),
// where x_t = x + t * x_stride holds w.cols / 32 blocks. n == 1 is decode's matrix x vector.
using GemmPackedFn = void (*)(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride,
                              int64_t n, float* y, int64_t ldy);
// Products of one weight row decoded to int8 (tensor/decode_i8.h: weight i = scale[i / 16] * q[i])
// with n activation vectors quantized to ActQ8:
//   y[t * ldy] = sum_i scale[i / 16] * q[i] * x_t[i]   for t in [0, n), x_t = x + t * x_stride,
// cols a multiple of 32. The codebook formats' decode and few-token products.
using DotI8Fn = void (*)(const int8_t* q, const float* scale, int64_t cols, const ActQ8* x, int64_t x_stride,
                         int64_t n, float* y, int64_t ldy);
// Products of up to 16 weight rows decoded to int8 (q: rows x cols, row-major; scale: rows x cols / 16)
// with n activation vectors:
//   y[t * ldy + r] = sum_i scale[r * cols / 16 + i / 16] * q[r * cols + i] * x_t[i]   for r < rows <= 16,
// cols a multiple of 32; q and scale hold all 16 rows, those past `rows` zero; work:
// kI8RowsWorkPerCol * cols bytes, 64-byte aligned, for the kernel's re-layout. The codebook formats'
// prefill: rows decoded once serve every token. Its scalar twin is DotI8Fn row by row (the same
// sums); a table without one leaves it null, and matmul then keeps those formats' int8 path to few
// tokens.
using GemmI8RowsFn = void (*)(const int8_t* q, const float* scale, int64_t rows, int64_t cols, const ActQ8* x,
                              int64_t x_stride, int64_t n, float* y, int64_t ldy, void* work);
constexpr int64_t kI8RowsWorkPerCol = 24;  // AVX-512: 768 bytes per 32-column sub-block of 16 rows (AVX2: 640)
// Products of one weight row in its file layout (a codebook format: tensor/decode_i8.h) with n
// activation vectors, decoded in registers: y[t * ldy] = w . x_t, as DotI8Fn after the format's
// decoder (its scalar twin). Decode's product, for the formats an ISA has one for.
using DotRowFn = void (*)(const void* row, int64_t cols, const ActQ8* x, int64_t x_stride, int64_t n, float* y,
                          int64_t ldy);
// Dot product of one float-typed weight row (F32/F16/BF16) with a float activation.
using DotF32Fn = float (*)(const void* row, const float* x, int64_t n);
// Products of F16 weight rows [r0, r1) (row-major, `cols` elements a row) with n F32 activation
// rows x (n, cols):  y[t * ldy + r] = w[r] . x_t. Few-token and prefill products of F16 models,
// without converting the weights to an F32 copy first.
using GemmF16Fn = void (*)(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n,
                           float* y, int64_t ldy);
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
// Softmax numerators: in place x[i] = exp(x[i] - shift) for n floats; returns their sum. Callers
// pass shift >= max(x), so no argument exceeds 0; results under float's normal range (e^-87.3)
// may come back as 0 instead of a subnormal (AVX2).
using ExpSumFn = float (*)(float* x, int64_t n, float shift);
// Short float rows times one vector, added: y[r] += scale * (b_r . h) for r in [0, n_rows), with
// b_r = b + r * k (k floats, typically a LoRA rank of 4 to 64). The B h step of low-rank terms on
// decode (kernels/low_rank.h), where one call covers a row task's run of B.
using RowsDotF32Fn = void (*)(const float* b, int64_t k, int64_t n_rows, const float* h, float scale, float* y);

// Activations quantized to 8-bit blocks (tensor/blocks.h ActQ8) for the packed and int8 products:
// n floats (a multiple of 32) into n / 32 blocks. Every ISA gives the scalar twin's bits
// (quantize_act_q8, tensor/quant.cpp): the same float operations in the same order.
using QuantizeActFn = void (*)(const float* x, ActQ8* out, int64_t n);
// A gated MLP's activation, in place: gate[i] = act(gate[i]) * up[i] for n floats.
//   silu (SwiGLU):       act(g) = g / (1 + e^-g)
//   gelu_tanh (GeGLU):   act(g) = g / 2 * (1 + tanh(y)), y = sqrt(2/pi) (g + 0.044715 g^3), computed
//                        as g / (1 + e^-2y), the same value without 1 + tanh(y)'s cancellation for y << 0
using GateMulFn = void (*)(float* gate, const float* up, int64_t n);

struct KernelTable {
  const char* name;
  GemmPackedFn gemm_packed;  // Q4_0, Q4_1, Q8_0
  DotF32Fn dot_f32;
  DotF32Fn dot_f16;
  GemmF16Fn gemm_f16;
  DotI8Fn dot_i8 = nullptr;  // null: the scalar twin (dispatch.cpp)
  GemmI8RowsFn gemm_i8_rows = nullptr;  // null: none (see GemmI8RowsFn)
  // Decode's fused products of the codebook formats (null: decode_i8, then dot_i8); dot_row() picks one.
  DotRowFn dot_iq2_xxs = nullptr, dot_iq2_xs = nullptr, dot_iq2_s = nullptr;
  DotRowFn dot_iq3_xxs = nullptr, dot_iq3_s = nullptr, dot_iq1_s = nullptr, dot_iq1_m = nullptr;
  DotRowFn dot_mxfp4 = nullptr;

  DotRowFn dot_row(DType t) const {
    switch (t) {
      case DType::IQ2_XXS: return dot_iq2_xxs;
      case DType::IQ2_XS: return dot_iq2_xs;
      case DType::IQ2_S: return dot_iq2_s;
      case DType::IQ3_XXS: return dot_iq3_xxs;
      case DType::IQ3_S: return dot_iq3_s;
      case DType::IQ1_S: return dot_iq1_s;
      case DType::IQ1_M: return dot_iq1_m;
      case DType::MXFP4: return dot_mxfp4;
      default: return nullptr;
    }
  }
  // KV cache and attention (set by name, see fill_attention_kernels_*; null entries fall back to
  // the scalar twins in dispatch.cpp).
  ToF16Fn f32_to_f16 = nullptr;
  FromF16Fn f16_to_f32 = nullptr;
  AttnScoresFn attn_scores_f16 = nullptr;
  AttnScoresFn attn_scores_f32 = nullptr;
  AttnValuesFn attn_values_f16 = nullptr;
  AttnValuesFn attn_values_f32 = nullptr;
  ExpSumFn exp_sum = nullptr;
  RowsDotF32Fn rows_dot_f32 = nullptr;  // null: the scalar twin (dispatch.cpp)
  // Activations (set by fill_activation_kernels_*; null: the scalar twins).
  QuantizeActFn quantize_act = nullptr;
  GateMulFn silu_mul = nullptr;
  GateMulFn gelu_tanh_mul = nullptr;
};

const KernelTable& reference_kernels();
const KernelTable* avx2_kernels();    // nullptr when not compiled in
const KernelTable* avx512_kernels();  // AVX-512 F/BW/VL + VNNI; nullptr when not compiled in
void fill_attention_kernels_avx2(KernelTable& t);    // kernels/avx2/attention_avx2.cpp (also used by avx512)
void fill_attention_kernels_avx512(KernelTable& t);  // kernels/avx512/attention_avx512.cpp
void fill_low_rank_kernels_avx2(KernelTable& t);     // kernels/avx2/low_rank_avx2.cpp (also used by avx512)
void fill_activation_kernels_avx2(KernelTable& t);    // kernels/avx2/activations_avx2.cpp
void fill_activation_kernels_avx512(KernelTable& t);  // kernels/avx512/activations_avx512.cpp
const KernelTable& active_kernels();  // chosen once
// Whether the named table is compiled in and this CPU can run it.
bool isa_available(const char* name);
// Selects a table by name ("generic", "avx2", "avx512"); throws UnsupportedError if the CPU lacks it.
void select_kernels(const char* name);

}  // namespace wren

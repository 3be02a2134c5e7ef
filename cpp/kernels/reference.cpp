// Scalar reference kernels: the twins every SIMD kernel is tested against, and the generic path.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/exp_poly.h"
#include "kernels/kernel_table.h"
#include "tensor/fp16.h"
#include "tensor/quant.h"

namespace wren {
namespace {

void gemm_packed_ref(const PackedMatrix& w, int64_t g0, int64_t g1, const ActQ8* x, int64_t x_stride, int64_t n,
                     float* y, int64_t ldy) {
  const PackFormat f = pack_format(w.dtype);
  const int subs = f.tile_cols / kQK;
  for (int64_t g = g0; g < g1; ++g) {
    const int rows = static_cast<int>(std::min<int64_t>(kPackRows, w.rows - g * kPackRows));
    for (int64_t t = 0; t < n; ++t) {
      const ActQ8* xt = x + t * x_stride;
      float acc[kPackRows] = {};
      for (int64_t tl = 0; tl < w.n_tiles; ++tl) {
        const uint8_t* tile = w.tile(g, tl);
        for (int j = 0; j < subs; ++j) {
          const uint8_t* q = tile + w.header_bytes + static_cast<size_t>(j) * f.sub_bytes();
          const ActQ8& xb = xt[tl * subs + j];
          for (int r = 0; r < kPackRows; ++r)
            for (int half = 0; half < 2; ++half) {
              // The integer part every ISA computes exactly, then the row's scale and offset.
              int32_t s = 0;
              for (int e = 16 * half; e < 16 * half + 16; ++e)
                s += packed_value(f, packed_u(f, q, r, e)) * xb.qs[e];
              float sc, off;
              packed_scale_offset(f, tile, r, kQK * j + 16 * half, &sc, &off);
              acc[r] += static_cast<float>(s) * (sc * xb.d);
              acc[r] += off * xb.half[half];
            }
        }
      }
      for (int r = 0; r < rows; ++r) y[t * ldy + g * kPackRows + r] = acc[r];
    }
  }
}

float dot_f32_ref(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const float*>(row);
  float acc = 0.f;
  for (int64_t i = 0; i < n; ++i) acc += w[i] * x[i];
  return acc;
}

float dot_f16_ref(const void* row, const float* x, int64_t n) {
  const auto* w = static_cast<const uint16_t*>(row);
  float acc = 0.f;
  for (int64_t i = 0; i < n; ++i) acc += fp16_to_f32(w[i]) * x[i];
  return acc;
}

void gemm_f16_ref(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n, float* y,
                  int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < n; ++t) y[t * ldy + r] = dot_f16_ref(w + r * cols, x + t * cols, cols);
}

void f32_to_f16_ref(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

void f16_to_f32_ref(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}

inline float to_f32(float x) { return x; }
inline float to_f32(uint16_t x) { return fp16_to_f32(x); }

template <typename T>
void attn_scores_ref(const float* q, int64_t q_stride, int64_t n_q, const void* k, int64_t kv_stride, int64_t n_keys,
                     int64_t head_dim, float scale, float* s, int64_t s_stride) {
  const T* keys = static_cast<const T*>(k);
  for (int64_t a = 0; a < n_q; ++a)
    for (int64_t j = 0; j < n_keys; ++j) {
      float acc = 0.f;
      for (int64_t d = 0; d < head_dim; ++d) acc += q[a * q_stride + d] * to_f32(keys[j * kv_stride + d]);
      s[a * s_stride + j] = acc * scale;
    }
}

template <typename T>
void attn_values_ref(const float* p, int64_t p_stride, int64_t n_q, const void* v, int64_t kv_stride, int64_t n_keys,
                     int64_t head_dim, float* out, int64_t out_stride) {
  const T* values = static_cast<const T*>(v);
  for (int64_t a = 0; a < n_q; ++a) {
    float* o = out + a * out_stride;
    for (int64_t d = 0; d < head_dim; ++d) o[d] = 0.f;
    for (int64_t j = 0; j < n_keys; ++j) {
      const float pj = p[a * p_stride + j];
      for (int64_t d = 0; d < head_dim; ++d) o[d] += pj * to_f32(values[j * kv_stride + d]);
    }
  }
}

void dot_i8_ref(const int8_t* q, const float* scale, int64_t cols, const ActQ8* x, int64_t x_stride, int64_t n,
                float* y, int64_t ldy) {
  for (int64_t t = 0; t < n; ++t) {
    const ActQ8* a = x + t * x_stride;
    float acc = 0.f;
    for (int64_t b = 0; b < cols / kQK; ++b) {
      for (int h = 0; h < 2; ++h) {  // 16 weights per scale
        int32_t s = 0;
        for (int j = 16 * h; j < 16 * h + 16; ++j) s += q[kQK * b + j] * a[b].qs[j];
        acc += scale[2 * b + h] * a[b].d * static_cast<float>(s);
      }
    }
    y[t * ldy] = acc;
  }
}

void rows_dot_f32_ref(const float* b, int64_t k, int64_t n_rows, const float* h, float scale, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float s = 0.f;
    for (int64_t j = 0; j < k; ++j) s += b[r * k + j] * h[j];
    y[r] += scale * s;
  }
}

float exp_sum_ref(float* x, int64_t n, float shift) {
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - shift);
  return sum;
}

void quantize_act_ref(const float* x, ActQ8* out, int64_t n) { quantize_act_q8(x, out, static_cast<size_t>(n)); }

void silu_mul_ref(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

void gelu_tanh_mul_ref(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float minus_2y = kMinus2Sqrt2OverPi * (g + kGeluCubic * (g * g * g));
    gate[i] = g / (1.f + std::exp(minus_2y)) * up[i];
  }
}

}  // namespace

const KernelTable& reference_kernels() {
  static const KernelTable table = [] {
    KernelTable t{"generic", gemm_packed_ref, dot_f32_ref, dot_f16_ref, gemm_f16_ref};
    t.f32_to_f16 = f32_to_f16_ref;
    t.f16_to_f32 = f16_to_f32_ref;
    t.attn_scores_f16 = attn_scores_ref<uint16_t>;
    t.attn_scores_f32 = attn_scores_ref<float>;
    t.attn_values_f16 = attn_values_ref<uint16_t>;
    t.attn_values_f32 = attn_values_ref<float>;
    t.exp_sum = exp_sum_ref;
    t.dot_i8 = dot_i8_ref;
    t.rows_dot_f32 = rows_dot_f32_ref;
    t.quantize_act = quantize_act_ref;
    t.silu_mul = silu_mul_ref;
    t.gelu_tanh_mul = gelu_tanh_mul_ref;
    return t;
  }();
  return table;
}

}  // namespace wren

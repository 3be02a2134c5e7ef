// Scalar reference kernels: the twins every SIMD kernel is tested against, and the generic path.
#include "kernels/kernel_table.h"
#include "tensor/fp16.h"

namespace wren {
namespace {

float dot_q4_0_ref(const void* row, const ActQ8* x, int64_t n) {
  const auto* w = static_cast<const BlockQ4_0*>(row);
  float acc = 0.f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int s = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      s += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
      s += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + kQK / 2];
    }
    acc += fp16_to_f32(w[b].d) * x[b].d * static_cast<float>(s);
  }
  return acc;
}

float dot_q4_1_ref(const void* row, const ActQ8* x, int64_t n) {
  const auto* w = static_cast<const BlockQ4_1*>(row);
  float acc = 0.f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int s = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      s += (w[b].qs[j] & 0x0f) * x[b].qs[j];
      s += (w[b].qs[j] >> 4) * x[b].qs[j + kQK / 2];
    }
    acc += fp16_to_f32(w[b].d) * x[b].d * static_cast<float>(s) + fp16_to_f32(w[b].m) * x[b].sum;
  }
  return acc;
}

float dot_q8_0_ref(const void* row, const ActQ8* x, int64_t n) {
  const auto* w = static_cast<const BlockQ8_0*>(row);
  float acc = 0.f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int s = 0;
    for (int j = 0; j < kQK; ++j) s += w[b].qs[j] * x[b].qs[j];
    acc += fp16_to_f32(w[b].d) * x[b].d * static_cast<float>(s);
  }
  return acc;
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

}  // namespace

const KernelTable& reference_kernels() {
  static const KernelTable table{"generic", dot_q4_0_ref, dot_q4_1_ref, dot_q8_0_ref, dot_f32_ref, dot_f16_ref};
  return table;
}

}  // namespace wren

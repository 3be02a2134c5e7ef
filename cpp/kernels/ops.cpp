#include "kernels/ops.h"

#include <Eigen/Core>
#include <cmath>
#include <limits>

#include "kernels/kernel_table.h"

namespace wren {

using RowVec = Eigen::Map<Eigen::ArrayXf>;
using ConstRowVec = Eigen::Map<const Eigen::ArrayXf>;

void rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out) {
  ConstRowVec weight(w, dim);
  for (int64_t t = 0; t < n; ++t) {
    ConstRowVec in(x + t * dim, dim);
    const float mean_sq = in.square().mean();
    const float inv = 1.0f / std::sqrt(mean_sq + eps);
    RowVec(out + t * dim, dim) = in * inv * weight;
  }
}

void silu_mul(float* gate, const float* up, int64_t count) { active_kernels().silu_mul(gate, up, count); }

void softmax_rows(float* x, int64_t n, int64_t len, int64_t stride) {
  for (int64_t r = 0; r < n; ++r) {
    RowVec row(x + r * stride, len);
    const float mx = row.maxCoeff();
    row = (row - mx).exp();
    row /= row.sum();
  }
}

void add_bias(float* x, const float* b, int64_t n, int64_t dim) {
  Eigen::Map<Eigen::MatrixXf>(x, dim, n).colwise() += Eigen::Map<const Eigen::VectorXf>(b, dim);
}

Rope::Rope(int64_t rot_dim, double base, double scale, std::vector<float> freq_factors, RopeStyle style,
           float magnitude)
    : rot_dim_(rot_dim), style_(style), magnitude_(magnitude) {
  const int64_t half = rot_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double f = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(rot_dim));
    if (!freq_factors.empty()) f /= freq_factors[static_cast<size_t>(i)];
    inv_freq_[static_cast<size_t>(i)] = f / scale;
  }
}

void Rope::prepare(const int64_t* positions, int64_t n) {
  const int64_t half = rot_dim_ / 2;
  cos_.resize(static_cast<size_t>(n * half));
  sin_.resize(static_cast<size_t>(n * half));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < half; ++i) {
      // Same rounding as the float32 reference: angle computed in float.
      const float angle = static_cast<float>(positions[t]) * static_cast<float>(inv_freq_[static_cast<size_t>(i)]);
      cos_[static_cast<size_t>(t * half + i)] = std::cos(angle) * magnitude_;
      sin_[static_cast<size_t>(t * half + i)] = std::sin(angle) * magnitude_;
    }
}

void Rope::apply(float* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t stride, int64_t table_row0) const {
  const int64_t half = rot_dim_ / 2;
  for (int64_t t = 0; t < n; ++t) {
    const float* c = cos_.data() + (table_row0 + t) * half;
    const float* s = sin_.data() + (table_row0 + t) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + t * stride + h * head_dim;
      // Pair i is (v[lo], v[hi]): adjacent, or half the rotated width apart.
      const int64_t step = style_ == RopeStyle::kNeox ? 1 : 2;
      const int64_t gap = style_ == RopeStyle::kNeox ? half : 1;
      for (int64_t i = 0; i < half; ++i) {
        float& lo = v[i * step];
        float& hi = v[i * step + gap];
        const float a = lo, b = hi;
        lo = a * c[i] - b * s[i];
        hi = a * s[i] + b * c[i];
      }
    }
  }
}

}  // namespace wren

namespace wren {

void gelu_tanh_mul(float* gate, const float* up, int64_t count) { active_kernels().gelu_tanh_mul(gate, up, count); }

void soft_cap(float* x, int64_t count, float cap) {
  RowVec r(x, count);
  r = cap * (r / cap).tanh();
}

}  // namespace wren

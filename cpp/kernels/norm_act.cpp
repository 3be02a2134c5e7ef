#include "kernels/norm_act.h"

#include <Eigen/Core>
#include <cmath>

namespace wren {

using RowVec = Eigen::Map<Eigen::ArrayXf>;
using ConstRowVec = Eigen::Map<const Eigen::ArrayXf>;

void layer_norm(const float* x, const float* w, const float* b, int64_t n, int64_t dim, float eps, float* out) {
  ConstRowVec weight(w, dim);
  for (int64_t t = 0; t < n; ++t) {
    ConstRowVec in(x + t * dim, dim);
    const float mean = in.mean();
    const float var = (in - mean).square().mean();
    const float inv = 1.0f / std::sqrt(var + eps);
    RowVec o(out + t * dim, dim);
    if (b)
      o = (in - mean) * inv * weight + ConstRowVec(b, dim);
    else
      o = (in - mean) * inv * weight;
  }
}

void gelu(float* x, int64_t count, Gelu kind) {
  RowVec v(x, count);
  if (kind == Gelu::kTanh) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    v = 0.5f * v * (1.0f + (kSqrt2OverPi * (v + 0.044715f * v.cube())).tanh());
  } else {
    constexpr float kInvSqrt2 = 0.7071067811865476f;
    for (int64_t i = 0; i < count; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
  }
}

}  // namespace wren

// LayerNorm and GELU: the normalization and activation of the "classic" transformers (GPT-2,
// GPT-Neo, BLOOM, BERT). F32, Eigen-vectorized, element-wise over rows.
#pragma once

#include <cstdint>

namespace wren {

// out[t] = (x[t] - mean(x[t])) / sqrt(var(x[t]) + eps) * w + b, for n rows of dim floats
// (biased variance, as torch.nn.LayerNorm). b may be null (no bias). out may alias x.
void layer_norm(const float* x, const float* w, const float* b, int64_t n, int64_t dim, float eps, float* out);

// Which GELU a model uses.
enum class Gelu {
  kErf,   // exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (BERT, transformers' "gelu")
  kTanh,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GPT-2's and GPT-Neo's "gelu_new", BLOOM)
};

// In place: x[i] = gelu(x[i]) for count elements.
void gelu(float* x, int64_t count, Gelu kind);

}  // namespace wren

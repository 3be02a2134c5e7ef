// Element-wise and row-wise float operations of the forward pass (F32, Eigen-vectorized).
#pragma once

#include <cstdint>
#include <vector>

namespace wren {

// out[t] = x[t] / rms(x[t]) * w, for n rows of dim floats. out may alias x.
void rms_norm(const float* x, const float* w, int64_t n, int64_t dim, float eps, float* out);

// In place: gate[i] = silu(gate[i]) * up[i] for count elements (the active ISA's kernel).
void silu_mul(float* gate, const float* up, int64_t count);

// In place softmax over each of n rows of len floats (rows `stride` floats apart).
void softmax_rows(float* x, int64_t n, int64_t len, int64_t stride);

// x (n, dim) += b (dim) on every row.
void add_bias(float* x, const float* b, int64_t n, int64_t dim);

// Which dimensions of a head RoPE rotates together.
enum class RopeStyle {
  kInterleaved,  // (x[2i], x[2i+1]): GGUF "llama" (its converter permutes Q/K rows into this order)
  kNeox,         // (x[i], x[i + rot_dim/2]): transformers' rotate_half; GGUF qwen2, gemma, phi3, ...
};

// Rotary position embedding tables for a run of positions.
class Rope {
 public:
  // rot_dim: rotated dimensions (the first rot_dim of each head); base: frequency base; scale:
  // positions are divided by it (linear scaling); freq_factors: optional (rot_dim/2) per-pair
  // divisors of the frequencies (Llama 3's rope_freqs, Phi-3's LongRoPE short/long factors);
  // magnitude: cos and sin are multiplied by it, scaling every rotated pair (LongRoPE's attention
  // factor; 1: a pure rotation).
  Rope(int64_t rot_dim, double base, double scale, std::vector<float> freq_factors,
       RopeStyle style = RopeStyle::kInterleaved, float magnitude = 1.f);
  // Precomputes cos/sin for n tokens: table row t is position positions[t] (the tokens of a batch
  // of sequences, each at its own positions).
  void prepare(const int64_t* positions, int64_t n);
  // Rotates the pairs (see RopeStyle) of each head of n rows (row stride `stride`), row t by table
  // row table_row0 + t.
  void apply(float* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t stride, int64_t table_row0 = 0) const;

 private:
  int64_t rot_dim_;
  RopeStyle style_;
  float magnitude_;
  std::vector<double> inv_freq_;  // (rot_dim/2)
  std::vector<float> cos_, sin_;  // (n, rot_dim/2)
};

}  // namespace wren

namespace wren {

// In place: gate[i] = gelu(gate[i]) * up[i], GELU in its tanh approximation (Gemma's GeGLU; the
// active ISA's kernel).
void gelu_tanh_mul(float* gate, const float* up, int64_t count);

// In place: x[i] = cap * tanh(x[i] / cap) (Gemma 2's logit soft-capping).
void soft_cap(float* x, int64_t count, float cap);

}  // namespace wren

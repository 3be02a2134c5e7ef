// Pieces of the "classic" transformers (GPT-2, GPT-Neo, BLOOM, BERT): LayerNorm with its bias,
// projections with biases, a dense GELU feed-forward and learned absolute position embeddings.
// Binding follows llama.cpp's tensor names; optional tensors (biases, fused QKV) are taken where
// the file has them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/norm_act.h"
#include "models/blocks.h"
#include "models/weights.h"

namespace wren {

struct LayerNormWeights {
  std::vector<float> w;  // (dim)
  std::vector<float> b;  // (dim), or empty: no bias
  bool empty() const { return w.empty(); }
};

struct DenseMlpWeights {
  QuantMatrix up;             // (ffn_dim, dim)
  std::vector<float> up_b;    // (ffn_dim), or empty
  QuantMatrix down;           // (dim, ffn_dim)
  std::vector<float> down_b;  // (dim), or empty
};

// out (n, dim) = LayerNorm(x) with the weights' scale and bias. out may alias x.
void apply_layer_norm(const LayerNormWeights& ln, const float* x, int64_t n, int64_t dim, float eps, float* out);

// q (n, q_dim), k, v (n, kv_dim) = the projections of x (n, dim), each plus its bias when it has one.
void project_qkv(const AttentionWeights& a, const float* x, int64_t n, float* q, float* k, float* v, Workspace& ws,
                 ThreadPool& pool);

// out (n, dim) = wo att + bo.
void project_out(const AttentionWeights& a, const float* att, int64_t n, float* out, Workspace& ws, ThreadPool& pool);

// out (n, dim) = down(gelu(up x + up_b)) + down_b. out may alias x.
void dense_mlp(const DenseMlpWeights& w, Gelu act, const float* x, int64_t n, float* out, Workspace& ws,
               ThreadPool& pool);

// x (n, dim) += rows pos0..pos0+n-1 of a learned position table (n_positions, dim), read through
// scratch (n, dim). ContextOverflowError past the table's end.
void add_positions(const QuantMatrix& table, int64_t pos0, int64_t n, float* x, float* scratch);

// <name>.weight and, when the file has it, <name>.bias; both of length dim.
LayerNormWeights bind_layer_norm(const WeightBinder& w, const std::string& name, int64_t dim);

// Q, K, V from a fused <prefix>attn_qkv (rows: all of Q, then K, then V, as llama.cpp writes GPT-2's
// and BLOOM's) or from attn_q/attn_k/attn_v; attn_output; each with its bias where the file has one.
AttentionWeights bind_biased_attention(const WeightBinder& w, const std::string& prefix, const AttentionShape& s,
                                       int64_t dim);

// <prefix>ffn_up and ffn_down with their biases where the file has them.
DenseMlpWeights bind_dense_mlp(const WeightBinder& w, const std::string& prefix, int64_t dim, int64_t ffn_dim);

}  // namespace wren

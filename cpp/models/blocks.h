// Building blocks shared by the architectures: attention and MLP weights, gated MLPs, the activation
// workspace and the output head. Each takes its inputs and scratch explicitly; none allocates.
// Attention itself (KV cache, decode and prefill, masks) is cpp/attention/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "attention/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "util/thread_pool.h"

namespace wren {

struct AttentionWeights {
  QuantMatrix wq;  // (n_heads*head_dim, dim)
  QuantMatrix wk;  // (n_kv_heads*head_dim, dim)
  QuantMatrix wv;  // (n_kv_heads*head_dim, dim)
  QuantMatrix wo;  // (dim, n_heads*head_dim)
  std::vector<float> bq, bk, bv, bo;  // optional biases (empty: none), lengths q_dim, kv_dim, kv_dim, dim
};

struct GatedMlpWeights {
  QuantMatrix gate;  // (ffn_dim, dim)
  QuantMatrix up;    // (ffn_dim, dim)
  QuantMatrix down;  // (dim, ffn_dim)
};

// Activation buffers for one forward call of up to max_batch tokens.
struct Workspace {
  Workspace(int64_t max_batch, int64_t dim, const AttentionShape& a, int64_t ffn_dim, int n_threads);
  std::unique_ptr<float[]> x;       // (batch, dim) residual stream
  std::unique_ptr<float[]> xb;      // (batch, dim) normed input / block output
  std::unique_ptr<float[]> q;       // (batch, q_dim)
  std::unique_ptr<float[]> k;       // (batch, kv_dim) new keys, F32 staging before the cache
  std::unique_ptr<float[]> v;       // (batch, kv_dim) new values, likewise
  std::unique_ptr<float[]> att;     // (batch, q_dim) attention output before wo
  std::unique_ptr<float[]> hb;      // (batch, ffn_dim); only (mlp_tokens(...), ffn_dim) touched per pass
  std::unique_ptr<float[]> hb2;     // (batch, ffn_dim)
  AttentionScratch attn;            // grows with the longest sequence decoded
  MatmulScratch mm;
};

// Tokens an MLP takes per pass over its weights, out of n. The packed and F16 products work in
// 64-token tasks anyway, so slices of kMlpTokens cost nothing and keep the (tokens, ffn_dim)
// intermediates small: only the pages of one slice are ever touched (peak memory). Weights
// converted to F32 tiles for sgemm (MatmulPath::kTiles) use each tile for the whole batch: no
// slicing there.
int64_t mlp_tokens(const QuantMatrix& first_weight, const Workspace& ws, int64_t n);

// out (n, dim) = down( act(gate(x)) * up(x) ), act = SiLU.
void swiglu_mlp(const GatedMlpWeights& w, const float* x, int64_t n, float* out, Workspace& ws, ThreadPool& pool);

// The gate's activation in a gated MLP.
enum class GateActivation {
  kSilu,      // SwiGLU (Llama, Qwen2, Phi-3, Mixtral's experts)
  kGeluTanh,  // GeGLU with GELU's tanh approximation (Gemma)
};

// out (n, dim) = down( act(gate(x)) * up(x) ). out may alias x.
void gated_mlp(const GatedMlpWeights& w, GateActivation act, const float* x, int64_t n, float* out, Workspace& ws,
               ThreadPool& pool);

// x[i] += y[i]
void add_in_place(float* x, const float* y, int64_t count);

// logits (rows, head.rows) = x (rows, dim) times the output head, a slice of rows at a time with
// cancel polled between slices: over a long input it is the longest single step of a forward pass
// (hundreds of milliseconds), and Ctrl-C must not wait for it.
void output_head(const QuantMatrix& head, const float* x, int64_t rows, float* logits, ThreadPool& pool,
                 MatmulScratch& s, const std::function<bool()>& cancel);

}  // namespace wren

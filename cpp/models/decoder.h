// The decoder-only transformer the Llama, Qwen2, Gemma, Phi-3 and Mixtral families share: one
// layer skeleton (pre-norm attention and feed-forward with residuals) whose optional steps —
// biases, QK-norm, post-norms, soft-capping, sliding windows, a mixture of experts — a family turns
// on through its config and the weights it binds. Each family file reads its hyper-parameters and
// binds its tensors; none has a forward of its own.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "models/blocks.h"
#include "models/model.h"
#include "models/moe.h"
#include "models/weights.h"

namespace wren {

struct DecoderConfig {
  int64_t n_vocab = 0, dim = 0, n_layers = 0, ffn_dim = 0, n_ctx_train = 0, rope_dim = 0;
  AttentionShape attn;
  float rms_eps = 1e-5f;
  double rope_base = 10000.0, rope_scale = 1.0;
  RopeStyle rope_style = RopeStyle::kNeox;
  // LongRoPE (Phi-3, when the file has rope_factors_short/long): a sequence longer than
  // rope_orig_ctx rotates with the long factors, a shorter one with the short factors.
  int64_t rope_orig_ctx = 0;
  float rope_attn_factor = 1.f;  // cos and sin scaled by it (every family; LongRoPE's attention factor)
  // Family features; the defaults are plain Llama.
  GateActivation act = GateActivation::kSilu;
  float embed_scale = 0.f;     // > 0: token embeddings are multiplied by it (Gemma: sqrt(dim))
  float attn_scale = 0.f;      // score scale; 0: 1/sqrt(head_dim)
  float attn_softcap = 0.f;    // > 0: attention scores soft-capped (Gemma 2)
  float final_softcap = 0.f;   // > 0: output logits soft-capped (Gemma 2)
  int64_t window = 0;          // sliding window of the layers marked sliding (0: none)
  std::vector<bool> sliding;   // (n_layers) which layers use the window; empty: none
  double rope_base_swa = 0.0;  // > 0: sliding layers rotate with this base, unscaled (Gemma 3)
  int64_t n_experts = 0, n_experts_used = 0;  // > 0: the feed-forward is a mixture of experts

  // The keys every family writes ("<arch>.embedding_length", ...), validated, and the RoPE scaling
  // keys llama.cpp reads for any family; rope_style is the caller's to set.
  static DecoderConfig read(const TensorSource& f, const std::string& arch);
  bool is_sliding(int64_t layer) const { return !sliding.empty() && sliding[static_cast<size_t>(layer)]; }
};

struct DecoderLayer {
  std::vector<float> attn_norm;       // (dim)
  AttentionWeights attn;
  std::vector<float> q_norm, k_norm;  // (head_dim) per-head RMSNorm of queries and keys (Gemma 3), or empty
  std::vector<float> attn_post_norm;  // (dim) RMSNorm of the attention output (Gemma 2/3), or empty
  std::vector<float> ffn_norm;        // (dim)
  GatedMlpWeights mlp;                // dense feed-forward, unless
  MoeWeights moe;                     // a mixture of experts (moe.n_experts() > 0)
  std::vector<float> ffn_post_norm;   // (dim) RMSNorm of the feed-forward output (Gemma 2/3), or empty
};

// Binds one layer's tensors under "blk.N.".
using LayerBinder = std::function<void(const WeightBinder& w, const std::string& prefix, const DecoderConfig& c,
                                       DecoderLayer& layer)>;

// The common bindings: attn_q/k/v or the fused attn_qkv (Phi-3), with their biases when the file has
// them, and attn_output (see bind_biased_attention).
void bind_attention(const WeightBinder& w, const std::string& prefix, const DecoderConfig& c, AttentionWeights& a);
// ffn_gate/ffn_up/ffn_down, or the experts when c.n_experts > 0.
void bind_feed_forward(const WeightBinder& w, const std::string& prefix, const DecoderConfig& c, DecoderLayer& layer);

std::unique_ptr<Model> make_decoder(const TensorSource& f, const DecoderConfig& c, ThreadPool& pool, int64_t n_ctx,
                                    const LayerBinder& bind_layer);

}  // namespace wren

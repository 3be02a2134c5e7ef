// The pre-norm LayerNorm decoder that GPT-2, GPT-Neo and BLOOM share: embeddings (plus learned
// positions, or an embedding LayerNorm), then per layer LayerNorm -> attention (biased
// projections) -> residual -> LayerNorm -> dense GELU MLP -> residual, a final LayerNorm and the
// output head (tied to the embedding unless the file has its own). Family files read their
// hyper-parameters into a ClassicConfig; position handling (learned table, ALiBi) and per-layer
// attention masks (GPT-Neo's local layers) are config, not code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/norm_act.h"
#include "models/blocks.h"
#include "models/model.h"

namespace wren {

class TensorSource;

struct ClassicConfig {
  int64_t n_vocab = 0, dim = 0, n_layers = 0, ffn_dim = 0, n_ctx_train = 0;
  AttentionShape attn;
  float norm_eps = 1e-5f;
  Gelu act = Gelu::kTanh;
  bool learned_positions = false;  // position_embd (GPT-2, GPT-Neo)
  bool embedding_norm = false;     // token_embd_norm after the embedding (BLOOM)
  bool alibi = false;              // ALiBi biases with BLOOM's slopes instead of positions
  float attn_scale = 0.f;          // score scale; 0: 1/sqrt(head_dim) (GPT-Neo: 1, no scaling)
  int64_t window = 0;              // sliding window of the layers marked local
  std::vector<bool> local;         // (n_layers) which layers use the window; empty: none

  // The keys every family writes ("<arch>.embedding_length", "...layer_norm_epsilon", ...), validated.
  static ClassicConfig read(const TensorSource& f, const std::string& arch);
  bool is_local(int64_t layer) const { return !local.empty() && local[static_cast<size_t>(layer)]; }
};

// ALiBi slopes for n_heads as BLOOM computes them: a geometric series over the largest power of two
// <= n_heads, then every other term of the series for twice that many heads for the rest.
std::vector<float> bloom_alibi_slopes(int64_t n_heads);

std::unique_ptr<Model> make_classic_decoder(const TensorSource& f, const ClassicConfig& c, ThreadPool& pool,
                                            int64_t n_ctx);

}  // namespace wren

// Mixture of experts (Mixtral): a router picks the top k of n SwiGLU experts per token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/blocks.h"
#include "models/weights.h"

namespace wren {

struct MoeWeights {
  QuantMatrix router;                    // (n_experts, dim) ffn_gate_inp
  std::vector<GatedMlpWeights> experts;  // n_experts, each gate/up (ffn, dim), down (dim, ffn)
  int64_t n_used = 0;                    // experts per token (k)
  int64_t n_experts() const { return static_cast<int64_t>(experts.size()); }
};

// Binds blk.N.ffn_gate_inp and the experts' matrices under prefix "blk.N.", from stacked 3-D
// tensors (ffn_gate_exps, ...) or per-expert 2-D ones (ffn_gate.E.weight, ...).
MoeWeights bind_moe(const WeightBinder& w, const std::string& prefix, int64_t n_experts, int64_t n_used, int64_t dim,
                    int64_t ffn_dim);

// Routing buffers for up to max_batch tokens.
struct MoeScratch {
  MoeScratch(int64_t max_batch, int64_t dim, int64_t n_experts, int64_t n_used);
  std::unique_ptr<float[]> probs;      // (batch, n_experts) router probabilities
  std::unique_ptr<int32_t[]> choice;   // (batch, n_used) chosen experts
  std::unique_ptr<float[]> weight;     // (batch, n_used) their renormalised weights
  std::unique_ptr<int32_t[]> rows;     // (batch) tokens routed to the expert being run
  std::unique_ptr<float[]> rows_w;     // (batch) their weights
  std::unique_ptr<float[]> gathered;   // (batch, dim) those tokens' inputs, then the expert's outputs
  std::unique_ptr<float[]> acc;        // (batch, dim) weighted sum of the experts' outputs
};

// out (n, dim) = sum over each token's top-k experts e of w_e * expert_e(x): router softmax over
// all experts, top k, weights renormalised to sum 1 (as transformers' Mixtral). Tokens are grouped
// per expert, so each expert runs one batched product over its tokens. out may alias x.
void moe_mlp(const MoeWeights& w, const float* x, int64_t n, int64_t dim, float* out, MoeScratch& s, Workspace& ws,
             ThreadPool& pool);

}  // namespace wren

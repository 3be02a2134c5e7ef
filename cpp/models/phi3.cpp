// Phi-3: the Llama layer with Q/K/V fused into attn_qkv and gate/up fused into ffn_up (gate rows
// first), NeoX RoPE (LongRoPE-scaled in the long-context models), and an optional sliding window on
// every layer.
#include "format/tensor_source.h"
#include "util/errors.h"
#include "models/decoder.h"
#include "models/registry.h"

namespace wren {

std::unique_ptr<Model> make_phi3(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  DecoderConfig c = DecoderConfig::read(f, arch);
  c.rope_style = RopeStyle::kNeox;
  // The long-context models' LongRoPE (rope_factors_short/long, rope.scaling.attn_factor) is the
  // decoder's: see DecoderConfig::rope_orig_ctx.
  c.window = static_cast<int64_t>(f.get_uint(arch + ".attention.sliding_window", 0));
  if (c.window < 0 || c.window > (int64_t(1) << 30))
    f.fail(arch + ".attention.sliding_window", str_cat("out of range: ", c.window));
  if (c.window > 0) c.sliding.assign(static_cast<size_t>(c.n_layers), true);

  return make_decoder(f, c, pool, n_ctx, [](const WeightBinder& w, const std::string& p, const DecoderConfig& c,
                                            DecoderLayer& L) {
    const int64_t dim = c.dim, ffn = c.ffn_dim;
    L.attn_norm = w.vector(p + "attn_norm.weight", dim);
    bind_attention(w, p, c, L.attn);  // fused attn_qkv: Q rows, K rows, V rows
    L.ffn_norm = w.vector(p + "ffn_norm.weight", dim);
    if (w.has(p + "ffn_gate.weight")) {
      bind_feed_forward(w, p, c, L);
    } else {
      const std::string up = p + "ffn_up.weight";  // (2 ffn, dim): gate rows, then up rows
      L.mlp.gate = w.matrix_rows(up, 2 * ffn, 0, ffn, dim);
      L.mlp.up = w.matrix_rows(up, 2 * ffn, ffn, ffn, dim);
      L.mlp.down = w.matrix(p + "ffn_down.weight", dim, ffn);
    }
  });
}

}  // namespace wren

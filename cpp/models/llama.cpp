// Llama family (Llama 2/3, Mistral, SmolLM2, and Mixtral, which llama.cpp also writes as "llama"):
// RMSNorm, RoPE, grouped-query attention, SwiGLU — or a mixture of SwiGLU experts.
#include "format/tensor_source.h"
#include "models/decoder.h"
#include "models/registry.h"

namespace wren {

std::unique_ptr<Model> make_llama(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  DecoderConfig c = DecoderConfig::read(f, arch);
  // GGUF "llama" files hold Q/K rows permuted for interleaved pairs; a source that keeps
  // transformers' row order (a Hugging Face folder) says so with this key.
  c.rope_style = f.get_bool("wrenlm.rope.neox", false) ? RopeStyle::kNeox : RopeStyle::kInterleaved;
  return make_decoder(f, c, pool, n_ctx, [](const WeightBinder& w, const std::string& p, const DecoderConfig& c,
                                            DecoderLayer& L) {
    L.attn_norm = w.vector(p + "attn_norm.weight", c.dim);
    bind_attention(w, p, c, L.attn);
    L.ffn_norm = w.vector(p + "ffn_norm.weight", c.dim);
    bind_feed_forward(w, p, c, L);  // dense, or Mixtral's experts when expert_count > 0
  });
}

}  // namespace wren

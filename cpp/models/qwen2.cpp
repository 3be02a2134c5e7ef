// Qwen2: the Llama layer with Q/K/V biases and NeoX (rotate-half) RoPE.
#include "format/tensor_source.h"
#include "util/errors.h"
#include "models/decoder.h"
#include "models/family.h"

namespace wren {
namespace {

std::unique_ptr<Model> make_qwen2(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  DecoderConfig c = DecoderConfig::read(f, arch);
  c.rope_style = RopeStyle::kNeox;  // llama.cpp does not permute Qwen2's Q/K rows
  return make_decoder(f, c, pool, n_ctx, [](const WeightBinder& w, const std::string& p, const DecoderConfig& c,
                                            DecoderLayer& L) {
    L.attn_norm = w.vector(p + "attn_norm.weight", c.dim);
    bind_attention(w, p, c, L.attn);  // with attn_q/k/v.bias
    if (L.attn.bq.empty() || L.attn.bk.empty() || L.attn.bv.empty())
      throw FormatError(str_cat(p, "attn_q/k/v.bias: Qwen2 attention has biases, the file has none"));
    L.ffn_norm = w.vector(p + "ffn_norm.weight", c.dim);
    bind_feed_forward(w, p, c, L);
  });
}

}  // namespace

const ModelFamily& qwen2_family() {
  static const ModelFamily family = {
      "qwen2",
      {"qwen2"},
      make_qwen2,
      {{{"qwen2"}, "qwen2", hf_rules::llama()}},  // the common keys say it all
  };
  return family;
}

}  // namespace wren

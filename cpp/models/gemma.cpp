// Gemma 1/2/3: the decoder layer with GeGLU feed-forward, embeddings scaled by sqrt(dim) and NeoX
// RoPE (llama.cpp stores RMSNorm weights as 1 + w, so norms are plain). Gemma 2 adds norms after
// attention and feed-forward, soft-capped attention scores and logits, and sliding-window attention
// on every other layer; Gemma 3 adds QK-norm and five sliding layers (RoPE base 10000) per global one.
#include <cmath>

#include "format/tensor_source.h"
#include "util/errors.h"
#include "models/decoder.h"
#include "models/registry.h"

namespace wren {
namespace {

enum class Version { k1, k2, k3 };

// Layers [l] with l % period < period - 1 use the sliding window (llama.cpp's pattern; transformers'
// layer_types for these models agree).
std::vector<bool> sliding_pattern(int64_t n_layers, int64_t period) {
  std::vector<bool> s(static_cast<size_t>(n_layers));
  for (int64_t l = 0; l < n_layers; ++l) s[static_cast<size_t>(l)] = l % period < period - 1;
  return s;
}

}  // namespace

std::unique_ptr<Model> make_gemma(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  const Version version = arch == "gemma3" ? Version::k3 : arch == "gemma2" ? Version::k2 : Version::k1;
  auto key = [&](const char* k) { return arch + "." + k; };
  DecoderConfig c = DecoderConfig::read(f, arch);
  c.rope_style = RopeStyle::kNeox;
  c.act = GateActivation::kGeluTanh;
  c.embed_scale = std::sqrt(static_cast<float>(c.dim));
  if (version != Version::k1) {
    // Scores are scaled by query_pre_attn_scalar^-1/2, which GGUF does not carry: llama.cpp takes
    // it to be the head size, except for the 27B models (46 and 62 layers), where it is dim/heads.
    const bool is_27b = (version == Version::k2 && c.n_layers == 46) || (version == Version::k3 && c.n_layers == 62);
    if (is_27b) c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.dim / c.attn.n_heads));
    c.final_softcap = static_cast<float>(f.get_float(key("final_logit_softcapping"), 0.0));
    c.window = static_cast<int64_t>(f.get_uint(key("attention.sliding_window"), 0));
    if (c.window < 0 || c.window > (int64_t(1) << 30))
      f.fail(key("attention.sliding_window"), str_cat("out of range: ", c.window));
    if (c.window > 0) c.sliding = sliding_pattern(c.n_layers, version == Version::k2 ? 2 : 6);
  }
  if (version == Version::k2) c.attn_softcap = static_cast<float>(f.get_float(key("attn_logit_softcapping"), 0.0));
  if (version == Version::k3) c.rope_base_swa = 10000.0;  // sliding layers' base; rope.freq_base is the global one
  if (c.attn_softcap < 0 || c.final_softcap < 0) f.fail(key("*_logit_softcapping"), "must not be negative");

  return make_decoder(f, c, pool, n_ctx, [version](const WeightBinder& w, const std::string& p,
                                                   const DecoderConfig& c, DecoderLayer& L) {
    L.attn_norm = w.vector(p + "attn_norm.weight", c.dim);
    bind_attention(w, p, c, L.attn);
    if (version == Version::k3) {
      L.q_norm = w.vector(p + "attn_q_norm.weight", c.attn.head_dim);
      L.k_norm = w.vector(p + "attn_k_norm.weight", c.attn.head_dim);
    }
    if (version != Version::k1) L.attn_post_norm = w.vector(p + "post_attention_norm.weight", c.dim);
    L.ffn_norm = w.vector(p + "ffn_norm.weight", c.dim);
    bind_feed_forward(w, p, c, L);
    if (version != Version::k1) L.ffn_post_norm = w.vector(p + "post_ffw_norm.weight", c.dim);
  });
}

}  // namespace wren

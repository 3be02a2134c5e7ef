// Gemma 1/2/3: the decoder layer with GeGLU feed-forward, embeddings scaled by sqrt(dim) and NeoX
// RoPE (llama.cpp stores RMSNorm weights as 1 + w, so norms are plain). Gemma 2 adds norms after
// attention and feed-forward, soft-capped attention scores and logits, and sliding-window attention
// on every other layer; Gemma 3 adds QK-norm and five sliding layers (RoPE base 10000) per global one.
#include <cmath>

#include "format/tensor_source.h"
#include "models/decoder.h"
#include "models/family.h"
#include "util/errors.h"

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

// ---- Hugging Face folders --------------------------------------------------------------------

// Gemma: every norm weight is stored as 1 + w; the tied lm_head is dropped.
std::vector<HfRule> gemma_ends() {
  return {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight", HfTransform::kNormPlusOne},
    {"lm_head.weight", nullptr, HfTransform::kSkip},
    {"model.layers.#.self_attn.rotary_emb.inv_freq", nullptr, HfTransform::kSkip},
  };
}

std::vector<HfRule> gemma_rules() {
  return gemma_ends() + hf_rules::split_attention() + hf_rules::gated_mlp() + std::vector<HfRule>{
    {"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight", HfTransform::kNormPlusOne},
    {"model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight", HfTransform::kNormPlusOne},
  };
}

std::vector<HfRule> gemma2_rules() {
  return gemma_ends() + hf_rules::split_attention() + hf_rules::gated_mlp() + std::vector<HfRule>{
    {"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight", HfTransform::kNormPlusOne},
    {"model.layers.#.post_attention_layernorm.weight", "blk.#.post_attention_norm.weight", HfTransform::kNormPlusOne},
    {"model.layers.#.pre_feedforward_layernorm.weight", "blk.#.ffn_norm.weight", HfTransform::kNormPlusOne},
    {"model.layers.#.post_feedforward_layernorm.weight", "blk.#.post_ffw_norm.weight", HfTransform::kNormPlusOne},
  };
}

std::vector<HfRule> gemma3_rules() {
  return gemma2_rules() + std::vector<HfRule>{
    {"model.layers.#.self_attn.q_norm.weight", "blk.#.attn_q_norm.weight", HfTransform::kNormPlusOne},
    {"model.layers.#.self_attn.k_norm.weight", "blk.#.attn_k_norm.weight", HfTransform::kNormPlusOne},
  };
}

void gemma_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(hf_key(arch, "context_length"), c.integer({"max_position_embeddings"}));
  w.put_u32(hf_key(arch, "embedding_length"), c.integer({"hidden_size"}));
  w.put_u32(hf_key(arch, "block_count"), c.integer({"num_hidden_layers"}));
  w.put_u32(hf_key(arch, "feed_forward_length"), c.integer({"intermediate_size"}));
  w.put_u32(hf_key(arch, "attention.head_count"), c.integer({"num_attention_heads"}));
  w.put_u32(hf_key(arch, "attention.head_count_kv"), c.integer({"num_key_value_heads", "num_attention_heads"}));
  w.put_f32(hf_key(arch, "attention.layer_norm_rms_epsilon"), c.number({"rms_norm_eps"}));
  w.put_u32(hf_key(arch, "attention.key_length"), c.integer({"head_dim"}));
  w.put_u32(hf_key(arch, "attention.value_length"), c.integer({"head_dim"}));
}

void gemma2_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  gemma_keys(c, arch, w);
  w.put_f32(hf_key(arch, "attn_logit_softcapping"), c.number({"attn_logit_softcapping"}));
  w.put_f32(hf_key(arch, "final_logit_softcapping"), c.number({"final_logit_softcapping"}));
  w.put_u32(hf_key(arch, "attention.sliding_window"), c.integer({"sliding_window"}));
}

void gemma3_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(hf_key(arch, "context_length"), c.opt_int({"max_position_embeddings"}).value_or(131072));
  w.put_u32(hf_key(arch, "attention.head_count"), c.opt_int({"num_attention_heads"}).value_or(8));
  w.put_f32(hf_key(arch, "attention.layer_norm_rms_epsilon"), c.opt_double({"rms_norm_eps"}).value_or(1e-6));
  w.put_u32(hf_key(arch, "attention.key_length"), c.opt_int({"head_dim"}).value_or(256));
  w.put_u32(hf_key(arch, "attention.value_length"), c.opt_int({"head_dim"}).value_or(256));
  const JsonValue* theta = c.rope("rope_theta");
  w.put_f32(hf_key(arch, "rope.freq_base"), theta ? theta->as_double() : 1e6);
  if (const JsonValue* v = c.root().find_non_null("attn_logit_softcapping"))
    v->fail("Gemma 3 has no attention logit softcapping");
  if (auto v = c.opt_double({"final_logit_softcapping"}))
    if (*v != 0.0) w.put_f32(hf_key(arch, "final_logit_softcapping"), *v);
  const JsonValue* pattern = c.root().find("sliding_window_pattern");
  if (!(pattern && pattern->is_number() && pattern->as_int() == 1))
    w.put_u32(hf_key(arch, "attention.sliding_window"), c.integer({"sliding_window"}));
  w.put_u32(hf_key(arch, "attention.head_count_kv"), c.opt_int({"num_key_value_heads"}).value_or(4));
}

}  // namespace

const ModelFamily& gemma_family() {
  static const ModelFamily family = {
      "gemma",
      {"gemma", "gemma2", "gemma3"},
      make_gemma,
      {
          {{"gemma"}, "gemma", gemma_rules(), gemma_keys, false},
          {{"gemma2"}, "gemma2", gemma2_rules(), gemma2_keys, false},
          {{"gemma3_text"}, "gemma3", gemma3_rules(), gemma3_keys},
      },
  };
  return family;
}

}  // namespace wren

// config.json + safetensors names -> the GGUF metadata and tensors llama.cpp's converter writes.
// One table entry per family: its model_type values, GGUF architecture, tensor name rules and the
// hyper-parameter keys it adds to (or overrides in) the converter's common set.
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "format/hf_config.h"
#include "format/hf_folder.h"
#include "util/errors.h"

namespace wren {
namespace {

// How a tensor's values change on the way (none: zero-copy rename).
enum class Tf {
  kRename,
  kSkip,          // not part of the GGUF model (buffers, heads llama.cpp drops)
  kNormPlusOne,   // Gemma: RMSNorm scales by (1 + w); GGUF stores 1 + w
  kTranspose,     // GPT-2 Conv1D: (in, out) -> (out, in)
  kBloomQkv,      // BLOOM: per-head [q|k|v] rows -> all q, all k, all v
};

// HF name pattern -> GGUF name pattern; '#' stands for a layer (then an expert) index.
struct Rule {
  const char* hf;
  const char* gguf;
  Tf tf = Tf::kRename;
};

using Params = void (*)(const HfConfig& c, const std::string& arch, HfWriter& w);
using ExtraTensors = void (*)(const HfConfig& c, HfWriter& w);

struct Family {
  std::vector<std::string> model_types;
  const char* arch;
  std::vector<Rule> rules;
  Params params;                // keys beyond (or replacing) the common ones
  bool common_keys = true;      // the converter's generic set_gguf_parameters runs first
  bool neox_rope = false;       // Q/K kept in transformers' order (wrenlm.rope.neox)
  const char* strip_prefix = nullptr;
  ExtraTensors extra_tensors = nullptr;  // tensors the converter computes from config.json
};

// ---- tensor rules shared by families ---------------------------------------------------------

std::vector<Rule> operator+(std::vector<Rule> a, const std::vector<Rule>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<Rule> kDecoderEnds = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
    {"model.layers.#.self_attn.rotary_emb.inv_freq", nullptr, Tf::kSkip},
};
const std::vector<Rule> kSplitAttention = {
    {"model.layers.#.self_attn.q_proj.weight", "blk.#.attn_q.weight"},
    {"model.layers.#.self_attn.k_proj.weight", "blk.#.attn_k.weight"},
    {"model.layers.#.self_attn.v_proj.weight", "blk.#.attn_v.weight"},
    {"model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight"},
};
const std::vector<Rule> kQkvBiases = {
    {"model.layers.#.self_attn.q_proj.bias", "blk.#.attn_q.bias"},
    {"model.layers.#.self_attn.k_proj.bias", "blk.#.attn_k.bias"},
    {"model.layers.#.self_attn.v_proj.bias", "blk.#.attn_v.bias"},
};
const std::vector<Rule> kGatedMlp = {
    {"model.layers.#.mlp.gate_proj.weight", "blk.#.ffn_gate.weight"},
    {"model.layers.#.mlp.up_proj.weight", "blk.#.ffn_up.weight"},
    {"model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight"},
};
const std::vector<Rule> kPreNorms = {
    {"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight"},
    {"model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight"},
};
const std::vector<Rule> kLlama = kDecoderEnds + kPreNorms + kSplitAttention + kQkvBiases + kGatedMlp +
                                 std::vector<Rule>{{"model.layers.#.self_attn.o_proj.bias", "blk.#.attn_output.bias"}};

// Gemma: every norm weight is stored as 1 + w; the tied lm_head is dropped.
const std::vector<Rule> kGemmaEnds = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight", Tf::kNormPlusOne},
    {"lm_head.weight", nullptr, Tf::kSkip},
    {"model.layers.#.self_attn.rotary_emb.inv_freq", nullptr, Tf::kSkip},
};
const std::vector<Rule> kGemma = kGemmaEnds + kSplitAttention + kGatedMlp + std::vector<Rule>{
    {"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight", Tf::kNormPlusOne},
    {"model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight", Tf::kNormPlusOne},
};
const std::vector<Rule> kGemma2 = kGemmaEnds + kSplitAttention + kGatedMlp + std::vector<Rule>{
    {"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight", Tf::kNormPlusOne},
    {"model.layers.#.post_attention_layernorm.weight", "blk.#.post_attention_norm.weight", Tf::kNormPlusOne},
    {"model.layers.#.pre_feedforward_layernorm.weight", "blk.#.ffn_norm.weight", Tf::kNormPlusOne},
    {"model.layers.#.post_feedforward_layernorm.weight", "blk.#.post_ffw_norm.weight", Tf::kNormPlusOne},
};
const std::vector<Rule> kGemma3 = kGemma2 + std::vector<Rule>{
    {"model.layers.#.self_attn.q_norm.weight", "blk.#.attn_q_norm.weight", Tf::kNormPlusOne},
    {"model.layers.#.self_attn.k_norm.weight", "blk.#.attn_k_norm.weight", Tf::kNormPlusOne},
};

const std::vector<Rule> kPhi3 = kDecoderEnds + kPreNorms + std::vector<Rule>{
    {"model.layers.#.self_attn.qkv_proj.weight", "blk.#.attn_qkv.weight"},
    {"model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight"},
    {"model.layers.#.mlp.gate_up_proj.weight", "blk.#.ffn_up.weight"},
    {"model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight"},
};

// Mixtral: llama.cpp's per-expert names (the Mixtral model also takes the stacked _exps tensors).
const std::vector<Rule> kMixtral = kDecoderEnds + kPreNorms + kSplitAttention + std::vector<Rule>{
    {"model.layers.#.block_sparse_moe.gate.weight", "blk.#.ffn_gate_inp.weight"},
    {"model.layers.#.block_sparse_moe.experts.#.w1.weight", "blk.#.ffn_gate.#.weight"},
    {"model.layers.#.block_sparse_moe.experts.#.w2.weight", "blk.#.ffn_down.#.weight"},
    {"model.layers.#.block_sparse_moe.experts.#.w3.weight", "blk.#.ffn_up.#.weight"},
};

const std::vector<Rule> kGpt2 = {
    {"transformer.wte.weight", "token_embd.weight"},
    {"transformer.wpe.weight", "position_embd.weight"},
    {"transformer.ln_f.weight", "output_norm.weight"},
    {"transformer.ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight"},
    {"transformer.h.#.ln_1.weight", "blk.#.attn_norm.weight"},
    {"transformer.h.#.ln_1.bias", "blk.#.attn_norm.bias"},
    {"transformer.h.#.attn.c_attn.weight", "blk.#.attn_qkv.weight", Tf::kTranspose},
    {"transformer.h.#.attn.c_attn.bias", "blk.#.attn_qkv.bias"},
    {"transformer.h.#.attn.c_proj.weight", "blk.#.attn_output.weight", Tf::kTranspose},
    {"transformer.h.#.attn.c_proj.bias", "blk.#.attn_output.bias"},
    {"transformer.h.#.ln_2.weight", "blk.#.ffn_norm.weight"},
    {"transformer.h.#.ln_2.bias", "blk.#.ffn_norm.bias"},
    {"transformer.h.#.mlp.c_fc.weight", "blk.#.ffn_up.weight", Tf::kTranspose},
    {"transformer.h.#.mlp.c_fc.bias", "blk.#.ffn_up.bias"},
    {"transformer.h.#.mlp.c_proj.weight", "blk.#.ffn_down.weight", Tf::kTranspose},
    {"transformer.h.#.mlp.c_proj.bias", "blk.#.ffn_down.bias"},
    {"transformer.h.#.attn.bias", nullptr, Tf::kSkip},
    {"transformer.h.#.attn.masked_bias", nullptr, Tf::kSkip},
};

const std::vector<Rule> kGptNeo = {
    {"transformer.wte.weight", "token_embd.weight"},
    {"transformer.wpe.weight", "position_embd.weight"},
    {"transformer.ln_f.weight", "output_norm.weight"},
    {"transformer.ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight"},
    {"transformer.h.#.ln_1.weight", "blk.#.attn_norm.weight"},
    {"transformer.h.#.ln_1.bias", "blk.#.attn_norm.bias"},
    {"transformer.h.#.attn.attention.q_proj.weight", "blk.#.attn_q.weight"},
    {"transformer.h.#.attn.attention.k_proj.weight", "blk.#.attn_k.weight"},
    {"transformer.h.#.attn.attention.v_proj.weight", "blk.#.attn_v.weight"},
    {"transformer.h.#.attn.attention.out_proj.weight", "blk.#.attn_output.weight"},
    {"transformer.h.#.attn.attention.out_proj.bias", "blk.#.attn_output.bias"},
    {"transformer.h.#.ln_2.weight", "blk.#.ffn_norm.weight"},
    {"transformer.h.#.ln_2.bias", "blk.#.ffn_norm.bias"},
    {"transformer.h.#.mlp.c_fc.weight", "blk.#.ffn_up.weight"},
    {"transformer.h.#.mlp.c_fc.bias", "blk.#.ffn_up.bias"},
    {"transformer.h.#.mlp.c_proj.weight", "blk.#.ffn_down.weight"},
    {"transformer.h.#.mlp.c_proj.bias", "blk.#.ffn_down.bias"},
    {"transformer.h.#.attn.attention.bias", nullptr, Tf::kSkip},
    {"transformer.h.#.attn.attention.masked_bias", nullptr, Tf::kSkip},
};

const std::vector<Rule> kBloom = {
    {"word_embeddings.weight", "token_embd.weight"},
    {"word_embeddings_layernorm.weight", "token_embd_norm.weight"},
    {"word_embeddings_layernorm.bias", "token_embd_norm.bias"},
    {"ln_f.weight", "output_norm.weight"},
    {"ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight"},
    {"h.#.input_layernorm.weight", "blk.#.attn_norm.weight"},
    {"h.#.input_layernorm.bias", "blk.#.attn_norm.bias"},
    {"h.#.self_attention.query_key_value.weight", "blk.#.attn_qkv.weight", Tf::kBloomQkv},
    {"h.#.self_attention.query_key_value.bias", "blk.#.attn_qkv.bias", Tf::kBloomQkv},
    {"h.#.self_attention.dense.weight", "blk.#.attn_output.weight"},
    {"h.#.self_attention.dense.bias", "blk.#.attn_output.bias"},
    {"h.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight"},
    {"h.#.post_attention_layernorm.bias", "blk.#.ffn_norm.bias"},
    {"h.#.mlp.dense_h_to_4h.weight", "blk.#.ffn_up.weight"},
    {"h.#.mlp.dense_h_to_4h.bias", "blk.#.ffn_up.bias"},
    {"h.#.mlp.dense_4h_to_h.weight", "blk.#.ffn_down.weight"},
    {"h.#.mlp.dense_4h_to_h.bias", "blk.#.ffn_down.bias"},
};

const std::vector<Rule> kBert = {
    {"embeddings.word_embeddings.weight", "token_embd.weight"},
    {"embeddings.position_embeddings.weight", "position_embd.weight"},
    {"embeddings.token_type_embeddings.weight", "token_types.weight"},
    {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
    {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
    {"embeddings.position_ids", nullptr, Tf::kSkip},
    {"pooler.dense.weight", nullptr, Tf::kSkip},
    {"pooler.dense.bias", nullptr, Tf::kSkip},
    {"encoder.layer.#.attention.self.query.weight", "blk.#.attn_q.weight"},
    {"encoder.layer.#.attention.self.query.bias", "blk.#.attn_q.bias"},
    {"encoder.layer.#.attention.self.key.weight", "blk.#.attn_k.weight"},
    {"encoder.layer.#.attention.self.key.bias", "blk.#.attn_k.bias"},
    {"encoder.layer.#.attention.self.value.weight", "blk.#.attn_v.weight"},
    {"encoder.layer.#.attention.self.value.bias", "blk.#.attn_v.bias"},
    {"encoder.layer.#.attention.output.dense.weight", "blk.#.attn_output.weight"},
    {"encoder.layer.#.attention.output.dense.bias", "blk.#.attn_output.bias"},
    {"encoder.layer.#.attention.output.LayerNorm.weight", "blk.#.attn_output_norm.weight"},
    {"encoder.layer.#.attention.output.LayerNorm.bias", "blk.#.attn_output_norm.bias"},
    {"encoder.layer.#.intermediate.dense.weight", "blk.#.ffn_up.weight"},
    {"encoder.layer.#.intermediate.dense.bias", "blk.#.ffn_up.bias"},
    {"encoder.layer.#.output.dense.weight", "blk.#.ffn_down.weight"},
    {"encoder.layer.#.output.dense.bias", "blk.#.ffn_down.bias"},
    {"encoder.layer.#.output.LayerNorm.weight", "blk.#.layer_output_norm.weight"},
    {"encoder.layer.#.output.LayerNorm.bias", "blk.#.layer_output_norm.bias"},
};

// ---- hyper-parameters ------------------------------------------------------------------------

std::string k(const std::string& arch, const char* key) { return arch + "." + key; }

int64_t head_dim_or_default(const HfConfig& c) {
  if (auto hd = c.opt_int({"head_dim"})) return *hd;
  return c.integer({"hidden_size", "n_embd", "dim"}) / c.integer({"num_attention_heads", "n_head", "n_heads"});
}

// The converter's generic TextModel.set_gguf_parameters: every key it finds under its usual names.
void common_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(k(arch, "block_count"), c.integer({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  if (auto v = c.opt_int({"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
                          "model_max_length"}))
    w.put_u32(k(arch, "context_length"), *v);
  if (auto v = c.opt_int({"hidden_size", "n_embd", "dim"})) w.put_u32(k(arch, "embedding_length"), *v);
  if (auto v = c.opt_int({"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size",
                          "n_inner", "hidden_dim"}))
    w.put_u32(k(arch, "feed_forward_length"), *v);
  if (auto v = c.opt_int({"num_attention_heads", "n_head", "n_heads"})) w.put_u32(k(arch, "attention.head_count"), *v);
  if (auto v = c.opt_int({"num_key_value_heads", "n_kv_heads"})) w.put_u32(k(arch, "attention.head_count_kv"), *v);
  if (const JsonValue* causal = c.root().find_non_null("is_causal"))
    if (!causal->as_bool()) w.put_bool(k(arch, "attention.causal"), false);

  if (const JsonValue* type = c.rope("rope_type")) {
    const std::string t = type->as_string();
    const JsonValue* factor = c.rope("factor");
    if (t == "linear" && factor) {
      w.put_str(k(arch, "rope.scaling.type"), "linear");
      w.put_f32(k(arch, "rope.scaling.factor"), factor->as_double());
    } else if (t == "yarn" && factor) {
      w.put_str(k(arch, "rope.scaling.type"), "yarn");
      w.put_f32(k(arch, "rope.scaling.factor"), factor->as_double());
      const JsonValue* orig = c.rope("original_max_position_embeddings");
      if (!orig) c.root().fail("yarn rope scaling needs original_max_position_embeddings");
      w.put_u32(k(arch, "rope.scaling.original_context_length"), orig->as_int());
      if (const JsonValue* v = c.rope("extrapolation_factor")) w.put_f32(k(arch, "rope.scaling.yarn_ext_factor"), v->as_double());
      const JsonValue* attn = c.rope("attention_factor");
      if (!attn) attn = c.rope("attn_factor");
      if (attn) w.put_f32(k(arch, "rope.scaling.yarn_attn_factor"), attn->as_double());
      if (const JsonValue* v = c.rope("beta_fast")) w.put_f32(k(arch, "rope.scaling.yarn_beta_fast"), v->as_double());
      if (const JsonValue* v = c.rope("beta_slow")) w.put_f32(k(arch, "rope.scaling.yarn_beta_slow"), v->as_double());
    } else if (t == "su" || t == "longrope") {
      w.put_str(k(arch, "rope.scaling.type"), "longrope");
    }
  }
  if (const JsonValue* theta = c.rope("rope_theta")) w.put_f32(k(arch, "rope.freq_base"), theta->as_double());
  if (auto v = c.local_rope_theta()) w.put_f32(k(arch, "rope.freq_base_swa"), *v);
  if (auto v = c.opt_double({"rms_norm_eps", "norm_eps"})) w.put_f32(k(arch, "attention.layer_norm_rms_epsilon"), *v);
  if (auto v = c.opt_double({"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"}))
    w.put_f32(k(arch, "attention.layer_norm_epsilon"), *v);
  if (auto v = c.opt_int({"num_local_experts", "num_experts", "n_routed_experts"})) w.put_u32(k(arch, "expert_count"), *v);
  if (auto v = c.opt_int({"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}))
    w.put_u32(k(arch, "expert_used_count"), *v);
  if (auto v = c.opt_int({"head_dim"})) {
    w.put_u32(k(arch, "attention.key_length"), *v);
    w.put_u32(k(arch, "attention.value_length"), *v);
  }
}

void llama_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(k(arch, "vocab_size"), c.integer({"vocab_size"}));
  w.put_u32(k(arch, "rope.dimension_count"), head_dim_or_default(c));
}

void no_keys(const HfConfig&, const std::string&, HfWriter&) {}

// Llama 3.x RoPE scaling as per-frequency divisors (rope_freqs.weight), computed in float32 as the
// converter does: high frequencies keep their value, low ones are divided by `factor`, and the band
// between is interpolated.
void llama3_rope_freqs(const HfConfig& c, HfWriter& w) {
  const JsonValue* type = c.rope("rope_type");
  if (!type || !type->is_string()) return;
  std::string t = type->as_string();
  for (char& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (t != "llama3") return;
  auto get = [&](const char* key, double def) {
    const JsonValue* v = c.rope(key);
    return v ? v->as_double() : def;
  };
  const float base = static_cast<float>(get("rope_theta", 10000.0));
  const int64_t dim = head_dim_or_default(c);
  const float factor = static_cast<float>(get("factor", 8.0));
  const float low = static_cast<float>(get("low_freq_factor", 1.0));
  const float high = static_cast<float>(get("high_freq_factor", 4.0));
  const float old_ctx = static_cast<float>(get("original_max_position_embeddings", 8192.0));
  const float low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = 2.0f * static_cast<float>(M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  const uint64_t n = out.size();
  w.own("rope_freqs.weight", {n}, std::move(out));
}

void gemma_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(k(arch, "context_length"), c.integer({"max_position_embeddings"}));
  w.put_u32(k(arch, "embedding_length"), c.integer({"hidden_size"}));
  w.put_u32(k(arch, "block_count"), c.integer({"num_hidden_layers"}));
  w.put_u32(k(arch, "feed_forward_length"), c.integer({"intermediate_size"}));
  w.put_u32(k(arch, "attention.head_count"), c.integer({"num_attention_heads"}));
  w.put_u32(k(arch, "attention.head_count_kv"), c.integer({"num_key_value_heads", "num_attention_heads"}));
  w.put_f32(k(arch, "attention.layer_norm_rms_epsilon"), c.number({"rms_norm_eps"}));
  w.put_u32(k(arch, "attention.key_length"), c.integer({"head_dim"}));
  w.put_u32(k(arch, "attention.value_length"), c.integer({"head_dim"}));
}

void gemma2_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  gemma_keys(c, arch, w);
  w.put_f32(k(arch, "attn_logit_softcapping"), c.number({"attn_logit_softcapping"}));
  w.put_f32(k(arch, "final_logit_softcapping"), c.number({"final_logit_softcapping"}));
  w.put_u32(k(arch, "attention.sliding_window"), c.integer({"sliding_window"}));
}

void gemma3_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(k(arch, "context_length"), c.opt_int({"max_position_embeddings"}).value_or(131072));
  w.put_u32(k(arch, "attention.head_count"), c.opt_int({"num_attention_heads"}).value_or(8));
  w.put_f32(k(arch, "attention.layer_norm_rms_epsilon"), c.opt_double({"rms_norm_eps"}).value_or(1e-6));
  w.put_u32(k(arch, "attention.key_length"), c.opt_int({"head_dim"}).value_or(256));
  w.put_u32(k(arch, "attention.value_length"), c.opt_int({"head_dim"}).value_or(256));
  const JsonValue* theta = c.rope("rope_theta");
  w.put_f32(k(arch, "rope.freq_base"), theta ? theta->as_double() : 1e6);
  if (const JsonValue* v = c.root().find_non_null("attn_logit_softcapping"))
    v->fail("Gemma 3 has no attention logit softcapping");
  if (auto v = c.opt_double({"final_logit_softcapping"}))
    if (*v != 0.0) w.put_f32(k(arch, "final_logit_softcapping"), *v);
  const JsonValue* pattern = c.root().find("sliding_window_pattern");
  if (!(pattern && pattern->is_number() && pattern->as_int() == 1))
    w.put_u32(k(arch, "attention.sliding_window"), c.integer({"sliding_window"}));
  w.put_u32(k(arch, "attention.head_count_kv"), c.opt_int({"num_key_value_heads"}).value_or(4));
}

// Phi-3's LongRoPE ("su"/"longrope" rope scaling with long_factor and short_factor): the factors
// and the attention factor the converter writes (rope_factors_long/short, rope.scaling.attn_factor).
struct LongRope {
  std::vector<float> short_factors, long_factors;  // (rot_dim/2) each
  double attn_factor;
};
std::optional<LongRope> longrope(const HfConfig& c) {
  const JsonValue* long_json = c.rope("long_factor");
  if (!long_json || (long_json->is_array() && long_json->as_array().empty())) return std::nullopt;
  const JsonValue* type = c.rope("rope_type");
  std::string t = type ? type->as_string() : "";
  for (char& ch : t) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (t != "su" && t != "longrope")
    throw UnsupportedError(str_cat(c.root().file(), ": rope scaling type '", t, "' with long_factor is not supported "
                                   "(supported: longrope, su)"));
  const JsonValue* short_json = c.rope("short_factor");
  if (!short_json) c.root().fail("longrope scaling needs short_factor beside long_factor");
  const int64_t n_embd = c.integer({"hidden_size", "n_embd"});
  const int64_t n_head = c.integer({"num_attention_heads", "n_head"});
  const JsonValue* pct = c.rope("partial_rotary_factor");
  const int64_t half = static_cast<int64_t>((pct ? pct->as_double() : 1.0) * static_cast<double>(n_embd)) / n_head / 2;
  auto factors = [&](const JsonValue& v) {
    std::vector<float> out;
    for (const JsonValue& x : v.as_array()) out.push_back(static_cast<float>(x.as_double()));
    if (static_cast<int64_t>(out.size()) != half) v.fail(str_cat("expected ", half, " factors (half the rotated "
                                                                 "dimensions), found ", out.size()));
    return out;
  };
  LongRope lr{factors(*short_json), factors(*long_json), 1.0};
  // As the converter and transformers: sqrt(1 + ln(s) / ln(original context)) for the extension
  // s = max_position_embeddings / original_max_position_embeddings, when s > 1. A config's own
  // attention_factor or factor wins, as in transformers (the converter ignores both).
  const JsonValue* orig_json = c.rope("original_max_position_embeddings");
  if (!orig_json) c.root().fail("longrope scaling needs original_max_position_embeddings");
  const double orig = static_cast<double>(orig_json->as_int());
  if (orig < 2) orig_json->fail("expected an original context of at least 2 positions");
  const JsonValue* factor = c.rope("factor");
  const double scale = factor ? factor->as_double()
                              : static_cast<double>(c.integer({"n_positions", "max_position_embeddings"})) / orig;
  if (scale > 1.0) lr.attn_factor = std::sqrt(1.0 + std::log(scale) / std::log(orig));
  if (const JsonValue* attn = c.rope("attention_factor")) lr.attn_factor = attn->as_double();
  return lr;
}

void phi3_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"hidden_size", "n_embd"});
  const int64_t n_head = c.integer({"num_attention_heads", "n_head"});
  const JsonValue* orig = c.rope("original_max_position_embeddings");
  if (!orig) c.root().fail("required key \"original_max_position_embeddings\" is missing");
  const JsonValue* pct = c.rope("partial_rotary_factor");
  const double rot = pct ? pct->as_double() : 1.0;
  w.put_u32(k(arch, "context_length"), c.integer({"n_positions", "max_position_embeddings"}));
  w.put_u32(k(arch, "rope.scaling.original_context_length"), orig->as_int());
  w.put_u32(k(arch, "embedding_length"), n_embd);
  w.put_u32(k(arch, "feed_forward_length"), c.integer({"intermediate_size"}));
  w.put_u32(k(arch, "block_count"), c.integer({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  w.put_u32(k(arch, "attention.head_count"), n_head);
  w.put_u32(k(arch, "attention.head_count_kv"), c.integer({"num_key_value_heads", "n_head_kv"}));
  w.put_f32(k(arch, "attention.layer_norm_rms_epsilon"), c.number({"rms_norm_eps"}));
  w.put_u32(k(arch, "rope.dimension_count"), static_cast<int64_t>(rot * static_cast<double>(n_embd)) / n_head);
  const JsonValue* theta = c.rope("rope_theta");
  if (!theta) c.root().fail("required key \"rope_theta\" is missing");
  w.put_f32(k(arch, "rope.freq_base"), theta->as_double());
  w.put_u32(k(arch, "attention.sliding_window"), c.opt_int({"sliding_window"}).value_or(0));
  if (const auto lr = longrope(c)) w.put_f32(k(arch, "rope.scaling.attn_factor"), lr->attn_factor);
}

void phi3_rope_factors(const HfConfig& c, HfWriter& w) {
  if (auto lr = longrope(c)) {
    const uint64_t n = lr->short_factors.size();
    w.own("rope_factors_long.weight", {n}, std::move(lr->long_factors));
    w.own("rope_factors_short.weight", {n}, std::move(lr->short_factors));
  }
}

void gpt2_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"n_embd"});
  w.put_u32(k(arch, "block_count"), c.integer({"n_layer"}));
  w.put_u32(k(arch, "context_length"), c.integer({"n_ctx", "n_positions"}));
  w.put_u32(k(arch, "embedding_length"), n_embd);
  w.put_u32(k(arch, "feed_forward_length"), 4 * n_embd);
  w.put_u32(k(arch, "attention.head_count"), c.integer({"n_head"}));
  w.put_f32(k(arch, "attention.layer_norm_epsilon"), c.number({"layer_norm_epsilon"}));
}

void gpt_neo_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"hidden_size"});
  w.put_u32(k(arch, "block_count"), c.integer({"num_layers"}));
  w.put_u32(k(arch, "context_length"), c.integer({"max_position_embeddings"}));
  w.put_u32(k(arch, "embedding_length"), n_embd);
  w.put_u32(k(arch, "feed_forward_length"), c.opt_int({"intermediate_size"}).value_or(4 * n_embd));
  w.put_u32(k(arch, "attention.head_count"), c.integer({"num_heads"}));
  w.put_f32(k(arch, "attention.layer_norm_epsilon"), c.number({"layer_norm_epsilon"}));
  w.put_u32(k(arch, "attention.sliding_window"), c.integer({"window_size"}));
  // llama.cpp has no GPT-Neo; which layers attend locally is a bool per layer (true: local), from
  // config "attention_types" = [[["global", "local"], repeat], ...] (read by models/gpt_neo.cpp).
  std::vector<GgufValue> pattern;
  for (const JsonValue& group : c.root().at("attention_types").as_array()) {
    const auto& g = group.as_array();
    if (g.size() != 2) group.fail("expected [[kinds...], repeat]");
    const int64_t repeat = g[1].as_int();
    if (repeat < 0 || repeat > 1024) g[1].fail("expected a repeat count in 0..1024");
    for (int64_t r = 0; r < repeat; ++r)
      for (const JsonValue& kind : g[0].as_array()) {
        GgufValue b;
        b.type = GgufType::BOOL;
        b.u = kind.as_string() == "local";
        pattern.push_back(b);
      }
  }
  w.put(k(arch, "attention.sliding_window_pattern"), GgufValue::array_of(GgufType::BOOL, pattern));
}

void bloom_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"hidden_size", "n_embed"});
  const int64_t n_head = c.integer({"n_head", "num_attention_heads"});
  w.put_u32(k(arch, "context_length"), c.opt_int({"seq_length"}).value_or(n_embd));
  w.put_u32(k(arch, "embedding_length"), n_embd);
  w.put_u32(k(arch, "feed_forward_length"), 4 * n_embd);
  w.put_u32(k(arch, "block_count"), c.integer({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  w.put_u32(k(arch, "attention.head_count"), n_head);
  w.put_u32(k(arch, "attention.head_count_kv"), n_head);
  w.put_f32(k(arch, "attention.layer_norm_epsilon"), c.number({"layer_norm_epsilon"}));
}

// sentence-transformers folders: modules.json names the pooling module, whose config.json says how
// token vectors become one embedding (llama.cpp pooling types: 1 mean, 2 CLS, 3 last token).
void pooling_type(const std::string& arch, HfWriter& w) {
  const std::string modules_path = path_join(w.dir(), "modules.json");
  if (!is_regular_file(modules_path)) return;
  const JsonDocument modules = read_json_file(modules_path, uint64_t(1) << 20);
  std::string pooling_dir;
  for (const JsonValue& m : modules.root->as_array()) {
    const std::string& type = m.at("type").as_string();
    if (type.size() >= 7 && type.compare(type.size() - 7, 7, "Pooling") == 0) {
      pooling_dir = m.at("path").as_string();
      if (pooling_dir.find("..") != std::string::npos || (!pooling_dir.empty() && pooling_dir[0] == '/'))
        m.at("path").fail("expected a folder inside the model folder");
      break;
    }
  }
  if (pooling_dir.empty()) return;
  const JsonDocument cfg = read_json_file(path_join(path_join(w.dir(), pooling_dir), "config.json"), uint64_t(1) << 20);
  auto flag = [&](const char* key) {
    const JsonValue* v = cfg.root->find_non_null(key);
    return v && v->as_bool();
  };
  uint64_t type = 0;
  if (flag("pooling_mode_mean_tokens")) type = 1;
  else if (flag("pooling_mode_cls_token")) type = 2;
  else if (flag("pooling_mode_lasttoken")) type = 3;
  else if (const JsonValue* mode = cfg.root->find_non_null("pooling_mode")) {
    const std::string& m = mode->as_string();
    type = m == "mean" ? 1 : m == "cls" ? 2 : m == "lasttoken" ? 3 : 0;
  }
  if (type == 0)
    throw UnsupportedError(str_cat(cfg.root->file(), ": only mean, CLS and last-token pooling are supported"));
  w.put_u32(k(arch, "pooling_type"), type);
}

void bert_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_bool(k(arch, "attention.causal"), false);
  pooling_type(arch, w);
}

const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {{"llama", "mistral"}, "llama", kLlama, llama_keys, true, true, nullptr, llama3_rope_freqs},
      {{"mixtral"}, "llama", kMixtral, llama_keys, true, true, nullptr, llama3_rope_freqs},
      {{"qwen2"}, "qwen2", kLlama, no_keys},
      {{"gemma"}, "gemma", kGemma, gemma_keys, false},
      {{"gemma2"}, "gemma2", kGemma2, gemma2_keys, false},
      {{"gemma3_text"}, "gemma3", kGemma3, gemma3_keys},
      {{"phi3"}, "phi3", kPhi3, phi3_keys, false, false, nullptr, phi3_rope_factors},
      {{"gpt2"}, "gpt2", kGpt2, gpt2_keys, false},
      {{"gpt_neo"}, "gpt_neo", kGptNeo, gpt_neo_keys, false},
      {{"bloom"}, "bloom", kBloom, bloom_keys, false, false, "transformer."},
      {{"bert"}, "bert", kBert, bert_keys, true, false, "bert."},
  };
  return table;
}

// ---- tensors ---------------------------------------------------------------------------------

// "model.layers.3.mlp.up_proj.weight" -> "model.layers.#.mlp.up_proj.weight", indices {"3"}.
std::string generalize(const std::string& name, std::vector<std::string>* indices) {
  std::string out;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    const bool digits = !part.empty() && part.size() <= 9 &&
                        part.find_first_not_of("0123456789") == std::string::npos;
    if (!out.empty()) out += '.';
    if (digits) {
      out += '#';
      indices->push_back(part);
    } else {
      out += part;
    }
    start = end + 1;
  }
  return out;
}

std::string specialize(const char* pattern, const std::vector<std::string>& indices) {
  std::string out;
  size_t next = 0;
  for (const char* p = pattern; *p; ++p) {
    if (*p == '#' && next < indices.size()) out += indices[next++];
    else out += *p;
  }
  return out;
}

void add_tensor(const Rule& r, const std::string& gguf_name, const SafetensorsTensor& t, const HfConfig& c,
                HfWriter& w) {
  const std::string field = "tensor '" + t.name + "'";
  std::vector<uint64_t> ggml_shape(t.shape.rbegin(), t.shape.rend());
  switch (r.tf) {
    case Tf::kSkip: return;
    case Tf::kRename: w.map(gguf_name, t); return;
    case Tf::kNormPlusOne: {
      std::vector<float> v = w.to_f32(t);
      for (float& x : v) x += 1.0f;
      w.own(gguf_name, ggml_shape, std::move(v));
      return;
    }
    case Tf::kTranspose: {
      if (t.shape.size() != 2) w.fail(field, str_cat("expected a 2-D Conv1D weight, found rank ", t.shape.size()));
      const std::vector<float> v = w.to_f32(t);
      const uint64_t rows = t.shape[0], cols = t.shape[1];  // (in, out)
      std::vector<float> out(v.size());
      for (uint64_t i = 0; i < rows; ++i)
        for (uint64_t j = 0; j < cols; ++j) out[j * rows + i] = v[i * cols + j];
      w.own(gguf_name, {rows, cols}, std::move(out));  // ggml: ne0 = in, ne1 = out
      return;
    }
    case Tf::kBloomQkv: {
      const int64_t n_head = c.integer({"n_head", "num_attention_heads"});
      const int64_t n_embd = c.integer({"hidden_size", "n_embed"});
      const uint64_t head = static_cast<uint64_t>(n_embd / n_head);
      const uint64_t row = t.shape.size() == 2 ? t.shape[1] : 1;  // elements per output row
      if (t.shape.empty() || t.shape[0] != 3 * static_cast<uint64_t>(n_embd) || n_embd % n_head != 0)
        w.fail(field, str_cat("expected ", 3 * n_embd, " fused q/k/v rows"));
      const std::vector<float> v = w.to_f32(t);
      std::vector<float> out(v.size());
      // Source rows: [head h][part p][i]; destination: [part p][head h][i].
      for (uint64_t h = 0; h < static_cast<uint64_t>(n_head); ++h)
        for (uint64_t p = 0; p < 3; ++p)
          for (uint64_t i = 0; i < head; ++i) {
            const uint64_t src = (h * 3 + p) * head + i;
            const uint64_t dst = (p * n_head + h) * head + i;
            std::memcpy(&out[dst * row], &v[src * row], row * sizeof(float));
          }
      w.own(gguf_name, ggml_shape, std::move(out));
      return;
    }
  }
}

}  // namespace

void translate_model(const JsonValue& config_root, HfWriter& w) {
  const HfConfig c(config_root);
  const std::string model_type = c.model_type();
  const Family* fam = nullptr;
  for (const Family& f : families())
    for (const std::string& t : f.model_types)
      if (t == model_type) fam = &f;
  if (!fam) {
    std::string known;
    for (const Family& f : families())
      for (const std::string& t : f.model_types) known += (known.empty() ? "" : ", ") + t;
    throw UnsupportedError(str_cat(w.dir(), ": config.json: model_type '", model_type,
                                   "' is not supported (supported: ", known, ")"));
  }
  const std::string arch = fam->arch;
  w.put_str("general.architecture", arch);
  if (fam->common_keys) common_keys(c, arch, w);
  fam->params(c, arch, w);
  if (fam->neox_rope) w.put_bool("wrenlm.rope.neox", true);

  std::map<std::string, const Rule*> rules;
  for (const Rule& r : fam->rules) rules[r.hf] = &r;
  const size_t strip = fam->strip_prefix ? std::strlen(fam->strip_prefix) : 0;
  for (const SafetensorsTensor* t : w.hf_tensors()) {
    std::string name = t->name;
    if (strip && name.compare(0, strip, fam->strip_prefix) == 0) name = name.substr(strip);
    std::vector<std::string> indices;
    const std::string pattern = generalize(name, &indices);
    auto it = rules.find(pattern);
    if (it == rules.end())
      w.fail("tensor '" + t->name + "'", str_cat("is not part of a '", model_type, "' model as llama.cpp converts it"));
    const Rule& r = *it->second;
    add_tensor(r, r.gguf ? specialize(r.gguf, indices) : std::string(), *t, c, w);
  }
  if (fam->extra_tensors) fam->extra_tensors(c, w);
}

std::optional<HfTensorTarget> hf_tensor_target(const std::string& arch, const std::string& hf_name) {
  for (const Family& f : families()) {
    if (arch != f.arch) continue;
    std::string name = hf_name;
    const size_t strip = f.strip_prefix ? std::strlen(f.strip_prefix) : 0;
    if (strip && name.compare(0, strip, f.strip_prefix) == 0) name = name.substr(strip);
    std::vector<std::string> indices;
    const std::string pattern = generalize(name, &indices);
    for (const Rule& r : f.rules) {
      if (pattern != r.hf) continue;
      if (r.tf == Tf::kSkip || !r.gguf) return std::nullopt;
      HfTensorTarget t;
      t.gguf_name = specialize(r.gguf, indices);
      t.layout = r.tf == Tf::kRename      ? HfTensorTarget::Layout::kSame
                 : r.tf == Tf::kTranspose ? HfTensorTarget::Layout::kTransposed
                                          : HfTensorTarget::Layout::kChanged;
      return t;
    }
  }
  return std::nullopt;
}

}  // namespace wren

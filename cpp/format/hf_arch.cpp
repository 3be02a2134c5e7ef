// The generic steps of a Hugging Face folder's translation: the rule sets several families share,
// the converter's common hyper-parameter keys, and the renaming and value transforms that apply a
// family's HfArch (format/hf_arch.h) to the folder's tensors.
#include "format/hf_arch.h"

#include <cstring>
#include <map>
#include <optional>

#include "util/errors.h"

namespace wren {

std::vector<HfRule> operator+(std::vector<HfRule> a, const std::vector<HfRule>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string hf_key(const std::string& arch, const char* key) { return arch + "." + key; }

// ---- tensor rules shared by families ---------------------------------------------------------

namespace hf_rules {

const std::vector<HfRule>& decoder_ends() {
  static const std::vector<HfRule> r = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.layers.#.self_attn.rotary_emb.inv_freq", nullptr, HfTransform::kSkip},
  };
  return r;
}

const std::vector<HfRule>& split_attention() {
  static const std::vector<HfRule> r = {
      {"model.layers.#.self_attn.q_proj.weight", "blk.#.attn_q.weight"},
      {"model.layers.#.self_attn.k_proj.weight", "blk.#.attn_k.weight"},
      {"model.layers.#.self_attn.v_proj.weight", "blk.#.attn_v.weight"},
      {"model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight"},
  };
  return r;
}

const std::vector<HfRule>& qkv_biases() {
  static const std::vector<HfRule> r = {
      {"model.layers.#.self_attn.q_proj.bias", "blk.#.attn_q.bias"},
      {"model.layers.#.self_attn.k_proj.bias", "blk.#.attn_k.bias"},
      {"model.layers.#.self_attn.v_proj.bias", "blk.#.attn_v.bias"},
  };
  return r;
}

const std::vector<HfRule>& gated_mlp() {
  static const std::vector<HfRule> r = {
      {"model.layers.#.mlp.gate_proj.weight", "blk.#.ffn_gate.weight"},
      {"model.layers.#.mlp.up_proj.weight", "blk.#.ffn_up.weight"},
      {"model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight"},
  };
  return r;
}

const std::vector<HfRule>& pre_norms() {
  static const std::vector<HfRule> r = {
      {"model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight"},
      {"model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight"},
  };
  return r;
}

const std::vector<HfRule>& llama() {
  static const std::vector<HfRule> r =
      decoder_ends() + pre_norms() + split_attention() + qkv_biases() + gated_mlp() +
      std::vector<HfRule>{{"model.layers.#.self_attn.o_proj.bias", "blk.#.attn_output.bias"}};
  return r;
}

}  // namespace hf_rules

namespace {

// ---- hyper-parameters ------------------------------------------------------------------------

// The converter's generic TextModel.set_gguf_parameters: every key it finds under its usual names.
void common_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  auto k = [&](const char* key) { return hf_key(arch, key); };
  w.put_u32(k("block_count"), c.integer({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  if (auto v = c.opt_int({"max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
                          "model_max_length"}))
    w.put_u32(k("context_length"), *v);
  if (auto v = c.opt_int({"hidden_size", "n_embd", "dim"})) w.put_u32(k("embedding_length"), *v);
  if (auto v = c.opt_int({"prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size",
                          "n_inner", "hidden_dim"}))
    w.put_u32(k("feed_forward_length"), *v);
  if (auto v = c.opt_int({"num_attention_heads", "n_head", "n_heads"})) w.put_u32(k("attention.head_count"), *v);
  if (auto v = c.opt_int({"num_key_value_heads", "n_kv_heads"})) w.put_u32(k("attention.head_count_kv"), *v);
  if (const JsonValue* causal = c.root().find_non_null("is_causal"))
    if (!causal->as_bool()) w.put_bool(k("attention.causal"), false);

  if (const JsonValue* type = c.rope("rope_type")) {
    const std::string t = type->as_string();
    const JsonValue* factor = c.rope("factor");
    if (t == "linear" && factor) {
      w.put_str(k("rope.scaling.type"), "linear");
      w.put_f32(k("rope.scaling.factor"), factor->as_double());
    } else if (t == "yarn" && factor) {
      w.put_str(k("rope.scaling.type"), "yarn");
      w.put_f32(k("rope.scaling.factor"), factor->as_double());
      const JsonValue* orig = c.rope("original_max_position_embeddings");
      if (!orig) c.root().fail("yarn rope scaling needs original_max_position_embeddings");
      w.put_u32(k("rope.scaling.original_context_length"), orig->as_int());
      if (const JsonValue* v = c.rope("extrapolation_factor")) w.put_f32(k("rope.scaling.yarn_ext_factor"), v->as_double());
      const JsonValue* attn = c.rope("attention_factor");
      if (!attn) attn = c.rope("attn_factor");
      if (attn) w.put_f32(k("rope.scaling.yarn_attn_factor"), attn->as_double());
      if (const JsonValue* v = c.rope("beta_fast")) w.put_f32(k("rope.scaling.yarn_beta_fast"), v->as_double());
      if (const JsonValue* v = c.rope("beta_slow")) w.put_f32(k("rope.scaling.yarn_beta_slow"), v->as_double());
    } else if (t == "su" || t == "longrope") {
      w.put_str(k("rope.scaling.type"), "longrope");
    }
  }
  if (const JsonValue* theta = c.rope("rope_theta")) w.put_f32(k("rope.freq_base"), theta->as_double());
  if (auto v = c.local_rope_theta()) w.put_f32(k("rope.freq_base_swa"), *v);
  if (auto v = c.opt_double({"rms_norm_eps", "norm_eps"})) w.put_f32(k("attention.layer_norm_rms_epsilon"), *v);
  if (auto v = c.opt_double({"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"}))
    w.put_f32(k("attention.layer_norm_epsilon"), *v);
  if (auto v = c.opt_int({"num_local_experts", "num_experts", "n_routed_experts"})) w.put_u32(k("expert_count"), *v);
  if (auto v = c.opt_int({"num_experts_per_tok", "num_experts_per_token", "top_k_experts"}))
    w.put_u32(k("expert_used_count"), *v);
  if (auto v = c.opt_int({"head_dim"})) {
    w.put_u32(k("attention.key_length"), *v);
    w.put_u32(k("attention.value_length"), *v);
  }
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

void add_tensor(const HfRule& r, const std::string& gguf_name, const SafetensorsTensor& t, const HfConfig& c,
                HfWriter& w) {
  const std::string field = "tensor '" + t.name + "'";
  std::vector<uint64_t> ggml_shape(t.shape.rbegin(), t.shape.rend());
  switch (r.tf) {
    case HfTransform::kSkip: return;
    case HfTransform::kRename: w.map(gguf_name, t); return;
    case HfTransform::kNormPlusOne: {
      std::vector<float> v = w.to_f32(t);
      for (float& x : v) x += 1.0f;
      w.own(gguf_name, ggml_shape, std::move(v));
      return;
    }
    case HfTransform::kTranspose: {
      if (t.shape.size() != 2) w.fail(field, str_cat("expected a 2-D Conv1D weight, found rank ", t.shape.size()));
      const std::vector<float> v = w.to_f32(t);
      const uint64_t rows = t.shape[0], cols = t.shape[1];  // (in, out)
      std::vector<float> out(v.size());
      for (uint64_t i = 0; i < rows; ++i)
        for (uint64_t j = 0; j < cols; ++j) out[j * rows + i] = v[i * cols + j];
      w.own(gguf_name, {rows, cols}, std::move(out));  // ggml: ne0 = in, ne1 = out
      return;
    }
    case HfTransform::kUninterleaveQkv: {
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
  const HfArch* fam = nullptr;
  for (const HfArch* f : hf_archs())
    for (const std::string& t : f->model_types)
      if (t == model_type) fam = f;
  if (!fam) {
    std::string known;
    for (const HfArch* f : hf_archs())
      for (const std::string& t : f->model_types) known += (known.empty() ? "" : ", ") + t;
    throw UnsupportedError(str_cat(w.dir(), ": config.json: model_type '", model_type,
                                   "' is not supported (supported: ", known, ")"));
  }
  const std::string arch = fam->arch;
  w.put_str("general.architecture", arch);
  if (fam->common_keys) common_keys(c, arch, w);
  if (fam->params) fam->params(c, arch, w);
  if (fam->neox_rope) w.put_bool("wrenlm.rope.neox", true);

  std::map<std::string, const HfRule*> rules;
  for (const HfRule& r : fam->rules) rules[r.hf] = &r;
  const size_t strip = fam->strip_prefix ? std::strlen(fam->strip_prefix) : 0;
  for (const SafetensorsTensor* t : w.hf_tensors()) {
    std::string name = t->name;
    if (strip && name.compare(0, strip, fam->strip_prefix) == 0) name = name.substr(strip);
    std::vector<std::string> indices;
    const std::string pattern = generalize(name, &indices);
    auto it = rules.find(pattern);
    if (it == rules.end())
      w.fail("tensor '" + t->name + "'", str_cat("is not part of a '", model_type, "' model as llama.cpp converts it"));
    const HfRule& r = *it->second;
    add_tensor(r, r.gguf ? specialize(r.gguf, indices) : std::string(), *t, c, w);
  }
  if (fam->extra_tensors) fam->extra_tensors(c, w);
}

std::optional<HfTensorTarget> hf_tensor_target(const std::string& arch, const std::string& hf_name) {
  for (const HfArch* f : hf_archs()) {
    if (arch != f->arch) continue;
    std::string name = hf_name;
    const size_t strip = f->strip_prefix ? std::strlen(f->strip_prefix) : 0;
    if (strip && name.compare(0, strip, f->strip_prefix) == 0) name = name.substr(strip);
    std::vector<std::string> indices;
    const std::string pattern = generalize(name, &indices);
    for (const HfRule& r : f->rules) {
      if (pattern != r.hf) continue;
      if (r.tf == HfTransform::kSkip || !r.gguf) return std::nullopt;
      HfTensorTarget t;
      t.gguf_name = specialize(r.gguf, indices);
      t.layout = r.tf == HfTransform::kRename      ? HfTensorTarget::Layout::kSame
                 : r.tf == HfTransform::kTranspose ? HfTensorTarget::Layout::kTransposed
                                          : HfTensorTarget::Layout::kChanged;
      return t;
    }
  }
  return std::nullopt;
}

}  // namespace wren

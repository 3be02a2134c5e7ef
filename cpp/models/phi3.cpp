// Phi-3: the Llama layer with Q/K/V fused into attn_qkv and gate/up fused into ffn_up (gate rows
// first), NeoX RoPE (LongRoPE-scaled in the long-context models), and an optional sliding window on
// every layer.
#include <cctype>
#include <cmath>
#include <optional>

#include "format/tensor_source.h"
#include "models/decoder.h"
#include "models/family.h"
#include "util/errors.h"

namespace wren {
namespace {

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

// ---- Hugging Face folders --------------------------------------------------------------------

std::vector<HfRule> phi3_rules() {
  return hf_rules::decoder_ends() + hf_rules::pre_norms() + std::vector<HfRule>{
    {"model.layers.#.self_attn.qkv_proj.weight", "blk.#.attn_qkv.weight"},
    {"model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight"},
    {"model.layers.#.mlp.gate_up_proj.weight", "blk.#.ffn_up.weight"},
    {"model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight"},
  };
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
  w.put_u32(hf_key(arch, "context_length"), c.integer({"n_positions", "max_position_embeddings"}));
  w.put_u32(hf_key(arch, "rope.scaling.original_context_length"), orig->as_int());
  w.put_u32(hf_key(arch, "embedding_length"), n_embd);
  w.put_u32(hf_key(arch, "feed_forward_length"), c.integer({"intermediate_size"}));
  w.put_u32(hf_key(arch, "block_count"), c.integer({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  w.put_u32(hf_key(arch, "attention.head_count"), n_head);
  w.put_u32(hf_key(arch, "attention.head_count_kv"), c.integer({"num_key_value_heads", "n_head_kv"}));
  w.put_f32(hf_key(arch, "attention.layer_norm_rms_epsilon"), c.number({"rms_norm_eps"}));
  w.put_u32(hf_key(arch, "rope.dimension_count"), static_cast<int64_t>(rot * static_cast<double>(n_embd)) / n_head);
  const JsonValue* theta = c.rope("rope_theta");
  if (!theta) c.root().fail("required key \"rope_theta\" is missing");
  w.put_f32(hf_key(arch, "rope.freq_base"), theta->as_double());
  w.put_u32(hf_key(arch, "attention.sliding_window"), c.opt_int({"sliding_window"}).value_or(0));
  if (const auto lr = longrope(c)) w.put_f32(hf_key(arch, "rope.scaling.attn_factor"), lr->attn_factor);
}

void phi3_rope_factors(const HfConfig& c, HfWriter& w) {
  if (auto lr = longrope(c)) {
    const uint64_t n = lr->short_factors.size();
    w.own("rope_factors_long.weight", {n}, std::move(lr->long_factors));
    w.own("rope_factors_short.weight", {n}, std::move(lr->short_factors));
  }
}

}  // namespace

const ModelFamily& phi3_family() {
  static const ModelFamily family = {
      "phi3",
      {"phi3"},
      make_phi3,
      {{{"phi3"}, "phi3", phi3_rules(), phi3_keys, false, false, nullptr, phi3_rope_factors}},
  };
  return family;
}

}  // namespace wren

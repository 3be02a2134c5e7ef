// GPT-Neo: GPT-2's layout (learned positions, pre-norm LayerNorm blocks, GELU tanh, tied output)
// with separate Q/K/V projections without biases (the output projection has one), attention scores
// left unscaled, and layers alternating between global attention and local attention over a
// sliding window (<arch>.attention.sliding_window_pattern, llama.cpp's key: true for local layers).
// llama.cpp has no GPT-Neo converter: the tensor names and keys are those wrenlm's Hugging Face
// folder reader writes (the rules and keys below), following llama.cpp's conventions.
#include "format/tensor_source.h"
#include "models/classic_decoder.h"
#include "models/family.h"
#include "util/errors.h"

namespace wren {
namespace {

std::unique_ptr<Model> make_gpt_neo(const TensorSource& f, const std::string& arch, ThreadPool& pool,
                                    int64_t n_ctx) {
  ClassicConfig c = ClassicConfig::read(f, arch);
  c.act = Gelu::kTanh;
  c.learned_positions = true;
  c.attn_scale = 1.f;  // GPT-Neo does not divide scores by sqrt(head_dim)
  const std::string window_key = arch + ".attention.sliding_window";
  const std::string layers_key = arch + ".attention.sliding_window_pattern";
  c.window = static_cast<int64_t>(f.get_uint(window_key));
  if (c.window <= 0 || c.window > (int64_t(1) << 24)) f.fail(window_key, str_cat("out of range: ", c.window));
  const GgufValue* local = f.find(layers_key);
  if (!local || local->type != GgufType::ARRAY || local->size() != static_cast<size_t>(c.n_layers))
    f.fail(layers_key, str_cat("expected an array of ", c.n_layers, " booleans (true: local attention)"));
  local->for_each([&](size_t, const GgufValue& v) {
    if (v.type != GgufType::BOOL && !v.is_integer()) f.fail(layers_key, "expected booleans");
    c.local.push_back(v.u != 0 || v.i != 0);
  });
  return make_classic_decoder(f, c, pool, n_ctx);
}

// ---- Hugging Face folders --------------------------------------------------------------------

std::vector<HfRule> gpt_neo_rules() {
  return {
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
      {"transformer.h.#.attn.attention.bias", nullptr, HfTransform::kSkip},
      {"transformer.h.#.attn.attention.masked_bias", nullptr, HfTransform::kSkip},
  };
}

void gpt_neo_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"hidden_size"});
  w.put_u32(hf_key(arch, "block_count"), c.integer({"num_layers"}));
  w.put_u32(hf_key(arch, "context_length"), c.integer({"max_position_embeddings"}));
  w.put_u32(hf_key(arch, "embedding_length"), n_embd);
  w.put_u32(hf_key(arch, "feed_forward_length"), c.opt_int({"intermediate_size"}).value_or(4 * n_embd));
  w.put_u32(hf_key(arch, "attention.head_count"), c.integer({"num_heads"}));
  w.put_f32(hf_key(arch, "attention.layer_norm_epsilon"), c.number({"layer_norm_epsilon"}));
  w.put_u32(hf_key(arch, "attention.sliding_window"), c.integer({"window_size"}));
  // llama.cpp has no GPT-Neo; which layers attend locally is a bool per layer (true: local), from
  // config "attention_types" = [[["global", "local"], repeat], ...] (read by make_gpt_neo above).
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
  w.put(hf_key(arch, "attention.sliding_window_pattern"), GgufValue::array_of(GgufType::BOOL, pattern));
}

}  // namespace

const ModelFamily& gpt_neo_family() {
  static const ModelFamily family = {
      "gpt_neo",
      {"gpt_neo"},
      make_gpt_neo,
      {{{"gpt_neo"}, "gpt_neo", gpt_neo_rules(), gpt_neo_keys, false}},
  };
  return family;
}

}  // namespace wren

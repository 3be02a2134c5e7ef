// GPT-2: learned absolute positions, pre-norm LayerNorm blocks, fused QKV with biases, GELU (tanh
// approximation), output tied to the token embedding.
#include "models/classic_decoder.h"
#include "models/family.h"

namespace wren {
namespace {

std::unique_ptr<Model> make_gpt2(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  ClassicConfig c = ClassicConfig::read(f, arch);
  c.act = Gelu::kTanh;
  c.learned_positions = true;
  return make_classic_decoder(f, c, pool, n_ctx);
}

// ---- Hugging Face folders --------------------------------------------------------------------

std::vector<HfRule> gpt2_rules() {
  return {
      {"transformer.wte.weight", "token_embd.weight"},
      {"transformer.wpe.weight", "position_embd.weight"},
      {"transformer.ln_f.weight", "output_norm.weight"},
      {"transformer.ln_f.bias", "output_norm.bias"},
      {"lm_head.weight", "output.weight"},
      {"transformer.h.#.ln_1.weight", "blk.#.attn_norm.weight"},
      {"transformer.h.#.ln_1.bias", "blk.#.attn_norm.bias"},
      {"transformer.h.#.attn.c_attn.weight", "blk.#.attn_qkv.weight", HfTransform::kTranspose},
      {"transformer.h.#.attn.c_attn.bias", "blk.#.attn_qkv.bias"},
      {"transformer.h.#.attn.c_proj.weight", "blk.#.attn_output.weight", HfTransform::kTranspose},
      {"transformer.h.#.attn.c_proj.bias", "blk.#.attn_output.bias"},
      {"transformer.h.#.ln_2.weight", "blk.#.ffn_norm.weight"},
      {"transformer.h.#.ln_2.bias", "blk.#.ffn_norm.bias"},
      {"transformer.h.#.mlp.c_fc.weight", "blk.#.ffn_up.weight", HfTransform::kTranspose},
      {"transformer.h.#.mlp.c_fc.bias", "blk.#.ffn_up.bias"},
      {"transformer.h.#.mlp.c_proj.weight", "blk.#.ffn_down.weight", HfTransform::kTranspose},
      {"transformer.h.#.mlp.c_proj.bias", "blk.#.ffn_down.bias"},
      {"transformer.h.#.attn.bias", nullptr, HfTransform::kSkip},
      {"transformer.h.#.attn.masked_bias", nullptr, HfTransform::kSkip},
  };
}

void gpt2_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"n_embd"});
  w.put_u32(hf_key(arch, "block_count"), c.integer({"n_layer"}));
  w.put_u32(hf_key(arch, "context_length"), c.integer({"n_ctx", "n_positions"}));
  w.put_u32(hf_key(arch, "embedding_length"), n_embd);
  w.put_u32(hf_key(arch, "feed_forward_length"), 4 * n_embd);
  w.put_u32(hf_key(arch, "attention.head_count"), c.integer({"n_head"}));
  w.put_f32(hf_key(arch, "attention.layer_norm_epsilon"), c.number({"layer_norm_epsilon"}));
}

}  // namespace

const ModelFamily& gpt2_family() {
  static const ModelFamily family = {
      "gpt2",
      {"gpt2"},
      make_gpt2,
      {{{"gpt2"}, "gpt2", gpt2_rules(), gpt2_keys, false}},
  };
  return family;
}

}  // namespace wren

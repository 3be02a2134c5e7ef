// Llama family (Llama 2/3, Mistral, SmolLM2, and Mixtral, which llama.cpp also writes as "llama"):
// RMSNorm, RoPE, grouped-query attention, SwiGLU — or a mixture of SwiGLU experts.
#include <cctype>
#include <cmath>

#include "format/tensor_source.h"
#include "models/decoder.h"
#include "models/family.h"

namespace wren {
namespace {

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

// ---- Hugging Face folders --------------------------------------------------------------------

// Mixtral: llama.cpp's per-expert names (the model also takes the stacked _exps tensors).
std::vector<HfRule> mixtral_rules() {
  return hf_rules::decoder_ends() + hf_rules::pre_norms() + hf_rules::split_attention() + std::vector<HfRule>{
      {"model.layers.#.block_sparse_moe.gate.weight", "blk.#.ffn_gate_inp.weight"},
      {"model.layers.#.block_sparse_moe.experts.#.w1.weight", "blk.#.ffn_gate.#.weight"},
      {"model.layers.#.block_sparse_moe.experts.#.w2.weight", "blk.#.ffn_down.#.weight"},
      {"model.layers.#.block_sparse_moe.experts.#.w3.weight", "blk.#.ffn_up.#.weight"},
  };
}

int64_t head_dim_or_default(const HfConfig& c) {
  if (auto hd = c.opt_int({"head_dim"})) return *hd;
  return c.integer({"hidden_size", "n_embd", "dim"}) / c.integer({"num_attention_heads", "n_head", "n_heads"});
}

// The converter's LlamaModel keys beyond the common ones.
void llama_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_u32(hf_key(arch, "vocab_size"), c.integer({"vocab_size"}));
  w.put_u32(hf_key(arch, "rope.dimension_count"), head_dim_or_default(c));
}

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


}  // namespace

const ModelFamily& llama_family() {
  static const ModelFamily family = {
      "llama",
      {"llama"},
      make_llama,
      {
          {{"llama", "mistral"}, "llama", hf_rules::llama(), llama_keys, true, true, nullptr, llama3_rope_freqs},
          {{"mixtral"}, "llama", mixtral_rules(), llama_keys, true, true, nullptr, llama3_rope_freqs},
      },
  };
  return family;
}

}  // namespace wren

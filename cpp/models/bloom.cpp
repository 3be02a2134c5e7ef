// BLOOM: no position embeddings but ALiBi biases on the attention scores (BLOOM's slopes, also for
// head counts that are not a power of two), a LayerNorm right after the token embedding, pre-norm
// LayerNorm blocks with fused QKV (llama.cpp's converter regroups BLOOM's per-head [q|k|v] rows into
// all of Q, then K, then V), GELU (tanh approximation), output tied to the embedding.
#include "models/classic_decoder.h"
#include "models/family.h"

namespace wren {
namespace {

std::unique_ptr<Model> make_bloom(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  ClassicConfig c = ClassicConfig::read(f, arch);
  c.act = Gelu::kTanh;
  c.embedding_norm = true;
  c.alibi = true;
  return make_classic_decoder(f, c, pool, n_ctx);
}

// ---- Hugging Face folders --------------------------------------------------------------------

std::vector<HfRule> bloom_rules() {
  return {
      {"word_embeddings.weight", "token_embd.weight"},
      {"word_embeddings_layernorm.weight", "token_embd_norm.weight"},
      {"word_embeddings_layernorm.bias", "token_embd_norm.bias"},
      {"ln_f.weight", "output_norm.weight"},
      {"ln_f.bias", "output_norm.bias"},
      {"lm_head.weight", "output.weight"},
      {"h.#.input_layernorm.weight", "blk.#.attn_norm.weight"},
      {"h.#.input_layernorm.bias", "blk.#.attn_norm.bias"},
      {"h.#.self_attention.query_key_value.weight", "blk.#.attn_qkv.weight", HfTransform::kUninterleaveQkv},
      {"h.#.self_attention.query_key_value.bias", "blk.#.attn_qkv.bias", HfTransform::kUninterleaveQkv},
      {"h.#.self_attention.dense.weight", "blk.#.attn_output.weight"},
      {"h.#.self_attention.dense.bias", "blk.#.attn_output.bias"},
      {"h.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight"},
      {"h.#.post_attention_layernorm.bias", "blk.#.ffn_norm.bias"},
      {"h.#.mlp.dense_h_to_4h.weight", "blk.#.ffn_up.weight"},
      {"h.#.mlp.dense_h_to_4h.bias", "blk.#.ffn_up.bias"},
      {"h.#.mlp.dense_4h_to_h.weight", "blk.#.ffn_down.weight"},
      {"h.#.mlp.dense_4h_to_h.bias", "blk.#.ffn_down.bias"},
  };
}

void bloom_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  const int64_t n_embd = c.integer({"hidden_size", "n_embed"});
  const int64_t n_head = c.integer({"n_head", "num_attention_heads"});
  w.put_u32(hf_key(arch, "context_length"), c.opt_int({"seq_length"}).value_or(n_embd));
  w.put_u32(hf_key(arch, "embedding_length"), n_embd);
  w.put_u32(hf_key(arch, "feed_forward_length"), 4 * n_embd);
  w.put_u32(hf_key(arch, "block_count"), c.integer({"n_layers", "num_hidden_layers", "n_layer", "num_layers"}));
  w.put_u32(hf_key(arch, "attention.head_count"), n_head);
  w.put_u32(hf_key(arch, "attention.head_count_kv"), n_head);
  w.put_f32(hf_key(arch, "attention.layer_norm_epsilon"), c.number({"layer_norm_epsilon"}));
}

// sentence-transformers folders: modules.json names the pooling module, whose config.json says how
// token vectors become one embedding (llama.cpp pooling types: 1 mean, 2 CLS, 3 last token).

}  // namespace

const ModelFamily& bloom_family() {
  static const ModelFamily family = {
      "bloom",
      {"bloom"},
      make_bloom,
      {{{"bloom"}, "bloom", bloom_rules(), bloom_keys, false, false, "transformer."}},
  };
  return family;
}

}  // namespace wren

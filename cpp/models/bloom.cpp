// BLOOM: no position embeddings but ALiBi biases on the attention scores (BLOOM's slopes, also for
// head counts that are not a power of two), a LayerNorm right after the token embedding, pre-norm
// LayerNorm blocks with fused QKV (llama.cpp's converter regroups BLOOM's per-head [q|k|v] rows into
// all of Q, then K, then V), GELU (tanh approximation), output tied to the embedding.
#include "models/classic_decoder.h"
#include "models/registry.h"

namespace wren {

std::unique_ptr<Model> make_bloom(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  ClassicConfig c = ClassicConfig::read(f, arch);
  c.act = Gelu::kTanh;
  c.embedding_norm = true;
  c.alibi = true;
  return make_classic_decoder(f, c, pool, n_ctx);
}

}  // namespace wren

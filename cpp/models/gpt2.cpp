// GPT-2: learned absolute positions, pre-norm LayerNorm blocks, fused QKV with biases, GELU (tanh
// approximation), output tied to the token embedding.
#include "models/classic_decoder.h"
#include "models/registry.h"

namespace wren {

std::unique_ptr<Model> make_gpt2(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  ClassicConfig c = ClassicConfig::read(f, arch);
  c.act = Gelu::kTanh;
  c.learned_positions = true;
  return make_classic_decoder(f, c, pool, n_ctx);
}

}  // namespace wren

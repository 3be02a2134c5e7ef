// GPT-Neo: GPT-2's layout (learned positions, pre-norm LayerNorm blocks, GELU tanh, tied output)
// with separate Q/K/V projections without biases (the output projection has one), attention scores
// left unscaled, and layers alternating between global attention and local attention over a
// sliding window (<arch>.attention.sliding_window_pattern, llama.cpp's key: true for local layers).
// llama.cpp has no GPT-Neo converter: the tensor names and keys are those wrenlm's Hugging Face
// folder reader writes (format/hf_arch.cpp), following llama.cpp's conventions.
#include "format/tensor_source.h"
#include "models/classic_decoder.h"
#include "models/registry.h"
#include "util/errors.h"

namespace wren {

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

}  // namespace wren

#include "models/registry.h"

#include <map>

#include "format/tensor_source.h"
#include "util/errors.h"

namespace wren {
namespace {

const std::map<std::string, ModelFactory>& factories() {
  static const std::map<std::string, ModelFactory> table = {
      {"llama", make_llama},  // Llama 2/3, Mistral, SmolLM2, Mixtral (all written as "llama" by llama.cpp)
      {"qwen2", make_qwen2},
      {"gemma", make_gemma},
      {"gemma2", make_gemma},
      {"gemma3", make_gemma},
      {"phi3", make_phi3},
      {"gpt2", make_gpt2},
      {"bert", make_bert},  // encoder: embeddings only
      {"bloom", make_bloom},
      {"gpt_neo", make_gpt_neo},  // no llama.cpp converter: from Hugging Face folders (format/hf_arch.cpp)
  };
  return table;
}

// The weight type holding the most bytes: what people call the model's quantization.
std::string dominant_type(const TensorSource& f) {
  std::map<std::string, uint64_t> bytes;
  for (const GgufTensor& t : f.tensors()) bytes[dtype_name(t.dtype)] += t.nbytes;
  std::string best;
  uint64_t most = 0;
  for (const auto& [name, b] : bytes)
    if (b > most) most = b, best = name;
  return best;
}

}  // namespace

std::unique_ptr<Model> load_model(const TensorSource& f, ThreadPool& pool, int64_t n_ctx) {
  const std::string arch = f.get_string("general.architecture");
  auto it = factories().find(arch);
  if (it == factories().end()) {
    std::string known;
    for (const auto& [name, _] : factories()) known += (known.empty() ? "" : ", ") + name;
    throw UnsupportedError(str_cat(f.path(), ": architecture '", arch, "' is not supported (supported: ", known, ")"));
  }
  std::unique_ptr<Model> m;
  try {
    m = it->second(f, arch, pool, n_ctx);
  } catch (const FormatError& e) {
    throw FormatError(str_cat("loading ", arch, " model: ", e.what()));
  }
  ModelInfo& info = const_cast<ModelInfo&>(m->info());
  info.architecture = arch;
  info.name = f.get_string("general.name", "");
  info.quant = dominant_type(f);
  info.n_params = 0;
  for (const GgufTensor& t : f.tensors()) info.n_params += static_cast<int64_t>(t.n_elements());
  return m;
}

}  // namespace wren

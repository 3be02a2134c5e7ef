// The list of model families, and loading a model by its file's architecture.
#include "models/registry.h"

#include <algorithm>
#include <map>

#include "format/tensor_source.h"
#include "util/errors.h"

namespace wren {

// Each family's record, defined in its own file.
const ModelFamily& llama_family();    // Llama 2/3, Mistral, SmolLM2, Mixtral
const ModelFamily& qwen2_family();
const ModelFamily& gemma_family();    // Gemma 1/2/3
const ModelFamily& phi3_family();
const ModelFamily& gpt2_family();
const ModelFamily& gpt_neo_family();  // no llama.cpp converter: from Hugging Face folders
const ModelFamily& bloom_family();
const ModelFamily& bert_family();     // encoder: embeddings only

const std::vector<const ModelFamily*>& model_families() {
  static const std::vector<const ModelFamily*> list = {
      &llama_family(), &qwen2_family(), &gemma_family(), &phi3_family(),
      &gpt2_family(),  &gpt_neo_family(), &bloom_family(), &bert_family(),
  };
  return list;
}

const ModelFamily* family_for_gguf_arch(const std::string& arch) {
  for (const ModelFamily* f : model_families())
    for (const std::string& a : f->gguf_archs)
      if (a == arch) return f;
  return nullptr;
}

// Declared by format/hf_arch.h: the folder translation runs the families' descriptions.
const std::vector<const HfArch*>& hf_archs() {
  static const std::vector<const HfArch*> list = [] {
    std::vector<const HfArch*> out;
    for (const ModelFamily* f : model_families())
      for (const HfArch& h : f->hf) out.push_back(&h);
    return out;
  }();
  return list;
}

namespace {

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
  const ModelFamily* family = family_for_gguf_arch(arch);
  if (!family) {
    std::vector<std::string> names;
    for (const ModelFamily* fam : model_families())
      names.insert(names.end(), fam->gguf_archs.begin(), fam->gguf_archs.end());
    std::sort(names.begin(), names.end());
    std::string known;
    for (const std::string& name : names) known += (known.empty() ? "" : ", ") + name;
    throw UnsupportedError(str_cat(f.path(), ": architecture '", arch, "' is not supported (supported: ", known, ")"));
  }
  std::unique_ptr<Model> m;
  try {
    m = family->make(f, arch, pool, n_ctx);
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

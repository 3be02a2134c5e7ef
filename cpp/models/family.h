// One model family as a record: everything that makes it an architecture of wrenlm, declared once
// in the family's file (models/<family>.cpp) and listed in models/registry.cpp. Adding a family is
// one new file with its record and one line in that list.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/hf_arch.h"
#include "models/model.h"

namespace wren {

// Builds a model from a file whose general.architecture is `arch` (one of the family's gguf_archs).
using ModelFactory = std::unique_ptr<Model> (*)(const TensorSource& f, const std::string& arch, ThreadPool& pool,
                                                int64_t n_ctx);

struct ModelFamily {
  const char* name;                     // for messages: "llama", "gemma", ...
  std::vector<std::string> gguf_archs;  // general.architecture values it loads
  ModelFactory make;
  // The Hugging Face model types it reads from folders and how llama.cpp's converter writes them:
  // GGUF architecture (one of gguf_archs), tensor name rules, hyper-parameter keys.
  std::vector<HfArch> hf;
};

}  // namespace wren

// open_model_source: picks the reader for a path.
#include <sys/stat.h>

#include "format/gguf.h"
#include "format/hf_folder.h"
#include "format/tensor_source.h"
#include "util/errors.h"

namespace wren {

std::unique_ptr<TensorSource> open_model_source(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    if (!HfFolder::looks_like_model_folder(path))
      throw FormatError(str_cat(path, ": is a folder without config.json or weights; expected a Hugging Face "
                                      "model folder (config.json, model.safetensors, tokenizer.json) or a .gguf file"));
    return std::make_unique<HfFolder>(path);
  }
  return std::make_unique<GgufFile>(path);
}

}  // namespace wren

// open_model_source: picks the reader for a path.
#include <sys/stat.h>

#include "format/gguf.h"
#include "format/tensor_source.h"
#include "util/errors.h"

namespace wren {

std::unique_ptr<TensorSource> open_model_source(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw UnsupportedError(str_cat(path, ": is a folder; Hugging Face model folders are not supported yet "
                                         "(pass a .gguf file)"));
  return std::make_unique<GgufFile>(path);
}

}  // namespace wren

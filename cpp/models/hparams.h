// The hyper-parameters every family writes under "<arch>." (llama.cpp's key names), read and
// validated once for all architectures.
#pragma once

#include <cstdint>
#include <string>

#include "attention/attention.h"

namespace wren {

class TensorSource;

struct TransformerDims {
  int64_t dim = 0, n_layers = 0, ffn_dim = 0, n_ctx_train = 0;
  AttentionShape attn;  // head_dim: attention.key_length where given (Gemma), else dim / n_heads

  // FormatError naming the file and key for a missing or out-of-range value.
  static TransformerDims read(const TensorSource& f, const std::string& arch);
};

}  // namespace wren

// Which type each tensor of a model gets when it is quantized to one of llama.cpp's named mixes
// ("Q4_K_M" and the others). The rules are llama.cpp's (src/llama-quant.cpp, llama_tensor_get_type),
// restated here so that a file we write has the same per-tensor types as llama-quantize's: the
// sensitive tensors (attn_v, ffn_down in some layers, the output matrix) get more bits, norms and
// other small tensors keep their type, and rows whose length is not a multiple of a type's block
// fall back to a type whose block fits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/tensor_source.h"
#include "tensor/dtype.h"

namespace wren {

struct QuantMix {
  const char* name;    // as llama-quantize spells it
  uint32_t file_type;  // llama_ftype, written to general.file_type
  DType base;          // the type of most matrices
  const char* about;
};

// The mixes we write, in llama-quantize's order.
const std::vector<QuantMix>& quant_mixes();
// By name, case-insensitive; also accepts llama-quantize's aliases (Q4_K = Q4_K_M, Q5_K = Q5_K_M,
// Q3_K = Q3_K_M). InvalidArgument listing the valid names when unknown.
const QuantMix& find_quant_mix(const std::string& name);

struct TensorPlan {
  size_t index;  // in src.tensors()
  DType to;      // the type it is written as (its own type: copied unchanged)
};

// Every tensor of src in the order llama.cpp writes them (non-layer tensors first, then by layer
// number, then by name; the order its per-layer counters run in), with its chosen type.
std::vector<TensorPlan> plan_quant_mix(const TensorSource& src, const QuantMix& mix);

}  // namespace wren

// Quantizes a model file (a GGUF file of any type we can read, or a Hugging Face folder) into a new
// GGUF file with one of llama.cpp's mixes (convert/quant_mix.h), using our own quantizers
// (tensor/quantize.h). Tensors are streamed: a slab of rows at a time is dequantized to float,
// quantized on the thread pool and appended to the output, so memory stays bounded by the slab, not
// the model. The output is written to "<dst>.tmp" and renamed over dst only when complete; any
// error or interruption removes the partial file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/lora_adapter.h"
#include "tensor/dtype.h"

namespace wren {

struct QuantizeProgress {
  size_t tensor = 0;        // index in the output order (0-based)
  size_t n_tensors = 0;
  std::string name;         // the tensor being written
  DType from = DType::F32;  // its source type
  DType to = DType::F32;    // its type in the output
  uint64_t bytes_read = 0;      // source tensor bytes processed so far, all tensors
  uint64_t bytes_total = 0;     // source tensor bytes, all tensors
  uint64_t bytes_written = 0;   // output bytes so far
};

// Called on the calling thread at the start of each tensor and after each slab; it may throw (for
// instance Interrupted) to stop the run.
using QuantizeCallback = std::function<void(const QuantizeProgress&)>;

struct QuantizeOptions {
  std::string mix = "Q4_K_M";  // a name from quant_mixes()
  int n_threads = 0;           // 0: the physical cores
  // LoRA adapters merged into the weights they update (W + scale * alpha/r * B A, in float32 from the
  // dequantized base, format/lora_merge.h) before those are quantized; the output needs no adapter.
  std::vector<LoraSpec> loras;
};

// Returns the output's size in bytes.
uint64_t quantize_model(const std::string& src_path, const std::string& dst_path, const QuantizeOptions& options,
                        const QuantizeCallback& callback);

}  // namespace wren

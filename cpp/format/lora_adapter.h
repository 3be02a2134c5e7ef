// LoRA adapters: low-rank updates of a base model's weight matrices. An adapted matrix W (rows x cols)
// becomes W + s * B A, with A (rank x cols), B (rows x rank) and s the adapter's own factor times the
// caller's scale. Two file kinds are read:
//   - llama.cpp GGUF adapters (convert_lora_to_gguf.py): general.type "adapter", adapter.type "lora",
//     adapter.lora.alpha, and per matrix <name>.lora_a [cols, rank] and <name>.lora_b [rank, rows]
//     (ggml order); s = alpha / rank (alpha 0: no factor), as llama.cpp applies them.
//   - PEFT folders (adapter_config.json + adapter_model.safetensors): base_model.model.<hf name>
//     .lora_A.weight (rank, cols) and .lora_B.weight (rows, rank); s = lora_alpha / r, or
//     lora_alpha / sqrt(r) with use_rslora.
// An adapter is read against the base it will change and checked against it: same architecture,
// every target a 2-D matrix of the base with the adapter's shape, rank > 0, finite values. Llama's
// Q/K rows: llama.cpp writes them permuted in GGUF (for interleaved RoPE) and so writes lora_b of
// attn_q / attn_k; B's rows are (un)permuted here whenever adapter and base disagree, so B A is
// always in the base's row order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/tensor_source.h"

namespace wren {

// One adapter as the caller names it: a GGUF file or a PEFT folder, and a scale (1: as trained).
struct LoraSpec {
  std::string path;
  float scale = 1.0f;
};

// One adapted matrix.
struct LoraUpdate {
  std::string target;    // the base tensor ("blk.3.attn_q.weight")
  int64_t rows = 0;      // the base matrix's rows (outputs) ...
  int64_t cols = 0;      // ... and columns (inputs)
  int64_t rank = 0;
  std::vector<float> a;  // (rank, cols)
  std::vector<float> b;  // (rows, rank), rows in the base's order
  float scale = 1.0f;    // s: the adapter's factor times the caller's scale
};

struct LoraAdapter {
  std::string path;
  std::string format;      // "gguf" or "peft"
  float scale = 1.0f;      // the caller's scale
  float alpha = 0.0f;      // as the file gives it
  std::vector<LoraUpdate> updates;

  int64_t max_rank() const;
};

// Reads the adapter at spec.path (a folder: PEFT; a file: GGUF) for `base`. FormatError naming the
// adapter file and tensor or key for anything malformed or not fitting the base; UnsupportedError
// for adapter variants not implemented (DoRA, embedding or norm updates, per-module alphas, ...).
LoraAdapter read_lora_adapter(const LoraSpec& spec, const TensorSource& base);

// The two readers (format/lora_gguf.cpp, format/lora_peft.cpp) and what they share.
LoraAdapter read_gguf_lora(const LoraSpec& spec, const TensorSource& base);
LoraAdapter read_peft_lora(const LoraSpec& spec, const TensorSource& base);

namespace lora_detail {
bool ends_with(const std::string& s, const std::string& suffix);
// True when `src` holds llama Q/K rows permuted as llama.cpp's GGUF converter writes them.
bool qk_rows_permuted(const TensorSource& src);
// Checks u against its base tensor and the adapter's rules (field: where u came from, for messages),
// then reorders B's rows for attn_q / attn_k when adapter_permuted differs from the base.
void finish_update(LoraUpdate& u, const TensorSource& base, bool adapter_permuted, const std::string& path,
                   const std::string& field);
}  // namespace lora_detail

}  // namespace wren

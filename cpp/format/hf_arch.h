// How a Hugging Face model folder becomes the GGUF metadata and tensors llama.cpp's converter
// writes: the description one family gives of its conversion (HfArch: model types, tensor name
// rules, hyper-parameter keys), the rule sets and keys several families share, and the generic
// steps that run a description (format/hf_arch.cpp). Each family's own description lives in its
// record (models/<family>.cpp); this folder knows none of them by name.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "format/hf_config.h"
#include "format/hf_folder.h"

namespace wren {

// How a tensor's values change on the way (none: zero-copy rename).
enum class HfTransform {
  kRename,
  kSkip,             // not part of the GGUF model (buffers, heads llama.cpp drops)
  kNormPlusOne,      // RMSNorm that scales by (1 + w): GGUF stores 1 + w (Gemma)
  kTranspose,        // Conv1D weight (in, out) -> (out, in) (GPT-2)
  kUninterleaveQkv,  // fused rows per head [q|k|v] -> all q, all k, all v (BLOOM); needs n_head, hidden_size
};

// HF name pattern -> GGUF name pattern; '#' stands for a layer (then an expert) index.
struct HfRule {
  const char* hf;
  const char* gguf;  // nullptr with kSkip
  HfTransform tf = HfTransform::kRename;
};

std::vector<HfRule> operator+(std::vector<HfRule> a, const std::vector<HfRule>& b);

// Keys a family writes beyond (or instead of) the common ones, under "<arch>.".
using HfParams = void (*)(const HfConfig& c, const std::string& arch, HfWriter& w);
// Tensors the converter computes from config.json (RoPE frequency factors).
using HfExtraTensors = void (*)(const HfConfig& c, HfWriter& w);

// One group of config.json model types converted alike.
struct HfArch {
  std::vector<std::string> model_types;  // config.json "model_type" values
  const char* arch;                      // the GGUF general.architecture written for them
  std::vector<HfRule> rules;             // every tensor the folder may hold
  HfParams params = nullptr;             // keys beyond (or replacing) the common ones; nullptr: none
  bool common_keys = true;               // the converter's generic set_gguf_parameters runs first
  bool neox_rope = false;                // Q/K kept in transformers' order (wrenlm.rope.neox)
  const char* strip_prefix = nullptr;    // dropped from HF names first ("transformer.", "bert.")
  HfExtraTensors extra_tensors = nullptr;
};

// Every conversion wrenlm knows, in the model families' order. The families are declared above this
// folder (models/), so the list is defined there (models/registry.cpp) and only declared here.
const std::vector<const HfArch*>& hf_archs();

// Writes the GGUF metadata and tensors of the folder whose config.json is `config`, by the HfArch
// of its model_type. UnsupportedError for a model type no family reads.
void translate_model(const JsonValue& config, HfWriter& w);

// Where llama.cpp's converter puts one Hugging Face weight, for adapters that name base weights by
// their HF names (format/lora_peft.cpp): the GGUF tensor name and how the values travel.
struct HfTensorTarget {
  enum class Layout {
    kSame,        // renamed only: the GGUF matrix is the HF one
    kTransposed,  // GPT-2 Conv1D (in, out) written as (out, in): a Linear-style (out, in) update fits as is
    kChanged,     // values or row order changed (norm + 1, BLOOM's fused Q/K/V order)
  };
  std::string gguf_name;
  Layout layout = Layout::kSame;
};
// hf_name ("model.layers.3.self_attn.q_proj.weight") under the rules of the families written as GGUF
// architecture `arch`; nullopt when no family of that architecture has such a weight (or it is dropped).
std::optional<HfTensorTarget> hf_tensor_target(const std::string& arch, const std::string& hf_name);

// "<arch>.<key>"
std::string hf_key(const std::string& arch, const char* key);

// Tensor names of the Llama-style layout (transformers' LlamaForCausalLM and the families that
// copy its naming), in pieces families combine.
namespace hf_rules {
const std::vector<HfRule>& decoder_ends();     // embed_tokens, final norm, lm_head
const std::vector<HfRule>& pre_norms();        // input_layernorm, post_attention_layernorm
const std::vector<HfRule>& split_attention();  // q/k/v/o_proj weights
const std::vector<HfRule>& qkv_biases();       // q/k/v_proj biases
const std::vector<HfRule>& gated_mlp();        // gate/up/down_proj
const std::vector<HfRule>& llama();            // all of the above, plus an o_proj bias
}  // namespace hf_rules

}  // namespace wren

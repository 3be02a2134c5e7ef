// PEFT LoRA folders (adapter_config.json + adapter_model.safetensors), read against their base. The
// adapter names base weights by their Hugging Face names; the families' conversion rules
// (format/hf_arch.h) give the GGUF names the base uses.
#include <cmath>
#include <map>

#include "format/hf_arch.h"
#include "format/json.h"
#include "format/lora_adapter.h"
#include "format/safetensors.h"
#include "tensor/quant.h"
#include "util/errors.h"

namespace wren {
namespace {

using lora_detail::ends_with;

constexpr const char* kPrefix = "base_model.model.";
constexpr const char* kSuffixA = ".lora_A.weight";
constexpr const char* kSuffixB = ".lora_B.weight";

[[noreturn]] void unsupported(const std::string& file, const std::string& field, const std::string& what) {
  throw UnsupportedError(str_cat(file, ": ", field, ": ", what));
}

// The adapter_config.json settings that change what the weights mean.
struct PeftConfig {
  int64_t r = 0;
  double alpha = 0.0;
  bool rslora = false;
  bool rank_pattern = false;  // per-module ranks: each matrix's own rank is used
};

PeftConfig read_config(const std::string& path) {
  const JsonDocument doc = read_json_file(path, uint64_t(16) << 20);
  const JsonValue& root = *doc.root;
  root.as_object();
  auto flag = [&](const char* key) {
    const JsonValue* v = root.find_non_null(key);
    return v && v->as_bool();
  };
  auto non_empty = [&](const char* key) {
    const JsonValue* v = root.find_non_null(key);
    if (!v) return false;
    if (v->is_object()) return !v->as_object().empty();
    if (v->is_array()) return !v->as_array().empty();
    return !(v->is_string() && v->as_string().empty());
  };
  const JsonValue* type = root.find_non_null("peft_type");
  if (!type) root.fail("required key \"peft_type\" is missing (expected \"LORA\")");
  if (type->as_string() != "LORA")
    unsupported(path, "peft_type", str_cat("only LORA adapters are supported, found '", type->as_string(), "'"));
  if (flag("use_dora")) unsupported(path, "use_dora", "DoRA adapters are not supported");
  if (flag("lora_bias")) unsupported(path, "lora_bias", "LoRA biases are not supported");
  if (flag("use_qalora")) unsupported(path, "use_qalora", "QA-LoRA adapters are not supported");
  if (non_empty("alpha_pattern")) unsupported(path, "alpha_pattern", "per-module alphas are not supported");
  if (non_empty("target_parameters")) unsupported(path, "target_parameters", "parameter targets are not supported");
  if (non_empty("layer_replication")) unsupported(path, "layer_replication", "layer replication is not supported");
  if (non_empty("alora_invocation_tokens"))
    unsupported(path, "alora_invocation_tokens", "activated LoRA (aLoRA) adapters are not supported");
  if (non_empty("trainable_token_indices"))
    unsupported(path, "trainable_token_indices", "trainable token embeddings are not supported");

  PeftConfig c;
  const JsonValue& r = root.at("r");
  c.r = r.as_int();
  if (c.r <= 0) r.fail(str_cat("expected a rank > 0, found ", c.r));
  const JsonValue& alpha = root.at("lora_alpha");
  c.alpha = alpha.as_double();
  if (!std::isfinite(c.alpha)) alpha.fail("expected a finite number");
  c.rslora = flag("use_rslora");
  c.rank_pattern = non_empty("rank_pattern");
  return c;
}

void check_base_copy(const SafetensorsTensor& t, const std::string& file, const TensorSource& base) {
  const std::string field = "tensor '" + t.name + "'";
  const std::string module = t.name.substr(std::char_traits<char>::length(kPrefix));
  const std::string hf_name = module.substr(0, module.size() - std::char_traits<char>::length(".base_layer.weight")) +
                              ".weight";
  const std::string arch = base.get_string("general.architecture");
  const std::optional<HfTensorTarget> target = hf_tensor_target(arch, hf_name);
  const GgufTensor* b = target ? base.find_tensor(target->gguf_name) : nullptr;
  if (!b) throw FormatError(str_cat(file, ": ", field, ": a copy of '", hf_name, "', which the base model ", base.path(),
                                    " does not have"));
  const std::vector<uint64_t> ggml_shape(t.shape.rbegin(), t.shape.rend());
  if (ggml_shape != b->shape)
    throw UnsupportedError(str_cat(file, ": ", field, ": a copy of the base's '", b->name, "' with another shape (",
                                   t.shape.size() == 2 ? str_cat(t.shape[0], " x ", t.shape[1]) : "?", " vs the base's ",
                                   b->shape_str(), "): adapters that resize the vocabulary are not supported"));
}

std::vector<float> to_f32(const SafetensorsFile& f, const SafetensorsTensor& t) {
  f.require_supported(t);
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  dequantize_row(t.dtype, t.data, out.data(), out.size());  // F32 / F16 / BF16: plain element types
  return out;
}

}  // namespace

LoraAdapter read_peft_lora(const LoraSpec& spec, const TensorSource& base) {
  const std::string config_path = path_join(spec.path, "adapter_config.json");
  const std::string weights_path = path_join(spec.path, "adapter_model.safetensors");
  if (!is_regular_file(config_path))
    throw FormatError(str_cat(spec.path, ": adapter_config.json: missing; expected a PEFT LoRA folder "
                                         "(adapter_config.json, adapter_model.safetensors) or a GGUF adapter file"));
  const PeftConfig c = read_config(config_path);
  if (!is_regular_file(weights_path)) {
    if (is_regular_file(path_join(spec.path, "adapter_model.bin")))
      throw FormatError(str_cat(spec.path, ": adapter_model.bin: PyTorch pickle weights are not loaded (unpickling "
                                           "can run arbitrary code); save the adapter with safe_serialization=True"));
    throw FormatError(str_cat(spec.path, ": adapter_model.safetensors: missing"));
  }
  const SafetensorsFile f(weights_path);
  const std::string arch = base.get_string("general.architecture");

  // HF module name ("model.layers.0.self_attn.q_proj") -> its A and B, in file order.
  std::map<std::string, std::pair<const SafetensorsTensor*, const SafetensorsTensor*>> pairs;
  std::vector<std::string> order;
  for (const SafetensorsTensor& t : f.tensors()) {
    const std::string field = "tensor '" + t.name + "'";
    if (t.name.find(".lora_embedding_") != std::string::npos)
      unsupported(weights_path, field, "token embedding updates are not supported");
    if (t.name.rfind(kPrefix, 0) != 0)
      throw FormatError(str_cat(weights_path, ": ", field, ": expected a name starting with '", kPrefix, "'"));
    const bool is_a = ends_with(t.name, kSuffixA), is_b = ends_with(t.name, kSuffixB);
    if (ends_with(t.name, ".base_layer.weight")) {
      // PEFT saves the base's own output head / embedding beside an adapter that targets it (in case the
      // vocabulary was resized); the base model's copy is used, so it must have the same shape.
      check_base_copy(t, weights_path, base);
      continue;
    }
    if (!is_a && !is_b)
      unsupported(weights_path, field, "is not a LoRA matrix (.lora_A / .lora_B); PEFT modules_to_save, biases and "
                                       "trainable tokens are not supported");
    const std::string module = t.name.substr(std::char_traits<char>::length(kPrefix),
                                             t.name.size() - std::char_traits<char>::length(kPrefix) -
                                                 std::char_traits<char>::length(kSuffixA));
    auto& p = pairs[module];
    if (!p.first && !p.second) order.push_back(module);
    (is_a ? p.first : p.second) = &t;
  }
  if (order.empty()) throw FormatError(str_cat(weights_path, ": the adapter holds no LoRA matrices"));

  LoraAdapter out;
  out.path = spec.path;
  out.format = "peft";
  out.scale = spec.scale;
  out.alpha = static_cast<float>(c.alpha);
  for (const std::string& module : order) {
    const auto [a, b] = pairs[module];
    const std::string field = "tensor '" + std::string(kPrefix) + module + (a ? kSuffixB : kSuffixA) + "'";
    if (!a || !b) throw FormatError(str_cat(weights_path, ": ", field, ": missing: lora_A and lora_B come in pairs"));
    const std::string field_a = "tensor '" + a->name + "'";
    const std::string hf_name = module + ".weight";
    const std::optional<HfTensorTarget> target = hf_tensor_target(arch, hf_name);
    if (!target)
      throw FormatError(str_cat(weights_path, ": ", field_a, ": updates '", hf_name, "', which is not a weight of a '",
                                arch, "' model (the base is ", base.path(), "; an adapter for another architecture?)"));
    if (target->layout == HfTensorTarget::Layout::kChanged)
      unsupported(weights_path, field_a, str_cat("updates '", hf_name, "', whose values llama.cpp's converter changes "
                                                 "on the way to GGUF; LoRA on it is not supported"));
    if (a->shape.size() != 2 || b->shape.size() != 2 || a->shape[0] != b->shape[1])
      throw FormatError(str_cat(weights_path, ": ", field_a, ": expected lora_A (rank, in) and lora_B (out, rank), "
                                "found ", a->shape.size(), "-D and ", b->shape.size(), "-D tensors with ranks ",
                                a->shape.empty() ? 0 : a->shape[0], " and ", b->shape.empty() ? 0 : b->shape.back()));
    LoraUpdate u;
    u.target = target->gguf_name;
    u.rank = static_cast<int64_t>(a->shape[0]);
    u.cols = static_cast<int64_t>(a->shape[1]);
    u.rows = static_cast<int64_t>(b->shape[0]);
    if (!c.rank_pattern && u.rank != c.r)
      throw FormatError(str_cat(weights_path, ": ", field_a, ": has rank ", u.rank, " but adapter_config.json says r = ",
                                c.r));
    // A Linear's update B A is (out, in), the GGUF matrix's layout; for GPT-2's Conv1D weights PEFT
    // applies (B A)^T to the (in, out) HF weight, which the converter transposes to (out, in) too.
    u.a = to_f32(f, *a);
    u.b = to_f32(f, *b);
    const double r = static_cast<double>(u.rank);
    u.scale = static_cast<float>(spec.scale * c.alpha / (c.rslora ? std::sqrt(r) : r));
    lora_detail::finish_update(u, base, /*adapter_permuted=*/false, weights_path, field_a);
    out.updates.push_back(std::move(u));
  }
  return out;
}

}  // namespace wren

// llama.cpp's GGUF LoRA adapters (convert_lora_to_gguf.py output), read against their base.
#include <cmath>
#include <map>

#include "format/gguf.h"
#include "format/lora_adapter.h"
#include "tensor/quant.h"
#include "util/errors.h"

namespace wren {
namespace {

using lora_detail::ends_with;

// A 2-D adapter tensor [ne0, ne1] as ne1 rows of ne0 floats (row-major).
std::vector<float> rows_f32(const GgufFile& f, const GgufTensor& t) {
  const uint64_t ne0 = t.dim(0), ne1 = t.dim(1);
  const uint32_t block = dtype_info(t.dtype).block_size;
  if (block == 0 || ne0 % block != 0)
    f.fail("tensor '" + t.name + "'", str_cat("rows of ", ne0, " elements do not fill whole ", dtype_name(t.dtype),
                                              " blocks"));
  std::vector<float> out(static_cast<size_t>(ne0 * ne1));
  const size_t stride = row_bytes(t.dtype, static_cast<size_t>(ne0));
  for (uint64_t r = 0; r < ne1; ++r) dequantize_row(t.dtype, t.data + r * stride, &out[r * ne0], ne0);
  return out;
}

}  // namespace

LoraAdapter read_gguf_lora(const LoraSpec& spec, const TensorSource& base) {
  const GgufFile f(spec.path);
  const std::string type = f.get_string("general.type", "");
  if (type != "adapter")
    f.fail("general.type", str_cat("expected 'adapter' (a LoRA adapter made by llama.cpp's convert_lora_to_gguf.py), "
                                   "found ", type.empty() ? std::string("no such key") : "'" + type + "'",
                                   type == "model" ? " (this is a model file, not an adapter)" : ""));
  const std::string adapter_type = f.get_string("adapter.type", "");
  if (adapter_type != "lora")
    throw UnsupportedError(str_cat(spec.path, ": adapter.type: only 'lora' adapters are supported, found '",
                                   adapter_type, "'"));
  const std::string arch = f.get_string("general.architecture");
  const std::string base_arch = base.get_string("general.architecture");
  if (arch != base_arch)
    f.fail("general.architecture", str_cat("the adapter is for '", arch, "' models but the base model ", base.path(),
                                           " is '", base_arch, "'"));
  if (f.has("adapter.alora.invocation_tokens"))
    throw UnsupportedError(str_cat(spec.path, ": adapter.alora.invocation_tokens: activated LoRA (aLoRA) adapters "
                                              "are not supported"));
  const double alpha = f.get_float("adapter.lora.alpha", 0.0);
  if (!std::isfinite(alpha)) f.fail("adapter.lora.alpha", str_cat("expected a finite number, found ", alpha));

  // Pair <name>.lora_a with <name>.lora_b, in file order of the first of each pair.
  std::map<std::string, std::pair<const GgufTensor*, const GgufTensor*>> pairs;
  std::vector<std::string> order;
  for (const GgufTensor& t : f.tensors()) {
    const bool is_a = ends_with(t.name, ".lora_a"), is_b = ends_with(t.name, ".lora_b");
    if (!is_a && !is_b) {
      if (ends_with(t.name, "_norm.weight"))
        throw UnsupportedError(str_cat(spec.path, ": tensor '", t.name, "': adapters that replace norm weights "
                                                  "are not supported"));
      f.fail("tensor '" + t.name + "'", "expected a name ending in .lora_a or .lora_b");
    }
    const std::string target = t.name.substr(0, t.name.size() - 7);
    if (ends_with(target, "token_embd.weight"))
      throw UnsupportedError(str_cat(spec.path, ": tensor '", t.name, "': token embedding updates are not supported"));
    auto& p = pairs[target];
    if (!p.first && !p.second) order.push_back(target);
    (is_a ? p.first : p.second) = &t;
  }
  if (order.empty()) f.fail("tensors", "the adapter holds no .lora_a / .lora_b tensors");

  LoraAdapter out;
  out.path = spec.path;
  out.format = "gguf";
  out.scale = spec.scale;
  out.alpha = static_cast<float>(alpha);
  const bool permuted = arch == "llama";  // written by llama.cpp's converter, as its base models are
  for (const std::string& target : order) {
    const auto [a, b] = pairs[target];
    const std::string field = "tensor '" + target + ".lora_" + (a ? "b" : "a") + "'";
    if (!a || !b) f.fail(field, "missing: every .lora_a needs its .lora_b and back");
    if (a->shape.size() != 2 || b->shape.size() != 2 || a->dim(1) != b->dim(0))
      f.fail("tensor '" + target + ".lora_a'", str_cat("expected lora_a [cols, rank] and lora_b [rank, rows], found ",
                                                       a->shape_str(), " and ", b->shape_str()));
    LoraUpdate u;
    u.target = target;
    u.rank = static_cast<int64_t>(a->dim(1));
    u.cols = static_cast<int64_t>(a->dim(0));
    u.rows = static_cast<int64_t>(b->dim(1));
    u.a = rows_f32(f, *a);  // rank rows of cols
    u.b = rows_f32(f, *b);  // rows rows of rank
    // llama.cpp: alpha / rank when alpha is set, else the scale alone.
    u.scale = alpha != 0.0 ? static_cast<float>(spec.scale * alpha / static_cast<double>(u.rank)) : spec.scale;
    lora_detail::finish_update(u, base, permuted, spec.path, "tensor '" + target + ".lora_b'");
    out.updates.push_back(std::move(u));
  }
  return out;
}

}  // namespace wren

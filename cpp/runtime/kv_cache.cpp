#include "runtime/kv_cache.h"

#include <algorithm>

#include "kernels/kernel_table.h"
#include "util/errors.h"

namespace wren {

KvDtype parse_kv_dtype(const std::string& name) {
  if (name == "f16") return KvDtype::F16;
  if (name == "f32") return KvDtype::F32;
  throw InvalidArgument(str_cat("kv_cache must be 'f16' or 'f32', got '", name, "'"));
}

const char* kv_dtype_name(KvDtype t) { return t == KvDtype::F16 ? "f16" : "f32"; }

KvCache::KvCache(int64_t n_layers, int64_t n_ctx, int64_t kv_dim, KvDtype dtype)
    : n_layers_(n_layers), n_ctx_(n_ctx), kv_dim_(kv_dim), dtype_(dtype),
      k_(new uint8_t[static_cast<size_t>(n_layers) * layer_bytes()]),
      v_(new uint8_t[static_cast<size_t>(n_layers) * layer_bytes()]) {}

void KvCache::store(int64_t layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  WREN_CHECK(layer >= 0 && layer < n_layers_ && pos0 >= 0 && n >= 0 && pos0 + n <= n_ctx_, InvalidArgument,
             "KV cache store of positions [", pos0, ", ", pos0 + n, ") in layer ", layer, " is outside (",
             n_layers_, " layers, n_ctx=", n_ctx_, ")");
  const size_t offset = layer * layer_bytes() + static_cast<size_t>(pos0 * kv_dim_) * element_size();
  const int64_t count = n * kv_dim_;  // the positions are consecutive rows
  if (dtype_ == KvDtype::F32) {
    std::copy(k, k + count, reinterpret_cast<float*>(k_.get() + offset));
    std::copy(v, v + count, reinterpret_cast<float*>(v_.get() + offset));
  } else {
    const ToF16Fn to_f16 = active_kernels().f32_to_f16;
    to_f16(k, reinterpret_cast<uint16_t*>(k_.get() + offset), count);
    to_f16(v, reinterpret_cast<uint16_t*>(v_.get() + offset), count);
  }
}

}  // namespace wren

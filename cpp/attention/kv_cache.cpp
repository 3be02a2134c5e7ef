#include "attention/kv_cache.h"

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

KvCache::KvCache(int64_t n_layers, int64_t n_ctx, int64_t kv_dim, int64_t head_dim, KvDtype dtype)
    : n_layers_(n_layers), n_ctx_(n_ctx), kv_dim_(kv_dim), head_dim_(head_dim), dtype_(dtype) {
  WREN_CHECK(head_dim > 0 && kv_dim % head_dim == 0, InvalidArgument, "KV cache: kv_dim ", kv_dim,
             " is not a multiple of head_dim ", head_dim);
  const size_t bytes = static_cast<size_t>(n_layers) * static_cast<size_t>(n_ctx * kv_dim) * element_size();
  k_.reset(new uint8_t[bytes]);
  v_.reset(new uint8_t[bytes]);
}

KvLayerView KvCache::view(int64_t layer, int64_t n_positions) const {
  WREN_CHECK(layer >= 0 && layer < n_layers_ && n_positions >= 0 && n_positions <= n_ctx_, InvalidArgument,
             "KV cache view of positions [0, ", n_positions, ") in layer ", layer, " is outside (", n_layers_,
             " layers, n_ctx=", n_ctx_, ")");
  KvLayerView v;
  v.k = k_.get() + head_offset(layer, 0);
  v.v = v_.get() + head_offset(layer, 0);
  v.head_stride = head_bytes();
  v.n_kv_heads = kv_dim_ / head_dim_;
  v.head_dim = head_dim_;
  v.n_positions = n_positions;
  v.dtype = dtype_;
  return v;
}

void KvCache::store(int64_t layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  WREN_CHECK(layer >= 0 && layer < n_layers_ && pos0 >= 0 && n >= 0 && pos0 + n <= n_ctx_, InvalidArgument,
             "KV cache store of positions [", pos0, ", ", pos0 + n, ") in layer ", layer, " is outside (",
             n_layers_, " layers, n_ctx=", n_ctx_, ")");
  const ToF16Fn to_f16 = active_kernels().f32_to_f16;
  const size_t row = static_cast<size_t>(head_dim_) * element_size();
  for (int64_t h = 0; h < kv_dim_ / head_dim_; ++h) {
    uint8_t* kh = k_.get() + head_offset(layer, h) + static_cast<size_t>(pos0) * row;  // (n, head_dim)
    uint8_t* vh = v_.get() + head_offset(layer, h) + static_cast<size_t>(pos0) * row;
    for (int64_t t = 0; t < n; ++t) {
      const float* kt = k + t * kv_dim_ + h * head_dim_;
      const float* vt = v + t * kv_dim_ + h * head_dim_;
      if (dtype_ == KvDtype::F32) {
        std::copy(kt, kt + head_dim_, reinterpret_cast<float*>(kh + t * row));
        std::copy(vt, vt + head_dim_, reinterpret_cast<float*>(vh + t * row));
      } else {
        to_f16(kt, reinterpret_cast<uint16_t*>(kh + t * row), head_dim_);
        to_f16(vt, reinterpret_cast<uint16_t*>(vh + t * row), head_dim_);
      }
    }
  }
}

}  // namespace wren

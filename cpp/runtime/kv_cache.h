// Per-session key/value cache: for each layer, keys and values of every position so far,
// stored as F16 (default: half the memory and bandwidth) or F32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace wren {

enum class KvDtype { F16, F32 };

// "f16" | "f32"; throws InvalidArgument for anything else.
KvDtype parse_kv_dtype(const std::string& name);
const char* kv_dtype_name(KvDtype t);

class KvCache {
 public:
  // Memory is reserved, not touched: pages are committed as positions are written.
  KvCache(int64_t n_layers, int64_t n_ctx, int64_t kv_dim, KvDtype dtype = KvDtype::F16);

  // Converts n positions of F32 keys and values, k and v (n, kv_dim), into the cache rows of
  // positions pos0..pos0+n-1 of a layer.
  void store(int64_t layer, int64_t pos0, int64_t n, const float* k, const float* v);

  // Rows of a layer, elements of dtype(): (n_ctx, kv_dim), row r at r * kv_dim elements.
  const void* k(int64_t layer) const { return k_.get() + layer * layer_bytes(); }
  const void* v(int64_t layer) const { return v_.get() + layer * layer_bytes(); }
  KvDtype dtype() const { return dtype_; }
  size_t element_size() const { return dtype_ == KvDtype::F16 ? 2 : 4; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }

 private:
  size_t layer_bytes() const { return static_cast<size_t>(n_ctx_ * kv_dim_) * element_size(); }

  int64_t n_layers_, n_ctx_, kv_dim_;
  KvDtype dtype_;
  std::unique_ptr<uint8_t[]> k_, v_;  // (n_layers, n_ctx, kv_dim) of dtype_
};

}  // namespace wren

// Per-session key/value cache: for each layer, keys and values of every position so far.
#pragma once

#include <cstdint>
#include <memory>

namespace wren {

class KvCache {
 public:
  // Memory is reserved, not touched: pages are committed as positions are written.
  KvCache(int64_t n_layers, int64_t n_ctx, int64_t kv_dim)
      : n_layers_(n_layers), n_ctx_(n_ctx), kv_dim_(kv_dim),
        k_(new float[static_cast<size_t>(n_layers * n_ctx * kv_dim)]),
        v_(new float[static_cast<size_t>(n_layers * n_ctx * kv_dim)]) {}

  float* k(int64_t layer) { return k_.get() + layer * n_ctx_ * kv_dim_; }  // (n_ctx, kv_dim)
  float* v(int64_t layer) { return v_.get() + layer * n_ctx_ * kv_dim_; }  // (n_ctx, kv_dim)
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }

 private:
  int64_t n_layers_, n_ctx_, kv_dim_;
  std::unique_ptr<float[]> k_, v_;
};

}  // namespace wren

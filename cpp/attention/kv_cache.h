// Per-session key/value cache: for each layer, keys and values of every position so far,
// stored as F16 (default: half the memory and bandwidth) or F32. Head-major: each KV head's rows
// are contiguous, so decode attention streams one head's keys (and values) as one linear read
// (position-major rows would make it read head_dim of every kv_dim elements, a strided pattern the
// hardware prefetchers follow poorly: 2-3x slower from DRAM at long contexts).
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

// One layer of a cache as the attention kernels read it: where the keys and values of positions
// [0, n_positions) live, the head layout and the element type. Each KV head's rows are contiguous:
// row j (position j) of head h starts at k + h * head_stride + j * row_bytes() (values likewise
// from v), head_dim elements of dtype. The kernels see only this view, never the cache class: a
// cache with another layout (paged blocks shared between sequences) hands out its own views.
struct KvLayerView {
  const uint8_t* k = nullptr;  // (n_kv_heads, n_positions, head_dim) of dtype, heads head_stride apart
  const uint8_t* v = nullptr;  // likewise
  size_t head_stride = 0;      // bytes from one head's row 0 to the next head's
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t n_positions = 0;     // rows [0, n_positions) are readable
  KvDtype dtype = KvDtype::F16;

  size_t row_bytes() const { return static_cast<size_t>(head_dim) * (dtype == KvDtype::F16 ? 2 : 4); }
  const void* k_row(int64_t head, int64_t j) const { return k + head * head_stride + j * row_bytes(); }
  const void* v_row(int64_t head, int64_t j) const { return v + head * head_stride + j * row_bytes(); }
};

class KvCache {
 public:
  // Memory is reserved, not touched: pages are committed as positions are written.
  // kv_dim = KV heads x head_dim.
  KvCache(int64_t n_layers, int64_t n_ctx, int64_t kv_dim, int64_t head_dim, KvDtype dtype = KvDtype::F16);

  // Converts n positions of F32 keys and values, k and v (n, kv_dim), into the cache rows of
  // positions pos0..pos0+n-1 of a layer (each head's slice into that head's rows).
  void store(int64_t layer, int64_t pos0, int64_t n, const float* k, const float* v);

  // Positions [0, n_positions) of a layer, for attention. InvalidArgument outside the cache.
  KvLayerView view(int64_t layer, int64_t n_positions) const;

  KvDtype dtype() const { return dtype_; }
  size_t element_size() const { return dtype_ == KvDtype::F16 ? 2 : 4; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t head_dim() const { return head_dim_; }

 private:
  size_t head_bytes() const { return static_cast<size_t>(n_ctx_ * head_dim_) * element_size(); }
  size_t head_offset(int64_t layer, int64_t head) const {
    return static_cast<size_t>(layer * (kv_dim_ / head_dim_) + head) * head_bytes();
  }

  int64_t n_layers_, n_ctx_, kv_dim_, head_dim_;
  KvDtype dtype_;
  std::unique_ptr<uint8_t[]> k_, v_;  // (n_layers, kv_dim / head_dim, n_ctx, head_dim) of dtype_
};

}  // namespace wren

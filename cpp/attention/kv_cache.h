// The key/value cache, paged: a sequence's keys and values live in fixed-size pages of
// kKvPageRows positions taken from a pool the engine's sequences share, so memory grows with the
// positions actually stored (no n_ctx reservation per sequence), pages can be shared between
// sequences with a common prefix (copied on the first write), and layers with a sliding window
// give their pages back once every position in them has left the window.
//
// Inside a page, each KV head's rows are contiguous (head-major), as they were in the flat cache:
// decode attention streams one head's keys as a linear read of page_rows rows at a time
// (position-major rows would make it read head_dim of every kv_dim elements, a strided pattern the
// hardware prefetchers follow poorly).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wren {

enum class KvDtype { F16, F32 };

// "f16" | "f32"; throws InvalidArgument for anything else.
KvDtype parse_kv_dtype(const std::string& name);
const char* kv_dtype_name(KvDtype t);
inline size_t kv_element_size(KvDtype t) { return t == KvDtype::F16 ? 2 : 4; }

// Positions per page. 64 rows of a 64-wide F16 head are 8 KiB of contiguous keys: long enough for
// streaming reads, short enough that a short sequence or a partly shared prefix wastes little.
constexpr int64_t kKvPageRows = 64;

// What a model's cache holds per position: layers, K/V width, element type, and which layers
// attend through a sliding window (those keep only their window's pages).
struct KvLayout {
  int64_t n_layers = 0;
  int64_t kv_dim = 0;    // KV heads x head_dim
  int64_t head_dim = 0;
  KvDtype dtype = KvDtype::F16;
  int64_t window = 0;          // > 0: the sliding layers see only the last `window` positions
  std::vector<bool> sliding;   // (n_layers) which layers slide; empty: none
  int64_t page_rows = kKvPageRows;

  bool is_sliding(int64_t layer) const {
    return window > 0 && !sliding.empty() && sliding[static_cast<size_t>(layer)];
  }
  size_t element_size() const { return kv_element_size(dtype); }
  size_t row_bytes() const { return static_cast<size_t>(head_dim) * element_size(); }
};

// One layer of a sequence's cache as the attention kernels read it. Positions [0, n_positions)
// are readable except those in dropped pages (pages[i] == nullptr, only before a sliding
// window, which the mask never shows). Row j (position j) of KV head h starts at
//   pages[j / page_rows] + k_offset + h * head_stride + (j % page_rows) * row_bytes()
// (values likewise from v_offset): head_dim elements of dtype, contiguous with the rows after it
// up to the end of its page (run_end).
struct KvLayerView {
  const uint8_t* const* pages = nullptr;  // (ceil(n_positions / page_rows)) page base addresses
  size_t k_offset = 0;     // bytes from a page's base to this layer's keys of head 0
  size_t v_offset = 0;     // likewise, values
  size_t head_stride = 0;  // bytes from one head's rows to the next head's inside a page
  int64_t page_rows = kKvPageRows;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t n_positions = 0;
  KvDtype dtype = KvDtype::F16;

  size_t row_bytes() const { return static_cast<size_t>(head_dim) * kv_element_size(dtype); }
  const void* k_row(int64_t head, int64_t j) const { return row(k_offset, head, j); }
  const void* v_row(int64_t head, int64_t j) const { return row(v_offset, head, j); }
  // One past the last position of the contiguous run of rows that starts at j, capped at hi.
  int64_t run_end(int64_t j, int64_t hi) const {
    const int64_t page_end = (j / page_rows + 1) * page_rows;
    return page_end < hi ? page_end : hi;
  }

 private:
  const void* row(size_t offset, int64_t head, int64_t j) const {
    return pages[j / page_rows] + offset + static_cast<size_t>(head) * head_stride +
           static_cast<size_t>(j % page_rows) * row_bytes();
  }
};

// Hands out pages for one layout and counts the bytes they hold. Shared (shared_ptr) by the
// sequences of an engine; a page goes back when its last sequence lets go of it.
class KvPagePool : public std::enable_shared_from_this<KvPagePool> {
 public:
  static std::shared_ptr<KvPagePool> create(KvLayout layout);

  const KvLayout& layout() const { return layout_; }
  // Bytes held by live pages now, and the most ever held at once.
  size_t bytes_in_use() const { return in_use_.load(std::memory_order_relaxed); }
  size_t peak_bytes() const { return peak_.load(std::memory_order_relaxed); }
  size_t page_bytes(int cls) const { return page_bytes_[cls]; }

  // Page classes: 0 holds the layers that see every position, 1 the sliding ones.
  int layer_class(int64_t layer) const { return layout_.is_sliding(layer) ? 1 : 0; }
  int64_t layer_slot(int64_t layer) const { return slot_[static_cast<size_t>(layer)]; }
  // Bytes from a page's base to a layer's keys (its values follow them).
  size_t k_offset(int64_t layer) const;
  size_t v_offset(int64_t layer) const { return k_offset(layer) + kv_block_bytes(); }
  size_t head_stride() const { return static_cast<size_t>(layout_.page_rows) * layout_.row_bytes(); }

  struct Page;
  std::shared_ptr<Page> allocate(int cls);

 private:
  explicit KvPagePool(KvLayout layout);
  size_t kv_block_bytes() const {  // one layer's keys (or values) in a page
    return static_cast<size_t>(layout_.kv_dim / layout_.head_dim) * head_stride();
  }

  KvLayout layout_;
  std::vector<int64_t> slot_;  // (n_layers) index of each layer inside its class's pages
  size_t page_bytes_[2] = {0, 0};
  std::atomic<size_t> in_use_{0}, peak_{0};
};

// Pages are mapped from the operating system one by one and unmapped when released, not taken from
// the heap: a long-running process serving many sequences gets its memory back when they end (heap
// pages of ~1 MB would stay in the allocator's arenas, fragmented).
struct KvPagePool::Page {
  uint8_t* data = nullptr;
  size_t bytes = 0;
  std::shared_ptr<KvPagePool> pool;  // keeps the counters alive while the page is
  Page() = default;
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;
  ~Page();
};

// One sequence's cache: its page tables (one per page class) and how many positions are stored.
// Not thread-safe: one forward pass at a time writes a sequence.
class KvSequence {
 public:
  // n_ctx: the most positions the sequence may hold.
  KvSequence(std::shared_ptr<KvPagePool> pool, int64_t n_ctx);

  int64_t size() const { return size_; }  // positions stored in every layer
  int64_t n_ctx() const { return n_ctx_; }
  const KvLayout& layout() const { return pool_->layout(); }

  // Converts n positions of F32 keys and values k and v (n, kv_dim) into the rows of positions
  // pos0 .. pos0+n-1 of a layer (each head's slice into that head's rows), taking pages as needed
  // and copying a shared page before writing it. pos0 + n <= n_ctx.
  void store(int64_t layer, int64_t pos0, int64_t n, const float* k, const float* v);
  // Copies n rows already in the cache's element type (n, head_dim) into one head's keys (or
  // values) of a layer at positions pos0.. (a saved session coming back). pos0 + n <= n_ctx.
  void write_rows(int64_t layer, int64_t head, int64_t pos0, int64_t n, bool keys, const uint8_t* rows);
  // Positions [0, n_positions) of a layer, for attention. InvalidArgument outside what is stored
  // (or being stored: n_positions may pass size() up to the rows the current forward wrote).
  KvLayerView view(int64_t layer, int64_t n_positions) const;

  // After a forward pass wrote positions [size(), size() + n) in every layer: they count, and
  // sliding-layer pages wholly before the window of the next position are released.
  void advance(int64_t n);
  // Forgets positions >= n (pages past it released); the rows before stay. InvalidArgument when a
  // sliding layer already released part of the window position n would see.
  void truncate(int64_t n);
  // Whether the sequence can continue from position n (n <= size(); sliding windows still held).
  bool can_resume_at(int64_t n) const;

  // Bytes of the pages this sequence holds (shared pages counted in full).
  size_t bytes() const;

  // Shares this sequence's first n positions with dst (dst's own pages are released): dst's
  // tables point at the same pages until one of the two writes to a shared page.
  void share_prefix(KvSequence& dst, int64_t n) const;

 private:
  uint8_t* writable_page(int cls, int64_t index);
  // Calls f(page, p, end) for each page holding part of positions [pos0, pos0 + n) of layer's class,
  // with the page made writable and [p, end) its share of the positions.
  template <typename F>
  void for_each_page(int64_t layer, int64_t pos0, int64_t n, F f) {
    const int cls = pool_->layer_class(layer);
    const int64_t P = layout().page_rows;
    for (int64_t p = pos0, end; p < pos0 + n; p = end) {
      end = std::min((p / P + 1) * P, pos0 + n);
      f(writable_page(cls, p / P), p, end);
    }
  }
  void release_window();

  std::shared_ptr<KvPagePool> pool_;
  int64_t n_ctx_;
  int64_t size_ = 0;
  std::vector<std::shared_ptr<KvPagePool::Page>> pages_[2];  // per class: page i = positions [i*P, (i+1)*P)
  std::vector<const uint8_t*> table_[2];                     // the same pages' base addresses (null: none)
};

}  // namespace wren

#include "attention/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "kernels/kernel_table.h"
#include "util/errors.h"

namespace wren {

KvDtype parse_kv_dtype(const std::string& name) {
  if (name == "f16") return KvDtype::F16;
  if (name == "f32") return KvDtype::F32;
  throw InvalidArgument(str_cat("kv_cache must be 'f16' or 'f32', got '", name, "'"));
}

const char* kv_dtype_name(KvDtype t) { return t == KvDtype::F16 ? "f16" : "f32"; }

KvPagePool::KvPagePool(KvLayout layout) : layout_(std::move(layout)) {
  const KvLayout& L = layout_;
  WREN_CHECK(L.n_layers > 0 && L.head_dim > 0 && L.kv_dim > 0 && L.kv_dim % L.head_dim == 0, InvalidArgument,
             "KV cache: kv_dim ", L.kv_dim, " is not a positive multiple of head_dim ", L.head_dim);
  WREN_CHECK(L.page_rows > 0 && L.window >= 0, InvalidArgument, "KV cache: bad page size or window");
  WREN_CHECK(L.sliding.empty() || static_cast<int64_t>(L.sliding.size()) == L.n_layers, InvalidArgument,
             "KV cache: the sliding-layer list has ", L.sliding.size(), " entries for ", L.n_layers, " layers");
  int64_t count[2] = {0, 0};
  for (int64_t l = 0; l < L.n_layers; ++l) slot_.push_back(count[layer_class(l)]++);
  for (int c = 0; c < 2; ++c) page_bytes_[c] = static_cast<size_t>(count[c]) * 2 * kv_block_bytes();
}

std::shared_ptr<KvPagePool> KvPagePool::create(KvLayout layout) {
  return std::shared_ptr<KvPagePool>(new KvPagePool(std::move(layout)));
}

size_t KvPagePool::k_offset(int64_t layer) const {
  return static_cast<size_t>(slot_[static_cast<size_t>(layer)]) * 2 * kv_block_bytes();
}

std::shared_ptr<KvPagePool::Page> KvPagePool::allocate(int cls) {
  auto page = std::make_shared<Page>();
  // Untouched until rows are written: the OS commits memory as positions fill the page.
  void* mem = mmap(nullptr, page_bytes_[cls], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  page->data = static_cast<uint8_t*>(mem);
  page->bytes = page_bytes_[cls];
  page->pool = shared_from_this();
  const size_t now = in_use_.fetch_add(page->bytes, std::memory_order_relaxed) + page->bytes;
  size_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return page;
}

KvPagePool::Page::~Page() {
  if (data) munmap(data, bytes);
  if (pool) pool->in_use_.fetch_sub(bytes, std::memory_order_relaxed);
}

KvSequence::KvSequence(std::shared_ptr<KvPagePool> pool, int64_t n_ctx) : pool_(std::move(pool)), n_ctx_(n_ctx) {
  WREN_CHECK(n_ctx_ > 0, InvalidArgument, "KV cache: n_ctx must be positive, got ", n_ctx_);
}

uint8_t* KvSequence::writable_page(int cls, int64_t index) {
  auto& pages = pages_[cls];
  auto& table = table_[cls];
  const size_t i = static_cast<size_t>(index);
  if (pages.size() <= i) {
    pages.resize(i + 1);
    table.resize(i + 1, nullptr);
  }
  if (!pages[i]) {
    pages[i] = pool_->allocate(cls);
  } else if (pages[i].use_count() > 1) {  // shared with another sequence: copy before writing
    auto copy = pool_->allocate(cls);
    std::memcpy(copy->data, pages[i]->data, copy->bytes);
    pages[i] = std::move(copy);
  }
  table[i] = pages[i]->data;
  return pages[i]->data;
}

void KvSequence::store(int64_t layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  const KvLayout& L = layout();
  WREN_CHECK(layer >= 0 && layer < L.n_layers && pos0 >= 0 && n >= 0 && pos0 + n <= n_ctx_, InvalidArgument,
             "KV cache store of positions [", pos0, ", ", pos0 + n, ") in layer ", layer, " is outside (",
             L.n_layers, " layers, n_ctx=", n_ctx_, ")");
  const size_t row = L.row_bytes(), k_off = pool_->k_offset(layer), v_off = pool_->v_offset(layer);
  const size_t head_stride = pool_->head_stride();
  const int64_t n_heads = L.kv_dim / L.head_dim, P = L.page_rows;
  const ToF16Fn to_f16 = active_kernels().f32_to_f16;
  for_each_page(layer, pos0, n, [&](uint8_t* page, int64_t p, int64_t end) {
    for (int64_t h = 0; h < n_heads; ++h) {
      uint8_t* kh = page + k_off + h * head_stride;  // (P, head_dim) of this head
      uint8_t* vh = page + v_off + h * head_stride;
      for (int64_t j = p; j < end; ++j) {
        const float* kt = k + (j - pos0) * L.kv_dim + h * L.head_dim;
        const float* vt = v + (j - pos0) * L.kv_dim + h * L.head_dim;
        uint8_t* kd = kh + static_cast<size_t>(j % P) * row;
        uint8_t* vd = vh + static_cast<size_t>(j % P) * row;
        if (L.dtype == KvDtype::F32) {
          std::memcpy(kd, kt, row);
          std::memcpy(vd, vt, row);
        } else {
          to_f16(kt, reinterpret_cast<uint16_t*>(kd), L.head_dim);
          to_f16(vt, reinterpret_cast<uint16_t*>(vd), L.head_dim);
        }
      }
    }
  });
}

void KvSequence::write_rows(int64_t layer, int64_t head, int64_t pos0, int64_t n, bool keys, const uint8_t* rows) {
  const KvLayout& L = layout();
  WREN_CHECK(layer >= 0 && layer < L.n_layers && head >= 0 && head < L.kv_dim / L.head_dim && pos0 >= 0 && n >= 0 &&
                 pos0 + n <= n_ctx_, InvalidArgument, "KV cache: rows [", pos0, ", ", pos0 + n, ") of layer ", layer,
             " head ", head, " are outside the cache");
  const size_t row = L.row_bytes();
  const size_t offset = (keys ? pool_->k_offset(layer) : pool_->v_offset(layer)) + head * pool_->head_stride();
  for_each_page(layer, pos0, n, [&](uint8_t* page, int64_t p, int64_t end) {
    std::memcpy(page + offset + static_cast<size_t>(p % L.page_rows) * row, rows + (p - pos0) * row,
                static_cast<size_t>(end - p) * row);
  });
}

KvLayerView KvSequence::view(int64_t layer, int64_t n_positions) const {
  const KvLayout& L = layout();
  const int cls = layer >= 0 && layer < L.n_layers ? pool_->layer_class(layer) : 0;
  const int64_t have = static_cast<int64_t>(table_[cls].size()) * L.page_rows;
  WREN_CHECK(layer >= 0 && layer < L.n_layers && n_positions >= 0 && n_positions <= std::min(have, n_ctx_),
             InvalidArgument, "KV cache view of positions [0, ", n_positions, ") in layer ", layer, " is outside (",
             L.n_layers, " layers, ", std::min(have, n_ctx_), " positions written)");
  KvLayerView v;
  v.pages = table_[cls].data();
  v.k_offset = pool_->k_offset(layer);
  v.v_offset = pool_->v_offset(layer);
  v.head_stride = pool_->head_stride();
  v.page_rows = L.page_rows;
  v.n_kv_heads = L.kv_dim / L.head_dim;
  v.head_dim = L.head_dim;
  v.n_positions = n_positions;
  v.dtype = L.dtype;
  return v;
}

void KvSequence::release_window() {
  const KvLayout& L = layout();
  if (L.window <= 0 || pages_[1].empty()) return;
  // The next position, size_, sees keys from size_ - window + 1 on: pages wholly before go.
  const int64_t first_seen = size_ - L.window + 1;
  for (int64_t i = 0; (i + 1) * L.page_rows <= first_seen && i < static_cast<int64_t>(pages_[1].size()); ++i) {
    pages_[1][static_cast<size_t>(i)].reset();
    table_[1][static_cast<size_t>(i)] = nullptr;
  }
}

void KvSequence::advance(int64_t n) {
  WREN_CHECK(n >= 0 && size_ + n <= n_ctx_, InvalidArgument, "KV cache: advancing ", size_, " positions by ", n,
             " passes n_ctx=", n_ctx_);
  size_ += n;
  release_window();
}

bool KvSequence::can_resume_at(int64_t n) const {
  if (n < 0 || n > size_) return false;
  const KvLayout& L = layout();
  if (L.window <= 0 || pages_[1].empty() || n == 0) return true;
  // The sliding layers must still hold the window that position n will see.
  const int64_t lo = std::max<int64_t>(0, n - L.window + 1);
  for (int64_t i = lo / L.page_rows; i <= (n - 1) / L.page_rows; ++i)
    if (i >= static_cast<int64_t>(table_[1].size()) || !table_[1][static_cast<size_t>(i)]) return false;
  return true;
}

void KvSequence::truncate(int64_t n) {
  WREN_CHECK(n >= 0 && n <= size_, InvalidArgument, "KV cache: cannot truncate ", size_, " positions to ", n);
  WREN_CHECK(can_resume_at(n), InvalidArgument, "KV cache: cannot rewind to position ", n,
             ": its sliding window was already released");
  const KvLayout& L = layout();
  const size_t keep = static_cast<size_t>((n + L.page_rows - 1) / L.page_rows);
  for (int c = 0; c < 2; ++c)
    if (pages_[c].size() > keep) {
      pages_[c].resize(keep);
      table_[c].resize(keep);
    }
  size_ = n;
}

size_t KvSequence::bytes() const {
  size_t total = 0;
  for (const auto& pages : pages_)
    for (const auto& p : pages)
      if (p) total += p->bytes;
  return total;
}

void KvSequence::share_prefix(KvSequence& dst, int64_t n) const {
  WREN_CHECK(dst.pool_ == pool_ && n >= 0 && n <= size_ && n <= dst.n_ctx_, InvalidArgument,
             "KV cache: cannot share ", n, " of ", size_, " positions");
  WREN_CHECK(can_resume_at(n), InvalidArgument, "KV cache: cannot share the first ", n,
             " positions: their sliding window was already released");
  const size_t keep = static_cast<size_t>((n + layout().page_rows - 1) / layout().page_rows);
  for (int c = 0; c < 2; ++c) {
    const size_t k = std::min(keep, pages_[c].size());
    dst.pages_[c].assign(pages_[c].begin(), pages_[c].begin() + static_cast<std::ptrdiff_t>(k));
    dst.table_[c].assign(table_[c].begin(), table_[c].begin() + static_cast<std::ptrdiff_t>(k));
  }
  dst.size_ = n;
}

}  // namespace wren

#include "models/weights.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <new>
#include <stdexcept>

#include "format/lora_adapter.h"
#include "tensor/packed.h"
#include "tensor/quant.h"
#include "util/errors.h"

namespace wren {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kChunk = size_t(64) << 20;  // address space reserved per mapping; pages commit on use
}  // namespace

WeightArena::~WeightArena() {
  for (const Chunk& c : chunks_) ::munmap(c.base, c.size);
}

uint8_t* WeightArena::alloc(size_t bytes) {
  const size_t need = (bytes + 63) / 64 * 64;
  if (chunks_.empty() || used_ + need > chunks_.back().size) {
    const size_t size = std::max(kChunk, (need + kHugePage - 1) / kHugePage * kHugePage);
    // Over-reserve by one huge page so the chunk can start on a huge-page boundary.
    void* p = ::mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    auto* raw = static_cast<uint8_t*>(p);
    auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) / kHugePage * kHugePage);
    if (base > raw) ::munmap(raw, static_cast<size_t>(base - raw));
    const size_t tail = static_cast<size_t>(raw + size + kHugePage - (base + size));
    if (tail) ::munmap(base + size, tail);
#ifdef MADV_HUGEPAGE
    ::madvise(base, size, MADV_HUGEPAGE);  // advisory: without THP, ordinary pages
#endif
    chunks_.push_back({base, size});
    used_ = 0;
  }
  uint8_t* out = chunks_.back().base + used_;
  used_ += need;
  used_total_ += need;
  return out;
}

void WeightArena::defer_pack(const PackedMatrix& layout, uint8_t* dst, const uint8_t* src, size_t src_stride,
                             const TensorSource* release_from) {
  jobs_.push_back({layout, dst, src, src_stride, release_from});
}

uint64_t WeightArena::pending_bytes() const {
  uint64_t total = 0;
  for (const PackJob& job : jobs_) total += packed_bytes(job.layout);
  return total;
}

void WeightArena::pack_pending(ThreadPool* pool, const ProgressFn& progress) {
  if (jobs_.empty()) return;
  const uint64_t total = pending_bytes();
  // Slices of whole matrices, each about 1% of the bytes: a progress call (and a chance to stop)
  // between two slices, never inside a matrix, so each matrix is either packed or still pending.
  const uint64_t slice_bytes = progress ? std::max<uint64_t>(total / 100, 1) : total;
  uint64_t done = 0;
  if (progress) progress(0, total);
  size_t next = 0;  // first job not packed yet
  while (next < jobs_.size()) {
    size_t end = next;
    uint64_t bytes = 0;
    while (end < jobs_.size() && (end == next || bytes < slice_bytes)) bytes += packed_bytes(jobs_[end++].layout);
    pack_jobs(pool, next, end);
    next = end;
    done += bytes;
    if (progress && next < jobs_.size()) {
      try {
        progress(done, total);
      } catch (...) {
        jobs_.erase(jobs_.begin(), jobs_.begin() + static_cast<std::ptrdiff_t>(next));  // the rest stay pending
        throw;
      }
    }
  }
  jobs_.clear();
  jobs_.shrink_to_fit();
  if (progress) progress(total, total);
}

void WeightArena::pack_jobs(ThreadPool* pool, size_t first, size_t last) {
  constexpr int64_t kGroupsPerTask = 8;  // 128 rows: small matrices still split across threads
  std::vector<int64_t> first_task(last - first + 1, 0);  // task offset of each job
  for (size_t j = first; j < last; ++j)
    first_task[j - first + 1] = first_task[j - first] + (jobs_[j].layout.n_groups + kGroupsPerTask - 1) / kGroupsPerTask;
  auto pack = [&](int64_t task, int) {
    const size_t k = static_cast<size_t>(std::upper_bound(first_task.begin(), first_task.end(), task) -
                                         first_task.begin() - 1);
    const PackJob& job = jobs_[first + k];
    const PackedMatrix& p = job.layout;
    const int64_t g0 = (task - first_task[k]) * kGroupsPerTask, g1 = std::min(p.n_groups, g0 + kGroupsPerTask);
    pack_groups(p, job.src, job.src_stride, g0, g1, job.dst);
    if (job.release_from) {
      const int64_t r0 = g0 * kPackRows, r1 = std::min(p.rows, g1 * kPackRows);
      job.release_from->release(job.src + static_cast<size_t>(r0) * job.src_stride,
                                static_cast<uint64_t>(r1 - r0) * job.src_stride);
    }
  };
  if (pool)
    pool->parallel_for(first_task.back(), pack);
  else
    for (int64_t task = 0; task < first_task.back(); ++task) pack(task, 0);
}

const GgufTensor& WeightBinder::get(const std::string& name) const {
  const GgufTensor* t = f_.find_tensor(name);
  if (!t) f_.fail("tensor '" + name + "'", "required tensor is missing");
  if (!dtype_info(t->dtype).supported)
    throw UnsupportedError(str_cat(f_.path(), ": tensor '", name, "' has type ", dtype_name(t->dtype),
                                   ", which wrenlm does not support (supported: ", supported_dtypes(), ")"));
  return *t;
}

QuantMatrix WeightBinder::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  const GgufTensor& t = get(name);
  if (t.shape.size() != 2 || t.shape[0] != static_cast<uint64_t>(cols) || t.shape[1] != static_cast<uint64_t>(rows))
    f_.fail("tensor '" + name + "'", str_cat("expected shape [", cols, ", ", rows, "], found ", t.shape_str()));
  return bind(t, 0, rows, cols, true);
}

QuantMatrix WeightBinder::matrix_rows(const std::string& name, int64_t total_rows, int64_t row0, int64_t rows,
                                      int64_t cols) const {
  const GgufTensor& t = get(name);
  if (t.shape.size() != 2 || t.shape[0] != static_cast<uint64_t>(cols) ||
      t.shape[1] != static_cast<uint64_t>(total_rows))
    f_.fail("tensor '" + name + "'", str_cat("expected shape [", cols, ", ", total_rows, "], found ", t.shape_str()));
  WREN_CHECK(row0 >= 0 && rows > 0 && row0 + rows <= total_rows, std::logic_error, name, ": rows [", row0, ", ",
             row0 + rows, ") outside ", total_rows);
  return bind(t, row0, rows, cols, false);
}

QuantMatrix WeightBinder::expert(const std::string& stacked, const std::string& per_expert, int64_t e,
                                 int64_t n_experts, int64_t rows, int64_t cols) const {
  WREN_CHECK(e >= 0 && e < n_experts, std::logic_error, stacked, ": expert ", e, " of ", n_experts);
  if (!has(stacked)) {
    std::string name = per_expert;
    const size_t at = name.find("{e}");
    WREN_CHECK(at != std::string::npos, std::logic_error, per_expert, ": no {e} slot");
    return matrix(name.replace(at, 3, std::to_string(e)), rows, cols);
  }
  const GgufTensor& t = get(stacked);
  if (t.shape.size() != 3 || t.shape[0] != static_cast<uint64_t>(cols) || t.shape[1] != static_cast<uint64_t>(rows) ||
      t.shape[2] != static_cast<uint64_t>(n_experts))
    f_.fail("tensor '" + stacked + "'",
            str_cat("expected shape [", cols, ", ", rows, ", ", n_experts, "], found ", t.shape_str()));
  return bind(t, e * rows, rows, cols, false);
}

QuantMatrix WeightBinder::bind(const GgufTensor& t, int64_t row0, int64_t rows, int64_t cols, bool release,
                               bool pack) const {
  QuantMatrix m;
  m.dtype = t.dtype;
  m.rows = rows;
  m.cols = cols;
  m.row_stride = row_bytes(t.dtype, static_cast<size_t>(cols));
  const uint8_t* data = t.data + static_cast<size_t>(row0) * m.row_stride;
  m.data = data;
  m.low_rank = low_rank_terms(t, row0, rows, cols);
  if (pack && arena_ && packable(t.dtype) && cols % pack_format(t.dtype).tile_cols == 0) {
    m.packed = packed_layout(t.dtype, rows, cols);
    uint8_t* dst = arena_->alloc(packed_bytes(m.packed));
    m.packed.data = dst;
    arena_->defer_pack(m.packed, dst, data, m.row_stride, release ? &f_ : nullptr);
    m.data = nullptr;  // the packed copy is the only one used from here on
  }
  return m;
}

std::vector<LowRankTerm> WeightBinder::low_rank_terms(const GgufTensor& t, int64_t row0, int64_t rows,
                                                      int64_t cols) const {
  std::vector<LowRankTerm> terms;
  for (const LoraUpdate* u : f_.lora_updates(t.name)) {
    if (t.shape.size() != 2)
      throw UnsupportedError(str_cat(f_.path(), ": tensor '", t.name, "': LoRA updates of a ", t.shape.size(),
                                     "-D tensor (stacked experts) are not supported"));
    WREN_CHECK(u->cols == cols && row0 >= 0 && row0 + rows <= u->rows, std::logic_error, "LoRA update of '", t.name,
               "' (", u->rows, " x ", u->cols, ") does not cover rows [", row0, ", ", row0 + rows, ") of ", cols,
               " columns");
    // B's rows row0.. belong to this matrix: one part of a fused tensor, or all of it.
    terms.push_back({u->a.data(), u->b.data() + row0 * u->rank, u->rank, u->scale});
  }
  return terms;
}

QuantMatrix WeightBinder::token_embedding(int64_t dim, bool output_head) const {
  const GgufTensor& t = get("token_embd.weight");
  if (t.shape.size() != 2 || t.shape[0] != static_cast<uint64_t>(dim))
    f_.fail("tensor 'token_embd.weight'", str_cat("expected shape [", dim, ", n_vocab], found ", t.shape_str()));
  return bind(t, 0, static_cast<int64_t>(t.shape[1]), dim, true, output_head);
}

std::vector<float> WeightBinder::vector(const std::string& name, int64_t n) const {
  const GgufTensor& t = get(name);
  if (t.n_elements() != static_cast<uint64_t>(n))
    f_.fail("tensor '" + name + "'", str_cat("expected ", n, " elements, found ", t.shape_str()));
  std::vector<float> v(static_cast<size_t>(n));
  dequantize_row(t.dtype, t.data, v.data(), static_cast<size_t>(n));
  return v;
}

}  // namespace wren

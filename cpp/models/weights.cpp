#include "models/weights.h"

#include <algorithm>
#include <new>

#include "tensor/packed.h"
#include "tensor/quant.h"
#include "util/errors.h"

namespace wren {

uint8_t* WeightArena::alloc(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
  if (!p) throw std::bad_alloc();
  buffers_.emplace_back(p);
  bytes_ += rounded;
  return p;
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
  QuantMatrix m;
  m.dtype = t.dtype;
  m.rows = rows;
  m.cols = cols;
  m.data = t.data;
  m.row_stride = row_bytes(t.dtype, static_cast<size_t>(cols));
  if (arena_ && packable(t.dtype) && cols % kQK == 0) {
    m.packed = packed_layout(t.dtype, rows, cols);
    uint8_t* dst = arena_->alloc(packed_bytes(m.packed));
    constexpr int64_t kGroupsPerTask = 64;
    const int64_t n_tasks = (m.packed.n_groups + kGroupsPerTask - 1) / kGroupsPerTask;
    auto pack = [&](int64_t task, int) {
      const int64_t g0 = task * kGroupsPerTask;
      pack_groups(m.packed, t.data, m.row_stride, g0, std::min(m.packed.n_groups, g0 + kGroupsPerTask), dst);
    };
    if (pool_)
      pool_->parallel_for(n_tasks, pack);
    else
      for (int64_t task = 0; task < n_tasks; ++task) pack(task, 0);
    m.packed.data = dst;
    m.data = nullptr;  // the packed copy is the only one used from here on
    f_.release(t);
  }
  return m;
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

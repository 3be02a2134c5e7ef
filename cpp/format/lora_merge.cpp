#include "format/lora_merge.h"

#include <algorithm>

#include "tensor/quant.h"
#include "util/blas.h"
#include "util/errors.h"

namespace wren {

void add_lora_rows(float* w, int64_t row0, int64_t n_rows, int64_t cols, const std::vector<const LoraUpdate*>& updates) {
  for (const LoraUpdate* u : updates) {
    WREN_CHECK(u->cols == cols && row0 >= 0 && row0 + n_rows <= u->rows, InvalidArgument, "LoRA update of '",
               u->target, "' (", u->rows, " x ", u->cols, ") does not cover rows ", row0, "..", row0 + n_rows,
               " of ", cols, " columns");
    // w (n_rows x cols) += s * B_rows (n_rows x rank) * A (rank x cols)
    blas::sgemm(false, static_cast<int>(n_rows), static_cast<int>(cols), static_cast<int>(u->rank), u->scale,
                u->b.data() + row0 * u->rank, static_cast<int>(u->rank), u->a.data(), static_cast<int>(cols), 1.0f, w,
                static_cast<int>(cols));
  }
}

std::vector<float> merge_lora_matrix(const GgufTensor& t, const std::vector<const LoraUpdate*>& updates,
                                     ThreadPool* pool) {
  WREN_CHECK(t.shape.size() == 2, InvalidArgument, "LoRA merge: '", t.name, "' is not a matrix: ", t.shape_str());
  const int64_t rows = static_cast<int64_t>(t.dim(1)), cols = static_cast<int64_t>(t.dim(0));
  std::vector<float> w(static_cast<size_t>(rows * cols));  // (rows, cols)
  const size_t stride = row_bytes(t.dtype, static_cast<size_t>(cols));
  constexpr int64_t kRowsPerTask = 64;
  const int64_t n_tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  auto task = [&](int64_t k, int) {
    const int64_t r0 = k * kRowsPerTask, n = std::min(kRowsPerTask, rows - r0);
    for (int64_t r = r0; r < r0 + n; ++r)
      dequantize_row(t.dtype, t.data + static_cast<size_t>(r) * stride, &w[static_cast<size_t>(r * cols)],
                     static_cast<size_t>(cols));
    add_lora_rows(&w[static_cast<size_t>(r0 * cols)], r0, n, cols, updates);
  };
  if (pool) {
    pool->parallel_for(n_tasks, task);
  } else {
    for (int64_t k = 0; k < n_tasks; ++k) task(k, 0);
  }
  return w;
}

}  // namespace wren

#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "kernels/kernel_table.h"
#include "tensor/decode_i8.h"
#include "tensor/quant.h"
#include "util/blas.h"
#include "util/errors.h"

namespace wren {

MatmulScratch::MatmulScratch(int n_threads, int64_t max_cols, int64_t max_batch)
    : max_cols_(max_cols),
      max_batch_(max_batch),
      act_stride_(static_cast<size_t>((max_cols + kQK - 1) / kQK)),
      tile_stride_(static_cast<size_t>(kTileRows * max_cols)),
      act_(new ActQ8[act_stride_ * static_cast<size_t>(max_batch)]),
      tile_(new float[tile_stride_ * static_cast<size_t>(n_threads)]) {}

float* MatmulScratch::low_rank(int64_t n_floats) {
  if (low_rank_.size() < static_cast<size_t>(n_floats)) low_rank_.resize(static_cast<size_t>(n_floats));
  return low_rank_.data();
}

namespace {

// Rows are handed to threads in chunks; small enough to balance, large enough to amortize.
constexpr int64_t kRowsPerTask = 16;
// Packed products: a task is a few groups of 16 rows times a run of tokens. Decode uses small
// tasks so both threads finish together; prefill keeps a task's activations in cache.
constexpr int64_t kDecodeGroupsPerTask = 2;
constexpr int64_t kPrefillGroupsPerTask = 4;
constexpr int64_t kPrefillTokensPerTask = 64;
// F16 products: a task is a run of weight rows times up to 64 tokens (a 512 KB activation slice at
// 2048 columns, kept in L2 while the rows stream past). Few tokens: short row runs, to balance.
constexpr int64_t kF16TokensPerTask = 64;
// Codebook formats (tensor/decode_i8.h): rows are decoded to int8 and multiplied with 8-bit
// activations. Without a KernelTable::gemm_i8_rows, only up to kI8MaxTokens tokens: more, and tiles
// dequantized for sgemm cost less per token. With it, from kI8RowsMinTokens tokens on, a group of
// rows decoded together serves every token (dot_i8 row by row below that).
constexpr int64_t kI8MaxTokens = 16;
constexpr int64_t kI8RowsMinTokens = 5;  // fewer: dot_i8 is as fast (measured crossover at 4-5 tokens)
// Low-rank terms (kernels/low_rank.h) of products with up to this many tokens run inside the
// product's own jobs, split like its rows; more, and they run after it, over runs of tokens.
constexpr int64_t kSplitLowRankMaxTokens = 16;

// The low-rank terms of up to four products of one input x (n, cols), split into the product's
// jobs: h_tasks() tasks of h = x A^T to run beside (before) the row tasks, then add_rows() in each
// row task. Empty when no product has terms or n is too large (then add_low_rank_after runs).
class SplitLowRank {
 public:
  // ws: count (<= 4) matrices of equal cols.
  SplitLowRank(const QuantMatrix* const* ws, int count, int64_t n, MatmulScratch& s) : n_(n) {
    if (n > kSplitLowRankMaxTokens) return;
    int64_t floats = 0;
    for (int k = 0; k < count; ++k) floats += n * low_rank_width(ws[k]->low_rank);
    if (floats == 0) return;
    float* h = s.low_rank(floats);
    for (int k = 0; k < count; ++k) {
      const QuantMatrix* w = ws[k];
      ws_[count_] = w;
      h_[count_] = h;
      h += n * low_rank_width(w->low_rank);
      first_[count_ + 1] = first_[count_] + low_rank_h_tasks(w->low_rank);
      ++count_;
    }
  }
  bool active() const { return count_ > 0; }
  int64_t h_tasks() const { return first_[count_]; }
  void h_task(int64_t task, const float* x) const {
    int k = 0;
    while (task >= first_[k + 1]) ++k;
    low_rank_h_task(ws_[k]->low_rank, task - first_[k], x, n_, ws_[k]->cols, h_[k]);
  }
  // Rows [r0, r1) and tokens [t0, t0 + nt) of product k (its output y, rows apart).
  void add_rows(int k, int64_t r0, int64_t r1, int64_t t0, int64_t nt, float* y) const {
    if (count_ > 0 && !ws_[k]->low_rank.empty())
      add_low_rank_rows(ws_[k]->low_rank, r0, r1, h_[k], t0, nt, y, ws_[k]->rows);
  }

 private:
  int64_t n_;
  int count_ = 0;
  const QuantMatrix* ws_[4] = {};
  float* h_[4] = {};
  int64_t first_[5] = {};
};

// y (n x w.rows) += w's low-rank terms of x (n x w.cols), after the product, unless split already did.
void add_low_rank_after(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool,
                        MatmulScratch& s, const SplitLowRank* split = nullptr) {
  if (w.low_rank.empty() || (split && split->active())) return;
  add_low_rank(w.low_rank, w.rows, w.cols, x, n, y, s.low_rank(n * low_rank_width(w.low_rank)), pool);
}

// Products of packed matrices with one input x (n, cols): x is quantized to 8-bit blocks once, then
// one parallel job covers (groups of rows) x (runs of tokens) of every matrix.
void matmul_packed(std::initializer_list<std::pair<const QuantMatrix*, float*>> products, const float* x, int64_t n,
                   ThreadPool& pool, MatmulScratch& s) {
  const int64_t cols = products.begin()->first->cols;
  const GemmPackedFn gemm = active_kernels().gemm_packed;
  const QuantizeActFn quantize = active_kernels().quantize_act;
  const int64_t xs = s.act_stride();
  const QuantMatrix* ws[4] = {};
  for (size_t k = 0; k < products.size(); ++k) ws[k] = products.begin()[k].first;
  const SplitLowRank lr(ws, static_cast<int>(products.size()), n, s);
  pool.parallel_for(n + lr.h_tasks(), [&](int64_t t, int) {
    if (t < n)
      quantize(x + t * cols, s.act(t), cols);
    else
      lr.h_task(t - n, x);
  });
  const int64_t gpt = n == 1 ? kDecodeGroupsPerTask : kPrefillGroupsPerTask;
  const int64_t token_tasks = (n + kPrefillTokensPerTask - 1) / kPrefillTokensPerTask;
  int64_t first_task[4] = {}, n_tasks = 0, i = 0;  // task offset of each product (at most 4)
  for (const auto& [w, y] : products) {
    first_task[i++] = n_tasks;
    n_tasks += (w->packed.n_groups + gpt - 1) / gpt * token_tasks;
  }
  pool.parallel_for(n_tasks, [&](int64_t task, int) {
    int64_t k = 0;
    while (k + 1 < static_cast<int64_t>(products.size()) && task >= first_task[k + 1]) ++k;
    const auto& [w, y] = products.begin()[k];
    const PackedMatrix& p = w->packed;
    const int64_t local = task - first_task[k], group_tasks = (p.n_groups + gpt - 1) / gpt;
    const int64_t g0 = local % group_tasks * gpt, g1 = std::min(p.n_groups, g0 + gpt);
    const int64_t t0 = local / group_tasks * kPrefillTokensPerTask, nt = std::min(kPrefillTokensPerTask, n - t0);
    gemm(p, g0, g1, s.act(t0), xs, nt, y + t0 * w->rows, w->rows);
    lr.add_rows(static_cast<int>(k), g0 * kPackRows, std::min(w->rows, g1 * kPackRows), t0, nt, y);
  });
  for (const auto& [w, y] : products) add_low_rank_after(*w, x, n, y, pool, s, &lr);
}

void matvec(const QuantMatrix& w, const float* x, float* y, ThreadPool& pool, MatmulScratch& s) {
  const KernelTable& k = active_kernels();
  const DotF32Fn f = w.dtype == DType::F32 ? k.dot_f32 : w.dtype == DType::F16 ? k.dot_f16 : nullptr;
  const QuantMatrix* self = &w;
  const SplitLowRank lr(&self, 1, 1, s);
  if (lr.active()) pool.parallel_for(lr.h_tasks(), [&](int64_t t, int) { lr.h_task(t, x); });
  const int64_t n_tasks = (w.rows + kRowsPerTask - 1) / kRowsPerTask;
  pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
    float* buf = s.tile(thread);
    const int64_t end = std::min(w.rows, (task + 1) * kRowsPerTask);
    for (int64_t r = task * kRowsPerTask; r < end; ++r) {
      if (f) {
        y[r] = f(w.row(r), x, w.cols);
      } else {  // other types: dequantize the row, then a float dot
        dequantize_row(w.dtype, w.row(r), buf, static_cast<size_t>(w.cols));
        y[r] = k.dot_f32(buf, x, w.cols);
      }
    }
    lr.add_rows(0, task * kRowsPerTask, end, 0, 1, y);
  });
}

// F16 weights straight from their rows (no F32 copy): tasks are row runs x token runs, row-major
// so that a task's rows stay in cache over the token runs that follow it.
void matmul_f16(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, MatmulScratch& s) {
  const GemmF16Fn gemm = active_kernels().gemm_f16;
  const auto* rows = reinterpret_cast<const uint16_t*>(w.row(0));
  const int64_t rows_per_task = n <= 16 ? kRowsPerTask : 4 * kRowsPerTask;
  const int64_t row_tasks = (w.rows + rows_per_task - 1) / rows_per_task;
  const int64_t token_tasks = (n + kF16TokensPerTask - 1) / kF16TokensPerTask;
  pool.parallel_for(row_tasks * token_tasks, [&](int64_t task, int) {
    const int64_t r0 = task / token_tasks * rows_per_task, r1 = std::min(w.rows, r0 + rows_per_task);
    const int64_t t0 = task % token_tasks * kF16TokensPerTask, nt = std::min(kF16TokensPerTask, n - t0);
    gemm(rows, w.cols, r0, r1, x + t0 * w.cols, nt, y + t0 * w.rows, w.rows);
  });
  add_low_rank_after(w, x, n, y, pool, s);
}

}  // namespace

void i8_rows_times_tokens(const KernelTable& k, const QuantMatrix& w, int64_t r0, int64_t count, const ActQ8* x,
                          int64_t x_stride, int64_t n, float* y, int64_t ldy, void* scratch) {
  const DecodeI8Fn decode = decode_i8_fn(w.dtype);
  const int64_t cols = w.cols;
  float* scale = static_cast<float*>(scratch);                              // (count, cols / 16)
  auto* q = reinterpret_cast<int8_t*>(scale + kI8GroupRows * cols / 16);    // (count, cols)
  if (k.gemm_i8_rows && n >= kI8RowsMinTokens) {
    for (int64_t i = 0; i < count; ++i)
      decode(w.row(r0 + i), q + i * cols, scale + i * (cols / 16), static_cast<size_t>(cols));
    if (count < kI8GroupRows) {  // the kernel reads whole groups: absent rows are zero
      std::memset(q + count * cols, 0, static_cast<size_t>((kI8GroupRows - count) * cols));
      std::fill(scale + count * (cols / 16), scale + kI8GroupRows * (cols / 16), 0.f);
    }
    const auto work = (reinterpret_cast<uintptr_t>(q + kI8GroupRows * cols) + 63) & ~uintptr_t{63};
    k.gemm_i8_rows(q, scale, count, cols, x, x_stride, n, y, ldy, reinterpret_cast<void*>(work));
    return;
  }
  if (const DotRowFn fused = k.dot_row(w.dtype)) {
    for (int64_t i = 0; i < count; ++i) fused(w.row(r0 + i), cols, x, x_stride, n, y + i, ldy);
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    decode(w.row(r0 + i), q, scale, static_cast<size_t>(cols));
    k.dot_i8(q, scale, cols, x, x_stride, n, y + i, ldy);
  }
}

namespace {

// Codebook-format rows (tensor/decode_i8.h) times tokens: x is quantized to 8-bit blocks once; each
// task decodes its 16 rows to int8 in its thread's scratch (i8_rows_times_tokens) for every token.
void matmul_i8(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, MatmulScratch& s) {
  const KernelTable& k = active_kernels();
  const int64_t cols = w.cols;
  const QuantMatrix* self = &w;
  const SplitLowRank lr(&self, 1, n, s);
  pool.parallel_for(n + lr.h_tasks(), [&](int64_t t, int) {
    if (t < n)
      k.quantize_act(x + t * cols, s.act(t), cols);
    else
      lr.h_task(t - n, x);
  });
  const int64_t n_tasks = (w.rows + kI8GroupRows - 1) / kI8GroupRows;
  pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
    const int64_t r0 = task * kI8GroupRows, end = std::min(w.rows, r0 + kI8GroupRows);
    i8_rows_times_tokens(k, w, r0, end - r0, s.act(0), s.act_stride(), n, y + r0, w.rows, s.tile(thread));
    lr.add_rows(0, r0, end, 0, n, y);
  });
  add_low_rank_after(w, x, n, y, pool, s, &lr);
}

// Weight rows per F32 tile. OpenBLAS's sgemm (0.3.x, Haswell kernels, one thread) is about three
// times slower when the product has fewer than ~384 columns (here: weight rows): measured on a
// 512 x 2048 activation block, 11 GFLOP/s at 64-320 rows per tile against 31-35 at 384 and more,
// whatever the token count. So tiles are as wide as the scratch allows (kTileRows), split evenly
// between the threads, and never narrower than that bound unless the matrix itself is.
int64_t tile_rows(int64_t rows, int n_threads) {
  constexpr int64_t kFastRows = 384;
  const int64_t max = MatmulScratch::kTileRows;
  int64_t tiles = (rows + max - 1) / max;
  tiles = (tiles + n_threads - 1) / n_threads * n_threads;
  const int64_t tr = ((rows + tiles - 1) / tiles + 15) / 16 * 16;
  return tr >= kFastRows ? std::min(tr, max) : std::min(rows, max);
}

void matmul_tiled(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool,
                  MatmulScratch& s) {
  const int64_t tr = tile_rows(w.rows, pool.size());
  const int64_t n_tiles = (w.rows + tr - 1) / tr;
  std::atomic<bool> stop{false};
  pool.parallel_for(n_tiles, [&](int64_t t, int thread) {
    if (stop.load(std::memory_order_relaxed)) return;
    if (thread == 0 && s.cancel && *s.cancel && (*s.cancel)()) {  // the caller's thread only
      stop.store(true, std::memory_order_relaxed);
      return;
    }
    const int64_t r0 = t * tr, nr = std::min(tr, w.rows - r0);
    const float* tile;
    if (w.dtype == DType::F32 && !w.is_packed()) {
      tile = reinterpret_cast<const float*>(w.row(r0));
    } else {
      float* buf = s.tile(thread);  // (nr, cols)
      if (w.is_packed()) {
        dequantize_packed_rows(w.packed, r0, nr, buf);
      } else {
        for (int64_t r = 0; r < nr; ++r)
          dequantize_row(w.dtype, w.row(r0 + r), buf + r * w.cols, static_cast<size_t>(w.cols));
      }
      tile = buf;
    }
    // y[:, r0:r0+nr] (n x nr) = x (n x cols) * tile^T
    blas::sgemm_nt(static_cast<int>(n), static_cast<int>(nr), static_cast<int>(w.cols), x,
                   static_cast<int>(w.cols), tile, static_cast<int>(w.cols), y + r0, static_cast<int>(w.rows));
  });
  if (stop.load()) throw Interrupted();
  add_low_rank_after(w, x, n, y, pool, s);
}

}  // namespace

MatmulPath matmul_path(const QuantMatrix& w, int64_t n, const MatmulScratch& s) {
  if (w.is_packed()) return s.float_activations ? MatmulPath::kTiles : MatmulPath::kPacked;
  if ((n <= kI8MaxTokens || active_kernels().gemm_i8_rows) && !s.float_activations && w.cols % kQK == 0 &&
      decode_i8_fn(w.dtype))
    return MatmulPath::kI8;
  if (n > 1 && w.dtype == DType::F16 && w.row_stride == 2 * static_cast<size_t>(w.cols)) return MatmulPath::kF16;
  return n == 1 ? MatmulPath::kMatvec : MatmulPath::kTiles;
}

void matmul(const QuantMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool, MatmulScratch& s) {
  WREN_CHECK(w.cols <= s.max_cols() && n <= s.max_batch(), InvalidArgument, "matmul: scratch too small");
  switch (matmul_path(w, n, s)) {
    case MatmulPath::kPacked: matmul_packed({{&w, y}}, x, n, pool, s); break;
    case MatmulPath::kF16: matmul_f16(w, x, n, y, pool, s); break;
    case MatmulPath::kMatvec: matvec(w, x, y, pool, s); break;
    case MatmulPath::kTiles: matmul_tiled(w, x, n, y, pool, s); break;
    case MatmulPath::kI8: matmul_i8(w, x, n, y, pool, s); break;
  }
}

void matmul_shared_input(std::initializer_list<std::pair<const QuantMatrix*, float*>> products, const float* x,
                         int64_t n, ThreadPool& pool, MatmulScratch& s) {
  WREN_CHECK(products.size() >= 1 && products.size() <= 4, InvalidArgument, "matmul_shared_input: 1 to 4 products");
  bool all_packed = !s.float_activations;
  for (const auto& [w, y] : products) {
    WREN_CHECK(w->cols == products.begin()->first->cols, InvalidArgument, "matmul_shared_input: unequal cols");
    WREN_CHECK(w->cols <= s.max_cols() && n <= s.max_batch(), InvalidArgument, "matmul: scratch too small");
    all_packed = all_packed && w->is_packed();
  }
  if (all_packed) {
    matmul_packed(products, x, n, pool, s);
  } else {
    for (const auto& [w, y] : products) matmul(*w, x, n, y, pool, s);
  }
}

void dequantize_matrix_row(const QuantMatrix& w, int64_t r, float* out) {
  if (w.is_packed())
    dequantize_packed_rows(w.packed, r, 1, out);
  else
    dequantize_row(w.dtype, w.row(r), out, static_cast<size_t>(w.cols));
  add_low_rank_row(w.low_rank, r, w.cols, out);
}

}  // namespace wren

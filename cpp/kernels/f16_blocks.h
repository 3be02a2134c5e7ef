// The rows x tokens walk of the F16 product kernels (KernelTable::gemm_f16), shared by the ISA
// files: register blocks of kR rows x kT tokens, narrower blocks for the tokens left over, single
// rows for the rows left over. Each ISA supplies the block:
//   Block<R, T>::run(w, cols, x, y, ldy):  y[t * ldy + r] = w[r] . x[t] for r < R, t < T,
// rows of w and of x `cols` elements apart. Each ISA's block type lives in its file's anonymous
// namespace, so no instantiation is shared between files compiled with different ISA flags.
#pragma once

#include <cstdint>

namespace wren {

template <template <int, int> class Block, int R, int T>
inline void f16_tokens(const uint16_t* w, int64_t cols, const float* x, int64_t n, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + T <= n; t += T) Block<R, T>::run(w, cols, x + t * cols, y + t * ldy, ldy);
  if constexpr (T > 1) {
    if (t < n) f16_tokens<Block, R, T - 1>(w, cols, x + t * cols, n - t, y + t * ldy, ldy);
  }
}

template <template <int, int> class Block, int kR, int kT>
void f16_rows_times_tokens(const uint16_t* w, int64_t cols, int64_t r0, int64_t r1, const float* x, int64_t n,
                           float* y, int64_t ldy) {
  int64_t r = r0;
  for (; r + kR <= r1; r += kR) f16_tokens<Block, kR, kT>(w + r * cols, cols, x, n, y + r, ldy);
  for (; r < r1; ++r) f16_tokens<Block, 1, kT>(w + r * cols, cols, x, n, y + r, ldy);
}

}  // namespace wren

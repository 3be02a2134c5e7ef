// Decode attention kernels take the query heads that share a KV head in register blocks, so each
// key or value row is loaded once per block rather than once per head.
#pragma once

#include <cstdint>
#include <type_traits>

namespace wren {

// Calls run(std::integral_constant<int, NQ>{}, a) for the heads [a, a + NQ) of n_q: blocks of 4,
// then one block of the 1-3 left. The block size reaches run as a compile-time constant.
template <typename Run>
inline void for_query_blocks(int64_t n_q, Run&& run) {
  int64_t a = 0;
  for (; a + 4 <= n_q; a += 4) run(std::integral_constant<int, 4>{}, a);
  if (n_q - a == 3) run(std::integral_constant<int, 3>{}, a);
  if (n_q - a == 2) run(std::integral_constant<int, 2>{}, a);
  if (n_q - a == 1) run(std::integral_constant<int, 1>{}, a);
}

}  // namespace wren

// Which cached keys each query row attends to, and how its scores are shaped before the softmax.
#pragma once

#include <algorithm>
#include <cstdint>

namespace wren {

// The query rows of one attention call: n new rows at positions pos0..pos0+n-1 of one sequence,
// whose keys and values [0, pos0 + n) are in the cache (the new ones stored before the call).
struct QueryPositions {
  int64_t pos0 = 0;
  int64_t n = 0;
  int64_t end() const { return pos0 + n; }  // one past the last position: the keys the batch has
  int64_t at(int64_t row) const { return pos0 + row; }
};

// What each query row may see, and how its scores are shaped. The default is plain causal attention
// scaled by 1/sqrt(head_dim).
struct AttentionMask {
  float scale = 0.f;      // score multiplier; 0 means 1/sqrt(head_dim)
  bool causal = true;     // false: every row sees all pos0 + n keys (encoders)
  int64_t window = 0;     // > 0: the row at position p sees only keys (p - window, p] (sliding window)
  float softcap = 0.f;    // > 0: score = softcap * tanh(score / softcap), after scaling (Gemma 2)
  const float* alibi = nullptr;  // (n_heads) slopes: score += slope[h] * key position (BLOOM's ALiBi)
};

// The keys [lo, hi) a query row sees.
struct KeyRange {
  int64_t lo, hi;
};

// The keys the row at position p sees when the batch ends at position end (exclusive).
inline KeyRange visible_keys(const AttentionMask& m, int64_t p, int64_t end) {
  const int64_t hi = m.causal ? p + 1 : end;
  const int64_t lo = m.window > 0 ? std::max<int64_t>(0, p - m.window + 1) : 0;
  return {lo, hi};
}

}  // namespace wren

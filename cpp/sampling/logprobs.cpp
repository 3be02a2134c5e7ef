#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>

namespace wren {

TokenLogprob token_logprob(const float* logits, int64_t n_vocab, int32_t id, int n_top) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double log_z = mx + std::log(sum);  // logsumexp
  const auto lp = [&](int64_t i) { return static_cast<float>(logits[i] - log_z); };

  TokenLogprob out;
  out.id = id;
  out.logprob = lp(id);
  // One pass keeping the n best in a min-heap on (logit, -id): O(n_vocab log n).
  const auto worse = [&](int32_t a, int32_t b) {  // true when a ranks below b
    return logits[a] < logits[b] || (logits[a] == logits[b] && a > b);
  };
  const auto heap_cmp = [&](int32_t a, int32_t b) { return worse(b, a); };  // keeps the worst on top
  std::vector<int32_t> best;
  best.reserve(static_cast<size_t>(n_top) + 1);
  for (int64_t i = 0; i < n_vocab && n_top > 0; ++i) {
    const auto t = static_cast<int32_t>(i);
    if (static_cast<int>(best.size()) < n_top) {
      best.push_back(t);
      std::push_heap(best.begin(), best.end(), heap_cmp);
    } else if (worse(best.front(), t)) {
      std::pop_heap(best.begin(), best.end(), heap_cmp);
      best.back() = t;
      std::push_heap(best.begin(), best.end(), heap_cmp);
    }
  }
  std::sort(best.begin(), best.end(), [&](int32_t a, int32_t b) { return worse(b, a); });
  for (int32_t t : best) out.top.emplace_back(t, lp(t));
  return out;
}

}  // namespace wren

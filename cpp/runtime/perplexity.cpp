#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "util/errors.h"

namespace wren {

namespace {

// -log softmax(logits)[target], with the normalizer summed in double around the row's maximum.
double nll_of(const float* logits, int64_t n_vocab, int32_t target) {
  const float mx = *std::max_element(logits, logits + n_vocab);
  double sum = 0.0;
  for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return std::log(sum) - (static_cast<double>(logits[target]) - mx);
}

}  // namespace

std::vector<double> token_nll(Engine& e, const int32_t* tokens, int64_t n, int64_t first, const CancelFn& cancel,
                              bool exact) {
  WREN_CHECK(n >= 2, InvalidArgument, "scoring needs at least 2 tokens, got ", n);
  WREN_CHECK(first >= 0 && first < n - 1, InvalidArgument, "the first scored position must be in [0, ", n - 1,
             "), got ", first);
  const int64_t n_vocab = e.info().n_vocab;
  // eval() checks every id it is fed; the last one is only a target, so it is checked here.
  WREN_CHECK(tokens[n - 1] >= 0 && tokens[n - 1] < n_vocab, InvalidArgument, "token id ", tokens[n - 1],
             " at position ", n - 1, " is outside the vocabulary [0, ", n_vocab, ")");
  // Positions per eval call: enough to keep prefill batched, few enough that the logits of a
  // 256k-token vocabulary stay near 256 MiB.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(256, (int64_t(64) << 20) / n_vocab));
  std::vector<float> logits(static_cast<size_t>(chunk * n_vocab));  // (chunk, n_vocab)
  std::vector<double> nll;
  nll.reserve(static_cast<size_t>(n - 1 - first));
  auto session = e.new_session();
  // Positions before `first` still need their keys and values, but not their logits.
  int64_t pos = 0;
  if (first > 0) {
    e.eval(*session, tokens, first, nullptr, cancel, exact);
    pos = first;
  }
  while (pos < n - 1) {
    if (cancel && cancel()) throw Interrupted();
    const int64_t m = std::min(chunk, n - 1 - pos);  // the last token is only a target
    e.eval(*session, tokens + pos, m, logits.data(), cancel, exact);
    for (int64_t j = 0; j < m; ++j) nll.push_back(nll_of(logits.data() + j * n_vocab, n_vocab, tokens[pos + j + 1]));
    pos += m;
  }
  return nll;
}

}  // namespace wren

// Scoring text under a model: the negative log-likelihood of each token given those before it,
// the quantity that perplexity (the exponential of its mean) summarizes.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/engine.h"

namespace wren {

// -log p(tokens[k+1] | tokens[0..k]) for k in [first, n-1), in that order (n - 1 - first values),
// from one fresh context fed tokens[0..n). Logits are computed a chunk of positions at a time, so
// memory is O(chunk x n_vocab) whatever n is. The log-softmax is accumulated in double.
// Throws as Engine::eval (ContextOverflowError past the engine's n_ctx, Interrupted on cancel);
// InvalidArgument unless 0 <= first < n - 1.
std::vector<double> token_nll(Engine& e, const int32_t* tokens, int64_t n, int64_t first, const CancelFn& cancel,
                              bool exact);

}  // namespace wren

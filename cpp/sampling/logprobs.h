// Log-probabilities of tokens under the model's own distribution: log_softmax of the raw logits,
// before any sampling stage (bias, penalties, temperature, filters) reshapes them, as OpenAI reports.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace wren {

struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // the n most likely tokens, most likely first
};

// Most tokens a caller may ask alternatives for (OpenAI's bound).
constexpr int kMaxTopLogprobs = 20;

// log_softmax(logits)[id] and the n_top most likely tokens with theirs (ties: lower id first).
TokenLogprob token_logprob(const float* logits, int64_t n_vocab, int32_t id, int n_top);

}  // namespace wren

// Token-by-token generation: sample, detokenize, watch for stop strings, yield text pieces.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace wren {

struct GenerateOptions {
  int64_t max_tokens = 256;  // < 0: until end of generation or the context is full
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings: generation ends before them; never emitted
  bool ignore_eos = false;
  int logprobs = -1;  // -1: none; n >= 0: each generated token's logprob and the n most likely tokens
  bool echo = false;  // also the prompt tokens' logprobs (and n alternatives; n = max(logprobs, 0))

  void validate() const;
};

class Generator {
 public:
  // Validates options and checks that prompt + max_tokens fits the context (ContextOverflowError).
  Generator(Engine& engine, std::vector<int32_t> prompt, GenerateOptions opts);

  // The next piece of text (possibly empty while bytes or a possible stop string are held back),
  // or nullopt once generation has finished. Each call evaluates at most one new token, plus the
  // prompt on the first call.
  std::optional<std::string> next(const CancelFn& cancel);

  // Safe from any thread, also while next() runs: the generation stops within one token (between
  // layers) and finishes with reason "cancelled"; next() then returns what was held back, then nullopt.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }

  // "", "stop", "length", "eos", "cancelled"
  const std::string& finish_reason() const { return finish_reason_; }
  int64_t n_prompt_tokens() const { return static_cast<int64_t>(prompt_.size()); }
  int64_t n_generated() const { return static_cast<int64_t>(generated_.size()); }
  const std::vector<int32_t>& generated_tokens() const { return generated_; }
  // With logprobs >= 0: one entry per generated token (generated_tokens() order).
  const std::vector<TokenLogprob>& logprobs() const { return logprobs_; }
  // With echo: one entry per prompt token, the first without a logprob (nothing precedes it: NaN).
  const std::vector<TokenLogprob>& prompt_logprobs() const { return prompt_logprobs_; }

 private:
  std::string finish(const std::string& reason);
  // Moves what is safe to show from pending_ to the return value.
  std::string release_pending();
  // Evaluates the prompt in chunks that keep every position's logits, for prompt_logprobs_.
  void eval_prompt_with_logprobs(const CancelFn& cancel);

  Engine& engine_;
  std::vector<int32_t> prompt_;
  GenerateOptions opts_;
  std::unique_ptr<Session> session_;
  SamplerChain sampler_;
  Detokenizer detok_;
  std::vector<int32_t> generated_;
  std::vector<TokenLogprob> logprobs_, prompt_logprobs_;
  std::string pending_;  // text not yet emitted because it might start a stop string
  std::string finish_reason_;
  bool started_ = false;
  bool need_eval_ = false;  // the last sampled token still has to be fed to the model
  bool done_ = false;
  std::atomic<bool> cancelled_{false};
};

}  // namespace wren

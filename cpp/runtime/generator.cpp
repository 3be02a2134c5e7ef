#include "runtime/generator.h"

#include <algorithm>
#include <cmath>

#include "util/errors.h"

namespace wren {

void GenerateOptions::validate() const {
  WREN_CHECK(max_tokens != 0, InvalidArgument, "max_tokens must be >= 1 (or None for no limit), got 0");
  for (const std::string& s : stop) WREN_CHECK(!s.empty(), InvalidArgument, "stop strings must not be empty");
  WREN_CHECK(logprobs >= -1 && logprobs <= kMaxTopLogprobs, InvalidArgument, "logprobs must be in 0..",
             kMaxTopLogprobs, " (or None), got ", logprobs);
  sampling.validate();
}

Generator::Generator(Engine& engine, std::vector<int32_t> prompt, GenerateOptions opts)
    : engine_(engine),
      prompt_(std::move(prompt)),
      opts_((opts.validate(), std::move(opts))),
      sampler_(opts_.sampling),
      detok_(engine.tokenizer(), /*skip_special=*/true) {
  WREN_CHECK(!prompt_.empty(), InvalidArgument, "the prompt is empty (no tokens); pass some text");
  const int64_t n_ctx = engine.n_ctx(), n_prompt = static_cast<int64_t>(prompt_.size());
  if (n_prompt >= n_ctx)
    throw ContextOverflowError(str_cat("the prompt has ", n_prompt, " tokens; the context window n_ctx=", n_ctx,
                                       " leaves no room to generate (load with a larger n_ctx)"));
  if (opts_.max_tokens > 0 && n_prompt + opts_.max_tokens > n_ctx)
    throw ContextOverflowError(str_cat("prompt (", n_prompt, " tokens) + max_tokens (", opts_.max_tokens,
                                       ") exceeds the context window n_ctx=", n_ctx,
                                       "; lower max_tokens or load with a larger n_ctx"));
  for (const auto& [id, bias] : opts_.sampling.logit_bias)
    WREN_CHECK(id < engine.info().n_vocab, InvalidArgument, "logit_bias: token id ", id,
               " is outside the vocabulary (", engine.info().n_vocab, " tokens)");
  session_ = engine.new_session();
  for (int32_t t : prompt_) sampler_.accept_prompt(t);  // the repetition penalty sees the prompt too
}

void Generator::eval_prompt_with_logprobs(const CancelFn& cancel) {
  // Positions whose logits are kept at once: (kChunk, n_vocab) floats. A tail shorter than kMinTail
  // joins the chunk before it, so no chunk takes the few-rows attention kernel unless the whole
  // prompt does: each position then goes through the same kernels as in one Engine::eval of the
  // prompt, and its logprob is what Model.logits(prompt, exact=False) gives.
  constexpr int64_t kChunk = 64, kMinTail = 16;
  const int64_t n_vocab = engine_.info().n_vocab, n = static_cast<int64_t>(prompt_.size());
  const int n_top = std::max(opts_.logprobs, 0);
  std::vector<float> logits(static_cast<size_t>((kChunk + kMinTail) * n_vocab));  // (rows, n_vocab)
  TokenLogprob first;
  first.id = prompt_[0];
  first.logprob = NAN;
  prompt_logprobs_.assign(1, first);
  for (int64_t p = 0, k; p < n; p += k) {
    k = n - p < kChunk + kMinTail ? n - p : kChunk;
    engine_.eval(*session_, prompt_.data() + p, k, logits.data(), cancel);
    for (int64_t j = 0; j < k && p + j + 1 < n; ++j)  // row j predicts prompt token p + j + 1
      prompt_logprobs_.push_back(token_logprob(&logits[static_cast<size_t>(j * n_vocab)], n_vocab,
                                               prompt_[static_cast<size_t>(p + j + 1)], n_top));
  }
}

std::string Generator::release_pending() {
  // Hold back the longest tail of pending_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : opts_.stop)
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len)
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string Generator::finish(const std::string& reason) {
  done_ = true;
  finish_reason_ = reason;
  std::string out = std::move(pending_);
  pending_.clear();
  if (reason != "stop") out += detok_.flush();
  return out;
}

std::optional<std::string> Generator::next(const CancelFn& cancel) {
  if (done_) return std::nullopt;
  const CancelFn stop_asked = [&] { return cancelled_.load(std::memory_order_relaxed) || (cancel && cancel()); };
  try {
    if (cancelled_.load(std::memory_order_relaxed)) throw Interrupted();
    if (!started_) {
      if (opts_.echo)
        eval_prompt_with_logprobs(stop_asked);
      else
        engine_.eval(*session_, prompt_.data(), static_cast<int64_t>(prompt_.size()), nullptr, stop_asked);
      started_ = true;
    } else if (need_eval_) {
      if (session_->n_past >= engine_.n_ctx())
        throw ContextOverflowError(str_cat("generation reached the context window n_ctx=", engine_.n_ctx(),
                                           " without finishing; pass max_tokens or load with a larger n_ctx"));
      engine_.eval(*session_, &generated_.back(), 1, nullptr, stop_asked);
    }
  } catch (const Interrupted&) {
    if (!cancelled_.load(std::memory_order_relaxed)) throw;  // Ctrl-C: the caller's to handle
    session_.reset();  // its cache is partly written; nothing will read it again
    return finish("cancelled");
  }
  need_eval_ = false;

  const int64_t n_vocab = engine_.info().n_vocab;
  const int32_t token = sampler_.sample(session_->logits.data(), n_vocab);
  sampler_.accept(token);
  if (!opts_.ignore_eos && engine_.tokenizer().is_eog(token)) return finish("eos");
  if (opts_.logprobs >= 0) logprobs_.push_back(token_logprob(session_->logits.data(), n_vocab, token, opts_.logprobs));
  generated_.push_back(token);
  need_eval_ = true;

  pending_ += detok_.push(token);
  size_t first_stop = std::string::npos;  // the earliest of the stop strings wins
  for (const std::string& s : opts_.stop) first_stop = std::min(first_stop, pending_.find(s));
  if (first_stop != std::string::npos) {
    pending_.resize(first_stop);
    return finish("stop");
  }
  if (opts_.max_tokens > 0 && n_generated() >= opts_.max_tokens) return finish("length");
  return release_pending();
}

}  // namespace wren

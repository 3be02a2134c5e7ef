#include "runtime/generator.h"

#include <algorithm>
#include <cmath>

#include "runtime/scheduler.h"
#include "util/errors.h"

namespace wren {

void GenerateOptions::validate() const {
  WREN_CHECK(max_tokens != 0, InvalidArgument, "max_tokens must be >= 1 (or None for no limit), got 0");
  for (const std::string& s : stop) WREN_CHECK(!s.empty(), InvalidArgument, "stop strings must not be empty");
  WREN_CHECK(logprobs >= -1 && logprobs <= kMaxTopLogprobs, InvalidArgument, "logprobs must be in 0..",
             kMaxTopLogprobs, " (or None), got ", logprobs);
  sampling.validate();
}

namespace {

// Prompt tokens per pass: a long prompt goes in chunks so that the generations decoding beside it
// wait at most one chunk per token. Chunks follow chunk_tokens() (engine.h): multiples of the
// attention block, and no tail short enough for the few-rows attention kernel unless the whole
// prompt is; so each position is computed bit for bit as in Engine::eval of the prompt
// (Model.logits(prompt)), and as in a run that reused an aligned prefix of it.
constexpr int64_t kPromptChunk = 4 * kAttentionBlockRows;
constexpr int64_t kEchoChunk = kAttentionBlockRows;  // with prompt logprobs: (chunk, n_vocab) logits kept at once
static_assert(kPromptChunk % kAttentionBlockRows == 0 && kEchoChunk % kAttentionBlockRows == 0);

}  // namespace

Generation::Generation(Engine& engine, std::vector<int32_t> prompt, GenerateOptions opts)
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
  engine.check_tokens(prompt_.data(), n_prompt);  // here, so a bad prompt never fails a shared pass
  for (const auto& [id, bias] : opts_.sampling.logit_bias)
    WREN_CHECK(id < engine.info().n_vocab, InvalidArgument, "logit_bias: token id ", id,
               " is outside the vocabulary (", engine.info().n_vocab, " tokens)");
  session_ = engine.new_session();
  for (int32_t t : prompt_) sampler_.accept_prompt(t);  // the repetition penalty sees the prompt too
  refresh_prefix();  // start from what an earlier call computed
}

void Generation::refresh_prefix() {
  if (opts_.echo || engine_.info().length_dependent_rope || computing_prompt_) return;
  const PrefixCache::Match m = engine_.prefix_cache().lookup(prompt_.data(), static_cast<int64_t>(prompt_.size()));
  if (m.n > prompt_done_) reuse_prefix(*m.session, m.n);
}

bool Generation::offers_prefix() const {
  return prompt_pending() && cold_equal_ && !opts_.echo && engine_.prefix_cache().budget() > 0 &&
         !engine_.info().length_dependent_rope;
}

int64_t Generation::aligned_resume(int64_t common) const {
  const int64_t n_prompt = static_cast<int64_t>(prompt_.size());
  return std::min(common, n_prompt - kAttentionPrefillMinRows) / kAttentionBlockRows * kAttentionBlockRows;
}

int64_t Generation::reusable(int64_t common, int64_t n_source) const {
  const int64_t n_prompt = static_cast<int64_t>(prompt_.size());
  if (opts_.echo) return 0;
  if (common >= n_prompt && n_source == n_prompt) return n_prompt;  // the same prompt: all of it, logits too
  return aligned_resume(common);
}

int64_t Generation::reuse_prefix(const Session& src, int64_t n, bool aligned) {
  const int64_t n_prompt = static_cast<int64_t>(prompt_.size());
  n = std::min(n, src.n_past());
  if (opts_.echo || n <= prompt_done_) return 0;
  if (n >= n_prompt && src.n_past() == n_prompt) {
    if (!aligned) cold_equal_ = false;
    src.cache.share_prefix(session_->cache, n_prompt);
    session_->logits = src.logits;
    prompt_done_ = cached_ = n_prompt;
    return cached_;
  }
  // Resume at a multiple of the attention block, leaving a tail long enough for the prefill path:
  // the rest of the prompt is then computed bit for bit as a cold run computes it (chunk_tokens).
  n = aligned ? aligned_resume(n) : std::min(n, n_prompt - 1);
  if (n <= prompt_done_ || !src.cache.can_resume_at(n)) return 0;
  if (!aligned) cold_equal_ = false;
  src.cache.share_prefix(session_->cache, n);
  prompt_done_ = cached_ = n;
  return cached_;
}

bool Generation::ready() const {
  if (cancelled()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return !done_ && (run_ahead_.load(std::memory_order_relaxed) || static_cast<int64_t>(out_.size()) < kLookahead);
}

bool Generation::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

Generation::Input Generation::input() {
  const int64_t n_prompt = static_cast<int64_t>(prompt_.size());
  if (last_token_ < 0 && cached_ == n_prompt)
    return Input{prompt_.data() + n_prompt, 0, nullptr};  // all reused: sample from the reused logits
  if (prompt_done_ < n_prompt) {
    const int64_t chunk = opts_.echo ? kEchoChunk : kPromptChunk, left = n_prompt - prompt_done_;
    Input in;
    in.tokens = prompt_.data() + prompt_done_;
    in.n = chunk_tokens(left, chunk, engine_.max_batch());
    in.input_end = n_prompt;  // every chunk is rotated as the whole prompt is (LongRoPE)
    if (opts_.echo) {
      rows_.resize(static_cast<size_t>(in.n * engine_.info().n_vocab));
      in.all_logits = rows_.data();
    }
    return in;
  }
  if (session_->n_past() >= engine_.n_ctx())
    throw ContextOverflowError(str_cat("generation reached the context window n_ctx=", engine_.n_ctx(),
                                       " without finishing; pass max_tokens or load with a larger n_ctx"));
  return Input{&last_token_, 1, nullptr};
}

void Generation::consume_prompt_rows(const Input& in) {
  const int64_t n_vocab = engine_.info().n_vocab, n = static_cast<int64_t>(prompt_.size());
  const int n_top = std::max(opts_.logprobs, 0);
  std::vector<TokenLogprob> rows;
  if (prompt_done_ == 0) {
    TokenLogprob first;
    first.id = prompt_[0];
    first.logprob = NAN;  // nothing precedes it
    rows.push_back(first);
  }
  for (int64_t j = 0; j < in.n && prompt_done_ + j + 1 < n; ++j)  // row j predicts prompt token p + j + 1
    rows.push_back(token_logprob(in.all_logits + j * n_vocab, n_vocab,
                                 prompt_[static_cast<size_t>(prompt_done_ + j + 1)], n_top));
  std::lock_guard<std::mutex> lock(mu_);
  prompt_logprobs_.insert(prompt_logprobs_.end(), rows.begin(), rows.end());
}

std::string Generation::release_pending() {
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

void Generation::push_locked(std::string piece) {
  out_.push_back(std::move(piece));
}

void Generation::finish_locked(const std::string& reason) {
  std::string rest = std::move(pending_);
  pending_.clear();
  if (reason != "stop") rest += detok_.flush();
  if (!rest.empty()) out_.push_back(std::move(rest));
  finish_reason_ = reason;
  done_ = true;
  if (!keep_session_) session_.reset();  // its pages go back now, not when the consumer lets go
}

std::unique_ptr<Session> Generation::take_session() {
  std::lock_guard<std::mutex> lock(mu_);
  WREN_CHECK(done_ && keep_session_, InvalidArgument, "take_session(): the generation has not finished");
  return std::move(session_);
}

void Generation::consume(const Input& in) {
  if (in.tokens != &last_token_) {  // a prompt chunk
    if (in.n > 0) computing_prompt_ = true;
    if (opts_.echo) consume_prompt_rows(in);
    prompt_done_ += in.n;
    const int64_t n_prompt = static_cast<int64_t>(prompt_.size());
    if (prompt_done_ < n_prompt) return;
    if (in.n > 0 && cold_equal_ && engine_.prefix_cache().budget() > 0 && !engine_.info().length_dependent_rope) {
      // The prompt is in: offer it to the prefix cache now, so requests arriving meanwhile with
      // the same start (a shared system prompt) share its pages. Only the prompt: the reply's
      // positions are computed one token per pass, by other kernels than a cold prompt's, so a
      // later prompt extending prompt + reply reuses the prompt and computes the rest, and gets
      // what a cold run gets, bit for bit.
      auto copy = engine_.new_session();
      session_->cache.share_prefix(copy->cache, n_prompt);
      copy->logits = session_->logits;
      engine_.prefix_cache().insert(prompt_.data(), n_prompt, std::move(copy), n_prompt);
    }
  }
  const int64_t n_vocab = engine_.info().n_vocab;
  const float* logits = session_->logits.data();
  const int32_t token = sampler_.sample(logits, n_vocab);
  sampler_.accept(token);
  if (!opts_.ignore_eos && engine_.tokenizer().is_eog(token)) {
    std::lock_guard<std::mutex> lock(mu_);
    finish_locked("eos");
    return;
  }
  TokenLogprob lp;
  if (opts_.logprobs >= 0) lp = token_logprob(logits, n_vocab, token, opts_.logprobs);
  last_token_ = token;
  pending_ += detok_.push(token);
  size_t first_stop = std::string::npos;  // the earliest of the stop strings wins
  for (const std::string& s : opts_.stop) first_stop = std::min(first_stop, pending_.find(s));

  std::lock_guard<std::mutex> lock(mu_);
  generated_.push_back(token);
  if (opts_.logprobs >= 0) logprobs_.push_back(std::move(lp));
  if (first_stop != std::string::npos) {
    pending_.resize(first_stop);
    finish_locked("stop");
    return;
  }
  if (opts_.max_tokens > 0 && static_cast<int64_t>(generated_.size()) >= opts_.max_tokens) {
    finish_locked("length");
    return;
  }
  push_locked(release_pending());
}

void Generation::finish_cancelled() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!done_) finish_locked("cancelled");
}

void Generation::fail(std::exception_ptr e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  error_ = std::move(e);
  done_ = true;
  if (!keep_session_) session_.reset();
}

bool Generation::take(std::optional<std::string>& piece) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!out_.empty()) {
    piece = std::move(out_.front());
    out_.pop_front();
    return true;
  }
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;  // reported once; then the generation reads as finished
    std::rethrow_exception(e);
  }
  piece.reset();
  return done_;
}

std::string Generation::finish_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finish_reason_;
}

int64_t Generation::n_generated() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(generated_.size());
}

std::vector<int32_t> Generation::generated_tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generated_;
}

std::vector<TokenLogprob> Generation::logprobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return logprobs_;
}

std::vector<TokenLogprob> Generation::prompt_logprobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return prompt_logprobs_;
}

Generator::Generator(Engine& engine, std::vector<int32_t> prompt, GenerateOptions opts)
    : engine_(engine), gen_(std::make_shared<Generation>(engine, std::move(prompt), std::move(opts))) {}

Generator::~Generator() {
  gen_->cancel();
  if (started_) engine_.scheduler().release_cancelled();  // its pages go back now (or when the running pass ends)
}

int64_t Generator::reuse_prefix(const Session& src, int64_t n, bool aligned) {
  WREN_CHECK(!started_, InvalidArgument, "reuse_prefix() after the generation started");
  return gen_->reuse_prefix(src, n, aligned);
}

void Generator::keep_session() {
  WREN_CHECK(!started_, InvalidArgument, "keep_session() after the generation started");
  gen_->keep_session();
}

void Generator::start(bool run_ahead) {
  gen_->set_run_ahead(run_ahead);
  if (started_) return;
  started_ = true;
  engine_.scheduler().submit(gen_);
}

std::optional<std::string> Generator::next(const CancelFn& cancel) {
  if (!started_) {
    if (gen_->cancelled()) {  // cancelled before it ever ran
      gen_->finish_cancelled();
      std::optional<std::string> piece;
      gen_->take(piece);
      return piece;
    }
    start();
  }
  return engine_.scheduler().next(*gen_, cancel);
}

}  // namespace wren

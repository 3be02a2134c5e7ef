// Token-by-token generation: sample, detokenize, watch for stop strings, yield text pieces.
//
// Two halves. A Generation is one sequence's state machine — session, sampler, detokenizer, stop
// strings, logprobs — that the engine's Scheduler (runtime/scheduler.h) drives: each pass it asks
// the generation for its next input (a prompt chunk or the last sampled token), evaluates it with
// the other running generations in one forward pass, and hands the logits back. A Generator is
// the consumer's handle on one: next() waits for the pieces the scheduler produces.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"

namespace wren {

class Scheduler;

struct GenerateOptions {
  int64_t max_tokens = 256;  // < 0: until end of generation or the context is full
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings: generation ends before them; never emitted
  bool ignore_eos = false;
  int logprobs = -1;  // -1: none; n >= 0: each generated token's logprob and the n most likely tokens
  bool echo = false;  // also the prompt tokens' logprobs (and n alternatives; n = max(logprobs, 0))

  void validate() const;
};

// One sequence being generated. The thread running the engine's passes (Scheduler) calls input()
// and consume(); the consumer's thread takes pieces through the Generator; what both touch is
// under mu_.
class Generation {
 public:
  // Validates options and checks that prompt + max_tokens fits the context (ContextOverflowError).
  Generation(Engine& engine, std::vector<int32_t> prompt, GenerateOptions opts);

  // Before it is submitted: starts from the first n positions src holds in common with the
  // prompt (the caller knows they are equal), sharing src's pages instead of computing them. All
  // of the prompt when src holds exactly the prompt (its logits are then taken too); else at most
  // all but the last prompt token, whose logits the first pass computes. Nothing is reused with
  // echo (every prompt row is computed for its logprobs) or when src cannot resume there (a
  // sliding window already released). Returns the positions reused.
  // aligned (the prefix cache): only at a multiple of the attention block leaving >= 16 prompt
  // rows, so the result is bit for bit a cold run's; else (a session continuing itself) as much
  // as possible, the rest computed however short (equal to a cold run up to float rounding).
  int64_t reuse_prefix(const Session& src, int64_t n, bool aligned = true);
  // The prompt positions reuse_prefix(aligned) would take from a source holding `common` positions
  // in common with the prompt, of a source prompt n_source tokens long.
  int64_t reusable(int64_t common, int64_t n_source) const;
  // Where an aligned reuse of `common` shared positions resumes: a multiple of the attention block
  // leaving at least kAttentionPrefillMinRows prompt rows to compute.
  int64_t aligned_resume(int64_t common) const;
  int64_t n_cached_tokens() const { return cached_; }
  // Keep the session when finished instead of freeing it, for take_session() (explicit sessions).
  void keep_session() { keep_session_ = true; }
  // Once finished: the session (cache holding the first n_past() of prompt + generated tokens).
  std::unique_ptr<Session> take_session();

  // --- scheduler side (the thread running the pass) ---
  // The tokens to evaluate next: a chunk of the prompt, or the last sampled token; n == 0 when
  // the whole prompt was reused (consume() then samples from the reused logits). all_logits: the
  // chunk's every row is wanted (prompt logprobs).
  struct Input {
    const int32_t* tokens = nullptr;
    int64_t n = 0;
    float* all_logits = nullptr;
    int64_t input_end = 0;  // a prompt chunk: where the prompt ends (EvalRequest::input_end)
  };
  // Whether the generation can take part in the next pass: not finished, and (unless it runs
  // ahead freely) its consumer has not fallen more than kLookahead tokens behind.
  bool ready() const;
  // Whether its next input is (part of) the prompt.
  bool prompt_pending() const { return prompt_done_ < static_cast<int64_t>(prompt_.size()); }
  Input input();
  // Prefix sharing between generations running at once. offers_prefix(): its prompt goes to the
  // prefix cache once it is in (see consume). computing_prompt(): it has evaluated a prompt chunk
  // itself. Before that, refresh_prefix() takes the longest prefix the cache holds now (a
  // generation that started earlier with the same start has finished its prompt since).
  bool offers_prefix() const;
  bool computing_prompt() const { return computing_prompt_; }
  void refresh_prefix();
  const std::vector<int32_t>& prompt() const { return prompt_; }
  // After the pass evaluated input(): samples, detokenizes, queues the piece (or finishes).
  void consume(const Input& in);
  // Ends it: "cancelled" after cancel(), or the error a pass raised for it.
  void finish_cancelled();
  void fail(std::exception_ptr e);
  Session& session() { return *session_; }

  // --- either side ---
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  bool finished() const;
  // Let the generation run to its end without waiting for the consumer (a whole batch collected at once).
  void set_run_ahead(bool on) { run_ahead_.store(on, std::memory_order_relaxed); }

  // --- consumer side ---
  // Takes the next token's piece (possibly empty while bytes or a possible stop string are held
  // back) into piece and returns true; or returns true with piece empty-optional once finished; or
  // false when nothing is there yet. A pass's error for this generation is rethrown here, once.
  bool take(std::optional<std::string>& piece);
  std::string finish_reason() const;
  int64_t n_prompt_tokens() const { return static_cast<int64_t>(prompt_.size()); }
  int64_t n_generated() const;
  std::vector<int32_t> generated_tokens() const;
  std::vector<TokenLogprob> logprobs() const;
  std::vector<TokenLogprob> prompt_logprobs() const;

  // Tokens a consumer may lag behind before the generation pauses (it pipelines: the next token
  // is computed while the consumer handles this one).
  static constexpr int64_t kLookahead = 2;

 private:
  // Moves what is safe to show from pending_ to the return value.
  std::string release_pending();
  void finish_locked(const std::string& reason);
  void push_locked(std::string piece);
  void consume_prompt_rows(const Input& in);

  Engine& engine_;
  const std::vector<int32_t> prompt_;
  const GenerateOptions opts_;
  std::unique_ptr<Session> session_;
  SamplerChain sampler_;
  Detokenizer detok_;
  int64_t prompt_done_ = 0;   // prompt tokens evaluated (or reused)
  int64_t cached_ = 0;        // prompt tokens reused from another session
  int32_t last_token_ = -1;   // the last sampled token, still to be fed to the model; -1: none sampled yet
  bool keep_session_ = false;
  bool computing_prompt_ = false;  // a prompt chunk of ours was evaluated
  bool cold_equal_ = true;  // every prompt position computed as a cold run would (the prefix cache takes only those)
  std::vector<float> rows_;   // (chunk, n_vocab) logits of a prompt chunk, for echo
  std::string pending_;       // text not yet emitted because it might start a stop string

  mutable std::mutex mu_;
  std::deque<std::string> out_;    // pieces produced, not yet taken, one per generated token
  std::vector<int32_t> generated_;
  std::vector<TokenLogprob> logprobs_, prompt_logprobs_;
  std::string finish_reason_;
  bool done_ = false;              // no more pieces will be produced
  std::exception_ptr error_;
  std::atomic<bool> cancelled_{false}, run_ahead_{false};
};

// The consumer's handle: submits the generation to the engine's scheduler on the first next(),
// and cancels it when dropped.
class Generator {
 public:
  Generator(Engine& engine, std::vector<int32_t> prompt, GenerateOptions opts);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Submits the generation now (else the first next() does). run_ahead: it runs to its end
  // without waiting for next() calls (collecting a whole batch; see Generation::set_run_ahead).
  void start(bool run_ahead = false);
  // The next piece (possibly empty while bytes or a possible stop string are held back), or
  // nullopt once generation has finished. Other generations of the engine run in the same passes.
  std::optional<std::string> next(const CancelFn& cancel);
  // Safe from any thread, also while next() runs: the generation stops within one token and
  // finishes with reason "cancelled"; next() then returns what was held back, then nullopt.
  void cancel() { gen_->cancel(); }

  // "", "stop", "length", "eos", "cancelled"
  std::string finish_reason() const { return gen_->finish_reason(); }
  int64_t n_prompt_tokens() const { return gen_->n_prompt_tokens(); }
  int64_t n_generated() const { return gen_->n_generated(); }
  int64_t n_cached_tokens() const { return gen_->n_cached_tokens(); }
  // See Generation::reuse_prefix; before start()/next() only.
  int64_t reuse_prefix(const Session& src, int64_t n, bool aligned = true);
  // The prompt positions reuse_prefix(aligned) would take from a source holding `common` positions
  // in common with the prompt, of a source prompt n_source tokens long.
  int64_t reusable(int64_t common, int64_t n_source) const;
  // Where an aligned reuse of `common` shared positions resumes: a multiple of the attention block
  // leaving at least kAttentionPrefillMinRows prompt rows to compute.
  int64_t aligned_resume(int64_t common) const;
  // See Generation::keep_session / take_session (the latter once next() returned nullopt).
  void keep_session();
  std::unique_ptr<Session> take_session() { return gen_->take_session(); }
  std::vector<int32_t> generated_tokens() const { return gen_->generated_tokens(); }
  std::vector<TokenLogprob> logprobs() const { return gen_->logprobs(); }
  std::vector<TokenLogprob> prompt_logprobs() const { return gen_->prompt_logprobs(); }

 private:
  Engine& engine_;
  std::shared_ptr<Generation> gen_;
  bool started_ = false;
};

}  // namespace wren

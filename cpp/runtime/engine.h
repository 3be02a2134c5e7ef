// A loaded model ready to run: the mapped file, tokenizer, network and thread pool.
// Forward passes from several threads are serialized on one mutex per engine (the workspace is
// shared); each Session keeps its own KV cache, so interleaved generations never corrupt each other,
// and eval_batch() runs several sessions in one pass.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "format/lora_adapter.h"
#include "format/tensor_source.h"
#include "models/model.h"
#include "attention/kv_cache.h"
#include "tokenizer/tokenizer.h"
#include "util/heap.h"
#include "runtime/prefix_cache.h"
#include "util/thread_pool.h"

namespace wren {

class LoraSource;
class Scheduler;

// One sequence: its KV cache (pages from the engine's pool) and the logits of its last token.
struct Session {
  Session(std::shared_ptr<KvPagePool> pool, int64_t n_ctx, int64_t n_vocab)
      : cache(std::move(pool), n_ctx), logits(static_cast<size_t>(n_vocab)) {}
  KvSequence cache;
  std::vector<float> logits;  // (n_vocab) of the last evaluated token
  int64_t n_past() const { return cache.size(); }
};

// One sequence's part of Engine::eval_batch: tokens appended to its session.
struct EvalRequest {
  Session* session = nullptr;
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  float* all_logits = nullptr;  // (n, n_vocab) of every token, or null: only the last, into session->logits
  // The sequence's length once the caller's whole input is in, when these tokens are only part of it
  // (a prompt fed in chunks): choices that hold for a whole input (LongRoPE's factors) follow it.
  // 0: the tokens are the whole input.
  int64_t input_end = 0;
};

// How many of a sequence's `left` remaining tokens the next forward pass takes, given a wish of
// `room` (> 0) and a hard cap (>= room): all of them when they fit the room; else `room`, unless
// that would leave fewer than kAttentionPrefillMinRows tokens for the pass after, whose rows would
// then take the decode path: then all of them if the cap allows, else a multiple of
// kAttentionBlockRows that leaves at least that many. Chunks that start at such multiples compute
// each row as any other chunking aligned the same way does (attention.h).
int64_t chunk_tokens(int64_t left, int64_t room, int64_t cap);

class Engine {
 public:
  // n_ctx <= 0: the model's training context. n_threads <= 0: physical cores.
  // kv_dtype: element type of each session's KV cache.
  // loras: adapters applied at run time beside the weights they update (format/lora_source.h);
  // cancel (may be empty) is asked between adapters while they are read.
  // cache_bytes: budget of the prefix cache (0: off; runtime/prefix_cache.h).
  Engine(const std::string& path, int64_t n_ctx, int n_threads, KvDtype kv_dtype = KvDtype::F16,
         const std::vector<LoraSpec>& loras = {}, const CancelFn& cancel = nullptr, size_t cache_bytes = 0);
  ~Engine();

  const TensorSource& file() const { return *file_; }
  // The adapters applied (empty without any), and the bytes of their A and B matrices.
  const std::vector<LoraAdapter>& loras() const;
  uint64_t lora_bytes() const;
  // UnsupportedError when the file's tokenizer kind is not supported (the network still runs on ids).
  const Tokenizer& tokenizer() const;
  const ModelInfo& info() const { return model_->info(); }
  // Tokens one forward pass takes at most.
  int64_t max_batch() const { return model_->max_batch(); }
  // InvalidArgument for an id outside the vocabulary.
  void check_tokens(const int32_t* tokens, int64_t n) const;
  // The continuous-batching scheduler every generation on this engine runs in (started on first use).
  Scheduler& scheduler();
  // Computed prefixes generations start from (Model(cache_mb=...)).
  PrefixCache& prefix_cache() { return *prefix_cache_; }
  int64_t n_ctx() const { return n_ctx_; }
  int n_threads() const { return pool_->size(); }
  KvDtype kv_dtype() const { return kv_dtype_; }

  // Finishes loading now instead of on the first forward pass: runs the weight re-layouts recorded
  // while binding (Model::prepare_weights), reporting progress in bytes; a no-op once done. If
  // progress throws, the work done so far is kept and the next call or forward pass finishes it.
  void prepare(const ProgressFn& progress);
  // Bytes prepare() still has to write (0 once done).
  uint64_t pending_prepare_bytes();

  std::unique_ptr<Session> new_session() const {
    return std::make_unique<Session>(kv_pool_, n_ctx_, info().n_vocab);
  }
  // The pages every session's cache takes from (its counters: bytes held now and at peak).
  const KvPagePool& kv_pool() const { return *kv_pool_; }

  // Appends tokens to the session (batched, in chunks of the model's max batch). Leaves the
  // last token's logits in s.logits; with all_logits != nullptr also writes (n, n_vocab) there.
  // exact: reference numerics (see Model::forward). Throws ContextOverflowError past n_ctx,
  // InvalidArgument for ids outside the vocabulary.
  void eval(Session& s, const int32_t* tokens, int64_t n, float* all_logits, const CancelFn& cancel,
            bool exact = false);
  // Several sessions at once: their tokens go through the network together (each weight read once
  // per pass for all of them; passes of at most max_batch tokens), each session attending over its
  // own cache. Each request is checked first, as eval() checks (nothing runs if one is bad); a
  // session may appear once. Results equal eval() of each request alone up to float rounding.
  void eval_batch(const std::vector<EvalRequest>& requests, const CancelFn& cancel, bool exact = false);

  // The final hidden states (n, dim) of tokens in a fresh context (see Model::hidden_states).
  void hidden_states(const int32_t* tokens, int64_t n, float* out, const CancelFn& cancel, bool exact = true);

  // Embedding pooling: GGUF <arch>.pooling_type values.
  enum class Pooling { kNone = 0, kMean = 1, kCls = 2, kLast = 3 };
  // What the file declares (<arch>.pooling_type); undeclared: mean for encoders, the last token for
  // decoders (the only position that has seen the whole text).
  Pooling pooling() const;
  // One vector (dim) per token sequence into out (n_seqs, dim): each sequence's hidden states in a
  // fresh context, pooled, and scaled to unit L2 norm when normalize. Throws InvalidArgument for an
  // empty sequence, ContextOverflowError for one longer than n_ctx.
  void embed(const std::vector<std::vector<int32_t>>& seqs, Pooling pooling, bool normalize, float* out,
             const CancelFn& cancel);

 private:
  HeapTrimOnDestroy trim_;  // first: destroyed last, once the members below have freed their memory
  std::unique_ptr<TensorSource> file_;
  const LoraSource* lora_source_ = nullptr;  // file_ itself when adapters were given
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string tokenizer_error_;  // why tokenizer_ is null
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Model> model_;
  int64_t n_ctx_;
  KvDtype kv_dtype_;
  std::shared_ptr<KvPagePool> kv_pool_;
  std::unique_ptr<PrefixCache> prefix_cache_;
  std::once_flag scheduler_once_;
  std::unique_ptr<Scheduler> scheduler_;  // last: its worker stops first, while the rest still exists
  std::mutex mu_;
  std::vector<float> pass_logits_;  // (logit rows, n_vocab) of a pass of several sequences; under mu_

  void check_fits(const Session& s, int64_t n) const;
  // hidden_states() of checked tokens, in s from position 0 (whatever s held before).
  void hidden_states(Session& s, const int32_t* tokens, int64_t n, float* out, const CancelFn& cancel, bool exact);
};

int default_thread_count();

}  // namespace wren

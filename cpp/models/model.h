// The interface every architecture implements, and what the runtime needs to know about a model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "models/weights.h"
#include "attention/kv_cache.h"
#include "util/thread_pool.h"

namespace wren {

class TensorSource;

struct ModelInfo {
  std::string architecture;  // general.architecture
  std::string name;          // general.name (may be empty)
  std::string quant;         // dominant weight type, e.g. "Q4_1"
  int64_t n_params = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_layers = 0;
  int64_t dim = 0;
  int64_t kv_dim = 0;  // per layer, keys (and values) per position
  int64_t head_dim = 0;  // elements of one head's key (kv_dim / KV heads)
  bool causal = true;         // false: an encoder (bidirectional attention over one forward call's tokens)
  int64_t max_positions = 0;  // > 0: learned position embeddings end there (the context cannot exceed it)
};

// Called between layers of long computations; returns true to cancel (Ctrl-C).
using CancelFn = std::function<bool()>;

class Model {
 public:
  virtual ~Model() = default;
  const ModelInfo& info() const { return info_; }

  // Largest number of tokens one forward() call accepts (longer inputs are split by the caller).
  virtual int64_t max_batch() const = 0;

  // Runs tokens[0..n) at positions pos0.. through the network, appending to the cache.
  // seq_len: the sequence's length once the caller's whole input is in (pos0 + n, or more when the
  // caller splits a longer input into several calls), for choices that must hold for the whole input
  // (Phi-3's LongRoPE picks its frequency factors by it).
  // logits: (n, n_vocab) if all_logits, else (1, n_vocab) for the last token.
  // exact: float activations against dequantized weights (reference numerics, slower) instead of
  // 8-bit activations on the quantized blocks.
  virtual void forward(const int32_t* tokens, int64_t n, int64_t pos0, int64_t seq_len, KvCache& cache,
                       float* logits, bool all_logits, bool exact, const CancelFn& cancel) = 0;

  // Like forward(), but writes the final hidden states out (n, dim) — after the last normalization,
  // what an output head would read — instead of logits: the input of embedding pooling. An encoder
  // (info().causal == false) must get a whole sequence in one call, at pos0 = 0. Families without
  // it throw UnsupportedError.
  virtual void hidden_states(const int32_t* tokens, int64_t n, int64_t pos0, int64_t seq_len, KvCache& cache,
                             float* out, bool exact, const CancelFn& cancel);

  // Finishes loading: runs the weight re-layouts recorded while binding (WeightArena). The runtime
  // calls it before every forward() / hidden_states(); after the first, it returns at once.
  void prepare_weights(ThreadPool& pool) { arena_.pack_pending(&pool); }

 protected:
  ModelInfo info_;
  WeightArena arena_;  // packed copies of the quantized matrices (bind with WeightBinder(file, &arena_))
};

// Builds the architecture named by general.architecture (models/registry.cpp).
std::unique_ptr<Model> load_model(const TensorSource& file, ThreadPool& pool, int64_t n_ctx);

}  // namespace wren

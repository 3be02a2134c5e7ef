// The interface every architecture implements, and what the runtime needs to know about a model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/weights.h"
#include "attention/attention.h"
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
  // The rotation of every position depends on the whole input's length (Phi-3's LongRoPE): keys
  // computed for one input are not those another input would compute (no prefix cache).
  bool length_dependent_rope = false;
  int64_t window = 0;         // > 0: the layers marked in `sliding` attend through a window of this many keys
  std::vector<bool> sliding;  // (n_layers) or empty

  // What each sequence's KV cache holds, for this model.
  KvLayout kv_layout(KvDtype dtype) const;
};

// One sequence's tokens in a forward batch.
struct SeqSlice {
  KvSequence* kv = nullptr;  // its cache: the tokens take positions kv->size() .. kv->size() + n - 1
  int64_t n = 0;             // its tokens, consecutive in Batch::tokens
  int64_t seq_len = 0;       // its length once the caller's whole input is in (>= kv->size() + n); see forward()
  bool all_logits = false;   // logits of each of its tokens, else of its last one only
};

// The input of one forward pass: the tokens of one or more sequences, sequence after sequence.
// Every weight is read once for the whole batch; each sequence attends over its own cache only.
struct Batch {
  const int32_t* tokens = nullptr;  // (n_tokens())
  std::vector<SeqSlice> seqs;

  static Batch single(const int32_t* tokens, int64_t n, KvSequence& kv, int64_t seq_len, bool all_logits) {
    return Batch{tokens, {SeqSlice{&kv, n, seq_len, all_logits}}};
  }
  int64_t n_tokens() const;
  int64_t n_logit_rows() const;              // sum of n (all_logits) or 1 over the sequences
  std::vector<int64_t> positions() const;    // (n_tokens()) each token's position in its sequence
  std::vector<SeqRows> rows() const;         // for attend_batch()
  // Batch rows whose logits are wanted, in output order.
  std::vector<int64_t> logit_rows() const;
  // After a successful pass: every sequence's new positions count (KvSequence::advance).
  void advance() const;
};

// Called between layers of long computations; returns true to cancel (Ctrl-C).
using CancelFn = std::function<bool()>;

class Model {
 public:
  virtual ~Model() = default;
  const ModelInfo& info() const { return info_; }

  // Largest number of tokens one forward() call accepts (longer inputs are split by the caller).
  virtual int64_t max_batch() const = 0;

  // Runs a batch through the network: each sequence's tokens are stored in its cache at positions
  // kv->size() on (the caller then advances the caches: Batch::advance()). seq_len: for choices that must hold for a sequence's whole input (Phi-3's
  // LongRoPE picks its frequency factors by it). logits: (batch.n_logit_rows(), n_vocab), the
  // sequences' rows in batch order. exact: float activations against dequantized weights (reference
  // numerics, slower) instead of 8-bit activations on the quantized blocks. At most max_batch()
  // tokens in all.
  virtual void forward(const Batch& batch, float* logits, bool exact, const CancelFn& cancel) = 0;

  // Like forward(), but writes the final hidden states out (n_tokens, dim) — after the last
  // normalization, what an output head would read — instead of logits: the input of embedding
  // pooling. An encoder (info().causal == false) must get each sequence whole, in one call, from
  // position 0. Families without it throw UnsupportedError.
  virtual void hidden_states(const Batch& batch, float* out, bool exact, const CancelFn& cancel);

  // Finishes loading: runs the weight re-layouts recorded while binding (WeightArena). The runtime
  // calls it before every forward() / hidden_states(); after the first, it returns at once.
  // progress: see WeightArena::pack_pending (bytes of packed copies written).
  void prepare_weights(ThreadPool& pool, const ProgressFn& progress = nullptr) {
    arena_.pack_pending(&pool, progress);
  }
  uint64_t pending_weight_bytes() const { return arena_.pending_bytes(); }

 protected:
  ModelInfo info_;
  WeightArena arena_;  // packed copies of the quantized matrices (bind with WeightBinder(file, &arena_))
};

// Builds the architecture named by general.architecture (models/registry.cpp).
std::unique_ptr<Model> load_model(const TensorSource& file, ThreadPool& pool, int64_t n_ctx);

}  // namespace wren

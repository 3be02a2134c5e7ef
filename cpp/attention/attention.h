// Grouped-query attention of new query rows over one layer of a KV cache: the decode path (few rows,
// per-row kernels, keys split across threads) and the prefill path (many rows, tiled GEMMs with an
// online softmax), picked by the number of rows. Both read the cache through a KvLayerView.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "attention/kv_cache.h"
#include "attention/mask.h"
#include "util/thread_pool.h"

namespace wren {

// The prefill path groups a call's query rows in blocks of this many, from its first row. Two
// calls whose rows start at multiples of it (and take the same path) compute every row alike, bit
// for bit, however the rows are split between calls: what lets a reused prefix equal a cold run.
constexpr int64_t kAttentionBlockRows = 64;
// Calls with fewer query rows than this take the decode path (per-row kernels), whose float
// summation order differs from the prefill path's.
constexpr int64_t kAttentionPrefillMinRows = 16;

struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Scratch for attention calls on n_threads threads: the prefill part is fixed (it works in tiles);
// the decode part, (group, keys) probabilities per thread, grows with the longest key run decoded so
// far (reserve_decode), so memory follows use rather than n_ctx times a head count read from a file.
struct AttentionScratch {
  AttentionScratch(const AttentionShape& a, int n_threads);
  // Makes thread(t) hold at least the decode probabilities and a run's output for `keys` keys.
  // Called between parallel regions (it may move per_thread).
  void reserve_decode(int64_t keys);
  std::unique_ptr<float[]> per_thread;  // (n_threads, stride) probabilities, K/V tiles, running max/sum
  std::vector<float> partials;          // (tasks, group, head_dim + 2) split-key decode results; grows with the batch
  int64_t stride;        // floats per thread in per_thread
  int64_t max_partials;  // split-key decode tasks `partials` holds
  float* thread(int t) { return per_thread.get() + t * stride; }

 private:
  int64_t group_, head_dim_;
  int n_threads_;
};

// out (n, q_dim) = attention of the query rows q (n, q_dim) at positions rows over the view's keys
// and values [0, rows.end()), shaped by mask. The query heads sharing a KV head are processed
// together, so each K/V row is read once per group. InvalidArgument when the view holds fewer than
// rows.end() positions or another head layout than shape.
void attention(const float* q, const KvLayerView& kv, const QueryPositions& rows, const AttentionShape& shape,
               const AttentionMask& mask, float* out, AttentionScratch& scratch, ThreadPool& pool);

// The rows of a forward batch that belong to one sequence: n consecutive rows whose keys and values
// go to positions kv->size() .. kv->size() + n - 1 of that sequence's cache.
struct SeqRows {
  KvSequence* kv = nullptr;
  int64_t n = 0;
};

// Self-attention of a batch of sequences at one layer: each sequence's new keys and values
// k, v (rows, kv_dim) are stored in its cache, then its query rows q (rows, q_dim) attend over its
// own cache only, into out (rows, q_dim). Each sequence takes the path its own row count picks, so
// its result does not depend on what else is in the batch.
void attend_batch(int64_t layer, const float* q, const float* k, const float* v, const std::vector<SeqRows>& seqs,
                  const AttentionShape& shape, const AttentionMask& mask, float* out, AttentionScratch& scratch,
                  ThreadPool& pool);

}  // namespace wren

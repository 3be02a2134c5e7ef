#include "attention/attention.h"

#include <algorithm>

#include "attention/paths.h"
#include "util/errors.h"

namespace wren {

using namespace attention_detail;

namespace {

int64_t decode_floats(int64_t group, int64_t head_dim, int64_t keys) {
  return group * keys + group * head_dim;  // (group, keys) probabilities, a run's output
}

int64_t prefill_floats(const AttentionShape& a) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  return kQueryBlock * kKeyTile        // (rows, tile) probabilities
         + 2 * kKeyTile * a.head_dim   // K and V tiles in F32
         + 2 * group * kQueryBlock;    // running max and sum
}

// Split-key decode tasks the scratch holds results for: enough to give each thread
// kTasksPerThread tasks whenever (rows x KV heads) alone would not.
int64_t max_decode_tasks(int n_threads) { return 2 * kTasksPerThread * n_threads; }

// Keys the decode part holds from the start: short sequences never reallocate.
constexpr int64_t kInitialDecodeKeys = 1024;

}  // namespace

AttentionScratch::AttentionScratch(const AttentionShape& a, int n_threads)
    : partials(static_cast<size_t>(max_decode_tasks(n_threads) * a.n_heads / a.n_kv_heads * (a.head_dim + 2))),
      stride(0),
      max_partials(max_decode_tasks(n_threads)),
      group_(a.n_heads / a.n_kv_heads),
      head_dim_(a.head_dim),
      n_threads_(n_threads) {
  const int64_t floats = std::max(prefill_floats(a), decode_floats(group_, head_dim_, kInitialDecodeKeys));
  per_thread.reset(new float[static_cast<size_t>(n_threads) * floats]);
  stride = floats;
}

void AttentionScratch::reserve_decode(int64_t keys) {
  const int64_t need = decode_floats(group_, head_dim_, keys);
  if (need <= stride) return;
  const int64_t floats = std::max(need, stride + stride / 2);  // geometric: few reallocations as a sequence grows
  per_thread.reset(new float[static_cast<size_t>(n_threads_) * floats]);
  stride = floats;
}

void attention(const float* q, const KvLayerView& kv, const QueryPositions& rows, const AttentionShape& s,
               const AttentionMask& mask, float* out, AttentionScratch& scratch, ThreadPool& pool) {
  WREN_CHECK(rows.pos0 >= 0 && rows.n >= 0 && rows.end() <= kv.n_positions, InvalidArgument, "attention of positions [",
             rows.pos0, ", ", rows.end(), ") over a cache view of ", kv.n_positions, " positions");
  WREN_CHECK(kv.n_kv_heads == s.n_kv_heads && kv.head_dim == s.head_dim, InvalidArgument, "attention: the cache holds ",
             kv.n_kv_heads, " KV heads of ", kv.head_dim, ", the layer has ", s.n_kv_heads, " of ", s.head_dim);
  if (rows.n >= kGemmAttentionMin)
    attention_prefill(q, kv, rows, s, mask, out, scratch, pool);
  else
    attention_decode({DecodeItem{q, kv, rows, out}}, s, mask, scratch, pool);
}

void attend_batch(int64_t layer, const float* q, const float* k, const float* v, const std::vector<SeqRows>& seqs,
                  const AttentionShape& shape, const AttentionMask& mask, float* out, AttentionScratch& scratch,
                  ThreadPool& pool) {
  // Prompt-sized sequences one by one (tiled GEMMs); decode-sized ones all in one parallel loop.
  std::vector<DecodeItem> decoding;
  int64_t row = 0;
  for (const SeqRows& s : seqs) {
    const int64_t pos0 = s.kv->size();
    s.kv->store(layer, pos0, s.n, k + row * shape.kv_dim(), v + row * shape.kv_dim());
    const KvLayerView view = s.kv->view(layer, pos0 + s.n);
    const float* qs = q + row * shape.q_dim();
    float* os = out + row * shape.q_dim();
    if (s.n >= kGemmAttentionMin)
      attention(qs, view, {pos0, s.n}, shape, mask, os, scratch, pool);
    else if (s.n > 0)
      decoding.push_back(DecodeItem{qs, view, {pos0, s.n}, os});
    row += s.n;
  }
  if (!decoding.empty()) attention_decode(decoding, shape, mask, scratch, pool);
}

}  // namespace wren

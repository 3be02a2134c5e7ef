// Internal to cpp/attention/: the decode and prefill paths, their tiling constants and the score
// shaping they share. Models include attention/attention.h, not this.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "attention/attention.h"
#include "kernels/kernel_table.h"

namespace wren::attention_detail {

// Query rows from which attention runs as tiled GEMMs (prefill) instead of per-row kernels (decode).
constexpr int64_t kGemmAttentionMin = kAttentionPrefillMinRows;
// Prefill: query rows per task and keys per tile. Scratch per thread is constant in the context.
constexpr int64_t kQueryBlock = kAttentionBlockRows;
constexpr int64_t kKeyTile = 512;
// Decode: split the keys of a (row, KV head) across tasks when there are fewer than this many tasks
// per thread, but never into pieces shorter than kSplitMinKeys.
constexpr int64_t kTasksPerThread = 4;
constexpr int64_t kSplitMinKeys = 128;

using Row = Eigen::Map<Eigen::ArrayXf>;

inline float score_scale(const AttentionMask& m, int64_t head_dim) {
  return m.scale != 0.f ? m.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

inline bool shapes_scores(const AttentionMask& m) { return m.softcap > 0.f || m.alibi; }

// Soft-capping and ALiBi on already scaled scores s[0..len) of keys j0..j0+len for head h.
inline void shape_scores(const AttentionMask& m, int64_t h, int64_t j0, float* s, int64_t len) {
  if (m.softcap > 0.f) {
    Row r(s, len);
    r = m.softcap * (r / m.softcap).tanh();
  }
  if (m.alibi) {
    const float slope = m.alibi[h];
    for (int64_t j = 0; j < len; ++j) s[j] += slope * static_cast<float>(j0 + j);
  }
}

// In place p = exp(p - max); returns {max, sum} of the row's len entries.
inline std::pair<float, float> exp_shifted(const KernelTable& kt, float* p, int64_t len) {
  const float mx = Row(p, len).maxCoeff();
  return {mx, kt.exp_sum(p, len, mx)};
}

// The query rows of one sequence for the decode path.
struct DecodeItem {
  const float* q;  // (rows.n, q_dim)
  KvLayerView kv;
  QueryPositions rows;
  float* out;      // (rows.n, q_dim)
};

// The two paths (attention/decode.cpp, attention/prefill.cpp); attention() picks one. The decode
// path takes several sequences in one parallel loop (batched decoding: one dispatch per layer).
void attention_decode(const std::vector<DecodeItem>& items, const AttentionShape& s, const AttentionMask& mask,
                      AttentionScratch& scratch, ThreadPool& pool);
void attention_prefill(const float* q, const KvLayerView& kv, const QueryPositions& rows, const AttentionShape& s,
                       const AttentionMask& mask, float* out, AttentionScratch& scratch, ThreadPool& pool);

}  // namespace wren::attention_detail

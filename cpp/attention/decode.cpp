// Decode: few query rows. One task per (row, KV head, key split); the group's query heads are
// adjacent in q and out (stride head_dim), so the kernels see the group as n_q rows. A row whose
// keys alone would leave threads idle has them split, and the splits merged afterwards.
#include <algorithm>
#include <limits>

#include "attention/paths.h"

namespace wren::attention_detail {

void attention_decode(const float* q, const KvLayerView& kv, const QueryPositions& rows, const AttentionShape& s,
                      const AttentionMask& mask, float* out, AttentionScratch& scratch, ThreadPool& pool) {
  const int64_t hd = s.head_dim, q_dim = s.q_dim(), n = rows.n, pos0 = rows.pos0;
  const int64_t group = s.n_heads / s.n_kv_heads;
  const float scale = score_scale(mask, hd);
  const KernelTable& kt = active_kernels();
  const AttnScoresFn scores = kv.dtype == KvDtype::F16 ? kt.attn_scores_f16 : kt.attn_scores_f32;
  const AttnValuesFn values = kv.dtype == KvDtype::F16 ? kt.attn_values_f16 : kt.attn_values_f32;

  const int64_t base_tasks = n * s.n_kv_heads;
  const int64_t want = kTasksPerThread * pool.size();
  const int64_t min_visible = mask.window > 0 ? std::min<int64_t>(mask.window, pos0 + 1) : pos0 + 1;
  int64_t n_splits = std::min((want + base_tasks - 1) / base_tasks, min_visible / kSplitMinKeys);
  n_splits = std::max<int64_t>(1, std::min(n_splits, scratch.max_partials / base_tasks));
  const int64_t part = group * (hd + 2);  // per task: (group, hd) unnormalized output, then max, sum

  pool.parallel_for(base_tasks * n_splits, [&](int64_t task, int thread) {
    const int64_t split = task % n_splits, i = task / n_splits / s.n_kv_heads, g = task / n_splits % s.n_kv_heads;
    const KeyRange keys = visible_keys(mask, rows.at(i), rows.end());
    const int64_t visible = keys.hi - keys.lo;
    const int64_t j0 = keys.lo + split * visible / n_splits, j1 = keys.lo + (split + 1) * visible / n_splits;
    const int64_t len = j1 - j0;
    const float* qg = q + i * q_dim + g * group * hd;  // (group, hd)
    float* p = scratch.thread(thread);                 // (group, len)
    // The keys come in page-long contiguous runs; each run's scores land in their columns of p.
    for (int64_t c0 = j0, c1; c0 < j1; c0 = c1) {
      c1 = kv.run_end(c0, j1);
      scores(qg, hd, group, kv.k_row(g, c0), hd, c1 - c0, hd, scale, p + (c0 - j0), len);
    }
    if (shapes_scores(mask))
      for (int64_t a = 0; a < group; ++a) shape_scores(mask, g * group + a, j0, p + a * len, len);
    float* o;  // (group, hd) rows hd apart
    if (n_splits == 1) {
      for (int64_t a = 0; a < group; ++a) {
        const float sum = exp_shifted(kt, p + a * len, len).second;
        Row(p + a * len, len) /= sum;
      }
      o = out + i * q_dim + g * group * hd;
    } else {
      o = scratch.partials.get() + task * part;  // (group, hd), then (group) max, (group) sum
      for (int64_t a = 0; a < group; ++a) {
        const auto [mx, sum] = exp_shifted(kt, p + a * len, len);
        o[group * hd + a] = mx;
        o[group * hd + group + a] = sum;
      }
    }
    // Each run's weighted values: the first written to o, the others summed into it.
    float* run_out = p + group * len;  // (group, hd)
    for (int64_t c0 = j0, c1; c0 < j1; c0 = c1) {
      c1 = kv.run_end(c0, j1);
      const bool first = c0 == j0;
      values(p + (c0 - j0), len, group, kv.v_row(g, c0), hd, c1 - c0, hd, first ? o : run_out, hd);
      if (!first)
        for (int64_t a = 0; a < group; ++a) Row(o + a * hd, hd) += Row(run_out + a * hd, hd);
    }
  });
  if (n_splits == 1) return;

  // Merge the splits of each (row, KV head): rescale each to the common max, divide by the total.
  pool.parallel_for(base_tasks, [&](int64_t t, int) {
    const int64_t i = t / s.n_kv_heads, g = t % s.n_kv_heads;
    const float* parts = scratch.partials.get() + t * n_splits * part;
    for (int64_t a = 0; a < group; ++a) {
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < n_splits; ++k) mx = std::max(mx, parts[k * part + group * hd + a]);
      Row o(out + i * q_dim + (g * group + a) * hd, hd);
      o.setZero();
      float total = 0.f;
      for (int64_t k = 0; k < n_splits; ++k) {
        const float* pk = parts + k * part;
        const float w = std::exp(pk[group * hd + a] - mx);
        total += w * pk[group * hd + group + a];
        o += w * Eigen::Map<const Eigen::ArrayXf>(pk + a * hd, hd);
      }
      o /= total;
    }
  });
}

}  // namespace wren::attention_detail

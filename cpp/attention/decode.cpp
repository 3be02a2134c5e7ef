// Decode: few query rows, of one sequence or several. One task per (sequence, row, KV head, key split); the group's query heads are
// adjacent in q and out (stride head_dim), so the kernels see the group as n_q rows. A row whose
// keys alone would leave threads idle has them split, and the splits merged afterwards.
#include <algorithm>
#include <limits>
#include <vector>

#include "attention/paths.h"

namespace wren::attention_detail {

int64_t decode_splits(const QueryPositions& rows, const AttentionShape& s, const AttentionMask& mask,
                      const AttentionScratch& scratch, const ThreadPool& pool) {
  const int64_t base_tasks = rows.n * s.n_kv_heads;
  const int64_t want = kTasksPerThread * pool.size();
  const int64_t min_visible = mask.window > 0 ? std::min<int64_t>(mask.window, rows.pos0 + 1) : rows.pos0 + 1;
  const int64_t n_splits = std::min((want + base_tasks - 1) / base_tasks, min_visible / kSplitMinKeys);
  return std::max<int64_t>(1, std::min(n_splits, scratch.max_partials / base_tasks));
}

void attention_decode(const std::vector<DecodeItem>& items, const AttentionShape& s, const AttentionMask& mask,
                      AttentionScratch& scratch, ThreadPool& pool) {
  const int64_t hd = s.head_dim, q_dim = s.q_dim();
  const int64_t group = s.n_heads / s.n_kv_heads;
  const float scale = score_scale(mask, hd);
  const KernelTable& kt = active_kernels();
  const int64_t part = group * (hd + 2);  // per split task: (group, hd) unnormalized output, then max, sum

  // Each item keeps the split count it would have alone (so its result does not depend on the
  // batch); tasks are numbered item after item, and split items own consecutive partials.
  const size_t n_items = items.size();
  std::vector<int64_t> splits(n_items), first_task(n_items + 1, 0), first_partial(n_items + 1, 0);
  int64_t longest = 0;  // keys of the longest split task: the probabilities each thread holds
  for (size_t i = 0; i < n_items; ++i) {
    const QueryPositions& rows = items[i].rows;
    splits[i] = decode_splits(rows, s, mask, scratch, pool);
    const int64_t tasks = rows.n * s.n_kv_heads * splits[i];
    first_task[i + 1] = first_task[i] + tasks;
    first_partial[i + 1] = first_partial[i] + (splits[i] > 1 ? tasks * part : 0);
    for (int64_t r = 0; r < rows.n; ++r) {
      const KeyRange keys = visible_keys(mask, rows.at(r), rows.end());
      longest = std::max(longest, (keys.hi - keys.lo + splits[i] - 1) / splits[i]);
    }
  }
  scratch.reserve_decode(longest);
  if (static_cast<int64_t>(scratch.partials.size()) < first_partial[n_items])
    scratch.partials.resize(static_cast<size_t>(first_partial[n_items]));  // grows with the widest batch, once

  pool.parallel_for(first_task[n_items], [&](int64_t global, int thread) {
    const size_t it = static_cast<size_t>(std::upper_bound(first_task.begin(), first_task.end(), global) -
                                          first_task.begin() - 1);
    const DecodeItem& item = items[it];
    const KvLayerView& kv = item.kv;
    const int64_t n_splits = splits[it], task = global - first_task[it];
    const int64_t split = task % n_splits, i = task / n_splits / s.n_kv_heads, g = task / n_splits % s.n_kv_heads;
    const KeyRange keys = visible_keys(mask, item.rows.at(i), item.rows.end());
    const int64_t visible = keys.hi - keys.lo;
    const int64_t j0 = keys.lo + split * visible / n_splits, j1 = keys.lo + (split + 1) * visible / n_splits;
    const int64_t len = j1 - j0;
    const float* qg = item.q + i * q_dim + g * group * hd;  // (group, hd)
    float* p = scratch.thread(thread);                      // (group, len)
    // The keys come in page-long contiguous runs; each run's scores land in their columns of p.
    for (int64_t c0 = j0, c1; c0 < j1; c0 = c1) {
      c1 = kv.run_end(c0, j1);
      const AttnScoresFn scores = kv.dtype == KvDtype::F16 ? kt.attn_scores_f16 : kt.attn_scores_f32;
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
      o = item.out + i * q_dim + g * group * hd;
    } else {
      o = scratch.partials.data() + first_partial[it] + task * part;  // (group, hd), (group) max, (group) sum
      for (int64_t a = 0; a < group; ++a) {
        const auto [mx, sum] = exp_shifted(kt, p + a * len, len);
        o[group * hd + a] = mx;
        o[group * hd + group + a] = sum;
      }
    }
    // Each run's weighted values: the first written to o, the others summed into it.
    const AttnValuesFn values = kv.dtype == KvDtype::F16 ? kt.attn_values_f16 : kt.attn_values_f32;
    float* run_out = p + group * len;  // (group, hd)
    for (int64_t c0 = j0, c1; c0 < j1; c0 = c1) {
      c1 = kv.run_end(c0, j1);
      const bool first = c0 == j0;
      values(p + (c0 - j0), len, group, kv.v_row(g, c0), hd, c1 - c0, hd, first ? o : run_out, hd);
      if (!first)
        for (int64_t a = 0; a < group; ++a) Row(o + a * hd, hd) += Row(run_out + a * hd, hd);
    }
  });

  // Merge the splits of each (row, KV head) of the split items: rescale each to the common max,
  // divide by the total.
  std::vector<int64_t> first_merge(n_items + 1, 0);
  for (size_t i = 0; i < n_items; ++i)
    first_merge[i + 1] = first_merge[i] + (splits[i] > 1 ? items[i].rows.n * s.n_kv_heads : 0);
  if (first_merge[n_items] == 0) return;
  pool.parallel_for(first_merge[n_items], [&](int64_t global, int) {
    const size_t it = static_cast<size_t>(std::upper_bound(first_merge.begin(), first_merge.end(), global) -
                                          first_merge.begin() - 1);
    const DecodeItem& item = items[it];
    const int64_t n_splits = splits[it], t = global - first_merge[it];
    const int64_t i = t / s.n_kv_heads, g = t % s.n_kv_heads;
    const float* parts = scratch.partials.data() + first_partial[it] + t * n_splits * part;
    for (int64_t a = 0; a < group; ++a) {
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < n_splits; ++k) mx = std::max(mx, parts[k * part + group * hd + a]);
      Row o(item.out + i * q_dim + (g * group + a) * hd, hd);
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

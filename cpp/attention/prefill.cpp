// Prefill: many query rows. One task per (block of query rows, KV head); keys in tiles with a
// running (online) softmax, so scratch stays constant however long the context. A tile of K and V
// is converted to F32 once and serves all the group's query heads through two sgemms each.
#include <algorithm>
#include <limits>

#include "attention/paths.h"
#include "util/blas.h"

namespace wren::attention_detail {

void attention_prefill(const float* q, const KvLayerView& kv, const QueryPositions& rows, const AttentionShape& s,
                       const AttentionMask& mask, float* out, AttentionScratch& scratch, ThreadPool& pool) {
  const int64_t hd = s.head_dim, q_dim = s.q_dim(), n = rows.n, pos0 = rows.pos0;
  const int64_t group = s.n_heads / s.n_kv_heads;
  const float scale = score_scale(mask, hd);
  const KernelTable& kt = active_kernels();
  const bool f16 = kv.dtype == KvDtype::F16;
  const int64_t n_blocks = (n + kQueryBlock - 1) / kQueryBlock;
  const float neg_inf = -std::numeric_limits<float>::infinity();

  pool.parallel_for(n_blocks * s.n_kv_heads, [&](int64_t task, int thread) {
    // Last blocks first: they see the most keys, so the long tasks start early.
    const int64_t b = n_blocks - 1 - task / s.n_kv_heads, g = task % s.n_kv_heads;
    const int64_t r0 = b * kQueryBlock, block_rows = std::min(kQueryBlock, n - r0);
    // Keys [keys_lo, keys_hi) cover what any row of the block sees.
    const int64_t keys_lo = visible_keys(mask, rows.at(r0), rows.end()).lo;
    const int64_t keys_hi = visible_keys(mask, rows.at(r0 + block_rows - 1), rows.end()).hi;
    float* S = scratch.thread(thread);       // (block_rows, kKeyTile) scores, then probabilities
    float* kf = S + kQueryBlock * kKeyTile;  // (kKeyTile, hd) K tile in F32 (F16 cache)
    float* vf = kf + kKeyTile * hd;          // (kKeyTile, hd)
    float* m = vf + kKeyTile * hd;           // (group, block_rows) running max
    float* l = m + group * kQueryBlock;      // (group, block_rows) running sum
    std::fill(m, m + group * kQueryBlock, neg_inf);
    std::fill(l, l + group * kQueryBlock, 0.f);
    for (int64_t r = 0; r < block_rows; ++r) {
      float* o = out + (r0 + r) * q_dim + g * group * hd;  // the group's heads: adjacent
      std::fill(o, o + group * hd, 0.f);
    }

    for (int64_t t0 = keys_lo; t0 < keys_hi; t0 += kKeyTile) {
      const int64_t tk = std::min(kKeyTile, keys_hi - t0);
      // (tk, hd) K and V of the tile in F32: read in place when one page holds the tile in F32,
      // else gathered run by run (a page's rows of a head are contiguous) and converted.
      const float *K = kf, *V = vf;
      if (!f16 && kv.run_end(t0, t0 + tk) == t0 + tk) {
        K = static_cast<const float*>(kv.k_row(g, t0));
        V = static_cast<const float*>(kv.v_row(g, t0));
      } else {
        for (int64_t c0 = t0, c1; c0 < t0 + tk; c0 = c1) {
          c1 = kv.run_end(c0, t0 + tk);
          const int64_t count = (c1 - c0) * hd;
          float* kd = kf + (c0 - t0) * hd;
          float* vd = vf + (c0 - t0) * hd;
          if (f16) {
            kt.f16_to_f32(static_cast<const uint16_t*>(kv.k_row(g, c0)), kd, count);
            kt.f16_to_f32(static_cast<const uint16_t*>(kv.v_row(g, c0)), vd, count);
          } else {
            const float* ks = static_cast<const float*>(kv.k_row(g, c0));
            const float* vs = static_cast<const float*>(kv.v_row(g, c0));
            std::copy(ks, ks + count, kd);
            std::copy(vs, vs + count, vd);
          }
        }
      }
      // Rows before `first` see none of this tile (causal: their last key comes before it).
      const int64_t first = mask.causal ? std::clamp<int64_t>(t0 - pos0 - r0, 0, block_rows) : 0;
      const int64_t active = block_rows - first;
      for (int64_t a = 0; a < group; ++a) {
        const int64_t h = g * group + a;
        float* Sa = S + first * kKeyTile;                  // (active, tk)
        float* O = out + (r0 + first) * q_dim + h * hd;    // (active, hd), rows q_dim apart
        blas::sgemm(true, static_cast<int>(active), static_cast<int>(tk), static_cast<int>(hd), scale,
                    q + (r0 + first) * q_dim + h * hd, static_cast<int>(q_dim), K, static_cast<int>(hd), 0.f, Sa,
                    static_cast<int>(kKeyTile));
        for (int64_t r = first; r < block_rows; ++r) {
          // This row's keys within the tile: [lo, hi); the rest get probability 0.
          const KeyRange keys = visible_keys(mask, rows.at(r0 + r), rows.end());
          const int64_t lo = std::clamp<int64_t>(keys.lo - t0, 0, tk), hi = std::clamp<int64_t>(keys.hi - t0, 0, tk);
          float* p = S + r * kKeyTile;
          if (hi <= lo) {  // nothing visible here (outside its window)
            std::fill(p, p + tk, 0.f);
            continue;
          }
          if (shapes_scores(mask)) shape_scores(mask, h, t0 + lo, p + lo, hi - lo);
          float& mr = m[a * kQueryBlock + r];
          float& lr = l[a * kQueryBlock + r];
          const float m_new = std::max(mr, Row(p + lo, hi - lo).maxCoeff());
          const float keep = std::exp(mr - m_new);  // 0 on the first visible tile (mr = -inf)
          std::fill(p, p + lo, 0.f);
          std::fill(p + hi, p + tk, 0.f);
          lr = lr * keep + kt.exp_sum(p + lo, hi - lo, m_new);
          mr = m_new;
          if (keep != 1.f) Row(out + (r0 + r) * q_dim + h * hd, hd) *= keep;
        }
        blas::sgemm(false, static_cast<int>(active), static_cast<int>(hd), static_cast<int>(tk), 1.f, Sa,
                    static_cast<int>(kKeyTile), V, static_cast<int>(hd), 1.f, O, static_cast<int>(q_dim));
      }
    }
    for (int64_t a = 0; a < group; ++a)
      for (int64_t r = 0; r < block_rows; ++r)
        Row(out + (r0 + r) * q_dim + (g * group + a) * hd, hd) /= l[a * kQueryBlock + r];
  });
}

}  // namespace wren::attention_detail

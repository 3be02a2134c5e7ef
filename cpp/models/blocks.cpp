#include "models/blocks.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "kernels/kernel_table.h"
#include "util/blas.h"
#include "util/errors.h"

namespace wren {

// Query rows from which attention runs as tiled GEMMs (prefill) instead of per-row kernels (decode).
constexpr int64_t kGemmAttentionMin = 16;
// Prefill: query rows per task and keys per tile. Scratch per thread is constant in the context.
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyTile = 512;
// Decode: split the keys of a (row, KV head) across tasks when there are fewer than this many tasks
// per thread, but never into pieces shorter than kSplitMinKeys.
constexpr int64_t kTasksPerThread = 4;
constexpr int64_t kSplitMinKeys = 128;
// Tokens per MLP pass when the weights are packed (see mlp_tokens).
constexpr int64_t kMlpTokens = 128;

static int64_t attention_scratch_floats(const AttentionShape& a, int64_t n_ctx) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t decode = group * n_ctx;                                  // (group, keys) probabilities
  const int64_t prefill = kQueryBlock * kKeyTile                         // (rows, tile) probabilities
                          + 2 * kKeyTile * a.head_dim                    // K and V tiles in F32
                          + 2 * group * kQueryBlock;                     // running max and sum
  return std::max(decode, prefill);
}

// Split-key decode tasks the workspace holds results for: enough to give each thread
// kTasksPerThread tasks whenever (rows x KV heads) alone would not.
static int64_t max_decode_tasks(int n_threads) { return 2 * kTasksPerThread * n_threads; }

Workspace::Workspace(int64_t b, int64_t dim, const AttentionShape& a, int64_t ffn_dim, int64_t n_ctx, int n_threads)
    : x(new float[b * dim]),
      xb(new float[b * dim]),
      q(new float[b * a.q_dim()]),
      k(new float[b * a.kv_dim()]),
      v(new float[b * a.kv_dim()]),
      att(new float[b * a.q_dim()]),
      hb(new float[b * ffn_dim]),
      hb2(new float[b * ffn_dim]),
      attn(new float[static_cast<size_t>(n_threads) * attention_scratch_floats(a, n_ctx)]),
      partials(new float[static_cast<size_t>(max_decode_tasks(n_threads) * a.n_heads / a.n_kv_heads *
                                             (a.head_dim + 2))]),
      mm(n_threads, std::max({dim, ffn_dim, a.q_dim()}), b),
      attn_stride(attention_scratch_floats(a, n_ctx)),
      max_partials(max_decode_tasks(n_threads)) {}

namespace {

// One KV head's rows in a layer of the cache (contiguous: row j at j * stride elements).
struct KvHead {
  const uint8_t* k;  // row j of the head at k + j * row_bytes
  const uint8_t* v;
  int64_t stride;    // elements from one row to the next (head_dim)
  size_t row_bytes;
  bool f16;
  KvHead(const KvCache& c, int64_t layer, int64_t g)
      : k(static_cast<const uint8_t*>(c.k(layer, g))),
        v(static_cast<const uint8_t*>(c.v(layer, g))),
        stride(c.head_dim()),
        row_bytes(c.head_dim() * c.element_size()),
        f16(c.dtype() == KvDtype::F16) {}
  const void* k_row(int64_t j) const { return k + j * row_bytes; }
  const void* v_row(int64_t j) const { return v + j * row_bytes; }
};

using Row = Eigen::Map<Eigen::ArrayXf>;

// The keys [lo, hi) the query at position p sees when the batch ends at position end (exclusive).
struct KeyRange {
  int64_t lo, hi;
};
KeyRange visible_keys(const AttentionMask& m, int64_t p, int64_t end) {
  const int64_t hi = m.causal ? p + 1 : end;
  const int64_t lo = m.window > 0 ? std::max<int64_t>(0, p - m.window + 1) : 0;
  return {lo, hi};
}

// Soft-capping and ALiBi on already scaled scores s[0..len) of keys j0..j0+len for head h.
void shape_scores(const AttentionMask& m, int64_t h, int64_t j0, float* s, int64_t len) {
  if (m.softcap > 0.f) {
    Row r(s, len);
    r = m.softcap * (r / m.softcap).tanh();
  }
  if (m.alibi) {
    const float slope = m.alibi[h];
    for (int64_t j = 0; j < len; ++j) s[j] += slope * static_cast<float>(j0 + j);
  }
}
bool shapes_scores(const AttentionMask& m) { return m.softcap > 0.f || m.alibi; }

float score_scale(const AttentionMask& m, int64_t head_dim) {
  return m.scale != 0.f ? m.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

// In place p = exp(p - max); returns {max, sum} of the row's len entries.
std::pair<float, float> exp_shifted(const KernelTable& kt, float* p, int64_t len) {
  const float mx = Row(p, len).maxCoeff();
  return {mx, kt.exp_sum(p, len, mx)};
}

// Decode: few query rows. One task per (row, KV head, key split); the group's query heads are
// adjacent in q and out (stride head_dim), so the kernels see the group as n_q rows.
void attention_decode(const float* q, const KvCache& cache, int64_t layer, int64_t n, int64_t pos0,
                      const AttentionShape& s, const AttentionMask& mask, float* out, Workspace& ws,
                      ThreadPool& pool) {
  const int64_t hd = s.head_dim, q_dim = s.q_dim();
  const int64_t group = s.n_heads / s.n_kv_heads;
  const float scale = score_scale(mask, hd);
  const KernelTable& kt = active_kernels();
  const AttnScoresFn scores = cache.dtype() == KvDtype::F16 ? kt.attn_scores_f16 : kt.attn_scores_f32;
  const AttnValuesFn values = cache.dtype() == KvDtype::F16 ? kt.attn_values_f16 : kt.attn_values_f32;

  const int64_t base_tasks = n * s.n_kv_heads;
  const int64_t want = kTasksPerThread * pool.size();
  const int64_t min_visible = mask.window > 0 ? std::min<int64_t>(mask.window, pos0 + 1) : pos0 + 1;
  int64_t n_splits = std::min((want + base_tasks - 1) / base_tasks, min_visible / kSplitMinKeys);
  n_splits = std::max<int64_t>(1, std::min(n_splits, ws.max_partials / base_tasks));
  const int64_t part = group * (hd + 2);  // per task: (group, hd) unnormalized output, then max, sum

  pool.parallel_for(base_tasks * n_splits, [&](int64_t task, int thread) {
    const int64_t split = task % n_splits, i = task / n_splits / s.n_kv_heads, g = task / n_splits % s.n_kv_heads;
    const KeyRange keys = visible_keys(mask, pos0 + i, pos0 + n);
    const int64_t visible = keys.hi - keys.lo;
    const int64_t j0 = keys.lo + split * visible / n_splits, j1 = keys.lo + (split + 1) * visible / n_splits;
    const int64_t len = j1 - j0;
    const KvHead kv(cache, layer, g);
    const float* qg = q + i * q_dim + g * group * hd;  // (group, hd)
    float* p = ws.attn_scratch(thread);                 // (group, len)
    scores(qg, hd, group, kv.k_row(j0), kv.stride, len, hd, scale, p, len);
    if (shapes_scores(mask))
      for (int64_t a = 0; a < group; ++a) shape_scores(mask, g * group + a, j0, p + a * len, len);
    if (n_splits == 1) {
      for (int64_t a = 0; a < group; ++a) {
        const float sum = exp_shifted(kt, p + a * len, len).second;
        Row(p + a * len, len) /= sum;
      }
      values(p, len, group, kv.v_row(j0), kv.stride, len, hd, out + i * q_dim + g * group * hd, hd);
      return;
    }
    float* o = ws.partials.get() + task * part;  // (group, hd), then (group) max, (group) sum
    for (int64_t a = 0; a < group; ++a) {
      const auto [mx, sum] = exp_shifted(kt, p + a * len, len);
      o[group * hd + a] = mx;
      o[group * hd + group + a] = sum;
    }
    values(p, len, group, kv.v_row(j0), kv.stride, len, hd, o, hd);
  });
  if (n_splits == 1) return;

  // Merge the splits of each (row, KV head): rescale each to the common max, divide by the total.
  pool.parallel_for(base_tasks, [&](int64_t t, int) {
    const int64_t i = t / s.n_kv_heads, g = t % s.n_kv_heads;
    const float* parts = ws.partials.get() + t * n_splits * part;
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

// Prefill: many query rows. One task per (block of query rows, KV head); keys in tiles with a
// running (online) softmax, so scratch stays constant however long the context. A tile of K and V
// is converted to F32 once and serves all the group's query heads through two sgemms each.
void attention_prefill(const float* q, const KvCache& cache, int64_t layer, int64_t n, int64_t pos0,
                       const AttentionShape& s, const AttentionMask& mask, float* out, Workspace& ws,
                       ThreadPool& pool) {
  const int64_t hd = s.head_dim, q_dim = s.q_dim();
  const int64_t group = s.n_heads / s.n_kv_heads;
  const float scale = score_scale(mask, hd);
  const KernelTable& kt = active_kernels();
  const int64_t n_blocks = (n + kQueryBlock - 1) / kQueryBlock;
  const float neg_inf = -std::numeric_limits<float>::infinity();

  pool.parallel_for(n_blocks * s.n_kv_heads, [&](int64_t task, int thread) {
    // Last blocks first: they see the most keys, so the long tasks start early.
    const int64_t b = n_blocks - 1 - task / s.n_kv_heads, g = task % s.n_kv_heads;
    const int64_t r0 = b * kQueryBlock, rows = std::min(kQueryBlock, n - r0);
    // Keys [keys_lo, keys_hi) cover what any row of the block sees.
    const int64_t keys_lo = visible_keys(mask, pos0 + r0, pos0 + n).lo;
    const int64_t keys_hi = visible_keys(mask, pos0 + r0 + rows - 1, pos0 + n).hi;
    const KvHead kv(cache, layer, g);
    float* S = ws.attn_scratch(thread);   // (rows, kKeyTile) scores, then probabilities
    float* kf = S + kQueryBlock * kKeyTile;  // (kKeyTile, hd) K tile in F32 (F16 cache)
    float* vf = kf + kKeyTile * hd;          // (kKeyTile, hd)
    float* m = vf + kKeyTile * hd;           // (group, rows) running max
    float* l = m + group * kQueryBlock;      // (group, rows) running sum
    std::fill(m, m + group * kQueryBlock, neg_inf);
    std::fill(l, l + group * kQueryBlock, 0.f);
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out + (r0 + r) * q_dim + g * group * hd;  // the group's heads: adjacent
      std::fill(o, o + group * hd, 0.f);
    }

    for (int64_t t0 = keys_lo; t0 < keys_hi; t0 += kKeyTile) {
      const int64_t tk = std::min(kKeyTile, keys_hi - t0);
      const float *K = kf, *V = vf;  // (tk, hd): a head's cached rows are contiguous
      if (kv.f16) {
        kt.f16_to_f32(static_cast<const uint16_t*>(kv.k_row(t0)), kf, tk * hd);
        kt.f16_to_f32(static_cast<const uint16_t*>(kv.v_row(t0)), vf, tk * hd);
      } else {
        K = static_cast<const float*>(kv.k_row(t0));
        V = static_cast<const float*>(kv.v_row(t0));
      }
      // Rows before `first` see none of this tile (causal: their last key comes before it).
      const int64_t first = mask.causal ? std::clamp<int64_t>(t0 - pos0 - r0, 0, rows) : 0;
      const int64_t active = rows - first;
      for (int64_t a = 0; a < group; ++a) {
        const int64_t h = g * group + a;
        float* Sa = S + first * kKeyTile;                  // (active, tk)
        float* O = out + (r0 + first) * q_dim + h * hd;    // (active, hd), rows q_dim apart
        blas::sgemm(true, static_cast<int>(active), static_cast<int>(tk), static_cast<int>(hd), scale,
                    q + (r0 + first) * q_dim + h * hd, static_cast<int>(q_dim), K, static_cast<int>(hd), 0.f, Sa,
                    static_cast<int>(kKeyTile));
        for (int64_t r = first; r < rows; ++r) {
          // This row's keys within the tile: [lo, hi); the rest get probability 0.
          const KeyRange keys = visible_keys(mask, pos0 + r0 + r, pos0 + n);
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
      for (int64_t r = 0; r < rows; ++r)
        Row(out + (r0 + r) * q_dim + (g * group + a) * hd, hd) /= l[a * kQueryBlock + r];
  });
}

}  // namespace

void attention(const float* q, const KvCache& cache, int64_t layer, int64_t n, int64_t pos0,
               const AttentionShape& s, const AttentionMask& mask, float* out, Workspace& ws, ThreadPool& pool) {
  if (n >= kGemmAttentionMin)
    attention_prefill(q, cache, layer, n, pos0, s, mask, out, ws, pool);
  else
    attention_decode(q, cache, layer, n, pos0, s, mask, out, ws, pool);
}

void swiglu_mlp(const GatedMlpWeights& w, const float* x, int64_t n, float* out, Workspace& ws, ThreadPool& pool) {
  gated_mlp(w, GateActivation::kSilu, x, n, out, ws, pool);
}

int64_t mlp_tokens(const QuantMatrix& first_weight, const Workspace& ws, int64_t n) {
  return matmul_path(first_weight, n, ws.mm) == MatmulPath::kTiles ? n : std::min(n, kMlpTokens);
}

void gated_mlp(const GatedMlpWeights& w, GateActivation act, const float* x, int64_t n, float* out, Workspace& ws,
               ThreadPool& pool) {
  const int64_t ffn = w.gate.rows, dim = w.down.rows;
  const int64_t step = mlp_tokens(w.gate, ws, n);
  for (int64_t t0 = 0; t0 < n; t0 += step) {
    const int64_t m = std::min(step, n - t0);
    const float* xs = x + t0 * w.gate.cols;  // (m, dim)
    matmul_shared_input({{&w.gate, ws.hb.get()}, {&w.up, ws.hb2.get()}}, xs, m, pool, ws.mm);  // (m, ffn) each
    if (act == GateActivation::kGeluTanh)
      gelu_tanh_mul(ws.hb.get(), ws.hb2.get(), m * ffn);
    else
      silu_mul(ws.hb.get(), ws.hb2.get(), m * ffn);
    matmul(w.down, ws.hb.get(), m, out + t0 * dim, pool, ws.mm);  // (m, dim)
  }
}

void add_in_place(float* x, const float* y, int64_t count) {
  Eigen::Map<Eigen::ArrayXf>(x, count) += Eigen::Map<const Eigen::ArrayXf>(y, count);
}

void output_head(const QuantMatrix& head, const float* x, int64_t rows, float* logits, ThreadPool& pool,
                 MatmulScratch& s, const std::function<bool()>& cancel) {
  if (s.float_activations) {
    // F32 path: each weight tile is dequantized once for all rows, so the rows are not sliced (that
    // would dequantize the head again per slice); cancel is polled between weight tiles instead.
    s.cancel = &cancel;
    try {
      matmul(head, x, rows, logits, pool, s);
    } catch (...) {
      s.cancel = nullptr;
      throw;
    }
    s.cancel = nullptr;
    return;
  }
  // Quantized activations (rows independent): slices of about 2^31 multiply-adds (~0.1 s on one
  // core): 76 rows of a 49k x 576 head, 12 of a 262k x 640 one.
  constexpr int64_t kSliceMacs = int64_t(1) << 31;
  const int64_t slice = std::max<int64_t>(1, kSliceMacs / std::max<int64_t>(1, head.rows * head.cols));
  for (int64_t r = 0; r < rows; r += slice) {
    const int64_t m = std::min(slice, rows - r);
    matmul(head, x + r * head.cols, m, logits + r * head.rows, pool, s);
    if (cancel && r + m < rows && cancel()) throw Interrupted();
  }
}

}  // namespace wren

#include "models/blocks.h"

#include <Eigen/Core>
#include <cmath>

namespace wren {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::OuterStride<>;

// Query rows from which attention runs as two GEMMs per head instead of per-row dots.
constexpr int64_t kGemmAttentionMin = 16;

Workspace::Workspace(int64_t b, int64_t dim, const AttentionShape& a, int64_t ffn_dim, int64_t n_ctx, int n_threads)
    : x(new float[b * dim]),
      xb(new float[b * dim]),
      q(new float[b * a.q_dim()]),
      k(new float[b * a.kv_dim()]),
      v(new float[b * a.kv_dim()]),
      att(new float[b * a.q_dim()]),
      hb(new float[b * ffn_dim]),
      hb2(new float[b * ffn_dim]),
      scores(new float[static_cast<size_t>(n_threads) * b * n_ctx]),
      mm(n_threads, std::max({dim, ffn_dim, a.q_dim()}), b),
      score_stride(b * n_ctx) {}

void causal_attention(const float* q, const float* k_cache, const float* v_cache, int64_t n, int64_t pos0,
                      const AttentionShape& s, float* out, Workspace& ws, ThreadPool& pool) {
  const int64_t hd = s.head_dim, q_dim = s.q_dim(), kv_dim = s.kv_dim();
  const int64_t n_keys = pos0 + n;
  const int64_t group = s.n_heads / s.n_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (n >= kGemmAttentionMin) {
    // Long prompts: per head, two GEMMs over all rows at once.
    pool.parallel_for(s.n_heads, [&](int64_t h, int thread) {
      const int64_t g = h / group;  // the key/value head this query head reads
      Eigen::Map<const RowMajor, 0, Strided> Q(q + h * hd, n, hd, Strided(q_dim));              // (n, hd)
      Eigen::Map<const RowMajor, 0, Strided> K(k_cache + g * hd, n_keys, hd, Strided(kv_dim));  // (T, hd)
      Eigen::Map<const RowMajor, 0, Strided> V(v_cache + g * hd, n_keys, hd, Strided(kv_dim));  // (T, hd)
      Eigen::Map<RowMajor> S(ws.scores.get() + thread * ws.score_stride, n, n_keys);            // (n, T)
      Eigen::Map<RowMajor, 0, Strided> O(out + h * hd, n, hd, Strided(q_dim));                  // (n, hd)
      S.noalias() = (Q * K.transpose()) * scale;
      for (int64_t i = 0; i < n; ++i) {  // row i sees keys 0..pos0+i; later keys get probability 0
        const int64_t visible = pos0 + i + 1;
        softmax_rows(S.data() + i * n_keys, 1, visible, n_keys);
        S.row(i).tail(n_keys - visible).setZero();
      }
      O.noalias() = S * V;
    });
    return;
  }
  // Few query rows (decode): one task per (row, head); dot products and axpys over the cache rows.
  pool.parallel_for(n * s.n_heads, [&](int64_t task, int thread) {
    const int64_t i = task / s.n_heads, h = task % s.n_heads, g = h / group;
    const int64_t visible = pos0 + i + 1;
    Eigen::Map<const Eigen::VectorXf> qi(q + i * q_dim + h * hd, hd);
    float* p = ws.scores.get() + thread * ws.score_stride;  // (visible)
    for (int64_t j = 0; j < visible; ++j)
      p[j] = qi.dot(Eigen::Map<const Eigen::VectorXf>(k_cache + j * kv_dim + g * hd, hd)) * scale;
    softmax_rows(p, 1, visible, visible);
    Eigen::Map<Eigen::VectorXf> o(out + i * q_dim + h * hd, hd);
    o.setZero();
    for (int64_t j = 0; j < visible; ++j) o += p[j] * Eigen::Map<const Eigen::VectorXf>(v_cache + j * kv_dim + g * hd, hd);
  });
}

void swiglu_mlp(const GatedMlpWeights& w, const float* x, int64_t n, float* out, Workspace& ws, ThreadPool& pool) {
  const int64_t ffn = w.gate.rows;
  matmul(w.gate, x, n, ws.hb.get(), pool, ws.mm);   // (n, ffn)
  matmul(w.up, x, n, ws.hb2.get(), pool, ws.mm);    // (n, ffn)
  silu_mul(ws.hb.get(), ws.hb2.get(), n * ffn);
  matmul(w.down, ws.hb.get(), n, out, pool, ws.mm);  // (n, dim)
}

void add_in_place(float* x, const float* y, int64_t count) {
  Eigen::Map<Eigen::ArrayXf>(x, count) += Eigen::Map<const Eigen::ArrayXf>(y, count);
}

}  // namespace wren

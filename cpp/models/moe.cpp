#include "models/moe.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "kernels/ops.h"

namespace wren {

MoeWeights bind_moe(const WeightBinder& w, const std::string& p, int64_t n_experts, int64_t n_used, int64_t dim,
                    int64_t ffn_dim) {
  MoeWeights m;
  m.n_used = n_used;
  m.router = w.matrix(p + "ffn_gate_inp.weight", n_experts, dim);
  m.experts.resize(static_cast<size_t>(n_experts));
  for (int64_t e = 0; e < n_experts; ++e) {
    GatedMlpWeights& x = m.experts[static_cast<size_t>(e)];
    x.gate = w.expert(p + "ffn_gate_exps.weight", p + "ffn_gate.{e}.weight", e, n_experts, ffn_dim, dim);
    x.up = w.expert(p + "ffn_up_exps.weight", p + "ffn_up.{e}.weight", e, n_experts, ffn_dim, dim);
    x.down = w.expert(p + "ffn_down_exps.weight", p + "ffn_down.{e}.weight", e, n_experts, dim, ffn_dim);
  }
  return m;
}

MoeScratch::MoeScratch(int64_t b, int64_t dim, int64_t n_experts, int64_t n_used)
    : probs(new float[b * n_experts]),
      choice(new int32_t[b * n_used]),
      weight(new float[b * n_used]),
      rows(new int32_t[b]),
      rows_w(new float[b]),
      gathered(new float[b * dim]),
      acc(new float[b * dim]) {}

void moe_mlp(const MoeWeights& w, const float* x, int64_t n, int64_t dim, float* out, MoeScratch& s, Workspace& ws,
             ThreadPool& pool) {
  const int64_t n_exp = w.n_experts(), k = w.n_used;
  // route: softmax over the experts, keep the k most probable, renormalise their weights
  matmul(w.router, x, n, s.probs.get(), pool, ws.mm);  // (n, n_experts)
  softmax_rows(s.probs.get(), n, n_exp, n_exp);
  std::vector<int32_t> order(static_cast<size_t>(n_exp));
  for (int64_t t = 0; t < n; ++t) {
    const float* p = s.probs.get() + t * n_exp;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float sum = 0.f;
    for (int64_t j = 0; j < k; ++j) sum += p[order[static_cast<size_t>(j)]];
    for (int64_t j = 0; j < k; ++j) {
      s.choice[t * k + j] = order[static_cast<size_t>(j)];
      s.weight[t * k + j] = p[order[static_cast<size_t>(j)]] / sum;
    }
  }

  // run each expert once over the tokens routed to it
  float* acc = s.acc.get();  // (n, dim)
  std::fill(acc, acc + n * dim, 0.f);
  for (int64_t e = 0; e < n_exp; ++e) {
    int64_t m = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < k; ++j)
        if (s.choice[t * k + j] == e) {
          s.rows[m] = static_cast<int32_t>(t);
          s.rows_w[m] = s.weight[t * k + j];
          std::memcpy(s.gathered.get() + m * dim, x + t * dim, sizeof(float) * dim);
          ++m;
        }
    if (m == 0) continue;
    float* y = s.gathered.get();  // (m, dim) inputs, then outputs in place
    swiglu_mlp(w.experts[static_cast<size_t>(e)], y, m, y, ws, pool);
    for (int64_t r = 0; r < m; ++r) {
      float* dst = acc + s.rows[r] * dim;
      const float* src = y + r * dim;
      const float wr = s.rows_w[r];
      for (int64_t i = 0; i < dim; ++i) dst[i] += wr * src[i];
    }
  }
  std::memcpy(out, acc, sizeof(float) * n * dim);
}

}  // namespace wren

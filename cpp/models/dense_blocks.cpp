#include "models/dense_blocks.h"

#include <algorithm>

#include "kernels/ops.h"
#include "util/errors.h"

namespace wren {

void apply_layer_norm(const LayerNormWeights& ln, const float* x, int64_t n, int64_t dim, float eps, float* out) {
  layer_norm(x, ln.w.data(), ln.b.empty() ? nullptr : ln.b.data(), n, dim, eps, out);
}

namespace {
void add_bias_if(float* x, const std::vector<float>& b, int64_t n) {
  if (!b.empty()) add_bias(x, b.data(), n, static_cast<int64_t>(b.size()));
}
}  // namespace

void project_qkv(const AttentionWeights& a, const float* x, int64_t n, float* q, float* k, float* v, Workspace& ws,
                 ThreadPool& pool) {
  matmul_shared_input({{&a.wq, q}, {&a.wk, k}, {&a.wv, v}}, x, n, pool, ws.mm);
  add_bias_if(q, a.bq, n);
  add_bias_if(k, a.bk, n);
  add_bias_if(v, a.bv, n);
}

void project_out(const AttentionWeights& a, const float* att, int64_t n, float* out, Workspace& ws, ThreadPool& pool) {
  matmul(a.wo, att, n, out, pool, ws.mm);
  add_bias_if(out, a.bo, n);
}

void dense_mlp(const DenseMlpWeights& w, Gelu act, const float* x, int64_t n, float* out, Workspace& ws,
               ThreadPool& pool) {
  const int64_t ffn = w.up.rows, dim = w.down.rows;
  const int64_t step = mlp_tokens(w.up, ws, n);
  for (int64_t t0 = 0; t0 < n; t0 += step) {
    const int64_t m = std::min(step, n - t0);
    float* h = ws.hb.get();  // (m, ffn_dim)
    matmul(w.up, x + t0 * w.up.cols, m, h, pool, ws.mm);
    add_bias_if(h, w.up_b, m);
    gelu(h, m * ffn, act);
    float* o = out + t0 * dim;  // (m, dim)
    matmul(w.down, h, m, o, pool, ws.mm);
    add_bias_if(o, w.down_b, m);
  }
}

void add_positions(const QuantMatrix& table, int64_t pos0, int64_t n, float* x, float* scratch) {
  if (pos0 + n > table.rows)
    throw ContextOverflowError(str_cat("positions up to ", pos0 + n, " exceed the model's ", table.rows,
                                       " learned position embeddings"));
  const int64_t dim = table.cols;
  for (int64_t t = 0; t < n; ++t) dequantize_matrix_row(table, pos0 + t, scratch + t * dim);
  add_in_place(x, scratch, n * dim);
}

LayerNormWeights bind_layer_norm(const WeightBinder& w, const std::string& name, int64_t dim) {
  LayerNormWeights ln;
  ln.w = w.vector(name + ".weight", dim);
  if (w.has(name + ".bias")) ln.b = w.vector(name + ".bias", dim);
  return ln;
}

AttentionWeights bind_biased_attention(const WeightBinder& w, const std::string& p, const AttentionShape& s,
                                       int64_t dim) {
  const int64_t q_dim = s.q_dim(), kv_dim = s.kv_dim(), qkv = q_dim + 2 * kv_dim;
  AttentionWeights a;
  if (w.has(p + "attn_qkv.weight")) {
    const std::string name = p + "attn_qkv.weight";
    a.wq = w.matrix_rows(name, qkv, 0, q_dim, dim);
    a.wk = w.matrix_rows(name, qkv, q_dim, kv_dim, dim);
    a.wv = w.matrix_rows(name, qkv, q_dim + kv_dim, kv_dim, dim);
    if (w.has(p + "attn_qkv.bias")) {
      const std::vector<float> b = w.vector(p + "attn_qkv.bias", qkv);
      a.bq.assign(b.begin(), b.begin() + q_dim);
      a.bk.assign(b.begin() + q_dim, b.begin() + q_dim + kv_dim);
      a.bv.assign(b.begin() + q_dim + kv_dim, b.end());
    }
  } else {
    a.wq = w.matrix(p + "attn_q.weight", q_dim, dim);
    a.wk = w.matrix(p + "attn_k.weight", kv_dim, dim);
    a.wv = w.matrix(p + "attn_v.weight", kv_dim, dim);
    if (w.has(p + "attn_q.bias")) a.bq = w.vector(p + "attn_q.bias", q_dim);
    if (w.has(p + "attn_k.bias")) a.bk = w.vector(p + "attn_k.bias", kv_dim);
    if (w.has(p + "attn_v.bias")) a.bv = w.vector(p + "attn_v.bias", kv_dim);
  }
  a.wo = w.matrix(p + "attn_output.weight", dim, q_dim);
  if (w.has(p + "attn_output.bias")) a.bo = w.vector(p + "attn_output.bias", dim);
  return a;
}

DenseMlpWeights bind_dense_mlp(const WeightBinder& w, const std::string& p, int64_t dim, int64_t ffn_dim) {
  DenseMlpWeights m;
  m.up = w.matrix(p + "ffn_up.weight", ffn_dim, dim);
  if (w.has(p + "ffn_up.bias")) m.up_b = w.vector(p + "ffn_up.bias", ffn_dim);
  m.down = w.matrix(p + "ffn_down.weight", dim, ffn_dim);
  if (w.has(p + "ffn_down.bias")) m.down_b = w.vector(p + "ffn_down.bias", dim);
  return m;
}

}  // namespace wren

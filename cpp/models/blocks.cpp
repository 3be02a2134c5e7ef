#include "models/blocks.h"

#include <Eigen/Core>
#include <algorithm>

#include "util/errors.h"

namespace wren {

// Tokens per MLP pass when the weights are packed (see mlp_tokens).
constexpr int64_t kMlpTokens = 128;

Workspace::Workspace(int64_t b, int64_t dim, const AttentionShape& a, int64_t ffn_dim, int n_threads)
    : x(new float[b * dim]),
      xb(new float[b * dim]),
      q(new float[b * a.q_dim()]),
      k(new float[b * a.kv_dim()]),
      v(new float[b * a.kv_dim()]),
      att(new float[b * a.q_dim()]),
      hb(new float[b * ffn_dim]),
      hb2(new float[b * ffn_dim]),
      attn(a, n_threads),
      mm(n_threads, std::max({dim, ffn_dim, a.q_dim()}), b) {}

void swiglu_mlp(const GatedMlpWeights& w, const float* x, int64_t n, float* out, Workspace& ws, ThreadPool& pool) {
  gated_mlp(w, GateActivation::kSilu, x, n, out, ws, pool);
}

int64_t mlp_tokens(const QuantMatrix& first_weight, const Workspace& ws, int64_t n) {
  return matmul_path(first_weight, n, ws.mm) == MatmulPath::kTiles ? n : std::min(n, kMlpTokens);
}

namespace {

// gate = act(gate) * up over count floats, split across the pool in chunks of a few tokens' worth
// (one token's row alone takes less than the dispatch would).
void gate_times_up(GateActivation act, float* gate, const float* up, int64_t count, ThreadPool& pool) {
  constexpr int64_t kChunk = 4096;
  pool.parallel_for((count + kChunk - 1) / kChunk, [&](int64_t task, int) {
    const int64_t i0 = task * kChunk, c = std::min(kChunk, count - i0);
    if (act == GateActivation::kGeluTanh)
      gelu_tanh_mul(gate + i0, up + i0, c);
    else
      silu_mul(gate + i0, up + i0, c);
  });
}

}  // namespace

void gated_mlp(const GatedMlpWeights& w, GateActivation act, const float* x, int64_t n, float* out, Workspace& ws,
               ThreadPool& pool) {
  const int64_t ffn = w.gate.rows, dim = w.down.rows;
  const int64_t step = mlp_tokens(w.gate, ws, n);
  for (int64_t t0 = 0; t0 < n; t0 += step) {
    const int64_t m = std::min(step, n - t0);
    const float* xs = x + t0 * w.gate.cols;  // (m, dim)
    matmul_shared_input({{&w.gate, ws.hb.get()}, {&w.up, ws.hb2.get()}}, xs, m, pool, ws.mm);  // (m, ffn) each
    gate_times_up(act, ws.hb.get(), ws.hb2.get(), m * ffn, pool);
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

#include "models/classic_decoder.h"

#include <algorithm>
#include <cmath>

#include "format/tensor_source.h"
#include "models/dense_blocks.h"
#include "models/hparams.h"
#include "models/weights.h"
#include "util/errors.h"

namespace wren {

ClassicConfig ClassicConfig::read(const TensorSource& f, const std::string& arch) {
  auto key = [&](const char* k) { return arch + "." + k; };
  auto check = [&](bool ok, const char* field, const std::string& what) {
    if (!ok) f.fail(key(field), what);
  };
  const TransformerDims d = TransformerDims::read(f, arch);
  ClassicConfig c;
  c.dim = d.dim;
  c.n_layers = d.n_layers;
  c.ffn_dim = d.ffn_dim;
  c.n_ctx_train = d.n_ctx_train;
  c.attn = d.attn;
  c.norm_eps = static_cast<float>(f.get_float(key("attention.layer_norm_epsilon"), 1e-5));
  check(c.norm_eps > 0 && c.norm_eps < 1, "attention.layer_norm_epsilon", str_cat("out of range: ", c.norm_eps));
  return c;
}

std::vector<float> bloom_alibi_slopes(int64_t n_heads) {
  int64_t pow2 = 1;
  while (pow2 * 2 <= n_heads) pow2 *= 2;
  // Series for m heads: base^1, base^2, ..., base = 2^(-8/m).
  auto base = [](int64_t m) { return std::pow(2.0, -8.0 / static_cast<double>(m)); };
  std::vector<float> slopes;
  for (int64_t i = 1; i <= pow2; ++i) slopes.push_back(static_cast<float>(std::pow(base(pow2), i)));
  for (int64_t i = 1; static_cast<int64_t>(slopes.size()) < n_heads; i += 2)
    slopes.push_back(static_cast<float>(std::pow(base(2 * pow2), i)));
  return slopes;
}

namespace {

struct ClassicLayer {
  LayerNormWeights attn_norm;
  AttentionWeights attn;
  LayerNormWeights ffn_norm;
  DenseMlpWeights mlp;
};

class ClassicDecoder : public Model {
 public:
  ClassicDecoder(const TensorSource& f, const ClassicConfig& c, ThreadPool& pool, int64_t n_ctx)
      : pool_(pool),
        cfg_(c),
        max_batch_(std::min<int64_t>(512, n_ctx)),
        ws_(max_batch_, cfg_.dim, cfg_.attn, cfg_.ffn_dim, pool.size()) {
    WeightBinder w(f, &arena_);
    const int64_t dim = cfg_.dim;
    tok_embd_ = w.token_embedding(dim, /*output_head=*/!w.has("output.weight"));  // (n_vocab, dim)
    cfg_.n_vocab = tok_embd_.rows;
    if (cfg_.learned_positions) {
      const GgufTensor* pos = f.find_tensor("position_embd.weight");
      if (!pos || pos->shape.size() != 2) f.fail("tensor 'position_embd.weight'", "required [dim, n_positions] table");
      pos_embd_ = w.matrix("position_embd.weight", static_cast<int64_t>(pos->shape[1]), dim);
    }
    if (cfg_.embedding_norm) embd_norm_ = bind_layer_norm(w, "token_embd_norm", dim);
    if (cfg_.alibi) alibi_ = bloom_alibi_slopes(cfg_.attn.n_heads);
    layers_.resize(static_cast<size_t>(cfg_.n_layers));
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const std::string p = str_cat("blk.", l, ".");
      ClassicLayer& L = layers_[static_cast<size_t>(l)];
      L.attn_norm = bind_layer_norm(w, p + "attn_norm", dim);
      L.attn = bind_biased_attention(w, p, cfg_.attn, dim);
      L.ffn_norm = bind_layer_norm(w, p + "ffn_norm", dim);
      L.mlp = bind_dense_mlp(w, p, dim, cfg_.ffn_dim);
    }
    output_norm_ = bind_layer_norm(w, "output_norm", dim);
    output_ = w.has("output.weight") ? w.matrix("output.weight", cfg_.n_vocab, dim) : tok_embd_;
    info_.n_vocab = cfg_.n_vocab;
    info_.n_ctx_train = cfg_.n_ctx_train;
    info_.n_layers = cfg_.n_layers;
    info_.dim = dim;
    info_.kv_dim = cfg_.attn.kv_dim();
    info_.head_dim = cfg_.attn.head_dim;
    info_.max_positions = cfg_.learned_positions ? pos_embd_.rows : 0;
    info_.window = cfg_.window;
    if (cfg_.window > 0) info_.sliding = cfg_.local;
  }

  int64_t max_batch() const override { return max_batch_; }

  void forward(const Batch& batch, float* logits, bool exact, const CancelFn& cancel) override {
    run_layers(batch, exact, cancel);
    const std::vector<int64_t> wanted = batch.logit_rows();
    const int64_t rows = static_cast<int64_t>(wanted.size()), dim = cfg_.dim;
    float* xb = ws_.xb.get();  // (rows, dim) the rows whose logits are wanted, normed
    for (int64_t r = 0; r < rows; ++r)
      apply_layer_norm(output_norm_, ws_.x.get() + wanted[r] * dim, 1, dim, cfg_.norm_eps, xb + r * dim);
    output_head(output_, xb, rows, logits, pool_, ws_.mm, cancel);
  }

  void hidden_states(const Batch& batch, float* out, bool exact, const CancelFn& cancel) override {
    run_layers(batch, exact, cancel);
    apply_layer_norm(output_norm_, ws_.x.get(), batch.n_tokens(), cfg_.dim, cfg_.norm_eps, out);
  }

 private:
  // Leaves the residual stream of the batch's n tokens in ws_.x (n, dim).
  void run_layers(const Batch& batch, bool exact, const CancelFn& cancel) {
    const int64_t dim = cfg_.dim, n = batch.n_tokens();
    ws_.mm.float_activations = exact;
    float* x = ws_.x.get();    // (n, dim)
    float* xb = ws_.xb.get();  // (n, dim)
    float* q = ws_.q.get();    // (n, q_dim)
    float* k = ws_.k.get();    // (n, kv_dim)
    float* v = ws_.v.get();    // (n, kv_dim)
    float* att = ws_.att.get();  // (n, q_dim)
    const std::vector<SeqRows> seqs = batch.rows();

    for (int64_t t = 0; t < n; ++t) dequantize_matrix_row(tok_embd_, batch.tokens[t], x + t * dim);
    if (cfg_.learned_positions) {
      int64_t row = 0;
      for (const SeqSlice& sl : batch.seqs) {
        add_positions(pos_embd_, sl.kv->size(), sl.n, x + row * dim, xb);
        row += sl.n;
      }
    }
    if (cfg_.embedding_norm) apply_layer_norm(embd_norm_, x, n, dim, cfg_.norm_eps, x);

    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const ClassicLayer& L = layers_[static_cast<size_t>(l)];
      // attention: x += attn_out(attention(qkv(LayerNorm(x)))), each sequence over its own cache
      apply_layer_norm(L.attn_norm, x, n, dim, cfg_.norm_eps, xb);
      project_qkv(L.attn, xb, n, q, k, v, ws_, pool_);
      attend_batch(l, q, k, v, seqs, cfg_.attn, mask(l), att, ws_.attn, pool_);
      project_out(L.attn, att, n, xb, ws_, pool_);
      add_in_place(x, xb, n * dim);
      // feed-forward: x += down(gelu(up(LayerNorm(x))))
      apply_layer_norm(L.ffn_norm, x, n, dim, cfg_.norm_eps, xb);
      dense_mlp(L.mlp, cfg_.act, xb, n, xb, ws_, pool_);
      add_in_place(x, xb, n * dim);
      if (cancel && cancel()) throw Interrupted();
    }
  }

  AttentionMask mask(int64_t layer) const {
    AttentionMask m;
    m.scale = cfg_.attn_scale;
    m.window = cfg_.is_local(layer) ? cfg_.window : 0;
    m.alibi = alibi_.empty() ? nullptr : alibi_.data();
    return m;
  }

  ThreadPool& pool_;
  ClassicConfig cfg_;
  int64_t max_batch_;
  Workspace ws_;
  QuantMatrix tok_embd_;            // (n_vocab, dim)
  QuantMatrix pos_embd_;            // (n_positions, dim), when learned_positions
  LayerNormWeights embd_norm_;      // (dim), when embedding_norm
  std::vector<float> alibi_;        // (n_heads) ALiBi slopes, when alibi
  std::vector<ClassicLayer> layers_;
  LayerNormWeights output_norm_;    // (dim)
  QuantMatrix output_;              // (n_vocab, dim), may alias tok_embd_
};

}  // namespace

std::unique_ptr<Model> make_classic_decoder(const TensorSource& f, const ClassicConfig& c, ThreadPool& pool,
                                            int64_t n_ctx) {
  return std::make_unique<ClassicDecoder>(f, c, pool, n_ctx);
}

}  // namespace wren

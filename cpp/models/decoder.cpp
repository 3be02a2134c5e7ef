#include "models/decoder.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <map>

#include "format/tensor_source.h"
#include "models/dense_blocks.h"
#include "models/hparams.h"
#include "util/errors.h"
#include "util/profile.h"

namespace wren {
namespace {

// "decode.mlp" etc.: profile labels are string literals, so build the pairs once.
const char* label(const char* phase, const char* op) {
  static const std::map<std::string, std::string>* table = [] {
    auto* t = new std::map<std::string, std::string>();
    for (const char* ph : {"decode", "prefill"})
      for (const char* o : {"norm", "qkv", "rope", "attention", "attn_out", "mlp", "output"})
        (*t)[std::string(ph) + "/" + o] = std::string(ph) + "." + o;
    return t;
  }();
  return table->at(std::string(phase) + "/" + op).c_str();
}

class Decoder : public Model {
 public:
  Decoder(const TensorSource& f, const DecoderConfig& c, ThreadPool& pool, int64_t n_ctx, const LayerBinder& bind)
      : pool_(pool),
        cfg_(c),
        rope_(cfg_.rope_dim, cfg_.rope_base, cfg_.rope_scale, {}, cfg_.rope_style, cfg_.rope_attn_factor),
        rope_swa_(cfg_.rope_dim, cfg_.rope_base_swa > 0 ? cfg_.rope_base_swa : cfg_.rope_base, 1.0, {},
                  cfg_.rope_style, cfg_.rope_attn_factor),
        max_batch_(std::min<int64_t>(512, n_ctx)),
        ws_(max_batch_, cfg_.dim, cfg_.attn, cfg_.ffn_dim, pool.size()) {
    WeightBinder w(f, &arena_);
    const int64_t dim = cfg_.dim;
    tok_embd_ = w.token_embedding(dim, /*output_head=*/!w.has("output.weight"));  // (n_vocab, dim)
    cfg_.n_vocab = tok_embd_.rows;
    output_norm_ = w.vector("output_norm.weight", dim);
    // Tied embeddings when there is no separate output head.
    output_ = w.has("output.weight") ? w.matrix("output.weight", cfg_.n_vocab, dim) : tok_embd_;
    bind_rope_factors(f, w);
    layers_.resize(static_cast<size_t>(cfg_.n_layers));
    for (int64_t l = 0; l < cfg_.n_layers; ++l)
      bind(w, str_cat("blk.", l, "."), cfg_, layers_[static_cast<size_t>(l)]);
    if (cfg_.n_experts > 0)
      moe_ = std::make_unique<MoeScratch>(max_batch_, dim, cfg_.n_experts, cfg_.n_experts_used);
    info_.n_vocab = cfg_.n_vocab;
    info_.n_ctx_train = cfg_.n_ctx_train;
    info_.n_layers = cfg_.n_layers;
    info_.dim = dim;
    info_.kv_dim = cfg_.attn.kv_dim();
    info_.head_dim = cfg_.attn.head_dim;
    info_.window = cfg_.window;
    if (cfg_.window > 0) info_.sliding = cfg_.sliding;
  }

  int64_t max_batch() const override { return max_batch_; }

  void forward(const Batch& batch, float* logits, bool exact, const CancelFn& cancel) override {
    run_layers(batch, exact, cancel);
    const int64_t dim = cfg_.dim;
    const float* x = ws_.x.get();  // (n, dim) residual stream
    float* xb = ws_.xb.get();      // (rows, dim) the rows whose logits are wanted, normed
    profile::Scope p(batch.n_tokens() == 1 ? "decode.output" : "prefill.output");
    const std::vector<int64_t> wanted = batch.logit_rows();
    const int64_t rows = static_cast<int64_t>(wanted.size());
    for (int64_t r = 0; r < rows; ++r) rms_norm(x + wanted[r] * dim, output_norm_.data(), 1, dim, cfg_.rms_eps, xb + r * dim);
    output_head(output_, xb, rows, logits, pool_, ws_.mm, cancel);
    if (cfg_.final_softcap > 0.f) soft_cap(logits, rows * cfg_.n_vocab, cfg_.final_softcap);
  }

  void hidden_states(const Batch& batch, float* out, bool exact, const CancelFn& cancel) override {
    run_layers(batch, exact, cancel);
    rms_norm(ws_.x.get(), output_norm_.data(), batch.n_tokens(), cfg_.dim, cfg_.rms_eps, out);
  }

 private:
  // Per-frequency divisors, as llama.cpp picks them: Llama 3's rope_freqs; else LongRoPE's
  // rope_factors_short and rope_factors_long, one set for a whole sequence (see rope_for).
  void bind_rope_factors(const TensorSource& f, const WeightBinder& w) {
    auto rope = [&](const char* name) {
      std::vector<float> factors = w.vector(name, cfg_.rope_dim / 2);  // (rot_dim/2) divisors
      for (float x : factors)
        if (!(std::isfinite(x) && x > 0.f)) f.fail(name, str_cat("frequency factors must be positive, found ", x));
      return Rope(cfg_.rope_dim, cfg_.rope_base, cfg_.rope_scale, std::move(factors), cfg_.rope_style,
                  cfg_.rope_attn_factor);
    };
    if (w.has("rope_freqs.weight")) {
      rope_ = rope("rope_freqs.weight");
      return;
    }
    const bool has_short = w.has("rope_factors_short.weight"), has_long = w.has("rope_factors_long.weight");
    if (has_short != has_long)
      f.fail(has_short ? "rope_factors_long.weight" : "rope_factors_short.weight",
             "missing: LongRoPE needs both the short and the long factors");
    if (!has_short) return;
    if (cfg_.rope_orig_ctx <= 0)
      f.fail("rope_factors_long.weight", "LongRoPE needs rope.scaling.original_context_length (or context_length)");
    rope_ = rope("rope_factors_short.weight");
    rope_long_ = std::make_unique<Rope>(rope("rope_factors_long.weight"));
    info_.length_dependent_rope = true;
  }

  // The rotation of a sequence that will be seq_len tokens long once its current input is in. As
  // transformers (longrope_frequency_update): the long factors when seq_len exceeds the original
  // context, else the short ones, for every position of the forward pass. Decoding token by token
  // past the original context therefore adds long-rotated keys to short-rotated ones already in
  // the cache, as transformers' own cached generation does (llama.cpp instead fixes the set by n_ctx).
  Rope& rope_for(int64_t seq_len) { return rope_long_ && seq_len > cfg_.rope_orig_ctx ? *rope_long_ : rope_; }

  // Embeddings and every layer: leaves the residual stream of the batch's n tokens in ws_.x (n, dim).
  void run_layers(const Batch& batch, bool exact, const CancelFn& cancel) {
    const int64_t dim = cfg_.dim, n = batch.n_tokens();
    ws_.mm.float_activations = exact;
    float* x = ws_.x.get();    // (n, dim) residual stream
    float* xb = ws_.xb.get();  // (n, dim)
    const char* phase = n == 1 ? "decode" : "prefill";
    const std::vector<SeqRows> seqs = batch.rows();
    {
      profile::Scope p(n == 1 ? "decode.embed" : "prefill.embed");
      for (int64_t t = 0; t < n; ++t) dequantize_matrix_row(tok_embd_, batch.tokens[t], x + t * dim);
      if (cfg_.embed_scale > 0.f) Eigen::Map<Eigen::ArrayXf>(x, n * dim) *= cfg_.embed_scale;
      // Each sequence rotates with the set its whole length picks (LongRoPE); the tables cover
      // every token's position, so a sequence's rows use the rows of the table at its offset.
      const std::vector<int64_t> positions = batch.positions();
      seq_rope_.clear();
      for (const SeqSlice& sl : batch.seqs) seq_rope_.push_back(&rope_for(std::max(sl.seq_len, sl.kv->size() + sl.n)));
      rope_.prepare(positions.data(), n);
      if (rope_long_) rope_long_->prepare(positions.data(), n);
      if (cfg_.rope_base_swa > 0) rope_swa_.prepare(positions.data(), n);
    }
    auto timed = [&](const char* op) { return profile::Scope(profile::enabled() ? label(phase, op) : op); };

    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const DecoderLayer& L = layers_[static_cast<size_t>(l)];
      {
        auto p = timed("norm");
        rms_norm(x, L.attn_norm.data(), n, dim, cfg_.rms_eps, xb);
      }
      self_attention(L, l, xb, n, batch, seqs, timed);  // xb = attention output
      if (!L.attn_post_norm.empty()) rms_norm(xb, L.attn_post_norm.data(), n, dim, cfg_.rms_eps, xb);
      add_in_place(x, xb, n * dim);

      {
        auto p = timed("norm");
        rms_norm(x, L.ffn_norm.data(), n, dim, cfg_.rms_eps, xb);
      }
      {
        auto p = timed("mlp");
        if (L.moe.n_experts() > 0)
          moe_mlp(L.moe, xb, n, dim, xb, *moe_, ws_, pool_);
        else
          gated_mlp(L.mlp, cfg_.act, xb, n, xb, ws_, pool_);
      }
      if (!L.ffn_post_norm.empty()) rms_norm(xb, L.ffn_post_norm.data(), n, dim, cfg_.rms_eps, xb);
      add_in_place(x, xb, n * dim);

      if (cancel && cancel()) throw Interrupted();
    }
  }

  // xb (n, dim): normed input -> wo(attention(rope(q), rope(k), v)), each sequence over its cache.
  template <typename Timed>
  void self_attention(const DecoderLayer& L, int64_t l, float* xb, int64_t n, const Batch& batch,
                      const std::vector<SeqRows>& seqs, const Timed& timed) {
    const AttentionShape& a = cfg_.attn;
    const int64_t q_dim = a.q_dim(), kv_dim = a.kv_dim();
    float* q = ws_.q.get();  // (n, q_dim)
    float* k = ws_.k.get();  // (n, kv_dim) new keys, F32 until stored in the cache
    float* v = ws_.v.get();  // (n, kv_dim) new values
    {
      auto p = timed("qkv");
      matmul_shared_input({{&L.attn.wq, q}, {&L.attn.wk, k}, {&L.attn.wv, v}}, xb, n, pool_, ws_.mm);
      if (!L.attn.bq.empty()) add_bias(q, L.attn.bq.data(), n, q_dim);
      if (!L.attn.bk.empty()) add_bias(k, L.attn.bk.data(), n, kv_dim);
      if (!L.attn.bv.empty()) add_bias(v, L.attn.bv.data(), n, kv_dim);
    }
    {
      auto p = timed("rope");
      if (!L.q_norm.empty()) rms_norm(q, L.q_norm.data(), n * a.n_heads, a.head_dim, cfg_.rms_eps, q);
      if (!L.k_norm.empty()) rms_norm(k, L.k_norm.data(), n * a.n_kv_heads, a.head_dim, cfg_.rms_eps, k);
      const bool swa_rope = cfg_.is_sliding(l) && cfg_.rope_base_swa > 0;
      int64_t row = 0;
      for (size_t i = 0; i < batch.seqs.size(); ++i) {
        const int64_t m = batch.seqs[i].n;
        const Rope& rope = swa_rope ? rope_swa_ : *seq_rope_[i];
        rope.apply(q + row * q_dim, m, a.n_heads, a.head_dim, q_dim, row);
        rope.apply(k + row * kv_dim, m, a.n_kv_heads, a.head_dim, kv_dim, row);
        row += m;
      }
    }
    {
      auto p = timed("attention");
      AttentionMask mask;
      mask.scale = cfg_.attn_scale;
      mask.softcap = cfg_.attn_softcap;
      mask.window = cfg_.is_sliding(l) ? cfg_.window : 0;
      attend_batch(l, q, k, v, seqs, a, mask, ws_.att.get(), ws_.attn, pool_);  // K/V stored as F16 by default
    }
    {
      auto p = timed("attn_out");
      matmul(L.attn.wo, ws_.att.get(), n, xb, pool_, ws_.mm);
      if (!L.attn.bo.empty()) add_bias(xb, L.attn.bo.data(), n, cfg_.dim);
    }
  }

  ThreadPool& pool_;
  DecoderConfig cfg_;
  Rope rope_;                        // global layers (all when nothing slides); LongRoPE's short factors
  std::unique_ptr<Rope> rope_long_;  // LongRoPE's long factors, or null
  std::vector<Rope*> seq_rope_;      // what rope_for() chose for each sequence of the current batch
  Rope rope_swa_;                    // sliding layers, when they have a base of their own
  int64_t max_batch_;
  Workspace ws_;
  std::unique_ptr<MoeScratch> moe_;  // when the feed-forward is a mixture of experts
  QuantMatrix tok_embd_;             // (n_vocab, dim)
  std::vector<float> output_norm_;   // (dim)
  QuantMatrix output_;               // (n_vocab, dim), may alias tok_embd_
  std::vector<DecoderLayer> layers_;
};

}  // namespace

DecoderConfig DecoderConfig::read(const TensorSource& f, const std::string& arch) {
  auto key = [&](const char* k) { return arch + "." + k; };
  const TransformerDims d = TransformerDims::read(f, arch);
  DecoderConfig c;
  c.dim = d.dim;
  c.n_layers = d.n_layers;
  c.ffn_dim = d.ffn_dim;
  c.n_ctx_train = d.n_ctx_train;
  c.attn = d.attn;
  c.rms_eps = static_cast<float>(f.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5));
  c.rope_base = f.get_float(key("rope.freq_base"), 10000.0);
  auto check = [&](bool ok, const std::string& field, const std::string& what) {
    if (!ok) f.fail(key(field.c_str()), what);
  };
  // NaN, zero or negative: every normalized activation would be NaN or infinite (all-NaN logits).
  check(c.rms_eps > 0 && c.rms_eps < 1, "attention.layer_norm_rms_epsilon",
        str_cat("must be in (0, 1), found ", c.rms_eps));
  check(c.attn.head_dim % 2 == 0, "attention.key_length", str_cat("head size must be even, found ", c.attn.head_dim));
  c.rope_dim = static_cast<int64_t>(f.get_uint(key("rope.dimension_count"), c.attn.head_dim));
  check(c.rope_dim > 0 && c.rope_dim <= c.attn.head_dim && c.rope_dim % 2 == 0, "rope.dimension_count",
        str_cat("must be even and <= head size ", c.attn.head_dim, ", found ", c.rope_dim));
  check(c.rope_base > 0, "rope.freq_base", "must be positive");
  const std::string scaling = f.get_string(key("rope.scaling.type"), "none");
  if (scaling == "linear") {
    c.rope_scale = f.get_float(key("rope.scaling.factor"), 1.0);
    check(c.rope_scale > 0, "rope.scaling.factor", "must be positive");
  } else if (scaling == "longrope") {
    check(f.find_tensor("rope_factors_short.weight") != nullptr, "rope.scaling.type",
          "'longrope' needs the tensors rope_factors_short.weight and rope_factors_long.weight");
  } else if (scaling != "none" && !scaling.empty()) {
    throw UnsupportedError(str_cat(f.path(), ": ", key("rope.scaling.type"), " = '", scaling,
                                   "' is not supported (supported: none, linear, longrope)"));
  }
  // As llama.cpp: the original context defaults to the training context, and the attention factor
  // applies whatever the scaling.
  c.rope_orig_ctx = static_cast<int64_t>(f.get_uint(key("rope.scaling.original_context_length"),
                                                    static_cast<uint64_t>(c.n_ctx_train)));
  check(c.rope_orig_ctx >= 0 && c.rope_orig_ctx <= (int64_t(1) << 40), "rope.scaling.original_context_length",
        str_cat("out of range: ", c.rope_orig_ctx));
  const double attn_factor = f.get_float(key("rope.scaling.attn_factor"), 1.0);
  check(std::isfinite(attn_factor) && attn_factor > 0 && attn_factor < 1e3, "rope.scaling.attn_factor",
        str_cat("must be in (0, 1000), found ", attn_factor));
  c.rope_attn_factor = static_cast<float>(attn_factor);
  c.n_experts = static_cast<int64_t>(f.get_uint(key("expert_count"), 0));
  if (c.n_experts > 0) {
    c.n_experts_used = static_cast<int64_t>(f.get_uint(key("expert_used_count")));
    check(c.n_experts <= 1024, "expert_count", str_cat("must be at most 1024, found ", c.n_experts));
    check(c.n_experts_used > 0 && c.n_experts_used <= c.n_experts, "expert_used_count",
          str_cat("must be in 1..expert_count ", c.n_experts, ", found ", c.n_experts_used));
  }
  return c;
}

void bind_attention(const WeightBinder& w, const std::string& p, const DecoderConfig& c, AttentionWeights& a) {
  a = bind_biased_attention(w, p, c.attn, c.dim);
}

void bind_feed_forward(const WeightBinder& w, const std::string& p, const DecoderConfig& c, DecoderLayer& L) {
  if (c.n_experts > 0) {
    L.moe = bind_moe(w, p, c.n_experts, c.n_experts_used, c.dim, c.ffn_dim);
    return;
  }
  L.mlp.gate = w.matrix(p + "ffn_gate.weight", c.ffn_dim, c.dim);
  L.mlp.up = w.matrix(p + "ffn_up.weight", c.ffn_dim, c.dim);
  L.mlp.down = w.matrix(p + "ffn_down.weight", c.dim, c.ffn_dim);
}

std::unique_ptr<Model> make_decoder(const TensorSource& f, const DecoderConfig& c, ThreadPool& pool, int64_t n_ctx,
                                    const LayerBinder& bind_layer) {
  return std::make_unique<Decoder>(f, c, pool, n_ctx, bind_layer);
}

}  // namespace wren

// Llama family (Llama 2/3, Mistral, SmolLM2): RMSNorm, RoPE, grouped-query attention, SwiGLU.
#include <algorithm>
#include <map>
#include <vector>

#include "format/tensor_source.h"
#include "models/blocks.h"
#include "models/model.h"
#include "models/registry.h"
#include "models/weights.h"
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

struct LlamaConfig {
  int64_t n_vocab, dim, n_layers, ffn_dim, n_ctx_train, rope_dim;
  AttentionShape attn;
  float rms_eps;
  double rope_base, rope_scale;
  RopeStyle rope_style;

  static LlamaConfig from_gguf(const TensorSource& f, const std::string& arch) {
    auto key = [&](const char* k) { return arch + "." + k; };
    LlamaConfig c{};
    c.dim = static_cast<int64_t>(f.get_uint(key("embedding_length")));
    c.n_layers = static_cast<int64_t>(f.get_uint(key("block_count")));
    c.ffn_dim = static_cast<int64_t>(f.get_uint(key("feed_forward_length")));
    c.attn.n_heads = static_cast<int64_t>(f.get_uint(key("attention.head_count")));
    c.attn.n_kv_heads = static_cast<int64_t>(f.get_uint(key("attention.head_count_kv"), c.attn.n_heads));
    c.n_ctx_train = static_cast<int64_t>(f.get_uint(key("context_length"), 2048));
    c.rms_eps = static_cast<float>(f.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5));
    c.rope_base = f.get_float(key("rope.freq_base"), 10000.0);
    auto check = [&](bool ok, const std::string& field, const std::string& what) {
      if (!ok) f.fail(key(field.c_str()), what);
    };
    check(c.dim > 0 && c.dim <= (1 << 20), "embedding_length", str_cat("must be in 1..2^20, found ", c.dim));
    check(c.n_layers > 0 && c.n_layers <= 1024, "block_count", str_cat("must be in 1..1024, found ", c.n_layers));
    check(c.ffn_dim > 0 && c.ffn_dim <= (1 << 22), "feed_forward_length", str_cat("found ", c.ffn_dim));
    check(c.attn.n_heads > 0 && c.dim % c.attn.n_heads == 0, "attention.head_count",
          str_cat(c.attn.n_heads, " heads do not divide embedding_length ", c.dim));
    check(c.attn.n_kv_heads > 0 && c.attn.n_heads % c.attn.n_kv_heads == 0, "attention.head_count_kv",
          str_cat(c.attn.n_kv_heads, " must divide head_count ", c.attn.n_heads));
    c.attn.head_dim = static_cast<int64_t>(f.get_uint(key("attention.key_length"), c.dim / c.attn.n_heads));
    check(c.attn.head_dim > 0 && c.attn.head_dim % 2 == 0, "attention.key_length",
          str_cat("head size must be even, found ", c.attn.head_dim));
    c.rope_dim = static_cast<int64_t>(f.get_uint(key("rope.dimension_count"), c.attn.head_dim));
    check(c.rope_dim > 0 && c.rope_dim <= c.attn.head_dim && c.rope_dim % 2 == 0, "rope.dimension_count",
          str_cat("must be even and <= head size ", c.attn.head_dim, ", found ", c.rope_dim));
    check(c.rope_base > 0, "rope.freq_base", "must be positive");
    // GGUF "llama" files hold Q/K rows permuted for interleaved pairs; a source that keeps
    // transformers' row order (a Hugging Face folder) says so with this key.
    c.rope_style = f.get_bool("wrenlm.rope.neox", false) ? RopeStyle::kNeox : RopeStyle::kInterleaved;
    c.rope_scale = 1.0;
    const std::string scaling = f.get_string(key("rope.scaling.type"), "none");
    if (scaling == "linear") {
      c.rope_scale = f.get_float(key("rope.scaling.factor"), 1.0);
      check(c.rope_scale > 0, "rope.scaling.factor", "must be positive");
    } else if (scaling != "none" && !scaling.empty()) {
      throw UnsupportedError(str_cat(f.path(), ": ", key("rope.scaling.type"), " = '", scaling,
                                     "' is not supported (supported: none, linear)"));
    }
    return c;
  }
};

struct LlamaLayer {
  std::vector<float> attn_norm;  // (dim)
  AttentionWeights attn;
  std::vector<float> ffn_norm;   // (dim)
  GatedMlpWeights mlp;
};

class Llama : public Model {
 public:
  Llama(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx)
      : pool_(pool),
        cfg_(LlamaConfig::from_gguf(f, arch)),
        rope_(cfg_.rope_dim, cfg_.rope_base, cfg_.rope_scale, {}, cfg_.rope_style),
        max_batch_(std::min<int64_t>(512, n_ctx)),
        ws_(max_batch_, cfg_.dim, cfg_.attn, cfg_.ffn_dim, n_ctx, pool.size()) {
    WeightBinder w(f, &arena_, &pool_);
    const int64_t dim = cfg_.dim, q_dim = cfg_.attn.q_dim(), kv_dim = cfg_.attn.kv_dim();
    const GgufTensor* emb = f.find_tensor("token_embd.weight");
    if (!emb || emb->shape.size() != 2 || emb->shape[0] != static_cast<uint64_t>(dim))
      f.fail("tensor 'token_embd.weight'", str_cat("expected shape [", dim, ", n_vocab]"));
    cfg_.n_vocab = static_cast<int64_t>(emb->shape[1]);
    tok_embd_ = w.matrix("token_embd.weight", cfg_.n_vocab, dim);
    output_norm_ = w.vector("output_norm.weight", dim);
    // Tied embeddings when there is no separate output head.
    output_ = w.has("output.weight") ? w.matrix("output.weight", cfg_.n_vocab, dim) : tok_embd_;
    if (w.has("rope_freqs.weight"))
      rope_ = Rope(cfg_.rope_dim, cfg_.rope_base, cfg_.rope_scale, w.vector("rope_freqs.weight", cfg_.rope_dim / 2),
                   cfg_.rope_style);
    layers_.resize(static_cast<size_t>(cfg_.n_layers));
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const std::string p = str_cat("blk.", l, ".");
      LlamaLayer& L = layers_[static_cast<size_t>(l)];
      L.attn_norm = w.vector(p + "attn_norm.weight", dim);
      L.attn.wq = w.matrix(p + "attn_q.weight", q_dim, dim);
      L.attn.wk = w.matrix(p + "attn_k.weight", kv_dim, dim);
      L.attn.wv = w.matrix(p + "attn_v.weight", kv_dim, dim);
      L.attn.wo = w.matrix(p + "attn_output.weight", dim, q_dim);
      L.ffn_norm = w.vector(p + "ffn_norm.weight", dim);
      L.mlp.gate = w.matrix(p + "ffn_gate.weight", cfg_.ffn_dim, dim);
      L.mlp.up = w.matrix(p + "ffn_up.weight", cfg_.ffn_dim, dim);
      L.mlp.down = w.matrix(p + "ffn_down.weight", dim, cfg_.ffn_dim);
    }
    info_.n_vocab = cfg_.n_vocab;
    info_.n_ctx_train = cfg_.n_ctx_train;
    info_.n_layers = cfg_.n_layers;
    info_.dim = dim;
    info_.kv_dim = kv_dim;
  }

  int64_t max_batch() const override { return max_batch_; }

  void forward(const int32_t* tokens, int64_t n, int64_t pos0, KvCache& cache, float* logits, bool all_logits,
               bool exact, const CancelFn& cancel) override {
    const int64_t dim = cfg_.dim, q_dim = cfg_.attn.q_dim(), kv_dim = cfg_.attn.kv_dim();
    ThreadPool& pool = pool_;
    ws_.mm.float_activations = exact;
    float* x = ws_.x.get();    // (n, dim)
    float* xb = ws_.xb.get();  // (n, dim)
    const char* phase = n == 1 ? "decode" : "prefill";
    {
      profile::Scope p(n == 1 ? "decode.embed" : "prefill.embed");
      for (int64_t t = 0; t < n; ++t) dequantize_matrix_row(tok_embd_, tokens[t], x + t * dim);
      rope_.prepare(pos0, n);
    }
    auto timed = [&](const char* op) { return profile::Scope(profile::enabled() ? label(phase, op) : op); };

    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const LlamaLayer& L = layers_[static_cast<size_t>(l)];
      float* k = ws_.k.get();  // (n, kv_dim) new keys, F32 until stored in the cache
      float* v = ws_.v.get();  // (n, kv_dim) new values

      // attention: x += wo(attn(rope(wq xb), rope(wk xb), wv xb)), xb = rmsnorm(x)
      {
        auto p = timed("norm");
        rms_norm(x, L.attn_norm.data(), n, dim, cfg_.rms_eps, xb);
      }
      {
        auto p = timed("qkv");
        matmul_shared_input({{&L.attn.wq, ws_.q.get()}, {&L.attn.wk, k}, {&L.attn.wv, v}}, xb, n, pool, ws_.mm);
      }
      {
        auto p = timed("rope");
        rope_.apply(ws_.q.get(), n, cfg_.attn.n_heads, cfg_.attn.head_dim, q_dim);
        rope_.apply(k, n, cfg_.attn.n_kv_heads, cfg_.attn.head_dim, kv_dim);
      }
      {
        auto p = timed("attention");
        cache.store(l, pos0, n, k, v);  // converted to the cache's type (F16 by default)
        attention(ws_.q.get(), cache, l, n, pos0, cfg_.attn, AttentionMask{}, ws_.att.get(), ws_, pool);
      }
      {
        auto p = timed("attn_out");
        matmul(L.attn.wo, ws_.att.get(), n, xb, pool, ws_.mm);
        add_in_place(x, xb, n * dim);
      }

      // feed-forward: x += down(silu(gate xb) * up xb), xb = rmsnorm(x)
      {
        auto p = timed("norm");
        rms_norm(x, L.ffn_norm.data(), n, dim, cfg_.rms_eps, xb);
      }
      {
        auto p = timed("mlp");
        swiglu_mlp(L.mlp, xb, n, xb, ws_, pool);
        add_in_place(x, xb, n * dim);
      }

      if (cancel && cancel()) throw Interrupted();
    }

    auto p = timed("output");
    const int64_t first = all_logits ? 0 : n - 1;
    const int64_t rows = n - first;
    rms_norm(x + first * dim, output_norm_.data(), rows, dim, cfg_.rms_eps, xb);
    matmul(output_, xb, rows, logits, pool, ws_.mm);
  }


 private:
  ThreadPool& pool_;
  LlamaConfig cfg_;
  Rope rope_;
  int64_t max_batch_;
  Workspace ws_;
  WeightArena arena_;                // packed copies of the quantized matrices
  QuantMatrix tok_embd_;             // (n_vocab, dim)
  std::vector<float> output_norm_;   // (dim)
  QuantMatrix output_;               // (n_vocab, dim), may alias tok_embd_
  std::vector<LlamaLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_llama(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  return std::make_unique<Llama>(f, arch, pool, n_ctx);
}

}  // namespace wren

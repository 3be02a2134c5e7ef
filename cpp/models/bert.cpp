// BERT (encoder, for embeddings): token + learned position + token-type embeddings and a LayerNorm,
// then post-norm blocks — attention (bidirectional, biased projections) -> residual -> LayerNorm ->
// dense GELU (exact erf) MLP -> residual -> LayerNorm. The output is the last block's hidden states;
// the file has no language-model head (llama.cpp's converter drops it), so forward() refuses.
#include <algorithm>
#include <string>
#include <vector>

#include "format/tensor_source.h"
#include "models/classic_decoder.h"
#include "models/dense_blocks.h"
#include "models/family.h"
#include "models/weights.h"
#include "util/errors.h"

namespace wren {
namespace {

struct BertLayer {
  AttentionWeights attn;
  LayerNormWeights attn_out_norm;  // after the attention residual
  DenseMlpWeights mlp;
  LayerNormWeights out_norm;       // after the feed-forward residual
};

// The position table bounds the input: at most this many tokens per call.
int64_t n_positions(const TensorSource& f, int64_t dim) {
  const GgufTensor* pos = f.find_tensor("position_embd.weight");
  if (!pos || pos->shape.size() != 2 || pos->shape[0] != static_cast<uint64_t>(dim) || pos->shape[1] == 0 ||
      pos->shape[1] > (1u << 20))
    f.fail("tensor 'position_embd.weight'", str_cat("expected a [", dim, ", n_positions] table"));
  return static_cast<int64_t>(pos->shape[1]);
}

class Bert : public Model {
 public:
  Bert(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx)
      : pool_(pool),
        cfg_(ClassicConfig::read(f, arch)),
        max_batch_(std::min(n_ctx, n_positions(f, cfg_.dim))),
        ws_(max_batch_, cfg_.dim, cfg_.attn, cfg_.ffn_dim, pool.size()) {
    WeightBinder w(f, &arena_);
    const int64_t dim = cfg_.dim;
    tok_embd_ = w.token_embedding(dim, /*output_head=*/false);  // (n_vocab, dim)
    cfg_.n_vocab = tok_embd_.rows;
    pos_embd_ = w.matrix("position_embd.weight", n_positions(f, dim), dim);
    const GgufTensor* types = f.find_tensor("token_types.weight");
    if (types) {
      if (types->shape.size() != 2 || types->shape[1] == 0)
        f.fail("tensor 'token_types.weight'", str_cat("expected a [", dim, ", n_types] table"));
      token_types_ = w.matrix("token_types.weight", static_cast<int64_t>(types->shape[1]), dim);
    }
    embd_norm_ = bind_layer_norm(w, "token_embd_norm", dim);
    layers_.resize(static_cast<size_t>(cfg_.n_layers));
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const std::string p = str_cat("blk.", l, ".");
      BertLayer& L = layers_[static_cast<size_t>(l)];
      L.attn = bind_biased_attention(w, p, cfg_.attn, dim);
      L.attn_out_norm = bind_layer_norm(w, p + "attn_output_norm", dim);
      L.mlp = bind_dense_mlp(w, p, dim, cfg_.ffn_dim);
      L.out_norm = bind_layer_norm(w, p + "layer_output_norm", dim);
    }
    info_.n_vocab = cfg_.n_vocab;
    info_.n_ctx_train = cfg_.n_ctx_train;
    info_.n_layers = cfg_.n_layers;
    info_.dim = dim;
    info_.kv_dim = cfg_.attn.kv_dim();
    info_.head_dim = cfg_.attn.head_dim;
    info_.causal = false;
    info_.max_positions = pos_embd_.rows;
  }

  int64_t max_batch() const override { return max_batch_; }

  void forward(const Batch&, float*, bool, const CancelFn&) override {
    throw UnsupportedError(str_cat("'", info_.architecture, "' is an encoder without a language-model head: "
                                   "it gives embeddings (embed(), hidden_states()), not logits"));
  }

  // Each sequence of the batch is one whole input; it attends to all of its own tokens.
  void hidden_states(const Batch& batch, float* out, bool exact, const CancelFn& cancel) override {
    const int64_t n = batch.n_tokens();
    for (const SeqSlice& sl : batch.seqs)
      WREN_CHECK(sl.kv->size() == 0, InvalidArgument, "an encoder takes each input whole, at position 0 (got one at ",
                 sl.kv->size(), ")");
    WREN_CHECK(n <= max_batch_, InvalidArgument, "an encoder batch holds at most ", max_batch_, " tokens (got ", n,
               ")");
    const int64_t dim = cfg_.dim;
    ws_.mm.float_activations = exact;
    float* x = out;            // (n, dim) residual stream, written in place
    float* xb = ws_.xb.get();  // (n, dim)
    float* q = ws_.q.get();    // (n, q_dim)
    float* k = ws_.k.get();    // (n, kv_dim)
    float* v = ws_.v.get();    // (n, kv_dim)
    float* att = ws_.att.get();  // (n, q_dim)
    const std::vector<SeqRows> seqs = batch.rows();

    // Embeddings: token + position + token type 0 (one segment), then LayerNorm.
    for (int64_t t = 0; t < n; ++t) dequantize_matrix_row(tok_embd_, batch.tokens[t], x + t * dim);
    int64_t row = 0;
    for (const SeqSlice& sl : batch.seqs) {
      add_positions(pos_embd_, 0, sl.n, x + row * dim, xb);
      row += sl.n;
    }
    if (token_types_.rows > 0) {
      dequantize_matrix_row(token_types_, 0, xb);
      for (int64_t t = 0; t < n; ++t) add_in_place(x + t * dim, xb, dim);
    }
    apply_layer_norm(embd_norm_, x, n, dim, cfg_.norm_eps, x);

    AttentionMask mask;
    mask.causal = false;
    for (int64_t l = 0; l < cfg_.n_layers; ++l) {
      const BertLayer& L = layers_[static_cast<size_t>(l)];
      // x = LayerNorm(x + attn_out(attention(qkv(x))))
      project_qkv(L.attn, x, n, q, k, v, ws_, pool_);
      attend_batch(l, q, k, v, seqs, cfg_.attn, mask, att, ws_.attn, pool_);
      project_out(L.attn, att, n, xb, ws_, pool_);
      add_in_place(x, xb, n * dim);
      apply_layer_norm(L.attn_out_norm, x, n, dim, cfg_.norm_eps, x);
      // x = LayerNorm(x + down(gelu(up(x))))
      dense_mlp(L.mlp, Gelu::kErf, x, n, xb, ws_, pool_);
      add_in_place(x, xb, n * dim);
      apply_layer_norm(L.out_norm, x, n, dim, cfg_.norm_eps, x);
      if (cancel && cancel()) throw Interrupted();
    }
  }

 private:
  ThreadPool& pool_;
  ClassicConfig cfg_;
  int64_t max_batch_;
  Workspace ws_;
  QuantMatrix tok_embd_;     // (n_vocab, dim)
  QuantMatrix pos_embd_;     // (n_positions, dim)
  QuantMatrix token_types_;  // (n_types, dim), or rows == 0
  LayerNormWeights embd_norm_;  // (dim)
  std::vector<BertLayer> layers_;
};

std::unique_ptr<Model> make_bert(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx) {
  return std::make_unique<Bert>(f, arch, pool, n_ctx);
}

// ---- Hugging Face folders --------------------------------------------------------------------

std::vector<HfRule> bert_rules() {
  return {
      {"embeddings.word_embeddings.weight", "token_embd.weight"},
      {"embeddings.position_embeddings.weight", "position_embd.weight"},
      {"embeddings.token_type_embeddings.weight", "token_types.weight"},
      {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
      {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
      {"embeddings.position_ids", nullptr, HfTransform::kSkip},
      {"pooler.dense.weight", nullptr, HfTransform::kSkip},
      {"pooler.dense.bias", nullptr, HfTransform::kSkip},
      {"encoder.layer.#.attention.self.query.weight", "blk.#.attn_q.weight"},
      {"encoder.layer.#.attention.self.query.bias", "blk.#.attn_q.bias"},
      {"encoder.layer.#.attention.self.key.weight", "blk.#.attn_k.weight"},
      {"encoder.layer.#.attention.self.key.bias", "blk.#.attn_k.bias"},
      {"encoder.layer.#.attention.self.value.weight", "blk.#.attn_v.weight"},
      {"encoder.layer.#.attention.self.value.bias", "blk.#.attn_v.bias"},
      {"encoder.layer.#.attention.output.dense.weight", "blk.#.attn_output.weight"},
      {"encoder.layer.#.attention.output.dense.bias", "blk.#.attn_output.bias"},
      {"encoder.layer.#.attention.output.LayerNorm.weight", "blk.#.attn_output_norm.weight"},
      {"encoder.layer.#.attention.output.LayerNorm.bias", "blk.#.attn_output_norm.bias"},
      {"encoder.layer.#.intermediate.dense.weight", "blk.#.ffn_up.weight"},
      {"encoder.layer.#.intermediate.dense.bias", "blk.#.ffn_up.bias"},
      {"encoder.layer.#.output.dense.weight", "blk.#.ffn_down.weight"},
      {"encoder.layer.#.output.dense.bias", "blk.#.ffn_down.bias"},
      {"encoder.layer.#.output.LayerNorm.weight", "blk.#.layer_output_norm.weight"},
      {"encoder.layer.#.output.LayerNorm.bias", "blk.#.layer_output_norm.bias"},
  };
}

// sentence-transformers folders: modules.json names the pooling module, whose config.json says how
// token vectors become one embedding (llama.cpp pooling types: 1 mean, 2 CLS, 3 last token). A pooling
// the engine does not do itself — max, weighted mean, mean / sqrt(length), several modes concatenated —
// is left undeclared (the engine's default stays): the Python layer (python/wrenlm/st_folder.py) reads
// the whole module list and applies such a Pooling module itself.
void pooling_type(const std::string& arch, HfWriter& w) {
  const std::string modules_path = path_join(w.dir(), "modules.json");
  if (!is_regular_file(modules_path)) return;
  const JsonDocument modules = read_json_file(modules_path, uint64_t(1) << 20);
  std::string pooling_dir;
  for (const JsonValue& m : modules.root->as_array()) {
    const std::string& type = m.at("type").as_string();
    if (type.size() >= 7 && type.compare(type.size() - 7, 7, "Pooling") == 0) {
      pooling_dir = m.at("path").as_string();
      if (pooling_dir.find("..") != std::string::npos || (!pooling_dir.empty() && pooling_dir[0] == '/'))
        m.at("path").fail("expected a folder inside the model folder");
      break;
    }
  }
  if (pooling_dir.empty()) return;
  const JsonDocument cfg = read_json_file(path_join(path_join(w.dir(), pooling_dir), "config.json"), uint64_t(1) << 20);
  // The modes, in sentence-transformers' order: "pooling_mode" (a name or a list of names), else the
  // older pooling_mode_* flags (none set means mean).
  std::vector<std::string> modes;
  if (const JsonValue* mode = cfg.root->find_non_null("pooling_mode")) {
    if (mode->is_array()) {
      for (const JsonValue& m : mode->as_array()) modes.push_back(m.as_string());
    } else {
      modes.push_back(mode->as_string());
    }
  } else {
    static const char* const kFlags[][2] = {
        {"pooling_mode_cls_token", "cls"}, {"pooling_mode_max_tokens", "max"},
        {"pooling_mode_mean_tokens", "mean"}, {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"},
        {"pooling_mode_weightedmean_tokens", "weightedmean"}, {"pooling_mode_lasttoken", "lasttoken"}};
    for (const auto& f : kFlags) {
      const JsonValue* v = cfg.root->find_non_null(f[0]);
      if (v && v->as_bool()) modes.push_back(f[1]);
    }
    if (modes.empty()) modes.push_back("mean");
  }
  if (modes.size() != 1) return;
  const std::string& m = modes[0];
  const uint64_t type = m == "mean" ? 1 : m == "cls" ? 2 : m == "lasttoken" ? 3 : 0;
  if (type != 0) w.put_u32(hf_key(arch, "pooling_type"), type);
}

void bert_keys(const HfConfig& c, const std::string& arch, HfWriter& w) {
  w.put_bool(hf_key(arch, "attention.causal"), false);
  pooling_type(arch, w);
}

}  // namespace

const ModelFamily& bert_family() {
  static const ModelFamily family = {
      "bert",
      {"bert"},
      make_bert,
      {{{"bert"}, "bert", bert_rules(), bert_keys, true, false, "bert."}},
  };
  return family;
}

}  // namespace wren

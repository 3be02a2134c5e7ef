#include "models/hparams.h"

#include "format/tensor_source.h"
#include "util/errors.h"

namespace wren {

TransformerDims TransformerDims::read(const TensorSource& f, const std::string& arch) {
  auto key = [&](const char* k) { return arch + "." + k; };
  auto check = [&](bool ok, const char* field, const std::string& what) {
    if (!ok) f.fail(key(field), what);
  };
  TransformerDims d;
  d.dim = static_cast<int64_t>(f.get_uint(key("embedding_length")));
  d.n_layers = static_cast<int64_t>(f.get_uint(key("block_count")));
  d.ffn_dim = static_cast<int64_t>(f.get_uint(key("feed_forward_length")));
  d.attn.n_heads = static_cast<int64_t>(f.get_uint(key("attention.head_count")));
  d.attn.n_kv_heads = static_cast<int64_t>(f.get_uint(key("attention.head_count_kv"), d.attn.n_heads));
  d.n_ctx_train = static_cast<int64_t>(f.get_uint(key("context_length"), 2048));
  check(d.dim > 0 && d.dim <= (1 << 20), "embedding_length", str_cat("must be in 1..2^20, found ", d.dim));
  check(d.n_layers > 0 && d.n_layers <= 1024, "block_count", str_cat("must be in 1..1024, found ", d.n_layers));
  check(d.ffn_dim > 0 && d.ffn_dim <= (1 << 22), "feed_forward_length", str_cat("found ", d.ffn_dim));
  check(d.attn.n_heads > 0 && d.attn.n_heads <= 4096, "attention.head_count",
        str_cat("must be in 1..4096, found ", d.attn.n_heads));
  check(d.attn.n_kv_heads > 0 && d.attn.n_heads % d.attn.n_kv_heads == 0, "attention.head_count_kv",
        str_cat(d.attn.n_kv_heads, " must divide head_count ", d.attn.n_heads));
  // The head size is its own key for families whose heads do not split the width (Gemma).
  const bool has_key_length = f.has(key("attention.key_length"));
  check(has_key_length || d.dim % d.attn.n_heads == 0, "attention.head_count",
        str_cat(d.attn.n_heads, " heads do not divide embedding_length ", d.dim));
  d.attn.head_dim = static_cast<int64_t>(f.get_uint(key("attention.key_length"), d.dim / d.attn.n_heads));
  check(d.attn.head_dim > 0 && d.attn.head_dim <= 4096, "attention.key_length",
        str_cat("head size must be in 1..4096, found ", d.attn.head_dim));
  // Every layer holds at least a feed-forward matrix (ffn_dim x dim) and the query projection
  // (heads x head size x dim), at no fewer than 1.5 bits a weight (the smallest GGUF types): widths
  // the file cannot hold are refused here, before buffers are sized by them.
  const double min_bytes = static_cast<double>(d.n_layers) * static_cast<double>(d.dim) *
                           (static_cast<double>(d.ffn_dim) + static_cast<double>(d.attn.n_heads * d.attn.head_dim)) *
                           1.5 / 8;
  check(min_bytes <= static_cast<double>(f.file_size()), "feed_forward_length",
        str_cat("with embedding_length ", d.dim, ", ", d.n_layers, " layers and ", d.attn.n_heads, " heads of ",
                d.attn.head_dim, ", feed_forward_length ", d.ffn_dim, " needs at least ",
                static_cast<uint64_t>(min_bytes), " bytes of weights; the file has ", f.file_size()));
  return d;
}

}  // namespace wren

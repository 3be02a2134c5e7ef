#include "format/lora_adapter.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "util/errors.h"

namespace wren {
namespace {

// Reorders the rows of B (rows x rank) between transformers' order and llama.cpp's GGUF order for
// n_heads heads: within a head of d rows, GGUF row 2i + j is transformers' row j * d/2 + i (the two
// rotated halves interleaved). to_gguf: transformers -> GGUF; otherwise back.
void permute_rows(std::vector<float>& b, int64_t rows, int64_t rank, int64_t n_heads, bool to_gguf) {
  const int64_t d = rows / n_heads, half = d / 2;
  std::vector<float> out(b.size());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t gguf_row = h * d + 2 * i + j, hf_row = h * d + j * half + i;
        const int64_t src = to_gguf ? hf_row : gguf_row, dst = to_gguf ? gguf_row : hf_row;
        std::copy_n(&b[src * rank], rank, &out[dst * rank]);
      }
  b.swap(out);
}

}  // namespace

int64_t LoraAdapter::max_rank() const {
  int64_t r = 0;
  for (const LoraUpdate& u : updates) r = std::max(r, u.rank);
  return r;
}

LoraAdapter read_lora_adapter(const LoraSpec& spec, const TensorSource& base) {
  WREN_CHECK(std::isfinite(spec.scale), InvalidArgument, "LoRA scale must be a finite number, got ", spec.scale,
             " for ", spec.path);
  struct stat st {};
  if (::stat(spec.path.c_str(), &st) != 0)
    throw FormatError(str_cat(spec.path, ": no such LoRA adapter (expected a GGUF adapter file or a PEFT folder "
                                         "with adapter_config.json)"));
  return S_ISDIR(st.st_mode) ? read_peft_lora(spec, base) : read_gguf_lora(spec, base);
}

namespace lora_detail {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool qk_rows_permuted(const TensorSource& src) {
  return src.get_string("general.architecture", "") == "llama" && !src.get_bool("wrenlm.rope.neox", false);
}

void finish_update(LoraUpdate& u, const TensorSource& base, bool adapter_permuted, const std::string& path,
                   const std::string& field) {
  auto fail = [&](const std::string& what) { throw FormatError(str_cat(path, ": ", field, ": ", what)); };
  const GgufTensor* t = base.find_tensor(u.target);
  if (!t)
    fail(str_cat("updates '", u.target, "', which the base model ", base.path(),
                 " does not have (an adapter for another model?)"));
  if (t->shape.size() != 2) fail(str_cat("updates '", u.target, "', which is not a matrix: ", t->shape_str()));
  if (u.rank <= 0) fail(str_cat("expected a rank > 0, found ", u.rank));
  if (static_cast<uint64_t>(u.rows) != t->dim(1) || static_cast<uint64_t>(u.cols) != t->dim(0))
    fail(str_cat("expected a (", t->dim(1), " x ", t->dim(0), ") update for the base's '", u.target,
                 "', found (", u.rows, " x ", u.cols, ") (an adapter for another model?)"));
  if (u.a.size() != static_cast<size_t>(u.rank * u.cols) || u.b.size() != static_cast<size_t>(u.rows * u.rank))
    fail("internal: A or B does not match its shape");
  if (!std::isfinite(u.scale)) fail(str_cat("the scale of this update is not finite (", u.scale, ")"));
  auto check_finite = [&](const std::vector<float>& v, const char* which) {
    for (size_t k = 0; k < v.size(); ++k)
      if (!std::isfinite(v[k])) fail(str_cat(which, " holds a non-finite value (", v[k], ") at element ", k));
  };
  check_finite(u.a, "A");
  check_finite(u.b, "B");

  const bool is_q = ends_with(u.target, ".attn_q.weight"), is_k = ends_with(u.target, ".attn_k.weight");
  const bool base_permuted = qk_rows_permuted(base);
  if ((is_q || is_k) && adapter_permuted != base_permuted) {
    const std::string arch = base.get_string("general.architecture");
    const uint64_t n_head = base.get_uint(arch + ".attention.head_count");
    const uint64_t n_heads = is_q ? n_head : base.get_uint(arch + ".attention.head_count_kv", n_head);
    if (n_heads == 0 || u.rows % static_cast<int64_t>(2 * n_heads) != 0)
      fail(str_cat("cannot reorder ", u.rows, " rows into ", n_heads, " heads of rotated pairs"));
    permute_rows(u.b, u.rows, u.rank, static_cast<int64_t>(n_heads), base_permuted);
  }
}

}  // namespace lora_detail
}  // namespace wren

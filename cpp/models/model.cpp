#include "models/model.h"

#include "util/errors.h"

namespace wren {

KvLayout ModelInfo::kv_layout(KvDtype dtype) const {
  KvLayout l;
  l.n_layers = n_layers;
  l.kv_dim = kv_dim;
  l.head_dim = head_dim;
  l.dtype = dtype;
  l.window = window;
  l.sliding = sliding;
  return l;
}

int64_t Batch::n_tokens() const {
  int64_t n = 0;
  for (const SeqSlice& s : seqs) n += s.n;
  return n;
}

int64_t Batch::n_logit_rows() const {
  int64_t n = 0;
  for (const SeqSlice& s : seqs) n += s.all_logits ? s.n : 1;
  return n;
}

std::vector<int64_t> Batch::positions() const {
  std::vector<int64_t> p;
  p.reserve(static_cast<size_t>(n_tokens()));
  for (const SeqSlice& s : seqs)
    for (int64_t t = 0; t < s.n; ++t) p.push_back(s.kv->size() + t);
  return p;
}

std::vector<SeqRows> Batch::rows() const {
  std::vector<SeqRows> r;
  for (const SeqSlice& s : seqs) r.push_back({s.kv, s.n});
  return r;
}

std::vector<int64_t> Batch::logit_rows() const {
  std::vector<int64_t> r;
  int64_t row = 0;
  for (const SeqSlice& s : seqs) {
    for (int64_t t = s.all_logits ? 0 : s.n - 1; t < s.n; ++t) r.push_back(row + t);
    row += s.n;
  }
  return r;
}

void Batch::advance() const {
  for (const SeqSlice& s : seqs) s.kv->advance(s.n);
}

void Model::hidden_states(const Batch&, float*, bool, const CancelFn&) {
  throw UnsupportedError(str_cat("architecture '", info_.architecture,
                                 "' does not provide hidden states (embeddings) yet"));
}

}  // namespace wren

#include "tokenizer/unigram.h"

#include <algorithm>
#include <limits>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace wren {
namespace {

// How far below the lowest normal score an unknown character is scored (SentencePiece's value).
constexpr double kUnknownPenalty = 10.0;

}  // namespace

UnigramModel::UnigramModel(const std::vector<std::string>& text, const std::vector<TokenType>& types,
                           const std::vector<float>& scores, int32_t unk)
    : text_(&text), score_(scores.begin(), scores.end()), unk_(unk) {
  double min_score = std::numeric_limits<double>::max();
  for (size_t i = 0; i < text.size(); ++i) {
    const TokenType t = types[i];
    if (t == TokenType::kNormal) min_score = std::min(min_score, score_[i]);
    if (t == TokenType::kUserDefined) score_[i] = 0.0;
    if ((t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUnused) && !text[i].empty())
      sorted_.push_back(static_cast<int32_t>(i));
  }
  unk_score_ = (min_score == std::numeric_limits<double>::max() ? 0.0 : min_score) - kUnknownPenalty;
  // Sorted by text, then id; of equal texts the last id stays (as for every vocabulary lookup).
  std::stable_sort(sorted_.begin(), sorted_.end(),
                   [&](int32_t a, int32_t b) { return text[a] < text[b]; });
  std::vector<int32_t> unique;
  unique.reserve(sorted_.size());
  for (size_t k = 0; k < sorted_.size(); ++k) {
    if (k + 1 < sorted_.size() && text[sorted_[k]] == text[sorted_[k + 1]]) continue;
    unique.push_back(sorted_[k]);
  }
  sorted_.swap(unique);
}

void UnigramModel::encode(const char* text, size_t n, UnigramWorkspace* ws, std::vector<int32_t>* out) const {
  if (n == 0) return;
  const std::vector<std::string>& tx = *text_;
  ws->best.assign(n + 1, {-std::numeric_limits<double>::max(), unk_, 0});
  ws->best[0].score = 0.0;
  size_t pos = 0;
  while (pos < n) {
    const Utf8Step st = utf8_next(text, n, pos);
    const size_t char_len = st.kind == Utf8Step::kValid ? st.len : 1;
    const double base = ws->best[pos].score;
    bool whole_char = false;
    // Walk the vocabulary as a trie: [lo, hi) are the tokens starting with text[pos, pos + d).
    size_t lo = 0, hi = sorted_.size();
    for (size_t d = 0; pos + d < n && lo < hi; ++d) {
      const int c = static_cast<uint8_t>(text[pos + d]);
      const auto byte_at = [&](int32_t id) { return tx[id].size() > d ? static_cast<uint8_t>(tx[id][d]) : -1; };
      lo = std::lower_bound(sorted_.begin() + lo, sorted_.begin() + hi, c,
                            [&](int32_t id, int v) { return byte_at(id) < v; }) - sorted_.begin();
      hi = std::upper_bound(sorted_.begin() + lo, sorted_.begin() + hi, c,
                            [&](int v, int32_t id) { return v < byte_at(id); }) - sorted_.begin();
      if (lo < hi && tx[sorted_[lo]].size() == d + 1) {  // a token ends here (it sorts first)
        const int32_t id = sorted_[lo];
        if (d + 1 == char_len) whole_char = true;
        const double s = base + score_[id];
        UnigramWorkspace::Best& b = ws->best[pos + d + 1];
        if (s > b.score) b = {s, id, static_cast<uint32_t>(pos)};
      }
    }
    if (!whole_char) {
      const double s = base + unk_score_;
      UnigramWorkspace::Best& b = ws->best[pos + char_len];
      if (s > b.score) b = {s, unk_, static_cast<uint32_t>(pos)};
    }
    pos += char_len;
  }
  // Back from the end; runs of unknowns become one.
  ws->tokens.clear();
  bool prev_unknown = false;
  for (size_t at = n; at > 0;) {
    const UnigramWorkspace::Best& b = ws->best[at];
    const bool unknown = b.token == unk_;
    if (!(unknown && prev_unknown)) ws->tokens.push_back(b.token);
    prev_unknown = unknown;
    at = b.from;
  }
  for (auto it = ws->tokens.rbegin(); it != ws->tokens.rend(); ++it)
    if (*it >= 0) out->push_back(*it);
}

}  // namespace wren

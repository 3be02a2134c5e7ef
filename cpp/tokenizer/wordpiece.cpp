#include "tokenizer/wordpiece.h"

#include <algorithm>

#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"

namespace wren {

bool WordPieceModel::is_word_start(const std::string& token) {
  return token.compare(0, std::char_traits<char>::length(kSpmSpace), kSpmSpace) == 0;
}

WordPieceModel::WordPieceModel(const std::vector<std::string>& tokens, int32_t unk, size_t max_chars)
    : unk_(unk), max_chars_(max_chars) {
  const size_t k = std::char_traits<char>::length(kSpmSpace);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (is_word_start(t)) {
      start_[t.substr(k)] = static_cast<int32_t>(i);
      max_piece_bytes_ = std::max(max_piece_bytes_, t.size() - k);
    } else {
      continuation_[t] = static_cast<int32_t>(i);
      max_piece_bytes_ = std::max(max_piece_bytes_, t.size());
    }
  }
}

void WordPieceModel::encode(const char* word, size_t n, std::vector<int32_t>* out) const {
  if (n == 0) return;
  // Character boundaries (byte offsets), plus n.
  std::vector<uint32_t> bounds;
  size_t i = 0;
  while (i < n) {
    bounds.push_back(static_cast<uint32_t>(i));
    const Utf8Step st = utf8_next(word, n, i);
    i += st.kind == Utf8Step::kValid ? st.len : 1;
  }
  const size_t n_chars = bounds.size();
  bounds.push_back(static_cast<uint32_t>(n));
  const size_t mark = out->size();
  const auto unknown = [&] {
    out->resize(mark);
    if (unk_ >= 0) out->push_back(unk_);
  };
  if (n_chars > max_chars_) return unknown();
  std::string piece;
  size_t start = 0;
  while (start < n_chars) {
    const auto& table = start == 0 ? start_ : continuation_;
    size_t end = n_chars;
    while (end > start && bounds[end] - bounds[start] > max_piece_bytes_) --end;
    int32_t found = -1;
    for (; end > start; --end) {
      piece.assign(word + bounds[start], bounds[end] - bounds[start]);
      auto it = table.find(piece);
      if (it != table.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) return unknown();
    out->push_back(found);
    start = end;
  }
}

}  // namespace wren

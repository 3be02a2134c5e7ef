#include "tokenizer/bpe.h"

#include <algorithm>

#include "tokenizer/unicode.h"
#include "util/errors.h"

namespace wren {
namespace {

bool is_printable_byte(uint32_t b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

// Inverse of byte_to_codepoint over U+0000..U+01FF (every mapped code point is below U+0144);
// -1 where a code point is not the image of a byte.
const std::array<int16_t, 512>& codepoint_to_byte() {
  static const std::array<int16_t, 512> table = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    const auto& fwd = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}

// The heap orders candidates by rank, then leftmost first.
bool later(const BpeWorkspace::Candidate& a, const BpeWorkspace::Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
}

}  // namespace

const std::array<uint32_t, 256>& byte_to_codepoint() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) t[b] = is_printable_byte(b) ? b : next++;
    return t;
  }();
  return table;
}

bool byte_level_decode(const std::string& text, std::string* out) {
  const auto& inv = codepoint_to_byte();
  bool all_mapped = true;
  size_t i = 0;
  while (i < text.size()) {
    const Utf8Step st = utf8_next(text.data(), text.size(), i);
    if (st.kind == Utf8Step::kValid && st.cp < inv.size() && inv[st.cp] >= 0) {
      out->push_back(static_cast<char>(inv[st.cp]));
      i += st.len;
      continue;
    }
    // Not a byte-level character: keep its bytes as they are.
    const size_t len = st.kind == Utf8Step::kValid ? st.len : 1;
    out->append(text, i, len);
    i += len;
    all_mapped = false;
  }
  return all_mapped;
}

BpeModel::BpeModel(int32_t n_vocab, const std::unordered_map<std::string, int32_t>& token_to_id,
                   const std::vector<std::string>& merges, bool ignore_merges, BpeAlphabet alphabet,
                   const std::array<int32_t, 256>* byte_tokens)
    : n_vocab_(n_vocab), ignore_merges_(ignore_merges), alphabet_(alphabet), token_to_id_(&token_to_id) {
  // Strings that appear in merges but not in the vocabulary get ids past the vocabulary, so a
  // merge chain through them works as it does with string symbols; a piece that ends on one is
  // emitted byte by byte.
  const auto symbol = [&](const std::string& s) -> int32_t {
    auto it = token_to_id.find(s);
    if (it != token_to_id.end()) return it->second;
    auto ins = extra_.emplace(s, n_vocab_ + static_cast<int32_t>(extra_.size()));
    return ins.first->second;
  };
  if (alphabet_ == BpeAlphabet::kByteLevel) {
    const auto& fwd = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) {
      utf8_append(&byte_text_[b], fwd[b]);
      byte_symbol_[b] = symbol(byte_text_[b]);
    }
  } else if (byte_tokens != nullptr) {
    byte_fallback_ = *byte_tokens;
  } else {
    byte_fallback_.fill(-1);
  }
  WREN_CHECK(merges.size() < static_cast<size_t>(INT32_MAX), FormatError, merges.size(),
             " merges are too many");
  pairs_.reserve(merges.size());
  std::string joined;
  for (size_t k = 0; k < merges.size(); ++k) {
    const std::string& m = merges[k];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos || sp + 1 >= m.size())
      throw FormatError(str_cat("entry ", k, " is '", m, "'; expected two symbols joined by one space"));
    const std::string left = m.substr(0, sp);
    const std::string right = m.substr(sp + 1);
    joined = left;
    joined += right;
    const int32_t a = symbol(left), b = symbol(right), r = symbol(joined);
    WREN_CHECK(extra_.size() < static_cast<size_t>(INT32_MAX - n_vocab_), FormatError,
               "too many merge symbols");
    // On a repeated pair the first (highest priority) entry stays, as in llama.cpp.
    pairs_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(k), r});
  }
}

void BpeModel::push_candidate(BpeWorkspace* ws, int32_t left) const {
  if (left < 0) return;
  const BpeWorkspace::Symbol& l = ws->symbols[left];
  if (l.next < 0) return;
  const BpeWorkspace::Symbol& r = ws->symbols[l.next];
  auto it = pairs_.find(pair_key(l.id, r.id));
  if (it == pairs_.end()) return;
  ws->heap.push_back({it->second.rank, left, l.id, r.id, it->second.result});
  std::push_heap(ws->heap.begin(), ws->heap.end(), later);
}

void BpeModel::emit(const char* bytes, const BpeWorkspace::Symbol& s, std::vector<int32_t>* out) const {
  if (s.id < n_vocab_) {
    out->push_back(s.id);
    return;
  }
  // A symbol with no token: fall back to one token per byte. A byte with no token of its own is
  // dropped, as llama.cpp and HF tokenizers (without an unk token) do: some byte-level
  // vocabularies lack a few control bytes.
  for (uint32_t i = s.start; i < s.start + s.len; ++i) {
    const uint8_t b = static_cast<uint8_t>(bytes[i]);
    const int32_t id = alphabet_ == BpeAlphabet::kByteLevel ? byte_symbol_[b] : byte_fallback_[b];
    if (id >= 0 && id < n_vocab_) out->push_back(id);
  }
}

void BpeModel::start_symbols(const char* bytes, size_t n, BpeWorkspace* ws) const {
  auto& syms = ws->symbols;
  syms.clear();
  size_t i = 0;
  while (i < n) {
    size_t len = 1;
    int32_t id;
    if (alphabet_ == BpeAlphabet::kByteLevel) {
      id = byte_symbol_[static_cast<uint8_t>(bytes[i])];
    } else {
      // One character (an ill-formed byte is one of its own); a character that is neither a
      // token nor part of a merge gets an id no merge mentions.
      const Utf8Step st = utf8_next(bytes, n, i);
      if (st.kind == Utf8Step::kValid) len = st.len;
      ws->text.assign(bytes + i, len);
      auto it = token_to_id_->find(ws->text);
      if (it != token_to_id_->end()) {
        id = it->second;
      } else {
        auto ex = extra_.find(ws->text);
        id = ex != extra_.end() ? ex->second : INT32_MAX;
      }
    }
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({id, idx - 1, i + len < n ? idx + 1 : -1, static_cast<uint32_t>(i), static_cast<uint32_t>(len)});
    i += len;
  }
}

void BpeModel::encode(const char* bytes, size_t n, BpeWorkspace* ws, std::vector<int32_t>* out) const {
  if (n == 0) return;
  if (ignore_merges_) {
    ws->text.clear();
    if (alphabet_ == BpeAlphabet::kByteLevel) {
      for (size_t i = 0; i < n; ++i) ws->text += byte_text_[static_cast<uint8_t>(bytes[i])];
    } else {
      ws->text.assign(bytes, n);
    }
    auto it = token_to_id_->find(ws->text);
    if (it != token_to_id_->end()) {
      out->push_back(it->second);
      return;
    }
  }
  start_symbols(bytes, n, ws);
  auto& syms = ws->symbols;
  ws->heap.clear();
  for (size_t i = 0; i + 1 < syms.size(); ++i) push_candidate(ws, static_cast<int32_t>(i));
  while (!ws->heap.empty()) {
    std::pop_heap(ws->heap.begin(), ws->heap.end(), later);
    const BpeWorkspace::Candidate c = ws->heap.back();
    ws->heap.pop_back();
    BpeWorkspace::Symbol& l = syms[c.left];
    // Stale candidates: the left symbol was merged away or grew, or its right neighbour grew.
    // (A live symbol's id changes exactly when it grows, so equal ids mean an unchanged pair.)
    if (l.len == 0 || l.id != c.left_id || l.next < 0) continue;
    BpeWorkspace::Symbol& r = syms[l.next];
    if (r.id != c.right_id) continue;
    l.id = c.result;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.len = 0;
    push_candidate(ws, l.prev);
    push_candidate(ws, c.left);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) emit(bytes, syms[i], out);
}

}  // namespace wren

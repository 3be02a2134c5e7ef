// Normalizers: text -> text steps that run before pre-tokenization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace wren {

// BERT's normalizer (Hugging Face BertNormalizer), in its order:
//   clean text      drop NUL, U+FFFD and control characters (Cc, Cf, Co, Cs; not tab, newline,
//                   carriage return; unassigned code points stay); then every whitespace
//                   character becomes ' ';
//   CJK ideographs  surrounded by spaces, so each becomes a word of its own;
//   strip accents   NFD, then drop nonspacing marks (Mn);
//   lowercase       full lowercase mapping of each character.
struct BertNormalizer {
  bool lowercase = true;
  bool strip_accents = true;  // BERT ties it to lowercase unless told otherwise

  // Appends the normalized form of text (UTF-8; ill-formed bytes are dropped) to *out.
  void normalize(const char* text, size_t n, std::string* out) const;
};

// The CJK ideograph blocks BERT splits on (as its reference implementation lists them).
bool is_cjk_ideograph(uint32_t cp);

}  // namespace wren

namespace wren {

// SentencePiece's precompiled normalization map (`tokenizer.ggml.precompiled_charsmap`): a trie
// of input byte strings (an XOR-compressed compact double array) whose leaves point at
// NUL-terminated replacement strings. Validated on construction (FormatError); every lookup
// is bounds-checked.
class CharsMap {
 public:
  CharsMap() = default;
  explicit CharsMap(std::vector<uint8_t> blob);
  bool empty() const { return n_nodes_ == 0; }
  // Longest prefix of s[0, n) that has a replacement: its length (0 if none); *out gets the
  // replacement.
  size_t match(const char* s, size_t n, std::string* out) const;

 private:
  uint32_t node(size_t i) const;
  std::vector<uint8_t> blob_;
  size_t n_nodes_ = 0;
  size_t strings_offset_ = 0;  // where the replacement strings start in blob_
};

// SentencePiece's normalization (unigram models): the charsmap, then spaces: each ' ' becomes
// U+2581, one is put in front of the text (add_space_prefix), and with remove_extra_whitespaces
// leading and trailing spaces go and runs of spaces become one.
struct SpmNormalizer {
  CharsMap charsmap;
  bool add_space_prefix = false;
  bool remove_extra_whitespaces = false;

  void normalize(const char* text, size_t n, std::string* out) const;
};

}  // namespace wren

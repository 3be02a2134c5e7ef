// Normalizers: text -> text steps that run before pre-tokenization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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

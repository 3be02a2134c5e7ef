#include "tokenizer/normalizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace wren {

bool is_cjk_ideograph(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void BertNormalizer::normalize(const char* text, size_t n, std::string* out) const {
  std::u32string cps;
  cps.reserve(n);
  size_t i = 0;
  while (i < n) {
    const Utf8Step st = utf8_next(text, n, i);
    if (st.kind != Utf8Step::kValid) {
      i += st.len > 0 ? st.len : 1;
      continue;
    }
    i += st.len;
    const uint32_t cp = st.cp;
    const uint16_t f = unicode_flags(cp);
    // Control characters go first (so U+0085, a control that is also whitespace, is dropped);
    // tab, newline and carriage return count as whitespace, not control.
    const bool tab_or_newline = cp == '\t' || cp == '\n' || cp == '\r';
    if (!tab_or_newline && (cp == 0 || cp == 0xFFFD || (f & kUcControl))) continue;
    if (tab_or_newline || (f & kUcWhitespace)) {
      cps.push_back(' ');
      continue;
    }
    if (is_cjk_ideograph(cp)) {
      cps.push_back(' ');
      cps.push_back(cp);
      cps.push_back(' ');
      continue;
    }
    cps.push_back(cp);
  }
  if (strip_accents) {
    std::u32string nfd;
    nfd.reserve(cps.size());
    for (char32_t c : cps) nfd_append(c, &nfd);
    canonical_order(&nfd);
    cps.clear();
    for (char32_t c : nfd)
      if (!(unicode_flags(c) & kUcNonspacing)) cps.push_back(c);
  }
  if (lowercase) {
    std::u32string low;
    low.reserve(cps.size());
    for (char32_t c : cps) lowercase_append(c, &low);
    cps.swap(low);
  }
  out->reserve(out->size() + cps.size());
  for (char32_t c : cps) utf8_append(out, c);
}

}  // namespace wren

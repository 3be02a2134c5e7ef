#include "tokenizer/normalizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"
#include "util/errors.h"

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

namespace wren {
namespace {

constexpr char kSpaceMark[] = "\xE2\x96\x81";  // U+2581

}  // namespace

CharsMap::CharsMap(std::vector<uint8_t> blob) : blob_(std::move(blob)) {
  if (blob_.empty()) return;
  WREN_CHECK(blob_.size() >= 4, FormatError, "precompiled charsmap of ", blob_.size(), " bytes is too short");
  const uint32_t trie_bytes = static_cast<uint32_t>(blob_[0]) | (static_cast<uint32_t>(blob_[1]) << 8) |
                              (static_cast<uint32_t>(blob_[2]) << 16) | (static_cast<uint32_t>(blob_[3]) << 24);
  WREN_CHECK(trie_bytes % 4 == 0 && static_cast<uint64_t>(trie_bytes) + 4 < blob_.size(), FormatError,
             "precompiled charsmap: trie of ", trie_bytes, " bytes does not fit in ", blob_.size(), " bytes");
  n_nodes_ = trie_bytes / 4;
  strings_offset_ = 4 + trie_bytes;
}

uint32_t CharsMap::node(size_t i) const {
  WREN_CHECK(i < n_nodes_, FormatError, "precompiled charsmap: node ", i, " is out of range");
  const uint8_t* p = blob_.data() + 4 + 4 * i;
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

size_t CharsMap::match(const char* s, size_t n, std::string* out) const {
  if (n_nodes_ == 0) return 0;
  // Each node packs BASE (bits 10-30, shifted left by 8 when bit 9 is set), LCHECK (bits 0-7
  // and 31: a value node has bit 31) and LEAF (bit 8); a value node holds a string offset.
  const auto base = [](uint32_t v) { return (v >> 10) << ((v & (1u << 9)) >> 6); };
  size_t best_len = 0;
  uint32_t best_value = 0;
  size_t index = base(node(0));
  for (size_t k = 0; k < n; ++k) {
    const uint8_t c = static_cast<uint8_t>(s[k]);
    if (c == 0) break;
    index ^= c;
    const uint32_t v = node(index);
    if ((v & ((1u << 31) | 0xFF)) != c) break;
    const bool leaf = (v >> 8) & 1;
    index ^= base(v);
    if (leaf) {
      best_len = k + 1;
      best_value = node(index) & ((1u << 31) - 1);
    }
  }
  if (best_len == 0) return 0;
  const size_t at = strings_offset_ + best_value;
  WREN_CHECK(at < blob_.size(), FormatError, "precompiled charsmap: string offset ", best_value, " is out of range");
  size_t end = at;
  while (end < blob_.size() && blob_[end] != 0) ++end;
  WREN_CHECK(end < blob_.size(), FormatError, "precompiled charsmap: unterminated string at ", best_value);
  out->assign(reinterpret_cast<const char*>(blob_.data() + at), end - at);
  return best_len;
}

void SpmNormalizer::normalize(const char* text, size_t n, std::string* out) const {
  bool prefix_done = false;
  bool in_word = false;
  std::string repl;
  const auto put = [&](char c) {
    if (c != ' ') {
      if (!in_word) {
        in_word = true;
        if ((add_space_prefix && !prefix_done) || remove_extra_whitespaces) {
          out->append(kSpaceMark);
          prefix_done = true;
        }
      }
      out->push_back(c);
    } else {
      in_word = false;
      if (!remove_extra_whitespaces) out->append(kSpaceMark);
    }
  };
  size_t i = 0;
  while (i < n) {
    const size_t matched = charsmap.match(text + i, n - i, &repl);
    if (matched > 0) {
      for (char c : repl) put(c);
      i += matched;
      continue;
    }
    const Utf8Step st = utf8_next(text, n, i);
    if (st.kind == Utf8Step::kValid) {
      for (size_t k = 0; k < st.len; ++k) put(text[i + k]);
      i += st.len;
    } else {  // an ill-formed byte becomes U+FFFD
      for (char c : std::string("\xEF\xBF\xBD")) put(c);
      i += 1;
    }
  }
}

}  // namespace wren

#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace wren {
namespace {

#include "unicode_tables.inc"

static_assert(kGenLetter == kUcLetter && kGenNumber == kUcNumber && kGenMark == kUcMark &&
                  kGenPunct == kUcPunct && kGenSymbol == kUcSymbol &&
                  kGenSeparator == kUcSeparator && kGenControl == kUcControl &&
                  kGenUnassigned == kUcUnassigned && kGenWhitespace == kUcWhitespace &&
                  kGenNonspacing == kUcNonspacing,
              "tools/gen_unicode_tables.py and unicode.h disagree on the flag bits");

uint16_t lookup_ranges(uint32_t cp) {
  // Last range whose first <= cp.
  const UnicodeRange* begin = std::begin(kUnicodeRanges);
  const UnicodeRange* end = std::end(kUnicodeRanges);
  const UnicodeRange* it = std::upper_bound(
      begin, end, cp, [](uint32_t c, const UnicodeRange& r) { return c < r.first; });
  return it == begin ? static_cast<uint16_t>(kUcUnassigned) : (it - 1)->flags;
}

// Latin-1 is by far the most common input; look it up directly.
const std::array<uint16_t, 256>& latin1_flags() {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> t{};
    for (uint32_t c = 0; c < 256; ++c) t[c] = lookup_ranges(c);
    return t;
  }();
  return table;
}

// The entry of a mapping table for cp, or nullptr.
template <size_t N>
const UnicodeMapping* find_mapping(const UnicodeMapping (&table)[N], uint32_t cp) {
  const UnicodeMapping* it = std::lower_bound(
      std::begin(table), std::end(table), cp, [](const UnicodeMapping& m, uint32_t c) { return m.cp < c; });
  return (it != std::end(table) && it->cp == cp) ? it : nullptr;
}

// Hangul syllables decompose arithmetically (Unicode 3.12).
constexpr uint32_t kHangulFirst = 0xAC00, kHangulCount = 11172;
constexpr uint32_t kJamoL = 0x1100, kJamoV = 0x1161, kJamoT = 0x11A7;
constexpr uint32_t kJamoVCount = 21, kJamoTCount = 28;

}  // namespace

void nfd_append(uint32_t cp, std::u32string* out) {
  if (cp >= kHangulFirst && cp < kHangulFirst + kHangulCount) {
    const uint32_t s = cp - kHangulFirst;
    out->push_back(kJamoL + s / (kJamoVCount * kJamoTCount));
    out->push_back(kJamoV + (s % (kJamoVCount * kJamoTCount)) / kJamoTCount);
    if (s % kJamoTCount != 0) out->push_back(kJamoT + s % kJamoTCount);
    return;
  }
  const UnicodeMapping* m = find_mapping(kNfdMap, cp);
  if (m == nullptr) {
    out->push_back(cp);
    return;
  }
  for (uint32_t k = 0; k < m->len; ++k) out->push_back(kMapData[m->offset + k]);
}

uint8_t combining_class(uint32_t cp) {
  const CombiningClassRange* begin = std::begin(kCccRanges);
  const CombiningClassRange* it = std::upper_bound(
      begin, std::end(kCccRanges), cp, [](uint32_t c, const CombiningClassRange& r) { return c < r.first; });
  return it == begin ? 0 : (it - 1)->ccc;
}

void canonical_order(std::u32string* cps) {
  const auto by_class = [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); };
  size_t i = 0;
  while (i < cps->size()) {
    if (combining_class((*cps)[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < cps->size() && combining_class((*cps)[j]) != 0) ++j;
    if (j - i > 1) std::stable_sort(cps->begin() + i, cps->begin() + j, by_class);
    i = j;
  }
}

void lowercase_append(uint32_t cp, std::u32string* out) {
  if (cp < 0x80) {
    out->push_back((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    return;
  }
  const UnicodeMapping* m = find_mapping(kLowerMap, cp);
  if (m == nullptr) {
    out->push_back(cp);
    return;
  }
  for (uint32_t k = 0; k < m->len; ++k) out->push_back(kMapData[m->offset + k]);
}

uint16_t unicode_flags(uint32_t cp) {
  if (cp < 256) return latin1_flags()[cp];
  if (cp > 0x10FFFF) return kUcUnassigned;
  return lookup_ranges(cp);
}

const char* unicode_version() { return kUnicodeVersion; }

size_t utf8_first_invalid(const char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Step st = utf8_next(s, n, i);
    if (st.kind != Utf8Step::kValid) return i;
    i += st.len;
  }
  return n;
}

Utf8Step utf8_next(const char* s, size_t n, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return {Utf8Step::kValid, 1, b0};
  // Lead bytes fix the length and the allowed range of the second byte (which rules out
  // overlong forms, surrogates and code points above U+10FFFF).
  uint8_t need, lo = 0x80, hi = 0xBF;
  uint32_t cp;
  if (b0 < 0xC2) {
    return {Utf8Step::kInvalid, 1, 0};  // stray continuation byte, or overlong C0/C1 lead
  } else if (b0 <= 0xDF) {
    need = 2;
    cp = b0 & 0x1F;
  } else if (b0 <= 0xEF) {
    need = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 <= 0xF4) {
    need = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Utf8Step::kInvalid, 1, 0};
  }
  for (uint8_t k = 1; k < need; ++k) {
    if (i + k >= n) return {Utf8Step::kIncomplete, k, 0};
    const uint8_t b = byte(i + k);
    if (b < lo || b > hi) return {Utf8Step::kInvalid, k, 0};
    cp = (cp << 6) | (b & 0x3F);
    lo = 0x80;
    hi = 0xBF;
  }
  return {Utf8Step::kValid, need, cp};
}

void utf8_append(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_append_sanitized(std::string* out, const char* s, size_t n, bool keep_incomplete_tail) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  size_t i = 0;
  size_t run = 0;  // start of the current run of valid bytes, copied in one go
  while (i < n) {
    const Utf8Step st = utf8_next(s, n, i);
    if (st.kind == Utf8Step::kValid) {
      i += st.len;
      continue;
    }
    out->append(s + run, i - run);
    if (st.kind == Utf8Step::kIncomplete && keep_incomplete_tail) return n - i;
    out->append(kReplacement, 3);
    i += st.len;
    run = i;
  }
  out->append(s + run, n - run);
  return 0;
}

}  // namespace wren

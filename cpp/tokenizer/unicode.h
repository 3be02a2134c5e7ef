// UTF-8 decoding/encoding, Unicode category lookups and the character mappings the normalizers
// need (NFD, lowercase). All data comes from tables generated at build time
// (tools/gen_unicode_tables.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace wren {

// Flag bits of a code point (several may be set: whitespace comes with separator or control).
enum UnicodeFlag : uint16_t {
  kUcLetter = 0x001,      // \p{L}
  kUcNumber = 0x002,      // \p{N}
  kUcMark = 0x004,        // \p{M}
  kUcPunct = 0x008,       // \p{P}
  kUcSymbol = 0x010,      // \p{S}
  kUcSeparator = 0x020,   // \p{Z}
  kUcControl = 0x040,     // Cc, Cf, Cs, Co
  kUcUnassigned = 0x080,  // Cn
  kUcWhitespace = 0x100,  // White_Space property (\s)
  kUcNonspacing = 0x200,  // Mn (also has kUcMark)
};

// One entry of the generated range table.
struct UnicodeRange {
  uint32_t first;
  uint16_t flags;
};

// One entry of a generated mapping table: cp maps to len code points stored from offset on.
struct UnicodeMapping {
  uint32_t cp;
  uint16_t offset;
  uint8_t len;
};

// One entry of the generated canonical combining class table.
struct CombiningClassRange {
  uint32_t first;
  uint8_t ccc;
};

// Flags of a code point; code points above U+10FFFF get kUcUnassigned.
uint16_t unicode_flags(uint32_t cp);
inline bool is_letter(uint32_t cp) { return unicode_flags(cp) & kUcLetter; }
inline bool is_number(uint32_t cp) { return unicode_flags(cp) & kUcNumber; }
inline bool is_whitespace(uint32_t cp) { return unicode_flags(cp) & kUcWhitespace; }
inline bool is_punct(uint32_t cp) { return unicode_flags(cp) & kUcPunct; }
// Appends the full canonical decomposition of cp (itself when it has none). Marks of one code
// point's decomposition come out in canonical order; use canonical_order on a whole text.
void nfd_append(uint32_t cp, std::u32string* out);
// Canonical combining class (0 for starters).
uint8_t combining_class(uint32_t cp);
// Sorts every run of non-starters by combining class, keeping the order of equal classes
// (the canonical ordering step of NFD).
void canonical_order(std::u32string* cps);
// Appends the lowercase form of one code point (one or more code points; itself when unchanged).
void lowercase_append(uint32_t cp, std::u32string* out);

// The Unicode version of the generated tables, e.g. "14.0.0".
const char* unicode_version();

// Result of reading one UTF-8 sequence at a position (see utf8_next).
struct Utf8Step {
  enum Kind : uint8_t { kValid, kInvalid, kIncomplete } kind;
  uint8_t len;  // kValid: bytes of the sequence; kInvalid: bytes of the maximal ill-formed
                // subpart (one U+FFFD replaces them); kIncomplete: bytes of the valid prefix
  uint32_t cp;  // kValid only
};

// Reads the sequence starting at s[i] (i < n). A sequence cut off by the end of the buffer whose
// bytes so far are a valid prefix is kIncomplete; anything that can never become valid is
// kInvalid, with len following the Unicode "maximal subpart" practice (as Python's
// bytes.decode(errors="replace") and Rust's from_utf8_lossy do).
Utf8Step utf8_next(const char* s, size_t n, size_t i);

// Offset of the first byte of s[0, n) that is not part of a well-formed UTF-8 sequence (an
// incomplete one at the end included), or n when all of it is valid UTF-8.
size_t utf8_first_invalid(const char* s, size_t n);

// Appends the UTF-8 encoding of a code point (cp must be <= U+10FFFF).
void utf8_append(std::string* out, uint32_t cp);

// Appends s with every ill-formed subpart replaced by U+FFFD. When keep_incomplete_tail is true,
// a valid-but-incomplete sequence at the very end is not appended; returns its length in bytes
// (0 when there is none or keep_incomplete_tail is false).
size_t utf8_append_sanitized(std::string* out, const char* s, size_t n, bool keep_incomplete_tail);

inline std::string utf8_sanitize(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  utf8_append_sanitized(&out, s.data(), s.size(), false);
  return out;
}

}  // namespace wren

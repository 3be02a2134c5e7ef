#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "tokenizer/unicode.h"
#include "util/errors.h"

namespace wren {
namespace {

constexpr uint32_t kOutOfRange = 0xFFFFFFFF;  // "no code point here": past the end of a piece
constexpr uint32_t kBadByte = 0xFFFFFFFE;     // an ill-formed UTF-8 byte, kept as one unit

// The text as a sequence of units (code points, or single ill-formed bytes).
struct Units {
  std::vector<uint32_t> cp;
  std::vector<uint16_t> flags;
  std::vector<uint32_t> offset;  // byte offset of each unit, plus one final entry == n

  void decode(const char* s, size_t n) {
    cp.reserve(n);
    flags.reserve(n);
    offset.reserve(n + 1);
    size_t i = 0;
    while (i < n) {
      const Utf8Step st = utf8_next(s, n, i);
      offset.push_back(static_cast<uint32_t>(i));
      if (st.kind == Utf8Step::kValid) {
        cp.push_back(st.cp);
        flags.push_back(unicode_flags(st.cp));
        i += st.len;
      } else {
        cp.push_back(kBadByte);
        flags.push_back(kUcUnassigned);
        i += 1;
      }
    }
    offset.push_back(static_cast<uint32_t>(n));
  }
  uint32_t size() const { return static_cast<uint32_t>(cp.size()); }
};

// One piece [begin, end) being cut by a stage. Reads past the end give kOutOfRange / no flags,
// which is how the matchers below see the piece boundary.
class Piece {
 public:
  Piece(const Units& u, uint32_t begin, uint32_t end, std::vector<uint32_t>* cuts)
      : u_(u), begin_(begin), end_(end), prev_(begin), cuts_(cuts) {}

  uint32_t begin() const { return begin_; }
  uint32_t end() const { return end_; }
  uint32_t cp(uint32_t pos) const { return pos < end_ ? u_.cp[pos] : kOutOfRange; }
  uint16_t flags(uint32_t pos) const { return pos < end_ ? u_.flags[pos] : 0; }
  bool has(uint32_t pos, uint16_t flag) const { return (flags(pos) & flag) != 0; }

  // Ends the current sub-piece at `end` (no-op when that would make it empty).
  void cut(uint32_t end) {
    if (end > prev_) {
      cuts_->push_back(end);
      prev_ = end;
    }
  }

 private:
  const Units& u_;
  uint32_t begin_, end_, prev_;
  std::vector<uint32_t>* cuts_;
};

bool is_cr_or_lf(uint32_t c) { return c == '\r' || c == '\n'; }
uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Isolates the leftmost-first runs of units satisfying `pred` with min_len <= length <= max_len
// (what a regex like `\p{N}+` or `[0-9][0-9][0-9]` does with the "isolated" split behaviour).
template <typename Pred>
void isolate_runs(Piece& p, Pred pred, uint32_t min_len, uint32_t max_len) {
  uint32_t pos = p.begin();
  while (pos < p.end()) {
    if (!pred(p, pos)) {
      ++pos;
      continue;
    }
    uint32_t run_end = pos;
    while (run_end < p.end() && run_end - pos < max_len && pred(p, run_end)) ++run_end;
    if (run_end - pos >= min_len) {
      p.cut(pos);
      p.cut(run_end);
    }
    pos = run_end;
  }
}

// Isolates the leftmost-first matches of `prefix?body+` (the regexes `\s?\p{L}+`, ` ?[...]+`):
// an optional unit satisfying `prefix` that is followed by a body unit, then the longest body run.
template <typename Prefix, typename Body>
void isolate_prefixed_runs(Piece& p, Prefix prefix, Body body) {
  uint32_t pos = p.begin();
  while (pos < p.end()) {
    uint32_t run_end;
    if (prefix(p, pos) && body(p, pos + 1)) {
      run_end = pos + 1;
    } else if (body(p, pos)) {
      run_end = pos;
    } else {
      ++pos;
      continue;
    }
    while (run_end < p.end() && body(p, run_end)) ++run_end;
    p.cut(pos);
    p.cut(run_end);
    pos = run_end;
  }
}

// `\s+$`: the whitespace that ends the piece, if any, becomes a piece of its own.
void isolate_trailing_space(Piece& p) {
  uint32_t start = p.end();
  while (start > p.begin() && p.has(start - 1, kUcWhitespace)) --start;
  p.cut(start);
}

bool pred_number(const Piece& p, uint32_t pos) { return p.has(pos, kUcNumber); }
bool pred_ascii_digit(const Piece& p, uint32_t pos) { return p.cp(pos) >= '0' && p.cp(pos) <= '9'; }
bool pred_punct(const Piece& p, uint32_t pos) {
  const uint32_t c = p.cp(pos);
  return p.has(pos, kUcPunct) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
         c == '^' || c == '~' || c == '|';
}
bool pred_punct_backtick(const Piece& p, uint32_t pos) { return pred_punct(p, pos) || p.cp(pos) == '`'; }
bool pred_cr_lf(const Piece& p, uint32_t pos) { return is_cr_or_lf(p.cp(pos)); }
bool pred_newline(const Piece& p, uint32_t pos) { return p.cp(pos) == '\n'; }
bool pred_whitespace(const Piece& p, uint32_t pos) { return p.has(pos, kUcWhitespace); }
bool pred_space(const Piece& p, uint32_t pos) { return p.cp(pos) == ' '; }
bool pred_letter(const Piece& p, uint32_t pos) { return p.has(pos, kUcLetter); }
bool pred_punct_category(const Piece& p, uint32_t pos) { return p.has(pos, kUcPunct); }

// A bracketed character class of a regex, read from the text between its brackets as the
// tokenizer.json spells it: single code points, ranges `a-z` and `\s` (no other escapes, no
// negation).
class CharClass {
 public:
  explicit CharClass(const char* spec) {
    std::vector<uint32_t> cps;
    const size_t n = std::strlen(spec);
    for (size_t i = 0; i < n;) {
      if (spec[i] == '\\' && i + 1 < n && spec[i + 1] == 's') {
        whitespace_ = true;
        i += 2;
        continue;
      }
      const Utf8Step st = utf8_next(spec, n, i);
      cps.push_back(st.cp);
      i += st.len;
    }
    for (size_t k = 0; k < cps.size(); ++k) {
      if (k + 2 < cps.size() && cps[k + 1] == '-') {
        ranges_.push_back({cps[k], cps[k + 2]});
        k += 2;
      } else {
        ranges_.push_back({cps[k], cps[k]});
      }
    }
    std::sort(ranges_.begin(), ranges_.end());
  }
  bool contains(uint32_t cp) const {
    if (whitespace_ && is_whitespace(cp)) return true;
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), std::make_pair(cp, UINT32_MAX));
    return it != ranges_.begin() && cp <= std::prev(it)->second;
  }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;  // [first, last], sorted by first
  bool whitespace_ = false;                            // \s is in the class
};

// The bracketed classes of the split regexes below, as their tokenizer.json spells them (between
// the brackets). DeepSeek LLM's alphabetic scripts; U+1F7D U+1FBE U+1FD3 U+1FDB U+2126 U+212A are
// escaped because Unicode normalization would change them (and reverse their ranges).
constexpr char kLatinClass[] =
      "A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆ"
      "Έ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿ"
      "ᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\xE1\xBD\xBD" "ᾀ-ᾴᾶ-ᾼ"
      "\xE1\xBE\xBE" "ῂ-ῄῆ-ῌῐ-\xE1\xBF\x93" "ῖ-\xE1\xBF\x9B" "ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\xE2\x84\xA6" "ℨ"
      "\xE2\x84\xAA" "-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯ"
      "ꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲"
      "𑢠-𑣟𞤀-𞥃";
constexpr char kAsciiPunctClass[] = "!-/:-~！-／：-～‘-‟　-。";  // DeepSeek LLM
constexpr char kCjkClass[] = "一-龥ࠀ-一가-퟿";                // DeepSeek
constexpr char kBloomNonWord[] = "(\\s|.,!?…。，、।۔،)";    // BLOOM's, negated in its regex

// Oniguruma, which HF tokenizers runs these with, matches the ranges on the code points as they are
// (whitespace such as U+3000 included).
bool pred_latin(const Piece& p, uint32_t pos) {
  static const CharClass cls(kLatinClass);
  return cls.contains(p.cp(pos));
}
bool pred_ascii_punct(const Piece& p, uint32_t pos) {
  static const CharClass cls(kAsciiPunctClass);
  return cls.contains(p.cp(pos));
}
bool pred_cjk(const Piece& p, uint32_t pos) {
  static const CharClass cls(kCjkClass);
  return cls.contains(p.cp(pos));
}
// BLOOM's word class [^(\s|.,!?…。，、।۔،)] (the parentheses and bar are literal characters in it).
bool pred_bloom_word(const Piece& p, uint32_t pos) {
  static const CharClass non_word(kBloomNonWord);
  const uint32_t c = p.cp(pos);
  return c != kOutOfRange && !non_word.contains(c);
}

// 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, or ASCII-case-insensitive for the llama3 family).
// Returns the contraction's length (2 or 3) at pos, or 0.
uint32_t contraction_at(const Piece& p, uint32_t pos, bool ignore_case) {
  if (p.cp(pos) != '\'') return 0;
  const auto lower = [&](uint32_t c) { return ignore_case ? ascii_lower(c) : c; };
  const uint32_t c1 = lower(p.cp(pos + 1));
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  const uint32_t c2 = lower(p.cp(pos + 2));
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(Piece& p) {
  constexpr uint16_t kLN = kUcLetter | kUcNumber;
  constexpr uint16_t kWLN = kUcWhitespace | kUcLetter | kUcNumber;
  uint32_t pos = p.begin();
  while (pos < p.end()) {
    const uint32_t c = p.cp(pos);
    if (const uint32_t len = contraction_at(p, pos, false)) {
      pos += len;
      p.cut(pos);
      continue;
    }
    // An optional leading ASCII space, then a run of one class.
    const uint32_t body = pos + (c == ' ' ? 1 : 0);
    const uint16_t f = p.flags(body);
    if (f & kLN) {  // ` ?\p{L}+` or ` ?\p{N}+`
      const uint16_t cls = (f & kUcLetter) ? kUcLetter : kUcNumber;
      pos = body;
      while (p.has(pos, cls)) ++pos;
      p.cut(pos);
      continue;
    }
    if (f != 0 && !(f & kWLN)) {  // ` ?[^\s\p{L}\p{N}]+`
      pos = body;
      while (p.flags(pos) != 0 && !(p.flags(pos) & kWLN)) ++pos;
      p.cut(pos);
      continue;
    }
    uint32_t ws = 0;
    while (p.has(pos + ws, kUcWhitespace)) ++ws;
    if (ws > 1 && p.cp(pos + ws) != kOutOfRange) {  // `\s+(?!\S)`: leave the last one
      pos += ws - 1;
      p.cut(pos);
      continue;
    }
    pos += ws > 0 ? ws : 1;  // `\s+`, or a unit nothing matches
    p.cut(pos);
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// with_marks: [\p{L}\p{M}]+ instead of \p{L}+, and marks also left out of [^\s\p{L}\p{N}] (Qwen3.5).
void split_llama3(Piece& p, uint32_t max_digits, bool with_marks) {
  const uint16_t kLetter = with_marks ? (kUcLetter | kUcMark) : kUcLetter;
  const uint16_t kWLN = kUcWhitespace | kLetter | kUcNumber;
  uint32_t pos = p.begin();
  while (pos < p.end()) {
    const uint32_t c = p.cp(pos);
    const uint16_t f = p.flags(pos);
    if (const uint32_t len = contraction_at(p, pos, true)) {
      pos += len;
      p.cut(pos);
      continue;
    }
    // `[^\r\n\p{L}\p{N}]?\p{L}+`
    if (!is_cr_or_lf(c) && !(f & kUcNumber) && ((f & kLetter) || p.has(pos + 1, kLetter))) {
      ++pos;
      while (p.has(pos, kLetter)) ++pos;
      p.cut(pos);
      continue;
    }
    // `\p{N}{1,max_digits}`
    if (f & kUcNumber) {
      uint32_t run = 0;
      while (run < max_digits && p.has(pos, kUcNumber)) {
        ++pos;
        ++run;
      }
      p.cut(pos);
      continue;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    const uint32_t body = pos + (c == ' ' ? 1 : 0);
    const uint16_t fb = p.flags(body);
    if (fb != 0 && !(fb & kWLN)) {
      pos = body;
      while (p.flags(pos) != 0 && !(p.flags(pos) & kWLN)) ++pos;
      while (is_cr_or_lf(p.cp(pos))) ++pos;
      p.cut(pos);
      continue;
    }
    uint32_t ws = 0;
    uint32_t last_newline_end = 0;
    while (p.has(pos + ws, kUcWhitespace)) {
      if (is_cr_or_lf(p.cp(pos + ws))) last_newline_end = pos + ws + 1;
      ++ws;
    }
    if (last_newline_end > 0) {  // `\s*[\r\n]+`
      pos = last_newline_end;
      p.cut(pos);
      continue;
    }
    if (ws > 1 && p.cp(pos + ws) != kOutOfRange) {  // `\s+(?!\S)`
      pos += ws - 1;
      p.cut(pos);
      continue;
    }
    pos += ws > 0 ? ws : 1;  // `\s+`, or a unit nothing matches
    p.cut(pos);
  }
}

void run_stage(SplitStage stage, Piece& p) {
  switch (stage) {
    case SplitStage::kEachNumber: isolate_runs(p, pred_number, 1, 1); break;
    case SplitStage::kNumberRun: isolate_runs(p, pred_number, 1, UINT32_MAX); break;
    case SplitStage::kAsciiDigitTriple: isolate_runs(p, pred_ascii_digit, 3, 3); break;
    case SplitStage::kPunctRun: isolate_runs(p, pred_punct, 1, UINT32_MAX); break;
    case SplitStage::kPunctRunBacktick: isolate_runs(p, pred_punct_backtick, 1, UINT32_MAX); break;
    case SplitStage::kGpt2: split_gpt2(p); break;
    case SplitStage::kLlama3: split_llama3(p, 3, false); break;
    case SplitStage::kQwen2: split_llama3(p, 1, false); break;
    case SplitStage::kQwen35: split_llama3(p, 1, true); break;
    case SplitStage::kEachCrLf: isolate_runs(p, pred_cr_lf, 1, 1); break;
    case SplitStage::kSpacedLetterRun: isolate_prefixed_runs(p, pred_whitespace, pred_letter); break;
    case SplitStage::kSpacedPunctRun: isolate_prefixed_runs(p, pred_whitespace, pred_punct_category); break;
    case SplitStage::kSpacedLatinRun: isolate_prefixed_runs(p, pred_whitespace, pred_latin); break;
    case SplitStage::kSpacedAsciiPunct: isolate_prefixed_runs(p, pred_whitespace, pred_ascii_punct); break;
    case SplitStage::kTrailingSpace: isolate_trailing_space(p); break;
    case SplitStage::kCjkRun: isolate_runs(p, pred_cjk, 1, UINT32_MAX); break;
    case SplitStage::kBloom: isolate_prefixed_runs(p, pred_space, pred_bloom_word); break;
    case SplitStage::kNewlineRun: isolate_runs(p, pred_newline, 1, UINT32_MAX); break;
  }
  p.cut(p.end());
}

}  // namespace

const std::string& split_stage_regex(SplitStage stage) {
  using S = SplitStage;
  static const std::vector<std::pair<SplitStage, std::string>> table = {
      {S::kEachNumber, "\\p{N}"},
      {S::kNumberRun, "\\p{N}+"},
      {S::kAsciiDigitTriple, "[0-9][0-9][0-9]"},
      {S::kPunctRun, "[\\p{P}\\$\\+<=>\\^~\\|]+"},
      {S::kPunctRunBacktick, "[\\p{P}\\$\\+<=>\\^~\\|`]+"},
      {S::kGpt2, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
      {S::kLlama3,
       "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
       "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
      {S::kQwen2,
       "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
       "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
      {S::kQwen35,
       "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
       "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
      {S::kEachCrLf, "[\r\n]"},  // the two characters themselves, not escapes
      {S::kSpacedLetterRun, "\\s?\\p{L}+"},
      {S::kSpacedPunctRun, "\\s?\\p{P}+"},
      {S::kSpacedLatinRun, std::string("\\s?[") + kLatinClass + "]+"},
      {S::kSpacedAsciiPunct, std::string("\\s?[") + kAsciiPunctClass + "]+"},
      {S::kTrailingSpace, "\\s+$"},
      {S::kCjkRun, std::string("[") + kCjkClass + "]+"},
      {S::kBloom, std::string(" ?[^") + kBloomNonWord + "]+"},
      {S::kNewlineRun, "[^\\n]+|[\\n]+"},
  };
  for (const auto& e : table)
    if (e.first == stage) return e.second;
  throw InvalidArgument(str_cat("split stage ", static_cast<int>(stage), " has no regex"));
}

namespace {

// The table: pre-tokenizer names (as llama.cpp's convert scripts write them) -> split stages.
// A new family is a new row (plus a new SplitStage when its regex is new).
struct Family {
  std::vector<const char*> names;
  std::vector<SplitStage> stages;
  bool ignore_merges;
  bool add_bos_default;
  bool add_bos_always = false;
  bool spm_spaces = false;
};

const std::vector<Family>& families() {
  using S = SplitStage;
  static const std::vector<Family> table = {
      // What llama.cpp runs when the GGUF names no pre-tokenizer (or "default").
      {{"default"}, {S::kPunctRun, S::kGpt2, S::kNumberRun, S::kAsciiDigitTriple}, false, false},
      {{"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v2-es",
        "jina-v2-de", "gigachat"},
       {S::kGpt2}, false, false},
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"},
       {S::kEachNumber, S::kGpt2}, false, false},
      {{"falcon"}, {S::kPunctRunBacktick, S::kGpt2, S::kAsciiDigitTriple}, false, false},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {S::kLlama3}, true, true},
      {{"dbrx", "smaug-bpe"}, {S::kLlama3}, false, false},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2"}, {S::kQwen2}, false, false},
      {{"qwen35"}, {S::kQwen35}, false, false},
      {{"deepseek-llm"},
       {S::kEachCrLf, S::kSpacedLatinRun, S::kSpacedAsciiPunct, S::kTrailingSpace, S::kCjkRun, S::kNumberRun},
       false, false},
      {{"deepseek-coder"},
       {S::kEachCrLf, S::kSpacedLetterRun, S::kSpacedPunctRun, S::kCjkRun, S::kEachNumber}, false, false},
      {{"bloom", "poro-chat", "gpt3-finnish"}, {S::kBloom}, false, false},
      // Gemma 4 (tokenizer.ggml.model "gemma4", which names no pre-tokenizer): BPE over the whole
      // text, cut only where newline runs begin and end.
      {{"gemma4"}, {S::kNewlineRun}, false, true, true, true},
  };
  return table;
}

}  // namespace

std::vector<std::string> PreTokenizer::known_names() {
  std::vector<std::string> out;
  for (const Family& f : families())
    for (const char* n : f.names) out.emplace_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

PreTokenizer PreTokenizer::by_name(const std::string& name) {
  const std::string key = name.empty() ? "default" : name;
  for (const Family& f : families()) {
    for (const char* n : f.names) {
      if (key == n) {
        PreTokenizer p;
        p.name_ = key;
        p.stages_ = f.stages;
        p.ignore_merges_ = f.ignore_merges;
        p.add_bos_default_ = f.add_bos_default;
        p.add_bos_always_ = f.add_bos_always;
        p.spm_spaces_ = f.spm_spaces;
        return p;
      }
    }
  }
  std::string known;
  for (const std::string& n : known_names()) known += (known.empty() ? "" : ", ") + n;
  throw UnsupportedError(str_cat("pre-tokenizer '", name, "' is not supported (known: ", known, ")"));
}

void PreTokenizer::split(const char* text, size_t n, std::vector<TextPiece>* pieces) const {
  if (n == 0) return;
  WREN_CHECK(n < UINT32_MAX, InvalidArgument, "text of ", n, " bytes is too long to tokenize");
  Units u;
  u.decode(text, n);
  // Pieces are kept as their end positions (in units); each stage refines the list.
  std::vector<uint32_t> ends{u.size()}, next;
  for (SplitStage stage : stages_) {
    next.clear();
    next.reserve(ends.size() * 2);
    uint32_t begin = 0;
    for (uint32_t end : ends) {
      Piece p(u, begin, end, &next);
      run_stage(stage, p);
      begin = end;
    }
    ends.swap(next);
  }
  uint32_t begin = 0;
  for (uint32_t end : ends) {
    pieces->push_back({u.offset[begin], u.offset[end]});
    begin = end;
  }
}

void split_bert_words(const char* text, size_t n, std::vector<TextPiece>* pieces) {
  WREN_CHECK(n < UINT32_MAX, InvalidArgument, "text of ", n, " bytes is too long to tokenize");
  size_t word = n;  // start of the current word, n when none
  size_t i = 0;
  while (i < n) {
    const Utf8Step st = utf8_next(text, n, i);
    const size_t len = st.kind == Utf8Step::kValid ? st.len : 1;
    const uint16_t f = st.kind == Utf8Step::kValid ? unicode_flags(st.cp) : kUcUnassigned;
    const bool space = (f & kUcWhitespace) != 0;
    const bool punct = (f & kUcPunct) || (st.kind == Utf8Step::kValid && st.cp < 0x7F && (f & kUcSymbol));
    if ((space || punct) && word < n) {
      pieces->push_back({static_cast<uint32_t>(word), static_cast<uint32_t>(i)});
      word = n;
    }
    if (punct) {
      pieces->push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + len)});
    } else if (!space && word == n) {
      word = i;
    }
    i += len;
  }
  if (word < n) pieces->push_back({static_cast<uint32_t>(word), static_cast<uint32_t>(n)});
}

}  // namespace wren

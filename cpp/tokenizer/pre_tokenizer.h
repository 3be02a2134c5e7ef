// Pre-tokenizer: splits text into the pieces BPE encodes one at a time.
//
// A pre-tokenizer is a list of split stages chosen by data: a table maps the GGUF key
// `tokenizer.ggml.pre` ("smollm", "gpt-2", ...) to its stages. Each stage looks at every piece the
// previous stage produced and cuts it further; the pieces, in order, always cover the whole text.
// The stages are hand-written matchers over Unicode categories that reproduce the regular
// expressions of llama.cpp / Hugging Face tokenizers (no regex engine involved).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wren {

// One kind of split. The regex each one stands for is given with its definition in the .cpp.
enum class SplitStage : uint8_t {
  kEachNumber,        // \p{N}                      every number code point on its own
  kNumberRun,         // \p{N}+
  kAsciiDigitTriple,  // [0-9][0-9][0-9]
  kPunctRun,          // [\p{P}\$\+<=>\^~\|]+
  kPunctRunBacktick,  // [\p{P}\$\+<=>\^~\|`]+
  kGpt2,              // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,            // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                      //   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,             // as kLlama3, with \p{N} instead of \p{N}{1,3}
  kQwen35,            // as kQwen2, with [\p{L}\p{M}]+ for \p{L}+ and [^\s\p{L}\p{M}\p{N}] for [^\s\p{L}\p{N}]
  kEachCrLf,          // [\r\n]
  kSpacedLetterRun,   // \s?\p{L}+
  kSpacedPunctRun,    // \s?\p{P}+
  kSpacedLatinRun,    // \s?[A-Za-zµÀ-Ö...]+  (DeepSeek LLM's alphabetic scripts; the class is in the .cpp)
  kSpacedAsciiPunct,  // \s?[!-/:-~！-／：-～‘-‟　-。]+
  kTrailingSpace,     // \s+$
  kCjkRun,            // [一-龥ࠀ-一가-퟿]+
  kBloom,             //  ?[^(\s|.,!?…。，、।۔،)]+
  kNewlineRun,        // [^\n]+|[\n]+
};

// The regex a stage stands for, as the Split pre-tokenizers of tokenizer.json spell it (after JSON
// unescaping), so a tokenizer.json can be matched to the stages.
const std::string& split_stage_regex(SplitStage stage);

// A byte range [begin, end) of the text given to PreTokenizer::split.
struct TextPiece {
  uint32_t begin;
  uint32_t end;
};

class PreTokenizer {
 public:
  // The pre-tokenizer named by `tokenizer.ggml.pre`. An empty name means the key is absent, which
  // (as in llama.cpp) selects "default". Unknown names throw UnsupportedError listing the known ones.
  static PreTokenizer by_name(const std::string& name);
  // Every name by_name accepts, sorted.
  static std::vector<std::string> known_names();

  // Appends the pieces of text[0, n) to *pieces (nothing for empty text). Ill-formed UTF-8 bytes
  // are kept, one byte per unit, in the category of unassigned code points.
  void split(const char* text, size_t n, std::vector<TextPiece>* pieces) const;

  const std::string& name() const { return name_; }
  const std::vector<SplitStage>& stages() const { return stages_; }
  // Family properties that travel with the pre-tokenizer name in llama.cpp:
  // a piece that is itself a vocabulary token is emitted without merging (llama3),
  bool ignore_merges() const { return ignore_merges_; }
  // whether BOS is added when the GGUF has no tokenizer.ggml.add_bos_token,
  bool add_bos_default() const { return add_bos_default_; }
  // whether BOS is added whatever the GGUF says (llama.cpp overrides the key for Gemma 4),
  bool add_bos_always() const { return add_bos_always_; }
  // and whether BPE runs on raw UTF-8 with spaces written as U+2581 and byte-fallback tokens
  // <0xXX> (SentencePiece-style BPE, Gemma 4) instead of on GPT-2's byte-level characters.
  bool spm_spaces() const { return spm_spaces_; }

 private:
  std::string name_;
  std::vector<SplitStage> stages_;
  bool ignore_merges_ = false;
  bool add_bos_default_ = false;
  bool add_bos_always_ = false;
  bool spm_spaces_ = false;
};

// BERT's pre-tokenizer: words are separated by whitespace, and every punctuation character (\p{P},
// or an ASCII symbol such as $ + < = > ^ ` | ~) is a word of its own. Appends the words of
// text[0, n) as byte ranges (whitespace belongs to none).
void split_bert_words(const char* text, size_t n, std::vector<TextPiece>* pieces);

}  // namespace wren

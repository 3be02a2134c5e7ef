// libFuzzer target: every tokenizer family (tokenizer/*.cpp) on arbitrary text and token ids.
//
// Each configuration below is a small fixed vocabulary, built once through Tokenizer::from_source --
// the loader Model uses -- from metadata held in memory: byte-level BPE under every pre-tokenizer
// family, Gemma 4's UTF-8 BPE, SentencePiece BPE with each space-prefix rule, WordPiece (cased and
// not) and Unigram. The vocabularies are tiny on purpose: most text falls back to bytes / <unk>,
// and the merge / score / trie paths still run on the words they know.
//
// Input: byte 0 picks the configuration; the rest is both the text to encode (any bytes, valid UTF-8
// or not) and, read as little-endian int32, the ids to decode (any value, in range or not).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using wren_fuzz::MemSource;

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6;

// Words the vocabularies know, so that merges and scores have something to do.
const char* const kWords[] = {"the", "he", "hello", "world", "in", "ing", "er", "an", "token", "12",
                              "123", "\xC3\xA9t\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "def", "x"};
const char* const kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
  std::vector<std::string> merges;
  std::set<std::string> seen;
  bool add(const std::string& t, int32_t type, float score = 0.0f) {
    if (!seen.insert(t).second) return false;
    tokens.push_back(t);
    types.push_back(type);
    scores.push_back(score);
    return true;
  }
  void add_specials(bool chat) {
    if (!chat) return;
    add("<|im_start|>", kControl);
    add("<|im_end|>", kControl);
    add("<tool>", kUserDefined);
  }
  void put(MemSource& s) const {
    s.put_strings("tokenizer.ggml.tokens", tokens);
    s.put_i32s("tokenizer.ggml.token_type", types);
  }
};

// Splits a UTF-8 string into characters (its bytes unchanged).
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const wren::Utf8Step st = wren::utf8_next(s.data(), s.size(), i);
    const size_t len = st.len ? st.len : 1;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

// Merges building each word left to right from its symbols, and the tokens they make.
void add_word_merges(Vocab* v, const std::vector<std::string>& symbols) {
  std::string left = symbols.empty() ? "" : symbols[0];
  for (size_t k = 1; k < symbols.size(); ++k) {
    const std::string merged = left + symbols[k];
    if (v->add(merged, kNormal)) v->merges.push_back(left + " " + symbols[k]);
    left = merged;
  }
}

std::string byte_level(const std::string& bytes) {
  std::string out;
  for (const char c : bytes) wren::utf8_append(&out, wren::byte_to_codepoint()[static_cast<uint8_t>(c)]);
  return out;
}

std::unique_ptr<MemSource> byte_level_bpe(const std::string& pre) {
  auto s = std::make_unique<MemSource>("fuzz:gpt2/" + pre);
  Vocab v;
  v.add("<|endoftext|>", kControl);
  for (int b = 0; b < 256; ++b) v.add(byte_level(std::string(1, static_cast<char>(b))), kNormal);
  for (const char* w : kWords)
    for (const std::string& prefix : {std::string(), std::string(" ")}) {
      std::vector<std::string> symbols;
      for (const char c : prefix + w) symbols.push_back(byte_level(std::string(1, c)));
      add_word_merges(&v, symbols);
    }
  v.add_specials(true);
  s->put_str("tokenizer.ggml.model", "gpt2");
  if (!pre.empty()) s->put_str("tokenizer.ggml.pre", pre);
  v.put(*s);
  s->put_strings("tokenizer.ggml.merges", v.merges);
  s->put_u32("tokenizer.ggml.bos_token_id", 0);
  s->put_u32("tokenizer.ggml.eos_token_id", 0);
  return s;
}

void add_byte_tokens(Vocab* v) {
  static const char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) v->add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", kByte);
}

std::unique_ptr<MemSource> gemma4_bpe() {
  auto s = std::make_unique<MemSource>("fuzz:gemma4");
  Vocab v;
  v.add("<pad>", kControl);
  v.add("<eos>", kControl);
  v.add("<bos>", kControl);
  v.add("<unk>", kUnknown);
  add_byte_tokens(&v);
  v.add(kSpace, kNormal);
  v.add("\n", kNormal);
  for (const char* w : kWords)
    for (const std::string& prefix : {std::string(), std::string(kSpace)}) {
      std::vector<std::string> symbols = chars_of(prefix + w);
      for (const std::string& c : symbols) v.add(c, kNormal);
      add_word_merges(&v, symbols);
    }
  v.add_specials(true);
  s->put_str("tokenizer.ggml.model", "gemma4");
  v.put(*s);
  s->put_strings("tokenizer.ggml.merges", v.merges);
  s->put_u32("tokenizer.ggml.bos_token_id", 2);
  s->put_u32("tokenizer.ggml.eos_token_id", 1);
  s->put_u32("tokenizer.ggml.unknown_token_id", 3);
  return s;
}

// SentencePiece-style vocabularies (llama: BPE by score; t5: Unigram): pieces with U+2581 for spaces.
void add_scored_pieces(Vocab* v) {
  float score = -1.0f;
  v->add(kSpace, kNormal, score);
  for (const char* w : kWords)
    for (const std::string& prefix : {std::string(), std::string(kSpace)}) {
      std::string piece;
      for (const std::string& c : chars_of(prefix + w)) {
        piece += c;
        v->add(c, kNormal, score -= 0.5f);
        v->add(piece, kNormal, score -= 0.25f);
      }
    }
}

std::unique_ptr<MemSource> spm_bpe(bool add_space_prefix, const char* scheme) {
  auto s = std::make_unique<MemSource>(std::string("fuzz:llama/") + (add_space_prefix ? "prefix/" : "none/") + scheme);
  Vocab v;
  v.add("<unk>", kUnknown);
  v.add("<s>", kControl);
  v.add("</s>", kControl);
  add_byte_tokens(&v);
  add_scored_pieces(&v);
  v.add_specials(true);
  s->put_str("tokenizer.ggml.model", "llama");
  v.put(*s);
  s->put_f32s("tokenizer.ggml.scores", v.scores);
  s->put_u32("tokenizer.ggml.unknown_token_id", 0);
  s->put_u32("tokenizer.ggml.bos_token_id", 1);
  s->put_u32("tokenizer.ggml.eos_token_id", 2);
  s->put_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
  s->put_bool("tokenizer.ggml.add_eos_token", true);
  if (*scheme) s->put_str("wrenlm.tokenizer.prepend_scheme", scheme);
  return s;
}

std::unique_ptr<MemSource> unigram(bool add_space_prefix, bool remove_extra_whitespaces) {
  auto s = std::make_unique<MemSource>(std::string("fuzz:t5/") + (add_space_prefix ? "prefix" : "none") +
                                       (remove_extra_whitespaces ? "/collapse" : ""));
  Vocab v;
  v.add("<pad>", kControl);
  v.add("</s>", kControl);
  v.add("<unk>", kUnknown);
  add_scored_pieces(&v);
  v.add_specials(true);
  s->put_str("tokenizer.ggml.model", "t5");
  v.put(*s);
  s->put_f32s("tokenizer.ggml.scores", v.scores);
  s->put_u32("tokenizer.ggml.unknown_token_id", 2);
  s->put_u32("tokenizer.ggml.eos_token_id", 1);
  s->put_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
  s->put_bool("tokenizer.ggml.remove_extra_whitespaces", remove_extra_whitespaces);
  return s;
}

std::unique_ptr<MemSource> wordpiece(bool lowercase) {
  auto s = std::make_unique<MemSource>(std::string("fuzz:bert/") + (lowercase ? "uncased" : "cased"));
  Vocab v;
  v.add("[PAD]", kControl);
  v.add("[UNK]", kUnknown);
  v.add("[CLS]", kControl);
  v.add("[SEP]", kControl);
  v.add("[MASK]", kControl);
  // llama.cpp's WordPiece form: word-initial pieces carry U+2581, continuations are plain.
  for (const char* p : {".", ",", "!", "?", "'", "-", "a", "b", "c", "e", "l", "o", "r", "t", "z", "1", "2"}) {
    v.add(std::string(kSpace) + p, kNormal);
    v.add(p, kNormal);
  }
  for (const char* w : kWords) {
    v.add(std::string(kSpace) + w, kNormal);
    v.add(w, kNormal);
  }
  v.add_specials(true);
  s->put_str("tokenizer.ggml.model", "bert");
  v.put(*s);
  s->put_u32("tokenizer.ggml.unknown_token_id", 1);
  s->put_u32("tokenizer.ggml.cls_token_id", 2);
  s->put_u32("tokenizer.ggml.seperator_token_id", 3);
  s->put_bool("tokenizer.ggml.normalizer.lowercase", lowercase);
  return s;
}

std::vector<std::unique_ptr<wren::Tokenizer>> build_all() {
  std::vector<std::unique_ptr<MemSource>> sources;
  for (const char* pre : {"", "gpt-2", "smollm", "falcon", "llama-bpe", "dbrx", "qwen2", "qwen35", "deepseek-llm",
                          "deepseek-coder", "bloom"})
    sources.push_back(byte_level_bpe(pre));
  sources.push_back(gemma4_bpe());
  for (const char* scheme : {"", "first", "always"}) sources.push_back(spm_bpe(true, scheme));
  sources.push_back(spm_bpe(false, ""));
  sources.push_back(wordpiece(true));
  sources.push_back(wordpiece(false));
  sources.push_back(unigram(true, true));
  sources.push_back(unigram(false, false));
  std::vector<std::unique_ptr<wren::Tokenizer>> out;
  for (const auto& s : sources) {
    try {
      out.push_back(wren::Tokenizer::from_source(*s));
    } catch (const wren::WrenError& e) {
      // A fixed vocabulary that does not load is a bug in this file, not a finding: stop loudly.
      std::fprintf(stderr, "fuzz_tokenizer: %s: %s\n", s->path().c_str(), e.what());
      std::abort();
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::unique_ptr<wren::Tokenizer>> tokenizers = build_all();
  if (size == 0) return 0;
  const wren::Tokenizer& tok = *tokenizers[data[0] % tokenizers.size()];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  wren_fuzz::exercise_tokenizer(tok, text, wren_fuzz::as_ids(data + 1, size - 1));
  return 0;
}

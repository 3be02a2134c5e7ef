// Tokenizer: text <-> token ids for the vocabularies stored in GGUF files, picked by
// `tokenizer.ggml.model`:
//   gpt2   byte-level BPE: PreTokenizer (stages chosen by `tokenizer.ggml.pre`) -> BpeModel;
//   gemma4 SentencePiece-style BPE: spaces written as U+2581, cut at newline runs -> BpeModel over
//          UTF-8 characters with merges, byte fallback <0xXX>;
//   llama  SentencePiece BPE: spaces written as U+2581 (plus one in front of each stretch of text
//          when add_space_prefix; for a tokenizer.json with HF's Metaspace, only where its
//          prepend_scheme puts one) -> SpmModel (merges by token score, byte fallback <0xXX>);
//   bert   WordPiece: BertNormalizer -> split_bert_words -> WordPieceModel; [CLS] ... [SEP];
//   t5     Unigram: SpmNormalizer (precompiled charsmap, U+2581 for spaces) -> UnigramModel.
//
// Pipeline (encode): special tokens are cut out first (longest match) -> each stretch of text in
// between goes through the model's own stages. Decode maps each token back to its bytes (computed
// once per token at load time for the model kind) and joins them. A Tokenizer is immutable after
// loading: every method is const and safe to call from several threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/spm.h"
#include "tokenizer/unigram.h"
#include "tokenizer/wordpiece.h"

namespace wren {

class TensorSource;
struct EncodeWorkspace;

// Values of `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Tokenizer {
 public:
  // Loads the vocabulary from the `tokenizer.ggml.*` keys. Throws FormatError (file, key, what is
  // wrong) for missing or inconsistent data, UnsupportedError for a tokenizer model or
  // pre-tokenizer that is not implemented (naming it and listing the supported ones).
  static std::unique_ptr<Tokenizer> from_source(const TensorSource& f);

  // Text (UTF-8) to ids. add_bos: add the special tokens the file asks for around a text: BOS
  // (tokenizer.ggml.add_bos_token; for BERT, [CLS]), EOS (tokenizer.ggml.add_eos_token), and for
  // BERT the separator [SEP] (tokenizer.ggml.add_sep_token, default true). parse_special: control tokens written literally in the text
  // ("<|im_start|>") become those tokens; when false they are encoded as plain text.
  // User-defined tokens are matched either way (as llama.cpp and HF tokenizers do).
  // cancel (optional) is polled between pre-tokenized pieces; when it returns true, encode throws
  // Interrupted (Ctrl-C on a long text).
  std::vector<int32_t> encode(const std::string& text, bool add_bos, bool parse_special,
                              const std::function<bool()>& cancel = {}) const;
  // Ids to raw bytes (not necessarily valid UTF-8: a character may be split across calls).
  // skip_special drops control and unknown tokens. For SentencePiece (with add_space_prefix) and
  // WordPiece, the one leading space of the result is dropped (as Hugging Face's decoders do).
  // WordPiece tokens decode as HF's WordPiece decoder does: a space before each token but
  // continuations, none before . , ! ? (its cleanup).
  // Throws InvalidArgument for an id out of range.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const;
  // The bytes one token stands for (control tokens: their text).
  std::string token_bytes(int32_t id) const;

  int32_t n_vocab() const { return static_cast<int32_t>(text_.size()); }
  int32_t bos_id() const { return bos_; }  // -1 if absent
  int32_t eos_id() const { return eos_; }  // -1 if absent
  // End of generation: eos, eot, eom, and the control tokens that end a turn by name
  // (<|im_end|>, <|endoftext|>, <|eot_id|>, <end_of_turn>, ...).
  bool is_eog(int32_t id) const;
  bool is_control(int32_t id) const;
  // Exact lookup of a token's stored text (byte-level form for normal tokens); -1 if absent.
  int32_t token_id(const std::string& text) const;
  bool add_bos() const { return add_bos_; }

  TokenType token_type(int32_t id) const;
  const std::string& token_text(int32_t id) const;  // as stored in the file
  // tokenizer.ggml.model ("gpt2", "llama") and tokenizer.ggml.pre ("default" when absent).
  const std::string& model_name() const { return model_; }
  const std::string& pre_name() const { return pre_name_; }

 private:
  Tokenizer() = default;
  void check_id(int32_t id) const;
  // Loading stages: the vocabulary and special tokens, then the model kind's own data.
  void load_vocab(const TensorSource& f);
  void load_byte_level_bpe(const TensorSource& f);
  void load_spm(const TensorSource& f);
  void load_wordpiece(const TensorSource& f);
  void load_unigram(const TensorSource& f);
  // The id of each byte token <0xXX>, -1 where the vocabulary has none.
  std::array<int32_t, 256> byte_token_ids() const;
  // Cuts special tokens out of text; encodes the rest with encode_plain.
  void encode_text(const char* s, size_t n, bool parse_special, EncodeWorkspace* ws,
                   std::vector<int32_t>* out) const;
  // One stretch of text with no special token in it; at_start: it begins the text.
  void encode_plain(const char* s, size_t n, bool at_start, EncodeWorkspace* ws, std::vector<int32_t>* out) const;
  // Longest special token starting at s[i], or -1; *len gets its length.
  int32_t match_special(const char* s, size_t n, size_t i, bool parse_special, size_t* len) const;

  std::vector<std::string> text_;   // token text as stored, by id
  std::vector<std::string> bytes_;  // what each token decodes to
  std::vector<TokenType> type_;
  std::unordered_map<std::string, int32_t> text_to_id_;
  std::vector<uint8_t> eog_;     // 1 for end-of-generation ids
  std::vector<uint8_t> rstrip_;  // 1 for special tokens that eat the whitespace after them
  std::string model_;          // tokenizer.ggml.model
  std::string pre_name_;       // tokenizer.ggml.pre
  PreTokenizer pre_;           // gpt2, gemma4
  std::unique_ptr<BpeModel> bpe_;  // gpt2, gemma4
  std::unique_ptr<SpmModel> spm_;  // llama
  BertNormalizer bert_normalizer_;              // bert
  std::unique_ptr<WordPieceModel> wordpiece_;  // bert
  SpmNormalizer spm_normalizer_;               // t5
  std::unique_ptr<UnigramModel> unigram_;      // t5

  // Byte trie over the texts of control / user-defined / unknown tokens.
  struct TrieNode {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token = -1;
  };
  std::vector<TrieNode> trie_;
  std::array<int32_t, 256> trie_root_{};  // child of the root for each first byte (0: none)

  int32_t bos_ = -1, eos_ = -1, unk_ = -1, eot_ = -1, eom_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  // SentencePiece: which stretches of text (between special tokens) get U+2581 put in front.
  enum class SpacePrefix : uint8_t {
    kNone,
    kEvery,             // every one (llama.cpp; HF's Prepend normalizer)
    kEveryUnlessSpace,  // every one that does not start with a space (HF Metaspace, prepend_scheme "always")
    kFirstUnlessSpace,  // only the one that begins the text, unless it starts with a space ("first")
  };
  SpacePrefix space_prefix_ = SpacePrefix::kNone;
  bool strip_leading_space_ = false;  // decode drops the first space of its result
  int32_t sep_ = -1;
  bool add_sep_ = false;

  friend class Detokenizer;
};

// Turns a stream of token ids into text pieces that are always complete UTF-8: bytes of a
// character split across tokens are held back until the character is complete. Bytes that can
// never form a character are replaced by U+FFFD as soon as that is certain, so the pieces joined
// equal decode(ids) with ill-formed sequences replaced -- except that the stream continues text, so
// it keeps the space before the first word that decode drops for SentencePiece and WordPiece
// vocabularies. Holds a reference: the Tokenizer must outlive it.
class Detokenizer {
 public:
  explicit Detokenizer(const Tokenizer& t, bool skip_special = true);
  // Returns the newly completed text (possibly empty).
  std::string push(int32_t id);
  // Returns what is still held back (an incomplete character becomes U+FFFD) and empties it.
  std::string flush();
  void reset() { pending_.clear(); }

 private:
  const Tokenizer& t_;
  bool skip_special_;
  std::string pending_;  // at most 3 bytes between calls
};

}  // namespace wren

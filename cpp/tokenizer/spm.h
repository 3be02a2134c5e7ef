// SentencePiece-style BPE (llama / tokenizer.ggml.model == "llama"): pieces are merged by the
// score of the token they form, not by a merge list, and characters with no token of their own
// fall back to byte tokens <0xXX>.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace wren {

// U+2581 LOWER ONE EIGHTH BLOCK, which SentencePiece writes for a space.
inline constexpr const char kSpmSpace[] = "\xE2\x96\x81";

// Appends text with every ' ' written as U+2581 (what the model's tokens spell).
void spm_escape_spaces(const char* text, size_t n, std::string* out);
// Replaces every U+2581 in text by ' '.
std::string spm_unescape_spaces(const std::string& text);

// Scratch space for SpmModel::encode, reused across the pieces of one encode call.
struct SpmWorkspace {
  struct Symbol {
    int32_t prev;  // neighbouring live symbols (-1 at the ends)
    int32_t next;
    uint32_t start;  // bytes of the text this symbol covers
    uint32_t len;    // 0 once merged into its left neighbour
  };
  struct Candidate {
    float score;    // of the token the pair forms
    int32_t left;   // index of the left symbol
    int32_t right;  // index of the right symbol
    uint32_t len;   // bytes of the pair when it was queued (a stale entry has grown since)
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string key;  // lookup buffer
};

class SpmModel {
 public:
  // token_to_id: token text -> id (owned by the Tokenizer; it must outlive the model). scores: one
  // per id (higher merges first). byte_tokens: the id of <0xXX> for each byte, -1 when missing.
  // unk: the unknown token (-1 if none), for a character with neither a token nor byte tokens.
  SpmModel(const std::unordered_map<std::string, int32_t>& token_to_id, std::vector<float> scores,
           const std::array<int32_t, 256>& byte_tokens, int32_t unk);

  // Appends the tokens of one stretch of already escaped text (spaces as U+2581).
  // O(n log n) in the number of characters.
  void encode(const char* text, size_t n, SpmWorkspace* ws, std::vector<int32_t>* out) const;

 private:
  // Merges one stretch whose merges cannot reach outside it.
  void encode_word(const char* text, size_t n, SpmWorkspace* ws, std::vector<int32_t>* out) const;
  void push_candidate(const char* text, SpmWorkspace* ws, int32_t left) const;
  void emit(const char* text, const SpmWorkspace::Symbol& s, SpmWorkspace* ws, std::vector<int32_t>* out) const;

  const std::unordered_map<std::string, int32_t>* token_to_id_;
  std::vector<float> scores_;  // by id
  std::array<int32_t, 256> byte_tokens_;
  int32_t unk_;
  bool split_words_ = true;  // no token has U+2581 after another character
};

}  // namespace wren

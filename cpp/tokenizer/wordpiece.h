// WordPiece (BERT; tokenizer.ggml.model == "bert"): each word becomes the longest vocabulary
// piece at its start, then the longest continuation pieces, left to right; a word with no such
// cover, or longer than max_chars characters, is one unknown token.
//
// llama.cpp's GGUF spelling of a BERT vocabulary: a word-initial piece is written with a
// leading U+2581 ("▁the"), a continuation piece bare ("ing", for BERT's "##ing"); bracketed
// tokens ("[CLS]") as they are.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace wren {

class WordPieceModel {
 public:
  // tokens: the vocabulary in GGUF spelling (see above); the last id wins for duplicate pieces.
  WordPieceModel(const std::vector<std::string>& tokens, int32_t unk, size_t max_chars = 100);

  // Appends the tokens of one word (UTF-8, already normalized and split).
  void encode(const char* word, size_t n, std::vector<int32_t>* out) const;

  // The piece a GGUF token stands for and whether it starts a word.
  static bool is_word_start(const std::string& token);

 private:
  std::unordered_map<std::string, int32_t> start_;         // word-initial pieces, U+2581 removed
  std::unordered_map<std::string, int32_t> continuation_;  // the others
  size_t max_piece_bytes_ = 0;
  int32_t unk_;
  size_t max_chars_;
};

}  // namespace wren

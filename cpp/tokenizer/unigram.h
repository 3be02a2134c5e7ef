// Unigram language model (T5 / XLM-R style SentencePiece; tokenizer.ggml.model == "t5"): the
// tokenization of a normalized text is the one whose token scores (log probabilities) sum
// highest, found by Viterbi over character positions. A character no token covers is the
// unknown token, scored below every real token; consecutive unknowns become one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wren {

enum class TokenType : uint8_t;

// Scratch space for UnigramModel::encode.
struct UnigramWorkspace {
  struct Best {
    double score;   // best total score of the text up to here
    int32_t token;  // last token of that tokenization
    uint32_t from;  // where that token starts
  };
  std::vector<Best> best;  // by byte position
  std::vector<int32_t> tokens;
};

class UnigramModel {
 public:
  // Candidates are the normal, user-defined (scored 0, so preferred) and unused tokens.
  UnigramModel(const std::vector<std::string>& text, const std::vector<TokenType>& types,
               const std::vector<float>& scores, int32_t unk);

  // Appends the tokens of normalized text (spaces already written as U+2581).
  // O(n * d log V): d the depth of the longest vocabulary match at a position.
  void encode(const char* text, size_t n, UnigramWorkspace* ws, std::vector<int32_t>* out) const;

 private:
  const std::vector<std::string>* text_;  // owned by the Tokenizer
  std::vector<int32_t> sorted_;            // candidate ids sorted by text (one id per text)
  std::vector<double> score_;              // by id
  int32_t unk_;
  double unk_score_;
};

}  // namespace wren

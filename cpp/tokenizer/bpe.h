// Byte-level BPE (GPT-2 style): the byte <-> code point mapping and the merge model.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace wren {

// GPT-2's reversible byte -> code point mapping: printable bytes map to themselves, the other 68
// to U+0100.. in byte order, so every byte string becomes visible, whitespace-free text.
const std::array<uint32_t, 256>& byte_to_codepoint();

// Appends the bytes a byte-level token text stands for. Code points outside the mapping (a vocab
// that is not byte-level) are appended as their own UTF-8; returns false if there were any.
bool byte_level_decode(const std::string& text, std::string* out);

// Scratch space for BpeModel::encode, reused across the pieces of one encode call.
struct BpeWorkspace {
  struct Symbol {
    int32_t id;      // token id, or >= n_vocab for a merge result that is not in the vocab
    int32_t prev;    // neighbouring live symbols (-1 at the ends)
    int32_t next;
    uint32_t start;  // bytes of the piece this symbol covers
    uint32_t len;    // 0 once merged into its left neighbour
  };
  struct Candidate {
    int32_t rank;
    int32_t left;  // index of the left symbol
    int32_t left_id, right_id, result;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string text;  // byte-level form of a piece (ignore_merges lookups), or one character (kUtf8)
};

// What BPE starts from: the symbols a piece is cut into, and what a symbol left without a token
// at the end becomes.
enum class BpeAlphabet : uint8_t {
  kByteLevel,  // one symbol per byte, spelled as GPT-2's byte-level character; its bytes' own
               // tokens as fallback (a byte with no token is dropped)
  kUtf8,       // one symbol per UTF-8 character, spelled as itself (SentencePiece-style BPE, Gemma 4);
               // the byte tokens <0xXX> as fallback
};

class BpeModel {
 public:
  // n_vocab: ids at or above it are not tokens. token_to_id: token text -> id (byte-level text for
  // kByteLevel; the caller decides which id wins for duplicate texts; it must outlive the model).
  // merges: "left right" strings, highest priority first. ignore_merges: a piece that is a token
  // as a whole is emitted as that token (llama3 family). byte_tokens (kUtf8): the id of <0xXX>
  // for each byte, -1 when missing (such bytes are dropped). Throws FormatError naming the merge
  // entry when one is not of the form "a b".
  BpeModel(int32_t n_vocab, const std::unordered_map<std::string, int32_t>& token_to_id,
           const std::vector<std::string>& merges, bool ignore_merges,
           BpeAlphabet alphabet = BpeAlphabet::kByteLevel, const std::array<int32_t, 256>* byte_tokens = nullptr);

  // Appends the tokens of one pre-tokenized piece (raw bytes). O(n log n) in the piece length.
  void encode(const char* bytes, size_t n, BpeWorkspace* ws, std::vector<int32_t>* out) const;

  size_t n_merges() const { return pairs_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void push_candidate(BpeWorkspace* ws, int32_t left) const;
  void emit(const char* bytes, const BpeWorkspace::Symbol& s, std::vector<int32_t>* out) const;
  // Cuts bytes[0, n) into the alphabet's starting symbols.
  void start_symbols(const char* bytes, size_t n, BpeWorkspace* ws) const;

  int32_t n_vocab_;
  bool ignore_merges_;
  BpeAlphabet alphabet_;
  const std::unordered_map<std::string, int32_t>* token_to_id_;  // owned by the Tokenizer
  std::array<int32_t, 256> byte_symbol_{};    // kByteLevel: symbol id of each single byte
  std::array<std::string, 256> byte_text_{};  // kByteLevel: byte-level text of each byte
  std::array<int32_t, 256> byte_fallback_{};  // kUtf8: token <0xXX> of each byte, -1 if none
  std::unordered_map<std::string, int32_t> extra_;  // symbols of merges that are not tokens -> ids >= n_vocab
  std::unordered_map<uint64_t, Merge> pairs_;  // (left id, right id) -> rank and result
};

}  // namespace wren

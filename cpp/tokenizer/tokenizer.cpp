#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <limits>

#include "format/tensor_source.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_limits.h"
#include "util/errors.h"

namespace wren {
namespace {

constexpr const char* kKeyModel = "tokenizer.ggml.model";
constexpr const char* kKeyPre = "tokenizer.ggml.pre";
constexpr const char* kKeyTokens = "tokenizer.ggml.tokens";
constexpr const char* kKeyTypes = "tokenizer.ggml.token_type";
constexpr const char* kKeyMerges = "tokenizer.ggml.merges";
constexpr const char* kKeyScores = "tokenizer.ggml.scores";

// Control tokens that end a turn in the chat formats we know, matched by name (as llama.cpp does).
constexpr const char* kEndOfTurnNames[] = {
    "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|eom_id|>",
    "<|end|>",    "<|end_of_text|>", "<EOT>",    "<end_of_utterance>", "</s>",
};

// Per-token strip flags that no GGUF key carries; llama.cpp sets them by model name, and so do we:
// in Phi-3 files (general.name contains "phi-3" or "phi3", any case) every special token but
// these eats the whitespace that follows it, as the added tokens of Phi-3's tokenizer.json do.
constexpr const char* kPhi3NoRstrip[] = {"<unk>", "<s>", "<|endoftext|>"};

bool is_c_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

bool is_special_type(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

// "<0x41>" -> 0x41; -1 when text is not of that form.
int parse_byte_token(const std::string& text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = text[k];
    const int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                           : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// What a token decodes to, by model kind (spm_spaces: a BPE vocabulary spelled SentencePiece-style).
std::string token_to_bytes(const std::string& text, TokenType type, const std::string& model, bool spm_spaces) {
  switch (type) {
    case TokenType::kControl:
    case TokenType::kUserDefined:
    case TokenType::kUnknown:
      return model == "bert" ? " " + text : text;
    case TokenType::kByte: {
      const int b = parse_byte_token(text);
      if (b >= 0) return std::string(1, static_cast<char>(b));
      return text;
    }
    default: {
      if (model == "llama" || model == "t5" || spm_spaces) return spm_unescape_spaces(text);
      if (model == "bert") {
        // A continuation joins the previous token; bracketed tokens ("[unused0]") are words.
        const bool bracketed = text.size() >= 2 && text.front() == '[' && text.back() == ']';
        if (!WordPieceModel::is_word_start(text)) return bracketed ? " " + text : text;
        // HF's WordPiece decoder: a space before each word; its cleanup removes it before . , ! ?
        const std::string piece = spm_unescape_spaces(text);
        return (piece == " ." || piece == " ," || piece == " !" || piece == " ?") ? piece.substr(1) : piece;
      }
      std::string out;
      byte_level_decode(text, &out);
      return out;
    }
  }
}

// The tokenizer models from_source accepts, for the error message.
constexpr const char* kSupportedModels =
    "gpt2 (byte-level BPE), llama (SentencePiece BPE), gemma4 (SentencePiece-style BPE with merges), "
    "bert (WordPiece), t5 (Unigram)";

// tokenizer.ggml.scores: one number per token (0 for every token when the key is absent).
std::vector<float> read_scores(const TensorSource& f, size_t n) {
  std::vector<float> scores(n, 0.0f);
  const GgufValue* v = f.find(kKeyScores);
  if (v == nullptr) return scores;
  if (v->type != GgufType::ARRAY) f.fail(kKeyScores, "expected an array of numbers");
  if (v->size() != n)
    f.fail(kKeyScores, str_cat("has ", v->size(), " entries but ", kKeyTokens, " has ", n));
  v->for_each([&](size_t i, const GgufValue& e) {
    if (e.is_float()) {
      scores[i] = static_cast<float>(e.f);
    } else if (e.is_integer()) {
      scores[i] = static_cast<float>(e.is_signed() ? e.i : e.u);
    } else {
      f.fail(kKeyScores, str_cat("entry ", i, " is a ", gguf_type_name(e.type), "; expected a number"));
    }
  });
  return scores;
}

}  // namespace

struct EncodeWorkspace {
  BpeWorkspace bpe;
  SpmWorkspace spm;
  UnigramWorkspace unigram;
  std::vector<TextPiece> pieces;
  std::string text;
  const std::function<bool()>* cancel = nullptr;
  size_t until_poll = 0;  // pieces left before cancel is polled again

  // Polls cancel every kPollEvery pieces (a poll takes the GIL: not once per word).
  void poll() {
    constexpr size_t kPollEvery = 4096;
    if (!cancel || !*cancel || until_poll-- > 0) return;
    until_poll = kPollEvery;
    if ((*cancel)()) throw Interrupted();
  }
};

std::unique_ptr<Tokenizer> Tokenizer::from_source(const TensorSource& f) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->model_ = f.get_string(kKeyModel);
  t->pre_name_ = f.get_string(kKeyPre, "");
  if (t->pre_name_.empty()) t->pre_name_ = "default";
  // Gemma 4's model name stands for its pre-tokenizer too (llama.cpp ignores tokenizer.ggml.pre).
  if (t->model_ == "gemma4") t->pre_name_ = "gemma4";
  if (t->model_ == "gpt2" || t->model_ == "gemma4") {
    try {
      t->pre_ = PreTokenizer::by_name(t->pre_name_ == "default" ? "" : t->pre_name_);
    } catch (const UnsupportedError& e) {
      throw UnsupportedError(str_cat(f.path(), ": ", kKeyPre, ": ", e.what()));
    }
    t->load_vocab(f);
    t->load_byte_level_bpe(f);
  } else if (t->model_ == "llama") {
    t->load_vocab(f);
    t->load_spm(f);
  } else if (t->model_ == "bert") {
    t->load_vocab(f);
    t->load_wordpiece(f);
  } else if (t->model_ == "t5") {
    t->load_vocab(f);
    t->load_unigram(f);
  } else {
    throw UnsupportedError(str_cat(f.path(), ": ", kKeyModel, ": tokenizer model '", t->model_,
                                   "' is not supported (supported: ", kSupportedModels, ")"));
  }
  return t;
}

void Tokenizer::load_vocab(const TensorSource& f) {
  // The count is checked before any token is copied out (a token costs ~20x its bytes in the file).
  if (const GgufValue* v = f.find(kKeyTokens); v && v->type == GgufType::ARRAY && v->count > uint64_t(kMaxVocab))
    f.fail(kKeyTokens, str_cat(v->count, " tokens are too many (at most ", kMaxVocab, ")"));
  text_ = f.get_string_array(kKeyTokens);
  const size_t n = text_.size();
  if (n == 0) f.fail(kKeyTokens, "the vocabulary is empty");

  type_.assign(n, TokenType::kNormal);
  if (f.has(kKeyTypes)) {
    const std::vector<int64_t> types = f.get_int_array(kKeyTypes);
    if (types.size() != n)
      f.fail(kKeyTypes, str_cat("has ", types.size(), " entries but ", kKeyTokens, " has ", n));
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > static_cast<int64_t>(TokenType::kByte))
        f.fail(kKeyTypes, str_cat("entry ", i, " is ", types[i], "; expected 0..6"));
      type_[i] = static_cast<TokenType>(types[i]);
    }
  }

  // Duplicate texts: the last id wins, as in llama.cpp (and a Python dict built from the list).
  text_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) text_to_id_[text_[i]] = static_cast<int32_t>(i);

  const auto token_key = [&](const char* key) -> int32_t {
    if (!f.has(key)) return -1;
    const uint64_t v = f.get_uint(key);
    if (v >= n) f.fail(key, str_cat("token id ", v, " is out of range (the vocabulary has ", n, " tokens)"));
    return static_cast<int32_t>(v);
  };
  bos_ = token_key("tokenizer.ggml.bos_token_id");
  eos_ = token_key("tokenizer.ggml.eos_token_id");
  unk_ = token_key("tokenizer.ggml.unknown_token_id");
  eot_ = token_key("tokenizer.ggml.eot_token_id");
  eom_ = token_key("tokenizer.ggml.eom_token_id");
  add_eos_ = f.get_bool("tokenizer.ggml.add_eos_token", false) && eos_ >= 0;

  bytes_.resize(n);
  for (size_t i = 0; i < n; ++i) bytes_[i] = token_to_bytes(text_[i], type_[i], model_, pre_.spm_spaces());

  eog_.assign(n, 0);
  for (int32_t id : {eos_, eot_, eom_})
    if (id >= 0) eog_[id] = 1;
  for (const char* name : kEndOfTurnNames) {
    const int32_t id = token_id(name);
    if (id < 0) continue;
    eog_[id] = 1;
    // An end-of-turn token marked normal or user-defined is a mislabelled control token
    // (llama.cpp overrides it the same way): it is cut out of text only when parsing special
    // tokens, and decode can skip it.
    if (type_[id] == TokenType::kNormal || type_[id] == TokenType::kUserDefined) type_[id] = TokenType::kControl;
  }

  rstrip_.assign(n, 0);
  std::string name = f.get_string("general.name", "");
  std::transform(name.begin(), name.end(), name.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (size_t i = 0; i < n; ++i) rstrip_[i] = is_special_type(type_[i]);
    for (const char* tok : kPhi3NoRstrip) {
      const int32_t id = token_id(tok);
      if (id >= 0) rstrip_[id] = 0;
    }
  }

  // Special-token trie. Node 0 is the root; its children are also indexed by trie_root_.
  trie_.emplace_back();
  trie_root_.fill(0);
  for (size_t i = 0; i < n; ++i) {
    const std::string& s = text_[i];
    if (!is_special_type(type_[i]) || s.empty()) continue;
    int32_t node = 0;
    for (const char ch : s) {
      const uint8_t c = static_cast<uint8_t>(ch);
      int32_t child = 0;
      if (node == 0) {
        child = trie_root_[c];
      } else {
        auto& next = trie_[node].next;
        auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{0}));
        if (it != next.end() && it->first == c) child = it->second;
      }
      if (child == 0) {
        child = static_cast<int32_t>(trie_.size());
        trie_.emplace_back();
        if (node == 0) {
          trie_root_[c] = child;
        } else {
          auto& next = trie_[node].next;
          next.insert(std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{0})),
                      std::make_pair(c, child));
        }
      }
      node = child;
    }
    if (trie_[node].token < 0) trie_[node].token = static_cast<int32_t>(i);
  }
}

void Tokenizer::load_byte_level_bpe(const TensorSource& f) {
  add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", pre_.add_bos_default());
  if (pre_.add_bos_always()) add_bos_ = bos_ >= 0;
  const std::vector<std::string> merges = f.get_string_array(kKeyMerges);
  const std::array<int32_t, 256> byte_tokens = byte_token_ids();
  try {
    bpe_ = std::make_unique<BpeModel>(n_vocab(), text_to_id_, merges, pre_.ignore_merges(),
                                      pre_.spm_spaces() ? BpeAlphabet::kUtf8 : BpeAlphabet::kByteLevel,
                                      &byte_tokens);
  } catch (const FormatError& e) {
    f.fail(kKeyMerges, e.what());
  }
}

void Tokenizer::load_spm(const TensorSource& f) {
  // llama.cpp's defaults for a SentencePiece vocabulary, each overridden by its key.
  add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", true) && bos_ >= 0;
  const bool add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
  strip_leading_space_ = add_space_prefix;
  // No GGUF key says how HF's Metaspace places the prefix; the tokenizer.json reader writes this one.
  constexpr const char* kKeyScheme = "wrenlm.tokenizer.prepend_scheme";
  const std::string scheme = f.get_string(kKeyScheme, "");
  if (!add_space_prefix) space_prefix_ = SpacePrefix::kNone;
  else if (scheme.empty()) space_prefix_ = SpacePrefix::kEvery;
  else if (scheme == "always") space_prefix_ = SpacePrefix::kEveryUnlessSpace;
  else if (scheme == "first") space_prefix_ = SpacePrefix::kFirstUnlessSpace;
  else f.fail(kKeyScheme, str_cat("is '", scheme, "'; expected 'first' or 'always'"));
  const size_t n = text_.size();
  std::vector<float> scores = read_scores(f, n);
  spm_ = std::make_unique<SpmModel>(text_to_id_, std::move(scores), byte_token_ids(), unk_);
}

std::array<int32_t, 256> Tokenizer::byte_token_ids() const {
  std::array<int32_t, 256> byte_tokens;
  byte_tokens.fill(-1);
  for (size_t i = 0; i < text_.size(); ++i) {
    if (type_[i] != TokenType::kByte) continue;
    const int b = parse_byte_token(text_[i]);
    if (b >= 0 && byte_tokens[b] < 0) byte_tokens[b] = static_cast<int32_t>(i);
  }
  return byte_tokens;
}

void Tokenizer::load_wordpiece(const TensorSource& f) {
  // BOS is the classifier token [CLS]; llama.cpp's converter stores it as cls_token_id.
  if (bos_ < 0 && f.has("tokenizer.ggml.cls_token_id")) {
    const uint64_t v = f.get_uint("tokenizer.ggml.cls_token_id");
    if (v >= text_.size()) f.fail("tokenizer.ggml.cls_token_id", str_cat("token id ", v, " is out of range"));
    bos_ = static_cast<int32_t>(v);
  }
  constexpr const char* kKeySep = "tokenizer.ggml.seperator_token_id";  // llama.cpp's spelling
  if (f.has(kKeySep)) {
    const uint64_t v = f.get_uint(kKeySep);
    if (v >= text_.size()) f.fail(kKeySep, str_cat("token id ", v, " is out of range"));
    sep_ = static_cast<int32_t>(v);
  }
  add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", true) && bos_ >= 0;
  add_sep_ = f.get_bool("tokenizer.ggml.add_sep_token", true) && sep_ >= 0;
  bert_normalizer_.lowercase = f.get_bool("tokenizer.ggml.normalizer.lowercase", true);
  bert_normalizer_.strip_accents =
      f.get_bool("tokenizer.ggml.normalizer.strip_accents", bert_normalizer_.lowercase);
  strip_leading_space_ = true;
  wordpiece_ = std::make_unique<WordPieceModel>(text_, unk_);
}

void Tokenizer::load_unigram(const TensorSource& f) {
  // llama.cpp's defaults for a unigram vocabulary, each overridden by its key.
  add_bos_ = f.get_bool("tokenizer.ggml.add_bos_token", false) && bos_ >= 0;
  add_eos_ = f.get_bool("tokenizer.ggml.add_eos_token", true) && eos_ >= 0;
  const bool add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", false);
  strip_leading_space_ = add_space_prefix;
  spm_normalizer_.add_space_prefix = add_space_prefix;
  spm_normalizer_.remove_extra_whitespaces = f.get_bool("tokenizer.ggml.remove_extra_whitespaces", false);
  constexpr const char* kKeyCharsMap = "tokenizer.ggml.precompiled_charsmap";
  if (const GgufValue* v = f.find(kKeyCharsMap)) {
    if (v->type != GgufType::ARRAY || (v->elem_type != GgufType::U8 && v->elem_type != GgufType::I8))
      f.fail(kKeyCharsMap, "expected an array of bytes");
    std::vector<uint8_t> blob;
    blob.reserve(v->size());
    v->for_each([&](size_t, const GgufValue& e) {
      blob.push_back(static_cast<uint8_t>(e.type == GgufType::I8 ? e.i : e.u));
    });
    try {
      spm_normalizer_.charsmap = CharsMap(std::move(blob));
    } catch (const FormatError& e) {
      f.fail(kKeyCharsMap, e.what());
    }
  }
  unigram_ = std::make_unique<UnigramModel>(text_, type_, read_scores(f, text_.size()), unk_);
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    throw InvalidArgument(str_cat("token id ", id, " is out of range (vocabulary size ", n_vocab(), ")"));
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(id);
  return type_[id];
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return text_[id];
}

bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && eog_[id]; }

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_vocab() && type_[id] == TokenType::kControl;
}

int32_t Tokenizer::token_id(const std::string& text) const {
  auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? -1 : it->second;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  check_id(id);
  return bytes_[id];
}

int32_t Tokenizer::match_special(const char* s, size_t n, size_t i, bool parse_special,
                                 size_t* len) const {
  int32_t node = trie_root_[static_cast<uint8_t>(s[i])];
  int32_t best = -1;
  for (size_t k = i + 1; node != 0; ++k) {
    const int32_t tok = trie_[node].token;
    if (tok >= 0 && (parse_special || type_[tok] == TokenType::kUserDefined)) {
      best = tok;
      *len = k - i;
    }
    if (k >= n) break;
    const auto& next = trie_[node].next;
    const uint8_t c = static_cast<uint8_t>(s[k]);
    auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{0}));
    node = (it != next.end() && it->first == c) ? it->second : 0;
  }
  return best;
}

void Tokenizer::encode_plain(const char* s, size_t n, bool at_start, EncodeWorkspace* ws,
                             std::vector<int32_t>* out) const {
  if (n == 0) return;
  if (bpe_ && pre_.spm_spaces()) {
    ws->text.clear();
    spm_escape_spaces(s, n, &ws->text);
    ws->pieces.clear();
    pre_.split(ws->text.data(), ws->text.size(), &ws->pieces);
    for (const TextPiece& p : ws->pieces) {
      ws->poll();
      const char* piece = ws->text.data() + p.begin;
      const size_t len = p.end - p.begin;
      // A run of newlines that is a token is that token, whatever the merges say (llama.cpp's rule
      // for Gemma 4, whose merges do not build every newline run it has a token for).
      if (piece[0] == '\n') {
        const int32_t id = token_id(std::string(piece, len));
        if (id >= 0) {
          out->push_back(id);
          continue;
        }
      }
      bpe_->encode(piece, len, &ws->bpe, out);
    }
  } else if (bpe_) {
    ws->pieces.clear();
    pre_.split(s, n, &ws->pieces);
    for (const TextPiece& p : ws->pieces) {
      ws->poll();
      bpe_->encode(s + p.begin, p.end - p.begin, &ws->bpe, out);
    }
  } else if (spm_) {
    // Each stretch of text follows the start or a special token; which ones get the prefix space
    // depends on where the vocabulary came from (see SpacePrefix).
    ws->text.clear();
    const bool prefix = space_prefix_ == SpacePrefix::kEvery ||
                        (space_prefix_ == SpacePrefix::kEveryUnlessSpace && s[0] != ' ') ||
                        (space_prefix_ == SpacePrefix::kFirstUnlessSpace && at_start && s[0] != ' ');
    if (prefix) ws->text += kSpmSpace;
    spm_escape_spaces(s, n, &ws->text);
    spm_->encode(ws->text.data(), ws->text.size(), &ws->spm, out);
  } else if (unigram_) {
    ws->text.clear();
    spm_normalizer_.normalize(s, n, &ws->text);
    unigram_->encode(ws->text.data(), ws->text.size(), &ws->unigram, out);
  } else if (wordpiece_) {
    ws->text.clear();
    bert_normalizer_.normalize(s, n, &ws->text);
    ws->pieces.clear();
    split_bert_words(ws->text.data(), ws->text.size(), &ws->pieces);
    for (const TextPiece& p : ws->pieces) {
      ws->poll();
      wordpiece_->encode(ws->text.data() + p.begin, p.end - p.begin, out);
    }
  }
}

void Tokenizer::encode_text(const char* s, size_t n, bool parse_special, EncodeWorkspace* ws,
                            std::vector<int32_t>* out) const {
  size_t plain_begin = 0;
  size_t i = 0;
  while (i < n) {
    if (trie_root_[static_cast<uint8_t>(s[i])] != 0) {
      size_t len = 0;
      const int32_t id = match_special(s, n, i, parse_special, &len);
      if (id >= 0) {
        ws->poll();
        encode_plain(s + plain_begin, i - plain_begin, plain_begin == 0, ws, out);
        out->push_back(id);
        i += len;
        if (rstrip_[id])
          while (i < n && is_c_space(s[i])) ++i;
        plain_begin = i;
        continue;
      }
    }
    ++i;
  }
  encode_plain(s + plain_begin, n - plain_begin, plain_begin == 0, ws, out);
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_bos, bool parse_special,
                                       const std::function<bool()>& cancel) const {
  // The models keep byte offsets in 32 bits (normalization can triple the text).
  WREN_CHECK(text.size() < UINT32_MAX / 4, InvalidArgument, "text of ", text.size(), " bytes is too long to tokenize");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && add_bos_ && bos_ >= 0) out.push_back(bos_);
  EncodeWorkspace ws;
  ws.cancel = &cancel;
  encode_text(text.data(), text.size(), parse_special, &ws, &out);
  if (add_bos && add_eos_) out.push_back(eos_);
  if (add_bos && add_sep_) out.push_back(sep_);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  size_t total = 0;
  for (int32_t id : ids) {
    check_id(id);
    total += bytes_[id].size();
  }
  std::string out;
  out.reserve(total);
  for (int32_t id : ids) {
    const TokenType t = type_[id];
    if (skip_special && (t == TokenType::kControl || t == TokenType::kUnknown)) continue;
    out += bytes_[id];
  }
  if (strip_leading_space_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

Detokenizer::Detokenizer(const Tokenizer& t, bool skip_special) : t_(t), skip_special_(skip_special) {}

std::string Detokenizer::push(int32_t id) {
  t_.check_id(id);
  const TokenType type = t_.type_[id];
  if (skip_special_ && (type == TokenType::kControl || type == TokenType::kUnknown)) return {};
  pending_ += t_.bytes_[id];
  std::string out;
  const size_t held = utf8_append_sanitized(&out, pending_.data(), pending_.size(), true);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string Detokenizer::flush() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace wren

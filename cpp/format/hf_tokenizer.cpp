// tokenizer.json (+ tokenizer_config.json, chat_template.jinja, config.json) -> the tokenizer.ggml.*
// keys llama.cpp's converter writes: the vocabulary with token types, merges, special token ids and
// add-BOS/EOS flags, the chat template, and which tokenizer model and pre-tokenizer to run.
#include <algorithm>
#include <map>
#include <set>

#include "format/hf_folder.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocab_limits.h"
#include "util/errors.h"
#include "util/mmap_file.h"

namespace wren {
namespace {

// llama.cpp token types.
enum TokType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::string read_text(const std::string& path, size_t max_bytes) {
  const MappedFile f(path);  // a regular file only: never blocks on a FIFO
  if (f.size() > max_bytes) throw FormatError(str_cat(path, ": larger than ", max_bytes, " bytes"));
  return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const char* p) {
  const std::string q(p);
  return s.size() >= q.size() && s.compare(s.size() - q.size(), q.size(), q) == 0;
}

// Added tokens that are control tokens in all but name (the converter's heuristic).
bool looks_special(const std::string& t) {
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
         (starts_with(t, "<|") && ends_with(t, "|>")) ||
         (starts_with(t, "<\xEF\xBD\x9C") && ends_with(t, "\xEF\xBD\x9C>")) ||
         (starts_with(t, "<unused") && ends_with(t, ">"));
}

bool is_byte_token(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && starts_with(t, "<0x") && t[5] == '>' && hex(t[3]) && hex(t[4]);
}

// The split stages a tokenizer.json Split regex can stand for.
constexpr SplitStage kSplitRegexStages[] = {
    SplitStage::kGpt2,          SplitStage::kLlama3,          SplitStage::kQwen2,
    SplitStage::kQwen35,        SplitStage::kBloom,           SplitStage::kEachCrLf,
    SplitStage::kSpacedLetterRun, SplitStage::kSpacedPunctRun, SplitStage::kSpacedLatinRun,
    SplitStage::kSpacedAsciiPunct, SplitStage::kTrailingSpace, SplitStage::kCjkRun,
};

std::string split_step(SplitStage s) { return "Split(" + split_stage_regex(s) + ")"; }

// One pre-tokenizer step, summarised.
std::string describe(const JsonValue& p) {
  const std::string type = p.at("type").as_string();
  if (type == "ByteLevel") {
    const JsonValue* prefix = p.find("add_prefix_space");
    if (prefix && prefix->as_bool()) return "ByteLevel(add_prefix_space)";
    const JsonValue* re = p.find("use_regex");
    return re && !re->as_bool() ? "ByteLevel(no regex)" : "ByteLevel(regex)";
  }
  if (type == "Digits") {
    const JsonValue* ind = p.find("individual_digits");
    return ind && ind->as_bool() ? "Digits(individual)" : "Digits";
  }
  if (type == "Split") {
    const JsonValue* behavior = p.find("behavior");
    const JsonValue* invert = p.find("invert");
    if ((behavior && behavior->as_string() != "Isolated") || (invert && invert->as_bool()))
      return "Split(not isolated)";
    const JsonValue& pat = p.at("pattern");
    if (const JsonValue* re = pat.find("Regex")) {
      for (SplitStage s : kSplitRegexStages)
        if (re->as_string() == split_stage_regex(s)) return split_step(s);
      return "Split(unknown regex " + re->as_string() + ")";
    }
    return "Split(string)";
  }
  return type;
}

// The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer.json, from its pre_tokenizer.
std::string byte_level_pre(const JsonValue& tok, const std::string& file) {
  // NFC (Qwen2) changes nothing for text already in NFC; llama.cpp skips it too.
  if (const JsonValue* n = tok.find_non_null("normalizer"))
    if (n->at("type").as_string() != "NFC")
      throw UnsupportedError(str_cat(file, ": $.normalizer: a ", n->at("type").as_string(),
                                     " normalizer before byte-level BPE is not supported"));
  const JsonValue* p = tok.find_non_null("pre_tokenizer");
  if (!p) throw UnsupportedError(str_cat(file, ": $.pre_tokenizer: a byte-level BPE tokenizer without a "
                                               "pre-tokenizer is not supported"));
  std::vector<std::string> steps;
  if (p->at("type").as_string() == "Sequence") {
    for (const JsonValue& s : p->at("pretokenizers").as_array()) steps.push_back(describe(s));
  } else {
    steps.push_back(describe(*p));
  }
  // The pre-tokenizer sequences we run, by llama.cpp's name for them.
  using S = SplitStage;
  const std::string byte_level = "ByteLevel(no regex)";
  const std::pair<const char*, std::vector<std::string>> known[] = {
      {"gpt-2", {"ByteLevel(regex)"}},
      {"gpt-2", {split_step(S::kGpt2), byte_level}},
      {"llama-bpe", {split_step(S::kLlama3), byte_level}},
      {"qwen2", {split_step(S::kQwen2), byte_level}},
      {"qwen35", {split_step(S::kQwen35), byte_level}},
      {"smollm", {"Digits(individual)", "ByteLevel(regex)"}},
      {"bloom", {split_step(S::kBloom), byte_level}},
      {"deepseek-llm",
       {split_step(S::kEachCrLf), split_step(S::kSpacedLatinRun), split_step(S::kSpacedAsciiPunct),
        split_step(S::kTrailingSpace), split_step(S::kCjkRun), "Digits", byte_level}},
      {"deepseek-coder",
       {split_step(S::kEachCrLf), split_step(S::kSpacedLetterRun), split_step(S::kSpacedPunctRun),
        split_step(S::kCjkRun), "Digits(individual)", byte_level}},
  };
  for (const auto& k : known)
    if (steps == k.second) return k.first;
  std::string seen;
  for (const std::string& s : steps) seen += (seen.empty() ? "" : ", ") + s;
  throw UnsupportedError(str_cat(file, ": $.pre_tokenizer: [", seen,
                                 "] is not a pre-tokenizer we support (supported: GPT-2 byte-level regex, the split "
                                 "regexes of Llama 3, Qwen2, Qwen3.5, BLOOM, DeepSeek LLM and DeepSeek Coder, "
                                 "individual digits + byte-level)"));
}

struct AddedToken {
  int64_t id;
  std::string content;
  bool special;
};

GgufValue string_array(std::vector<std::string> v) {
  std::vector<GgufValue> elems(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    elems[i].type = GgufType::STRING;
    elems[i].s = std::move(v[i]);
  }
  return GgufValue::array_of(GgufType::STRING, elems);
}

template <typename T>
GgufValue number_array(const std::vector<T>& v, GgufType t) {
  std::vector<GgufValue> elems(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    elems[i].type = t;
    if (t == GgufType::F32) elems[i].f = static_cast<double>(static_cast<float>(v[i]));
    else elems[i].i = static_cast<int64_t>(v[i]);
  }
  return GgufValue::array_of(t, elems);
}

// Special token ids and add-BOS/EOS flags, in gguf-py SpecialVocab's order of precedence:
// tokenizer.json's post-processor, then tokenizer_config.json, then config.json's *_token_id.
void special_tokens(const JsonValue& tok, const JsonValue* tcfg, const JsonValue& config,
                    const std::vector<AddedToken>& added, size_t n_vocab, bool limit_ids, HfWriter& w) {
  std::map<std::string, std::string> content;  // type -> token text, from tokenizer_config
  auto text_of = [&](const char* key) -> std::string {
    const JsonValue* e = tcfg ? tcfg->find_non_null(key) : nullptr;
    if (!e) return "";
    if (e->is_string()) return e->as_string();
    if (e->is_object())
      if (const JsonValue* c = e->find_non_null("content"))
        if (c->is_string()) return c->as_string();
    return "";
  };
  for (const char* t : {"bos", "eos", "unk", "sep", "pad", "cls", "mask"}) content[t] = text_of((std::string(t) + "_token").c_str());
  if (content["bos"].empty() && !content["cls"].empty()) content["bos"] = content["cls"];
  if (content["eos"].empty() && !content["sep"].empty()) content["eos"] = content["sep"];

  std::map<std::string, bool> add;
  if (const JsonValue* pp = tok.find_non_null("post_processor")) {
    std::vector<const JsonValue*> procs;
    if (const JsonValue* list = pp->find_non_null("processors"))
      for (const JsonValue& p : list->as_array()) procs.push_back(&p);
    else
      procs.push_back(pp);
    for (const JsonValue* p : procs) {
      const std::string type = p->at("type").as_string();
      if (type == "ByteLevel") {
        add.emplace("bos", false);
        add.emplace("eos", false);
      } else if (type == "RobertaProcessing" || type == "BertProcessing") {
        add["bos"] = add["eos"] = add["sep"] = true;
        if (content["cls"].empty() && tcfg)
          if (const JsonValue* c = p->find_non_null("cls")) content["cls"] = c->as_array().at(0).as_string();
        if (content["sep"].empty() && tcfg)
          if (const JsonValue* s = p->find_non_null("sep")) content["sep"] = s->as_array().at(0).as_string();
      } else if (type == "TemplateProcessing") {
        const auto& single = p->at("single").as_array();
        auto special_id = [](const JsonValue& piece) -> std::string {
          const JsonValue* st = piece.find("SpecialToken");
          return st ? st->at("id").as_string() : "";
        };
        // No special token before the sequence: transformers adds no BOS (llama.cpp would default
        // to adding one for some pre-tokenizers, so say it).
        if (!single.empty() && special_id(single.front()).empty()) add.emplace("bos", false);
        if (single.size() > 1) {
          const std::string first = special_id(single.front());
          if (!first.empty()) {
            if (!tcfg) content["bos"] = first;
            else if (first != content["bos"] && first != content["cls"]) {
              if (content["bos"].empty()) content["bos"] = first;
              if (content["cls"].empty()) content["cls"] = first;
            }
            add["bos"] = first == content["bos"] || first == content["cls"];
          }
          const std::string last = special_id(single.back());
          if (!last.empty()) {
            if (!tcfg) content["eos"] = last;
            else if (last != content["eos"]) {
              content["eot"] = content["eos"];
              content["eos"] = last;
            }
            add["eos"] = last == content["eos"];
          }
          // A separator between A and B in the pair template (one not also closing the sequence).
          const JsonValue* pair = p->find_non_null("pair");
          if (pair && !pair->as_array().empty()) {
            std::vector<const JsonValue*> mid;
            for (const JsonValue& x : pair->as_array()) mid.push_back(&x);
            if (!first.empty() && special_id(*mid.front()) == first) mid.erase(mid.begin());
            if (!last.empty() && !mid.empty() && special_id(*mid.back()) == last) mid.pop_back();
            auto seq_id = [](const JsonValue* x) -> std::string {
              const JsonValue* sq = x->find("Sequence");
              return sq ? sq->at("id").as_string() : "";
            };
            if (mid.size() > 2 && seq_id(mid.front()) == "A" && seq_id(mid.back()) == "B") {
              bool add_sep = false;
              for (size_t k = 1; k + 1 < mid.size() && k <= 2; ++k) {
                const std::string sep = special_id(*mid[k]);
                const bool is_sep = !sep.empty() && (sep == content["sep"] || sep == content["eos"]);
                if (is_sep && (k == 2 || last.empty())) add_sep = true;
              }
              add["sep"] = add_sep;
            }
          }
        }
      }
    }
  }

  std::map<std::string, int64_t> ids;
  auto set_id = [&](const std::string& type, int64_t id) {
    if (id < 0 || ids.count(type)) return;
    if (limit_ids && static_cast<size_t>(id) >= n_vocab) return;
    ids[type] = id;
  };
  const char* kTypes[] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask", "eot"};
  if (tcfg) {
    for (const char* t : kTypes) {
      if (const JsonValue* a = tcfg->find(std::string("add_") + t + "_token"))
        if (a->kind() == JsonValue::Kind::kBool) add.emplace(t, a->as_bool());
      const std::string& c = content[t];
      if (c.empty()) continue;
      for (const AddedToken& a : added)
        if (a.content == c) {
          set_id(t, a.id);
          break;
        }
    }
  }
  for (const char* t : kTypes)
    if (const JsonValue* v = config.find_non_null(std::string(t) + "_token_id"))
      if (v->kind() == JsonValue::Kind::kInt) set_id(t, v->as_int());

  const std::map<std::string, std::string> id_key = {
      {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
      {"pad", "padding_token_id"}, {"mask", "mask_token_id"}, {"eot", "eot_token_id"}};
  for (const auto& kv : ids)
    if (id_key.count(kv.first)) w.put_u32("tokenizer.ggml." + id_key.at(kv.first), static_cast<uint64_t>(kv.second));
  for (const auto& kv : add)
    if (kv.first == "bos" || kv.first == "eos" || kv.first == "sep")
      w.put_bool("tokenizer.ggml.add_" + kv.first + "_token", kv.second);
}

// Where a SentencePiece-style tokenizer.json puts U+2581 before the text: "prepend" (the older
// Prepend normalizer: before every stretch between added tokens, as llama.cpp does), the Metaspace
// pre-tokenizer's prepend_scheme "first" or "always" (an older add_prefix_space: true is "always"),
// or "never".
std::string spm_prepend_scheme(const JsonValue& tok) {
  std::vector<const JsonValue*> steps;
  for (const char* key : {"pre_tokenizer", "normalizer"}) {
    const JsonValue* v = tok.find_non_null(key);
    if (!v) continue;
    const JsonValue* list = v->find_non_null(key == std::string("normalizer") ? "normalizers" : "pretokenizers");
    if (list)
      for (const JsonValue& x : list->as_array()) steps.push_back(&x);
    else
      steps.push_back(v);
  }
  for (const JsonValue* st : steps) {
    const std::string type = st->at("type").as_string();
    if (type == "Prepend") return "prepend";
    if (type == "Metaspace") {
      if (const JsonValue* scheme = st->find_non_null("prepend_scheme")) {
        const std::string s = scheme->as_string();
        if (s != "first" && s != "always" && s != "never")
          scheme->fail(str_cat("expected first, always or never, found '", s, "'"));
        return s;
      }
      const JsonValue* add = st->find_non_null("add_prefix_space");
      return !add || add->as_bool() ? "always" : "never";
    }
  }
  return "never";
}

// Lowercasing and accent stripping, as the WordPiece tokenizer needs them.
void normalizer_flags(const JsonValue* n, HfWriter& w) {
  if (!n) return;
  const std::string type = n->at("type").as_string();
  if (type == "Lowercase") {
    w.put_bool("tokenizer.ggml.normalizer.lowercase", true);
  } else if (type == "StripAccents") {
    w.put_bool("tokenizer.ggml.normalizer.strip_accents", true);
  } else if (type == "BertNormalizer") {
    if (const JsonValue* v = n->find("lowercase"))
      if (v->kind() == JsonValue::Kind::kBool) w.put_bool("tokenizer.ggml.normalizer.lowercase", v->as_bool());
    if (const JsonValue* v = n->find("strip_accents"))
      if (v->kind() == JsonValue::Kind::kBool) w.put_bool("tokenizer.ggml.normalizer.strip_accents", v->as_bool());
  } else if (type == "Sequence") {
    for (const JsonValue& x : n->at("normalizers").as_array()) normalizer_flags(&x, w);
  }
}

// Merges: "a b" strings (older tokenizer.json) or [a, b] pairs (newer; a space inside a part is
// written as U+0120, as the converter does).
std::vector<std::string> read_merges(const JsonValue& list) {
  std::vector<std::string> merges;
  for (const JsonValue& m : list.as_array()) {
    if (m.is_string()) {
      merges.push_back(m.as_string());
      continue;
    }
    const auto& pair = m.as_array();
    if (pair.size() != 2) m.fail("expected a merge [left, right]");
    std::string s;
    for (size_t k = 0; k < 2; ++k) {
      if (k) s += ' ';
      for (char ch : pair[k].as_string()) s += ch == ' ' ? std::string("\xC4\xA0") : std::string(1, ch);
    }
    merges.push_back(std::move(s));
  }
  return merges;
}

// Chat template: tokenizer_config.json's (a string, or named templates), else chat_template.jinja.
void chat_template(const std::string& dir, const JsonValue* tcfg, HfWriter& w) {
  const JsonValue* tmpl = tcfg ? tcfg->find_non_null("chat_template") : nullptr;
  if (tmpl && tmpl->is_string()) {
    w.put_str("tokenizer.chat_template", tmpl->as_string());
  } else if (tmpl && tmpl->is_array()) {
    for (const JsonValue& t : tmpl->as_array()) {
      const std::string name = t.at("name").as_string();
      const std::string text = t.at("template").as_string();
      w.put_str(name == "default" ? "tokenizer.chat_template" : "tokenizer.chat_template." + name, text);
    }
  } else if (is_regular_file(path_join(dir, "chat_template.jinja"))) {
    w.put_str("tokenizer.chat_template", read_text(path_join(dir, "chat_template.jinja"), size_t(16) << 20));
  }
}

}  // namespace

void translate_tokenizer(const std::string& dir, const JsonValue& config, HfWriter& w) {
  const std::string tok_path = path_join(dir, "tokenizer.json");
  if (!is_regular_file(tok_path)) {
    if (is_regular_file(path_join(dir, "tokenizer.model")))
      throw UnsupportedError(str_cat(dir, ": only a SentencePiece tokenizer.model is present; wrenlm reads "
                                          "tokenizer.json (save the tokenizer with a fast tokenizer to write it)"));
    w.fail("tokenizer.json", "missing: the folder needs the tokenizer it was trained with");
  }
  const JsonDocument doc = read_json_file(tok_path, uint64_t(512) << 20);
  const JsonValue& tok = *doc.root;
  JsonDocument tcfg_doc;
  const JsonValue* tcfg = nullptr;
  if (is_regular_file(path_join(dir, "tokenizer_config.json"))) {
    tcfg_doc = read_json_file(path_join(dir, "tokenizer_config.json"), uint64_t(64) << 20);
    tcfg = tcfg_doc.root.get();
    tcfg->as_object();
  }

  const JsonValue& model = tok.at("model");
  const std::string type = model.at("type").as_string();
  const JsonValue* byte_fallback = model.find_non_null("byte_fallback");
  const JsonValue* decoder = tok.find_non_null("decoder");
  std::string kind;  // llama.cpp tokenizer model
  if (type == "BPE") {
    const bool fallback = byte_fallback && byte_fallback->as_bool();
    kind = fallback && decoder && decoder->at("type").as_string() == "Sequence" ? "llama" : "gpt2";
  } else if (type == "WordPiece") {
    kind = "bert";
  } else {
    throw UnsupportedError(str_cat(tok_path, ": $.model.type: tokenizer model '", type,
                                   "' is not supported (supported: BPE, WordPiece)"));
  }

  // Vocabulary: the model's entries and the added tokens, by id.
  std::vector<AddedToken> added;
  for (const JsonValue& a : tok.at("added_tokens").as_array())
    added.push_back({a.at("id").as_int(), a.at("content").as_string(), a.at("special").as_bool()});
  const JsonValue& vocab = model.at("vocab");
  std::map<int64_t, std::string> by_id;
  for (const JsonValue::Member& m : vocab.as_object()) {
    const int64_t id = m.second.as_int();
    if (id < 0 || id >= kMaxVocab) m.second.fail(str_cat("token id must be in 0..", kMaxVocab - 1, ", found ", id));
    by_id[id] = m.first;
  }
  std::map<int64_t, const AddedToken*> added_by_id;
  for (const AddedToken& a : added) {
    if (a.id < 0 || a.id >= kMaxVocab) w.fail("tokenizer.json", str_cat("added token id ", a.id, " is out of range"));
    added_by_id[a.id] = &a;
    by_id[a.id] = a.content;
  }
  const int64_t max_id = by_id.empty() ? -1 : by_id.rbegin()->first;
  int64_t n_vocab = max_id + 1;
  if (kind != "llama")
    if (const JsonValue* v = config.find_non_null("vocab_size")) {
      if (v->as_int() <= max_id) v->fail(str_cat("vocab_size ", v->as_int(), " is not above the largest token id ", max_id));
      // Padding entries stand for embedding rows: bounded by what the weights hold, before any is made.
      uint64_t largest_dim = 0;
      for (const SafetensorsTensor* t : w.hf_tensors())
        for (const uint64_t d : t->shape) largest_dim = std::max(largest_dim, d);
      if (static_cast<uint64_t>(v->as_int()) > largest_dim)
        v->fail(str_cat("vocab_size ", v->as_int(), " is larger than every dimension of every weight (at most ",
                        largest_dim, "): the embedding has one row per token"));
      n_vocab = v->as_int();
    }

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
  for (int64_t i = 0; i < n_vocab; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      if (kind == "llama") w.fail("tokenizer.json", str_cat("token id ", i, " is missing from the vocabulary"));
      tokens.push_back(str_cat("[PAD", i, "]"));
      types.push_back(kUnused);
      continue;
    }
    std::string text = it->second;
    auto a = added_by_id.find(i);
    int32_t t = kNormal;
    if (kind == "llama") {
      if (is_byte_token(text)) t = kByte;
      else if (a != added_by_id.end()) t = a->second->special ? kControl : kUserDefined;
    } else if (a != added_by_id.end()) {
      t = a->second->special || looks_special(text) ? kControl : kUserDefined;
    }
    if (kind == "bert" && t != kControl) {
      // llama.cpp's WordPiece vocabulary: word-initial pieces carry U+2581, continuations lose "##".
      text = starts_with(text, "##") ? text.substr(2) : "\xE2\x96\x81" + text;
    }
    tokens.push_back(std::move(text));
    types.push_back(t);
  }

  w.put_str("tokenizer.ggml.model", kind);
  // SentencePiece-style BPE and WordPiece split by their own rules; only byte-level BPE names one.
  w.put_str("tokenizer.ggml.pre", kind == "gpt2" ? byte_level_pre(tok, tok_path) : "default");
  if (kind == "bert")
    w.put_u32("tokenizer.ggml.token_type_count",
              config.find_non_null("type_vocab_size") ? config.at("type_vocab_size").as_int() : 1);

  std::vector<std::string> merges;
  if (type == "BPE") merges = read_merges(model.at("merges"));
  if (kind == "llama") {
    // SentencePiece-style BPE: a token's score ranks the merge that makes it (earlier = higher), so
    // llama.cpp's highest-score-first merging follows the merge list; other tokens rank last.
    std::map<std::string, size_t> rank;
    for (size_t r = 0; r < merges.size(); ++r) {
      const size_t sp = merges[r].find(' ');
      if (sp == std::string::npos) continue;
      rank.emplace(merges[r].substr(0, sp) + merges[r].substr(sp + 1), r);
    }
    scores.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto it = rank.find(tokens[i]);
      scores[i] = it == rank.end() ? -1e9f : -static_cast<float>(it->second);
    }
  }

  w.put("tokenizer.ggml.tokens", string_array(std::move(tokens)));
  if (!scores.empty()) w.put("tokenizer.ggml.scores", number_array(scores, GgufType::F32));
  w.put("tokenizer.ggml.token_type", number_array(types, GgufType::I32));
  if (!merges.empty()) w.put("tokenizer.ggml.merges", string_array(std::move(merges)));

  special_tokens(tok, tcfg, config, added, static_cast<size_t>(n_vocab), kind != "gpt2", w);

  normalizer_flags(tok.find_non_null("normalizer"), w);
  if (kind == "llama") {
    const std::string scheme = spm_prepend_scheme(tok);
    w.put_bool("tokenizer.ggml.add_space_prefix", scheme != "never");
    // Metaspace's rules differ from llama.cpp's (which the Prepend normalizer follows): no prefix for
    // a stretch that starts with a space, and with "first" none after an added token.
    if (scheme == "first" || scheme == "always") w.put_str("wrenlm.tokenizer.prepend_scheme", scheme);
  }

  if (tcfg)
    if (const JsonValue* v = tcfg->find_non_null("add_prefix_space"))
      if (v->kind() == JsonValue::Kind::kBool) w.put_bool("tokenizer.ggml.add_space_prefix", v->as_bool());

  chat_template(dir, tcfg, w);
}

}  // namespace wren
